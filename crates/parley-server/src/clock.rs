//! Wall-clock time as the server stores and shows it: milliseconds since the Unix epoch (the
//! form history, bans and the cluster's events carry) and the `server-time` text. One module,
//! so every layer converts alike and none has to reach up to another for a timestamp.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch (0 for a clock before 1970).
pub fn now_ms() -> i64 {
    millis(SystemTime::now())
}

/// `at` in milliseconds since the Unix epoch (0 before it, saturating far after it).
pub fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the Unix epoch (the epoch itself for a negative value).
pub fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The last millisecond RFC 3339's four-digit year can show (9999-12-31T23:59:59.999Z).
const LAST_SHOWN_MS: i64 = 253_402_300_799_999;

/// `server-time` format: RFC 3339 UTC with milliseconds. A later time (only another node's
/// event could carry one) is shown as the last one there is: the formatter panics past it,
/// and a panic while applying another node's event would end the task that applies them.
pub fn format_time(time_ms: i64) -> String {
    humantime::format_rfc3339_millis(system_time(time_ms.min(LAST_SHOWN_MS))).to_string()
}

/// A `server-time` text (`2026-11-25T13:00:00.000Z`) in milliseconds since the Unix epoch;
/// `None` for anything else or a time before the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// A human-readable UTC time for 003 and TIME.
pub fn httpdate_like(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip_and_clamp() {
        assert_eq!(millis(system_time(1_700_000_000_123)), 1_700_000_000_123);
        assert_eq!(system_time(-5), UNIX_EPOCH, "before the epoch clamps to it");
        assert_eq!(millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert!(now_ms() > 1_700_000_000_000);
    }

    #[test]
    fn server_time_has_milliseconds_in_utc() {
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            parse_time("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn a_time_past_year_9999_is_shown_as_its_last_millisecond() {
        assert_eq!(format_time(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_time(LAST_SHOWN_MS + 1), "9999-12-31T23:59:59.999Z");
    }
}
