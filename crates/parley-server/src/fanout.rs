//! Delivery: one event's lines into many recipients' outbound buffers. Every line a user sees
//! because of someone else (a channel message, a JOIN, a QUIT ...) leaves through here, whether
//! this node's handler caused it or the cluster's stream brought it (`cluster::apply` uses the
//! same functions), so there is one delivery path to read and to measure.
//!
//! The hot path: a [`Relay`] serializes at most once per wire variant; each recipient gets those
//! bytes appended to its bounded buffer under that buffer's short lock; its writer is woken only
//! when the buffer goes from empty to non-empty, and with [`HeldWakes`] only once per batch. No
//! allocation and no lock here is per recipient beyond that append.

use std::sync::Arc;

use crate::history::Outgoing;
use crate::outbound::{HeldWakes, Outbound};
use parley_proto::casefold;

use crate::clock::millis;
use crate::relay::{line, wire, Relay};
use crate::state::{MemberList, World};
use crate::store::StoredMessage;

/// What this node keeps of its own event while the cluster carries it: who here gets its line
/// and the echo its sender waits for.
#[derive(Default)]
pub struct Local {
    /// The echo a sender waits for (`Some("")`: echo without a label).
    pub echo: Option<String>,
    /// Who on this node gets the event's line: those who should have seen it when it happened
    /// (a channel's members then), not whoever is there when it comes back. None: work it out
    /// then, as for another node's event.
    pub recipients: Option<MemberList>,
    /// For a labeled command, where the echo goes when the stream brings it back: its
    /// connection waits for it and sends it under the label with the command's other replies.
    pub echo_into: Option<EchoSlot>,
    /// The session that sent an own message, when its user has several (see
    /// `command::multiclient`): the one whose copy is its echo, where the others get it as
    /// recipients. None: the user's buffer.
    pub sender: Option<Arc<Outbound>>,
}

/// In a cluster, what becomes of a stored message: published to every node (this one included,
/// which then delivers it from the stream with the same functions as here) instead of delivered.
pub type Publish = Box<dyn FnOnce(Local) + Send>;

/// A message on its way: stored first (by the history writer), then delivered.
pub struct Delivery {
    pub stored: Option<StoredMessage>,
    /// Casefolded account to hand this private message to at its next login.
    pub offline_for: Option<String>,
    pub relay: Relay,
    pub recipients: MemberList,
    pub sender: Arc<Outbound>,
    /// The sender asked for its own messages back (`echo-message`).
    pub echo: bool,
    /// For a labeled command: the echo goes into this slot instead (here, or on its way back
    /// from the cluster's stream), so the connection sends it with the command's other replies
    /// under the one label.
    pub echo_into: Option<EchoSlot>,
    /// A private message to the sender itself: it gets the message as its recipient too, and
    /// that copy is never labeled (only the echo is the answer).
    pub to_self: bool,
    /// In a cluster: how to publish it once stored; `None` delivers it here.
    pub publish: Option<Publish>,
}

/// The echo of a labeled message, filled in by its delivery (see [`Delivery::echo_into`]); the
/// labeled command's connection holds the [`EchoWait`]. Dropped unfilled, the wait ends empty.
pub type EchoSlot = tokio::sync::oneshot::Sender<Vec<u8>>;

/// The connection's end of an [`EchoSlot`].
pub type EchoWait = tokio::sync::oneshot::Receiver<Vec<u8>>;

/// Give a labeled command's echo to its connection through `slot`; if the connection stopped
/// waiting (the echo took longer than it waits), the sender still gets it, unlabeled.
pub fn fill_echo(slot: EchoSlot, bytes: &[u8], sender: &Arc<Outbound>, held: &mut HeldWakes) {
    if bytes.is_empty() {
        return;
    }
    if let Err(bytes) = slot.send(bytes.to_vec()) {
        let _ = sender.push_held(&bytes, held);
    }
}

