//! MONITOR (ircv3.net/specs/extensions/monitor) for the private conversations: when ISUPPORT
//! has `MONITOR`, the nicks of open conversations are watched (`MONITOR +`, within the
//! server's limit), and 730/731 mark each conversation's peer online or offline, so the list
//! shows who can answer now. Opening, closing and a peer's nick change keep the server's list
//! the same as the open conversations; without the token nothing is sent and nothing shown.

use parley_proto::casefold;

use super::{irc_line, BufferKind, ConnectionState, State};

/// Longest list of nicks put in one `MONITOR +` line, well inside the 512-byte line.
const MAX_TARGETS_BYTES: usize = 400;

/// The server's MONITOR support and what we asked it to watch.
#[derive(Default)]
pub(super) struct Monitor {
    supported: bool,
    /// `MONITOR=<n>`; `None` is "no limit" ("If no parameter is specified, there is no
    /// limit.").
    limit: Option<usize>,
    /// Casefolded nicks on the server's list, as far as we know.
    watched: Vec<String>,
}

/// `MONITOR + a,b,c` lines for `nicks`, each within [`MAX_TARGETS_BYTES`].
fn monitor_lines(sign: &str, nicks: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut list = String::new();
    for nick in nicks {
        if !list.is_empty() && list.len() + 1 + nick.len() > MAX_TARGETS_BYTES {
            lines.push(irc_line("MONITOR", &[sign, &list], None));
            list.clear();
        }
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(nick);
    }
    if !list.is_empty() {
        lines.push(irc_line("MONITOR", &[sign, &list], None));
    }
    lines
}

impl State {
    /// A new connection: the server's list starts empty.
    pub(super) fn monitor_reset(&mut self) {
        self.monitor = Monitor::default();
        for buffer in &mut self.buffers {
            buffer.online = None;
        }
    }

    /// ISUPPORT's `MONITOR[=limit]`: watch every open conversation's peer.
    pub(super) fn monitor_supported(&mut self, value: Option<&str>) {
        self.monitor.supported = true;
        self.monitor.limit = value.and_then(|v| v.parse().ok());
        let nicks: Vec<String> = self
            .buffers
            .iter()
            .filter(|b| b.kind == BufferKind::Query)
            .map(|b| b.name.clone())
            .collect();
        self.monitor_add(&nicks);
    }

    /// Asks the server to watch those of `nicks` not watched yet, as far as the limit allows.
    fn monitor_add(&mut self, nicks: &[String]) {
        if !self.monitor.supported || self.connection != ConnectionState::Connected {
            return;
        }
        let mut added = Vec::new();
        for nick in nicks {
            let key = casefold(nick);
            let full = self
                .monitor
                .limit
                .is_some_and(|limit| self.monitor.watched.len() >= limit);
            if full || self.monitor.watched.contains(&key) {
                continue;
            }
            self.monitor.watched.push(key);
            added.push(nick.clone());
        }
        self.outbox.extend(monitor_lines("+", &added));
    }

    fn monitor_remove(&mut self, nick: &str, out: &mut Vec<String>) {
        let key = casefold(nick);
        let before = self.monitor.watched.len();
        self.monitor.watched.retain(|n| *n != key);
        if self.monitor.watched.len() != before && self.connection == ConnectionState::Connected {
            // "MONITOR - target: Removes the given list of targets..."
            out.push(irc_line("MONITOR", &["-", nick], None));
        }
    }

    /// A private conversation was opened: watch its peer, and ask for its read marker
    /// ("...except for user targets where they have to request the initial read timestamp").
    pub(super) fn query_opened(&mut self, nick: &str) {
        self.monitor_add(&[nick.to_string()]);
        if self.has_cap("draft/read-marker") && self.connection == ConnectionState::Connected {
            self.outbox.push(irc_line("MARKREAD", &[nick], None));
        }
    }

    /// A private conversation was closed: stop watching its peer.
    pub(super) fn query_closed(&mut self, nick: &str, out: &mut Vec<String>) {
        self.monitor_remove(nick, out);
    }

    /// A conversation's peer changed nick (the buffer follows): watch the new nick instead.
    pub(super) fn query_renamed(&mut self, old: &str, new: &str) {
        let mut out = Vec::new();
        self.monitor_remove(old, &mut out);
        self.outbox.extend(out);
        self.monitor_add(&[new.to_string()]);
    }

