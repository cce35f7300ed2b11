//! The writer: the queue of messages (and channel and ban changes) on their way out, the group
//! commit on a thread of its own, handing each message on after its commit, and the writer's
//! health while the database refuses writes.
//!
//! One writer owns the writes, on a thread of its own (see [`run_on_own_thread`]). Connections
//! hand it an [`Outgoing`] message (its stored form plus whatever delivers it: the fan-out's
//! `Delivery`) and go on reading; the writer takes everything that queued up, commits it in one
//! transaction (group commit), and only then hands each message on and tells its sender. So a
//! message anyone has received is already in the database, and the disk is paid once per batch,
//! not once per message. Per-sender order holds because one writer takes messages in the order
//! they were queued, and a sender waits for its own (up to `connection::IN_FLIGHT` of them at
//! once) before anything that must come after them, such as a PART or a labeled reply;
//! everyone sees one global order because one committer at a time hands them on.
//!
//! A sender that finds the writer idle (nothing queued, nothing held back, the database free)
//! commits its own message at once and hands it on itself ([`History::enqueue`] returns
//! `None`): a quiet conversation then wakes no thread on the way, which was about half of a
//! private message's round trip (BENCHMARKS.md, issue 27 target 2). [`Turn`] keeps that safe:
//! whoever commits holds its slot through the hand-on, and a sender commits itself only while
//! no job waits for the writer, so nothing it sent earlier is still on its way. Under load
//! senders find the slot taken or jobs queued, and everything goes through the group commit.
//!
//! When the database refuses writes, chat goes on: messages are delivered and held (up to
//! [`MAX_BACKLOG`]), retried before anything newer so order holds, and [`WriterHealth`] says so.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::audit::{AuditQueue, AUDIT_LINGER, AUDIT_QUEUE};
use super::offline::Waiting;
use super::History;
use crate::outbound::HeldWakes;
use crate::store::{HistoryStore, StateChange, StoredMessage, WriteBatch};

/// Most jobs one group commit takes.
const MAX_BATCH: usize = 1024;
/// Jobs waiting for the writer; senders wait (only themselves) when it is full.
pub(super) const QUEUE: usize = 8192;

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

pub(super) enum Job {
    Deliver(Box<dyn Outgoing>, oneshot::Sender<()>),
    State(StateChange),
}

/// A sender commits its own message only while messages arrive at under [`QUIET_RATE`] per
/// [`RATE_WINDOW`] (this window and the last). Past that the writer's batches would hold more
/// than one message, and a commit of one costs three times a message's share of a commit of 64
/// (BENCHMARKS.md, "Storing a message"). Measured: with no such bound, 7% of a flat-out fan-out's
/// messages (50 channels) were committed one by one on the connections' threads and its rate
/// fell by 10%; a bound on the time since the last commit instead (100 or 250 us) sent nearly
/// every message of ten quiet conversations back through the writer.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_millis(4);
/// 32 per 4 ms: 8,000 messages a second.
const QUIET_RATE: u32 = 32;

/// Who commits and hands on next: the writer's thread, or a sender that found it idle.
pub(crate) struct Turn {
    /// Held from a commit to the end of its hand-on, so two committers never interleave their
    /// deliveries (everyone sees one order); a sender only ever tries it, never waits.
    slot: Mutex<()>,
    /// Jobs sent to the writer and not yet handed on, plus one while it holds a backlog the
    /// database refused: a sender commits itself only when this is zero.
    pending: AtomicUsize,
    /// The arrival rate: which [`RATE_WINDOW`] since `epoch` is being counted, the messages
    /// counted in it, and in the one before (a heuristic: racing updates may lose a count).
    window: AtomicU64,
    in_window: AtomicU32,
    in_last_window: AtomicU32,
    epoch: std::time::Instant,
}

impl Default for Turn {
    fn default() -> Self {
        Turn {
            slot: Mutex::new(()),
            pending: AtomicUsize::new(0),
            window: AtomicU64::new(0),
            in_window: AtomicU32::new(0),
            in_last_window: AtomicU32::new(0),
            epoch: std::time::Instant::now(),
        }
    }
}

impl Turn {
    /// Count a message arriving now; whether arrivals are slow enough for a sender to commit
    /// its own.
    fn arrived_quietly(&self) -> bool {
        let window = u64::try_from(self.epoch.elapsed().as_micros() / RATE_WINDOW.as_micros())
            .unwrap_or(u64::MAX);
        self.arrived_in(window)
    }

