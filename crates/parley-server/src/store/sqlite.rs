//! The embedded store: one SQLite file, opened in WAL mode with a busy timeout so a running server
//! and the `parleyd users` CLI can share it. The schema is an ordered list of migrations whose count
//! is kept in `PRAGMA user_version`; checking the file and running every pending step is one
//! immediate transaction, so processes opening a new file together (a deploy script starting the
//! server and `parleyd users add` at once) take turns. A file that is not a SQLite database, fails
//! its integrity check, belongs to something else or carries a newer schema is refused with a clear
//! error and left exactly as it was: losing accounts silently is worse than not starting.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use parley_proto::casefold;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use super::history::{parties, rekey_legacy};
use super::{AccountRecord, AccountStore, LockoutTarget, SessionRecord, StoreError};

/// How long a statement waits for another process (the CLI, a second server) to release the file.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one step per version: after step `i` has run, `user_version` is `i + 1`. Steps are
/// append-only; never edit one that has shipped. Later tables (history, channels) go in new steps.
const MIGRATIONS: &[&str] = &[
    // 1: accounts. `name_folded` is the casefolded name; its UNIQUE constraint is what makes two
    // concurrent registrations of one name end with exactly one account.
    "CREATE TABLE accounts (
        id            INTEGER PRIMARY KEY,
        name          TEXT    NOT NULL,
        name_folded   TEXT    NOT NULL UNIQUE,
        password_hash TEXT    NOT NULL,
        created_at    INTEGER NOT NULL,
        locked        INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1))
    ) STRICT;",
    // 2: history, offline delivery and the audit trail. `id` orders messages within a millisecond;
    // `party_a`/`party_b` name both sides of a private conversation so CHATHISTORY TARGETS can find
    // someone's conversations; offline rows reference messages and vanish with them.
    "CREATE TABLE messages (
        id       INTEGER PRIMARY KEY,
        msgid    TEXT    NOT NULL UNIQUE,
        time_ms  INTEGER NOT NULL,
        target   TEXT    NOT NULL,
        kind     TEXT    NOT NULL,
        source   TEXT    NOT NULL,
        account  TEXT,
        recipient TEXT   NOT NULL,
        text     TEXT    NOT NULL,
        party_a  TEXT,
        party_b  TEXT
    ) STRICT;
    CREATE INDEX messages_by_target ON messages (target, time_ms, id);
    CREATE INDEX messages_by_party_a ON messages (party_a) WHERE party_a IS NOT NULL;
    CREATE INDEX messages_by_party_b ON messages (party_b) WHERE party_b IS NOT NULL;
    CREATE TABLE offline (
        account    TEXT    NOT NULL,
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE
    ) STRICT;
    CREATE INDEX offline_by_account ON offline (account, message_id);
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        action  TEXT    NOT NULL,
        actor   TEXT,
        target  TEXT,
        ip      TEXT,
        detail  TEXT
    ) STRICT;
    CREATE INDEX audit_by_time ON audit (time_ms);
    CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;",
    // 3: registered channels (one JSON record each, read whole at start) and server bans.
    "CREATE TABLE channels (
        name_folded TEXT PRIMARY KEY,
        record      TEXT NOT NULL
    ) STRICT;
    CREATE TABLE server_bans (
        kind        TEXT    NOT NULL,
        mask_folded TEXT    NOT NULL,
        mask        TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        set_by      TEXT    NOT NULL,
        set_at_ms   INTEGER NOT NULL,
        expires_ms  INTEGER,
        PRIMARY KEY (kind, mask_folded)
    ) STRICT;",
    // 4: the SCRAM-SHA-256 credential (RFC 5803 form), NULL until the account layer derives one
    // from a password: accounts made before this step gain it at their next PLAIN/PASS login.
    "ALTER TABLE accounts ADD COLUMN scram TEXT;",
    // 5: private conversations are keyed `dm:<length of a>:<a>|<b>` (see `store::history::dm_key`);
    // the rows under the old, ambiguous `dm:<a>|<b>` are rewritten by `after_step`.
    "-- data only",
    // 6: the audit trail names the acting account beside the nick it acted under.
    "ALTER TABLE audit ADD COLUMN account TEXT;",
    // 7: when an admin last lifted the lockout after failed logins of an account name or an
    // address (`parleyd users unlock`): the lockouts live in the server's memory, and a running
    // server drops one older than this stamp when it meets it.
    "CREATE TABLE lockout_lifts (
        kind         TEXT    NOT NULL CHECK (kind IN ('account', 'address')),
        key          TEXT    NOT NULL,
        lifted_at_ms INTEGER NOT NULL,
        PRIMARY KEY (kind, key)
    ) STRICT;",
    // 8: login sessions (web client tokens). Only the token's SHA-256 is kept, so a copy of this
    // file logs no one in; the foreign key removes an account's sessions with the account.
    "CREATE TABLE sessions (
        id             INTEGER PRIMARY KEY,
        token_hash     TEXT    NOT NULL UNIQUE,
        account_folded TEXT    NOT NULL REFERENCES accounts (name_folded) ON DELETE CASCADE,
        label          TEXT    NOT NULL,
        created_at     INTEGER NOT NULL,
        last_used_at   INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX sessions_by_account ON sessions (account_folded, last_used_at);",
    // 9: server admins by the database's word, set only by the admin CLI (`users add --admin`,
    // `users admin NAME on`), so a new install needs no [operators] entry for its first admin.
    "ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1));",
    // 10: a message's client-only tags (IRCv3 message-tags: `+draft/reply=...`), escaped as
    // relayed, so CHATHISTORY returns them; empty for messages stored before.
    "ALTER TABLE messages ADD COLUMN tags TEXT NOT NULL DEFAULT '';",
    // 11: read markers (IRCv3 draft/read-marker): per account and casefolded target, the time
    // of the last message read, in ms. They go with their account.
    "CREATE TABLE read_markers (
        account_folded TEXT    NOT NULL REFERENCES accounts (name_folded) ON DELETE CASCADE,
        target         TEXT    NOT NULL,
        time_ms        INTEGER NOT NULL,
        PRIMARY KEY (account_folded, target)
    ) STRICT;",
    // 12: always-on (`store/always_on.rs`): whether the account opted in, and the presence it
    // keeps while no session is connected (JSON: nick, channels, since when), restored at start.
    "CREATE TABLE always_on (
        account_folded TEXT    PRIMARY KEY REFERENCES accounts (name_folded) ON DELETE CASCADE,
        enabled        INTEGER NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
        presence       TEXT
    ) STRICT;",
    // 13: web push subscriptions (IRCv3 draft/webpush): per account and endpoint URL, the
    // browser's keys the pushes are encrypted for. They go with their account.
    "CREATE TABLE push_subscriptions (
        account_folded TEXT    NOT NULL REFERENCES accounts (name_folded) ON DELETE CASCADE,
        endpoint       TEXT    NOT NULL,
        p256dh         TEXT    NOT NULL,
        auth           TEXT    NOT NULL,
        created_ms     INTEGER NOT NULL,
        PRIMARY KEY (account_folded, endpoint)
    ) STRICT;",
    // 14: full-text search (SEARCH, `sqlite_search.rs`): an FTS5 index over the message text,
    // its rows the messages' ids. Triggers keep it in step with the table, so a redacted or
    // pruned message is unfindable as soon as it is gone; `rebuild` indexes the history so far.
    "CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content = 'messages', content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
    END;
    INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');",
    // 15: always-on on a cluster (`store/always_on.rs`): which node life keeps a presence
    // (`node~incarnation`), so when that life ends exactly one surviving node adopts it with a
    // compare-and-set on this column. NULL on a single server.
    "ALTER TABLE always_on ADD COLUMN owner TEXT;",
    // 16: the end-to-end key directory (`store/e2e_keys.rs`): each account's devices, named by
    // their Curve25519 identity key (unique across accounts, so a device never changes hands),
    // and each device's one-time keys and one fallback key (public keys only). They go with
    // their device, and devices with their account.
    "CREATE TABLE e2e_devices (
        curve          TEXT    PRIMARY KEY,
        account_folded TEXT    NOT NULL REFERENCES accounts (name_folded) ON DELETE CASCADE,
        ed25519        TEXT    NOT NULL,
        signature      TEXT    NOT NULL,
        created_ms     INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX e2e_devices_by_account ON e2e_devices (account_folded, created_ms);
    CREATE TABLE e2e_keys (
        id          INTEGER PRIMARY KEY,
        curve       TEXT    NOT NULL REFERENCES e2e_devices (curve) ON DELETE CASCADE,
        key         TEXT    NOT NULL,
        is_fallback INTEGER NOT NULL DEFAULT 0 CHECK (is_fallback IN (0, 1))
    ) STRICT;
    CREATE UNIQUE INDEX e2e_keys_once ON e2e_keys (curve, is_fallback, key);
    CREATE UNIQUE INDEX e2e_keys_one_fallback ON e2e_keys (curve) WHERE is_fallback = 1;",
    // 17: the FTS index is brought up to date in bulk, not one row per insert (issue 27: the
    // per-row trigger was most of a stored message's cost, 26 of 48 us at 64 rows per commit).
    // A new message's id goes to `messages_fts_pending`; `sqlite_search::index_pending` indexes
    // them all in one statement, every `FTS_BACKLOG` messages and before every search, so a
    // search still finds everything stored. A message removed or rewritten while pending only
    // leaves the list; one already indexed leaves the index as before (in one trigger, in that
    // order: an FTS5 'delete' of a row never indexed would corrupt the index). Ids, not a
    // high-water mark: SQLite may give a deleted newest row's id to the next one.
    "CREATE TABLE messages_fts_pending (id INTEGER PRIMARY KEY) STRICT;
    DROP TRIGGER messages_fts_insert;
    DROP TRIGGER messages_fts_delete;
    DROP TRIGGER messages_fts_update;
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts_pending (id) VALUES (new.id);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text)
            SELECT 'delete', old.id, old.text
            WHERE NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE id = old.id);
        DELETE FROM messages_fts_pending WHERE id = old.id;
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
    WHEN NOT EXISTS (SELECT 1 FROM messages_fts_pending WHERE id = old.id) BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
    END;",
    // 18: who a private conversation is between, one row per party and conversation, instead of
    // the two partial indexes on `messages.party_a`/`party_b`. Those changed a page each for
    // every private message stored (issue 27: 2 of the 6 pages its commit wrote); a row here is
    // written only by a conversation's first message (`INSERT OR IGNORE` of one that exists
    // writes nothing). The columns stay, written as before, so an older build's queries hold.
    "CREATE TABLE conversations (
        party  TEXT NOT NULL,
        target TEXT NOT NULL,
        PRIMARY KEY (party, target)
    ) STRICT, WITHOUT ROWID;
    INSERT OR IGNORE INTO conversations (party, target)
        SELECT party_a, target FROM messages WHERE party_a IS NOT NULL
        UNION SELECT party_b, target FROM messages WHERE party_b IS NOT NULL;
    DROP INDEX messages_by_party_a;
    DROP INDEX messages_by_party_b;",
];

