//! [`E2eKeyStore`] on the embedded SQLite file (`e2e_devices`, `e2e_keys`, migration 16). Each
//! call is one transaction on the store's one connection, and SQLite has one writer at a time,
//! so a count checked in a call still holds when the call writes.

use parley_proto::casefold;
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::e2e_keys::{Claimed, Device, E2eKeyStore, KeyCount, Uploaded};
use super::sqlite::{backend, SqliteStore};
use super::StoreError;

/// Whether `account` has the device `curve`.
fn owns(transaction: &Transaction<'_>, account: &str, curve: &str) -> Result<bool, StoreError> {
    transaction
        .query_row(
            "SELECT 1 FROM e2e_devices WHERE curve = ?1 AND account_folded = ?2",
            params![curve, account],
            |_| Ok(()),
        )
        .optional()
        .map(|found| found.is_some())
        .map_err(backend)
}

/// A transaction that takes the write lock at once: one that read first and wrote later would
/// fail outright (not wait) if the history writer committed in between.
fn write(connection: &mut rusqlite::Connection) -> Result<Transaction<'_>, StoreError> {
    connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)
}

fn unclaimed(transaction: &Transaction<'_>, curve: &str) -> Result<usize, StoreError> {
    let count: i64 = transaction
        .query_row(
            "SELECT COUNT(*) FROM e2e_keys WHERE curve = ?1 AND is_fallback = 0",
            params![curve],
            |row| row.get(0),
        )
        .map_err(backend)?;
    Ok(usize::try_from(count).unwrap_or(0))
}

