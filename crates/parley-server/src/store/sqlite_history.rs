//! History, offline marks and the audit trail in the SQLite file. Every query is parameterized;
//! writes go in one transaction per batch (the group commit), which with WAL and
//! `synchronous = NORMAL` is in the operating system's hands once `COMMIT` returns: a crash of
//! the server process after that loses nothing (a power loss may lose the last commits).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::history::{
    in_window, page, parties, AuditEvent, AuditFilter, Bound, HistoryQuery, HistoryStore, Pages,
    StoredMessage, TargetActivity, WriteBatch,
};
use super::search::{SearchError, SearchQuery};
use super::sqlite::{backend, SqliteStore};
use super::state::{
    decode_channels, encode_channel, ChannelRecord, ServerBan, StateChange, StateStore,
};
use super::StoreError;

const MESSAGE_COLUMNS: &str =
    "msgid, time_ms, target, kind, source, account, recipient, text, tags";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
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
}

/// The SQLite connection as [`Pages`], for the shared CHATHISTORY planner.
struct SqlitePages<'a>(&'a Connection);

impl Pages for SqlitePages<'_> {
    fn position(
        &mut self,
        target: &str,
        bound: &Bound,
        time_id: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        match bound {
            Bound::Time(ms) => Ok(Some((*ms, time_id))),
            Bound::MsgId(msgid) => self
                .0
                .query_row(
                    "SELECT time_ms, id FROM messages WHERE target = ?1 AND msgid = ?2",
                    params![target, msgid],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(backend),
        }
    }

    fn between(
        &mut self,
        target: &str,
        lower: (i64, i64),
        upper: (i64, i64),
        newest_first: bool,
        limit: usize,
        events: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE target = ?1 \
             AND (time_ms > ?2 OR (time_ms = ?2 AND id > ?3)) \
             AND (time_ms < ?4 OR (time_ms = ?4 AND id < ?5)) \
             AND (?7 OR kind <> 'TAGMSG') \
             ORDER BY time_ms {order}, id {order} LIMIT ?6"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        select(
            self.0,
            &sql,
            params![target, lower.0, lower.1, upper.0, upper.1, limit, events],
        )
    }
}

fn select(
    connection: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<StoredMessage>, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    let rows = statement
        .query_map(args, message_from_row)
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    Ok(rows)
}

