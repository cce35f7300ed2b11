//! Looking people up: WHO, WHOIS, WHOWAS, ISON, USERHOST. Invisible users (`+i`) show up in mask
//! searches only to those who share a channel with them; an exact nick is always answered.
//! Secret channels (`+s`) are not there for non-members: WHO of one is an empty list, and
//! WHOIS leaves it out of 319. Bots (`+B`) get 335 in WHOIS and the `B` flag in WHO.

use std::time::SystemTime;

use parley_proto::{casefold, numeric, wildcard_match, Message};

use crate::clock::httpdate_like;
use crate::command::channel::unix_time;
use crate::command::whox;
use crate::context::{Ctx, Reply};
use crate::isupport;
use crate::state::{MemberStatus, User, World};

/// Most rows one WHO answers, so a `WHO *` cannot flood the asker's send queue.
const MAX_WHO_ROWS: usize = 500;
/// Most entries one WHOWAS returns.
const MAX_WHOWAS_ROWS: usize = 10;
/// Nicks one USERHOST answers, per RFC 2812.
const MAX_USERHOST_NICKS: usize = 5;

/// A WHO row's flags: `H` here or `G` away, `*` for a server operator, then the user's prefixes
/// in the channel (all of them with `multi-prefix`). WHOX's `f` field is the same.
pub fn who_flags(ctx: &Ctx<'_>, user: &User, status: Option<MemberStatus>) -> String {
    let mut flags = String::from(if user.away.is_some() { "G" } else { "H" });
    if user.oper.is_some() {
        flags.push('*');
    }
    if let Some(status) = status {
        flags.push_str(status.prefixes(ctx.session.caps.multi_prefix));
    }
    if user.bot {
        flags.push(isupport::BOT_MODE);
    }
    flags
}

fn who_row(ctx: &Ctx<'_>, channel: &str, user: &User, status: Option<MemberStatus>) {
    let flags = who_flags(ctx, user, status);
    ctx.numeric(
        numeric::RPL_WHOREPLY,
        &[
            channel,
            &user.username,
            &user.host,
            &crate::cluster::identity::server_of(ctx.shared, user.remote.as_deref()),
            &user.nick,
            &flags,
        ],
        Some(&format!("0 {}", user.realname)),
    );
}

/// How one listed user is answered: a 352, or a WHOX 354.
type Row<'r> = &'r dyn Fn(&Ctx<'_>, &str, &User, Option<MemberStatus>);

/// `WHO [<mask> [%<fields>[,<token>]]]`: a channel's members, a nick, or the users matching a
/// mask (352, or 354 with WHOX's fields, then 315); invisible users only to those who share a
/// channel with them.
pub fn who(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let mask = msg.param(0).filter(|m| !m.is_empty()).unwrap_or("*");
    let me = ctx.session.id;
    {
        let world = ctx.shared.world.lock();
        let whox = msg.param(1).and_then(whox::Request::parse);
        // Addresses only to operators (WHOX's `i`); decided once, under the lock held anyway.
        let sees_addresses = ctx.oper_class_in(&world).is_some();
        let whox_row = |ctx: &Ctx<'_>, channel: &str, user: &User, status| match &whox {
            Some(request) => whox::row(ctx, request, sees_addresses, channel, user, status),
            None => who_row(ctx, channel, user, status),
        };
        let who_row: Row<'_> = &whox_row;
        if mask.starts_with(['#', '&']) {
            let sees_secret = ctx.sees_secret_channels(&world);
            if let Some(channel) = world
                .channels
                .get(&casefold(mask))
                .filter(|c| !c.hidden_from(me, sees_secret))
            {
                let is_member = channel.status(me).is_some();
                for id in channel.order.iter().take(MAX_WHO_ROWS) {
                    let Some(user) = world.users.get(id) else {
                        continue;
                    };
                    if user.invisible && !is_member {
                        continue;
                    }
                    who_row(ctx, &channel.name, user, channel.status(*id));
                }
            }
        } else if !mask.contains(['*', '?']) || mask == "0" {
            if let Some(user) = world.user_by_nick(mask) {
                who_row(ctx, "*", user, None);
            } else if mask == "0" {
                who_all(ctx, &world, "*", who_row);
            }
        } else {
            who_all(ctx, &world, mask, who_row);
        }
    }
    ctx.numeric(numeric::RPL_ENDOFWHO, &[mask], Some("End of WHO list"));
    Ok(())
}

