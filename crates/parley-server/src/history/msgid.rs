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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::testing::{over, Flaky};

    #[test]
    fn msgids_share_this_runs_prefix_and_increase() {
        let store = Arc::new(Flaky::default());
        let (history, _writer, _shutdown) = over(&store);
        let ids: Vec<String> = (0..3).map(|_| history.next_msgid()).collect();
        assert_eq!(
            ids[0].len(),
            18,
            "10 hex digits of prefix, 8 of counter: {ids:?}"
        );
        assert!(ids.iter().all(|id| id.starts_with(&history.boot)));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing: {ids:?}");
    }

    #[test]
    fn the_prefix_is_ten_hex_digits() {
        let first = super::boot_prefix();
        assert_eq!(first.len(), 10);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
