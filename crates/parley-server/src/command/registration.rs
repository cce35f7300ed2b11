//! Everything before the welcome: `CAP` negotiation, `USER`, `PASS`, and the welcome burst that
//! completes registration (001-005, LUSERS, MOTD, then the default room).
//!
//! Registration completes when a nick and USER are both in and no `CAP` negotiation is open,
//! whichever of those comes last triggers it. A login being checked holds it; a SASL exchange
//! waiting on the client does not (sasl-3.1 has it aborted with 906).

use parley_proto::{casefold, numeric, Message};

use crate::command::{auth, chathistory, info, join};
use crate::config::RegistrationPolicy;
use crate::context::{advertised_caps, Ctx, FollowUp, Reply};
use crate::isupport;
use crate::server::VERSION;

/// A `CAP LS` or `CAP LIST` answer. "If the server's list of capabilities is too long to fit in
/// a single line, it MAY send multiple lines. When sent, all lines except the last one MUST have
/// an asterisk (*) as a parameter before the capability list" (IRCv3 capability negotiation,
/// version 302): so a 302 client gets lines of at most 510 bytes; an older one, which knows no
/// continuation, gets one line (without values it stays short).
fn send_cap_list(ctx: &Ctx<'_>, nick: &str, sub: &str, caps: &str, v302: bool) {
    // `:server CAP nick LS * :` around each chunk.
    let overhead = 1 + ctx.shared.server_name().len() + " CAP ".len() + nick.len() + sub.len();
    let budget = 510usize.saturating_sub(overhead + " * :".len()).max(100);
    if !v302 || caps.len() <= budget {
        ctx.server_line("CAP", &[nick, sub], Some(caps));
        return;
    }
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for cap in caps.split(' ').filter(|c| !c.is_empty()) {
        if !current.is_empty() && current.len() + 1 + cap.len() > budget {
            chunks.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(cap);
    }
    chunks.push(current);
    let count = chunks.len();
    for (i, chunk) in chunks.iter().enumerate() {
        if i + 1 < count {
            ctx.server_line("CAP", &[nick, sub, "*"], Some(chunk));
        } else {
            ctx.server_line("CAP", &[nick, sub], Some(chunk));
        }
    }
}

/// `CAP LS|LIST|REQ|END` (IRCv3 capability negotiation): while it is open, registration
/// waits for `CAP END`.
pub fn cap(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    let sub = msg.params[0].to_ascii_uppercase();
    let nick = ctx.session.nick_or_star().to_string();
    match sub.as_str() {
        "LS" => {
            if !ctx.session.registered {
                ctx.session.cap_negotiating = true;
            }
            let v302 = msg
                .param(1)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
                >= 302;
            if v302 {
                // 302 clients get cap-notify implicitly.
                ctx.session.caps.cap_notify = true;
                ctx.session.cap_302 = true;
                ctx.outbound.set_notify_caps(ctx.session.caps.notify_bits());
            }
            let caps = advertised_caps(ctx.shared, ctx.session, v302);
            send_cap_list(ctx, &nick, "LS", &caps, v302);
        }
        "LIST" => {
            let names = ctx.session.caps.names().join(" ");
            let v302 = ctx.session.cap_302;
            send_cap_list(ctx, &nick, "LIST", &names, v302);
        }
        "REQ" => {
            if !ctx.session.registered {
                ctx.session.cap_negotiating = true;
            }
            let requested = msg.param(1).unwrap_or("");
            let mut caps = ctx.session.caps;
            let cap_302 = ctx.session.cap_302;
            let all_known = requested.split(' ').filter(|c| !c.is_empty()).all(|c| {
                let (name, on) = match c.strip_prefix('-') {
                    Some(name) => (name, false),
                    None => (c, true),
                };
                // cap-notify: "the cap-notify capability MAY NOT be disabled if the client
                // requests CAP LS with a version of 302 or newer", so asking to is refused.
                if name == "cap-notify" && cap_302 && !on {
                    return false;
                }
                caps.set(name, on)
            });
            if all_known && !requested.trim().is_empty() {
                ctx.session.caps = caps;
                ctx.outbound.set_wire_caps(caps.wire_bits());
                ctx.outbound.set_notify_caps(caps.notify_bits());
                ctx.server_line("CAP", &[&nick, "ACK"], Some(requested));
            } else {
                ctx.server_line("CAP", &[&nick, "NAK"], Some(requested));
            }
        }
        "END" => {
            if !ctx.session.registered {
                ctx.session.cap_negotiating = false;
                try_complete(ctx);
            }
        }
        _ => {
            return Err(Reply::new(
                numeric::ERR_INVALIDCAPCMD,
                &[msg.params[0]],
                "Invalid CAP command",
            ))
        }
    }
    Ok(())
}

/// `USER <username> <mode> <unused> <realname>`: once, before registration.
pub fn user(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    if ctx.session.registered || ctx.session.got_user {
        return Err(Reply::already_registered());
    }
    ctx.require_params(msg, 4)?;
    // An empty username or realname counts as missing (modern.ircdocs.horse: "If it is empty, the
    // server SHOULD reject the command with ERR_NEEDMOREPARAMS"), and the USER is not kept, so a
    // proper one may follow.
    if msg.params[0].is_empty() || msg.params[3].is_empty() {
        return Err(Reply::need_more_params("USER"));
    }
    let max = ctx.shared.config.limits.user_len;
    // No ident lookup is done, so the username is marked with '~' as ircds do for unverified ones.
    let mut username: String = String::from("~");
    username.extend(
        msg.params[0]
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(max.saturating_sub(1)),
    );
    if username.len() == 1 {
        username.push('u');
    }
    let realname: String = msg.params[3]
        .chars()
        .take(ctx.shared.config.limits.realname_len)
        .collect();
    {
        let mut world = ctx.shared.world.lock();
        if let Some(user) = world.users.get_mut(&ctx.session.id) {
            user.username = username;
            user.realname = realname;
        }
    }
    ctx.session.got_user = true;
    try_complete(ctx);
    Ok(())
}

/// Finish registration if everything it needs is in.
pub fn try_complete(ctx: &mut Ctx<'_>) {
    let session = &ctx.session;
    if session.registered
        // A connection becoming another session of its account's user takes the user's nick,
        // so it needs none of its own (its NICK may have been refused as in use, by that user).
        || (session.nick.is_empty()
            && !crate::command::multiclient::can_attach(ctx)
            && crate::command::multiclient::home_elsewhere(ctx).is_none())
        || !session.got_user
        || session.cap_negotiating
        || session
            .followups
            .iter()
            .any(|f| matches!(f, FollowUp::Auth(_)))
    {
        return;
    }
    auth::abort_on_registration(ctx);
    if crate::command::multiclient::attach(ctx) {
        return;
    }
    if let Some(home) = crate::command::multiclient::home_elsewhere(ctx) {
        // The connection goes on as a session of its user there (`connection::bridged`).
        ctx.session.passing().hand_off_to = Some(home);
        return;
    }
    if !crate::command::nick::holds(ctx, &casefold(&ctx.session.nick)) {
        // The nick was taken back by its account's owner; the 433 went out then.
        ctx.session.nick.clear();
        return;
    }
    if ctx.session.account.is_none() && auth::start_pass_login(ctx) {
        return; // the connection task runs the login, then calls back here
    }
    if ctx.session.account.is_none() && ctx.shared.config.accounts.require_login {
        if !std::mem::replace(&mut ctx.session.told_to_log_in, true) {
            tell_how_to_log_in(ctx);
        }
        return;
    }
    if !nick_allowed(ctx, &ctx.session.nick.clone()) {
        crate::command::nick::give_up_refused(ctx);
        return;
    }
    let source = ctx
        .shared
        .world
        .lock()
        .users
        .get(&ctx.session.id)
        .map(|u| u.source())
        .unwrap_or_default();
    if let Some(reason) = ctx
        .shared
        .kline_for(&source, ctx.session.account.as_deref())
    {
        tracing::info!(%source, "registration refused by a K-line");
        // The spec's answer to a banned registration, before the ERROR that closes the link.
        ctx.numeric(
            numeric::ERR_YOUREBANNEDCREEP,
            &[],
            Some(&format!("You are banned from this server: {reason}")),
        );
        ctx.outbound.disconnect(&format!("Banned: {reason}"));
        return;
    }
    let source = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get_mut(&ctx.session.id) else {
            return;
        };
        let newly = !std::mem::replace(&mut user.registered, true);
        let source = user.source();
        world.counts.registered += usize::from(newly);
        let count = world.registered_count();
        world.max_registered = world.max_registered.max(count);
        world.max_local = world
            .max_local
            .max(count.saturating_sub(world.remote.len()));
        if newly {
            world.monitor_online(ctx.shared.server_name(), &ctx.session.nick, &source);
        }
        source
    };
    ctx.session.registered = true;
    tracing::info!(client = ctx.session.id.0, nick = %ctx.session.nick, host = %ctx.session.host, "registered");
    ctx.replicate(|cluster| {
        let world = ctx.shared.world.lock();
        let user = world.users.get(&ctx.session.id)?;
        Some(crate::cluster::event::Event::UserUp {
            user: crate::cluster::apply::user_info(cluster, user),
        })
    });
    welcome(ctx, &source);
    let default_channel = ctx.shared.config.server.default_channel.clone();
    if !default_channel.is_empty() {
        join::join_one(ctx, &default_channel, None).unwrap_or_else(|reply| ctx.reply(&reply));
    }
    if let Some(account) = &ctx.session.account {
        let account = casefold(account);
        chathistory::offline(ctx, account);
        if ctx.shared.live().operators.auto_oper {
            ctx.grant_oper(false);
        }
    }
}

