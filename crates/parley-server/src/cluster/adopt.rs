//! Always-on presences outlive the node that kept them. A kept (sessionless) user of an
//! always-on account is stored with its owner, the node life keeping it (`node~incarnation`).
//! When a `NodeDown` ends that life (a judged death, a clean stop, or the node saying it
//! restarted), every node that applies it tries to adopt the dead life's presences: a
//! compare-and-set on the owner in the shared store gives each row to exactly one node, which
//! takes over the nick claim from the dead user and brings the presence back as its own user
//! (`command::always_on::adopt`). The others saw the dead user QUIT with its node and now see
//! the adopted one JOIN again: a clean QUIT+JOIN, never two users with one nick.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{event, kv, nick_key, ClaimError, Cluster};
use crate::server::Shared;
use crate::state::{MemberStatus, World};

/// Which owners (`node~incarnation`) belong to a node life that ended.
pub type Ended = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Adopts the presences whose owner is [`Ended`] (`command::always_on::adopt`, which sits above
/// the cluster and is handed to it at start with [`Cluster::set_adopter`]).
pub type Adopter = Arc<
    dyn Fn(Arc<Shared>, Ended, SeenIn) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync,
>;

/// Where this node's replica last saw each account's user of a node life that ended: the
/// channels (as named) and the status in each. An adopted presence takes these rather than
/// what its node stored when it was kept, so a KICK or a `-o` meanwhile holds.
pub type SeenIn = HashMap<String, Vec<(String, MemberStatus)>>;

/// A node life a `NodeDown` ended, and what this node saw of its accounts' users.
pub struct Dead {
    node: String,
    incarnation: u64,
    /// The life of the node that said so (for a restart, the life that must not be ended).
    by: u64,
    seen: SeenIn,
}

impl Dead {
    /// Read from `world` before the `NodeDown` removes the dead life's users. `None` when it
    /// is this very life that others took for dead: its users are told to reconnect, and the
    /// surviving nodes adopt.
    pub(super) fn seen(
        cluster: &Cluster,
        world: &World,
        node: &str,
        incarnation: u64,
        by: u64,
    ) -> Option<Dead> {
        if node == cluster.node && incarnation == cluster.incarnation {
            return None;
        }
        let mut seen = SeenIn::new();
        for (uid, id) in &world.remote {
            if !event::uid_origin(uid)
                .is_some_and(|(n, inc)| ended_life(n, inc, node, incarnation, by))
            {
                continue;
            }
            let Some(user) = world.users.get(id) else {
                continue;
            };
            let Some(account) = &user.account else {
                continue;
            };
            let channels = user
                .channels
                .iter()
                .filter_map(|key| {
                    let channel = world.channels.get(key)?;
                    Some((channel.name.clone(), channel.status(*id)?))
                })
                .collect();
            seen.insert(parley_proto::casefold(account), channels);
        }
        Some(Dead {
            node: node.to_string(),
            incarnation,
            by,
            seen,
        })
    }
}

/// How many times a take-over is tried when the nick's entry changes under it (the judging
/// node releasing the dead user's claims at the same moment).
const TAKE_OVER_TRIES: usize = 4;

/// Longest one take-over step waits for the bus.
const BUS_WAIT: Duration = Duration::from_secs(5);

impl Cluster {
    /// Set what adopts a dead node life's presences; once, at start (without it, none are).
    pub fn set_adopter(&self, adopter: Adopter) {
        let _ = self.adopter.set(adopter);
    }

    /// This node life as the always-on store names an owner.
    pub fn life(&self) -> String {
        format!("{}~{:x}", self.node, self.incarnation)
    }

    /// Claim `folded` for `uid`, taking the claim over from its holder when `ended(holder)`
    /// (a user of a node life that ended) rather than waiting for its release. Compare-and-set
    /// on the entry's revision, so a live user's claim is never taken.
    pub async fn take_over_claim(
        self: &Arc<Self>,
        folded: &str,
        uid: &str,
        ended: &(dyn Fn(&str) -> bool + Send + Sync),
    ) -> Result<(), ClaimError> {
        let key = nick_key(folded);
        let value = Bytes::from(uid.to_string());
        for _ in 0..TAKE_OVER_TRIES {
            let entry = tokio::time::timeout(BUS_WAIT, self.nicks.entry(&key))
                .await
                .map_err(|_| ClaimError::Unavailable)?
                .map_err(|_| ClaimError::Unavailable)?;
            let step = match entry {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    let holder = std::str::from_utf8(&entry.value).unwrap_or("");
                    if holder == uid {
                        return Ok(());
                    }
                    if !ended(holder) {
                        return Err(ClaimError::Taken);
                    }
                    tokio::time::timeout(
                        BUS_WAIT,
                        self.nicks.update(&key, value.clone(), entry.revision),
                    )
                    .await
                    .map(|r| r.is_ok())
                }
                // Released already (or never held): a claim like any other.
                _ => return self.claim(folded, uid).await,
            };
            match step {
                Ok(true) => return Ok(()),
                // The entry changed meanwhile: look again.
                Ok(false) => continue,
                Err(_) => {
                    self.undo_claim(&key, &value).await;
                    return Err(ClaimError::Unavailable);
                }
            }
        }
        Err(ClaimError::Unavailable)
    }
}

