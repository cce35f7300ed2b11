//! One event from a user, relayed to many: serialized at most once per wire variant, however many
//! recipients there are. Variants exist because some capabilities change the bytes a client gets
//! (`server-time` and `message-tags` add tags, `account-tag` adds the sender's account,
//! `extended-join` adds JOIN parameters); everyone with the same variant shares one buffer, so
//! fan-out stays "serialize once, append everywhere". A relay owns its parts so it can wait in
//! the history writer until its message is stored.

use std::cell::OnceCell;

use parley_proto::write_line;

use std::sync::Arc;

use crate::clock::{format_time, now_ms};
use crate::outbound::{HeldWakes, Outbound};

/// Bits of [`Outbound::wire_caps`].
pub mod wire {
    pub const ACCOUNT_TAG: u8 = 1;
    pub const EXTENDED_JOIN: u8 = 2;
    pub const SERVER_TIME: u8 = 4;
    pub const MESSAGE_TAGS: u8 = 8;
    /// Not a variant bit: who gets ACCOUNT notifications.
    pub const ACCOUNT_NOTIFY: u8 = 16;
    /// Not a variant bit: the sender gets its own messages back.
    pub const ECHO_MESSAGE: u8 = 32;
    /// Not a variant bit: gets RENAME (draft/channel-rename) rather than its PART/JOIN fallback.
    pub const CHANNEL_RENAME: u8 = 64;
}

/// Serialize one line without tags. Middle parameters often echo what a client sent (a bad nick,
/// an unknown channel); one that would break the line (empty, a space, a leading ':') is sent as
/// `*` instead, so a client can never inject parameters into a reply.
pub fn line(
    source: Option<&str>,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> Vec<u8> {
    // Sized up front: growing the line as it is written cost more than writing it.
    let size = source.map_or(0, |s| s.len() + 2)
        + command.len()
        + middle.iter().map(|p| p.len() + 1).sum::<usize>()
        + trailing.map_or(0, |t| t.len() + 2)
        + 2;
    let mut out = Vec::with_capacity(size);
    let breaks_line = |p: &&str| {
        p.is_empty()
            || p.starts_with(':')
            || p.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0))
    };
    if middle.iter().any(breaks_line) {
        let safe: Vec<&str> = middle
            .iter()
            .map(|p| if breaks_line(p) { "*" } else { *p })
            .collect();
        write_line(&mut out, &[], source, command, &safe, trailing);
    } else {
        write_line(&mut out, &[], source, command, middle, trailing);
    }
    out
}

