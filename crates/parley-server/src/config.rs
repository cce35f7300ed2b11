//! The `parleyd` configuration: TOML file, defaults and validation.
//!
//! Every key is optional and falls back to a sane default, so a config file only says what differs. The
//! file is parsed once into a spanned document so that every error (syntax, unknown key, wrong type,
//! failed validation) names the dotted key and its line, and says what would be accepted instead.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

pub mod postgres_url;
mod redact;

pub use redact::redact_url;

/// The whole server configuration, one field per TOML section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub listen: ListenConfig,
    pub limits: LimitsConfig,
    pub flood: FloodConfig,
    pub tls: TlsConfig,
    pub accounts: AccountsConfig,
    pub history: HistoryConfig,
    pub operators: OperatorsConfig,
    pub metrics: MetricsConfig,
    pub web: WebConfig,
    pub cluster: ClusterConfig,
    pub log: LogConfig,
}

/// `[server]`: who this server says it is and how it greets people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The server's own name, the source of its replies.
    pub name: String,
    /// The network name announced in `RPL_ISUPPORT` (`NETWORK=`).
    pub network: String,
    /// The message of the day; may span several lines.
    pub motd: String,
    /// Channel new clients are joined to after registration; empty turns that off.
    pub default_channel: String,
    /// The default room's modes whenever it is made (at start, after a restart, after it
    /// emptied), like `"+nt"`: see [`parse_room_modes`].
    pub default_channel_modes: String,
    /// The default room's topic whenever it is made; empty for none.
    pub default_channel_topic: String,
    /// Where persistent state lives. Defaults to the platform's data directory
    /// ([`crate::data_dir::platform_default`]); a relative path in a config file is taken from
    /// the file's directory (see [`Config::effective`]).
    pub data_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: "parley.local".to_owned(),
            network: "Parley".to_owned(),
            motd: "Welcome to Parley, a small and friendly IRC server.\n\
                   Everyone meets in #lobby: say hello there, and be kind.\n"
                .to_owned(),
            default_channel: "#lobby".to_owned(),
            default_channel_modes: "+nt".to_owned(),
            default_channel_topic: String::new(),
            data_dir: crate::data_dir::platform_default(),
        }
    }
}

/// `[listen]`: the addresses the server accepts connections on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Plain-text (non-TLS) IRC listeners, each an `ip:port` socket address.
    pub plain: Vec<String>,
    /// TLS IRC listeners, each an `ip:port` socket address.
    pub tls: Vec<String>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            plain: vec!["127.0.0.1:6667".to_owned()],
            tls: vec!["0.0.0.0:6697".to_owned()],
        }
    }
}

/// `[tls]`: the certificate the TLS listeners present, and the STS policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; empty means a self-signed one generated in the data directory.
    pub cert: String,
    /// PEM private key for `cert`.
    pub key: String,
    /// Advertise the IRCv3 `sts` policy on plain-text connections.
    pub sts: bool,
    /// How long clients should remember to use TLS (the `duration` of the policy).
    pub sts_duration_secs: u64,
    /// A DNS name to get a certificate for from an ACME CA (Let's Encrypt); empty turns ACME off.
    pub acme_domain: String,
    /// The ACME CA's directory URL.
    pub acme_directory: String,
    /// Contact address given to the CA for expiry and policy mail; optional.
    pub acme_email: String,
    /// Extra PEM CA certificates trusted for the ACME server's own HTTPS (pebble, a private CA).
    pub acme_ca: String,
    /// Plain-HTTP listeners answering the HTTP-01 challenge (port 80 for a real CA).
    pub acme_http_listen: Vec<String>,
    /// Renew when the certificate has fewer than this many days left.
    pub acme_renew_days: u64,
}

/// Let's Encrypt's production ACME directory, the default `tls.acme_directory`.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: String::new(),
            key: String::new(),
            sts: true,
            sts_duration_secs: 2_592_000,
            acme_domain: String::new(),
            acme_directory: LETS_ENCRYPT_DIRECTORY.to_owned(),
            acme_email: String::new(),
            acme_ca: String::new(),
            acme_http_listen: vec!["0.0.0.0:80".to_owned()],
            acme_renew_days: 30,
        }
    }
}

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

/// `[accounts]`: logging in, registering, and keeping guessers out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Connections must log in before they may chat.
    pub require_login: bool,
    /// `open`: anyone may `REGISTER`; `closed`: only the admin CLI adds accounts.
    pub registration: RegistrationPolicy,
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
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            require_login: true,
            registration: RegistrationPolicy::Open,
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
        }
    }
}

/// `[limits]`: a bound on everything a client can grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_clients: usize,
    pub max_clients_per_ip: usize,
    /// Connections from one network at once: a /24 for IPv4, a /64 for IPv6.
    pub max_clients_per_cidr: usize,
    pub nick_len: usize,
    pub user_len: usize,
    pub channel_len: usize,
    pub topic_len: usize,
    pub away_len: usize,
    pub kick_len: usize,
    pub channels_per_user: usize,
    /// Registered channels one account may own (they outlive their members).
    pub registered_channels_per_account: usize,
    pub members_per_channel: usize,
    pub targets_per_message: usize,
    pub send_queue_bytes: usize,
    pub registration_timeout_secs: u64,
    /// Time a TLS (or HTTPS) client has to finish its handshake.
    pub handshake_timeout_secs: u64,
    /// Idle time before the server sends a `PING`.
    pub ping_interval_secs: u64,
    /// Time a client has to answer that `PING` before it is disconnected.
    pub ping_timeout_secs: u64,
    pub whowas_entries: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_clients: 10_000,
            max_clients_per_ip: 256,
            max_clients_per_cidr: 1024,
            nick_len: 30,
            user_len: 16,
            channel_len: 50,
            topic_len: 390,
            away_len: 200,
            kick_len: 255,
            channels_per_user: 50,
            registered_channels_per_account: 20,
            members_per_channel: 20_000,
            targets_per_message: 4,
            send_queue_bytes: 262_144,
            registration_timeout_secs: 60,
            handshake_timeout_secs: 10,
            ping_interval_secs: 120,
            ping_timeout_secs: 60,
            whowas_entries: 1024,
        }
    }
}

/// `[flood]`: per-client line rate limiting (a token bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    pub enabled: bool,
    /// Lines a client may send at once before the rate applies.
    pub burst: u32,
    /// Sustained lines per second once the burst is spent.
    pub lines_per_second: f64,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            burst: 20,
            lines_per_second: 4.0,
        }
    }
}

/// `[history]`: what is kept of conversations, for how long, and how much a client may fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Store channel and private messages (in the accounts database).
    pub enabled: bool,
    /// Lines of a channel replayed on join to clients without `draft/chathistory`; 0 turns it off.
    pub replay_on_join: usize,
    /// Most messages one CHATHISTORY request returns.
    pub max_request: usize,
    /// Delete messages older than this many days; 0 keeps them forever.
    pub max_age_days: u64,
    /// Keep at most this many messages per channel or conversation; 0 means no limit.
    pub max_rows_per_target: usize,
    /// How often the pruning task runs.
    pub prune_interval_secs: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            replay_on_join: 20,
            max_request: 100,
            max_age_days: 0,
            max_rows_per_target: 0,
            prune_interval_secs: 3600,
        }
    }
}

/// Who may send `/broadcast` (`PRIVMSG $*`) to everyone connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BroadcastPolicy {
    Everyone,
    Operators,
}

/// `[operators]`: server operators, by account, in two classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorsConfig {
    /// Accounts with every operator permission.
    pub admins: Vec<String>,
    /// Accounts with the permissions in `moderator_permissions`.
    pub moderators: Vec<String>,
    /// What moderators may do: kill, kline, dline, suspend, wallops, notice, broadcast, channels.
    pub moderator_permissions: Vec<String>,
    /// Operators get their status when they log in, without OPER.
    pub auto_oper: bool,
    /// Who may broadcast to everyone.
    pub broadcast: BroadcastPolicy,
    /// With `broadcast = "everyone"`, seconds a non-operator must wait between broadcasts.
    pub broadcast_interval_secs: u64,
}

/// Every operator permission, for validation and for admins.
pub const OPERATOR_PERMISSIONS: &[&str] = &[
    "kill",
    "kline",
    "dline",
    "rehash",
    "suspend",
    "wallops",
    "notice",
    "broadcast",
    "channels",
];

impl Default for OperatorsConfig {
    fn default() -> Self {
        Self {
            admins: Vec::new(),
            moderators: Vec::new(),
            moderator_permissions: ["kill", "kline", "wallops", "notice", "broadcast"]
                .map(str::to_owned)
                .to_vec(),
            auto_oper: true,
            broadcast: BroadcastPolicy::Operators,
            broadcast_interval_secs: 60,
        }
    }
}

/// `[metrics]`: an HTTP listener serving Prometheus figures at `/metrics` and `/healthz`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Addresses (`ip:port`) to serve metrics on; empty (the default) turns metrics off.
    pub listen: Vec<String>,
}

/// `[web]`: the HTTPS listener with the built-in web client and the IRCv3 WebSocket transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// HTTPS listeners, each an `ip:port`; they use the `[tls]` certificate.
    pub listen: Vec<String>,
    /// Web origins, besides the server's own, whose pages may open a WebSocket; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Days a login session (the web client's "stay logged in" token) lasts unused; each use
    /// starts the days again.
    pub session_days: u64,
    /// Most live sessions one account keeps; a new one beyond this ends the least recently used.
    pub max_sessions: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: vec!["0.0.0.0:8443".to_owned()],
            allowed_origins: Vec::new(),
            session_days: 30,
            max_sessions: 10,
        }
    }
}

/// `[cluster]`: several parleyd nodes seen by users as one network, sharing live state through
/// a NATS server (JetStream) and everything stored through one PostgreSQL database.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Off by default: one node on its own, as before.
    pub enabled: bool,
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// This node's name, unique in the cluster; it names the node's users' origin.
    pub node_name: String,
    /// A node not heard from for this long is taken for dead: its users quit everywhere and
    /// their nicks are released.
    pub lease_secs: u64,
    /// Prefix of the JetStream stream and key-value buckets, so several clusters can share
    /// one NATS server.
    pub prefix: String,
    /// Every node's name: events, heartbeats and snapshots from any other name are dropped.
    pub nodes: Vec<String>,
    /// This node's NATS user (with `nats_password`); each node should have its own, whose
    /// permissions let it publish only as itself (docs/cluster.md).
    pub nats_user: String,
    /// Secret: never printed or logged. Best kept in `PARLEY_CLUSTER__NATS_PASSWORD`.
    pub nats_password: String,
    /// A NATS token instead of a user and password. Secret, like `nats_password`.
    pub nats_token: String,
    /// A file holding this node's NATS user nkey seed (`SU...`), for nats-server's
    /// `{ nkey: U... }` users: the node proves it holds the seed by signing a nonce, and the
    /// seed stays out of this config.
    pub nats_nkey_seed_file: String,
    /// The seed itself, for `PARLEY_CLUSTER__NATS_NKEY_SEED`. Secret, like `nats_password`.
    pub nats_nkey_seed: String,
    /// A NATS `.creds` file (user JWT and nkey seed), for nats-server in operator mode.
    pub nats_creds_file: String,
    /// PEM CA file that signs the NATS server's certificate; setting it requires TLS to NATS.
    pub nats_tls_ca: String,
    /// PEM client certificate (with `nats_tls_key`) this node presents to NATS.
    pub nats_tls_cert: String,
    pub nats_tls_key: String,
    /// Run without NATS credentials or a list of nodes: anyone who reaches NATS can read and
    /// forge every event. Only for a private test network.
    pub insecure: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            node_name: String::new(),
            lease_secs: 10,
            prefix: "parley".to_owned(),
            nodes: Vec::new(),
            nats_user: String::new(),
            nats_password: String::new(),
            nats_token: String::new(),
            nats_nkey_seed_file: String::new(),
            nats_nkey_seed: String::new(),
            nats_creds_file: String::new(),
            nats_tls_ca: String::new(),
            nats_tls_cert: String::new(),
            nats_tls_key: String::new(),
            insecure: false,
        }
    }
}

/// By hand, so a debug print of the config never shows the database password in `postgres_url`.
impl std::fmt::Debug for AccountsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountsConfig")
            .field("require_login", &self.require_login)
            .field("registration", &self.registration)
            .field("store", &self.store)
            .field("database", &self.database)
            .field("postgres_url", &redact_url(&self.postgres_url))
            .field("postgres_ca", &self.postgres_ca)
            .field("postgres_client_cert", &self.postgres_client_cert)
            .field("postgres_client_key", &self.postgres_client_key)
            .field("min_password_len", &self.min_password_len)
            .field("max_password_len", &self.max_password_len)
            .field("allow_plaintext_login", &self.allow_plaintext_login)
            .field("plaintext_login_from", &self.plaintext_login_from)
            .field("max_failures", &self.max_failures)
            .field("address_max_accounts", &self.address_max_accounts)
            .field("failure_window_secs", &self.failure_window_secs)
            .field("lockout_secs", &self.lockout_secs)
            .field("scram_iterations", &self.scram_iterations)
            .finish()
    }
}

/// By hand, so a debug print of the config never shows the NATS password, token or seed.
impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |secret: &str| if secret.is_empty() { "" } else { HIDDEN };
        f.debug_struct("ClusterConfig")
            .field("enabled", &self.enabled)
            .field("nats_url", &redact_url(&self.nats_url))
            .field("node_name", &self.node_name)
            .field("lease_secs", &self.lease_secs)
            .field("prefix", &self.prefix)
            .field("nodes", &self.nodes)
            .field("nats_user", &self.nats_user)
            .field("nats_password", &hidden(&self.nats_password))
            .field("nats_token", &hidden(&self.nats_token))
            .field("nats_nkey_seed_file", &self.nats_nkey_seed_file)
            .field("nats_nkey_seed", &hidden(&self.nats_nkey_seed))
            .field("nats_creds_file", &self.nats_creds_file)
            .field("nats_tls_ca", &self.nats_tls_ca)
            .field("nats_tls_cert", &self.nats_tls_cert)
            .field("nats_tls_key", &self.nats_tls_key)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// `[log]`: what the server logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A level name (`trace`..`error`, `off`) or `tracing` filter directives such as `info,parley=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}

