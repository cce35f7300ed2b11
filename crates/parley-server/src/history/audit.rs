//! The audit queue: audit events (logins, registrations, sessions, operator and channel-owner
//! actions, kicks) wait here, briefly, for the writer's next commit, so a burst of logins shares
//! one transaction instead of paying one each.
//!
//! [`History::audit`] writes the event to the structured log at once; the database gets it with
//! whatever the writer commits next, at the latest [`AUDIT_LINGER`] later. A full queue drops
//! events from the database (they stay in the log) rather than grow without bound.

use std::sync::atomic::Ordering;

use super::History;
use crate::clock::now_ms;
use crate::store::AuditEvent;

/// How long an audit event may wait for the writer's next commit. Every login writes one, and a
/// commit of its own (with a wake of the writer's thread) cost a SCRAM login more than all its
/// hashing did; waiting a little lets a burst of logins share one commit. The event is in the
/// structured log at once either way.
pub(super) const AUDIT_LINGER: std::time::Duration = std::time::Duration::from_millis(100);
/// Most audit events waiting for a commit; beyond that they are only in the log.
pub(super) const AUDIT_QUEUE: usize = 65_536;

/// Audit events waiting for the writer, which takes them all with whatever it commits next, and
/// at the latest [`AUDIT_LINGER`] after the first of them arrived.
#[derive(Default)]
pub(super) struct AuditQueue {
    events: parking_lot::Mutex<Vec<AuditEvent>>,
    /// Given when the queue stops being empty, so the writer sets its deadline; one wake per
    /// commit rather than per event.
    pub(super) nudge: tokio::sync::Notify,
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

    pub(super) fn take(&self) -> Vec<AuditEvent> {
        self.overflowing.store(false, Ordering::Relaxed);
        std::mem::take(&mut *self.events.lock())
    }
}

impl History {
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
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use super::super::testing::{delivery, over, Flaky};
    use crate::outbound::Outbound;

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
