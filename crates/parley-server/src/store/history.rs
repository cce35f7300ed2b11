//! What history, offline delivery and the audit trail need from a database, backend-agnostic like
//! [`super::AccountStore`]. Every call blocks; the server calls these from its history writer task
//! and from `spawn_blocking`, the CLI directly.

use super::search::{SearchError, SearchQuery};
use super::StoreError;

/// One stored channel or private message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Server-assigned, unique, sent to clients as the `msgid` tag.
    pub msgid: String,
    /// Milliseconds since the Unix epoch, sent as the `time` tag.
    pub time_ms: i64,
    /// The history key: a casefolded channel name, or for a private conversation between two
    /// parties (casefolded account names, or `~nick` for guests) the [`dm_key`] of the two.
    pub target: String,
    /// `PRIVMSG`, `NOTICE`, or `TAGMSG` (a reaction or a reply: `history::events`).
    pub kind: String,
    /// `nick!user@host` of the sender.
    pub source: String,
    /// The sender's account, if logged in.
    pub account: Option<String>,
    /// The target as it went over the wire: the channel name or the recipient's nick.
    pub to: String,
    pub text: String,
    /// The sender's client-only tags (IRCv3 message-tags), escaped as relayed (`+a=1;+b`);
    /// empty when it sent none.
    pub tags: String,
}

/// A point in a conversation, as CHATHISTORY names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Time(i64),
    MsgId(String),
}

/// Which slice of a conversation to fetch; results are always returned oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryQuery {
    /// The newest messages, optionally only those after a bound.
    Latest(Option<Bound>),
    Before(Bound),
    After(Bound),
    Around(Bound),
    Between(Bound, Bound),
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub time_ms: i64,
    /// What happened: `login`, `login_failed`, `register`, `password_change`, `kick`, `ban`, ...
    pub action: String,
    /// Who did it: the nick (or `admin-cli`, or for a login the account), if anyone.
    pub actor: Option<String>,
    /// The account the actor was logged in to, if any: nicks change hands, accounts do not.
    pub account: Option<String>,
    /// Whom or what it was done to.
    pub target: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since_ms: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub limit: usize,
}

/// A conversation with recent activity, for CHATHISTORY TARGETS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetActivity {
    pub target: String,
    pub latest_ms: i64,
}

/// Everything one group commit writes: messages, offline-delivery marks, audit rows.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub messages: Vec<StoredMessage>,
    /// (casefolded account, msgid) of private messages to deliver at that account's next login.
    pub offline: Vec<(String, String)>,
    pub audit: Vec<AuditEvent>,
    pub state: Vec<super::state::StateChange>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.offline.is_empty()
            && self.audit.is_empty()
            && self.state.is_empty()
    }
}

