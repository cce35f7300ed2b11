//! A node's identity in the cluster: its name, held by one running process at a time, and the
//! server name its users are shown on.
//!
//! The name is a claim in the nick bucket (`node.<name>`), renewed every quarter lease. A start
//! that finds the claim renewed within a lease is refused; one left unrenewed for a lease (a
//! crash) is taken over with `update` on the revision seen, so two starts racing cannot both
//! win. The claim also carries the node's server name and ADMIN lines, which is how the other
//! nodes learn them, and how a node finds a live one already using its server name.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Cluster, ClusterError};
use crate::server::Shared;

/// Most rounds of watching and taking over before a start gives up (each round follows a
/// change by someone else, so a third one means another process is starting as this node).
const CLAIM_ROUNDS: usize = 3;
/// Longest a server name or ADMIN line from another node may be to be shown.
const SHOWN_LEN: usize = 200;
/// What a node's users are told when it steps down.
const STEP_DOWN_REASON: &str =
    "This server's node name was taken over by another process; reconnect";

/// What `node.<name>` holds: which life of the node has the name, and what it shows users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeClaim {
    /// The holder's incarnation, in hex like a uid's.
    pub incarnation: String,
    /// The holder's `server.name`.
    pub server: String,
    /// ADMIN's lines 257, 258 and 259.
    #[serde(default)]
    pub admin: [String; 3],
}

/// This node's claim and what it knows of the others', kept by [`keep_claim`].
#[derive(Default)]
pub(super) struct Identity {
    /// This node's claim and the revision it was last written at.
    mine: Mutex<Option<(NodeClaim, u64)>>,
    /// The other nodes' claims as last read, by node name (only well-formed ones).
    others: Mutex<HashMap<String, NodeClaim>>,
    /// Why this node stopped serving, once it stepped down.
    deposed: Mutex<Option<String>>,
    /// Rung when a node (or a new life of one) is first heard from, so its claim is read at
    /// once and its users show on its server name rather than its node name.
    pub(super) new_peer: tokio::sync::Notify,
}

fn node_key(node: &str) -> String {
    format!("node.{node}")
}

/// A server name another node sent, if it is one this node may show: it goes into reply lines
/// as a parameter, so it must be one token of hostname characters.
fn showable_server(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// An ADMIN line another node sent, if it can be shown as a trailing parameter.
fn showable_line(text: &str) -> bool {
    text.len() <= SHOWN_LEN && !text.chars().any(char::is_control)
}

fn parse_claim(entry: &kv::Entry) -> Option<NodeClaim> {
    if entry.operation != kv::Operation::Put {
        return None;
    }
    serde_json::from_slice(&entry.value).ok()
}

/// The ADMIN lines (257, 258, 259) this server shows, from `[server]`.
pub fn admin_lines(shared: &Shared) -> [String; 3] {
    let server = &shared.config.server;
    let location = if server.admin_location.is_empty() {
        format!("{} network", server.network)
    } else {
        server.admin_location.clone()
    };
    let role = match super::of(shared) {
        Some(cluster) => format!("Node {} of the {} network", cluster.node, server.network),
        None => format!("The {} network's only server", server.network),
    };
    let email = if server.admin_email.is_empty() {
        "No administrative contact set".to_owned()
    } else {
        server.admin_email.clone()
    };
    [location, role, email]
}

/// The node a cluster-wide user id belongs to.
pub fn node_of(uid: &str) -> Option<&str> {
    super::trust::uid_node(uid)
}

/// The server a user is on: this one, or for another node's user, that node's.
pub fn server_of(shared: &Shared, remote: Option<&str>) -> String {
    match (super::of(shared), remote.and_then(super::trust::uid_node)) {
        (Some(cluster), Some(node)) => cluster.server_name(node),
        _ => shared.server_name().to_owned(),
    }
}

/// One live node of the network as LUSERS, LINKS and MAP show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node: String,
    pub server: String,
}

