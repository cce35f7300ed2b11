//! Always-on accounts as stored: whether an account opted in (`ALWAYSON ON`), and the presence
//! it keeps while none of its sessions is connected (nick, channels, since when), so a restart
//! puts it back before anyone connects. One row per account, gone with the account (a foreign
//! key), in the same shape in SQLite and PostgreSQL; the presence is one JSON text, as a
//! registered channel's record is, so adding a field needs no migration.

use parley_proto::casefold;
use serde::{Deserialize, Serialize};

use super::{PostgresStore, SqliteStore, StoreError};

/// What an always-on account looks like to others while no session is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPresence {
    pub nick: String,
    pub username: String,
    pub realname: String,
    pub host: String,
    /// The channels it is in, by the names they had.
    pub channels: Vec<String>,
    /// When its last session left (ms since the Unix epoch): catch-up starts here for a
    /// conversation without a read marker.
    pub away_since_ms: i64,
}

/// The always-on rows of the account store. Every method blocks.
pub trait AlwaysOnStore: Send + Sync {
    /// Casefolded names of the accounts that turned always-on on.
    fn always_on_accounts(&self) -> Result<Vec<String>, StoreError>;
    /// Turn always-on on or off for `account`; [`StoreError::NotFound`] when there is no such
    /// account. Turning it off also forgets the kept presence.
    fn set_always_on(&self, account: &str, on: bool) -> Result<(), StoreError>;
    /// Keep (or with `None` forget) `account`'s presence.
    fn save_presence(
        &self,
        account: &str,
        presence: Option<&StoredPresence>,
    ) -> Result<(), StoreError>;
    /// Every kept presence, by casefolded account. A row that does not decode is logged and
    /// skipped: one damaged row must not cost the others.
    fn presences(&self) -> Result<Vec<(String, StoredPresence)>, StoreError>;
    /// [`AlwaysOnStore::save_presence`], recording which node life keeps the presence (`owner`,
    /// `node~incarnation` on a cluster): when that life ends, the row says who may adopt it.
    fn save_presence_owned(
        &self,
        account: &str,
        presence: &StoredPresence,
        owner: &str,
    ) -> Result<(), StoreError>;
    /// The kept presences a node life owns, as (casefolded account, owner).
    fn presence_owners(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Move `account`'s presence from the node life `from` to `to` if `from` (or, for a retry
    /// of this same call, `to`) still owns it: the compare-and-set by which exactly one
    /// surviving node adopts a dead node's presence. The presence when this node has it.
    fn adopt_presence(
        &self,
        account: &str,
        from: &str,
        to: &str,
    ) -> Result<Option<StoredPresence>, StoreError>;
}

fn decode_one(account: &str, json: Option<String>) -> Option<StoredPresence> {
    let json = json?;
    match serde_json::from_str(&json) {
        Ok(presence) => Some(presence),
        Err(err) => {
            tracing::error!(%account, %err, "skipping an unreadable always-on presence");
            None
        }
    }
}

fn encode(presence: Option<&StoredPresence>) -> Result<Option<String>, StoreError> {
    presence
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Backend(format!("cannot encode a presence: {e}")))
}

fn decode(rows: Vec<(String, String)>) -> Vec<(String, StoredPresence)> {
    rows.into_iter()
        .filter_map(|(account, json)| match serde_json::from_str(&json) {
            Ok(presence) => Some((account, presence)),
            Err(err) => {
                tracing::error!(%account, %err, "skipping an unreadable always-on presence");
                None
            }
        })
        .collect()
}

