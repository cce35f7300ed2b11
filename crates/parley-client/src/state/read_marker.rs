//! Read markers (ircv3.net/specs/extensions/read-marker, cap `draft/read-marker`): what the
//! account has read, shared by its devices. A buffer on screen is read up to its newest
//! message, and `MARKREAD <target> timestamp=...` tells the server at the next tick; a
//! `MARKREAD` from the server (on join, for a conversation we asked about, or from another
//! device) moves the buffer's marker and recounts unread and mentions after it.

use chrono::{DateTime, Utc};
use parley_proto::Message;

use super::{irc_line, iso_time, BufferKind, State};

impl State {
    /// Buffer `name` is read as far as it goes now (it is on screen).
    pub(super) fn note_read(&mut self, name: &str) {
        if !self.has_cap("draft/read-marker") {
            return;
        }
        // "The timestamp MUST correspond to a previous message time tag."
        let Some(newest) = self
            .find(name)
            .and_then(|i| self.buffers[i].last_message_time)
        else {
            return;
        };
        match self.read_pending.iter_mut().find(|(n, _)| n == name) {
            Some((_, up_to)) => *up_to = (*up_to).max(newest),
            None => self.read_pending.push((name.to_string(), newest)),
        }
    }

    /// Sends a MARKREAD for each buffer read past its marker.
    pub(super) fn flush_read_markers(&mut self, out: &mut Vec<String>) {
        for (name, up_to) in std::mem::take(&mut self.read_pending) {
            let Some(index) = self.find(&name) else {
                continue;
            };
            let buffer = &mut self.buffers[index];
            if buffer.kind == BufferKind::Server
                || buffer.read_marker.is_some_and(|read| read >= up_to)
            {
                continue;
            }
            buffer.read_marker = Some(up_to);
            let timestamp = format!("timestamp={}", iso_time(up_to));
            out.push(irc_line("MARKREAD", &[&buffer.name, &timestamp], None));
        }
    }

    /// `MARKREAD <target> <timestamp>` from the server.
    pub(super) fn on_markread(&mut self, msg: &Message<'_>) {
        let (Some(target), Some(value)) = (msg.param(0), msg.param(1)) else {
            return;
        };
        // "If there is no known last message read timestamp, the timestamp parameter is a
        // literal *."
        let Some(time) = value
            .strip_prefix("timestamp=")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
        else {
            return;
        };
        let Some(index) = self.find(target) else {
            return;
        };
        let active = index == self.active;
        let buffer = &mut self.buffers[index];
        // "The last read timestamp of a target SHOULD only ever increase."
        if buffer.read_marker.is_some_and(|read| read >= time) {
            return;
        }
        buffer.read_marker = Some(time);
        if active {
            return;
        }
        let unread: Vec<bool> = buffer
            .lines
            .iter()
            .filter(|l| l.time > time && !l.own && l.counts_as_unread())
            .map(|l| l.highlight)
            .collect();
        buffer.unread = unread.len();
        buffer.mentions = unread.iter().filter(|h| **h).count();
    }
}

#[cfg(test)]
mod tests {
    use crate::state::tests::{connected, feed};
    use crate::state::SERVER_BUFFER;

    #[test]
    fn a_read_buffer_is_marked_on_the_next_tick() {
        let mut s = connected("draft/read-marker server-time");
        feed(&mut s, &[":me!u@h JOIN #channel", ":me!u@h JOIN #other"]);
        s.set_active_by_name("#other");
        // The spec's example: "[s] @time=2019-01-04T14:33:26.123Z :nick!ident@host PRIVMSG
        // #channel :message" then "[c] MARKREAD #channel timestamp=2019-01-04T14:33:26.123Z"
        feed(
            &mut s,
            &["@time=2019-01-04T14:33:26.123Z :nick!ident@host PRIVMSG #channel :message"],
        );
        assert!(
            s.tick(chrono::Utc::now()).is_empty(),
            "not on screen: not read"
        );
        s.set_active_by_name("#channel");
        assert_eq!(
            s.tick(chrono::Utc::now()),
            ["MARKREAD #channel timestamp=2019-01-04T14:33:26.123Z"]
        );
        assert!(s.tick(chrono::Utc::now()).is_empty(), "once");
        // A message arriving on screen is read too.
        feed(
            &mut s,
            &["@time=2019-01-04T14:40:00.000Z :nick!ident@host PRIVMSG #channel :more"],
        );
        assert_eq!(
            s.tick(chrono::Utc::now()),
            ["MARKREAD #channel timestamp=2019-01-04T14:40:00.000Z"]
        );
        s.set_active_by_name(SERVER_BUFFER);
        assert!(s.tick(chrono::Utc::now()).is_empty());
    }