/// The schema version this build writes and understands.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Accounts in a SQLite file. One connection behind a mutex: account operations are rare and short,
/// and SQLite serializes writers anyway.
pub struct SqliteStore {
    path: PathBuf,
    connection: Mutex<Connection>,
    /// Messages this store wrote since it last brought the FTS index up to date (see
    /// `sqlite_search::index_pending`): a count, not the truth, which is the pending table.
    pub(super) fts_backlog: std::sync::atomic::AtomicUsize,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open the database at `path`, creating it (and its schema) when the file does not exist, and
    /// bringing an older schema up to date. Anything unexpected is a [`StoreError::Open`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let fail = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(fail(
                    "it is a directory; point accounts.database at a file".to_owned(),
                ))
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                create_private(path).map_err(|error| fail(format!("{error}")))?;
            }
            Err(error) => return Err(fail(format!("{error}"))),
        }

        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut connection =
            Connection::open_with_flags(path, flags).map_err(|error| fail(explain(&error)))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|error| fail(explain(&error)))?;

        if connection
            .is_readonly("main")
            .map_err(|error| fail(explain(&error)))?
        {
            return Err(fail(
                "the file is read-only; parleyd needs to write it, so check its permissions"
                    .to_owned(),
            ));
        }
        // Checks and migration in one immediate transaction: a second process opening the same
        // new file (the server and `parleyd users add` started together) waits for it, then
        // finds the schema complete; a file that is not ours is refused with nothing written.
        prepare_schema(&mut connection).map_err(fail)?;

        // After the schema is known to be ours, so a foreign file is never switched to WAL.
        let journal_mode = switch_to_wal(&connection).map_err(|error| fail(explain(&error)))?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), journal_mode, "the database is not in WAL mode");
        }
        connection
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(|error| fail(explain(&error)))?;
        // Plans must not depend on the values bound: otherwise (the bundled SQLite has STAT4)
        // a cached history query is parsed and planned again on every run, ten times its cost
        // (46 us against 5 us measured; a JOIN's replay runs one).
        connection
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )
            .map_err(|error| fail(explain(&error)))?;

        Ok(Self {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
            fts_backlog: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Copy the whole database to `dest` with SQLite's online backup API: consistent even while
    /// the server writes, and the copy is a database the server can start from.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(StoreError::Backend(format!(
                "{} already exists; choose a new file name",
                dest.display()
            )));
        }
        let connection = self.connection.lock();
        let mut target = Connection::open(dest).map_err(backend)?;
        let backup = rusqlite::backup::Backup::new(&connection, &mut target).map_err(backend)?;
        backup
            .run_to_completion(256, Duration::from_millis(10), None)
            .map_err(backend)
    }

    /// The connection, for the history half of this store (`sqlite_history.rs`).
    pub(super) fn connection(&self) -> &Mutex<Connection> {
        &self.connection
    }
}

