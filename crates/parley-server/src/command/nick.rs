//! NICK: claim a nick before registration, or change it after (seen by everyone who shares a
//! channel). Nicks are unique under ASCII casemapping; a client may change its own nick's case.

use parley_proto::{casefold, numeric, validate, Message};

use crate::cluster::event::Event;
use crate::cluster::ClaimError;
use crate::context::{line, Ctx, FollowUp};
use crate::registration;
use crate::state::{WhowasEntry, World};

pub fn nick(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(wanted) = msg.param(0).filter(|n| !n.is_empty()) else {
        ctx.numeric(numeric::ERR_NONICKNAMEGIVEN, &[], Some("No nickname given"));
        return;
    };
    if !validate::nick(wanted, ctx.shared.config.limits.nick_len) {
        ctx.numeric(
            numeric::ERR_ERRONEUSNICKNAME,
            &[wanted],
            Some("Erroneous nickname"),
        );
        return;
    }
    if wanted == ctx.session.nick {
        return;
    }
    // Before registration the owner may still log in, so the check waits for try_complete.
    if ctx.session.registered && !registration::nick_allowed(ctx, wanted) {
        return;
    }
    let id = ctx.session.id;
    let folded = casefold(wanted);
    if ctx
        .shared
        .world
        .lock()
        .nicks
        .get(&folded)
        .is_some_and(|owner| *owner != id)
    {
        in_use(ctx, wanted);
        return;
    }
    if ctx.shared.cluster.is_some() {
        // Held once in the whole cluster: the connection task claims it, then calls `claimed`.
        ctx.session
            .followups
            .push_back(FollowUp::ClaimNick(wanted.to_string()));
        return;
    }
    take(ctx, wanted);
}

fn in_use(ctx: &Ctx<'_>, wanted: &str) {
    ctx.numeric(
        numeric::ERR_NICKNAMEINUSE,
        &[wanted],
        Some("Nickname is already in use"),
    );
}

/// The cluster's answer to a nick claim.
pub fn claimed(ctx: &mut Ctx<'_>, wanted: &str, result: Result<(), ClaimError>) {
    match result {
        Ok(()) => {
            let id = ctx.session.id;
            let taken_here = ctx
                .shared
                .world
                .lock()
                .nicks
                .get(&casefold(wanted))
                .is_some_and(|owner| *owner != id);
            let Some(cluster) = ctx.shared.cluster.clone() else {
                return;
            };
            let uid = cluster.uid_of(id);
            if taken_here {
                // Someone here still shows it (their QUIT is on its way): not ours after all.
                cluster.release(&casefold(wanted), &uid);
                in_use(ctx, wanted);
                return;
            }
            let old = casefold(&ctx.session.nick);
            let (source, neighbours) = {
                let world = ctx.shared.world.lock();
                let source = world
                    .users
                    .get(&id)
                    .filter(|u| u.registered)
                    .map(|u| u.source());
                (source, world.neighbours(id))
            };
            take(ctx, wanted);
            if old != casefold(wanted) {
                cluster.release(&old, &uid);
            }
            if let Some(source) = source {
                let event = Event::Nick {
                    uid,
                    source,
                    nick: wanted.to_string(),
                };
                cluster.announce(ctx.shared, event, std::sync::Arc::new(neighbours));
            }
        }
        Err(ClaimError::Taken) => in_use(ctx, wanted),
        Err(ClaimError::Unavailable) => ctx.numeric(
            numeric::ERR_UNAVAILRESOURCE,
            &[wanted],
            Some("Nick is temporarily unavailable (the network cannot confirm it is free); try again"),
        ),
    }
}

/// Make `wanted` this connection's nick, telling everyone who shares a channel.
fn take(ctx: &mut Ctx<'_>, wanted: &str) {
    let id = ctx.session.id;
    let folded = casefold(wanted);
    let mut world = ctx.shared.world.lock();
    let old_folded = casefold(&ctx.session.nick);
    if world.nicks.get(&old_folded) == Some(&id) {
        world.nicks.remove(&old_folded);
    }
    world.nicks.insert(folded, id);
    let whowas_limit = ctx.shared.config.limits.whowas_entries;
    let mut announce = None;
    if let Some(user) = world.users.get(&id) {
        if user.registered {
            announce = Some(line(Some(&user.source()), "NICK", &[], Some(wanted)));
        }
    }
    if let Some(bytes) = &announce {
        if let Some(entry) = world.users.get(&id).map(WhowasEntry::of) {
            // Keep the old nick findable by WHOWAS, as other servers do.
            world.push_whowas(entry, whowas_limit);
        }
        // In a cluster the others hear it from the stream (see `claimed`).
        if ctx.shared.cluster.is_none() {
            for other in world.neighbours(id) {
                let _ = other.push(bytes);
            }
        }
    }
    let World {
        users, channels, ..
    } = &mut *world;
    if let Some(user) = users.get_mut(&id) {
        user.nick = wanted.to_string();
        for key in &user.channels {
            if let Some(channel) = channels.get_mut(key) {
                channel.names_changed();
            }
        }
    }
    drop(world);
    if let Some(bytes) = &announce {
        ctx.send(bytes);
    }
    ctx.session.nick = wanted.to_string();
    registration::try_complete(ctx);
}