fn who_all(ctx: &Ctx<'_>, world: &World, mask: &str, who_row: Row<'_>) {
    let me = ctx.session.id;
    let mut rows = 0;
    for user in world.users.values().filter(|u| u.registered) {
        if user.invisible && user.id != me && !world.share_channel(me, user.id) {
            continue;
        }
        let matches = wildcard_match(mask, &user.nick)
            || wildcard_match(mask, &user.host)
            || wildcard_match(mask, &user.realname);
        if !matches {
            continue;
        }
        who_row(ctx, "*", user, None);
        rows += 1;
        if rows >= MAX_WHO_ROWS {
            break;
        }
    }
}

/// `WHOIS [<server>] <nick>`: who a user is (311, 319, 312, 301, 313, 330, 338, 671, 317, 318).
pub fn whois(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    // `WHOIS server nick` is allowed; the nick is always the last parameter.
    let Some(target) = msg
        .params
        .last()
        .and_then(|p| p.split(',').next())
        .filter(|n| !n.is_empty())
    else {
        return Err(Reply::no_nickname_given());
    };
    let world = ctx.shared.world.lock();
    let Some(user) = world.user_by_nick(target) else {
        ctx.numeric(
            numeric::ERR_NOSUCHNICK,
            &[target],
            Some("No such nick/channel"),
        );
        ctx.numeric(
            numeric::RPL_ENDOFWHOIS,
            &[target],
            Some("End of /WHOIS list"),
        );
        return Ok(());
    };
    let nick = user.nick.as_str();
    ctx.numeric(
        numeric::RPL_WHOISUSER,
        &[nick, &user.username, &user.host, "*"],
        Some(&user.realname),
    );
    let sees_secret = ctx.sees_secret_channels(&world);
    let mut channels: Vec<String> = user
        .channels
        .iter()
        .filter_map(|key| world.channels.get(key))
        .filter(|c| !c.hidden_from(ctx.session.id, sees_secret))
        .map(|c| {
            let prefix = c
                .status(user.id)
                .map(|s| s.prefixes(ctx.session.caps.multi_prefix))
                .unwrap_or("");
            format!("{prefix}{}", c.name)
        })
        .collect();
    channels.sort();
    for chunk in channels.chunks(20) {
        ctx.numeric(numeric::RPL_WHOISCHANNELS, &[nick], Some(&chunk.join(" ")));
    }
    ctx.numeric(
        numeric::RPL_WHOISSERVER,
        &[
            nick,
            &crate::cluster::identity::server_of(ctx.shared, user.remote.as_deref()),
        ],
        Some(&ctx.shared.config.server.network),
    );
    if let Some(away) = &user.away {
        ctx.numeric(numeric::RPL_AWAY, &[nick], Some(away));
    }
    if user.bot {
        ctx.numeric(
            numeric::RPL_WHOISBOT,
            &[nick],
            Some(&format!("is a bot on {}", ctx.shared.config.server.network)),
        );
    }
    if let Some(class) = user.oper {
        ctx.numeric(
            numeric::RPL_WHOISOPERATOR,
            &[nick],
            Some(&format!("is an IRC operator ({})", class.name())),
        );
    }
    if let Some(account) = &user.account {
        ctx.numeric(
            numeric::RPL_WHOISACCOUNT,
            &[nick, account],
            Some("is logged in as"),
        );
    }
    // Under a CHGHOST, operators (as for WHOX `i`) and the user itself see the real mask and
    // address: "<client> <nick> <username>@<hostname> <ip> :Is actually using host".
    let may_see_real = user.id == ctx.session.id || ctx.oper_class_in(&world).is_some();
    if let (Some(real), true) = (&user.real_mask, may_see_real) {
        if !user.ip.is_unspecified() {
            let ip = user.ip.to_canonical().to_string();
            ctx.numeric(
                numeric::RPL_WHOISACTUALLY,
                &[nick, real, &ip],
                Some("Is actually using host"),
            );
        }
    }
    crate::command::multiclient::whois_sessions(ctx, &world, user.id, nick);
    if user.secure {
        ctx.numeric(
            numeric::RPL_WHOISSECURE,
            &[nick],
            Some("is using a secure connection"),
        );
    }
    let idle = user.last_spoke.elapsed().as_secs().to_string();
    ctx.numeric(
        numeric::RPL_WHOISIDLE,
        &[nick, &idle, &unix_time(user.signon)],
        Some("seconds idle, signon time"),
    );
    ctx.numeric(numeric::RPL_ENDOFWHOIS, &[nick], Some("End of /WHOIS list"));
    Ok(())
}

