//! Several devices, one presence (`accounts.multiclient`): a connection that completes
//! registration logged in to an account whose user is already present on this node becomes
//! another session of that user ([`attach`]): it takes the user's nick, gets the welcome and a
//! JOIN burst of the user's channels, and from then on what the user does on any session the
//! others see as any member would. Others see nothing of it: no JOIN, no nick change, and no
//! QUIT until the last session leaves ([`leave`]).
//!
//! Only a login before the welcome attaches (SASL before `CAP END`, `PASS`): a connection that
//! logs in afterwards (`AUTHENTICATE`, `REGISTER`) already has a nick and channels of its own
//! and stays a user of its own, as in ergo.
//!
//! In a cluster, a login on one node whose account's user lives on another node goes there
//! ([`home_elsewhere`]): the connection hands its registration over the bus, and from then on
//! its node only carries its lines to the user's node and back (`connection::bridged`), where
//! it attaches as any local session does. One account, one user, on one node.

use std::sync::Arc;

use parley_proto::{numeric, write_line};

use crate::command::{always_on, channel, markread, registration};
use crate::context::Ctx;
use crate::fanout::names_chunks;
use crate::outbound::Outbound;
use crate::relay::{wire, Relay};
use crate::server::Shared;
use crate::state::{ClientId, MemberList, World};

/// The `FAIL * <code>` a login past `accounts.max_sessions` gets before its `ERROR`.
pub const TOO_MANY_SESSIONS: &str = "TOO_MANY_SESSIONS";

/// At the end of registration: make this connection another session of its account's user if
/// one is present and `accounts.multiclient` is on. True when registration was taken care of
/// here (attached, or refused at the session cap or by a K-line); false to register as usual.
pub fn attach(ctx: &mut Ctx<'_>) -> bool {
    let config = &ctx.shared.config.accounts;
    if ctx.session.registered {
        return false;
    }
    let Some(account) = ctx.session.account.clone() else {
        return false;
    };
    // An always-on account's kept presence is its own user: a login comes back to it even
    // with multiclient off.
    let kept = always_on::kept(ctx.shared, &account);
    if !config.multiclient && kept.is_none() {
        return false;
    }
    let conn = ctx.session.id;
    let own_source = ctx.shared.world.lock().users.get(&conn).map(|u| u.source());
    // A ban on this connection's own mask (or the account) holds whoever it joins.
    if let Some(reason) = own_source
        .as_deref()
        .and_then(|source| ctx.shared.kline_for(source, Some(&account)))
    {
        ctx.numeric(
            numeric::ERR_YOUREBANNEDCREEP,
            &[],
            Some(&format!("You are banned from this server: {reason}")),
        );
        ctx.outbound.disconnect(&format!("Banned: {reason}"));
        return true;
    }
    // Found, counted and attached under one lock, so logins racing each other cannot pass
    // the cap together.
    let attached = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.present_user_of(&account) else {
            return false;
        };
        let sessions = world.session_count(user);
        if sessions >= config.max_sessions {
            drop(world);
            tracing::info!(client = conn.0, %account, sessions, "login refused: too many sessions");
            let text = format!(
                "Your account already has {sessions} sessions, the most allowed; \
                 close one and try again"
            );
            ctx.server_line("FAIL", &["*", TOO_MANY_SESSIONS], Some(&text));
            ctx.outbound
                .disconnect("Too many sessions for this account");
            return true;
        }
        world
            .attach_session(user, conn, ctx.outbound)
            .and_then(|released| {
                let found = world.users.get(&user)?;
                Some((
                    user,
                    released,
                    found.nick.clone(),
                    found.source(),
                    found.away.clone(),
                ))
            })
    };
    let Some((user, released, nick, source, mut away)) = attached else {
        return false;
    };
    let kept = kept.filter(|detached| detached.id == user);
    if kept.is_some() {
        // The presence's away ends with this login ([`always_on::resumed`]).
        away = None;
    }
    if let Some(folded) = released {
        ctx.announcer().release_nick(&folded, conn);
    }
    ctx.session.id = user;
    ctx.session.nick = nick;
    ctx.session.registered = true;
    tracing::info!(client = conn.0, user = user.0, %account, "attached as another session");
    registration::welcome(ctx, &source);
    if away.is_some() {
        ctx.numeric(
            numeric::RPL_NOWAWAY,
            &[],
            Some("You have been marked as being away"),
        );
    }
    burst(ctx);
    if let Some(detached) = kept {
        always_on::resumed(ctx, &account, detached);
    }
    true
}

