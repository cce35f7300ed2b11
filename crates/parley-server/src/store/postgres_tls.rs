//! TLS for every connection to PostgreSQL: how much the connection string's `sslmode` demands
//! (libpq's names), the default when it names none, and the rustls connector (ring, as all our
//! TLS) that checks the server's certificate against `accounts.postgres_ca` or the system roots.
//!
//! The default keeps passwords and messages off the network in clear: a database on this machine
//! (loopback or a Unix socket) is reached without TLS, any other with `verify-full`. No mode ever
//! accepts a certificate that does not chain to a trusted CA: `prefer` and `require` check the
//! chain as libpq does when it has a root certificate (`verify-ca`), `verify-full` the name too.
//! The postgres crate knows only disable/prefer/require, so `sslmode` is taken out of the string
//! (by [`parse_url`], which lives with the config so that its check reads the string the same
//! way) and the crate is told the matching mode.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::Host;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use crate::config::postgres_url::{parse_url, SslMode};
use crate::config::AccountsConfig;

/// The files TLS to PostgreSQL uses, from `[accounts]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM CA certificates to trust; the system roots when `None`.
    pub ca: Option<PathBuf>,
    /// A client certificate chain and its key, for `cert` authentication.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    pub fn from_config(accounts: &AccountsConfig) -> Self {
        let path = |text: &str| (!text.is_empty()).then(|| PathBuf::from(text));
        TlsFiles {
            ca: path(&accounts.postgres_ca),
            client_cert: path(&accounts.postgres_client_cert)
                .zip(path(&accounts.postgres_client_key)),
        }
    }
}

/// Why the connection settings cannot be used. Never holds the connection string itself.
#[derive(Debug, thiserror::Error)]
pub enum PostgresTlsError {
    #[error("accounts.postgres_url is not valid: {0}")]
    Url(String),
    #[error(
        "accounts.postgres_ca: cannot use {}: {reason}; name the PEM file of the CA that signed \
         the database server's certificate",
        path.display()
    )]
    Ca { path: PathBuf, reason: String },
    #[error(
        "no system root certificates to check the database server's certificate with; set \
         accounts.postgres_ca to the PEM file of its CA"
    )]
    NoRoots,
    #[error(
        "accounts.postgres_client_cert / postgres_client_key: cannot use {}: {reason}",
        path.display()
    )]
    ClientCert { path: PathBuf, reason: String },
}

/// Where to connect and how: the postgres crate's settings, and the TLS connector unless the
/// mode is `disable`.
pub struct Target {
    pub config: postgres::Config,
    pub mode: SslMode,
    pub tls: Option<MakeRustlsConnect>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // postgres::Config's Debug redacts the password; the connector has nothing to show.
        f.debug_struct("Target")
            .field("mode", &self.mode)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The settings for `url` (a `postgres://` URL or `key=value` pairs) with TLS from `files`.
    pub fn new(url: &str, files: &TlsFiles) -> Result<Self, PostgresTlsError> {
        let (mut config, mode) = parse_url(url).map_err(PostgresTlsError::Url)?;
        let mode = mode.unwrap_or(if is_local(&config) {
            SslMode::Disable
        } else {
            SslMode::VerifyFull
        });
        config.ssl_mode(mode.for_crate());
        let tls = match mode {
            SslMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(client_config(mode, files)?)),
        };
        Ok(Target { config, mode, tls })
    }

    /// A connection, over TLS as the mode says.
    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        }
    }
}

/// Whether every host the settings name is this machine: loopback addresses, `localhost`, or
/// Unix sockets. Only then may the default skip TLS.
fn is_local(config: &postgres::Config) -> bool {
    let loopback_name = |name: &str| {
        name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    if !config.get_hostaddrs().is_empty() {
        return config.get_hostaddrs().iter().all(IpAddr::is_loopback);
    }
    config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => loopback_name(name),
        Host::Unix(_) => true,
    })
}

/// The rustls client for `mode`: ring, the CA file or the system roots, a client certificate if
/// configured.
fn client_config(mode: SslMode, files: &TlsFiles) -> Result<ClientConfig, PostgresTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &files.ca {
        Some(path) => {
            let bad = |reason: String| PostgresTlsError::Ca {
                path: path.clone(),
                reason,
            };
            for cert in read_certs(path).map_err(bad)? {
                roots
                    .add(cert)
                    .map_err(|error| bad(format!("a certificate in it is unusable: {error}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "cannot load some system root certificates");
            }
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(PostgresTlsError::NoRoots);
            }
        }
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|error| PostgresTlsError::Ca {
            path: files.ca.clone().unwrap_or_default(),
            reason: error.to_string(),
        })?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring's default provider supports the default protocol versions");
    let builder = match mode {
        SslMode::VerifyFull => builder.with_webpki_verifier(webpki),
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))),
    };
    match &files.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_path, key_path)) => {
            let bad = |path: &Path, reason: String| PostgresTlsError::ClientCert {
                path: path.to_path_buf(),
                reason,
            };
            let chain = read_certs(cert_path).map_err(|reason| bad(cert_path, reason))?;
            // Only an I/O error is quoted: a PEM error may quote a line of the key file.
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| {
                let reason = match error {
                    rustls::pki_types::pem::Error::Io(io) => io.to_string(),
                    _ => "it holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned(),
                };
                bad(key_path, reason)
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| bad(cert_path, error.to_string()))
        }
    }
}

/// The certificates in a PEM file; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("cannot read PEM certificates from it ({error})"))?;
    if certs.is_empty() {
        return Err("it holds no PEM CERTIFICATE block".to_owned());
    }
    Ok(certs)
}

/// `verify-ca`: the chain must lead to a trusted CA; the name in the certificate is not checked.
/// WebPKI checks the name last, so a name mismatch means everything before it passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(url: &str) -> SslMode {
        Target::new(url, &TlsFiles::default())
            .map(|target| target.mode)
            .unwrap_or_else(|error| panic!("{url}: {error}"))
    }

    #[test]
    fn tls_is_the_default_off_this_machine() {
        assert_eq!(mode_of("postgres://p@127.0.0.1/d"), SslMode::Disable);
        assert_eq!(
            mode_of("postgres://p@localhost,[::1]:5433/d"),
            SslMode::Disable
        );
        assert_eq!(mode_of("host=/var/run/postgresql user=p"), SslMode::Disable);
        assert_eq!(
            mode_of("host=db.example hostaddr=127.0.0.1 user=p"),
            SslMode::Disable
        );
        // One remote host is enough to need TLS (and the system roots, present here).
        if !rustls_native_certs::load_native_certs().certs.is_empty() {
            assert_eq!(mode_of("postgres://p@db.example/d"), SslMode::VerifyFull);
            assert_eq!(
                mode_of("postgres://p@127.0.0.1,10.0.0.5/d"),
                SslMode::VerifyFull
            );
            assert_eq!(
                mode_of("host=localhost hostaddr=10.0.0.5 user=p"),
                SslMode::VerifyFull
            );
        }
        assert_eq!(
            mode_of("postgres://p@db.example/d?sslmode=disable"),
            SslMode::Disable
        );
    }
}