/// Why a configuration could not be used.
///
/// `path` is the file the text came from (`None` for [`Config::from_toml_str`]). `line` is 1-based;
/// `0` means the key is not in the file (its default value, or a `Config` built in code, failed
/// validation), and the message then names no line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}; check that it exists and is readable", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}TOML syntax error: {message}; fix the file at that spot", syntax_location(.path, *.line, *.column))]
    Syntax {
        path: Option<PathBuf>,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}unknown key `{key}` ({}); fix the spelling or remove it", location(.path, *.line), unknown_key_hint(.key))]
    UnknownKey {
        path: Option<PathBuf>,
        key: String,
        line: usize,
    },
    #[error("{}invalid value for `{key}`: {message}", location(.path, *.line))]
    InvalidValue {
        path: Option<PathBuf>,
        key: String,
        line: usize,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

/// Keys that take effect on a reload (SIGHUP or REHASH); every other key needs a restart.
pub const RELOADABLE: &[(&str, &str)] = &[
    ("server", "motd"),
    ("flood", "enabled"),
    ("flood", "burst"),
    ("flood", "lines_per_second"),
    ("accounts", "registration"),
    ("accounts", "allow_plaintext_login"),
    ("operators", "admins"),
    ("operators", "moderators"),
    ("operators", "moderator_permissions"),
    ("operators", "auto_oper"),
    ("operators", "broadcast"),
    ("operators", "broadcast_interval_secs"),
];

/// What `--print-config` shows instead of a NATS password or token that is set.
pub const HIDDEN: &str = "<hidden>";

/// Prefix of the environment variables that override config keys: `PARLEY_SECTION__KEY=value`.
pub const ENV_PREFIX: &str = "PARLEY_";

impl Config {
    /// Apply `PARLEY_SECTION__KEY=value` overrides (variables without `__` are not config keys
    /// and are ignored). A value is read as TOML (`20`, `true`, `["a", "b"]`) and otherwise taken
    /// as a string. The result is validated; errors name the variable.
    pub fn with_env<I: IntoIterator<Item = (String, String)>>(
        self,
        vars: I,
    ) -> Result<Config, ConfigError> {
        let (config, overridden) = self.apply_env(vars)?;
        if overridden.is_empty() {
            return Ok(config);
        }
        config.check().map_err(|invalid| ConfigError::Env {
            var: format!(
                "{ENV_PREFIX}{}",
                invalid.key.replace('.', "__").to_ascii_uppercase()
            ),
            message: invalid.message,
        })?;
        Ok(config)
    }

    /// The overrides applied, unchecked, with the dotted keys they set.
    fn apply_env<I: IntoIterator<Item = (String, String)>>(
        self,
        vars: I,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut table = toml::Table::try_from(&self).map_err(|e| ConfigError::Env {
            var: String::new(),
            message: e.to_string(),
        })?;
        let mut overridden = Vec::new();
        for (var, raw) in vars {
            let Some(name) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let Some((section, key)) = name.split_once("__") else {
                continue;
            };
            let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
            let fail = |message: String| ConfigError::Env {
                var: var.clone(),
                message,
            };
            if !KEY_DOCS.iter().any(|(s, k, _)| *s == section && *k == key) {
                return Err(fail(format!(
                    "`{section}.{key}` is not a config key; {}",
                    unknown_key_hint(&format!("{section}.{key}"))
                )));
            }
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.clone()));
            if let Some(toml::Value::Table(section_table)) = table.get_mut(&section) {
                overridden.push(format!("{section}.{key}"));
                section_table.insert(key, value);
            }
        }
        if overridden.is_empty() {
            return Ok((self, overridden));
        }
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Env {
                var: "PARLEY_*".into(),
                message: format!(
                    "{}; check the types of the overridden keys",
                    e.message().trim()
                ),
            })?;
        Ok((config, overridden))
    }

    /// The configuration the server runs with: the file (or the defaults), then the environment,
    /// then a `--data-dir` given on the command line.
    ///
    /// `server.data_dir` comes out absolute. A relative one from the file is taken from the
    /// file's directory, not the working directory: the file is what says where the data is, and
    /// `parleyd --config /etc/parley/parley.toml users add` must find the server's data from any
    /// directory. One from `--data-dir` or `PARLEY_SERVER__DATA_DIR` is taken from the working
    /// directory, as paths typed on a command line are.
    pub fn effective(path: Option<&Path>, data_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let env_sets_data_dir = vars.iter().any(|(var, _)| {
            var.strip_prefix(ENV_PREFIX)
                .is_some_and(|name| name.eq_ignore_ascii_case("SERVER__DATA_DIR"))
        });
        // The file and the environment are checked together: a key the file leaves out (a
        // password kept in the environment) is not an error in the file.
        let mut config = match path {
            Some(path) => {
                let text = read_config(path)?;
                parse_then(&text, Some(path), |config| config.apply_env(vars))?
            }
            None => Config::default().with_env(vars)?,
        };
        if let Some(dir) = data_dir {
            config.server.data_dir = dir.to_path_buf();
        } else if let (Some(file), false) = (path, env_sets_data_dir) {
            if config.server.data_dir.is_relative() {
                let base = file.parent().unwrap_or(Path::new(""));
                config.server.data_dir = base.join(&config.server.data_dir);
            }
        }
        config.server.data_dir = crate::data_dir::absolute(&config.server.data_dir);
        Ok(config)
    }

    /// The dotted names of the keys that differ between `self` and `other` and need a restart.
    pub fn restart_needed(&self, other: &Config) -> Vec<String> {
        let (Ok(a), Ok(b)) = (toml::Table::try_from(self), toml::Table::try_from(other)) else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for (section, _) in SECTION_DOCS {
            let (Some(x), Some(y)) = (a.get(*section), b.get(*section)) else {
                continue;
            };
            let (Some(x), Some(y)) = (x.as_table(), y.as_table()) else {
                continue;
            };
            for (key, value) in x {
                if y.get(key) != Some(value) && !RELOADABLE.contains(&(section, key.as_str())) {
                    changed.push(format!("{section}.{key}"));
                }
            }
        }
        changed
    }
}

/// The `file:line: ` (or `line N: `) prefix of an error message; empty when neither is known.
fn location(path: &Option<PathBuf>, line: usize) -> String {
    match (path, line) {
        (Some(path), 0) => format!("{}: ", path.display()),
        (Some(path), line) => format!("{}:{line}: ", path.display()),
        (None, 0) => String::new(),
        (None, line) => format!("line {line}: "),
    }
}

/// The `file:line:column: ` (or `line N, column M: `) prefix of a syntax error.
fn syntax_location(path: &Option<PathBuf>, line: usize, column: usize) -> String {
    match (path, line) {
        (Some(path), 0) => format!("{}: ", path.display()),
        (Some(path), line) => format!("{}:{line}:{column}: ", path.display()),
        (None, 0) => String::new(),
        (None, line) => format!("line {line}, column {column}: "),
    }
}

/// What the user probably meant by an unknown dotted key: the keys that do exist there.
fn unknown_key_hint(key: &str) -> String {
    let (section, leaf) = match key.rsplit_once('.') {
        Some((section, leaf)) => (section, leaf),
        None => ("", key),
    };
    let known: Vec<&str> = if section.is_empty() {
        SECTION_DOCS.iter().map(|(name, _)| *name).collect()
    } else {
        KEY_DOCS
            .iter()
            .filter(|(s, _, _)| *s == section)
            .map(|(_, k, _)| *k)
            .collect()
    };
    let mut hint = if section.is_empty() {
        let sections: Vec<String> = known.iter().map(|s| format!("[{s}]")).collect();
        format!("known sections: {}", sections.join(", "))
    } else if known.is_empty() {
        format!("[{section}] has no keys of its own")
    } else {
        format!("known keys in [{section}]: {}", known.join(", "))
    };
    if let Some(home) = KEY_DOCS
        .iter()
        .find(|(s, k, _)| *k == leaf && *s != section)
        .map(|(s, _, _)| s)
    {
        let _ = write!(hint, "; `{leaf}` belongs in [{home}]");
    } else if let Some(near) = known
        .iter()
        .filter(|k| edit_distance(k, leaf) <= 2)
        .min_by_key(|k| edit_distance(k, leaf))
    {
        let _ = write!(hint, "; did you mean `{near}`?");
    }
    hint
}

/// Levenshtein distance, for "did you mean" on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The comment above each section in [`Config::to_commented_toml`], in file order.
const SECTION_DOCS: &[(&str, &str)] = &[
    (
        "server",
        "Who this server says it is, and how it greets people.",
    ),
    ("listen", "Where the server accepts connections."),
    (
        "limits",
        "A bound on everything a client can grow. Lengths are in bytes.",
    ),
    (
        "flood",
        "Flood protection: each client may send `burst` lines at once, then\n\
         `lines_per_second` on average; lines beyond that wait their turn (nothing is dropped).",
    ),
    (
        "tls",
        "TLS: the certificate the TLS listeners present. With cert and key left empty, a\n\
         self-signed certificate is generated in the data directory on first start and reused;\n\
         its SHA-256 fingerprint is logged at start and printed by `parleyd cert show`.\n\
         With acme_domain set, parleyd gets a certificate from an ACME CA (Let's Encrypt) instead.",
    ),
    (
        "accounts",
        "Accounts: who may chat, how accounts are made, and how password guessing is slowed.",
    ),
    (
        "history",
        "History: every channel and private message is stored with its time and an id, so\n\
         clients can fetch what they missed (IRCv3 draft/chathistory) and offline accounts get\n\
         their private messages at their next login.",
    ),
    (
        "operators",
        "Server operators, named by account. Admins may do everything; moderators what\n\
         moderator_permissions lists. Operators see themselves marked with user mode +o.",
    ),
    (
        "metrics",
        "Metrics for Prometheus: connections, users, channels, lines in and out, SendQ\n\
         disconnects, login failures and store write times, at http://ADDRESS/metrics\n\
         (and /healthz, which answers \"ok\"). Off unless listen names an address.",
    ),
    (
        "web",
        "The web client: https://<host>:<port>/ serves a chat page, and /ws carries IRC over\n\
         WebSocket (IRCv3 text.ircv3.net / binary.ircv3.net) for it and other web clients.\n\
         It uses the [tls] certificate; every limit of a TCP connection applies unchanged.",
    ),
    (
        "cluster",
        "Several parleyd nodes as one network (docs/cluster.md): live state crosses a NATS\n\
         server with JetStream, and every node keeps accounts and history in one PostgreSQL\n\
         database (accounts.store = \"postgres\").",
    ),
    ("log", "What the server logs."),
];

