//! Applying the stream to this node's world, and delivering what it carries to local users.
//!
//! An event from another node changes the replica (a remote user joins a channel) and then its
//! lines go to this node's users. An event of this node's own was applied by the handler when the
//! command came in, so the replica is already right; coming back from the stream it only delivers,
//! to everyone but the user who acted (who got their line at once). Every node so hands the same
//! lines to its users in the stream's order.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use parley_proto::casefold;
use tokio::time::Instant;

use super::event::{
    ChannelInfo, Envelope, Event, ModeChange, Snapshot, Target, TopicInfo, Uid, UserInfo,
};
use super::Cluster;
use crate::clock::{millis, system_time};
use crate::fanout::{
    send_except, send_line, send_line_except, send_line_to_caps, send_line_to_notify, Local,
};
use crate::multiline::{next_reference, Multiline, Parts};
use crate::outbound::{HeldWakes, Outbound};
use crate::relay::{escape_tag, notify, wire, with_tag, Relay};
use crate::relay::{line, read_marker_line};
use crate::server::Shared;
use crate::state::{
    valid_host, valid_username, Ban, Channel, ClientId, Invite, MemberList, MemberStatus,
    OperClass, Topic, User, WhowasEntry, World,
};
use crate::store::StoredMessage;

/// The local id of a user anywhere in the cluster, if this node knows them.
pub fn resolve(cluster: &Cluster, world: &World, uid: &str) -> Option<ClientId> {
    if let Some(local) = cluster.local_id(uid) {
        return world.users.contains_key(&local).then_some(local);
    }
    world.remote.get(uid).copied()
}

/// The world under its lock, as each event's function gets it (some let it go early).
type WorldGuard<'a> = parking_lot::MutexGuard<'a, World>;

/// One envelope being applied: what each event's function needs besides the event's fields.
struct Step<'a> {
    shared: &'a Shared,
    cluster: &'a Cluster,
    /// The event is this node's own: its handler changed the world already, so only its lines
    /// are left to deliver.
    own: bool,
    /// For an own event, who on this node gets its line (fixed when it happened).
    captured: Option<MemberList>,
    /// For an own message, the echo its sender waits for (`Some("")`: without a label).
    label: Option<String>,
    /// For an own labeled message, where its echo goes (see `fanout::Local::echo_into`).
    echo_into: Option<crate::fanout::EchoSlot>,
    /// For an own message, the session that sent it (see `fanout::Local::sender`).
    sending_session: Option<Arc<Outbound>>,
    whowas_limit: usize,
    held: &'a mut HeldWakes,
}

