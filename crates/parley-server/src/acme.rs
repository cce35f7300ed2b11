//! Automatic certificates from an ACME CA (RFC 8555, e.g. Let's Encrypt) for `tls.acme_domain`.
//!
//! One task keeps the certificate fresh: it orders one when the cache (`server.data_dir/acme/`)
//! holds none for the name or it is within `acme_renew_days` of expiry, answers the CA's HTTP-01
//! challenge on the `acme_http_listen` listeners ([`http01`]), writes the pair (mode 0600) and
//! swaps it into the shared resolver, so every TLS and web listener serves it at its next
//! handshake. HTTP-01 rather than TLS-ALPN-01: it works with Parley's default ports (6697, 8443),
//! behind port forwarding, and leaves the TLS handshake of every connection untouched. A failure is
//! logged with the CA's reason and retried after a growing delay, never in a tight loop.

mod http01;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, ChallengeType, HttpClient,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::server::Shared;
use crate::tls::{self, CertResolver};

/// Longest one attempt (account, order, challenge, certificate) may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The wait after a first failure; it doubles with each further failure up to [`RETRY_MAX`].
/// Minutes, not seconds: Let's Encrypt allows only a few failed validations per hour.
const RETRY_FIRST: Duration = Duration::from_secs(5 * 60);
const RETRY_MAX: Duration = Duration::from_secs(6 * 60 * 60);

/// A valid certificate is looked at again at least this often (clocks jump, files get replaced).
const RECHECK_EVERY: Duration = Duration::from_secs(12 * 60 * 60);

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("{what}: {source}")]
    Client {
        what: &'static str,
        source: instant_acme::Error,
    },
    #[error("cannot read tls.acme_ca {}: {reason}; give a PEM file of CA certificates", .path.display())]
    Ca { path: PathBuf, reason: String },
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("the CA refused the order: {0}")]
    Refused(String),
    #[error("cannot make the certificate request: {0}")]
    Csr(String),
    #[error("TLS setup for the ACME client failed: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the issued certificate cannot be used: {0}")]
    Install(#[from] tls::TlsError),
    #[error("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())]
    Timeout,
}

fn client_error(what: &'static str) -> impl FnOnce(instant_acme::Error) -> AcmeError {
    move |source| AcmeError::Client { what, source }
}

/// The HTTP-01 answers the CA may ask for now: token -> key authorization.
#[derive(Debug, Default)]
pub struct Challenges(RwLock<HashMap<String, String>>);

impl Challenges {
    fn answer(&self, token: &str) -> Option<String> {
        self.0.read().get(token).cloned()
    }
}

/// What the cache remembers about the ACME account: which CA it belongs to, and its key.
#[derive(Serialize, Deserialize)]
struct CachedAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// The ACME account file, shared by every name (one account per CA directory).
fn account_path(config: &Config) -> PathBuf {
    config.server.data_dir.join("acme").join("account.json")
}

/// Start the HTTP-01 listeners and the task that keeps the certificate fresh.
pub fn start(
    shared: Arc<Shared>,
    resolver: Arc<CertResolver>,
    http_listeners: Vec<TcpListener>,
    web_port: Option<u16>,
    tasks: &TaskTracker,
) {
    let challenges = Arc::new(Challenges::default());
    let domain = shared.config.tls.acme_domain.clone();
    let redirect = web_port.map(|port| match port {
        443 => format!("https://{domain}"),
        port => format!("https://{domain}:{port}"),
    });
    for listener in http_listeners {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "ACME HTTP-01 challenge listener (plain HTTP)");
        }
        tasks.spawn(http01::serve(
            listener,
            challenges.clone(),
            redirect.clone(),
            shared.shutdown.clone(),
            tasks.clone(),
        ));
    }
    tasks.spawn(keep_fresh(shared, resolver, challenges));
}

