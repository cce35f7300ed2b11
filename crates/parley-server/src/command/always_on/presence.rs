//! A presence kept with no session: when the last session of an always-on account leaves, its
//! user stays in the world (nick, channels, channel status) with an outbound that accepts
//! nothing, as a cluster-remote user's does, and shows as away. Stored too, so [`restore`]
//! puts it back at start before the listeners accept anyone; [`end`] takes it out when the
//! account is suspended or its user killed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use parley_proto::{casefold, validate};
use tokio::time::Instant;

use crate::accounts::always_on::Detached;
use crate::cluster::event::Event;
use crate::command::presence::away_line;
use crate::config::AlwaysOnPolicy;
use crate::context::{Announcer, Line};
use crate::fanout;
use crate::outbound::Outbound;
use crate::relay::{line, notify};
use crate::server::Shared;
use crate::state::{Channel, ClientId, MemberStatus, User, WhowasEntry};
use crate::store::{StoreError, StoredPresence};

/// What the end of a connection means for always-on.
pub enum Detach {
    /// Not kept: the user quits as usual.
    Quit,
    /// Quits as usual, and its stored presence goes (the server ended it: a KILL, a ban).
    QuitAndForget(String),
    /// Kept present; store this for the (casefolded) account.
    Kept(String, StoredPresence),
}

/// The policy in force. On a cluster too: the away of a kept user travels like any AWAY, and
/// when its node ends another adopts it (`adopt.rs`).
pub(super) fn policy(shared: &Shared) -> AlwaysOnPolicy {
    shared.config.accounts.always_on
}

/// An outbound that accepts nothing: whatever is sent to a kept presence is in history anyway.
fn dead_outbound() -> Arc<Outbound> {
    let sink = Arc::new(Outbound::new(0));
    sink.kill();
    sink
}

/// The connection `id` ends (`keep`: by the client or the network, not by the server's
/// judgement). An always-on account's registered user is kept: away, its outbound swapped for
/// one that accepts nothing; everything else quits as before. An unregistered connection that
/// had taken its account's presence nick for the takeover gives it back.
pub fn detach(
    shared: &Shared,
    session: &crate::context::Session,
    outbound: &Arc<Outbound>,
    account: Option<&str>,
    keep: bool,
) -> Detach {
    let (id, registered) = (session.id, session.registered);
    let Some(account) = account.map(casefold) else {
        return Detach::Quit;
    };
    if !registered {
        return Detach::Quit;
    }
    if !shared.always_on.is_on(policy(shared), &account) {
        return Detach::Quit;
    }
    if kept_elsewhere(shared, &account) {
        // One presence per account in a cluster: this node's user quits, and the store's
        // presence (another node's) is left alone.
        return Detach::Quit;
    }
    if !keep {
        return Detach::QuitAndForget(account);
    }
    let limit = shared.config.accounts.always_on_limit;
    if shared.always_on.detached_count() >= limit {
        tracing::warn!(%account, limit, "always-on: accounts.always_on_limit reached; the user quits");
        return Detach::QuitAndForget(account);
    }
    let now = crate::clock::now_ms();
    let away = shared.config.accounts.always_on_away.clone();
    let sink = dead_outbound();
    let mut world = shared.world.lock();
    let Some(user) = world.users.get_mut(&id) else {
        return Detach::Quit;
    };
    user.away = Some(away.clone());
    let source = user.source();
    let keys: Vec<String> = user.channels.iter().cloned().collect();
    let mut presence = StoredPresence {
        nick: user.nick.clone(),
        username: user.username.clone(),
        realname: user.realname.clone(),
        host: user.host.clone(),
        channels: Vec::with_capacity(keys.len()),
        away_since_ms: now,
    };
    // The session's buffer leaves the user and its channels' snapshots; the user stays, with
    // a buffer that accepts nothing for whatever is still addressed to it directly.
    world.detach_session(id, outbound);
    if let Some(user) = world.users.get_mut(&id) {
        user.sessions.clear();
        user.outbound = sink;
    }
    for key in &keys {
        if let Some(channel) = world.channels.get(key) {
            presence.channels.push(channel.name.clone());
        }
    }
    world.monitors.clear(id);
    // away-notify: those who share a channel see it go away, as for an AWAY command; in a
    // cluster every node hears it (no QUIT: the user stays, on this node).
    let bytes = away_line(&source, Some(&away));
    let recipients = world.notify_recipients(id, notify::AWAY_NOTIFY);
    let announcer = Announcer {
        shared,
        actor: outbound,
    };
    let announced = announcer.announce(
        Line::ForNotify(&bytes, notify::AWAY_NOTIFY),
        &recipients,
        |cluster| Event::Away {
            uid: cluster.uid_of(id),
            away: Some(away.clone()),
        },
    );
    drop(world);
    announcer.publish(announced);
    shared
        .always_on
        .set_detached(&account, Detached { id, since_ms: now });
    tracing::info!(%account, client = id.0, "always-on: kept present after its last session");
    Detach::Kept(account, presence)
}

