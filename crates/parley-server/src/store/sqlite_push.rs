//! [`PushStore`] on the embedded SQLite file (`push_subscriptions`, migration 12).

use parley_proto::casefold;
use rusqlite::{params, OptionalExtension};

use super::push::{PushStore, PushSubscription, Registered};
use super::sqlite::{backend, SqliteStore};
use super::StoreError;

impl PushStore for SqliteStore {
    fn register_push(
        &self,
        account: &str,
        subscription: &PushSubscription,
        max: usize,
    ) -> Result<Registered, StoreError> {
        let folded = casefold(account);
        let mut connection = self.connection().lock();
        let transaction = connection.transaction().map_err(backend)?;
        let exists: Option<i64> = transaction
            .query_row(
                "SELECT 1 FROM push_subscriptions WHERE account_folded = ?1 AND endpoint = ?2",
                params![folded, subscription.endpoint],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?;
        let outcome = if exists.is_some() {
            transaction
                .execute(
                    "UPDATE push_subscriptions SET p256dh = ?3, auth = ?4
                     WHERE account_folded = ?1 AND endpoint = ?2",
                    params![
                        folded,
                        subscription.endpoint,
                        subscription.p256dh,
                        subscription.auth
                    ],
                )
                .map_err(backend)?;
            Registered::Replaced
        } else {
            let held: i64 = transaction
                .query_row(
                    "SELECT COUNT(*) FROM push_subscriptions WHERE account_folded = ?1",
                    params![folded],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if usize::try_from(held).unwrap_or(usize::MAX) >= max {
                return Ok(Registered::Full);
            }
            let added = transaction
                .execute(
                    "INSERT INTO push_subscriptions
                         (account_folded, endpoint, p256dh, auth, created_ms)
                     SELECT name_folded, ?2, ?3, ?4, ?5 FROM accounts WHERE name_folded = ?1",
                    params![
                        folded,
                        subscription.endpoint,
                        subscription.p256dh,
                        subscription.auth,
                        crate::clock::now_ms()
                    ],
                )
                .map_err(backend)?;
            if added == 0 {
                return Err(StoreError::NotFound(account.to_owned()));
            }
            Registered::Added
        };
        transaction.commit().map_err(backend)?;
        Ok(outcome)
    }

    fn unregister_push(&self, account: &str, endpoint: &str) -> Result<bool, StoreError> {
        let removed = self
            .connection()
            .lock()
            .execute(
                "DELETE FROM push_subscriptions WHERE account_folded = ?1 AND endpoint = ?2",
                params![casefold(account), endpoint],
            )
            .map_err(backend)?;
        Ok(removed > 0)
    }

    fn push_subscriptions(&self, account: &str) -> Result<Vec<PushSubscription>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT endpoint, p256dh, auth FROM push_subscriptions
                 WHERE account_folded = ?1 ORDER BY created_ms, endpoint",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![casefold(account)], |row| {
                Ok(PushSubscription {
                    endpoint: row.get(0)?,
                    p256dh: row.get(1)?,
                    auth: row.get(2)?,
                })
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }
}
