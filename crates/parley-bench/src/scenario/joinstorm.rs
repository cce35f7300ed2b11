//! `joinstorm`: N registered clients all JOIN one channel at once. Measures the time until the
//! last of them has its end of NAMES (366) and how many bytes the storm made every client read
//! (each join is announced to everyone already there, so the traffic grows with N squared).
//! Clients keep reading after their 366, so nobody's send queue overflows while others join.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{connect_all, quit_all, wait_for, Target};
use crate::client::is_end_of_names;

const CHANNEL: &str = "#storm";

#[derive(Debug, Clone, Serialize)]
pub struct JoinstormParams {
    pub count: usize,
    /// Give up waiting for the last 366 after this long.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct JoinstormResult {
    pub target: String,
    pub count: usize,
    pub setup_secs: f64,
    /// From the burst until the last client saw its 366.
    pub last_names_secs: f64,
    pub median_names_secs: f64,
    pub joined: u64,
    pub bytes_received: u64,
    pub disconnects: u64,
    /// The server's resident memory at its highest during the run (VmHWM, added up over its
    /// processes), in KiB; `None` without a server pid.
    #[serde(default)]
    pub server_rss_peak_kib: Option<u64>,
    pub ok: bool,
}

pub async fn run(target: &Target, p: &JoinstormParams) -> Result<JoinstormResult> {
    let setup = Instant::now();
    let conns = connect_all(
        target,
        p.count,
        |k| format!("j{k}"),
        |_| None,
        "registering",
    )
    .await?;
    let setup_secs = setup.elapsed().as_secs_f64();
    let go = CancellationToken::new();
    let stop = CancellationToken::new();
    let joined = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let disconnects = Arc::new(AtomicU64::new(0));
    let origin = Instant::now();
    let mut tasks = JoinSet::new();
    for mut conn in conns {
        let (go, stop) = (go.clone(), stop.clone());
        let (joined, bytes, disconnects) = (joined.clone(), bytes.clone(), disconnects.clone());
        tasks.spawn(async move {
            go.cancelled().await;
            let base = conn.reader.bytes;
            let mut counted = base;
            let mut names_at = None;
            if conn.writer.write_all(b"JOIN #storm\r\n").await.is_err() {
                disconnects.fetch_add(1, Ordering::Relaxed);
                return (conn, names_at);
            }
            loop {
                let line = tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    line = conn.reader.next_line() => line,
                };
                match line {
                    Ok(Some(line)) => {
                        if names_at.is_none() && is_end_of_names(line, CHANNEL.as_bytes()) {
                            names_at = Some(origin.elapsed());
                            joined.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(None) | Err(_) => {
                        disconnects.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                if conn.reader.drained() {
                    bytes.fetch_add(conn.reader.bytes - counted, Ordering::Relaxed);
                    counted = conn.reader.bytes;
                }
            }
            (conn, names_at)
        });
    }
    let bar = target.bar(p.count as u64, "joined");
    let burst = origin.elapsed();
    go.cancel();
    let count = p.count as u64;
    let all = wait_for(p.timeout, || {
        let n = joined.load(Ordering::Relaxed);
        bar.set_position(n);
        n >= count || disconnects.load(Ordering::Relaxed) > 0
    })
    .await;
    bar.finish_and_clear();
    // The last joins are still being announced to everyone; wait for the traffic to settle.
    let mut last = bytes.load(Ordering::Relaxed);
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = bytes.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    stop.cancel();
    let mut times = Vec::with_capacity(p.count);
    let mut conns = Vec::with_capacity(p.count);
    while let Some(done) = tasks.join_next().await {
        let (conn, names_at) = done.context("a joinstorm client task panicked")?;
        conns.push(conn);
        if let Some(at) = names_at {
            times.push(at.saturating_sub(burst).as_secs_f64());
        }
    }
    quit_all(conns).await;
    times.sort_by(f64::total_cmp);
    let joined = joined.load(Ordering::Relaxed);
    let disconnects = disconnects.load(Ordering::Relaxed);
    Ok(JoinstormResult {
        server_rss_peak_kib: target.server_peak_rss_kib()?,
        target: target.name.clone(),
        count: p.count,
        setup_secs,
        last_names_secs: times.last().copied().unwrap_or(f64::NAN),
        median_names_secs: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        joined,
        bytes_received: bytes.load(Ordering::Relaxed),
        disconnects,
        ok: all && joined == count && disconnects == 0,
    })
}
