//! Private messages this node's users sent to users of other nodes, remembered until the
//! recipient's node shows it was alive after they reached the stream. A node killed inside
//! its lease takes such messages with it unseen; when it is declared down they become offline
//! messages for their recipients' accounts (delivered at the next login, with the count), and
//! a guest's sender gets 401. Nothing confirms a delivery, so a heartbeat heard [`SETTLE`] after
//! a message was sent counts as one: a node only slow is never declared down, and its messages
//! are never turned into offline ones. Bounded per node; what the bound drops is the oldest,
//! the likeliest to have been delivered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::event::uid_origin;
use super::Cluster;
use crate::relay::line;
use crate::server::Shared;
use crate::state::ClientId;

/// How long after a message the recipient's node must be heard from for the message to count
/// as delivered: the stream's own delay to a live node is milliseconds.
const SETTLE: Duration = Duration::from_secs(1);
/// Most messages remembered per recipient node (and life). A sender cannot grow it beyond its
/// own flood limit; past it the oldest are forgotten.
const PER_NODE: usize = 4096;
/// How often a database that refused the offline marks is tried again, and how many times.
const MARK_RETRY: Duration = Duration::from_secs(1);
const MARK_TRIES: u32 = 5;

/// One private message on its way to another node's user.
pub struct Sent {
    pub sender: ClientId,
    /// The recipient's nick, as the sender wrote it.
    pub nick: String,
    /// The recipient's account (casefolded), when it was logged in to one.
    pub account: Option<String>,
    /// The stored message's msgid: `None` when history did not keep it.
    pub msgid: Option<String>,
    /// PRIVMSG, NOTICE or TAGMSG: a NOTICE is never answered.
    pub verb: &'static str,
}

/// A node's name and life (incarnation).
type NodeLife = (String, u64);

#[derive(Default)]
pub struct Undelivered {
    /// Per recipient node and life: what was sent, and when, oldest first.
    by_node: Mutex<HashMap<NodeLife, VecDeque<(Instant, Sent)>>>,
}

impl Undelivered {
    /// Remember a message sent to the user `uid` of another node.
    pub fn remember(&self, uid: &str, sent: Sent) {
        let Some((node, incarnation)) = uid_origin(uid) else {
            return;
        };
        let mut by_node = self.by_node.lock();
        let queue = by_node.entry((node.to_string(), incarnation)).or_default();
        if queue.len() >= PER_NODE {
            queue.pop_front();
        }
        queue.push_back((Instant::now(), sent));
    }

    /// `node` (in this life) was heard from: what it had [`SETTLE`] to take from the stream
    /// before, it took.
    pub fn heard(&self, node: &str, incarnation: u64) {
        let mut by_node = self.by_node.lock();
        let key = (node.to_string(), incarnation);
        let Some(queue) = by_node.get_mut(&key) else {
            return;
        };
        let now = Instant::now();
        while queue.front().is_some_and(|(at, _)| *at + SETTLE <= now) {
            queue.pop_front();
        }
        if queue.is_empty() {
            by_node.remove(&key);
        }
    }

    /// Take what was sent to users of `node` (of life `incarnation`, every life for 0, but
    /// never the life `alive`) since it was last heard from.
    fn take_lost(&self, node: &str, incarnation: u64, alive: Option<u64>) -> Vec<Sent> {
        let mut by_node = self.by_node.lock();
        let lost: Vec<NodeLife> = by_node
            .keys()
            .filter(|(n, inc)| {
                n == node && (incarnation == 0 || *inc == incarnation) && alive != Some(*inc)
            })
            .cloned()
            .collect();
        lost.into_iter()
            .filter_map(|key| by_node.remove(&key))
            .flat_map(|queue| queue.into_iter().map(|(_, sent)| sent))
            .collect()
    }
}

