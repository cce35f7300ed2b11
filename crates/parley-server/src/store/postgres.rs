//! The PostgreSQL backend: the same three traits as the SQLite file, for several `parleyd` nodes
//! sharing one database (`accounts.store = "postgres"`).
//!
//! The traits block, and the `postgres` crate's blocking client drives its own small tokio runtime,
//! which must never be started from a thread that is already running async tasks (tokio panics).
//! So each [`PostgresStore`] owns one plain OS thread holding one connection, and every call sends
//! that thread a job and waits for the answer: callers on the async runtime block exactly as they
//! would on the SQLite mutex, and nothing nests runtimes.
//!
//! The schema is the SQLite one, step for step, in PostgreSQL's dialect; the version is a row in
//! `parley_schema`, and migrations run under an advisory lock so nodes starting together migrate
//! once. A dropped connection is re-opened on the next call, and a call it failed runs again where
//! that cannot apply a write twice (`postgres/retry.rs`).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parley_proto::casefold;
use postgres::error::SqlState;
use postgres::{Client, GenericClient, Row, Statement, Transaction};

use super::history::{
    in_window, page, parties, rekey_legacy, AuditEvent, AuditFilter, Bound, HistoryQuery,
    HistoryStore, Pages, StoredMessage, TargetActivity, WriteBatch,
};
use super::postgres_tls::{SslMode, Target, TlsFiles};
use super::search::{SearchError, SearchQuery};
use super::state::{
    decode_channels, encode_channel, ChannelRecord, ServerBan, StateChange, StateStore,
};
use super::{AccountRecord, AccountStore, LockoutTarget, SessionRecord, StoreError};

mod e2e_keys;
mod push;
mod retry;
mod search;

/// How long opening a connection may take before the call fails (the database is down or
/// unreachable); the next call tries again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a liveness probe after an error may take.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Jobs queued for the connection thread: callers block on their answer, so this bound is only
/// reached when many tasks call at once, and they then wait for room.
const QUEUE: usize = 64;

/// The advisory-lock key parleyd's migrations take, so nodes starting at once run each step once.
const MIGRATION_LOCK: i64 = 0x7061_726c_6579; // "parley"

/// The schema, one step per version, as in `sqlite.rs` (same tables, columns and meaning). Steps
/// are append-only; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: accounts; the UNIQUE casefolded name makes two concurrent registrations end with one.
    "CREATE TABLE accounts (
        id            BIGSERIAL PRIMARY KEY,
        name          TEXT    NOT NULL,
        name_folded   TEXT    NOT NULL UNIQUE,
        password_hash TEXT    NOT NULL,
        created_at    BIGINT  NOT NULL,
        locked        BOOLEAN NOT NULL DEFAULT FALSE
    );",
    // 2: history, offline delivery and the append-only audit trail.
    "CREATE TABLE messages (
        id        BIGSERIAL PRIMARY KEY,
        msgid     TEXT   NOT NULL UNIQUE,
        time_ms   BIGINT NOT NULL,
        target    TEXT   NOT NULL,
        kind      TEXT   NOT NULL,
        source    TEXT   NOT NULL,
        account   TEXT,
        recipient TEXT   NOT NULL,
        text      TEXT   NOT NULL,
        party_a   TEXT,
        party_b   TEXT
    );
    CREATE INDEX messages_by_target ON messages (target, time_ms, id);
    CREATE INDEX messages_by_party_a ON messages (party_a) WHERE party_a IS NOT NULL;
    CREATE INDEX messages_by_party_b ON messages (party_b) WHERE party_b IS NOT NULL;
    CREATE TABLE offline (
        account    TEXT   NOT NULL,
        message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE
    );
    CREATE INDEX offline_by_account ON offline (account, message_id);
    CREATE TABLE audit (
        id      BIGSERIAL PRIMARY KEY,
        time_ms BIGINT NOT NULL,
        action  TEXT   NOT NULL,
        actor   TEXT,
        target  TEXT,
        ip      TEXT,
        detail  TEXT
    );
    CREATE INDEX audit_by_time ON audit (time_ms);
    CREATE FUNCTION parley_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
    CREATE TRIGGER audit_is_append_only BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION parley_audit_is_append_only();
    CREATE TRIGGER audit_is_append_only_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION parley_audit_is_append_only();",
    // 3: registered channels (one JSON record each) and server bans.
    "CREATE TABLE channels (
        name_folded TEXT PRIMARY KEY,
        record      TEXT NOT NULL
    );
    CREATE TABLE server_bans (
        kind        TEXT   NOT NULL,
        mask_folded TEXT   NOT NULL,
        mask        TEXT   NOT NULL,
        reason      TEXT   NOT NULL,
        set_by      TEXT   NOT NULL,
        set_at_ms   BIGINT NOT NULL,
        expires_ms  BIGINT,
        PRIMARY KEY (kind, mask_folded)
    );",
    // 4: the SCRAM-SHA-256 credential (RFC 5803 form), NULL until derived from a password.
    "ALTER TABLE accounts ADD COLUMN scram TEXT;",
    // 5: private conversations are keyed `dm:<length of a>:<a>|<b>`; `after_step` rewrites the
    // rows under the old, ambiguous `dm:<a>|<b>`.
    "-- data only",
    // 6: the audit trail names the acting account beside the nick it acted under.
    "ALTER TABLE audit ADD COLUMN account TEXT;",
    // 7: secrets every node of a cluster must share (the SCRAM secret), kept in the database
    // the nodes already trust rather than on the bus.
    "CREATE TABLE shared_secrets (
        name  TEXT  PRIMARY KEY,
        value BYTEA NOT NULL
    );",
    // 8: when an admin last lifted the lockout after failed logins of an account name or an
    // address (`parleyd users unlock`): each node keeps its lockouts in memory, and drops one
    // older than this stamp when it meets it, so one unlock reaches every node.
    "CREATE TABLE lockout_lifts (
        kind         TEXT   NOT NULL CHECK (kind IN ('account', 'address')),
        key          TEXT   NOT NULL,
        lifted_at_ms BIGINT NOT NULL,
        PRIMARY KEY (kind, key)
    );",
    // 9: login sessions (web client tokens), only the token's SHA-256 kept; as in `sqlite.rs`.
    "CREATE TABLE sessions (
        id             BIGSERIAL PRIMARY KEY,
        token_hash     TEXT   NOT NULL UNIQUE,
        account_folded TEXT   NOT NULL REFERENCES accounts (name_folded) ON DELETE CASCADE,
        label          TEXT   NOT NULL,
        created_at     BIGINT NOT NULL,
        last_used_at   BIGINT NOT NULL,
        expires_at     BIGINT NOT NULL
    );
    CREATE INDEX sessions_by_account ON sessions (account_folded, last_used_at);",
    // 10: server admins by the database's word, set only by the admin CLI (`users add --admin`,
    // `users admin NAME on`), so a new install needs no [operators] entry for its first admin.
    "ALTER TABLE accounts ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;",
    // 11: a message's client-only tags (IRCv3 message-tags: `+draft/reply=...`), escaped as
    // relayed, so CHATHISTORY returns them; empty for messages stored before.
    "ALTER TABLE messages ADD COLUMN tags TEXT NOT NULL DEFAULT '';",
    // 12: read markers (IRCv3 draft/read-marker), as in `sqlite.rs` step 11.
    "CREATE TABLE read_markers (
        account_folded TEXT   NOT NULL REFERENCES accounts (name_folded) ON DELETE CASCADE,
        target         TEXT   NOT NULL,
        time_ms        BIGINT NOT NULL,
        PRIMARY KEY (account_folded, target)
    );",
    // 13: always-on, as in `sqlite.rs` step 12.
    "CREATE TABLE always_on (
        account_folded TEXT    PRIMARY KEY REFERENCES accounts (name_folded) ON DELETE CASCADE,
        enabled        BOOLEAN NOT NULL DEFAULT FALSE,
        presence       TEXT
    );",
    // 14: web push subscriptions (IRCv3 draft/webpush), as in `sqlite.rs` step 13.
    "CREATE TABLE push_subscriptions (
        account_folded TEXT   NOT NULL REFERENCES accounts (name_folded) ON DELETE CASCADE,
        endpoint       TEXT   NOT NULL,
        p256dh         TEXT   NOT NULL,
        auth           TEXT   NOT NULL,
        created_ms     BIGINT NOT NULL,
        PRIMARY KEY (account_folded, endpoint)
    );",
    // 15: full-text search (SEARCH, `postgres/search.rs`): each message's words as a tsvector
    // (`simple`: lower-cased, no stemming, no stop words) under a GIN index. Generated, so every
    // write keeps it, and a deleted message takes its words with it.
    "ALTER TABLE messages ADD COLUMN search tsvector
        GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED;
    CREATE INDEX messages_search ON messages USING GIN (search);",
    // 16: always-on on a cluster, as in `sqlite.rs` step 15: the node life keeping a presence.
    "ALTER TABLE always_on ADD COLUMN owner TEXT;",
    // 17: the end-to-end key directory, as in `sqlite.rs` step 16.
    "CREATE TABLE e2e_devices (
        curve          TEXT   PRIMARY KEY,
        account_folded TEXT   NOT NULL REFERENCES accounts (name_folded) ON DELETE CASCADE,
        ed25519        TEXT   NOT NULL,
        signature      TEXT   NOT NULL,
        created_ms     BIGINT NOT NULL
    );
    CREATE INDEX e2e_devices_by_account ON e2e_devices (account_folded, created_ms);
    CREATE TABLE e2e_keys (
        id          BIGSERIAL PRIMARY KEY,
        curve       TEXT    NOT NULL REFERENCES e2e_devices (curve) ON DELETE CASCADE,
        key         TEXT    NOT NULL,
        is_fallback BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE UNIQUE INDEX e2e_keys_once ON e2e_keys (curve, is_fallback, key);
    CREATE UNIQUE INDEX e2e_keys_one_fallback ON e2e_keys (curve) WHERE is_fallback;",
];

