//! Per-connection flood control: a token bucket that delays, rather than drops, excess lines.
//!
//! Delaying the reader ("fake lag", as classic ircds do) keeps every line and its order, and the
//! kernel's receive window then pushes back on the flooder alone; nobody else waits.

use std::time::Duration;
use tokio::time::Instant;

use crate::config::FloodConfig;

/// Kept small (`f32`s): one lives in every connection's read loop for the connection's life.
pub struct FloodControl {
    enabled: bool,
    burst: f32,
    per_second: f32,
    tokens: f32,
    last: Instant,
}

impl FloodControl {
    pub fn new(config: &FloodConfig) -> Self {
        // A burst past f32's exact integers (16 million lines) is as good as unlimited.
        let burst = config.burst.max(1) as f32;
        FloodControl {
            enabled: config.enabled,
            burst,
            per_second: (config.lines_per_second as f32).max(f32::MIN_POSITIVE),
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Take a token for one line; returns how long to wait before handling it.
    pub fn take(&mut self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            None
        } else {
            // A rate too small to divide by waits "forever" rather than panicking.
            Some(
                Duration::try_from_secs_f32(-self.tokens / self.per_second)
                    .unwrap_or(Duration::MAX),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(burst: u32, rate: f64) -> FloodConfig {
        FloodConfig {
            enabled: true,
            burst,
            lines_per_second: rate,
        }
    }

    #[test]
    fn burst_passes_then_lines_are_delayed() {
        let mut flood = FloodControl::new(&config(3, 2.0));
        for _ in 0..3 {
            assert_eq!(flood.take(), None);
        }
        let wait = flood.take().expect("the fourth line exceeds the burst");
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500));
        let wait = flood.take().expect("and the fifth waits longer");
        assert!(wait > Duration::from_millis(900));
    }

    #[test]
    fn disabled_never_delays() {
        let mut cfg = config(1, 1.0);
        cfg.enabled = false;
        let mut flood = FloodControl::new(&cfg);
        for _ in 0..100 {
            assert_eq!(flood.take(), None);
        }
    }
}
