//! The scenarios, each a function from a [`Target`] and its parameters to a serializable result
//! that says whether the run was correct. Shared here: who to talk to, connecting many clients
//! with bounded concurrency and a progress bar, and latency summaries.

pub mod connect;
pub mod dm;
pub mod fanout;
pub mod history;
pub mod idle;
pub mod joinstorm;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Conn, Endpoint, Login, SaltedCache};

/// A server under test.
#[derive(Clone)]
pub struct Target {
    /// Shown in tables: `parleyd`, `ngircd`, `ceiling`, ...
    pub name: String,
    pub endpoint: Endpoint,
    /// The server's processes (one parleyd, or a cluster's nodes and its NATS server), for
    /// reading their CPU time and memory use from /proc.
    pub server_pids: Vec<u32>,
    /// `account:password` pairs that SASL logins cycle through.
    pub accounts: Vec<(String, String)>,
    /// SASL logins use SCRAM-SHA-256 instead of PLAIN.
    pub scram: bool,
    /// SASL logins send their steps without waiting where the protocol allows
    /// ([`Login::pipelined`]).
    pub pipeline: bool,
    /// SCRAM salted passwords, derived once per account for the whole run.
    pub salted_cache: SaltedCache,
    /// Draw progress bars (off in tests and when stderr is not a terminal).
    pub progress: bool,
    /// Connections being set up at once. ngIRCd listens with a backlog of 10, so more than that
    /// in flight makes the kernel drop handshakes and the run measures SYN retransmit timers.
    pub setup_concurrency: usize,
}

impl Target {
    pub fn new(name: &str, endpoint: Endpoint) -> Self {
        Target {
            name: name.to_string(),
            endpoint,
            server_pids: Vec::new(),
            accounts: Vec::new(),
            scram: false,
            pipeline: false,
            salted_cache: SaltedCache::default(),
            progress: false,
            setup_concurrency: SETUP_CONCURRENCY,
        }
    }

    /// The login client `index` uses: a guest, or SASL (PLAIN, or SCRAM-SHA-256 with
    /// [`Target::scram`]) with one of the accounts.
    pub fn login(&self, index: usize, sasl: bool) -> Result<Login> {
        if !sasl {
            return Ok(Login::Guest);
        }
        let (account, password) = self
            .accounts
            .get(index % self.accounts.len().max(1))
            .context(
            "SASL asked for, but no accounts are known for this target (--account NAME:PASSWORD)",
        )?;
        Ok(if self.scram {
            Login::SaslScram {
                account: account.clone(),
                password: password.clone(),
                cache: self.salted_cache.clone(),
                pipelined: self.pipeline,
            }
        } else {
            Login::SaslPlain {
                account: account.clone(),
                password: password.clone(),
                pipelined: self.pipeline,
            }
        })
    }

    /// CPU seconds each server process has used so far, in [`Target::server_pids`] order;
    /// `None` when no process is known or one cannot be read.
    pub fn server_cpu_secs(&self) -> Option<Vec<f64>> {
        if self.server_pids.is_empty() {
            return None;
        }
        self.server_pids
            .iter()
            .map(|&pid| cpu_secs(Some(pid)))
            .collect()
    }

    /// Resident memory of the server's processes together, in KiB; `None` when none is known.
    pub fn server_rss_kib(&self) -> Result<Option<u64>> {
        if self.server_pids.is_empty() {
            return Ok(None);
        }
        let mut total = 0;
        for &pid in &self.server_pids {
            total += rss_kib(pid)?;
        }
        Ok(Some(total))
    }

    /// The high-water marks of the server's resident memory, added up, in KiB; `None` when no
    /// process is known.
    pub fn server_peak_rss_kib(&self) -> Result<Option<u64>> {
        if self.server_pids.is_empty() {
            return Ok(None);
        }
        let mut total = 0;
        for &pid in &self.server_pids {
            total += peak_rss_kib(pid)?;
        }
        Ok(Some(total))
    }

    pub(crate) fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        let style =
            ProgressStyle::with_template("{prefix:>10} {msg:<24} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(self.name.clone());
        bar.set_message(what.to_string());
        bar
    }
}

/// How many connections are being set up at once, by default.
pub const SETUP_CONCURRENCY: usize = 64;

/// Connect and register `count` clients (nick from `nick`), joining `channel(index)` when given.
/// Returns the clients in index order; fails on the first client that could not be set up.
pub async fn connect_all(
    target: &Target,
    count: usize,
    nick: impl Fn(usize) -> String,
    channel: impl Fn(usize) -> Option<String>,
    what: &str,
) -> Result<Vec<Conn>> {
    let bar = target.bar(count as u64, what);
    let limit = Arc::new(Semaphore::new(target.setup_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let endpoint = target.endpoint.clone();
        let login = target.login(index, false)?;
        let (nick, channel) = (nick(index), channel(index));
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut conn = endpoint.connect(index).await?;
            conn.register(&nick, &login)
                .await
                .with_context(|| format!("registering {nick}"))?;
            if let Some(channel) = channel {
                conn.join(&channel)
                    .await
                    .with_context(|| format!("{nick} joining {channel}"))?;
            }
            anyhow::Ok((index, conn))
        });
    }
    let mut conns: Vec<Option<Conn>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, conn) = joined.context("a setup task panicked")??;
        conns[index] = Some(conn);
        bar.inc(1);
    }
    bar.finish_and_clear();
    conns
        .into_iter()
        .map(|c| c.context("every setup task reports its client"))
        .collect()
}

/// Close many clients politely (QUIT, wait for the server to hang up), a few hundred at a time.
pub async fn quit_all(conns: Vec<Conn>) {
    let limit = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for conn in conns {
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            conn.quit().await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// A latency histogram in microseconds, 1 µs to 10 minutes at 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("the fixed bounds are valid")
}

/// The percentiles every table shows, in milliseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Resident memory of a process in KiB, from /proc/<pid>/status (VmRSS).
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// The most resident memory a process has had so far, in KiB (VmHWM, its high-water mark).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (is the server running?)"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} line in /proc/{pid}/status"))
}

/// CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat.
/// Linux counts it in clock ticks of 1/100 s on every common configuration.
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name, which may itself contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU each server process used between two readings of [`Target::server_cpu_secs`].
pub fn cpu_used(before: Option<Vec<f64>>, after: Option<Vec<f64>>) -> Option<Vec<f64>> {
    let (before, after) = (before?, after?);
    (before.len() == after.len()).then(|| after.iter().zip(&before).map(|(a, b)| a - b).collect())
}

/// Wait until `done` holds or `limit` passes, checking every few milliseconds; returns whether
/// it held.
pub async fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
