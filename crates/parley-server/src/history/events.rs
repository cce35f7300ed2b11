//! Which tags-only messages (`TAGMSG`) history keeps, and who may be shown them again.
//!
//! A TAGMSG is kept when it carries a reaction (`+draft/react`) or a reply (`+draft/reply`)
//! with a value, and no `+typing`: a reaction or a reply is part of the conversation, and a
//! client that reloads should show it under the message it belongs to; a typing notice (even
//! one that names what it replies to) means nothing a second later, and every other
//! tags-only message is a client's private business the server cannot judge, so neither is
//! written down. A STATUSMSG TAGMSG is not kept either, like any STATUSMSG.
//!
//! Kept TAGMSGs are played back only to clients that negotiated `draft/event-playback` and
//! `message-tags`: "If the client has not negotiated the `event-playback` capability, the
//! server MUST NOT send any lines other than `PRIVMSG` and `NOTICE` in the reply batch"
//! (ircv3.net chathistory), and "Servers MUST NOT deliver TAGMSG to clients that haven't
//! negotiated the message tags capability" (ircv3.net message-tags). Reads for other clients
//! leave them out in the database, so a `limit` counts only what they are shown.

/// The stored kind of a tags-only message.
pub const TAGMSG: &str = "TAGMSG";

/// The client-only tags (escaped, as relayed: `+a=1;+b`) that make a TAGMSG worth keeping.
const KEPT: &[&str] = &["+draft/react", "+draft/reply"];
/// A TAGMSG with this tag is a typing notice, whatever else it carries.
const TYPING: &str = "+typing";

/// Whether history keeps a message of this `kind` with these client-only `tags` (escaped, as
/// relayed). PRIVMSG and NOTICE always; a TAGMSG by the rule above.
pub fn kept(kind: &str, tags: &str) -> bool {
    if kind != TAGMSG {
        return true;
    }
    // An escaped value never holds a raw ';' (it is written `\:`), so splitting is exact.
    let items = || {
        tags.split(';')
            .filter(|item| !item.is_empty())
            .map(|item| item.split_once('=').unwrap_or((item, "")))
    };
    let typing = items().any(|(key, _)| key == TYPING);
    !typing && items().any(|(key, value)| KEPT.contains(&key) && !value.is_empty())
}

/// Whether a client is shown stored TAGMSGs: it negotiated both `draft/event-playback` and
/// `message-tags`.
pub fn played_back(event_playback: bool, message_tags: bool) -> bool {
    event_playback && message_tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_and_replies_are_kept_typing_is_not() {
        assert!(kept("PRIVMSG", ""));
        assert!(kept("NOTICE", "+typing=active"));
        assert!(kept("TAGMSG", "+draft/react=\u{1F44D};+draft/reply=abc"));
        assert!(kept("TAGMSG", "+draft/reply=abc"));
        assert!(kept("TAGMSG", "+example=1;+draft/react=ok"));
        assert!(!kept("TAGMSG", "+typing=active"));
        assert!(!kept("TAGMSG", "+typing=active;+draft/reply=abc"));
        assert!(!kept("TAGMSG", "+draft/react"));
        assert!(!kept("TAGMSG", "+draft/react="));
        assert!(!kept("TAGMSG", "+draft/reactx=1"));
        assert!(!kept("TAGMSG", "+example=+draft/react"));
        assert!(!kept("TAGMSG", ""));
    }
}