impl Step<'_> {
    /// The session that acted: for an own event the one recorded when it happened (a user may
    /// have several, see `command::multiclient`), else the user's buffer.
    fn actor(&mut self, user: Option<&User>) -> Option<Arc<Outbound>> {
        match (self.own, self.sending_session.take()) {
            (true, Some(session)) => Some(session),
            _ => user.map(|u| u.outbound.clone()),
        }
    }

    /// A presence change of user `id` (AWAY, SETNAME, CHGHOST) to those who asked for it with
    /// `bit`: its neighbours and, with extended-monitor, its watchers; for an own event, the
    /// recipients fixed when it happened.
    fn notify(&mut self, world: &World, id: ClientId, bytes: &[u8], bit: u8) {
        let recipients = self
            .captured
            .take()
            .unwrap_or_else(|| world.notify_recipients(id, bit));
        send_line_to_notify(self.held, bytes, &recipients, bit, None);
    }
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
        echo_into,
        sender: sending_session,
    } = local.unwrap_or_default();
    let mut step = Step {
        shared,
        cluster,
        own,
        captured,
        label,
        echo_into,
        sending_session,
        whowas_limit: shared.config.limits.whowas_entries,
        held,
    };
    if let Event::NodeDown {
        node, incarnation, ..
    } = &envelope.event
    {
        // What this node's users sent that node's users since it was last heard from is lost.
        let by = (envelope.node.as_str(), envelope.incarnation);
        cluster.messages_lost(shared, node, *incarnation, by);
        // A node saying its earlier lives are over (incarnation 0) does not end its own.
        let except = (envelope.node == *node).then_some(envelope.incarnation);
        cluster.bridges_lost(node, *incarnation, except);
    }
    let world = shared.world.lock();
    // The dead life's always-on presences are adopted once its users are gone, in the
    // channels and with the status this replica saw them in last (`adopt.rs`).
    let adopt = match &envelope.event {
        Event::NodeDown {
            node, incarnation, ..
        } => super::adopt::Dead::seen(cluster, &world, node, *incarnation, envelope.incarnation),
        _ => None,
    };
    match envelope.event {
        Event::UserUp { user } => user_up(&mut step, world, user),
        Event::Quit {
            uid,
            source,
            reason,
            channels,
        } => quit(&mut step, world, uid, source, reason, channels),
        Event::Nick { uid, source, nick } => nick_changed(&mut step, world, uid, source, nick),
        Event::Account {
            uid,
            source,
            account,
        } => account_changed(&mut step, world, uid, source, account),
        Event::Away { uid, away } => away_changed(&mut step, world, uid, away),
        Event::Realname {
            uid,
            source,
            realname,
        } => realname_changed(&mut step, world, uid, source, realname),
        Event::HostChange {
            uid,
            source,
            username,
            host,
        } => host_changed(&mut step, world, uid, source, username, host),
        Event::Join {
            uid,
            source,
            account,
            realname,
            channel,
            op,
            voice,
        } => joined(
            &mut step, world, uid, source, account, realname, channel, op, voice,
        ),
        Event::Part {
            uid,
            source,
            channel,
            reason,
        } => part(&mut step, world, uid, source, channel, reason),
        Event::Kick {
            source,
            channel,
            target,
            target_nick,
            reason,
            by,
        } => kick(
            &mut step,
            world,
            source,
            channel,
            target,
            target_nick,
            reason,
            by,
        ),
        Event::Topic {
            uid,
            source,
            channel,
            topic,
        } => topic_changed(&mut step, world, uid, source, channel, topic),
        Event::Mode {
            uid,
            source,
            channel,
            changes,
        } => mode(&mut step, world, uid, source, channel, changes),
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
            tags,
        } => message(
            &mut step,
            world,
            uid,
            StoredMessage {
                msgid,
                time_ms,
                target: String::new(),
                kind: verb,
                source,
                account,
                to,
                text,
                tags,
            },
            target,
        ),
        Event::UserModes {
            uid,
            invisible,
            oper,
            bot,
        } => user_modes(&mut step, world, uid, invisible, oper, bot),
        Event::Invite {
            source,
            channel,
            target,
            target_nick,
            by_operator,
            account,
        } => invite(
            &mut step,
            world,
            source,
            account,
            channel,
            target,
            target_nick,
            by_operator,
        ),
        Event::Kill { uid, reason, line } => kill(&mut step, world, uid, reason, line),
        Event::HostChangeRequest {
            uid,
            username,
            host,
        } => host_change_requested(&mut step, world, uid, username, host),
        Event::Rename {
            uid: _,
            source,
            account,
            old,
            new,
            reason,
        } => channel_renamed(&mut step, world, source, account, old, new, reason),
        Event::ServerBanAdded { ban } => server_ban_added(&mut step, world, ban),
        Event::ServerBanRemoved { kind, mask } => server_ban_removed(&mut step, world, kind, mask),
        Event::Wallops { line, .. } => wallops(&mut step, world, line),
        Event::AlwaysOn { uid, account, on } => {
            super::adopt::always_on_changed(shared, cluster, world, &uid, &account, on)
        }
        Event::NodeDown {
            node, incarnation, ..
        } => node_down(&mut step, world, node, incarnation),
        Event::ReadMarker {
            uid,
            account,
            target,
            time_ms,
        } => read_marker(&mut step, world, uid, account, target, time_ms),
        Event::Redact {
            uid,
            source,
            account,
            msgid,
            time_ms,
            target,
            to,
            redacted,
            reason,
        } => {
            let relay = Relay::new(
                &source,
                account.as_deref(),
                "REDACT",
                &[&to, &redacted],
                reason.as_deref(),
            )
            .with_identity(&msgid, time_ms);
            redact(&mut step, world, uid, target, relay)
        }
        Event::Multiline {
            uid,
            msgid,
            time_ms,
            verb,
            source,
            account,
            to,
            target,
            lines,
            tags,
        } => {
            // The replica knows the sender's `+B`, as for `Message`.
            let bot = resolve(step.cluster, &world, &uid)
                .and_then(|id| world.users.get(&id))
                .is_some_and(|u| u.bot);
            let message = Multiline::new(Parts {
                reference: next_reference(),
                verb: if verb == "NOTICE" {
                    "NOTICE"
                } else {
                    "PRIVMSG"
                },
                source: &source,
                account: account.as_deref(),
                to: &to,
                msgid: &msgid,
                time_ms,
                lines: &lines,
                client_tags: &tags,
                bot,
            });
            multiline(&mut step, world, uid, target, message)
        }
    }
    if let Some(dead) = adopt {
        super::adopt::after_node_down(cluster, dead);
    }
}

/// `UserUp`: a user registered on another node: it enters the replica.
fn user_up(step: &mut Step<'_>, mut world: WorldGuard<'_>, user: UserInfo) {
    if !step.own {
        add_remote_user(step.shared, step.cluster, &mut world, &user);
    }
}

