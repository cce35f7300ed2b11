//! The local E2E store: one SQLite file beside the device file (mode 0600) holding what only
//! this device may know: Olm sessions (pickled), the decrypted text of messages by msgid (the
//! server's history holds ciphertext only, so scrollback reads from here), the device keys seen
//! for each peer account with its "verified" mark, and conversations where E2E is off.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::device::write_private;
use super::E2eError;

/// Sessions kept per peer device; older ones are dropped (a new pre-key message starts one).
const SESSIONS_PER_DEVICE: i64 = 4;

pub struct Store {
    db: Connection,
    path: PathBuf,
}

/// A peer device as the key directory lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDevice {
    pub curve: String,
    pub ed25519: String,
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> E2eError + '_ {
    move |e| E2eError::Store(path.to_path_buf(), e.to_string())
}

impl Store {
    /// Opens (or creates, 0600) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, E2eError> {
        if !path.exists() {
            write_private(path, b"")?;
        }
        let err = db_err(path);
        let db = Connection::open(path).map_err(&err)?;
        db.execute_batch(
            "PRAGMA journal_mode=DELETE;
             CREATE TABLE IF NOT EXISTS sessions (curve TEXT NOT NULL, session_id TEXT NOT NULL,
               pickle TEXT NOT NULL, used INTEGER NOT NULL, PRIMARY KEY (curve, session_id));
             CREATE TABLE IF NOT EXISTS messages (msgid TEXT PRIMARY KEY, text TEXT NOT NULL,
               action INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS devices (account TEXT NOT NULL, curve TEXT NOT NULL,
               ed25519 TEXT NOT NULL, PRIMARY KEY (account, curve));
             CREATE TABLE IF NOT EXISTS peers (account TEXT PRIMARY KEY,
               verified INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS off (target TEXT PRIMARY KEY);
             CREATE TABLE IF NOT EXISTS group_sessions (sender TEXT NOT NULL,
               session_id TEXT NOT NULL, room TEXT NOT NULL, pickle TEXT NOT NULL,
               PRIMARY KEY (sender, session_id));
             CREATE TABLE IF NOT EXISTS group_on (room TEXT PRIMARY KEY);
             CREATE TABLE IF NOT EXISTS group_messages (room TEXT NOT NULL, msgid TEXT NOT NULL,
               text TEXT NOT NULL, action INTEGER NOT NULL, PRIMARY KEY (room, msgid));
             CREATE TABLE IF NOT EXISTS group_seen (sender TEXT NOT NULL,
               session_id TEXT NOT NULL, idx INTEGER NOT NULL, msgid TEXT NOT NULL,
               PRIMARY KEY (sender, session_id, idx));",
        )
        .map_err(&err)?;
        Ok(Store {
            db,
            path: path.to_path_buf(),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> E2eError + '_ {
        db_err(&self.path)
    }

    /// Pickled sessions with a device, most recently used first.
    pub fn sessions(&self, curve: &str) -> Result<Vec<(String, String)>, E2eError> {
        let mut stmt = self
            .db
            .prepare("SELECT session_id, pickle FROM sessions WHERE curve = ?1 ORDER BY used DESC")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![curve], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Saves a session (after every use: the ratchet moved) as the most recently used one.
    pub fn save_session(
        &self,
        curve: &str,
        session_id: &str,
        pickle: &str,
    ) -> Result<(), E2eError> {
        let used: i64 = self
            .db
            .query_row("SELECT COALESCE(MAX(used), 0) + 1 FROM sessions", [], |r| {
                r.get(0)
            })
            .map_err(self.err())?;
        self.db
            .execute(
                "INSERT INTO sessions (curve, session_id, pickle, used) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (curve, session_id) DO UPDATE SET pickle = ?3, used = ?4",
                params![curve, session_id, pickle, used],
            )
            .map_err(self.err())?;
        self.db
            .execute(
                "DELETE FROM sessions WHERE curve = ?1 AND session_id NOT IN
                 (SELECT session_id FROM sessions WHERE curve = ?1 ORDER BY used DESC LIMIT ?2)",
                params![curve, SESSIONS_PER_DEVICE],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn has_session(&self, curve: &str) -> Result<bool, E2eError> {
        Ok(!self.sessions(curve)?.is_empty())
    }

    pub fn save_message(&self, msgid: &str, text: &str, action: bool) -> Result<(), E2eError> {
        self.db
            .execute(
                "INSERT OR IGNORE INTO messages (msgid, text, action) VALUES (?1, ?2, ?3)",
                params![msgid, text, action],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    pub fn message(&self, msgid: &str) -> Result<Option<(String, bool)>, E2eError> {
        self.db
            .query_row(
                "SELECT text, action FROM messages WHERE msgid = ?1",
                params![msgid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())
    }

    /// The devices last seen for `account` (casefolded), sorted by curve.
    pub fn devices(&self, account: &str) -> Result<Vec<KnownDevice>, E2eError> {
        let mut stmt = self
            .db
            .prepare("SELECT curve, ed25519 FROM devices WHERE account = ?1 ORDER BY curve")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![account], |r| {
                Ok(KnownDevice {
                    curve: r.get(0)?,
                    ed25519: r.get(1)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Replaces the devices remembered for `account`.
    pub fn set_devices(&mut self, account: &str, devices: &[KnownDevice]) -> Result<(), E2eError> {
        let path = self.path.clone();
        let err = db_err(&path);
        let tx = self.db.transaction().map_err(&err)?;
        tx.execute("DELETE FROM devices WHERE account = ?1", params![account])
            .map_err(&err)?;
        for device in devices {
            tx.execute(
                "INSERT OR REPLACE INTO devices (account, curve, ed25519) VALUES (?1, ?2, ?3)",
                params![account, device.curve, device.ed25519],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    pub fn verified(&self, account: &str) -> Result<bool, E2eError> {
        self.db
            .query_row(
                "SELECT verified FROM peers WHERE account = ?1",
                params![account],
                |r| r.get(0),
            )
            .optional()
            .map(|v| v.unwrap_or(false))
            .map_err(self.err())
    }

    pub fn set_verified(&self, account: &str, verified: bool) -> Result<(), E2eError> {
        self.db
            .execute(
                "INSERT INTO peers (account, verified) VALUES (?1, ?2)
                 ON CONFLICT (account) DO UPDATE SET verified = ?2",
                params![account, verified],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// E2E was turned off for this conversation (casefolded nick).
    pub fn is_off(&self, target: &str) -> Result<bool, E2eError> {
        self.db
            .query_row(
                "SELECT 1 FROM off WHERE target = ?1",
                params![target],
                |_| Ok(()),
            )
            .optional()
            .map(|v| v.is_some())
            .map_err(self.err())
    }

    pub fn set_off(&self, target: &str, off: bool) -> Result<(), E2eError> {
        let sql = if off {
            "INSERT OR IGNORE INTO off (target) VALUES (?1)"
        } else {
            "DELETE FROM off WHERE target = ?1"
        };
        self.db
            .execute(sql, params![target])
            .map(|_| ())
            .map_err(self.err())
    }
}

/// Inbound group sessions kept per (room, sender device); older ones are dropped, so a member
/// sending room key after room key cannot grow the file without bound.
const GROUP_SESSIONS_PER_SENDER: i64 = 200;

/// End-to-end encrypted channels (`e2e/megolm.rs`): inbound Megolm sessions, the channels where
/// `/e2e on` was typed, and the message indexes seen (a replay under another msgid shows).
impl Store {
    /// Keeps an inbound session; the first one stored under an id wins (a later share of the
    /// same id cannot move it to another room).
    pub fn save_group_session(
        &self,
        sender: &str,
        session_id: &str,
        room: &str,
        pickle: &str,
    ) -> Result<(), E2eError> {
        self.db
            .execute(
                "INSERT OR IGNORE INTO group_sessions (sender, session_id, room, pickle)
                 VALUES (?1, ?2, ?3, ?4)",
                params![sender, session_id, room, pickle],
            )
            .map_err(self.err())?;
        self.db
            .execute(
                "DELETE FROM group_sessions WHERE room = ?1 AND sender = ?2 AND rowid NOT IN
                 (SELECT rowid FROM group_sessions WHERE room = ?1 AND sender = ?2
                  ORDER BY rowid DESC LIMIT ?3)",
                params![room, sender, GROUP_SESSIONS_PER_SENDER],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// The room and pickle of an inbound session.
    pub fn group_session(
        &self,
        sender: &str,
        session_id: &str,
    ) -> Result<Option<(String, String)>, E2eError> {
        self.db
            .query_row(
                "SELECT room, pickle FROM group_sessions WHERE sender = ?1 AND session_id = ?2",
                params![sender, session_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())
    }

    pub fn remove_group_session(&self, sender: &str, session_id: &str) -> Result<(), E2eError> {
        self.db
            .execute(
                "DELETE FROM group_sessions WHERE sender = ?1 AND session_id = ?2",
                params![sender, session_id],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Keeps a channel message's decrypted text by (casefolded channel, msgid): apart from the
    /// private ones, so a msgid reused elsewhere never shows a private text in a channel.
    pub fn save_group_message(
        &self,
        room: &str,
        msgid: &str,
        text: &str,
        action: bool,
    ) -> Result<(), E2eError> {
        self.db
            .execute(
                "INSERT OR IGNORE INTO group_messages (room, msgid, text, action)
                 VALUES (?1, ?2, ?3, ?4)",
                params![room, msgid, text, action],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    pub fn group_message(
        &self,
        room: &str,
        msgid: &str,
    ) -> Result<Option<(String, bool)>, E2eError> {
        self.db
            .query_row(
                "SELECT text, action FROM group_messages WHERE room = ?1 AND msgid = ?2",
                params![room, msgid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())
    }

    /// `/e2e on` was typed in this (casefolded) channel.
    pub fn group_on(&self, room: &str) -> Result<bool, E2eError> {
        self.db
            .query_row(
                "SELECT 1 FROM group_on WHERE room = ?1",
                params![room],
                |_| Ok(()),
            )
            .optional()
            .map(|v| v.is_some())
            .map_err(self.err())
    }

    pub fn set_group_on(&self, room: &str, on: bool) -> Result<(), E2eError> {
        let sql = if on {
            "INSERT OR IGNORE INTO group_on (room) VALUES (?1)"
        } else {
            "DELETE FROM group_on WHERE room = ?1"
        };
        self.db
            .execute(sql, params![room])
            .map(|_| ())
            .map_err(self.err())
    }

    /// Records that message `idx` of a session came as `msgid`; returns the msgid it came
    /// as first (differs on a replay).
    pub fn group_seen(
        &self,
        sender: &str,
        session_id: &str,
        idx: u32,
        msgid: &str,
    ) -> Result<String, E2eError> {
        self.db
            .execute(
                "INSERT OR IGNORE INTO group_seen (sender, session_id, idx, msgid)
                 VALUES (?1, ?2, ?3, ?4)",
                params![sender, session_id, idx, msgid],
            )
            .map_err(self.err())?;
        self.db
            .query_row(
                "SELECT msgid FROM group_seen WHERE sender = ?1 AND session_id = ?2 AND idx = ?3",
                params![sender, session_id, idx],
                |r| r.get(0),
            )
            .map_err(self.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keeps_what_it_is_given_in_a_private_file() -> Result<(), E2eError> {
        let tmp = tempfile::tempdir().map_err(|e| E2eError::io(Path::new("tmp"), e))?;
        let path = tmp.path().join("alice.sqlite");
        let mut store = Store::open(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }
        store.save_message("m1", "hello", false)?;
        assert_eq!(store.message("m1")?, Some(("hello".into(), false)));
        assert_eq!(store.message("m2")?, None);
        for i in 0..6 {
            store.save_session("dev", &format!("s{i}"), "p")?;
        }
        let sessions = store.sessions("dev")?;
        assert_eq!(sessions.len(), SESSIONS_PER_DEVICE as usize);
        assert_eq!(sessions[0].0, "s5");
        let devices = vec![KnownDevice {
            curve: "c".into(),
            ed25519: "e".into(),
        }];
        store.set_devices("bob", &devices)?;
        assert_eq!(store.devices("bob")?, devices);
        assert!(!store.verified("bob")?);
        store.set_verified("bob", true)?;
        assert!(store.verified("bob")?);
        store.set_off("bob", true)?;
        assert!(store.is_off("bob")?);
        store.set_off("bob", false)?;
        assert!(!store.is_off("bob")?);
        Ok(())
    }
}
