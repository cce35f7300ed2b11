//! Persistence behind one trait, so the server never names a database: [`AccountStore`] is what the
//! account layer needs, [`sqlite::SqliteStore`] the embedded default, and
//! [`postgres::PostgresStore`] the database several nodes can share (`accounts.store`). The traits
//! are synchronous on purpose: every backend call blocks, so async callers go through
//! `tokio::task::spawn_blocking` and the admin CLI calls them directly.

pub mod always_on;
pub mod e2e_keys;
pub mod history;
pub mod postgres;
pub mod postgres_tls;
pub mod push;
pub mod search;
pub mod sqlite;
mod sqlite_e2e_keys;
mod sqlite_history;
mod sqlite_push;
mod sqlite_search;
pub mod state;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, StoreKind};

pub use always_on::{AlwaysOnStore, StoredPresence};
pub use e2e_keys::E2eKeyStore;
pub use history::{
    AuditEvent, AuditFilter, Bound, HistoryQuery, HistoryStore, StoredMessage, TargetActivity,
    WriteBatch,
};
pub use postgres::PostgresStore;
pub use push::{PushStore, PushSubscription, Registered};
pub use sqlite::SqliteStore;
pub use state::{ChannelRecord, ListEntry, ServerBan, StateChange, StateStore, StoredTopic};

/// One account as stored. `name` keeps the spelling it was registered with; lookups are
/// case-insensitive (CASEMAPPING=ascii).
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub name: String,
    /// Argon2id PHC string (`$argon2id$v=19$m=...`), never the password.
    pub password_hash: String,
    /// When the account was created, in seconds since the Unix epoch.
    pub created_at: i64,
    /// Locked by an admin: the password still checks out, but logins are refused.
    pub locked: bool,
    /// The SCRAM-SHA-256 credential in RFC 5803 form
    /// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`), never the password; `None`
    /// until the account layer derives it from a password it was given (registration, a password
    /// change, or the first PLAIN/PASS login of an account made before SCRAM existed).
    pub scram: Option<String>,
    /// A server admin by the database's word (`parleyd users add --admin`, `users admin`), as
    /// if named in `[operators] admins`. Only the admin CLI sets it.
    pub admin: bool,
}

// Hand-written so the hash never lands in a log line through `{:?}`.
impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("locked", &self.locked)
            .field("scram", &self.scram.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A login session of the web client (or any client using `SESSION NEW`): a bearer token that
/// stands in for the password. Only the token's SHA-256 is stored, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The account as registered (its spelling).
    pub account: String,
    /// What the client said it is (a browser's user agent, say), to tell sessions apart in a list.
    pub label: String,
    /// Seconds since the Unix epoch, as are the two below.
    pub created_at: i64,
    pub last_used_at: i64,
    /// After this the token is refused; each use pushes it `web.session_days` ahead.
    pub expires_at: i64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the account name `{0}` is already taken")]
    AlreadyExists(String),
    #[error("there is no account named `{0}`")]
    NotFound(String),
    #[error("cannot open the database {}: {reason}", .path.display())]
    Open { path: PathBuf, reason: String },
    #[error("database error: {0}")]
    Backend(String),
}

/// Where accounts are kept, whatever the database. Names are compared casefolded
/// ([`parley_proto::casefold`]); every method blocks.
pub trait AccountStore: Send + Sync {
    /// Add an account. Fails with [`StoreError::AlreadyExists`] when a name equal under casefolding
    /// exists; of two concurrent creates of the same name exactly one succeeds.
    fn create_account(&self, name: &str, password_hash: &str) -> Result<(), StoreError>;
    /// The account with this name, compared case-insensitively.
    fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// [`AccountStore::account`], answered on the caller's thread when that takes no waiting: an
    /// embedded database whose connection nobody holds. `None` means "ask on the blocking pool".
    /// A SCRAM login looks its account up mid-exchange; the hop to a pool thread and back cost
    /// more than the lookup (BENCHMARKS.md, "SCRAM logins, before and after").
    fn account_now(&self, _name: &str) -> Option<Result<Option<AccountRecord>, StoreError>> {
        None
    }
    /// Replace an account's password hash. Also clears its SCRAM credential, which was derived from
    /// the old password: the account layer stores the new one with [`AccountStore::set_scram`].
    fn set_password(&self, name: &str, password_hash: &str) -> Result<(), StoreError>;
    /// Store (or with `None` clear) an account's SCRAM credential, in RFC 5803 form.
    fn set_scram(&self, name: &str, scram: Option<&str>) -> Result<(), StoreError>;
    fn remove_account(&self, name: &str) -> Result<(), StoreError>;
    /// Lock (refuse logins to) or unlock an account.
    fn set_locked(&self, name: &str, locked: bool) -> Result<(), StoreError>;
    /// Make an account a server admin, or no longer one ([`AccountRecord::admin`]).
    fn set_admin(&self, name: &str, admin: bool) -> Result<(), StoreError>;
    /// Every account, ordered by casefolded name.
    fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// Record that an admin lifted `target`'s lockout after failed logins at `at_ms` (ms since
    /// the Unix epoch). A running server keeps lockouts in memory; it asks
    /// [`AccountStore::lockout_lifted_at`] when it finds one, and drops a lock older than this.
    fn lift_lockout(&self, target: &LockoutTarget, at_ms: i64) -> Result<(), StoreError>;
    /// When an admin last lifted `target`'s lockout, if ever.
    fn lockout_lifted_at(&self, target: &LockoutTarget) -> Result<Option<i64>, StoreError>;