/// The comment above each key in [`Config::to_commented_toml`], in file order. A test checks that this
/// lists exactly the keys that `Config` serializes, so it cannot fall behind the structs.
const KEY_DOCS: &[(&str, &str, &str)] = &[
    (
        "server",
        "name",
        "The server's own name, shown as the source of its replies. Letters, digits,\n\
         '.', '-' and '_' only (like a hostname).",
    ),
    (
        "server",
        "network",
        "The network name clients show for this server (NETWORK= in RPL_ISUPPORT). No spaces.",
    ),
    (
        "server",
        "motd",
        "The message of the day, sent to every client that connects. May span several lines.",
    ),
    (
        "server",
        "default_channel",
        "Channel every new client joins after connecting; \"\" turns this off.\n\
         Must start with '#', with no spaces or commas.",
    ),
    (
        "server",
        "default_channel_modes",
        "The default channel's modes, set whenever it is made (at start, after every restart,\n\
         after it emptied): m (moderated), n (no messages from outside), t (only operators set\n\
         the topic), l N (at most N members), e.g. \"+nt\" or \"+mntl 500\". i and k are\n\
         refused: every new user is joined without an invite or key. Nobody gets channel\n\
         operator status there by arriving first; only server operators with the \"channels\"\n\
         permission moderate it and may change these modes until it is made again.",
    ),
    (
        "server",
        "default_channel_topic",
        "The default channel's topic whenever it is made; \"\" for none.",
    ),
    (
        "server",
        "data_dir",
        "Directory for the server's persistent data: the SQLite database, the generated TLS\n\
         certificate, the SCRAM secret. A relative path is taken from this file's directory.\n\
         Left out, it is the platform's data directory: $STATE_DIRECTORY under systemd\n\
         (StateDirectory=), else $XDG_DATA_HOME/parley (~/.local/share/parley) of the user\n\
         running parleyd, so every parleyd command finds the same data wherever it starts.",
    ),
    (
        "listen",
        "plain",
        "Plain-text IRC listeners, each an ip:port, e.g. [\"0.0.0.0:6667\", \"[::]:6667\"].\n\
         The default only accepts connections from this machine; [] turns plain text off.",
    ),
    (
        "listen",
        "tls",
        "TLS IRC listeners, each an ip:port; [] turns TLS off.",
    ),
    (
        "limits",
        "max_clients",
        "Most connections the server accepts at once.",
    ),
    (
        "limits",
        "max_clients_per_ip",
        "Most connections from one IP address at once.",
    ),
    (
        "limits",
        "max_clients_per_cidr",
        "Most connections from one network at once (a /24 for IPv4, a /64 for IPv6).",
    ),
    ("limits", "nick_len", "Longest nickname (1 to 64)."),
    (
        "limits",
        "user_len",
        "Longest username (the ident in USER).",
    ),
    (
        "limits",
        "channel_len",
        "Longest channel name, including its '#' (2 to 200).",
    ),
    ("limits", "topic_len", "Longest channel topic."),
    ("limits", "away_len", "Longest away message."),
    ("limits", "kick_len", "Longest kick reason."),
    (
        "limits",
        "channels_per_user",
        "Most channels one client can be in at once.",
    ),
    (
        "limits",
        "registered_channels_per_account",
        "Most registered channels one account may own. A channel a logged-in user creates\n\
         past this is still made, but not registered (it vanishes with its last member);\n\
         OWNER refuses to hand a channel to an account at the limit. 0: users register none.",
    ),
    (
        "limits",
        "members_per_channel",
        "Most members one channel can have (a channel's +l can only lower it).",
    ),
    (
        "limits",
        "targets_per_message",
        "Most targets in one PRIVMSG/NOTICE (a,b,c counts as 3).",
    ),
    (
        "limits",
        "send_queue_bytes",
        "Bytes of output that may pile up for a slow client before it is\n\
         disconnected with \"SendQ exceeded\" (at least 4096).",
    ),
    (
        "limits",
        "registration_timeout_secs",
        "Seconds a new connection has to finish NICK/USER before it is dropped.",
    ),
    (
        "limits",
        "handshake_timeout_secs",
        "Seconds a TLS or HTTPS connection has to finish its TLS handshake before it is\n\
         dropped (at least 1). It holds one of its address's max_clients_per_ip meanwhile.",
    ),
    (
        "limits",
        "ping_interval_secs",
        "Seconds a client may stay silent before the server sends it a PING.",
    ),
    (
        "limits",
        "ping_timeout_secs",
        "Seconds a client has to answer that PING before it is disconnected.",
    ),
    (
        "limits",
        "whowas_entries",
        "How many departed nicknames WHOWAS remembers; 0 turns WHOWAS off.",
    ),
    ("flood", "enabled", "Whether flood protection is on."),
    (
        "flood",
        "burst",
        "Lines a client may send at once (at least 1).",
    ),
    (
        "flood",
        "lines_per_second",
        "Average lines per second allowed after the burst (more than 0).",
    ),
    (
        "tls",
        "cert",
        "PEM certificate chain file (e.g. server.crt or Let's Encrypt's fullchain.pem);\n\
         \"\" generates a self-signed certificate in the data directory.",
    ),
    (
        "tls",
        "key",
        "PEM private key file for cert (e.g. server.key or privkey.pem).",
    ),
    (
        "tls",
        "sts",
        "Advertise the IRCv3 sts policy on plain-text connections, so clients switch to TLS.",
    ),
    (
        "tls",
        "sts_duration_secs",
        "How long clients remember to use TLS; 0 asks them to forget the policy.",
    ),
    (
        "tls",
        "acme_domain",
        "Get a certificate for this DNS name automatically from an ACME CA (Let's Encrypt),\n\
         e.g. \"chat.example.org\"; \"\" turns this off. The name must resolve to this server and\n\
         port 80 (acme_http_listen) must reach parleyd for the HTTP-01 challenge. Replaces\n\
         cert and key (leave those empty). Until the first certificate arrives the self-signed\n\
         one is served; it is kept in server.data_dir/acme/ and renewed without a restart\n\
         (docs/deploy.md, \"Automatic certificates\"). Setting it agrees to the CA's terms\n\
         of service (for Let's Encrypt, its Subscriber Agreement).",
    ),
    (
        "tls",
        "acme_directory",
        "The ACME CA's directory URL (https). Let's Encrypt's staging directory,\n\
         https://acme-staging-v02.api.letsencrypt.org/directory, is for trying things out.",
    ),
    (
        "tls",
        "acme_email",
        "Contact address the CA may write to about expiry or policy; \"\" gives none.",
    ),
    (
        "tls",
        "acme_ca",
        "PEM file of extra CA certificates to trust for the ACME server's own HTTPS (a\n\
         private ACME CA, or pebble in tests); \"\" trusts the system's CAs only.",
    ),
    (
        "tls",
        "acme_http_listen",
        "Plain-HTTP listeners for the ACME HTTP-01 challenge, each an ip:port; used only with\n\
         acme_domain. The CA connects to port 80; add \"[::]:80\" for IPv6. They answer\n\
         /.well-known/acme-challenge/ and redirect everything else to https.",
    ),
    (
        "tls",
        "acme_renew_days",
        "Renew the certificate when fewer than this many days are left (1 to 365; Let's\n\
         Encrypt's certificates last 90 days).",
    ),
    (
        "accounts",
        "require_login",
        "Connections must log in (SASL PLAIN or PASS account:password) before chatting.\n\
         With false, guests may chat but cannot take a registered account's nick.",
    ),
    (
        "accounts",
        "registration",
        "\"open\": anyone may create an account with REGISTER; \"closed\": only `parleyd users add`.",
    ),
    (
        "accounts",
        "store",
        "Where accounts, history, registered channels, bans and the audit trail are kept:\n\
         \"sqlite\" (the file named by database) or \"postgres\" (the database at postgres_url).",
    ),
    (
        "accounts",
        "database",
        "SQLite database file, relative to server.data_dir unless absolute.",
    ),
    (
        "accounts",
        "postgres_url",
        "PostgreSQL database for store = \"postgres\", e.g. \"postgres://parley@127.0.0.1/parley\".\n\
         Keep a password out of this file: set PARLEY_ACCOUNTS__POSTGRES_URL in the environment.\n\
         TLS: add ?sslmode=disable, prefer, require, verify-ca or verify-full. Without it, a\n\
         database on this machine (loopback, Unix socket) is reached in clear and any other\n\
         with verify-full. Every mode but disable checks the certificate's CA (postgres_ca).",
    ),
    (
        "accounts",
        "postgres_ca",
        "PEM file of the CA that signed the PostgreSQL server's certificate, e.g.\n\
         \"/etc/parley/postgres-ca.pem\"; empty: the system's CA certificates.",
    ),
    (
        "accounts",
        "postgres_client_cert",
        "PEM certificate parleyd shows PostgreSQL (its `cert` authentication); empty: none.\n\
         Needs postgres_client_key.",
    ),
    (
        "accounts",
        "postgres_client_key",
        "PEM private key of postgres_client_cert.",
    ),
    (
        "accounts",
        "min_password_len",
        "Shortest password accepted, in characters.",
    ),
    (
        "accounts",
        "max_password_len",
        "Longest password accepted, in bytes.",
    ),
    (
        "accounts",
        "allow_plaintext_login",
        "Accept passwords over plain text from anywhere (never needed with TLS).",
    ),
    (
        "accounts",
        "plaintext_login_from",
        "Networks (CIDR) whose plain-text logins are accepted even when the above is false;\n\
         the default is this machine only.",
    ),
    (
        "accounts",
        "max_failures",
        "Failed logins for one account within failure_window_secs, from anywhere, before it is\n\
         locked out; logins still being checked count too (more wait), so a burst gets no\n\
         more guesses. Each failure is also answered later than the last (0.25 s up to 4 s).",
    ),
    (
        "accounts",
        "address_max_accounts",
        "Different account names one address's failed logins must name within\n\
         failure_window_secs before the address is locked out: a spray, never one user's\n\
         typos. An IPv6 address counts as its whole /64; loopback (this machine, a local\n\
         reverse proxy) is never locked out as an address, only per account.",
    ),
    (
        "accounts",
        "failure_window_secs",
        "Seconds over which failed logins are counted.",
    ),
    (
        "accounts",
        "lockout_secs",
        "Seconds a locked-out account or address must wait. Short on purpose: anyone can lock\n\
         an account out by guessing, so a long lockout mostly hurts its owner. An admin ends\n\
         one at once, on every running node: parleyd users unlock NAME (or --address IP).",
    ),
    (
        "accounts",
        "scram_iterations",
        "PBKDF2 rounds for new SASL SCRAM-SHA-256 credentials (4096 to 1000000). The client pays\n\
         them at each login (about 0.1 s at 600000 on a desktop core), and so does anyone who\n\
         stole the database, per guess. Existing credentials are redone at the next PLAIN login.",
    ),
    (
        "history",
        "enabled",
        "Store channel and private messages. Off: nothing is kept and nothing replayed.",
    ),
    (
        "history",
        "replay_on_join",
        "Lines of a channel replayed on join to clients without chathistory; 0 turns it off.",
    ),
    (
        "history",
        "max_request",
        "Most messages one CHATHISTORY request returns (at least 1).",
    ),
    (
        "history",
        "max_age_days",
        "Delete messages older than this many days; 0 keeps them forever.",
    ),
    (
        "history",
        "max_rows_per_target",
        "Keep at most this many messages per channel or conversation; 0 means no limit.",
    ),
    (
        "history",
        "prune_interval_secs",
        "Seconds between runs of the pruning task (at least 1).",
    ),
    (
        "operators",
        "admins",
        "Accounts with every operator permission, e.g. [\"alice\"].",
    ),
    (
        "operators",
        "moderators",
        "Accounts with the permissions below.",
    ),
    (
        "operators",
        "moderator_permissions",
        "What moderators may do, from: kill, kline, dline, suspend, wallops, notice,\n\
         broadcast, channels (act as owner of any registered channel).",
    ),
    (
        "operators",
        "auto_oper",
        "Operators get their status at login; with false they send OPER first.",
    ),
    (
        "operators",
        "broadcast",
        "Who may send /broadcast (PRIVMSG $*) to everyone: \"operators\" or \"everyone\".",
    ),
    (
        "operators",
        "broadcast_interval_secs",
        "With broadcast = \"everyone\", seconds between two broadcasts of one user.",
    ),
    (
        "metrics",
        "listen",
        "Addresses (ip:port) of the metrics HTTP listener, e.g. [\"127.0.0.1:9100\"];\n\
         [] turns metrics off. The figures are not secret but not for everyone: keep it on\n\
         loopback or a private network.",
    ),
    (
        "web",
        "listen",
        "HTTPS listeners for the web client, each an ip:port; [] turns the web client off.",
    ),
    (
        "web",
        "allowed_origins",
        "Other web origins whose pages may connect, e.g. [\"https://chat.example.org\"];\n\
         the server's own origin is always allowed, and \"*\" allows any page.",
    ),
    (
        "web",
        "session_days",
        "Days a login session (the web client staying logged in across reloads) lasts\n\
         unused; each use starts them again. /logout, a password change, a lock or\n\
         `parleyd users logout NAME` end sessions sooner.",
    ),
    (
        "web",
        "max_sessions",
        "Most login sessions (browsers staying logged in) one account keeps; a new one\n\
         beyond this ends the least recently used.",
    ),
    (
        "cluster",
        "enabled",
        "Join a cluster; needs accounts.store = \"postgres\" and a NATS server with JetStream.",
    ),
    (
        "cluster",
        "nats_url",
        "The NATS server, e.g. \"nats://127.0.0.1:4222\" (tls:// for TLS). Keep a password\n\
         out of this file: set PARLEY_CLUSTER__NATS_URL in the environment.",
    ),
    (
        "cluster",
        "node_name",
        "This node's name, unique in the cluster (letters, digits, - and _).",
    ),
    (
        "cluster",
        "lease_secs",
        "A node not heard from for this long is taken for dead: its users quit everywhere\n\
         and their nicks are free again.",
    ),
    (
        "cluster",
        "prefix",
        "Prefix of the JetStream stream and buckets, so clusters can share a NATS server.",
    ),
    (
        "cluster",
        "nodes",
        "Every node's name, this one's included, e.g. [\"n1\", \"n2\"]. Events, heartbeats\n\
         and snapshots from any other name are dropped. Required unless insecure = true.",
    ),
    (
        "cluster",
        "nats_user",
        "This node's own NATS user; its permissions in nats-server let it publish only\n\
         as this node (docs/cluster.md has the nats-server config).",
    ),
    (
        "cluster",
        "nats_password",
        "The NATS user's password. Keep it out of this file: set\n\
         PARLEY_CLUSTER__NATS_PASSWORD in the environment. Never printed.",
    ),
    (
        "cluster",
        "nats_token",
        "A NATS token instead of nats_user and nats_password (PARLEY_CLUSTER__NATS_TOKEN).\n\
         Never printed.",
    ),
    (
        "cluster",
        "nats_nkey_seed_file",
        "A file holding this node's NATS user nkey seed (SU...), instead of a user and\n\
         password: nats-server lists the node as { nkey: U... } (docs/cluster.md). Keep the\n\
         file readable by parleyd's user only.",
    ),
    (
        "cluster",
        "nats_nkey_seed",
        "The nkey seed itself instead of nats_nkey_seed_file; keep it out of this file:\n\
         set PARLEY_CLUSTER__NATS_NKEY_SEED in the environment. Never printed.",
    ),
    (
        "cluster",
        "nats_creds_file",
        "A NATS .creds file (user JWT and nkey seed) for nats-server in operator mode,\n\
         instead of the other logins. Keep it readable by parleyd's user only.",
    ),
    (
        "cluster",
        "nats_tls_ca",
        "PEM file of the CA that signed the NATS server's certificate; set, it makes TLS\n\
         to NATS required.",
    ),
    (
        "cluster",
        "nats_tls_cert",
        "PEM client certificate this node presents to NATS (with nats_tls_key); nats-server\n\
         can map it to the node's user (verify_and_map).",
    ),
    (
        "cluster",
        "nats_tls_key",
        "PEM private key of nats_tls_cert.",
    ),
    (
        "cluster",
        "insecure",
        "Run without NATS credentials and without a list of nodes. Anyone who reaches the\n\
         NATS server then reads every private message and can forge any event: only for a\n\
         private test network.",
    ),
    (
        "log",
        "level",
        "One of trace, debug, info, warn, error, off; or tracing filter directives\n\
         such as \"info,parley_server=debug\".",
    ),
];

