//! Offline delivery: private messages stored for an account that was not online, handed over
//! when it logs in, and (on a server that is the only writer of its database) the accounts
//! that anything waits for, kept in memory so the usual login, for which nothing waits, costs
//! no query.

use std::sync::Arc;

use super::{blocking, History};
use crate::store::{StoreError, StoredMessage, WriteBatch};

/// Most messages one login takes from those that waited for it.
const OFFLINE_BATCH: usize = 1000;

/// The accounts that messages wait for, when this process is the only one storing them (no
/// cluster): every login asks whether anything waits, nearly always nothing does, and a query
/// for that cost more than the rest of a SCRAM login's storage work. `None` (in a cluster, or
/// before [`History::track_offline`]) means ask the database.
///
/// Kept right without a lock around the database: the writer adds an account after the commit
/// that stored its message, and a login removes it before reading. A message committed
/// meanwhile is either in that read or puts the account back.
pub(super) type Waiting = Arc<parking_lot::Mutex<Option<std::collections::HashSet<String>>>>;

impl History {
    /// Messages that waited for `account`, removed from the waiting list.
    pub async fn take_offline(&self, account: String) -> Result<Vec<StoredMessage>, StoreError> {
        if let Some(waiting) = self.waiting.lock().as_mut() {
            if !waiting.remove(&account) {
                return Ok(Vec::new());
            }
        }
        let reader = self.reader.clone();
        let folded = account.clone();
        let result = blocking(move || reader.take_offline(&folded, OFFLINE_BATCH)).await;
        // More may wait (a full batch), or the read failed: ask the database again next time.
        if !matches!(&result, Ok(rows) if rows.len() < OFFLINE_BATCH) {
            if let Some(waiting) = self.waiting.lock().as_mut() {
                waiting.insert(account);
            }
        }
        result
    }

    /// Keep messages already in history, `(casefolded account, msgid)`, for their accounts' next
    /// logins: in a cluster, private messages that went to a node that died before it could
    /// deliver them (`cluster::undelivered`). Written at once, apart from the writer's queue:
    /// the messages were committed long before.
    pub async fn mark_offline(&self, marks: Vec<(String, String)>) -> Result<(), StoreError> {
        if !self.config.enabled || marks.is_empty() {
            return Ok(());
        }
        let accounts: Vec<String> = marks.iter().map(|(account, _)| account.clone()).collect();
        let store = self.reader.clone();
        blocking(move || {
            store.write(&WriteBatch {
                offline: marks,
                ..WriteBatch::default()
            })
        })
        .await?;
        if let Some(waiting) = self.waiting.lock().as_mut() {
            waiting.extend(accounts);
        }
        Ok(())
    }

    /// Answer "does anything wait for this account?" from memory from now on, starting from
    /// what the store holds. Only for a server that is the one writer of its database, before
    /// its writer starts; see [`Waiting`].
    pub fn track_offline(&self) -> Result<(), StoreError> {
        let accounts = self.reader.offline_accounts()?;
        *self.waiting.lock() = Some(accounts.into_iter().collect());
        Ok(())
    }
}
