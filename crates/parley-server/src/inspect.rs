//! Read-only admin views for the same binary: `parleyd audit` prints the audit trail and
//! `parleyd history export` writes one conversation's log as text or JSON lines. Both open the
//! database directly, so they work whether or not the server is running (WAL lets them share).
//! Much of what they print was typed by users (kick reasons, messages, nicks) and lands on an
//! operator's terminal, so every control character is printed as a visible escape
//! ([`escape_controls`]), never raw: a stored `ESC [2J` must not clear that screen.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use parley_proto::{casefold, validate};

/// The longest nick or account name any configuration allows (`limits.nick_len` is 1 to 64).
const MAX_NAME_LEN: usize = 64;

use crate::clock::{format_time, now_ms};
use crate::config::Config;
use crate::history::dm_key;
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
    let shown =
        |field: &Option<String>| escape_controls(field.as_deref().unwrap_or("-")).into_owned();
    for row in &rows {
        // `account=` only where there is one: most events are by someone logged in or by nobody.
        let account = row
            .account
            .as_deref()
            .map(|account| format!(" account={}", escape_controls(account)))
            .unwrap_or_default();
        writeln!(
            out,
            "{}  {:<14} actor={}{account} target={} ip={}{}",
            format_time(row.time_ms),
            escape_controls(&row.action),
            shown(&row.actor),
            shown(&row.target),
            shown(&row.ip),
            row.detail
                .as_deref()
                .map(|d| format!("  {}", escape_controls(d)))
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
                let nick = escape_controls(m.source.split('!').next().unwrap_or(&m.source));
                let text = escape_controls(&m.text);
                let line = if m.kind == "NOTICE" {
                    format!("-{nick}- {text}")
                } else {
                    format!("<{nick}> {text}")
                };
                let to = escape_controls(&m.to);
                writeln!(out, "[{}] {to} {line}", format_time(m.time_ms))?;
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
                writeln!(out, "{}", json_without_raw_controls(&value.to_string()))?;
            }
        }
    }
    Ok(rows.len())
}

/// `text` with every character that a terminal could act on written out visibly: `\\` for a
/// backslash (so an escape in the output always was a control in the data), `\xNN` for the C0
/// controls and DEL (ESC is `\x1b`; IRC's bold and colour codes are C0 too), `\u{NN}` for the
/// C1 controls (U+009B is a one-character CSI) and the bidirectional overrides that reorder what
/// is shown. Borrowed when there is nothing to escape, as almost always.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) && !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Controls (C0, DEL, C1) and the Unicode bidirectional embedding, override and isolate marks.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A serialized JSON value with the characters JSON lets through raw (DEL, C1, bidi marks) as
/// `\uXXXX` escapes: the same value to a JSON reader, inert on a terminal. (serde_json already
/// escapes C0; those characters only ever occur inside strings, where `\uXXXX` means them.)
fn json_without_raw_controls(json: &str) -> Cow<'_, str> {
    if !json.chars().any(needs_escape) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
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
    fn controls_are_escaped_visibly_and_unambiguously() {
        assert!(matches!(escape_controls("plain text"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("\u{1b}[2J\u{7}\u{3}4red\u{7f}\u{9b}x\u{202e}"),
            "\\x1b[2J\\x07\\x034red\\x7f\\u{9b}x\\u{202e}"
        );
        // A literal backslash-x in the data cannot pass for an escaped control.
        assert_eq!(escape_controls("\\x1b"), "\\\\x1b");
        let json = serde_json::json!({ "text": "\u{1b}\u{7f}\u{9b}\u{202e}" }).to_string();
        let safe = json_without_raw_controls(&json);
        assert!(!safe.chars().any(needs_escape), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back["text"], "\u{1b}\u{7f}\u{9b}\u{202e}");
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