/// `Quit`: a user left the network: gone from the replica, and its QUIT to those who shared a channel
/// with it.
fn quit(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    reason: String,
    channels: Vec<String>,
) {
    if !step.own {
        // By uid: a QUIT of a user already gone here is not shown, lest the clients here
        // take it for whoever has the nick now.
        let Some(id) = world.remote.get(&uid).copied() else {
            return;
        };
        remove_user(&mut world, id, step.whowas_limit, step.shared.server_name());
        super::departed(step.cluster, &uid);
    }
    let bytes = line(Some(&source), "QUIT", &[], Some(&reason));
    let recipients = step
        .captured
        .take()
        .unwrap_or_else(|| Arc::new(members_of(&world, &channels)));
    send_line(step.held, &bytes, &recipients);
}

/// `Nick`: a nick change, to the user's neighbours.
fn nick_changed(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    nick: String,
) {
    let Some(id) = resolve(step.cluster, &world, &uid) else {
        return;
    };
    if !step.own {
        rename(
            &mut world,
            id,
            &nick,
            step.whowas_limit,
            step.shared.server_name(),
        );
    }
    let bytes = line(Some(&source), "NICK", &[], Some(&nick));
    let recipients = step
        .captured
        .take()
        .unwrap_or_else(|| Arc::new(world.neighbours(id)));
    send_line(step.held, &bytes, &recipients);
}

