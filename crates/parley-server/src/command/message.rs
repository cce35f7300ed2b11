//! PRIVMSG and NOTICE, to channels and to nicks (private messages). The hot path: the handler
//! checks permissions, takes the channel's member snapshot and leaves a [`Delivery`] for the
//! connection task, which hands it to the history writer: stored first, then serialized once per
//! wire variant and appended to every recipient's outbound buffer. A private message to an
//! account that is offline is kept for its next login. NOTICE never draws an error reply, as the
//! protocol requires, so bots cannot loop on each other.

use std::sync::Arc;

use parley_proto::{casefold, numeric, Message};
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::cluster::event::{Event, Target};
use crate::config::BroadcastPolicy;
use crate::context::{Ctx, FollowUp, LabeledLine, Lookup, Reply};
use crate::fanout::{Delivery, EchoSlot};
use crate::history::{dm_key, party};
use crate::outbound::Outbound;
use crate::relay::Relay;
use crate::state::MemberList;
use crate::store::StoredMessage;

/// `PRIVMSG`/`NOTICE <target>[,<target>...] <text>` to channels, nicks or `$*`. A NOTICE is
/// never answered with an error (RFC 2812 3.3.2): its refusals are dropped by the dispatcher
/// and by each target below.
pub fn privmsg(ctx: &mut Ctx<'_>, msg: &Message<'_>, notice: bool) -> Result<(), Reply> {
    let verb = if notice { "NOTICE" } else { "PRIVMSG" };
    let Some(targets) = msg.param(0).filter(|t| !t.is_empty()) else {
        return Err(Reply::new(
            numeric::ERR_NORECIPIENT,
            &[],
            if notice {
                "No recipient given (NOTICE)"
            } else {
                "No recipient given (PRIVMSG)"
            },
        ));
    };
    let Some(text) = msg.param(1).filter(|t| !t.is_empty()) else {
        return Err(Reply::new(
            numeric::ERR_NOTEXTTOSEND,
            &[],
            "No text to send",
        ));
    };
    let targets: Vec<&str> = targets.split(',').filter(|t| !t.is_empty()).collect();
    if targets.len() > ctx.shared.config.limits.targets_per_message {
        return Err(Reply::new(
            numeric::ERR_TOOMANYTARGETS,
            &[targets[0]],
            "Too many targets",
        ));
    }
    for target in targets {
        if target.starts_with('$') {
            broadcast(ctx, verb, target, text, notice);
        } else if target.starts_with(['#', '&']) {
            // A NOTICE is never answered with an error (RFC 2812 3.3.2).
            if let (Err(reply), false) = (to_channel(ctx, verb, target, text), notice) {
                ctx.reply(&reply);
            }
        } else {
            to_nick(ctx, verb, target, text, notice);
        }
    }
    Ok(())
}

/// `PRIVMSG $*` (the `/broadcast` of the clients) and `NOTICE $*` (an operator's global notice):
/// to every connected user. Who may broadcast is `operators.broadcast`; with "everyone",
/// non-operators are limited to one broadcast per `broadcast_interval_secs`.
fn broadcast(ctx: &mut Ctx<'_>, verb: &'static str, target: &str, text: &str, notice: bool) {
    let server = ctx.shared.server_name();
    if target != "$*" && !parley_proto::wildcard_match(&target[1..], server) {
        ctx.numeric(numeric::ERR_NOSUCHNICK, &[target], Some("No such server"));
        return;
    }
    let (oper, source, account) = {
        let world = ctx.shared.world.lock();
        let Some(me) = world.users.get(&ctx.session.id) else {
            return;
        };
        (me.oper, me.source(), me.account.clone())
    };
    let permission = if notice { "notice" } else { "broadcast" };
    let is_privileged = ctx.shared.oper_can(oper, permission);
    let everyone = ctx.shared.live().operators.broadcast == BroadcastPolicy::Everyone;
    if !is_privileged && (notice || !everyone) {
        ctx.numeric(
            numeric::ERR_NOPRIVILEGES,
            &[],
            Some("Permission Denied - only server operators may message everyone"),
        );
        return;
    }
    if !is_privileged {
        let interval =
            std::time::Duration::from_secs(ctx.shared.live().operators.broadcast_interval_secs);
        if let Some(last) = ctx.session.last_broadcast {
            if last.elapsed() < interval {
                ctx.numeric(
                    numeric::RPL_TRYAGAIN,
                    &[verb],
                    Some("Please wait a while before broadcasting again"),
                );
                return;
            }
        }
        ctx.session.last_broadcast = Some(Instant::now());
    }
    let recipients: Vec<Arc<Outbound>> = ctx
        .shared
        .world
        .lock()
        .users
        .values()
        .filter(|u| u.registered && u.id != ctx.session.id)
        .map(|u| u.outbound.clone())
        .collect();
    let relay = Relay::new(&source, account.as_deref(), verb, &[target], Some(text));
    ctx.announce_message(&relay, &recipients, |cluster| Event::Message {
        uid: cluster.uid_of(ctx.session.id),
        msgid: ctx.shared.history.next_msgid(),
        time_ms: now_ms(),
        verb: verb.to_string(),
        source: source.clone(),
        account: account.clone(),
        to: target.to_string(),
        target: Target::Everyone,
        text: text.to_string(),
    });
    ctx.shared.history.audit(
        if notice { "global_notice" } else { "broadcast" },
        Some(&ctx.session.nick),
        account.as_deref(),
        Some(target),
        Some(&ctx.session.ip.to_string()),
        Some(text),
    );
}

