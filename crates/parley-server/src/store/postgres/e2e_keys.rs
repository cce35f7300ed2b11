//! [`E2eKeyStore`] on the shared PostgreSQL database (`e2e_devices`, `e2e_keys`, migration 17).
//! Nodes of a cluster write at once, so the counts are checked under row locks: the account's
//! row for a new device, the device's row for new one-time keys. A claim takes its key with
//! `FOR UPDATE SKIP LOCKED` and removes it in the same statement, so two claimers on any nodes
//! never get the same one-time key. Writes run in [`PostgresStore::call_transaction`], so a
//! claim whose COMMIT lost its answer is not run twice (which would burn a second key).

use parley_proto::casefold;

use super::{backend, PostgresStore};
use crate::store::e2e_keys::{Claimed, Device, E2eKeyStore, KeyCount, Uploaded};
use crate::store::StoreError;

/// Whether `account` has the device `curve`, locking the device's row until the end of the
/// transaction (so its key counts hold while it writes).
fn lock_own_device(
    client: &mut impl postgres::GenericClient,
    account: &str,
    curve: &str,
) -> Result<bool, StoreError> {
    client
        .query_opt(
            "SELECT 1 FROM e2e_devices WHERE curve = $1 AND account_folded = $2 FOR UPDATE",
            &[&curve, &account],
        )
        .map(|row| row.is_some())
        .map_err(backend)
}

fn unclaimed(client: &mut impl postgres::GenericClient, curve: &str) -> Result<usize, StoreError> {
    let count: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM e2e_keys WHERE curve = $1 AND NOT is_fallback",
            &[&curve],
        )
        .and_then(|row| row.try_get(0))
        .map_err(backend)?;
    Ok(usize::try_from(count).unwrap_or(0))
}

impl E2eKeyStore for PostgresStore {
    fn upload_device(
        &self,
        account: &str,
        device: &Device,
        max_devices: usize,
    ) -> Result<Uploaded, StoreError> {
        let account = account.to_owned();
        let device = device.clone();
        let max = i64::try_from(max_devices).unwrap_or(i64::MAX);
        self.call_transaction(move |client| {
            let folded = casefold(&account);
            // Serializes uploads of one account (on every node), so two at once cannot both
            // pass the count.
            let found = client
                .query_opt(
                    "SELECT 1 FROM accounts WHERE name_folded = $1 FOR UPDATE",
                    &[&folded],
                )
                .map_err(backend)?;
            if found.is_none() {
                return Err(StoreError::NotFound(account.clone()));
            }
            let stored = client
                .query_opt(
                    "SELECT account_folded, ed25519 FROM e2e_devices WHERE curve = $1",
                    &[&device.curve],
                )
                .map_err(backend)?;
            if let Some(row) = stored {
                let owner: String = row.try_get(0).map_err(backend)?;
                let ed25519: String = row.try_get(1).map_err(backend)?;
                return Ok(if owner == folded && ed25519 == device.ed25519 {
                    Uploaded::Stored
                } else {
                    Uploaded::KeyMismatch
                });
            }
            let held: i64 = client
                .query_one(
                    "SELECT COUNT(*) FROM e2e_devices WHERE account_folded = $1",
                    &[&folded],
                )
                .and_then(|row| row.try_get(0))
                .map_err(backend)?;
            if held >= max {
                return Ok(Uploaded::TooManyDevices);
            }
            // Another account's upload of the same key may have won since the look above: the
            // key stays theirs, and this one is told it does not match.
            let added = client
                .execute(
                    "INSERT INTO e2e_devices \
                     (curve, account_folded, ed25519, signature, created_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (curve) DO NOTHING",
                    &[
                        &device.curve,
                        &folded,
                        &device.ed25519,
                        &device.signature,
                        &crate::clock::now_ms(),
                    ],
                )
                .map_err(backend)?;
            Ok(if added == 1 {
                Uploaded::Stored
            } else {
                Uploaded::KeyMismatch
            })
        })
    }