    // Login sessions. Changing an account's password, locking it or removing it revokes all of
    // its sessions in the same call ([`AccountStore::set_password`],
    // [`AccountStore::set_locked`], [`AccountStore::remove_account`]), so no caller can forget to.

    /// Store a new session under the SHA-256 (hex) of its token, then drop the account's expired
    /// sessions and its least recently used ones beyond `keep`. Fails with [`StoreError::NotFound`] when the account
    /// is gone.
    fn create_session(
        &self,
        account: &str,
        token_hash: &str,
        label: &str,
        now: i64,
        expires_at: i64,
        keep: usize,
    ) -> Result<(), StoreError>;
    /// The session whose token hashes to `token_hash`, expired or not (the caller decides).
    fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Record a use of a session and move its expiry.
    fn touch_session(&self, token_hash: &str, now: i64, expires_at: i64) -> Result<(), StoreError>;
    /// Revoke one session; whether there was one.
    fn revoke_session(&self, token_hash: &str) -> Result<bool, StoreError>;
    /// Revoke every session of an account; how many there were.
    fn revoke_sessions(&self, account: &str) -> Result<usize, StoreError>;
    /// An account's sessions, most recently used first.
    fn sessions(&self, account: &str) -> Result<Vec<SessionRecord>, StoreError>;

    // Read markers (IRCv3 `draft/read-marker`): per account and casefolded target, the time
    // (ms since the Unix epoch) of the last message the user read.

    /// `account`'s read marker for `target`, if it set one.
    fn read_marker(&self, account: &str, target: &str) -> Result<Option<i64>, StoreError>;
    /// Move `account`'s read marker for `target` to `time_ms` unless it is already there or
    /// later (a marker never moves back), then keep at most `keep` markers for the account, the
    /// oldest going first. Returns the marker as stored. [`StoreError::NotFound`] when the
    /// account is gone.
    fn advance_read_marker(
        &self,
        account: &str,
        target: &str,
        time_ms: i64,
        keep: usize,
    ) -> Result<i64, StoreError>;
    /// Whether the database answers now: the cheapest statement it has, on the connection
    /// account lookups use (a dead PostgreSQL connection is replaced first, as any read's is).
    /// `/healthz` asks at most every few seconds and caches the answer.
    fn ping(&self) -> Result<(), StoreError>;
}

/// What a lockout after failed logins holds: an account name or an address. Kept in the store
/// only as the time an admin lifted it (`parleyd users unlock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockoutTarget {
    /// A casefolded account name (any name a client tried: it need not be an account's).
    Account(String),
    /// An address as the lockout keys it: `203.0.113.9`, or an IPv6 /64 as `2001:db8:1:2::/64`.
    Address(String),
}

impl LockoutTarget {
    /// The `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Account(_) => "account",
            Self::Address(_) => "address",
        }
    }

    /// The `key` column.
    pub fn key(&self) -> &str {
        match self {
            Self::Account(key) | Self::Address(key) => key,
        }
    }
}

/// The database file `config` names: `accounts.database` under `server.data_dir` unless absolute.
pub fn database_path(config: &Config) -> PathBuf {
    let database = Path::new(&config.accounts.database);
    if database.is_absolute() {
        database.to_path_buf()
    } else {
        config.server.data_dir.join(database)
    }
}

/// Open the configured store: the SQLite file at [`database_path`], creating `server.data_dir` when
/// it is missing and the file and its schema when they are new.
/// With `accounts.store = "postgres"`, the database at `accounts.postgres_url` instead.
pub fn open_default(config: &Config) -> Result<Arc<dyn AccountStore>, StoreError> {
    Ok(match config.accounts.store {
        StoreKind::Sqlite => Arc::new(open_sqlite(config)?),
        StoreKind::Postgres => Arc::new(open_postgres(config)?),
    })
}