/// `[tls] acme_*`: a name a CA will sign, a CA to ask over HTTPS, and a way for it to reach us.
fn check_acme(config: &Config) -> Result<(), Invalid> {
    let tls = &config.tls;
    if tls.acme_domain.is_empty() {
        return Ok(());
    }
    if !tls.cert.is_empty() || !tls.key.is_empty() {
        return Err(Invalid::new(
            "tls.acme_domain",
            "tls.acme_domain gets a certificate automatically, so it conflicts with tls.cert and tls.key; \
             set either acme_domain or cert and key, not both"
                .to_owned(),
        ));
    }
    let domain = &tls.acme_domain;
    let is_ip = domain.parse::<std::net::IpAddr>().is_ok();
    if is_ip
        || domain.contains('*')
        || rustls::pki_types::DnsName::try_from(domain.as_str()).is_err()
    {
        return Err(Invalid::new(
            "tls.acme_domain",
            format!(
                "{domain:?} is not a DNS name a CA can check over HTTP-01; use a host name like \"chat.example.org\" (no IP address, no wildcard)"
            ),
        ));
    }
    if !tls.acme_directory.starts_with("https://") || tls.acme_directory.len() <= "https://".len() {
        return Err(Invalid::new(
            "tls.acme_directory",
            format!(
                "{:?} is not an https:// URL; ACME servers are reached over HTTPS, like \"{LETS_ENCRYPT_DIRECTORY}\"",
                tls.acme_directory
            ),
        ));
    }
    let email = &tls.acme_email;
    if !email.is_empty() {
        let well_formed = email.split('@').count() == 2
            && !email.starts_with('@')
            && !email.ends_with('@')
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '>'));
        if !well_formed {
            return Err(Invalid::new(
                "tls.acme_email",
                format!("{email:?} is not an email address; use one like \"admin@example.org\", or \"\" for none"),
            ));
        }
    }
    if !tls.acme_ca.is_empty() && !Path::new(&tls.acme_ca).is_file() {
        return Err(Invalid::new(
            "tls.acme_ca",
            format!(
                "{:?} is not a readable file; give the path of a PEM file of CA certificates, or \"\"",
                tls.acme_ca
            ),
        ));
    }
    if tls.acme_http_listen.is_empty() {
        return Err(Invalid::new(
            "tls.acme_http_listen",
            "ACME needs a plain-HTTP listener for the HTTP-01 challenge; add \"0.0.0.0:80\""
                .to_owned(),
        ));
    }
    for (index, address) in tls.acme_http_listen.iter().enumerate() {
        if address.parse::<SocketAddr>().is_err() {
            return Err(Invalid {
                key: "tls.acme_http_listen",
                item: Some(index),
                message: format!(
                    "{address:?} is not an address like 0.0.0.0:80 or [::]:80 (an IP and a port, no host names)"
                ),
            });
        }
    }
    if config.listen.tls.is_empty() && config.web.listen.is_empty() {
        return Err(Invalid::new(
            "tls.acme_domain",
            "listen.tls and web.listen are both empty, so no listener would use the certificate; add a TLS or web listener, or set acme_domain = \"\"".to_owned(),
        ));
    }
    Ok(())
}

/// How a node proves itself to NATS, and whom it listens to: credentials and the node list are
/// required unless `insecure` says the bus is a private test network.
fn check_nats_access(
    cluster: &ClusterConfig,
    name_ok: impl Fn(&str) -> bool,
) -> Result<(), Invalid> {
    let authority = cluster
        .nats_url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or_default());
    if authority.contains('@') {
        return Err(Invalid::new(
            "cluster.nats_url",
            "the NATS client does not use credentials written in the URL; remove them and set \
             cluster.nats_user with PARLEY_CLUSTER__NATS_PASSWORD (or PARLEY_CLUSTER__NATS_TOKEN)"
                .to_owned(),
        ));
    }
    if cluster.nats_user.is_empty() != cluster.nats_password.is_empty() {
        let missing = if cluster.nats_user.is_empty() {
            "cluster.nats_user"
        } else {
            "cluster.nats_password"
        };
        return Err(Invalid::new(
            missing,
            "set both cluster.nats_user and cluster.nats_password (or neither)".to_owned(),
        ));
    }
    if !cluster.nats_nkey_seed.is_empty() && !cluster.nats_nkey_seed_file.is_empty() {
        return Err(Invalid::new(
            "cluster.nats_nkey_seed",
            "set the nkey seed either in a file (cluster.nats_nkey_seed_file) or in \
             PARLEY_CLUSTER__NATS_NKEY_SEED, not both"
                .to_owned(),
        ));
    }
    // One login: nats-server would take only one of them, and which one is not obvious.
    let logins: Vec<&str> = [
        ("cluster.nats_user", !cluster.nats_user.is_empty()),
        ("cluster.nats_token", !cluster.nats_token.is_empty()),
        (
            "cluster.nats_nkey_seed_file",
            !cluster.nats_nkey_seed_file.is_empty() || !cluster.nats_nkey_seed.is_empty(),
        ),
        (
            "cluster.nats_creds_file",
            !cluster.nats_creds_file.is_empty(),
        ),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    if let [_, second, ..] = logins[..] {
        return Err(Invalid::new(
            second,
            format!(
                "set one NATS login, not several: {} are all set; keep one (user and \
                 password, token, nkey seed, or .creds file)",
                logins.join(", ")
            ),
        ));
    }
    if cluster.nats_tls_cert.is_empty() != cluster.nats_tls_key.is_empty() {
        let missing = if cluster.nats_tls_cert.is_empty() {
            "cluster.nats_tls_cert"
        } else {
            "cluster.nats_tls_key"
        };
        return Err(Invalid::new(
            missing,
            "a client certificate needs both cluster.nats_tls_cert and cluster.nats_tls_key"
                .to_owned(),
        ));
    }
    for (key, path) in [
        ("cluster.nats_tls_ca", &cluster.nats_tls_ca),
        ("cluster.nats_tls_cert", &cluster.nats_tls_cert),
        ("cluster.nats_tls_key", &cluster.nats_tls_key),
    ] {
        if !path.is_empty() && !Path::new(path).is_file() {
            return Err(Invalid::new(
                key,
                format!("{path:?} is not a readable file; give the path of a PEM file"),
            ));
        }
    }
    for (key, path, what) in [
        (
            "cluster.nats_nkey_seed_file",
            &cluster.nats_nkey_seed_file,
            "a file holding the node's nkey seed (SU...)",
        ),
        (
            "cluster.nats_creds_file",
            &cluster.nats_creds_file,
            "a NATS .creds file",
        ),
    ] {
        if !path.is_empty() && !Path::new(path).is_file() {
            return Err(Invalid::new(
                key,
                format!("{path:?} is not a readable file; give the path of {what}"),
            ));
        }
    }
    if let Some(at) = cluster.nodes.iter().position(|n| !name_ok(n)) {
        return Err(Invalid {
            key: "cluster.nodes",
            item: Some(at),
            message: "a node name is 1 to 32 letters, digits, - or _".to_owned(),
        });
    }
    if cluster.insecure {
        return Ok(());
    }
    let authenticated = !logins.is_empty() || !cluster.nats_tls_cert.is_empty();
    if !authenticated {
        return Err(Invalid::new(
            "cluster.nats_user",
            "a cluster node must log in to NATS, or anyone who reaches it reads every private \
             message and forges any event: set cluster.nats_user and \
             PARLEY_CLUSTER__NATS_PASSWORD (or nats_token, nats_nkey_seed_file, \
             nats_creds_file, or nats_tls_cert and nats_tls_key), or cluster.insecure = true on a private test network (docs/cluster.md)"
                .to_owned(),
        ));
    }
    if cluster.nodes.is_empty() {
        return Err(Invalid::new(
            "cluster.nodes",
            "list every node's name, e.g. [\"n1\", \"n2\"], so events from no other name are \
             accepted (or set cluster.insecure = true on a private test network)"
                .to_owned(),
        ));
    }
    if !cluster.nodes.contains(&cluster.node_name) {
        return Err(Invalid::new(
            "cluster.nodes",
            format!(
                "it does not name this node ({:?}); list every node, this one included",
                cluster.node_name
            ),
        ));
    }
    Ok(())
}

/// The default room's modes, as `server.default_channel_modes` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomModes {
    pub moderated: bool,
    pub no_external: bool,
    pub topic_ops_only: bool,
    pub limit: Option<usize>,
}

/// Read a `server.default_channel_modes` value: `+` (optional) and flags from `m`, `n`, `t`,
/// `l`, then `l`'s member limit, like `"+ntl 200"`. The error says what to write instead.
pub fn parse_room_modes(text: &str) -> Result<RoomModes, String> {
    let mut words = text.split_whitespace();
    let flags = words.next().unwrap_or("");
    let mut modes = RoomModes::default();
    let mut wants_limit = false;
    for (index, c) in flags.chars().enumerate() {
        match c {
            '+' if index == 0 => {}
            'm' => modes.moderated = true,
            'n' => modes.no_external = true,
            't' => modes.topic_ops_only = true,
            'l' => wants_limit = true,
            'i' | 'k' => {
                return Err(format!(
                    "+{c} would refuse every new user's automatic join (they come without an \
                     invite or key); leave it out, e.g. \"+nt\""
                ))
            }
            '-' => {
                return Err(format!(
                    "{text:?} takes modes away; list only the modes the room has, like \"+nt\""
                ))
            }
            other => {
                return Err(format!(
                    "{other:?} is not a mode the default channel can have; use m (moderated), \
                     n (no messages from outside), t (only operators set the topic) and \
                     l N (member limit), like \"+ntl 200\""
                ))
            }
        }
    }
    if wants_limit {
        let limit = words
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                "+l needs a member limit (a number above 0) after the flags, like \"+ntl 200\""
                    .to_owned()
            })?;
        modes.limit = Some(limit);
    }
    if let Some(extra) = words.next() {
        return Err(format!(
            "{extra:?} follows the modes but none of them takes it; only l takes a number, \
             like \"+ntl 200\""
        ));
    }
    Ok(modes)
}

/// A validation failure before it is given a file and line: the dotted key, which element of a list
/// (if the key is a list), and what is wrong.
struct Invalid {
    key: &'static str,
    item: Option<usize>,
    message: String,
}

impl Invalid {
    fn new(key: &'static str, message: String) -> Self {
        Self {
            key,
            item: None,
            message,
        }
    }
}

