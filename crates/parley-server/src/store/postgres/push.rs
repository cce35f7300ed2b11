//! [`PushStore`] on the shared PostgreSQL database (`push_subscriptions`, migration 13).

use parley_proto::casefold;

use super::{backend, PostgresStore};
use crate::store::push::{PushStore, PushSubscription, Registered};
use crate::store::StoreError;

impl PushStore for PostgresStore {
    fn register_push(
        &self,
        account: &str,
        subscription: &PushSubscription,
        max: usize,
    ) -> Result<Registered, StoreError> {
        let account = account.to_owned();
        let subscription = subscription.clone();
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        // Idempotent: registering the same subscription twice leaves what once does.
        self.call_idempotent(move |client| {
            let folded = casefold(&account);
            let mut tx = client.transaction().map_err(backend)?;
            // Serializes registrations of one account (on every node), so two at once cannot
            // both pass the count.
            let found = tx
                .query_opt(
                    "SELECT 1 FROM accounts WHERE name_folded = $1 FOR UPDATE",
                    &[&folded],
                )
                .map_err(backend)?;
            if found.is_none() {
                return Err(StoreError::NotFound(account.clone()));
            }
            let replaced = tx
                .execute(
                    "UPDATE push_subscriptions SET p256dh = $3, auth = $4 \
                     WHERE account_folded = $1 AND endpoint = $2",
                    &[
                        &folded,
                        &subscription.endpoint,
                        &subscription.p256dh,
                        &subscription.auth,
                    ],
                )
                .map_err(backend)?;
            let outcome = if replaced > 0 {
                Registered::Replaced
            } else {
                let held: i64 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM push_subscriptions WHERE account_folded = $1",
                        &[&folded],
                    )
                    .and_then(|row| row.try_get(0))
                    .map_err(backend)?;
                if held >= max {
                    return Ok(Registered::Full);
                }
                tx.execute(
                    "INSERT INTO push_subscriptions \
                     (account_folded, endpoint, p256dh, auth, created_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &folded,
                        &subscription.endpoint,
                        &subscription.p256dh,
                        &subscription.auth,
                        &crate::clock::now_ms(),
                    ],
                )
                .map_err(backend)?;
                Registered::Added
            };
            tx.commit().map_err(backend)?;
            Ok(outcome)
        })
    }

    fn unregister_push(&self, account: &str, endpoint: &str) -> Result<bool, StoreError> {
        let (folded, endpoint) = (casefold(account), endpoint.to_owned());
        self.call_idempotent(move |client| {
            client
                .execute(
                    "DELETE FROM push_subscriptions WHERE account_folded = $1 AND endpoint = $2",
                    &[&folded, &endpoint],
                )
                .map(|removed| removed > 0)
                .map_err(backend)
        })
    }

    fn push_subscriptions(&self, account: &str) -> Result<Vec<PushSubscription>, StoreError> {
        let folded = casefold(account);
        self.call_idempotent(move |client| {
            client
                .query(
                    "SELECT endpoint, p256dh, auth FROM push_subscriptions \
                     WHERE account_folded = $1 ORDER BY created_ms, endpoint",
                    &[&folded],
                )
                .map_err(backend)?
                .iter()
                .map(|row| {
                    Ok(PushSubscription {
                        endpoint: row.try_get(0).map_err(backend)?,
                        p256dh: row.try_get(1).map_err(backend)?,
                        auth: row.try_get(2).map_err(backend)?,
                    })
                })
                .collect()
        })
    }
}
