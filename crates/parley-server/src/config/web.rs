//! `[web]` and `[metrics]`: the HTTP(S) listeners, for the web client and its WebSocket transport,
//! and for Prometheus.

use serde::{Deserialize, Serialize};

/// `[metrics]`: an HTTP listener serving Prometheus figures at `/metrics` and `/healthz`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Addresses (`ip:port`) to serve metrics on; empty (the default) turns metrics off.
    pub listen: Vec<String>,
}

/// `[web]`: the HTTPS listener with the built-in web client and the IRCv3 WebSocket transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// HTTPS listeners, each an `ip:port`; they use the `[tls]` certificate.
    pub listen: Vec<String>,
    /// Web origins, besides the server's own, whose pages may open a WebSocket; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Days a login session (the web client's "stay logged in" token) lasts unused; each use
    /// starts the days again.
    pub session_days: u64,
    /// Most live sessions one account keeps; a new one beyond this ends the least recently used.
    pub max_sessions: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: vec!["0.0.0.0:8443".to_owned()],
            allowed_origins: Vec::new(),
            session_days: 30,
            max_sessions: 10,
        }
    }
}
