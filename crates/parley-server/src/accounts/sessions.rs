//! Login sessions: a bearer token that stands in for the password, so the web client stays
//! logged in across a reload without keeping the password anywhere. A logged-in connection asks
//! for one (`SESSION NEW`), and logs in with it later through SASL `IRCV3BEARER` with the token
//! type [`TOKEN_TYPE`].
//!
//! A token is 32 bytes from the operating system's random source (base64url, 43 characters), so
//! it cannot be guessed; the store keeps only its SHA-256, which is enough for a secret of that
//! entropy (no salt or slow hash needed) and means a copy of the database logs no one in. A token
//! login still goes through the same lockout and failure delays as a password, and is refused for
//! a locked account. Sessions end when used up (`web.session_days` unused), revoked one by one
//! (`SESSION REVOKE`, the web client's `/logout`), or all at once by a password change, a lock,
//! the account's removal or `parleyd users logout`; an account keeps at most
//! `web.max_sessions`, the least recently used going first.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use parley_proto::casefold;
use sha2::{Digest, Sha256};

use super::{Accounts, LoginError};
use crate::store::{SessionRecord, StoreError};

/// The IRCV3BEARER token type of our sessions (vendor-prefixed, as the draft asks of new types).
pub const TOKEN_TYPE: &str = "parley.chat/session";

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// Longest label kept, in characters.
pub const MAX_LABEL_CHARS: usize = 80;

/// What the failures of token logins that name no account count against: a token that matches
/// no session belongs to no one we could name.
const UNNAMED_TOKEN: &str = "*";

/// A freshly issued session: the token is shown to the client once and never stored.
pub struct IssuedSession {
    pub token: String,
    /// Seconds since the Unix epoch.
    pub expires_at: i64,
}

impl std::fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSession")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The SHA-256 of a token in lowercase hex: how the store names a session.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A label as kept: printable characters only, at most [`MAX_LABEL_CHARS`].
pub fn clean_label(label: &str) -> String {
    label
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_LABEL_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

impl Accounts {
    fn session_expiry(&self, now: i64) -> i64 {
        now.saturating_add(self.session_secs)
    }

    /// Issue a session for an account a connection is logged in to.
    pub async fn issue_session(
        &self,
        account: &str,
        label: &str,
    ) -> Result<IssuedSession, StoreError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|error| StoreError::Backend(format!("no OS random source: {error}")))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = unix_now();
        let expires_at = self.session_expiry(now);
        let (store, account, hash, label, keep) = (
            Arc::clone(&self.store),
            account.to_owned(),
            token_hash(&token),
            clean_label(label),
            self.max_sessions,
        );
        blocking(move || store.create_session(&account, &hash, &label, now, expires_at, keep))
            .await?;
        Ok(IssuedSession { token, expires_at })
    }

    /// Check a token login. Returns the account name as registered and the token's hash (the
    /// connection's handle on its session, for `SESSION REVOKE`).
    ///
    /// `authzid`, when given, must name the token's account. The session is looked up first
    /// (an indexed read of a hash, no secret-dependent work), so the lockout can count the
    /// attempt against the account it names; then the attempt is taken up, refused or counted
    /// as a failure exactly as a password would be.
    pub async fn session_login(
        &self,
        authzid: Option<&str>,
        token: &str,
        ip: IpAddr,
    ) -> Result<(String, String), LoginError> {
        let hash = token_hash(token);
        let (store, lookup) = (Arc::clone(&self.store), hash.clone());
        let record = blocking(move || store.session(&lookup)).await?;
        let named = match (&record, authzid) {
            (Some(record), _) => record.account.clone(),
            (None, Some(authzid)) => authzid.to_owned(),
            (None, None) => UNNAMED_TOKEN.to_owned(),
        };
        let guess = self.begin_guess(&named, &casefold(&named), ip).await?;
        let now = unix_now();
        let live = record.filter(|record| record.expires_at > now);
        let Some(SessionRecord { account, .. }) = live else {
            if self.store_expired(&hash, now).await {
                tracing::info!(account = %named, %ip, "token login refused: session expired");
            }
            return Err(self
                .failed_login(guess, &named, ip, LoginError::SessionEnded)
                .await);
        };
        if authzid.is_some_and(|authzid| casefold(authzid) != casefold(&account)) {
            return Err(self
                .failed_login(guess, &named, ip, LoginError::Invalid)
                .await);
        }
        let (store, name) = (Arc::clone(&self.store), account.clone());
        let locked = match blocking(move || store.account(&name)).await {
            Ok(record) => record.is_none_or(|record| record.locked),
            Err(error) => {
                drop(guess); // not a guess: it was never checked
                return Err(error.into());
            }
        };
        if locked {
            tracing::warn!(%account, %ip, "token login refused: account suspended or gone");
            return Err(self
                .failed_login(guess, &named, ip, LoginError::Disabled)
                .await);
        }
        self.succeeded(guess, &named, ip).await?;
        let (store, touched, expires_at) = (
            Arc::clone(&self.store),
            hash.clone(),
            self.session_expiry(now),
        );
        if let Err(error) = blocking(move || store.touch_session(&touched, now, expires_at)).await {
            tracing::warn!(%account, %error, "session use not recorded");
        }
        self.remember_name(&account);
        tracing::info!(%account, %ip, "token login succeeded");
        Ok((account, hash))
    }

    /// Forget an expired session found at a login; whether there was one.
    async fn store_expired(&self, hash: &str, now: i64) -> bool {
        let (store, hash) = (Arc::clone(&self.store), hash.to_owned());
        blocking(move || match store.session(&hash)? {
            Some(record) if record.expires_at <= now => store.revoke_session(&hash),
            _ => Ok(false),
        })
        .await
        .unwrap_or(false)
    }

    /// Revoke the session whose token hashes to `token_hash`; whether there was one.
    pub async fn revoke_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        let (store, hash) = (Arc::clone(&self.store), token_hash.to_owned());
        blocking(move || store.revoke_session(&hash)).await
    }

    /// Revoke every session of an account; how many there were.
    pub async fn revoke_sessions(&self, account: &str) -> Result<usize, StoreError> {
        let (store, account) = (Arc::clone(&self.store), account.to_owned());
        blocking(move || store.revoke_sessions(&account)).await
    }
}

/// Run a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|error| StoreError::Backend(format!("store task failed: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn labels_lose_control_characters_and_length() {
        assert_eq!(
            clean_label(" Firefox\r\n on\u{7} Linux "),
            "Firefox on Linux"
        );
        assert_eq!(
            clean_label(&"x".repeat(200)).chars().count(),
            MAX_LABEL_CHARS
        );
    }
}
