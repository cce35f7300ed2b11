//! Applying the stream to this node's world, and delivering what it carries to local users.
//!
//! An event from another node changes the replica (a remote user joins a channel) and then its
//! lines go to this node's users. An event of this node's own was applied by the handler when the
//! command came in, so the replica is already right; coming back from the stream it only delivers,
//! to everyone but the user who acted (who got their line at once). Every node so hands the same
//! lines to its users in the stream's order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parley_proto::casefold;
use tokio::time::Instant;

use super::event::{
    ChannelInfo, Envelope, Event, ModeChange, Snapshot, Target, TopicInfo, UserInfo,
};
use super::{Cluster, Local};
use crate::context::line;
use crate::outbound::{HeldWakes, Outbound};
use crate::relay::{escape_tag, wire, with_tag, Relay};
use crate::server::{OperClass, Shared};
use crate::state::{Ban, Channel, ClientId, Invite, MemberStatus, Topic, User, WhowasEntry, World};

pub fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

pub fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The local id of a user anywhere in the cluster, if this node knows them.
pub fn resolve(cluster: &Cluster, world: &World, uid: &str) -> Option<ClientId> {
    if let Some(local) = cluster.local_id(uid) {
        return world.users.contains_key(&local).then_some(local);
    }
    world.remote.get(uid).copied()
}

