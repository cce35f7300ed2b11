//! Operational figures for Prometheus: the metric names, the process-wide recorder, and a
//! `record_*` call for each event. Serving them over HTTP is `metrics_http`'s job, above the core:
//! this module imports nothing of the crate, so the bottom layers (outbound, history, the
//! connection loop) can count without reaching up into the server.
//!
//! The `metrics` facade's recorder is process-wide, so the handles are registered once when the
//! first server turns metrics on and cached here: with metrics off a `record_*` call is one atomic
//! load, with them on one atomic add. Counts that the world already knows (connections, users,
//! channels, held history) are not kept in step by hand: whoever renders samples them into a
//! [`Sampled`] at scrape time.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

pub const CONNECTIONS: &str = "parley_connections";
pub const REGISTERED_USERS: &str = "parley_registered_users";
pub const CHANNELS: &str = "parley_channels";
pub const CONNECTIONS_ACCEPTED: &str = "parley_connections_accepted_total";
pub const LINES_RECEIVED: &str = "parley_lines_received_total";
pub const LINES_SENT: &str = "parley_lines_sent_total";
pub const BYTES_SENT: &str = "parley_bytes_sent_total";
pub const SENDQ_DISCONNECTS: &str = "parley_sendq_disconnects_total";
pub const LOGIN_FAILURES: &str = "parley_login_failures_total";
pub const STORE_WRITE_SECONDS: &str = "parley_store_write_seconds";
pub const HISTORY_BATCH_SIZE: &str = "parley_history_batch_size";
pub const HISTORY_HELD: &str = "parley_history_held";
pub const HISTORY_WRITE_FAILURES: &str = "parley_history_write_failures_total";
pub const CLUSTER_EVENTS: &str = "parley_cluster_events_total";
pub const CLUSTER_DROPPED: &str = "parley_cluster_events_dropped_total";
pub const CLUSTER_REFUSED: &str = "parley_cluster_events_refused_total";
pub const CLUSTER_STALE: &str = "parley_cluster_events_stale_total";
pub const CLUSTER_BUS_CONNECTED: &str = "parley_cluster_bus_connected";
pub const CLUSTER_PEERS: &str = "parley_cluster_peers";
pub const CLUSTER_PEER_UP: &str = "parley_cluster_peer_up";
pub const CLUSTER_STREAM_LAG: &str = "parley_cluster_stream_lag_events";
pub const CLUSTER_LOCAL_USERS: &str = "parley_cluster_local_users";
pub const CLUSTER_NETWORK_USERS: &str = "parley_cluster_network_users";

/// Bucket bounds for one SQLite group commit (fsync included): 100 µs to 5 s.
const STORE_WRITE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Bucket bounds for jobs per group commit (at most 1024, see `history::writer::MAX_BATCH`).
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How often the recorder's histogram samples are folded in when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The media type of [`render`]'s output: the Prometheus text exposition format, version 0.0.4.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registered handles, set once the recorder is installed.
struct Handles {
    prometheus: PrometheusHandle,
    connections: Gauge,
    registered_users: Gauge,
    channels: Gauge,
    connections_accepted: Counter,
    lines_received: Counter,
    lines_sent: Counter,
    bytes_sent: Counter,
    sendq_disconnects: Counter,
    login_failures: Counter,
    store_write_seconds: Histogram,
    history_batch_size: Histogram,
    history_held: Gauge,
    history_write_failures: Counter,
    cluster_events: Counter,
    cluster_dropped: Counter,
    cluster_refused: Counter,
    cluster_stale: Counter,
}

static HANDLES: OnceLock<Result<Handles, String>> = OnceLock::new();

fn handles() -> Option<&'static Handles> {
    HANDLES.get().and_then(|h| h.as_ref().ok())
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start the metrics recorder: {0}")]
pub struct MetricsError(String);

