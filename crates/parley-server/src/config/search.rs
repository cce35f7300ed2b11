//! `[search]`: the `SEARCH` command (soju.im/search): how much one search may return and cost,
//! and how often a connection may search. Searching is the most expensive thing a client can
//! ask for, so every part of it has a bound here.

use serde::{Deserialize, Serialize};

use super::check::Invalid;

/// `[search]`: limits of the `SEARCH` command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Offer `SEARCH` (needs `history.enabled`).
    pub enabled: bool,
    /// Messages one search returns when the client names no `limit`.
    pub default_limit: usize,
    /// Most messages one search returns, whatever `limit` the client names.
    pub max_limit: usize,
    /// Longest `text` accepted, in bytes.
    pub max_text_len: usize,
    /// Most words in one `text`.
    pub max_words: usize,
    /// A search running longer than this is stopped and answered with `FAIL SEARCH
    /// INTERNAL_ERROR`.
    pub timeout_ms: u64,
    /// Searches a connection may make at once before the next ones wait.
    pub burst: u32,
    /// Searches per minute a connection may make on average after its burst.
    pub per_minute: u32,
    /// Searches running at once on this server; more wait their turn.
    pub max_concurrent: usize,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            default_limit: 50,
            max_limit: 100,
            max_text_len: 200,
            max_words: 8,
            timeout_ms: 1000,
            burst: 5,
            per_minute: 20,
            max_concurrent: 2,
        }
    }
}

impl SearchConfig {
    /// Every bound inside its range (the ranges `config/docs.rs` names).
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let ranges: [(&'static str, u64, u64, u64); 8] = [
            ("search.max_limit", as_u64(self.max_limit), 1, 1000),
            (
                "search.default_limit",
                as_u64(self.default_limit),
                1,
                as_u64(self.max_limit),
            ),
            ("search.max_text_len", as_u64(self.max_text_len), 1, 1000),
            ("search.max_words", as_u64(self.max_words), 1, 32),
            ("search.timeout_ms", self.timeout_ms, 10, 60_000),
            ("search.burst", u64::from(self.burst), 1, 1000),
            ("search.per_minute", u64::from(self.per_minute), 1, 6000),
            ("search.max_concurrent", as_u64(self.max_concurrent), 1, 64),
        ];
        for (key, value, low, high) in ranges {
            if value < low || value > high {
                return Err(Invalid::new(
                    key,
                    format!("{value} is out of range; use {low} to {high}"),
                ));
            }
        }
        Ok(())
    }
}
