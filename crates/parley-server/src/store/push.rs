//! Web push subscriptions (IRCv3 `draft/webpush`): per account, keyed by the push service's
//! endpoint URL, with the browser's P-256 public key and auth secret the pushes are encrypted
//! for. Its own trait beside [`super::AccountStore`], so the push sender holds a connection of
//! its own and a slow push never waits behind a login.

use super::StoreError;

/// One browser's (or device's) subscription, as `WEBPUSH REGISTER` gave it.
#[derive(Clone, PartialEq, Eq)]
pub struct PushSubscription {
    /// The push service URL the encrypted message is POSTed to.
    pub endpoint: String,
    /// The client's P-256 ECDH public key, URL-safe base64 as sent.
    pub p256dh: String,
    /// The client's 16-byte authentication secret, URL-safe base64 as sent.
    pub auth: String,
}

// Hand-written: the endpoint is a capability URL (whoever knows it can push to the browser) and
// the auth secret is a secret; neither belongs in a log line.
impl std::fmt::Debug for PushSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSubscription")
            .field("endpoint", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What [`PushStore::register_push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Added,
    /// The account had this endpoint already: its keys were replaced (the spec's "MUST replace
    /// any previous subscription with the same endpoint").
    Replaced,
    /// The account holds `max` subscriptions already; nothing changed.
    Full,
}

/// Where push subscriptions are kept. Account names are casefolded by the backend; every
/// method blocks.
pub trait PushStore: Send + Sync {
    /// Add `subscription` for `account`, or replace the one with its endpoint; refused
    /// ([`Registered::Full`]) when that would make more than `max`. [`StoreError::NotFound`]
    /// when the account is gone.
    fn register_push(
        &self,
        account: &str,
        subscription: &PushSubscription,
        max: usize,
    ) -> Result<Registered, StoreError>;
    /// Remove `account`'s subscription to `endpoint`; whether there was one.
    fn unregister_push(&self, account: &str, endpoint: &str) -> Result<bool, StoreError>;
    /// `account`'s subscriptions, oldest first.
    fn push_subscriptions(&self, account: &str) -> Result<Vec<PushSubscription>, StoreError>;
}