/// The schema version this build writes and understands.
const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// One PostgreSQL connection on its own thread. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    jobs: mpsc::SyncSender<Job>,
    /// The URL without its password, for errors and logs.
    shown: String,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// The connection thread's state: the parsed settings and TLS, the client if connected, and the
/// statements prepared on it (the hot reads: account lookups on NICK, history pages).
struct Connection {
    target: Target,
    client: Option<Client>,
    prepared: HashMap<String, Statement>,
}

/// Prepared statements kept per connection; a handful of fixed SQL strings, so this is a guard
/// against a bug, not a real limit.
const MAX_PREPARED: usize = 64;

impl Connection {
    /// The live client, connecting first when there is none or the old one died.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.forget();
            tracing::warn!("the PostgreSQL connection was lost; reconnecting");
        }
        let client = match self.client.take() {
            Some(client) => client,
            None => self.target.connect().map_err(|error| {
                let mut reason = format!("cannot reach PostgreSQL: {}", describe(&error));
                if self.target.mode != SslMode::Disable
                    && (reason.contains("TLS") || reason.contains("certificate"))
                {
                    reason.push_str(
                        "; check sslmode in accounts.postgres_url and the CA in \
                         accounts.postgres_ca",
                    );
                }
                StoreError::Backend(reason)
            })?,
        };
        Ok(self.client.insert(client))
    }

    /// After an error: whether the connection died (then it is dropped, and the next
    /// [`Self::client`] opens a new one). A session the server ended can report the error before
    /// the client notices the socket closed, so a live-looking connection is asked once.
    fn lost(&mut self) -> bool {
        let Some(client) = self.client.as_mut() else {
            return true;
        };
        if client.is_closed() || client.is_valid(LIVENESS_TIMEOUT).is_err() {
            self.forget();
            return true;
        }
        false
    }

    /// Drop the connection (dead, or in a state nobody knows): the next [`Self::client`] opens
    /// a new one, and statements are prepared again there.
    fn forget(&mut self) {
        self.client = None;
        self.prepared.clear();
    }

    /// `sql` prepared once per connection.
    fn prepare(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client()?.prepare(sql).map_err(backend)?;
        if self.prepared.len() >= MAX_PREPARED {
            self.prepared.clear();
        }
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Kept here too for the callers that know it as `store::postgres::redact_url`.
pub use crate::config::redact_url;

impl PostgresStore {
    /// Connect to the database at `url` (a `postgres://` URL or `key=value` pairs) with the
    /// default TLS (see [`super::postgres_tls`]; the system roots), as [`Self::open_with`].
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &TlsFiles::default())
    }

    /// Connect to the database at `url` over TLS as its `sslmode` (or the default) says, checking
    /// the server against `tls`; refuse a database that is someone else's or has a newer schema,
    /// and bring an older schema up to date.
    pub fn open_with(url: &str, tls: &TlsFiles) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let fail = |reason: String| StoreError::Open {
            path: PathBuf::from(&shown),
            reason,
        };
        let mut target = Target::new(url, tls).map_err(|error| fail(error.to_string()))?;
        target.config.connect_timeout(CONNECT_TIMEOUT);
        target.config.application_name("parleyd");
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
        std::thread::Builder::new()
            .name("parley-postgres".to_owned())
            .spawn(move || {
                let mut connection = Connection {
                    target,
                    client: None,
                    prepared: HashMap::new(),
                };
                // Ends when the store (every sender) is dropped.
                for job in queue {
                    job(&mut connection);
                }
            })
            .map_err(|error| fail(format!("cannot start its connection thread: {error}")))?;
        let opened = Self {
            jobs,
            shown: shown.clone(),
        };
        opened
            .call(|client| migrate(client).map_err(StoreError::Backend))
            .map_err(|error| match error {
                StoreError::Backend(reason) => fail(reason),
                other => other,
            })?;
        Ok(opened)
    }

    /// Like [`Self::call`] for a job that may safely run twice (a read, or an update that sets a
    /// value): when the connection turns out to have died under it (the database restarted, an
    /// admin ended the session), it runs once more on a new connection, so the caller never sees
    /// a stale connection's error. Writes that must not repeat use [`Self::call_transaction`].
    pub(super) fn call_idempotent<T: Send + 'static>(
        &self,
        job: impl Fn(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call_prepared(move |connection| match connection.client().and_then(&job) {
            Err(error) if connection.lost() => {
                tracing::warn!(%error, "PostgreSQL connection lost; retrying on a new one");
                connection.client().and_then(&job)
            }
            other => other,
        })
    }

    /// Run `job` with the client on the connection's thread and wait for the result.
    fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call_prepared(|connection| connection.client().and_then(job))
    }

    /// Like [`Self::call`], with the connection itself, for statements prepared once.
    fn call_prepared<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |connection: &mut Connection| {
            let result = job(connection);
            // The caller may have given up (it never does today); nothing to do then.
            let _ = reply.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Backend("the PostgreSQL connection thread stopped".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError::Backend("the PostgreSQL connection thread stopped".into()))?
    }
}