/// Install the Prometheus recorder for this process (once; later calls reuse it).
pub fn install() -> Result<(), MetricsError> {
    HANDLES
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(STORE_WRITE_SECONDS.to_owned()),
                    STORE_WRITE_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(HISTORY_BATCH_SIZE.to_owned()),
                        BATCH_SIZE_BUCKETS,
                    )
                })
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|err| err.to_string())?;
            describe();
            Ok(Handles {
                prometheus: handle,
                connections: metrics::gauge!(CONNECTIONS),
                registered_users: metrics::gauge!(REGISTERED_USERS),
                channels: metrics::gauge!(CHANNELS),
                connections_accepted: metrics::counter!(CONNECTIONS_ACCEPTED),
                lines_received: metrics::counter!(LINES_RECEIVED),
                lines_sent: metrics::counter!(LINES_SENT),
                bytes_sent: metrics::counter!(BYTES_SENT),
                sendq_disconnects: metrics::counter!(SENDQ_DISCONNECTS),
                login_failures: metrics::counter!(LOGIN_FAILURES),
                store_write_seconds: metrics::histogram!(STORE_WRITE_SECONDS),
                history_batch_size: metrics::histogram!(HISTORY_BATCH_SIZE),
                history_held: metrics::gauge!(HISTORY_HELD),
                history_write_failures: metrics::counter!(HISTORY_WRITE_FAILURES),
                cluster_events: metrics::counter!(CLUSTER_EVENTS),
                cluster_dropped: metrics::counter!(CLUSTER_DROPPED),
                cluster_refused: metrics::counter!(CLUSTER_REFUSED),
                cluster_stale: metrics::counter!(CLUSTER_STALE),
            })
        })
        .as_ref()
        .map(|_| ())
        .map_err(|err| MetricsError(err.clone()))
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS, "Open client connections.");
    describe_gauge!(
        REGISTERED_USERS,
        "Connections that finished registration (NICK/USER, and login where required)."
    );
    describe_gauge!(CHANNELS, "Channels that exist (joined or registered).");
    describe_counter!(CONNECTIONS_ACCEPTED, "Client connections admitted.");
    describe_counter!(LINES_RECEIVED, "IRC lines read from clients.");
    describe_counter!(LINES_SENT, "IRC lines written to client sockets.");
    describe_counter!(BYTES_SENT, Unit::Bytes, "Bytes written to client sockets.");
    describe_counter!(
        SENDQ_DISCONNECTS,
        "Clients disconnected because their send queue overflowed (SendQ exceeded)."
    );
    describe_counter!(LOGIN_FAILURES, "Failed logins (SASL PLAIN or PASS).");
    describe_histogram!(
        STORE_WRITE_SECONDS,
        Unit::Seconds,
        "Time to commit one batch of history, audit and state writes to the store."
    );
    describe_histogram!(
        HISTORY_BATCH_SIZE,
        "Jobs (messages, audit events, state changes) in one history group commit."
    );
    describe_gauge!(
        HISTORY_HELD,
        "Messages delivered but not yet stored because the database refuses writes (0 when healthy)."
    );
    describe_counter!(
        HISTORY_WRITE_FAILURES,
        "History group commits the store refused (the batch is held and retried)."
    );
    describe_counter!(
        CLUSTER_EVENTS,
        "Cluster events this node read from the stream (its own included)."
    );
    describe_counter!(
        CLUSTER_DROPPED,
        "Cluster events only local users got: the outbox was full while the bus was down."
    );
    describe_counter!(
        CLUSTER_REFUSED,
        "Cluster events, heartbeats and snapshots dropped: from a node not in cluster.nodes, \
         in another node's name, or about another node's users."
    );
    describe_counter!(
        CLUSTER_STALE,
        "Cluster events skipped as late or repeated: published twice (a retry after a long bus \
         outage), or about a user who already quit or whose node was declared down."
    );
    describe_gauge!(
        CLUSTER_BUS_CONNECTED,
        "1 while this node's connection to the cluster bus (NATS) is up, 0 while it reconnects."
    );
    describe_gauge!(
        CLUSTER_PEERS,
        "Other cluster nodes heard from within a lease (cluster.lease_secs)."
    );
    describe_gauge!(
        CLUSTER_PEER_UP,
        "Per node of cluster.nodes but this one: 1 if heard from within a lease, else 0."
    );
    describe_gauge!(
        CLUSTER_STREAM_LAG,
        "Events in the cluster stream this node has not applied yet (0 when it is current); \
         not updated while the bus is down."
    );
    describe_gauge!(
        CLUSTER_LOCAL_USERS,
        "Registered users connected to this node."
    );
    describe_gauge!(
        CLUSTER_NETWORK_USERS,
        "Registered users on the whole network as this node sees them, its own included."
    );
}

pub fn record_cluster_event() {
    if let Some(h) = handles() {
        h.cluster_events.increment(1);
    }
}

pub fn record_cluster_dropped() {
    if let Some(h) = handles() {
        h.cluster_dropped.increment(1);
    }
}

pub fn record_cluster_refused() {
    if let Some(h) = handles() {
        h.cluster_refused.increment(1);
    }
}

pub fn record_cluster_stale() {
    if let Some(h) = handles() {
        h.cluster_stale.increment(1);
    }
}

pub fn record_connection_accepted() {
    if let Some(h) = handles() {
        h.connections_accepted.increment(1);
    }
}

pub fn record_line_received() {
    if let Some(h) = handles() {
        h.lines_received.increment(1);
    }
}

/// One write to a client socket: counted per write, not per line queued, so the fan-out path
/// (one push per recipient) stays free of shared atomics.
pub fn record_sent(bytes: &[u8]) {
    if let Some(h) = handles() {
        let lines = bytes.iter().filter(|b| **b == b'\n').count();
        h.lines_sent.increment(lines as u64);
        h.bytes_sent.increment(bytes.len() as u64);
    }
}