/// Whether another node holds a user of `account` (casefolded): on a cluster, a login on a
/// node other than the one keeping the account's presence is a user of its own (with its own
/// nick, as multiclient has it), and it is not kept when it leaves, so the account keeps one
/// presence, the one its stored row names.
fn kept_elsewhere(shared: &Shared, account: &str) -> bool {
    shared.cluster.is_some()
        && shared.world.lock().users.values().any(|user| {
            user.registered
                && user.remote.is_some()
                && user
                    .account
                    .as_deref()
                    .is_some_and(|a| casefold(a) == account)
        })
}

/// Write what [`detach`] decided to the store, off the runtime's workers. On a cluster the
/// row names this node life as its owner, so the nodes that outlive it know whose it was.
pub async fn save(shared: &Shared, account: String, presence: Option<StoredPresence>) {
    let Some(store) = shared.always_on.store() else {
        return;
    };
    let owner = crate::cluster::of(shared).map(|cluster| cluster.life());
    let written = tokio::task::spawn_blocking(move || {
        match (&presence, &owner) {
            (Some(presence), Some(owner)) => store.save_presence_owned(&account, presence, owner),
            _ => store.save_presence(&account, presence.as_ref()),
        }
        .map_err(|err| (account, err))
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err((account, err))) => {
            tracing::error!(%account, %err, "always-on: cannot store the presence; it lasts until a restart")
        }
        Err(err) => tracing::error!(%err, "always-on: the store task failed"),
    }
}

/// Put the stored presences back in the world, at start, before any client is let in: each
/// account that is still always-on, still exists and is not suspended gets its user back, away,
/// in its channels. Returns how many.
pub fn restore(shared: &Shared) -> Result<usize, StoreError> {
    let policy = policy(shared);
    let Some(store) = shared.always_on.store() else {
        return Ok(0);
    };
    // A cluster node's presences are adopted once it has joined (`adopt.rs`: its own
    // `NodeDown` for its earlier lives), never taken from the shared store before.
    if policy == AlwaysOnPolicy::Off || shared.cluster.is_some() {
        return Ok(0);
    }
    let mut restored = 0;
    for (account, presence) in store.presences()? {
        if !shared.always_on.is_on(policy, &account) {
            continue;
        }
        let Some(record) = shared.accounts.store().account(&account)? else {
            continue;
        };
        if record.locked {
            tracing::info!(%account, "always-on: not restored, the account is suspended");
            continue;
        }
        if shared.always_on.detached_count() >= shared.config.accounts.always_on_limit {
            tracing::warn!(%account, "always-on: accounts.always_on_limit reached; not restored");
            continue;
        }
        if restore_one(
            shared,
            &record.name,
            &presence,
            shared.next_client_id(),
            None,
        ) {
            restored += 1;
        }
    }
    Ok(restored)
}

