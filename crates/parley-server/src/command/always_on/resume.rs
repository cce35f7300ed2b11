//! A login taking over its account's kept presence: the connection gets the presence's nick
//! before its welcome ([`adopt_nick`]), then its place in the world ([`resume`]): the same
//! channels with the same status, away cleared, a JOIN, topic and NAMES for each, and the
//! catch-up of what was said meanwhile. Others see no QUIT and no JOIN: to them the user never
//! left, it only came back from away. [`resume`] is the one step the multiclient work points its
//! "attach a session to the account's presence" at.

use std::sync::Arc;

use parley_proto::casefold;

use crate::command::channel::{send_names, send_topic};
use crate::command::markread;
use crate::command::presence::away_line;
use crate::context::Ctx;
use crate::fanout;
use crate::relay::{notify, Relay};

/// Logged in and not yet registered, to an account with a kept presence: take the presence's
/// nick (the one the client asked for is let go), so the welcome already greets it by it. The
/// presence's entry in the nick index points at this connection until [`resume`] takes the rest,
/// and goes back if the connection ends first (`presence::give_back_nick`).
pub fn adopt_nick(ctx: &mut Ctx<'_>) {
    if ctx.session.registered {
        return;
    }
    let Some(account) = ctx.session.account.as_deref().map(casefold) else {
        return;
    };
    let Some(detached) = ctx.shared.always_on.detached(&account) else {
        return;
    };
    let id = ctx.session.id;
    let nick = {
        let mut world = ctx.shared.world.lock();
        let Some(nick) = world.users.get(&detached.id).map(|u| u.nick.clone()) else {
            return;
        };
        let folded = casefold(&nick);
        let holder = world.nicks.get(&folded).copied();
        if holder != Some(detached.id) && holder != Some(id) {
            return;
        }
        let asked = casefold(&ctx.session.nick);
        if asked != folded && world.nicks.get(&asked) == Some(&id) {
            world.nicks.remove(&asked);
        }
        world.nicks.insert(folded, id);
        if let Some(user) = world.users.get_mut(&id) {
            user.nick = nick.clone();
        }
        nick
    };
    ctx.session.nick = nick;
}

/// Just registered: take over this account's kept presence, if it has one. The kept user's
/// channel places become this connection's (same status, same join order), the kept user goes,
/// and the others see only its away end.
pub fn resume(ctx: &mut Ctx<'_>) {
    let Some(account) = ctx.session.account.as_deref().map(casefold) else {
        return;
    };
    let Some(detached) = ctx.shared.always_on.detached(&account) else {
        return;
    };
    if !ctx.shared.always_on.take_detached(&account, detached.id) {
        return;
    }
    let (id, old) = (ctx.session.id, detached.id);
    let resumed_at = crate::clock::now_ms();
    let outbound = ctx.outbound.clone();
    let (channels, source, away_recipients) = {
        let mut world = ctx.shared.world.lock();
        let Some(kept) = world.remove_user(old) else {
            return;
        };
        world.monitors.clear(old);
        let folded = casefold(&kept.nick);
        if world.nicks.get(&folded) == Some(&old) {
            world.nicks.remove(&folded);
        }
        let nick = world
            .users
            .get(&id)
            .map(|u| u.nick.clone())
            .unwrap_or_default();
        let mut channels = Vec::new();
        for key in &kept.channels {
            let Some(channel) = world.channels.get_mut(key) else {
                continue;
            };
            let Some(status) = channel.members.remove(&old) else {
                continue;
            };
            channel.members.insert(id, status);
            if let Some(pos) = channel.order.iter().position(|m| *m == old) {
                channel.order[pos] = id;
                if let Some(slot) = Arc::make_mut(&mut channel.snapshot).get_mut(pos) {
                    *slot = outbound.clone();
                }
            }
            channel.invited.remove(&old);
            if kept.nick != nick {
                channel.names_changed();
            }
            channels.push((key.clone(), channel.name.clone()));
        }
        let Some(user) = world.users.get_mut(&id) else {
            return;
        };
        user.channels
            .extend(channels.iter().map(|(key, _)| key.clone()));
        user.away = None;
        let source = user.source();
        let recipients = world.notify_recipients(id, notify::AWAY_NOTIFY);
        (channels, source, recipients)
    };
    fanout::send_now_to_notify(
        &away_line(&source, None),
        &away_recipients,
        notify::AWAY_NOTIFY,
        Some(&outbound),
    );
    tracing::info!(%account, client = id.0, channels = channels.len(), "always-on: a login took over its presence");
    for (key, shown) in &channels {
        burst(ctx, &source, key, shown);
    }
    let nick = ctx.session.nick.clone();
    ctx.server_line(
        "NOTICE",
        &[&nick],
        Some("Welcome back: you stayed in your channels while you were away (always-on)"),
    );
    super::catch_up::start(ctx, account, channels, detached.since_ms, resumed_at);
}

/// What a JOIN would have shown this client: its own JOIN, the topic and the names.
fn burst(ctx: &mut Ctx<'_>, source: &str, key: &str, shown: &str) {
    let account = ctx.session.account.clone().unwrap_or_default();
    let realname = {
        let world = ctx.shared.world.lock();
        world
            .users
            .get(&ctx.session.id)
            .map(|u| u.realname.clone())
            .unwrap_or_default()
    };
    let names = [shown];
    let relay = Relay::new(source, Some(&account), "JOIN", &names, None)
        .with_extended_join(&account, &realname);
    ctx.send(relay.bytes_for(ctx.outbound.wire_caps()));
    let names_wait = {
        let mut world = ctx.shared.world.lock();
        send_topic(ctx, &world, key, false);
        let wait = markread::names_wait(ctx, shown);
        if !wait {
            send_names(ctx, &mut world, key);
        }
        wait
    };
    if names_wait {
        markread::then_names(ctx, key.to_owned(), shown.to_owned());
    }
}
