//! History: storing every channel and private message before anyone receives it, reading it back
//! for CHATHISTORY, replay on join and offline delivery, and the audit trail.
//!
//! One writer owns the writes, on a thread of its own (see [`run_on_own_thread`]). Connections
//! hand it an [`Outgoing`] message (its stored form plus whatever delivers it: the fan-out's
//! `Delivery`) and go on reading; the writer takes everything that queued up, commits it in one
//! transaction (group commit), and only then hands each message on and tells its sender. So a
//! message anyone has received is already in the database, and the disk is paid once per batch,
//! not once per message. Per-sender order holds because one writer takes messages in the order
//! they were queued, and a sender waits for its own (up to `connection::IN_FLIGHT` of them at
//! once) before anything that must come after them, such as a PART or a labeled reply;
//! everyone sees one global order because that single writer hands them on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::config::HistoryConfig;
use crate::outbound::HeldWakes;
/// The key of a private conversation: its format belongs to the store (see
/// `store::history::dm_key`), and handlers reach it here with the rest of history.
pub use crate::store::history::dm_key;
use crate::store::{
    AuditEvent, HistoryQuery, HistoryStore, StateChange, StoreError, StoredMessage, TargetActivity,
    WriteBatch,
};

/// Most messages one login takes from those that waited for it.
const OFFLINE_BATCH: usize = 1000;
/// Most jobs one group commit takes.
const MAX_BATCH: usize = 1024;
/// Jobs waiting for the writer; senders wait (only themselves) when it is full.
const QUEUE: usize = 8192;

/// A message on its way through the writer: stored first, then handed on. The fan-out above
/// implements it (`fanout::Delivery`); the writer only needs these two steps, in this order.
pub trait Outgoing: Send {
    /// The stored form of the message (taken once; `None` when it is not kept), and the
    /// casefolded account it waits for when its recipient is offline.
    fn take_stored(&mut self) -> Option<(StoredMessage, Option<String>)>;
    /// Deliver it, or hand it to whatever delivers it; wake-ups are left to `held`, so a group
    /// commit's messages reach each recipient in one write.
    fn hand_on(&mut self, held: &mut HeldWakes);
}

/// What a connection asked to read.
pub enum HistoryRequest {
    /// A CHATHISTORY query about one conversation.
    Query {
        subcommand: String,
        key: String,
        shown: String,
        query: HistoryQuery,
        limit: usize,
    },
    /// CHATHISTORY TARGETS: which of these conversations (key, shown) had messages in a window.
    Targets {
        keys: Vec<(String, String)>,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    },
    /// The last lines of a channel, for a client without chathistory that just joined.
    Replay {
        key: String,
        shown: String,
        limit: usize,
        /// When the user joined: only what was said before then, since what came after was
        /// delivered live (the read may run well after the join on a busy server).
        before_ms: i64,
    },
}

pub enum HistoryAnswer {
    Messages {
        request: HistoryRequest,
        result: Result<Vec<StoredMessage>, StoreError>,
    },
    Targets {
        keys: Vec<(String, String)>,
        result: Result<Vec<TargetActivity>, StoreError>,
    },
}

enum Job {
    Deliver(Box<dyn Outgoing>, oneshot::Sender<()>),
    State(StateChange),
}

/// How long an audit event may wait for the writer's next commit. Every login writes one, and a
/// commit of its own (with a wake of the writer's thread) cost a SCRAM login more than all its
/// hashing did; waiting a little lets a burst of logins share one commit. The event is in the
/// structured log at once either way.
const AUDIT_LINGER: std::time::Duration = std::time::Duration::from_millis(100);
/// Most audit events waiting for a commit; beyond that they are only in the log.
const AUDIT_QUEUE: usize = 65_536;

/// Audit events waiting for the writer, which takes them all with whatever it commits next, and
/// at the latest [`AUDIT_LINGER`] after the first of them arrived.
#[derive(Default)]
struct AuditQueue {
    events: parking_lot::Mutex<Vec<AuditEvent>>,
    /// Given when the queue stops being empty, so the writer sets its deadline; one wake per
    /// commit rather than per event.
    nudge: tokio::sync::Notify,
    /// Set while events are being dropped, so a stuck writer costs one error line, not one
    /// per event.
    overflowing: std::sync::atomic::AtomicBool,
}

