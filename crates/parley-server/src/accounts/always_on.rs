//! Always-on accounts in memory: which accounts asked for it, which are present now with no
//! session connected (and under which user id, since when), and the store both are kept in.
//! Asked on every disconnect and login under no database round trip, so the opted-in set is
//! loaded at start and kept in step by `ALWAYSON`; the presences themselves live in the world
//! as users whose outbound accepts nothing (see `command::always_on`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::config::AlwaysOnPolicy;
use crate::state::ClientId;
use crate::store::{AlwaysOnStore, StoreError};

/// A presence kept for an account none of whose sessions is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detached {
    /// The user standing in for the account in the world.
    pub id: ClientId,
    /// When the last session left (ms since the Unix epoch).
    pub since_ms: i64,
}

#[derive(Default)]
pub struct AlwaysOn {
    store: OnceLock<Arc<dyn AlwaysOnStore>>,
    /// Casefolded accounts that turned it on (`ALWAYSON ON`).
    opted_in: Mutex<HashSet<String>>,
    /// Casefolded account -> its detached presence.
    detached: Mutex<HashMap<String, Detached>>,
}

impl AlwaysOn {
    /// Use `store` from now on, starting from the accounts it says opted in. Once, at start.
    pub fn open(&self, store: Arc<dyn AlwaysOnStore>) -> Result<(), StoreError> {
        let accounts = store.always_on_accounts()?;
        *self.opted_in.lock() = accounts.into_iter().collect();
        // A second call keeps the first store: there is one database per server.
        let _ = self.store.set(store);
        Ok(())
    }

    /// The store, once [`AlwaysOn::open`] ran (a server that never opened one keeps nobody).
    pub fn store(&self) -> Option<Arc<dyn AlwaysOnStore>> {
        self.store.get().cloned()
    }

    /// Whether `account` (casefolded) stays present under `policy`.
    pub fn is_on(&self, policy: AlwaysOnPolicy, account: &str) -> bool {
        self.store.get().is_some()
            && match policy {
                AlwaysOnPolicy::Off => false,
                AlwaysOnPolicy::On => true,
                AlwaysOnPolicy::OptIn => self.opted_in.lock().contains(account),
            }
    }

    /// Whether `account` (casefolded) asked for it, whatever the policy.
    pub fn opted_in(&self, account: &str) -> bool {
        self.opted_in.lock().contains(account)
    }

    /// Record `account`'s choice, once the store has it.
    pub fn set_opted_in(&self, account: &str, on: bool) {
        let mut opted = self.opted_in.lock();
        if on {
            opted.insert(account.to_owned());
        } else {
            opted.remove(account);
        }
    }

    /// The detached presence of `account` (casefolded), if there is one.
    pub fn detached(&self, account: &str) -> Option<Detached> {
        self.detached.lock().get(account).copied()
    }

    pub fn set_detached(&self, account: &str, detached: Detached) {
        self.detached.lock().insert(account.to_owned(), detached);
    }

    /// Forget `account`'s detached presence, if it is still `id` (a login that took it over, or
    /// its end); returns whether it was.
    pub fn take_detached(&self, account: &str, id: ClientId) -> bool {
        let mut detached = self.detached.lock();
        if detached.get(account).is_some_and(|d| d.id == id) {
            detached.remove(account);
            true
        } else {
            false
        }
    }

    /// How many accounts are present with no session connected now.
    pub fn detached_count(&self) -> usize {
        self.detached.lock().len()
    }
}
