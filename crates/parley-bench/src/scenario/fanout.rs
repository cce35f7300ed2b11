//! `fanout`: C channels of M members, S senders spread over them (sender j speaks in channel
//! j mod C), either at a fixed total rate or flat out. Flat out is bounded by a per-sender window:
//! a sender runs at most `window` lines ahead of one designated non-sending member of its channel,
//! so the run measures the server's delivery rate instead of how fast a send queue overflows.
//! Every member checks exactly-once, in-order delivery from every sender of its channel.
//!
//! Against a cluster the clients are spread over the nodes round-robin, and each delivery's latency
//! goes to one of two histograms: the member is on the sender's node, or on another one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{connect_all, cpu_secs, cpu_used, histogram, wait_for, Latency, Target};
use crate::client::{LineReader, Stream};
use crate::payload::{self, OrderCheck};

/// Lines a flat-out sender writes per syscall at most.
const SEND_BATCH: u64 = 32;

#[derive(Debug, Clone, Serialize)]
pub struct FanoutParams {
    pub channels: usize,
    pub members: usize,
    pub senders: usize,
    /// Total messages per second over all senders; `None` is flat out.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Flat out: how many lines a sender may be ahead of its channel's probe member.
    pub window: u64,
    /// Approximate length of each sent line in bytes, CRLF included.
    pub line_len: usize,
    /// How long to wait for the last deliveries after the senders stop.
    pub drain: Duration,
}