/// Apply one envelope from the stream. `local` is what this node kept of its own event: the
/// recipients fixed when it happened and the echo a sender waits for.
pub fn apply(
    shared: &Shared,
    cluster: &Cluster,
    envelope: Envelope,
    local: Option<Local>,
    held: &mut HeldWakes,
) {
    let own = envelope.node == cluster.node && envelope.incarnation == cluster.incarnation;
    let Local {
        echo: label,
        recipients: captured,
    } = local.unwrap_or_default();
    let whowas_limit = shared.config.limits.whowas_entries;
    let mut world = shared.world.lock();
    match envelope.event {
        Event::UserUp { user } => {
            if !own {
                add_remote_user(shared, cluster, &mut world, &user);
            }
        }
        Event::Quit {
            uid,
            source,
            reason,
            channels,
        } => {
            if !own {
                if let Some(id) = world.remote.get(&uid).copied() {
                    remove_user(&mut world, id, whowas_limit);
                }
            }
            let bytes = line(Some(&source), "QUIT", &[], Some(&reason));
            let recipients = captured.unwrap_or_else(|| Arc::new(members_of(&world, &channels)));
            for member in recipients.iter() {
                let _ = member.push_held(&bytes, held);
            }
        }
        Event::Nick { uid, source, nick } => {
            let Some(id) = resolve(cluster, &world, &uid) else {
                return;
            };
            if !own {
                rename(&mut world, id, &nick, whowas_limit);
            }
            let bytes = line(Some(&source), "NICK", &[], Some(&nick));
            let recipients = captured.unwrap_or_else(|| Arc::new(world.neighbours(id)));
            for other in recipients.iter() {
                let _ = other.push_held(&bytes, held);
            }
        }
        Event::Account {
            uid,
            source,
            account,
        } => {
            let Some(id) = resolve(cluster, &world, &uid) else {
                return;
            };
            if !own {
                if let Some(user) = world.users.get_mut(&id) {
                    user.account = account.clone();
                }
            }
            let bytes = line(
                Some(&source),
                "ACCOUNT",
                &[account.as_deref().unwrap_or("*")],
                None,
            );
            let recipients = captured.unwrap_or_else(|| Arc::new(world.neighbours(id)));
            for other in recipients.iter() {
                if other.wire_caps() & wire::ACCOUNT_NOTIFY != 0 {
                    let _ = other.push_held(&bytes, held);
                }
            }
        }
        Event::Away { uid, away } => {
            if !own {
                if let Some(user) =
                    resolve(cluster, &world, &uid).and_then(|id| world.users.get_mut(&id))
                {
                    user.away = away;
                }
            }
        }
        Event::Join {
            uid,
            source,
            account,
            realname,
            channel,
            op,
            voice,
        } => {
            let Some(id) = resolve(cluster, &world, &uid) else {
                return;
            };
            let key = casefold(&channel);
            if !own {
                // Made here as its origin made it: the default room with the config's modes.
                if !world.channels.contains_key(&key) {
                    let made = shared.new_channel(&channel);
                    world.channels.insert(key.clone(), made);
                }
                join(&mut world, id, &channel, MemberStatus { op, voice });
            }
            let Some(chan) = world.channels.get(&key) else {
                return;
            };
            let shown = [chan.name.as_str()];
            let relay = Relay::new(&source, account.as_deref(), "JOIN", &shown, None)
                .with_extended_join(account.as_deref().unwrap_or("*"), &realname);
            let actor = world.users.get(&id).map(|u| u.outbound.clone());
            send_except(
                held,
                &relay,
                captured.as_ref().unwrap_or(&chan.snapshot),
                actor.as_ref(),
            );
        }
        Event::Part {
            uid,
            source,
            channel,
            reason,
        } => {
            let key = casefold(&channel);
            if !own {
                if let Some(id) = world.remote.get(&uid).copied() {
                    world.leave_channel(id, &key);
                }
            }
            if let Some(chan) = world.channels.get(&key) {
                let relay = Relay::new(&source, None, "PART", &[&chan.name], reason.as_deref());
                send_except(
                    held,
                    &relay,
                    captured.as_ref().unwrap_or(&chan.snapshot),
                    None,
                );
            }
        }
        Event::Kick {
            source,
            channel,
            target,
            target_nick,
            reason,
            by,
        } => {
            let key = casefold(&channel);
            let bytes = line(
                Some(&source),
                "KICK",
                &[&channel, &target_nick],
                Some(&reason),
            );
            let actor = resolve(cluster, &world, &by)
                .and_then(|id| world.users.get(&id))
                .map(|u| u.outbound.clone());
            if let Some(chan) = world.channels.get(&key) {
                // Before the target leaves, so a target on this node sees its own KICK.
                push_except(
                    held,
                    &bytes,
                    captured.as_ref().unwrap_or(&chan.snapshot),
                    actor.as_ref(),
                );
            }
            if !own {
                if let Some(id) = resolve(cluster, &world, &target) {
                    world.leave_channel(id, &key);
                }
            }
        }
        Event::Topic {
            uid,
            source,
            channel,
            topic,
        } => {
            let key = casefold(&channel);
            let actor = resolve(cluster, &world, &uid)
                .and_then(|id| world.users.get(&id))
                .map(|u| u.outbound.clone());
            let Some(chan) = world.channels.get_mut(&key) else {
                return;
            };
            if !own {
                chan.topic = topic.as_ref().map(|t| Topic {
                    text: t.text.clone(),
                    set_by: t.set_by.clone(),
                    set_at: system_time(t.set_at_ms),
                });
            }
            let text = topic.map(|t| t.text).unwrap_or_default();
            let bytes = line(Some(&source), "TOPIC", &[&chan.name], Some(&text));
            push_except(
                held,
                &bytes,
                captured.as_ref().unwrap_or(&chan.snapshot),
                actor.as_ref(),
            );
        }
        Event::Mode {
            uid,
            source,
            channel,
            changes,
        } => {
            let key = casefold(&channel);
            let actor = resolve(cluster, &world, &uid)
                .and_then(|id| world.users.get(&id))
                .map(|u| u.outbound.clone());
            if !own {
                let setter = source.split('!').next().unwrap_or(&source).to_string();
                apply_modes(&mut world, &key, &changes, &setter);
            }
            let Some(chan) = world.channels.get(&key) else {
                return;
            };
            let bytes = mode_line(&source, &chan.name, &changes);
            push_except(
                held,
                &bytes,
                captured.as_ref().unwrap_or(&chan.snapshot),
                actor.as_ref(),
            );
        }
        Event::Message {
            uid,
            msgid,
            time_ms,
            verb,
            source,
            account,
            to,
            target,
            text,
        } => {
            let verb: &'static str = if verb == "NOTICE" {
                "NOTICE"
            } else {
                "PRIVMSG"
            };
            let relay = Relay::new(&source, account.as_deref(), verb, &[&to], Some(&text))
                .with_identity(&msgid, time_ms);
            let sender = resolve(cluster, &world, &uid)
                .and_then(|id| world.users.get(&id))
                .map(|u| u.outbound.clone());
            match &target {
                _ if captured.is_some() => {
                    if let Some(recipients) = &captured {
                        send_except(held, &relay, recipients, sender.as_ref());
                    }
                }
                Target::Channel(key) => {
                    if let Some(chan) = world.channels.get(key) {
                        send_except(held, &relay, &chan.snapshot, sender.as_ref());
                    }
                }
                Target::User(to_uid) => {
                    if let Some(user) = cluster.local_id(to_uid).and_then(|id| world.users.get(&id))
                    {
                        if sender
                            .as_ref()
                            .is_none_or(|s| !Arc::ptr_eq(s, &user.outbound))
                        {
                            relay.send_held(&user.outbound, held);
                        }
                    }
                }
                Target::Everyone => {
                    for user in world.users.values() {
                        if user.registered
                            && user.remote.is_none()
                            && sender
                                .as_ref()
                                .is_none_or(|s| !Arc::ptr_eq(s, &user.outbound))
                        {
                            relay.send_held(&user.outbound, held);
                        }
                    }
                }
            }
            if let (true, Some(sender)) = (own, &sender) {
                if let Some(label) = label {
                    let bytes = relay.bytes_for(sender.wire_caps());
                    let _ = match label.as_str() {
                        "" => sender.push(bytes),
                        label => {
                            sender.push(&with_tag(bytes, &format!("label={}", escape_tag(label))))
                        }
                    };
                }
            }
        }
        Event::UserModes {
            uid,
            invisible,
            oper,
        } => {
            let Some(id) = world.remote.get(&uid).copied().filter(|_| !own) else {
                return;
            };
            let Some(user) = world.users.get_mut(&id) else {
                return;
            };
            let (was_invisible, was_oper) = (user.invisible, user.oper.is_some());
            user.invisible = invisible;
            user.oper = oper.then_some(user.oper.unwrap_or(OperClass::Moderator));
            let counts = &mut world.counts;
            counts.invisible =
                counts.invisible + usize::from(invisible) - usize::from(was_invisible);
            counts.opers = counts.opers + usize::from(oper) - usize::from(was_oper);
        }
        Event::Invite {
            source,
            channel,
            target,
            target_nick,
            by_operator,
        } => {
            let Some(id) = cluster.local_id(&target).filter(|_| !own) else {
                return;
            };
            let World {
                users, channels, ..
            } = &mut *world;
            if let Some(chan) = channels.get_mut(&casefold(&channel)) {
                chan.invite(
                    id,
                    Invite {
                        by: source.clone(),
                        by_operator,
                    },
                    |id| users.contains_key(&id),
                );
            }
            if let Some(user) = world.users.get(&id) {
                let bytes = line(Some(&source), "INVITE", &[&target_nick, &channel], None);
                let _ = user.outbound.push_held(&bytes, held);
            }
        }
        Event::Kill { uid, reason } => {
            if let Some(user) = cluster.local_id(&uid).and_then(|id| world.users.get(&id)) {
                user.outbound.disconnect(&reason);
            }
        }
        Event::ServerBanAdded { ban } => {
            if own {
                return;
            }
            let victims: Vec<Arc<Outbound>> = world
                .users
                .values()
                .filter(|u| u.registered && u.remote.is_none())
                .filter(|u| match ban.kind.as_str() {
                    "dline" => crate::server::dline_covers(&ban.mask, u.ip),
                    _ => crate::state::mask_matches(&ban.mask, &u.source(), u.account.as_deref()),
                })
                .map(|u| u.outbound.clone())
                .collect();
            drop(world);
            for outbound in victims {
                outbound.disconnect(&format!("Banned: {}", ban.reason));
            }
            let mut bans = shared.server_bans.lock();
            bans.retain(|b| !(b.kind == ban.kind && casefold(&b.mask) == casefold(&ban.mask)));
            bans.push(ban);
        }
        Event::ServerBanRemoved { kind, mask } => {
            if !own {
                drop(world);
                shared
                    .server_bans
                    .lock()
                    .retain(|b| !(b.kind == kind && casefold(&b.mask) == casefold(&mask)));
            }
        }
        Event::NodeDown { node, incarnation } => {
            if node == cluster.node && incarnation == cluster.incarnation {
                // Another node took this one for dead and released its users' nicks: they must
                // connect again rather than chat under names others may now hold.
                let locals: Vec<Arc<Outbound>> = world
                    .users
                    .values()
                    .filter(|u| u.remote.is_none())
                    .map(|u| u.outbound.clone())
                    .collect();
                drop(world);
                tracing::error!(
                    users = locals.len(),
                    "the cluster took this node for dead (it lost contact for longer than the lease); disconnecting its users"
                );
                for outbound in locals {
                    outbound.disconnect("This server lost contact with the rest of the network");
                }
                return;
            }
            let gone: Vec<(String, ClientId)> = world
                .remote
                .iter()
                .filter(|(uid, _)| {
                    super::event::uid_origin(uid).is_some_and(|(n, inc)| {
                        n == node && (incarnation == 0 || inc == incarnation)
                    })
                })
                .map(|(uid, id)| (uid.clone(), *id))
                .collect();
            let reason = format!("{node} lost");
            for (_, id) in gone {
                let Some(user) = world.users.get(&id) else {
                    continue;
                };
                let bytes = line(Some(&user.source()), "QUIT", &[], Some(&reason));
                for other in world.neighbours(id) {
                    let _ = other.push_held(&bytes, held);
                }
                remove_user(&mut world, id, whowas_limit);
            }
        }
    }
}

