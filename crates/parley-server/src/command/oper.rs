//! Server operators' commands (becoming one is `oper_login.rs`): KILL, server bans (KLINE by
//! mask or account, DLINE by address or network, with reason and expiry, persisted), STATS k/d,
//! account SUSPEND, WALLOPS. Operators are accounts named in `[operators]`, or made admins in the database by the
//! admin CLI (`parleyd users add --admin`), so a new install has an admin without editing the
//! config; each command checks the permission it needs and answers 481 without it. Every action
//! goes to the audit trail.

use std::time::Duration;

use parley_proto::{casefold, numeric, Message};

use crate::clock::{format_time, now_ms};
use crate::cluster::event::Event;
use crate::context::{Ctx, Reply};
use crate::relay::line;
use crate::server::dline_covers;
use crate::store::{ServerBan, StateChange};

fn notice(ctx: &Ctx<'_>, text: &str) {
    ctx.server_line("NOTICE", &[ctx.session.nick_or_star()], Some(text));
}

/// `KILL <nick> <comment>`: as modern.ircdocs.horse has it, the user gets the `KILL` from the
/// operator, then `ERROR :Closing Link: <server> (Killed (<killer> (<comment>)))`, and everyone
/// sharing a channel with them a QUIT with `Killed (<killer> (<comment>))`.
pub fn kill(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    ctx.require_oper("kill")?;
    let target = msg.params[0];
    let reason = msg
        .param(1)
        .filter(|r| !r.is_empty())
        .unwrap_or("No reason given");
    let found = {
        let world = ctx.shared.world.lock();
        let killer = world.users.get(&ctx.session.id).map(|u| u.source());
        world.user_by_nick(target).map(|u| {
            let account = u.account.clone().map(|account| (account, u.id));
            (
                u.nick.clone(),
                u.sessions.clone(),
                u.remote.clone(),
                killer,
                account,
            )
        })
    };
    let Some((nick, sessions, remote, Some(killer), account)) = found else {
        return Err(Reply::no_such_nick(target));
    };
    let by = ctx.session.nick.clone();
    let text = format!("Killed ({by} ({reason}))");
    let kill_line = line(Some(&killer), "KILL", &[&nick], Some(reason));
    match remote {
        // On another node: that node closes it, and the QUIT comes back through the stream.
        Some(uid) => ctx.replicate(|_| {
            Some(Event::Kill {
                uid,
                reason: text.clone(),
                line: String::from_utf8_lossy(&kill_line).into_owned(),
            })
        }),
        // Every session of the user: a KILL ends the user, not one of its devices.
        None => {
            for outbound in &sessions {
                outbound.killed_by(&kill_line, ctx.shared.server_name(), &text);
            }
        }
    }
    // A kept always-on presence has no connection to close: it ends here.
    if let Some((account, id)) = account {
        crate::command::always_on::end_kept(ctx.shared, &account, id, &text);
    }
    ctx.audit("kill", &nick, Some(reason));
    notice(ctx, &format!("Killed {nick}"));
    Ok(())
}

/// `[duration] mask [:reason]`: a leading `1h`/`7d`/`30m` is a duration, else it never expires.
fn ban_params<'a>(msg: &'a Message<'a>) -> Option<(Option<Duration>, &'a str, &'a str)> {
    let mut params = msg.params.iter().copied();
    let first = params.next()?;
    let (duration, mask) = match humantime::parse_duration(first) {
        Ok(duration) if first.chars().next().is_some_and(|c| c.is_ascii_digit()) => {
            (Some(duration), params.next()?)
        }
        _ => (None, first),
    };
    let reason = params.next().filter(|r| !r.is_empty()).unwrap_or("Banned");
    Some((duration, mask, reason))
}