impl Default for FanoutParams {
    fn default() -> Self {
        FanoutParams {
            channels: 1,
            members: 200,
            senders: 10,
            rate: None,
            duration: Duration::from_secs(10),
            window: 32,
            line_len: 100,
            drain: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    pub target: String,
    pub params: FanoutParams,
    pub setup_secs: f64,
    pub sent: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub elapsed_secs: f64,
    pub sends_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub latency: Latency,
    /// Server addresses the clients were spread over, round-robin by client number: the nodes of
    /// a cluster (1 for a single server).
    pub nodes: usize,
    /// Latency of deliveries to members connected to the sender's own node (`None`: there were
    /// none).
    pub latency_same_node: Option<Latency>,
    /// Latency of deliveries that crossed to another node: the cost of a cross-node message
    /// (`None` with one node).
    pub latency_cross_node: Option<Latency>,
    /// CPU the server used during the run, as a share of one core (1.0 = one core busy); with
    /// several server processes (a cluster's nodes and its NATS server), their sum.
    pub server_cpu_cores: Option<f64>,
    /// With several server processes: each one's share of [`FanoutResult::server_cpu_cores`], in
    /// the order the target lists them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_cpu_cores_each: Vec<f64>,
    /// CPU this benchmark process used during the run, as a share of one core.
    pub bench_cpu_cores: Option<f64>,
    /// Deliveries per second of server CPU: how efficient the server is, whatever the bench costs.
    pub deliveries_per_server_cpu_sec: Option<f64>,
    pub missing: u64,
    pub gaps: u64,
    pub repeats: u64,
    pub strangers: u64,
    pub disconnects: u64,
    /// The server's resident memory at its highest during the run (VmHWM, added up over its
    /// processes), in KiB; `None` without a server pid.
    #[serde(default)]
    pub server_rss_peak_kib: Option<u64>,
    pub ok: bool,
}

struct Shared {
    origin: Instant,
    delivered: AtomicU64,
    /// Per sender: lines its channel's probe member has received.
    probe_seen: Vec<AtomicU64>,
    probe_wake: Vec<Notify>,
    disconnected: AtomicU64,
    stop: CancellationToken,
    failed: AtomicBool,
}

struct Received {
    channel: usize,
    own_sender: Option<usize>,
    /// Latencies of lines from senders on this member's node, and from senders on other nodes.
    same_node: Histogram<u64>,
    cross_node: Histogram<u64>,
    check: OrderCheck,
}

pub async fn run(target: &Target, p: &FanoutParams) -> Result<FanoutResult> {
    let (c, m, s) = (p.channels, p.members, p.senders);
    if c == 0 || m < 2 || s == 0 || s > c * (m - 1) {
        bail!(
            "fanout needs channels >= 1, members >= 2 and 1 <= senders <= channels x (members - 1)"
        );
    }
    let setup = Instant::now();
    let conns = connect_all(
        target,
        c * m,
        |k| format!("f{k}"),
        |k| Some(format!("#f{}", k / m)),
        "joining",
    )
    .await?;
    let setup_secs = setup.elapsed().as_secs_f64();
    // Sender j is member j / C of channel j mod C, which is client number channel * M + member.
    let sender_nodes: Arc<[usize]> = (0..s)
        .map(|j| target.endpoint.node_of(j % c * m + j / c))
        .collect();

    let shared = Arc::new(Shared {
        origin: Instant::now(),
        delivered: AtomicU64::new(0),
        probe_seen: (0..s).map(|_| AtomicU64::new(0)).collect(),
        probe_wake: (0..s).map(|_| Notify::new()).collect(),
        disconnected: AtomicU64::new(0),
        stop: CancellationToken::new(),
        failed: AtomicBool::new(false),
    });
    let mut receivers = JoinSet::new();
    let mut writers = Vec::with_capacity(c * m);
    let mut sender_writers = Vec::new();
    for (k, conn) in conns.into_iter().enumerate() {
        let (channel, member) = (k / m, k % m);
        let sender = member * c + channel;
        let own_sender = (sender < s).then_some(sender);
        let probe = member == m - 1;
        let shared = shared.clone();
        let node = Node {
            this: target.endpoint.node_of(k),
            of_sender: sender_nodes.clone(),
        };
        receivers.spawn(receive(
            conn.reader,
            channel,
            own_sender,
            probe,
            node,
            shared,
        ));
        match own_sender {
            Some(j) => sender_writers.push((j, channel, conn.writer)),
            None => writers.push(conn.writer),
        }
    }

    let bar = target.bar(p.duration.as_secs(), "sending (s)");
    let (server_cpu_before, bench_cpu_before) = (target.server_cpu_secs(), cpu_secs(None));
    let start = Instant::now();
    let deadline = start + p.duration;
    let mut senders = JoinSet::new();
    for (j, channel, writer) in sender_writers {
        let shared = shared.clone();
        let p = p.clone();
        senders.spawn(async move {
            let sent = send(writer, j, channel, &shared, &p, deadline).await;
            (j, sent)
        });
    }
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
    let mut sent = vec![0u64; s];
    let mut writers_back = Vec::new();
    while let Some(done) = senders.join_next().await {
        let (j, (count, writer)) = done.context("a sender task panicked")?;
        sent[j] = count;
        writers_back.extend(writer);
    }
    ticker.abort();
    bar.finish_and_clear();
    let total_sent: u64 = sent.iter().sum();
    let expected = total_sent * (m as u64 - 1);
    let drained = wait_for(p.drain, || {
        shared.delivered.load(Ordering::Relaxed) >= expected
            || shared.disconnected.load(Ordering::Relaxed) > 0
    })
    .await;
    let elapsed = start.elapsed().as_secs_f64();
    let server_cpu_each = cpu_used(server_cpu_before, target.server_cpu_secs());
    let server_cpu = server_cpu_each
        .as_ref()
        .map(|each| each.iter().sum::<f64>());
    let bench_cpu = bench_cpu_before.zip(cpu_secs(None)).map(|(b, a)| a - b);
    shared.stop.cancel();

    let (mut same_node, mut cross_node) = (histogram(), histogram());
    let (mut missing, mut gaps, mut repeats, mut strangers, mut delivered) = (0, 0, 0, 0, 0);
    while let Some(done) = receivers.join_next().await {
        let r = done.context("a receiver task panicked")?;
        same_node.add(&r.same_node).ok();
        cross_node.add(&r.cross_node).ok();
        gaps += r.check.gaps;
        repeats += r.check.repeats;
        strangers += r.check.strangers;
        for (j, &count) in sent.iter().enumerate() {
            if j % c == r.channel && Some(j) != r.own_sender {
                let got = r.check.received_from(j);
                delivered += got.min(count);
                missing += count.saturating_sub(got);
            }
        }
    }
    drop(writers);
    drop(writers_back);
    let mut hist = same_node.clone();
    hist.add(&cross_node).ok();
    let latency_of = |h: &Histogram<u64>| (!h.is_empty()).then(|| Latency::of(h));
    let disconnects = shared.disconnected.load(Ordering::Relaxed);
    let ok = drained
        && missing == 0
        && gaps == 0
        && repeats == 0
        && strangers == 0
        && disconnects == 0
        && total_sent > 0
        && !shared.failed.load(Ordering::Relaxed);
    Ok(FanoutResult {
        server_rss_peak_kib: target.server_peak_rss_kib()?,
        target: target.name.clone(),
        params: p.clone(),
        setup_secs,
        sent: total_sent,
        expected_deliveries: expected,
        delivered,
        elapsed_secs: elapsed,
        sends_per_sec: total_sent as f64 / elapsed,
        deliveries_per_sec: delivered as f64 / elapsed,
        latency: Latency::of(&hist),
        nodes: target.endpoint.nodes(),
        latency_same_node: latency_of(&same_node),
        latency_cross_node: latency_of(&cross_node),
        server_cpu_cores: server_cpu.map(|c| c / elapsed),
        server_cpu_cores_each: server_cpu_each
            .filter(|each| each.len() > 1)
            .map(|each| each.iter().map(|c| c / elapsed).collect())
            .unwrap_or_default(),
        bench_cpu_cores: bench_cpu.map(|c| c / elapsed),
        deliveries_per_server_cpu_sec: server_cpu
            .filter(|c| *c > 0.0)
            .map(|c| delivered as f64 / c),
        missing,
        gaps,
        repeats,
        strangers,
        disconnects,
        ok,
    })
}

/// Which node a member is on, and which node each sender is on.
struct Node {
    this: usize,
    of_sender: Arc<[usize]>,
}

async fn receive(
    mut reader: LineReader,
    channel: usize,
    own_sender: Option<usize>,
    probe: bool,
    node: Node,
    shared: Arc<Shared>,
) -> Received {
    let (mut same_node, mut cross_node) = (histogram(), histogram());
    let mut check = OrderCheck::new(node.of_sender.len());
    let mut unflushed = 0u64;
    let mut now = 0u64;
    loop {
        // Every line handed out of one read arrived together: read the clock once per read.
        let fresh_read = reader.drained();
        let line = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            line = reader.next_line() => line,
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => {
                shared.disconnected.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        if fresh_read {
            now = shared.origin.elapsed().as_nanos() as u64;
        }
        if let Some(stamp) = payload::parse(line) {
            let crossed = node
                .of_sender
                .get(stamp.sender as usize)
                .is_some_and(|&n| n != node.this);
            let hist = if crossed {
                &mut cross_node
            } else {
                &mut same_node
            };
            hist.saturating_record(now.saturating_sub(stamp.sent_at) / 1000);
            check.record(stamp);
            unflushed += 1;
            if probe {
                let j = stamp.sender as usize;
                if let (Some(seen), Some(wake)) =
                    (shared.probe_seen.get(j), shared.probe_wake.get(j))
                {
                    seen.store(stamp.seq + 1, Ordering::Release);
                    wake.notify_one();
                }
            }
        }
        if unflushed > 0 && (reader.drained() || unflushed >= 1024) {
            shared.delivered.fetch_add(unflushed, Ordering::Relaxed);
            unflushed = 0;
        }
    }
    Received {
        channel,
        own_sender,
        same_node,
        cross_node,
        check,
    }
}

/// One sender; returns how many lines it sent and its writer (kept open until the end).
async fn send(
    mut writer: tokio::io::WriteHalf<Stream>,
    j: usize,
    channel: usize,
    shared: &Shared,
    p: &FanoutParams,
    deadline: Instant,
) -> (u64, Option<tokio::io::WriteHalf<Stream>>) {
    let target = format!("#f{channel}");
    let mut buf = Vec::with_capacity(SEND_BATCH as usize * p.line_len);
    let mut seq = 0u64;
    let deadline_tokio = tokio::time::Instant::from_std(deadline);
    let (Some(seen), Some(wake)) = (shared.probe_seen.get(j), shared.probe_wake.get(j)) else {
        return (0, Some(writer));
    };
    match p.rate {
        None => loop {
            if Instant::now() >= deadline {
                break;
            }
            let in_flight = seq - seen.load(Ordering::Acquire).min(seq);
            if in_flight >= p.window {
                let woke = tokio::time::timeout_at(deadline_tokio, wake.notified()).await;
                if woke.is_err() {
                    break;
                }
                continue;
            }
            let n = (p.window - in_flight).min(SEND_BATCH);
            buf.clear();
            for _ in 0..n {
                payload::write_privmsg(&mut buf, &target, j as u32, seq, shared.origin, p.line_len);
                seq += 1;
            }
            if writer.write_all(&buf).await.is_err() {
                shared.failed.store(true, Ordering::Relaxed);
                return (seq - n, None);
            }
        },
        Some(rate) => {
            let every = Duration::from_secs_f64(p.senders as f64 / rate.max(0.001));
            // Stagger the senders so the offered load is smooth, not in bursts.
            let offset = every.mul_f64(j as f64 / p.senders as f64);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                buf.clear();
                payload::write_privmsg(&mut buf, &target, j as u32, seq, shared.origin, p.line_len);
                if writer.write_all(&buf).await.is_err() {
                    shared.failed.store(true, Ordering::Relaxed);
                    return (seq, None);
                }
                seq += 1;
            }
        }
    }
    (seq, Some(writer))
}