impl PostgresStore {
    /// One value of `name` for every node using this database: the first node's `proposal` is
    /// kept, and every node (that one included) gets what is kept.
    pub fn shared_secret(&self, name: &str, proposal: &[u8]) -> Result<Vec<u8>, StoreError> {
        let (name, proposal) = (name.to_owned(), proposal.to_vec());
        self.call_idempotent(move |client| {
            client
                .execute(
                    "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &proposal],
                )
                .map_err(backend)?;
            client
                .query_one("SELECT value FROM shared_secrets WHERE name = $1", &[&name])
                .and_then(|row| row.try_get(0))
                .map_err(backend)
        })
    }
}

pub(super) fn backend(error: postgres::Error) -> StoreError {
    StoreError::Backend(describe(&error))
}

/// The server's own words for a database error (`postgres::Error`'s `Display` says only
/// "db error"), or the I/O cause for a lost connection.
pub fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        };
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// Migrations: the checks and every pending step in one transaction that also sets the version,
/// under an advisory lock taken first, so nodes starting at once wait for each other and each
/// finds the schema either untouched or complete. A database that has parleyd's tables but no
/// version row, or a newer version, is refused and left as it is (the transaction rolls back).
fn migrate(client: &mut Client) -> Result<(), String> {
    let text = |error: postgres::Error| describe(&error);
    let mut tx = client.transaction().map_err(text)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(text)?;
    let has_version_table: bool = tx
        .query_one("SELECT to_regclass('parley_schema') IS NOT NULL", &[])
        .and_then(|row| row.try_get(0))
        .map_err(text)?;
    let version = if has_version_table {
        match tx
            .query_opt("SELECT version FROM parley_schema", &[])
            .map_err(text)?
        {
            Some(row) => row.try_get::<_, i32>(0).map_err(text)?,
            None => 0,
        }
    } else {
        let foreign: bool = tx
            .query_one("SELECT to_regclass('accounts') IS NOT NULL", &[])
            .and_then(|row| row.try_get(0))
            .map_err(text)?;
        if foreign {
            return Err(
                "the database has an `accounts` table but no parleyd schema \
                        version; point accounts.postgres_url at another database"
                    .to_owned(),
            );
        }
        tx.batch_execute("CREATE TABLE parley_schema (version INTEGER NOT NULL)")
            .map_err(text)?;
        tx.execute("INSERT INTO parley_schema (version) VALUES (0)", &[])
            .map_err(text)?;
        0
    };
    if version > SCHEMA_VERSION {
        return Err(format!(
            "its schema version is {version}, newer than this parleyd understands \
             ({SCHEMA_VERSION}); run a newer parleyd or restore a backup"
        ));
    }
    if version < 0 {
        return Err(format!(
            "its schema version {version} is not one parleyd ever wrote; \
             point accounts.postgres_url at another database"
        ));
    }
    let done = usize::try_from(version).unwrap_or(0);
    for (index, step) in MIGRATIONS.iter().enumerate().skip(done) {
        let failed = |error: postgres::Error| {
            format!(
                "updating its schema to version {} failed: {}",
                index + 1,
                describe(&error)
            )
        };
        tx.batch_execute(step).map_err(failed)?;
        after_step(&mut tx, index + 1).map_err(failed)?;
    }
    if version < SCHEMA_VERSION {
        tx.execute("UPDATE parley_schema SET version = $1", &[&SCHEMA_VERSION])
            .map_err(text)?;
    }
    tx.commit().map_err(text)?;
    if version < SCHEMA_VERSION {
        tracing::info!(
            from = version,
            to = SCHEMA_VERSION,
            "PostgreSQL schema updated"
        );
    }
    Ok(())
}

