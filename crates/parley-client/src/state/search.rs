//! Server-side search (soju's `search` extension, cap `soju.im/search`; `draft/search` is
//! accepted as the same thing): `SEARCH <attributes>` asks, a batch of PRIVMSG/NOTICE answers,
//! `FAIL SEARCH <code>` refuses. One search is open at a time; its results are a value the UIs
//! render (a list, not buffer lines, so found messages never count as unread). Paging goes to
//! older messages with `before=` the oldest hit's time, which the spec makes inclusive, so hits
//! are told apart by msgid and a page that brings nothing new ends the search.

use chrono::{DateTime, Utc};
use parley_proto::{casefold, escape_tag_value, Message, UserHost};

use super::{irc_line, iso_time, BufferKind, LineKind, State};
use crate::input::{is_channel, InputError};

/// The capability names of the extension: soju's, and the draft name the issue uses.
pub const SEARCH_CAPS: &[&str] = &["soju.im/search", "draft/search"];
/// Batch types a search answer may come in: the spec's examples say `soju.im/search`, its text
/// says `search`; a `draft/search` server would say that.
const SEARCH_BATCH_TYPES: &[&str] = &["soju.im/search", "search", "draft/search"];
/// Messages asked for per page (`limit=`).
pub const SEARCH_PAGE: usize = 50;
/// Hits kept for one search over all its pages: a server that ignores `limit` cannot grow it
/// further, and a person does not read more.
pub const MAX_SEARCH_HITS: usize = 1000;
/// Longest search text accepted, in bytes; the SEARCH line must fit in 512 bytes.
pub const MAX_SEARCH_TEXT: usize = 300;

/// What the user looks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Words to match (`text=`); how they match is the server's choice.
    pub text: String,
    /// Only this channel or private conversation (`in=`).
    pub target: Option<String>,
    /// Only messages sent by this nick (`from=`).
    pub from: Option<String>,
}

/// One message found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchHit {
    /// The buffer it belongs to: the channel, or the other side of a private conversation.
    pub buffer: String,
    /// The message's target as sent (a channel, or a nick).
    pub target: String,
    pub time: DateTime<Utc>,
    pub from: String,
    pub text: String,
    pub kind: LineKind,
    pub msgid: Option<String>,
}

/// Where a search is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchStatus {
    /// Asked; the answer has not ended yet.
    Waiting,
    /// Answered; `more` says older results may exist (the last page was full).
    Done { more: bool },
    /// `FAIL SEARCH <code> ... :<text>` from the server.
    Failed { code: String, text: String },
}

/// The results of the current search, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchResults {
    pub query: SearchQuery,
    pub hits: Vec<SearchHit>,
    pub status: SearchStatus,
}

impl SearchResults {
    /// Older results can be asked for (`Action::SearchMore`).
    pub fn has_more(&self) -> bool {
        self.status == SearchStatus::Done { more: true }
    }
}

/// The search bookkeeping inside [`State`].
#[derive(Debug, Default)]
pub(super) struct Search {
    results: Option<SearchResults>,
    /// The reference of the batch carrying the answer, once it opened.
    batch: Option<String>,
    /// Messages in the current page, new or not: a full page means there may be more.
    page_count: usize,
    page_new: usize,
}

impl State {
    /// The server offers search (and we asked for it).
    pub fn search_supported(&self) -> bool {
        SEARCH_CAPS.iter().any(|cap| self.has_cap(cap))
    }

    /// The current search and its results, if one was made.
    pub fn search_results(&self) -> Option<&SearchResults> {
        self.search.results.as_ref()
    }

    /// Forgets the current search (the results view was closed).
    pub fn clear_search(&mut self) {
        self.search = Search::default();
    }

    /// Focuses the conversation of hit `index` (opening a private conversation that was
    /// closed); returns its name, or `None` when there is no such hit.
    pub fn open_search_hit(&mut self, index: usize) -> Option<String> {
        let name = self
            .search
            .results
            .as_ref()?
            .hits
            .get(index)?
            .buffer
            .clone();
        let kind = if is_channel(&name) {
            BufferKind::Channel
        } else {
            BufferKind::Query
        };
        let at = self.buffer_index(&name, kind);
        self.set_active(at);
        Some(name)
    }