impl Delivery {
    /// Queue the message for everyone but the sender, and the sender's echo if it asked (into
    /// [`Delivery::echo_into`] for a labeled command); the writers are woken when `held` is
    /// dropped.
    pub fn deliver(&mut self, held: &mut HeldWakes) {
        send_except(held, &self.relay, &self.recipients, Some(&self.sender));
        if self.to_self {
            self.relay.send_held(&self.sender, held);
        }
        if self.echo {
            // Empty for a TAGMSG the sender may not get (no `message-tags`): no echo.
            let bytes = self.relay.bytes_for(self.sender.wire_caps());
            match self.echo_into.take() {
                Some(slot) => fill_echo(slot, bytes, &self.sender, held),
                None if bytes.is_empty() => {}
                None => {
                    let _ = self.sender.push_held(bytes, held);
                }
            }
        }
    }
}

impl Outgoing for Delivery {
    fn take_stored(&mut self) -> Option<(StoredMessage, Option<String>)> {
        let stored = self.stored.take()?;
        Some((stored, self.offline_for.take()))
    }

    fn hand_on(&mut self, held: &mut HeldWakes) {
        match self.publish.take() {
            Some(publish) => publish(Local {
                echo: self.echo.then(String::new),
                recipients: Some(self.recipients.clone()),
                echo_into: self.echo_into.take(),
                sender: Some(self.sender.clone()),
            }),
            None => self.deliver(held),
        }
    }
}

/// Queue `relay` for every member but `except` (the one who acted, who got its line already).
pub fn send_except(
    held: &mut HeldWakes,
    relay: &Relay,
    members: &[Arc<Outbound>],
    except: Option<&Arc<Outbound>>,
) {
    for member in members {
        if except.is_none_or(|e| !Arc::ptr_eq(e, member)) {
            relay.send_held(member, held);
        }
    }
}

/// Queue one line for each of `members` at once, each writer woken on its own: a handler's
/// delivery, which is not part of a batch.
pub fn send_now(bytes: &[u8], members: &[Arc<Outbound>]) {
    for member in members {
        let _ = member.push(bytes);
    }
}

/// Queue one line at once for those of `members` whose wire capabilities include `bit`.
pub fn send_now_to_cap(bytes: &[u8], members: &[Arc<Outbound>], bit: u16) {
    for member in members {
        if member.wire_caps() & bit != 0 {
            let _ = member.push(bytes);
        }
    }
}

/// Queue one line at once for those of `members` who asked for the notification `bit`
/// ([`crate::relay::notify`]: AWAY, SETNAME, INVITE lines), but not `except`.
pub fn send_now_to_notify(
    bytes: &[u8],
    members: &[Arc<Outbound>],
    bit: u8,
    except: Option<&Arc<Outbound>>,
) {
    for member in members {
        if member.notify_caps() & bit != 0 && except.is_none_or(|e| !Arc::ptr_eq(e, member)) {
            let _ = member.push(bytes);
        }
    }
}

/// [`send_now_to_notify`] within a batch of wakes (the cluster's stream).
pub fn send_line_to_notify(
    held: &mut HeldWakes,
    bytes: &[u8],
    members: &[Arc<Outbound>],
    bit: u8,
    except: Option<&Arc<Outbound>>,
) {
    for member in members {
        if member.notify_caps() & bit != 0 && except.is_none_or(|e| !Arc::ptr_eq(e, member)) {
            let _ = member.push_held(bytes, held);
        }
    }
}

/// Queue one line, the same bytes for everyone, for every member but `except`.
pub fn send_line_except(
    held: &mut HeldWakes,
    bytes: &[u8],
    members: &[Arc<Outbound>],
    except: Option<&Arc<Outbound>>,
) {
    for member in members {
        if except.is_none_or(|e| !Arc::ptr_eq(e, member)) {
            let _ = member.push_held(bytes, held);
        }
    }
}

/// Queue one line, the same bytes for everyone, for each of `members`.
pub fn send_line(held: &mut HeldWakes, bytes: &[u8], members: &[Arc<Outbound>]) {
    for member in members {
        let _ = member.push_held(bytes, held);
    }
}

