//! Environment overrides: `PARLEY_SECTION__KEY=value` laid over the file (or the defaults) before
//! the check, so a secret can stay out of the file. An error names the variable, not a line.

use super::docs::KEY_DOCS;
use super::load::unknown_key_hint;
use super::{Config, ConfigError};

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
    pub(super) fn apply_env<I: IntoIterator<Item = (String, String)>>(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::parse_then;

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
}
