//! `cargo bench -p parley-server --bench search`: SEARCH round trips over a socket against a
//! history of a million lines (issue 26: under 50 ms to find a word).
//!
//! The history is written through the store API (the same group-commit call the history writer
//! makes, FTS index triggers included), then the real server is started on it and one client
//! times `SEARCH` lines on loopback, from the line sent to the end of its batch. The words are
//! planted at known rates so each query has a known number of matches: a rare word (10 lines),
//! an uncommon one (1 %), a common one (10 %), two words together, a prefix, and a search with no
//! `in=` (the searcher's whole scope). Each query runs `ROUNDS` times; median, p95 and max go to
//! stdout. `PARLEY_BENCH_LINES` sets the size (default 1,000,000); `PARLEY_BENCH_POSTGRES_URL`
//! runs the same against that (empty) PostgreSQL database too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parley_server::config::StoreKind;
use parley_server::store::{HistoryStore, StoredMessage, WriteBatch};
use parley_server::Config;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CHANNEL: &str = "#bench";
const ROUNDS: usize = 100;
const WARMUP: usize = 5;
const BATCH: usize = 10_000;
/// The filler vocabulary: made-up words, so the planted ones occur exactly where planted.
const VOCABULARY: usize = 20_000;

/// A tiny deterministic generator (xorshift64*): the same history on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn filler_word(n: u64) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "pu", "ra", "si", "to", "ve", "zu", "ba", "de", "fo", "gi", "ho",
        "ju",
    ];
    let mut word = String::new();
    let mut n = n;
    loop {
        word.push_str(SYLLABLES[(n % 16) as usize]);
        n /= 16;
        if n == 0 {
            break;
        }
    }
    word
}

/// Line `i` of the history: 8 to 16 filler words, with the planted words at their rates.
fn line(i: u64, lines: u64, rng: &mut Rng) -> String {
    let count = 8 + rng.below(9);
    let mut words: Vec<String> = (0..count)
        .map(|_| filler_word(rng.below(VOCABULARY as u64)))
        .collect();
    if i % (lines / 10).max(1) == 7 {
        words.push("zebracorn".into());
    }
    if i % 100 == 3 {
        words.push("quarterly".into());
    }
    if i % 10 == 1 {
        words.push("deploy".into());
    }
    if i % 10 == 1 && i % 20 == 1 {
        words.push("friday".into());
    }
    words.join(" ")
}

fn fill(store: &dyn HistoryStore, lines: u64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start_ms: i64 = 1_700_000_000_000;
    let began = Instant::now();
    let mut i = 0;
    while i < lines {
        let mut batch = WriteBatch::default();
        for _ in 0..BATCH.min((lines - i) as usize) {
            batch.messages.push(StoredMessage {
                msgid: format!("bench{i}"),
                time_ms: start_ms + i as i64 * 10,
                target: CHANNEL.into(),
                kind: "PRIVMSG".into(),
                source: format!("user{}!u@bench", i % 50),
                account: Some(format!("user{}", i % 50)),
                to: CHANNEL.into(),
                text: line(i, lines, &mut rng),
                tags: String::new(),
            });
            i += 1;
        }
        store.write(&batch).expect("history batch written");
    }
    println!(
        "filled {lines} lines in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

struct Conn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (read, writer) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::new(read),
            writer,
        };
        conn.send("CAP LS 302").await;
        conn.send("CAP REQ :soju.im/search batch server-time message-tags")
            .await;
        conn.send("NICK searcher").await;
        conn.send("USER searcher 0 * :searcher").await;
        conn.send("CAP END").await;
        conn.until(|l| l.contains(" 001 ")).await;
        conn.send(&format!("JOIN {CHANNEL}")).await;
        conn.until(|l| l.contains(" 366 ")).await;
        conn
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
    }

    /// Lines up to and including the first that matches.
    async fn until(&mut self, done: impl Fn(&str) -> bool) -> usize {
        let mut seen = 0;
        let mut line = String::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(Duration::from_secs(60), self.reader.read_line(&mut line))
                .await
                .expect("an answer within a minute")
                .expect("read");
            assert!(n > 0, "the server closed the connection");
            assert!(!line.contains(" FAIL "), "{line}");
            seen += 1;
            if done(&line) {
                return seen;
            }
        }
    }

    /// One SEARCH round trip: its time and how many messages the batch held.
    async fn search(&mut self, attributes: &str) -> (Duration, usize) {
        let start = Instant::now();
        self.send(&format!("SEARCH {attributes}")).await;
        let lines = self
            .until(|l| l.starts_with(':') && l.contains(" BATCH -"))
            .await;
        (start.elapsed(), lines.saturating_sub(2))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn measure(name: &str, config: Config, lines: u64) {
    let store = parley_server::store::open_history(&config).expect("store opens");
    fill(store.as_ref(), lines);
    drop(store);
    let running = parley_server::start(config).await.expect("server starts");
    let mut conn = Conn::open(running.plain_addrs()[0]).await;
    let queries = [
        ("rare word (10 lines)", "text=zebracorn;in=#bench;limit=50"),
        ("1% word", "text=quarterly;in=#bench;limit=50"),
        ("10% word", "text=deploy;in=#bench;limit=50"),
        ("two words (5%)", "text=deploy friday;in=#bench;limit=50"),
        ("prefix", "text=zebra*;in=#bench;limit=50"),
        ("rare word, no in=", "text=zebracorn;limit=50"),
    ];
    println!("\n{name}, {lines} lines, {ROUNDS} rounds each (ms):");
    println!(
        "{:<24} {:>8} {:>8} {:>8} {:>8}",
        "query", "results", "median", "p95", "max"
    );
    for (label, attributes) in queries {
        let attributes = attributes.replace(' ', "\\s");
        let mut times = Vec::with_capacity(ROUNDS);
        let mut results = 0;
        for round in 0..WARMUP + ROUNDS {
            let (took, found) = conn.search(&attributes).await;
            results = found;
            if round >= WARMUP {
                times.push(took);
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{label:<24} {results:>8} {:>8.2} {:>8.2} {:>8.2}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(times[times.len() - 1])
        );
    }
    running.shutdown();
}

fn config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.listen.tls = Vec::new();
    config.web.listen = Vec::new();
    config.metrics.listen = Vec::new();
    config.server.data_dir = dir.path().to_path_buf();
    config.flood.enabled = false;
    config.accounts.require_login = false;
    // The bench measures searches, not the per-connection budget.
    config.search.burst = 1000;
    config.search.per_minute = 6000;
    config.search.timeout_ms = 10_000;
    config
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument would be the only other thing.
    let lines: u64 = std::env::var("PARLEY_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    measure("SQLite (FTS5)", config(&dir), lines).await;
    if let Ok(url) = std::env::var("PARLEY_BENCH_POSTGRES_URL") {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = config(&dir);
        config.accounts.store = StoreKind::Postgres;
        config.accounts.postgres_url = url;
        measure("PostgreSQL (tsvector + GIN)", config, lines).await;
    }
}
