//! What the client trusts, and the rustls verifier that enforces it.
//! Order of judgement: a pinned fingerprint is authoritative (only that certificate passes);
//! otherwise WebPKI with the system roots and `--ca` files; when that fails, a matching
//! known_servers entry passes and a different one is refused loudly. Nothing passes silently:
//! every refusal is recorded as a detailed [`TrustError`], since rustls's own errors are opaque.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::known_servers::{server_key, KnownServers};
use crate::validity::validity;
use crate::{Fingerprint, TrustError};

/// The trust sources a client connects with. Cheap to clone; build it once per client.
#[derive(Clone, Debug)]
pub struct TrustPolicy {
    provider: Arc<CryptoProvider>,
    roots: RootCertStore,
    pins: Vec<Fingerprint>,
    known_servers: Option<PathBuf>,
    /// Built from `roots` on demand; `None` while there are no roots.
    webpki: Option<Arc<WebPkiServerVerifier>>,
}

impl TrustPolicy {
    /// Trusts nothing yet: add a CA file, a pin or a known_servers file.
    pub fn empty() -> Self {
        TrustPolicy {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            roots: RootCertStore::empty(),
            pins: Vec::new(),
            known_servers: None,
            webpki: None,
        }
    }

    /// Trusts the operating system's certificate authorities. A system without any is not an
    /// error here (other sources may follow); it is logged, and unknown servers are refused.
    pub fn system_roots() -> Self {
        let mut policy = TrustPolicy::empty();
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "cannot load some system root certificates");
        }
        let (added, ignored) = policy.roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::debug!(
                added,
                ignored,
                "some system root certificates were unusable"
            );
        }
        if added == 0 {
            tracing::warn!("no system root certificates found; only --ca files, pins and known_servers can vouch for servers");
        }
        policy.rebuild_webpki();
        policy
    }

    /// Also trusts the certificates in a PEM file: a CA, or a server's own self-signed
    /// certificate (it becomes its own trust anchor).
    pub fn with_ca_file(mut self, path: impl AsRef<Path>) -> Result<Self, TrustError> {
        let path = path.as_ref();
        let bad = |reason: String| TrustError::BadCaFile {
            path: path.to_path_buf(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(pem_error_text(e)))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(pem_error_text(e)))?;
        if certs.is_empty() {
            return Err(bad("it contains no PEM CERTIFICATE block".to_string()));
        }
        for (index, cert) in certs.into_iter().enumerate() {
            self.roots
                .add(cert)
                .map_err(|e| bad(format!("certificate {} is unusable: {e}", index + 1)))?;
        }
        self.rebuild_webpki();
        Ok(self)
    }

    /// Trusts exactly the certificate with this fingerprint, and no other, for every server this
    /// policy is used with. Several pins allow a planned certificate change.
    pub fn with_pin(mut self, fingerprint: Fingerprint) -> Self {
        self.pins.push(fingerprint);
        self
    }

    /// Consults a known_servers file when the roots do not vouch for a certificate.
    pub fn with_known_servers(mut self, path: impl Into<PathBuf>) -> Self {
        self.known_servers = Some(path.into());
        self
    }

    /// The known_servers file, if one is in use.
    pub fn known_servers_path(&self) -> Option<&Path> {
        self.known_servers.as_deref()
    }

    /// Stores a fingerprint the user explicitly accepted (usually the one from
    /// [`TrustError::UnknownCertificate`]) in the known_servers file.
    pub fn remember(&self, server: &str, fingerprint: Fingerprint) -> Result<(), TrustError> {
        let path = self
            .known_servers
            .as_ref()
            .ok_or_else(|| TrustError::NoKnownServersFile {
                server: server.to_string(),
            })?;
        KnownServers::load(path)?.trust(server, fingerprint)
    }

    /// A rustls config for one connection to `host:port`. Its verifier keys known_servers by
    /// `host:port` and keeps the detailed reason of a refusal in the returned [`Verification`].
    pub fn client_config(&self, host: &str, port: u16) -> Result<Verification, TrustError> {
        let known = match &self.known_servers {
            Some(path) => Some(KnownServers::load(path)?),
            None => None,
        };
        let refusal = Arc::new(Mutex::new(None));
        let verifier = Arc::new(ParleyVerifier {
            server: server_key(host, port),
            host: host.to_string(),
            provider: self.provider.clone(),
            webpki: self.webpki.clone(),
            pins: self.pins.clone(),
            known,
            refusal: refusal.clone(),
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TrustError::Handshake {
                server: server_key(host, port),
                reason: e.to_string(),
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Verification {
            config: Arc::new(config),
            refusal,
        })
    }

    fn rebuild_webpki(&mut self) {
        self.webpki = if self.roots.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(self.roots.clone()),
                self.provider.clone(),
            )
            .build()
            .ok()
        };
    }
}

/// A per-connection rustls config and the verdict its verifier recorded.
pub struct Verification {
    /// The config to hand to `tokio_rustls::TlsConnector` (or any rustls client).
    pub config: Arc<ClientConfig>,
    refusal: Arc<Mutex<Option<TrustError>>>,
}

