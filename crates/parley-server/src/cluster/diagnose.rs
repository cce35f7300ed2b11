//! Why a node cannot use its bus at start, told apart: nothing listening (connect), a refused
//! login (auth), a failed TLS handshake (TLS), or a nats-server without JetStream.
//!
//! The node's own client retries its first connection forever (so it rides out a bus restart
//! later), and then a failure shows only as a bare kind such as "IO error" in its event callback.
//! So before it, one plain connection is tried with the same options: its error carries the
//! cause (the refused socket, the rustls alert, the server's `-ERR`), and the server's INFO says
//! whether JetStream is on. Nothing listening is retried for [`FIRST_CONNECT`] (a bus starting
//! beside the node); a refused login or a bad certificate will not fix itself and fails at once.

use std::time::Duration;

use async_nats::ConnectErrorKind;
use tokio::time::Instant;

use super::{connect_options, ClusterError};
use crate::config::ClusterConfig;

/// How long a node waits at start for something to listen at `cluster.nats_url`.
pub(super) const FIRST_CONNECT: Duration = Duration::from_secs(10);
/// Longest one connection attempt (TCP, TLS, INFO and CONNECT) may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// Pause between attempts while nothing listens.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// Connect once with the node's options (retrying while nothing listens, up to
/// [`FIRST_CONNECT`]) and check that the server runs JetStream; the error names what failed and
/// the setting to check. `url` is the address as shown (without a password).
pub(super) async fn probe(config: &ClusterConfig, url: &str) -> Result<(), ClusterError> {
    let deadline = Instant::now() + FIRST_CONNECT;
    loop {
        let attempt = tokio::time::timeout(
            ATTEMPT,
            connect_options(config)?.connect(config.nats_url.as_str()),
        )
        .await;
        let error = match attempt {
            Ok(Ok(client)) => {
                if !client.server_info().jetstream {
                    return Err(ClusterError::NoJetStream {
                        url: url.to_owned(),
                    });
                }
                // Only a look: the node's own client connects next.
                drop(client);
                return Ok(());
            }
            Ok(Err(error)) => classify(&error, url, wants_tls(config)),
            Err(_) => ClusterError::Connect {
                url: url.to_owned(),
                reason: format!("no answer in {} s", ATTEMPT.as_secs()),
            },
        };
        if !matches!(error, ClusterError::Connect { .. }) || Instant::now() >= deadline {
            return Err(error);
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Whether the node asks for TLS to the bus (as `connect_options` decides it).
fn wants_tls(config: &ClusterConfig) -> bool {
    config.nats_url.starts_with("tls://")
        || !config.nats_tls_ca.is_empty()
        || !config.nats_tls_cert.is_empty()
}

/// The cause of one failed connection, in the words an operator acts on.
fn classify(error: &async_nats::ConnectError, url: &str, tls: bool) -> ClusterError {
    let url = url.to_owned();
    if let Some(cause) = rustls_cause(error) {
        return ClusterError::Tls {
            url,
            reason: cause.to_string(),
            hint: tls_hint(cause),
        };
    }
    let reason = cause(error);
    // A server may hang up on a handshake it does not want instead of answering it: with TLS
    // asked for, a connection that was accepted and then cut is the handshake's failure.
    if tls && io_cause(error).is_some_and(|kind| HUNG_UP.contains(&kind)) {
        return ClusterError::Tls {
            url,
            reason,
            hint: "nats-server hung up during the TLS handshake: does it have a tls block, and \
                   does it accept this node's client certificate (cluster.nats_tls_cert)?",
        };
    }
    match error.kind() {
        ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
            ClusterError::Login { url, reason }
        }
        ConnectErrorKind::Tls => ClusterError::Tls {
            url,
            reason,
            hint: "check cluster.nats_tls_ca, cluster.nats_tls_cert and cluster.nats_tls_key",
        },
        ConnectErrorKind::ServerParse => {
            ClusterError::Settings(format!("cluster.nats_url {url:?}: {reason}"))
        }
        _ => ClusterError::Connect { url, reason },
    }
}

/// How a connection that was accepted ends when the other side hangs up.
const HUNG_UP: [std::io::ErrorKind; 4] = [
    std::io::ErrorKind::UnexpectedEof,
    std::io::ErrorKind::ConnectionReset,
    std::io::ErrorKind::ConnectionAborted,
    std::io::ErrorKind::BrokenPipe,
];

/// The kind of the first I/O error in the chain.
fn io_cause(error: &async_nats::ConnectError) -> Option<std::io::ErrorKind> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    for _ in 0..8 {
        let current = next?;
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = current.source();
    }
    None
}

/// The innermost message of the error's chain: "Connection refused (os error 111)", not "IO
/// error".
fn cause(error: &async_nats::ConnectError) -> String {
    let mut last: &dyn std::error::Error = error;
    let mut hops = 0;
    while let Some(next) = last.source() {
        last = next;
        hops += 1;
        if hops > 8 {
            break;
        }
    }
    last.to_string()
}

/// The TLS failure behind an error, if any: tokio-rustls hands it up as an I/O error, and
/// `io::Error::source` skips the error it wraps, so each I/O error is opened by hand.
fn rustls_cause(error: &async_nats::ConnectError) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    for _ in 0..8 {
        let current = next?;
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Some(tls);
            }
        }
        next = current.source();
    }
    None
}

/// Which setting to look at for a TLS failure.
fn tls_hint(error: &rustls::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match error {
        Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            "nats-server's certificate is not signed by the CA in cluster.nats_tls_ca \
             (without it, by a CA the system trusts)"
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "nats-server's certificate does not name the host in cluster.nats_url"
        }
        Error::InvalidCertificate(_) => {
            "nats-server's certificate is not acceptable; check it and cluster.nats_tls_ca"
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "nats-server does not speak TLS on that port: give it a tls block, or use nats:// \
             in cluster.nats_url and leave cluster.nats_tls_* empty"
        }
        Error::AlertReceived(_) => {
            "nats-server refused the handshake: it may want a client certificate \
             (cluster.nats_tls_cert and cluster.nats_tls_key) signed by the CA in its tls block"
        }
        _ => "check cluster.nats_url, cluster.nats_tls_ca, cluster.nats_tls_cert and cluster.nats_tls_key",
    }
}
