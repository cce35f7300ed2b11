//! `cargo bench -p parley-server --bench history_write`: what storing a channel message costs in
//! the SQLite file, and which part of the schema it pays for (issue 27, target 1).
//!
//! Every message parleyd delivers is first written by the history writer, in one transaction per
//! group commit ([`HistoryStore::write`]). This writes the same kind of rows through that call,
//! in batches of the sizes a group commit carries, to a fresh database per case, with the
//! writer's settings (WAL, `synchronous = NORMAL`, checkpoints deferred to a timer, which here
//! runs after each second's worth of batches as in the server). Then it does it again with one
//! part of the schema taken away at a time (the FTS index's trigger, the `(target, time_ms, id)`
//! index, and the FTS index kept one row per insert as before schema step 17), so the
//! difference is what that part costs per message. Per case: microseconds of
//! wall clock per message (the writer is one thread, so that is its CPU plus its fsyncs) and the
//! bytes of write-ahead log per message, at 1, 8, 64 and 256 messages a commit (a flat-out
//! fan-out over 50 channels commits 128-1,024 at a time). `PARLEY_BENCH_MESSAGES` sets how many
//! (default 60,000); `PARLEY_BENCH_BATCH` and `PARLEY_BENCH_CASE` pick one batch size and the
//! schemas whose name starts with it, to profile one case.
//!
//! The log is truncated between rounds (so its size counts one round's writes), so every round
//! grows the file again, which the server's log, reused from its start after a checkpoint, does
//! not: a profile of the one-message commits found a third of their time in the kernel extending
//! the file, so those figures are pessimistic for the server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use parley_server::store::{HistoryStore, SqliteStore, StoredMessage, WriteBatch};

/// Channels the messages go to, round robin (fanout 50x20x50 has 50).
const CHANNELS: usize = 50;
/// Messages already in the file before timing starts: an index costs more once it is deep.
const PREFILL: usize = 100_000;

/// One part of the schema taken away, by the SQL that takes it.
struct Case {
    name: &'static str,
    drop: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "as shipped",
        drop: "",
    },
    Case {
        name: "FTS one row per insert (before)",
        drop: "DROP TRIGGER messages_fts_insert;
               CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
                   INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);
               END;",
    },
    Case {
        name: "no FTS at all",
        drop: "DROP TRIGGER messages_fts_insert;",
    },
    Case {
        name: "no (target, time_ms, id) index",
        drop: "DROP INDEX messages_by_target;",
    },
    Case {
        name: "no FTS, no target index",
        drop: "DROP TRIGGER messages_fts_insert; DROP INDEX messages_by_target;",
    },
];

fn message(i: usize) -> StoredMessage {
    let channel = format!("#room{}", i % CHANNELS);
    StoredMessage {
        msgid: format!("{:016x}{:08x}", 0x1234_5678_9abc_u64 + i as u64, i),
        time_ms: 1_700_000_000_000 + i as i64,
        target: channel.clone(),
        kind: "PRIVMSG".into(),
        source: format!("user{}!~user@127.0.0.1", i % 1000),
        account: None,
        to: channel,
        text: format!(
            "{} {} 1700000000{:06} hello from the bench, a line of ordinary length",
            i % 1000,
            i,
            i % 1_000_000
        ),
        tags: String::new(),
    }
}

fn write_all(store: &SqliteStore, from: usize, count: usize, batch: usize) {
    let mut i = from;
    while i < from + count {
        let mut b = WriteBatch::default();
        for _ in 0..batch.min(from + count - i) {
            b.messages.push(message(i));
            i += 1;
        }
        store.write(&b).expect("batch written");
    }
}

fn wal_bytes(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// Per message: wall-clock microseconds, and WAL bytes written.
fn measure(case: &Case, messages: usize, batch: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("parley.db");
    let store = SqliteStore::open(&path).expect("store opens");
    if !case.drop.is_empty() {
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        raw.execute_batch(case.drop).expect("schema part dropped");
    }
    write_all(&store, 0, PREFILL, 1000);
    store.checkpoint().expect("checkpoint");
    store.defer_checkpoints().expect("defer");
    // Restart the log so its size counts this run's writes only.
    {
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("truncate");
    }
    let mut logged = 0;
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    // A checkpoint between rounds, as the server's timer does once a second; timed too (the
    // server runs it on another connection, but on the same 2 cores).
    let round = messages / 10;
    while done < messages {
        let start = Instant::now();
        write_all(&store, PREFILL + done, round, batch);
        logged += wal_bytes(&path);
        store.checkpoint().expect("checkpoint");
        elapsed += start.elapsed();
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("truncate");
        done += round;
    }
    (
        elapsed.as_secs_f64() * 1e6 / messages as f64,
        logged as f64 / messages as f64,
    )
}

fn main() {
    let messages: usize = std::env::var("PARLEY_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    println!(
        "{messages} channel messages over {CHANNELS} channels after {PREFILL} stored, per message:"
    );
    println!(
        "{:<34} {:>6} {:>10} {:>12}",
        "schema", "batch", "us/msg", "WAL B/msg"
    );
    // `PARLEY_BENCH_BATCH` picks one batch size, `PARLEY_BENCH_CASE` the schemas whose name
    // starts with it (to profile one case).
    let only_batch: Option<usize> = std::env::var("PARLEY_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok());
    let only_case = std::env::var("PARLEY_BENCH_CASE").unwrap_or_default();
    for batch in [1, 8, 64, 256] {
        if only_batch.is_some_and(|only| only != batch) {
            continue;
        }
        for case in CASES
            .iter()
            .filter(|case| case.name.starts_with(&only_case))
        {
            // Fewer single-message commits: each is an fsync-free commit but still slow.
            let n = if batch == 1 { messages / 4 } else { messages };
            let (us, wal) = measure(case, n, batch);
            println!("{:<34} {:>6} {:>10.2} {:>12.0}", case.name, batch, us, wal);
        }
    }
}
