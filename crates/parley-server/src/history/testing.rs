//! A store whose writes can fail or stall, and a message to write, for the unit tests of the
//! writer, the audit queue and msgids: they test the writer's own logic without a database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::{History, Outgoing};
use crate::clock::now_ms;
use crate::config::HistoryConfig;
use crate::outbound::{HeldWakes, Outbound};
use crate::store::{
    AuditFilter, HistoryQuery, HistoryStore, StoreError, StoredMessage, TargetActivity, WriteBatch,
};

/// A store whose writes fail while `broken` is set, recording what it stored.
#[derive(Default)]
pub(super) struct Flaky {
    pub(super) broken: std::sync::atomic::AtomicBool,
    pub(super) stored: Mutex<Vec<String>>,
    /// The actions of the audit events stored, and how many commits stored any.
    pub(super) audited: Mutex<Vec<String>>,
    pub(super) audit_commits: AtomicU64,
    /// How many commits stored messages.
    pub(super) message_commits: AtomicU64,
    /// While set, a commit with messages waits inside `write` (with `holding` set), as a
    /// slow disk would, so a test can queue more behind it.
    pub(super) hold: std::sync::atomic::AtomicBool,
    pub(super) holding: std::sync::atomic::AtomicBool,
    /// While set, a sender may commit its own message (`write_if_free` writes as `write`
    /// does); otherwise everything goes through the writer.
    pub(super) free: std::sync::atomic::AtomicBool,
}

impl HistoryStore for Flaky {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("disk full".into()));
        }
        if !batch.messages.is_empty() {
            while self.hold.load(Ordering::SeqCst) {
                self.holding.store(true, Ordering::SeqCst);
                // The writer's own thread, held on purpose: a poll of the test's flag.
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            self.message_commits.fetch_add(1, Ordering::SeqCst);
        }
        self.stored
            .lock()
            .extend(batch.messages.iter().map(|m| m.text.clone()));
        if !batch.audit.is_empty() {
            self.audit_commits.fetch_add(1, Ordering::SeqCst);
            self.audited
                .lock()
                .extend(batch.audit.iter().map(|e| e.action.clone()));
        }
        Ok(())
    }
    fn write_if_free(&self, batch: &WriteBatch) -> Result<bool, StoreError> {
        if !self.free.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.write(batch).map(|()| true)
    }
    fn query_for(
        &self,
        _: &str,
        _: &HistoryQuery,
        _: usize,
        _: bool,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(Vec::new())
    }
    fn message(&self, _: &str, _: &str) -> Result<Option<StoredMessage>, StoreError> {
        Ok(None)
    }
    fn delete_message(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn targets(
        &self,
        _: &[String],
        _: i64,
        _: i64,
        _: usize,
    ) -> Result<Vec<TargetActivity>, StoreError> {
        Ok(Vec::new())
    }
    fn conversations_of(&self, _: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    fn take_offline(&self, _: &str, _: usize) -> Result<Vec<StoredMessage>, StoreError> {
        Ok(Vec::new())
    }
    fn offline_accounts(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    fn prune(&self, _: Option<i64>, _: Option<usize>) -> Result<usize, StoreError> {
        Ok(0)
    }
    fn audit(&self, _: &AuditFilter) -> Result<Vec<crate::store::AuditEvent>, StoreError> {
        Ok(Vec::new())
    }
}

/// History on `store` (for both writing and reading), its writer, and the shutdown token.
pub(super) fn over(
    store: &Arc<Flaky>,
) -> (
    History,
    impl std::future::Future<Output = ()>,
    CancellationToken,
) {
    let shutdown = CancellationToken::new();
    let (history, writer) = History::new(
        HistoryConfig::default(),
        store.clone(),
        store.clone(),
        shutdown.clone(),
    );
    (history, writer, shutdown)
}

/// A message for the writer that, once handed on, queues its text for `to` (the fan-out's
/// own delivery is tested in `fanout`).
struct Message {
    stored: Option<StoredMessage>,
    to: Arc<Outbound>,
}

impl Outgoing for Message {
    fn take_stored(&mut self) -> Option<(StoredMessage, Option<String>)> {
        self.stored.take().map(|message| (message, None))
    }

    fn hand_on(&mut self, held: &mut HeldWakes) {
        let _ = self.to.push_held(b"PRIVMSG #t :delivered\r\n", held);
    }
}

/// A channel message saying `text`, with this run's next msgid.
pub(super) fn stored_message(history: &History, text: &str) -> StoredMessage {
    StoredMessage {
        msgid: history.next_msgid(),
        time_ms: now_ms(),
        target: "#t".into(),
        kind: "PRIVMSG".into(),
        source: "a!b@c".into(),
        account: None,
        to: "#t".into(),
        text: text.into(),
        tags: String::new(),
    }
}

pub(super) fn delivery(history: &History, text: &str, to: &Arc<Outbound>) -> Box<dyn Outgoing> {
    Box::new(Message {
        stored: Some(stored_message(history, text)),
        to: to.clone(),
    })
}

/// Shut the writer down and wait (a bounded while) for it to end.
pub(super) async fn finish(
    history: History,
    shutdown: &CancellationToken,
    task: tokio::task::JoinHandle<()>,
) {
    shutdown.cancel();
    drop(history);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
}
