//! Server-side TLS: the certificate the TLS listeners present, loaded from the configured PEM files
//! or generated once (self-signed) into the data directory, and swapped in place on reload.
//!
//! One rustls `ServerConfig` serves every connection; its certificate resolver holds the current
//! certificate behind a lock, so a reload (SIGHUP, the files changing, or a certificate arriving
//! from ACME) takes effect for the next handshake without touching open connections. A new file
//! that fails to load leaves the old one. With `tls.acme_domain`, the pair lives in the ACME cache
//! and, until the first one is issued, the generated self-signed pair is served in its place.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", .path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} holds no PEM certificate; expected a file starting with -----BEGIN CERTIFICATE-----", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: {reason}", .path.display())]
    BadPem { path: PathBuf, reason: String },
    #[error("the private key in {} is not usable: {reason}", .path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {} does not belong to the certificate in {}", .key.display(), .cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot write the generated certificate to {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The same SHA-256 as [`fingerprint`] in the form Chromium's certificate viewer shows it,
/// `AB CD ...` (Firefox shows the `AB:CD:...` form).
pub fn fingerprint_spaced(fingerprint: &str) -> String {
    fingerprint.replace(':', " ")
}

/// SHA-256 of a certificate's DER, as `AB:CD:...` (the form `openssl x509 -fingerprint -sha256` shows).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

/// Where the certificate comes from, resolved against the data directory.
#[derive(Debug, Clone)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// True when the pair is ours to generate (no `tls.cert`/`tls.key` configured).
    pub generated: bool,
    /// With ACME: the generated pair served until the CA's certificate is in `cert`/`key`.
    pub interim: Option<Box<CertPaths>>,
}

impl CertPaths {
    pub fn from_config(config: &Config) -> CertPaths {
        let generated = || {
            let dir = config.server.data_dir.join("tls");
            CertPaths {
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
                generated: true,
                interim: None,
            }
        };
        if !config.tls.acme_domain.is_empty() {
            let dir = acme_dir(config);
            CertPaths {
                cert: dir.join("cert.pem"),
                key: dir.join("key.pem"),
                generated: false,
                interim: Some(Box::new(generated())),
            }
        } else if config.tls.cert.is_empty() {
            generated()
        } else {
            CertPaths {
                cert: PathBuf::from(&config.tls.cert),
                key: PathBuf::from(&config.tls.key),
                generated: false,
                interim: None,
            }
        }
    }

    /// The pair in force now: the ACME one once it exists, else the interim one.
    pub fn current(&self) -> &CertPaths {
        match &self.interim {
            Some(interim) if !self.cert.exists() => interim,
            _ => self,
        }
    }
}

/// Where the ACME certificate and key for `tls.acme_domain` are cached: one directory per name,
/// so changing the name never serves the old name's certificate.
pub fn acme_dir(config: &Config) -> PathBuf {
    config
        .server
        .data_dir
        .join("acme")
        .join(config.tls.acme_domain.trim_end_matches('.'))
}

/// A loaded certificate with what we show about it.
struct Loaded {
    key: Arc<CertifiedKey>,
    fingerprint: String,
    modified: Option<SystemTime>,
}

/// The certificate resolver shared by every TLS handshake; [`CertResolver::reload`] swaps it.
pub struct CertResolver {
    paths: CertPaths,
    current: RwLock<Loaded>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("cert", &self.paths.cert)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().key.clone())
    }
}

impl CertResolver {
    /// Load the configured pair, generating a self-signed one first if none is configured and none
    /// was generated before.
    pub fn open(paths: CertPaths, server_name: &str) -> Result<CertResolver, TlsError> {
        let current = paths.current();
        if current.generated && !current.cert.exists() {
            generate_self_signed(current, server_name)?;
        }
        let loaded = load(current)?;
        Ok(CertResolver {
            paths,
            current: RwLock::new(loaded),
        })
    }