pub trait HistoryStore: Send + Sync {
    /// Write a batch in one transaction: all of it is stored, or none of it.
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError>;
    /// Write a batch of messages as [`write`](Self::write) does, but only if that needs no
    /// waiting: `Ok(false)` (nothing written) when the connection or the database's write lock
    /// is taken, or the write would do more than the batch (a bulk step such as indexing). A
    /// sender that finds the writer idle commits its own message through this, on its own
    /// thread, so it must never block; stores without such a cheap path keep the default.
    fn write_if_free(&self, batch: &WriteBatch) -> Result<bool, StoreError> {
        let _ = batch;
        Ok(false)
    }
    /// Up to `limit` messages of one conversation, oldest first, stored TAGMSGs included.
    fn query(
        &self,
        target: &str,
        query: &HistoryQuery,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.query_for(target, query, limit, true)
    }
    /// Up to `limit` messages of one conversation, oldest first; TAGMSGs only when `events`
    /// (a client with `draft/event-playback`), left out before `limit` counts otherwise.
    fn query_for(
        &self,
        target: &str,
        query: &HistoryQuery,
        limit: usize,
        events: bool,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// Conversations among `targets` (history keys) whose latest message falls strictly between
    /// two times (one updated after the window is left out: its latest activity is not in it),
    /// oldest activity first. Like CHATHISTORY BETWEEN, `limit` counts from `from_ms`: forwards
    /// when it is the earlier time, back from it when it is the later.
    fn targets(
        &self,
        targets: &[String],
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<TargetActivity>, StoreError>;
    /// Private-message history keys that involve `party` (see [`StoredMessage::target`]).
    fn conversations_of(&self, party: &str) -> Result<Vec<String>, StoreError>;
    /// Remove and return up to `limit` messages waiting for `account` (casefolded), oldest first.
    fn take_offline(&self, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError>;
    /// Every account (casefolded) that messages wait for.
    fn offline_accounts(&self) -> Result<Vec<String>, StoreError>;
    /// For the history writer's own connection: never run a checkpoint as part of a commit,
    /// leaving them to [`HistoryStore::checkpoint`] on another connection. SQLite's automatic
    /// checkpoint runs inside the commit that fills the log, with an fsync of the log and of the
    /// database: the messages of that commit, and everyone's behind it, waited ~20 ms for it
    /// (the p99 of a private-message round trip on an idle server).
    fn defer_checkpoints(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Move what the write-ahead log holds into the database without waiting for readers or
    /// the writer (a no-op where the database does this itself).
    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Delete messages older than `older_than_ms` and beyond `max_rows` per conversation.
    fn prune(
        &self,
        older_than_ms: Option<i64>,
        max_rows: Option<usize>,
    ) -> Result<usize, StoreError>;
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
    /// The message with this msgid in conversation `target` (a history key), if stored.
    fn message(&self, target: &str, msgid: &str) -> Result<Option<StoredMessage>, StoreError>;
    /// Remove a message from conversation `target` (IRCv3 `draft/message-redaction`), and its
    /// offline delivery with it; whether there was one.
    fn delete_message(&self, target: &str, msgid: &str) -> Result<bool, StoreError>;
    /// Full-text search (`SEARCH`, see [`super::search`]): the PRIVMSGs and NOTICEs inside the
    /// query's scope that match it, oldest first. Both real backends answer it; a store without
    /// an index refuses rather than scan.
    fn search(&self, _query: &SearchQuery) -> Result<Vec<StoredMessage>, SearchError> {
        Err(StoreError::Backend("this store cannot search".into()).into())
    }
}

/// The two questions a backend answers so [`page`] can serve every CHATHISTORY subcommand the same
/// way on every database. Positions are (time, id): ties within a millisecond order by row id.
pub(super) trait Pages {
    /// Where `bound` sits in `target`: a timestamp with `time_id` as its id (chosen by the caller
    /// so the whole millisecond falls on the excluded side), or the stored position of a msgid.
    fn position(
        &mut self,
        target: &str,
        bound: &Bound,
        time_id: i64,
    ) -> Result<Option<(i64, i64)>, StoreError>;
    /// Messages strictly after `lower` and strictly before `upper`, newest or oldest first;
    /// TAGMSGs only when `events`.
    #[allow(clippy::too_many_arguments)]
    fn between(
        &mut self,
        target: &str,
        lower: (i64, i64),
        upper: (i64, i64),
        newest_first: bool,
        limit: usize,
        events: bool,
    ) -> Result<Vec<StoredMessage>, StoreError>;
}

const START: (i64, i64) = (i64::MIN, i64::MIN);
const END: (i64, i64) = (i64::MAX, i64::MAX);

/// One CHATHISTORY page, oldest first, from a backend's [`Pages`].
pub(super) fn page(
    db: &mut impl Pages,
    target: &str,
    query: &HistoryQuery,
    limit: usize,
    events: bool,
) -> Result<Vec<StoredMessage>, StoreError> {
    // As a lower bound a timestamp excludes its whole millisecond (id MAX); as an upper bound too
    // (id MIN).
    fn low(db: &mut impl Pages, t: &str, b: &Bound) -> Result<Option<(i64, i64)>, StoreError> {
        db.position(t, b, i64::MAX)
    }
    fn high(db: &mut impl Pages, t: &str, b: &Bound) -> Result<Option<(i64, i64)>, StoreError> {
        db.position(t, b, i64::MIN)
    }
    fn newest(
        db: &mut impl Pages,
        t: &str,
        lower: (i64, i64),
        upper: (i64, i64),
        limit: usize,
        events: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut rows = db.between(t, lower, upper, true, limit, events)?;
        rows.reverse();
        Ok(rows)
    }
    let t = target;
    match query {
        HistoryQuery::Latest(None) => newest(db, t, START, END, limit, events),
        HistoryQuery::Latest(Some(bound)) => match low(db, t, bound)? {
            Some(lower) => newest(db, t, lower, END, limit, events),
            None => Ok(Vec::new()),
        },
        HistoryQuery::Before(bound) => match high(db, t, bound)? {
            Some(upper) => newest(db, t, START, upper, limit, events),
            None => Ok(Vec::new()),
        },
        HistoryQuery::After(bound) => match low(db, t, bound)? {
            Some(lower) => db.between(t, lower, END, false, limit, events),
            None => Ok(Vec::new()),
        },
        HistoryQuery::Around(bound) => {
            let Some((time, id)) = high(db, t, bound)? else {
                return Ok(Vec::new());
            };
            // The reference itself counts among the older half: the message of a msgid, or
            // what was said in the timestamp's millisecond (a client's reference is usually a
            // message's own `time`), so the page is centred on it.
            let (upper, lower) = if id == i64::MIN {
                ((time, i64::MAX), (time, i64::MAX))
            } else {
                ((time, id + 1), (time, id))
            };
            let older_count = limit - limit / 2;
            let mut rows = newest(db, t, START, upper, older_count, events)?;
            rows.extend(db.between(t, lower, END, false, limit / 2, events)?);
            Ok(rows)
        }
        HistoryQuery::Between(start, end) => {
            let (Some(a_low), Some(a_high), Some(b_low), Some(b_high)) = (
                low(db, t, start)?,
                high(db, t, start)?,
                low(db, t, end)?,
                high(db, t, end)?,
            ) else {
                return Ok(Vec::new());
            };
            if a_low <= b_high {
                db.between(t, a_low, b_high, false, limit, events)
            } else {
                // Counting back from the later bound, returned oldest first.
                newest(db, t, b_low, a_high, limit, events)
            }
        }
    }
}

/// CHATHISTORY TARGETS from each conversation's latest message (see
/// [`HistoryStore::targets`]): those inside the window, `limit` of them counted from
/// `from_ms`, oldest activity first. A backend finds each latest message through its
/// `(target, time_ms, id)` index, a lookup per conversation rather than a scan of them all.
pub(super) fn in_window(
    latest: impl IntoIterator<Item = TargetActivity>,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
) -> Vec<TargetActivity> {
    let (low, high) = (from_ms.min(to_ms), from_ms.max(to_ms));
    let mut rows: Vec<TargetActivity> = latest
        .into_iter()
        .filter(|row| row.latest_ms > low && row.latest_ms < high)
        .collect();
    rows.sort_by(|a, b| (a.latest_ms, &a.target).cmp(&(b.latest_ms, &b.target)));
    if from_ms > to_ms {
        let skip = rows.len().saturating_sub(limit);
        rows.drain(..skip);
    } else {
        rows.truncate(limit);
    }
    rows
}

/// The history key of a private conversation between two parties (casefolded account names, or
/// `~nick` for guests): `dm:<length of a>:<a>|<b>` with `a <= b`. The length fixes where the
/// first name ends whatever characters names may hold, so no pair of names, nor any string a
/// client sends, spells another pair's key. (The old `dm:<a>|<b>` did not: names may contain
/// `|`, so `alice` + `bob|x` and `alice|bob` + `x` shared one key.)
pub fn dm_key(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("dm:{}:{first}|{second}", first.len())
}

/// The two parties of a private conversation key made by [`dm_key`]; none for a channel.
pub fn parties(target: &str) -> (Option<&str>, Option<&str>) {
    let split = || {
        let (length, names) = target.strip_prefix("dm:")?.split_once(':')?;
        if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let length: usize = length.parse().ok()?;
        let a = names.get(..length)?;
        let b = names.get(length..)?.strip_prefix('|')?;
        Some((a, b))
    };
    match split() {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    }
}

/// The [`dm_key`] of a message stored under the old key `dm:<a>|<b>` (schema 4 and before), or
/// `None` when the row does not say which split is right. The old key is ambiguous when a name
/// holds `|`, but each row names one party exactly: its sender, by account (casefolded), or as
/// `~nick` when the sender was a guest. That party is one end of the old key; the rest is the
/// other party.
pub(super) fn rekey_legacy(target: &str, account: Option<&str>, source: &str) -> Option<String> {
    let old = target.strip_prefix("dm:")?;
    // Old names never held ':' (nicks cannot), new keys always do: never rewrite a new key.
    if old.contains(':') {
        return None;
    }
    let sender = match account {
        Some(account) => parley_proto::casefold(account),
        None => format!(
            "~{}",
            parley_proto::casefold(source.split('!').next().unwrap_or(source))
        ),
    };
    let first = old
        .strip_prefix(sender.as_str())
        .and_then(|rest| rest.strip_prefix('|'))
        .filter(|other| sender.as_str() <= *other);
    let last = old
        .strip_suffix(sender.as_str())
        .and_then(|rest| rest.strip_suffix('|'))
        .filter(|other| *other <= sender.as_str());
    let other = first.or(last)?;
    Some(dm_key(&sender, other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_parties_unambiguously() {
        assert_eq!(dm_key("bob", "alice"), "dm:5:alice|bob");
        assert_eq!(parties("dm:5:alice|bob"), (Some("alice"), Some("bob")));
        // The pairs the old key confused now differ.
        assert_ne!(dm_key("alice", "bob|x"), dm_key("alice|bob", "x"));
        assert_eq!(
            parties(&dm_key("alice", "bob|x")),
            (Some("alice"), Some("bob|x"))
        );
        assert_eq!(
            parties(&dm_key("x", "alice|bob")),
            (Some("alice|bob"), Some("x"))
        );
        for not_a_key in [
            "#chan",
            "dm:alice|bob",
            "dm:9:alice|bob",
            "dm:+5:alice|bob",
            "dm::|",
        ] {
            assert_eq!(parties(not_a_key), (None, None), "{not_a_key}");
        }
    }

    #[test]
    fn targets_in_a_window_count_from_its_first_bound() {
        let activity = |pairs: &[(&str, i64)]| -> Vec<TargetActivity> {
            pairs
                .iter()
                .map(|(target, latest_ms)| TargetActivity {
                    target: target.to_string(),
                    latest_ms: *latest_ms,
                })
                .collect()
        };
        let latest = activity(&[("#late", 40), ("#a", 10), ("bob", 30), ("#b", 20)]);
        // 40 is at the window's (exclusive) end: updated after it, so left out.
        assert_eq!(
            in_window(latest.clone(), 0, 40, 10),
            activity(&[("#a", 10), ("#b", 20), ("bob", 30)])
        );
        assert_eq!(
            in_window(latest.clone(), 0, 40, 2),
            activity(&[("#a", 10), ("#b", 20)])
        );
        assert_eq!(
            in_window(latest.clone(), 40, 0, 2),
            activity(&[("#b", 20), ("bob", 30)])
        );
        assert_eq!(in_window(latest, 10, 20, 10), Vec::new());
    }

    #[test]
    fn old_keys_split_at_their_sender() {
        let old = "dm:alice|bob|x";
        assert_eq!(
            rekey_legacy(old, Some("Alice"), "alice!u@h").as_deref(),
            Some("dm:5:alice|bob|x")
        );
        assert_eq!(
            rekey_legacy(old, Some("bob|x"), "bob|x!u@h").as_deref(),
            Some("dm:5:alice|bob|x")
        );
        assert_eq!(
            rekey_legacy("dm:alice|bob|x", Some("x"), "x!u@h").as_deref(),
            Some("dm:9:alice|bob|x")
        );
        assert_eq!(
            rekey_legacy("dm:alice|~guest", None, "Guest!g@h").as_deref(),
            Some("dm:5:alice|~guest")
        );
        // A sender who is neither end, or a key already new: left alone.
        assert_eq!(rekey_legacy(old, Some("carol"), "carol!u@h"), None);
        assert_eq!(rekey_legacy("dm:5:alice|bob", Some("alice"), "a!u@h"), None);
        assert_eq!(rekey_legacy("#chan", Some("alice"), "a!u@h"), None);
    }
}