pub fn record_sendq_disconnect() {
    if let Some(h) = handles() {
        h.sendq_disconnects.increment(1);
    }
}

pub fn record_login_failure() {
    if let Some(h) = handles() {
        h.login_failures.increment(1);
    }
}

/// One history group commit: how long the store took and how many jobs it carried.
pub fn record_store_write(elapsed: Duration, jobs: usize) {
    if let Some(h) = handles() {
        h.store_write_seconds.record(elapsed.as_secs_f64());
        h.history_batch_size.record(jobs as f64);
    }
}

/// A history group commit the store refused; the writer keeps the batch and retries it.
pub fn record_history_write_failure() {
    if let Some(h) = handles() {
        h.history_write_failures.increment(1);
    }
}

/// The figures the world knows, sampled by the caller when it renders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sampled {
    pub connections: usize,
    pub registered_users: usize,
    pub channels: usize,
    pub history_held: usize,
}

/// A cluster node's figures, sampled by the caller when it renders (see [`sample_cluster`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSampled {
    pub bus_connected: bool,
    /// Other nodes heard from within a lease.
    pub peers: usize,
    /// Each configured node but this one, and whether it was heard from within a lease.
    pub peers_up: Vec<(String, bool)>,
    /// Stream events not applied yet; `None` keeps the last value (the bus did not answer).
    pub stream_lag: Option<u64>,
    pub local_users: usize,
    pub network_users: usize,
}

/// Set a cluster node's gauges before [`render`]; a node outside a cluster never calls it, so
/// its scrape shows no `parley_cluster_*` gauges. A no-op until [`install`] has run.
pub fn sample_cluster(sampled: &ClusterSampled) {
    if handles().is_none() {
        return;
    }
    metrics::gauge!(CLUSTER_BUS_CONNECTED).set(f64::from(u8::from(sampled.bus_connected)));
    metrics::gauge!(CLUSTER_PEERS).set(sampled.peers as f64);
    for (node, up) in &sampled.peers_up {
        metrics::gauge!(CLUSTER_PEER_UP, "node" => node.clone()).set(f64::from(u8::from(*up)));
    }
    if let Some(lag) = sampled.stream_lag {
        metrics::gauge!(CLUSTER_STREAM_LAG).set(lag as f64);
    }
    metrics::gauge!(CLUSTER_LOCAL_USERS).set(sampled.local_users as f64);
    metrics::gauge!(CLUSTER_NETWORK_USERS).set(sampled.network_users as f64);
}

/// Set the sampled gauges, then render every figure in the Prometheus text format
/// ([`TEXT_FORMAT`]); empty until [`install`] has run.
pub fn render(sampled: Sampled) -> String {
    let Some(h) = handles() else {
        return String::new();
    };
    h.connections.set(sampled.connections as f64);
    h.registered_users.set(sampled.registered_users as f64);
    h.channels.set(sampled.channels as f64);
    h.history_held.set(sampled.history_held as f64);
    h.prometheus.render()
}

/// Fold the histogram samples in every few seconds until `shutdown`, so they do not pile up in
/// memory between scrapes. Returns at once when the recorder is not installed.
pub async fn upkeep(shutdown: CancellationToken) {
    let Some(h) = handles() else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(UPKEEP_INTERVAL) => h.prometheus.run_upkeep(),
            _ = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    // The only test in this binary that installs the recorder: it is process-wide.
    #[test]
    fn render_shows_the_sampled_gauges_and_the_recorded_events() {
        install().expect("the recorder installs");
        install().expect("a second install reuses the first");
        record_line_received();
        record_sent(b"PING a\r\nPING b\r\n");
        record_store_write(Duration::from_millis(2), 3);
        let text = render(Sampled {
            connections: 3,
            registered_users: 2,
            channels: 1,
            history_held: 7,
        });
        assert_eq!(sample(&text, CONNECTIONS), Some(3.0), "{text}");
        assert_eq!(sample(&text, REGISTERED_USERS), Some(2.0), "{text}");
        assert_eq!(sample(&text, CHANNELS), Some(1.0), "{text}");
        assert_eq!(sample(&text, HISTORY_HELD), Some(7.0), "{text}");
        assert!(sample(&text, LINES_RECEIVED) >= Some(1.0), "{text}");
        assert!(sample(&text, LINES_SENT) >= Some(2.0), "{text}");
        assert!(sample(&text, BYTES_SENT) >= Some(16.0), "{text}");
        assert!(
            text.contains(&format!("{STORE_WRITE_SECONDS}_bucket{{le=\"0.0025\"}}")),
            "the configured buckets: {text}"
        );
        assert!(
            text.contains(&format!("# TYPE {LOGIN_FAILURES} counter")),
            "described before anything was counted: {text}"
        );
    }
}