    pub fn fingerprint(&self) -> String {
        self.current.read().fingerprint.clone()
    }

    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    /// Re-read the files; on failure the old certificate stays in use. Returns the fingerprint in force.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = load(self.paths.current())?;
        let fingerprint = loaded.fingerprint.clone();
        *self.current.write() = loaded;
        Ok(fingerprint)
    }

    /// Reload only if the certificate file's modification time changed since the last load.
    pub fn reload_if_changed(&self) -> Option<Result<String, TlsError>> {
        let modified = modified(&self.paths.current().cert);
        if modified.is_none() || modified == self.current.read().modified {
            return None;
        }
        Some(self.reload())
    }

    /// The rustls config for the TLS listeners, resolving through `self`.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(Arc::new(config))
    }
}

/// Load a configured certificate and key without using them, for `parleyd check-config`: the
/// same checks a start makes (readable, PEM, key matches), so a typo in a path shows before a
/// restart. Returns the certificate's fingerprint.
pub fn check(paths: &CertPaths) -> Result<String, TlsError> {
    load(paths).map(|loaded| loaded.fingerprint)
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(paths: &CertPaths) -> Result<Loaded, TlsError> {
    let read = |what: &'static str, path: &Path| {
        fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let modified = modified(&paths.cert);
    let cert_pem = read("certificate", &paths.cert)?;
    let key_pem = read("private key", &paths.key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadPem {
            path: paths.cert.clone(),
            reason: e.to_string(),
        })?;
    let Some(leaf) = certs.first() else {
        return Err(TlsError::NoCertificate(paths.cert.clone()));
    };
    let fingerprint = fingerprint(leaf);
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: paths.key.clone(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(certs, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: paths.cert.clone(),
            key: paths.key.clone(),
        },
        other => TlsError::BadKey {
            path: paths.key.clone(),
            reason: other.to_string(),
        },
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        fingerprint,
        modified,
    })
}

/// A self-signed certificate for `localhost`, the loopback addresses and the server's name.
fn generate_self_signed(paths: &CertPaths, server_name: &str) -> Result<(), TlsError> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !names.iter().any(|n| n == server_name) {
        names.push(server_name.to_string());
    }
    let generate = || -> Result<(String, String), rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, server_name);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (cert_pem, key_pem) = generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    if let Some(dir) = paths.cert.parent() {
        fs::create_dir_all(dir).map_err(write_err(dir))?;
    }
    write_private(&paths.key, key_pem.as_bytes()).map_err(write_err(&paths.key))?;
    fs::write(&paths.cert, cert_pem).map_err(write_err(&paths.cert))?;
    tracing::info!(cert = %paths.cert.display(), "generated a self-signed TLS certificate");
    Ok(())
}

/// Write a file only its owner can read (the private key).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_uppercase_hex_pairs() {
        let fp = fingerprint(b"hello");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("2C:F2:4D:BA:5F:B0:A3:0E"), "{fp}");
    }

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        let paths = CertPaths::from_config(&config);
        let first = CertResolver::open(paths.clone(), "parley.local")
            .expect("generates")
            .fingerprint();
        let second = CertResolver::open(paths.clone(), "parley.local")
            .expect("reuses")
            .fingerprint();
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&paths.key).expect("key").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
    }

    #[test]
    fn bad_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        let paths = CertPaths::from_config(&config);
        let resolver = CertResolver::open(paths.clone(), "parley.local").expect("generates");
        let before = resolver.fingerprint();
        fs::write(&paths.cert, "not a certificate").expect("overwrite");
        let err = resolver.reload().expect_err("garbage is refused");
        assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");
        assert_eq!(resolver.fingerprint(), before);
    }

    #[test]
    fn mismatched_key_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = CertPaths {
            cert: dir.path().join("a.pem"),
            key: dir.path().join("a.key"),
            generated: true,
            interim: None,
        };
        let b = CertPaths {
            cert: dir.path().join("b.pem"),
            key: dir.path().join("b.key"),
            generated: true,
            interim: None,
        };
        generate_self_signed(&a, "a").expect("a");
        generate_self_signed(&b, "b").expect("b");
        let crossed = CertPaths {
            cert: a.cert.clone(),
            key: b.key.clone(),
            generated: false,
            interim: None,
        };
        let err = CertResolver::open(crossed, "x").expect_err("crossed pair");
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    }
}
