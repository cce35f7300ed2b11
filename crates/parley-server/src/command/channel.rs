//! Channel commands other than JOIN/PART/MODE: TOPIC, NAMES, LIST, INVITE, KICK, and the
//! topic and names replies that JOIN sends too.

use std::time::{SystemTime, UNIX_EPOCH};

use parley_proto::{casefold, numeric, write_line, Message};

use std::sync::Arc;

use crate::cluster::event::{Event, TopicInfo};
use crate::context::{line, Ctx};
use crate::state::{Invite, Topic, World};
use crate::store::StateChange;

/// Room left for nicks in one 353 line, keeping it under 512 bytes with the longest prefix.
const NAMES_LINE_BUDGET: usize = 400;

pub fn unix_time(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string()
}

/// RPL_TOPIC + RPL_TOPICWHOTIME, or RPL_NOTOPIC when asked explicitly.
pub fn send_topic(ctx: &Ctx<'_>, world: &World, key: &str, reply_if_none: bool) {
    let Some(channel) = world.channels.get(key) else {
        return;
    };
    match &channel.topic {
        Some(topic) => {
            ctx.numeric(numeric::RPL_TOPIC, &[&channel.name], Some(&topic.text));
            ctx.numeric(
                numeric::RPL_TOPICWHOTIME,
                &[&channel.name, &topic.set_by, &unix_time(topic.set_at)],
                None,
            );
        }
        None if reply_if_none => ctx.numeric(
            numeric::RPL_NOTOPIC,
            &[&channel.name],
            Some("No topic is set"),
        ),
        None => {}
    }
}

/// RPL_NAMREPLY lines and RPL_ENDOFNAMES, queued together. Invisible users are hidden from
/// non-members. Members get the channel's kept list ([`crate::state::Channel::member_names`]),
/// so the NAMES of a join into a big channel costs a copy of its bytes, not a lookup per member.
pub fn send_names(ctx: &Ctx<'_>, world: &mut World, key: &str) {
    let World {
        users, channels, ..
    } = world;
    let Some(channel) = channels.get_mut(key) else {
        return;
    };
    let is_member = channel.status(ctx.session.id).is_some();
    let caps = ctx.session.caps;
    let shown = channel.name.clone();
    let built;
    let names = if is_member && !caps.userhost_in_names {
        channel.member_names(users, caps.multi_prefix)
    } else {
        let mut list = String::new();
        for id in &channel.order {
            let (Some(user), Some(status)) = (users.get(id), channel.status(*id)) else {
                continue;
            };
            if !is_member && user.invisible {
                continue;
            }
            if !list.is_empty() {
                list.push(' ');
            }
            list.push_str(status.prefixes(caps.multi_prefix));
            if caps.userhost_in_names {
                list.push_str(&user.source());
            } else {
                list.push_str(&user.nick);
            }
        }
        built = list;
        &built
    };
    let server = Some(ctx.shared.server_name());
    let nick = ctx.session.nick_or_star();
    let mut out = Vec::with_capacity(names.len() + (names.len() / NAMES_LINE_BUDGET + 2) * 80);
    for chunk in names_chunks(names) {
        let middle = [nick, "=", shown.as_str()];
        write_line(
            &mut out,
            &[],
            server,
            numeric::RPL_NAMREPLY,
            &middle,
            Some(chunk),
        );
    }
    let middle = [nick, shown.as_str()];
    let end = Some("End of /NAMES list");
    write_line(&mut out, &[], server, numeric::RPL_ENDOFNAMES, &middle, end);
    ctx.send_lines(&out);
}

/// A space-separated list cut at spaces into pieces of at most [`NAMES_LINE_BUDGET`] bytes (a
/// single name longer than that, which the nick limit rules out, makes a piece of its own).
fn names_chunks(mut names: &str) -> impl Iterator<Item = &str> {
    std::iter::from_fn(move || {
        if names.is_empty() {
            return None;
        }
        if names.len() <= NAMES_LINE_BUDGET {
            return Some(std::mem::take(&mut names));
        }
        let bytes = names.as_bytes();
        let cut = bytes[..=NAMES_LINE_BUDGET]
            .iter()
            .rposition(|b| *b == b' ')
            .or_else(|| bytes.iter().position(|b| *b == b' '))
            .unwrap_or(names.len());
        let (chunk, rest) = names.split_at(cut);
        names = rest.strip_prefix(' ').unwrap_or(rest);
        Some(chunk)
    })
}

