//! What `parley-gui` remembers between runs, in `gui.toml` in the config directory shared with
//! the terminal client (beside `known_servers`): the last server, port, TLS choice and username,
//! the theme, the font size, whether to notify and whether to tell others while typing. Never
//! the password, which has no field here, so it cannot be written by mistake.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The file name inside the config directory.
pub const FILE_NAME: &str = "gui.toml";
pub const DEFAULT_FONT_SIZE: f32 = 14.0;
pub const MIN_FONT_SIZE: f32 = 10.0;
pub const MAX_FONT_SIZE: f32 = 28.0;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Follow the desktop's light or dark preference.
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub fn label(self) -> &'static str {
        match self {
            Theme::System => "System",
            Theme::Light => "Light",
            Theme::Dark => "Dark",
        }
    }

    pub fn preference(self) -> eframe::egui::ThemePreference {
        match self {
            Theme::System => eframe::egui::ThemePreference::System,
            Theme::Light => eframe::egui::ThemePreference::Light,
            Theme::Dark => eframe::egui::ThemePreference::Dark,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: String,
    pub port: u16,
    pub tls: bool,
    pub user: String,
    pub theme: Theme,
    pub font_size: f32,
    /// Desktop notifications on a mention or private message.
    pub notifications: bool,
    /// Tell the others in a conversation while you type (`+typing`); off for privacy.
    pub typing_notices: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: "localhost".to_string(),
            port: 6697,
            tls: true,
            user: String::new(),
            theme: Theme::System,
            font_size: DEFAULT_FONT_SIZE,
            notifications: true,
            typing_notices: true,
        }
    }
}

impl Settings {
    /// Loads the settings; a missing file gives the defaults, a broken one an error naming it.
    pub fn load(dir: &Path) -> anyhow::Result<Settings> {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut settings: Settings = toml::from_str(&text).with_context(|| {
                    format!(
                        "{} is not a valid parley-gui settings file; fix or delete it",
                        path.display()
                    )
                })?;
                settings.font_size = clamp_font_size(settings.font_size);
                Ok(settings)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let text = toml::to_string(self).context("cannot serialize the settings")?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Font sizes outside the slider's range (a hand-edited file) are pulled back into it.
pub fn clamp_font_size(size: f32) -> f32 {
    if size.is_finite() {
        size.clamp(MIN_FONT_SIZE, MAX_FONT_SIZE)
    } else {
        DEFAULT_FONT_SIZE
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
            server: "chat.example".into(),
            port: 7000,
            tls: false,
            user: "alice".into(),
            theme: Theme::Dark,
            font_size: 18.0,
            notifications: false,
            typing_notices: false,
        };
        settings.save(dir.path()).expect("saved");
        assert_eq!(Settings::load(dir.path()).expect("loaded"), settings);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).expect("file");
        assert!(!text.contains("password"), "{text}");
        assert!(text.contains("theme = \"dark\""), "{text}");
    }

    #[test]
    fn broken_or_odd_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE_NAME), "font_size = 300.0\n").expect("write");
        let settings = Settings::load(dir.path()).expect("partial file is fine");
        assert_eq!(settings.font_size, MAX_FONT_SIZE);
        assert_eq!(settings.port, 6697);
        std::fs::write(dir.path().join(FILE_NAME), "theme = [").expect("write");
        let error = format!("{:#}", Settings::load(dir.path()).expect_err("broken"));
        assert!(error.contains(FILE_NAME), "{error}");
    }
}