    /// [`arrived_quietly`](Self::arrived_quietly), in the window given.
    fn arrived_in(&self, window: u64) -> bool {
        let counting = self.window.load(Ordering::Relaxed);
        if window != counting
            && self
                .window
                .compare_exchange(counting, window, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let counted = self.in_window.swap(0, Ordering::Relaxed);
            let last = if window == counting + 1 { counted } else { 0 };
            self.in_last_window.store(last, Ordering::Relaxed);
        }
        let now = self.in_window.fetch_add(1, Ordering::Relaxed) + 1;
        now <= QUIET_RATE && self.in_last_window.load(Ordering::Relaxed) <= QUIET_RATE
    }
}

/// One job counted in [`Turn::pending`] until it is known to be in the queue: dropped without
/// [`keep`](Counted::keep), it takes its count back.
struct Counted<'a>(Option<&'a AtomicUsize>);

impl<'a> Counted<'a> {
    fn new(pending: &'a AtomicUsize) -> Self {
        pending.fetch_add(1, Ordering::SeqCst);
        Counted(Some(pending))
    }

    /// The job is queued: the writer takes the count back after its hand-on.
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if let Some(pending) = self.0 {
            pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// A message whose stored form was taken for a commit of its sender's own that did not happen:
/// the writer gets it back as it was.
struct Untaken {
    stored: Option<(StoredMessage, Option<String>)>,
    delivery: Box<dyn Outgoing>,
}

impl Outgoing for Untaken {
    fn take_stored(&mut self) -> Option<(StoredMessage, Option<String>)> {
        self.stored.take()
    }

    fn hand_on(&mut self, held: &mut HeldWakes) {
        self.delivery.hand_on(held);
    }
}

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

impl History {
    /// The writer's state now, and (through `changed`) whenever it changes.
    pub fn health(&self) -> watch::Receiver<WriterHealth> {
        self.health.clone()
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
        let delivery = match self.commit_now(delivery) {
            Ok(()) => return None,
            Err(delivery) => delivery,
        };
        let (done, delivered) = oneshot::channel();
        // Counted before it is sent, so no sender commits ahead of it from then on; uncounted
        // again unless it reaches the queue (the send waits while the queue is full, and a
        // connection that is killed meanwhile drops this future).
        let counted = Counted::new(&self.turn.pending);
        match self.jobs.send(Job::Deliver(delivery, done)).await {
            Ok(()) => {
                counted.keep();
                Some(delivered)
            }
            // The writer is gone (shutting down): deliver unstored rather than drop.
            Err(mpsc::error::SendError(Job::Deliver(mut delivery, _))) => {
                delivery.hand_on(&mut HeldWakes::default());
                None
            }
            Err(_) => None,
        }
    }

    /// Commit `delivery` and hand it on here and now, if the writer is idle and the store can
    /// write without waiting; otherwise give it back, as it was, for the writer's queue.
    fn commit_now(&self, mut delivery: Box<dyn Outgoing>) -> Result<(), Box<dyn Outgoing>> {
        if !self.turn.arrived_quietly() || self.shutdown.is_cancelled() {
            return Err(delivery);
        }
        let Some(_turn) = self.turn.slot.try_lock() else {
            return Err(delivery);
        };
        if self.turn.pending.load(Ordering::SeqCst) != 0 {
            return Err(delivery);
        }
        if let Some((message, offline_for)) = delivery.take_stored() {
            let mut batch = WriteBatch::default();
            if let Some(account) = offline_for {
                batch.offline.push((account, message.msgid.clone()));
            }
            batch.messages.push(message);
            let started = std::time::Instant::now();
            match self.writer.write_if_free(&batch) {
                Ok(true) => {
                    crate::metrics::record_store_write(started.elapsed(), 1);
                    if let Some(waiting) = self.waiting.lock().as_mut() {
                        waiting.extend(batch.offline.iter().map(|(account, _)| account.clone()));
                    }
                }
                result => {
                    // The writer retries it, and reports (and holds) if the database fails.
                    if let Err(err) = result {
                        tracing::debug!(%err, "a sender's own commit failed; the writer takes it");
                    }
                    let offline_for = batch.offline.pop().map(|(account, _)| account);
                    let stored = batch.messages.pop().map(|message| (message, offline_for));
                    return Err(Box::new(Untaken { stored, delivery }));
                }
            }
        }
        delivery.hand_on(&mut HeldWakes::default());
        Ok(())
    }

    /// Persist a change to registered channels or server bans with the next commit.
    pub fn persist(&self, change: StateChange) {
        let counted = Counted::new(&self.turn.pending);
        match self.jobs.try_send(Job::State(change)) {
            Ok(()) => counted.keep(),
            Err(_) => tracing::error!("state queue full; a channel or ban change was not saved"),
        }
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

pub(super) async fn run_writer(
    store: Arc<dyn HistoryStore>,
    mut rx: mpsc::Receiver<Job>,
    turn: Arc<Turn>,
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
    // Every sender is gone (the server was dropped without a shutdown, as a test's runtime
    // does): from then on a failing database is retried as at shutdown, a few times with a
    // pause, never in a tight loop on the closed channel.
    let mut senders_gone = false;
    // When the audit events waiting now must be committed, if nothing else commits first.
    let mut audit_due: Option<tokio::time::Instant> = None;
    // Whether `turn.pending` counts the backlog (one, however long it is).
    let mut backlog_counted = false;
    loop {
        let wake = if !backlog.is_empty() && (shutdown.is_cancelled() || senders_gone) {
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
        senders_gone |= closed;
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
        // Nobody else commits or hands on from here to the end of this batch's hand-on. A
        // sender holds it only for its one message's commit, and never while jobs wait.
        let turn_taken = turn.slot.lock();
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
        // The backlog's count first, so `pending` never shows zero while it is held.
        let held_back = !backlog.is_empty();
        if held_back != backlog_counted {
            backlog_counted = held_back;
            if held_back {
                turn.pending.fetch_add(1, Ordering::SeqCst);
            } else {
                turn.pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
        turn.pending.fetch_sub(jobs.len(), Ordering::SeqCst);
        drop(turn_taken);
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
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use super::super::testing::{delivery, finish, over, stored_message, Flaky};
    use crate::outbound::Outbound;

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
        finish(history, &shutdown, task).await;
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

    /// A message that, once handed on, records its text in `delivered`: the order everyone
    /// sees.
    struct Recorded {
        stored: Option<crate::store::StoredMessage>,
        text: String,
        delivered: Arc<parking_lot::Mutex<Vec<String>>>,
    }

    impl super::Outgoing for Recorded {
        fn take_stored(&mut self) -> Option<(crate::store::StoredMessage, Option<String>)> {
            self.stored.take().map(|message| (message, None))
        }

        fn hand_on(&mut self, _: &mut crate::outbound::HeldWakes) {
            self.delivered.lock().push(self.text.clone());
        }
    }

    fn recorded(
        history: &super::History,
        text: &str,
        delivered: &Arc<parking_lot::Mutex<Vec<String>>>,
    ) -> Box<dyn super::Outgoing> {
        Box::new(Recorded {
            stored: Some(stored_message(history, text)),
            text: text.into(),
            delivered: delivered.clone(),
        })
    }

    /// The texts stored in the SQLite file at `path`, in the order of their ids.
    fn stored_texts(path: &std::path::Path) -> Vec<String> {
        let connection = rusqlite::Connection::open(path).expect("opens");
        let mut statement = connection
            .prepare("SELECT text FROM messages ORDER BY id")
            .expect("prepares");
        let texts = statement
            .query_map([], |row| row.get(0))
            .expect("reads")
            .collect::<Result<Vec<String>, _>>()
            .expect("rows");
        texts
    }

    fn on_sqlite(
        path: &std::path::Path,
    ) -> (
        super::History,
        impl std::future::Future<Output = ()>,
        tokio_util::sync::CancellationToken,
    ) {
        let store: Arc<dyn crate::store::HistoryStore> =
            Arc::new(crate::store::SqliteStore::open(path).expect("opens"));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let (history, writer) = super::History::new(
            crate::config::HistoryConfig::default(),
            store.clone(),
            store,
            shutdown.clone(),
        );
        (history, writer, shutdown)
    }

    /// Two rate windows on, so earlier arrivals no longer count against a sender committing
    /// its own message (the tests send far fewer than the bound anyway).
    async fn after_quiet() {
        tokio::time::sleep(super::RATE_WINDOW * 2).await;
    }

    /// Up to the bound a window, and while the window before stayed under it, arrivals are
    /// quiet; a busy window keeps the next one busy too; a gap of a window forgets it.
    #[test]
    fn the_arrival_rate_decides_who_commits() {
        let turn = super::Turn::default();
        for n in 1..=super::QUIET_RATE {
            assert!(turn.arrived_in(1), "arrival {n} of window 1");
        }
        assert!(!turn.arrived_in(1), "one past the bound");
        assert!(!turn.arrived_in(2), "the window after a busy one");
        assert!(turn.arrived_in(4), "a quiet window between");
    }

    /// With nothing queued, a sender commits its own message and hands it on before `enqueue`
    /// returns (no writer running at all here): stored first, then delivered.
    #[tokio::test]
    async fn a_sender_that_finds_the_writer_idle_commits_and_delivers_its_own_message() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("h.db");
        let (history, _writer, _shutdown) = on_sqlite(&path);
        let delivered = Arc::default();
        for text in ["one", "two"] {
            after_quiet().await;
            let queued = history.enqueue(recorded(&history, text, &delivered)).await;
            assert!(queued.is_none(), "{text} was committed by its sender");
        }
        assert_eq!(*delivered.lock(), ["one", "two"]);
        assert_eq!(stored_texts(&path), ["one", "two"]);
    }

    /// While another connection holds the database's write lock, a sender does not wait for
    /// it: its message goes to the writer. A later one goes there too even once the database
    /// is free, because the first is still on its way (per-sender order); once the writer has
    /// handed both on, senders commit themselves again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_never_overtakes_one_queued_for_the_writer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("h.db");
        let (history, writer, shutdown) = on_sqlite(&path);
        let delivered = Arc::default();
        let blocker = rusqlite::Connection::open(&path).expect("opens");
        blocker.execute_batch("BEGIN IMMEDIATE").expect("locks");
        let first = history
            .enqueue(recorded(&history, "first", &delivered))
            .await
            .expect("queued: the database is locked");
        blocker.execute_batch("COMMIT").expect("unlocks");
        after_quiet().await;
        let second = history
            .enqueue(recorded(&history, "second", &delivered))
            .await
            .expect("queued behind the first, though the database is free");
        assert!(delivered.lock().is_empty(), "nothing handed on yet");
        let task = tokio::spawn(writer);
        let bound = std::time::Duration::from_secs(10);
        tokio::time::timeout(bound, first)
            .await
            .expect("in time")
            .expect("first delivered");
        tokio::time::timeout(bound, second)
            .await
            .expect("in time")
            .expect("second delivered");
        after_quiet().await;
        let third = history
            .enqueue(recorded(&history, "third", &delivered))
            .await;
        assert!(third.is_none(), "the writer is idle again");
        assert_eq!(*delivered.lock(), ["first", "second", "third"]);
        assert_eq!(stored_texts(&path), ["first", "second", "third"]);
        finish(history, &shutdown, task).await;
    }

    /// A sender whose connection ends while it waits for room in a full queue (its `enqueue`
    /// dropped) takes its count back: senders commit their own again afterwards.
    #[tokio::test]
    async fn a_send_given_up_on_a_full_queue_leaves_no_count_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("h.db");
        let (history, _writer, _shutdown) = on_sqlite(&path);
        let delivered = Arc::default();
        let blocker = rusqlite::Connection::open(&path).expect("opens");
        blocker.execute_batch("BEGIN IMMEDIATE").expect("locks");
        // No writer runs: with the database locked, these fill the queue.
        for n in 0..super::QUEUE {
            let queued = history
                .enqueue(recorded(&history, &format!("m{n}"), &delivered))
                .await;
            assert!(queued.is_some(), "message {n} queued");
        }
        let stuck = history.enqueue(recorded(&history, "stuck", &delivered));
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(50), stuck).await;
        assert!(gave_up.is_err(), "the queue was full, so the send waited");
        assert_eq!(
            history.turn.pending.load(Ordering::SeqCst),
            super::QUEUE,
            "only the queued ones are counted"
        );
        blocker.execute_batch("COMMIT").expect("unlocks");
    }

    /// While the writer holds messages the database refused, a sender does not commit its own
    /// even once the database takes writes again: the held ones are stored first.
    #[tokio::test]
    async fn a_held_backlog_is_stored_before_anything_a_sender_commits() {
        let store = Arc::new(Flaky::default());
        store.free.store(true, Ordering::SeqCst);
        store.broken.store(true, Ordering::SeqCst);
        let (history, writer, shutdown) = over(&store);
        let mut health = history.health();
        let task = tokio::spawn(writer);
        let recipient = Arc::new(Outbound::new(1 << 20));
        history.submit(delivery(&history, "held", &recipient)).await;
        assert_eq!(health.borrow_and_update().held, 1);
        store.broken.store(false, Ordering::SeqCst);
        after_quiet().await;
        history
            .submit(delivery(&history, "after", &recipient))
            .await;
        assert_eq!(*store.stored.lock(), ["held", "after"]);
        after_quiet().await;
        history.submit(delivery(&history, "idle", &recipient)).await;
        assert_eq!(*store.stored.lock(), ["held", "after", "idle"]);
        assert_eq!(
            store.message_commits.load(Ordering::SeqCst),
            2,
            "the held message and the next shared the writer's commit; the third was its sender's"
        );
        finish(history, &shutdown, task).await;
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
        finish(history, &shutdown, task).await;
    }
}