/// The account named `name` (casefolded), read through a cached statement: logins and NICK's
/// account checks run this for every connection.
fn account_in(connection: &Connection, name: &str) -> Result<Option<AccountRecord>, StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT name, password_hash, created_at, locked, scram, admin FROM accounts
             WHERE name_folded = ?1",
        )
        .map_err(backend)?;
    statement
        .query_row([casefold(name)], record_from_row)
        .optional()
        .map_err(backend)
}

/// Create the empty database file readable by its owner only, whatever the umask: it holds
/// password hashes and private messages. SQLite gives its `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // Someone (a second process) created it first: theirs is as good.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// `PRAGMA journal_mode = WAL`, waiting like any other statement when another opener holds the
/// file: the switch upgrades a read lock to a write lock, and SQLite answers that with "locked"
/// at once instead of calling the busy handler (which could deadlock), so the wait is ours.
fn switch_to_wal(connection: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(error)
                if matches!(
                    error.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// The error plus what to do about it, for the common ways a file turns out not to be usable.
fn explain(error: &rusqlite::Error) -> String {
    let hint = match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            "the file is not a SQLite database (or is damaged or encrypted); move it aside or \
             restore a backup, parleyd will not overwrite it"
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            "the database is damaged; restore a backup, parleyd will not overwrite it"
        }
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            "check that its directory exists and that parleyd may read and write both"
        }
        Some(ErrorCode::ReadOnly) => "check that parleyd may write the file and its directory",
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "another program holds it locked; try again"
        }
        _ => return error.to_string(),
    };
    format!("{error}; {hint}")
}