/// Data changes that go with a schema step, run right after its SQL.
fn after_step(tx: &mut Transaction<'_>, reached: usize) -> Result<(), postgres::Error> {
    match reached {
        5 => rekey_private_conversations(tx),
        _ => Ok(()),
    }
}

/// Step 5, as in `sqlite.rs`: each private message under an old `dm:<a>|<b>` key moves to its
/// unambiguous key, split at its sender; a row that cannot be split keeps its old key (which no
/// request can name) and loses its parties.
fn rekey_private_conversations(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    let rows = tx.query(
        "SELECT id, target, account, source FROM messages WHERE target LIKE 'dm:%'",
        &[],
    )?;
    let update =
        tx.prepare("UPDATE messages SET target = $2, party_a = $3, party_b = $4 WHERE id = $1")?;
    let mut unresolved = 0_usize;
    for row in &rows {
        let id: i64 = row.try_get(0)?;
        let target: String = row.try_get(1)?;
        let account: Option<String> = row.try_get(2)?;
        let source: String = row.try_get(3)?;
        let key = rekey_legacy(&target, account.as_deref(), &source);
        if key.is_none() {
            unresolved += 1;
        }
        let (a, b) = key.as_deref().map_or((None, None), parties);
        tx.execute(&update, &[&id, &key.as_deref().unwrap_or(&target), &a, &b])?;
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

/// Give the (empty) database at `url` the schema of an older parleyd: the first `version` steps
/// only. For tests of migrations; never used to serve.
#[doc(hidden)]
pub fn create_at_version(url: &str, version: usize) -> Result<(), StoreError> {
    let (url, shown) = (url.to_owned(), redact_url(url));
    let fail = move |reason: String| StoreError::Open {
        path: PathBuf::from(&shown),
        reason,
    };
    let steps = MIGRATIONS
        .get(..version)
        .ok_or_else(|| fail(format!("there is no schema version {version}")))?;
    let target = Target::new(&url, &TlsFiles::default()).map_err(|e| fail(e.to_string()))?;
    // The blocking client starts its own runtime: off any async thread, as in `open`.
    std::thread::spawn(move || {
        let mut client = target.connect().map_err(|e| describe(&e))?;
        let mut tx = client.transaction().map_err(|e| describe(&e))?;
        tx.batch_execute("CREATE TABLE parley_schema (version INTEGER NOT NULL)")
            .map_err(|e| describe(&e))?;
        for step in steps {
            tx.batch_execute(step).map_err(|e| describe(&e))?;
        }
        let version = i32::try_from(version).map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT INTO parley_schema (version) VALUES ($1)",
            &[&version],
        )
        .map_err(|e| describe(&e))?;
        tx.commit().map_err(|e| describe(&e))
    })
    .join()
    .map_err(|_| "the schema thread panicked".to_owned())
    .and_then(|result| result)
    .map_err(fail)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

fn found(changed: u64, name: &str) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound(name.to_owned()))
    } else {
        Ok(())
    }
}

/// Rows are read with `try_get`: a column of an unexpected type is an error, never a panic.
fn record_from_row(row: &Row) -> Result<AccountRecord, StoreError> {
    Ok(AccountRecord {
        name: row.try_get(0).map_err(backend)?,
        password_hash: row.try_get(1).map_err(backend)?,
        created_at: row.try_get(2).map_err(backend)?,
        locked: row.try_get(3).map_err(backend)?,
        scram: row.try_get(4).map_err(backend)?,
        admin: row.try_get(5).map_err(backend)?,
    })
}

