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

/// The directory of this install's E2E device files for one server (`e2e/<host>-<port>`):
/// one device (and its local store) per account there.
pub fn e2e_dir(host: &str, port: u16) -> Option<PathBuf> {
    let server = crate::e2e::device::safe_name(&format!("{host}-{port}"));
    config_dir().map(|dir| dir.join("e2e").join(server))
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