pub fn names(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let Some(list) = msg.param(0).filter(|p| !p.is_empty()) else {
        ctx.numeric(numeric::RPL_ENDOFNAMES, &["*"], Some("End of /NAMES list"));
        return;
    };
    for name in list.split(',').filter(|n| !n.is_empty()) {
        let key = casefold(name);
        let mut world = ctx.shared.world.lock();
        if world.channels.contains_key(&key) {
            send_names(ctx, &mut world, &key);
        } else {
            drop(world);
            ctx.numeric(numeric::RPL_ENDOFNAMES, &[name], Some("End of /NAMES list"));
        }
    }
}

pub fn topic(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if !ctx.need_params(msg, 1) {
        return;
    }
    let name = msg.params[0];
    let key = casefold(name);
    let id = ctx.session.id;
    let mut world = ctx.shared.world.lock();
    let Some(channel) = world.channels.get(&key) else {
        drop(world);
        ctx.numeric(numeric::ERR_NOSUCHCHANNEL, &[name], Some("No such channel"));
        return;
    };
    let Some(new_topic) = msg.param(1) else {
        send_topic(ctx, &world, &key, true);
        return;
    };
    let shown = channel.name.clone();
    let Some(status) = channel.status(id) else {
        drop(world);
        ctx.numeric(
            numeric::ERR_NOTONCHANNEL,
            &[&shown],
            Some("You're not on that channel"),
        );
        return;
    };
    let oper = world.users.get(&id).and_then(|u| u.oper);
    if channel.modes.topic_ops_only && !ctx.shared.may_moderate(&key, Some(status), oper) {
        drop(world);
        ctx.numeric(
            numeric::ERR_CHANOPRIVSNEEDED,
            &[&shown],
            Some("You're not channel operator"),
        );
        return;
    }
    let Some(user) = world.users.get(&id) else {
        return;
    };
    let source = user.source();
    let nick = user.nick.clone();
    let text: String = new_topic
        .chars()
        .take(ctx.shared.config.limits.topic_len)
        .collect();
    let Some(channel) = world.channels.get_mut(&key) else {
        return;
    };
    channel.topic = if text.is_empty() {
        None
    } else {
        Some(Topic {
            text: text.clone(),
            set_by: nick,
            set_at: SystemTime::now(),
        })
    };
    let bytes = line(Some(&source), "TOPIC", &[&channel.name], Some(&text));
    let announce = match &ctx.shared.cluster {
        Some(cluster) => {
            let _ = ctx.outbound.push(&bytes);
            Some((
                channel.snapshot.clone(),
                Event::Topic {
                    uid: cluster.uid_of(id),
                    source: source.clone(),
                    channel: channel.name.clone(),
                    topic: channel.topic.as_ref().map(|t| TopicInfo {
                        text: t.text.clone(),
                        set_by: t.set_by.clone(),
                        set_at_ms: crate::cluster::apply::millis(t.set_at),
                    }),
                },
            ))
        }
        None => {
            for member in channel.snapshot.iter() {
                let _ = member.push(&bytes);
            }
            None
        }
    };
    if let Some(record) = channel.record() {
        ctx.shared
            .history
            .persist(StateChange::SaveChannel(Box::new(record)));
    }
    drop(world);
    if let (Some(cluster), Some((members, event))) = (&ctx.shared.cluster, announce) {
        cluster.announce(ctx.shared, event, members);
    }
}