impl Cluster {
    /// Hold this node's name for this life, or say who holds it. Runs before the node says
    /// anything on the bus: a second process under a running node's name would otherwise
    /// announce that node's users gone (its start says its earlier lives are over).
    pub(super) async fn claim_name(
        &self,
        server: &str,
        admin: [String; 3],
    ) -> Result<(), ClusterError> {
        let key = node_key(&self.node);
        let mine = NodeClaim {
            incarnation: format!("{:x}", self.incarnation),
            server: server.to_owned(),
            admin,
        };
        let value =
            Bytes::from(serde_json::to_vec(&mine).map_err(|e| self.bus_error(e.to_string()))?);
        let rivals = self.server_name_rivals(server).await?;
        for _ in 0..CLAIM_ROUNDS {
            let held = self
                .nicks
                .entry(key.as_str())
                .await
                .map_err(|e| self.bus_error(e.to_string()))?;
            let seen = held
                .as_ref()
                .filter(|e| e.operation == kv::Operation::Put)
                .map(|e| e.revision);
            if seen.is_some() || !rivals.is_empty() {
                // A live holder renews within a lease; one that does not has crashed.
                self.watch_for_renewal(&key, seen, &rivals).await?;
            }
            // Written only on the revision seen: of two starts racing, one wins.
            let written = match seen {
                Some(revision) => self
                    .nicks
                    .update(key.as_str(), value.clone(), revision)
                    .await
                    .map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision),
                None => self
                    .nicks
                    .create(key.as_str(), value.clone())
                    .await
                    .map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists),
            };
            match written {
                Ok(revision) => {
                    if seen.is_some() {
                        tracing::warn!(node = %self.node, "took over this node's name from a life that stopped renewing it (a crash)");
                    }
                    *self.identity.mine.lock() = Some((mine, revision));
                    return Ok(());
                }
                // Someone else wrote it meanwhile: look again.
                Err(true) => continue,
                Err(false) => {
                    return Err(self.bus_error("the node name claim was not written".into()))
                }
            }
        }
        let holder = self
            .claim_of(&self.node)
            .await
            .map(|c| c.server)
            .unwrap_or_default();
        Err(ClusterError::NameTaken {
            node: self.node.clone(),
            server: holder.escape_debug().to_string(),
        })
    }

    /// Poll `key` (seen at `seen`) and the `rivals` for a lease. A change by another life is a
    /// live holder: refused. Returns when nothing renewed.
    async fn watch_for_renewal(
        &self,
        key: &str,
        seen: Option<u64>,
        rivals: &[(String, u64)],
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.lease;
        let every = (self.lease / 8).max(Duration::from_millis(100));
        while Instant::now() < deadline {
            tokio::time::sleep(every).await;
            if let Ok(Some(entry)) = self.nicks.entry(key).await {
                if Some(entry.revision) != seen {
                    if let Some(claim) = parse_claim(&entry) {
                        return Err(ClusterError::NameTaken {
                            node: self.node.clone(),
                            server: claim.server.escape_debug().to_string(),
                        });
                    }
                    // Released meanwhile (a clean stop): free to take.
                    return Ok(());
                }
            }
            for (node, revision) in rivals {
                let Ok(Some(entry)) = self.nicks.entry(node_key(node)).await else {
                    continue;
                };
                if entry.revision != *revision {
                    if let Some(claim) = parse_claim(&entry) {
                        return Err(ClusterError::ServerNameTaken {
                            server: claim.server.escape_debug().to_string(),
                            node: node.clone(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The other nodes whose claim names `server` as theirs, with the revision seen; whether
    /// they are alive is for [`Cluster::watch_for_renewal`] to find out.
    async fn server_name_rivals(&self, server: &str) -> Result<Vec<(String, u64)>, ClusterError> {
        let mut names: Vec<String> = self.nodes.iter().cloned().collect();
        if names.is_empty() {
            // Insecure mode names no nodes: the claims in the bucket say who there is.
            let mut keys = self
                .nicks
                .keys()
                .await
                .map_err(|e| self.bus_error(e.to_string()))?;
            while let Some(Ok(key)) = keys.next().await {
                if let Some(node) = key.strip_prefix("node.") {
                    names.push(node.to_owned());
                }
            }
        }
        let mut rivals = Vec::new();
        for node in names.into_iter().filter(|n| *n != self.node) {
            let entry = self
                .nicks
                .entry(node_key(&node))
                .await
                .map_err(|e| self.bus_error(e.to_string()))?;
            if let Some(entry) = entry {
                if parse_claim(&entry).is_some_and(|c| c.server.eq_ignore_ascii_case(server)) {
                    rivals.push((node, entry.revision));
                }
            }
        }
        Ok(rivals)
    }

    async fn claim_of(&self, node: &str) -> Option<NodeClaim> {
        let entry = self.nicks.entry(node_key(node)).await.ok()??;
        parse_claim(&entry)
    }

    fn bus_error(&self, reason: String) -> ClusterError {
        ClusterError::JetStream {
            url: self.url.clone(),
            what: "the node name claim".into(),
            reason,
        }
    }

    /// The server name of `node` as its claim says, or the node's name until its claim is read.
    pub fn server_name(&self, node: &str) -> String {
        if node == self.node {
            if let Some((claim, _)) = self.identity.mine.lock().as_ref() {
                return claim.server.clone();
            }
        }
        self.identity
            .others
            .lock()
            .get(node)
            .map_or_else(|| node.to_owned(), |claim| claim.server.clone())
    }

    /// The ADMIN lines of another node, once its claim has been read.
    pub fn admin_of(&self, node: &str) -> Option<[String; 3]> {
        self.identity
            .others
            .lock()
            .get(node)
            .map(|c| c.admin.clone())
    }

    /// The other live nodes (heard within a lease), sorted by server name.
    pub fn network(&self) -> Vec<NodeView> {
        let mut nodes: Vec<NodeView> = self
            .nodes_heard()
            .into_iter()
            .filter(|node| *node != self.node)
            .map(|node| NodeView {
                server: self.server_name(&node),
                node,
            })
            .collect();
        nodes.sort_by(|a, b| a.server.cmp(&b.server));
        nodes
    }

    /// Why this node stepped down, once it has.
    pub fn deposed(&self) -> Option<String> {
        self.identity.deposed.lock().clone()
    }

    /// Read the other nodes' claims (the configured ones, or those heard from in insecure
    /// mode), keeping the well-formed ones.
    async fn read_others(&self) {
        let names: Vec<String> = if self.nodes.is_empty() {
            self.nodes_heard()
        } else {
            self.nodes.iter().cloned().collect()
        };
        for node in names.into_iter().filter(|n| *n != self.node) {
            let Ok(entry) = self.nicks.entry(node_key(&node)).await else {
                continue;
            };
            match entry.as_ref().and_then(parse_claim) {
                Some(claim)
                    if showable_server(&claim.server)
                        && claim.admin.iter().all(|line| showable_line(line)) =>
                {
                    self.identity.others.lock().insert(node, claim);
                }
                Some(_) => self.refuse(&node, "a node claim that cannot be shown"),
                None => {
                    self.identity.others.lock().remove(&node);
                }
            }
        }
    }

    /// Stop serving: another process holds this node's name now, and two nodes under one name
    /// split the network. Its users are told and disconnected, and the server shuts down (the
    /// binary exits non-zero with the reason).
    fn step_down(&self, shared: &Shared, holder: &NodeClaim) {
        let reason = format!(
            "another process (server {}) took over cluster node name {:?} after this one did not \
             renew it for a lease (paused or cut off); this node stops serving",
            holder.server.escape_debug(),
            self.node
        );
        tracing::error!("{reason}");
        *self.identity.deposed.lock() = Some(reason);
        let locals: Vec<_> = shared
            .world
            .lock()
            .users
            .values()
            .filter(|u| u.remote.is_none())
            .flat_map(|u| u.sessions.iter().cloned())
            .collect();
        for outbound in locals {
            outbound.disconnect(STEP_DOWN_REASON);
        }
        shared.shutdown.cancel();
    }
}

/// Renew this node's name claim every quarter lease and read the other nodes'. A renewal that
/// finds another life's claim means this node was taken for dead and replaced: it steps down.
/// A bus that does not answer is no such proof, so the node keeps serving meanwhile. On
/// shutdown the claim is given back, so the node may start again at once.
pub(super) async fn keep_claim(shared: std::sync::Arc<Shared>) {
    let Some(cluster) = super::of(&shared).cloned() else {
        return;
    };
    let Some((mine, mut revision)) = cluster.identity.mine.lock().clone() else {
        return;
    };
    let key = node_key(&cluster.node);
    let Ok(value) = serde_json::to_vec(&mine).map(Bytes::from) else {
        return;
    };
    let every = super::lease::every(cluster.lease);
    cluster.read_others().await;
    // At once: joining took a while since the claim was written.
    let mut renewal_due = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(renewal_due) => {}
            _ = cluster.identity.new_peer.notified() => {
                cluster.read_others().await;
                continue;
            }
            _ = shared.shutdown.cancelled() => {
                if cluster.deposed().is_none() {
                    let release = cluster
                        .nicks
                        .delete_expect_revision(key.as_str(), Some(revision));
                    if let Ok(Err(err)) = tokio::time::timeout(Duration::from_secs(2), release).await {
                        tracing::debug!(%err, "node name claim not released; it goes stale in a lease");
                    }
                }
                return;
            }
        }
        renewal_due = Instant::now() + every;
        let renewal = tokio::time::timeout(
            Duration::from_secs(5),
            cluster.nicks.update(key.as_str(), value.clone(), revision),
        )
        .await;
        match renewal {
            Ok(Ok(next)) => revision = next,
            Ok(Err(err)) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                match cluster.nicks.entry(key.as_str()).await {
                    Ok(Some(entry)) => match parse_claim(&entry) {
                        // An earlier renewal went through unacknowledged.
                        Some(claim) if claim.incarnation == mine.incarnation => {
                            revision = entry.revision
                        }
                        Some(claim) => {
                            cluster.step_down(&shared, &claim);
                            return;
                        }
                        None => {
                            if let Ok(next) =
                                cluster.nicks.create(key.as_str(), value.clone()).await
                            {
                                revision = next;
                            }
                        }
                    },
                    // Gone (the bus lost its state, or someone deleted it): claim it again.
                    Ok(None) => {
                        if let Ok(next) = cluster.nicks.create(key.as_str(), value.clone()).await {
                            revision = next;
                        }
                    }
                    Err(err) => tracing::debug!(%err, "node name claim unreadable; retrying"),
                }
            }
            Ok(Err(err)) => tracing::debug!(%err, "node name claim not renewed; retrying"),
            Err(_) => tracing::debug!("node name claim renewal timed out; retrying"),
        }
        cluster.read_others().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hostname_like_server_names_are_shown() {
        assert!(showable_server("n1.parley.local"));
        assert!(!showable_server("a b"));
        assert!(!showable_server(":n1"));
        assert!(!showable_server("n1\r\nKILL"));
        assert!(!showable_server(""));
        assert!(showable_line("Contact admin@example.org"));
        assert!(!showable_line("x\r\nPRIVMSG"));
    }

    #[test]
    fn a_claim_never_reads_as_a_nick_holder() {
        let claim = NodeClaim {
            incarnation: "abc".into(),
            server: "n1.parley.local".into(),
            admin: Default::default(),
        };
        let text = serde_json::to_string(&claim).expect("serializable");
        // release_node takes a value for a user's uid if it parses as one.
        assert!(super::super::event::uid_origin(&text).is_none());
    }
}
