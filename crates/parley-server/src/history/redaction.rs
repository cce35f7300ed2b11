//! Redaction (IRCv3 `draft/message-redaction`): a message found in its conversation, the
//! caller's rule asked whether this user may remove it, and then it is gone from history (so
//! CHATHISTORY leaves it out entirely, the first of the spec's choices). One step on the
//! blocking pool: the rule sees the stored message, which only the database knows.

use super::{blocking, History};
use crate::store::{StoreError, StoredMessage};

/// How a redaction ended.
pub enum Redaction {
    /// No such message in that conversation (or history is off).
    Unknown,
    /// The rule said no.
    Forbidden,
    /// Removed; the message as it was.
    Removed(StoredMessage),
}

impl History {
    /// Remove message `msgid` from conversation `key` if `allowed` says this user may.
    pub async fn redact(
        &self,
        key: String,
        msgid: String,
        allowed: impl FnOnce(&StoredMessage) -> bool + Send + 'static,
    ) -> Result<Redaction, StoreError> {
        if !self.enabled() {
            return Ok(Redaction::Unknown);
        }
        let store = self.reader.clone();
        blocking(move || {
            let Some(message) = store.message(&key, &msgid)? else {
                return Ok(Redaction::Unknown);
            };
            if !allowed(&message) {
                return Ok(Redaction::Forbidden);
            }
            Ok(if store.delete_message(&key, &msgid)? {
                Redaction::Removed(message)
            } else {
                Redaction::Unknown
            })
        })
        .await
    }
}
