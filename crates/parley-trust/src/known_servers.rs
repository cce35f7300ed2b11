//! The known_servers file: certificates a user chose to trust on first use, like SSH's
//! known_hosts. One `host:port FINGERPRINT` per line, `#` comments kept as written. It is
//! rewritten whole through a temporary file and a rename, so a crash never leaves half a file,
//! and created readable by its owner only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Fingerprint, TrustError};

const HEADER: &str = "\
# Parley known servers: the certificates you chose to trust, one `host:port SHA-256` per line.
# A server whose certificate changes is refused; remove its line here to trust it again.
";

/// A stored entry: the fingerprint trusted for a server and where it is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownEntry {
    pub fingerprint: Fingerprint,
    /// 1-based line number in the file.
    pub line: usize,
}

/// The parsed known_servers file.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
    lines: Vec<Line>,
}

#[derive(Debug, Clone)]
enum Line {
    Entry {
        server: String,
        fingerprint: Fingerprint,
    },
    Verbatim(String),
}

impl KnownServers {
    /// Reads the file; a missing file is an empty list (it is created on the first `trust`).
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, TrustError> {
        let path = path.into();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(TrustError::File { path, source }),
        };
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                lines.push(Line::Verbatim(raw.to_string()));
                continue;
            }
            let bad = |reason: String| TrustError::BadKnownServers {
                path: path.clone(),
                line: index + 1,
                reason,
            };
            let mut fields = content.split_whitespace();
            let (Some(server), Some(fingerprint), None) =
                (fields.next(), fields.next(), fields.next())
            else {
                return Err(bad("expected two fields".to_string()));
            };
            if !is_server_key(server) {
                return Err(bad(format!("{server:?} is not host:port")));
            }
            let fingerprint = Fingerprint::parse(fingerprint).map_err(|e| bad(e.to_string()))?;
            lines.push(Line::Entry {
                server: server.to_ascii_lowercase(),
                fingerprint,
            });
        }
        Ok(KnownServers { path, lines })
    }

    /// The file this list was read from and is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint trusted for `server` (`host:port`, as made by [`server_key`]).
    pub fn get(&self, server: &str) -> Option<KnownEntry> {
        self.lines
            .iter()
            .enumerate()
            .find_map(|(index, line)| match line {
                Line::Entry {
                    server: s,
                    fingerprint,
                } if s.eq_ignore_ascii_case(server) => Some(KnownEntry {
                    fingerprint: *fingerprint,
                    line: index + 1,
                }),
                _ => None,
            })
    }

    /// Trusts `fingerprint` for `server`, replacing any previous entry, and saves the file.
    /// Call it only after the user explicitly agreed.
    pub fn trust(&mut self, server: &str, fingerprint: Fingerprint) -> Result<(), TrustError> {
        let server = server.to_ascii_lowercase();
        if !is_server_key(&server) {
            return Err(TrustError::BadKnownServers {
                path: self.path.clone(),
                line: self.lines.len() + 1,
                reason: format!("{server:?} is not host:port"),
            });
        }
        let entry = Line::Entry {
            server: server.clone(),
            fingerprint,
        };
        match self
            .lines
            .iter_mut()
            .find(|line| matches!(line, Line::Entry { server: s, .. } if *s == server))
        {
            Some(line) => *line = entry,
            None => {
                if self.lines.is_empty() {
                    self.lines = HEADER.lines().map(|l| Line::Verbatim(l.into())).collect();
                }
                self.lines.push(entry);
            }
        }
        self.save()
    }

    fn save(&self) -> Result<(), TrustError> {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Entry {
                    server,
                    fingerprint,
                } => text.push_str(&format!("{server} {fingerprint}")),
                Line::Verbatim(raw) => text.push_str(raw),
            }
            text.push('\n');
        }
        let file_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrustError::File { path, source }
        };
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(file_error(&dir))?;
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        let temp = dir.join(name);
        let written = (|| {
            let mut file = open_private(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })();
        if let Err(source) = written.and_then(|()| fs::rename(&temp, &self.path)) {
            let _ = fs::remove_file(&temp);
            return Err(TrustError::File {
                path: self.path.clone(),
                source,
            });
        }
        Ok(())
    }
}

/// The known_servers key of a server: `host:port`, lowercase, IPv6 literals in brackets.
pub fn server_key(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.contains(':') {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    } else {
        format!("{}:{port}", host.to_ascii_lowercase())
    }
}

fn is_server_key(key: &str) -> bool {
    match key.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<fs::File> {
    fs::File::create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(seed: &[u8]) -> Fingerprint {
        Fingerprint::of(seed)
    }

    #[test]
    fn trust_creates_a_private_file_that_loads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub/known_servers");
        let mut known = KnownServers::load(&path).expect("missing file is empty");
        assert_eq!(known.get("irc.example:6697"), None);
        known.trust("IRC.example:6697", fp(b"a")).expect("saved");
        known.trust("other.example:6697", fp(b"b")).expect("saved");

        let again = KnownServers::load(&path).expect("reloads");
        let entry = again.get("irc.example:6697").expect("stored");
        assert_eq!(entry.fingerprint, fp(b"a"));
        let text = fs::read_to_string(&path).expect("readable");
        assert_eq!(
            text.lines().nth(entry.line - 1),
            Some(format!("irc.example:6697 {}", fp(b"a")).as_str())
        );
        assert!(text.starts_with("# Parley known servers"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn trust_replaces_an_entry_and_keeps_comments() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("known_servers");
        fs::write(
            &path,
            format!("# mine\n\nirc.example:6697 {}\n# tail\n", fp(b"old")),
        )
        .expect("write");
        let mut known = KnownServers::load(&path).expect("loads");
        assert_eq!(known.get("irc.example:6697").map(|e| e.line), Some(3));
        known.trust("irc.example:6697", fp(b"new")).expect("saved");
        let text = fs::read_to_string(&path).expect("readable");
        assert_eq!(
            text,
            format!("# mine\n\nirc.example:6697 {}\n# tail\n", fp(b"new"))
        );
    }

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("known_servers");
        fs::write(&path, "# c\nirc.example:6697 nothex\n").expect("write");
        let err = KnownServers::load(&path).expect_err("bad line");
        assert!(
            matches!(err, TrustError::BadKnownServers { line: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("line 2"), "{err}");
        fs::write(&path, format!("irc.example {}\n", fp(b"x"))).expect("write");
        assert!(
            KnownServers::load(&path).is_err(),
            "a key without a port is refused"
        );
    }

    #[test]
    fn server_keys_bracket_ipv6() {
        assert_eq!(server_key("IRC.Example", 6697), "irc.example:6697");
        assert_eq!(server_key("::1", 6697), "[::1]:6697");
        assert_eq!(server_key("[::1]", 6697), "[::1]:6697");
        assert!(is_server_key("[::1]:6697"));
        assert!(!is_server_key("irc.example:port"));
    }
}