    /// 730 (online) and 731 (offline): `target[!user@host][,target...]`.
    pub(super) fn on_monitor_status(&mut self, online: bool, list: &str) {
        for target in list.split(',').filter(|t| !t.is_empty()) {
            let nick = target.split('!').next().unwrap_or(target);
            if let Some(index) = self.find(nick) {
                let buffer = &mut self.buffers[index];
                if buffer.kind == BufferKind::Query {
                    buffer.online = Some(online);
                }
            }
        }
    }

    /// 734: the list is full; those targets are not watched.
    pub(super) fn on_monitor_full(&mut self, targets: &str) {
        for nick in targets.split(',') {
            let key = casefold(nick);
            self.monitor.watched.retain(|n| *n != key);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::input::Action;
    use crate::state::tests::{connected, feed, state};
    use crate::state::Auth;

    #[test]
    fn open_conversations_are_monitored_and_shown_online() {
        let mut s = connected("");
        feed(
            &mut s,
            &[":bob!u@h PRIVMSG me :hi", ":carol!u@h PRIVMSG me :yo"],
        );
        // "Support of this specification is indicated by the MONITOR token in RPL_ISUPPORT"
        let out = feed(&mut s, &[":srv 005 me MONITOR=100 :are supported"]);
        assert_eq!(out, ["MONITOR + bob,carol"]);
        // "730 - RPL_MONONLINE :<server> 730 <nick> :target[!user@host][,target[!user@host]]*"
        feed(&mut s, &[":srv 730 me :bob!u@h"]);
        // "731 - RPL_MONOFFLINE :<server> 731 <nick> :target[,target2]*"; "*" for the nick.
        feed(&mut s, &[":srv 731 * :carol"]);
        assert_eq!(s.buffer("bob").and_then(|b| b.online), Some(true));
        assert_eq!(s.buffer("carol").and_then(|b| b.online), Some(false));
        feed(&mut s, &[":srv 731 me :bob", ":srv 730 me :carol!c@h"]);
        assert_eq!(s.buffer("bob").and_then(|b| b.online), Some(false));
        assert_eq!(s.buffer("carol").and_then(|b| b.online), Some(true));
        // Nothing of it lands in the server buffer.
        assert!(!s.buffers()[0]
            .lines
            .iter()
            .any(|l| l.text.contains("carol")));

        // A new conversation is added at once; "Targets already in the list MUST NOT be added
        // again."
        let out = s
            .act(Action::Query {
                nick: "dave".into(),
                text: None,
            })
            .expect("query");
        assert_eq!(out, ["MONITOR + dave"]);
        let out = s
            .act(Action::Msg {
                target: "Dave".into(),
                text: "hi".into(),
            })
            .expect("msg");
        assert_eq!(out, ["PRIVMSG Dave :hi"]);
        // Closing it removes it; a nick change follows the peer.
        s.set_active_by_name("dave");
        assert_eq!(s.act(Action::Close).expect("close"), ["MONITOR - dave"]);
        let out = feed(&mut s, &[":bob!u@h NICK bobby"]);
        assert_eq!(out, ["MONITOR - bob", "MONITOR + bobby"]);
    }

    #[test]
    fn the_limit_is_kept_and_reconnects_watch_again() {
        let mut s = connected("");
        feed(
            &mut s,
            &[
                ":a!u@h PRIVMSG me :1",
                ":b!u@h PRIVMSG me :2",
                ":c!u@h PRIVMSG me :3",
            ],
        );
        assert_eq!(
            feed(&mut s, &[":srv 005 me MONITOR=2 :are supported"]),
            ["MONITOR + a,b"]
        );
        // "734 - ERR_MONLISTFULL" frees the slot we thought taken.
        feed(&mut s, &[":srv 734 me 2 b :Monitor list is full."]);
        s.on_disconnected("gone");
        s.on_connected(false, Auth::Guest);
        let out = feed(
            &mut s,
            &[":srv 001 me :Welcome", ":srv 005 me MONITOR :are supported"],
        );
        assert_eq!(out, ["MONITOR + a,b,c"], "no limit given: no limit");
    }

    #[test]
    fn without_the_token_nothing_is_sent() {
        let mut s = state();
        s.on_connected(false, Auth::Guest);
        let out = feed(&mut s, &[":srv 001 me :Welcome", ":bob!u@h PRIVMSG me :hi"]);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(s.buffer("bob").and_then(|b| b.online), None);
    }
}