/// `Account`: a login or logout, to the neighbours with `account-notify`.
fn account_changed(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    account: Option<String>,
) {
    let Some(id) = resolve(step.cluster, &world, &uid) else {
        return;
    };
    if !step.own {
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
    let recipients = step
        .captured
        .take()
        .unwrap_or_else(|| world.notify_recipients(id, notify::ACCOUNT_NOTIFY));
    send_line_to_caps(step.held, &bytes, &recipients, wire::ACCOUNT_NOTIFY);
}

/// `Away`: an away status set or cleared: the AWAY line to the neighbours (and, with
/// extended-monitor, the watchers) with `away-notify`.
fn away_changed(step: &mut Step<'_>, mut world: WorldGuard<'_>, uid: Uid, away: Option<String>) {
    let Some(id) = resolve(step.cluster, &world, &uid) else {
        return;
    };
    let Some(user) = world.users.get_mut(&id) else {
        return;
    };
    if !step.own {
        user.away = away.clone();
    }
    let bytes = line(Some(&user.source()), "AWAY", &[], away.as_deref());
    step.notify(&world, id, &bytes, notify::AWAY_NOTIFY);
}

/// `Realname`: a SETNAME, to the neighbours (and, with extended-monitor, the watchers) with
/// `setname`.
fn realname_changed(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    realname: String,
) {
    let Some(id) = resolve(step.cluster, &world, &uid) else {
        return;
    };
    if !step.own {
        if let Some(user) = world.users.get_mut(&id) {
            user.realname = realname.clone();
        }
    }
    let bytes = line(Some(&source), "SETNAME", &[], Some(&realname));
    step.notify(&world, id, &bytes, notify::SETNAME);
}

/// `HostChange`: a CHGHOST, to the neighbours (and, with extended-monitor, the watchers) with
/// `chghost`; this node's neighbours without it get the QUIT/JOIN/MODE fallback (for an own
/// event the handler sent that already).
fn host_changed(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    username: String,
    host: String,
) {
    let Some(id) = resolve(step.cluster, &world, &uid) else {
        return;
    };
    if !step.own {
        if let Some(user) = world.users.get_mut(&id) {
            if user.real_mask.is_none() {
                user.real_mask = Some(format!("{}@{}", user.username, user.host));
            }
            user.username = username.clone();
            user.host = host.clone();
        }
    }
    let bytes = line(Some(&source), "CHGHOST", &[&username, &host], None);
    step.notify(&world, id, &bytes, notify::CHGHOST);
    if !step.own {
        for (outbound, lines) in world.host_change_fallback(id, &source, step.shared.server_name())
        {
            let _ = outbound.push_held(&lines, step.held);
        }
    }
}

/// `HostChangeRequest`: an operator of another node ran CHGHOST for a user of this one. The
/// change is made and told here as the handler would, then published as the `HostChange` the
/// other nodes apply (its own copy here delivers to nobody: this node told its users already).
fn host_change_requested(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    username: String,
    host: String,
) {
    let Some(id) = step.cluster.local_id(&uid) else {
        return;
    };
    let ours = world
        .users
        .get(&id)
        .is_some_and(|u| u.remote.is_none() && u.registered);
    // The requesting node checked these; a node is still not trusted to put anything in a mask.
    let limit = step.shared.config.limits.user_len;
    if !ours || !valid_username(&username, limit) || !valid_host(&host) {
        return;
    }
    let server = step.shared.server_name().to_string();
    let held = &mut *step.held;
    let Some(changed) = world.change_host(id, &username, &host, &server, |to, bytes| {
        let _ = to.push_held(bytes, held);
    }) else {
        return;
    };
    send_line_to_notify(
        step.held,
        &changed.line,
        &changed.recipients,
        notify::CHGHOST,
        None,
    );
    drop(world);
    step.cluster.publish_to(
        step.shared,
        Event::HostChange {
            uid,
            source: changed.old_source,
            username,
            host,
        },
        crate::fanout::Local {
            echo: None,
            recipients: Some(Default::default()),
            echo_into: None,
            sender: None,
        },
    );
}

/// `Join`: a member joined: to everyone in the channel but the joiner (who saw it at once).
// The event's own fields, one parameter each, as the stream carries them.
#[allow(clippy::too_many_arguments)]
fn joined(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    account: Option<String>,
    realname: String,
    channel: String,
    op: bool,
    voice: bool,
) {
    let Some(id) = resolve(step.cluster, &world, &uid) else {
        return;
    };
    let key = casefold(&channel);
    if !step.own {
        // Made here as its origin made it: the default room with the config's modes.
        if !world.channels.contains_key(&key) {
            let made = step.shared.new_channel(&channel);
            world.channels.insert(key.clone(), made);
        }
        join(&mut world, id, &channel, MemberStatus { op, voice });
    }
    let Some(chan) = world.channels.get(&key) else {
        return;
    };
    let shown = [chan.name.as_str()];
    let joiner = world.user(id);
    let relay = Relay::new(&source, account.as_deref(), "JOIN", &shown, None)
        .with_extended_join(account.as_deref().unwrap_or("*"), &realname)
        .with_bot(joiner.is_some_and(|u| u.bot));
    let actor = step.actor(joiner);
    let members = step.captured.as_ref().unwrap_or(&chan.snapshot);
    send_except(step.held, &relay, members, actor.as_ref());
    // away-notify: "as well as when a user joins and has an away message set", after the JOIN.
    if let Some(away) = joiner.and_then(|u| u.away.as_deref()) {
        let bytes = line(Some(&source), "AWAY", &[], Some(away));
        send_line_to_notify(
            step.held,
            &bytes,
            members,
            notify::AWAY_NOTIFY,
            actor.as_ref(),
        );
    }
}

/// `Part`: a member left a channel: to those who remain.
fn part(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    channel: String,
    reason: Option<String>,
) {
    let key = casefold(&channel);
    if !step.own {
        // By uid, as for a QUIT: a PART of someone gone here is not shown.
        let Some(id) = world.remote.get(&uid).copied() else {
            return;
        };
        world.leave_channel(id, &key);
    }
    if let Some(chan) = world.channels.get(&key) {
        let relay = Relay::new(&source, None, "PART", &[&chan.name], reason.as_deref());
        send_except(
            step.held,
            &relay,
            step.captured.as_ref().unwrap_or(&chan.snapshot),
            None,
        );
    }
}

/// `Kick`: a member was kicked: to the channel before the target leaves it, so a target here sees its
/// own KICK; the kicker saw it at once.
// The event's own fields, one parameter each, as the stream carries them.
#[allow(clippy::too_many_arguments)]
fn kick(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    source: String,
    channel: String,
    target: Uid,
    target_nick: String,
    reason: String,
    by: Uid,
) {
    let key = casefold(&channel);
    let target_id = resolve(step.cluster, &world, &target);
    if !step.own && target_id.is_none() {
        // The target left already: a KICK naming its nick would hit whoever has it now.
        return;
    }
    let bytes = line(
        Some(&source),
        "KICK",
        &[&channel, &target_nick],
        Some(&reason),
    );
    let actor = step.actor(resolve(step.cluster, &world, &by).and_then(|id| world.user(id)));
    if let Some(chan) = world.channels.get(&key) {
        // Before the target leaves, so a target on this node sees its step.own KICK.
        send_line_except(
            step.held,
            &bytes,
            step.captured.as_ref().unwrap_or(&chan.snapshot),
            actor.as_ref(),
        );
    }
    if !step.own {
        if let Some(id) = target_id {
            world.leave_channel(id, &key);
        }
    }
}

/// `Topic`: a topic set or cleared, to the channel but the setter.
fn topic_changed(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    channel: String,
    topic: Option<TopicInfo>,
) {
    let key = casefold(&channel);
    let actor = step.actor(resolve(step.cluster, &world, &uid).and_then(|id| world.user(id)));
    let Some(chan) = world.channels.get_mut(&key) else {
        return;
    };
    if !step.own {
        chan.topic = topic.as_ref().map(|t| Topic {
            text: t.text.clone(),
            set_by: t.set_by.clone(),
            set_at: system_time(t.set_at_ms),
        });
    }
    let text = topic.map(|t| t.text).unwrap_or_default();
    let bytes = line(Some(&source), "TOPIC", &[&chan.name], Some(&text));
    send_line_except(
        step.held,
        &bytes,
        step.captured.as_ref().unwrap_or(&chan.snapshot),
        actor.as_ref(),
    );
}

/// `Mode`: Channel modes changed, to the channel but the setter.
fn mode(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    source: String,
    channel: String,
    mut changes: Vec<ModeChange>,
) {
    let key = casefold(&channel);
    let actor = step.actor(resolve(step.cluster, &world, &uid).and_then(|id| world.user(id)));
    if !step.own {
        // A `+o`/`+v` for a member who left meanwhile is neither made nor shown: its line
        // would name the nick, which may be someone else's by now.
        changes.retain(|change| {
            change
                .member
                .as_ref()
                .is_none_or(|member| resolve(step.cluster, &world, member).is_some())
        });
        if changes.is_empty() {
            return;
        }
        let setter = source.split('!').next().unwrap_or(&source).to_string();
        apply_modes(step.cluster, &mut world, &key, &changes, &setter);
    }
    let Some(chan) = world.channels.get(&key) else {
        return;
    };
    let bytes = mode_line(&source, &chan.name, &changes);
    send_line_except(
        step.held,
        &bytes,
        step.captured.as_ref().unwrap_or(&chan.snapshot),
        actor.as_ref(),
    );
}

/// `Message`: a PRIVMSG or NOTICE, to its channel, user or everyone, and the echo its sender waits for.
// The event's own fields, one parameter each, as the stream carries them.
#[allow(clippy::too_many_arguments)]
fn message(
    step: &mut Step<'_>,
    world: WorldGuard<'_>,
    uid: Uid,
    message: StoredMessage,
    target: Target,
) {
    let sender_user = resolve(step.cluster, &world, &uid).and_then(|id| world.user(id));
    // The replica knows the sender's `+B` (UserInfo, UserModes), so the event need not say it.
    let relay = Relay::of_message(&message).with_bot(sender_user.is_some_and(|u| u.bot));
    // The session that sent it, for an own message of a user with several sessions: the
    // others get it as recipients.
    let sender = step.actor(sender_user);
    match &target {
        // The sender's own copy of a message to itself is sent once, below.
        _ if step.captured.is_some() => {
            if let Some(recipients) = &step.captured {
                send_except(step.held, &relay, recipients, sender.as_ref());
            }
        }
        Target::Channel(key) => {
            if let Some(chan) = world.channels.get(key) {
                // A STATUSMSG (`@#chan`) keeps its prefix in `to`: only those it names get it.
                match crate::isupport::split_statusmsg(&message.to).0 {
                    Some(prefix) => {
                        let reached = chan.status_members(prefix);
                        send_except(step.held, &relay, &reached, sender.as_ref());
                    }
                    None => send_except(step.held, &relay, &chan.snapshot, sender.as_ref()),
                }
            }
        }
        Target::User(to_uid) => {
            if let Some(user) = step
                .cluster
                .local_id(to_uid)
                .and_then(|id| world.users.get(&id))
            {
                // Every session of the recipient (one user, several devices).
                send_except(step.held, &relay, &user.sessions, sender.as_ref());
            }
        }
        Target::Everyone => {
            for user in world.users.values() {
                if user.registered && user.remote.is_none() {
                    send_except(step.held, &relay, &user.sessions, sender.as_ref());
                }
            }
        }
    }
    // A private message to oneself reaches its sender as a recipient too, once (the branches
    // above skip the sender), besides any echo.
    if let (Target::User(to_uid), Some(sender)) = (&target, &sender) {
        if *to_uid == uid {
            relay.send_held(sender, step.held);
        }
    }
    if let (true, Some(sender)) = (step.own, &sender) {
        if let Some(label) = step.label.take() {
            let bytes = relay.bytes_for(sender.wire_caps());
            if let Some(slot) = step.echo_into.take() {
                return crate::fanout::fill_echo(slot, bytes, sender, step.held);
            }
            let _ = match label.as_str() {
                // A TAGMSG the sender may not get (no `message-tags`): no echo.
                _ if bytes.is_empty() => Ok(()),
                "" => sender.push(bytes),
                label => sender.push(&with_tag(bytes, &format!("label={}", escape_tag(label)))),
            };
        }
    }
}

/// `Rename`: a channel renamed on another node: moved here too, and this node's members told
/// (the origin did both already).
fn channel_renamed(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    source: String,
    account: Option<String>,
    old: String,
    new: String,
    reason: String,
) {
    if step.own {
        return;
    }
    let Some(key) = world.rename_channel(&casefold(&old), &new) else {
        return;
    };
    let server = step.shared.server_name();
    crate::fanout::rename(
        &mut world,
        &key,
        &old,
        (&source, account.as_deref()),
        &reason,
        server,
        |out, bytes| {
            let _ = out.push(bytes);
        },
    );
}

/// `UserModes`: a remote user's own modes (`+i`, operator, `+B`) changed.
fn user_modes(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    uid: Uid,
    invisible: bool,
    oper: bool,
    bot: bool,
) {
    let Some(id) = world.remote.get(&uid).copied().filter(|_| !step.own) else {
        return;
    };
    let Some(user) = world.users.get_mut(&id) else {
        return;
    };
    let (was_invisible, was_oper) = (user.invisible, user.oper.is_some());
    user.invisible = invisible;
    user.bot = bot;
    user.oper = oper.then_some(user.oper.unwrap_or(OperClass::Moderator));
    let counts = &mut world.counts;
    counts.invisible = counts.invisible + usize::from(invisible) - usize::from(was_invisible);
    counts.opers = counts.opers + usize::from(oper) - usize::from(was_oper);
}

/// `Invite`: an invite for a user of this node: let them in, and tell them.
#[allow(clippy::too_many_arguments)]
fn invite(
    step: &mut Step<'_>,
    mut world: WorldGuard<'_>,
    source: String,
    account: Option<String>,
    channel: String,
    target: Uid,
    target_nick: String,
    by_operator: bool,
) {
    if step.own {
        return;
    }
    // Tagged as on the inviter's own node (account-tag, server-time).
    let relay = Relay::new(
        &source,
        account.as_deref(),
        "INVITE",
        &[&target_nick, &channel],
        None,
    );
    let key = casefold(&channel);
    let target_id = resolve(step.cluster, &world, &target);
    // invite-notify: this node's operators of the channel who asked.
    let except: Vec<ClientId> = target_id.into_iter().collect();
    for op in world.invite_notified(&key, &except) {
        relay.send_held(&op, step.held);
    }
    let Some(id) = step.cluster.local_id(&target) else {
        return;
    };
    let World {
        users, channels, ..
    } = &mut *world;
    if let Some(chan) = channels.get_mut(&key) {
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
        for session in &user.sessions {
            relay.send_held(session, step.held);
        }
    }
}

/// `Kill`: an operator's KILL of a user of this node.
fn kill(step: &mut Step<'_>, world: WorldGuard<'_>, uid: Uid, reason: String, line: String) {
    if let Some(user) = step
        .cluster
        .local_id(&uid)
        .and_then(|id| world.users.get(&id))
    {
        // Every session: a KILL ends the user, not one of its devices.
        for session in &user.sessions {
            if line.is_empty() {
                session.disconnect(&reason);
            } else {
                let server = step.shared.server_name();
                session.killed_by(line.as_bytes(), server, &reason);
            }
        }
    }
}

/// `ReadMarker`: the account's sessions on this node with `draft/read-marker` learn it, but
/// the one that set it.
fn read_marker(
    step: &mut Step<'_>,
    world: WorldGuard<'_>,
    uid: Uid,
    account: String,
    target: String,
    time_ms: i64,
) {
    // Only a session of the account moves its marker (a node may speak only for its own
    // users, `trust::actor`; this ties the account to that user too).
    let setter = resolve(step.cluster, &world, &uid);
    let by_account = setter
        .and_then(|id| world.users.get(&id))
        .and_then(|u| u.account.as_deref())
        .is_some_and(|a| casefold(a) == account);
    if !by_account {
        return;
    }
    let sessions = world.sessions_of(&account, wire::READ_MARKER, setter);
    drop(world);
    let bytes = read_marker_line(step.shared.server_name(), &target, Some(time_ms));
    for session in sessions {
        let _ = session.push_held(&bytes, step.held);
    }
}

/// `Redact`: to the conversation's members here with `draft/message-redaction`, but the one
/// who redacted (told at once).
fn redact(step: &mut Step<'_>, world: WorldGuard<'_>, uid: Uid, target: Target, relay: Relay) {
    let actor = step.actor(resolve(step.cluster, &world, &uid).and_then(|id| world.user(id)));
    let recipients: Vec<Arc<Outbound>> = match (step.captured.take(), target) {
        (Some(captured), _) => captured.to_vec(),
        (None, Target::Channel(key)) => world
            .channels
            .get(&key)
            .map(|c| c.snapshot.to_vec())
            .unwrap_or_default(),
        (None, Target::User(them)) => resolve(step.cluster, &world, &them)
            .and_then(|id| world.users.get(&id))
            .map(|u| u.sessions.clone())
            .unwrap_or_default(),
        (None, Target::Everyone) => Vec::new(),
    };
    drop(world);
    for recipient in recipients {
        let is_actor = actor.as_ref().is_some_and(|a| Arc::ptr_eq(a, &recipient));
        if !is_actor && recipient.wire_caps() & wire::MESSAGE_REDACTION != 0 {
            relay.send_held(&recipient, step.held);
        }
    }
}

/// `Multiline`: as `Message`, one batch to each recipient here, and the sender's echo.
fn multiline(
    step: &mut Step<'_>,
    world: WorldGuard<'_>,
    uid: Uid,
    target: Target,
    message: Multiline,
) {
    let sender = step.actor(resolve(step.cluster, &world, &uid).and_then(|id| world.user(id)));
    let recipients: Vec<Arc<Outbound>> = match (step.captured.take(), target) {
        (Some(captured), _) => captured.to_vec(),
        (None, Target::Channel(key)) => world
            .channels
            .get(&key)
            .map(|c| c.snapshot.to_vec())
            .unwrap_or_default(),
        (None, Target::User(them)) => step
            .cluster
            .local_id(&them)
            .and_then(|id| world.users.get(&id))
            .map(|u| u.sessions.clone())
            .unwrap_or_default(),
        (None, Target::Everyone) => Vec::new(),
    };
    drop(world);
    for recipient in &recipients {
        if sender
            .as_ref()
            .is_none_or(|own| !Arc::ptr_eq(own, recipient))
        {
            message.send_held(recipient, None, step.held);
        }
    }
    if let (true, Some(sender)) = (step.own, &sender) {
        if let Some(label) = step.label.take() {
            let label = Some(label.as_str()).filter(|l| !l.is_empty());
            message.send_held(sender, label, step.held);
        }
    }
}

/// `ServerBanAdded`: a KLINE or DLINE: enforced here too, on the users it covers.
fn server_ban_added(step: &mut Step<'_>, world: WorldGuard<'_>, ban: crate::store::ServerBan) {
    if step.own {
        return;
    }
    let victims: Vec<Arc<Outbound>> = world
        .users
        .values()
        .filter(|u| u.registered && u.remote.is_none())
        .filter(|u| match ban.kind.as_str() {
            "dline" => crate::server::dline_covers(&ban.mask, u.ip),
            _ => u.matches_mask(&ban.mask),
        })
        .flat_map(|u| u.sessions.iter().cloned())
        .collect();
    drop(world);
    for outbound in victims {
        outbound.disconnect(&format!("Banned: {}", ban.reason));
    }
    let mut bans = step.shared.server_bans.lock();
    bans.retain(|b| !(b.kind == ban.kind && casefold(&b.mask) == casefold(&ban.mask)));
    bans.push(ban);
}

/// `Wallops`: to this node's own users with `+w` (the sender's node gave it to its own).
fn wallops(step: &mut Step<'_>, world: WorldGuard<'_>, line: String) {
    if step.own {
        return;
    }
    for user in world.users.values() {
        if user.registered && user.wallops && user.remote.is_none() {
            for session in &user.sessions {
                let _ = session.push_held(line.as_bytes(), step.held);
            }
        }
    }
}

/// `ServerBanRemoved`: a KLINE or DLINE lifted.
fn server_ban_removed(step: &mut Step<'_>, world: WorldGuard<'_>, kind: String, mask: String) {
    if !step.own {
        drop(world);
        step.shared
            .server_bans
            .lock()
            .retain(|b| !(b.kind == kind && casefold(&b.mask) == casefold(&mask)));
    }
}

/// Said of this very life: its always-on users kept without a session are the survivors'
/// now (one of them adopts each, `adopt.rs`), so they go from here without a word (the others
/// dropped them already); a login of theirs here then goes to the adopter.
fn drop_kept_leftovers(shared: &Shared, world: &mut World) {
    let kept: Vec<(ClientId, Option<String>)> = world
        .users
        .values()
        .filter(|u| u.remote.is_none() && u.registered && u.sessions.is_empty())
        .map(|u| (u.id, u.account.clone()))
        .collect();
    for (id, account) in kept {
        let channels: Vec<String> = world
            .users
            .get(&id)
            .map(|u| u.channels.iter().cloned().collect())
            .unwrap_or_default();
        for key in channels {
            world.leave_channel(id, &key);
        }
        world.monitors.clear(id);
        if let Some(user) = world.remove_user(id) {
            let folded = parley_proto::casefold(&user.nick);
            if world.nicks.get(&folded) == Some(&id) {
                world.nicks.remove(&folded);
            }
        }
        if let Some(account) = account {
            shared
                .always_on
                .take_detached(&parley_proto::casefold(&account), id);
        }
        tracing::info!(
            user = id.0,
            "always-on: a kept user of this node, given up by the others, goes"
        );
    }
}

/// `NodeDown`: a node died (or restarted): its users quit; said of this node, its users must reconnect.
fn node_down(step: &mut Step<'_>, mut world: WorldGuard<'_>, node: String, incarnation: u64) {
    if node == step.cluster.node && incarnation == step.cluster.incarnation {
        // Another node took this one for dead and released its users' nicks: they must
        // connect again rather than chat under names others may now hold.
        let locals: Vec<Arc<Outbound>> = world
            .users
            .values()
            .filter(|u| u.remote.is_none())
            .flat_map(|u| u.sessions.iter().cloned())
            .collect();
        drop_kept_leftovers(step.shared, &mut world);
        drop(world);
        tracing::error!(
            users = locals.len(),
            "the step.cluster took this node for dead (it lost contact for longer than the lease); disconnecting its users"
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
            super::event::uid_origin(uid)
                .is_some_and(|(n, inc)| n == node && (incarnation == 0 || inc == incarnation))
        })
        .map(|(uid, id)| (uid.clone(), *id))
        .collect();
    let reason = format!("{node} lost");
    for (uid, id) in gone {
        super::departed(step.cluster, &uid);
        let Some(user) = world.users.get(&id) else {
            continue;
        };
        let bytes = line(Some(&user.source()), "QUIT", &[], Some(&reason));
        send_line(step.held, &bytes, &world.neighbours(id));
        remove_user(&mut world, id, step.whowas_limit, step.shared.server_name());
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
        sessions: vec![cluster.sink.clone()],
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
        bot: info.bot,
        away: info.away.clone(),
        channels: Default::default(),
        signon: system_time(info.signon_ms),
        last_spoke: Instant::now(),
        remote: Some(info.uid.clone()),
        real_mask: None,
    };
    world.counts.registered += 1;
    world.counts.invisible += usize::from(info.invisible);
    world.counts.opers += usize::from(info.oper);
    world.max_registered = world.max_registered.max(world.counts.registered);
    // The claim in the bus's key-value bucket decided who holds the nick; a stale entry here
    // (a user whose QUIT is still on its way) gives way.
    world.nicks.insert(casefold(&info.nick), id);
    let source = user.source();
    world.users.insert(id, Box::new(user));
    world.remote.insert(info.uid.clone(), id);
    world.monitor_online(shared.server_name(), &info.nick, &source);
    Some(id)
}

/// A user leaves the replica: out of its channels, its nick free, remembered by WHOWAS, and
/// those who MONITOR it told (`server` is this node's name, their numerics' source).
pub fn remove_user(world: &mut World, id: ClientId, whowas_limit: usize, server: &str) {
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
            world.monitor_offline(server, &user.nick);
        }
    }
}

