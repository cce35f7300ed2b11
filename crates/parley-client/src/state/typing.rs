//! Typing indicators (ircv3.net/specs/client-tags/typing): who is typing in each buffer, from
//! `+typing` on TAGMSG, expiring by the spec's clocks; and our own notices, sent as the user
//! edits the input and throttled per target, so a UI only reports "the input is now this text"
//! and [`State::tick`] does the rest. Everything needs `message-tags`; without it nothing is
//! sent and nobody is shown typing.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use parley_proto::casefold;

use super::{irc_tagged, Buffer, BufferKind, ConnectionState, State};

/// "At least 6 seconds have passed since the last `typing=active` notification was received."
const ACTIVE_FOR: Duration = Duration::seconds(6);
/// "At least 30 seconds have elapsed since the last `typing=paused` notification was received."
const PAUSED_FOR: Duration = Duration::seconds(30);
/// "...not sent within 3 seconds of another one for a given target."
const THROTTLE: Duration = Duration::seconds(3);
/// Idle time after which our `active` becomes `paused`.
const PAUSE_AFTER: Duration = Duration::seconds(6);

/// The three values of the `+typing` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Typing {
    Active,
    Paused,
    Done,
}

impl Typing {
    fn parse(value: &str) -> Option<Typing> {
        match value {
            "active" => Some(Typing::Active),
            "paused" => Some(Typing::Paused),
            "done" => Some(Typing::Done),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Typing::Active => "active",
            Typing::Paused => "paused",
            Typing::Done => "done",
        }
    }
}

/// Someone typing in a buffer, until `until`.
#[derive(Clone, Debug)]
pub(super) struct Typist {
    nick: String,
    until: DateTime<Utc>,
}

/// Our own notices to one target.
#[derive(Clone, Debug)]
struct Outgoing {
    target: String,
    last_sent: Option<DateTime<Utc>>,
    sent: Typing,
    /// Waiting for the throttle.
    pending: Option<Typing>,
    last_edit: DateTime<Utc>,
}

/// Our own typing notices, per casefolded target.
#[derive(Default)]
pub(super) struct OutgoingTyping {
    targets: HashMap<String, Outgoing>,
    /// The user turned typing notices off (privacy).
    disabled: bool,
}

impl Buffer {
    /// The nicks typing here at `now`, in name order (expired ones are left out).
    pub fn typing(&self, now: DateTime<Utc>) -> Vec<&str> {
        self.typists
            .values()
            .filter(|t| t.until > now)
            .map(|t| t.nick.as_str())
            .collect()
    }

    /// "alice is typing…", "alice and bob are typing…", "alice, bob and 2 others are
    /// typing…", or `None` when nobody is.
    pub fn typing_text(&self, now: DateTime<Utc>) -> Option<String> {
        let nicks = self.typing(now);
        Some(match nicks.as_slice() {
            [] => return None,
            [one] => format!("{one} is typing…"),
            [a, b] => format!("{a} and {b} are typing…"),
            [a, b, c] => format!("{a}, {b} and {c} are typing…"),
            [a, b, rest @ ..] => format!("{a}, {b} and {} others are typing…", rest.len()),
        })
    }

    /// When the typing line next changes by itself (an entry expires): a UI redraws then.
    pub fn typing_changes_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.typists
            .values()
            .map(|t| t.until)
            .filter(|u| *u > now)
            .min()
    }

    pub(super) fn stop_typing(&mut self, nick: &str) {
        self.typists.remove(&casefold(nick));
    }
}

impl State {
    /// Turns our own typing notices off or on (they tell others when you write).
    pub fn set_send_typing(&mut self, on: bool) {
        self.typing_out.disabled = !on;
        if !on {
            self.typing_out.targets.clear();
        }
    }

