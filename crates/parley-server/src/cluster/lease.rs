//! When a node may judge another dead, and when such a judgement is stale.
//!
//! A node that was paused (SIGSTOP, a VM frozen) or cut off from the bus sees every peer's last
//! heartbeat as old, though it is the one that fell silent. So a node judges others only from a
//! view it knows is fresh: its lease loop ran on time, its own heartbeat came back lately, and
//! its stream follower has read everything the stream held a moment ago. The judgement carries
//! the stream sequence it was made at (the fence), so if it still reaches the stream late, every
//! node sees the accused node's later events before it and ignores it the same way.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Cluster;

/// Whether the lease loop woke so late that this process must have been stopped meanwhile (or
/// starved): nothing it measured across that gap says anything about the other nodes.
pub(super) fn stalled(gap: Duration, every: Duration, lease: Duration) -> bool {
    gap > every + lease / 2
}

/// How often the lease loop beats and judges, for a lease of `lease`.
pub(super) fn every(lease: Duration) -> Duration {
    (lease / 4).max(Duration::from_millis(250))
}

/// Most node lives whose last stream position is remembered (names are checked against
/// `cluster.nodes`, except in insecure mode, where this bounds what made-up names can grow).
const NODE_LIVES: usize = 4096;

/// How often [`Cluster::caught_up`] looks at the follower's position while it waits.
const CATCH_UP_POLL: Duration = Duration::from_millis(25);

impl Cluster {
    /// This node lost track of time (its lease loop stalled for `gap`): hear every peer afresh
    /// rather than take the silence this node caused for theirs. Past a lease, the others may
    /// have taken this node for dead, so their word on that is believed from now on.
    pub(super) fn lost_time(&self, gap: Duration) {
        let now = Instant::now();
        tracing::warn!(
            gap_ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX),
            "this node's lease loop stalled (the process was paused or starved); judging no \
             other node until it has heard them again"
        );
        self.forgive_peers(now);
        if gap > self.lease {
            *self.outage.lock() = Some(now);
        }
    }

    /// Whether the lease loop oversleeps by as much as [`stalled`] calls a stall: the process
    /// was paused a moment ago and the loop has not woken since, so its own `lost_time` has
    /// not marked the outage yet (the loop and the stream follower wake together).
    pub(super) fn paused_just_now(&self) -> bool {
        self.lease_asleep
            .lock()
            .is_some_and(|since| stalled(since.elapsed(), every(self.lease), self.lease))
    }

    /// Count every known peer as heard just now, so none is judged for a silence this node
    /// could not have observed.
    pub(super) fn forgive_peers(&self, now: Instant) {
        for seen in self.peers.lock().values_mut() {
            *seen = now;
        }
    }

    /// Whether this node's own heartbeat came back from the bus within half a lease: if not,
    /// it is this node that is cut off, and the others' silence proves nothing. Logged once per
    /// change, not at every tick.
    pub(super) fn hears_itself(&self) -> bool {
        let fresh = self
            .own_beat
            .lock()
            .is_some_and(|at| at.elapsed() <= self.lease / 2);
        let was_deaf = self.deaf.swap(!fresh, Ordering::Relaxed);
        if !fresh && !was_deaf {
            tracing::warn!(
                "this node's own heartbeat is not coming back from the bus; it judges no other \
                 node until it does"
            );
        } else if fresh && was_deaf {
            tracing::info!("this node hears its own heartbeat again");
        }
        fresh
    }

    /// The stream's last sequence, once this node's follower has read up to it: the fence a
    /// judgement made now carries. `None` (judge nothing this round) when the bus does not
    /// answer or the follower lags behind for more than half a lease.
    pub(super) async fn caught_up(&self) -> Option<u64> {
        let wait = self.lease / 2;
        let name = format!("{}_EVENTS", self.prefix);
        let info = tokio::time::timeout(wait, async {
            let mut events = self.js.get_stream(name).await.ok()?;
            events
                .info()
                .await
                .ok()
                .map(|info| info.state.last_sequence)
        })
        .await;
        let Ok(Some(last)) = info else {
            tracing::debug!("stream position unknown; judging no node this round");
            return None;
        };
        let deadline = Instant::now() + wait;
        while self.applied.load(Ordering::Acquire) < last {
            if Instant::now() >= deadline {
                tracing::debug!(last, "the stream follower lags; judging no node this round");
                return None;
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
        Some(last)
    }

    /// Remember that the stream's entry `sequence` came from `node`'s life `incarnation`.
    pub(super) fn note_sequence(&self, node: &str, incarnation: u64, sequence: u64) {
        let mut last = self.last_from.lock();
        let full = last.len() >= NODE_LIVES;
        let key = (node.to_string(), incarnation);
        match last.get_mut(&key) {
            Some(at) => *at = (*at).max(sequence),
            // Known node names only (checked before), and a node's earlier lives are dropped
            // when its NodeDown is applied ([`Cluster::forget_sequences`]), so this stays small.
            None if !full => {
                last.insert(key, sequence);
            }
            None => {}
        }
    }

    /// Whether a judgement that `node`'s life `incarnation` is dead, made at stream sequence
    /// `seen`, is stale: the stream holds an event of that life after it. Every node reads the
    /// same stream, so every node decides this alike.
    pub(super) fn stale_judgement(&self, node: &str, incarnation: u64, seen: u64) -> bool {
        if seen == 0 {
            return false;
        }
        self.last_from
            .lock()
            .get(&(node.to_string(), incarnation))
            .is_some_and(|&last| last > seen)
    }

    /// Forget the stream positions of the lives of `node` a NodeDown ended (all but `keep`'s
    /// when `incarnation` is 0: the node restarted).
    pub(super) fn forget_sequences(&self, node: &str, incarnation: u64, keep: u64) {
        self.last_from.lock().retain(|(n, inc), _| {
            n != node
                || (incarnation == 0 && *inc == keep)
                || (incarnation != 0 && *inc != incarnation)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_tick_is_a_stall_and_an_ordinary_delay_is_not() {
        let lease = Duration::from_secs(2);
        let every = lease / 4;
        assert!(!stalled(every, every, lease));
        assert!(!stalled(every + Duration::from_millis(900), every, lease));
        assert!(stalled(every + Duration::from_millis(1100), every, lease));
        assert!(stalled(Duration::from_secs(15), every, lease));
    }
}
