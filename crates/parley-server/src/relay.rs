//! One event from a user, relayed to many: serialized at most once per wire variant, however many
//! recipients there are. Variants exist because some capabilities change the bytes a client gets
//! (`server-time` and `message-tags` add tags, `account-tag` adds the sender's account,
//! `extended-join` adds JOIN parameters); everyone with the same variant shares one buffer, so
//! fan-out stays "serialize once, append everywhere". A message's client-only tags (`+typing`
//! ...) ride in the `message-tags` variants only, and a `TAGMSG` has no bytes at all for the
//! other variants, so choosing among them is still the only per-recipient work. A relay owns its parts so it can wait in
//! the history writer until its message is stored.

use std::cell::OnceCell;

use parley_proto::write_line;

use std::sync::Arc;

use crate::clock::{format_time, now_ms};
use crate::outbound::{HeldWakes, Outbound};
use crate::store::StoredMessage;

/// Bits of [`Outbound::wire_caps`].
pub mod wire {
    pub const ACCOUNT_TAG: u16 = 1;
    pub const EXTENDED_JOIN: u16 = 2;
    pub const SERVER_TIME: u16 = 4;
    pub const MESSAGE_TAGS: u16 = 8;
    /// Not a variant bit: who gets ACCOUNT notifications.
    pub const ACCOUNT_NOTIFY: u16 = 16;
    /// Not a variant bit: the sender gets its own messages back.
    pub const ECHO_MESSAGE: u16 = 32;
    /// Not a variant bit: who gets MARKREAD updates from the account's other sessions.
    pub const READ_MARKER: u16 = 64;
    /// Not a variant bit: who gets a `draft/multiline` batch whole (the rest get its lines).
    pub const MULTILINE: u16 = 128;
    /// Not a variant bit: who gets REDACT.
    pub const MESSAGE_REDACTION: u16 = 256;
    /// Not a variant bit: gets RENAME (draft/channel-rename) rather than its PART/JOIN fallback.
    pub const CHANNEL_RENAME: u16 = 512;
    /// Not a variant bit: `multi-prefix`, for the NAMES another session's JOIN brings.
    pub const MULTI_PREFIX: u16 = 1024;
    /// Not a variant bit: `userhost-in-names`, for the same.
    pub const USERHOST_IN_NAMES: u16 = 2048;
}

/// Bits of [`Outbound::notify_caps`]: the notifications a client asked for, which decide who
/// gets a line at all (never which bytes), so they are kept apart from the [`wire`] variants.
pub mod notify {
    pub const AWAY_NOTIFY: u8 = 1;
    pub const SETNAME: u8 = 2;
    pub const INVITE_NOTIFY: u8 = 4;
    pub const EXTENDED_MONITOR: u8 = 8;
    /// `account-notify`, for `extended-monitor`'s ACCOUNT lines to watchers.
    pub const ACCOUNT_NOTIFY: u8 = 16;
    /// `cap-notify`: told of capabilities that come and go (CAP NEW / CAP DEL).
    pub const CAP_NOTIFY: u8 = 32;
    /// `chghost`: told of username and host changes with CHGHOST rather than QUIT and JOIN.
    pub const CHGHOST: u8 = 64;
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
    /// The sender's client-only tags, escaped as received (`+a=1;+b`), for `message-tags`
    /// clients only.
    client_tags: Option<String>,
    /// A `TAGMSG`: nothing at all for clients without `message-tags`.
    tags_only: bool,
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
            client_tags: None,
            tags_only: false,
            bot: false,
            variants: Default::default(),
        }
    }

    /// A user's message (`PRIVMSG`, `NOTICE` or `TAGMSG`) with its id, time and client-only
    /// tags, as stored (a TAGMSG is not, but takes the same form on its way).
    pub fn of_message(message: &StoredMessage) -> Self {
        let (verb, text) = match message.kind.as_str() {
            "NOTICE" => ("NOTICE", Some(message.text.as_str())),
            "TAGMSG" => ("TAGMSG", None),
            _ => ("PRIVMSG", Some(message.text.as_str())),
        };
        let relay = Relay::new(
            &message.source,
            message.account.as_deref(),
            verb,
            &[&message.to],
            text,
        )
        .with_identity(&message.msgid, message.time_ms)
        .with_client_tags(&message.tags);
        if verb == "TAGMSG" {
            relay.tags_only()
        } else {
            relay
        }
    }

    /// The sender's client-only tags (see `parley_proto::Tags::client_only`); none if empty.
    pub fn with_client_tags(mut self, tags: &str) -> Self {
        self.client_tags = (!tags.is_empty()).then(|| tags.to_string());
        self
    }

    /// A `TAGMSG`: "Servers MUST NOT deliver TAGMSG to clients that haven't negotiated the
    /// message tags capability" (ircv3.net message-tags).
    pub fn tags_only(mut self) -> Self {
        self.tags_only = true;
        self
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

    /// The bytes a client with these wire capabilities gets; empty for a `TAGMSG` to a client
    /// without `message-tags`, which gets nothing.
    pub fn bytes_for(&self, caps: u16) -> &[u8] {
        if self.tags_only && caps & wire::MESSAGE_TAGS == 0 {
            return &[];
        }
        let tagged = caps & wire::ACCOUNT_TAG != 0 && self.account.is_some();
        let extended = caps & wire::EXTENDED_JOIN != 0 && self.extended_join.is_some();
        let timed = caps & wire::SERVER_TIME != 0;
        // Every tag only `message-tags` clients get decides the variant, so two clients that
        // differ in that cap never share bytes.
        let message_tags = caps & wire::MESSAGE_TAGS != 0
            && (self.msgid.is_some() || self.bot || self.client_tags.is_some());
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
            match (&self.client_tags, caps & wire::MESSAGE_TAGS != 0) {
                // "Any server-initiated tags attached to messages MUST be included before
                // client-only tags" (ircv3.net message-tags): they go last, verbatim.
                (Some(client), true) => append_client_tags(out, client),
                _ => out,
            }
        })
    }

    /// Queue this event for one recipient. A full queue disconnects that recipient, not us.
    pub fn send_to(&self, recipient: &Outbound) {
        let bytes = self.bytes_for(recipient.wire_caps());
        if !bytes.is_empty() {
            let _ = recipient.push(bytes);
        }
    }

    /// Like [`Relay::send_to`], with the recipient's wake-up left to `held`.
    pub fn send_held(&self, recipient: &Arc<Outbound>, held: &mut HeldWakes) {
        let bytes = self.bytes_for(recipient.wire_caps());
        if !bytes.is_empty() {
            let _ = recipient.push_held(bytes, held);
        }
    }
}