impl AuditQueue {
    /// Queue `event`, or drop it when the queue is full (saying so once per run of drops).
    fn push(&self, event: AuditEvent) {
        let mut events = self.events.lock();
        if events.len() >= AUDIT_QUEUE {
            if !self.overflowing.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    action = event.action,
                    "audit queue full; events are only in the log until the writer catches up"
                );
            }
            return;
        }
        let first = events.is_empty();
        events.push(event);
        drop(events);
        if first {
            self.nudge.notify_one();
        }
    }

    fn take(&self) -> Vec<AuditEvent> {
        self.overflowing.store(false, Ordering::Relaxed);
        std::mem::take(&mut *self.events.lock())
    }
}

/// The accounts that messages wait for, when this process is the only one storing them (no
/// cluster): every login asks whether anything waits, nearly always nothing does, and a query
/// for that cost more than the rest of a SCRAM login's storage work. `None` (in a cluster, or
/// before [`History::track_offline`]) means ask the database.
///
/// Kept right without a lock around the database: the writer adds an account after the commit
/// that stored its message, and a login removes it before reading. A message committed
/// meanwhile is either in that read or puts the account back.
type Waiting = Arc<parking_lot::Mutex<Option<std::collections::HashSet<String>>>>;

/// What woke the writer.
enum Wake {
    Job(Job),
    /// Time to commit what waits: a retry after a failed write, or audit events due.
    Flush,
    /// The queue is closed and empty: commit what is left and stop.
    Closed,
}

/// How the writer is doing, published on every change so a failing database is visible (the
/// `parley_history_held` gauge, a notice to operators) and not only in the error log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterHealth {
    /// Messages accepted and delivered but not yet in the database.
    pub held: usize,
    /// The last write error while the database refuses writes; `None` when writes succeed.
    pub failing: Option<String>,
}

pub struct History {
    pub config: HistoryConfig,
    jobs: mpsc::Sender<Job>,
    audit: Arc<AuditQueue>,
    waiting: Waiting,
    reader: Arc<dyn HistoryStore>,
    health: watch::Receiver<WriterHealth>,
    /// Distinguishes this run's msgids from every other run's.
    boot: String,
    next: AtomicU64,
}