impl AccountStore for PostgresStore {
    fn create_account(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        // In a transaction: a retry after a lost COMMIT must not answer "taken" for the very
        // account it just created.
        self.call_transaction(move |client| {
            client
                .execute(
                    "INSERT INTO accounts (name, name_folded, password_hash, created_at, locked) \
                     VALUES ($1, $2, $3, $4, FALSE)",
                    &[&name, &casefold(&name), &hash, &unix_now()],
                )
                .map_err(|error| {
                    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                        StoreError::AlreadyExists(name.clone())
                    } else {
                        backend(error)
                    }
                })?;
            Ok(())
        })
    }

    fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        let folded = casefold(name);
        let lookup = move |connection: &mut Connection| {
            let statement = connection.prepare(
                "SELECT name, password_hash, created_at, locked, scram, admin FROM accounts \
                 WHERE name_folded = $1",
            )?;
            connection
                .client()?
                .query_opt(&statement, &[&folded])
                .map_err(backend)?
                .as_ref()
                .map(record_from_row)
                .transpose()
        };
        self.call_prepared(move |connection| match lookup(connection) {
            Err(_) if connection.lost() => lookup(connection),
            other => other,
        })
    }

    fn set_password(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.call_idempotent(move |client| {
            let changed = client
                .execute(
                    "UPDATE accounts SET password_hash = $2, scram = NULL WHERE name_folded = $1",
                    &[&casefold(&name), &hash],
                )
                .map_err(backend)?;
            // The old password's sessions end with it.
            client
                .execute(
                    "DELETE FROM sessions WHERE account_folded = $1",
                    &[&casefold(&name)],
                )
                .map_err(backend)?;
            found(changed, &name)
        })
    }

    fn set_scram(&self, name: &str, scram: Option<&str>) -> Result<(), StoreError> {
        let (name, scram) = (name.to_owned(), scram.map(str::to_owned));
        self.call_idempotent(move |client| {
            let changed = client
                .execute(
                    "UPDATE accounts SET scram = $2 WHERE name_folded = $1",
                    &[&casefold(&name), &scram],
                )
                .map_err(backend)?;
            found(changed, &name)
        })
    }

    fn remove_account(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.call_transaction(move |client| {
            let changed = client
                .execute(
                    "DELETE FROM accounts WHERE name_folded = $1",
                    &[&casefold(&name)],
                )
                .map_err(backend)?;
            found(changed, &name)
        })
    }

    fn set_locked(&self, name: &str, locked: bool) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.call_idempotent(move |client| {
            let changed = client
                .execute(
                    "UPDATE accounts SET locked = $2 WHERE name_folded = $1",
                    &[&casefold(&name), &locked],
                )
                .map_err(backend)?;
            if locked {
                client
                    .execute(
                        "DELETE FROM sessions WHERE account_folded = $1",
                        &[&casefold(&name)],
                    )
                    .map_err(backend)?;
            }
            found(changed, &name)
        })
    }

    fn set_admin(&self, name: &str, admin: bool) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.call_idempotent(move |client| {
            let changed = client
                .execute(
                    "UPDATE accounts SET admin = $2 WHERE name_folded = $1",
                    &[&casefold(&name), &admin],
                )
                .map_err(backend)?;
            found(changed, &name)
        })
    }

    fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.call_idempotent(|client| {
            client
                .query(
                    "SELECT name, password_hash, created_at, locked, scram, admin FROM accounts \
                     ORDER BY name_folded",
                    &[],
                )
                .map_err(backend)?
                .iter()
                .map(record_from_row)
                .collect()
        })
    }

    fn lift_lockout(&self, target: &LockoutTarget, at_ms: i64) -> Result<(), StoreError> {
        let target = target.clone();
        self.call_idempotent(move |client| {
            client
                .execute(
                    "INSERT INTO lockout_lifts (kind, key, lifted_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (kind, key) DO UPDATE SET lifted_at_ms = excluded.lifted_at_ms",
                    &[&target.kind(), &target.key(), &at_ms],
                )
                .map_err(backend)?;
            Ok(())
        })
    }

    fn lockout_lifted_at(&self, target: &LockoutTarget) -> Result<Option<i64>, StoreError> {
        let target = target.clone();
        self.call_idempotent(move |client| {
            client
                .query_opt(
                    "SELECT lifted_at_ms FROM lockout_lifts WHERE kind = $1 AND key = $2",
                    &[&target.kind(), &target.key()],
                )
                .map_err(backend)?
                .map(|row| row.try_get(0).map_err(backend))
                .transpose()
        })
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
        let (account, token_hash, label) =
            (account.to_owned(), token_hash.to_owned(), label.to_owned());
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.call_transaction(move |tx| {
            let folded = casefold(&account);
            let inserted = tx
                .execute(
                    "INSERT INTO sessions \
                         (token_hash, account_folded, label, created_at, last_used_at, expires_at) \
                     SELECT $1, name_folded, $3, $4, $4, $5 FROM accounts WHERE name_folded = $2",
                    &[&token_hash, &folded, &label, &now, &expires_at],
                )
                .map_err(backend)?;
            found(inserted, &account)?;
            tx.execute(
                "DELETE FROM sessions WHERE account_folded = $1 AND (expires_at <= $3 OR id NOT IN ( \
                     SELECT id FROM sessions WHERE account_folded = $1 \
                     ORDER BY last_used_at DESC, id DESC LIMIT $2))",
                &[&folded, &keep, &now],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.call_idempotent(move |client| {
            client
                .query_opt(
                    "SELECT a.name, s.label, s.created_at, s.last_used_at, s.expires_at \
                     FROM sessions s JOIN accounts a ON a.name_folded = s.account_folded \
                     WHERE s.token_hash = $1",
                    &[&token_hash],
                )
                .map_err(backend)?
                .as_ref()
                .map(session_from_row)
                .transpose()
        })
    }

    fn touch_session(&self, token_hash: &str, now: i64, expires_at: i64) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.call_idempotent(move |client| {
            client
                .execute(
                    "UPDATE sessions SET last_used_at = $2, expires_at = $3 WHERE token_hash = $1",
                    &[&token_hash, &now, &expires_at],
                )
                .map_err(backend)?;
            Ok(())
        })
    }

    fn revoke_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        let token_hash = token_hash.to_owned();
        // Not merely repeated: a second run after a lost COMMIT would answer "there was none".
        self.call_transaction(move |client| {
            let changed = client
                .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
                .map_err(backend)?;
            Ok(changed > 0)
        })
    }

    fn revoke_sessions(&self, account: &str) -> Result<usize, StoreError> {
        let folded = casefold(account);
        self.call_transaction(move |client| {
            let changed = client
                .execute("DELETE FROM sessions WHERE account_folded = $1", &[&folded])
                .map_err(backend)?;
            Ok(usize::try_from(changed).unwrap_or(usize::MAX))
        })
    }

    fn sessions(&self, account: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let folded = casefold(account);
        self.call_idempotent(move |client| {
            client
                .query(
                    "SELECT a.name, s.label, s.created_at, s.last_used_at, s.expires_at \
                     FROM sessions s JOIN accounts a ON a.name_folded = s.account_folded \
                     WHERE s.account_folded = $1 ORDER BY s.last_used_at DESC, s.id DESC",
                    &[&folded],
                )
                .map_err(backend)?
                .iter()
                .map(session_from_row)
                .collect()
        })
    }

    fn read_marker(&self, account: &str, target: &str) -> Result<Option<i64>, StoreError> {
        let (folded, target) = (casefold(account), target.to_owned());
        self.call_idempotent(move |client| {
            client
                .query_opt(
                    "SELECT time_ms FROM read_markers WHERE account_folded = $1 AND target = $2",
                    &[&folded, &target],
                )
                .map_err(backend)?
                .map(|row| row.try_get(0).map_err(backend))
                .transpose()
        })
    }

    fn advance_read_marker(
        &self,
        account: &str,
        target: &str,
        time_ms: i64,
        keep: usize,
    ) -> Result<i64, StoreError> {
        let (account, target) = (account.to_owned(), target.to_owned());
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        // Idempotent: moving a marker to the same time twice leaves it where once does.
        self.call_idempotent(move |client| {
            let folded = casefold(&account);
            let mut tx = client.transaction().map_err(backend)?;
            let row = tx
                .query_opt(
                    "INSERT INTO read_markers (account_folded, target, time_ms) \
                     SELECT name_folded, $2, $3 FROM accounts WHERE name_folded = $1 \
                     ON CONFLICT (account_folded, target) \
                     DO UPDATE SET time_ms = GREATEST(read_markers.time_ms, EXCLUDED.time_ms) \
                     RETURNING time_ms",
                    &[&folded, &target, &time_ms],
                )
                .map_err(backend)?;
            let Some(row) = row else {
                return Err(StoreError::NotFound(account.clone()));
            };
            let stored: i64 = row.try_get(0).map_err(backend)?;
            tx.execute(
                "DELETE FROM read_markers WHERE account_folded = $1 AND target NOT IN ( \
                     SELECT target FROM read_markers WHERE account_folded = $1 \
                     ORDER BY time_ms DESC, target LIMIT $2)",
                &[&folded, &keep],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(stored)
        })
    }

    /// `SELECT 1` through the connection thread: it answers only when the thread is free and
    /// the server is reachable (a connection that died is replaced, as a read's is).
    fn ping(&self) -> Result<(), StoreError> {
        self.call_idempotent(|client| client.simple_query("SELECT 1").map(|_| ()).map_err(backend))
    }
}

fn session_from_row(row: &Row) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        account: row.try_get(0).map_err(backend)?,
        label: row.try_get(1).map_err(backend)?,
        created_at: row.try_get(2).map_err(backend)?,
        last_used_at: row.try_get(3).map_err(backend)?,
        expires_at: row.try_get(4).map_err(backend)?,
    })
}