/// `line` with the client-only tags `client` (escaped) after its own tags.
pub fn append_client_tags(line: Vec<u8>, client: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + client.len() + 2);
    match line.strip_prefix(b"@") {
        Some(rest) => {
            let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
            out.push(b'@');
            out.extend_from_slice(&rest[..end]);
            out.push(b';');
            out.extend_from_slice(client.as_bytes());
            out.extend_from_slice(&rest[end..]);
        }
        None => {
            out.push(b'@');
            out.extend_from_slice(client.as_bytes());
            out.push(b' ');
            out.extend_from_slice(&line);
        }
    }
    out
}

/// `:server MARKREAD <target> timestamp=<time>` (IRCv3 `draft/read-marker`), or `*` for no
/// marker yet.
pub fn read_marker_line(server: &str, target: &str, time_ms: Option<i64>) -> Vec<u8> {
    let stamp = match time_ms {
        Some(ms) => format!("timestamp={}", format_time(ms)),
        None => "*".to_string(),
    };
    line(Some(server), "MARKREAD", &[target, &stamp], None)
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
    fn client_tags_follow_the_server_tags_for_message_tags_clients_only() {
        let relay = Relay::new("a!b@c", None, "PRIVMSG", &["#c"], Some("hi"))
            .with_identity("m1", 1_700_000_000_123)
            .with_client_tags("+draft/reply=m0;+example.com/x=y\\sz");
        assert_eq!(
            relay.bytes_for(wire::MESSAGE_TAGS),
            b"@msgid=m1;+draft/reply=m0;+example.com/x=y\\sz :a!b@c PRIVMSG #c :hi\r\n"
        );
        assert_eq!(
            relay.bytes_for(wire::SERVER_TIME),
            b"@time=2023-11-14T22:13:20.123Z :a!b@c PRIVMSG #c :hi\r\n"
        );
        assert_eq!(relay.bytes_for(0), b":a!b@c PRIVMSG #c :hi\r\n");
        let bare = Relay::new("a!b@c", None, "PRIVMSG", &["#c"], Some("hi")).with_client_tags("+t");
        assert_eq!(
            bare.bytes_for(wire::MESSAGE_TAGS),
            b"@+t :a!b@c PRIVMSG #c :hi\r\n"
        );
    }

    #[test]
    fn a_tagmsg_has_no_bytes_for_clients_without_message_tags() {
        let relay = Relay::new("a!b@c", None, "TAGMSG", &["#c"], None)
            .with_client_tags("+typing=active")
            .tags_only();
        assert_eq!(relay.bytes_for(wire::SERVER_TIME | wire::ACCOUNT_TAG), b"");
        assert_eq!(
            relay.bytes_for(wire::MESSAGE_TAGS),
            b"@+typing=active :a!b@c TAGMSG #c\r\n"
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
