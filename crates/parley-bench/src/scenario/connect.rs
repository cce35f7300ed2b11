//! `connect`: how many connections per second can be opened, registered (as a guest or with a
//! SASL PLAIN login) and closed again, with `concurrency` in flight. Each client waits for the end
//! of the MOTD, so a registration counts only once the server has fully welcomed it.

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
}

pub async fn run(target: &Target, p: &ConnectParams) -> Result<ConnectResult> {
    let bar = target.bar(
        p.count as u64,
        if p.sasl {
            "SASL logins"
        } else {
            "guest logins"
        },
    );
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
    })
}