impl Config {
    /// Parses and validates configuration text; errors carry no file path.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, None)
    }

    /// Reads, parses and validates the config file at `path`; errors name the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        parse(&read_config(path)?, Some(path))
    }

    /// Checks the rules that types alone cannot express, for a `Config` built in code. Errors carry no
    /// path and line 0; [`Config::from_toml_str`] and [`Config::load`] already run this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|invalid| ConfigError::InvalidValue {
            path: None,
            key: invalid.key.to_owned(),
            line: 0,
            message: invalid.message,
        })
    }

    /// The effective configuration as TOML, with a comment above every section and key saying what it
    /// does and its default. Parses back to an equal `Config`.
    pub fn to_commented_toml(&self) -> String {
        let mut printable = self.clone();
        // Only a Config built in code can hold a non-UTF-8 path, and TOML cannot spell one.
        printable.server.data_dir = PathBuf::from(self.server.data_dir.to_string_lossy().as_ref());
        // The printout goes to terminals and bug reports: never the database password.
        printable.accounts.postgres_url = redact_url(&self.accounts.postgres_url);
        printable.cluster.nats_url = redact_url(&self.cluster.nats_url);
        for secret in [
            &mut printable.cluster.nats_password,
            &mut printable.cluster.nats_token,
            &mut printable.cluster.nats_nkey_seed,
        ] {
            if !secret.is_empty() {
                *secret = HIDDEN.to_owned();
            }
        }
        let values = toml::Table::try_from(&printable)
            .expect("a Config with a UTF-8 data_dir always serializes to a TOML table");
        let defaults = default_table();

        let mut out = String::from(
            "# Parley server (parleyd) configuration.\n\
             # Every key is optional: one left out takes the default named in its comment.\n",
        );
        for (section, section_help) in SECTION_DOCS {
            out.push('\n');
            push_comment(&mut out, section_help);
            let _ = writeln!(out, "[{section}]");
            for (_, key, help) in KEY_DOCS.iter().filter(|(s, _, _)| s == section) {
                let value = values.get(*section).and_then(|table| table.get(*key));
                let default = defaults.get(*section).and_then(|table| table.get(*key));
                let (Some(value), Some(default)) = (value, default) else {
                    continue;
                };
                out.push('\n');
                let when = if RELOADABLE.contains(&(section, key)) {
                    "Takes effect on reload (SIGHUP or REHASH)."
                } else {
                    "Changing it needs a restart."
                };
                push_comment(
                    &mut out,
                    &format!("{help}\n{when}\nDefault: {}", one_line_value(default)),
                );
                let _ = writeln!(out, "{key} = {value}");
            }
        }
        out
    }

    fn check(&self) -> Result<(), Invalid> {
        let server = &self.server;
        if server.name.is_empty()
            || !server
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(Invalid::new(
                "server.name",
                format!(
                    "{:?} is not a server name; use letters, digits, '.', '-' and '_' only, like \"irc.example.org\"",
                    server.name
                ),
            ));
        }
        if server.network.is_empty()
            || server
                .network
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Invalid::new(
                "server.network",
                format!(
                    "{:?} is not a network name; use one word without spaces, like \"Parley\"",
                    server.network
                ),
            ));
        }
        let channel = &server.default_channel;
        if !channel.is_empty() {
            let well_formed = channel.len() >= 2
                && channel.starts_with('#')
                && !channel
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',');
            if !well_formed {
                return Err(Invalid::new(
                    "server.default_channel",
                    format!(
                        "{channel:?} is not a channel name; use '#' and a name without spaces or commas, like \"#lobby\", or \"\" for none"
                    ),
                ));
            }
        }
        if let Err(message) = parse_room_modes(&server.default_channel_modes) {
            return Err(Invalid::new("server.default_channel_modes", message));
        }
        if let Some(c) = server
            .default_channel_topic
            .chars()
            .find(|c| c.is_control())
        {
            return Err(Invalid::new(
                "server.default_channel_topic",
                format!("it contains the control character {c:?}; a topic is one line of text"),
            ));
        }
        if server.data_dir.as_os_str().is_empty() {
            return Err(Invalid::new(
                "server.data_dir",
                "the path is empty; name a directory, like \"parley\"".to_owned(),
            ));
        }

        if self.listen.plain.is_empty() && self.listen.tls.is_empty() && self.web.listen.is_empty()
        {
            return Err(Invalid::new(
                "listen.plain",
                "listen.plain, listen.tls and web.listen are all empty, so no one could connect; add an address like \"127.0.0.1:6667\""
                    .to_owned(),
            ));
        }
        for (key, addresses) in [
            ("listen.plain", &self.listen.plain),
            ("listen.tls", &self.listen.tls),
        ] {
            for (index, address) in addresses.iter().enumerate() {
                if address.parse::<SocketAddr>().is_err() {
                    return Err(Invalid {
                        key,
                        item: Some(index),
                        message: format!(
                            "{address:?} is not an address like 127.0.0.1:6667 or [::1]:6667 (an IP and a port, no host names)"
                        ),
                    });
                }
            }
        }
        for (index, address) in self.web.listen.iter().enumerate() {
            if address.parse::<SocketAddr>().is_err() {
                return Err(Invalid {
                    key: "web.listen",
                    item: Some(index),
                    message: format!(
                        "{address:?} is not an address like 0.0.0.0:8443 or [::]:8443 (an IP and a port, no host names)"
                    ),
                });
            }
        }
        for (index, origin) in self.web.allowed_origins.iter().enumerate() {
            if !is_web_origin(origin) {
                return Err(Invalid {
                    key: "web.allowed_origins",
                    item: Some(index),
                    message: format!(
                        "{origin:?} is not an origin; use a scheme and host (and port), like \"https://chat.example.org\", or \"*\""
                    ),
                });
            }
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            let key = if self.tls.cert.is_empty() {
                "tls.key"
            } else {
                "tls.cert"
            };
            return Err(Invalid::new(
                key,
                "tls.cert and tls.key go together; set both, or leave both empty for a generated certificate".to_owned(),
            ));
        }
        check_acme(self)?;
        let accounts = &self.accounts;
        if accounts.database.is_empty() {
            return Err(Invalid::new(
                "accounts.database",
                "the path is empty; name a file, like \"parley.db\"".to_owned(),
            ));
        }
        if accounts.store == StoreKind::Postgres {
            if accounts.postgres_url.is_empty() {
                return Err(Invalid::new(
                    "accounts.postgres_url",
                    "store = \"postgres\" needs a URL, like \"postgres://parley@127.0.0.1/parley\""
                        .to_owned(),
                ));
            }
            if let Err(error) = postgres_url::parse_url(&accounts.postgres_url) {
                return Err(Invalid::new(
                    "accounts.postgres_url",
                    format!("not a PostgreSQL URL: {error}"),
                ));
            }
        }
        if accounts.postgres_client_cert.is_empty() != accounts.postgres_client_key.is_empty() {
            return Err(Invalid::new(
                "accounts.postgres_client_cert",
                "postgres_client_cert and postgres_client_key go together; set both or neither"
                    .to_owned(),
            ));
        }
        let cluster = &self.cluster;
        if cluster.enabled {
            if accounts.store != StoreKind::Postgres {
                return Err(Invalid::new(
                    "cluster.enabled",
                    "a cluster keeps accounts and history in one shared database; set \
                     accounts.store = \"postgres\""
                        .to_owned(),
                ));
            }
            let name_ok = |name: &str| {
                !name.is_empty()
                    && name.len() <= 32
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            if !name_ok(&cluster.node_name) {
                return Err(Invalid::new(
                    "cluster.node_name",
                    "give each node a unique name of 1 to 32 letters, digits, - or _".to_owned(),
                ));
            }
            if !name_ok(&cluster.prefix) {
                return Err(Invalid::new(
                    "cluster.prefix",
                    "use 1 to 32 letters, digits, - or _".to_owned(),
                ));
            }
            if !cluster.nats_url.starts_with("nats://") && !cluster.nats_url.starts_with("tls://") {
                return Err(Invalid::new(
                    "cluster.nats_url",
                    "expected a URL like \"nats://127.0.0.1:4222\"".to_owned(),
                ));
            }
            if !(2..=3600).contains(&cluster.lease_secs) {
                return Err(Invalid::new(
                    "cluster.lease_secs",
                    format!("{} is out of range; use 2 to 3600", cluster.lease_secs),
                ));
            }
            check_nats_access(cluster, name_ok)?;
        }
        if accounts.min_password_len == 0 || accounts.min_password_len > accounts.max_password_len {
            return Err(Invalid::new(
                "accounts.min_password_len",
                format!(
                    "{} must be at least 1 and no more than accounts.max_password_len ({})",
                    accounts.min_password_len, accounts.max_password_len
                ),
            ));
        }
        for (index, network) in accounts.plaintext_login_from.iter().enumerate() {
            if network.parse::<ipnet::IpNet>().is_err() {
                return Err(Invalid {
                    key: "accounts.plaintext_login_from",
                    item: Some(index),
                    message: format!(
                        "{network:?} is not a network like 127.0.0.0/8 or ::1/128 (an address, '/', a prefix length)"
                    ),
                });
            }
        }
        for (index, permission) in self.operators.moderator_permissions.iter().enumerate() {
            if !OPERATOR_PERMISSIONS.contains(&permission.as_str()) {
                return Err(Invalid {
                    key: "operators.moderator_permissions",
                    item: Some(index),
                    message: format!(
                        "{permission:?} is not a permission; use some of: {}",
                        OPERATOR_PERMISSIONS.join(", ")
                    ),
                });
            }
        }
        if self.history.max_request == 0 {
            return Err(Invalid::new(
                "history.max_request",
                "0 would answer every CHATHISTORY with nothing; use at least 1".to_owned(),
            ));
        }
        if self.history.prune_interval_secs == 0 {
            return Err(Invalid::new(
                "history.prune_interval_secs",
                "use at least 1 second".to_owned(),
            ));
        }
        if accounts.max_failures == 0 {
            return Err(Invalid::new(
                "accounts.max_failures",
                "0 would lock everyone out; use at least 1".to_owned(),
            ));
        }
        if accounts.address_max_accounts < 2 {
            return Err(Invalid::new(
                "accounts.address_max_accounts",
                format!(
                    "{} would lock an address out for one account's typos; use at least 2",
                    accounts.address_max_accounts
                ),
            ));
        }

        let limits = &self.limits;
        let ranges: [(&'static str, u64, u64, u64); 18] = [
            (
                "limits.max_clients_per_cidr",
                as_u64(limits.max_clients_per_cidr),
                1,
                u64::MAX,
            ),
            (
                "limits.members_per_channel",
                as_u64(limits.members_per_channel),
                1,
                u64::MAX,
            ),
            (
                "limits.max_clients",
                as_u64(limits.max_clients),
                1,
                u64::MAX,
            ),
            (
                "limits.max_clients_per_ip",
                as_u64(limits.max_clients_per_ip),
                1,
                u64::MAX,
            ),
            ("limits.nick_len", as_u64(limits.nick_len), 1, 64),
            ("limits.user_len", as_u64(limits.user_len), 1, u64::MAX),
            ("limits.channel_len", as_u64(limits.channel_len), 2, 200),
            ("limits.topic_len", as_u64(limits.topic_len), 1, u64::MAX),
            ("limits.away_len", as_u64(limits.away_len), 1, u64::MAX),
            ("limits.kick_len", as_u64(limits.kick_len), 1, u64::MAX),
            (
                "limits.channels_per_user",
                as_u64(limits.channels_per_user),
                1,
                u64::MAX,
            ),
            (
                "limits.targets_per_message",
                as_u64(limits.targets_per_message),
                1,
                u64::MAX,
            ),
            (
                "limits.send_queue_bytes",
                as_u64(limits.send_queue_bytes),
                4096,
                u64::MAX,
            ),
            (
                "limits.registration_timeout_secs",
                limits.registration_timeout_secs,
                1,
                u64::MAX,
            ),
            (
                "limits.handshake_timeout_secs",
                limits.handshake_timeout_secs,
                1,
                u64::MAX,
            ),
            (
                "limits.ping_interval_secs",
                limits.ping_interval_secs,
                1,
                u64::MAX,
            ),
            (
                "limits.ping_timeout_secs",
                limits.ping_timeout_secs,
                1,
                u64::MAX,
            ),
            (
                "limits.whowas_entries",
                as_u64(limits.whowas_entries),
                0,
                u64::MAX,
            ),
        ];
        // Durations are capped at ten years and counts at what TOML can write back (i64), so
        // every accepted config can be printed and no deadline computation can overflow.
        let others: [(&'static str, u64, u64, u64); 12] = [
            ("history.max_age_days", self.history.max_age_days, 0, 3650),
            (
                "history.prune_interval_secs",
                self.history.prune_interval_secs,
                1,
                TEN_YEARS_SECS,
            ),
            (
                "history.max_request",
                as_u64(self.history.max_request),
                1,
                100_000,
            ),
            (
                "history.replay_on_join",
                as_u64(self.history.replay_on_join),
                0,
                10_000,
            ),
            (
                "history.max_rows_per_target",
                as_u64(self.history.max_rows_per_target),
                0,
                MAX_COUNT,
            ),
            (
                "accounts.failure_window_secs",
                self.accounts.failure_window_secs,
                1,
                TEN_YEARS_SECS,
            ),
            (
                "accounts.lockout_secs",
                self.accounts.lockout_secs,
                0,
                TEN_YEARS_SECS,
            ),
            ("web.session_days", self.web.session_days, 1, 3650),
            ("web.max_sessions", as_u64(self.web.max_sessions), 1, 1000),
            (
                "accounts.scram_iterations",
                u64::from(self.accounts.scram_iterations),
                u64::from(parley_proto::scram::MIN_ITERATIONS),
                u64::from(parley_proto::scram::MAX_ITERATIONS),
            ),
            (
                "tls.sts_duration_secs",
                self.tls.sts_duration_secs,
                0,
                TEN_YEARS_SECS,
            ),
            ("tls.acme_renew_days", self.tls.acme_renew_days, 1, 365),
        ];
        let broadcast = [(
            "operators.broadcast_interval_secs",
            self.operators.broadcast_interval_secs,
            0,
            TEN_YEARS_SECS,
        )];
        let passwords = [
            (
                "accounts.max_password_len",
                as_u64(self.accounts.max_password_len),
                1,
                4096,
            ),
            (
                "accounts.min_password_len",
                as_u64(self.accounts.min_password_len),
                1,
                4096,
            ),
        ];
        for (key, value, min, max) in ranges
            .into_iter()
            .chain(others)
            .chain(broadcast)
            .chain(passwords)
        {
            let max = if key.ends_with("_secs") {
                max.min(TEN_YEARS_SECS)
            } else {
                max.min(MAX_COUNT)
            };
            if value < min || value > max {
                return Err(Invalid::new(
                    key,
                    format!("{value} is out of range; use a number from {min} to {max}"),
                ));
            }
        }

        if server.default_channel_topic.len() > limits.topic_len {
            return Err(Invalid::new(
                "server.default_channel_topic",
                format!(
                    "it is {} bytes, longer than limits.topic_len ({}); shorten it or raise the limit",
                    server.default_channel_topic.len(),
                    limits.topic_len
                ),
            ));
        }
        // Checked after the limits so that a bad channel_len is reported as itself.
        if server.default_channel.len() > limits.channel_len {
            return Err(Invalid::new(
                "server.default_channel",
                format!(
                    "{:?} is {} bytes, longer than limits.channel_len ({}); shorten it or raise the limit",
                    server.default_channel,
                    server.default_channel.len(),
                    limits.channel_len
                ),
            ));
        }

        if self.flood.burst == 0 {
            return Err(Invalid::new(
                "flood.burst",
                "0 would refuse every line; use at least 1, or set flood.enabled = false"
                    .to_owned(),
            ));
        }
        let rate = self.flood.lines_per_second;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Invalid::new(
                "flood.lines_per_second",
                format!("{rate} is not a rate; use a number above 0, like 2.0, or set flood.enabled = false"),
            ));
        }

        for (index, address) in self.metrics.listen.iter().enumerate() {
            if address.parse::<SocketAddr>().is_err() {
                return Err(Invalid {
                    key: "metrics.listen",
                    item: Some(index),
                    message: format!(
                        "{address:?} is not an address like 127.0.0.1:9100 (an IP and a port, no host names)"
                    ),
                });
            }
        }

        if !is_log_filter(&self.log.level) {
            return Err(Invalid::new(
                "log.level",
                format!(
                    "{:?} is not a log level; use trace, debug, info, warn, error or off, or directives like \"info,parley_server=debug\"",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }
}

/// `*`, or `scheme://host[:port]` without a path, as browsers send in `Origin`.
fn is_web_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        return false;
    };
    let host = host.strip_suffix('/').unwrap_or(host);
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !host.is_empty()
        && !host.contains(['/', '?', '#', ' ', '@'])
}

/// The largest duration any key accepts.
const TEN_YEARS_SECS: u64 = 10 * 365 * 24 * 3600;
/// The largest count any key accepts: what a TOML integer can hold.
const MAX_COUNT: u64 = i64::MAX as u64;

fn as_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// A level name, or comma-separated `tracing` directives each of which is a level name or `target=level`.
fn is_log_filter(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |word: &str| LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word));
    !filter.trim().is_empty()
        && filter.split(',').all(|directive| {
            let directive = directive.trim();
            is_level(directive)
                || (directive.contains('=') && !directive.contains(char::is_whitespace))
        })
}

fn push_comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