/// Open the configured store again for history: its own connection, so the history writer's
/// group commits and history reads never queue behind account lookups.
pub fn open_history(config: &Config) -> Result<Arc<dyn HistoryStore>, StoreError> {
    Ok(match config.accounts.store {
        StoreKind::Sqlite => Arc::new(open_sqlite(config)?),
        StoreKind::Postgres => Arc::new(open_postgres(config)?),
    })
}

/// Open the configured store for reading registered channels and server bans at start.
pub fn open_state(config: &Config) -> Result<Arc<dyn StateStore>, StoreError> {
    Ok(match config.accounts.store {
        StoreKind::Sqlite => Arc::new(open_sqlite(config)?),
        StoreKind::Postgres => Arc::new(open_postgres(config)?),
    })
}

/// Open the configured store for always-on accounts (`store/always_on.rs`): its own connection,
/// written when a session leaves or a user opts in, read at start.
pub fn open_always_on(config: &Config) -> Result<Arc<dyn AlwaysOnStore>, StoreError> {
    Ok(match config.accounts.store {
        StoreKind::Sqlite => Arc::new(open_sqlite(config)?),
        StoreKind::Postgres => Arc::new(open_postgres(config)?),
    })
}

/// Open the configured store again for web push subscriptions: the push sender's own
/// connection, so looking up whom to push never queues behind logins or history.
pub fn open_push(config: &Config) -> Result<Arc<dyn PushStore>, StoreError> {
    Ok(match config.accounts.store {
        StoreKind::Sqlite => Arc::new(open_sqlite(config)?),
        StoreKind::Postgres => Arc::new(open_postgres(config)?),
    })
}

/// Open the configured store again for the end-to-end key directory (`KEYS`): its own
/// connection, so a key claim never queues behind logins or history.
pub fn open_e2e_keys(config: &Config) -> Result<Arc<dyn E2eKeyStore>, StoreError> {
    Ok(match config.accounts.store {
        StoreKind::Sqlite => Arc::new(open_sqlite(config)?),
        StoreKind::Postgres => Arc::new(open_postgres(config)?),
    })
}

/// Back up the configured database to `dest` (see [`SqliteStore::backup_to`]). PostgreSQL has
/// its own tools for that, which know its files and replication far better than we could.
pub fn backup(config: &Config, dest: &Path) -> Result<(), StoreError> {
    match config.accounts.store {
        StoreKind::Sqlite => open_sqlite(config)?.backup_to(dest),
        StoreKind::Postgres => Err(StoreError::Backend(format!(
            "the store is PostgreSQL ({}); back it up with pg_dump, e.g. \
             `pg_dump --format=custom --file=parley.dump <database>`",
            postgres::redact_url(&config.accounts.postgres_url)
        ))),
    }
}

/// The PostgreSQL store with `[accounts]`'s URL and TLS files: every connection parleyd makes to
/// PostgreSQL (server, admin CLI) comes through here.
fn open_postgres(config: &Config) -> Result<PostgresStore, StoreError> {
    PostgresStore::open_with(
        &config.accounts.postgres_url,
        &postgres_tls::TlsFiles::from_config(&config.accounts),
    )
}

fn open_sqlite(config: &Config) -> Result<SqliteStore, StoreError> {
    let path = database_path(config);
    if Path::new(&config.accounts.database).is_relative() {
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|error| StoreError::Open {
            path: path.clone(),
            reason: format!(
                "cannot create the data directory {} ({error}); check server.data_dir",
                data_dir.display()
            ),
        })?;
    }
    SqliteStore::open(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_path_is_under_data_dir_unless_absolute() {
        let mut config = Config::default();
        config.server.data_dir = PathBuf::from("/srv/parley");
        config.accounts.database = "accounts.db".to_owned();
        assert_eq!(
            database_path(&config),
            PathBuf::from("/srv/parley/accounts.db")
        );
        config.accounts.database = "/var/lib/parley.db".to_owned();
        assert_eq!(database_path(&config), PathBuf::from("/var/lib/parley.db"));
    }

    #[test]
    fn open_default_creates_the_data_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.server.data_dir = dir.path().join("nested/data");
        let store = open_default(&config).expect("open store");
        store.create_account("alice", "hash").expect("create");
        assert!(config.server.data_dir.join("parley.db").is_file());
    }

    #[test]
    fn record_debug_hides_the_hash() {
        let record = AccountRecord {
            name: "alice".to_owned(),
            password_hash: "$argon2id$secret".to_owned(),
            created_at: 0,
            locked: false,
            scram: Some("SCRAM-SHA-256$4096:c2FsdA==$secret-keys".to_owned()),
            admin: false,
        };
        let text = format!("{record:?}");
        assert!(text.contains("alice"), "{text}");
        assert!(!text.contains("argon2id"), "{text}");
        assert!(!text.contains("secret-keys"), "{text}");
    }
}
