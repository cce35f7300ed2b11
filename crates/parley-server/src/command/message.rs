//! PRIVMSG and NOTICE, to channels and to nicks (private messages). The hot path: the line is
//! serialized once and the same bytes are appended to every recipient's outbound buffer, walking
//! the channel's member snapshot after the world lock is released. NOTICE never draws an error
//! reply, as the protocol requires, so bots cannot loop on each other.

use std::sync::Arc;

use parley_proto::{casefold, numeric, Message};
use tokio::time::Instant;

use crate::context::Ctx;
use crate::relay::Relay;

pub fn privmsg(ctx: &mut Ctx<'_>, msg: &Message<'_>, notice: bool) {
    let verb = if notice { "NOTICE" } else { "PRIVMSG" };
    let Some(targets) = msg.param(0).filter(|t| !t.is_empty()) else {
        if !notice {
            ctx.numeric(
                numeric::ERR_NORECIPIENT,
                &[],
                Some(&format!("No recipient given ({verb})")),
            );
        }
        return;
    };
    let Some(text) = msg.param(1).filter(|t| !t.is_empty()) else {
        if !notice {
            ctx.numeric(numeric::ERR_NOTEXTTOSEND, &[], Some("No text to send"));
        }
        return;
    };
    let targets: Vec<&str> = targets.split(',').filter(|t| !t.is_empty()).collect();
    if targets.len() > ctx.shared.config.limits.targets_per_message {
        if !notice {
            ctx.numeric(
                numeric::ERR_TOOMANYTARGETS,
                &[targets[0]],
                Some("Too many targets"),
            );
        }
        return;
    }
    for target in targets {
        if target.starts_with(['#', '&']) {
            to_channel(ctx, verb, target, text, notice);
        } else {
            to_nick(ctx, verb, target, text, notice);
        }
    }
}

fn to_channel(ctx: &Ctx<'_>, verb: &str, target: &str, text: &str, notice: bool) {
    let id = ctx.session.id;
    let key = casefold(target);
    let mut world = ctx.shared.world.lock();
    let Some((source, account)) = world
        .users
        .get(&id)
        .map(|u| (u.source(), u.account.clone()))
    else {
        return;
    };
    let Some(channel) = world.channels.get(&key) else {
        drop(world);
        if !notice {
            ctx.numeric(
                numeric::ERR_NOSUCHCHANNEL,
                &[target],
                Some("No such channel"),
            );
        }
        return;
    };
    let status = channel.status(id);
    let privileged = status.is_some_and(|s| s.op || s.voice);
    let refusal = if status.is_none() && channel.modes.no_external {
        Some("Cannot send to channel (+n)")
    } else if channel.modes.moderated && !privileged {
        Some("Cannot send to channel (+m)")
    } else if !privileged && channel.is_banned(&source) {
        Some("Cannot send to channel (+b)")
    } else {
        None
    };
    if let Some(reason) = refusal {
        let shown = channel.name.clone();
        drop(world);
        if !notice {
            ctx.numeric(numeric::ERR_CANNOTSENDTOCHAN, &[&shown], Some(reason));
        }
        return;
    }
    let shown = [channel.name.clone()];
    let members = channel.snapshot.clone();
    if let Some(user) = world.users.get_mut(&id) {
        user.last_spoke = Instant::now();
    }
    drop(world);
    let shown = [shown[0].as_str()];
    let relay = Relay::new(&source, account.as_deref(), verb, &shown, Some(text));
    for member in members.iter() {
        if !Arc::ptr_eq(member, ctx.outbound) {
            relay.send_to(member);
        }
    }
}

fn to_nick(ctx: &Ctx<'_>, verb: &str, target: &str, text: &str, notice: bool) {
    let id = ctx.session.id;
    let mut world = ctx.shared.world.lock();
    let Some(recipient) = world.user_by_nick(target) else {
        drop(world);
        if !notice {
            ctx.numeric(
                numeric::ERR_NOSUCHNICK,
                &[target],
                Some("No such nick/channel"),
            );
        }
        return;
    };
    let (outbound, nick, away) = (
        recipient.outbound.clone(),
        recipient.nick.clone(),
        recipient.away.clone(),
    );
    let Some(user) = world.users.get_mut(&id) else {
        return;
    };
    user.last_spoke = Instant::now();
    let source = user.source();
    let account = user.account.clone();
    drop(world);
    let target = [nick.as_str()];
    Relay::new(&source, account.as_deref(), verb, &target, Some(text)).send_to(&outbound);
    if let (Some(away), false) = (away, notice) {
        ctx.numeric(numeric::RPL_AWAY, &[&nick], Some(&away));
    }
}
