//! NICK: claim a nick before registration, or change it after (seen by everyone who shares a
//! channel). Nicks are unique under ASCII casemapping; a client may change its own nick's case.

use parley_proto::{casefold, numeric, validate, Message};

use crate::context::{line, Ctx};
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
    let mut world = ctx.shared.world.lock();
    if world.nicks.get(&folded).is_some_and(|owner| *owner != id) {
        drop(world);
        ctx.numeric(
            numeric::ERR_NICKNAMEINUSE,
            &[wanted],
            Some("Nickname is already in use"),
        );
        return;
    }
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
        for other in world.neighbours(id) {
            let _ = other.push(bytes);
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