/// Put `account`'s `presence` in the world as user `id`, away, in its channels: with the
/// status in `statuses` (by casefolded channel: a cluster replica's last view) when given, else
/// as at a JOIN. False (and nothing changed) when its nick is invalid or taken here.
pub(super) fn restore_one(
    shared: &Shared,
    account: &str,
    presence: &StoredPresence,
    id: ClientId,
    statuses: Option<&HashMap<String, MemberStatus>>,
) -> bool {
    let limits = &shared.config.limits;
    let folded_nick = casefold(&presence.nick);
    if !validate::nick(&presence.nick, limits.nick_len) {
        tracing::warn!(%account, "always-on: a stored nick is no longer valid; not restored");
        return false;
    }
    let sink = dead_outbound();
    let mut world = shared.world.lock();
    if world.nicks.contains_key(&folded_nick) {
        tracing::warn!(%account, nick = %presence.nick, "always-on: the nick is taken; not restored");
        return false;
    }
    world.users.insert(
        id,
        Box::new(User {
            id,
            outbound: sink,
            // No session until a login attaches one (`command::multiclient::attach`).
            sessions: Vec::new(),
            nick: presence.nick.clone(),
            username: presence.username.clone(),
            realname: presence.realname.clone(),
            host: presence.host.clone(),
            registered: true,
            account: Some(account.to_owned()),
            secure: false,
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            oper: None,
            wallops: false,
            invisible: false,
            bot: false,
            away: Some(shared.config.accounts.always_on_away.clone()),
            channels: HashSet::new(),
            signon: SystemTime::now(),
            last_spoke: Instant::now(),
            remote: None,
            real_mask: None,
        }),
    );
    world.counts.registered += 1;
    world.max_registered = world.max_registered.max(world.counts.registered);
    world.max_local = world.max_local.max(world.counts.registered);
    world.nicks.insert(folded_nick, id);
    let wanted = presence
        .channels
        .iter()
        .filter(|name| validate::channel(name, limits.channel_len))
        .take(limits.channels_per_user);
    for name in wanted {
        let key = casefold(name);
        let created = !world.channels.contains_key(&key);
        let channel = world.channels.entry(key.clone()).or_insert_with(|| {
            let mut channel = Channel::new(name);
            if shared.is_default_channel(&key) {
                shared.set_default_room(&mut channel);
            }
            channel
        });
        // Who made the channel is its operator, as at a JOIN; a registered one decides itself.
        let op = channel.auto_op(Some(account)) || (created && !shared.is_default_channel(&key));
        let status = match statuses.and_then(|statuses| statuses.get(&key)) {
            Some(seen) => MemberStatus {
                op: seen.op || op,
                voice: seen.voice,
            },
            None => MemberStatus { op, voice: false },
        };
        channel.add_member(id, &presence.nick, status, &[]);
        if let Some(user) = world.users.get_mut(&id) {
            user.channels.insert(key);
        }
    }
    drop(world);
    shared.always_on.set_detached(
        &casefold(account),
        Detached {
            id,
            since_ms: presence.away_since_ms,
        },
    );
    tracing::info!(%account, nick = %presence.nick, "always-on: presence restored");
    true
}

/// Take `account`'s kept presence out of the world, if it has one (a suspension, a KILL): its
/// channels see it QUIT with `reason`, and its stored presence goes. Returns whether there was
/// one.
pub fn end(shared: &Shared, account: &str, reason: &str) -> bool {
    let account = casefold(account);
    let Some(detached) = shared.always_on.detached(&account) else {
        return false;
    };
    if !shared.always_on.take_detached(&account, detached.id) {
        return false;
    }
    let id = detached.id;
    {
        let mut world = shared.world.lock();
        let Some(user) = world.users.get(&id) else {
            return false;
        };
        let bytes = line(Some(&user.source()), "QUIT", &[], Some(reason));
        let neighbours = world.neighbours(id);
        let keys: Vec<String> = user.channels.iter().cloned().collect();
        for key in keys {
            world.leave_channel(id, &key);
        }
        if let Some(user) = world.remove_user(id) {
            let folded = casefold(&user.nick);
            if world.nicks.get(&folded) == Some(&id) {
                world.nicks.remove(&folded);
            }
            world.push_whowas(WhowasEntry::of(&user), shared.config.limits.whowas_entries);
            world.monitor_offline(shared.server_name(), &user.nick);
        }
        drop(world);
        fanout::send_now(&bytes, &neighbours);
    }
    if let Some(store) = shared.always_on.store() {
        let forgotten = account.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = store.save_presence(&forgotten, None) {
                tracing::error!(account = %forgotten, %err, "always-on: cannot forget a presence");
            }
        });
    }
    tracing::info!(%account, %reason, "always-on: presence ended");
    true
}

/// [`end`], when user `id` is `account`'s kept presence (a KILL names a nick, not an account).
pub fn end_kept(shared: &Shared, account: &str, id: ClientId, reason: &str) -> bool {
    match shared.always_on.detached(&casefold(account)) {
        Some(detached) if detached.id == id => end(shared, account, reason),
        _ => false,
    }
}
