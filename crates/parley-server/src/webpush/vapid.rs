//! The server's VAPID identity (RFC 8292): one ECDSA P-256 key, made on first start in the
//! data directory (PKCS#8 PEM, owner-only) and loaded after, whose public half is the
//! `draft/webpush` capability's `vapid=` value. Browsers bind a subscription to that key, so it
//! must outlive restarts; a file that does not hold one is a startup error naming it, never
//! silently replaced (that would orphan every subscription). Signing is ring's.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

/// The key's file in the data directory.
pub const KEY_FILE: &str = "webpush_vapid.pem";

const PEM_LABEL: &str = "PRIVATE KEY";

/// How long a VAPID token is good for: RFC 8292 section 2 allows at most 24 hours.
const TOKEN_LIFETIME_SECS: i64 = 12 * 60 * 60;

#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    #[error("the web push key {}: {reason}", .path.display())]
    File { path: PathBuf, reason: String },
    #[error("cannot sign a web push token")]
    Sign,
}

/// The VAPID key pair.
pub struct Vapid {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The uncompressed public point, URL-safe base64 without padding (what browsers take as
    /// `applicationServerKey` and what the `k=` parameter carries).
    public: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// Read `<data_dir>/webpush_vapid.pem`, or make it when there is none: written to a
    /// temporary file and linked into place, so a crash or a second process never leaves half
    /// a key or a second one.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, VapidError> {
        let path = data_dir.join(KEY_FILE);
        let fail = |reason: String| VapidError::File {
            path: path.clone(),
            reason,
        };
        if let Some(vapid) = Self::read(&path)? {
            return Ok(vapid);
        }
        crate::data_dir::create(data_dir)
            .map_err(|error| fail(format!("cannot create its directory: {error}")))?;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| fail("no OS random source to make it".to_owned()))?;
        let pem = to_pem(pkcs8.as_ref());
        let temporary = data_dir.join(format!("{KEY_FILE}.{}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temporary).and_then(|mut file| {
            file.write_all(pem.as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, &path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                tracing::info!(path = %path.display(), "web push: made a new VAPID key");
            }
            // Another process made it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(fail(format!("cannot write it: {error}"))),
        }
        Self::read(&path)?.ok_or_else(|| fail("it vanished while being created".to_owned()))
    }

    fn read(path: &Path) -> Result<Option<Self>, VapidError> {
        let fail = |reason: String| VapidError::File {
            path: path.to_path_buf(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(fail(format!("{error}; check its permissions"))),
        };
        let broken = |why: &str| {
            fail(format!(
                "{why}; restore it from a backup (browsers subscribed with it stop getting \
                 pushes otherwise), or move it aside and restart to make a new one"
            ))
        };
        let der = from_pem(&text).ok_or_else(|| broken("it is not a PEM \"PRIVATE KEY\""))?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|_| broken("it does not hold an ECDSA P-256 key"))?;
        let public = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
        Ok(Some(Vapid { key, rng, public }))
    }

    /// The public key, URL-safe base64 (the `vapid=` capability value).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `audience` (the push resource's origin,
    /// `https://host[:port]`): `vapid t=<JWT>, k=<public key>` (RFC 8292 section 3), the JWT
    /// signed with ES256 and good for 12 hours.
    pub fn authorization(
        &self,
        audience: &str,
        contact: &str,
        now_secs: i64,
    ) -> Result<String, VapidError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let mut claims = serde_json::json!({
            "aud": audience,
            "exp": now_secs + TOKEN_LIFETIME_SECS,
        });
        if !contact.is_empty() {
            claims["sub"] = serde_json::Value::String(contact.to_owned());
        }
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| VapidError::Sign)?;
        let signature = URL_SAFE_NO_PAD.encode(signature.as_ref());
        Ok(format!(
            "vapid t={signing_input}.{signature}, k={}",
            self.public
        ))
    }
}

fn to_pem(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    pem
}

fn from_pem(text: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {PEM_LABEL}-----");
    let end = format!("-----END {PEM_LABEL}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_owner_only_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Vapid::load_or_create(dir.path()).expect("made");
        let again = Vapid::load_or_create(dir.path()).expect("loaded");
        assert_eq!(first.public_key(), again.public_key());
        // An uncompressed P-256 point: 65 bytes.
        let point = URL_SAFE_NO_PAD.decode(first.public_key()).expect("base64");
        assert_eq!((point.len(), point[0]), (65, 4));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "only the owner may read the key");
        }
    }

    #[test]
    fn a_broken_file_is_an_error_naming_it_and_left_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "not a key").expect("write");
        let error = Vapid::load_or_create(dir.path()).expect_err("refused");
        assert!(error.to_string().contains(KEY_FILE), "{error}");
        assert_eq!(std::fs::read_to_string(&path).expect("kept"), "not a key");
    }

    #[test]
    fn the_token_verifies_with_the_public_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let vapid = Vapid::load_or_create(dir.path()).expect("made");
        let header = vapid
            .authorization("https://push.example", "mailto:a@example.org", 1000)
            .expect("signed");
        let token = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split(", k=").next())
            .expect("t=");
        let (input, signature) = token.rsplit_once('.').expect("three parts");
        let public = URL_SAFE_NO_PAD.decode(vapid.public_key()).expect("key");
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public)
            .verify(
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(signature).expect("sig"),
            )
            .expect("verifies");
        let claims = input.split('.').nth(1).expect("claims");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], 1000 + TOKEN_LIFETIME_SECS);
        assert_eq!(claims["sub"], "mailto:a@example.org");
    }
}
