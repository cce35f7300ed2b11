//! `history`: CHATHISTORY LATEST/BEFORE throughput on a channel holding many stored lines.
//!
//! Fill: a keeper joins the channel and turns off `+n`, so the fill senders can write to it without
//! joining (each line is then delivered once, to the keeper, instead of to every sender); the
//! senders write flat out, each at most `fill_window` lines ahead of what the keeper has received.
//! The fill ends with a marker line stating the count, and a run that finds the marker with enough
//! lines (a reused data dir, or a server run by hand) skips the fill.
//!
//! Measure: clients walk back through history, starting from `LATEST` or from a random time, one
//! page at a time with `BEFORE msgid=<oldest>`; every page is checked (see [`page`]).

pub mod page;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::page::{classify, entry, Cursor, Entry, Line, Oldest, PageError, Walk, MARKER_PREFIX};
use super::{connect_all, cpu_secs, cpu_used, histogram, quit_all, wait_for, Latency, Target};
use crate::client::{contains, numeric, strip_tags_and_source, Conn, LineReader, Stream};
use crate::payload;

/// The capabilities a history reader needs; a server without them cannot run this scenario.
const CAPS: &str = "batch draft/chathistory message-tags server-time";
/// How long one CHATHISTORY answer may take before the run counts it as a failure.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// A fill that makes no progress for this long has failed (the server refused or lost lines).
const FILL_STALL: Duration = Duration::from_secs(30);
/// Lines a fill sender writes per syscall at most.
const SEND_BATCH: u64 = 64;
/// Most fill senders: their ids are packed below a per-fill base (see [`sender_base`]).
pub const MAX_FILL_SENDERS: usize = 64;

#[derive(Debug, Clone, Serialize)]
pub struct HistoryParams {
    pub channel: String,
    /// Lines the channel's history must hold before measuring.
    pub lines: u64,
    pub fill_senders: usize,
    /// How many lines a fill sender may be ahead of what the keeper received.
    pub fill_window: u64,
    /// Approximate length of each fill line in bytes, CRLF included.
    pub line_len: usize,
    /// The whole fill must finish within this.
    pub fill_timeout: Duration,
    /// Clients querying at once, one request in flight each.
    pub clients: usize,
    /// Lines per request (capped by the server's CHATHISTORY limit).
    pub page: usize,
    /// Pages a walk reads back at most before starting over from a new point.
    pub walk_pages: usize,
    pub duration: Duration,
}