/// The stored form of a message, with a fresh msgid and the time it is accepted.
fn stored(
    ctx: &Ctx<'_>,
    kind: &'static str,
    key: String,
    source: &str,
    account: Option<&str>,
    to: &str,
    text: &str,
) -> StoredMessage {
    StoredMessage {
        msgid: ctx.shared.history.next_msgid(),
        time_ms: now_ms(),
        target: key,
        kind: kind.to_string(),
        source: source.to_string(),
        account: account.map(str::to_string),
        to: to.to_string(),
        text: text.to_string(),
    }
}

/// Leave the message to the connection task: stored first, then delivered.
fn deliver(
    ctx: &mut Ctx<'_>,
    message: StoredMessage,
    recipients: MemberList,
    offline_for: Option<String>,
    target: Option<Target>,
) {
    let is_channel = matches!(target, Some(Target::Channel(_)));
    let publish = target.and_then(|target| {
        ctx.publisher(|cluster| Event::Message {
            uid: cluster.uid_of(ctx.session.id),
            msgid: message.msgid.clone(),
            time_ms: message.time_ms,
            verb: message.kind.clone(),
            source: message.source.clone(),
            account: message.account.clone(),
            to: message.to.clone(),
            target,
            text: message.text.clone(),
        })
    });
    let relay = Relay::new(
        &message.source,
        message.account.as_deref(),
        if message.kind == "NOTICE" {
            "NOTICE"
        } else {
            "PRIVMSG"
        },
        &[&message.to],
        Some(&message.text),
    )
    .with_identity(&message.msgid, message.time_ms);
    let echo = ctx.session.caps.echo_message;
    // A labeled command's echo is (part of) its response. Delivered here, it is collected in
    // order with the other replies; from a cluster's stream it comes back later on its own,
    // carrying the label itself.
    let (label, echo_into) = match ctx.session.labeled.get_mut() {
        Some(labeled) if echo && publish.is_some() => {
            labeled.answered = true;
            (Some(labeled.label.clone()), None)
        }
        Some(labeled) if echo => {
            let slot = EchoSlot::default();
            labeled.lines.push(LabeledLine::Echo(slot.clone()));
            (None, Some(slot))
        }
        _ => (None, None),
    };
    let to_self = recipients.iter().any(|r| Arc::ptr_eq(r, ctx.outbound)) && !is_channel;
    ctx.session
        .followups
        .push_back(FollowUp::Deliver(Box::new(Delivery {
            stored: Some(message),
            offline_for,
            relay,
            recipients,
            sender: ctx.outbound.clone(),
            echo,
            label,
            echo_into,
            to_self,
            publish,
        })));
}