/// `AlwaysOn`: an account's setting changed on its user's node; this node's copy follows, if
/// the user the event names is logged in to that account.
pub(super) fn always_on_changed(
    shared: &Shared,
    cluster: &Cluster,
    world: parking_lot::MutexGuard<'_, World>,
    uid: &str,
    account: &str,
    on: bool,
) {
    let Some(id) = super::apply::resolve(cluster, &world, uid) else {
        return;
    };
    let owns = world
        .users
        .get(&id)
        .and_then(|user| user.account.as_deref())
        .is_some_and(|name| parley_proto::casefold(name) == account);
    drop(world);
    if owns {
        shared.always_on.set_opted_in(account, on);
    } else {
        tracing::debug!("an always-on change for another account than its user's; ignored");
    }
}

/// Whether the owner `owner` (`node~incarnation`) is a life that a `NodeDown` of `node`'s life
/// `incarnation`, published by `node`'s life `by`, ended: that life, or with incarnation 0
/// (the node restarted) every life of it but the one that said so.
pub fn ended_by(owner: &str, node: &str, incarnation: u64, by: u64) -> bool {
    event::uid_origin(owner).is_some_and(|(n, inc)| ended_life(n, inc, node, incarnation, by))
}

fn ended_life(n: &str, inc: u64, node: &str, incarnation: u64, by: u64) -> bool {
    n == node
        && if incarnation == 0 {
            inc != by
        } else {
            inc == incarnation
        }
}

/// A `NodeDown` ended the life `dead` and was applied here: try, in the background, to adopt
/// that life's always-on presences.
pub(super) fn after_node_down(cluster: &Cluster, dead: Dead) {
    let Some(shared) = cluster.server.get().and_then(std::sync::Weak::upgrade) else {
        return;
    };
    let Some(adopter) = cluster.adopter.get().cloned() else {
        return;
    };
    let Dead {
        node,
        incarnation,
        by,
        seen,
    } = dead;
    tokio::spawn(async move {
        let ended = move |owner: &str| ended_by(owner, &node, incarnation, by);
        adopter(shared, Arc::new(ended), seen).await;
    });
}

#[cfg(test)]
mod tests {
    use super::ended_by;

    #[test]
    fn a_node_down_ends_the_lives_it_names() {
        assert!(ended_by("n1~a", "n1", 0xa, 7));
        assert!(!ended_by("n1~b", "n1", 0xa, 7));
        assert!(!ended_by("n2~a", "n1", 0xa, 7));
        // A restart (incarnation 0) ends every earlier life, not the one that said so.
        assert!(ended_by("n1~a", "n1", 0, 0xb));
        assert!(!ended_by("n1~b", "n1", 0, 0xb));
        assert!(!ended_by("garbage", "n1", 0, 0xb));
    }
}