/// A value written on one line (newlines escaped), for the "Default:" part of a comment.
fn one_line_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => {
            let mut quoted = String::from("\"");
            for c in text.chars() {
                match c {
                    '"' => quoted.push_str("\\\""),
                    '\\' => quoted.push_str("\\\\"),
                    '\n' => quoted.push_str("\\n"),
                    '\t' => quoted.push_str("\\t"),
                    c if c.is_control() => {
                        let _ = write!(quoted, "\\u{:04X}", u32::from(c));
                    }
                    c => quoted.push(c),
                }
            }
            quoted.push('"');
            quoted
        }
        other => other.to_string(),
    }
}

fn default_table() -> toml::Table {
    toml::Table::try_from(Config::default()).expect("the default Config serializes to a TOML table")
}

/// Parse, deserialize and validate, turning every failure into an error that names key and line.
/// A config file's text; editors on some systems save a byte-order mark, which TOML does not allow.
fn read_config(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
    parse_then(text, path, |config| Ok((config, Vec::new())))
}

/// Parse, let `adjust` change the result (environment overrides, naming the keys it set), then
/// check: an invalid key from the file is reported at its line, one from the environment by
/// its variable.
fn parse_then(
    text: &str,
    path: Option<&Path>,
    adjust: impl FnOnce(Config) -> Result<(Config, Vec<String>), ConfigError>,
) -> Result<Config, ConfigError> {
    let path_buf = path.map(Path::to_path_buf);
    let document = DeTable::parse(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map_or((0, 0), |span| line_and_column(text, span.start));
        ConfigError::Syntax {
            path: path_buf.clone(),
            line,
            column,
            message: error.message().trim().to_owned(),
        }
    })?;
    let config = Config::deserialize(toml::de::Deserializer::from(document.clone()))
        .map_err(|error| deserialize_error(text, document.get_ref(), &error, path_buf.clone()))?;
    let (config, overridden) = adjust(config)?;
    config.check().map_err(|invalid| {
        if overridden.iter().any(|key| key == invalid.key) {
            return ConfigError::Env {
                var: format!(
                    "{ENV_PREFIX}{}",
                    invalid.key.replace('.', "__").to_ascii_uppercase()
                ),
                message: invalid.message,
            };
        }
        let segments: Vec<&str> = invalid.key.split('.').collect();
        let line = span_of(document.get_ref(), &segments, invalid.item)
            .map_or(0, |span| line_and_column(text, span.start).0);
        ConfigError::InvalidValue {
            path: path_buf.clone(),
            key: invalid.key.to_owned(),
            line,
            message: invalid.message,
        }
    })?;
    Ok(config)
}

/// Turns a serde error (unknown field, wrong type) into one naming the dotted key found at its span.
fn deserialize_error(
    text: &str,
    document: &DeTable<'_>,
    error: &toml::de::Error,
    path: Option<PathBuf>,
) -> ConfigError {
    let span = error.span();
    let segments = span
        .as_ref()
        .and_then(|span| key_path_at(document, span.start))
        .unwrap_or_default();
    let key = segments.join(".");
    let line = span.map_or(0, |span| line_and_column(text, span.start).0);
    let message = error.message().trim();
    if message.starts_with("unknown field") {
        return ConfigError::UnknownKey { path, key, line };
    }
    let found = if let Some(rest) = message.strip_prefix("invalid type: ") {
        rest.split_once(", expected")
            .map(|(found, _)| found.to_owned())
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        // serde says "invalid value" for an integer that does not fit the key's type.
        rest.split_once(", expected")
            .map(|(found, _)| format!("{found}, which is negative or too large"))
    } else {
        None
    };
    let expected = expected_for(&segments);
    let message = match (found, expected) {
        (Some(found), Some(expected)) => format!("found {found}; expected {expected}"),
        (None, Some(expected)) => format!("{message}; expected {expected}"),
        (_, None) => message.to_owned(),
    };
    ConfigError::InvalidValue {
        path,
        key,
        line,
        message,
    }
}

/// What a key accepts, described from the type and value of its default.
fn expected_for(segments: &[String]) -> Option<String> {
    let defaults = toml::Value::Table(default_table());
    let mut value = &defaults;
    for segment in segments {
        value = value.get(segment.as_str())?;
    }
    let shown = one_line_value(value);
    Some(match value {
        toml::Value::Integer(_) => format!("a whole number, like {shown}"),
        toml::Value::Float(_) => format!("a number, like {shown}"),
        toml::Value::Boolean(_) => "true or false".to_owned(),
        toml::Value::String(_) => format!("a quoted string, like {shown}"),
        toml::Value::Array(_) => format!("a list of strings, like {shown}"),
        toml::Value::Table(_) => format!("a section, written as a [{}] header", segments.join(".")),
        toml::Value::Datetime(_) => format!("a date, like {shown}"),
    })
}

