//! IRCv3 `draft/webpush`: browser push notifications for accounts. The server's VAPID key
//! ([`vapid`]) signs each push and the browser's keys encrypt it (RFC 8291, by
//! `web-push-native`), so the push service reads nothing. A push never slows chat: handlers
//! hand a [`Push`] to a bounded queue with `try_send` (a full queue drops it and counts), and
//! one background task ([`sender::run`]) looks up the account's subscriptions on its own store
//! connection and POSTs with bounded concurrency and a timeout. Endpoints come from clients,
//! so [`endpoint`] keeps them to `https://` on public addresses.

pub mod endpoint;
mod sender;
pub mod vapid;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::{Config, PushWhen, WebPushConfig};
use crate::store::{PushStore, StoreError, StoredMessage};

pub use endpoint::EndpointError;
pub use sender::run;
pub use vapid::{Vapid, VapidError};

/// The capability.
pub const CAP: &str = "draft/webpush";

/// Largest IRC line a push carries. A push service must take 4096 bytes of body (RFC 8030
/// section 7.2); RFC 8291's header and padding take 103 of them, and some room is left.
pub const MAX_PAYLOAD: usize = 3800;

#[derive(Debug, thiserror::Error)]
pub enum WebPushError {
    #[error(transparent)]
    Vapid(#[from] VapidError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot set up TLS for pushes: {0}")]
    Tls(String),
}

/// One IRC line to push to every subscription of one account.
#[derive(Debug)]
pub struct Push {
    /// The casefolded account.
    pub account: String,
    /// The line, without CRLF.
    pub payload: Vec<u8>,
}

/// A started push service and the receiving end of its queue, for [`sender::run`].
pub type Opened = (Arc<WebPush>, mpsc::Receiver<Push>);

/// The push service as handlers see it: the key, the rules, and the way into the queue.
pub struct WebPush {
    pub config: WebPushConfig,
    pub vapid: Vapid,
    allowed: endpoint::Allowed,
    store: Arc<dyn PushStore>,
    queue: mpsc::Sender<Push>,
    dropped: AtomicU64,
}

impl WebPush {
    /// With `webpush.enabled`, the service and the receiving end of its queue (for
    /// [`sender::run`]); the VAPID key is read or made here, so a broken key file stops the
    /// start with its name.
    pub fn open(config: &Config) -> Result<Option<Opened>, WebPushError> {
        if !config.webpush.enabled {
            return Ok(None);
        }
        let vapid = Vapid::load_or_create(&config.server.data_dir)?;
        let store = crate::store::open_push(config)?;
        let (queue, jobs) = mpsc::channel(config.webpush.queue);
        let service = WebPush {
            allowed: endpoint::Allowed::new(&config.webpush.allow_insecure_endpoints),
            config: config.webpush.clone(),
            vapid,
            store,
            queue,
            dropped: AtomicU64::new(0),
        };
        Ok(Some((Arc::new(service), jobs)))
    }

    /// The capability's value: `vapid=<public key>`.
    pub fn cap_value(&self) -> String {
        format!("vapid={}", self.vapid.public_key())
    }

    /// Whether pushes go out while the account has a connected session too.
    pub fn always(&self) -> bool {
        self.config.push_when == PushWhen::Always
    }

    pub fn store(&self) -> &Arc<dyn PushStore> {
        &self.store
    }

    /// Check an endpoint a client registers (no DNS: that is done at every push).
    pub fn check_endpoint(&self, endpoint: &str) -> Result<hyper::Uri, EndpointError> {
        endpoint::check(endpoint, &self.allowed)
    }

    /// Queue `message` for `account`'s subscriptions without waiting: a full queue drops it.
    pub fn push(&self, account: &str, message: &StoredMessage) {
        let push = Push {
            account: parley_proto::casefold(account),
            payload: payload(message),
        };
        if self.queue.try_send(push).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "web push queue full (webpush.queue): pushes dropped so far"
                );
            }
        }
    }

    /// Whether `p256dh` and `auth` are keys a push can be encrypted for.
    pub fn keys_usable(p256dh: &str, auth: &str) -> bool {
        sender::decode_keys(p256dh, auth).is_ok()
    }
}

/// The IRC line a push carries, without CRLF: as a client with `message-tags`, `server-time`
/// and `account-tag` gets it (what the web client asks for). "Servers MAY drop some or all
/// message tags ... MUST NOT drop the msgid tag": a line over [`MAX_PAYLOAD`] loses the
/// sender's client-only tags first, then the end of its text.
pub fn payload(message: &StoredMessage) -> Vec<u8> {
    use crate::relay::{wire, Relay};
    let caps = wire::MESSAGE_TAGS | wire::SERVER_TIME | wire::ACCOUNT_TAG;
    let strip = |mut line: Vec<u8>| {
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        line
    };
    let full = strip(Relay::of_message(message).bytes_for(caps).to_vec());
    if full.len() <= MAX_PAYLOAD {
        return full;
    }
    let bare = Relay::of_message(message).with_client_tags("");
    let line = strip(bare.bytes_for(caps).to_vec());
    if line.len() <= MAX_PAYLOAD {
        return line;
    }
    let over = line.len() - MAX_PAYLOAD;
    let mut keep = message.text.len().saturating_sub(over);
    while !message.text.is_char_boundary(keep) {
        keep -= 1;
    }
    let shorter = StoredMessage {
        text: message.text[..keep].to_owned(),
        tags: String::new(),
        ..message.clone()
    };
    strip(Relay::of_message(&shorter).bytes_for(caps).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str, tags: &str) -> StoredMessage {
        StoredMessage {
            msgid: "abc".to_owned(),
            time_ms: 0,
            target: "x".to_owned(),
            kind: "PRIVMSG".to_owned(),
            source: "alice!a@host".to_owned(),
            account: Some("alice".to_owned()),
            to: "bob".to_owned(),
            text: text.to_owned(),
            tags: tags.to_owned(),
        }
    }

    #[test]
    fn the_payload_is_one_line_with_its_msgid_and_bounded() {
        let line =
            String::from_utf8(payload(&message("hi there", "+draft/reply=x"))).expect("utf8");
        assert!(line.contains("msgid=abc"), "{line}");
        assert!(line.ends_with(" PRIVMSG bob :hi there"), "{line}");
        assert!(!line.contains('\n'));
        let long = "é".repeat(3000);
        let line = payload(&message(&long, "+draft/reply=x"));
        assert!(line.len() <= MAX_PAYLOAD, "{}", line.len());
        let line = String::from_utf8(line).expect("cut at a character boundary");
        assert!(
            line.contains("msgid=abc") && !line.contains("draft/reply"),
            "{line}"
        );
    }
}