fn add_ban(ctx: &mut Ctx<'_>, msg: &Message<'_>, kind: &'static str) -> Result<(), Reply> {
    let permission = kind;
    ctx.require_params(msg, 1)?;
    ctx.require_oper(permission)?;
    let Some((duration, raw_mask, reason)) = ban_params(msg) else {
        return Err(Reply::need_more_params(kind));
    };
    let mask = if kind == "dline" {
        let valid = raw_mask.parse::<ipnet::IpNet>().is_ok()
            || raw_mask.parse::<std::net::IpAddr>().is_ok();
        if !valid {
            notice(
                ctx,
                &format!("{raw_mask} is not an address or network (like 10.0.0.0/8)"),
            );
            return Ok(());
        }
        raw_mask.to_string()
    } else if raw_mask.starts_with('$') || raw_mask.contains('!') {
        raw_mask.to_string()
    } else if raw_mask.contains('@') {
        format!("*!{raw_mask}")
    } else {
        format!("{raw_mask}!*@*")
    };
    let now = now_ms();
    let expires_ms =
        duration.map(|d| now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
    let ban = ServerBan {
        kind: kind.to_string(),
        mask: mask.clone(),
        reason: reason.to_string(),
        set_by: ctx.session.nick.clone(),
        set_at_ms: now,
        expires_ms,
    };
    {
        let mut bans = ctx.shared.server_bans.lock();
        bans.retain(|b| !(b.kind == kind && casefold(&b.mask) == casefold(&mask)));
        bans.push(ban.clone());
    }
    ctx.shared
        .history
        .persist(StateChange::AddServerBan(ban.clone()));
    ctx.replicate(|_| Some(Event::ServerBanAdded { ban }));
    let expiry = expires_ms
        .map(format_time)
        .unwrap_or_else(|| "never".into());
    ctx.audit(kind, &mask, Some(&format!("{reason} (expires {expiry})")));
    // Whoever it covers now goes now.
    let victims: Vec<_> = {
        let world = ctx.shared.world.lock();
        world
            .users
            .values()
            .filter(|u| u.registered && u.id != ctx.session.id)
            .filter(|u| match kind {
                "dline" => dline_covers(&mask, u.ip),
                _ => u.matches_mask(&mask),
            })
            .flat_map(|u| u.sessions.iter().cloned())
            .collect()
    };
    for outbound in &victims {
        outbound.disconnect(&format!("Banned: {reason}"));
    }
    notice(
        ctx,
        &format!(
            "Added {} for {mask} (expires {expiry}); {} connection(s) closed",
            kind.to_ascii_uppercase(),
            victims.len()
        ),
    );
    Ok(())
}

fn remove_ban(ctx: &mut Ctx<'_>, msg: &Message<'_>, kind: &'static str) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    ctx.require_oper(kind)?;
    let wanted = casefold(msg.params[0]);
    let removed = {
        let mut bans = ctx.shared.server_bans.lock();
        let before = bans.len();
        let mut found = None;
        bans.retain(|b| {
            let hit = b.kind == kind
                && (casefold(&b.mask) == wanted
                    || casefold(&b.mask) == format!("{wanted}!*@*")
                    || casefold(&b.mask) == format!("*!{wanted}"));
            if hit {
                found = Some(b.mask.clone());
            }
            !hit
        });
        (bans.len() < before).then_some(found).flatten()
    };
    match removed {
        Some(mask) => {
            ctx.shared
                .history
                .persist(StateChange::RemoveServerBan(kind.to_string(), mask.clone()));
            ctx.replicate(|_| {
                Some(Event::ServerBanRemoved {
                    kind: kind.to_string(),
                    mask: mask.clone(),
                })
            });
            ctx.audit(&format!("un{kind}"), &mask, None);
            notice(
                ctx,
                &format!("Removed {} for {mask}", kind.to_ascii_uppercase()),
            );
        }
        None => notice(
            ctx,
            &format!("No {} matches {}", kind.to_ascii_uppercase(), msg.params[0]),
        ),
    }
    Ok(())
}

pub fn kline(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    add_ban(ctx, msg, "kline")
}

pub fn unkline(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    remove_ban(ctx, msg, "kline")
}

pub fn dline(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    add_ban(ctx, msg, "dline")
}

pub fn undline(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    remove_ban(ctx, msg, "dline")
}

/// `STATS k` (K-lines) and `STATS d` (D-lines), for operators.
pub fn stats(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let query = msg.param(0).unwrap_or("").to_ascii_lowercase();
    let kind = match query.as_str() {
        "k" => "kline",
        "d" => "dline",
        _ => {
            ctx.numeric(
                numeric::RPL_ENDOFSTATS,
                &[&query],
                Some("End of /STATS report"),
            );
            return Ok(());
        }
    };
    ctx.require_oper(kind)?;
    let now = now_ms();
    let bans: Vec<ServerBan> = ctx
        .shared
        .server_bans
        .lock()
        .iter()
        .filter(|b| b.kind == kind && b.expires_ms.is_none_or(|e| e > now))
        .cloned()
        .collect();
    let letter = if kind == "kline" { "K" } else { "D" };
    for ban in bans {
        let expiry = ban
            .expires_ms
            .map(format_time)
            .unwrap_or_else(|| "never".into());
        ctx.numeric(
            numeric::RPL_STATSKLINE,
            &[letter, &ban.mask, &ban.set_by],
            Some(&format!("{} (expires {expiry})", ban.reason)),
        );
    }
    ctx.numeric(
        numeric::RPL_ENDOFSTATS,
        &[&query],
        Some("End of /STATS report"),
    );
    Ok(())
}

/// `SUSPEND account [:reason]`: refuse its logins and close its connections; `UNSUSPEND`. The
/// store is written on the blocking pool; the rest follows its answer.
pub fn suspend(ctx: &mut Ctx<'_>, msg: &Message<'_>, suspended: bool) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    ctx.require_oper("suspend")?;
    let account = msg.params[0].to_string();
    let reason = msg
        .param(1)
        .filter(|r| !r.is_empty())
        .unwrap_or("Account suspended")
        .to_string();
    let store = ctx.shared.accounts.store().clone();
    let name = account.clone();
    ctx.then_blocking(
        move || store.set_locked(&name, suspended),
        move |ctx, stored| {
            if let Err(err) = stored {
                notice(ctx, &format!("Cannot change {account}: {err}"));
                return;
            }
            suspended_now(ctx, &account, suspended, &reason);
        },
    );
    Ok(())
}

