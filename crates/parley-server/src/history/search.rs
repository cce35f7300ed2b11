//! SEARCH reads: run against the reading store on the blocking pool, at most
//! `search.max_concurrent` at once on the whole server, so searches (the costliest reads a client
//! can ask for) can never take every blocking thread or queue without bound behind the database.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use super::History;
use crate::store::search::{SearchError, SearchQuery};
use crate::store::{StoreError, StoredMessage};

/// The server's search slots, made at the first search (their count is in `[search]`, which
/// the history service is not built with).
#[derive(Default)]
pub struct SearchSlots(OnceLock<Semaphore>);

impl History {
    /// Run `query`, waiting for one of `slots` search slots first.
    pub async fn search(
        &self,
        query: SearchQuery,
        slots: usize,
    ) -> Result<Vec<StoredMessage>, SearchError> {
        let semaphore = self.searches.0.get_or_init(|| Semaphore::new(slots.max(1)));
        let _slot = semaphore
            .acquire()
            .await
            .map_err(|_| StoreError::Backend("search slots closed".into()))?;
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || reader.search(&query))
            .await
            .unwrap_or_else(|e| Err(StoreError::Backend(format!("search task failed: {e}")).into()))
    }
}
