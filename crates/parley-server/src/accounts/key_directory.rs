//! The end-to-end key directory as the `KEYS` command uses it: the store of devices and their
//! public keys, the fixed limits of the protocol (docs/e2e.md), and the claim rate per claiming
//! account. One-time keys are what a peer spends to start an Olm session with a device, so the
//! danger is another account draining them: claims cost flood budget like any line, and at most
//! [`CLAIMS_PER_MINUTE`] per account here. The count is kept in memory; in a cluster each node
//! counts its own claims (the fallback key keeps a drained device reachable anyway).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::store::E2eKeyStore;

/// Most devices one account may publish.
pub const MAX_DEVICES: usize = 10;
/// Most unclaimed one-time keys one device may have on the server.
pub const MAX_UNCLAIMED_KEYS: usize = 100;
/// Most one-time keys one `KEYS OTK` line may carry.
pub const MAX_KEYS_PER_LINE: usize = 50;
/// Most `KEYS CLAIM`s one account may make in a minute (on one node).
pub const CLAIMS_PER_MINUTE: usize = 30;

const WINDOW: Duration = Duration::from_secs(60);

/// Accounts whose claim windows are kept before the idle ones are swept out; the map holds at
/// most one entry per account that claimed within the last minute (each at most
/// [`CLAIMS_PER_MINUTE`] instants).
const SWEEP_AT: usize = 1024;

pub struct KeyDirectory {
    store: Arc<dyn E2eKeyStore>,
    /// Per casefolded account, when its claims of the last minute were made, oldest first.
    claims: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl KeyDirectory {
    pub fn new(store: Arc<dyn E2eKeyStore>) -> Self {
        KeyDirectory {
            store,
            claims: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn E2eKeyStore> {
        &self.store
    }

    /// Count a claim by `account` (casefolded) now; false when it already made
    /// [`CLAIMS_PER_MINUTE`] in the last minute (a refused claim is not counted).
    pub fn take_claim(&self, account: &str) -> bool {
        self.take_claim_at(account, Instant::now())
    }

    fn take_claim_at(&self, account: &str, now: Instant) -> bool {
        let mut claims = self.claims.lock();
        if claims.len() >= SWEEP_AT && !claims.contains_key(account) {
            claims.retain(|_, made| made.back().is_some_and(|last| now - *last < WINDOW));
        }
        let made = claims.entry(account.to_owned()).or_default();
        while made.front().is_some_and(|first| now - *first >= WINDOW) {
            made.pop_front();
        }
        if made.len() >= CLAIMS_PER_MINUTE {
            return false;
        }
        made.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> KeyDirectory {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = crate::store::SqliteStore::open(&dir.path().join("keys.db")).expect("open");
        KeyDirectory::new(Arc::new(store))
    }

    #[test]
    fn claims_are_counted_per_account_over_a_sliding_minute() {
        let directory = directory();
        let start = Instant::now();
        for i in 0..CLAIMS_PER_MINUTE {
            let at = start + Duration::from_secs(i as u64);
            assert!(directory.take_claim_at("alice", at), "claim {i}");
        }
        let later = start + Duration::from_secs(59);
        assert!(!directory.take_claim_at("alice", later));
        assert!(
            directory.take_claim_at("bob", later),
            "bob has his own count"
        );
        // The first claim is a minute old: one more is allowed, and only one.
        let minute = start + WINDOW;
        assert!(directory.take_claim_at("alice", minute));
        assert!(!directory.take_claim_at("alice", minute));
    }

    #[test]
    fn idle_accounts_are_swept_out() {
        let directory = directory();
        let start = Instant::now();
        for i in 0..SWEEP_AT {
            assert!(directory.take_claim_at(&format!("a{i}"), start));
        }
        assert!(directory.take_claim_at("late", start + WINDOW));
        assert_eq!(directory.claims.lock().len(), 1);
    }
}
