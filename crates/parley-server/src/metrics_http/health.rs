//! What `/healthz` checks: the database (any node) and the cluster bus (a cluster node). Each
//! problem is one line of the 503 answer, naming what is down, so a load balancer takes the node
//! out and a person reading the probe's output knows where to look.
//!
//! The bus is a flag the NATS client keeps, free to read. The database is asked: the history
//! writer's last commit only shows a failure when someone writes, so an idle node would look
//! healthy with its database gone. A ping runs at most once per [`DATABASE_CHECK_EVERY`] however
//! often probes come (concurrent probes wait for the one running and share its answer), waits at
//! most [`PING_TIMEOUT`], and never queues a second ping behind one that has not returned.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cluster;
use crate::server::Shared;

/// How long a database check's answer is reused.
pub const DATABASE_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Longest a probe waits for the database; a load balancer's own timeout is often a few seconds.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The cached database check, shared by every `/healthz` request of one listener set.
#[derive(Default)]
pub struct Checks {
    /// When the database was last checked and what it said.
    database: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    /// Set while a ping is on the database's connection thread, so a stuck database holds one
    /// ping, not one per probe.
    pinging: Arc<AtomicBool>,
}

impl Checks {
    /// What is down, one line each; empty when the node is healthy.
    pub async fn problems(&self, shared: &Shared) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(cluster) = cluster::of(shared) {
            if !cluster.bus_connected() {
                problems.push(format!(
                    "cluster bus: disconnected from {}; reconnecting",
                    cluster.bus_url()
                ));
            }
        }
        // Read apart from the `if`: the watch's guard must not live across the ping's `.await`.
        let writes_failing = shared.history.health().borrow().failing.clone();
        if let Some(failing) = writes_failing {
            problems.push(format!("database: history writes fail: {failing}"));
        } else if let Err(reason) = self.database(shared).await {
            problems.push(format!("database: {reason}"));
        }
        problems
    }

    /// The database's answer to a ping, at most [`DATABASE_CHECK_EVERY`] old.
    async fn database(&self, shared: &Shared) -> Result<(), String> {
        let mut cached = self.database.lock().await;
        if let Some((at, answer)) = cached.as_ref() {
            if at.elapsed() < DATABASE_CHECK_EVERY {
                return answer.clone();
            }
        }
        let answer = if self.pinging.swap(true, Ordering::AcqRel) {
            Err("the last check has not been answered yet".to_owned())
        } else {
            let store = shared.accounts.store().clone();
            let pinging = self.pinging.clone();
            let ping = tokio::task::spawn_blocking(move || {
                let answer = store.ping();
                pinging.store(false, Ordering::Release);
                answer
            });
            match tokio::time::timeout(PING_TIMEOUT, ping).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(error))) => Err(error.to_string()),
                Ok(Err(error)) => {
                    self.pinging.store(false, Ordering::Release);
                    Err(format!("the check itself failed: {error}"))
                }
                Err(_) => Err(format!("no answer in {} s", PING_TIMEOUT.as_secs())),
            }
        };
        *cached = Some((Instant::now(), answer.clone()));
        answer
    }
}
