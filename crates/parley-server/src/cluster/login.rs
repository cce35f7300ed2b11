//! How a node logs in to NATS with an nkey seed or a `.creds` file (the user and password,
//! token and TLS options are set in `connect_options`). Both files are read and checked here, at
//! start, so a missing, unreadable or mistyped one stops the node with an error naming its key
//! and path; no error or log line ever holds the seed.

use async_nats::ConnectOptions;

use super::ClusterError;
use crate::config::ClusterConfig;

/// `options` with the nkey or `.creds` login of `config`, if it has one.
pub(super) fn apply(
    config: &ClusterConfig,
    mut options: ConnectOptions,
) -> Result<ConnectOptions, ClusterError> {
    if let Some(seed) = nkey_seed(config)? {
        options = options.nkey(seed);
    }
    if !config.nats_creds_file.is_empty() {
        let path = &config.nats_creds_file;
        let text = read_secret("nats_creds_file", path)?;
        // async-nats's parse errors name what is missing, never the file's contents.
        options = options.credentials(&text).map_err(|e| {
            ClusterError::Settings(format!(
                "cluster.nats_creds_file: {path:?} is not a NATS .creds file ({e}); it holds a \
                 user JWT and that user's nkey seed, as `nsc generate creds` writes them"
            ))
        })?;
    }
    Ok(options)
}

/// The node's user seed, from the environment or its file, checked to be one.
fn nkey_seed(config: &ClusterConfig) -> Result<Option<String>, ClusterError> {
    let (key, seed) = if !config.nats_nkey_seed.is_empty() {
        ("nats_nkey_seed", config.nats_nkey_seed.trim().to_owned())
    } else if !config.nats_nkey_seed_file.is_empty() {
        let text = read_secret("nats_nkey_seed_file", &config.nats_nkey_seed_file)?;
        ("nats_nkey_seed_file", text.trim().to_owned())
    } else {
        return Ok(None);
    };
    let is_user_seed = nkeys::KeyPair::from_seed(&seed)
        .is_ok_and(|pair| matches!(pair.key_pair_type(), nkeys::KeyPairType::User));
    if !is_user_seed {
        let origin = match key {
            "nats_nkey_seed" => "PARLEY_CLUSTER__NATS_NKEY_SEED".to_owned(),
            _ => format!("{:?}", config.nats_nkey_seed_file),
        };
        return Err(ClusterError::Settings(format!(
            "cluster.{key}: {origin} does not hold a NATS user nkey seed (one line starting \
             with SU, as `nk -gen user` prints it)"
        )));
    }
    Ok(Some(seed))
}

/// The text of a secret file; a warning if others than its owner may read it (as ssh does).
fn read_secret(key: &str, path: &str) -> Result<String, ClusterError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClusterError::Settings(format!("cluster.{key}: cannot read {path:?}: {e}")))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "cluster.{key}: {path:?} may be read by other users than its owner; it holds \
                     this node's NATS secret: chmod 600 it"
                );
            }
        }
    }
    Ok(text)
}
