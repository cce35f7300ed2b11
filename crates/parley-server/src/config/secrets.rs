//! Where the config's secrets are kept out of sight: the hand-written `Debug` of `[accounts]` and
//! `[cluster]`, and the copy of a config `--print-config` prints. Every field holding a secret is
//! named here, so a new one has one place to be hidden in; connection strings go through
//! [`redact_url`], which keeps the parts known to be harmless.

use super::{redact_url, AccountsConfig, ClusterConfig, Config};

/// What `--print-config` shows instead of a NATS password or token that is set.
pub const HIDDEN: &str = "<hidden>";

/// By hand, so a debug print of the config never shows the database password in `postgres_url`.
impl std::fmt::Debug for AccountsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountsConfig")
            .field("require_login", &self.require_login)
            .field("registration", &self.registration)
            .field("register_before_connect", &self.register_before_connect)
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
            .field("multiclient", &self.multiclient)
            .field("max_sessions", &self.max_sessions)
            .field("always_on", &self.always_on)
            .field("always_on_away", &self.always_on_away)
            .field("replay_limit", &self.replay_limit)
            .field("always_on_limit", &self.always_on_limit)
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

impl Config {
    /// A copy fit to print: connection strings without their secrets, and every password, token
    /// and seed that is set shown as [`HIDDEN`].
    pub(super) fn without_secrets(&self) -> Config {
        let mut printable = self.clone();
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
        // An operator's hash can be attacked offline: a printout says only that one is set.
        for block in &mut printable.operators.opers {
            block.password_hash = HIDDEN.to_owned();
        }
        printable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::CLUSTER;

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

    #[test]
    fn every_secret_is_hidden_from_both_prints_and_an_unset_one_stays_empty() {
        let mut config = Config::default();
        config.accounts.postgres_url = "postgres://parley:pg-secret@db.example/p".into();
        config.cluster.nats_url = "nats://nats-token@nats.example:4222".into();
        config.cluster.nats_password = "nats-password".into();
        config.cluster.nats_token = "nats-token".into();
        config.cluster.nats_nkey_seed = "SUnkey-seed".into();
        for printed in [config.to_commented_toml(), format!("{config:?}")] {
            for secret in ["pg-secret", "nats-token", "nats-password", "SUnkey-seed"] {
                assert!(!printed.contains(secret), "{secret} in {printed}");
            }
        }
        let printable = config.without_secrets();
        assert_eq!(
            printable.accounts.postgres_url,
            "postgres://parley@db.example/p"
        );
        assert_eq!(printable.cluster.nats_url, "nats://nats.example:4222");
        for shown in [
            &printable.cluster.nats_password,
            &printable.cluster.nats_token,
            &printable.cluster.nats_nkey_seed,
        ] {
            assert_eq!(shown, HIDDEN);
        }
        // An unset secret is shown as unset, not as one that is hidden.
        assert_eq!(Config::default().without_secrets(), Config::default());
    }
}