    fn add_one_time_keys(
        &self,
        account: &str,
        curve: &str,
        keys: &[String],
        max_unclaimed: usize,
    ) -> Result<KeyCount, StoreError> {
        let (folded, curve, keys) = (casefold(account), curve.to_owned(), keys.to_vec());
        self.call_transaction(move |client| {
            if !lock_own_device(client, &folded, &curve)? {
                return Ok(KeyCount::UnknownDevice);
            }
            // Counted before anything is written (the device's row is locked, so the count
            // holds): a line that would go past the cap adds nothing.
            let fresh: i64 = client
                .query_one(
                    "SELECT COUNT(DISTINCT new.key) FROM UNNEST($2::text[]) AS new (key) \
                     WHERE NOT EXISTS (SELECT 1 FROM e2e_keys \
                         WHERE curve = $1 AND NOT is_fallback AND e2e_keys.key = new.key)",
                    &[&curve, &keys],
                )
                .and_then(|row| row.try_get(0))
                .map_err(backend)?;
            let fresh = usize::try_from(fresh).unwrap_or(usize::MAX);
            if unclaimed(client, &curve)?.saturating_add(fresh) > max_unclaimed {
                return Ok(KeyCount::TooManyKeys);
            }
            client
                .execute(
                    "INSERT INTO e2e_keys (curve, key, is_fallback) \
                     SELECT DISTINCT $1::text, new.key, FALSE FROM UNNEST($2::text[]) AS new (key) \
                     ON CONFLICT DO NOTHING",
                    &[&curve, &keys],
                )
                .map_err(backend)?;
            Ok(KeyCount::Unclaimed(unclaimed(client, &curve)?))
        })
    }

    fn set_fallback_key(
        &self,
        account: &str,
        curve: &str,
        key: &str,
    ) -> Result<KeyCount, StoreError> {
        let (folded, curve, key) = (casefold(account), curve.to_owned(), key.to_owned());
        self.call_transaction(move |client| {
            if !lock_own_device(client, &folded, &curve)? {
                return Ok(KeyCount::UnknownDevice);
            }
            client
                .execute(
                    "DELETE FROM e2e_keys WHERE curve = $1 AND is_fallback",
                    &[&curve],
                )
                .map_err(backend)?;
            client
                .execute(
                    "INSERT INTO e2e_keys (curve, key, is_fallback) VALUES ($1, $2, TRUE)",
                    &[&curve, &key],
                )
                .map_err(backend)?;
            Ok(KeyCount::Unclaimed(unclaimed(client, &curve)?))
        })
    }

    fn count_one_time_keys(&self, account: &str, curve: &str) -> Result<KeyCount, StoreError> {
        let (folded, curve) = (casefold(account), curve.to_owned());
        self.call_idempotent(move |client| {
            let owned = client
                .query_opt(
                    "SELECT 1 FROM e2e_devices WHERE curve = $1 AND account_folded = $2",
                    &[&curve, &folded],
                )
                .map_err(backend)?;
            if owned.is_none() {
                return Ok(KeyCount::UnknownDevice);
            }
            Ok(KeyCount::Unclaimed(unclaimed(client, &curve)?))
        })
    }

    fn remove_device(&self, account: &str, curve: &str) -> Result<bool, StoreError> {
        let (folded, curve) = (casefold(account), curve.to_owned());
        // Idempotent: removing twice leaves what removing once does.
        self.call_idempotent(move |client| {
            client
                .execute(
                    "DELETE FROM e2e_devices WHERE curve = $1 AND account_folded = $2",
                    &[&curve, &folded],
                )
                .map(|removed| removed > 0)
                .map_err(backend)
        })
    }

    fn devices(&self, account: &str) -> Result<Vec<Device>, StoreError> {
        let folded = casefold(account);
        self.call_idempotent(move |client| {
            client
                .query(
                    "SELECT curve, ed25519, signature FROM e2e_devices \
                     WHERE account_folded = $1 ORDER BY created_ms, curve",
                    &[&folded],
                )
                .map_err(backend)?
                .iter()
                .map(|row| {
                    Ok(Device {
                        curve: row.try_get(0).map_err(backend)?,
                        ed25519: row.try_get(1).map_err(backend)?,
                        signature: row.try_get(2).map_err(backend)?,
                    })
                })
                .collect()
        })
    }

    fn claim_key(&self, account: &str, curve: &str) -> Result<Claimed, StoreError> {
        let (folded, curve) = (casefold(account), curve.to_owned());
        self.call_transaction(move |client| {
            let owned = client
                .query_opt(
                    "SELECT 1 FROM e2e_devices WHERE curve = $1 AND account_folded = $2",
                    &[&curve, &folded],
                )
                .map_err(backend)?;
            if owned.is_none() {
                return Ok(Claimed::NoKeys);
            }
            let one_time = client
                .query_opt(
                    "DELETE FROM e2e_keys WHERE id = ( \
                         SELECT id FROM e2e_keys WHERE curve = $1 AND NOT is_fallback \
                         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     RETURNING key",
                    &[&curve],
                )
                .map_err(backend)?;
            if let Some(row) = one_time {
                return Ok(Claimed::OneTime(row.try_get(0).map_err(backend)?));
            }
            let fallback = client
                .query_opt(
                    "SELECT key FROM e2e_keys WHERE curve = $1 AND is_fallback",
                    &[&curve],
                )
                .map_err(backend)?;
            match fallback {
                Some(row) => Ok(Claimed::Fallback(row.try_get(0).map_err(backend)?)),
                None => Ok(Claimed::NoKeys),
            }
        })
    }
}