impl AlwaysOnStore for SqliteStore {
    fn always_on_accounts(&self) -> Result<Vec<String>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare_cached("SELECT account_folded FROM always_on WHERE enabled = 1")
            .map_err(super::sqlite::backend)?;
        let rows = statement
            .query_map([], |row| row.get(0))
            .map_err(super::sqlite::backend)?;
        rows.collect::<Result<Vec<String>, _>>()
            .map_err(super::sqlite::backend)
    }

    fn set_always_on(&self, account: &str, on: bool) -> Result<(), StoreError> {
        let folded = casefold(account);
        let connection = self.connection().lock();
        // Through the accounts table, so a name that is no account inserts nothing.
        let changed = connection
            .execute(
                "INSERT INTO always_on (account_folded, enabled) \
                 SELECT name_folded, ?2 FROM accounts WHERE name_folded = ?1 \
                 ON CONFLICT (account_folded) DO UPDATE SET enabled = excluded.enabled, \
                 presence = CASE WHEN excluded.enabled = 1 THEN presence END",
                rusqlite::params![folded, i64::from(on)],
            )
            .map_err(super::sqlite::backend)?;
        if changed == 0 {
            return Err(StoreError::NotFound(account.to_owned()));
        }
        Ok(())
    }

    fn save_presence(
        &self,
        account: &str,
        presence: Option<&StoredPresence>,
    ) -> Result<(), StoreError> {
        let json = encode(presence)?;
        self.connection()
            .lock()
            .execute(
                "INSERT INTO always_on (account_folded, presence) \
                 SELECT name_folded, ?2 FROM accounts WHERE name_folded = ?1 \
                 ON CONFLICT (account_folded) DO UPDATE SET presence = excluded.presence",
                rusqlite::params![casefold(account), json],
            )
            .map_err(super::sqlite::backend)?;
        Ok(())
    }

    fn presences(&self) -> Result<Vec<(String, StoredPresence)>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT account_folded, presence FROM always_on WHERE presence IS NOT NULL",
            )
            .map_err(super::sqlite::backend)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(super::sqlite::backend)?
            .collect::<Result<Vec<(String, String)>, _>>()
            .map_err(super::sqlite::backend)?;
        Ok(decode(rows))
    }

    fn save_presence_owned(
        &self,
        account: &str,
        presence: &StoredPresence,
        owner: &str,
    ) -> Result<(), StoreError> {
        let json = encode(Some(presence))?;
        self.connection()
            .lock()
            .execute(
                "INSERT INTO always_on (account_folded, presence, owner) \
                 SELECT name_folded, ?2, ?3 FROM accounts WHERE name_folded = ?1 \
                 ON CONFLICT (account_folded) DO UPDATE SET presence = excluded.presence, \
                 owner = excluded.owner",
                rusqlite::params![casefold(account), json, owner],
            )
            .map_err(super::sqlite::backend)?;
        Ok(())
    }

    fn presence_owners(&self) -> Result<Vec<(String, String)>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT account_folded, owner FROM always_on \
                 WHERE presence IS NOT NULL AND owner IS NOT NULL",
            )
            .map_err(super::sqlite::backend)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(super::sqlite::backend)?
            .collect::<Result<Vec<(String, String)>, _>>()
            .map_err(super::sqlite::backend);
        rows
    }

    fn adopt_presence(
        &self,
        account: &str,
        from: &str,
        to: &str,
    ) -> Result<Option<StoredPresence>, StoreError> {
        let folded = casefold(account);
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare_cached(
                "UPDATE always_on SET owner = ?3 WHERE account_folded = ?1 \
                 AND (owner = ?2 OR owner = ?3) AND presence IS NOT NULL RETURNING presence",
            )
            .map_err(super::sqlite::backend)?;
        let json: Option<Option<String>> = statement
            .query_map(rusqlite::params![folded, from, to], |row| row.get(0))
            .map_err(super::sqlite::backend)?
            .next()
            .transpose()
            .map_err(super::sqlite::backend)?;
        Ok(decode_one(&folded, json.flatten()))
    }
}

impl AlwaysOnStore for PostgresStore {
    fn always_on_accounts(&self) -> Result<Vec<String>, StoreError> {
        self.call_idempotent(|client| {
            client
                .query("SELECT account_folded FROM always_on WHERE enabled", &[])
                .map_err(super::postgres::backend)?
                .iter()
                .map(|row| row.try_get(0).map_err(super::postgres::backend))
                .collect()
        })
    }

    fn set_always_on(&self, account: &str, on: bool) -> Result<(), StoreError> {
        let (folded, name) = (casefold(account), account.to_owned());
        let changed = self.call_idempotent(move |client| {
            client
                .execute(
                    "INSERT INTO always_on (account_folded, enabled) \
                     SELECT name_folded, $2 FROM accounts WHERE name_folded = $1 \
                     ON CONFLICT (account_folded) DO UPDATE SET enabled = excluded.enabled, \
                     presence = CASE WHEN excluded.enabled THEN always_on.presence END",
                    &[&folded, &on],
                )
                .map_err(super::postgres::backend)
        })?;
        if changed == 0 {
            return Err(StoreError::NotFound(name));
        }
        Ok(())
    }

    fn save_presence(
        &self,
        account: &str,
        presence: Option<&StoredPresence>,
    ) -> Result<(), StoreError> {
        let (folded, json) = (casefold(account), encode(presence)?);
        self.call_idempotent(move |client| {
            client
                .execute(
                    "INSERT INTO always_on (account_folded, presence) \
                     SELECT name_folded, $2 FROM accounts WHERE name_folded = $1 \
                     ON CONFLICT (account_folded) DO UPDATE SET presence = excluded.presence",
                    &[&folded, &json],
                )
                .map_err(super::postgres::backend)?;
            Ok(())
        })
    }

