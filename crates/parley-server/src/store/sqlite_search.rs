//! `SEARCH` in the SQLite file: an FTS5 index over `messages.text` (`messages_fts`, schema
//! steps 14 and 17). New messages are indexed in bulk ([`index_pending`]: every
//! [`FTS_BACKLOG`] messages, and before every search, so a search finds everything stored);
//! triggers keep it in step with deletions, so a redacted, pruned or deleted message leaves the
//! index (or the list waiting for it) in the same statement that removes it.
//!
//! The index is walked newest row first (or oldest first from `after`) and joined to the messages
//! by row id, so a search stops as soon as it has `limit` rows in scope; a progress handler stops
//! one that runs past its time (a common word in channels the searcher is not in).

use std::time::Instant;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, ErrorCode};

use super::history::StoredMessage;
use super::search::{fts5_match, SearchError, SearchQuery};
use super::sqlite::{backend, SqliteStore};

/// How many SQLite virtual-machine steps pass between two looks at the clock.
const STEPS_PER_CHECK: std::os::raw::c_int = 1000;

const COLUMNS: &str =
    "m.msgid, m.time_ms, m.target, m.kind, m.source, m.account, m.recipient, m.text, m.tags";

/// The SQL and its values for `query`. Only placeholders carry what the client sent.
fn statement(query: &SearchQuery) -> (String, Vec<Value>) {
    let mut values: Vec<Value> = Vec::new();
    let mut conditions: Vec<String> = vec!["m.kind IN ('PRIVMSG', 'NOTICE')".into()];
    let mut scope: Vec<String> = Vec::new();
    if !query.targets.is_empty() {
        let marks = vec!["?"; query.targets.len()].join(", ");
        scope.push(format!("m.target IN ({marks})"));
        values.extend(query.targets.iter().cloned().map(Value::Text));
    }
    if let Some(party) = &query.party {
        scope.push("m.target IN (SELECT target FROM conversations WHERE party = ?)".into());
        values.push(Value::Text(party.clone()));
    }
    conditions.push(format!("({})", scope.join(" OR ")));
    if let Some(after) = query.after {
        conditions.push("m.time_ms >= ?".into());
        values.push(Value::Integer(after));
    }
    if let Some(before) = query.before {
        conditions.push("m.time_ms <= ?".into());
        values.push(Value::Integer(before));
    }
    if let Some(pattern) = query.from_pattern() {
        conditions.push("m.source LIKE ? ESCAPE '\\'".into());
        values.push(Value::Text(pattern));
    }
    let direction = if query.forwards() { "ASC" } else { "DESC" };
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let sql = if query.words.is_empty() {
        format!(
            "SELECT {COLUMNS} FROM messages m WHERE {} \
             ORDER BY m.time_ms {direction}, m.id {direction} LIMIT ?",
            conditions.join(" AND ")
        )
    } else {
        // CROSS JOIN keeps the index as the outer loop: it yields row ids in order, so the
        // LIMIT ends the walk early instead of sorting every match.
        values.insert(0, Value::Text(fts5_match(&query.words)));
        format!(
            "SELECT {COLUMNS} FROM messages_fts f CROSS JOIN messages m ON m.id = f.rowid \
             WHERE messages_fts MATCH ? AND {} ORDER BY f.rowid {direction} LIMIT ?",
            conditions.join(" AND ")
        )
    };
    values.push(Value::Integer(limit));
    (sql, values)
}

/// How many stored messages may wait for the FTS index before a write brings it up to date.
/// Indexing them in one statement costs about 2.5 us a message against 28 us one row at a time
/// (`cargo bench --bench history_write`); a search first indexes whatever is waiting, so this
/// bounds only the work a search may find left to do (about 5 ms), not what it can find.
pub(super) const FTS_BACKLOG: usize = 2048;

/// Index every message waiting in `messages_fts_pending`. Always inside the caller's
/// transaction: the insert and the delete must commit together, or a row could be indexed
/// twice.
pub(super) fn index_pending(connection: &rusqlite::Connection) -> rusqlite::Result<()> {
    connection.execute_batch(
        "INSERT INTO messages_fts (rowid, text) \
         SELECT m.id, m.text FROM messages_fts_pending p JOIN messages m ON m.id = p.id; \
         DELETE FROM messages_fts_pending;",
    )
}