/// The notice a connection gets when it must log in before it can finish registering.
fn tell_how_to_log_in(ctx: &Ctx<'_>) {
    // The machine-readable refusal first (soju.im/account-required), then the words for people.
    ctx.server_line(
        "FAIL",
        &["*", "ACCOUNT_REQUIRED"],
        Some("This server requires an account; log in or register"),
    );
    let mut lines = vec![
        "This server requires an account. Log in with SASL (SCRAM-SHA-256 or PLAIN), or send PASS <account>:<password>.",
    ];
    if ctx.shared.live().accounts.registration == RegistrationPolicy::Open {
        lines.push("No account yet? Create one: REGISTER * * <password> (your nick becomes the account name).");
    }
    lines.push("Connections that do not log in are closed after the registration timeout.");
    for text in lines {
        ctx.server_line("NOTICE", &[ctx.session.nick_or_star()], Some(text));
    }
}

/// A nick that names a registered account belongs to that account: anyone else gets 433.
/// Answered from the in-memory set of account names ([`crate::accounts::Accounts::is_account_name`]),
/// so a guest's NICK never waits for the database. If that cannot answer, the nick is refused
/// rather than risk handing out someone's name.
pub fn nick_allowed(ctx: &Ctx<'_>, nick: &str) -> bool {
    let own = ctx
        .session
        .account
        .as_deref()
        .is_some_and(|account| casefold(account) == casefold(nick));
    if own {
        return true;
    }
    let reserved = match ctx.shared.accounts.is_account_name(nick) {
        Ok(reserved) => reserved,
        Err(err) => {
            tracing::error!(%err, "cannot check whether a nick is a registered account");
            true
        }
    };
    if reserved {
        ctx.numeric(
            numeric::ERR_NICKNAMEINUSE,
            &[nick],
            Some(crate::command::nick::RESERVED),
        );
    }
    !reserved
}

