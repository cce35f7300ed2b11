//! A clean stop: the node leaves the cluster rather than vanishing from it.
//!
//! On shutdown the listeners close and every connection ends with its QUIT published as usual;
//! then this node releases its users' nick claims, publishes one last `NodeDown` naming its own
//! life (which every version already takes as final: a node may always say it is gone),
//! empties its outbox into the stream within a bound, and only then stops its bus tasks. Its
//! heartbeats go on until then, so nobody takes it for dead halfway. A crash has none of this:
//! the lease covers it. The other side keeps the lives that left, so a heartbeat still in
//! flight when the leave arrives cannot bring one back for a later "lost" QUIT.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::event::{Envelope, Event};
use super::{nick_key, of, Cluster};
use crate::server::Shared;

/// The leave, from the signal to the bus tasks' end (then at most two [`FLUSH_WAIT`]s): well
/// inside `parleyd`'s own 5 s grace for its tasks, so the process never ends it halfway.
const LEAVE_BUDGET: Duration = Duration::from_secs(3);
/// Most time given to this node's connections to end (each publishes its QUIT as it does).
/// They end at once unless a handler is still busy; a straggler's QUIT then follows the leave.
const USERS_WAIT: Duration = Duration::from_millis(1500);
/// Most time spent giving back this node's nick claims before the leave is published.
const RELEASE_WAIT: Duration = Duration::from_secs(1);
/// Nick claims given back concurrently (each is a round trip to the bucket).
const RELEASES_AT_ONCE: usize = 32;
/// How long the bus client gets to send what it buffered once the bus tasks stopped.
const FLUSH_WAIT: Duration = Duration::from_millis(300);
/// Lives of other nodes remembered as left: a heartbeat in flight arrives within moments of the
/// leave, so a few dozen cover any rolling restart; older ones are forgotten.
const DEPARTED: usize = 64;

/// Where this node is in leaving, and which other nodes' lives have left.
#[derive(Default)]
pub struct Leave {
    /// Cancelled once the leave is in the outbox: the publisher empties it and ends.
    draining: CancellationToken,
    /// Cancelled when the bus tasks (publisher, follower, heartbeats) must end.
    stopped: CancellationToken,
    /// Cancelled when the publisher has ended, `unpublished` then set.
    publisher_done: CancellationToken,
    /// Events the publisher still held when it ended.
    unpublished: AtomicUsize,
    /// Other nodes' lives that left cleanly, oldest first (bounded by [`DEPARTED`]).
    departed: Mutex<VecDeque<(String, u64)>>,
}

impl Leave {
    /// Ready once the outbox should be emptied and the publisher end.
    pub(super) async fn draining(&self) {
        self.draining.cancelled().await
    }

    /// Ready once the bus tasks must end.
    pub(super) async fn stopped(&self) {
        self.stopped.cancelled().await
    }

    /// The publisher ended, `unpublished` events still in its hands.
    pub(super) fn publisher_ended(&self, unpublished: usize) {
        self.unpublished.store(unpublished, Ordering::Relaxed);
        self.publisher_done.cancel();
    }

    /// Remember that `node`'s life `incarnation` left.
    pub(super) fn departed(&self, node: &str, incarnation: u64) {
        let mut departed = self.departed.lock();
        if departed
            .iter()
            .any(|(n, inc)| n == node && *inc == incarnation)
        {
            return;
        }
        if departed.len() >= DEPARTED {
            departed.pop_front();
        }
        departed.push_back((node.to_string(), incarnation));
    }

    /// Whether `node`'s life `incarnation` left cleanly (so its late heartbeats mean nothing).
    pub(super) fn has_left(&self, node: &str, incarnation: u64) -> bool {
        self.departed
            .lock()
            .iter()
            .any(|(n, inc)| n == node && *inc == incarnation)
    }
}

/// Whether an event is a node's word that its own current life is over: a clean leave.
pub(super) fn is_leave(envelope: &Envelope) -> bool {
    matches!(&envelope.event, Event::NodeDown { node, incarnation, .. }
        if *node == envelope.node && *incarnation == envelope.incarnation)
}