    /// Starts a search: the SEARCH line for its first page.
    pub(super) fn start_search(&mut self, query: SearchQuery) -> Result<String, InputError> {
        if !self.search_supported() {
            return Err(InputError::NoTarget(
                "this server offers no search (soju.im/search)",
            ));
        }
        let query = self.resolve_search_target(query);
        if query.text.trim().is_empty() {
            return Err(InputError::Usage("/search [#channel|nick] <words>"));
        }
        if query.text.len() > MAX_SEARCH_TEXT {
            return Err(InputError::NoTarget(
                "the search text is too long (at most 300 bytes)",
            ));
        }
        let line = search_line(&query, None);
        self.search = Search {
            results: Some(SearchResults {
                query,
                hits: Vec::new(),
                status: SearchStatus::Waiting,
            }),
            ..Search::default()
        };
        Ok(line)
    }

    /// Asks for the page of results older than those shown.
    pub(super) fn search_more(&mut self) -> Result<String, InputError> {
        let Some(results) = self.search.results.as_mut() else {
            return Err(InputError::NoTarget(
                "no search to continue; /search <words> starts one",
            ));
        };
        if !results.has_more() {
            return Err(InputError::NoTarget("no older results"));
        }
        let before = results.hits.last().map(|h| h.time);
        let line = search_line(&results.query, before);
        results.status = SearchStatus::Waiting;
        self.search.batch = None;
        self.search.page_count = 0;
        self.search.page_new = 0;
        Ok(line)
    }

    /// `/search bob words`: the first word is the target when it names an open private
    /// conversation (channels are recognised when typed, nicks only here, where the
    /// conversations are known).
    fn resolve_search_target(&self, mut query: SearchQuery) -> SearchQuery {
        if query.target.is_none() {
            if let Some((first, rest)) = query.text.trim().split_once(' ') {
                let is_query = self
                    .find(first)
                    .is_some_and(|i| self.buffers[i].kind == BufferKind::Query);
                if is_query && !rest.trim().is_empty() {
                    query.target = Some(first.to_string());
                    query.text = rest.trim().to_string();
                }
            }
        }
        query
    }

    /// Takes the lines that belong to a search answer (its BATCH, the messages in it, and
    /// `FAIL SEARCH`); true when the line was one of them.
    pub(super) fn on_search_line(&mut self, msg: &Message<'_>, command: &str) -> bool {
        match command {
            "BATCH" => {
                let Some(reference) = msg.param(0) else {
                    return false;
                };
                if let Some(id) = reference.strip_prefix('+') {
                    let is_search = msg
                        .param(1)
                        .is_some_and(|kind| SEARCH_BATCH_TYPES.contains(&kind));
                    if is_search {
                        self.search.batch = Some(id.to_string());
                    }
                    is_search
                } else if let Some(id) = reference.strip_prefix('-') {
                    if self.search.batch.as_deref() != Some(id) {
                        return false;
                    }
                    self.search.batch = None;
                    self.end_search_page();
                    true
                } else {
                    false
                }
            }
            "FAIL" if msg.param(0) == Some("SEARCH") => {
                let code = msg.param(1).unwrap_or("").to_string();
                let text = msg.params.last().copied().unwrap_or("").to_string();
                if let Some(results) = self.search.results.as_mut() {
                    results.status = SearchStatus::Failed { code, text };
                }
                self.search.batch = None;
                true
            }
            _ => {
                let in_search = self.search.batch.is_some()
                    && msg.tags.get("batch").as_deref() == self.search.batch.as_deref();
                if in_search && matches!(command, "PRIVMSG" | "NOTICE") {
                    self.add_search_hit(msg, command);
                }
                in_search
            }
        }
    }