fn rename(world: &mut World, id: ClientId, nick: &str, whowas_limit: usize, server: &str) {
    let Some(old) = world.users.get(&id).map(|u| u.nick.clone()) else {
        return;
    };
    if let Some(entry) = world.users.get(&id).map(|u| WhowasEntry::of(u)) {
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
    if let Some(source) = world.users.get(&id).map(|u| u.source()) {
        world.monitor_renamed(server, &old, nick, &source);
    }
}

/// A member enters a channel in the replica, the channel made if it is new here.
fn join(world: &mut World, id: ClientId, name: &str, status: MemberStatus) {
    let key = casefold(name);
    let Some((nick, sessions)) = world
        .users
        .get(&id)
        .filter(|u| !u.channels.contains(&key))
        .map(|u| (u.nick.clone(), u.sessions.clone()))
    else {
        return;
    };
    let channel = world
        .channels
        .entry(key.clone())
        .or_insert_with(|| Channel::new(name));
    channel.add_member(id, &nick, status, &sessions);
    if let Some(user) = world.users.get_mut(&id) {
        user.channels.insert(key);
    }
}

/// Apply mode changes the origin already checked and made. A `+o`/`+v` names its member by
/// uid (by nick only from older nodes): one who left meanwhile is skipped, not taken for the
/// nick's next holder.
pub fn apply_modes(
    cluster: &Cluster,
    world: &mut World,
    key: &str,
    changes: &[ModeChange],
    setter: &str,
) {
    for change in changes {
        let target = match (change.mode, &change.member, &change.arg) {
            ('o' | 'v', Some(uid), _) => resolve(cluster, world, uid),
            ('o' | 'v', None, Some(nick)) => world.user_by_nick(nick).map(|u| u.id),
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
            's' => channel.modes.secret = change.adding,
            'C' => channel.modes.no_ctcp = change.adding,
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
        bot: user.bot,
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
        ('s', modes.secret),
        ('C', modes.no_ctcp),
        ('t', modes.topic_ops_only),
    ]
    .into_iter()
    .map(|(mode, adding)| ModeChange {
        adding,
        mode,
        arg: None,
        member: None,
    })
    .collect();
    if let Some(key) = &channel.modes.key {
        out.push(ModeChange {
            adding: true,
            mode: 'k',
            arg: Some(key.clone()),
            member: None,
        });
    }
    if let Some(limit) = channel.modes.limit {
        out.push(ModeChange {
            adding: true,
            mode: 'l',
            arg: Some(limit.to_string()),
            member: None,
        });
    }
    for mode in crate::state::LIST_MODES {
        for entry in channel.list(mode).into_iter().flatten() {
            out.push(ModeChange {
                adding: true,
                mode,
                arg: Some(entry.mask.clone()),
                member: None,
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
            apply_modes(cluster, &mut world, &key, &info.modes, shared.server_name());
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
