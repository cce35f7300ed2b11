//! `[tls]`: the certificate the TLS listeners present (a file, a generated one, or ACME) and the
//! STS policy.

use serde::{Deserialize, Serialize};

/// `[tls]`: the certificate the TLS listeners present, and the STS policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; empty means a self-signed one generated in the data directory.
    pub cert: String,
    /// PEM private key for `cert`.
    pub key: String,
    /// Advertise the IRCv3 `sts` policy on plain-text connections.
    pub sts: bool,
    /// How long clients should remember to use TLS (the `duration` of the policy).
    pub sts_duration_secs: u64,
    /// A DNS name to get a certificate for from an ACME CA (Let's Encrypt); empty turns ACME off.
    pub acme_domain: String,
    /// The ACME CA's directory URL.
    pub acme_directory: String,
    /// Contact address given to the CA for expiry and policy mail; optional.
    pub acme_email: String,
    /// Extra PEM CA certificates trusted for the ACME server's own HTTPS (pebble, a private CA).
    pub acme_ca: String,
    /// Plain-HTTP listeners answering the HTTP-01 challenge (port 80 for a real CA).
    pub acme_http_listen: Vec<String>,
    /// Renew when the certificate has fewer than this many days left.
    pub acme_renew_days: u64,
}

/// Let's Encrypt's production ACME directory, the default `tls.acme_directory`.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert: String::new(),
            key: String::new(),
            sts: true,
            sts_duration_secs: 2_592_000,
            acme_domain: String::new(),
            acme_directory: LETS_ENCRYPT_DIRECTORY.to_owned(),
            acme_email: String::new(),
            acme_ca: String::new(),
            acme_http_listen: vec!["0.0.0.0:80".to_owned()],
            acme_renew_days: 30,
        }
    }
}