/// `PRAGMA quick_check`: the cheap structural check of every page, fine for a table of accounts.
fn check_integrity(connection: &Connection) -> Result<(), String> {
    let mut problems = Vec::new();
    connection
        .pragma_query(None, "quick_check", |row| {
            problems.push(row.get::<_, String>(0)?);
            Ok(())
        })
        .map_err(|error| explain(&error))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    let first = problems.first().map_or("no result", String::as_str);
    Err(format!(
        "it fails SQLite's integrity check ({first}); restore a backup, parleyd will not \
         overwrite it"
    ))
}

fn user_table_count(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        [],
        |row| row.get(0),
    )
}

/// Check that the file is parleyd's and bring its schema up to date, all in one immediate
/// transaction that also sets `user_version`: whoever takes the write lock first migrates, and
/// every other opener (another process, another connection) waits on the busy timeout and then
/// sees either the old schema untouched or the new one complete, never a half-made one. On any
/// refusal the transaction rolls back, leaving the file exactly as it was.
fn prepare_schema(connection: &mut Connection) -> Result<(), String> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|error| explain(&error))?;
    let version: i64 = transaction
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|error| explain(&error))?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "its schema version is {version}, newer than this parleyd understands \
             ({SCHEMA_VERSION}); run a newer parleyd or restore a backup"
        ));
    }
    if version < 0 {
        return Err(format!(
            "its schema version {version} is not one parleyd ever wrote; \
             point accounts.database at another file"
        ));
    }
    check_integrity(&transaction)?;
    if version == 0 && user_table_count(&transaction).map_err(|e| explain(&e))? > 0 {
        return Err(
            "it is a SQLite database, but not parleyd's (it has tables and no parleyd \
             schema version); point accounts.database at another file"
                .to_owned(),
        );
    }
    migrate(&transaction, version)
        .map_err(|error| format!("updating its schema failed: {}", explain(&error)))?;
    check_schema(&transaction)?;
    transaction.commit().map_err(|error| explain(&error))?;
    if version < SCHEMA_VERSION {
        tracing::info!(
            from = version,
            to = SCHEMA_VERSION,
            "database schema updated"
        );
    }
    Ok(())
}

/// Run the steps after `version`, then record the new version, inside the caller's transaction.
fn migrate(transaction: &Connection, version: i64) -> rusqlite::Result<()> {
    let done = usize::try_from(version).unwrap_or(0);
    for (index, step) in MIGRATIONS.iter().enumerate().skip(done) {
        transaction.execute_batch(step)?;
        after_step(transaction, index + 1)?;
    }
    if version < SCHEMA_VERSION {
        transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    Ok(())
}

/// Data changes that go with a schema step, run right after its SQL.
fn after_step(transaction: &Connection, reached: usize) -> rusqlite::Result<()> {
    match reached {
        5 => rekey_private_conversations(transaction),
        _ => Ok(()),
    }
}

/// Step 5: every private message under an old `dm:<a>|<b>` key moves to its unambiguous key,
/// split at its sender (see `history::rekey_legacy`). A row that cannot be split that way (its
/// sender is neither end: the file was edited by hand) keeps its old key, which no request can
/// name any more, and loses its parties, so it is out of CHATHISTORY TARGETS too.
fn rekey_private_conversations(transaction: &Connection) -> rusqlite::Result<()> {
    let rows = transaction
        .prepare("SELECT id, target, account, source FROM messages WHERE target LIKE 'dm:%'")?
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut update = transaction
        .prepare("UPDATE messages SET target = ?2, party_a = ?3, party_b = ?4 WHERE id = ?1")?;
    let mut unresolved = 0_usize;
    for (id, target, account, source) in &rows {
        let key = rekey_legacy(target, account.as_deref(), source);
        if key.is_none() {
            unresolved += 1;
        }
        let (a, b) = key.as_deref().map_or((None, None), parties);
        update.execute(rusqlite::params![
            id,
            key.as_deref().unwrap_or(target),
            a,
            b
        ])?;
    }
    if unresolved > 0 {
        tracing::warn!(
            unresolved,
            "private messages whose sender is neither party of their old key were kept \
             under it, where no client can read them"
        );
    }
    Ok(())
}

/// After migrating, the tables this code queries must be there with the columns it names; a file
/// that claims our version without them was not written by parleyd.
fn check_schema(connection: &Connection) -> Result<(), String> {
    let columns = connection
        .prepare("SELECT name FROM pragma_table_info('accounts')")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|error| explain(&error))?;
    let missing: Vec<&str> = [
        "name",
        "name_folded",
        "password_hash",
        "created_at",
        "locked",
        "scram",
    ]
    .into_iter()
    .filter(|wanted| !columns.iter().any(|column| column == wanted))
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "its `accounts` table lacks column(s) {}; the file was not written by parleyd, \
             so point accounts.database at another file",
            missing.join(", ")
        ))
    }
}

