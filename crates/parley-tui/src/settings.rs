//! What `parley` remembers between runs: the last server and username and the colour theme, in
//! `config.toml` in the user's config directory, next to the `known_servers` file. Never the password: it is typed
//! (or piped with --password-stdin) every time.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::theme::ThemeName;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Settings {
    pub server: Option<String>,
    pub user: Option<String>,
    pub tls: Option<bool>,
    /// `dark` or `light`; set with `--theme`, kept until the next `--theme`.
    pub theme: Option<ThemeName>,
}

/// Shared with the desktop client, so both use the same `known_servers`.
pub use parley_client::paths::{config_dir, known_servers_path};

impl Settings {
    /// Loads the settings; a missing file gives the defaults, a broken one an error naming it.
    pub fn load(dir: &Path) -> anyhow::Result<Settings> {
        let path = dir.join("config.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!(
                    "{} is not a valid parley config; fix or delete it",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("config.toml");
        let text = toml::to_string(self).context("cannot serialize the settings")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_without_password() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(
            Settings::load(dir.path()).expect("missing is fine"),
            Settings::default()
        );
        let settings = Settings {
            server: Some("chat.example:6697".into()),
            user: Some("alice".into()),
            tls: Some(true),
            theme: Some(ThemeName::Light),
        };
        settings.save(dir.path()).expect("saved");
        assert_eq!(Settings::load(dir.path()).expect("loaded"), settings);
        let text = std::fs::read_to_string(dir.path().join("config.toml")).expect("file");
        assert!(!text.contains("password"));
        assert!(text.contains("theme = \"light\""), "{text}");
        std::fs::write(dir.path().join("config.toml"), "server = [").expect("write");
        let error = format!("{:#}", Settings::load(dir.path()).expect_err("broken"));
        assert!(error.contains("config.toml"), "{error}");
    }
}
