//! Where persistent data lives when the config does not say: the platform's data directory, so
//! every `parleyd` a user runs (the server, `users add`, `cert show`) finds the same database and
//! certificate wherever it is started from. A relative default (`./parley`) once made each
//! working directory a new, empty install with its own certificate.
//!
//! Under systemd with `StateDirectory=` that is `$STATE_DIRECTORY`; otherwise the user's data
//! directory (`$XDG_DATA_HOME/parley`, usually `~/.local/share/parley`, on Linux).

use std::io;
use std::path::{Path, PathBuf};

/// The data directory used when `server.data_dir` is not set.
pub fn platform_default() -> PathBuf {
    // systemd passes one absolute path per StateDirectory= entry, separated by ':'.
    if let Some(state) = std::env::var_os("STATE_DIRECTORY") {
        let state = state.to_string_lossy().into_owned();
        if let Some(first) = state.split(':').find(|p| Path::new(p).is_absolute()) {
            return PathBuf::from(first);
        }
    }
    match directories::ProjectDirs::from("", "", "parley") {
        Some(dirs) => dirs.data_dir().to_path_buf(),
        // No home directory at all (a bare container): the working directory is all there is.
        None => PathBuf::from("parley"),
    }
}

/// `dir` as an absolute path (against the working directory), so what is printed and used is
/// the same whichever directory a later step runs in. Symlinks are kept as given.
pub fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Create `dir` (and its parents) if it is missing, readable by its owner only: it holds the
/// database and the TLS key. Returns whether it was created.
pub fn create(dir: &Path) -> io::Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_says_whether_it_made_the_directory() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a/b");
        assert!(create(&dir).expect("create"));
        assert!(dir.is_dir());
        assert!(!create(&dir).expect("exists"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "only the owner may look inside");
        }
    }

    #[test]
    fn absolute_resolves_against_the_working_directory() {
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(absolute(Path::new("data")), cwd.join("data"));
        assert_eq!(
            absolute(Path::new("/srv/parley")),
            PathBuf::from("/srv/parley")
        );
    }
}
