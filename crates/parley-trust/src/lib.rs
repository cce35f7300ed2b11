//! Client-side TLS trust shared by Parley's terminal client, GUI and bench tool.
//! A server is trusted through the system roots, a CA or certificate file the user gives
//! (`--ca`), a pinned SHA-256 fingerprint, or a known_servers file filled only by an explicit
//! "yes" (trust on first use). An unknown certificate is refused with its fingerprint and how to
//! trust it; a changed one is refused loudly. Nothing is ever accepted silently.
//!
//! Decisions worth knowing:
//! - A pin is authoritative: with pins set only a certificate with a pinned fingerprint passes,
//!   even one a CA would vouch for. The host name is not checked (the pin names the certificate).
//! - known_servers is consulted only when the system roots and `--ca` files do not vouch for the
//!   certificate, so a CA-signed server that renews its certificate does not raise alarms.
//!   Entries are keyed by `host:port`; the host name in the certificate is not checked.
//! - Dates are always checked: an expired (or not yet valid) certificate is refused even when it
//!   is pinned or in known_servers. The fingerprint only says *which* certificate; an expired one
//!   may have a leaked key, and the fix (the operator renews) is the right one to push for.
//! - Handshake signatures are always verified with the ring provider.
//!
//! ```no_run
//! # async fn run() -> Result<(), parley_trust::TrustError> {
//! use parley_trust::{connect, TrustError, TrustPolicy};
//! let policy = TrustPolicy::system_roots().with_known_servers("/home/me/.config/parley/known_servers");
//! match connect("irc.example", 6697, &policy).await {
//!     Ok(_tls) => {}
//!     Err(TrustError::UnknownCertificate { server, fingerprint, .. }) => {
//!         // show the error, ask the user; only on an explicit yes:
//!         policy.remember(&server, fingerprint)?;
//!     }
//!     Err(other) => return Err(other),
//! }
//! # Ok(()) }
//! ```

mod error;
mod fingerprint;
mod known_servers;
mod policy;
mod validity;

pub use error::TrustError;
pub use fingerprint::Fingerprint;
pub use known_servers::{server_key, KnownEntry, KnownServers};
pub use policy::{TrustPolicy, Verification};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Connects over TCP to `host:port` and completes a TLS handshake verified by `policy`.
pub async fn connect(
    host: &str,
    port: u16,
    policy: &TrustPolicy,
) -> Result<TlsStream<TcpStream>, TrustError> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|source| TrustError::Connect {
            server: server_key(host, port),
            source,
        })?;
    handshake(tcp, host, port, policy).await
}

/// Runs the TLS handshake over an already connected stream; `host` is the name the certificate
/// must be for (and the SNI sent), `port` completes the known_servers key.
pub async fn handshake<S>(
    stream: S,
    host: &str,
    port: u16,
    policy: &TrustPolicy,
) -> Result<TlsStream<S>, TrustError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let server_name =
        ServerName::try_from(name.to_string()).map_err(|_| TrustError::InvalidServerName {
            host: host.to_string(),
        })?;
    let verification = policy.client_config(host, port)?;
    let connector = TlsConnector::from(verification.config.clone());
    match connector.connect(server_name, stream).await {
        Ok(tls) => Ok(tls),
        Err(error) => Err(verification
            .take_refusal()
            .unwrap_or_else(|| TrustError::Handshake {
                server: server_key(host, port),
                reason: error.to_string(),
            })),
    }
}
