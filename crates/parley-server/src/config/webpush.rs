//! `[webpush]`: IRCv3 `draft/webpush`, browser push notifications for accounts whose client is
//! closed. The push service's URL comes from a client, so every limit here is also a defence:
//! how many subscriptions an account keeps, how many pushes wait and run at once, how long one
//! may take, and (for tests and LANs only) which hosts may be reached without TLS.

use serde::{Deserialize, Serialize};

/// When a private message or a mention is pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushWhen {
    /// Only when the account has no connected session that could show it (its private
    /// messages are then kept for its next login): what soju does.
    Offline,
    /// Every private message and mention, even while a session is connected; the web
    /// client's service worker shows it.
    Always,
}

/// `[webpush]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebPushConfig {
    /// Offer `draft/webpush` (and make the VAPID key in the data directory on first start).
    pub enabled: bool,
    /// Most push subscriptions (browsers, devices) one account keeps.
    pub max_subscriptions: usize,
    /// See [`PushWhen`].
    pub push_when: PushWhen,
    /// The VAPID `sub` claim: how a push service reaches the operator (`mailto:` or `https:`);
    /// empty sends none.
    pub contact: String,
    /// Pushes waiting to be sent; beyond this new ones are dropped and counted, never waited for.
    pub queue: usize,
    /// Pushes in flight at once.
    pub concurrency: usize,
    /// Longest one push (connect, TLS, request, answer) may take.
    pub timeout_secs: u64,
    /// Hosts (as written in the endpoint URL) that may be reached over plain `http://` and on
    /// loopback or private addresses. For tests and closed LANs only: empty in production.
    pub allow_insecure_endpoints: Vec<String>,
}

impl Default for WebPushConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_subscriptions: 10,
            push_when: PushWhen::Offline,
            contact: String::new(),
            queue: 1024,
            concurrency: 8,
            timeout_secs: 10,
            allow_insecure_endpoints: Vec::new(),
        }
    }
}