    /// A `+typing` tag from `nick` in buffer `index`.
    pub(super) fn on_typing(&mut self, index: usize, nick: &str, value: &str, now: DateTime<Utc>) {
        // Not ourselves, on this device or another of the account's ("clients might choose to
        // not display typing notifications for their own nickname").
        let own_account = self
            .account
            .as_deref()
            .is_some_and(|own| self.account_of(nick) == Some(own));
        if self.is_me(nick) || own_account {
            return;
        }
        let Some(typing) = Typing::parse(value) else {
            return;
        };
        let buffer = &mut self.buffers[index];
        // Notices that ran out are dropped here, so the map holds only those still typing.
        buffer.typists.retain(|_, t| t.until > now);
        let until = match typing {
            Typing::Active => now + ACTIVE_FOR,
            Typing::Paused => now + PAUSED_FOR,
            Typing::Done => {
                buffer.stop_typing(nick);
                return;
            }
        };
        buffer.typists.insert(
            casefold(nick),
            Typist {
                nick: nick.to_string(),
                until,
            },
        );
    }

    /// `nick` left or quit: they type nowhere (any more).
    pub(super) fn stop_typing_everywhere(&mut self, nick: &str) {
        for buffer in &mut self.buffers {
            buffer.stop_typing(nick);
        }
    }

    /// The input now holds `text` (the user typed, deleted or cleared it) while the active
    /// buffer is on screen: the typing notices to send now; later ones come from
    /// [`State::tick`].
    pub fn typing_input(&mut self, text: &str, now: DateTime<Utc>) -> Vec<String> {
        let mut out = Vec::new();
        if self.typing_out.disabled
            || !self.has_cap("message-tags")
            || self.connection != ConnectionState::Connected
        {
            return out;
        }
        let buffer = self.active();
        let target = (buffer.kind != BufferKind::Server).then(|| buffer.name.clone());
        let key = target.as_deref().map(casefold);
        // Text left in another buffer's input is not being typed any more.
        for (other, entry) in &mut self.typing_out.targets {
            if Some(other) != key.as_ref() && entry.sent != Typing::Done {
                entry.pending = Some(Typing::Done);
            }
        }
        if let (Some(target), Some(key)) = (target, key) {
            // "...while the user is making updates to the text-input field and the text is
            // not a "/slash command"."
            let command = text.starts_with('/') && !text.starts_with("//");
            let typing = !text.trim().is_empty() && !command;
            let entry = self
                .typing_out
                .targets
                .entry(key)
                .or_insert_with(|| Outgoing {
                    target,
                    last_sent: None,
                    sent: Typing::Done,
                    pending: None,
                    last_edit: now,
                });
            if typing {
                entry.last_edit = now;
                entry.pending = Some(Typing::Active);
            } else if entry.sent != Typing::Done {
                // "...when the user clears the text-input field without sending a message."
                entry.pending = Some(Typing::Done);
            } else {
                entry.pending = None;
            }
        }
        self.flush_typing(now, &mut out);
        out
    }

    /// A message went to `target`: it ends our typing there without a `done` (receivers stop
    /// showing us typing when "a message is received from the sender").
    pub(super) fn typing_sent(&mut self, target: &str) {
        if let Some(entry) = self.typing_out.targets.get_mut(&casefold(target)) {
            entry.sent = Typing::Done;
            entry.pending = None;
        }
    }

    pub(super) fn typing_tick(&mut self, now: DateTime<Utc>, out: &mut Vec<String>) {
        for entry in self.typing_out.targets.values_mut() {
            if entry.sent == Typing::Active
                && entry.pending.is_none_or(|p| p == Typing::Active)
                && now - entry.last_edit >= PAUSE_AFTER
            {
                // "...MAY be sent by clients once when the user has paused typing."
                entry.pending = Some(Typing::Paused);
            }
        }
        self.flush_typing(now, out);
        // Forget targets at rest, so the map holds only conversations being typed in.
        self.typing_out.targets.retain(|_, e| {
            e.pending.is_some()
                || e.sent != Typing::Done
                || e.last_sent.is_some_and(|at| now - at < THROTTLE)
        });
    }

