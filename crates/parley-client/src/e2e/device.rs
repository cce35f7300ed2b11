//! This install's Olm device for one (server, account): a vodozemac `Account` pickled as JSON to
//! `<config dir>/e2e/<server>/<account>.device`, written to a temporary file with mode 0600 and
//! renamed over the old one (so a crash never leaves half a key), in a directory made 0700.
//! The private keys never leave this file; the server gets only the public keys.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use vodozemac::olm::{Account, AccountPickle};

use super::E2eError;

/// One-time keys kept published on the server.
pub const PUBLISHED_OTKS: usize = 50;
/// One-time keys per `KEYS OTK` line: 10 keys of 44 bytes fit the 512-byte line.
pub const OTKS_PER_LINE: usize = 10;

/// The device: keys and where they are saved.
pub struct Device {
    account: Account,
    path: PathBuf,
}

/// A file name from a server- or user-given name: letters, digits, `-`, `_` and `.` as they
/// are, anything else (a `/`, `..`) as hex, so no name can leave the directory.
pub fn safe_name(name: &str) -> String {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if plain {
        name.to_string()
    } else {
        let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x-{hex}")
    }
}

/// Makes `dir` (and its parents) with mode 0700.
pub fn private_dir(dir: &Path) -> Result<(), E2eError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| E2eError::io(dir, e))
}

/// Writes `bytes` to `path` through a 0600 temporary file and a rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), E2eError> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(|e| E2eError::io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| E2eError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| E2eError::io(path, e))
}

impl Device {
    /// Loads the device of `account` from `dir`, or makes a new one (saved at once).
    /// Returns whether it is new.
    pub fn open(dir: &Path, account: &str) -> Result<(Device, bool), E2eError> {
        private_dir(dir)?;
        let path = dir.join(format!("{}.device", safe_name(account)));
        match fs::read(&path) {
            Ok(bytes) => {
                let pickle: AccountPickle = serde_json::from_slice(&bytes)
                    .map_err(|e| E2eError::Corrupt(path.clone(), e.to_string()))?;
                let device = Device {
                    account: Account::from_pickle(pickle),
                    path,
                };
                Ok((device, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let device = Device {
                    account: Account::new(),
                    path,
                };
                device.save()?;
                Ok((device, true))
            }
            Err(e) => Err(E2eError::io(&path, e)),
        }
    }

    /// Saves the keys (after every change: a one-time key used, keys published).
    pub fn save(&self) -> Result<(), E2eError> {
        let json = serde_json::to_vec(&self.account.pickle())
            .map_err(|e| E2eError::Corrupt(self.path.clone(), e.to_string()))?;
        write_private(&self.path, &json)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device's name on the wire: its Curve25519 identity key.
    pub fn curve(&self) -> String {
        self.account.curve25519_key().to_base64()
    }

    pub fn ed25519(&self) -> String {
        self.account.ed25519_key().to_base64()
    }

    /// The signature `KEYS UPLOAD` carries: over `parley-e2e-device:<account>:<curve>`.
    pub fn upload_signature(&self, account: &str) -> String {
        self.account
            .sign(device_statement(account, &self.curve()))
            .to_base64()
    }

    /// New one-time keys so that `published` becomes [`PUBLISHED_OTKS`], marked published.
    pub fn top_up(&mut self, published: usize) -> Vec<String> {
        let wanted = PUBLISHED_OTKS.saturating_sub(published);
        if wanted == 0 {
            return Vec::new();
        }
        let keys = self.account.generate_one_time_keys(wanted);
        self.account.mark_keys_as_published();
        keys.created.iter().map(|k| k.to_base64()).collect()
    }

    /// A fresh fallback key (the previous one still works for sessions in flight), marked
    /// published.
    pub fn rotate_fallback(&mut self) -> Option<String> {
        self.account.generate_fallback_key();
        let key = self
            .account
            .fallback_key()
            .values()
            .next()
            .map(|k| k.to_base64());
        self.account.mark_keys_as_published();
        key
    }

    pub(super) fn account(&self) -> &Account {
        &self.account
    }

    pub(super) fn account_mut(&mut self) -> &mut Account {
        &mut self.account
    }
}

/// What a device signs to bind its keys to an account.
pub fn device_statement(account: &str, curve: &str) -> String {
    format!("parley-e2e-device:{account}:{curve}")
}

/// Whether `sig` is `ed25519`'s signature of `curve` for `account`.
pub fn verify_device(account: &str, curve: &str, ed25519: &str, sig: &str) -> bool {
    let (Ok(key), Ok(signature)) = (
        vodozemac::Ed25519PublicKey::from_base64(ed25519),
        vodozemac::Ed25519Signature::from_base64(sig),
    ) else {
        return false;
    };
    key.verify(device_statement(account, curve).as_bytes(), &signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_file_is_private_and_reloads() -> Result<(), E2eError> {
        let tmp = tempfile::tempdir().map_err(|e| E2eError::io(Path::new("tmp"), e))?;
        let dir = tmp.path().join("e2e").join("server");
        let (mut device, new) = Device::open(&dir, "alice")?;
        assert!(new);
        let keys = device.top_up(0);
        assert_eq!(keys.len(), PUBLISHED_OTKS);
        assert!(device.top_up(PUBLISHED_OTKS).is_empty());
        device.save()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).map(|m| m.permissions().mode() & 0o777).ok();
            assert_eq!(mode(device.path()), Some(0o600));
            assert_eq!(mode(&dir), Some(0o700));
        }
        let (again, new) = Device::open(&dir, "alice")?;
        assert!(!new);
        assert_eq!(again.curve(), device.curve());
        let sig = device.upload_signature("alice");
        assert!(verify_device(
            "alice",
            &device.curve(),
            &device.ed25519(),
            &sig
        ));
        assert!(!verify_device(
            "bob",
            &device.curve(),
            &device.ed25519(),
            &sig
        ));
        assert!(!verify_device(
            "alice",
            &device.curve(),
            &device.ed25519(),
            "x"
        ));
        Ok(())
    }

    #[test]
    fn names_cannot_escape_the_directory() {
        assert_eq!(safe_name("alice"), "alice");
        assert_eq!(safe_name("../x"), "x-2e2e2f78");
        assert_eq!(safe_name(""), "x-");
        assert!(!safe_name("a/b").contains('/'));
    }
}