pub fn list(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let wanted: Option<Vec<String>> = msg
        .param(0)
        .filter(|p| !p.is_empty())
        .map(|p| p.split(',').map(casefold).collect());
    ctx.numeric(numeric::RPL_LISTSTART, &["Channel"], Some("Users  Name"));
    let rows: Vec<(String, String, String)> = {
        let world = ctx.shared.world.lock();
        let mut rows: Vec<_> = world
            .channels
            .iter()
            .filter(|(key, _)| wanted.as_ref().is_none_or(|w| w.contains(key)))
            .map(|(_, c)| {
                (
                    c.name.clone(),
                    c.members.len().to_string(),
                    c.topic.as_ref().map(|t| t.text.clone()).unwrap_or_default(),
                )
            })
            .collect();
        rows.sort();
        rows
    };
    for (name, count, topic) in rows {
        ctx.numeric(numeric::RPL_LIST, &[&name, &count], Some(&topic));
    }
    ctx.numeric(numeric::RPL_LISTEND, &[], Some("End of /LIST"));
}

pub fn invite(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if !ctx.need_params(msg, 2) {
        return;
    }
    let (target_nick, name) = (msg.params[0], msg.params[1]);
    let id = ctx.session.id;
    let key = casefold(name);
    let mut world = ctx.shared.world.lock();
    let Some(target) = world.user_by_nick(target_nick) else {
        drop(world);
        ctx.numeric(
            numeric::ERR_NOSUCHNICK,
            &[target_nick],
            Some("No such nick/channel"),
        );
        return;
    };
    let (target_id, target_nick, target_out) =
        (target.id, target.nick.clone(), target.outbound.clone());
    let target_away = target.away.clone();
    let Some(channel) = world.channels.get(&key) else {
        drop(world);
        ctx.numeric(numeric::ERR_NOSUCHCHANNEL, &[name], Some("No such channel"));
        return;
    };
    let shown = channel.name.clone();
    let oper = world.users.get(&id).and_then(|u| u.oper);
    let by_operator = ctx.shared.may_moderate(&key, channel.status(id), oper);
    let refusal = match channel.status(id) {
        None => Some((numeric::ERR_NOTONCHANNEL, "You're not on that channel")),
        Some(_) if channel.modes.invite_only && !by_operator => {
            Some((numeric::ERR_CHANOPRIVSNEEDED, "You're not channel operator"))
        }
        Some(_) if channel.status(target_id).is_some() => {
            Some((numeric::ERR_USERONCHANNEL, "is already on channel"))
        }
        Some(_) => None,
    };
    if let Some((code, text)) = refusal {
        drop(world);
        if code == numeric::ERR_USERONCHANNEL {
            ctx.numeric(code, &[&target_nick, &shown], Some(text));
        } else {
            ctx.numeric(code, &[&shown], Some(text));
        }
        return;
    }
    let Some(source) = world.users.get(&id).map(|u| u.source()) else {
        return;
    };
    let remote_target = world.users.get(&target_id).and_then(|u| u.remote.clone());
    let World {
        users, channels, ..
    } = &mut *world;
    if let Some(channel) = channels.get_mut(&key) {
        channel.invite(
            target_id,
            Invite {
                by: source.clone(),
                by_operator,
            },
            |id| users.contains_key(&id),
        );
    }
    drop(world);
    if let (Some(cluster), Some(target)) = (&ctx.shared.cluster, remote_target) {
        // Their own node lets them in and tells them.
        let event = Event::Invite {
            source: source.clone(),
            channel: shown.clone(),
            target,
            target_nick: target_nick.clone(),
            by_operator,
        };
        cluster.publish(ctx.shared, event, None);
    }
    ctx.numeric(numeric::RPL_INVITING, &[&target_nick, &shown], None);
    if let Some(away) = target_away {
        ctx.numeric(numeric::RPL_AWAY, &[&target_nick], Some(&away));
    }
    let _ = target_out.push(&line(
        Some(&source),
        "INVITE",
        &[&target_nick, &shown],
        None,
    ));
}

