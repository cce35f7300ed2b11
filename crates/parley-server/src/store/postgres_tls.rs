//! TLS for every connection to PostgreSQL: how much the connection string's `sslmode` demands
//! (libpq's names), the default when it names none, and the rustls connector (ring, as all our
//! TLS) that checks the server's certificate against `accounts.postgres_ca` or the system roots.
//!
//! The default keeps passwords and messages off the network in clear: a database on this machine
//! (loopback or a Unix socket) is reached without TLS, any other with `verify-full`. No mode ever
//! accepts a certificate that does not chain to a trusted CA: `prefer` and `require` check the
//! chain as libpq does when it has a root certificate (`verify-ca`), `verify-full` the name too.
//! The postgres crate knows only disable/prefer/require, so `sslmode` is taken out of the string
//! here and the crate is told the matching mode.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::{Host, SslMode as CrateSslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::AccountsConfig;
use crate::redact::{key_values, percent_decode, quote_value};

/// libpq's `sslmode`, the part parleyd honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (its certificate must still verify), else in clear.
    Prefer,
    /// TLS or no connection; the certificate must chain to a trusted CA.
    Require,
    /// Like `require` (libpq's name for it when a CA is given).
    VerifyCa,
    /// TLS, a trusted chain, and a certificate for the host name connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    fn for_crate(self) -> CrateSslMode {
        match self {
            Self::Disable => CrateSslMode::Disable,
            Self::Prefer => CrateSslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => CrateSslMode::Require,
        }
    }
}

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

/// `url` as the postgres crate's settings and the `sslmode` it names (taken out, as the crate
/// cannot read `verify-ca` or `verify-full`). Errors never quote the string.
pub fn parse_url(url: &str) -> Result<(postgres::Config, Option<SslMode>), String> {
    let mut mode = None;
    let mut take_mode = |value: &str| match SslMode::parse(value) {
        Some(parsed) => {
            mode = Some(parsed);
            Ok(())
        }
        None => Err(
            "sslmode must be one of disable, prefer, require, verify-ca, verify-full".to_owned(),
        ),
    };
    // libpq's file settings would be refused by the crate as unknown; say where they go.
    let file_setting = |key: &str| {
        matches!(key, "sslrootcert" | "sslcert" | "sslkey").then(|| {
            format!(
                "{key} is not read from the URL; set accounts.postgres_ca (the CA) or \
                 accounts.postgres_client_cert and postgres_client_key instead"
            )
        })
    };
    let rest = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|prefix| url.strip_prefix(prefix));
    let for_crate = match rest {
        Some(rest) => {
            // Where the crate's parser finds the query: after the first `@` (the credentials
            // may hold a `?`), at the first `?`.
            let after_credentials = rest.find('@').map_or(0, |at| at + 1);
            match rest[after_credentials..].find('?') {
                Some(offset) => {
                    let query_start = url.len() - rest.len() + after_credentials + offset;
                    let mut kept = Vec::new();
                    for param in url[query_start + 1..].split('&') {
                        let (key, value) = param.split_once('=').unwrap_or((param, ""));
                        let key = percent_decode(key);
                        if let Some(error) = file_setting(&key) {
                            return Err(error);
                        }
                        if key == "sslmode" {
                            take_mode(&percent_decode(value))?;
                        } else {
                            kept.push(param);
                        }
                    }
                    let mut stripped = url[..query_start].to_owned();
                    if !kept.is_empty() {
                        stripped.push('?');
                        stripped.push_str(&kept.join("&"));
                    }
                    stripped
                }
                None => url.to_owned(),
            }
        }
        None => {
            let pairs = key_values(url).ok_or_else(|| {
                "expected a postgres:// URL or key=value pairs (quote a value that has spaces: \
                 password='a b')"
                    .to_owned()
            })?;
            let mut kept = Vec::new();
            for (key, value) in pairs {
                if let Some(error) = file_setting(&key) {
                    return Err(error);
                }
                if key == "sslmode" {
                    take_mode(&value)?;
                } else {
                    kept.push(format!("{key}={}", quote_value(&value)));
                }
            }
            kept.join(" ")
        }
    };
    let config = for_crate.parse::<postgres::Config>().map_err(|error| {
        // The crate's Display says only "invalid connection string"; its source names the
        // option. An unknown option's name is not quoted: with a raw `&` in a `?password=`,
        // the "name" is a piece of the password.
        match std::error::Error::source(&error).map(ToString::to_string) {
            Some(cause) if cause.starts_with("unknown option") => {
                "it has a setting PostgreSQL's client does not know; check the names, and \
                 percent-encode `&`, `=`, `@` and `/` in a password (%26, %3D, %40, %2F)"
                    .to_owned()
            }
            Some(cause) => cause,
            None => error.to_string(),
        }
    })?;
    Ok((config, mode))
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

    #[test]
    fn sslmode_is_read_in_both_forms_and_the_rest_reaches_the_crate() {
        let (config, mode) = parse_url(
            "postgres://u:p%3Fw?sslmode=x@127.0.0.1:5433/db?application_name=a&sslmode=verify-ca",
        )
        .expect("parses");
        assert_eq!(mode, Some(SslMode::VerifyCa));
        assert_eq!(config.get_password(), Some(&b"p?w?sslmode=x"[..]));
        assert_eq!(config.get_dbname(), Some("db"));
        assert_eq!(config.get_application_name(), Some("a"));
        let (config, mode) =
            parse_url(r"host=h password='a b\' c' sslmode = verify-full dbname=d").expect("kv");
        assert_eq!(mode, Some(SslMode::VerifyFull));
        assert_eq!(config.get_password(), Some(&b"a b' c"[..]));
        assert_eq!(config.get_dbname(), Some("d"));
        let error = parse_url("postgres://h/d?sslmode=verify-Secret").expect_err("bad mode");
        assert!(!error.contains("Secret"), "{error}");
        let error = parse_url("postgres://h/d?password=ab&Cd3f=x").expect_err("raw & in password");
        assert!(!error.contains("Cd3f"), "{error}");
        let error = parse_url("postgres://h/d?sslrootcert=/ca.pem").expect_err("file in URL");
        assert!(error.contains("accounts.postgres_ca"), "{error}");
        let error = parse_url("host=h password='Unterminated").expect_err("bad kv");
        assert!(!error.contains("Unterminated"), "{error}");
    }
}