    fn add_search_hit(&mut self, msg: &Message<'_>, command: &str) {
        let (Some(target), Some(text), Some(source)) = (msg.param(0), msg.param(1), msg.source)
        else {
            return;
        };
        let from = UserHost::parse(source).nick.to_string();
        let buffer = if is_channel(target) || self.is_me(&from) {
            target.to_string()
        } else {
            from.clone()
        };
        let (kind, text) = match text
            .strip_prefix("\x01ACTION ")
            .map(|t| t.trim_end_matches('\x01'))
        {
            Some(action) => (LineKind::Action, action.to_string()),
            None if command == "NOTICE" => (LineKind::Notice, text.to_string()),
            None => (LineKind::Message, text.to_string()),
        };
        let time = msg
            .tags
            .get("time")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
        let hit = SearchHit {
            buffer,
            target: target.to_string(),
            time,
            from,
            text,
            kind,
            msgid: msg.tags.get("msgid").map(|m| m.into_owned()),
        };
        self.search.page_count += 1;
        let Some(results) = self.search.results.as_mut() else {
            return;
        };
        let seen = results.hits.iter().any(|h| match (&h.msgid, &hit.msgid) {
            (Some(a), Some(b)) => a == b,
            _ => {
                h.time == hit.time && h.text == hit.text && casefold(&h.from) == casefold(&hit.from)
            }
        });
        if seen || results.hits.len() >= MAX_SEARCH_HITS {
            return;
        }
        self.search.page_new += 1;
        // A batch comes oldest first, so a hit with the same time as one already here (two
        // lines in one millisecond) is the newer of the two: it goes before it.
        let at = results.hits.partition_point(|h| h.time > hit.time);
        results.hits.insert(at, hit);
    }

    fn end_search_page(&mut self) {
        let full = self.search.page_count >= SEARCH_PAGE;
        let progressed = self.search.page_new > 0;
        if let Some(results) = self.search.results.as_mut() {
            let room = results.hits.len() < MAX_SEARCH_HITS;
            if results.status == SearchStatus::Waiting {
                results.status = SearchStatus::Done {
                    more: full && progressed && room,
                };
            }
        }
    }
}