pub fn kick(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    if !ctx.need_params(msg, 2) {
        return;
    }
    let name = msg.params[0];
    let key = casefold(name);
    let id = ctx.session.id;
    let kick_len = ctx.shared.config.limits.kick_len;
    let mut world = ctx.shared.world.lock();
    let Some(channel) = world.channels.get(&key) else {
        drop(world);
        ctx.numeric(numeric::ERR_NOSUCHCHANNEL, &[name], Some("No such channel"));
        return;
    };
    let shown = channel.name.clone();
    let oper = world.users.get(&id).and_then(|u| u.oper);
    match channel.status(id) {
        None => {
            drop(world);
            ctx.numeric(
                numeric::ERR_NOTONCHANNEL,
                &[&shown],
                Some("You're not on that channel"),
            );
            return;
        }
        Some(s) if !ctx.shared.may_moderate(&key, Some(s), oper) => {
            drop(world);
            ctx.numeric(
                numeric::ERR_CHANOPRIVSNEEDED,
                &[&shown],
                Some("You're not channel operator"),
            );
            return;
        }
        Some(_) => {}
    }
    let Some(source) = world.users.get(&id).map(|u| u.source()) else {
        return;
    };
    let default_reason = ctx.session.nick.clone();
    let reason: String = msg
        .param(2)
        .filter(|r| !r.is_empty())
        .unwrap_or(&default_reason)
        .chars()
        .take(kick_len)
        .collect();
    let mut kicks = Vec::new();
    for target_nick in msg.params[1].split(',').filter(|n| !n.is_empty()) {
        let target = world
            .user_by_nick(target_nick)
            .map(|u| (u.id, u.nick.clone()));
        let on_channel = target
            .as_ref()
            .and_then(|(tid, _)| world.channels.get(&key).and_then(|c| c.status(*tid)));
        let (Some((target_id, target_nick)), Some(_)) = (target, on_channel) else {
            ctx.numeric(
                numeric::ERR_USERNOTINCHANNEL,
                &[target_nick, &shown],
                Some("They aren't on that channel"),
            );
            continue;
        };
        if let Some(channel) = world.channels.get(&key) {
            let bytes = line(
                Some(&source),
                "KICK",
                &[&shown, &target_nick],
                Some(&reason),
            );
            match &ctx.shared.cluster {
                Some(cluster) => {
                    // The kicker, and the target if it is here, now; the rest from the stream.
                    let _ = ctx.outbound.push(&bytes);
                    if let Some(target) = world.users.get(&target_id).filter(|u| u.remote.is_none())
                    {
                        if !Arc::ptr_eq(&target.outbound, ctx.outbound) {
                            let _ = target.outbound.push(&bytes);
                        }
                    }
                    let target_uid = world
                        .users
                        .get(&target_id)
                        .and_then(|u| u.remote.clone())
                        .unwrap_or_else(|| cluster.uid_of(target_id));
                    kicks.push((
                        None,
                        Event::Kick {
                            source: source.clone(),
                            channel: shown.clone(),
                            target: target_uid,
                            target_nick: target_nick.clone(),
                            reason: reason.clone(),
                            by: cluster.uid_of(ctx.session.id),
                        },
                    ));
                }
                None => {
                    for member in channel.snapshot.iter() {
                        let _ = member.push(&bytes);
                    }
                }
            }
        }
        world.leave_channel(target_id, &key);
        if let Some((members, _)) = kicks.last_mut().filter(|(m, _)| m.is_none()) {
            *members = Some(
                world
                    .channels
                    .get(&key)
                    .map(|c| c.snapshot.clone())
                    .unwrap_or_default(),
            );
        }
        ctx.shared.history.audit(
            "kick",
            Some(&ctx.session.nick),
            ctx.session.account.as_deref(),
            Some(&target_nick),
            Some(&ctx.session.ip.to_string()),
            Some(&format!("{shown}: {reason}")),
        );
        if !world.channels.contains_key(&key) {
            break;
        }
    }
    drop(world);
    if let Some(cluster) = &ctx.shared.cluster {
        for (members, event) in kicks {
            cluster.publish_to(
                ctx.shared,
                event,
                crate::cluster::Local {
                    echo: None,
                    recipients: members,
                },
            );
        }
    }
}