/// The unique outbound buffers of the members of these channels.
fn members_of(world: &World, channels: &[String]) -> Vec<Arc<Outbound>> {
    let mut seen: HashSet<*const Outbound> = HashSet::new();
    let mut out = Vec::new();
    for key in channels {
        if let Some(chan) = world.channels.get(key) {
            for member in chan.snapshot.iter() {
                if seen.insert(Arc::as_ptr(member)) {
                    out.push(member.clone());
                }
            }
        }
    }
    out
}

fn push_except(
    held: &mut HeldWakes,
    bytes: &[u8],
    members: &[Arc<Outbound>],
    except: Option<&Arc<Outbound>>,
) {
    for member in members {
        if except.is_none_or(|e| !Arc::ptr_eq(e, member)) {
            let _ = member.push_held(bytes, held);
        }
    }
}

fn send_except(
    held: &mut HeldWakes,
    relay: &Relay,
    members: &[Arc<Outbound>],
    except: Option<&Arc<Outbound>>,
) {
    for member in members {
        if except.is_none_or(|e| !Arc::ptr_eq(e, member)) {
            relay.send_held(member, held);
        }
    }
}

pub fn mode_line(source: &str, channel: &str, changes: &[ModeChange]) -> Vec<u8> {
    let mut modes = String::new();
    let mut args: Vec<&str> = Vec::new();
    let mut sign = None;
    for change in changes {
        if sign != Some(change.adding) {
            modes.push(if change.adding { '+' } else { '-' });
            sign = Some(change.adding);
        }
        modes.push(change.mode);
        if let Some(arg) = &change.arg {
            args.push(arg);
        }
    }
    let mut middle: Vec<&str> = vec![channel, &modes];
    middle.extend(args);
    line(Some(source), "MODE", &middle, None)
}

