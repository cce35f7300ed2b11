//! `[accounts]`: logging in, registering, where accounts are stored, and the lockout that slows
//! password guessing. Its `Debug` is written by hand in `secrets.rs`, so the database password in
//! `postgres_url` is never printed.

use serde::{Deserialize, Serialize};

/// Whether anyone may create an account with `REGISTER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    Open,
    Closed,
}

/// Which database backs the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file under `server.data_dir`: nothing to install, one node.
    Sqlite,
    /// A PostgreSQL database several nodes can share.
    Postgres,
}

/// Who may stay present with no session connected (`accounts.always_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlwaysOnPolicy {
    /// Nobody: the last session's QUIT is the user's.
    Off,
    /// Accounts that asked for it (`ALWAYSON ON`).
    OptIn,
    /// Every account.
    On,
}

/// `[accounts]`: logging in, registering, and keeping guessers out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Connections must log in before they may chat.
    pub require_login: bool,
    /// `open`: anyone may `REGISTER`; `closed`: only the admin CLI adds accounts.
    pub registration: RegistrationPolicy,
    /// `REGISTER` is accepted before the connection is registered (the `before-connect` key of
    /// `draft/account-registration`); off, it is refused with
    /// `FAIL REGISTER COMPLETE_CONNECTION_REQUIRED` until the welcome.
    pub register_before_connect: bool,
    /// Where accounts, history and the rest are kept: the embedded SQLite file or PostgreSQL.
    pub store: StoreKind,
    /// SQLite database file, relative to `server.data_dir` unless absolute.
    pub database: String,
    /// The PostgreSQL database when `store = "postgres"` (a `postgres://` URL or `key=value`
    /// pairs); its `sslmode` says how much TLS to demand (see `store/postgres_tls.rs`).
    pub postgres_url: String,
    /// PEM file of the CA that signs the PostgreSQL server's certificate; empty: the system roots.
    pub postgres_ca: String,
    /// PEM client certificate and key for PostgreSQL's `cert` authentication; both or neither.
    pub postgres_client_cert: String,
    pub postgres_client_key: String,
    pub min_password_len: usize,
    pub max_password_len: usize,
    /// Accept PASS and SASL PLAIN on plain-text connections from anywhere.
    pub allow_plaintext_login: bool,
    /// Networks (CIDR) from which a plain-text login is accepted anyway: this machine by default.
    pub plaintext_login_from: Vec<String>,
    /// Failed logins for one account within `failure_window_secs` before it is locked out, from
    /// wherever they come. Guesses still being checked count too, so no burst of connections
    /// gets more checked.
    pub max_failures: u32,
    /// Different account names an address's failed logins (within the window) must name before
    /// the address is locked out: a spray, not one user's typos. An IPv6 address counts as its
    /// /64; loopback is never locked out as an address.
    pub address_max_accounts: u32,
    pub failure_window_secs: u64,
    /// How long a locked-out account or address waits (`parleyd users unlock` ends it sooner).
    pub lockout_secs: u64,
    /// PBKDF2 rounds of new SCRAM-SHA-256 credentials. Each client login pays them (unless the
    /// client caches its salted password) and so does whoever steals the database, per guess.
    pub scram_iterations: u32,
    /// A login to an account already present here becomes another session of that user (same
    /// nick, channels and away state; see `command::multiclient`) rather than a user of its own.
    pub multiclient: bool,
    /// Most sessions one account may have at once on this node with `multiclient`; the next
    /// login is refused.
    pub max_sessions: usize,
    /// Whether an account stays in its channels, holding its nick, when its last session leaves.
    pub always_on: AlwaysOnPolicy,
    /// The away message an always-on account shows while no session is connected.
    pub always_on_away: String,
    /// Most lines per channel or conversation replayed to a client without chathistory when it
    /// takes over an always-on presence; the rest stays in history, and a NOTICE says how much.
    pub replay_limit: usize,
    /// Most always-on users kept present with no session at once. Each costs a user in memory
    /// and its channel places, and anyone may register accounts, so it is bounded; past it a
    /// leaving session quits as it would without always-on.
    pub always_on_limit: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            require_login: true,
            registration: RegistrationPolicy::Open,
            register_before_connect: true,
            store: StoreKind::Sqlite,
            database: "parley.db".to_owned(),
            postgres_url: String::new(),
            postgres_ca: String::new(),
            postgres_client_cert: String::new(),
            postgres_client_key: String::new(),
            min_password_len: 8,
            max_password_len: 256,
            allow_plaintext_login: false,
            plaintext_login_from: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
            // Five failures in ten minutes, then five minutes out: a user who mistypes a few
            // times is back soon (or at once, with `parleyd users unlock`), and anyone can lock
            // an account out by guessing at it, so a long lockout is a weapon against its owner.
            // A guesser still gets at most five tries per five minutes per account, each slower
            // than the last (ergo allows three a minute); a spray across accounts is held by
            // the address limit below.
            max_failures: 5,
            // Five, not fewer: people behind one address (a household, an office NAT) each
            // mistyping once must not lock each other out; a success takes its name off again.
            address_max_accounts: 5,
            failure_window_secs: 600,
            lockout_secs: 300,
            // OWASP's figure for PBKDF2-HMAC-SHA256 (2023), the one it rates as strong as the
            // Argon2id parameters used for the password hash: a stolen database must not be
            // cheaper to guess through its SCRAM column than through its hashes.
            scram_iterations: 600_000,
            multiclient: true,
            // ergo's default too: a phone, a laptop, a desktop and the web, with room to spare,
            // while a leaked password cannot fill the server with one account's connections.
            max_sessions: 10,
            always_on: AlwaysOnPolicy::OptIn,
            always_on_away: "Not connected (always-on: messages are kept)".to_owned(),
            // A screenful or two per conversation: enough to pick the thread up, not a flood
            // for a client that cannot fetch history itself.
            replay_limit: 100,
            always_on_limit: 1000,
        }
    }
}
