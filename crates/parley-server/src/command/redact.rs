//! `REDACT <target> <msgid> [:reason]` (IRCv3 `draft/message-redaction`): a message removed
//! from history and its removal told to the conversation's members that have the capability
//! (the others get no fallback; the spec leaves that to the server, and a NOTICE per redaction
//! is noise).
//!
//! Who may: the author (the same account; a guest only while it is the very same
//! `nick!user@host` in the same connection, since anyone may take a departed guest's nick and
//! user name from the same address, and the message had no account), and in a channel its operators (and
//! server operators who may moderate it, as for KICK). In a private conversation only the
//! author. A msgid outside the conversation named, or one this user may not know, is
//! `UNKNOWN_MSGID` alike, so REDACT cannot probe which ids exist elsewhere.

use std::sync::Arc;

use parley_proto::{casefold, Message};

use crate::clock::{millis, now_ms};
use crate::cluster::event::{Event, Target};
use crate::context::{Ctx, Line, Lookup, Reply};
use crate::history::{dm_key, party, Redaction};
use crate::outbound::Outbound;
use crate::relay::{wire, Relay};
use crate::store::StoredMessage;

const COMMAND: &str = "REDACT";

/// The conversation a REDACT names, as this user sees it.
struct Conversation {
    key: String,
    shown: String,
    /// May remove anyone's message here (a channel operator).
    moderator: bool,
    /// Where the REDACT goes on this node: the members, or the other party.
    recipients: Vec<Arc<Outbound>>,
    target: Option<Target>,
}

pub fn redact(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let (Some(target), Some(msgid)) = (
        msg.param(0).filter(|t| !t.is_empty()),
        msg.param(1).filter(|m| !m.is_empty()),
    ) else {
        return Err(Reply::need_more_params(COMMAND));
    };
    let reason = msg.param(2).filter(|r| !r.is_empty()).map(str::to_string);
    let (me, source, account, signon_ms) = {
        let world = ctx.shared.world.lock();
        let Some(me) = world.users.get(&ctx.session.id) else {
            return Ok(());
        };
        (
            party(me.account.as_deref(), &me.nick),
            me.source(),
            me.account.clone(),
            millis(me.signon),
        )
    };
    let conversation = conversation(ctx, target, &me)?;
    let author = Author {
        source: source.clone(),
        account: account.as_deref().map(casefold),
        signon_ms,
    };
    let moderator = conversation.moderator;
    let (key, id) = (conversation.key.clone(), msgid.to_string());
    let (target, msgid) = (target.to_string(), msgid.to_string());
    ctx.then_async(
        move |on| {
            Box::pin(async move {
                on.shared
                    .history
                    .redact(key, id, move |m| moderator || author.wrote(m))
                    .await
            })
        },
        move |ctx, outcome| match outcome {
            Ok(Redaction::Removed(message)) => {
                // Who said what is the accountability the spec asks for; the text is not kept.
                let detail = format!("{msgid} sent by {}", message.source);
                ctx.audit("redact", &conversation.shown, Some(&detail));
                announce(ctx, conversation, &source, account, &msgid, reason);
            }
            Ok(Redaction::Unknown) => ctx.reply(&Reply::fail(
                COMMAND,
                "UNKNOWN_MSGID",
                &[&target, &msgid],
                "This message does not exist or is too old",
            )),
            Ok(Redaction::Forbidden) => ctx.reply(&Reply::fail(
                COMMAND,
                "REDACT_FORBIDDEN",
                &[&target, &msgid],
                "You are not authorised to delete this message",
            )),
            Err(error) => {
                tracing::warn!(%error, "cannot redact a message");
                ctx.reply(&Reply::fail(
                    COMMAND,
                    "UNKNOWN_MSGID",
                    &[&target, &msgid],
                    "The message could not be deleted; try again later",
                ));
            }
        },
    );
    Ok(())
}

/// Who is redacting, to compare with a stored message's sender.
struct Author {
    source: String,
    /// Casefolded.
    account: Option<String>,
    /// When this connection signed on: a guest wrote only what was said since.
    signon_ms: i64,
}

