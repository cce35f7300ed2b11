//! Where Parley's clients keep their files, shared by the terminal and the desktop client so a
//! certificate trusted in one is trusted in the other: one config directory
//! (`$PARLEY_CONFIG_DIR`, else the platform's, `~/.config/parley` on Linux) holding each
//! client's settings and the common `known_servers` file.

use std::path::PathBuf;

/// The config directory: `$PARLEY_CONFIG_DIR`, else the platform's (`~/.config/parley`).
pub fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PARLEY_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "parley").map(|dirs| dirs.config_dir().to_path_buf())
}

/// The fingerprints of certificates the user accepted, one server per line.
pub fn known_servers_path() -> Option<PathBuf> {
    config_dir().map(|dir| dir.join("known_servers"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_servers_lives_in_the_config_dir() {
        if let (Some(dir), Some(known)) = (config_dir(), known_servers_path()) {
            assert_eq!(known, dir.join("known_servers"));
        }
    }
}
