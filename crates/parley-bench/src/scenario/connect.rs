//! `connect`: how many connections per second can be opened, registered (as a guest or with a
//! SASL PLAIN or SCRAM-SHA-256 login) and closed again, with `concurrency` in flight. Each client
//! waits for the end of the MOTD, so a registration counts only once the server has fully
//! welcomed it.
//!
//! SCRAM's PBKDF2 is the client's work, which real clients cache: the bench derives each
//! account's salted password once, in an untimed warm-up login per account, and the timed logins
//! reuse it, so the figure is the server's side (a lookup and a few hashes per login).
//!
//! When the server's process is known, the run also reports its resident memory before and
//! after the logins and at its peak, and its CPU per registration: PLAIN logins hash with
//! Argon2id (19 MiB each), and what that memory does to the server outlives the run.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{histogram, Latency, Target};

#[derive(Debug, Clone, Serialize)]
pub struct ConnectParams {
    pub count: usize,
    pub concurrency: usize,
    pub sasl: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectResult {
    pub target: String,
    pub params: ConnectParams,
    pub tls: bool,
    pub elapsed_secs: f64,
    pub registrations_per_sec: f64,
    /// Connect to end of MOTD, per client.
    pub latency: Latency,
    pub failures: u64,
    pub first_failure: Option<String>,
    pub ok: bool,
    /// `guest`, `SASL PLAIN` or `SASL SCRAM-SHA-256`.
    pub login: &'static str,
    /// SASL steps sent without waiting where the protocol allows (`--pipeline`); otherwise each
    /// waited for the server's answer.
    pub pipelined: bool,
    /// How the figure was taken, where that matters (SCRAM's cached salted passwords).
    pub note: Option<String>,
    /// The server's resident memory (VmRSS) before the first connection and after the last
    /// has closed, and its high-water mark (VmHWM) since it started, in KiB; `None` when the
    /// server's process is not known.
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    pub server_rss_peak_kib: Option<u64>,
    /// Server CPU (user + system) per registration, in milliseconds.
    pub server_cpu_ms_per_registration: Option<f64>,
}

pub async fn run(target: &Target, p: &ConnectParams) -> Result<ConnectResult> {
    let (login, bar_text) = match (p.sasl, target.scram) {
        (false, _) => ("guest", "guest logins"),
        (true, false) => ("SASL PLAIN", "SASL PLAIN logins"),
        (true, true) => ("SASL SCRAM-SHA-256", "SCRAM logins"),
    };
    let note = if p.sasl && target.scram {
        warm_up(target).await?;
        Some(format!(
            "client-side PBKDF2 cached: one untimed warm-up login per account ({}) derived each \
             salted password",
            target.accounts.len()
        ))
    } else {
        None
    };
    let rss_before = target.server_rss_kib()?;
    let cpu_before = target.server_cpu_secs();
    let bar = target.bar(p.count as u64, bar_text);
    let limit = Arc::new(Semaphore::new(p.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for index in 0..p.count {
        let endpoint = target.endpoint.clone();
        let login = target.login(index, p.sasl)?;
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let began = Instant::now();
            let mut conn = endpoint.connect(index).await?;
            conn.register(&format!("c{index}"), &login).await?;
            let took = began.elapsed();
            conn.quit().await;
            anyhow::Ok(took)
        });
    }
    let mut hist = histogram();
    let (mut failures, mut first_failure) = (0, None);
    while let Some(done) = tasks.join_next().await {
        match done.context("a connect task panicked")? {
            Ok(took) => {
                hist.saturating_record(took.as_micros() as u64);
            }
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert_with(|| format!("{e:#}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();
    let registrations = hist.len();
    let cpu_ms_per_registration = match (cpu_before, target.server_cpu_secs()) {
        (Some(before), Some(after)) if registrations > 0 => {
            let used: f64 = after.iter().sum::<f64>() - before.iter().sum::<f64>();
            Some(used * 1000.0 / registrations as f64)
        }
        _ => None,
    };
    Ok(ConnectResult {
        target: target.name.clone(),
        params: p.clone(),
        tls: target.endpoint.tls.is_some(),
        elapsed_secs: elapsed,
        registrations_per_sec: hist.len() as f64 / elapsed,
        latency: Latency::of(&hist),
        failures,
        first_failure,
        ok: failures == 0,
        login,
        pipelined: p.sasl && target.pipeline,
        note,
        server_rss_before_kib: rss_before,
        server_rss_after_kib: target.server_rss_kib()?,
        server_rss_peak_kib: target.server_peak_rss_kib()?,
        server_cpu_ms_per_registration: cpu_ms_per_registration,
    })
}

/// One SCRAM login per account, untimed, so every account's salted password is in the cache.
async fn warm_up(target: &Target) -> Result<()> {
    let mut tasks = JoinSet::new();
    for index in 0..target.accounts.len() {
        let endpoint = target.endpoint.clone();
        let login = target.login(index, true)?;
        tasks.spawn(async move {
            let mut conn = endpoint.connect(index).await?;
            conn.register(&format!("warm{index}"), &login).await?;
            conn.quit().await;
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a warm-up task panicked")?
            .context("a SCRAM warm-up login failed")?;
    }
    Ok(())
}