    #[test]
    fn a_marker_from_another_device_clears_unread_up_to_it() {
        let mut s = connected("draft/read-marker server-time batch draft/chathistory");
        feed(&mut s, &[":me!u@h JOIN #a"]);
        s.set_active_by_name(SERVER_BUFFER);
        feed(
            &mut s,
            &[
                "@time=2024-01-01T10:00:00.000Z :bob!u@h PRIVMSG #a :one",
                "@time=2024-01-01T10:01:00.000Z :bob!u@h PRIVMSG #a :two, me?",
                "@time=2024-01-01T10:02:00.000Z :bob!u@h PRIVMSG #a :three",
            ],
        );
        assert_eq!(s.buffer("#a").map(|b| (b.unread, b.mentions)), Some((3, 1)));
        // "after the last read timestamp of a target changes, the server SHOULD send a
        // MARKREAD command for that target to all the clients of the user."
        feed(
            &mut s,
            &[":srv MARKREAD #a timestamp=2024-01-01T10:01:00.000Z"],
        );
        assert_eq!(s.buffer("#a").map(|b| (b.unread, b.mentions)), Some((1, 0)));
        // Never backwards; "*" says nothing.
        feed(
            &mut s,
            &[
                ":srv MARKREAD #a timestamp=2024-01-01T09:00:00.000Z",
                ":srv MARKREAD #a *",
            ],
        );
        assert_eq!(s.buffer("#a").map(|b| b.unread), Some(1));
        feed(
            &mut s,
            &[":srv MARKREAD #a timestamp=2024-01-01T10:02:00.000Z"],
        );
        assert_eq!(s.buffer("#a").map(|b| b.unread), Some(0));
    }

    #[test]
    fn history_after_the_marker_is_unread() {
        let mut s = connected("draft/read-marker server-time batch draft/chathistory");
        // "Getting the read timestamp automatically after joining a channel"
        feed(
            &mut s,
            &[
                ":me!u@h JOIN #b",
                ":srv MARKREAD #b timestamp=2024-01-01T10:00:00.000Z",
                ":srv 366 me #b :End of /NAMES list",
            ],
        );
        s.set_active_by_name(SERVER_BUFFER);
        feed(
            &mut s,
            &[
                ":srv BATCH +h chathistory #b",
                "@batch=h;time=2024-01-01T09:59:00.000Z;msgid=1 :bob!u@h PRIVMSG #b :read",
                "@batch=h;time=2024-01-01T10:05:00.000Z;msgid=2 :bob!u@h PRIVMSG #b :missed",
                ":srv BATCH -h",
            ],
        );
        assert_eq!(s.buffer("#b").map(|b| b.unread), Some(1));
    }

    #[test]
    fn conversations_ask_for_their_marker_and_no_cap_sends_nothing() {
        let mut s = connected("draft/read-marker");
        // "Asking the server about the read timestamp for a particular user: [c] MARKREAD
        // target"
        let out = feed(&mut s, &[":bob!u@h PRIVMSG me :hi"]);
        assert_eq!(out, ["MARKREAD bob"]);

        let mut s = connected("server-time");
        feed(
            &mut s,
            &[
                ":me!u@h JOIN #a",
                "@time=2024-01-01T10:00:00.000Z :bob!u@h PRIVMSG #a :hi",
                ":carol!u@h PRIVMSG me :hi",
            ],
        );
        s.set_active_by_name("carol");
        assert!(s.tick(chrono::Utc::now()).is_empty());
    }
}