/// The rest of [`suspend`], once the store has it.
fn suspended_now(ctx: &mut Ctx<'_>, account: &str, suspended: bool, reason: &str) {
    let mut closed = 0;
    if suspended {
        let folded = casefold(account);
        let victims: Vec<_> = ctx
            .shared
            .world
            .lock()
            .users
            .values()
            .filter(|u| u.account.as_deref().map(casefold).as_deref() == Some(folded.as_str()))
            .flat_map(|u| u.sessions.iter().cloned())
            .collect();
        for outbound in &victims {
            outbound.disconnect(&format!("Account suspended: {reason}"));
        }
        closed = victims.len();
        // A kept always-on presence has no connection to close: it ends here.
        crate::command::always_on::end(
            ctx.shared,
            account,
            &format!("Account suspended: {reason}"),
        );
    }
    ctx.audit(
        if suspended { "suspend" } else { "unsuspend" },
        account,
        suspended.then_some(reason),
    );
    notice(
        ctx,
        &if suspended {
            format!("Suspended {account}; {closed} connection(s) closed")
        } else {
            format!("Unsuspended {account}")
        },
    );
}

/// `REHASH`: re-read the config file and certificate, as SIGHUP does.
pub fn rehash(ctx: &mut Ctx<'_>, _msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_oper("rehash")?;
    ctx.numeric(numeric::RPL_REHASHING, &["parleyd"], Some("Rehashing"));
    match ctx.shared.reload() {
        Ok(restart) if restart.is_empty() => notice(ctx, "Configuration reloaded"),
        Ok(restart) => notice(
            ctx,
            &format!(
                "Configuration reloaded; these changes need a restart: {}",
                restart.join(", ")
            ),
        ),
        Err(err) => notice(
            ctx,
            &format!("Configuration NOT reloaded, the old one stays: {err}"),
        ),
    }
    ctx.audit("rehash", "config", None);
    Ok(())
}

/// `WALLOPS :text`: "to all currently connected users who have set the 'w' user mode for
/// themselves" (modern.ircdocs.horse), on every node of a cluster.
pub fn wallops(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    ctx.require_oper("wallops")?;
    let (source, recipients) = {
        let world = ctx.shared.world.lock();
        let Some(me) = world.users.get(&ctx.session.id) else {
            return Ok(());
        };
        let recipients: Vec<_> = world
            .users
            .values()
            .filter(|u| u.registered && u.wallops && u.remote.is_none())
            .flat_map(|u| u.sessions.iter().cloned())
            .collect();
        (me.source(), recipients)
    };
    let bytes = line(Some(&source), "WALLOPS", &[], Some(msg.params[0]));
    for recipient in recipients {
        let _ = recipient.push(&bytes);
    }
    // The other nodes give it to their own `+w` users.
    ctx.replicate(|cluster| {
        Some(Event::Wallops {
            uid: cluster.uid_of(ctx.session.id),
            line: String::from_utf8_lossy(&bytes).into_owned(),
        })
    });
    ctx.audit("wallops", "*", Some(msg.params[0]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_parameters() {
        let msg = Message::parse("KLINE 1h bad!*@* :go away").expect("line");
        let (duration, mask, reason) = ban_params(&msg).expect("params");
        assert_eq!(duration, Some(Duration::from_secs(3600)));
        assert_eq!((mask, reason), ("bad!*@*", "go away"));
        let msg = Message::parse("KLINE $a:spammer").expect("line");
        let (duration, mask, reason) = ban_params(&msg).expect("params");
        assert_eq!((duration, mask, reason), (None, "$a:spammer", "Banned"));
    }
}