/// Queue one line for those of `members` whose wire capabilities include `bit`
/// (`relay::wire::ACCOUNT_NOTIFY`, say).
pub fn send_line_to_caps(held: &mut HeldWakes, bytes: &[u8], members: &[Arc<Outbound>], bit: u16) {
    for member in members {
        if member.wire_caps() & bit != 0 {
            let _ = member.push_held(bytes, held);
        }
    }
}

/// Tell this node's members of a renamed channel (now under `key`, once `old`) of it, as
/// draft/channel-rename says: `RENAME old new :reason` to those with the capability; to the
/// others, unless only the case changed, the fallback: their own PART of the old name, JOIN of
/// the new, and its topic and names as on a join. Called under the world lock by the handler
/// and, in a cluster, by every other node applying the event; `send` queues one member's
/// bytes (the handler routes its own user's through its context, so a label applies).
pub fn rename(
    world: &mut World,
    key: &str,
    old: &str,
    by: (&str, Option<&str>),
    reason: &str,
    server: &str,
    mut send: impl FnMut(&Arc<Outbound>, &[u8]),
) {
    let World {
        users, channels, ..
    } = world;
    let Some(channel) = channels.get_mut(key) else {
        return;
    };
    let new = channel.name.clone();
    let case_only = casefold(old) == key;
    let relay = Relay::new(by.0, by.1, "RENAME", &[old, &new], Some(reason));
    let names = channel.member_names(users, false).to_string();
    let symbol = channel.names_symbol();
    let topic = channel.topic.clone();
    for id in &channel.order {
        let Some(member) = users.get(id).filter(|u| u.remote.is_none()) else {
            continue;
        };
        // Each session of the member on its own capabilities (one user, several devices).
        let mut fallback = Vec::new();
        for out in &member.sessions {
            if out.wire_caps() & wire::CHANNEL_RENAME != 0 {
                send(out, relay.bytes_for(out.wire_caps()));
            } else if !case_only {
                fallback.push(out);
            }
        }
        if fallback.is_empty() {
            continue;
        }
        let own = member.source();
        let part_reason = (!reason.is_empty()).then_some(reason);
        let mut lines = line(Some(&own), "PART", &[old], part_reason);
        lines.extend(line(Some(&own), "JOIN", &[&new], None));
        let nick = member.nick.as_str();
        if let Some(topic) = &topic {
            let set_at = (millis(topic.set_at) / 1000).to_string();
            lines.extend(line(Some(server), "332", &[nick, &new], Some(&topic.text)));
            lines.extend(line(
                Some(server),
                "333",
                &[nick, &new, &topic.set_by, &set_at],
                None,
            ));
        }
        for chunk in names_chunks(&names) {
            lines.extend(line(
                Some(server),
                "353",
                &[nick, symbol, &new],
                Some(chunk),
            ));
        }
        lines.extend(line(
            Some(server),
            "366",
            &[nick, &new],
            Some("End of /NAMES list"),
        ));
        for out in fallback {
            send(out, &lines);
        }
    }
}

/// Room left for nicks in one 353 line, keeping it under 512 bytes with the longest prefix.
pub const NAMES_LINE_BUDGET: usize = 400;