impl Cluster {
    /// `node` is down (said by `by`, of life `by_incarnation`): its users never got what this
    /// node's users sent them since it was last heard from. A message kept in history for an
    /// account waits for that account's next login, and its sender is told so; for a guest
    /// (or a message history did not keep) the sender gets 401, as for a nick that is gone.
    pub fn messages_lost(&self, shared: &Shared, node: &str, incarnation: u64, by: (&str, u64)) {
        // A node saying it restarted is alive in its new life.
        let alive = (by.0 == node).then_some(by.1);
        let lost = self.undelivered.take_lost(node, incarnation, alive);
        if lost.is_empty() {
            return;
        }
        let mut marks: Vec<(String, String)> = Vec::new();
        let mut told: HashSet<(ClientId, String)> = HashSet::new();
        // Per sender: the nick, and whether the message waits for its account.
        let mut answers: Vec<(ClientId, String, bool)> = Vec::new();
        for sent in lost {
            let waits = match (&sent.account, &sent.msgid) {
                (Some(account), Some(msgid)) => {
                    marks.push((account.clone(), msgid.clone()));
                    true
                }
                _ => false,
            };
            // Once per sender and nick, not per message. A NOTICE is never answered, and a
            // TAGMSG (a typing notice, a reaction) is not worth a late one.
            if sent.verb != "PRIVMSG" || !told.insert((sent.sender, sent.nick.clone())) {
                continue;
            }
            answers.push((sent.sender, sent.nick, waits));
        }
        tracing::info!(
            %node,
            waiting = marks.len(),
            senders = told.len(),
            "private messages to a lost node's users: kept for their accounts, or their senders told"
        );
        {
            let server = shared.server_name();
            let world = shared.world.lock();
            for (sender, nick, waits) in answers {
                let Some(user) = world.users.get(&sender).filter(|u| u.remote.is_none()) else {
                    continue;
                };
                let bytes = if waits {
                    let text = format!(
                        "{nick} is not online; they will get your message when they next log in"
                    );
                    line(Some(server), "NOTICE", &[&user.nick], Some(&text))
                } else {
                    line(
                        Some(server),
                        "401",
                        &[&user.nick, &nick],
                        Some("No such nick/channel"),
                    )
                };
                let _ = user.outbound.push(&bytes);
            }
        }
        if marks.is_empty() {
            return;
        }
        let Some(shared) = self.server.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        tokio::spawn(mark_offline(shared, marks));
    }
}

/// Store the offline marks, retrying a while if the database refuses (it may be restarting).
async fn mark_offline(shared: Arc<Shared>, marks: Vec<(String, String)>) {
    for attempt in 1..=MARK_TRIES {
        match shared.history.mark_offline(marks.clone()).await {
            Ok(()) => return,
            Err(err) if attempt < MARK_TRIES => {
                tracing::warn!(%err, attempt, "could not keep a lost node's private messages for their accounts yet; retrying");
                tokio::time::sleep(MARK_RETRY).await;
            }
            Err(err) => {
                tracing::error!(%err, messages = marks.len(), "could not keep a lost node's private messages for their accounts; they stay in history only");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(nick: &str) -> Sent {
        Sent {
            sender: ClientId(1),
            nick: nick.into(),
            account: Some(nick.into()),
            msgid: Some(format!("m-{nick}")),
            verb: "PRIVMSG",
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_after_the_settle_time_forgets_what_came_before() {
        let undelivered = Undelivered::default();
        undelivered.remember("n3~a~1", sent("early"));
        tokio::time::advance(SETTLE).await;
        undelivered.remember("n3~a~1", sent("late"));
        undelivered.heard("n3", 0xa);
        let lost = undelivered.take_lost("n3", 0xa, None);
        let nicks: Vec<&str> = lost.iter().map(|s| s.nick.as_str()).collect();
        assert_eq!(nicks, ["late"]);
        assert!(
            undelivered.take_lost("n3", 0xa, None).is_empty(),
            "taken once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_node_keeps_what_its_new_life_was_sent() {
        let undelivered = Undelivered::default();
        undelivered.remember("n3~a~1", sent("old"));
        undelivered.remember("n3~b~1", sent("new"));
        undelivered.remember("n2~a~1", sent("other"));
        let lost = undelivered.take_lost("n3", 0, Some(0xb));
        let nicks: Vec<&str> = lost.iter().map(|s| s.nick.as_str()).collect();
        assert_eq!(nicks, ["old"]);
    }

    #[test]
    fn the_queue_per_node_is_bounded() {
        let undelivered = Undelivered::default();
        for i in 0..PER_NODE + 10 {
            undelivered.remember("n3~a~1", sent(&format!("u{i}")));
        }
        let lost = undelivered.take_lost("n3", 0xa, None);
        assert_eq!(lost.len(), PER_NODE);
        assert_eq!(lost[0].nick, "u10");
    }
}
