//! `[limits]` and `[flood]`: a bound on everything a client can grow, and the token bucket that
//! paces its lines.

use serde::{Deserialize, Serialize};

/// `[limits]`: a bound on everything a client can grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_clients: usize,
    pub max_clients_per_ip: usize,
    /// Connections from one network at once: a /24 for IPv4, a /64 for IPv6.
    pub max_clients_per_cidr: usize,
    pub nick_len: usize,
    pub user_len: usize,
    pub channel_len: usize,
    pub topic_len: usize,
    pub away_len: usize,
    pub kick_len: usize,
    pub channels_per_user: usize,
    /// Registered channels one account may own (they outlive their members).
    pub registered_channels_per_account: usize,
    pub members_per_channel: usize,
    pub targets_per_message: usize,
    pub send_queue_bytes: usize,
    pub registration_timeout_secs: u64,
    /// Time a TLS (or HTTPS) client has to finish its handshake.
    pub handshake_timeout_secs: u64,
    /// Idle time before the server sends a `PING`.
    pub ping_interval_secs: u64,
    /// Time a client has to answer that `PING` before it is disconnected.
    pub ping_timeout_secs: u64,
    pub whowas_entries: usize,
    /// Nicks one client may MONITOR at once (ISUPPORT `MONITOR=`).
    pub monitor: usize,
    /// Longest realname, in USER and SETNAME (ISUPPORT `NAMELEN=`).
    pub realname_len: usize,
    /// Read markers (`MARKREAD`) kept per account; past it the oldest go.
    pub read_markers_per_account: usize,
    /// Bytes of text one `draft/multiline` batch may carry (its `max-bytes`).
    pub multiline_max_bytes: usize,
    /// Lines one `draft/multiline` batch may carry (its `max-lines`).
    pub multiline_max_lines: usize,
    /// Least time between two renames of one channel (RENAME): each sends every member
    /// without draft/channel-rename a PART, JOIN and NAMES, so a channel operator must not
    /// loop it. 0: no wait. Server operators and changes of case only are not held to it.
    pub channel_rename_interval_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_clients: 10_000,
            max_clients_per_ip: 256,
            max_clients_per_cidr: 1024,
            nick_len: 30,
            user_len: 16,
            channel_len: 50,
            topic_len: 390,
            away_len: 200,
            kick_len: 255,
            channels_per_user: 50,
            registered_channels_per_account: 20,
            members_per_channel: 20_000,
            targets_per_message: 4,
            send_queue_bytes: 262_144,
            registration_timeout_secs: 60,
            handshake_timeout_secs: 10,
            ping_interval_secs: 120,
            ping_timeout_secs: 60,
            whowas_entries: 1024,
            monitor: 100,
            realname_len: 128,
            read_markers_per_account: 1000,
            multiline_max_bytes: 4096,
            multiline_max_lines: 100,
            channel_rename_interval_secs: 60,
        }
    }
}

/// `[flood]`: per-client line rate limiting (a token bucket).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    pub enabled: bool,
    /// Lines a client may send at once before the rate applies.
    pub burst: u32,
    /// Sustained lines per second once the burst is spent.
    pub lines_per_second: f64,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            burst: 20,
            lines_per_second: 4.0,
        }
    }
}
