//! LIST's search conditions (ISUPPORT `ELIST=CMNTU`, modern.ircdocs.horse LIST): channel names,
//! name masks (`*rust*`, M) and their negation (`!*spam*`, N), user counts (`<n`, `>n`, U),
//! creation time (`C<n`, `C>n`, minutes, C) and topic age (`T<n`, `T>n`, minutes, T). Parsed
//! once per LIST, then asked of each channel under the world lock, so a LIST costs one pass.

use std::time::{Duration, SystemTime};

use parley_proto::{casefold, wildcard_match};

use crate::state::Channel;

/// What one LIST asks for. Names and masks are alternatives (any may match); every other
/// condition must hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Casefolded exact names and masks (M); empty: every channel.
    wanted: Vec<String>,
    /// Casefolded masks a channel must not match (N).
    unwanted: Vec<String>,
    /// Fewer members than this (`<n`).
    users_below: Option<usize>,
    /// More members than this (`>n`).
    users_above: Option<usize>,
    /// Created less than this long ago (`C<n`).
    created_within: Option<Duration>,
    /// Created more than this long ago (`C>n`).
    created_before: Option<Duration>,
    /// Topic set less than this long ago (`T<n`).
    topic_within: Option<Duration>,
    /// Topic set more than this long ago (`T>n`).
    topic_before: Option<Duration>,
}

/// A number of minutes as a duration; a huge one (the client's to choose) saturates rather
/// than overflowing.
fn minutes(text: &str) -> Option<Duration> {
    text.parse::<u64>()
        .ok()
        .map(|m| Duration::from_secs(m.saturating_mul(60)))
}

impl ListQuery {
    /// The conditions in LIST's parameters (each a comma-separated list). A condition whose
    /// number does not parse is dropped rather than read as a channel name.
    pub fn parse(params: &[&str]) -> ListQuery {
        let mut query = ListQuery::default();
        for item in params.iter().flat_map(|p| p.split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            // Split after the first character, not byte: a name may start with any.
            let first = item.chars().next().map_or(0, char::len_utf8);
            let (head, rest) = item.split_at(first);
            match head {
                "<" => query.users_below = rest.parse().ok(),
                ">" => query.users_above = rest.parse().ok(),
                "!" => query.unwanted.push(casefold(rest)),
                "C" | "c" if rest.starts_with('<') => query.created_within = minutes(&rest[1..]),
                "C" | "c" if rest.starts_with('>') => query.created_before = minutes(&rest[1..]),
                "T" | "t" if rest.starts_with('<') => query.topic_within = minutes(&rest[1..]),
                "T" | "t" if rest.starts_with('>') => query.topic_before = minutes(&rest[1..]),
                _ => query.wanted.push(casefold(item)),
            }
        }
        query
    }

    /// Whether the channel (`key` its casefolded name) answers this query at `now`.
    pub fn matches(&self, key: &str, channel: &Channel, now: SystemTime) -> bool {
        let age = |at: SystemTime| now.duration_since(at).unwrap_or_default();
        let users = channel.members.len();
        let topic_age = channel.topic.as_ref().map(|t| age(t.set_at));
        (self.wanted.is_empty() || self.wanted.iter().any(|m| wildcard_match(m, key)))
            && !self.unwanted.iter().any(|m| wildcard_match(m, key))
            && self.users_below.is_none_or(|n| users < n)
            && self.users_above.is_none_or(|n| users > n)
            && self.created_within.is_none_or(|d| age(channel.created) < d)
            && self.created_before.is_none_or(|d| age(channel.created) > d)
            && self
                .topic_within
                .is_none_or(|d| topic_age.is_some_and(|a| a < d))
            && self
                .topic_before
                .is_none_or(|d| topic_age.is_some_and(|a| a > d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_told_apart_from_names() {
        let query = ListQuery::parse(&["#Rust,*go*,!*spam*,<10,>2,C<60,T>5"]);
        assert_eq!(query.wanted, ["#rust", "*go*"]);
        assert_eq!(query.unwanted, ["*spam*"]);
        assert_eq!((query.users_below, query.users_above), (Some(10), Some(2)));
        assert_eq!(query.created_within, Some(Duration::from_secs(3600)));
        assert_eq!(query.topic_before, Some(Duration::from_secs(300)));
        assert_eq!(ListQuery::parse(&["<x"]).users_below, None);
        assert_eq!(ListQuery::parse(&["é*"]).wanted, ["é*"]);
        assert_eq!(
            ListQuery::parse(&["C<18446744073709551615"]).created_within,
            Some(Duration::from_secs(u64::MAX)),
            "no overflow"
        );
    }

    #[test]
    fn a_channel_must_answer_every_condition() {
        let now = SystemTime::now();
        let mut channel = Channel::new("#Rust");
        channel.created = now - Duration::from_secs(7200);
        let asks = |params: &[&str]| ListQuery::parse(params).matches("#rust", &channel, now);
        assert!(asks(&[]));
        assert!(asks(&["#RUST"]));
        assert!(asks(&["*us*"]));
        assert!(!asks(&["!*us*"]));
        assert!(asks(&["<1"]), "no members yet");
        assert!(!asks(&[">0"]));
        assert!(asks(&["C>60"]));
        assert!(!asks(&["C<60"]));
        assert!(!asks(&["T<60"]), "no topic: no topic age to compare");
    }
}