pub(super) fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error(),
        Some(e) if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        name: row.get(0)?,
        password_hash: row.get(1)?,
        created_at: row.get(2)?,
        locked: row.get(3)?,
        scram: row.get(4)?,
        admin: row.get(5)?,
    })
}

impl AccountStore for SqliteStore {
    fn create_account(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let connection = self.connection.lock();
        connection
            .execute(
                "INSERT INTO accounts (name, name_folded, password_hash, created_at, locked)
                 VALUES (?1, ?2, ?3, ?4, 0)",
                rusqlite::params![name, casefold(name), password_hash, unix_now()],
            )
            .map_err(|error| {
                if is_unique_violation(&error) {
                    StoreError::AlreadyExists(name.to_owned())
                } else {
                    backend(error)
                }
            })?;
        Ok(())
    }

    fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        account_in(&self.connection.lock(), name)
    }

    /// Only when the connection is free: a lookup by its unique index then reads a few cached
    /// pages (microseconds; WAL readers never wait for writers), but waiting for the lock could
    /// mean waiting for a write that waits on another process's lock.
    fn account_now(&self, name: &str) -> Option<Result<Option<AccountRecord>, StoreError>> {
        let connection = self.connection.try_lock()?;
        Some(account_in(&connection, name))
    }

    fn set_password(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let connection = self.connection.lock();
        let changed = connection
            .execute(
                "UPDATE accounts SET password_hash = ?2, scram = NULL WHERE name_folded = ?1",
                rusqlite::params![casefold(name), password_hash],
            )
            .map_err(backend)?;
        // The old password's sessions end with it (a changed password is how a user takes an
        // account back).
        connection
            .execute(
                "DELETE FROM sessions WHERE account_folded = ?1",
                [casefold(name)],
            )
            .map_err(backend)?;
        found(changed, name)
    }

    fn set_scram(&self, name: &str, scram: Option<&str>) -> Result<(), StoreError> {
        let connection = self.connection.lock();
        let changed = connection
            .execute(
                "UPDATE accounts SET scram = ?2 WHERE name_folded = ?1",
                rusqlite::params![casefold(name), scram],
            )
            .map_err(backend)?;
        found(changed, name)
    }

    fn remove_account(&self, name: &str) -> Result<(), StoreError> {
        let connection = self.connection.lock();
        let changed = connection
            .execute(
                "DELETE FROM accounts WHERE name_folded = ?1",
                [casefold(name)],
            )
            .map_err(backend)?;
        found(changed, name)
    }

    fn set_locked(&self, name: &str, locked: bool) -> Result<(), StoreError> {
        let connection = self.connection.lock();
        let changed = connection
            .execute(
                "UPDATE accounts SET locked = ?2 WHERE name_folded = ?1",
                rusqlite::params![casefold(name), locked],
            )
            .map_err(backend)?;
        if locked {
            connection
                .execute(
                    "DELETE FROM sessions WHERE account_folded = ?1",
                    [casefold(name)],
                )
                .map_err(backend)?;
        }
        found(changed, name)
    }

    fn set_admin(&self, name: &str, admin: bool) -> Result<(), StoreError> {
        let connection = self.connection.lock();
        let changed = connection
            .execute(
                "UPDATE accounts SET admin = ?2 WHERE name_folded = ?1",
                rusqlite::params![casefold(name), admin],
            )
            .map_err(backend)?;
        found(changed, name)
    }

    fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let connection = self.connection.lock();
        let mut statement = connection
            .prepare(
                "SELECT name, password_hash, created_at, locked, scram, admin FROM accounts
                 ORDER BY name_folded",
            )
            .map_err(backend)?;
        let rows = statement.query_map([], record_from_row).map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn lift_lockout(&self, target: &LockoutTarget, at_ms: i64) -> Result<(), StoreError> {
        let connection = self.connection.lock();
        connection
            .execute(
                "INSERT INTO lockout_lifts (kind, key, lifted_at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, key) DO UPDATE SET lifted_at_ms = excluded.lifted_at_ms",
                rusqlite::params![target.kind(), target.key(), at_ms],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn lockout_lifted_at(&self, target: &LockoutTarget) -> Result<Option<i64>, StoreError> {
        let connection = self.connection.lock();
        connection
            .query_row(
                "SELECT lifted_at_ms FROM lockout_lifts WHERE kind = ?1 AND key = ?2",
                rusqlite::params![target.kind(), target.key()],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)
    }
    fn create_session(
        &self,
        account: &str,
        token_hash: &str,
        label: &str,
        now: i64,
        expires_at: i64,
        keep: usize,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction().map_err(backend)?;
        let folded = casefold(account);
        let inserted = transaction.execute(
            "INSERT INTO sessions
                 (token_hash, account_folded, label, created_at, last_used_at, expires_at)
             SELECT ?1, name_folded, ?3, ?4, ?4, ?5 FROM accounts WHERE name_folded = ?2",
            rusqlite::params![token_hash, folded, label, now, expires_at],
        );
        found(inserted.map_err(backend)?, account)?;
        transaction
            .execute(
                "DELETE FROM sessions WHERE account_folded = ?1 AND (expires_at <= ?3 OR id NOT IN (
                     SELECT id FROM sessions WHERE account_folded = ?1
                     ORDER BY last_used_at DESC, id DESC LIMIT ?2))",
                rusqlite::params![folded, i64::try_from(keep).unwrap_or(i64::MAX), now],
            )
            .map_err(backend)?;
        transaction.commit().map_err(backend)
    }

    fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.connection
            .lock()
            .query_row(
                "SELECT a.name, s.label, s.created_at, s.last_used_at, s.expires_at
                 FROM sessions s JOIN accounts a ON a.name_folded = s.account_folded
                 WHERE s.token_hash = ?1",
                [token_hash],
                session_from_row,
            )
            .optional()
            .map_err(backend)
    }

    fn touch_session(&self, token_hash: &str, now: i64, expires_at: i64) -> Result<(), StoreError> {
        self.connection
            .lock()
            .execute(
                "UPDATE sessions SET last_used_at = ?2, expires_at = ?3 WHERE token_hash = ?1",
                rusqlite::params![token_hash, now, expires_at],
            )
            .map_err(backend)?;
        Ok(())
    }

    fn revoke_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        let changed = self
            .connection
            .lock()
            .execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
            .map_err(backend)?;
        Ok(changed > 0)
    }

    fn revoke_sessions(&self, account: &str) -> Result<usize, StoreError> {
        self.connection
            .lock()
            .execute(
                "DELETE FROM sessions WHERE account_folded = ?1",
                [casefold(account)],
            )
            .map_err(backend)
    }

    fn sessions(&self, account: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let connection = self.connection.lock();
        let mut statement = connection
            .prepare(
                "SELECT a.name, s.label, s.created_at, s.last_used_at, s.expires_at
                 FROM sessions s JOIN accounts a ON a.name_folded = s.account_folded
                 WHERE s.account_folded = ?1 ORDER BY s.last_used_at DESC, s.id DESC",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map([casefold(account)], session_from_row)
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn read_marker(&self, account: &str, target: &str) -> Result<Option<i64>, StoreError> {
        self.connection
            .lock()
            .query_row(
                "SELECT time_ms FROM read_markers WHERE account_folded = ?1 AND target = ?2",
                rusqlite::params![casefold(account), target],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)
    }

    fn advance_read_marker(
        &self,
        account: &str,
        target: &str,
        time_ms: i64,
        keep: usize,
    ) -> Result<i64, StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction().map_err(backend)?;
        let folded = casefold(account);
        let changed = transaction
            .execute(
                "INSERT INTO read_markers (account_folded, target, time_ms)
                 SELECT name_folded, ?2, ?3 FROM accounts WHERE name_folded = ?1
                 ON CONFLICT (account_folded, target)
                 DO UPDATE SET time_ms = max(time_ms, excluded.time_ms)",
                rusqlite::params![folded, target, time_ms],
            )
            .map_err(backend)?;
        found(changed, account)?;
        let stored: i64 = transaction
            .query_row(
                "SELECT time_ms FROM read_markers WHERE account_folded = ?1 AND target = ?2",
                rusqlite::params![folded, target],
                |row| row.get(0),
            )
            .map_err(backend)?;
        transaction
            .execute(
                "DELETE FROM read_markers WHERE account_folded = ?1 AND target NOT IN (
                     SELECT target FROM read_markers WHERE account_folded = ?1
                     ORDER BY time_ms DESC, target LIMIT ?2)",
                rusqlite::params![folded, i64::try_from(keep).unwrap_or(i64::MAX)],
            )
            .map_err(backend)?;
        transaction.commit().map_err(backend)?;
        Ok(stored)
    }

    /// Reads the schema page, so a file that went away or a disk that fails shows.
    fn ping(&self) -> Result<(), StoreError> {
        self.connection
            .lock()
            .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(backend)
    }
}

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        account: row.get(0)?,
        label: row.get(1)?,
        created_at: row.get(2)?,
        last_used_at: row.get(3)?,
        expires_at: row.get(4)?,
    })
}