/// Order, renew and retry until shutdown.
async fn keep_fresh(shared: Arc<Shared>, resolver: Arc<CertResolver>, challenges: Arc<Challenges>) {
    let config = &shared.config;
    let domain = &config.tls.acme_domain;
    let renew_before = Duration::from_secs(config.tls.acme_renew_days.saturating_mul(86_400));
    let cert_path = resolver.paths().cert.clone();
    let mut failures: u32 = 0;
    let mut just_issued = false;
    // Certificates in a row that were due for renewal as they arrived.
    let mut due_on_arrival: u32 = 0;
    match validity(&cert_path, domain) {
        Some(_) => {
            info!(%domain, cert = %cert_path.display(), "ACME: using the cached certificate")
        }
        None => info!(
            %domain,
            directory = %config.tls.acme_directory,
            fingerprint = %resolver.fingerprint(),
            "ACME: no certificate for this name yet; serving the self-signed one until the CA issues it"
        ),
    }
    loop {
        let wait = match until_renewal(&cert_path, domain, renew_before) {
            Some(wait) if !wait.is_zero() => {
                due_on_arrival = 0;
                wait.min(RECHECK_EVERY)
            }
            _ if just_issued => {
                // A certificate due the moment it arrives (a wrong clock, an odd CA) must not
                // turn into an order a second: back off as after failures.
                due_on_arrival = due_on_arrival.saturating_add(1);
                let delay = retry_delay(due_on_arrival);
                warn!(
                    %domain,
                    retry_in_secs = delay.as_secs(),
                    "ACME: the new certificate is already due for renewal; is the clock right?"
                );
                delay
            }
            _ => {
                let attempt = tokio::select! {
                    attempt = tokio::time::timeout(
                        ATTEMPT_TIMEOUT,
                        order(config, &challenges, &resolver),
                    ) => attempt.unwrap_or(Err(AcmeError::Timeout)),
                    // An order in flight is abandoned at shutdown; the CA forgets it.
                    _ = shared.shutdown.cancelled() => return,
                };
                // A token must not outlive its order: the next one gets new ones.
                challenges.0.write().clear();
                match attempt {
                    Ok(fingerprint) => {
                        failures = 0;
                        just_issued = true;
                        info!(%domain, %fingerprint, "ACME: new certificate installed for every TLS listener");
                        shared.history.audit(
                            "cert_acme",
                            None,
                            None,
                            None,
                            None,
                            Some(&format!("{domain}: {fingerprint}")),
                        );
                        continue;
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        let delay = retry_delay(failures);
                        error!(
                            %domain,
                            %err,
                            retry_in_secs = delay.as_secs(),
                            "ACME: getting a certificate failed; check that the name resolves to this \
                             server and that port 80 reaches tls.acme_http_listen"
                        );
                        shared.history.audit(
                            "cert_acme_failed",
                            None,
                            None,
                            None,
                            None,
                            Some(&format!("{domain}: {err}")),
                        );
                        delay
                    }
                }
            }
        };
        just_issued = false;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// How long until the cached certificate should be renewed: `renew_before` its expiry, but no
/// earlier than two thirds into its life, so a CA's short-lived certificates are not re-ordered
/// the moment they arrive. `None`: there is no usable certificate for `domain`, order now.
fn until_renewal(path: &Path, domain: &str, renew_before: Duration) -> Option<Duration> {
    let (not_before, not_after) = validity(path, domain)?;
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let renew_at = not_after.checked_sub(renew_before.min(lifetime / 3))?;
    Some(
        renew_at
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
}

/// [`RETRY_FIRST`] doubled for each failure after the first, at most [`RETRY_MAX`].
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1u32 << doublings).min(RETRY_MAX)
}

/// When the cached certificate at `path` starts and stops being valid, if it exists and names
/// `domain`.
fn validity(path: &Path, domain: &str) -> Option<(SystemTime, SystemTime)> {
    let pem = fs::read(path).ok()?;
    let der = CertificateDer::pem_slice_iter(&pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let domain = domain.trim_end_matches('.');
    let names = cert.subject_alternative_name().ok()??;
    let covered = names.value.general_names.iter().any(|name| {
        matches!(name, x509_parser::extensions::GeneralName::DNSName(n) if n.eq_ignore_ascii_case(domain))
    });
    if !covered {
        return None;
    }
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
    };
    Some((
        time(cert.validity().not_before)?,
        time(cert.validity().not_after)?,
    ))
}

/// One attempt: account, order, challenge, CSR, certificate, cache, install. Returns the new
/// certificate's fingerprint.
async fn order(
    config: &Config,
    challenges: &Challenges,
    resolver: &CertResolver,
) -> Result<String, AcmeError> {
    let tls_config = &config.tls;
    let domain = tls_config.acme_domain.trim_end_matches('.').to_owned();
    let account = account(config).await?;
    let identifiers = [Identifier::Dns(domain.clone())];
    let mut order = match account.new_order(&NewOrder::new(&identifiers)).await {
        Ok(order) => order,
        Err(err) => {
            if is_unknown_account(&err) {
                // The CA no longer knows the cached account (a reset test CA, a deactivated
                // account): forget it, so the next attempt registers a new one.
                let path = account_path(config);
                warn!(path = %path.display(), "ACME: the CA does not know the cached account; a new one is made on the next attempt");
                let _ = fs::remove_file(&path);
            }
            return Err(client_error("creating the order")(err));
        }
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(client_error("reading the authorization"))?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Refused(format!(
                    "the authorization for {domain} is {other:?}"
                )))
            }
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::Refused("the CA offers no http-01 challenge".to_owned()))?;
        challenges.0.write().insert(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_owned(),
        );
        challenge
            .set_ready()
            .await
            .map_err(client_error("answering the challenge"))?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(500))
        .timeout(Duration::from_secs(120));
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(client_error("waiting for the CA to check the challenge"))?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Refused(challenge_errors(&mut order).await));
    }
    let (csr, key_pem) = certificate_request(&domain)?;
    order
        .finalize_csr(&csr)
        .await
        .map_err(client_error("sending the certificate request"))?;
    let chain_pem = order
        .poll_certificate(&retries)
        .await
        .map_err(client_error("fetching the certificate"))?;
    install(resolver, &chain_pem, &key_pem)
}