/// In a cluster: the node where this connection's account has its user, when the connection
/// should become another session of that user there rather than a user of its own here
/// (multiclient on, or the account always-on: its kept presence is its user). None for a
/// connection that must stay ([`crate::context::Session::stays`]).
pub fn home_elsewhere(ctx: &Ctx<'_>) -> Option<String> {
    let session = &ctx.session;
    if session.registered || session.stays {
        return None;
    }
    let cluster = crate::cluster::of(ctx.shared)?;
    let account = session.account.as_deref()?;
    let config = &ctx.shared.config.accounts;
    let always_on = ctx
        .shared
        .always_on
        .is_on(config.always_on, &parley_proto::casefold(account));
    if !config.multiclient && !always_on {
        return None;
    }
    let uid = ctx.shared.world.lock().remote_user_of(account)?;
    let node = crate::cluster::identity::node_of(&uid)?;
    (node != cluster.node).then(|| node.to_owned())
}

/// Whether [`attach`] would find a user for this connection to join (multiclient on, logged
/// in, its account's user present here).
pub fn can_attach(ctx: &Ctx<'_>) -> bool {
    let kept = ctx
        .session
        .account
        .as_deref()
        .is_some_and(|account| always_on::kept(ctx.shared, account).is_some());
    (ctx.shared.config.accounts.multiclient || kept)
        && ctx
            .session
            .account
            .as_deref()
            .is_some_and(|account| ctx.shared.world.lock().present_user_of(account).is_some())
}

/// A JOIN, topic and NAMES for each of the user's channels, as its own JOIN would have
/// brought them, so a client that knows nothing of sessions shows them.
fn burst(ctx: &mut Ctx<'_>) {
    let id = ctx.session.id;
    let mut world = ctx.shared.world.lock();
    let Some(user) = world.users.get(&id) else {
        return;
    };
    let (source, account, realname, bot) = (
        user.source(),
        user.account.clone(),
        user.realname.clone(),
        user.bot,
    );
    let mut keys: Vec<String> = user.channels.iter().cloned().collect();
    keys.sort();
    for key in keys {
        let Some(shown) = world.channels.get(&key).map(|c| c.name.clone()) else {
            continue;
        };
        let relay = Relay::new(&source, account.as_deref(), "JOIN", &[&shown], None)
            .with_extended_join(account.as_deref().unwrap_or("*"), &realname)
            .with_bot(bot);
        ctx.send(relay.bytes_for(ctx.outbound.wire_caps()));
        channel::send_topic(ctx, &world, &key, false);
        if markread::names_wait(ctx, &shown) {
            // The marker comes from the store, then the names: both after this burst.
            markread::then_names(ctx, key, shown);
        } else {
            channel::send_names(ctx, &mut world, &key);
        }
    }
}

/// When a connection ends: if it is one of several sessions of its user, take only it away
/// (nobody sees it go) and return true; false when the user leaves with it, as usual.
pub fn leave(shared: &Shared, session: &crate::context::Session, outbound: &Arc<Outbound>) -> bool {
    let mut world = shared.world.lock();
    let Some(user) = world.users.get(&session.id) else {
        return false;
    };
    let others = user.sessions.iter().any(|s| !Arc::ptr_eq(s, outbound));
    let mine = user.sessions.iter().any(|s| Arc::ptr_eq(s, outbound));
    if !(user.registered && user.remote.is_none() && mine && others) {
        return false;
    }
    let remaining = world.detach_session(session.id, outbound);
    tracing::debug!(
        user = session.id.0,
        remaining,
        "one session of several left"
    );
    true
}

/// Another session changed the user under this one: take the nick again, so this
/// connection's numerics name the user as it is now.
pub fn refresh(ctx: &mut Ctx<'_>) {
    let nick = ctx
        .shared
        .world
        .lock()
        .users
        .get(&ctx.session.id)
        .map(|u| u.nick.clone());
    if let Some(nick) = nick {
        ctx.session.nick = nick;
    }
}

/// `recipients` of a change to user `id` made on session `actor`, with the user's other
/// sessions added: they see its NICK, AWAY, SETNAME as a member would. The list is returned
/// as it was when the user has one session (the usual case, no copy).
pub fn with_siblings(
    world: &World,
    id: ClientId,
    actor: &Arc<Outbound>,
    recipients: MemberList,
) -> MemberList {
    let siblings = world.siblings(id, actor);
    if siblings.is_empty() {
        return recipients;
    }
    let mut list = Vec::with_capacity(recipients.len() + siblings.len());
    list.extend(recipients.iter().cloned());
    for sibling in siblings {
        if !list.iter().any(|o| Arc::ptr_eq(o, &sibling)) {
            list.push(sibling);
        }
    }
    Arc::new(list)
}

