//! Full-text search of stored messages (the `SEARCH` command, soju's `soju.im/search`): what a
//! search asks of a store ([`SearchQuery`]) and the one query language both backends speak.
//!
//! The language is deliberately small, so no user text can reach a database's own query syntax:
//! the text is cut into words (runs of letters and digits; everything else separates them), every
//! word must occur (in any order, case-insensitively), and a word written with a trailing `*`
//! (`deploy*`) matches every word it begins. Each backend is handed the words already cut and
//! quotes each as a literal term ([`fts5_match`], [`tsquery`]), so `"`, `NEAR`, `:` or `&` in a
//! search are separators, never operators.

use std::time::Duration;

use super::StoreError;

/// A prefix (`ab*`) must be at least this long: a one- or two-letter prefix stands for a large
/// part of the whole index, which is a scan, not a lookup.
pub const MIN_PREFIX_CHARS: usize = 3;

/// One word of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchWord {
    /// Letters and digits only (see the module comment).
    pub text: String,
    /// Written with a trailing `*`: matches every word that begins with `text`.
    pub prefix: bool,
}

/// The words of a search text, at most `max_words` of them; `None` when there are more.
pub fn search_words(text: &str, max_words: usize) -> Option<Vec<SearchWord>> {
    let mut words: Vec<SearchWord> = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            current.push(c);
            if chars.peek().is_some_and(|next| next.is_alphanumeric()) {
                continue;
            }
            let starred = chars.peek() == Some(&'*');
            let word = std::mem::take(&mut current);
            let prefix = starred && word.chars().count() >= MIN_PREFIX_CHARS;
            if words.iter().any(|w| w.text == word && w.prefix == prefix) {
                continue;
            }
            if words.len() == max_words {
                return None;
            }
            words.push(SearchWord { text: word, prefix });
        }
    }
    Some(words)
}

/// Which stored messages a search may look at and which of them it wants. The scope
/// (`targets`, `party`) is decided by the caller from what the searcher may read; the store only
/// ever looks inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Every word must match; empty: any text (a search by sender or time alone).
    pub words: Vec<SearchWord>,
    /// History keys the search may look in (channels, or one private conversation).
    pub targets: Vec<String>,
    /// Also every private conversation this party (a casefolded account) is one side of.
    pub party: Option<String>,
    /// Only messages sent under this nick (compared ASCII case-insensitively).
    pub from: Option<String>,
    /// Only messages at or after this time (ms since the Unix epoch).
    pub after: Option<i64>,
    /// Only messages at or before this time.
    pub before: Option<i64>,
    /// At most this many messages: the newest ones at or before `before`, or when `after` is
    /// given the oldest ones from it; returned oldest first either way.
    pub limit: usize,
    /// The store gives up after this long (and says so: [`SearchError::TimedOut`]).
    pub timeout: Duration,
}

impl SearchQuery {
    /// Nothing may be searched: no target, no private conversations.
    pub fn is_empty_scope(&self) -> bool {
        self.targets.is_empty() && self.party.is_none()
    }

    /// Searched from `after` forwards (rather than back from `before`).
    pub fn forwards(&self) -> bool {
        self.after.is_some()
    }

    /// `from` as a `LIKE` pattern for `source` (`nick!user@host`), with `\` as the escape.
    pub fn from_pattern(&self) -> Option<String> {
        self.from.as_ref().map(|nick| {
            let mut pattern = String::with_capacity(nick.len() + 2);
            for c in nick.chars() {
                if matches!(c, '%' | '_' | '\\') {
                    pattern.push('\\');
                }
                pattern.push(c);
            }
            pattern.push_str("!%");
            pattern
        })
    }
}

/// Why a search gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the search took longer than {0:?} and was stopped")]
    TimedOut(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The words as an FTS5 MATCH expression: each a quoted string (a literal term, whatever it
/// holds), a prefix one followed by `*`, all of them required (FTS5's implicit AND).
pub fn fts5_match(words: &[SearchWord]) -> String {
    words
        .iter()
        .map(|w| {
            let quoted = format!("\"{}\"", w.text.replace('"', "\"\""));
            if w.prefix {
                quoted + "*"
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words as a PostgreSQL `tsquery` (for `to_tsquery('simple', ...)`): each a quoted lexeme
/// (`'word'`, `'word':*` for a prefix), joined with `&`.
pub fn tsquery(words: &[SearchWord]) -> String {
    words
        .iter()
        .map(|w| {
            let quoted = format!("'{}'", w.text.replace('\\', "\\\\").replace('\'', "''"));
            if w.prefix {
                quoted + ":*"
            } else {
                quoted
            }
        })
        .collect::<Vec<_>>()
        .join(" & ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, prefix: bool) -> SearchWord {
        SearchWord {
            text: text.into(),
            prefix,
        }
    }

    #[test]
    fn text_is_cut_into_words_and_operators_are_separators() {
        assert_eq!(
            search_words("Deploy* the \"NEAR(x y)\" café-bar: a*", 10),
            Some(vec![
                word("Deploy", true),
                word("the", false),
                word("NEAR", false),
                word("x", false),
                word("y", false),
                word("café", false),
                word("bar", false),
                // Too short to be a prefix: an exact word.
                word("a", false),
            ])
        );
        // `OR`, `1` (twice, kept once): words, not SQL or FTS operators.
        assert_eq!(search_words("' OR 1=1 --", 10).map(|w| w.len()), Some(2));
        assert_eq!(search_words("!!! ***", 10), Some(Vec::new()));
        assert_eq!(search_words("a b c", 2), None);
        // A word said twice counts once.
        assert_eq!(search_words("go go go", 1), Some(vec![word("go", false)]));
    }

    #[test]
    fn backends_get_quoted_terms() {
        let words = vec![word("deploy", true), word("friday", false)];
        assert_eq!(fts5_match(&words), "\"deploy\"* \"friday\"");
        assert_eq!(tsquery(&words), "'deploy':* & 'friday'");
    }

    #[test]
    fn from_is_a_literal_nick_prefix() {
        let query = SearchQuery {
            words: Vec::new(),
            targets: Vec::new(),
            party: None,
            from: Some("a_b%".into()),
            after: None,
            before: None,
            limit: 1,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(query.from_pattern().as_deref(), Some("a\\_b\\%!%"));
    }
}
