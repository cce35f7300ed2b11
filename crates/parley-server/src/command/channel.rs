//! Channel commands other than JOIN/PART/MODE: TOPIC, NAMES, LIST, INVITE, KICK, and the
//! topic and names replies that JOIN sends too.

use std::time::{SystemTime, UNIX_EPOCH};

use parley_proto::{casefold, numeric, write_line, Message};

use crate::cluster::event::{Event, TopicInfo};
use crate::command::{elist::ListQuery, invite_list};
use crate::context::{Announced, Ctx, Line, Lookup, Reply};
use crate::fanout::{names_chunks, NAMES_LINE_BUDGET};
use crate::relay::{line, Relay};
use crate::state::{Invite, Topic, World};
use crate::store::StateChange;

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
    let symbol = channel.names_symbol();
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
        let middle = [nick, symbol, shown.as_str()];
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

/// `NAMES [<channel>[,<channel>...]]`: each channel's members (353, 366); a channel that is
/// not there ends its list at once, as without a name.
pub fn names(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(list) = msg.param(0).filter(|p| !p.is_empty()) else {
        ctx.numeric(numeric::RPL_ENDOFNAMES, &["*"], Some("End of /NAMES list"));
        return Ok(());
    };
    for name in list.split(',').filter(|n| !n.is_empty()) {
        let key = casefold(name);
        let mut world = ctx.shared.world.lock();
        let sees_secret = ctx.sees_secret_channels(&world);
        let shown = world
            .channels
            .get(&key)
            .is_some_and(|c| !c.hidden_from(ctx.session.id, sees_secret));
        if shown {
            send_names(ctx, &mut world, &key);
        } else {
            ctx.numeric(numeric::RPL_ENDOFNAMES, &[name], Some("End of /NAMES list"));
        }
    }
    Ok(())
}