impl E2eKeyStore for SqliteStore {
    fn upload_device(
        &self,
        account: &str,
        device: &Device,
        max_devices: usize,
    ) -> Result<Uploaded, StoreError> {
        let folded = casefold(account);
        let mut connection = self.connection().lock();
        let transaction = write(&mut connection)?;
        let stored: Option<(String, String)> = transaction
            .query_row(
                "SELECT account_folded, ed25519 FROM e2e_devices WHERE curve = ?1",
                params![device.curve],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(backend)?;
        if let Some((owner, ed25519)) = stored {
            return Ok(if owner == folded && ed25519 == device.ed25519 {
                Uploaded::Stored
            } else {
                Uploaded::KeyMismatch
            });
        }
        let held: i64 = transaction
            .query_row(
                "SELECT COUNT(*) FROM e2e_devices WHERE account_folded = ?1",
                params![folded],
                |row| row.get(0),
            )
            .map_err(backend)?;
        if usize::try_from(held).unwrap_or(usize::MAX) >= max_devices {
            return Ok(Uploaded::TooManyDevices);
        }
        let added = transaction
            .execute(
                "INSERT INTO e2e_devices (curve, account_folded, ed25519, signature, created_ms)
                 SELECT ?2, name_folded, ?3, ?4, ?5 FROM accounts WHERE name_folded = ?1",
                params![
                    folded,
                    device.curve,
                    device.ed25519,
                    device.signature,
                    crate::clock::now_ms()
                ],
            )
            .map_err(backend)?;
        if added == 0 {
            return Err(StoreError::NotFound(account.to_owned()));
        }
        transaction.commit().map_err(backend)?;
        Ok(Uploaded::Stored)
    }

    fn add_one_time_keys(
        &self,
        account: &str,
        curve: &str,
        keys: &[String],
        max_unclaimed: usize,
    ) -> Result<KeyCount, StoreError> {
        let mut connection = self.connection().lock();
        let transaction = write(&mut connection)?;
        if !owns(&transaction, &casefold(account), curve)? {
            return Ok(KeyCount::UnknownDevice);
        }
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO e2e_keys (curve, key, is_fallback) VALUES (?1, ?2, 0)",
                )
                .map_err(backend)?;
            for key in keys {
                insert.execute(params![curve, key]).map_err(backend)?;
            }
        }
        let now = unclaimed(&transaction, curve)?;
        if now > max_unclaimed {
            // Dropping the transaction rolls the whole line back: none added.
            return Ok(KeyCount::TooManyKeys);
        }
        transaction.commit().map_err(backend)?;
        Ok(KeyCount::Unclaimed(now))
    }

    fn set_fallback_key(
        &self,
        account: &str,
        curve: &str,
        key: &str,
    ) -> Result<KeyCount, StoreError> {
        let mut connection = self.connection().lock();
        let transaction = write(&mut connection)?;
        if !owns(&transaction, &casefold(account), curve)? {
            return Ok(KeyCount::UnknownDevice);
        }
        transaction
            .execute(
                "DELETE FROM e2e_keys WHERE curve = ?1 AND is_fallback = 1",
                params![curve],
            )
            .map_err(backend)?;
        transaction
            .execute(
                "INSERT INTO e2e_keys (curve, key, is_fallback) VALUES (?1, ?2, 1)",
                params![curve, key],
            )
            .map_err(backend)?;
        let now = unclaimed(&transaction, curve)?;
        transaction.commit().map_err(backend)?;
        Ok(KeyCount::Unclaimed(now))
    }

    fn count_one_time_keys(&self, account: &str, curve: &str) -> Result<KeyCount, StoreError> {
        let mut connection = self.connection().lock();
        let transaction = connection.transaction().map_err(backend)?;
        if !owns(&transaction, &casefold(account), curve)? {
            return Ok(KeyCount::UnknownDevice);
        }
        Ok(KeyCount::Unclaimed(unclaimed(&transaction, curve)?))
    }

    fn remove_device(&self, account: &str, curve: &str) -> Result<bool, StoreError> {
        // The device's keys go with it (ON DELETE CASCADE).
        let removed = self
            .connection()
            .lock()
            .execute(
                "DELETE FROM e2e_devices WHERE curve = ?1 AND account_folded = ?2",
                params![curve, casefold(account)],
            )
            .map_err(backend)?;
        Ok(removed > 0)
    }

    fn devices(&self, account: &str) -> Result<Vec<Device>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT curve, ed25519, signature FROM e2e_devices
                 WHERE account_folded = ?1 ORDER BY created_ms, curve",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![casefold(account)], |row| {
                Ok(Device {
                    curve: row.get(0)?,
                    ed25519: row.get(1)?,
                    signature: row.get(2)?,
                })
            })
            .map_err(backend)?;
        rows.collect::<Result<_, _>>().map_err(backend)
    }

    fn claim_key(&self, account: &str, curve: &str) -> Result<Claimed, StoreError> {
        let mut connection = self.connection().lock();
        let transaction = write(&mut connection)?;
        if !owns(&transaction, &casefold(account), curve)? {
            return Ok(Claimed::NoKeys);
        }
        // One statement picks and removes the key: another connection to the file (a second
        // server process) cannot take the same one in between.
        let one_time: Option<String> = transaction
            .query_row(
                "DELETE FROM e2e_keys WHERE id = (
                     SELECT id FROM e2e_keys WHERE curve = ?1 AND is_fallback = 0
                     ORDER BY id LIMIT 1)
                 RETURNING key",
                params![curve],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?;
        let claimed = match one_time {
            Some(key) => Claimed::OneTime(key),
            None => transaction
                .query_row(
                    "SELECT key FROM e2e_keys WHERE curve = ?1 AND is_fallback = 1",
                    params![curve],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?
                .map_or(Claimed::NoKeys, Claimed::Fallback),
        };
        transaction.commit().map_err(backend)?;
        Ok(claimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AccountStore;

    #[test]
    fn removing_an_account_removes_its_devices_and_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("keys.db")).expect("open");
        store.create_account("Alice", "hash").expect("create");
        let device = Device {
            curve: "c".repeat(43),
            ed25519: "e".repeat(43),
            signature: "s".repeat(86),
        };
        assert_eq!(
            store.upload_device("alice", &device, 10).expect("upload"),
            Uploaded::Stored
        );
        let keys = vec!["k".repeat(43)];
        assert_eq!(
            store
                .add_one_time_keys("ALICE", &device.curve, &keys, 100)
                .expect("add"),
            KeyCount::Unclaimed(1)
        );
        store.remove_account("alice").expect("remove");
        assert!(store.devices("alice").expect("devices").is_empty());
        let left: i64 = store
            .connection()
            .lock()
            .query_row("SELECT COUNT(*) FROM e2e_keys", [], |row| row.get(0))
            .expect("count");
        assert_eq!(left, 0);
        // A device of an account that is gone cannot be published.
        assert!(matches!(
            store.upload_device("alice", &device, 10),
            Err(StoreError::NotFound(_))
        ));
    }
}
