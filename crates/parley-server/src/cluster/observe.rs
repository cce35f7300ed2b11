//! What a node can tell about its place in the cluster, for `/healthz` and `/metrics`: whether
//! its bus connection is up, which peers it hears, how far its follower is behind the stream,
//! and its users against the network's.
//!
//! Lag is counted in events (the stream's last sequence minus the last one this node applied),
//! not as the age of the last event: on a quiet network the newest event is old however current
//! a node is, while a count is 0 exactly when the node has applied everything. It costs one
//! JetStream request per scrape, bounded by [`LAG_TIMEOUT`].

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Cluster;
use crate::metrics::ClusterSampled;
use crate::state::World;

/// Longest a scrape waits for the stream's last sequence; past it the lag is left out.
const LAG_TIMEOUT: Duration = Duration::from_secs(1);

impl Cluster {
    /// Whether this node's bus connection is up now.
    pub fn bus_connected(&self) -> bool {
        self.connected_since.lock().is_some()
            && self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The bus URL, without a password: what `/healthz` names when the bus is down.
    pub fn bus_url(&self) -> &str {
        &self.url
    }

    /// Events in the stream this node has not applied yet; `None` when the bus does not answer.
    async fn stream_lag(&self) -> Option<u64> {
        let name = format!("{}_EVENTS", self.prefix);
        let stream = tokio::time::timeout(LAG_TIMEOUT, self.js.get_stream(name))
            .await
            .ok()?
            .ok()?;
        let last = stream.cached_info().state.last_sequence;
        Some(last.saturating_sub(self.applied.load(Ordering::Acquire)))
    }

    /// The cluster's figures for one scrape. The counts are read from `world` under its lock
    /// by the caller; the lag asks the bus (only while it is connected).
    pub async fn sample(&self, local_users: usize, network_users: usize) -> ClusterSampled {
        let heard = self.nodes_heard();
        // Only configured names become labels: what peers say cannot add series.
        let mut peers_up: Vec<(String, bool)> = self
            .nodes
            .iter()
            .filter(|node| **node != self.node)
            .map(|node| (node.clone(), heard.contains(node)))
            .collect();
        peers_up.sort();
        let connected = self.bus_connected();
        let stream_lag = if connected {
            self.stream_lag().await
        } else {
            None
        };
        ClusterSampled {
            bus_connected: connected,
            peers: heard.len(),
            peers_up,
            stream_lag,
            local_users,
            network_users,
        }
    }
}

/// Registered users in `world`: (this node's own, everyone's on the network as this node sees
/// it). A remote user is a registered user with a cluster id.
pub fn user_counts(world: &World) -> (usize, usize) {
    let mut local = 0;
    let mut network = 0;
    for user in world.users.values().filter(|u| u.registered) {
        network += 1;
        if user.remote.is_none() {
            local += 1;
        }
    }
    (local, network)
}
