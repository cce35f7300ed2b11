//! The search panel's view-model (server-side search, `soju.im/search`): the header saying what
//! was looked for and how it went, and one row per hit (time, where, who, text), newest first.
//! Pure functions of `parley_client::SearchResults`, so what the panel says is tested here;
//! `app/search.rs` only lays it out and turns clicks into actions.

use chrono::TimeZone;
use parley_client::{LineKind, SearchResults, SearchStatus};

/// One hit as the panel shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchRow {
    /// The hit's index in the results: what "open" names.
    pub index: usize,
    /// "2019-01-04 14:33".
    pub time: String,
    /// The conversation: a channel, or the other side of a private one.
    pub place: String,
    /// "bill", or "* bill" for an action.
    pub who: String,
    pub text: String,
}

impl SearchRow {
    /// The row as one line of text (the button's label, and what a screen reader says).
    pub fn label(&self) -> String {
        format!("{} {} {}: {}", self.time, self.place, self.who, self.text)
    }
}

/// What the panel says above the hits.
pub fn header(results: &SearchResults) -> String {
    let count = results.hits.len();
    let plural = if count == 1 { "" } else { "s" };
    let place = results
        .query
        .target
        .as_deref()
        .map(|t| format!(" in {t}"))
        .unwrap_or_default();
    let what = format!("\u{201c}{}\u{201d}{place}", results.query.text);
    match &results.status {
        SearchStatus::Waiting if count == 0 => format!("Searching for {what}\u{2026}"),
        SearchStatus::Waiting => {
            format!("{count} result{plural} for {what}, loading older\u{2026}")
        }
        SearchStatus::Done { .. } if count == 0 => format!("Nothing found for {what}"),
        SearchStatus::Done { .. } => format!("{count} result{plural} for {what}"),
        SearchStatus::Failed { code, text } => {
            format!("The search for {what} failed: {text} ({code})")
        }
    }
}

/// The hits as rows, times in `tz`.
pub fn rows<Tz: TimeZone>(results: &SearchResults, tz: &Tz) -> Vec<SearchRow>
where
    Tz::Offset: std::fmt::Display,
{
    results
        .hits
        .iter()
        .enumerate()
        .map(|(index, hit)| SearchRow {
            index,
            time: hit
                .time
                .with_timezone(tz)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            place: hit.buffer.clone(),
            who: match hit.kind {
                LineKind::Action => format!("* {}", hit.from),
                _ => hit.from.clone(),
            },
            text: hit.text.clone(),
        })
        .collect()
}