/// A space-separated list cut at spaces into pieces of at most [`NAMES_LINE_BUDGET`] bytes (a
/// single name longer than that, which the nick limit rules out, makes a piece of its own).
pub fn names_chunks(mut names: &str) -> impl Iterator<Item = &str> {
    std::iter::from_fn(move || {
        if names.is_empty() {
            return None;
        }
        if names.len() <= NAMES_LINE_BUDGET {
            return Some(std::mem::take(&mut names));
        }
        let bytes = names.as_bytes();
        let cut = bytes[..=NAMES_LINE_BUDGET]
            .iter()
            .rposition(|b| *b == b' ')
            .or_else(|| bytes.iter().position(|b| *b == b' '))
            .unwrap_or(names.len());
        let (chunk, rest) = names.split_at(cut);
        names = rest.strip_prefix(' ').unwrap_or(rest);
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::wire;

    fn outbound(caps: u16) -> Arc<Outbound> {
        let out = Arc::new(Outbound::new(1 << 16));
        out.set_wire_caps(caps);
        out
    }

    /// What was queued for `out`, read the way its connection's writer reads it.
    async fn taken(out: &Outbound) -> Vec<u8> {
        out.close_with(b"");
        let mut sink = Vec::new();
        crate::outbound::run_writer(out, &mut sink).await;
        sink
    }

    fn delivery(sender: &Arc<Outbound>, others: &[Arc<Outbound>], echo: bool) -> Delivery {
        let mut recipients = others.to_vec();
        recipients.push(sender.clone());
        Delivery {
            stored: None,
            offline_for: None,
            relay: Relay::new("a!b@c", None, "PRIVMSG", &["#t"], Some("hi")),
            recipients: Arc::from(recipients),
            sender: sender.clone(),
            echo,
            echo_into: None,
            to_self: false,
            publish: None,
        }
    }

    #[tokio::test]
    async fn everyone_but_the_sender_gets_the_line_and_the_sender_its_echo() {
        let sender = outbound(0);
        let other = outbound(0);
        let mut held = HeldWakes::default();
        delivery(&sender, std::slice::from_ref(&other), true).deliver(&mut held);
        drop(held);
        assert_eq!(taken(&other).await, b":a!b@c PRIVMSG #t :hi\r\n");
        assert_eq!(taken(&sender).await, b":a!b@c PRIVMSG #t :hi\r\n");
    }

    #[tokio::test]
    async fn a_labeled_echo_goes_to_its_slot_or_unlabeled_to_the_sender_when_nobody_waits() {
        let sender = outbound(0);
        let mut message = delivery(&sender, &[], true);
        let (slot, wait) = tokio::sync::oneshot::channel();
        message.echo_into = Some(slot);
        message.deliver(&mut HeldWakes::default());
        assert_eq!(wait.await.ok(), Some(b":a!b@c PRIVMSG #t :hi\r\n".to_vec()));
        let mut late = delivery(&sender, &[], true);
        let (slot, wait) = tokio::sync::oneshot::channel();
        drop(wait);
        late.echo_into = Some(slot);
        late.deliver(&mut HeldWakes::default());
        assert_eq!(taken(&sender).await, b":a!b@c PRIVMSG #t :hi\r\n");
    }

    #[tokio::test]
    async fn no_echo_unless_asked() {
        let sender = outbound(0);
        let mut held = HeldWakes::default();
        delivery(&sender, &[], false).deliver(&mut held);
        drop(held);
        assert!(taken(&sender).await.is_empty());
    }

    #[tokio::test]
    async fn a_published_message_is_not_delivered_here() {
        let sender = outbound(0);
        let other = outbound(0);
        let mut message = delivery(&sender, std::slice::from_ref(&other), true);
        let seen = Arc::new(parking_lot::Mutex::new(None));
        let record = seen.clone();
        message.publish = Some(Box::new(move |local: Local| {
            *record.lock() = Some((local.echo, local.recipients.map(|r| r.len())));
        }));
        message.hand_on(&mut HeldWakes::default());
        assert!(
            taken(&other).await.is_empty(),
            "the stream delivers it, not this call"
        );
        assert_eq!(*seen.lock(), Some((Some(String::new()), Some(2))));
    }

    #[tokio::test]
    async fn a_caps_filtered_line_reaches_only_those_with_the_cap() {
        let with = outbound(wire::ACCOUNT_NOTIFY);
        let without = outbound(0);
        let mut held = HeldWakes::default();
        send_line_to_caps(
            &mut held,
            b":a ACCOUNT x\r\n",
            &[with.clone(), without.clone()],
            wire::ACCOUNT_NOTIFY,
        );
        drop(held);
        assert_eq!(taken(&with).await, b":a ACCOUNT x\r\n");
        assert!(taken(&without).await.is_empty());
    }
}