/// `TOPIC <channel> [<topic>]`: show the topic (a secret channel's only to its members), or
/// set it (an empty topic clears it). Setting needs membership, and operator status under `+t`.
pub fn topic(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    let announced = {
        let mut world = ctx.shared.world.lock();
        let (key, channel) = world.channel_named(msg.params[0])?;
        let Some(new_topic) = msg.param(1) else {
            // A secret channel's topic is for its members (and operators who may look).
            if channel.hidden_from(ctx.session.id, ctx.sees_secret_channels(&world)) {
                return Err(Reply::not_on_channel(&channel.name));
            }
            send_topic(ctx, &world, &key, true);
            return Ok(());
        };
        if channel.modes.topic_ops_only {
            ctx.require_op(&world, &key, channel)?;
        } else {
            ctx.require_member(channel)?;
        }
        let Some(user) = world.users.get(&ctx.session.id) else {
            return Ok(());
        };
        let (source, nick) = (user.source(), user.nick.clone());
        let text: String = new_topic
            .chars()
            .take(ctx.shared.config.limits.topic_len)
            .collect();
        let Some(channel) = world.channels.get_mut(&key) else {
            return Ok(());
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
        let announced = ctx.announce(Line::Bytes(&bytes), &channel.snapshot, |cluster| {
            Event::Topic {
                uid: cluster.uid_of(ctx.session.id),
                source: source.clone(),
                channel: channel.name.clone(),
                topic: channel.topic.as_ref().map(|t| TopicInfo {
                    text: t.text.clone(),
                    set_by: t.set_by.clone(),
                    set_at_ms: crate::clock::millis(t.set_at),
                }),
            }
        });
        if let Some(record) = channel.record() {
            ctx.shared
                .history
                .persist(StateChange::SaveChannel(Box::new(record)));
        }
        announced
    };
    ctx.publish(announced);
    Ok(())
}

/// `LIST [<channel or condition>[,...]] [<condition>[,...]]`: channels with their member counts
/// and topics (321, 322, 323), sorted by name; the conditions are ELIST's (`command::elist`).
/// Secret channels stay hidden from non-members whatever is asked.
pub fn list(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let query = ListQuery::parse(&msg.params);
    let now = SystemTime::now();
    ctx.numeric(numeric::RPL_LISTSTART, &["Channel"], Some("Users  Name"));
    let rows: Vec<(String, String, String)> = {
        let world = ctx.shared.world.lock();
        let sees_secret = ctx.sees_secret_channels(&world);
        let mut rows: Vec<_> = world
            .channels
            .iter()
            .filter(|(key, c)| query.matches(key, c, now))
            .filter(|(_, c)| !c.hidden_from(ctx.session.id, sees_secret))
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
    Ok(())
}

/// `INVITE` alone lists one's invites (`command::invite_list`). `INVITE <nick> <channel>`: a
/// member may invite (an operator under `+i`); the invite lets
/// the user past `+i`, and past a ban when an operator gave it.
pub fn invite(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    if msg.params.is_empty() {
        return invite_list::invites(ctx);
    }
    ctx.require_params(msg, 2)?;
    let id = ctx.session.id;
    let remote = {
        let mut world = ctx.shared.world.lock();
        let target = world.user_named(msg.params[0])?;
        let (target_id, target_nick, target_out) =
            (target.id, target.nick.clone(), target.sessions.clone());
        let target_away = target.away.clone();
        let remote_target = target.remote.clone();
        let (key, channel) = world.channel_named(msg.params[1])?;
        let shown = channel.name.clone();
        let oper = ctx.oper_class_in(&world);
        let by_operator = ctx.shared.may_moderate(&key, channel.status(id), oper);
        match channel.status(id) {
            None => return Err(Reply::not_on_channel(&shown)),
            Some(_) if channel.modes.invite_only && !by_operator => {
                return Err(Reply::chanop_needed(&shown))
            }
            Some(_) if channel.status(target_id).is_some() => {
                return Err(Reply::new(
                    numeric::ERR_USERONCHANNEL,
                    &[&target_nick, &shown],
                    "is already on channel",
                ))
            }
            Some(_) => {}
        }
        let Some((source, account)) = world
            .users
            .get(&id)
            .map(|u| (u.source(), u.account.clone()))
        else {
            return Ok(());
        };
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
        ctx.numeric(numeric::RPL_INVITING, &[&target_nick, &shown], None);
        if let Some(away) = target_away {
            ctx.numeric(numeric::RPL_AWAY, &[&target_nick], Some(&away));
        }
        // As a relay, so the invited user gets `account` (account-tag) and `time`
        // (server-time) as on any other message from this user.
        let relay = Relay::new(
            &source,
            account.as_deref(),
            "INVITE",
            &[&target_nick, &shown],
            None,
        );
        // Every session of the invited user (one user, several devices).
        for session in &target_out {
            relay.send_to(session);
        }
        // invite-notify: the channel's operators who asked see it too ("a server may choose to
        // only send the message to clients having channel op"); on other nodes theirs do when
        // the event comes (`cluster::apply`).
        for op in world.invite_notified(&key, &[id, target_id]) {
            relay.send_to(&op);
        }
        let cluster = ctx.cluster_uid(id).is_some();
        (remote_target.is_some() || cluster).then(|| Event::Invite {
            source,
            channel: shown,
            target: remote_target.unwrap_or_else(|| ctx.cluster_uid(target_id).unwrap_or_default()),
            target_nick,
            by_operator,
            account,
        })
    };
    if let Some(event) = remote {
        // Their own node lets them in and tells them.
        ctx.replicate(|_| Some(event));
    }
    Ok(())
}

/// `KICK <channel> <nick>[,<nick>...] [<reason>]`: an operator of the channel removes members.
pub fn kick(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 2)?;
    let kick_len = ctx.shared.config.limits.kick_len;
    let mut announced = Announced::default();
    {
        let mut world = ctx.shared.world.lock();
        let (key, channel) = world.channel_named(msg.params[0])?;
        ctx.require_op(&world, &key, channel)?;
        let shown = channel.name.clone();
        let Some(source) = world.users.get(&ctx.session.id).map(|u| u.source()) else {
            return Ok(());
        };
        let reason: String = msg
            .param(2)
            .filter(|r| !r.is_empty())
            .unwrap_or(&ctx.session.nick)
            .chars()
            .take(kick_len)
            .collect();
        for wanted in msg.params[1].split(',').filter(|n| !n.is_empty()) {
            let Some(channel) = world.channels.get(&key) else {
                break;
            };
            let target = world
                .user_by_nick(wanted)
                .filter(|u| channel.status(u.id).is_some());
            let Some(target) = target else {
                ctx.reply(&Reply::not_in_channel(wanted, &shown));
                continue;
            };
            let (target_id, target_nick) = (target.id, target.nick.clone());
            let bytes = line(
                Some(&source),
                "KICK",
                &[&shown, &target_nick],
                Some(&reason),
            );
            let kicked = ctx.announce(Line::Bytes(&bytes), &channel.snapshot, |cluster| {
                Event::Kick {
                    source: source.clone(),
                    channel: shown.clone(),
                    target: target
                        .remote
                        .clone()
                        .unwrap_or_else(|| cluster.uid_of(target_id)),
                    target_nick: target_nick.clone(),
                    reason: reason.clone(),
                    by: cluster.uid_of(ctx.session.id),
                }
            });
            // A target here sees its own KICK at once too; the others from the stream.
            kicked.also_now(
                Line::Bytes(&bytes),
                target.remote.is_none().then_some(&target.outbound),
            );
            world.leave_channel(target_id, &key);
            let remaining = world.channels.get(&key).map(|c| c.snapshot.clone());
            announced = announced.and(kicked.then_to(remaining.unwrap_or_default()));
            ctx.audit("kick", &target_nick, Some(&format!("{shown}: {reason}")));
        }
    }
    ctx.publish(announced);
    Ok(())
}
