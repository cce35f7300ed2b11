//! PRIVMSG and NOTICE, to channels and to nicks (private messages). The hot path: the handler
//! checks permissions, takes the channel's member snapshot and leaves a [`Delivery`] for the
//! connection task, which hands it to the history writer: stored first, then serialized once per
//! wire variant and appended to every recipient's outbound buffer. A private message to an
//! account that is offline is kept for its next login. NOTICE never draws an error reply, as the
//! protocol requires, so bots cannot loop on each other. The sender's client-only tags
//! (IRCv3 message-tags) travel with the message and are stored with it; `TAGMSG`
//! (`command/tagmsg.rs`) takes the same road without text, and is stored only when it is a
//! reaction or a reply (`history::events`).

use std::sync::Arc;

use parley_proto::{casefold, numeric, Message};
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::cluster::event::{Event, Target};
use crate::cluster::undelivered::Sent;
use crate::config::BroadcastPolicy;
use crate::context::{Ctx, FollowUp, LabeledLine, Lookup, Reply};
use crate::fanout::Delivery;
use crate::history::{dm_key, events, party};
use crate::isupport::split_statusmsg;
use crate::outbound::Outbound;
use crate::relay::Relay;
use crate::state::{is_restricted_ctcp, Channel, MemberList};
use crate::store::StoredMessage;

/// `PRIVMSG`/`NOTICE <target>[,<target>...] <text>` to channels, nicks or `$*`. A NOTICE is
/// never answered with an error (RFC 2812 3.3.2): its refusals are dropped by the dispatcher
/// and by each target below.
pub fn privmsg(ctx: &mut Ctx<'_>, msg: &Message<'_>, notice: bool) -> Result<(), Reply> {
    let verb = if notice { "NOTICE" } else { "PRIVMSG" };
    let tags = msg.tags.client_only();
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
    let said = Said {
        verb,
        text,
        tags: &tags,
    };
    for target in split_targets(ctx, targets)? {
        if target.starts_with('$') {
            broadcast(ctx, verb, target, text, notice);
        } else if split_statusmsg(target).1.starts_with(['#', '&']) {
            // A NOTICE is never answered with an error (RFC 2812 3.3.2).
            if let (Err(reply), false) = (to_channel(ctx, &said, target), notice) {
                ctx.reply(&reply);
            }
        } else {
            to_nick(ctx, &said, target);
        }
    }
    Ok(())
}

/// What a user says, to whichever targets: `PRIVMSG`, `NOTICE` or `TAGMSG` (whose text is
/// empty), with the client-only tags it carries (escaped, as relayed).
pub struct Said<'a> {
    pub verb: &'static str,
    pub text: &'a str,
    pub tags: &'a str,
}

impl Said<'_> {
    /// NOTICE is never answered with an error (RFC 2812 3.3.2).
    fn quiet(&self) -> bool {
        self.verb == "NOTICE"
    }

    /// Kept in history: always, but for a TAGMSG other than a reaction or a reply.
    fn kept(&self) -> bool {
        events::kept(self.verb, self.tags)
    }
}