impl Verification {
    /// The detailed reason the certificate was refused, if it was. Call after a failed handshake.
    pub fn take_refusal(&self) -> Option<TrustError> {
        self.refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[derive(Debug)]
struct ParleyVerifier {
    server: String,
    host: String,
    provider: Arc<CryptoProvider>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<Fingerprint>,
    known: Option<KnownServers>,
    refusal: Arc<Mutex<Option<TrustError>>>,
}

impl ParleyVerifier {
    fn refuse(&self, error: TrustError, alert: CertificateError) -> rustls::Error {
        tracing::warn!(server = %self.server, %error, "refused the server's certificate");
        *self.refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
        rustls::Error::InvalidCertificate(alert)
    }

    /// Trusting an exact certificate skips WebPKI, so its dates are checked here.
    fn check_dates(
        &self,
        end_entity: &CertificateDer<'_>,
        fingerprint: Fingerprint,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(period) = validity(end_entity) else {
            return Err(self.refuse(
                TrustError::Handshake {
                    server: self.server.clone(),
                    reason: "the server's certificate is malformed".to_string(),
                },
                CertificateError::BadEncoding,
            ));
        };
        let now = to_system_time(now);
        if now > period.not_after {
            let error = TrustError::Expired {
                server: self.server.clone(),
                not_after: period.not_after,
                fingerprint,
            };
            return Err(self.refuse(error, CertificateError::Expired));
        }
        if now < period.not_before {
            let error = TrustError::NotYetValid {
                server: self.server.clone(),
                not_before: period.not_before,
                fingerprint,
            };
            return Err(self.refuse(error, CertificateError::NotValidYet));
        }
        Ok(ServerCertVerified::assertion())
    }

    /// Turns WebPKI's refusal (or the lack of any roots) into a message for the user.
    fn explain(
        &self,
        webpki_error: Option<rustls::Error>,
        end_entity: &CertificateDer<'_>,
        fingerprint: Fingerprint,
        now: UnixTime,
    ) -> rustls::Error {
        let server = self.server.clone();
        let unknown = |reason: String| TrustError::UnknownCertificate {
            server: server.clone(),
            fingerprint,
            reason,
            known_servers: self.known.as_ref().map(|k| k.path().to_path_buf()),
        };
        let Some(rustls::Error::InvalidCertificate(cert_error)) = webpki_error else {
            let reason = match webpki_error {
                None => {
                    "no certificate authority is trusted (no system roots or --ca file)".to_string()
                }
                Some(other) => other.to_string(),
            };
            return self.refuse(unknown(reason), CertificateError::UnknownIssuer);
        };
        #[allow(deprecated)]
        let error = match &cert_error {
            CertificateError::NotValidForNameContext { presented, .. } => {
                TrustError::HostnameMismatch {
                    server,
                    host: self.host.clone(),
                    presented: presented.iter().map(|name| plain_name(name)).collect(),
                    fingerprint,
                }
            }
            CertificateError::NotValidForName => TrustError::HostnameMismatch {
                server,
                host: self.host.clone(),
                presented: Vec::new(),
                fingerprint,
            },
            CertificateError::ExpiredContext { not_after, .. } => TrustError::Expired {
                server,
                not_after: to_system_time(*not_after),
                fingerprint,
            },
            CertificateError::NotValidYetContext { not_before, .. } => TrustError::NotYetValid {
                server,
                not_before: to_system_time(*not_before),
                fingerprint,
            },
            CertificateError::Expired | CertificateError::NotValidYet => {
                return match self.check_dates(end_entity, fingerprint, now) {
                    Err(recorded) => recorded,
                    Ok(_) => self.refuse(unknown(cert_error.to_string()), cert_error),
                };
            }
            CertificateError::UnknownIssuer => {
                unknown("it is not signed by a trusted certificate authority".to_string())
            }
            other => unknown(other.to_string()),
        };
        self.refuse(error, cert_error)
    }
}

impl ServerCertVerifier for ParleyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint = Fingerprint::of(end_entity);

        if !self.pins.is_empty() {
            if self.pins.contains(&fingerprint) {
                return self.check_dates(end_entity, fingerprint, now);
            }
            let error = TrustError::PinMismatch {
                server: self.server.clone(),
                pinned: self.pins.clone(),
                got: fingerprint,
            };
            return Err(self.refuse(error, CertificateError::ApplicationVerificationFailure));
        }

        let webpki_error = match &self.webpki {
            Some(webpki) => match webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Ok(verified) => return Ok(verified),
                Err(e) => Some(e),
            },
            None => None,
        };

        if let Some(known) = &self.known {
            match known.get(&self.server) {
                Some(entry) if entry.fingerprint == fingerprint => {
                    return self.check_dates(end_entity, fingerprint, now);
                }
                Some(entry) => {
                    let error = TrustError::CertificateChanged {
                        server: self.server.clone(),
                        expected: entry.fingerprint,
                        got: fingerprint,
                        file: known.path().to_path_buf(),
                        line: entry.line,
                    };
                    return Err(
                        self.refuse(error, CertificateError::ApplicationVerificationFailure)
                    );
                }
                None => {}
            }
        }

        Err(self.explain(webpki_error, end_entity, fingerprint, now))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn to_system_time(time: UnixTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(time.as_secs())
}

/// WebPKI reports names as `DnsName("irc.example")` or `IpAddress(10.0.0.1)`; users want the name.
fn plain_name(presented: &str) -> String {
    let inner = presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        });
    inner.unwrap_or(presented).to_string()
}

fn pem_error_text(error: rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::Io(e) => e.to_string(),
        other => format!("it is not a PEM certificate file ({other:?})"),
    }
}