/// `SEARCH text=...;in=...;from=...;limit=N[;before=...]`. The attributes are written as
/// message tags are (soju parses them so), so a space or ';' in the text is escaped.
fn search_line(query: &SearchQuery, before: Option<DateTime<Utc>>) -> String {
    let mut attributes = Vec::new();
    let mut push = |key: &str, value: &str| {
        if !attributes.is_empty() {
            attributes.push(b';');
        }
        attributes.extend_from_slice(key.as_bytes());
        attributes.push(b'=');
        escape_tag_value(value, &mut attributes);
    };
    push("text", query.text.trim());
    if let Some(target) = &query.target {
        push("in", target);
    }
    if let Some(from) = &query.from {
        push("from", from);
    }
    push("limit", &SEARCH_PAGE.to_string());
    if let Some(before) = before {
        push("before", &iso_time(before));
    }
    let attributes = String::from_utf8_lossy(&attributes).into_owned();
    irc_line("SEARCH", &[&attributes], None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{parse, Action};
    use crate::state::tests::{connected, feed};

    fn searching() -> State {
        connected("soju.im/search batch server-time message-tags")
    }

    #[test]
    fn the_cap_is_asked_for_under_both_names() {
        for cap in SEARCH_CAPS {
            let mut s = State::new("me", "Me");
            s.on_connected(false, crate::Auth::Guest);
            let out = feed(&mut s, &[&format!(":srv CAP * LS :batch {cap}")]);
            assert_eq!(out, [format!("CAP REQ :batch {cap}")]);
            feed(&mut s, &[&format!(":srv CAP me ACK :batch {cap}")]);
            assert!(s.search_supported());
        }
        let s = connected("batch server-time");
        assert!(!s.search_supported());
    }

    #[test]
    fn search_lines_follow_the_spec_attributes() {
        let mut s = searching();
        // "[c] SEARCH text=fast;in=#chan;limit=2": ours asks for a page of 50.
        assert_eq!(
            parse("/search #chan fast").and_then(|a| s.act(a)),
            Ok(vec!["SEARCH text=fast;in=#chan;limit=50".to_string()])
        );
        // Spaces and ';' are escaped as in tags; soju reads the attributes as tags.
        assert_eq!(
            parse("/search lunch at noon; today").and_then(|a| s.act(a)),
            Ok(vec![
                "SEARCH text=lunch\\sat\\snoon\\:\\stoday;limit=50".to_string()
            ])
        );
        let query = SearchQuery {
            text: "plan".into(),
            target: Some("#chan".into()),
            from: Some("jackie".into()),
        };
        assert_eq!(
            s.act(Action::Search(query)),
            Ok(vec![
                "SEARCH text=plan;in=#chan;from=jackie;limit=50".to_string()
            ])
        );
        // A nick is a target when a conversation with it is open.
        feed(&mut s, &[":bob!u@h PRIVMSG me :hi"]);
        assert_eq!(
            parse("/search bob the plan").and_then(|a| s.act(a)),
            Ok(vec!["SEARCH text=the\\splan;in=bob;limit=50".to_string()])
        );
        assert_eq!(
            parse("/search carol the plan").and_then(|a| s.act(a)),
            Ok(vec!["SEARCH text=carol\\sthe\\splan;limit=50".to_string()])
        );
        // Nothing asked of a server without the cap.
        let mut plain = connected("batch");
        assert!(matches!(
            parse("/search x").and_then(|a| plain.act(a)),
            Err(InputError::NoTarget(_))
        ));
        assert!(matches!(
            s.act(Action::Search(SearchQuery {
                text: "x".repeat(MAX_SEARCH_TEXT + 1),
                ..SearchQuery::default()
            })),
            Err(InputError::NoTarget(_))
        ));
    }

    #[test]
    fn the_spec_example_batch_becomes_results_and_no_buffer_lines() {
        let mut s = searching();
        feed(&mut s, &[":me!u@h JOIN #chan"]);
        s.set_active_by_name(crate::SERVER_BUFFER);
        s.act(parse("/search #chan fast").expect("parses"))
            .expect("sent");
        assert_eq!(
            s.search_results().map(|r| &r.status),
            Some(&SearchStatus::Waiting)
        );
        feed(
            &mut s,
            &[
                ":irc.host BATCH +ID soju.im/search",
                "@batch=ID;msgid=1234;time=2019-01-04T14:33:26.123Z :bill!indent@host PRIVMSG #chan :That was fast!",
                "@batch=ID;msgid=1235;time=2019-01-04T14:35:26.123Z :jackie!indent@host PRIVMSG #chan :Fasting is hard.",
                "@batch=ID;msgid=1236;time=2019-01-04T14:36:00.000Z :me!u@h PRIVMSG bob :\x01ACTION runs fast\x01",
                "@batch=ID;msgid=1237;time=2019-01-04T14:37:00.000Z :bob!u@h NOTICE me :fast reply",
                ":irc.host BATCH -ID",
            ],
        );
        let results = s.search_results().expect("a search");
        assert_eq!(results.status, SearchStatus::Done { more: false });
        let hits: Vec<(&str, &str, &str, LineKind, Option<&str>)> = results
            .hits
            .iter()
            .map(|h| {
                (
                    h.buffer.as_str(),
                    h.from.as_str(),
                    h.text.as_str(),
                    h.kind,
                    h.msgid.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            hits,
            [
                ("bob", "bob", "fast reply", LineKind::Notice, Some("1237")),
                ("bob", "me", "runs fast", LineKind::Action, Some("1236")),
                (
                    "#chan",
                    "jackie",
                    "Fasting is hard.",
                    LineKind::Message,
                    Some("1235")
                ),
                (
                    "#chan",
                    "bill",
                    "That was fast!",
                    LineKind::Message,
                    Some("1234")
                ),
            ],
            "newest first, private hits under the other side"
        );
        assert_eq!(
            results.hits[3].time.to_rfc3339(),
            "2019-01-04T14:33:26.123+00:00"
        );
        let chan = s.buffer("#chan").expect("joined");
        assert!(
            chan.lines.iter().all(|l| l.kind == LineKind::Join),
            "found messages are not lines of the conversation"
        );
        assert_eq!(chan.unread, 0);
        assert!(s.buffer("bob").is_none(), "a hit opens no conversation");
        // Live lines after the batch are chat again.
        feed(&mut s, &[":bill!u@h PRIVMSG #chan :live"]);
        assert_eq!(s.buffer("#chan").map(|b| b.unread), Some(1));
        // Opening a hit focuses its conversation, opened again if it was closed.
        assert_eq!(s.open_search_hit(0).as_deref(), Some("bob"));
        assert_eq!(s.active().name, "bob");
        assert_eq!(s.open_search_hit(3).as_deref(), Some("#chan"));
        assert_eq!(s.active().unread, 0);
        assert_eq!(s.open_search_hit(9), None);
    }

    #[test]
    fn an_empty_answer_and_a_refusal() {
        let mut s = searching();
        s.act(parse("/search nothing").expect("parses"))
            .expect("sent");
        // "Searching messages when none match"
        feed(
            &mut s,
            &[":irc.host BATCH +ID soju.im/search", ":irc.host BATCH -ID"],
        );
        let results = s.search_results().expect("a search");
        assert!(results.hits.is_empty());
        assert_eq!(results.status, SearchStatus::Done { more: false });
        assert!(matches!(
            s.act(Action::SearchMore),
            Err(InputError::NoTarget(_))
        ));

        s.act(parse("/search x").expect("parses")).expect("sent");
        let before = s.buffers()[0].lines.len();
        feed(
            &mut s,
            &[":irc.host FAIL SEARCH INVALID_PARAMS in :Invalid parameters"],
        );
        assert_eq!(
            s.search_results().map(|r| r.status.clone()),
            Some(SearchStatus::Failed {
                code: "INVALID_PARAMS".into(),
                text: "Invalid parameters".into()
            })
        );
        assert_eq!(s.buffers()[0].lines.len(), before, "shown with the results");
        s.clear_search();
        assert!(s.search_results().is_none());
    }

    #[test]
    fn more_pages_back_before_the_oldest_hit_and_skips_repeats() {
        let mut s = searching();
        s.act(parse("/search #chan word").expect("parses"))
            .expect("sent");
        let page = |first: usize, batch: &str| {
            let mut lines = vec![format!(":srv BATCH +{batch} search")];
            for i in first..first + SEARCH_PAGE {
                lines.push(format!(
                    "@batch={batch};msgid=m{i};time=2024-01-01T10:{:02}:{:02}.000Z :bob!u@h PRIVMSG #chan :word {i}",
                    i / 60,
                    i % 60
                ));
            }
            lines.push(format!(":srv BATCH -{batch}"));
            lines
        };
        let first = page(50, "a");
        feed(
            &mut s,
            &first.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert!(s.search_results().is_some_and(SearchResults::has_more));
        assert_eq!(
            s.act(Action::SearchMore),
            Ok(vec![
                "SEARCH text=word;in=#chan;limit=50;before=2024-01-01T10:00:50.000Z".to_string()
            ])
        );
        // The older page repeats the oldest hit ("at or before").
        let second = page(1, "b");
        feed(
            &mut s,
            &second.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let results = s.search_results().expect("a search");
        assert_eq!(results.hits.len(), 99);
        assert_eq!(results.hits.last().map(|h| h.text.as_str()), Some("word 1"));
        assert!(results.has_more());
        // A page with nothing new ends the paging.
        s.act(Action::SearchMore).expect("sent");
        let again = page(1, "c");
        feed(
            &mut s,
            &again.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let results = s.search_results().expect("a search");
        assert_eq!(results.hits.len(), 99);
        assert!(!results.has_more());
    }

    #[test]
    fn a_search_batch_nobody_asked_for_fills_nothing() {
        let mut s = searching();
        feed(
            &mut s,
            &[
                ":me!u@h JOIN #chan",
                ":srv BATCH +x soju.im/search",
                "@batch=x;time=2024-01-01T10:00:00.000Z :bob!u@h PRIVMSG #chan :old",
                ":srv BATCH -x",
            ],
        );
        assert!(s.search_results().is_none());
        assert_eq!(s.buffer("#chan").map(|b| b.lines.len()), Some(1));
    }
}
