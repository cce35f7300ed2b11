//! Adopting the always-on presences of a cluster node life that ended (`cluster/adopt.rs` says
//! when): each presence the shared store hands this node (a compare-and-set on its owner, so
//! one node per presence) comes back as this node's own kept user: its nick claimed over from
//! the dead user, in its channels with its status, away. The other nodes hear a `UserUp` and a
//! `Join` per channel, after the QUIT its node's end showed: a clean QUIT and JOIN. Its next
//! login on this node resumes it (`resume.rs`), with the catch-up from the shared history.

use std::collections::HashMap;
use std::sync::Arc;

use parley_proto::casefold;

use crate::cluster::adopt::{Ended, SeenIn};
use crate::cluster::event::Event;
use crate::cluster::Cluster;
use crate::config::AlwaysOnPolicy;
use crate::server::Shared;
use crate::state::MemberStatus;
use crate::store::StoredPresence;

/// Adopt what this node wins of the presences whose owner is `ended`; `seen`: where this
/// node's replica last saw those accounts' users (see `cluster::adopt::SeenIn`).
pub async fn adopt(shared: Arc<Shared>, ended: Ended, seen: SeenIn) {
    let Some(cluster) = crate::cluster::of(&shared).cloned() else {
        return;
    };
    if super::presence::policy(&shared) == AlwaysOnPolicy::Off {
        return;
    }
    let Some(store) = shared.always_on.store() else {
        return;
    };
    let me = cluster.life();
    let matches = ended.clone();
    let accounts = shared.accounts.store().clone();
    let won = tokio::task::spawn_blocking(move || {
        let mut won = Vec::new();
        let owners = match store.presence_owners() {
            Ok(owners) => owners,
            Err(err) => {
                tracing::error!(%err, "always-on: cannot read the presences of a node that ended; they are not adopted");
                return won;
            }
        };
        for (account, owner) in owners.into_iter().filter(|(_, owner)| matches(owner)) {
            let presence = match store.adopt_presence(&account, &owner, &me) {
                Ok(Some(presence)) => presence,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!(%account, %err, "always-on: cannot adopt a presence");
                    continue;
                }
            };
            // A row kept with a presence is always-on (turning it off forgets the presence),
            // whatever this node heard of `ALWAYSON` since it started.
            match accounts.account(&account) {
                Ok(Some(record)) if !record.locked => won.push((record.name, presence)),
                Ok(_) => {
                    tracing::info!(%account, "always-on: not adopted, the account is gone or suspended");
                    if let Err(err) = store.save_presence(&account, None) {
                        tracing::error!(%account, %err, "always-on: cannot forget a presence");
                    }
                }
                Err(err) => tracing::error!(%account, %err, "always-on: cannot read an account"),
            }
        }
        won
    })
    .await
    .unwrap_or_default();
    for (account, mut presence) in won {
        // The replica's view when it has one: the channels it was in, with the status it had.
        let statuses = seen.get(&casefold(&account)).map(|channels| {
            presence.channels = channels.iter().map(|(name, _)| name.clone()).collect();
            channels
                .iter()
                .map(|(name, status)| (casefold(name), *status))
                .collect::<HashMap<String, MemberStatus>>()
        });
        adopt_one(
            &shared,
            &cluster,
            &account,
            presence,
            statuses.as_ref(),
            &ended,
        )
        .await;
    }
}

/// Most other nicks tried for an adopted presence whose own nick a live user took meanwhile.
const OTHER_NICKS: usize = 4;

/// Bring one won presence back here. Past `accounts.always_on_limit` too: the limit bounds
/// what this node's own users keep, and a node failure must not drop always-on accounts (the
/// cluster's total was within the nodes' limits before). When a live user took its nick
/// meanwhile (the dead node's claims are released before adoption), it comes back under
/// `<nick>_` (or `__` ...), as a registration would; forgotten only when none of those is free.
async fn adopt_one(
    shared: &Arc<Shared>,
    cluster: &Arc<Cluster>,
    account: &str,
    mut presence: StoredPresence,
    statuses: Option<&HashMap<String, MemberStatus>>,
    ended: &Ended,
) {
    let folded_account = casefold(account);
    if shared.always_on.detached_count() >= shared.config.accounts.always_on_limit {
        tracing::warn!(%account, "always-on: adopting past accounts.always_on_limit (a node ended)");
    }
    let id = shared.next_client_id();
    let uid = cluster.uid_of(id);
    let nicklen = shared.config.limits.nick_len;
    let mut claimed = None;
    for n in 0..=OTHER_NICKS {
        let mut nick = presence.nick.clone();
        if n > 0 {
            nick = nick
                .chars()
                .take(nicklen.saturating_sub(n).max(1))
                .collect();
            nick.push_str(&"_".repeat(n));
        }
        let folded = casefold(&nick);
        match cluster.take_over_claim(&folded, &uid, ended.as_ref()).await {
            Ok(()) => {
                claimed = Some(folded);
                if n > 0 {
                    tracing::info!(%account, was = %presence.nick, %nick, "always-on: the nick was taken; adopted under another");
                    presence.nick = nick;
                }
                break;
            }
            Err(crate::cluster::ClaimError::Taken) => continue,
            Err(err) => {
                tracing::warn!(%account, nick = %presence.nick, ?err, "always-on: the bus did not answer a nick claim; the presence is not adopted");
                break;
            }
        }
    }
    let Some(folded_nick) = claimed else {
        tracing::warn!(%account, nick = %presence.nick, "always-on: no nick to adopt the presence under; it is forgotten");
        forget(shared, folded_account).await;
        return;
    };
    if !super::presence::restore_one(shared, account, &presence, id, statuses) {
        cluster.release(&folded_nick, &uid);
        forget(shared, folded_account).await;
        return;
    }
    shared.always_on.set_opted_in(&folded_account, true);
    // What the other nodes must hear: the user, then each channel it is in, with its status.
    let events = {
        let world = shared.world.lock();
        let Some(user) = world.users.get(&id) else {
            return;
        };
        let source = user.source();
        world.monitor_online(shared.server_name(), &user.nick, &source);
        let mut events = vec![Event::UserUp {
            user: crate::cluster::apply::user_info(cluster, user),
        }];
        for key in &user.channels {
            let Some(channel) = world.channels.get(key) else {
                continue;
            };
            let status = channel.status(id).unwrap_or_default();
            events.push(Event::Join {
                uid: uid.clone(),
                source: source.clone(),
                account: user.account.clone(),
                realname: user.realname.clone(),
                channel: channel.name.clone(),
                op: status.op,
                voice: status.voice,
            });
        }
        events
    };
    for event in events {
        cluster.publish(shared, event, None);
    }
    tracing::info!(%account, nick = %presence.nick, "always-on: adopted the presence of a node that ended");
}

async fn forget(shared: &Shared, account: String) {
    super::presence::save(shared, account, None).await;
}