impl History {
    /// The service and its writer task (spawn the latter; it ends on `shutdown`).
    pub fn new(
        config: HistoryConfig,
        writer: Arc<dyn HistoryStore>,
        reader: Arc<dyn HistoryStore>,
        shutdown: CancellationToken,
    ) -> (History, impl std::future::Future<Output = ()>) {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let (health_tx, health) = watch::channel(WriterHealth::default());
        let seed = format!(
            "{}-{}-{:?}",
            std::process::id(),
            now_ms(),
            std::time::Instant::now()
        );
        let digest = Sha256::digest(seed.as_bytes());
        let boot = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
        let audit = Arc::<AuditQueue>::default();
        let waiting = Waiting::default();
        let history = History {
            config,
            jobs,
            audit: audit.clone(),
            waiting: waiting.clone(),
            reader,
            health,
            boot,
            next: AtomicU64::new(1),
        };
        (
            history,
            run_writer(writer, rx, audit, waiting, health_tx, shutdown),
        )
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The writer's state now, and (through `changed`) whenever it changes.
    pub fn health(&self) -> watch::Receiver<WriterHealth> {
        self.health.clone()
    }

    /// A new message id: this run's prefix and a counter, unique and increasing within the run.
    pub fn next_msgid(&self) -> String {
        format!(
            "{}{:08x}",
            self.boot,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Store (if history is on) and deliver; returns once delivered.
    pub async fn submit(&self, delivery: Box<dyn Outgoing>) {
        if let Some(delivered) = self.enqueue(delivery).await {
            let _ = delivered.await;
        }
    }

    /// Hand the message to the writer and return at once: the receiver resolves once it is
    /// stored and delivered (None: delivered already). The one writer keeps every sender's
    /// messages in order, so a sender may have several on their way (see `connection.rs`).
    pub async fn enqueue(&self, mut delivery: Box<dyn Outgoing>) -> Option<oneshot::Receiver<()>> {
        if !self.config.enabled {
            let _ = delivery.take_stored();
            delivery.hand_on(&mut HeldWakes::default());
            return None;
        }
        let (done, delivered) = oneshot::channel();
        match self.jobs.send(Job::Deliver(delivery, done)).await {
            Ok(()) => Some(delivered),
            // The writer is gone (shutting down): deliver unstored rather than drop.
            Err(mpsc::error::SendError(Job::Deliver(mut delivery, _))) => {
                delivery.hand_on(&mut HeldWakes::default());
                None
            }
            Err(_) => None,
        }
    }

    /// Record an audit event: in the structured log at once, in the database with the writer's
    /// next commit, at most [`AUDIT_LINGER`] later. `actor` is who acted (a nick, usually),
    /// `account` the account they were logged in to.
    pub fn audit(
        &self,
        action: &str,
        actor: Option<&str>,
        account: Option<&str>,
        target: Option<&str>,
        ip: Option<&str>,
        detail: Option<&str>,
    ) {
        tracing::info!(target: "audit", action, actor, account, target, ip, detail, "audit");
        let event = AuditEvent {
            time_ms: now_ms(),
            action: action.to_string(),
            actor: actor.map(str::to_string),
            account: account.map(str::to_string),
            target: target.map(str::to_string),
            ip: ip.map(str::to_string),
            detail: detail.map(str::to_string),
        };
        self.audit.push(event);
    }

    /// Persist a change to registered channels or server bans with the next commit.
    pub fn persist(&self, change: StateChange) {
        if self.jobs.try_send(Job::State(change)).is_err() {
            tracing::error!("state queue full; a channel or ban change was not saved");
        }
    }

    /// Run a read on the blocking pool.
    pub async fn fetch(&self, request: HistoryRequest) -> HistoryAnswer {
        let reader = self.reader.clone();
        match request {
            HistoryRequest::Targets {
                keys,
                from_ms,
                to_ms,
                limit,
            } => {
                let wanted: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
                let result = blocking(move || {
                    // `@dm:<party>` stands for all of that party's private conversations.
                    let mut lookup = Vec::new();
                    for key in wanted {
                        match key.strip_prefix("@dm:") {
                            Some(party) => lookup.extend(reader.conversations_of(party)?),
                            None => lookup.push(key),
                        }
                    }
                    reader.targets(&lookup, from_ms, to_ms, limit)
                })
                .await;
                HistoryAnswer::Targets { keys, result }
            }
            request => {
                let (key, query, limit) = match &request {
                    HistoryRequest::Query {
                        key, query, limit, ..
                    } => (key.clone(), query.clone(), *limit),
                    HistoryRequest::Replay {
                        key,
                        limit,
                        before_ms,
                        ..
                    } => (
                        key.clone(),
                        HistoryQuery::Before(crate::store::Bound::Time(*before_ms)),
                        *limit,
                    ),
                    HistoryRequest::Targets { .. } => unreachable!("handled above"),
                };
                let result = blocking(move || reader.query(&key, &query, limit)).await;
                HistoryAnswer::Messages { request, result }
            }
        }
    }

    /// Messages that waited for `account`, removed from the waiting list.
    pub async fn take_offline(&self, account: String) -> Result<Vec<StoredMessage>, StoreError> {
        if let Some(waiting) = self.waiting.lock().as_mut() {
            if !waiting.remove(&account) {
                return Ok(Vec::new());
            }
        }
        let reader = self.reader.clone();
        let folded = account.clone();
        let result = blocking(move || reader.take_offline(&folded, OFFLINE_BATCH)).await;
        // More may wait (a full batch), or the read failed: ask the database again next time.
        if !matches!(&result, Ok(rows) if rows.len() < OFFLINE_BATCH) {
            if let Some(waiting) = self.waiting.lock().as_mut() {
                waiting.insert(account);
            }
        }
        result
    }

    /// Answer "does anything wait for this account?" from memory from now on, starting from
    /// what the store holds. Only for a server that is the one writer of its database, before
    /// its writer starts; see [`Waiting`].
    pub fn track_offline(&self) -> Result<(), StoreError> {
        let accounts = self.reader.offline_accounts()?;
        *self.waiting.lock() = Some(accounts.into_iter().collect());
        Ok(())
    }

    /// Apply the retention limits once.
    pub async fn prune(&self) -> Result<usize, StoreError> {
        let reader = self.reader.clone();
        let cutoff = (self.config.max_age_days > 0).then(|| {
            let days = i64::try_from(self.config.max_age_days).unwrap_or(i64::MAX / 86_400_000);
            now_ms().saturating_sub(days.saturating_mul(86_400_000))
        });
        let max_rows =
            (self.config.max_rows_per_target > 0).then_some(self.config.max_rows_per_target);
        if cutoff.is_none() && max_rows.is_none() {
            return Ok(0);
        }
        blocking(move || reader.prune(cutoff, max_rows)).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(StoreError::Backend(format!("history task failed: {e}"))))
}

/// Who someone is in private history: their account, or `~nick` for a guest.
pub fn party(account: Option<&str>, nick: &str) -> String {
    match account {
        Some(account) => parley_proto::casefold(account),
        None => format!("~{}", parley_proto::casefold(nick)),
    }
}

/// Unstored messages kept while the database refuses writes; past this the oldest are dropped
/// (and counted, loudly), so a long outage cannot eat all memory.
const MAX_BACKLOG: usize = 200_000;
/// How often a failing database is retried while nothing new arrives.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// While the database keeps failing, how often the error is logged again (with what is held):
/// once per failed batch would flood the log, which may well sit on the same full disk.
const REPEAT_ERROR_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Retries left for a backlog once shutdown starts: the process is about to exit, so waiting
/// longer for the database only delays that (and the loop must end).
const RETRIES_AT_SHUTDOWN: u32 = 4;

/// Append `more` to `backlog`, keeping the order in which things were accepted.
fn merge(backlog: &mut WriteBatch, more: WriteBatch) {
    backlog.messages.extend(more.messages);
    backlog.offline.extend(more.offline);
    backlog.audit.extend(more.audit);
    backlog.state.extend(more.state);
    let excess = backlog.audit.len().saturating_sub(AUDIT_QUEUE);
    if excess > 0 {
        backlog.audit.drain(..excess);
        tracing::error!(
            lost = excess,
            "audit backlog full while the database is failing; oldest events are only in the log"
        );
    }
    let excess = backlog.messages.len().saturating_sub(MAX_BACKLOG);
    if excess > 0 {
        let dropped: Vec<String> = backlog.messages.drain(..excess).map(|m| m.msgid).collect();
        backlog
            .offline
            .retain(|(_, msgid)| !dropped.contains(msgid));
        tracing::error!(
            lost = excess,
            "history backlog full while the database is failing; oldest messages dropped"
        );
    }
}

async fn run_writer(
    store: Arc<dyn HistoryStore>,
    mut rx: mpsc::Receiver<Job>,
    audit: Arc<AuditQueue>,
    waiting: Waiting,
    health: watch::Sender<WriterHealth>,
    shutdown: CancellationToken,
) {
    // What could not be written yet: retried before anything newer, so order holds.
    let mut backlog = WriteBatch::default();
    let mut failing_since: Option<std::time::Instant> = None;
    let mut error_logged = std::time::Instant::now();
    let mut retries_at_shutdown = RETRIES_AT_SHUTDOWN;
    // When the audit events waiting now must be committed, if nothing else commits first.
    let mut audit_due: Option<tokio::time::Instant> = None;
    loop {
        let wake = if !backlog.is_empty() && shutdown.is_cancelled() {
            // Shutting down with the database refusing writes: drain what is queued (it still
            // gets delivered), retry a few times, then give up and say what is lost.
            rx.close();
            match rx.try_recv() {
                Ok(job) => Wake::Job(job),
                Err(_) if retries_at_shutdown == 0 => {
                    tracing::error!(
                        lost = backlog.messages.len(),
                        "shutting down while the history database still refuses writes; \
                         the held messages were delivered but are not stored"
                    );
                    return;
                }
                Err(_) => {
                    retries_at_shutdown -= 1;
                    tokio::time::sleep(RETRY_EVERY).await;
                    Wake::Flush
                }
            }
        } else if backlog.is_empty() {
            let due = audit_due.unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                job = rx.recv() => job.map_or(Wake::Closed, Wake::Job),
                _ = audit.nudge.notified(), if audit_due.is_none() => {
                    audit_due = Some(tokio::time::Instant::now() + AUDIT_LINGER);
                    continue;
                }
                _ = tokio::time::sleep_until(due), if audit_due.is_some() => Wake::Flush,
                _ = shutdown.cancelled() => {
                    // Whatever is already queued still gets stored and delivered.
                    rx.close();
                    rx.recv().await.map_or(Wake::Closed, Wake::Job)
                }
            }
        } else {
            tokio::select! {
                job = rx.recv() => job.map_or(Wake::Closed, Wake::Job),
                _ = tokio::time::sleep(RETRY_EVERY) => Wake::Flush,
                _ = shutdown.cancelled() => {
                    rx.close();
                    rx.recv().await.map_or(Wake::Closed, Wake::Job)
                }
            }
        };
        let (mut jobs, closed) = match wake {
            Wake::Job(job) => (vec![job], false),
            Wake::Flush => (Vec::new(), false),
            Wake::Closed => (Vec::new(), true),
        };
        while !jobs.is_empty() && jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut batch = WriteBatch {
            audit: audit.take(),
            ..WriteBatch::default()
        };
        audit_due = None;
        for job in &mut jobs {
            match job {
                Job::Deliver(delivery, _) => {
                    if let Some((message, offline_for)) = delivery.take_stored() {
                        if let Some(account) = offline_for {
                            batch.offline.push((account, message.msgid.clone()));
                        }
                        batch.messages.push(message);
                    }
                }
                Job::State(change) => batch.state.push(change.clone()),
            }
        }
        if jobs.is_empty() && backlog.is_empty() && batch.is_empty() {
            if closed {
                return;
            }
            continue;
        }
        merge(&mut backlog, batch);
        // Written right here: the writer runs on a thread of its own (see `run_on_own_thread`),
        // so blocking on the database stalls nobody else, and a message costs no hop to a
        // blocking-pool thread and back before its fan-out.
        let pending = std::mem::take(&mut backlog);
        let started = std::time::Instant::now();
        let result = store.write(&pending);
        let rows = pending.messages.len() + pending.audit.len() + pending.state.len();
        crate::metrics::record_store_write(started.elapsed(), rows);
        let failing = result.as_ref().err().map(|err| err.to_string());
        match result {
            Ok(()) => {
                if let Some(waiting) = waiting.lock().as_mut() {
                    waiting.extend(pending.offline.iter().map(|(account, _)| account.clone()));
                }
                if let Some(since) = failing_since.take() {
                    tracing::warn!(
                        outage_secs = since.elapsed().as_secs(),
                        stored = pending.messages.len(),
                        "history database writable again; everything held back is stored"
                    );
                }
            }
            Err(err) => {
                // Keep chatting, keep what was accepted, and say so loudly.
                match failing_since {
                    None => {
                        failing_since = Some(std::time::Instant::now());
                        error_logged = std::time::Instant::now();
                        tracing::error!(%err, held = pending.messages.len(), "history write failed; delivering and holding messages until the database recovers");
                    }
                    Some(since) if error_logged.elapsed() >= REPEAT_ERROR_EVERY => {
                        error_logged = std::time::Instant::now();
                        tracing::error!(%err, held = pending.messages.len(), outage_secs = since.elapsed().as_secs(), "history writes still failing; delivering and holding messages");
                    }
                    Some(_) => {}
                }
                crate::metrics::record_history_write_failure();
                backlog = pending;
            }
        }
        let now = WriterHealth {
            held: backlog.messages.len(),
            failing,
        };
        health.send_if_modified(|current| {
            let changed = *current != now;
            *current = now;
            changed
        });
        let mut held = HeldWakes::default();
        for job in &mut jobs {
            if let Job::Deliver(delivery, _) = job {
                delivery.hand_on(&mut held);
            }
        }
        drop(held);
        for job in jobs {
            if let Job::Deliver(_, done) = job {
                let _ = done.send(());
            }
        }
    }
}

/// Run the writer (from [`History::new`]) on a thread of its own with a one-thread runtime, and
/// return when it ends. Its commits block that thread only. It was a task that sent each commit
/// to the blocking pool and back: a profile of fan-out 1x1000x5 at 100 msg/s found SQLite under
/// 1% of the samples and one more context switch per message, and parleyd's p99 there was above
/// ngIRCd's; on its own thread it was below in every paired run (BENCHMARKS.md, Targets).
pub async fn run_on_own_thread(writer: impl std::future::Future<Output = ()> + Send + 'static) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .thread_name("history-writer")
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "no runtime for the history writer's thread; running it as a task");
            writer.await;
            return;
        }
    };
    let thread = tokio::task::spawn_blocking(move || runtime.block_on(writer));
    if let Err(err) = thread.await {
        tracing::error!(%err, "the history writer's thread failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Outbound;
    use crate::store::{AuditFilter, TargetActivity};
    use parking_lot::Mutex;

    /// A store whose writes fail while `broken` is set, recording what it stored.
    #[derive(Default)]
    struct Flaky {
        broken: std::sync::atomic::AtomicBool,
        stored: Mutex<Vec<String>>,
        /// The actions of the audit events stored, and how many commits stored any.
        audited: Mutex<Vec<String>>,
        audit_commits: AtomicU64,
        /// How many commits stored messages.
        message_commits: AtomicU64,
        /// While set, a commit with messages waits inside `write` (with `holding` set), as a
        /// slow disk would, so a test can queue more behind it.
        hold: std::sync::atomic::AtomicBool,
        holding: std::sync::atomic::AtomicBool,
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
        fn query(
            &self,
            _: &str,
            _: &HistoryQuery,
            _: usize,
        ) -> Result<Vec<StoredMessage>, StoreError> {
            Ok(Vec::new())
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
    fn over(
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

    fn delivery(history: &History, text: &str, to: &Arc<Outbound>) -> Box<dyn Outgoing> {
        let message = StoredMessage {
            msgid: history.next_msgid(),
            time_ms: now_ms(),
            target: "#t".into(),
            kind: "PRIVMSG".into(),
            source: "a!b@c".into(),
            account: None,
            to: "#t".into(),
            text: text.into(),
        };
        Box::new(Message {
            stored: Some(message),
            to: to.clone(),
        })
    }

    #[tokio::test]
    async fn a_failing_database_delays_storing_but_loses_nothing() {
        let store = Arc::new(Flaky::default());
        store.broken.store(true, Ordering::SeqCst);
        let (history, writer, shutdown) = over(&store);
        let task = tokio::spawn(writer);
        let recipient = Arc::new(Outbound::new(1 << 20));
        for text in ["one", "two"] {
            tokio::time::timeout(
                std::time::Duration::from_secs(5),
                history.submit(delivery(&history, text, &recipient)),
            )
            .await
            .expect("delivered even while the database fails");
        }
        assert!(store.stored.lock().is_empty());
        store.broken.store(false, Ordering::SeqCst);
        history
            .submit(delivery(&history, "three", &recipient))
            .await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while store.stored.lock().len() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            *store.stored.lock(),
            ["one", "two", "three"],
            "stored in order once writable"
        );
        shutdown.cancel();
        drop(history);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }

    #[tokio::test]
    async fn shutdown_ends_the_writer_even_while_the_database_fails() {
        let store = Arc::new(Flaky::default());
        store.broken.store(true, Ordering::SeqCst);
        let (history, writer, shutdown) = over(&store);
        let mut health = history.health();
        let task = tokio::spawn(writer);
        let recipient = Arc::new(Outbound::new(1 << 20));
        history.submit(delivery(&history, "held", &recipient)).await;
        let now = health.borrow_and_update().clone();
        assert_eq!(now.held, 1, "{now:?}");
        assert!(now.failing.is_some_and(|err| err.contains("disk full")));
        shutdown.cancel();
        // A few retries, then it gives up (and says so) instead of spinning forever.
        tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .expect("the writer ends at shutdown")
            .expect("the writer did not panic");
        assert!(store.stored.lock().is_empty());
    }

    /// Group commit: messages that queue while a commit is on the disk all go in the next one,
    /// counted in commits, not in time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_queued_during_a_commit_share_the_next_one() {
        let store = Arc::new(Flaky::default());
        store.hold.store(true, Ordering::SeqCst);
        let (history, writer, shutdown) = over(&store);
        let task = tokio::spawn(writer);
        let recipient = Arc::new(Outbound::new(1 << 20));
        let first = history
            .enqueue(delivery(&history, "first", &recipient))
            .await
            .expect("queued");
        // The bound only keeps a writer that never commits from hanging the test.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !store.holding.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer never began its first commit"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let mut queued = Vec::new();
        for n in 0..20 {
            let text = format!("queued {n}");
            queued.push(
                history
                    .enqueue(delivery(&history, &text, &recipient))
                    .await
                    .expect("queued"),
            );
        }
        store.hold.store(false, Ordering::SeqCst);
        first.await.expect("first delivered");
        for delivered in queued {
            delivered.await.expect("delivered");
        }
        let expected: Vec<String> = std::iter::once("first".to_string())
            .chain((0..20).map(|n| format!("queued {n}")))
            .collect();
        assert_eq!(*store.stored.lock(), expected, "all stored, in order");
        assert_eq!(
            store.message_commits.load(Ordering::SeqCst),
            2,
            "the 20 that queued behind the first commit share the second"
        );
        shutdown.cancel();
        drop(history);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }

    #[tokio::test]
    async fn audit_events_share_commits_and_are_stored_with_nothing_else_to_commit() {
        let store = Arc::new(Flaky::default());
        let (history, writer, shutdown) = over(&store);
        let task = tokio::spawn(writer);
        for n in 0..500 {
            history.audit(
                "login",
                Some(&format!("a{n}")),
                None,
                None,
                Some("127.0.0.1"),
                None,
            );
        }
        // They are stored once the linger runs out. The deadline only keeps a broken writer from
        // hanging the test: the loop ends as soon as all 500 are in.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.audited.lock().len() < 500 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            store.audited.lock().len(),
            500,
            "all stored, with nothing else to commit"
        );
        // A burst shares commits. How many depends on where the writer's thread wakes during the
        // burst (a stalled machine may split it), so the claim is "fewer than one each", not a
        // count per time window.
        let commits = store.audit_commits.load(Ordering::SeqCst);
        assert!(
            (1..500).contains(&commits),
            "a burst of 500 shares its commits, not one each: {commits}"
        );

        // Stored by the time a message behind it is delivered.
        history.audit("kick", Some("op"), None, Some("victim"), None, None);
        let recipient = Arc::new(Outbound::new(1 << 20));
        history
            .submit(delivery(&history, "hello", &recipient))
            .await;
        assert_eq!(
            store.audited.lock().last().map(String::as_str),
            Some("kick")
        );

        // Shutdown stores what is still waiting.
        history.audit("oper_up", Some("root"), None, None, None, None);
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the writer ends at shutdown")
            .expect("the writer did not panic");
        assert_eq!(
            store.audited.lock().last().map(String::as_str),
            Some("oper_up")
        );
    }
}