/// A remote user enters the replica (or is already there).
pub fn add_remote_user(
    shared: &Shared,
    cluster: &Cluster,
    world: &mut World,
    info: &UserInfo,
) -> Option<ClientId> {
    if let Some(id) = world.remote.get(&info.uid) {
        return Some(*id);
    }
    if cluster.local_id(&info.uid).is_some() {
        return None;
    }
    let id = shared.next_client_id();
    let user = User {
        id,
        outbound: cluster.sink.clone(),
        nick: info.nick.clone(),
        username: info.username.clone(),
        realname: info.realname.clone(),
        host: info.host.clone(),
        registered: true,
        account: info.account.clone(),
        secure: info.secure,
        ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        oper: info.oper.then_some(OperClass::Moderator),
        wallops: false,
        invisible: info.invisible,
        away: info.away.clone(),
        channels: Default::default(),
        signon: system_time(info.signon_ms),
        last_spoke: Instant::now(),
        remote: Some(info.uid.clone()),
    };
    world.counts.registered += 1;
    world.counts.invisible += usize::from(info.invisible);
    world.counts.opers += usize::from(info.oper);
    world.max_registered = world.max_registered.max(world.counts.registered);
    // The claim in the bus's key-value bucket decided who holds the nick; a stale entry here
    // (a user whose QUIT is still on its way) gives way.
    world.nicks.insert(casefold(&info.nick), id);
    world.users.insert(id, user);
    world.remote.insert(info.uid.clone(), id);
    Some(id)
}