impl Author {
    fn wrote(&self, message: &StoredMessage) -> bool {
        match (&self.account, &message.account) {
            (Some(mine), Some(theirs)) => *mine == casefold(theirs),
            (None, None) => message.source == self.source && message.time_ms >= self.signon_ms,
            _ => false,
        }
    }
}

/// The channel (this user must be in it) or private conversation a REDACT names.
fn conversation(ctx: &Ctx<'_>, target: &str, me: &str) -> Result<Conversation, Reply> {
    let invalid = || {
        Reply::fail(
            COMMAND,
            "INVALID_TARGET",
            &[target],
            &format!("You cannot delete messages from {target}"),
        )
    };
    let world = ctx.shared.world.lock();
    if target.starts_with(['#', '&']) {
        let (key, channel) = world.channel_named(target).map_err(|_| invalid())?;
        let status = channel.status(ctx.session.id).ok_or_else(invalid)?;
        let moderator = ctx
            .shared
            .may_moderate(&key, Some(status), ctx.oper_class_in(&world));
        return Ok(Conversation {
            shown: channel.name.clone(),
            moderator,
            recipients: channel.snapshot.to_vec(),
            target: Some(Target::Channel(key.clone())),
            key,
        });
    }
    if !parley_proto::validate::nick(target, ctx.shared.config.limits.nick_len) {
        return Err(invalid());
    }
    // Online, the other party is who holds the nick now; offline, the account of that name
    // (whose conversation an offline message was kept under).
    let (them, recipients, uid) = match world.user_by_nick(target) {
        Some(user) => (
            party(user.account.as_deref(), &user.nick),
            crate::command::message::private_recipients(
                &world,
                user.id,
                ctx.session.id,
                ctx.outbound,
            ),
            user.remote.clone().or_else(|| ctx.cluster_uid(user.id)),
        ),
        None => (casefold(target), Vec::new(), None),
    };
    Ok(Conversation {
        key: dm_key(me, &them),
        shown: target.to_string(),
        moderator: false,
        recipients,
        target: uid.map(Target::User),
    })
}

/// Tell the conversation (with the capability) and this user: "forward this `REDACT`, with an
/// appropriate prefix, to the target recipients that have negotiated the
/// `draft/message-redaction` capability".
fn announce(
    ctx: &Ctx<'_>,
    conversation: Conversation,
    source: &str,
    account: Option<String>,
    redacted: &str,
    reason: Option<String>,
) {
    let msgid = ctx.shared.history.next_msgid();
    let time_ms = now_ms();
    let shown = conversation.shown;
    let relay = Relay::new(
        source,
        account.as_deref(),
        COMMAND,
        &[&shown, redacted],
        reason.as_deref(),
    )
    .with_identity(&msgid, time_ms);
    // This user's copy is its answer (under its label, if it gave one), the rest's a relay.
    if ctx.session.caps.message_redaction {
        ctx.send(relay.bytes_for(ctx.outbound.wire_caps()));
    }
    let recipients: Vec<Arc<Outbound>> = conversation
        .recipients
        .into_iter()
        .filter(|r| !Arc::ptr_eq(r, ctx.outbound))
        .filter(|r| r.wire_caps() & wire::MESSAGE_REDACTION != 0)
        .collect();
    let Some(target) = conversation.target else {
        // A private conversation with someone offline (or without a cluster): here only.
        Line::Relay(&relay).send_now(&recipients);
        return;
    };
    let announced = ctx.announce(Line::Relay(&relay), &Arc::new(recipients), |cluster| {
        Event::Redact {
            uid: cluster.uid_of(ctx.session.id),
            source: source.to_string(),
            account: account.clone(),
            msgid: msgid.clone(),
            time_ms,
            target,
            to: shown.clone(),
            redacted: redacted.to_string(),
            reason: reason.clone(),
        }
    });
    ctx.publish(announced);
}