/// `WHOWAS <nick> [<count>]`: who used a nick lately.
pub fn whowas(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(target) = msg.param(0).filter(|n| !n.is_empty()) else {
        return Err(Reply::no_nickname_given());
    };
    let wanted = msg
        .param(1)
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c > 0)
        .unwrap_or(MAX_WHOWAS_ROWS)
        .min(MAX_WHOWAS_ROWS);
    let folded = casefold(target);
    let rows: Vec<(String, String, String, String, SystemTime)> = {
        let world = ctx.shared.world.lock();
        world
            .whowas
            .iter()
            .rev()
            .filter(|e| casefold(&e.nick) == folded)
            .take(wanted)
            .map(|e| {
                (
                    e.nick.clone(),
                    e.username.clone(),
                    e.host.clone(),
                    e.realname.clone(),
                    e.when,
                )
            })
            .collect()
    };
    if rows.is_empty() {
        ctx.numeric(
            numeric::ERR_WASNOSUCHNICK,
            &[target],
            Some("There was no such nickname"),
        );
    }
    for (nick, username, host, realname, when) in &rows {
        ctx.numeric(
            numeric::RPL_WHOWASUSER,
            &[nick, username, host, "*"],
            Some(realname),
        );
        ctx.numeric(
            numeric::RPL_WHOISSERVER,
            &[nick, ctx.shared.server_name()],
            Some(&httpdate_like(*when)),
        );
    }
    ctx.numeric(numeric::RPL_ENDOFWHOWAS, &[target], Some("End of WHOWAS"));
    Ok(())
}

/// `ISON <nick>...`: which of these nicks are online.
pub fn ison(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    let online: Vec<String> = {
        let world = ctx.shared.world.lock();
        msg.params
            .iter()
            .flat_map(|p| p.split(' '))
            .filter(|n| !n.is_empty())
            .take(64)
            .filter_map(|n| world.user_by_nick(n).map(|u| u.nick.clone()))
            .collect()
    };
    ctx.numeric(numeric::RPL_ISON, &[], Some(&online.join(" ")));
    Ok(())
}

/// `USERHOST <nick>...`: up to five users' `nick=+user@host`.
pub fn userhost(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    let replies: Vec<String> = {
        let world = ctx.shared.world.lock();
        msg.params
            .iter()
            .flat_map(|p| p.split(' '))
            .filter(|n| !n.is_empty())
            .take(MAX_USERHOST_NICKS)
            .filter_map(|n| world.user_by_nick(n))
            .map(|u| {
                let presence = if u.away.is_some() { '-' } else { '+' };
                format!("{}={presence}{}@{}", u.nick, u.username, u.host)
            })
            .collect()
    };
    ctx.numeric(numeric::RPL_USERHOST, &[], Some(&replies.join(" ")));
    Ok(())
}