fn found(changed: usize, name: &str) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound(name.to_owned()))
    } else {
        Ok(())
    }
}

/// Create a new database at `path` with the schema of an older parleyd: the first `version`
/// steps only. For tests of migrations (a file as that version left it); never used to serve.
#[doc(hidden)]
pub fn create_at_version(path: &Path, version: usize) -> Result<(), StoreError> {
    let fail = |error: rusqlite::Error| StoreError::Open {
        path: path.to_path_buf(),
        reason: explain(&error),
    };
    let steps = MIGRATIONS.get(..version).ok_or_else(|| StoreError::Open {
        path: path.to_path_buf(),
        reason: format!("there is no schema version {version}"),
    })?;
    let mut connection = Connection::open(path).map_err(fail)?;
    let transaction = connection.transaction().map_err(fail)?;
    for step in steps {
        transaction.execute_batch(step).map_err(fail)?;
    }
    transaction
        .pragma_update(None, "user_version", version as i64)
        .map_err(fail)?;
    transaction.commit().map_err(fail)
}

// The behaviour both backends share (names, concurrency, updates, SCRAM credentials, history,
// audit, state) is tested once for both in `tests/store.rs`; here only what is the file's own.
#[cfg(test)]
mod tests {
    use super::*;

    fn open_in(dir: &tempfile::TempDir) -> (PathBuf, SqliteStore) {
        let path = dir.path().join("accounts.db");
        let store = SqliteStore::open(&path).expect("open a fresh store");
        (path, store)
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .expect("open raw")
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("read user_version")
    }

