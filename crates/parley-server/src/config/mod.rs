//! The `parleyd` configuration: TOML file, defaults and validation.
//!
//! Every key is optional and falls back to a sane default, so a config file only says what differs. The
//! file is parsed once into a spanned document so that every error (syntax, unknown key, wrong type,
//! failed validation) names the dotted key and its line, and says what would be accepted instead.
//!
//! How the pieces fit: each section's struct and defaults live in a file of their own (`server.rs`,
//! `limits.rs`, `tls.rs`, `accounts.rs`, `history.rs`, `operators.rs`, `web.rs`, `cluster.rs`).
//! Loading goes load -> env -> check: `load.rs` parses the file into a spanned document and a
//! `Config`, `env.rs` lays the `PARLEY_SECTION__KEY` overrides over that `Config`, and `check.rs`
//! applies the rules types cannot express; a failure is traced back through the document to its
//! key's line, or to its variable. The server builds
//! [`Config::effective`] at start and again on a live reload (SIGHUP or REHASH), where `reload.rs`
//! says which changed keys apply at once and which wait for a restart. `docs.rs` holds a comment
//! for every key and writes the commented config (`--print-config`); `secrets.rs` and `redact.rs`
//! keep passwords, tokens and seeds out of it and out of debug prints. `postgres_url.rs` reads
//! `accounts.postgres_url` for the check and for the store, which imports it from here: config is
//! at the bottom of the crate and imports nothing from it but `data_dir`.

mod accounts;
mod check;
mod cluster;
mod docs;
mod env;
mod history;
mod limits;
mod load;
mod operators;
pub mod postgres_url;
mod redact;
mod reload;
mod search;
mod secrets;
mod server;
#[cfg(test)]
mod testing;
mod tls;
mod web;
mod webpush;

use serde::{Deserialize, Serialize};

pub use accounts::{AccountsConfig, AlwaysOnPolicy, RegistrationPolicy, StoreKind};
pub use cluster::ClusterConfig;
pub use env::ENV_PREFIX;
pub use history::HistoryConfig;
pub use limits::{FloodConfig, LimitsConfig};
pub use load::ConfigError;
pub use operators::{
    argon2id_problem, BroadcastPolicy, OperBlock, OperBlockClass, OperatorsConfig,
    OPERATOR_PERMISSIONS,
};
pub use redact::redact_url;
pub use reload::RELOADABLE;
pub use search::SearchConfig;
pub use secrets::HIDDEN;
pub use server::{parse_room_modes, ListenConfig, LogConfig, RoomModes, ServerConfig};
pub use tls::{TlsConfig, LETS_ENCRYPT_DIRECTORY};
pub use web::{MetricsConfig, WebConfig};
pub use webpush::{PushWhen, WebPushConfig};

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
    pub search: SearchConfig,
    pub operators: OperatorsConfig,
    pub metrics: MetricsConfig,
    pub web: WebConfig,
    pub webpush: WebPushConfig,
    pub cluster: ClusterConfig,
    pub log: LogConfig,
}
