//! Every way a connection can be refused, each with a message a user can act on.
//! Refusals about the certificate carry its fingerprint, because comparing it with what the
//! server's operator published is the one thing that lets a user decide to trust it.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::validity::format_utc;
use crate::Fingerprint;

/// Why a server's certificate was refused or trust could not be set up.
#[derive(thiserror::Error, Debug)]
pub enum TrustError {
    /// No trust source vouches for the certificate: the user must decide.
    #[error(
        "the certificate of {server} is not trusted: {reason}.\n\
         Its SHA-256 fingerprint is\n    {fingerprint}\n\
         If you trust it (compare the fingerprint with one the server's operator published), \
         pin it with --fingerprint followed by that fingerprint, or pass the server's certificate \
         or its CA with \
         --ca <file>{}",
        known_servers_hint(.known_servers)
    )]
    UnknownCertificate {
        /// `host:port`.
        server: String,
        fingerprint: Fingerprint,
        /// Why the system roots or the CA file did not vouch for it.
        reason: String,
        /// The known_servers file the certificate would be stored in, if one is in use.
        known_servers: Option<PathBuf>,
    },

    /// The server presents another certificate than the one stored in known_servers.
    #[error(
        "WARNING: the certificate of {server} has CHANGED since you trusted it!\n\
         Someone may be intercepting this connection (a man-in-the-middle attack), or the \
         server's operator replaced the certificate. The connection was refused.\n\
         \x20   trusted ({file}, line {line}): {expected}\n\
         \x20   presented now: {got}\n\
         If you know the change is expected, remove line {line} of {file} and connect again.",
        file = .file.display()
    )]
    CertificateChanged {
        server: String,
        expected: Fingerprint,
        got: Fingerprint,
        file: PathBuf,
        /// 1-based line of the entry in `file`.
        line: usize,
    },

    /// A fingerprint was pinned and the server's certificate does not have it.
    #[error(
        "the certificate of {server} does not match the pinned fingerprint; the connection was \
         refused.\n    pinned: {}\n    presented: {got}\n\
         If the server's operator changed the certificate, pin the new fingerprint.",
        join_fingerprints(.pinned)
    )]
    PinMismatch {
        server: String,
        pinned: Vec<Fingerprint>,
        got: Fingerprint,
    },

    /// The certificate is signed by a trusted CA but was issued for other names.
    #[error(
        "the certificate of {server} is for {}, not for {host}; the connection was refused.\n\
         Connect using one of those names, or, if you trust this exact certificate, pin it \
         with --fingerprint {fingerprint}",
        if .presented.is_empty() { "no host name".to_string() } else { .presented.join(", ") }
    )]
    HostnameMismatch {
        server: String,
        host: String,
        /// The names in the certificate.
        presented: Vec<String>,
        fingerprint: Fingerprint,
    },

    /// The certificate's validity ended; refused whatever vouches for it.
    #[error(
        "the certificate of {server} expired on {}; the connection was refused (an expired \
         certificate is never accepted, even when pinned). Ask the server's operator to renew it. \
         Its fingerprint is {fingerprint}",
        format_utc(*.not_after)
    )]
    Expired {
        server: String,
        not_after: SystemTime,
        fingerprint: Fingerprint,
    },

    /// The certificate's validity has not started (or this machine's clock is wrong).
    #[error(
        "the certificate of {server} is not valid before {}; the connection was refused. \
         Check this computer's clock. Its fingerprint is {fingerprint}",
        format_utc(*.not_before)
    )]
    NotYetValid {
        server: String,
        not_before: SystemTime,
        fingerprint: Fingerprint,
    },

    /// A `--ca` file that cannot be used.
    #[error("cannot use CA file {}: {reason}", .path.display())]
    BadCaFile { path: PathBuf, reason: String },

    /// A fingerprint string that is not a SHA-256 fingerprint.
    #[error(
        "{input:?} is not a SHA-256 fingerprint ({reason}); expected 32 hex byte pairs like \
         AB:CD:..., as printed by `openssl x509 -noout -fingerprint -sha256`"
    )]
    BadFingerprint { input: String, reason: String },

    /// A known_servers line that cannot be read.
    #[error(
        "{}, line {line}: {reason}; expected `host:port SHA256-FINGERPRINT` (fix or remove the line)",
        .path.display()
    )]
    BadKnownServers {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// Reading or writing a trust file failed.
    #[error("{}: {source}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A host name that cannot be used for TLS.
    #[error("{host:?} is not a valid server name for TLS")]
    InvalidServerName { host: String },

    /// Remembering a certificate was asked for, but the policy has no known_servers file.
    #[error(
        "no known_servers file is configured, so the certificate of {server} cannot be stored"
    )]
    NoKnownServersFile { server: String },

    /// The TCP connection failed.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        server: String,
        #[source]
        source: std::io::Error,
    },

    /// The TLS handshake failed for a reason other than trust.
    #[error("TLS handshake with {server} failed: {reason}")]
    Handshake { server: String, reason: String },
}

fn known_servers_hint(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => format!(", or answer yes to store it in {}.", path.display()),
        None => ".".to_string(),
    }
}

fn join_fingerprints(fingerprints: &[Fingerprint]) -> String {
    fingerprints
        .iter()
        .map(Fingerprint::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}
