//! Message ids: a prefix for this run (a hash of the process id and the time it started) and a
//! counter, so ids are unique across runs and increase within one without asking the database.

use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::History;
use crate::clock::now_ms;

/// This run's prefix for msgids: 10 hex digits that another run will not share.
pub(super) fn boot_prefix() -> String {
    let seed = format!(
        "{}-{}-{:?}",
        std::process::id(),
        now_ms(),
        std::time::Instant::now()
    );
    let digest = Sha256::digest(seed.as_bytes());
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

impl History {
    /// A new message id: this run's prefix and a counter, unique and increasing within the run.
    pub fn next_msgid(&self) -> String {
        format!(
            "{}{:08x}",
            self.boot,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}
