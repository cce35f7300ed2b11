//! JOIN and PART: entering and leaving channels (the "groups"). A channel is created by its first
//! join, with the creator as operator, and vanishes when its last member leaves, unless it is
//! registered (a logged-in creator's account owns it, up to a limit per account). The default
//! room is the exception: it belongs to the server, so its first joiner gets no status. Everyone
//! in the channel, the mover included, sees the JOIN or PART line, serialized once.

use parley_proto::{casefold, numeric, validate, Message};

use crate::cluster::event::Event;
use crate::command::channel::{send_names, send_topic};
use crate::command::presence::away_line;
use crate::command::{markread, multiclient};
use crate::context::{Ctx, Line, Lookup, Reply};
use crate::fanout;
use crate::history::HistoryRequest;
use crate::relay::{notify, Relay};
use crate::state::{Channel, MemberStatus};
use crate::store::StateChange;

/// `JOIN <channel>[,<channel>...] [<key>[,<key>...]]`, or `JOIN 0` to leave every channel;
/// each channel answers on its own.
pub fn join(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    if msg.params[0] == "0" {
        part_all(ctx);
        return Ok(());
    }
    // Keys pair with channels by position, an empty item included ("JOIN #a,,#b k1,,k2" gives
    // #b k2), and one refusal does not stop the rest of the list.
    let mut keys = msg.param(1).unwrap_or("").split(',');
    for name in msg.params[0].split(',') {
        let key = keys.next().filter(|k| !k.is_empty());
        if name.is_empty() {
            continue;
        }
        join_one(ctx, name, key).unwrap_or_else(|reply| ctx.reply(&reply));
    }
    Ok(())
}