const MESSAGE_COLUMNS: &str =
    "msgid, time_ms, target, kind, source, account, recipient, text, tags";

fn message_from_row(row: &Row) -> Result<StoredMessage, StoreError> {
    Ok(StoredMessage {
        msgid: row.try_get(0).map_err(backend)?,
        time_ms: row.try_get(1).map_err(backend)?,
        target: row.try_get(2).map_err(backend)?,
        kind: row.try_get(3).map_err(backend)?,
        source: row.try_get(4).map_err(backend)?,
        account: row.try_get(5).map_err(backend)?,
        to: row.try_get(6).map_err(backend)?,
        text: row.try_get(7).map_err(backend)?,
        tags: row.try_get(8).map_err(backend)?,
    })
}

impl Pages for Connection {
    fn position(
        &mut self,
        target: &str,
        bound: &Bound,
        time_id: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        match bound {
            Bound::Time(ms) => Ok(Some((*ms, time_id))),
            Bound::MsgId(msgid) => self
                .client()?
                .query_opt(
                    "SELECT time_ms, id FROM messages WHERE target = $1 AND msgid = $2",
                    &[&target, msgid],
                )
                .map_err(backend)?
                .map(|row| {
                    Ok((
                        row.try_get(0).map_err(backend)?,
                        row.try_get(1).map_err(backend)?,
                    ))
                })
                .transpose(),
        }
    }

    fn between(
        &mut self,
        target: &str,
        lower: (i64, i64),
        upper: (i64, i64),
        newest_first: bool,
        limit: usize,
        events: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE target = $1 \
             AND (time_ms > $2 OR (time_ms = $2 AND id > $3)) \
             AND (time_ms < $4 OR (time_ms = $4 AND id < $5)) \
             AND ($7 OR kind <> 'TAGMSG') \
             ORDER BY time_ms {order}, id {order} LIMIT $6"
        );
        let statement = self.prepare(&sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.client()?
            .query(
                &statement,
                &[
                    &target, &lower.0, &lower.1, &upper.0, &upper.1, &limit, &events,
                ],
            )
            .map_err(backend)?
            .iter()
            .map(message_from_row)
            .collect()
    }
}

/// Store one group commit, inside the transaction [`PostgresStore::call_transaction`] opened.
///
/// A batch may come again after it was committed: the writer holds a batch whose COMMIT got no
/// answer (the database restarted meanwhile, and could not say) and writes it once more. So a
/// message whose msgid is stored already is skipped, and so are its offline marks; anything
/// else would either store it twice or fail that batch, and all that queues behind it, forever.
fn write_batch(tx: &mut Client, batch: &WriteBatch) -> Result<(), StoreError> {
    let stored_before = insert_messages(tx, &batch.messages)?;
    let offline = tx
        .prepare(
            "INSERT INTO offline (account, message_id) SELECT $1, id FROM messages WHERE msgid = $2",
        )
        .map_err(backend)?;
    for (account, msgid) in &batch.offline {
        if !stored_before.contains(msgid.as_str()) {
            tx.execute(&offline, &[account, msgid]).map_err(backend)?;
        }
    }
    let audit = tx
        .prepare(
            "INSERT INTO audit (time_ms, action, actor, target, ip, detail, account) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .map_err(backend)?;
    for e in &batch.audit {
        tx.execute(
            &audit,
            &[
                &e.time_ms, &e.action, &e.actor, &e.target, &e.ip, &e.detail, &e.account,
            ],
        )
        .map_err(backend)?;
    }
    for change in &batch.state {
        apply_state_change(tx, change)?;
    }
    Ok(())
}

/// Insert a batch's messages in one statement (one round trip to the server, not one a message:
/// under load a group commit carries hundreds), in the batch's order, so their ids (and with them
/// the history's order) follow it. Returns the msgids that were stored already: an earlier try of
/// this batch whose COMMIT's answer was lost stored them (checked to be the same messages).
fn insert_messages<'m>(
    tx: &mut Client,
    messages: &'m [StoredMessage],
) -> Result<std::collections::HashSet<&'m str>, StoreError> {
    let mut stored_before = std::collections::HashSet::new();
    if messages.is_empty() {
        return Ok(stored_before);
    }
    let column =
        |get: fn(&'m StoredMessage) -> &'m str| messages.iter().map(get).collect::<Vec<_>>();
    let (party_a, party_b): (Vec<_>, Vec<_>) = messages.iter().map(|m| parties(&m.target)).unzip();
    let time_ms: Vec<i64> = messages.iter().map(|m| m.time_ms).collect();
    let account: Vec<Option<&str>> = messages.iter().map(|m| m.account.as_deref()).collect();
    let inserted = tx
        .query(
            "INSERT INTO messages (msgid, time_ms, target, kind, source, account, recipient, \
             text, party_a, party_b, tags) \
             SELECT msgid, time_ms, target, kind, source, account, recipient, text, party_a, \
             party_b, tags \
             FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) \
             WITH ORDINALITY AS m(msgid, time_ms, target, kind, source, account, recipient, \
             text, party_a, party_b, tags, position) \
             ORDER BY position \
             ON CONFLICT (msgid) DO NOTHING RETURNING msgid",
            &[
                &column(|m| &m.msgid),
                &time_ms,
                &column(|m| &m.target),
                &column(|m| &m.kind),
                &column(|m| &m.source),
                &account,
                &column(|m| &m.to),
                &column(|m| &m.text),
                &party_a,
                &party_b,
                &column(|m| &m.tags),
            ],
        )
        .map_err(backend)?;
    let inserted: std::collections::HashSet<String> = inserted
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for m in messages {
        if !inserted.contains(&m.msgid) {
            check_same_message(tx, m)?;
            stored_before.insert(m.msgid.as_str());
        }
    }
    Ok(stored_before)
}