/// The user's other sessions learn of a change to what they keep a copy of (the nick).
pub fn mark_changed(world: &World, id: ClientId, actor: &Arc<Outbound>) {
    for sibling in world.siblings(id, actor) {
        sibling.mark_user_changed();
    }
}

/// The JOIN the other sessions of user `id` get when one of its sessions joins `key`, with
/// the topic and NAMES their own JOIN would have brought: built for each from what its buffer
/// knows of its capabilities (`extended-join`, `multi-prefix`, `userhost-in-names` ...).
pub fn tell_siblings_joined(
    world: &mut World,
    server: &str,
    id: ClientId,
    join: &Relay,
    siblings: &[Arc<Outbound>],
    key: &str,
) {
    let Some(nick) = world.users.get(&id).map(|u| u.nick.clone()) else {
        return;
    };
    for sibling in siblings {
        let caps = sibling.wire_caps();
        let mut bytes = join.bytes_for(caps).to_vec();
        bytes.extend(join_burst(world, server, &nick, key, caps));
        let _ = sibling.push(&bytes);
    }
}

/// `members` without `left_out` (a user's other sessions, told apart).
pub fn without(members: &[Arc<Outbound>], left_out: &[Arc<Outbound>]) -> MemberList {
    Arc::new(
        members
            .iter()
            .filter(|m| !left_out.iter().any(|o| Arc::ptr_eq(o, m)))
            .cloned()
            .collect(),
    )
}

/// RPL_WHOISSPECIAL (320) with the session count of a user with several, for the user itself
/// and operators: how many devices are logged in is nobody else's business.
pub fn whois_sessions(ctx: &Ctx<'_>, world: &World, user: ClientId, nick: &str) {
    let count = world.session_count(user);
    let asker_is_user = user == ctx.session.id;
    // One session is every user's lot and says nothing.
    if count < 2 || !(asker_is_user || ctx.oper_class_in(world).is_some()) {
        return;
    }
    let text = format!("is connected from {count} sessions");
    ctx.numeric(numeric::RPL_WHOISSPECIAL, &[nick], Some(&text));
}

/// RPL_TOPIC, RPL_TOPICWHOTIME (if there is a topic), RPL_NAMREPLY lines and RPL_ENDOFNAMES
/// for member `nick` of channel `key`, for a session with wire capabilities `caps`: the same
/// lines `channel::send_topic` and `channel::send_names` give the joiner itself.
fn join_burst(world: &mut World, server: &str, nick: &str, key: &str, caps: u16) -> Vec<u8> {
    let multi_prefix = caps & wire::MULTI_PREFIX != 0;
    let userhost = caps & wire::USERHOST_IN_NAMES != 0;
    let World {
        users, channels, ..
    } = world;
    let Some(channel) = channels.get_mut(key) else {
        return Vec::new();
    };
    let shown = channel.name.clone();
    let mut out = Vec::new();
    if let Some(topic) = &channel.topic {
        let set_at = channel::unix_time(topic.set_at);
        write_line(
            &mut out,
            &[],
            Some(server),
            numeric::RPL_TOPIC,
            &[nick, &shown],
            Some(&topic.text),
        );
        write_line(
            &mut out,
            &[],
            Some(server),
            numeric::RPL_TOPICWHOTIME,
            &[nick, &shown, &topic.set_by, &set_at],
            None,
        );
    }
    let symbol = channel.names_symbol();
    let built;
    let names = if userhost {
        let mut list = String::new();
        for id in &channel.order {
            let (Some(user), Some(status)) = (users.get(id), channel.status(*id)) else {
                continue;
            };
            if !list.is_empty() {
                list.push(' ');
            }
            list.push_str(status.prefixes(multi_prefix));
            list.push_str(&user.source());
        }
        built = list;
        &built
    } else {
        channel.member_names(users, multi_prefix)
    };
    for chunk in names_chunks(names) {
        write_line(
            &mut out,
            &[],
            Some(server),
            numeric::RPL_NAMREPLY,
            &[nick, symbol, &shown],
            Some(chunk),
        );
    }
    write_line(
        &mut out,
        &[],
        Some(server),
        numeric::RPL_ENDOFNAMES,
        &[nick, &shown],
        Some("End of /NAMES list"),
    );
    out
}