/// 001-005, LUSERS and the MOTD: the welcome every registration gets, another session's too.
pub(crate) fn welcome(ctx: &mut Ctx<'_>, source: &str) {
    let shared = ctx.shared;
    let name = shared.server_name();
    ctx.numeric(
        numeric::RPL_WELCOME,
        &[],
        Some(&format!(
            "Welcome to the {} IRC Network {source}",
            shared.config.server.network
        )),
    );
    ctx.numeric(
        numeric::RPL_YOURHOST,
        &[],
        Some(&format!("Your host is {name}, running version {VERSION}")),
    );
    ctx.numeric(
        numeric::RPL_CREATED,
        &[],
        Some(&format!(
            "This server was created {}",
            crate::clock::httpdate_like(shared.created)
        )),
    );
    ctx.numeric(
        numeric::RPL_MYINFO,
        &[
            name,
            VERSION,
            isupport::USER_MODES,
            isupport::CHANNEL_MODES,
            isupport::CHANNEL_MODES_WITH_PARAM,
        ],
        None,
    );
    ctx.send_isupport();
    // The burst goes on past a refusal (422 without a MOTD): sent here, not returned.
    info::lusers(ctx).unwrap_or_else(|reply| ctx.reply(&reply));
    info::motd(ctx).unwrap_or_else(|reply| ctx.reply(&reply));
}