/// The dotted key whose name or value covers byte `offset` of the document.
fn key_path_at(table: &DeTable<'_>, offset: usize) -> Option<Vec<String>> {
    for (key, value) in table.iter() {
        let name = key.get_ref().to_string();
        if covers(&key.span(), offset) {
            return Some(vec![name]);
        }
        let inner = match value.get_ref() {
            DeValue::Table(inner) => key_path_at(inner, offset),
            DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
                DeValue::Table(inner) => key_path_at(inner, offset),
                _ => None,
            }),
            _ => None,
        };
        if let Some(mut rest) = inner {
            rest.insert(0, name);
            return Some(rest);
        }
        if covers(&value.span(), offset) {
            return Some(vec![name]);
        }
    }
    None
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// Where a dotted key (or one element of its list) is written, if it is in the document at all.
fn span_of(table: &DeTable<'_>, segments: &[&str], item: Option<usize>) -> Option<Range<usize>> {
    let (first, rest) = segments.split_first()?;
    let (key, value) = table.get_key_value(*first)?;
    if !rest.is_empty() {
        return match value.get_ref() {
            DeValue::Table(inner) => span_of(inner, rest, item),
            _ => None,
        };
    }
    match (item, value.get_ref()) {
        (Some(index), DeValue::Array(items)) => items.get(index).map(|item| item.span()),
        _ => Some(key.span()),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    // Count characters, not bytes: skip UTF-8 continuation bytes.
    let column = before[line_start..]
        .iter()
        .filter(|&&byte| byte & 0xC0 != 0x80)
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (String, usize, String) {
        match Config::from_toml_str(text) {
            Err(ConfigError::InvalidValue {
                key, line, message, ..
            }) => (key, line, message),
            other => panic!("expected InvalidValue for {text:?}, got {other:?}"),
        }
    }

    fn unknown(text: &str) -> (String, usize) {
        match Config::from_toml_str(text) {
            Err(ConfigError::UnknownKey { key, line, .. }) => (key, line),
            other => panic!("expected UnknownKey for {text:?}, got {other:?}"),
        }
    }

    #[test]
    fn empty_text_gives_the_defaults() {
        let config = Config::from_toml_str("").expect("empty config is valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.server.default_channel, "#lobby");
        assert_eq!(config.listen.plain, ["127.0.0.1:6667"]);
        assert_eq!(config.limits.send_queue_bytes, 262_144);
        assert!(config.server.motd.contains("Parley") && config.server.motd.contains("#lobby"));
        Config::default()
            .validate()
            .expect("the defaults are valid");
    }

    #[test]
    fn default_config_round_trips_through_commented_toml() {
        let text = Config::default().to_commented_toml();
        let parsed = Config::from_toml_str(&text).expect("commented default config parses");
        assert_eq!(parsed, Config::default());
        assert!(text.contains("# Longest nickname (1 to 64).\n# Changing it needs a restart.\n# Default: 30\nnick_len = 30\n"));
        assert!(text.contains("[limits]\n"));
    }

    #[test]
    fn changed_config_round_trips_through_commented_toml() {
        let mut config = Config::default();
        config.server.motd = "line \"one\"\nline two\\ with a tab\t".to_owned();
        config.server.default_channel = String::new();
        config.listen.plain = vec!["0.0.0.0:6667".to_owned(), "[::1]:7000".to_owned()];
        config.flood.lines_per_second = 0.25;
        config.flood.enabled = false;
        config.log.level = "info,parley_server=debug".to_owned();
        let text = config.to_commented_toml();
        assert_eq!(
            Config::from_toml_str(&text).expect("commented config parses"),
            config
        );
        // Comments name the default even when the value differs from it.
        assert!(text.contains("# Default: true\nenabled = false\n"));
    }

    #[test]
    fn every_section_and_key_is_documented() {
        let defaults = default_table();
        let documented_sections: Vec<&str> = SECTION_DOCS.iter().map(|(s, _)| *s).collect();
        let mut serialized_sections: Vec<&str> = defaults.keys().map(String::as_str).collect();
        serialized_sections.sort_unstable();
        let mut sorted = documented_sections.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, serialized_sections);
        for section in documented_sections {
            let table = defaults
                .get(section)
                .and_then(toml::Value::as_table)
                .expect("every documented section is a table");
            let mut serialized: Vec<&str> = table.keys().map(String::as_str).collect();
            serialized.sort_unstable();
            let mut documented: Vec<&str> = KEY_DOCS
                .iter()
                .filter(|(s, _, _)| *s == section)
                .map(|(_, k, _)| *k)
                .collect();
            documented.sort_unstable();
            assert_eq!(documented, serialized, "keys of [{section}]");
        }
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let config = Config::from_toml_str(
            "[server]\nname = \"irc.example.org\"\n\n[limits]\nnick_len = 20\n",
        )
        .expect("partial config is valid");
        assert_eq!(config.server.name, "irc.example.org");
        assert_eq!(config.limits.nick_len, 20);
        assert_eq!(config.server.network, "Parley");
        assert_eq!(config.limits.channel_len, 50);
        assert_eq!(config.listen, ListenConfig::default());
        assert_eq!(config.flood, FloodConfig::default());
        assert_eq!(config.log, LogConfig::default());
    }

    #[test]
    fn dotted_keys_work_like_sections() {
        let config = Config::from_toml_str("limits.nick_len = 12\nflood = { burst = 3 }\n")
            .expect("dotted keys and inline tables are valid");
        assert_eq!(config.limits.nick_len, 12);
        assert_eq!(config.flood.burst, 3);
        assert!(config.flood.enabled);
    }

    #[test]
    fn unknown_key_in_section_names_key_and_line() {
        let (key, line) =
            unknown("[server]\nname = \"a\"\n\n[limits]\nnick_len = 9\nnick_lenn = 10\n");
        assert_eq!(key, "limits.nick_lenn");
        assert_eq!(line, 6);
        let error = Config::from_toml_str("[limits]\nnick_lenn = 10\n").expect_err("unknown key");
        let text = error.to_string();
        assert!(
            text.starts_with("line 2: unknown key `limits.nick_lenn`"),
            "{text}"
        );
        assert!(
            text.contains("known keys in [limits]: max_clients,"),
            "{text}"
        );
        assert!(text.contains("did you mean `nick_len`?"), "{text}");
    }

    #[test]
    fn unknown_key_at_top_level_names_key_and_line() {
        let (key, line) = unknown("# comment\n\nbogus = 1\n");
        assert_eq!(key, "bogus");
        assert_eq!(line, 3);
        let (key, line) = unknown("[limits]\nnick_len = 9\n\n[limts]\nx = 1\n");
        assert_eq!(key, "limts");
        assert_eq!(line, 4);
        let text = Config::from_toml_str("nick_len = 5\n")
            .expect_err("top-level nick_len is unknown")
            .to_string();
        assert!(
            text.contains("known sections: [server], [listen]"),
            "{text}"
        );
        assert!(text.contains("`nick_len` belongs in [limits]"), "{text}");
    }

    #[test]
    fn unknown_subtable_names_dotted_key() {
        let (key, line) = unknown("[limits]\nnick_len = 9\n[limits.extra]\na = 1\n");
        assert_eq!(key, "limits.extra");
        assert_eq!(line, 3);
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let (key, line, message) = invalid("[limits]\n\nnick_len = \"x\"\n");
        assert_eq!(key, "limits.nick_len");
        assert_eq!(line, 3);
        assert_eq!(
            message,
            "found string \"x\"; expected a whole number, like 30"
        );

        let (key, line, _) = invalid("[flood]\nenabled = \"yes\"\n");
        assert_eq!((key.as_str(), line), ("flood.enabled", 2));

        let (key, line, message) = invalid("[listen]\nplain = \"127.0.0.1:6667\"\n");
        assert_eq!((key.as_str(), line), ("listen.plain", 2));
        assert!(message.contains("a list of strings"), "{message}");

        let (key, line, message) = invalid("\nlimits = 5\n");
        assert_eq!((key.as_str(), line), ("limits", 2));
        assert!(message.contains("[limits] header"), "{message}");

        let (key, line, message) = invalid("[limits]\nmax_clients = -1\n");
        assert_eq!((key.as_str(), line), ("limits.max_clients", 2));
        assert_eq!(
            message,
            "found integer `-1`, which is negative or too large; expected a whole number, like 10000"
        );
    }

    #[test]
    fn wrong_type_inside_list_names_the_list() {
        let (key, line, _) = invalid("[listen]\nplain = [\n  \"127.0.0.1:6667\",\n  7000,\n]\n");
        assert_eq!(key, "listen.plain");
        assert_eq!(line, 4);
    }

    #[test]
    fn bad_listen_address_names_the_element_line() {
        let (key, line, message) =
            invalid("[listen]\nplain = [\n  \"127.0.0.1:6667\",\n  \"abc\",\n]\n");
        assert_eq!(key, "listen.plain");
        assert_eq!(line, 4);
        assert!(
            message.starts_with("\"abc\" is not an address like 127.0.0.1:6667"),
            "{message}"
        );
        let text = Config::from_toml_str("[listen]\nplain = [\"abc\"]\n")
            .expect_err("bad address")
            .to_string();
        assert!(
            text.starts_with("line 2: invalid value for `listen.plain`: \"abc\" is not an address"),
            "{text}"
        );
        let (key, line, _) = invalid("[listen]\nplain = []\ntls = []\n[web]\nlisten = []\n");
        assert_eq!((key.as_str(), line), ("listen.plain", 2));
        let (key, line, _) = invalid("[listen]\ntls = [\"nope\"]\n");
        assert_eq!((key.as_str(), line), ("listen.tls", 2));
        Config::from_toml_str("[listen]\nplain = []\n").expect("TLS alone is enough");
    }

    #[test]
    fn web_section_is_checked() {
        let config = Config::from_toml_str(
            "[web]\nlisten = [\"127.0.0.1:9443\"]\nallowed_origins = [\"https://chat.example.org\", \"*\"]\n",
        )
        .expect("valid web section");
        assert_eq!(config.web.listen, ["127.0.0.1:9443"]);
        assert_eq!(Config::default().web.listen, ["0.0.0.0:8443"]);
        assert!(Config::from_toml_str("[web]\nlisten = []\n")
            .expect("off")
            .web
            .listen
            .is_empty());
        let (key, line, _) =
            invalid("[web]\nlisten = [\n  \"0.0.0.0:8443\",\n  \"web:8443\",\n]\n");
        assert_eq!((key.as_str(), line), ("web.listen", 4));
        let (key, line, message) = invalid("\n[web]\nallowed_origins = [\"chat.example.org\"]\n");
        assert_eq!((key.as_str(), line), ("web.allowed_origins", 3));
        assert!(message.contains("https://chat.example.org"), "{message}");
        let (key, _, _) = invalid("[web]\nallowed_origins = [\"https://a.example/path\"]\n");
        assert_eq!(key, "web.allowed_origins");
    }

    #[test]
    fn web_sessions_have_sane_bounds() {
        let config =
            Config::from_toml_str("[web]\nsession_days = 7\nmax_sessions = 3\n").expect("valid");
        assert_eq!((config.web.session_days, config.web.max_sessions), (7, 3));
        assert_eq!(Config::default().web.session_days, 30);
        for (text, wanted) in [
            ("[web]\nsession_days = 0\n", "web.session_days"),
            ("[web]\nsession_days = 100000\n", "web.session_days"),
            ("[web]\nmax_sessions = 0\n", "web.max_sessions"),
        ] {
            let (key, line, _) = invalid(text);
            assert_eq!((key.as_str(), line), (wanted, 2), "{text}");
        }
    }

    #[test]
    fn environment_overrides_name_the_variable() {
        let vars = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let config = Config::default()
            .with_env(vars(&[
                ("PARLEY_LIMITS__NICK_LEN", "20"),
                ("PARLEY_SERVER__NAME", "irc.example.org"),
                ("PARLEY_LISTEN__TLS", "[]"),
                ("PARLEY_CONFIG_DIR", "/ignored"),
                ("HOME", "/ignored"),
            ]))
            .expect("overrides apply");
        assert_eq!(config.limits.nick_len, 20);
        assert_eq!(config.server.name, "irc.example.org");
        assert!(config.listen.tls.is_empty());
        let err = Config::default()
            .with_env(vars(&[("PARLEY_LIMITS__NICK_LENN", "20")]))
            .expect_err("unknown key");
        assert!(
            err.to_string()
                .starts_with("environment variable PARLEY_LIMITS__NICK_LENN:"),
            "{err}"
        );
        let err = Config::default()
            .with_env(vars(&[("PARLEY_LIMITS__NICK_LEN", "0")]))
            .expect_err("out of range");
        assert!(err.to_string().contains("PARLEY_LIMITS__NICK_LEN"), "{err}");
        let err = Config::default()
            .with_env(vars(&[("PARLEY_LIMITS__NICK_LEN", "lots")]))
            .expect_err("wrong type");
        assert!(err.to_string().starts_with("environment variable"), "{err}");
    }

    #[test]
    fn restart_needed_lists_only_fixed_keys() {
        let old = Config::default();
        let mut new = old.clone();
        new.server.motd = "new motd".into();
        new.operators.admins = vec!["root".into()];
        assert!(old.restart_needed(&new).is_empty());
        new.limits.nick_len = 12;
        new.listen.plain = vec!["127.0.0.1:7000".into()];
        assert_eq!(
            old.restart_needed(&new),
            ["listen.plain", "limits.nick_len"]
        );
        assert!(old.to_commented_toml().contains("Takes effect on reload"));
    }

    #[test]
    fn integers_toml_cannot_print_are_refused() {
        // Found by the config fuzzer: accepted, then --print-config panicked.
        let (key, line, _) = invalid("[history]\nmax_age_days = 18446744073709551615\n");
        assert_eq!((key.as_str(), line), ("history.max_age_days", 2));
        let (key, _, _) = invalid("[limits]\nregistration_timeout_secs = 9223372036854775807\n");
        assert_eq!(key, "limits.registration_timeout_secs");
        let (key, _, _) = invalid("[limits]\nmax_clients = 18446744073709551615\n");
        assert_eq!(key, "limits.max_clients");
    }

    #[test]
    fn acme_settings_are_checked() {
        let config = Config::from_toml_str("[tls]\nacme_domain = \"chat.example.org\"\n")
            .expect("a domain alone is enough");
        assert_eq!(config.tls.acme_directory, LETS_ENCRYPT_DIRECTORY);
        assert_eq!(config.tls.acme_http_listen, ["0.0.0.0:80"]);
        let (key, line, message) = invalid(
            "[tls]\ncert = \"a.pem\"\nkey = \"a.key\"\nacme_domain = \"chat.example.org\"\n",
        );
        assert_eq!((key.as_str(), line), ("tls.acme_domain", 4));
        assert!(
            message.contains("tls.cert") && message.contains("tls.key"),
            "{message}"
        );
        for bad in ["*.example.org", "10.0.0.1", "chat example.org", "-"] {
            let (key, _, message) = invalid(&format!("[tls]\nacme_domain = {bad:?}\n"));
            assert_eq!(key, "tls.acme_domain", "{bad}: {message}");
        }
        let acme = "[tls]\nacme_domain = \"chat.example.org\"\n";
        let (key, line, _) = invalid(&format!("{acme}acme_directory = \"http://ca/dir\"\n"));
        assert_eq!((key.as_str(), line), ("tls.acme_directory", 3));
        let (key, _, _) = invalid(&format!("{acme}acme_email = \"not an email\"\n"));
        assert_eq!(key, "tls.acme_email");
        let (key, _, message) = invalid(&format!("{acme}acme_ca = \"/no/such/ca.pem\"\n"));
        assert_eq!(key, "tls.acme_ca", "{message}");
        let (key, _, _) = invalid(&format!("{acme}acme_http_listen = []\n"));
        assert_eq!(key, "tls.acme_http_listen");
        let (key, line, _) = invalid(&format!("{acme}acme_http_listen = [\"localhost:80\"]\n"));
        assert_eq!((key.as_str(), line), ("tls.acme_http_listen", 3));
        let (key, _, _) = invalid(&format!("{acme}acme_renew_days = 0\n"));
        assert_eq!(key, "tls.acme_renew_days");
        let (key, _, _) = invalid(&format!("[listen]\ntls = []\n[web]\nlisten = []\n{acme}"));
        assert_eq!(key, "tls.acme_domain");
        // Off, the other keys are not looked at.
        Config::from_toml_str("[tls]\nacme_directory = \"nonsense\"\n").expect("unused");
    }

    #[test]
    fn tls_and_accounts_are_checked() {
        let (key, line, _) = invalid("[tls]\ncert = \"server.crt\"\n");
        assert_eq!((key.as_str(), line), ("tls.cert", 2));
        let (key, line, _) = invalid("[accounts]\nmin_password_len = 0\n");
        assert_eq!((key.as_str(), line), ("accounts.min_password_len", 2));
        let (key, line, _) = invalid("[accounts]\nplaintext_login_from = [\"10.0.0.0\"]\n");
        assert_eq!((key.as_str(), line), ("accounts.plaintext_login_from", 2));
        let (key, line, _) = invalid("[accounts]\nmax_failures = 0\n");
        assert_eq!((key.as_str(), line), ("accounts.max_failures", 2));
        let (key, line, message) = invalid("[accounts]\naddress_max_accounts = 1\n");
        assert_eq!((key.as_str(), line), ("accounts.address_max_accounts", 2));
        assert!(message.contains("one account's typos"), "{message}");
        let (key, line, message) = invalid("\n[accounts]\nregistration = \"maybe\"\n");
        assert_eq!((key.as_str(), line), ("accounts.registration", 3));
        assert!(message.contains("maybe"), "{message}");
        let config = Config::from_toml_str("[accounts]\nregistration = \"closed\"\n")
            .expect("closed is a policy");
        assert_eq!(config.accounts.registration, RegistrationPolicy::Closed);
    }

    #[test]
    fn limit_ranges_are_enforced() {
        let cases = [
            ("nick_len = 0", "limits.nick_len"),
            ("nick_len = 65", "limits.nick_len"),
            ("channel_len = 1", "limits.channel_len"),
            ("channel_len = 201", "limits.channel_len"),
            ("send_queue_bytes = 4095", "limits.send_queue_bytes"),
            ("max_clients = 0", "limits.max_clients"),
            ("ping_timeout_secs = 0", "limits.ping_timeout_secs"),
        ];
        for (line_text, expected_key) in cases {
            let (key, line, message) = invalid(&format!("# limits\n[limits]\n{line_text}\n"));
            assert_eq!(key, expected_key, "{line_text}");
            assert_eq!(line, 3, "{line_text}");
            assert!(message.contains("out of range"), "{message}");
        }
        let config = Config::from_toml_str(
            "[limits]\nnick_len = 64\nchannel_len = 2\nsend_queue_bytes = 4096\nwhowas_entries = 0\n",
        );
        // channel_len = 2 is below the default channel's length, so turn that off to test the bounds.
        assert!(config.is_err());
        let config = Config::from_toml_str(
            "[server]\ndefault_channel = \"\"\n[limits]\nnick_len = 64\nchannel_len = 2\nsend_queue_bytes = 4096\nwhowas_entries = 0\n",
        )
        .expect("boundary values are valid");
        assert_eq!(config.limits.send_queue_bytes, 4096);
    }

    #[test]
    fn flood_rate_must_be_positive() {
        for value in ["0.0", "-1.5", "nan", "inf"] {
            let (key, line, _) = invalid(&format!(
                "[flood]\nenabled = true\nlines_per_second = {value}\n"
            ));
            assert_eq!(
                (key.as_str(), line),
                ("flood.lines_per_second", 3),
                "{value}"
            );
        }
        let (key, line, _) = invalid("[flood]\nburst = 0\n");
        assert_eq!((key.as_str(), line), ("flood.burst", 2));
    }

    #[test]
    fn default_channel_rules() {
        for bad in ["lobby", "#", "#a b", "#a,b", "#a\u{7}"] {
            let text = format!(
                "[server]\ndefault_channel = {}\n",
                one_line_value(&toml::Value::String(bad.to_owned()))
            );
            let (key, line, _) = invalid(&text);
            assert_eq!(
                (key.as_str(), line),
                ("server.default_channel", 2),
                "{bad:?}"
            );
        }
        let config = Config::from_toml_str("[server]\ndefault_channel = \"\"\n")
            .expect("empty default channel turns it off");
        assert_eq!(config.server.default_channel, "");
        // Too long for the configured channel_len, which is on another line.
        let (key, line, message) =
            invalid("[server]\ndefault_channel = \"#lobby\"\n[limits]\nchannel_len = 4\n");
        assert_eq!((key.as_str(), line), ("server.default_channel", 2));
        assert!(message.contains("limits.channel_len"), "{message}");
    }

    #[test]
    fn default_channel_modes_and_topic_rules() {
        assert_eq!(
            parse_room_modes("+nt"),
            Ok(RoomModes {
                no_external: true,
                topic_ops_only: true,
                ..RoomModes::default()
            })
        );
        assert_eq!(
            parse_room_modes("mntl 200"),
            Ok(RoomModes {
                moderated: true,
                no_external: true,
                topic_ops_only: true,
                limit: Some(200),
            })
        );
        assert_eq!(parse_room_modes(""), Ok(RoomModes::default()));
        assert_eq!(parse_room_modes("+"), Ok(RoomModes::default()));
        for (bad, says) in [
            ("+int", "+i would refuse"),
            ("+k secret", "+k would refuse"),
            ("+n-t", "takes modes away"),
            ("+nx", "'x' is not a mode"),
            ("+ntl", "+l needs a member limit"),
            ("+ntl 0", "+l needs a member limit"),
            ("+nt 5", "\"5\" follows the modes"),
        ] {
            let text = format!("[server]\nname = \"a\"\ndefault_channel_modes = {bad:?}\n");
            let (key, line, message) = invalid(&text);
            assert_eq!(
                (key.as_str(), line),
                ("server.default_channel_modes", 3),
                "{bad:?}"
            );
            assert!(message.contains(says), "{bad:?}: {message}");
        }
        let (key, line, _) = invalid("[server]\ndefault_channel_topic = \"a\\nb\"\n");
        assert_eq!((key.as_str(), line), ("server.default_channel_topic", 2));
        let (key, line, message) =
            invalid("[server]\ndefault_channel_topic = \"hello\"\n[limits]\ntopic_len = 3\n");
        assert_eq!((key.as_str(), line), ("server.default_channel_topic", 2));
        assert!(message.contains("limits.topic_len"), "{message}");
    }

    #[test]
    fn server_name_and_network_rules() {
        for bad in ["", "irc example", "irc:6667"] {
            let (key, line, _) = invalid(&format!("\n[server]\nname = {bad:?}\n"));
            assert_eq!((key.as_str(), line), ("server.name", 3), "{bad:?}");
        }
        let (key, line, _) = invalid("[server]\nnetwork = \"My Net\"\n");
        assert_eq!((key.as_str(), line), ("server.network", 2));
        let (key, line, _) = invalid("[server]\ndata_dir = \"\"\n");
        assert_eq!((key.as_str(), line), ("server.data_dir", 2));
    }

    #[test]
    fn metrics_listen_is_off_by_default_and_checked() {
        assert!(Config::default().metrics.listen.is_empty());
        let config = Config::from_toml_str("[metrics]\nlisten = [\"127.0.0.1:9100\"]\n")
            .expect("a loopback metrics address is valid");
        assert_eq!(config.metrics.listen, ["127.0.0.1:9100"]);
        let (key, line, message) =
            invalid("[metrics]\nlisten = [\n  \"127.0.0.1:9100\",\n  \"localhost:9100\",\n]\n");
        assert_eq!((key.as_str(), line), ("metrics.listen", 4));
        assert!(message.contains("localhost:9100"), "{message}");
    }

    #[test]
    fn log_level_rules() {
        for good in [
            "trace",
            "DEBUG",
            "warn",
            "off",
            "info,parley_server=debug",
            "parley=trace",
        ] {
            let config = Config::from_toml_str(&format!("[log]\nlevel = {good:?}\n"))
                .expect("valid log level");
            assert_eq!(config.log.level, good);
        }
        for bad in ["verbose", "", "info,loud"] {
            let (key, line, _) = invalid(&format!("[log]\n\nlevel = {bad:?}\n"));
            assert_eq!((key.as_str(), line), ("log.level", 3), "{bad:?}");
        }
    }

    #[test]
    fn invalid_default_value_has_no_line() {
        // A default-valued key that fails only because of another key: the line is that of the key
        // present in the file when there is one, else 0.
        let (key, line, _) = invalid("[limits]\nchannel_len = 3\n");
        assert_eq!((key.as_str(), line), ("server.default_channel", 0));
        let error = Config::from_toml_str("[limits]\nchannel_len = 3\n").expect_err("too long");
        assert!(error
            .to_string()
            .starts_with("invalid value for `server.default_channel`"));

        let mut config = Config::default();
        config.limits.nick_len = 0;
        match config.validate() {
            Err(ConfigError::InvalidValue {
                key,
                line: 0,
                path: None,
                ..
            }) => {
                assert_eq!(key, "limits.nick_len");
            }
            other => panic!("expected InvalidValue, got {other:?}"),
        }
    }

    #[test]
    fn syntax_error_gives_line_and_column() {
        match Config::from_toml_str("[server]\nname = \"ok\"\n[limits\nnick_len = 3\n") {
            Err(ConfigError::Syntax {
                line,
                column,
                path,
                message,
            }) => {
                assert_eq!(line, 3);
                assert_eq!(column, 8);
                assert_eq!(path, None);
                assert!(!message.is_empty());
            }
            other => panic!("expected Syntax, got {other:?}"),
        }
        match Config::from_toml_str("[limits]\nnick_len = 3\nnick_len = 4\n") {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected Syntax for a duplicate key, got {other:?}"),
        }
        match Config::from_toml_str("[server]\nname = \"unterminated\n") {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected Syntax for an open string, got {other:?}"),
        }
        let text = Config::from_toml_str("[limits\n")
            .expect_err("open table header")
            .to_string();
        assert!(
            text.starts_with("line 1, column 8: TOML syntax error: "),
            "{text}"
        );
    }

    #[test]
    fn load_reads_a_file_and_errors_name_it() {
        let dir = std::env::temp_dir().join(format!("parley-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let good = dir.join("good.toml");
        std::fs::write(&good, "[limits]\nnick_len = 12\n").expect("write config");
        let config = Config::load(&good).expect("valid file loads");
        assert_eq!(config.limits.nick_len, 12);

        let bad = dir.join("parley.toml");
        std::fs::write(
            &bad,
            "[server]\nname = \"a\"\n\n\n\n\n[limits]\nnick_lenn = 1\n",
        )
        .expect("write config");
        let error = Config::load(&bad).expect_err("unknown key");
        match &error {
            ConfigError::UnknownKey { path, key, line } => {
                assert_eq!(path.as_deref(), Some(bad.as_path()));
                assert_eq!(key, "limits.nick_lenn");
                assert_eq!(*line, 8);
            }
            other => panic!("expected UnknownKey, got {other:?}"),
        }
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "{}:8: unknown key `limits.nick_lenn` (known keys in [limits]: ",
                bad.display()
            )),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    #[test]
    fn load_of_missing_file_is_io_error_with_path() {
        let missing = std::env::temp_dir().join("parley-config-test-does-not-exist/parley.toml");
        match Config::load(&missing) {
            Err(ConfigError::Io { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        let text = Config::load(&missing).expect_err("missing").to_string();
        assert!(
            text.starts_with(&format!("cannot read config file {}:", missing.display())),
            "{text}"
        );
    }

    #[test]
    fn postgres_store_needs_a_url_and_never_prints_its_password() {
        let (key, line, _) = invalid("[accounts]\nstore = \"postgres\"\n");
        assert_eq!((key.as_str(), line), ("accounts.postgres_url", 0));
        let config = Config::from_toml_str(
            "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://parley:hunter22@127.0.0.1/parley\"\n",
        )
        .expect("valid");
        assert_eq!(config.accounts.store, StoreKind::Postgres);
        let printed = config.to_commented_toml();
        assert!(!printed.contains("hunter22"), "{printed}");
        assert!(
            printed.contains("postgres_url = \"postgres://parley@127.0.0.1/parley\""),
            "{printed}"
        );
    }

    #[test]
    fn postgres_tls_settings_are_checked() {
        let with_url =
            |url: &str| format!("[accounts]\nstore = \"postgres\"\npostgres_url = \"{url}\"\n");
        Config::from_toml_str(&with_url("postgres://p@db.example/d?sslmode=verify-full"))
            .expect("verify-full is a valid sslmode");
        Config::from_toml_str(&with_url("host=db.example user=p sslmode=verify-ca"))
            .expect("so is verify-ca, in key=value form");
        let (key, line, message) = invalid(&with_url("postgres://p@h/d?sslmode=strict"));
        assert_eq!((key.as_str(), line), ("accounts.postgres_url", 3));
        assert!(message.contains("verify-full"), "{message}");
        let (key, _, _) = invalid("[accounts]\npostgres_client_cert = \"/etc/parley/pg.crt\"\n");
        assert_eq!(key, "accounts.postgres_client_cert");
    }

    /// The password stays in the environment: the file alone would be invalid, the file and the
    /// environment together are not, and a bad override is named by its variable.
    #[test]
    fn a_file_is_checked_together_with_the_environment() {
        let text = "[accounts]\nstore = \"postgres\"\n\n[cluster]\nenabled = true\nnode_name = \"n1\"\nnodes = [\"n1\"]\nnats_user = \"n1\"\n";
        let env = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |config: Config| config.apply_env(pairs)
        };
        let config = parse_then(
            text,
            None,
            env(&[
                (
                    "PARLEY_ACCOUNTS__POSTGRES_URL",
                    "postgres://p:pw@127.0.0.1/p",
                ),
                ("PARLEY_CLUSTER__NATS_PASSWORD", "nats-secret"),
            ]),
        )
        .expect("the environment supplies the URL and the NATS password");
        assert_eq!(config.accounts.postgres_url, "postgres://p:pw@127.0.0.1/p");
        assert_eq!(config.cluster.nats_password, "nats-secret");
        assert!(!config.to_commented_toml().contains("nats-secret"));
        match parse_then(text, None, env(&[])) {
            Err(ConfigError::InvalidValue { key, .. }) => assert_eq!(key, "accounts.postgres_url"),
            other => panic!("expected the missing URL, got {other:?}"),
        }
        match parse_then(
            text,
            None,
            env(&[
                ("PARLEY_ACCOUNTS__POSTGRES_URL", "postgres://p@127.0.0.1/p"),
                ("PARLEY_CLUSTER__NATS_PASSWORD", "nats-secret"),
                ("PARLEY_CLUSTER__NODE_NAME", "no spaces allowed"),
            ]),
        ) {
            Err(ConfigError::Env { var, .. }) => assert_eq!(var, "PARLEY_CLUSTER__NODE_NAME"),
            other => panic!("expected the variable named, got {other:?}"),
        }
    }

    #[test]
    fn a_cluster_needs_the_shared_store_and_a_node_name() {
        let (key, _, _) = invalid("[cluster]\nenabled = true\nnode_name = \"n1\"\n");
        assert_eq!(key, "cluster.enabled");
        let (key, line, _) = invalid(
            "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://p@h/d\"\n[cluster]\nenabled = true\n",
        );
        assert_eq!((key.as_str(), line), ("cluster.node_name", 0));
        let (key, line, _) = invalid(
            "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://p@h/d\"\n[cluster]\nenabled = true\nnode_name = \"n1\"\nlease_secs = 1\n",
        );
        assert_eq!((key.as_str(), line), ("cluster.lease_secs", 7));
    }

    const CLUSTER: &str = "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://p@h/d\"\n[cluster]\nenabled = true\nnode_name = \"n1\"\n";

    #[test]
    fn a_cluster_needs_nats_credentials_and_its_nodes_unless_insecure() {
        let (key, _, message) = invalid(CLUSTER);
        assert_eq!(key, "cluster.nats_user");
        assert!(message.contains("cluster.insecure"), "{message}");
        let (key, _, _) = invalid(&format!("{CLUSTER}nats_token = \"t\"\n"));
        assert_eq!(key, "cluster.nodes");
        let (key, _, message) =
            invalid(&format!("{CLUSTER}nats_token = \"t\"\nnodes = [\"n2\"]\n"));
        assert_eq!(key, "cluster.nodes");
        assert!(message.contains("\"n1\""), "{message}");
        let (key, _, _) = invalid(&format!("{CLUSTER}nats_user = \"n1\"\nnodes = [\"n1\"]\n"));
        assert_eq!(key, "cluster.nats_password");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}nats_user = \"n1\"\nnats_password = \"p\"\nnats_token = \"t\"\nnodes = [\"n1\"]\n"
        ));
        assert_eq!(key, "cluster.nats_token");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}nats_token = \"t\"\nnodes = [\"n1\"]\nnats_tls_cert = \"/etc/hostname\"\n"
        ));
        assert_eq!(key, "cluster.nats_tls_key");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}nats_token = \"t\"\nnodes = [\"n1\"]\nnats_tls_ca = \"/no/such/ca.pem\"\n"
        ));
        assert_eq!(key, "cluster.nats_tls_ca");
        let (key, _, message) = invalid(&format!(
            "{CLUSTER}insecure = true\nnats_url = \"nats://u:pw@127.0.0.1:4222\"\n"
        ));
        assert_eq!(key, "cluster.nats_url");
        assert!(
            message.contains("PARLEY_CLUSTER__NATS_PASSWORD"),
            "{message}"
        );
        Config::from_toml_str(&format!("{CLUSTER}insecure = true\n"))
            .expect("insecure is explicit");
        Config::from_toml_str(&format!(
            "{CLUSTER}nats_token = \"t\"\nnodes = [\"n1\", \"n2\"]\n"
        ))
        .expect("a token and the nodes");
    }

    #[test]
    fn an_nkey_or_creds_file_is_one_login_among_the_others() {
        // /etc/hostname stands for a readable seed or .creds file; parleyd reads it at start.
        let seed = "nats_nkey_seed_file = \"/etc/hostname\"\n";
        let creds = "nats_creds_file = \"/etc/hostname\"\n";
        for login in [seed, creds, "nats_nkey_seed = \"SU\"\n"] {
            Config::from_toml_str(&format!("{CLUSTER}{login}nodes = [\"n1\"]\n"))
                .expect("an nkey or .creds login counts as credentials");
        }
        let (key, _, message) = invalid(&format!("{CLUSTER}{seed}{creds}nodes = [\"n1\"]\n"));
        assert_eq!(key, "cluster.nats_creds_file");
        assert!(message.contains("cluster.nats_nkey_seed_file"), "{message}");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}nats_token = \"t\"\n{seed}nodes = [\"n1\"]\n"
        ));
        assert_eq!(key, "cluster.nats_nkey_seed_file");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}{seed}nats_nkey_seed = \"SU\"\nnodes = [\"n1\"]\n"
        ));
        assert_eq!(key, "cluster.nats_nkey_seed");
        let (key, _, message) = invalid(&format!(
            "{CLUSTER}nats_creds_file = \"/no/such/node.creds\"\nnodes = [\"n1\"]\n"
        ));
        assert_eq!(key, "cluster.nats_creds_file");
        assert!(message.contains("/no/such/node.creds"), "{message}");
        // Debug never shows the seed.
        let config = ClusterConfig {
            nats_nkey_seed: "SUsecret-seed".to_owned(),
            ..ClusterConfig::default()
        };
        assert!(!format!("{config:?}").contains("SUsecret"));
    }

    #[test]
    fn a_debug_print_of_the_config_hides_the_database_password() {
        let mut config = Config::default();
        config.accounts.postgres_url = "postgres://parley:Db-Pa55/w0rd@db.example:5432/p".into();
        let printed = format!("{config:?}");
        assert!(!printed.contains("Pa55"), "{printed}");
        assert!(printed.contains("db.example"), "{printed}");
    }

    #[test]
    fn nats_secrets_are_never_printed() {
        let config = Config::from_toml_str(&format!(
            "{CLUSTER}nats_user = \"n1\"\nnats_password = \"hunter22\"\nnodes = [\"n1\"]\n"
        ))
        .expect("valid");
        let printed = config.to_commented_toml();
        assert!(!printed.contains("hunter22"), "{printed}");
        assert!(
            printed.contains("nats_password = \"<hidden>\""),
            "{printed}"
        );
        assert!(!format!("{config:?}").contains("hunter22"));
        let config = Config::from_toml_str(&format!(
            "{CLUSTER}nats_token = \"s3cret-token\"\nnodes = [\"n1\"]\n"
        ))
        .expect("valid");
        assert!(!config.to_commented_toml().contains("s3cret-token"));
    }
}