/// A msgid found stored already is this message stored by an earlier try of its batch; if it is
/// another message, the batch is refused as before (a msgid names one message).
fn check_same_message(tx: &mut Client, m: &StoredMessage) -> Result<(), StoreError> {
    let row = tx
        .query_opt(
            "SELECT time_ms, source, text FROM messages WHERE msgid = $1",
            &[&m.msgid],
        )
        .map_err(backend)?;
    let same = match &row {
        Some(row) => {
            row.try_get::<_, i64>(0).map_err(backend)? == m.time_ms
                && row.try_get::<_, String>(1).map_err(backend)? == m.source
                && row.try_get::<_, String>(2).map_err(backend)? == m.text
        }
        None => false,
    };
    if same {
        return Ok(());
    }
    Err(StoreError::Backend(format!(
        "msgid {} is already stored for another message",
        m.msgid
    )))
}

fn apply_state_change<C: GenericClient>(
    tx: &mut C,
    change: &StateChange,
) -> Result<(), StoreError> {
    match change {
        StateChange::SaveChannel(record) => {
            let json = encode_channel(record)?;
            tx.execute(
                "INSERT INTO channels (name_folded, record) VALUES ($1, $2) \
                 ON CONFLICT (name_folded) DO UPDATE SET record = excluded.record",
                &[&casefold(&record.name), &json],
            )
            .map_err(backend)?;
        }
        StateChange::DropChannel(name) => {
            tx.execute("DELETE FROM channels WHERE name_folded = $1", &[name])
                .map_err(backend)?;
        }
        StateChange::RenameChannel {
            old_key,
            new_key,
            new_name,
        } => {
            tx.execute(
                "UPDATE messages SET target = $2, recipient = $3 WHERE target = $1",
                &[old_key, new_key, new_name],
            )
            .map_err(backend)?;
            tx.execute("DELETE FROM channels WHERE name_folded = $1", &[old_key])
                .map_err(backend)?;
        }
        StateChange::AddServerBan(ban) => {
            tx.execute(
                "INSERT INTO server_bans (kind, mask_folded, mask, reason, set_by, set_at_ms, \
                 expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (kind, mask_folded) DO UPDATE SET mask = excluded.mask, \
                 reason = excluded.reason, set_by = excluded.set_by, \
                 set_at_ms = excluded.set_at_ms, expires_ms = excluded.expires_ms",
                &[
                    &ban.kind,
                    &casefold(&ban.mask),
                    &ban.mask,
                    &ban.reason,
                    &ban.set_by,
                    &ban.set_at_ms,
                    &ban.expires_ms,
                ],
            )
            .map_err(backend)?;
        }
        StateChange::RemoveServerBan(kind, mask) => {
            tx.execute(
                "DELETE FROM server_bans WHERE kind = $1 AND mask_folded = $2",
                &[kind, &casefold(mask)],
            )
            .map_err(backend)?;
        }
    }
    Ok(())
}