/// A tag value escaped for the wire.
pub fn escape_tag(value: &str) -> String {
    let mut out = Vec::new();
    parley_proto::escape_tag_value(value, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Add one tag (`key=value`, already escaped) to a serialized line.
pub fn with_tag(line: &[u8], tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + tag.len() + 2);
    out.push(b'@');
    out.extend_from_slice(tag.as_bytes());
    match line.strip_prefix(b"@") {
        Some(rest) => {
            out.push(b';');
            out.extend_from_slice(rest);
        }
        None => {
            out.push(b' ');
            out.extend_from_slice(line);
        }
    }
    out
}

pub struct Relay {
    source: String,
    account: Option<String>,
    command: &'static str,
    middle: Vec<String>,
    trailing: Option<String>,
    /// For JOIN: the account (or `*`) and realname that `extended-join` clients get.
    extended_join: Option<(String, String)>,
    time_ms: i64,
    msgid: Option<String>,
    /// The sender is a bot (`+B`): `message-tags` clients get the `bot` tag (IRCv3 bot-mode).
    bot: bool,
    variants: [OnceCell<Vec<u8>>; 16],
}

impl Relay {
    pub fn new(
        source: &str,
        account: Option<&str>,
        command: &'static str,
        middle: &[&str],
        trailing: Option<&str>,
    ) -> Self {
        Relay {
            source: source.to_string(),
            account: account.map(str::to_string),
            command,
            middle: middle.iter().map(|m| m.to_string()).collect(),
            trailing: trailing.map(str::to_string),
            extended_join: None,
            time_ms: now_ms(),
            msgid: None,
            bot: false,
            variants: Default::default(),
        }
    }

    pub fn with_extended_join(mut self, account: &str, realname: &str) -> Self {
        self.extended_join = Some((account.to_string(), realname.to_string()));
        self
    }

    /// The stored message's id and time, so every recipient sees the same `msgid` and `time`.
    pub fn with_identity(mut self, msgid: &str, time_ms: i64) -> Self {
        self.msgid = Some(msgid.to_string());
        self.time_ms = time_ms;
        self
    }

    /// Mark the sender a bot (user mode `+B`): the `bot` tag for `message-tags` clients.
    pub fn with_bot(mut self, bot: bool) -> Self {
        self.bot = bot;
        self
    }

    /// The bytes a client with these wire capabilities gets.
    pub fn bytes_for(&self, caps: u8) -> &[u8] {
        let tagged = caps & wire::ACCOUNT_TAG != 0 && self.account.is_some();
        let extended = caps & wire::EXTENDED_JOIN != 0 && self.extended_join.is_some();
        let timed = caps & wire::SERVER_TIME != 0;
        let message_tags = caps & wire::MESSAGE_TAGS != 0 && (self.msgid.is_some() || self.bot);
        let index = usize::from(tagged)
            | usize::from(extended) << 1
            | usize::from(timed) << 2
            | usize::from(message_tags) << 3;
        self.variants[index].get_or_init(|| {
            let time = timed.then(|| format_time(self.time_ms));
            let mut tags: Vec<(&str, Option<&str>)> = Vec::with_capacity(3);
            if let (true, Some(account)) = (tagged, &self.account) {
                tags.push(("account", Some(account)));
            }
            if message_tags && self.bot {
                tags.push(("bot", None));
            }
            if let (true, Some(msgid)) = (message_tags, &self.msgid) {
                tags.push(("msgid", Some(msgid)));
            }
            if let Some(time) = &time {
                tags.push(("time", Some(time)));
            }
            let mut middle: Vec<&str> = self.middle.iter().map(String::as_str).collect();
            let mut trailing = self.trailing.as_deref();
            if let (true, Some((account, realname))) = (extended, &self.extended_join) {
                middle.push(account);
                trailing = Some(realname);
            }
            let mut out = Vec::with_capacity(128);
            write_line(
                &mut out,
                &tags,
                Some(&self.source),
                self.command,
                &middle,
                trailing,
            );
            out
        })
    }

    /// Queue this event for one recipient. A full queue disconnects that recipient, not us.
    pub fn send_to(&self, recipient: &Outbound) {
        let _ = recipient.push(self.bytes_for(recipient.wire_caps()));
    }

    /// Like [`Relay::send_to`], with the recipient's wake-up left to `held`.
    pub fn send_held(&self, recipient: &Arc<Outbound>, held: &mut HeldWakes) {
        let _ = recipient.push_held(self.bytes_for(recipient.wire_caps()), held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_differ_only_where_caps_ask() {
        let relay = Relay::new("a!b@c", Some("acct"), "JOIN", &["#c"], None)
            .with_extended_join("acct", "Real Name");
        assert_eq!(relay.bytes_for(0), b":a!b@c JOIN #c\r\n");
        assert_eq!(
            relay.bytes_for(wire::ACCOUNT_TAG),
            b"@account=acct :a!b@c JOIN #c\r\n"
        );
        assert_eq!(
            relay.bytes_for(wire::EXTENDED_JOIN),
            b":a!b@c JOIN #c acct :Real Name\r\n"
        );
        let both = relay.bytes_for(wire::EXTENDED_JOIN | wire::ACCOUNT_TAG);
        assert_eq!(both, b"@account=acct :a!b@c JOIN #c acct :Real Name\r\n");
    }

    #[test]
    fn guests_get_no_account_tag() {
        let relay = Relay::new("a!b@c", None, "PRIVMSG", &["#c"], Some("hi there"));
        assert_eq!(
            relay.bytes_for(wire::ACCOUNT_TAG),
            b":a!b@c PRIVMSG #c :hi there\r\n"
        );
    }

    #[test]
    fn time_and_msgid_tags() {
        let relay = Relay::new("a!b@c", None, "PRIVMSG", &["#c"], Some("hi"))
            .with_identity("abc123", 1_700_000_000_123);
        assert_eq!(
            relay.bytes_for(wire::SERVER_TIME | wire::MESSAGE_TAGS),
            b"@msgid=abc123;time=2023-11-14T22:13:20.123Z :a!b@c PRIVMSG #c :hi\r\n"
        );
        assert_eq!(
            relay.bytes_for(wire::MESSAGE_TAGS),
            b"@msgid=abc123 :a!b@c PRIVMSG #c :hi\r\n"
        );
        assert_eq!(
            relay.bytes_for(wire::ECHO_MESSAGE),
            b":a!b@c PRIVMSG #c :hi\r\n"
        );
    }

    #[test]
    fn the_bot_tag_goes_only_to_message_tags_clients() {
        let relay = Relay::new("b!b@c", None, "JOIN", &["#c"], None).with_bot(true);
        assert_eq!(relay.bytes_for(0), b":b!b@c JOIN #c\r\n");
        assert_eq!(
            relay.bytes_for(wire::MESSAGE_TAGS),
            b"@bot :b!b@c JOIN #c\r\n"
        );
    }

    #[test]
    fn each_variant_is_serialized_once() {
        let relay = Relay::new("a!b@c", Some("acct"), "PRIVMSG", &["bob"], Some("x"));
        let first = relay.bytes_for(wire::ACCOUNT_TAG).as_ptr();
        let second = relay.bytes_for(wire::ACCOUNT_TAG).as_ptr();
        assert_eq!(first, second, "the same buffer is shared");
    }
}
