//! What this node has already taken from the stream, so a late or repeated event is skipped
//! instead of applied twice or to the wrong user.
//!
//! JetStream drops a repeated publish only within its duplicate window (two minutes): a node
//! that retries after a longer outage may put an event in the stream twice, so each node also
//! remembers, per sender's life, which event ids it applied. And a user is known by its uid,
//! never by its nick: once a uid has quit (or its node's life was declared over), a late event
//! about it must not bring it back. Both memories are bounded; past their bounds the oldest is
//! forgotten, which at worst lets through what the stream's own deduplication let through before.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// Event ids remembered above a sender's contiguous floor (the ids after a gap: events it never
/// published because its outbox was full). Past this, the oldest gap is given up.
const EIDS_ABOVE_FLOOR: usize = 4096;
/// Senders' lives remembered; each node's restart makes a new one.
const LIVES: usize = 64;
/// Departed uids remembered (a quit or a lost node's users).
const DEPARTED: usize = 16_384;

/// The event ids of one sender's life applied so far: every id up to `floor`, and those above
/// it in `above`.
#[derive(Debug, Default)]
struct Applied {
    floor: u64,
    above: BTreeSet<u64>,
    /// When this life was last heard from, in calls to [`Seen::first_time`] (for eviction).
    used: u64,
}

impl Applied {
    fn insert(&mut self, eid: u64) -> bool {
        if eid <= self.floor || !self.above.insert(eid) {
            return false;
        }
        while self.above.first() == Some(&(self.floor + 1)) {
            self.floor += 1;
            self.above.pop_first();
        }
        if self.above.len() > EIDS_ABOVE_FLOOR {
            if let Some(oldest) = self.above.pop_first() {
                self.floor = oldest;
            }
        }
        true
    }
}

/// The stream's events and users this node is done with.
#[derive(Debug, Default)]
pub struct Seen {
    lives: HashMap<(String, u64), Applied>,
    clock: u64,
    departed: HashSet<String>,
    departed_order: VecDeque<String>,
}

impl Seen {
    /// Whether the event `eid` of `node`'s life `incarnation` comes for the first time (and
    /// remember it). The first event heard of a life sets its floor, so a node that joins
    /// while others run does not wait for their earlier ids.
    pub fn first_time(&mut self, node: &str, incarnation: u64, eid: u64) -> bool {
        self.clock += 1;
        let clock = self.clock;
        let key = (node.to_string(), incarnation);
        if !self.lives.contains_key(&key) && self.lives.len() >= LIVES {
            let oldest = self
                .lives
                .iter()
                .min_by_key(|(_, applied)| applied.used)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.lives.remove(&oldest);
            }
        }
        let applied = self.lives.entry(key).or_insert_with(|| Applied {
            floor: eid.saturating_sub(1),
            ..Applied::default()
        });
        applied.used = clock;
        applied.insert(eid)
    }

    /// `uid` is gone for good: a late `UserUp` must not bring it back.
    pub fn depart(&mut self, uid: &str) {
        if !self.departed.insert(uid.to_string()) {
            return;
        }
        self.departed_order.push_back(uid.to_string());
        if self.departed_order.len() > DEPARTED {
            if let Some(oldest) = self.departed_order.pop_front() {
                self.departed.remove(&oldest);
            }
        }
    }

    pub fn departed(&self, uid: &str) -> bool {
        self.departed.contains(uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_applied_once_in_whatever_order_it_comes() {
        let mut seen = Seen::default();
        assert!(seen.first_time("n1", 7, 10));
        assert!(seen.first_time("n1", 7, 12));
        assert!(!seen.first_time("n1", 7, 10), "a repeat");
        assert!(seen.first_time("n1", 7, 11), "late, not a repeat");
        assert!(!seen.first_time("n1", 7, 11));
        assert!(!seen.first_time("n1", 7, 12));
        assert!(seen.first_time("n1", 8, 10), "another life of the node");
        assert!(seen.first_time("n2", 7, 10), "another node");
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut seen = Seen::default();
        assert!(seen.first_time("n1", 1, 1));
        // A gap at 2 that never fills: the ids above it are kept only up to the bound.
        for eid in 3..(EIDS_ABOVE_FLOOR as u64 + 10) {
            assert!(seen.first_time("n1", 1, eid));
        }
        let applied = &seen.lives[&("n1".to_string(), 1)];
        assert!(applied.above.len() <= EIDS_ABOVE_FLOOR);
        for life in 0..(LIVES as u64 * 2) {
            seen.first_time("n2", life, 1);
        }
        assert!(seen.lives.len() <= LIVES);
        for k in 0..(DEPARTED + 5) {
            seen.depart(&format!("n1~1~{k}"));
        }
        assert!(!seen.departed("n1~1~0"), "the oldest is forgotten");
        assert!(seen.departed(&format!("n1~1~{}", DEPARTED + 4)));
        assert_eq!(seen.departed.len(), DEPARTED);
    }
}