/// RFC 8555 §6.7: the problem a CA answers for a request signed by an account it does not have.
fn is_unknown_account(err: &instant_acme::Error) -> bool {
    matches!(err, instant_acme::Error::Api(problem)
        if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist"))
}

/// What the CA said about the failed challenge (the useful part of an invalid order).
async fn challenge_errors(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if let Ok(state) = authorization.refresh().await {
            for challenge in &state.challenges {
                if let Some(problem) = &challenge.error {
                    reasons.push(problem.to_string());
                }
            }
        }
    }
    if reasons.is_empty() {
        "the order became invalid".to_owned()
    } else {
        reasons.join("; ")
    }
}

/// A fresh key and a CSR for `domain` alone; the key never leaves this server.
fn certificate_request(domain: &str) -> Result<(Vec<u8>, String), AcmeError> {
    let make = || -> Result<(Vec<u8>, String), rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let key = rcgen::KeyPair::generate()?;
        let csr = params.serialize_request(&key)?;
        Ok((csr.der().to_vec(), key.serialize_pem()))
    };
    make().map_err(|e| AcmeError::Csr(e.to_string()))
}

/// Write the pair into the cache (key first, each through a rename, so a reader never sees a
/// certificate without its key) and make it the one every listener serves.
fn install(resolver: &CertResolver, chain_pem: &str, key_pem: &str) -> Result<String, AcmeError> {
    let paths = resolver.paths();
    if let Some(dir) = paths.cert.parent() {
        if let Some(cache) = dir.parent() {
            create_private_dir(cache)?;
        }
        create_private_dir(dir)?;
    }
    write_replacing(&paths.key, key_pem.as_bytes())?;
    write_replacing(&paths.cert, chain_pem.as_bytes())?;
    Ok(resolver.reload()?)
}

fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    let fail = |source| AcmeError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    tls::write_private(&temporary, bytes).map_err(fail)?;
    fs::rename(&temporary, path).map_err(fail)
}

/// The cache directory, readable by the server's user alone (it holds private keys).
fn create_private_dir(dir: &Path) -> Result<(), AcmeError> {
    let fail = |source| AcmeError::Write {
        path: dir.to_path_buf(),
        source,
    };
    fs::create_dir_all(dir).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

/// The cached account for this CA, or a new one (its key saved at once, mode 0600).
async fn account(config: &Config) -> Result<Account, AcmeError> {
    let tls_config = &config.tls;
    let path = account_path(config);
    if let Ok(bytes) = fs::read(&path) {
        match serde_json::from_slice::<CachedAccount>(&bytes) {
            Ok(cached) if cached.directory == tls_config.acme_directory => {
                return Account::builder_with_http(http_client(config)?)
                    .from_credentials(cached.credentials)
                    .await
                    .map_err(client_error("loading the ACME account"));
            }
            Ok(_) => info!(
                directory = %tls_config.acme_directory,
                "ACME: tls.acme_directory changed; creating an account with the new CA"
            ),
            Err(err) => warn!(
                path = %path.display(),
                %err,
                "ACME: the cached account cannot be read; creating a new one"
            ),
        }
    }
    let contact = format!("mailto:{}", tls_config.acme_email);
    let contacts: Vec<&str> = if tls_config.acme_email.is_empty() {
        Vec::new()
    } else {
        vec![contact.as_str()]
    };
    let (account, credentials) = Account::builder_with_http(http_client(config)?)
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            tls_config.acme_directory.clone(),
            None,
        )
        .await
        .map_err(client_error("creating the ACME account"))?;
    let cached = CachedAccount {
        directory: tls_config.acme_directory.clone(),
        credentials,
    };
    let json = serde_json::to_vec_pretty(&cached)
        .map_err(|e| AcmeError::Csr(format!("cannot encode the account: {e}")))?;
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    write_replacing(&path, &json)?;
    info!(path = %path.display(), "ACME: account created");
    Ok(account)
}

/// HTTPS to the CA through our own rustls (ring), trusting the system's CAs and `tls.acme_ca`.
fn http_client(config: &Config) -> Result<Box<dyn HttpClient>, AcmeError> {
    let mut roots = rustls::RootCertStore::empty();
    let (_added, _ignored) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let ca = &config.tls.acme_ca;
    if !ca.is_empty() {
        let path = PathBuf::from(ca);
        let fail = |reason: String| AcmeError::Ca {
            path: path.clone(),
            reason,
        };
        let pem = fs::read(&path).map_err(|e| fail(e.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("it holds no PEM certificate".to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| fail(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, BodyWrapper<bytes::Bytes>>(connector);
    Ok(Box::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        assert_eq!(retry_delay(1), RETRY_FIRST);
        assert_eq!(retry_delay(2), RETRY_FIRST * 2);
        assert_eq!(retry_delay(3), RETRY_FIRST * 4);
        assert_eq!(retry_delay(40), RETRY_MAX);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn a_cached_certificate_counts_only_for_its_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["chat.example.org".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let path = dir.path().join("cert.pem");
        fs::write(&path, cert.pem()).expect("write");
        let (_, expiry) = validity(&path, "chat.example.org").expect("names the domain");
        assert!(expiry > SystemTime::now());
        assert!(validity(&path, "Chat.Example.Org.").is_some());
        assert!(validity(&path, "other.example.org").is_none());
        assert!(validity(&dir.path().join("missing.pem"), "chat.example.org").is_none());
        assert!(until_renewal(
            &dir.path().join("missing.pem"),
            "chat.example.org",
            Duration::ZERO
        )
        .is_none());
    }
}