/// Rows of `SELECT <MESSAGE_COLUMNS>`-shaped queries on any client or transaction.
fn messages<C: GenericClient>(
    client: &mut C,
    sql: &str,
    args: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<StoredMessage>, StoreError> {
    client
        .query(sql, args)
        .map_err(backend)?
        .iter()
        .map(message_from_row)
        .collect()
}

impl HistoryStore for PostgresStore {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = batch.clone();
        self.call_transaction(move |client| write_batch(client, &batch))
    }

    fn query_for(
        &self,
        target: &str,
        query: &HistoryQuery,
        limit: usize,
        events: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let (target, query) = (target.to_owned(), query.clone());
        self.call_prepared(move |connection| {
            match page(connection, &target, &query, limit, events) {
                Err(_) if connection.lost() => page(connection, &target, &query, limit, events),
                other => other,
            }
        })
    }

    fn message(&self, target: &str, msgid: &str) -> Result<Option<StoredMessage>, StoreError> {
        let (target, msgid) = (target.to_owned(), msgid.to_owned());
        self.call_idempotent(move |client| {
            let sql =
                format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE target = $1 AND msgid = $2");
            Ok(messages(client, &sql, &[&target, &msgid])?.pop())
        })
    }

    fn delete_message(&self, target: &str, msgid: &str) -> Result<bool, StoreError> {
        let (target, msgid) = (target.to_owned(), msgid.to_owned());
        // Not merely repeated: a second run after a lost COMMIT would answer "no such message".
        self.call_transaction(move |client| {
            // The offline marks go with the row (ON DELETE CASCADE).
            let deleted = client
                .execute(
                    "DELETE FROM messages WHERE target = $1 AND msgid = $2",
                    &[&target, &msgid],
                )
                .map_err(backend)?;
            Ok(deleted > 0)
        })
    }

    fn targets(
        &self,
        targets: &[String],
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<TargetActivity>, StoreError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let targets = targets.to_vec();
        self.call_idempotent(move |client| {
            let latest = client
                .query(
                    "SELECT t, (SELECT MAX(time_ms) FROM messages WHERE target = t \
                     AND kind <> 'TAGMSG') \
                     FROM unnest($1::text[]) AS t",
                    &[&targets],
                )
                .map_err(backend)?
                .iter()
                .filter_map(|row| {
                    let latest_ms: Option<i64> = match row.try_get(1) {
                        Ok(time) => time,
                        Err(error) => return Some(Err(backend(error))),
                    };
                    let target = match row.try_get(0) {
                        Ok(target) => target,
                        Err(error) => return Some(Err(backend(error))),
                    };
                    latest_ms.map(|latest_ms| Ok(TargetActivity { target, latest_ms }))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(in_window(latest, from_ms, to_ms, limit))
        })
    }

    fn conversations_of(&self, party: &str) -> Result<Vec<String>, StoreError> {
        let party = party.to_owned();
        self.call_idempotent(move |client| {
            client
                .query(
                    "SELECT DISTINCT target FROM messages WHERE party_a = $1 \
                     UNION SELECT DISTINCT target FROM messages WHERE party_b = $1",
                    &[&party],
                )
                .map_err(backend)?
                .iter()
                .map(|row| row.try_get(0).map_err(backend))
                .collect()
        })
    }

    fn take_offline(&self, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let account = account.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Safe to run again: a run whose COMMIT was lost is asked about, not repeated blindly, and
        // a repeat hands out only what still waits, so nothing is delivered twice or dropped.
        self.call_transaction(move |tx| {
            let columns = MESSAGE_COLUMNS
                .split(", ")
                .map(|c| format!("m.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            // FOR UPDATE: two nodes logging the same account in at once hand each message out once.
            let rows = messages(
                tx,
                &format!(
                    "SELECT {columns} FROM offline o JOIN messages m ON m.id = o.message_id \
                     WHERE o.account = $1 ORDER BY m.time_ms, m.id LIMIT $2 FOR UPDATE OF o"
                ),
                &[&account, &limit],
            )?;
            let msgids: Vec<&str> = rows.iter().map(|m| m.msgid.as_str()).collect();
            tx.execute(
                "DELETE FROM offline WHERE account = $1 AND message_id IN \
                 (SELECT id FROM messages WHERE msgid = ANY($2))",
                &[&account, &msgids],
            )
            .map_err(backend)?;
            Ok(rows)
        })
    }

    fn offline_accounts(&self) -> Result<Vec<String>, StoreError> {
        self.call_idempotent(move |client| {
            client
                .query("SELECT DISTINCT account FROM offline", &[])
                .map_err(backend)?
                .iter()
                .map(|row| row.try_get(0).map_err(backend))
                .collect()
        })
    }

    fn prune(
        &self,
        older_than_ms: Option<i64>,
        max_rows: Option<usize>,
    ) -> Result<usize, StoreError> {
        self.call_idempotent(move |client| {
            let mut removed = 0u64;
            if let Some(cutoff) = older_than_ms {
                removed += client
                    .execute("DELETE FROM messages WHERE time_ms < $1", &[&cutoff])
                    .map_err(backend)?;
            }
            if let Some(max) = max_rows {
                let max = i64::try_from(max).unwrap_or(i64::MAX);
                removed += client
                    .execute(
                        "DELETE FROM messages WHERE id IN (SELECT id FROM (SELECT id, \
                         ROW_NUMBER() OVER (PARTITION BY target ORDER BY time_ms DESC, id DESC) \
                         AS n FROM messages) ranked WHERE n > $1)",
                        &[&max],
                    )
                    .map_err(backend)?;
            }
            Ok(usize::try_from(removed).unwrap_or(usize::MAX))
        })
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<StoredMessage>, SearchError> {
        search::search(self, query)
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let filter = filter.clone();
        let limit = if filter.limit == 0 {
            i64::MAX
        } else {
            i64::try_from(filter.limit).unwrap_or(i64::MAX)
        };
        self.call_idempotent(move |client| {
            client
                .query(
                    "SELECT time_ms, action, actor, target, ip, detail, account FROM audit \
                     WHERE time_ms >= $1 AND ($2::text IS NULL OR lower(actor) = lower($2) \
                     OR lower(account) = lower($2)) \
                     AND ($3::text IS NULL OR action = $3) ORDER BY id LIMIT $4",
                    &[
                        &filter.since_ms.unwrap_or(i64::MIN),
                        &filter.actor,
                        &filter.action,
                        &limit,
                    ],
                )
                .map_err(backend)?
                .iter()
                .map(|row| {
                    Ok(AuditEvent {
                        time_ms: row.try_get(0).map_err(backend)?,
                        action: row.try_get(1).map_err(backend)?,
                        actor: row.try_get(2).map_err(backend)?,
                        target: row.try_get(3).map_err(backend)?,
                        ip: row.try_get(4).map_err(backend)?,
                        detail: row.try_get(5).map_err(backend)?,
                        account: row.try_get(6).map_err(backend)?,
                    })
                })
                .collect()
        })
    }
}

impl StateStore for PostgresStore {
    fn channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        self.call_idempotent(|client| {
            let rows = client
                .query("SELECT name_folded, record FROM channels", &[])
                .map_err(backend)?;
            let rows = rows
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0).map_err(backend)?,
                        row.try_get(1).map_err(backend)?,
                    ))
                })
                .collect::<Result<Vec<(String, String)>, StoreError>>()?;
            Ok(decode_channels(rows))
        })
    }

    fn server_bans(&self, now_ms: i64) -> Result<Vec<ServerBan>, StoreError> {
        self.call_idempotent(move |client| {
            client
                .query(
                    "SELECT kind, mask, reason, set_by, set_at_ms, expires_ms FROM server_bans \
                     WHERE expires_ms IS NULL OR expires_ms > $1",
                    &[&now_ms],
                )
                .map_err(backend)?
                .iter()
                .map(|row| {
                    Ok(ServerBan {
                        kind: row.try_get(0).map_err(backend)?,
                        mask: row.try_get(1).map_err(backend)?,
                        reason: row.try_get(2).map_err(backend)?,
                        set_by: row.try_get(3).map_err(backend)?,
                        set_at_ms: row.try_get(4).map_err(backend)?,
                        expires_ms: row.try_get(5).map_err(backend)?,
                    })
                })
                .collect()
        })
    }
}