/// A user leaves the replica: out of its channels, its nick free, remembered by WHOWAS.
pub fn remove_user(world: &mut World, id: ClientId, whowas_limit: usize) {
    let channels: Vec<String> = world
        .users
        .get(&id)
        .map(|u| u.channels.iter().cloned().collect())
        .unwrap_or_default();
    for key in channels {
        world.leave_channel(id, &key);
    }
    if let Some(user) = world.remove_user(id) {
        let folded = casefold(&user.nick);
        if world.nicks.get(&folded) == Some(&id) {
            world.nicks.remove(&folded);
        }
        if let Some(uid) = &user.remote {
            world.remote.remove(uid);
        }
        if user.registered {
            world.push_whowas(WhowasEntry::of(&user), whowas_limit);
        }
    }
}

fn rename(world: &mut World, id: ClientId, nick: &str, whowas_limit: usize) {
    let Some(old) = world.users.get(&id).map(|u| u.nick.clone()) else {
        return;
    };
    if let Some(entry) = world.users.get(&id).map(WhowasEntry::of) {
        world.push_whowas(entry, whowas_limit);
    }
    let old_folded = casefold(&old);
    if world.nicks.get(&old_folded) == Some(&id) {
        world.nicks.remove(&old_folded);
    }
    world.nicks.insert(casefold(nick), id);
    let World {
        users, channels, ..
    } = world;
    if let Some(user) = users.get_mut(&id) {
        user.nick = nick.to_string();
        for key in &user.channels {
            if let Some(channel) = channels.get_mut(key) {
                channel.names_changed();
            }
        }
    }
}

/// A member enters a channel in the replica, the channel made if it is new here.
fn join(world: &mut World, id: ClientId, name: &str, status: MemberStatus) {
    let key = casefold(name);
    let Some((nick, outbound)) = world
        .users
        .get(&id)
        .filter(|u| !u.channels.contains(&key))
        .map(|u| (u.nick.clone(), u.outbound.clone()))
    else {
        return;
    };
    let channel = world
        .channels
        .entry(key.clone())
        .or_insert_with(|| Channel::new(name));
    channel.add_member(id, &nick, status, outbound);
    if let Some(user) = world.users.get_mut(&id) {
        user.channels.insert(key);
    }
}

/// Apply mode changes the origin already checked and made.
pub fn apply_modes(world: &mut World, key: &str, changes: &[ModeChange], setter: &str) {
    for change in changes {
        let target = match (change.mode, &change.arg) {
            ('o' | 'v', Some(nick)) => world.user_by_nick(nick).map(|u| u.id),
            _ => None,
        };
        let Some(channel) = world.channels.get_mut(key) else {
            return;
        };
        match change.mode {
            'o' | 'v' => {
                let Some(status) = target.and_then(|id| channel.members.get_mut(&id)) else {
                    continue;
                };
                if change.mode == 'o' {
                    status.op = change.adding;
                } else {
                    status.voice = change.adding;
                }
                channel.names_changed();
            }
            'b' | 'e' | 'I' | 'q' => {
                let (Some(mask), Some(list)) = (&change.arg, channel.list_mut(change.mode)) else {
                    continue;
                };
                let folded = casefold(mask);
                let existing = list.iter().position(|b| casefold(&b.mask) == folded);
                match (change.adding, existing) {
                    (true, None) => list.push(Ban {
                        mask: mask.clone(),
                        set_by: setter.to_string(),
                        set_at: SystemTime::now(),
                    }),
                    (false, Some(pos)) => {
                        list.remove(pos);
                    }
                    _ => {}
                }
            }
            'k' => {
                channel.modes.key = if change.adding {
                    change.arg.clone()
                } else {
                    None
                };
            }
            'l' => {
                channel.modes.limit = if change.adding {
                    change.arg.as_deref().and_then(|a| a.parse().ok())
                } else {
                    None
                };
            }
            'i' => channel.modes.invite_only = change.adding,
            'm' => channel.modes.moderated = change.adding,
            'n' => channel.modes.no_external = change.adding,
            't' => channel.modes.topic_ops_only = change.adding,
            _ => {}
        }
    }
}