    fn presences(&self) -> Result<Vec<(String, StoredPresence)>, StoreError> {
        let rows = self.call_idempotent(|client| {
            client
                .query(
                    "SELECT account_folded, presence FROM always_on WHERE presence IS NOT NULL",
                    &[],
                )
                .map_err(super::postgres::backend)?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0).map_err(super::postgres::backend)?,
                        row.try_get(1).map_err(super::postgres::backend)?,
                    ))
                })
                .collect::<Result<Vec<(String, String)>, StoreError>>()
        })?;
        Ok(decode(rows))
    }

    fn save_presence_owned(
        &self,
        account: &str,
        presence: &StoredPresence,
        owner: &str,
    ) -> Result<(), StoreError> {
        let (folded, json, owner) = (casefold(account), encode(Some(presence))?, owner.to_owned());
        self.call_idempotent(move |client| {
            client
                .execute(
                    "INSERT INTO always_on (account_folded, presence, owner) \
                     SELECT name_folded, $2, $3 FROM accounts WHERE name_folded = $1 \
                     ON CONFLICT (account_folded) DO UPDATE SET presence = excluded.presence, \
                     owner = excluded.owner",
                    &[&folded, &json, &owner],
                )
                .map_err(super::postgres::backend)?;
            Ok(())
        })
    }

    fn presence_owners(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.call_idempotent(|client| {
            client
                .query(
                    "SELECT account_folded, owner FROM always_on \
                     WHERE presence IS NOT NULL AND owner IS NOT NULL",
                    &[],
                )
                .map_err(super::postgres::backend)?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0).map_err(super::postgres::backend)?,
                        row.try_get(1).map_err(super::postgres::backend)?,
                    ))
                })
                .collect()
        })
    }

    fn adopt_presence(
        &self,
        account: &str,
        from: &str,
        to: &str,
    ) -> Result<Option<StoredPresence>, StoreError> {
        let (folded, from, to) = (casefold(account), from.to_owned(), to.to_owned());
        // Idempotent: a retry after a lost answer finds `to` as the owner and reads it again;
        // a concurrent UPDATE by another node waits for the row's lock and then sees another
        // owner, so only one node's compare-and-set changes it.
        let json: Option<String> = self.call_idempotent(move |client| {
            let rows = client
                .query(
                    "UPDATE always_on SET owner = $3 WHERE account_folded = $1 \
                     AND (owner = $2 OR owner = $3) AND presence IS NOT NULL RETURNING presence",
                    &[&folded, &from, &to],
                )
                .map_err(super::postgres::backend)?;
            match rows.first() {
                Some(row) => row.try_get(0).map_err(super::postgres::backend),
                None => Ok(None),
            }
        })?;
        Ok(decode_one(account, json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AccountStore;

    fn presence(nick: &str) -> StoredPresence {
        StoredPresence {
            nick: nick.to_owned(),
            username: "u".to_owned(),
            realname: "r".to_owned(),
            host: "h".to_owned(),
            channels: vec!["#a".to_owned()],
            away_since_ms: 5,
        }
    }

    #[test]
    fn opting_in_and_presences_go_with_the_account() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("p.db")).expect("open");
        assert!(matches!(
            store.set_always_on("ghost", true),
            Err(StoreError::NotFound(_))
        ));
        store.create_account("Alice", "hash").expect("create");
        store.set_always_on("ALICE", true).expect("opt in");
        assert_eq!(store.always_on_accounts().expect("list"), vec!["alice"]);
        store
            .save_presence("alice", Some(&presence("Alice")))
            .expect("save");
        assert_eq!(
            store.presences().expect("read"),
            vec![("alice".to_owned(), presence("Alice"))]
        );
        // Opting out forgets the presence; opting in again does not bring it back.
        store.set_always_on("alice", false).expect("opt out");
        store.set_always_on("alice", true).expect("opt in");
        assert!(store.presences().expect("read").is_empty());
        store
            .save_presence("alice", Some(&presence("Alice")))
            .expect("save");
        store.remove_account("alice").expect("remove");
        assert!(store.presences().expect("read").is_empty());
        assert!(store.always_on_accounts().expect("list").is_empty());
    }

    #[test]
    fn only_one_node_adopts_a_presence() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("p.db")).expect("open");
        store.create_account("Alice", "hash").expect("create");
        store.set_always_on("alice", true).expect("opt in");
        store
            .save_presence_owned("alice", &presence("Alice"), "n1~a")
            .expect("save");
        assert_eq!(
            store.presence_owners().expect("owners"),
            vec![("alice".to_owned(), "n1~a".to_owned())]
        );
        assert_eq!(
            store
                .adopt_presence("alice", "n1~a", "n2~b")
                .expect("adopt"),
            Some(presence("Alice"))
        );
        // Another survivor comes second: the row is n2's now.
        assert_eq!(
            store
                .adopt_presence("alice", "n1~a", "n3~c")
                .expect("adopt"),
            None
        );
        // n2 asking again (a retry) still has it.
        assert!(store
            .adopt_presence("alice", "n1~a", "n2~b")
            .expect("retry")
            .is_some());
        // A forgotten presence is adopted by nobody.
        store.save_presence("alice", None).expect("forget");
        assert_eq!(
            store
                .adopt_presence("alice", "n2~b", "n3~c")
                .expect("adopt"),
            None
        );
    }
}