/// Write `batch` in one immediate transaction unless another connection holds the write lock
/// (`Ok(false)`, nothing written); the connection's busy timeout is expected to be zero.
fn write_now(connection: &mut Connection, batch: &WriteBatch) -> Result<bool, StoreError> {
    let tx = match connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) if is_busy(&error) => return Ok(false),
        Err(error) => return Err(backend(error)),
    };
    insert_batch(&tx, batch)?;
    match tx.commit() {
        Ok(()) => Ok(true),
        // Rolled back when `tx` dropped: nothing of the batch is stored.
        Err(error) if is_busy(&error) => Ok(false),
        Err(error) => Err(backend(error)),
    }
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Everything in `batch` inserted (or applied) inside `tx`: messages, offline marks, audit
/// events and channel or ban changes, in that order.
fn insert_batch(tx: &rusqlite::Transaction<'_>, batch: &WriteBatch) -> Result<(), StoreError> {
    // `OR FAIL`, not the default `ABORT`: the row's trigger (`messages_fts_pending`) makes the
    // insert a statement of several writes, and under `ABORT` SQLite copies every page the
    // statement touches into a statement journal, to undo it alone on a duplicate msgid (a
    // profile of fanout 50x20x50 found that copy at 2% of the server). Under `FAIL` the duplicate
    // is found before anything is written, and the error drops the whole transaction anyway.
    let mut insert = tx
        .prepare_cached(
            "INSERT OR FAIL INTO messages (msgid, time_ms, target, kind, source, account, \
                 recipient, text, party_a, party_b, tags) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(backend)?;
    let mut conversation = tx
        .prepare_cached("INSERT OR IGNORE INTO conversations (party, target) VALUES (?1, ?2)")
        .map_err(backend)?;
    for m in &batch.messages {
        let (a, b) = parties(&m.target);
        insert
            .execute(params![
                m.msgid, m.time_ms, m.target, m.kind, m.source, m.account, m.to, m.text, a, b,
                m.tags
            ])
            .map_err(backend)?;
        for party in [a, b].into_iter().flatten() {
            conversation
                .execute(params![party, m.target])
                .map_err(backend)?;
        }
    }
    let mut offline = tx
        .prepare_cached(
            "INSERT INTO offline (account, message_id) \
                 SELECT ?1, id FROM messages WHERE msgid = ?2",
        )
        .map_err(backend)?;
    for (account, msgid) in &batch.offline {
        offline.execute(params![account, msgid]).map_err(backend)?;
    }
    let mut audit = tx
        .prepare_cached(
            "INSERT INTO audit (time_ms, action, actor, target, ip, detail, account) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(backend)?;
    for e in &batch.audit {
        audit
            .execute(params![
                e.time_ms, e.action, e.actor, e.target, e.ip, e.detail, e.account
            ])
            .map_err(backend)?;
    }
    for change in &batch.state {
        apply_state_change(tx, change)?;
    }
    Ok(())
}

impl HistoryStore for SqliteStore {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection().lock();
        let tx = connection.transaction().map_err(backend)?;
        insert_batch(&tx, batch)?;
        // The FTS index is kept in bulk (schema step 17): every so many messages, in this commit.
        let backlog = self
            .fts_backlog
            .fetch_add(batch.messages.len(), std::sync::atomic::Ordering::Relaxed)
            + batch.messages.len();
        if backlog >= super::sqlite_search::FTS_BACKLOG {
            super::sqlite_search::index_pending(&tx).map_err(backend)?;
            self.fts_backlog
                .store(0, std::sync::atomic::Ordering::Relaxed);
        }
        tx.commit().map_err(backend)
    }

    fn write_if_free(&self, batch: &WriteBatch) -> Result<bool, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        // The commit that takes the search backlog past its mark indexes it all (milliseconds):
        // that one is the writer's, on its own thread.
        if self.fts_backlog.load(Relaxed) + batch.messages.len()
            >= super::sqlite_search::FTS_BACKLOG
        {
            return Ok(false);
        }
        let Some(mut connection) = self.connection().try_lock() else {
            return Ok(false);
        };
        // Not a moment's wait for a write lock another connection holds (a login taking its
        // offline messages, pruning): the caller goes through the writer instead.
        connection
            .busy_timeout(std::time::Duration::ZERO)
            .map_err(backend)?;
        let written = write_now(&mut connection, batch);
        connection
            .busy_timeout(super::sqlite::BUSY_TIMEOUT)
            .map_err(backend)?;
        match written {
            Ok(true) => {
                self.fts_backlog.fetch_add(batch.messages.len(), Relaxed);
                Ok(true)
            }
            other => other,
        }
    }

    fn query_for(
        &self,
        target: &str,
        query: &HistoryQuery,
        limit: usize,
        events: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let connection = self.connection().lock();
        page(&mut SqlitePages(&connection), target, query, limit, events)
    }

    fn message(&self, target: &str, msgid: &str) -> Result<Option<StoredMessage>, StoreError> {
        let connection = self.connection().lock();
        let sql =
            format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE target = ?1 AND msgid = ?2");
        Ok(select(&connection, &sql, params![target, msgid])?.pop())
    }

    fn delete_message(&self, target: &str, msgid: &str) -> Result<bool, StoreError> {
        // The offline marks go with the row (ON DELETE CASCADE).
        let deleted = self
            .connection()
            .lock()
            .execute(
                "DELETE FROM messages WHERE target = ?1 AND msgid = ?2",
                params![target, msgid],
            )
            .map_err(backend)?;
        Ok(deleted > 0)
    }

    fn targets(
        &self,
        targets: &[String],
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<TargetActivity>, StoreError> {
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let connection = self.connection().lock();
        let mut statement = connection
            // A reaction is not a conversation's activity: TARGETS stays as without playback.
            .prepare_cached(
                "SELECT MAX(time_ms) FROM messages WHERE target = ?1 AND kind <> 'TAGMSG'",
            )
            .map_err(backend)?;
        let mut latest = Vec::with_capacity(targets.len());
        for target in targets {
            let time: Option<i64> = statement
                .query_row(params![target], |row| row.get(0))
                .map_err(backend)?;
            if let Some(latest_ms) = time {
                latest.push(TargetActivity {
                    target: target.clone(),
                    latest_ms,
                });
            }
        }
        Ok(in_window(latest, from_ms, to_ms, limit))
    }

    fn conversations_of(&self, party: &str) -> Result<Vec<String>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare_cached("SELECT target FROM conversations WHERE party = ?1")
            .map_err(backend)?;
        let rows = statement
            .query_map(params![party], |row| row.get(0))
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(backend)?;
        Ok(rows)
    }

    fn take_offline(&self, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let mut connection = self.connection().lock();
        let tx = connection.transaction().map_err(backend)?;
        let rows = select(
            &tx,
            &format!(
                "SELECT {} FROM offline o JOIN messages m ON m.id = o.message_id \
                 WHERE o.account = ?1 ORDER BY m.time_ms, m.id LIMIT ?2",
                MESSAGE_COLUMNS
                    .split(", ")
                    .map(|c| format!("m.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            params![account, limit as i64],
        )?;
        for m in &rows {
            tx.execute(
                "DELETE FROM offline WHERE account = ?1 AND message_id = \
                 (SELECT id FROM messages WHERE msgid = ?2)",
                params![account, m.msgid],
            )
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(rows)
    }

    fn defer_checkpoints(&self) -> Result<(), StoreError> {
        self.connection()
            .lock()
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(backend)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.connection()
            .lock()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(backend)
    }

    fn offline_accounts(&self) -> Result<Vec<String>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare("SELECT DISTINCT account FROM offline")
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| row.get(0))
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(backend)?;
        Ok(rows)
    }

    fn prune(
        &self,
        older_than_ms: Option<i64>,
        max_rows: Option<usize>,
    ) -> Result<usize, StoreError> {
        let connection = self.connection().lock();
        let mut removed = 0;
        if let Some(cutoff) = older_than_ms {
            removed += connection
                .execute("DELETE FROM messages WHERE time_ms < ?1", params![cutoff])
                .map_err(backend)?;
        }
        if let Some(max) = max_rows {
            removed += connection
                .execute(
                    "DELETE FROM messages WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() \
                     OVER (PARTITION BY target ORDER BY time_ms DESC, id DESC) AS n FROM messages) \
                     WHERE n > ?1)",
                    params![max as i64],
                )
                .map_err(backend)?;
        }
        Ok(removed)
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<StoredMessage>, SearchError> {
        super::sqlite_search::search(self, query)
    }

    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT time_ms, action, actor, target, ip, detail, account FROM audit \
                 WHERE time_ms >= ?1 AND (?2 IS NULL OR actor = ?2 COLLATE NOCASE \
                 OR account = ?2 COLLATE NOCASE) \
                 AND (?3 IS NULL OR action = ?3) ORDER BY id LIMIT ?4",
            )
            .map_err(backend)?;
        let limit = if filter.limit == 0 {
            i64::MAX
        } else {
            filter.limit as i64
        };
        let rows = statement
            .query_map(
                params![
                    filter.since_ms.unwrap_or(i64::MIN),
                    filter.actor,
                    filter.action,
                    limit
                ],
                |row| {
                    Ok(AuditEvent {
                        time_ms: row.get(0)?,
                        action: row.get(1)?,
                        actor: row.get(2)?,
                        target: row.get(3)?,
                        ip: row.get(4)?,
                        detail: row.get(5)?,
                        account: row.get(6)?,
                    })
                },
            )
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        Ok(rows)
    }
}

fn apply_state_change(tx: &Connection, change: &StateChange) -> Result<(), StoreError> {
    match change {
        StateChange::SaveChannel(record) => {
            let json = encode_channel(record)?;
            tx.execute(
                "INSERT INTO channels (name_folded, record) VALUES (?1, ?2) \
                 ON CONFLICT (name_folded) DO UPDATE SET record = excluded.record",
                params![parley_proto::casefold(&record.name), json],
            )
            .map_err(backend)?;
        }
        StateChange::DropChannel(name) => {
            tx.execute("DELETE FROM channels WHERE name_folded = ?1", params![name])
                .map_err(backend)?;
        }
        StateChange::RenameChannel {
            old_key,
            new_key,
            new_name,
        } => {
            tx.execute(
                "UPDATE messages SET target = ?2, recipient = ?3 WHERE target = ?1",
                params![old_key, new_key, new_name],
            )
            .map_err(backend)?;
            tx.execute(
                "DELETE FROM channels WHERE name_folded = ?1",
                params![old_key],
            )
            .map_err(backend)?;
        }
        StateChange::AddServerBan(ban) => {
            tx.execute(
                "INSERT INTO server_bans (kind, mask_folded, mask, reason, set_by, set_at_ms, expires_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (kind, mask_folded) DO UPDATE SET \
                 mask = excluded.mask, reason = excluded.reason, set_by = excluded.set_by, \
                 set_at_ms = excluded.set_at_ms, expires_ms = excluded.expires_ms",
                params![
                    ban.kind,
                    parley_proto::casefold(&ban.mask),
                    ban.mask,
                    ban.reason,
                    ban.set_by,
                    ban.set_at_ms,
                    ban.expires_ms
                ],
            )
            .map_err(backend)?;
        }
        StateChange::RemoveServerBan(kind, mask) => {
            tx.execute(
                "DELETE FROM server_bans WHERE kind = ?1 AND mask_folded = ?2",
                params![kind, parley_proto::casefold(mask)],
            )
            .map_err(backend)?;
        }
    }
    Ok(())
}

impl StateStore for SqliteStore {
    fn channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare("SELECT name_folded, record FROM channels")
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        Ok(decode_channels(rows))
    }

    fn server_bans(&self, now_ms: i64) -> Result<Vec<ServerBan>, StoreError> {
        let connection = self.connection().lock();
        let mut statement = connection
            .prepare(
                "SELECT kind, mask, reason, set_by, set_at_ms, expires_ms FROM server_bans \
                 WHERE expires_ms IS NULL OR expires_ms > ?1",
            )
            .map_err(backend)?;
        let rows = statement
            .query_map(params![now_ms], |row| {
                Ok(ServerBan {
                    kind: row.get(0)?,
                    mask: row.get(1)?,
                    reason: row.get(2)?,
                    set_by: row.get(3)?,
                    set_at_ms: row.get(4)?,
                    expires_ms: row.get(5)?,
                })
            })
            .map_err(backend)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        Ok(rows)
    }
}