/// A message to a channel: its members may speak (outsiders too without `+n`) unless `+m`, a ban
/// or a quiet stops them; voice and operator status lift the last three.
fn to_channel(
    ctx: &mut Ctx<'_>,
    verb: &'static str,
    target: &str,
    text: &str,
) -> Result<(), Reply> {
    let id = ctx.session.id;
    let (key, source, account, shown, members) = {
        let mut world = ctx.shared.world.lock();
        let Some((source, account)) = world
            .users
            .get(&id)
            .map(|u| (u.source(), u.account.clone()))
        else {
            return Ok(());
        };
        let (key, channel) = world.channel_named(target)?;
        let status = channel.status(id);
        let privileged = status.is_some_and(|s| s.op || s.voice);
        let refusal = if status.is_none() && channel.modes.no_external {
            Some("Cannot send to channel (+n)")
        } else if channel.modes.moderated && !privileged {
            Some("Cannot send to channel (+m)")
        } else if !privileged && channel.is_banned(&source, account.as_deref()) {
            Some("Cannot send to channel (+b)")
        } else if !privileged && channel.is_quieted(&source, account.as_deref()) {
            Some("Cannot send to channel (+q)")
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Err(Reply::new(
                numeric::ERR_CANNOTSENDTOCHAN,
                &[&channel.name],
                reason,
            ));
        }
        let shown = channel.name.clone();
        let members = channel.snapshot.clone();
        if let Some(user) = world.users.get_mut(&id) {
            user.last_spoke = Instant::now();
        }
        (key, source, account, shown, members)
    };
    let target = Target::Channel(key.clone());
    let message = stored(ctx, verb, key, &source, account.as_deref(), &shown, text);
    deliver(ctx, message, members, None, Some(target));
    Ok(())
}

fn to_nick(ctx: &mut Ctx<'_>, verb: &'static str, target: &str, text: &str, notice: bool) {
    let id = ctx.session.id;
    let (recipient, source, account, me) = {
        let mut world = ctx.shared.world.lock();
        let recipient = world.user_by_nick(target).map(|r| {
            (
                r.outbound.clone(),
                r.nick.clone(),
                r.away.clone(),
                party(r.account.as_deref(), &r.nick),
                r.remote.clone().or_else(|| ctx.cluster_uid(r.id)),
            )
        });
        let Some(user) = world.users.get_mut(&id) else {
            return;
        };
        user.last_spoke = Instant::now();
        let me = party(user.account.as_deref(), &user.nick);
        (recipient, user.source(), user.account.clone(), me)
    };
    let Some((outbound, nick, away, them, uid)) = recipient else {
        offline(
            ctx,
            verb,
            target,
            text,
            notice,
            &source,
            account.as_deref(),
            &me,
        );
        return;
    };
    let message = stored(
        ctx,
        verb,
        dm_key(&me, &them),
        &source,
        account.as_deref(),
        &nick,
        text,
    );
    deliver(
        ctx,
        message,
        Arc::new(vec![outbound]),
        None,
        uid.map(Target::User),
    );
    if let (Some(away), false) = (away, notice) {
        ctx.numeric(numeric::RPL_AWAY, &[&nick], Some(&away));
    }
}

/// A private message to someone not connected: kept for them if they have an account.
#[allow(clippy::too_many_arguments)]
fn offline(
    ctx: &mut Ctx<'_>,
    verb: &'static str,
    target: &str,
    text: &str,
    notice: bool,
    source: &str,
    account: Option<&str>,
    me: &str,
) {
    let registered = ctx.shared.history.enabled()
        && parley_proto::validate::nick(target, ctx.shared.config.limits.nick_len)
        && matches!(ctx.shared.accounts.is_account_name(target), Ok(true));
    if !registered {
        if !notice {
            ctx.numeric(
                numeric::ERR_NOSUCHNICK,
                &[target],
                Some("No such nick/channel"),
            );
        }
        return;
    }
    let them = casefold(target);
    let message = stored(ctx, verb, dm_key(me, &them), source, account, target, text);
    deliver(ctx, message, MemberList::default(), Some(them), None);
    if !notice {
        let nick = ctx.session.nick.clone();
        ctx.server_line(
            "NOTICE",
            &[&nick],
            Some(&format!(
                "{target} is not online; they will get your message when they next log in"
            )),
        );
    }
}