/// Wait for the shutdown signal, then leave the cluster in order (see the module doc). Runs as
/// one of the node's tasks, so `parleyd` waits for it before exiting.
pub(super) async fn on_shutdown(shared: Arc<Shared>) {
    let Some(cluster) = of(&shared).cloned() else {
        return;
    };
    shared.shutdown.cancelled().await;
    let begun = Instant::now();
    let deadline = begun + LEAVE_BUDGET;
    let claims = own_claims(&shared, &cluster);
    let stragglers = local_users_gone(&shared, begun + USERS_WAIT).await;
    let _ = tokio::time::timeout_at(
        deadline.min(Instant::now() + RELEASE_WAIT),
        release(&cluster, claims),
    )
    .await;
    let announced = publish_leave(&cluster);
    cluster.leave.draining.cancel();
    if tokio::time::timeout_at(deadline, cluster.leave.publisher_done.cancelled())
        .await
        .is_err()
    {
        // The bus does not take the rest in time: stop anyway, and say how much is lost.
        cluster.leave.stopped.cancel();
        let _ = tokio::time::timeout(FLUSH_WAIT, cluster.leave.publisher_done.cancelled()).await;
    }
    cluster.leave.stopped.cancel();
    let _ = tokio::time::timeout(FLUSH_WAIT, cluster.client.flush()).await;
    let unpublished = cluster.leave.unpublished.load(Ordering::Relaxed);
    let took_ms = u64::try_from(begun.elapsed().as_millis()).unwrap_or(u64::MAX);
    if unpublished == 0 && announced && stragglers == 0 {
        tracing::info!(node = %cluster.node, took_ms, "left the cluster");
    } else {
        tracing::warn!(
            node = %cluster.node,
            took_ms,
            unpublished,
            stragglers,
            "left the cluster without saying everything: the other nodes drop what they did not \
             hear of when this node's lease runs out"
        );
    }
}

/// The nick claims this node's connections may hold, taken at the signal (the listeners are
/// closed, so no new one comes): as bucket keys, with the uid that holds each.
fn own_claims(shared: &Shared, cluster: &Cluster) -> Vec<(String, String)> {
    shared
        .world
        .lock()
        .users
        .values()
        .filter(|u| u.remote.is_none() && !u.nick.is_empty())
        .map(|u| {
            (
                nick_key(&parley_proto::casefold(&u.nick)),
                cluster.uid_of(u.id),
            )
        })
        .collect()
}

/// Give back `claims` still held by their uid, a few at a time. Each connection's end releases
/// its own too, in a task of its own the process may end before it runs: this one is awaited.
/// (Listing the whole bucket, as for a dead node, can stall for a second on an idle bucket.)
async fn release(cluster: &Cluster, claims: Vec<(String, String)>) {
    futures_util::stream::iter(claims)
        .for_each_concurrent(RELEASES_AT_ONCE, |(key, uid)| async move {
            cluster
                .release_if_held(&key, |holder| holder == uid.as_bytes())
                .await;
        })
        .await;
}

/// Wait until this node has no connection left (each one's QUIT is published as it ends), at
/// most until `until`; how many were still there.
async fn local_users_gone(shared: &Shared, until: Instant) -> usize {
    loop {
        let left = shared
            .world
            .lock()
            .users
            .values()
            .filter(|u| u.remote.is_none())
            .count();
        if left == 0 || Instant::now() >= until {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Queue this life's last event: `NodeDown` for itself. Not through [`Cluster::publish`]: this
/// node never applies it (that would disconnect users as if the others had given it up); when
/// the stream hands it back, nothing waits for it. False if it could not be queued.
fn publish_leave(cluster: &Cluster) -> bool {
    cluster.publish_unapplied(Event::NodeDown {
        node: cluster.node.clone(),
        incarnation: cluster.incarnation,
        // A node's word about itself needs no fence.
        seen: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(node: &str, incarnation: u64, event: Event) -> Envelope {
        Envelope {
            node: node.into(),
            incarnation,
            eid: 1,
            event,
        }
    }

    #[test]
    fn only_a_node_saying_its_own_life_ended_is_a_leave() {
        let down = |node: &str, incarnation| Event::NodeDown {
            node: node.into(),
            incarnation,
            seen: 0,
        };
        assert!(is_leave(&envelope("n3", 7, down("n3", 7))));
        // A restart (every earlier life gone), another node's life, another life of its own.
        assert!(!is_leave(&envelope("n3", 7, down("n3", 0))));
        assert!(!is_leave(&envelope("n1", 7, down("n3", 7))));
        assert!(!is_leave(&envelope("n3", 7, down("n3", 6))));
    }

    #[test]
    fn departed_lives_are_remembered_within_a_bound() {
        let leave = Leave::default();
        for inc in 0..(DEPARTED as u64 + 10) {
            leave.departed("n3", inc);
            leave.departed("n3", inc);
        }
        assert_eq!(leave.departed.lock().len(), DEPARTED);
        assert!(!leave.has_left("n3", 0), "the oldest are forgotten");
        assert!(leave.has_left("n3", DEPARTED as u64 + 9));
        assert!(!leave.has_left("n2", DEPARTED as u64 + 9));
    }
}