    /// Sends each pending notice whose target's throttle allows it.
    fn flush_typing(&mut self, now: DateTime<Utc>, out: &mut Vec<String>) {
        let mut targets: Vec<&mut Outgoing> = self.typing_out.targets.values_mut().collect();
        targets.sort_by(|a, b| a.target.cmp(&b.target));
        for entry in targets {
            let Some(typing) = entry.pending else {
                continue;
            };
            if entry.last_sent.is_some_and(|at| now - at < THROTTLE) {
                continue;
            }
            // `active` is repeated while edits go on; a repeated pause or done is not.
            if typing != Typing::Active && typing == entry.sent {
                entry.pending = None;
                continue;
            }
            out.push(irc_tagged(
                &[("+typing", typing.as_str())],
                "TAGMSG",
                &[&entry.target],
                None,
            ));
            entry.sent = typing;
            entry.last_sent = Some(now);
            entry.pending = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::state::tests::{connected, feed};
    use chrono::{DateTime, Duration, Utc};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("a valid time")
    }

    #[test]
    fn typing_is_shown_and_expires_by_the_specs_clocks() {
        let mut s = connected("message-tags");
        feed(
            &mut s,
            &[":me!u@h JOIN #a", ":alice!u@h JOIN #a", ":bob!u@h JOIN #a"],
        );
        let t0 = Utc::now();
        let b = |s: &crate::State| s.buffer("#a").expect("#a").clone();
        feed(&mut s, &["@+typing=active :alice!u@h TAGMSG #a"]);
        assert_eq!(b(&s).typing_text(t0).as_deref(), Some("alice is typing…"));
        // "At least 6 seconds have passed since the last typing=active notification was
        // received."
        assert_eq!(b(&s).typing_text(t0 + Duration::seconds(7)), None);
        feed(&mut s, &["@+typing=paused :bob!u@h TAGMSG #a"]);
        // "At least 30 seconds have elapsed since the last typing=paused notification..."
        assert_eq!(
            b(&s).typing_text(t0 + Duration::seconds(20)).as_deref(),
            Some("bob is typing…")
        );
        assert_eq!(b(&s).typing_text(t0 + Duration::seconds(31)), None);
        feed(&mut s, &["@+typing=active :alice!u@h TAGMSG #a"]);
        assert_eq!(
            b(&s).typing_text(t0).as_deref(),
            Some("alice and bob are typing…")
        );
        // "A message is received from the sender"
        feed(&mut s, &[":alice!u@h PRIVMSG #a :done now"]);
        assert_eq!(b(&s).typing(t0), ["bob"]);
        // "A typing=done notification is received from the sender"
        feed(&mut s, &["@+typing=done :bob!u@h TAGMSG #a"]);
        assert_eq!(b(&s).typing(t0), Vec::<&str>::new());
        // "The sender leaves the channel or quits the server"
        feed(
            &mut s,
            &["@+typing=active :alice!u@h TAGMSG #a", ":alice!u@h PART #a"],
        );
        assert_eq!(b(&s).typing(t0), Vec::<&str>::new());
        feed(
            &mut s,
            &["@+typing=active :bob!u@h TAGMSG #a", ":bob!u@h QUIT :bye"],
        );
        assert_eq!(b(&s).typing(t0), Vec::<&str>::new());
        // In private, the sender's conversation shows it; our own echo is never shown.
        feed(
            &mut s,
            &[
                ":carol!u@h PRIVMSG me :hi",
                "@+typing=active :carol!u@h TAGMSG me",
            ],
        );
        assert_eq!(s.buffer("carol").expect("query").typing(t0), ["carol"]);
        feed(&mut s, &["@+typing=active :me!u@h TAGMSG #a"]);
        assert_eq!(b(&s).typing(t0), Vec::<&str>::new());
        // Typing replayed from history is long over.
        let mut h = connected("message-tags batch draft/chathistory");
        feed(
            &mut h,
            &[
                ":me!u@h JOIN #a",
                ":srv BATCH +x chathistory #a",
                "@batch=x;+typing=active :bob!u@h TAGMSG #a",
                ":srv BATCH -x",
            ],
        );
        assert!(h.buffer("#a").expect("#a").typing(t0).is_empty());
        // A TAGMSG is never a line of the conversation.
        assert!(!b(&s).lines.iter().any(|l| l.text.contains("TAGMSG")));
    }

    #[test]
    fn the_accounts_other_devices_are_not_shown_typing() {
        let mut s = crate::state::tests::state();
        s.on_connected(false, crate::Auth::Guest);
        feed(
            &mut s,
            &[
                ":srv CAP * LS :message-tags account-tag",
                ":srv CAP me ACK :message-tags account-tag",
                ":srv 900 me me!u@h me :You are now logged in as me",
                ":srv 001 me :Welcome",
                ":me!u@h JOIN #a",
                "@account=me;+typing=active :me_!u@h TAGMSG #a",
                "@account=bob;+typing=active :bob!u@h TAGMSG #a",
            ],
        );
        assert_eq!(s.buffer("#a").expect("#a").typing(Utc::now()), ["bob"]);
    }

    #[test]
    fn own_typing_is_throttled_paused_and_cleared() {
        let mut s = connected("message-tags");
        feed(&mut s, &[":me!u@h JOIN #a"]);
        assert_eq!(s.typing_input("h", at(0)), ["@+typing=active TAGMSG #a"]);
        // "Input event handlers MUST be throttled so that any typing notification is not sent
        // within 3 seconds of another one for a given target."
        assert!(s.typing_input("he", at(1)).is_empty());
        assert!(s.typing_input("hel", at(2)).is_empty());
        // "The typing=active notification SHOULD be sent by clients continuously while the
        // user is making updates to the text-input field"
        assert_eq!(s.typing_input("hell", at(3)), ["@+typing=active TAGMSG #a"]);
        assert!(s.tick(at(5)).is_empty());
        // Idle: "The typing=paused notification MAY be sent by clients once when the user has
        // paused typing in the text-input field and has not cleared their text."
        assert_eq!(s.tick(at(9)), ["@+typing=paused TAGMSG #a"]);
        assert!(s.tick(at(20)).is_empty(), "once");
        // "The typing=done notification MAY be sent by clients once when the user clears the
        // text-input field without sending a message."
        assert_eq!(s.typing_input("", at(21)), ["@+typing=done TAGMSG #a"]);
        assert!(s.typing_input("", at(25)).is_empty(), "once");
        // Cleared within 3 s of the last notice: the done waits for the throttle.
        assert_eq!(s.typing_input("x", at(30)), ["@+typing=active TAGMSG #a"]);
        assert!(s.typing_input("", at(31)).is_empty());
        assert_eq!(s.tick(at(33)), ["@+typing=done TAGMSG #a"]);
        // Sending the message ends it without a done; a slash command is not typing.
        assert_eq!(s.typing_input("y", at(40)), ["@+typing=active TAGMSG #a"]);
        s.act(crate::Action::Say("y".into())).expect("sent");
        assert!(s.tick(at(50)).is_empty());
        assert!(s.typing_input("/join #b", at(60)).is_empty());
        assert_eq!(
            s.typing_input("//me", at(61)),
            ["@+typing=active TAGMSG #a"]
        );
        // Off: nothing at all.
        s.set_send_typing(false);
        assert!(s.typing_input("more", at(70)).is_empty());
    }

    #[test]
    fn switching_buffers_ends_typing_in_the_one_left() {
        let mut s = connected("message-tags");
        feed(&mut s, &[":me!u@h JOIN #a", ":me!u@h JOIN #b"]);
        s.set_active_by_name("#a");
        assert_eq!(s.typing_input("hi", at(0)), ["@+typing=active TAGMSG #a"]);
        s.set_active_by_name("#b");
        assert_eq!(
            s.typing_input("hi", at(4)),
            ["@+typing=done TAGMSG #a", "@+typing=active TAGMSG #b"]
        );
    }

    #[test]
    fn no_message_tags_no_typing() {
        let mut s = connected("echo-message");
        feed(&mut s, &[":me!u@h JOIN #a"]);
        assert!(s.typing_input("hello", at(0)).is_empty());
        assert!(s.tick(at(10)).is_empty());
    }
}
