//! History: storing every channel and private message before anyone receives it, reading it back
//! for CHATHISTORY, replay on join and offline delivery, and the audit trail.
//!
//! How the parts fit. A message reaches [`History`] as an [`Outgoing`] (its stored form and
//! whatever delivers it); the writer (`writer.rs`) commits it together with everything else that
//! queued meanwhile, and only then hands it on for delivery, so a message anyone has received is
//! already in the database. (When the writer is idle and messages are few, the sender commits
//! its own message the same way, on its own thread, and hands it on: `writer.rs`, `Turn`.) The
//! writer's commit carries the audit events waiting in `audit.rs`, the
//! channel and ban changes, and which accounts a private message waits for (`offline.rs`), which
//! a login takes back. Reads (`reads.rs`: CHATHISTORY, replay on join), offline delivery and
//! pruning (`retention.rs`) run on the blocking pool against the reading store, never on the
//! writer's thread.
//!
//! | file | what it holds |
//! |---|---|
//! | `writer.rs` | the queue, group commit, hand-on after commit, the writer's health and thread |
//! | `reads.rs` | [`HistoryRequest`] and [`HistoryAnswer`], and the read path |
//! | `audit.rs` | the audit queue: events wait a little for the next commit |
//! | `offline.rs` | messages waiting for an account, and which accounts anything waits for |
//! | `events.rs` | which TAGMSGs are kept (reactions, replies) and who is shown them again |
//! | `redaction.rs` | removing a message its author or a channel operator redacts |
//! | `retention.rs` | pruning by age and by rows per conversation |
//! | `msgid.rs` | message ids: this run's prefix and a counter |
//! | `search.rs` | SEARCH reads, a bounded number at once |
//! | `party.rs` | who a private conversation is between ([`party`], [`dm_key`]) |

mod audit;
pub mod events;
mod msgid;
mod offline;
mod party;
mod reads;
mod redaction;
mod retention;
mod search;
#[cfg(test)]
mod testing;
mod writer;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::HistoryConfig;
use crate::store::{HistoryStore, StoreError};

pub use party::{dm_key, party};
pub use reads::{HistoryAnswer, HistoryRequest};
pub use redaction::Redaction;
pub use writer::{run_on_own_thread, Outgoing, WriterHealth};

use audit::AuditQueue;
use msgid::boot_prefix;
use offline::Waiting;
use writer::{run_writer, Job, Turn, QUEUE};

pub struct History {
    pub config: HistoryConfig,
    jobs: mpsc::Sender<Job>,
    /// The writer's store, for a sender that commits its own message while the writer is idle.
    writer: Arc<dyn HistoryStore>,
    /// Whose turn it is to commit and hand on, and what the writer still has to do.
    turn: Arc<Turn>,
    shutdown: CancellationToken,
    audit: Arc<AuditQueue>,
    waiting: Waiting,
    reader: Arc<dyn HistoryStore>,
    health: watch::Receiver<WriterHealth>,
    /// Distinguishes this run's msgids from every other run's.
    boot: String,
    next: AtomicU64,
    /// At most `search.max_concurrent` SEARCH reads at once (`search.rs`).
    searches: search::SearchSlots,
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
        let boot = boot_prefix();
        let audit = Arc::<AuditQueue>::default();
        let waiting = Waiting::default();
        let turn = Arc::<Turn>::default();
        let history = History {
            config,
            jobs,
            writer: writer.clone(),
            turn: turn.clone(),
            shutdown: shutdown.clone(),
            audit: audit.clone(),
            waiting: waiting.clone(),
            reader,
            health,
            boot,
            next: AtomicU64::new(1),
            searches: Default::default(),
        };
        (
            history,
            run_writer(writer, rx, turn, audit, waiting, health_tx, shutdown),
        )
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(StoreError::Backend(format!("history task failed: {e}"))))
}