/// The comma-separated `targets`, 407 when there are more than `limits.targets_per_message`.
pub fn split_targets<'t>(ctx: &Ctx<'_>, targets: &'t str) -> Result<Vec<&'t str>, Reply> {
    let targets: Vec<&str> = targets.split(',').filter(|t| !t.is_empty()).collect();
    if targets.len() > ctx.shared.config.limits.targets_per_message {
        return Err(Reply::new(
            numeric::ERR_TOOMANYTARGETS,
            &[targets[0]],
            "Too many targets",
        ));
    }
    Ok(targets)
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
        if let Some(last) = ctx.session.passing.as_ref().and_then(|p| p.last_broadcast) {
            if last.elapsed() < interval {
                ctx.numeric(
                    numeric::RPL_TRYAGAIN,
                    &[verb],
                    Some("Please wait a while before broadcasting again"),
                );
                return;
            }
        }
        ctx.session.passing().last_broadcast = Some(Instant::now());
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
        tags: String::new(),
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

/// Who gets a private message from session `actor` of user `sender` to user `to`: every
/// session of `to`, and the sender's other sessions, which see what it sent as echo-message
/// would show it (the sending session itself gets its echo only if it asked).
pub fn private_recipients(
    world: &crate::state::World,
    to: crate::state::ClientId,
    sender: crate::state::ClientId,
    actor: &Arc<Outbound>,
) -> Vec<Arc<Outbound>> {
    let mut recipients = world.buffers_of(to);
    if to != sender {
        recipients.extend(world.siblings(sender, actor));
    }
    recipients
}

/// The stored form of a message, with a fresh msgid and the time it is accepted.
fn stored(
    ctx: &Ctx<'_>,
    said: &Said<'_>,
    key: String,
    source: &str,
    account: Option<&str>,
    to: &str,
) -> StoredMessage {
    StoredMessage {
        msgid: ctx.shared.history.next_msgid(),
        time_ms: now_ms(),
        target: key,
        kind: said.verb.to_string(),
        source: source.to_string(),
        account: account.map(str::to_string),
        to: to.to_string(),
        text: said.text.to_string(),
        tags: said.tags.to_string(),
    }
}

/// How a message goes out, besides to whom.
#[derive(Clone, Copy)]
struct Sending {
    /// A private message to the sender itself: it is its recipient too.
    to_self: bool,
    /// The sender has user mode `+B`: the `bot` tag for `message-tags` clients.
    bot: bool,
    /// Kept in history (a STATUSMSG is not: the channel's history is for all its members).
    keep: bool,
}

/// Leave the message to the connection task: stored first (a TAGMSG only when it is a reaction
/// or a reply), then delivered.
fn deliver(
    ctx: &mut Ctx<'_>,
    message: StoredMessage,
    recipients: MemberList,
    offline_for: Option<String>,
    target: Option<Target>,
    sending: Sending,
) {
    let Sending { to_self, bot, keep } = sending;
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
            tags: message.tags.clone(),
        })
    });
    let relay = Relay::of_message(&message).with_bot(bot);
    let tags_only = message.kind == "TAGMSG";
    let echo = ctx.session.caps.echo_message;
    // A TAGMSG echo reaches only a sender with `message-tags`; without one the label is
    // still owed (an ACK).
    let echoed = echo && (!tags_only || ctx.session.caps.message_tags);
    // A labeled command's echo is (part of) its response: collected in order with the other
    // replies, whether delivered here or brought back by a cluster's stream.
    let echo_into = match ctx.session.labeled.get_mut() {
        Some(labeled) if echoed => {
            let (slot, wait) = tokio::sync::oneshot::channel();
            labeled.lines.push(LabeledLine::Echo(wait));
            Some(slot)
        }
        _ => None,
    };
    ctx.session
        .followups
        .push_back(FollowUp::Deliver(Box::new(Delivery {
            stored: (keep && events::kept(&message.kind, &message.tags)).then_some(message),
            offline_for,
            relay,
            recipients,
            sender: ctx.outbound.clone(),
            echo,
            echo_into,
            to_self,
            publish,
        })));
}

/// A message to a channel: its members may speak (outsiders too without `+n`) unless `+m`, a ban,
/// a quiet or a mute (`+b $m:`) stops them, which voice and operator status lift; `+C` refuses
/// CTCP other than ACTION to everyone. A STATUSMSG target (`@#chan`, `+#chan`) reaches only
/// the operators (or the voiced and operators), comes from members only, keeps its prefix for
/// those it reaches, and is not stored: the channel's history is for everyone in it.
pub fn to_channel(ctx: &mut Ctx<'_>, said: &Said<'_>, target: &str) -> Result<(), Reply> {
    let (status_prefix, target) = split_statusmsg(target);
    let Some(speaker) = may_speak_in(ctx, target, status_prefix, said.text)? else {
        return Ok(());
    };
    let Speaker {
        key,
        source,
        account,
        bot,
        shown,
        members,
    } = speaker;
    let target = Target::Channel(key.clone());
    let message = stored(ctx, said, key, &source, account.as_deref(), &shown);
    let keep = status_prefix.is_none();
    if keep {
        crate::command::webpush::on_channel(ctx, &message.target, &message);
    }
    let sending = Sending {
        to_self: false,
        bot,
        keep,
    };
    deliver(ctx, message, members, None, Some(target), sending);
    Ok(())
}

/// Who speaks in a channel and who hears it.
pub struct Speaker {
    /// The channel's key (casefolded name).
    pub key: String,
    pub source: String,
    pub account: Option<String>,
    /// The speaker has user mode `+B`.
    pub bot: bool,
    /// The target as recipients see it: the channel's name, with a STATUSMSG prefix if any.
    pub shown: String,
    pub members: MemberList,
}