/// What this node tells a starting node: its own registered users and their channels.
pub fn snapshot(cluster: &Cluster, world: &World) -> Snapshot {
    let mut users = Vec::new();
    for user in world.users.values() {
        if user.registered && user.remote.is_none() {
            users.push(user_info(cluster, user));
        }
    }
    let mut channels = Vec::new();
    for channel in world.channels.values() {
        let members: Vec<_> = channel
            .order
            .iter()
            .filter_map(|id| {
                let user = world.users.get(id).filter(|u| u.remote.is_none())?;
                let status = channel.status(*id)?;
                Some(super::event::Membership {
                    uid: cluster.uid_of(user.id),
                    op: status.op,
                    voice: status.voice,
                })
            })
            .collect();
        if members.is_empty() {
            continue;
        }
        channels.push(ChannelInfo {
            name: channel.name.clone(),
            created_ms: millis(channel.created),
            topic: channel.topic.as_ref().map(|t| TopicInfo {
                text: t.text.clone(),
                set_by: t.set_by.clone(),
                set_at_ms: millis(t.set_at),
            }),
            modes: channel_modes(channel),
            members,
        });
    }
    Snapshot {
        node: cluster.node.clone(),
        incarnation: cluster.incarnation,
        users,
        channels,
    }
}

pub fn user_info(cluster: &Cluster, user: &User) -> UserInfo {
    UserInfo {
        uid: cluster.uid_of(user.id),
        nick: user.nick.clone(),
        username: user.username.clone(),
        realname: user.realname.clone(),
        host: user.host.clone(),
        account: user.account.clone(),
        secure: user.secure,
        away: user.away.clone(),
        invisible: user.invisible,
        oper: user.oper.is_some(),
        signon_ms: millis(user.signon),
    }
}

/// The mode changes that rebuild a channel's modes and lists.
fn channel_modes(channel: &Channel) -> Vec<ModeChange> {
    // Every flag, on or off: a channel starts +nt, so an off flag must be said too.
    let modes = &channel.modes;
    let mut out: Vec<ModeChange> = [
        ('i', modes.invite_only),
        ('m', modes.moderated),
        ('n', modes.no_external),
        ('t', modes.topic_ops_only),
    ]
    .into_iter()
    .map(|(mode, adding)| ModeChange {
        adding,
        mode,
        arg: None,
    })
    .collect();
    if let Some(key) = &channel.modes.key {
        out.push(ModeChange {
            adding: true,
            mode: 'k',
            arg: Some(key.clone()),
        });
    }
    if let Some(limit) = channel.modes.limit {
        out.push(ModeChange {
            adding: true,
            mode: 'l',
            arg: Some(limit.to_string()),
        });
    }
    for mode in crate::state::LIST_MODES {
        for entry in channel.list(mode).into_iter().flatten() {
            out.push(ModeChange {
                adding: true,
                mode,
                arg: Some(entry.mask.clone()),
            });
        }
    }
    out
}

/// Take in another node's snapshot: its users, their channels and the channels' state.
pub fn merge_snapshot(shared: &Shared, cluster: &Cluster, snapshot: &Snapshot) {
    let mut world = shared.world.lock();
    for user in &snapshot.users {
        add_remote_user(shared, cluster, &mut world, user);
    }
    for info in &snapshot.channels {
        let key = casefold(&info.name);
        let fresh = !world.channels.contains_key(&key);
        let channel = world
            .channels
            .entry(key.clone())
            .or_insert_with(|| Channel::new(&info.name));
        if fresh || channel.members.is_empty() {
            channel.created = system_time(info.created_ms);
            channel.topic = info.topic.as_ref().map(|t| Topic {
                text: t.text.clone(),
                set_by: t.set_by.clone(),
                set_at: system_time(t.set_at_ms),
            });
            apply_modes(&mut world, &key, &info.modes, shared.server_name());
        }
        for member in &info.members {
            if let Some(id) = world.remote.get(&member.uid).copied() {
                join(
                    &mut world,
                    id,
                    &info.name,
                    MemberStatus {
                        op: member.op,
                        voice: member.voice,
                    },
                );
            }
        }
    }
}