pub(super) fn search(
    store: &SqliteStore,
    query: &SearchQuery,
) -> Result<Vec<StoredMessage>, SearchError> {
    if query.is_empty_scope() || query.limit == 0 {
        return Ok(Vec::new());
    }
    let (sql, values) = statement(query);
    let connection = store.connection().lock();
    // Everything stored is findable: what waits for the index goes in first.
    let waiting: bool = connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM messages_fts_pending)")
        .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
        .map_err(backend)?;
    if waiting {
        let tx = rusqlite::Transaction::new_unchecked(
            &connection,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(backend)?;
        index_pending(&tx).map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    let deadline = Instant::now() + query.timeout;
    connection
        .progress_handler(STEPS_PER_CHECK, Some(move || Instant::now() >= deadline))
        .map_err(backend)?;
    let rows = (|| {
        let mut prepared = connection.prepare_cached(&sql)?;
        let rows = prepared
            .query_map(params_from_iter(values), |row| {
                Ok(StoredMessage {
                    msgid: row.get(0)?,
                    time_ms: row.get(1)?,
                    target: row.get(2)?,
                    kind: row.get(3)?,
                    source: row.get(4)?,
                    account: row.get(5)?,
                    to: row.get(6)?,
                    text: row.get(7)?,
                    tags: row.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>();
        rows
    })();
    // The connection is shared with CHATHISTORY reads: never leave the handler on it.
    connection
        .progress_handler(0, None::<fn() -> bool>)
        .map_err(backend)?;
    let mut rows = rows.map_err(|error| match error.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => SearchError::TimedOut(query.timeout),
        _ => backend(error).into(),
    })?;
    if !query.forwards() {
        rows.reverse();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::history::{HistoryStore, WriteBatch};
    use crate::store::search::search_words;

    fn message(id: usize, target: &str, source: &str, text: &str) -> StoredMessage {
        StoredMessage {
            msgid: format!("m{id}"),
            time_ms: 1_000 + id as i64,
            target: target.into(),
            kind: "PRIVMSG".into(),
            source: source.into(),
            account: None,
            to: target.into(),
            text: text.into(),
            tags: String::new(),
        }
    }

    fn query(text: &str, targets: &[&str]) -> SearchQuery {
        SearchQuery {
            words: search_words(text, 8).expect("few words"),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            party: None,
            from: None,
            after: None,
            before: None,
            limit: 10,
            timeout: Duration::from_secs(5),
        }
    }

    fn ids(rows: &[StoredMessage]) -> Vec<&str> {
        rows.iter().map(|m| m.msgid.as_str()).collect()
    }

    #[test]
    fn finds_words_in_scope_and_forgets_deleted_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("opens");
        let batch = WriteBatch {
            messages: vec![
                message(1, "#a", "al!u@h", "Deploying on Friday"),
                message(2, "#b", "bo!u@h", "deploy friday"),
                message(3, "#a", "bo!u@h", "friday \"NEAR\" deploy"),
                message(4, "#a", "al!u@h", "nothing here"),
            ],
            ..WriteBatch::default()
        };
        store.write(&batch).expect("writes");
        let found = store
            .search(&query("friday deploy*", &["#a"]))
            .expect("runs");
        assert_eq!(ids(&found), ["m1", "m3"]);
        // Operators in the text are words, not syntax.
        let found = store.search(&query("\"NEAR\" (", &["#a"])).expect("runs");
        assert_eq!(ids(&found), ["m3"]);
        let mut by = query("friday", &["#a", "#b"]);
        by.from = Some("BO".into());
        assert_eq!(ids(&store.search(&by).expect("runs")), ["m2", "m3"]);
        assert!(store.delete_message("#a", "m3").expect("deletes"));
        let found = store.search(&query("friday", &["#a"])).expect("runs");
        assert_eq!(ids(&found), ["m1"]);
        // The index itself forgot it (the join alone would hide it, until its row id is
        // used again by a new message, which would then match the deleted words).
        let indexed: Vec<i64> = store
            .connection()
            .lock()
            .prepare("SELECT rowid FROM messages_fts WHERE messages_fts MATCH '\"friday\"'")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("index query");
        assert_eq!(indexed, [1, 2]);
    }

    /// SQLite's own check of the FTS index against the table: fails on an index that holds a
    /// row the table lacks or the other way round (so only once nothing waits).
    fn index_is_sound(store: &SqliteStore) {
        store
            .connection()
            .lock()
            .execute_batch(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            )
            .expect("the FTS index matches the messages table");
    }

    fn pending(store: &SqliteStore) -> i64 {
        store
            .connection()
            .lock()
            .query_row("SELECT count(*) FROM messages_fts_pending", [], |row| {
                row.get(0)
            })
            .expect("count")
    }

    /// A batch that repeats a stored msgid is refused whole: none of its rows, and none of
    /// their search backlog, stay behind (the insert is `OR FAIL`, which keeps the rows before
    /// the failing one in the transaction, so this holds only because the error rolls it back).
    #[test]
    fn a_batch_repeating_a_stored_msgid_stores_none_of_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("opens");
        let batch = |messages| WriteBatch {
            messages,
            ..WriteBatch::default()
        };
        store
            .write(&batch(vec![message(1, "#a", "al!u@h", "first")]))
            .expect("writes");
        let repeat = batch(vec![
            message(2, "#a", "al!u@h", "second"),
            message(1, "#a", "al!u@h", "first again"),
        ]);
        assert!(
            store.write(&repeat).is_err(),
            "a repeated msgid is an error"
        );
        assert!(
            store.write_if_free(&repeat).is_err(),
            "on the sender's path too"
        );
        let stored: Vec<String> = store
            .connection()
            .lock()
            .prepare("SELECT msgid FROM messages ORDER BY id")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("messages");
        assert_eq!(stored, ["m1"]);
        assert_eq!(pending(&store), 1);
        store
            .write(&batch(vec![message(3, "#a", "al!u@h", "third")]))
            .expect("the connection is usable after the refusal");
    }

    /// Schema step 17: new messages wait in `messages_fts_pending`, and a search indexes them
    /// before it looks, so nothing stored is missed. A message deleted or rewritten while it
    /// waits never reaches the index (an FTS5 'delete' of a row it never held would corrupt it);
    /// one deleted after it was indexed leaves it.
    #[test]
    fn messages_waiting_for_the_index_are_found_and_can_be_removed_safely() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("opens");
        let write = |messages| {
            store
                .write(&WriteBatch {
                    messages,
                    ..WriteBatch::default()
                })
                .expect("writes")
        };
        write(vec![
            message(1, "#a", "al!u@h", "walrus one"),
            message(2, "#a", "al!u@h", "walrus two"),
        ]);
        assert_eq!(pending(&store), 2);
        // Deleted while waiting: it leaves the list and never reaches the index.
        assert!(store.delete_message("#a", "m2").expect("deletes"));
        assert_eq!(pending(&store), 1);
        // A search indexes what waits first.
        let found = store.search(&query("walrus", &["#a"])).expect("runs");
        assert_eq!(ids(&found), ["m1"]);
        assert_eq!(pending(&store), 0);
        index_is_sound(&store);
        // The newest row deleted after it was indexed; the next message gets its row id again
        // and must be found by its own words only.
        assert!(store.delete_message("#a", "m1").expect("deletes"));
        write(vec![message(3, "#a", "al!u@h", "narwhal three")]);
        assert!(store
            .search(&query("walrus", &["#a"]))
            .expect("runs")
            .is_empty());
        let found = store.search(&query("narwhal", &["#a"])).expect("runs");
        assert_eq!(ids(&found), ["m3"]);
        index_is_sound(&store);
    }

    /// Past [`FTS_BACKLOG`] messages, the write that crosses it indexes them all in its commit.
    #[test]
    fn a_long_backlog_is_indexed_by_the_write_that_crosses_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("opens");
        let mut id = 0;
        while id < FTS_BACKLOG - 1 {
            let messages = (id..(id + 100).min(FTS_BACKLOG - 1))
                .map(|i| message(i, "#a", "al!u@h", "filler"))
                .collect::<Vec<_>>();
            id += messages.len();
            store
                .write(&WriteBatch {
                    messages,
                    ..WriteBatch::default()
                })
                .expect("writes");
        }
        assert_eq!(pending(&store), (FTS_BACKLOG - 1) as i64);
        store
            .write(&WriteBatch {
                messages: vec![message(id, "#a", "al!u@h", "last one")],
                ..WriteBatch::default()
            })
            .expect("writes");
        assert_eq!(pending(&store), 0);
        index_is_sound(&store);
    }
}
