//! `idle`: N registered connections that then say nothing. Measures how long establishing them
//! took and what each costs the server in resident memory (VmRSS before and after, divided by N),
//! the number that decides how many people one small machine can hold.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::{connect_all, quit_all, Target};

#[derive(Debug, Clone, Serialize)]
pub struct IdleParams {
    pub count: usize,
    /// How long the connections stay open after the memory reading.
    pub hold: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleResult {
    pub target: String,
    pub count: usize,
    pub tls: bool,
    pub establish_secs: f64,
    pub connections_per_sec: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// (after - before) / count, in KiB; `None` without a server pid.
    pub rss_per_connection_kib: Option<f64>,
    /// The server's resident memory at its highest during the run (VmHWM, added up over its
    /// processes), in KiB; `None` without a server pid.
    #[serde(default)]
    pub server_rss_peak_kib: Option<u64>,
    pub ok: bool,
}

pub async fn run(target: &Target, p: &IdleParams) -> Result<IdleResult> {
    let before = target.server_rss_kib()?;
    let start = Instant::now();
    let conns = connect_all(
        target,
        p.count,
        |k| format!("i{k}"),
        |_| None,
        "registering",
    )
    .await?;
    let establish = start.elapsed().as_secs_f64();
    // Let the server finish whatever it does after the welcome before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = target.server_rss_kib()?;
    tokio::time::sleep(p.hold).await;
    let alive = conns.len();
    quit_all(conns).await;
    let per = match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / p.count.max(1) as f64),
        _ => None,
    };
    Ok(IdleResult {
        server_rss_peak_kib: target.server_peak_rss_kib()?,
        target: target.name.clone(),
        count: p.count,
        tls: target.endpoint.tls.is_some(),
        establish_secs: establish,
        connections_per_sec: p.count as f64 / establish,
        rss_before_kib: before,
        rss_after_kib: after,
        rss_per_connection_kib: per,
        ok: alive == p.count,
    })
}