/// Why a join was refused, with the numeric and text to send. `sources`: the joiner's shown
/// mask and, under a CHGHOST, its real one.
fn refusal(
    channel: &Channel,
    id: crate::state::ClientId,
    (source, real_source): (&str, Option<&str>),
    account: Option<&str>,
    key: Option<&str>,
    members_limit: usize,
    default_room: bool,
) -> Option<(&'static str, &'static str)> {
    // The owner and remembered operators of a registered channel always get in (the default
    // room has no owner, even one registered before that was refused).
    if !default_room && channel.auto_op(account) {
        return None;
    }
    let invite = channel.invited.get(&id);
    let invited = invite.is_some();
    // Only an operator's invite is an exception to a ban; anyone's opens `+i`.
    let ban_excepted = invite.is_some_and(|i| i.by_operator);
    // A CHGHOST mask is no way around a ban on the real one.
    let banned = channel.is_banned(source, account)
        || real_source.is_some_and(|real| channel.is_banned(real, account));
    if banned && !ban_excepted {
        return Some((numeric::ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"));
    }
    if channel.modes.invite_only && !invited && !channel.is_invite_exempt(source, account) {
        return Some((numeric::ERR_INVITEONLYCHAN, "Cannot join channel (+i)"));
    }
    if let Some(expected) = &channel.modes.key {
        if key != Some(expected.as_str()) {
            return Some((numeric::ERR_BADCHANNELKEY, "Cannot join channel (+k)"));
        }
    }
    if let Some(limit) = channel.modes.limit {
        if channel.members.len() >= limit {
            return Some((numeric::ERR_CHANNELISFULL, "Cannot join channel (+l)"));
        }
    }
    if channel.members.len() >= members_limit {
        return Some((
            numeric::ERR_CHANNELISFULL,
            "Cannot join channel (the server's member limit is reached)",
        ));
    }
    None
}

/// Join one channel (making it if need be), with `key` for `+k`; a refusal is the spec's numeric.
pub fn join_one(ctx: &mut Ctx<'_>, name: &str, key: Option<&str>) -> Result<(), Reply> {
    let limits = &ctx.shared.config.limits;
    if !validate::channel(name, limits.channel_len) {
        return Err(Reply::no_such_channel(name));
    }
    let id = ctx.session.id;
    let folded = casefold(name);
    // The world lock is held for the checks and the change, and let go before publishing (which
    // may apply the event here, taking it again).
    let (announced, shown, unregistered, nick, names_wait) = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get(&id) else {
            return Ok(());
        };
        if user.channels.contains(&folded) {
            return Ok(());
        }
        if user.channels.len() >= limits.channels_per_user {
            return Err(Reply::new(
                numeric::ERR_TOOMANYCHANNELS,
                &[name],
                "You have joined too many channels",
            ));
        }
        let source = user.source();
        let real_source = user.real_source();
        let nick = user.nick.clone();
        let account = user.account.clone();
        let realname = user.realname.clone();
        let bot = user.bot;
        let sessions = user.sessions.clone();
        let siblings: Vec<_> = sessions
            .iter()
            .filter(|s| !std::sync::Arc::ptr_eq(s, ctx.outbound))
            .cloned()
            .collect();
        // Nobody becomes the default room's operator by joining it first or owning it: only server
        // operators who may moderate it get the status.
        let default_room = ctx.shared.is_default_channel(&folded);
        let server_op = default_room && ctx.shared.oper_can(user.oper, "channels");
        // Set when this join made a channel its creator's account may not register (at its limit).
        let mut unregistered = None;
        let status = match world.channels.get(&folded) {
            Some(channel) => {
                if let Some((code, text)) = refusal(
                    channel,
                    id,
                    (&source, real_source.as_deref()),
                    account.as_deref(),
                    key,
                    limits.members_per_channel,
                    default_room,
                ) {
                    return Err(Reply::new(code, &[&channel.name], text));
                }
                MemberStatus {
                    op: server_op || (!default_room && channel.auto_op(account.as_deref())),
                    voice: false,
                }
            }
            None => {
                let mut channel = ctx.shared.new_channel(name);
                // A channel made by someone logged in belongs to their account and lasts; the
                // default room belongs to the server and nobody owns it.
                // Past its limit of registered channels the channel is still made (joining should
                // work), but lasts only while it has members, as a guest's would.
                if let (Some(account), false) = (&account, default_room) {
                    let owned = world.channels_owned_by(account);
                    if owned < limits.registered_channels_per_account {
                        channel.owner = Some(account.clone());
                        if let Some(record) = channel.record() {
                            ctx.shared
                                .history
                                .persist(StateChange::SaveChannel(Box::new(record)));
                        }
                    } else {
                        unregistered = Some((account.clone(), owned));
                    }
                }
                world.channels.insert(folded.clone(), channel);
                MemberStatus {
                    op: !default_room || server_op,
                    voice: false,
                }
            }
        };
        let Some(channel) = world.channels.get_mut(&folded) else {
            return Ok(());
        };
        channel.add_member(id, &nick, status, &sessions);
        let shown = [channel.name.as_str()];
        let relay = Relay::new(&source, account.as_deref(), "JOIN", &shown, None)
            .with_extended_join(account.as_deref().unwrap_or("*"), &realname)
            .with_bot(bot);
        // The user's other sessions get the JOIN with its burst below, at once.
        let members = if siblings.is_empty() {
            channel.snapshot.clone()
        } else {
            multiclient::without(&channel.snapshot, &siblings)
        };
        // The joiner sees it now; in a cluster everyone else in the stream's order.
        let announced = ctx.announce(Line::Relay(&relay), &members, |cluster| Event::Join {
            uid: cluster.uid_of(id),
            source: source.clone(),
            account: account.clone(),
            realname: realname.clone(),
            channel: channel.name.clone(),
            op: status.op,
            voice: status.voice,
        });
        if let Some(user) = world.users.get_mut(&id) {
            user.channels.insert(folded.clone());
        }
        // away-notify: an away joiner's AWAY follows its JOIN ("as well as when a user joins and
        // has an away message set"); in a cluster every node sends it after the JOIN it
        // delivers from the stream (`cluster::apply`).
        let away = world.users.get(&id).and_then(|u| u.away.clone());
        if let (Some(away), None) = (away, ctx.cluster_uid(id)) {
            if world.channels.contains_key(&folded) {
                let bytes = away_line(&source, Some(&away));
                let members = &members;
                fanout::send_now_to_notify(
                    &bytes,
                    members,
                    notify::AWAY_NOTIFY,
                    Some(ctx.outbound),
                );
            }
        }
        send_topic(ctx, &world, &folded, false);
        let shown = world
            .channels
            .get(&folded)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let names_wait = markread::names_wait(ctx, &shown);
        if !names_wait {
            send_names(ctx, &mut world, &folded);
        }
        if !siblings.is_empty() {
            let server = ctx.shared.server_name();
            multiclient::tell_siblings_joined(&mut world, server, id, &relay, &siblings, &folded);
        }
        (announced, shown, unregistered, nick, names_wait)
    };
    ctx.publish(announced);
    if names_wait {
        markread::then_names(ctx, folded.clone(), shown.clone());
    }
    if let Some((account, owned)) = unregistered {
        let text = format!(
            "{shown} is not registered: your account {account} already owns {owned} channels, \
             the most one account may own, so it lasts only while it has members \
             (OWNER <channel> - drops one of yours)"
        );
        ctx.server_line("NOTICE", &[&nick], Some(&text));
    }
    let history = &ctx.shared.history;
    let replay = history.config.replay_on_join;
    if history.enabled() && replay > 0 && !ctx.session.caps.chathistory {
        let replay = HistoryRequest::Replay {
            key: folded,
            shown,
            limit: replay,
            before_ms: crate::clock::now_ms(),
            events: crate::history::events::played_back(
                ctx.session.caps.event_playback,
                ctx.session.caps.message_tags,
            ),
        };
        crate::command::chathistory::read(ctx, replay);
    }
    Ok(())
}

/// `PART <channel>[,<channel>...] [<reason>]`: each channel answers on its own.
pub fn part(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    let reason = msg.param(1).filter(|r| !r.is_empty());
    for name in msg.params[0].split(',').filter(|n| !n.is_empty()) {
        part_one(ctx, name, reason).unwrap_or_else(|reply| ctx.reply(&reply));
    }
    Ok(())
}

fn part_one(ctx: &mut Ctx<'_>, name: &str, reason: Option<&str>) -> Result<(), Reply> {
    let id = ctx.session.id;
    let announced = {
        let mut world = ctx.shared.world.lock();
        let (folded, channel) = world.channel_named(name)?;
        ctx.require_member(channel)?;
        let Some((source, account)) = world
            .users
            .get(&id)
            .map(|u| (u.source(), u.account.clone()))
        else {
            return Ok(());
        };
        let shown = [channel.name.as_str()];
        let relay = Relay::new(&source, account.as_deref(), "PART", &shown, reason);
        let announced = ctx.announce(Line::Relay(&relay), &channel.snapshot, |cluster| {
            Event::Part {
                uid: cluster.uid_of(id),
                source: source.clone(),
                channel: channel.name.clone(),
                reason: reason.map(str::to_string),
            }
        });
        world.leave_channel(id, &folded);
        let remaining = world.channels.get(&folded).map(|c| c.snapshot.clone());
        announced.then_to(remaining.unwrap_or_default())
    };
    ctx.publish(announced);
    Ok(())
}

fn part_all(ctx: &mut Ctx<'_>) {
    let names: Vec<String> = {
        let world = ctx.shared.world.lock();
        let Some(user) = world.users.get(&ctx.session.id) else {
            return;
        };
        user.channels
            .iter()
            .filter_map(|key| world.channels.get(key).map(|c| c.name.clone()))
            .collect()
    };
    for name in names {
        part_one(ctx, &name, Some("Left all channels")).unwrap_or_else(|reply| ctx.reply(&reply));
    }
}
