//! What the config module's unit tests share: parse a text and take apart the error it must give,
//! and a cluster config that passes everything but the NATS login.

use super::{Config, ConfigError};

pub(super) fn invalid(text: &str) -> (String, usize, String) {
    match Config::from_toml_str(text) {
        Err(ConfigError::InvalidValue {
            key, line, message, ..
        }) => (key, line, message),
        other => panic!("expected InvalidValue for {text:?}, got {other:?}"),
    }
}

pub(super) fn unknown(text: &str) -> (String, usize) {
    match Config::from_toml_str(text) {
        Err(ConfigError::UnknownKey { key, line, .. }) => (key, line),
        other => panic!("expected UnknownKey for {text:?}, got {other:?}"),
    }
}

pub(super) const CLUSTER: &str = "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://p@h/d\"\n[cluster]\nenabled = true\nnode_name = \"n1\"\n";
