//! `dm`: private-message ping-pong between pairs of clients while a background fanout runs, to see
//! what a busy channel does to the latency of a one-to-one conversation. Each ping carries its
//! sequence number and send time; the peer echoes the text back, and the round trip is recorded.
//! Against a cluster the two ends of a pair sit on different nodes (clients go round-robin).

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tokio::task::JoinSet;

use super::fanout::{self, FanoutParams, FanoutResult};
use super::{connect_all, histogram, Latency, Target};
use crate::payload;

#[derive(Debug, Clone, Serialize)]
pub struct DmParams {
    pub pairs: usize,
    /// Pause between one pong and the next ping.
    pub interval: Duration,
    pub duration: Duration,
    /// The load running meanwhile; `None` for an idle server.
    pub background: Option<FanoutParams>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DmResult {
    pub target: String,
    pub pairs: usize,
    /// Server addresses the clients were spread over (the nodes of a cluster).
    pub nodes: usize,
    /// Pairs whose two ends are connected to different nodes.
    pub cross_node_pairs: usize,
    pub round_trips: u64,
    pub round_trip: Latency,
    pub out_of_order: u64,
    pub background: Option<FanoutResult>,
    /// The server's resident memory at its highest during the run (VmHWM, added up over its
    /// processes), in KiB; `None` without a server pid.
    #[serde(default)]
    pub server_rss_peak_kib: Option<u64>,
    pub ok: bool,
}

pub async fn run(target: &Target, p: &DmParams) -> Result<DmResult> {
    if p.pairs == 0 {
        bail!("dm needs at least one pair");
    }
    let conns = connect_all(target, p.pairs * 2, |k| format!("d{k}"), |_| None, "pairs").await?;
    let background = p.background.clone();
    let bg_target = target.clone();
    let bg = tokio::spawn(async move {
        match background {
            Some(params) => fanout::run(&bg_target, &params).await.map(Some),
            None => Ok(None),
        }
    });
    // Give the background clients time to join before measuring.
    tokio::time::sleep(Duration::from_secs(if p.background.is_some() {
        3
    } else {
        0
    }))
    .await;
    let mut tasks = JoinSet::new();
    let mut conns = conns.into_iter();
    let origin = Instant::now();
    for pair in 0..p.pairs {
        let (Some(mut ping), Some(mut pong)) = (conns.next(), conns.next()) else {
            break;
        };
        let (ping_nick, pong_nick) = (format!("d{}", pair * 2), format!("d{}", pair * 2 + 1));
        let p = p.clone();
        tasks.spawn(async move {
            let mut hist = histogram();
            let mut out_of_order = 0u64;
            let deadline = Instant::now() + p.duration;
            let mut seq = 0u64;
            let mut line = Vec::with_capacity(128);
            while Instant::now() < deadline {
                line.clear();
                payload::write_privmsg(&mut line, &pong_nick, pair as u32, seq, origin, 80);
                tokio::io::AsyncWriteExt::write_all(&mut ping.writer, &line).await?;
                // The peer echoes what it got back to the pinger.
                let got = next_stamp(&mut pong).await?;
                if got.seq != seq {
                    out_of_order += 1;
                }
                line.clear();
                payload::write_privmsg(&mut line, &ping_nick, pair as u32, got.seq, origin, 80);
                tokio::io::AsyncWriteExt::write_all(&mut pong.writer, &line).await?;
                let back = next_stamp(&mut ping).await?;
                if back.seq != seq {
                    out_of_order += 1;
                }
                let now = origin.elapsed().as_nanos() as u64;
                let sent = got.sent_at;
                hist.saturating_record(now.saturating_sub(sent) / 1000);
                seq += 1;
                tokio::time::sleep(p.interval).await;
            }
            anyhow::Ok((hist, out_of_order, ping, pong))
        });
    }
    let mut hist = histogram();
    let mut out_of_order = 0;
    let mut keep = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (h, ooo, a, b) = done.context("a dm task panicked")??;
        hist.add(&h).ok();
        out_of_order += ooo;
        keep.push((a, b));
    }
    let background = bg.await.context("the background fanout panicked")??;
    let ok = out_of_order == 0 && !hist.is_empty() && background.as_ref().is_none_or(|b| b.ok);
    Ok(DmResult {
        server_rss_peak_kib: target.server_peak_rss_kib()?,
        target: target.name.clone(),
        pairs: p.pairs,
        nodes: target.endpoint.nodes(),
        cross_node_pairs: (0..p.pairs)
            .filter(|pair| {
                target.endpoint.node_of(pair * 2) != target.endpoint.node_of(pair * 2 + 1)
            })
            .count(),
        round_trips: hist.len(),
        round_trip: Latency::of(&hist),
        out_of_order,
        background,
        ok,
    })
}

async fn next_stamp(conn: &mut crate::client::Conn) -> Result<payload::Stamp> {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), conn.reader.next_line())
            .await
            .context("no private message within 10 s")??
            .context("the server closed a dm connection")?;
        if let Some(stamp) = payload::parse(line) {
            return Ok(stamp);
        }
    }
}
