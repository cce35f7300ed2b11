//! Read-only admin views for the same binary: `parleyd audit` prints the audit trail and
//! `parleyd history export` writes one conversation's log as text or JSON lines. Both open the
//! database directly, so they work whether or not the server is running (WAL lets them share).

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use parley_proto::{casefold, validate};

/// The longest nick or account name any configuration allows (`limits.nick_len` is 1 to 64).
const MAX_NAME_LEN: usize = 64;

use crate::config::Config;
use crate::history::dm_key;
use crate::relay::{format_time, now_ms};
use crate::store::{self, AuditFilter, HistoryQuery, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("`{0}` is neither a duration like 2h or 7d nor a time like 2026-11-25T13:00:00Z")]
    BadSince(String),
    #[error("`{0}` is not a conversation: name a channel (#lobby) or two accounts (alice,bob; ~nick for a guest)")]
    BadTarget(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Text,
    Json,
}

/// `--since`: a duration back from now (`2h`, `7d`) or an RFC 3339 time.
fn parse_since(text: &str) -> Result<i64, InspectError> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now_ms().saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)));
    }
    let at =
        humantime::parse_rfc3339_weak(text).map_err(|_| InspectError::BadSince(text.into()))?;
    let ms = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

pub fn audit(
    config: &Config,
    since: Option<&str>,
    actor: Option<&str>,
    action: Option<&str>,
    out: &mut dyn Write,
) -> Result<usize, InspectError> {
    let filter = AuditFilter {
        since_ms: since.map(parse_since).transpose()?,
        actor: actor.map(str::to_string),
        action: action.map(str::to_string),
        limit: 0,
    };
    let rows = store::open_history(config)?.audit(&filter)?;
    for row in &rows {
        writeln!(
            out,
            "{}  {:<14} actor={} target={} ip={}{}",
            format_time(row.time_ms),
            row.action,
            row.actor.as_deref().unwrap_or("-"),
            row.target.as_deref().unwrap_or("-"),
            row.ip.as_deref().unwrap_or("-"),
            row.detail
                .as_deref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default(),
        )?;
    }
    Ok(rows.len())
}

/// The history key for an export target: `#channel` or `alice,bob`.
fn export_key(target: &str) -> Result<String, InspectError> {
    if target.starts_with(['#', '&']) {
        return Ok(casefold(target));
    }
    // Each side a party as history names it: an account, or `~nick` for a guest. Nothing else
    // is made into a key.
    let is_party = |name: &str| {
        let nick = name.strip_prefix('~').unwrap_or(name);
        validate::nick(nick, MAX_NAME_LEN)
    };
    match target.split_once(',') {
        Some((a, b)) if is_party(a) && is_party(b) => Ok(dm_key(&casefold(a), &casefold(b))),
        _ => Err(InspectError::BadTarget(target.into())),
    }
}

pub fn export(
    config: &Config,
    target: &str,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<usize, InspectError> {
    let key = export_key(target)?;
    let rows =
        store::open_history(config)?.query(&key, &HistoryQuery::Latest(None), usize::MAX >> 1)?;
    for m in &rows {
        match format {
            ExportFormat::Text => {
                let nick = m.source.split('!').next().unwrap_or(&m.source);
                let line = if m.kind == "NOTICE" {
                    format!("-{nick}- {}", m.text)
                } else {
                    format!("<{nick}> {}", m.text)
                };
                writeln!(out, "[{}] {} {line}", format_time(m.time_ms), m.to)?;
            }
            ExportFormat::Json => {
                let value = serde_json::json!({
                    "time": format_time(m.time_ms),
                    "msgid": m.msgid,
                    "kind": m.kind,
                    "source": m.source,
                    "account": m.account,
                    "target": m.to,
                    "text": m.text,
                });
                writeln!(out, "{value}")?;
            }
        }
    }
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let hour_ago = parse_since("1h").expect("duration");
        assert!((now_ms() - hour_ago - 3_600_000).abs() < 5_000);
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z").expect("time"),
            1_700_000_000_000
        );
        assert!(parse_since("last tuesday").is_err());
    }

    #[test]
    fn export_targets() {
        assert_eq!(export_key("#Lobby").expect("channel"), "#lobby");
        assert_eq!(
            export_key("Bob,alice").expect("pair"),
            dm_key("alice", "bob")
        );
        assert_eq!(
            export_key("alice,~Guest").expect("with a guest"),
            dm_key("alice", "~guest")
        );
        assert_eq!(
            export_key("alice,bob|x").expect("pair"),
            dm_key("alice", "bob|x")
        );
        assert!(export_key("bob").is_err());
        assert!(export_key("alice,bob,x").is_err());
        assert!(export_key("alice,bob:x").is_err());
    }
}