/// Whether this user may speak in channel `target` (404 if not, with the reason), and to whom:
/// `status_prefix` narrows the hearers to operators (`@`) or the voiced and operators (`+`);
/// `text` is checked against `+C`. `None` when this user is gone. Also the check for a
/// `draft/multiline` batch (`command::multiline`).
pub fn may_speak_in(
    ctx: &Ctx<'_>,
    target: &str,
    status_prefix: Option<char>,
    text: &str,
) -> Result<Option<Speaker>, Reply> {
    let id = ctx.session.id;
    Ok(Some({
        let mut world = ctx.shared.world.lock();
        let Some((source, real_source, account, bot)) = world
            .users
            .get(&id)
            .map(|u| (u.source(), u.real_source(), u.account.clone(), u.bot))
        else {
            return Ok(None);
        };
        let (key, channel) = world.channel_named(target)?;
        let status = channel.status(id);
        let privileged = status.is_some_and(|s| s.op || s.voice);
        // A list mode covers the sender by its shown mask or, under a CHGHOST, its real one.
        let covers = |check: fn(&Channel, &str, Option<&str>) -> bool| {
            check(channel, &source, account.as_deref())
                || real_source
                    .as_deref()
                    .is_some_and(|real| check(channel, real, account.as_deref()))
        };
        let refusal = if status.is_none() && status_prefix.is_some() {
            Some("Cannot send to channel (only its members may message its operators)")
        } else if status.is_none() && channel.modes.no_external {
            Some("Cannot send to channel (+n)")
        } else if channel.modes.moderated && !privileged {
            Some("Cannot send to channel (+m)")
        } else if !privileged && covers(Channel::is_banned) {
            Some("Cannot send to channel (+b)")
        } else if !privileged && covers(Channel::is_quieted) {
            Some("Cannot send to channel (+q)")
        } else if !privileged && covers(Channel::is_muted) {
            Some("Cannot send to channel (you are muted)")
        } else if channel.modes.no_ctcp && is_restricted_ctcp(text) {
            Some("Cannot send CTCP to channel (+C): only ACTION is allowed")
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
        let (shown, members) = match status_prefix {
            Some(prefix) => (
                format!("{prefix}{}", channel.name),
                channel.status_members(prefix),
            ),
            None => (channel.name.clone(), channel.snapshot.clone()),
        };
        if let Some(user) = world.users.get_mut(&id) {
            user.last_spoke = Instant::now();
        }
        Speaker {
            key,
            source,
            account,
            bot,
            shown,
            members,
        }
    }))
}

/// A message to a nick; refusals answered unless `said` is a NOTICE.
pub fn to_nick(ctx: &mut Ctx<'_>, said: &Said<'_>, target: &str) {
    let id = ctx.session.id;
    let (recipient, source, account, me, bot) = {
        let mut world = ctx.shared.world.lock();
        let recipient = world.user_by_nick(target).map(|r| {
            (
                private_recipients(&world, r.id, id, ctx.outbound),
                r.id == id,
                r.nick.clone(),
                r.away.clone(),
                party(r.account.as_deref(), &r.nick),
                r.remote.clone().or_else(|| ctx.cluster_uid(r.id)),
                r.remote
                    .is_some()
                    .then(|| r.account.as_deref().map(casefold)),
            )
        });
        let Some(user) = world.users.get_mut(&id) else {
            return;
        };
        user.last_spoke = Instant::now();
        let me = party(user.account.as_deref(), &user.nick);
        (recipient, user.source(), user.account.clone(), me, user.bot)
    };
    let Some((recipients, to_self, nick, away, them, uid, remote_account)) = recipient else {
        offline(ctx, said, target, &source, account.as_deref(), &me);
        return;
    };
    let message = stored(
        ctx,
        said,
        dm_key(&me, &them),
        &source,
        account.as_deref(),
        &nick,
    );
    if let (Some(uid), Some(account)) = (&uid, remote_account) {
        // On its way to another node, which may die before it delivers it.
        let stored = said.kept() && ctx.shared.history.enabled();
        ctx.sent_to_remote(
            uid,
            Sent {
                sender: id,
                nick: nick.clone(),
                account,
                msgid: stored.then(|| message.msgid.clone()),
                verb: said.verb,
            },
        );
    }
    if !to_self {
        crate::command::webpush::on_private(ctx, &nick, &message);
    }
    deliver(
        ctx,
        message,
        Arc::new(recipients),
        None,
        uid.map(Target::User),
        Sending {
            to_self,
            bot,
            keep: true,
        },
    );
    if let (Some(away), "PRIVMSG") = (away, said.verb) {
        ctx.numeric(numeric::RPL_AWAY, &[&nick], Some(&away));
    }
}

/// A private message to someone not connected: kept for them if they have an account. A
/// TAGMSG that history does not keep (a typing notice means nothing later) is answered like a
/// nick that does not exist; a reaction or a reply is kept, without the NOTICE (the sender's
/// client shows no text it could refer to).
fn offline(
    ctx: &mut Ctx<'_>,
    said: &Said<'_>,
    target: &str,
    source: &str,
    account: Option<&str>,
    me: &str,
) {
    let notice = said.quiet();
    let registered = said.kept()
        && ctx.shared.history.enabled()
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
    let message = stored(ctx, said, dm_key(me, &them), source, account, target);
    crate::command::webpush::on_offline(ctx, &them, &message);
    // Kept for later: the bot tag is for live delivery only.
    deliver(
        ctx,
        message,
        MemberList::default(),
        Some(them),
        None,
        Sending {
            to_self: false,
            bot: false,
            keep: true,
        },
    );
    if !notice && said.verb != events::TAGMSG {
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
