//! Nick claims that end with their connection. A claim in the `<prefix>_nicks` bucket is held
//! by a user's uid until it is released; one left behind keeps a nick from everyone (its owner
//! too) until the node dies. So a claim whose answer never reached the connection (killed or
//! shut down mid-claim, or timed out while the bus was slow) is undone at once, and the
//! releases a connection makes while it lives are awaited in its order, so its next claim of
//! the same nick cannot be deleted by a release still on its way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{nick_key, Cluster};

/// Longest a connection waits for the bus to drop a claim it gives back. Past it the release
/// goes on in the background (compared with the holder, so it never drops a newer claim).
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Undoes a claim in the background unless [`ClaimGuard::settle`] says its outcome is known:
/// a future dropped between sending the claim and reading the answer (its connection was
/// killed) may still have taken the nick.
pub(super) struct ClaimGuard {
    armed: Option<(Arc<Cluster>, String, Bytes)>,
}

impl ClaimGuard {
    pub(super) fn new(cluster: &Arc<Cluster>, key: &str, uid: &Bytes) -> Self {
        ClaimGuard {
            armed: Some((cluster.clone(), key.to_string(), uid.clone())),
        }
    }

    /// The claim's outcome is known (held, taken by another, or undone): nothing to undo.
    pub(super) fn settle(mut self) {
        self.armed = None;
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        let Some((cluster, key, uid)) = self.armed.take() else {
            return;
        };
        // Dropped outside a runtime only at process exit, when the node's lease frees it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                cluster
                    .release_if_held(&key, |holder| holder == uid.as_ref())
                    .await;
            });
        }
    }
}

impl Cluster {
    /// Give a nick back if `uid` still holds it, and wait (bounded) until the bus has it: the
    /// connection's next claim, of this nick too, comes after it.
    pub async fn release_now(self: &Arc<Self>, folded: &str, uid: &str) {
        if folded.is_empty() {
            return;
        }
        let key = nick_key(folded);
        let release = self.release_if_held(&key, |holder| holder == uid.as_bytes());
        if tokio::time::timeout(RELEASE_WAIT, release).await.is_err() {
            tracing::warn!("nick release: the bus is slow; releasing in the background");
            self.release(folded, uid);
        }
    }

    /// Undo a claim whose answer did not come: it may have landed after all.
    pub(super) async fn undo_claim(&self, key: &str, uid: &[u8]) {
        let undo = self.release_if_held(key, |holder| holder == uid);
        if tokio::time::timeout(RELEASE_WAIT, undo).await.is_err() {
            tracing::warn!(
                "nick claim: could not undo an unanswered claim; it stays until this node restarts or its lease runs out"
            );
        }
    }
}
