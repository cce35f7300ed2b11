//! `[history]`: what is kept of conversations, for how long, and how much a client may fetch.

use serde::{Deserialize, Serialize};

/// `[history]`: what is kept of conversations, for how long, and how much a client may fetch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Store channel and private messages (in the accounts database).
    pub enabled: bool,
    /// Lines of a channel replayed on join to clients without `draft/chathistory`; 0 turns it off.
    pub replay_on_join: usize,
    /// Most messages one CHATHISTORY request returns.
    pub max_request: usize,
    /// Delete messages older than this many days; 0 keeps them forever.
    pub max_age_days: u64,
    /// Keep at most this many messages per channel or conversation; 0 means no limit.
    pub max_rows_per_target: usize,
    /// How often the pruning task runs.
    pub prune_interval_secs: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            replay_on_join: 20,
            max_request: 100,
            max_age_days: 0,
            max_rows_per_target: 0,
            prune_interval_secs: 3600,
        }
    }
}