impl Default for HistoryParams {
    fn default() -> Self {
        HistoryParams {
            channel: "#history".into(),
            lines: 1_000_000,
            fill_senders: 16,
            fill_window: 256,
            line_len: 100,
            fill_timeout: Duration::from_secs(1800),
            clients: 8,
            page: 100,
            walk_pages: 10,
            duration: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FillResult {
    /// The channel already held enough lines (a marker said so).
    pub skipped: bool,
    /// Lines the marker found before this run stated.
    pub existing: u64,
    pub filled: u64,
    pub secs: f64,
    pub lines_per_sec: f64,
    /// CPU the server used during the fill, as a share of one core.
    pub server_cpu_cores: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct QueryStats {
    pub queries: u64,
    pub lines: u64,
    pub queries_per_sec: f64,
    pub lines_per_sec: f64,
    /// Request sent to end of batch received.
    pub latency: Latency,
}

impl QueryStats {
    fn of(hist: &Histogram<u64>, lines: u64, secs: f64) -> Self {
        QueryStats {
            queries: hist.len(),
            lines,
            queries_per_sec: hist.len() as f64 / secs,
            lines_per_sec: lines as f64 / secs,
            latency: Latency::of(hist),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryResult {
    pub target: String,
    pub params: HistoryParams,
    /// Lines per request actually asked for (the server's limit may be lower than `params.page`).
    pub page: usize,
    /// Lines the channel holds, as its fill marker states (at least).
    pub stored_lines: u64,
    pub fill: FillResult,
    pub elapsed_secs: f64,
    /// All requests together.
    pub total: QueryStats,
    /// `LATEST * page`.
    pub latest: QueryStats,
    /// `BEFORE timestamp=...` and `BEFORE msgid=...`.
    pub before: QueryStats,
    /// Walks that reached the oldest line (short pages there are expected).
    pub reached_start: u64,
    pub server_cpu_cores: Option<f64>,
    pub bench_cpu_cores: Option<f64>,
    pub violations: u64,
    pub first_violation: Option<String>,
    /// The server's resident memory at its highest during the run (VmHWM, added up over its
    /// processes), in KiB; `None` without a server pid.
    #[serde(default)]
    pub server_rss_peak_kib: Option<u64>,
    pub ok: bool,
}

pub async fn run(target: &Target, p: &HistoryParams) -> Result<HistoryResult> {
    if p.clients == 0 || p.page == 0 || p.lines == 0 {
        bail!("history needs --clients, --page and --lines of at least 1");
    }
    if p.fill_senders == 0 || p.fill_senders > MAX_FILL_SENDERS {
        bail!("history needs 1 to {MAX_FILL_SENDERS} fill senders");
    }
    if !p.channel.starts_with('#') || p.channel.contains([' ', ',', '\r', '\n']) {
        bail!(
            "`{}` is not a channel name (#name, no spaces or commas)",
            p.channel
        );
    }
    let (mut keeper, limit) = connect_reader(target, 0, "hkeeper").await?;
    let page = limit.map_or(p.page, |l| p.page.min(l));
    keeper.join(&p.channel).await?;
    let newest = fetch(&mut keeper, &Cursor::Latest.request(&p.channel, 1)).await?;
    let existing = newest.first().and_then(|e| e.marker).unwrap_or(0);
    let fill = if existing >= p.lines {
        FillResult {
            skipped: true,
            existing,
            filled: 0,
            secs: 0.0,
            lines_per_sec: f64::NAN,
            server_cpu_cores: None,
        }
    } else {
        fill(target, p, &mut keeper, existing).await?
    };
    let stored_lines = existing.max(p.lines);
    keeper.quit().await;

    let mut readers = connect_readers(target, p).await?;
    let first = readers
        .first_mut()
        .context("at least one history client is connected")?;
    let oldest_page = fetch(
        first,
        &format!(
            "CHATHISTORY AFTER {} timestamp=2000-01-01T00:00:00.000Z 1\r\n",
            p.channel
        ),
    )
    .await?;
    let newest_page = fetch(first, &Cursor::Latest.request(&p.channel, 1)).await?;
    let (Some(oldest), Some(newest)) = (oldest_page.first(), newest_page.first()) else {
        bail!(
            "{} has no history after the fill (is history turned off?)",
            p.channel
        );
    };
    let oldest = Oldest {
        msgid: oldest.msgid.clone(),
        time_ms: oldest.time_ms,
    };
    let newest_ms = newest.time_ms;

    let bar = target.bar(p.duration.as_secs(), "querying (s)");
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                bar.inc(1);
            }
        })
    };
    let (server_cpu_before, bench_cpu_before) = (target.server_cpu_secs(), cpu_secs(None));
    let start = Instant::now();
    let deadline = start + p.duration;
    let mut tasks = JoinSet::new();
    for (index, conn) in readers.drain(..).enumerate() {
        let walker = Walker {
            channel: p.channel.clone(),
            page,
            walk_pages: p.walk_pages,
            oldest: oldest.clone(),
            newest_ms,
            seed: 0x9e37_79b9_7f4a_7c15 ^ (index as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
        };
        tasks.spawn(async move { walker.run(conn, deadline).await });
    }
    let (mut latest, mut before) = (histogram(), histogram());
    let (mut latest_lines, mut before_lines, mut reached_start) = (0, 0, 0);
    let (mut violations, mut first_violation) = (0u64, None);
    let mut conns = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (stats, conn) = done.context("a history client task panicked")?;
        latest.add(&stats.latest).ok();
        before.add(&stats.before).ok();
        latest_lines += stats.latest_lines;
        before_lines += stats.before_lines;
        reached_start += stats.reached_start;
        if let Some(violation) = stats.violation {
            violations += 1;
            first_violation.get_or_insert(violation);
        }
        conns.extend(conn);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let server_cpu =
        cpu_used(server_cpu_before, target.server_cpu_secs()).map(|each| each.iter().sum::<f64>());
    let bench_cpu = bench_cpu_before.zip(cpu_secs(None)).map(|(b, a)| a - b);
    ticker.abort();
    bar.finish_and_clear();
    quit_all(conns).await;

    let mut all = latest.clone();
    all.add(&before).ok();
    let total = QueryStats::of(&all, latest_lines + before_lines, elapsed);
    Ok(HistoryResult {
        server_rss_peak_kib: target.server_peak_rss_kib()?,
        target: target.name.clone(),
        params: p.clone(),
        page,
        stored_lines,
        fill,
        elapsed_secs: elapsed,
        latest: QueryStats::of(&latest, latest_lines, elapsed),
        before: QueryStats::of(&before, before_lines, elapsed),
        reached_start,
        server_cpu_cores: server_cpu.map(|c| c / elapsed),
        bench_cpu_cores: bench_cpu.map(|c| c / elapsed),
        violations,
        first_violation,
        ok: violations == 0 && total.queries > 0,
        total,
    })
}

/// Connect and register client `index` asking for the history capabilities; returns it and the
/// server's CHATHISTORY limit from ISUPPORT, if it states one.
async fn connect_reader(
    target: &Target,
    index: usize,
    nick: &str,
) -> Result<(Conn, Option<usize>)> {
    let mut conn = target.endpoint.connect(index).await?;
    conn.send(&format!(
        "CAP LS 302\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP REQ :{CAPS}\r\n"
    ))
    .await?;
    let acked = AtomicBool::new(false);
    conn.expect("the answer to CAP REQ", |l| {
        if contains(l, b" CAP ") && contains(l, b" ACK ") {
            acked.store(true, Ordering::Relaxed);
            return true;
        }
        // A NAK, no CAP at all (421), or registration finishing without capabilities.
        (contains(l, b" CAP ") && contains(l, b" NAK "))
            || matches!(numeric(l), Some(b"421" | b"001"))
    })
    .await?;
    if !acked.load(Ordering::Relaxed) {
        bail!("{} does not offer {CAPS}: the history scenario needs draft/chathistory (parleyd has it)", target.name);
    }
    conn.send("CAP END\r\n").await?;
    let limit = Mutex::new(None);
    conn.expect("the welcome (001)", |l| numeric(l) == Some(b"001"))
        .await?;
    conn.expect("the end of the MOTD (376/422)", |l| {
        if numeric(l) == Some(b"005") {
            let found = l.split(|b| *b == b' ').find_map(|token| {
                std::str::from_utf8(token.strip_prefix(b"CHATHISTORY=")?)
                    .ok()?
                    .parse::<usize>()
                    .ok()
            });
            if let Some(n) = found.filter(|n| *n > 0) {
                *limit.lock() = Some(n);
            }
        }
        matches!(numeric(l), Some(b"376" | b"422"))
    })
    .await?;
    let limit = *limit.lock();
    Ok((conn, limit))
}

async fn connect_readers(target: &Target, p: &HistoryParams) -> Result<Vec<Conn>> {
    let bar = target.bar(p.clients as u64, "history clients");
    let limit = Arc::new(Semaphore::new(target.setup_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for index in 0..p.clients {
        let (target, channel, limit) = (target.clone(), p.channel.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let nick = format!("hread{index}");
            let (mut conn, _) = connect_reader(&target, index + 1, &nick).await?;
            conn.join(&channel)
                .await
                .with_context(|| format!("{nick} joining {channel}"))?;
            anyhow::Ok(conn)
        });
    }
    let mut conns = Vec::with_capacity(p.clients);
    while let Some(done) = tasks.join_next().await {
        conns.push(done.context("a setup task panicked")??);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(conns)
}

/// Send one CHATHISTORY request and read its batch.
async fn fetch(conn: &mut Conn, request: &str) -> Result<Vec<Entry>, PageError> {
    conn.send(request).await.map_err(|_| PageError::Closed)?;
    read_batch(conn).await
}

/// Read one `chathistory` batch: the opener, its lines, its end. Lines outside the batch (joins,
/// pings) are skipped; errors and anything malformed fail.
async fn read_batch(conn: &mut Conn) -> Result<Vec<Entry>, PageError> {
    let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
    let mut open: Option<Vec<u8>> = None;
    let mut entries = Vec::new();
    loop {
        let line = tokio::time::timeout_at(deadline, conn.reader.next_line())
            .await
            .map_err(|_| PageError::Timeout(QUERY_TIMEOUT.as_secs()))?
            .map_err(|_| PageError::Closed)?
            .ok_or(PageError::Closed)?;
        let text = || String::from_utf8_lossy(line).into_owned();
        match (classify(line), &open) {
            (Line::Open { id, kind, .. }, None) => {
                if kind != b"chathistory" {
                    return Err(PageError::Malformed(format!(
                        "a batch of another type: {}",
                        text()
                    )));
                }
                open = Some(id.to_vec());
            }
            (Line::Open { .. }, Some(_)) => {
                return Err(PageError::Malformed(format!(
                    "a batch opened inside the answer: {}",
                    text()
                )))
            }
            (Line::Close { id }, Some(opened)) if id == opened.as_slice() => return Ok(entries),
            (Line::Close { .. }, _) => {
                return Err(PageError::Malformed(format!(
                    "the end of a batch that is not open: {}",
                    text()
                )))
            }
            (Line::InBatch { id }, Some(opened)) if id == opened.as_slice() => {
                entries.push(entry(line)?);
            }
            (Line::InBatch { .. }, _) => {
                return Err(PageError::Malformed(format!(
                    "a line of a batch that is not open: {}",
                    text()
                )))
            }
            (Line::Error, _) => return Err(PageError::Refused(text())),
            (Line::Ping, _) => {
                let token = line.strip_prefix(b"PING ").unwrap_or_default();
                let reply = [b"PONG ", token, b"\r\n"].concat();
                conn.writer
                    .write_all(&reply)
                    .await
                    .map_err(|_| PageError::Closed)?;
            }
            (Line::Other, _) => {}
        }
    }
}

/// The numbers one client gathers.
struct WalkerStats {
    latest: Histogram<u64>,
    before: Histogram<u64>,
    latest_lines: u64,
    before_lines: u64,
    reached_start: u64,
    violation: Option<String>,
}

/// One client's walks back through history.
struct Walker {
    channel: String,
    page: usize,
    walk_pages: usize,
    oldest: Oldest,
    newest_ms: i64,
    seed: u64,
}

impl Walker {
    /// Walk until `deadline`; stop at the first violation. Returns the connection unless it failed.
    async fn run(mut self, mut conn: Conn, deadline: Instant) -> (WalkerStats, Option<Conn>) {
        let mut stats = WalkerStats {
            latest: histogram(),
            before: histogram(),
            latest_lines: 0,
            before_lines: 0,
            reached_start: 0,
            violation: None,
        };
        let span = (self.newest_ms - self.oldest.time_ms).max(0) as u64 + 1;
        let mut walks = 0u64;
        'walks: while Instant::now() < deadline {
            walks += 1;
            // Half the walks start at the newest line, half at a random time in the channel.
            let mut cursor = if walks.is_multiple_of(2) {
                Cursor::Latest
            } else {
                Cursor::Time(self.oldest.time_ms + (self.next_random() % span) as i64)
            };
            let mut walk = Walk::default();
            for _ in 0..=self.walk_pages {
                if Instant::now() >= deadline {
                    break 'walks;
                }
                let began = Instant::now();
                let page = match fetch(&mut conn, &cursor.request(&self.channel, self.page)).await {
                    Ok(page) => page,
                    Err(e) => {
                        stats.violation = Some(format!("{}: {e}", cursor.describe()));
                        let broken = matches!(e, PageError::Closed | PageError::Timeout(_));
                        return (stats, (!broken).then_some(conn));
                    }
                };
                let micros = began.elapsed().as_micros() as u64;
                let (hist, lines) = match cursor {
                    Cursor::Latest => (&mut stats.latest, &mut stats.latest_lines),
                    _ => (&mut stats.before, &mut stats.before_lines),
                };
                hist.saturating_record(micros);
                *lines += page.len() as u64;
                match walk.check(&cursor, &page, self.page, &self.oldest) {
                    Ok(true) => {
                        stats.reached_start += 1;
                        continue 'walks;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        stats.violation = Some(format!("{}: {e}", cursor.describe()));
                        return (stats, Some(conn));
                    }
                }
                let Some(oldest) = page.first() else {
                    continue 'walks;
                };
                cursor = Cursor::MsgId {
                    msgid: oldest.msgid.clone(),
                    time_ms: oldest.time_ms,
                };
            }
        }
        (stats, Some(conn))
    }

    /// splitmix64: random start points without a dependency, different per client.
    fn next_random(&mut self) -> u64 {
        self.seed = self.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Cursor {
    fn describe(&self) -> String {
        match self {
            Cursor::Latest => "LATEST".into(),
            Cursor::Time(ms) => format!("BEFORE timestamp={}", page::format_time(*ms)),
            Cursor::MsgId { msgid, .. } => format!("BEFORE msgid={msgid}"),
        }
    }
}

/// Sender ids for one fill: a base from the clock, so a later fill into the same channel (after
/// an interrupted one) never shares ids with an earlier one and the per-sender checks hold.
fn sender_base() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ((secs & 0x03ff_ffff) as u32) << 6
}

/// What the keeper has received from each fill sender.
struct FillShared {
    origin: Instant,
    base: u32,
    seen: Vec<AtomicU64>,
    wake: Vec<Notify>,
    received: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
}

impl FillShared {
    fn fail(&self, why: String) {
        self.failure.lock().get_or_insert(why);
        self.failed.store(true, Ordering::Relaxed);
    }
}

/// Write `p.lines - existing` lines into the channel and the marker after them.
async fn fill(
    target: &Target,
    p: &HistoryParams,
    keeper: &mut Conn,
    existing: u64,
) -> Result<FillResult> {
    let to_fill = p.lines - existing;
    // Senders write from outside the channel: one delivery per line (to the keeper), not one
    // to every sender.
    keeper
        .send(&format!("MODE {0} -n\r\nMODE {0}\r\n", p.channel))
        .await?;
    let modes = Mutex::new(Vec::new());
    keeper
        .expect("the channel modes (324)", |l| {
            if numeric(l) == Some(b"324") {
                let rest = strip_tags_and_source(l);
                *modes.lock() = rest
                    .split(|b| *b == b' ')
                    .nth(3)
                    .unwrap_or_default()
                    .to_vec();
                return true;
            }
            numeric(l) == Some(b"482")
        })
        .await?;
    let modes = modes.into_inner();
    if modes.is_empty() || modes.contains(&b'n') {
        bail!(
            "could not turn off +n on {} (modes `{}`): is another client its operator?",
            p.channel,
            String::from_utf8_lossy(&modes)
        );
    }
    let senders = connect_all(
        target,
        p.fill_senders,
        |k| format!("hfill{k}"),
        |_| None,
        "fill clients",
    )
    .await?;
    let shared = Arc::new(FillShared {
        origin: Instant::now(),
        base: sender_base(),
        seen: (0..p.fill_senders).map(|_| AtomicU64::new(0)).collect(),
        wake: (0..p.fill_senders).map(|_| Notify::new()).collect(),
        received: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        failure: Mutex::new(None),
    });
    let stop = CancellationToken::new();
    let quotas: Vec<u64> = (0..p.fill_senders as u64)
        .map(|k| to_fill / p.fill_senders as u64 + u64::from(k < to_fill % p.fill_senders as u64))
        .collect();

    let bar = target.bar(to_fill, "filling history");
    let server_cpu_before = target.server_cpu_secs();
    let start = Instant::now();
    let deadline = start + p.fill_timeout;
    let mut tasks = JoinSet::new();
    for (k, conn) in senders.into_iter().enumerate() {
        let (shared, stop, quota) = (shared.clone(), stop.clone(), quotas[k]);
        let (channel, window, line_len) = (p.channel.clone(), p.fill_window.max(1), p.line_len);
        tasks.spawn(async move {
            let watcher = tokio::spawn(watch_sender(conn.reader, k, shared.clone(), stop));
            let writer = send_fill(
                conn.writer,
                k,
                quota,
                &channel,
                window,
                line_len,
                &shared,
                deadline,
            )
            .await;
            (watcher, writer)
        });
    }
    // The keeper reads on this task while the senders run: every fill line comes to it once.
    let all_in = async {
        let total: u64 = quotas.iter().sum();
        while shared.received.load(Ordering::Relaxed) < total {
            if shared.failed.load(Ordering::Relaxed) {
                return;
            }
            tokio::select! {
                line = keeper.reader.next_line() => match line {
                    Ok(Some(line)) => keeper_line(line, &mut keeper.writer, &shared, &quotas).await,
                    Ok(None) | Err(_) => {
                        shared.fail("the keeper's connection closed during the fill".into());
                        return;
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            bar.set_position(shared.received.load(Ordering::Relaxed));
        }
    };
    tokio::select! {
        () = all_in => {}
        () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
            shared.fail(format!("the fill did not finish within {} s", p.fill_timeout.as_secs()));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let server_cpu =
        cpu_used(server_cpu_before, target.server_cpu_secs()).map(|each| each.iter().sum::<f64>());
    bar.finish_and_clear();
    stop.cancel();
    let mut conns = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (watcher, writer) = done.context("a fill sender task panicked")?;
        let reader = watcher.await.context("a fill watcher task panicked")?;
        if let Some(writer) = writer {
            conns.push(Conn { reader, writer });
        }
    }
    quit_all(conns).await;
    if let Some(why) = shared.failure.lock().take() {
        bail!("filling {}: {why}", p.channel);
    }
    let filled = shared.received.load(Ordering::Relaxed);
    let total = existing + filled;
    keeper
        .send(&format!(
            "PRIVMSG {} :{MARKER_PREFIX}{total} lines\r\n",
            p.channel
        ))
        .await?;
    let newest = fetch(keeper, &Cursor::Latest.request(&p.channel, 1)).await?;
    if newest.first().and_then(|e| e.marker) != Some(total) {
        bail!(
            "the fill's marker line is not the newest line of {} (is history stored?)",
            p.channel
        );
    }
    Ok(FillResult {
        skipped: false,
        existing,
        filled,
        secs,
        lines_per_sec: filled as f64 / secs,
        server_cpu_cores: server_cpu.map(|c| c / secs),
    })
}

/// One line the keeper received during the fill: count fill lines (each sender's in order),
/// answer pings, notice errors.
async fn keeper_line(
    line: &[u8],
    writer: &mut tokio::io::WriteHalf<Stream>,
    shared: &FillShared,
    quotas: &[u64],
) {
    if let Some(stamp) = payload::parse(line) {
        let Some(k) = stamp
            .sender
            .checked_sub(shared.base)
            .map(|k| k as usize)
            .filter(|k| *k < quotas.len())
        else {
            return;
        };
        let expected = shared.seen[k].load(Ordering::Relaxed);
        if stamp.seq != expected {
            shared.fail(format!(
                "sender {k}: line {} arrived where {expected} should (lost or reordered)",
                stamp.seq
            ));
            return;
        }
        shared.seen[k].store(expected + 1, Ordering::Release);
        shared.wake[k].notify_one();
        shared.received.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match classify(line) {
        Line::Ping => {
            let token = line.strip_prefix(b"PING ").unwrap_or_default();
            let reply = [b"PONG ", token, b"\r\n"].concat();
            if writer.write_all(&reply).await.is_err() {
                shared.fail("the keeper could not answer a PING".into());
            }
        }
        Line::Error => shared.fail(format!(
            "the keeper got an error: {}",
            String::from_utf8_lossy(line)
        )),
        _ => {}
    }
}

/// Read a fill sender's connection until `stop`; any error from the server (a refused PRIVMSG,
/// a closed link) fails the fill at once instead of after the stall timeout.
async fn watch_sender(
    mut reader: LineReader,
    k: usize,
    shared: Arc<FillShared>,
    stop: CancellationToken,
) -> LineReader {
    loop {
        let line = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            line = reader.next_line() => line,
        };
        match line {
            Ok(Some(line)) => {
                if matches!(classify(line), Line::Error) {
                    shared.fail(format!(
                        "fill sender {k} got: {}",
                        String::from_utf8_lossy(line)
                    ));
                }
            }
            Ok(None) | Err(_) => {
                shared.fail(format!("fill sender {k}'s connection closed"));
                break;
            }
        }
    }
    reader
}

/// One fill sender: `quota` lines, at most `window` ahead of the keeper. Returns its writer
/// unless writing failed.
#[allow(clippy::too_many_arguments)]
async fn send_fill(
    mut writer: tokio::io::WriteHalf<Stream>,
    k: usize,
    quota: u64,
    channel: &str,
    window: u64,
    line_len: usize,
    shared: &FillShared,
    deadline: Instant,
) -> Option<tokio::io::WriteHalf<Stream>> {
    let sender = shared.base + k as u32;
    let mut buf = Vec::with_capacity(SEND_BATCH as usize * line_len);
    let mut seq = 0u64;
    let mut last_progress = (0u64, Instant::now());
    while seq < quota {
        if shared.failed.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return Some(writer);
        }
        let seen = shared.seen[k].load(Ordering::Acquire).min(seq);
        if seen != last_progress.0 {
            last_progress = (seen, Instant::now());
        } else if last_progress.1.elapsed() > FILL_STALL {
            shared.fail(format!(
                "sender {k}: nothing of it reached the channel for {} s (line {seen} of {quota})",
                FILL_STALL.as_secs()
            ));
            return Some(writer);
        }
        let in_flight = seq - seen;
        if in_flight >= window {
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.wake[k].notified()).await;
            continue;
        }
        let n = (window - in_flight).min(SEND_BATCH).min(quota - seq);
        buf.clear();
        for _ in 0..n {
            payload::write_privmsg(&mut buf, channel, sender, seq, shared.origin, line_len);
            seq += 1;
        }
        // Bounded: a server that stops reading must not hold the run forever.
        match tokio::time::timeout(FILL_STALL, writer.write_all(&buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                shared.fail(format!(
                    "fill sender {k} could not write for {} s",
                    FILL_STALL.as_secs()
                ));
                return None;
            }
        }
    }
    // Wait (bounded) until the keeper has all of this sender's lines before handing back.
    let seen = &shared.seen[k];
    wait_for(FILL_STALL, || {
        seen.load(Ordering::Relaxed) >= quota || shared.failed.load(Ordering::Relaxed)
    })
    .await;
    Some(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_ids_fit_below_the_base() {
        let base = sender_base();
        assert_eq!(base % MAX_FILL_SENDERS as u32, 0);
        assert!(base.checked_add(MAX_FILL_SENDERS as u32 - 1).is_some());
    }
}