    fn expect_open_error(path: &Path) -> String {
        match SqliteStore::open(path) {
            Err(StoreError::Open {
                path: named,
                reason,
            }) => {
                assert_eq!(named, path);
                reason
            }
            Err(other) => panic!("expected StoreError::Open, got {other:?}"),
            Ok(store) => panic!("expected StoreError::Open, but {store:?} opened"),
        }
    }

    #[test]
    fn migrations_create_the_schema_and_reopen_keeps_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, store) = open_in(&dir);
        store.create_account("Alice", "hash-a").expect("create");
        drop(store);
        assert_eq!(user_version(&path), SCHEMA_VERSION);

        let store = SqliteStore::open(&path).expect("reopen");
        let record = store
            .account("alice")
            .expect("lookup")
            .expect("still there");
        assert_eq!(record.name, "Alice");
        assert_eq!(record.password_hash, "hash-a");
        assert!(!record.locked);
        assert_eq!(user_version(&path), SCHEMA_VERSION);
    }

    /// The server, its history connection and `parleyd users add` open a new file at the same
    /// moment: every one of them must get the schema, none a "locked" or "not parleyd's" error.
    #[test]
    fn threads_opening_a_fresh_file_at_once_all_succeed() {
        const OPENERS: usize = 6;
        for round in 0..20 {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("parley.db");
            let start = std::sync::Arc::new(std::sync::Barrier::new(OPENERS));
            let openers: Vec<_> = (0..OPENERS)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        SqliteStore::open(&path).map(|_| ())
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener.join().expect("opener thread");
                assert!(opened.is_ok(), "round {round}: {opened:?}");
            }
            assert_eq!(user_version(&path), SCHEMA_VERSION);
        }
    }

    #[test]
    fn garbage_file_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("accounts.db");
        // Deterministic noise (an LCG), long enough to look like a few pages.
        let mut state: u32 = 0x2545_f491;
        let garbage: Vec<u8> = (0..8192)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                state.to_be_bytes()[0]
            })
            .collect();
        std::fs::write(&path, &garbage).expect("write garbage");

        let reason = expect_open_error(&path);
        assert!(reason.contains("not a SQLite database"), "{reason}");
        assert_eq!(std::fs::read(&path).expect("read back"), garbage);
        let error = SqliteStore::open(&path)
            .expect_err("still refused")
            .to_string();
        assert!(
            error.starts_with(&format!("cannot open the database {}", path.display())),
            "{error}"
        );
    }

    #[test]
    fn schema_from_the_future_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, store) = open_in(&dir);
        store.create_account("alice", "h").expect("create");
        drop(store);
        Connection::open(&path)
            .expect("open raw")
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump version");

        let reason = expect_open_error(&path);
        assert!(reason.contains("newer than this parleyd"), "{reason}");
        assert_eq!(user_version(&path), SCHEMA_VERSION + 1);
    }

    #[test]
    fn someone_elses_database_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .expect("open raw")
            .execute_batch("CREATE TABLE notes (body TEXT);")
            .expect("create foreign table");

        let reason = expect_open_error(&path);
        assert!(reason.contains("not parleyd's"), "{reason}");
        let tables = user_table_count(&Connection::open(&path).expect("open raw")).expect("count");
        assert_eq!(tables, 1, "nothing was added to the foreign database");
        assert_eq!(user_version(&path), 0);
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let reason = expect_open_error(dir.path());
        assert!(reason.contains("directory"), "{reason}");
    }

    #[test]
    fn created_at_is_now() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, store) = open_in(&dir);
        let before = unix_now();
        store.create_account("alice", "h").expect("create");
        let created = store
            .account("alice")
            .expect("lookup")
            .expect("found")
            .created_at;
        assert!((before..=unix_now()).contains(&created), "{created}");
    }

    #[test]
    fn a_version_3_file_gains_the_scram_column_and_keeps_its_accounts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("accounts.db");
        {
            let connection = Connection::open(&path).expect("open raw");
            for step in &MIGRATIONS[..3] {
                connection.execute_batch(step).expect("old step");
            }
            connection
                .pragma_update(None, "user_version", 3)
                .expect("version 3");
            connection
                .execute(
                    "INSERT INTO accounts (name, name_folded, password_hash, created_at)
                     VALUES ('Old', 'old', 'old-hash', 1)",
                    [],
                )
                .expect("old account");
        }
        let store = SqliteStore::open(&path).expect("migrates");
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        let old = store.account("old").expect("lookup").expect("kept");
        assert_eq!((old.password_hash.as_str(), old.scram), ("old-hash", None));
        store
            .set_scram("old", Some("credential"))
            .expect("set scram");
        assert_eq!(
            store
                .account("old")
                .expect("lookup")
                .expect("found")
                .scram
                .as_deref(),
            Some("credential")
        );
    }

    /// Step 18 moves who a private conversation is between from two indexes to a table: a
    /// version 17 file's conversations are listed after it, and new messages add theirs once.
    #[test]
    fn a_version_17_file_keeps_its_private_conversations() {
        use crate::store::{HistoryStore, StoredMessage, WriteBatch};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.db");
        create_at_version(&path, 17).expect("a version 17 file");
        let old = "dm:5:alice|bob";
        {
            let connection = Connection::open(&path).expect("open raw");
            for n in 0..3 {
                connection
                    .execute(
                        "INSERT INTO messages (msgid, time_ms, target, kind, source, recipient, \
                         text, party_a, party_b, tags) VALUES (?1, ?2, ?3, 'PRIVMSG', \
                         'alice!a@h', 'bob', 'hi', 'alice', 'bob', '')",
                        rusqlite::params![format!("old{n}"), n, old],
                    )
                    .expect("an old private message");
            }
        }
        let store = SqliteStore::open(&path).expect("migrates");
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        assert_eq!(store.conversations_of("alice").expect("reads"), [old]);
        assert_eq!(store.conversations_of("bob").expect("reads"), [old]);
        assert!(store.conversations_of("carol").expect("reads").is_empty());
        let new = "dm:5:alice|carol";
        let message = |msgid: &str, target: &str| StoredMessage {
            msgid: msgid.into(),
            time_ms: 10,
            target: target.into(),
            kind: "PRIVMSG".into(),
            source: "alice!a@h".into(),
            account: Some("alice".into()),
            to: "carol".into(),
            text: "hello".into(),
            tags: String::new(),
        };
        let batch = WriteBatch {
            messages: vec![
                message("new1", new),
                message("new2", new),
                message("new3", old),
            ],
            ..WriteBatch::default()
        };
        store.write(&batch).expect("writes");
        let mut alice = store.conversations_of("alice").expect("reads");
        alice.sort();
        assert_eq!(alice, [old, new], "each conversation once");
        assert_eq!(store.conversations_of("carol").expect("reads"), [new]);
        let indexes: i64 = Connection::open(&path)
            .expect("open raw")
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'messages_by_party%'",
                [],
                |row| row.get(0),
            )
            .expect("reads");
        assert_eq!(indexes, 0, "the party indexes are gone");
    }

    #[cfg(unix)]
    #[test]
    fn a_new_database_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let (path, store) = open_in(&dir);
        store.create_account("alice", "h").expect("create");
        for file in [path.clone(), path.with_extension("db-wal")] {
            let mode = std::fs::metadata(&file)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", file.display());
        }
    }

    #[test]
    fn an_empty_file_becomes_a_new_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("accounts.db");
        std::fs::write(&path, b"").expect("touch");
        let store = SqliteStore::open(&path).expect("an empty file is a new database");
        store.create_account("alice", "h").expect("create");
        assert_eq!(user_version(&path), SCHEMA_VERSION);
    }

    #[test]
    fn lookups_now_answer_only_while_the_connection_is_free() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, store) = open_in(&dir);
        store
            .create_account("Carol", "$argon2id$fake")
            .expect("create");
        let found = store.account_now("carol").expect("free").expect("read");
        assert_eq!(found.map(|r| r.name), Some("Carol".to_string()));
        assert!(matches!(store.account_now("dave"), Some(Ok(None))));
        let held = store.connection.lock();
        assert!(
            store.account_now("carol").is_none(),
            "never waits for the lock"
        );
        drop(held);
    }

    #[test]
    fn read_markers_only_move_forward_and_the_oldest_go_past_the_limit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, store) = open_in(&dir);
        assert!(matches!(
            store.advance_read_marker("ghost", "#a", 5, 10),
            Err(StoreError::NotFound(_))
        ));
        store.create_account("Alice", "hash-a").expect("create");
        assert_eq!(store.read_marker("alice", "#a").expect("read"), None);
        assert_eq!(
            store
                .advance_read_marker("ALICE", "#a", 20, 2)
                .expect("set"),
            20
        );
        assert_eq!(
            store
                .advance_read_marker("alice", "#a", 10, 2)
                .expect("back"),
            20
        );
        assert_eq!(
            store.advance_read_marker("alice", "#b", 30, 2).expect("b"),
            30
        );
        assert_eq!(
            store.advance_read_marker("alice", "#c", 40, 2).expect("c"),
            40
        );
        assert_eq!(
            store.read_marker("alice", "#a").expect("read"),
            None,
            "oldest gone"
        );
        assert_eq!(store.read_marker("alice", "#c").expect("read"), Some(40));
        store.remove_account("alice").expect("remove");
        store.create_account("alice", "hash-b").expect("again");
        assert_eq!(
            store.read_marker("alice", "#c").expect("read"),
            None,
            "a removed account's markers go with it"
        );
    }
}
