//! MODE for channels (`+o +v +b +m +n +t +i +k +l +C`) and users (`+i +w +B`, `-o`). Changes that took effect are
//! collected and announced in one MODE line to the whole channel; requests that change nothing are
//! not echoed, and each refusal gets its own numeric.

use std::time::SystemTime;

use parley_proto::{casefold, numeric, Message};

use crate::cluster::event::{Event, ModeChange};
use crate::command::channel::unix_time;
use crate::context::{Announced, Ctx, Line, Lookup, Reply};
use crate::isupport::{MAX_BANS, MODES_PER_COMMAND};
use crate::relay::line;
use crate::state::{Ban, ClientId, LIST_MODES, MUTE_PREFIX};
use crate::store::StateChange;

/// Longest channel key accepted, as common ircds do.
const MAX_KEY_LEN: usize = 23;

pub fn mode(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    if msg.params[0].starts_with(['#', '&']) {
        channel_mode(ctx, msg)
    } else {
        user_mode(ctx, msg)
    }
}

/// `MODE <own nick> [<modes>]`: show or change `+i`, `+w`, `+B` (bot), and drop `+o`.
fn user_mode(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let target = msg.params[0];
    if casefold(target) != casefold(&ctx.session.nick) {
        let exists = ctx.shared.world.lock().user_by_nick(target).is_some();
        return Err(if exists {
            Reply::new(
                numeric::ERR_USERSDONTMATCH,
                &[],
                "Cant change mode for other users",
            )
        } else {
            Reply::no_such_nick(target)
        });
    }
    let id = ctx.session.id;
    let (source, invisible, oper, bot, unknown, change) = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get_mut(&id) else {
            return Ok(());
        };
        let Some(modes) = msg.param(1) else {
            let mut current = String::from("+");
            for (on, c) in [
                (user.bot, 'B'),
                (user.invisible, 'i'),
                (user.oper.is_some(), 'o'),
                (user.wallops, 'w'),
            ] {
                if on {
                    current.push(c);
                }
            }
            ctx.numeric(numeric::RPL_UMODEIS, &[&current], None);
            return Ok(());
        };
        let mut adding = true;
        let mut unknown = false;
        let mut change = String::new();
        let (was_invisible, was_oper) = (user.invisible, user.oper.is_some());
        for c in modes.chars() {
            match c {
                '+' => adding = true,
                '-' => adding = false,
                'i' if user.invisible != adding => {
                    user.invisible = adding;
                    change.push(if adding { '+' } else { '-' });
                    change.push('i');
                }
                // IRCv3 bot-mode: anyone may mark themselves a bot, and unmark.
                'B' if user.bot != adding => {
                    user.bot = adding;
                    change.push(if adding { '+' } else { '-' });
                    change.push('B');
                }
                'w' if user.wallops != adding => {
                    user.wallops = adding;
                    change.push(if adding { '+' } else { '-' });
                    change.push('w');
                }
                // Operator status is dropped with -o, and only gained through OPER or login.
                'o' if !adding && user.oper.is_some() => {
                    user.oper = None;
                    change.push_str("-o");
                }
                'i' | 'w' | 'o' | 'B' => {}
                _ => unknown = true,
            }
        }
        let source = user.source();
        let (invisible, oper, bot) = (user.invisible, user.oper.is_some(), user.bot);
        let counts = &mut world.counts;
        counts.invisible = counts.invisible + usize::from(invisible) - usize::from(was_invisible);
        counts.opers = counts.opers + usize::from(oper) - usize::from(was_oper);
        (source, invisible, oper, bot, unknown, change)
    };
    if unknown {
        ctx.numeric(
            numeric::ERR_UMODEUNKNOWNFLAG,
            &[],
            Some("Unknown MODE flag"),
        );
    }
    if !change.is_empty() {
        let nick = ctx.session.nick.clone();
        let bytes = line(Some(&source), "MODE", &[&nick], Some(&change));
        ctx.send(&bytes);
        // The user's other sessions: their user's modes changed too.
        let siblings = ctx.shared.world.lock().siblings(id, ctx.outbound);
        crate::fanout::send_now(&bytes, &siblings);
        if ctx.session.registered {
            ctx.replicate(|cluster| {
                Some(Event::UserModes {
                    uid: cluster.uid_of(id),
                    invisible,
                    oper,
                    bot,
                })
            });
        }
    }
    Ok(())
}

/// One applied change, for the announcement.
struct Applied {
    adding: bool,
    mode: char,
    arg: Option<String>,
    /// For `+o`/`+v`: the member (its local id, and its uid if it is another node's user), so
    /// the cluster applies the change by id, not by nick.
    member: Option<(ClientId, Option<String>)>,
}

/// `MODE <channel> [<modes> [<args>...]]`: show the channel's modes, list a list mode, or change
/// them (operators only, at most `MODES_PER_COMMAND` with an argument).
fn channel_mode(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let id = ctx.session.id;
    let (announced, replies, denied, room_denied, shown) = {
        let mut world = ctx.shared.world.lock();
        let (key, channel) = world.channel_named(msg.params[0])?;
        let shown = channel.name.clone();
        let my_status = channel.status(id);
        let Some(modestring) = msg.param(1) else {
            let described = channel.modes.describe(my_status.is_some());
            let created = unix_time(channel.created);
            let mut params: Vec<&str> = vec![&shown];
            params.extend(described.iter().map(String::as_str));
            ctx.numeric(numeric::RPL_CHANNELMODEIS, &params, None);
            ctx.numeric(numeric::RPL_CREATIONTIME, &[&shown, &created], None);
            return Ok(());
        };
        let Some((source, oper)) = world.users.get(&id).map(|u| (u.source(), u.oper)) else {
            return Ok(());
        };
        let setter = ctx.session.nick.clone();
        let is_op = ctx.shared.may_moderate(&key, my_status, oper);
        // The default room's own modes come from the config: only the server operators who
        // moderate it change them, not a member someone made a channel operator there.
        let room_modes_locked =
            ctx.shared.is_default_channel(&key) && !ctx.shared.oper_can(oper, "channels");
        let mut room_denied = false;
        let mut args = msg.params.iter().skip(2).copied();
        let mut adding = true;
        let mut applied: Vec<Applied> = Vec::new();
        let mut param_modes = 0usize;
        let mut denied = false;
        let mut replies: Vec<(&'static str, Vec<String>, &'static str)> = Vec::new();

        for c in modestring.chars() {
            match c {
                '+' => {
                    adding = true;
                    continue;
                }
                '-' => {
                    adding = false;
                    continue;
                }
                _ => {}
            }
            let takes_arg = match c {
                'o' | 'v' | 'b' | 'e' | 'I' | 'q' => true,
                'k' => true,
                'l' => adding,
                'i' | 'm' | 'n' | 's' | 't' | 'C' => false,
                other => {
                    replies.push((
                        numeric::ERR_UNKNOWNMODE,
                        vec![other.to_string()],
                        "is unknown mode char to me",
                    ));
                    continue;
                }
            };
            let arg = if takes_arg { args.next() } else { None };
            if takes_arg {
                param_modes += 1;
                if param_modes > MODES_PER_COMMAND {
                    break;
                }
            }
            // A bare list mode shows the list; anyone may look.
            if LIST_MODES.contains(&c) && arg.is_none() {
                let Some(channel) = world.channels.get(&key) else {
                    break;
                };
                send_list(
                    ctx,
                    &shown,
                    c,
                    channel.list(c).map(Vec::as_slice).unwrap_or(&[]),
                );
                continue;
            }
            if !is_op {
                denied = true;
                continue;
            }
            if room_modes_locked && matches!(c, 'i' | 'm' | 'n' | 's' | 't' | 'C' | 'k' | 'l') {
                room_denied = true;
                continue;
            }
            match c {
                'o' | 'v' => {
                    let Some(nick) = arg else { continue };
                    let Some(target) = world
                        .user_by_nick(nick)
                        .map(|u| (u.id, u.nick.clone(), u.account.clone(), u.remote.clone()))
                    else {
                        replies.push((
                            numeric::ERR_NOSUCHNICK,
                            vec![nick.to_string()],
                            "No such nick/channel",
                        ));
                        continue;
                    };
                    let Some(channel) = world.channels.get_mut(&key) else {
                        break;
                    };
                    let Some(status) = channel.members.get_mut(&target.0) else {
                        replies.push((
                            numeric::ERR_USERNOTINCHANNEL,
                            vec![target.1, shown.clone()],
                            "They aren't on that channel",
                        ));
                        continue;
                    };
                    let flag = if c == 'o' {
                        &mut status.op
                    } else {
                        &mut status.voice
                    };
                    if *flag != adding {
                        *flag = adding;
                        channel.names_changed();
                        // In a registered channel, +o on a logged-in user is remembered for them.
                        if let (Some(account), true) =
                            (&target.2, c == 'o' && channel.is_registered())
                        {
                            let account = casefold(account);
                            channel.op_accounts.retain(|a| *a != account);
                            if adding {
                                channel.op_accounts.push(account);
                            }
                        }
                        applied.push(Applied {
                            adding,
                            mode: c,
                            arg: Some(target.1),
                            member: Some((target.0, target.3)),
                        });
                    }
                }
                'b' | 'e' | 'I' | 'q' => {
                    // The mask travels as a middle parameter, so one that could not be one is dropped.
                    let Some(mask) = arg.filter(|m| valid_mask(m)).map(normalize_mask) else {
                        continue;
                    };
                    let Some(list) = world.channels.get_mut(&key).and_then(|ch| ch.list_mut(c))
                    else {
                        break;
                    };
                    let existing = list
                        .iter()
                        .position(|b| casefold(&b.mask) == casefold(&mask));
                    let audit_action = match (c, adding) {
                        ('b', true) => Some("ban"),
                        ('b', false) => Some("unban"),
                        ('q', true) => Some("quiet"),
                        ('q', false) => Some("unquiet"),
                        _ => None,
                    };
                    let changed = match (adding, existing) {
                        (true, None) if list.len() >= MAX_BANS => {
                            replies.push((
                                numeric::ERR_BANLISTFULL,
                                vec![shown.clone(), c.to_string()],
                                "Channel list is full",
                            ));
                            None
                        }
                        (true, None) => {
                            list.push(Ban {
                                mask: mask.clone(),
                                set_by: setter.clone(),
                                set_at: SystemTime::now(),
                            });
                            Some(mask)
                        }
                        (false, Some(pos)) => Some(list.remove(pos).mask),
                        _ => None,
                    };
                    if let Some(mask) = changed {
                        if let Some(action) = audit_action {
                            ctx.shared.history.audit(
                                action,
                                Some(&setter),
                                ctx.session.account.as_deref(),
                                Some(&mask),
                                Some(&ctx.session.ip.to_string()),
                                Some(&shown),
                            );
                        }
                        applied.push(Applied {
                            adding,
                            mode: c,
                            arg: Some(mask),
                            member: None,
                        });
                    }
                }
                'k' => {
                    let Some(channel) = world.channels.get_mut(&key) else {
                        break;
                    };
                    if adding {
                        let Some(k) = arg.filter(|k| valid_key(k)) else {
                            replies.push((
                                numeric::ERR_INVALIDKEY,
                                vec![shown.clone()],
                                "Key is not well-formed",
                            ));
                            continue;
                        };
                        channel.modes.key = Some(k.to_string());
                        applied.push(Applied {
                            adding,
                            mode: c,
                            arg: Some(k.to_string()),
                            member: None,
                        });
                    } else if channel.modes.key.take().is_some() {
                        applied.push(Applied {
                            adding,
                            mode: c,
                            arg: Some("*".into()),
                            member: None,
                        });
                    }
                }
                'l' => {
                    let Some(channel) = world.channels.get_mut(&key) else {
                        break;
                    };
                    if adding {
                        let Some(limit) =
                            arg.and_then(|a| a.parse::<usize>().ok()).filter(|l| *l > 0)
                        else {
                            continue;
                        };
                        if channel.modes.limit != Some(limit) {
                            channel.modes.limit = Some(limit);
                            applied.push(Applied {
                                adding,
                                mode: c,
                                arg: Some(limit.to_string()),
                                member: None,
                            });
                        }
                    } else if channel.modes.limit.take().is_some() {
                        applied.push(Applied {
                            adding,
                            mode: c,
                            arg: None,
                            member: None,
                        });
                    }
                }
                'i' | 'm' | 'n' | 's' | 't' | 'C' => {
                    let Some(channel) = world.channels.get_mut(&key) else {
                        break;
                    };
                    let flag = match c {
                        'C' => &mut channel.modes.no_ctcp,
                        'i' => &mut channel.modes.invite_only,
                        'm' => &mut channel.modes.moderated,
                        'n' => &mut channel.modes.no_external,
                        's' => &mut channel.modes.secret,
                        _ => &mut channel.modes.topic_ops_only,
                    };
                    if *flag != adding {
                        *flag = adding;
                        applied.push(Applied {
                            adding,
                            mode: c,
                            arg: None,
                            member: None,
                        });
                    }
                }
                _ => {}
            }
        }

        let mut announced = Announced::default();
        if !applied.is_empty() {
            let mut modes = String::new();
            let mut mode_args: Vec<String> = Vec::new();
            let mut sign = None;
            for change in &applied {
                if sign != Some(change.adding) {
                    modes.push(if change.adding { '+' } else { '-' });
                    sign = Some(change.adding);
                }
                modes.push(change.mode);
                if let Some(arg) = &change.arg {
                    mode_args.push(arg.clone());
                }
            }
            let mut middle: Vec<&str> = vec![&shown, &modes];
            middle.extend(mode_args.iter().map(String::as_str));
            let bytes = line(Some(&source), "MODE", &middle, None);
            if let Some(channel) = world.channels.get(&key) {
                announced = ctx.announce(Line::Bytes(&bytes), &channel.snapshot, |cluster| {
                    Event::Mode {
                        uid: cluster.uid_of(id),
                        source: source.clone(),
                        channel: shown.clone(),
                        changes: applied
                            .iter()
                            .map(|a| ModeChange {
                                adding: a.adding,
                                mode: a.mode,
                                arg: a.arg.clone(),
                                member: a.member.as_ref().map(|(id, remote)| {
                                    remote.clone().unwrap_or_else(|| cluster.uid_of(*id))
                                }),
                            })
                            .collect(),
                    }
                });
                // As before this seam: in a cluster the setter sees its change at once even when
                // not a member (a server operator in the default room); alone, only members do.
                ctx.tell_actor(&announced, Line::Bytes(&bytes));
                if let Some(record) = channel.record() {
                    ctx.shared
                        .history
                        .persist(StateChange::SaveChannel(Box::new(record)));
                }
            }
        }
        (announced, replies, denied, room_denied, shown)
    };
    ctx.publish(announced);
    for (code, params, text) in replies {
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        ctx.numeric(code, &params, Some(text));
    }
    if denied {
        ctx.numeric(
            numeric::ERR_CHANOPRIVSNEEDED,
            &[&shown],
            Some("You're not channel operator"),
        );
    } else if room_denied {
        ctx.numeric(
            numeric::ERR_CHANOPRIVSNEEDED,
            &[&shown],
            Some("Only server operators may change the default channel's modes"),
        );
    }
    Ok(())
}

/// The RPL_*LIST lines of one list mode and its end line.
fn send_list(ctx: &Ctx<'_>, shown: &str, mode: char, entries: &[Ban]) {
    let (item, end, end_text) = match mode {
        'e' => (
            numeric::RPL_EXCEPTLIST,
            numeric::RPL_ENDOFEXCEPTLIST,
            "End of channel exception list",
        ),
        'I' => (
            numeric::RPL_INVITELIST,
            numeric::RPL_ENDOFINVITELIST,
            "End of channel invite list",
        ),
        'q' => (
            numeric::RPL_QUIETLIST,
            numeric::RPL_ENDOFQUIETLIST,
            "End of channel quiet list",
        ),
        _ => (
            numeric::RPL_BANLIST,
            numeric::RPL_ENDOFBANLIST,
            "End of channel ban list",
        ),
    };
    // The quiet list names its mode, as other servers do.
    let mode_param = mode.to_string();
    for entry in entries {
        let set_at = unix_time(entry.set_at);
        let mut params = vec![shown];
        if mode == 'q' {
            params.push(&mode_param);
        }
        params.extend([entry.mask.as_str(), entry.set_by.as_str(), set_at.as_str()]);
        ctx.numeric(item, &params, None);
    }
    let mut params = vec![shown];
    if mode == 'q' {
        params.push(&mode_param);
    }
    ctx.numeric(end, &params, Some(end_text));
}

/// `nick` -> `nick!*@*`, `user@host` -> `*!user@host`, as clients expect of ban masks; extbans
/// (`$a:account`) stay as they are, and a mute's (`$m:`) mask is completed the same way.
fn normalize_mask(mask: &str) -> String {
    if let Some(inner) = mask.strip_prefix(MUTE_PREFIX) {
        return format!("{MUTE_PREFIX}{}", normalize_mask(inner));
    }
    if mask.starts_with('$') {
        return mask.to_string();
    }
    match (mask.contains('!'), mask.contains('@')) {
        (true, true) => mask.to_string(),
        (true, false) => format!("{mask}@*"),
        (false, true) => format!("*!{mask}"),
        (false, false) => format!("{mask}!*@*"),
    }
}

fn valid_mask(mask: &str) -> bool {
    // A mute names whom it mutes, and mutes no mute.
    if let Some(inner) = mask.strip_prefix("$m") {
        return inner
            .strip_prefix(':')
            .is_some_and(|inner| !inner.starts_with("$m") && valid_mask(inner));
    }
    !mask.is_empty()
        && !mask.starts_with(':')
        && !mask.contains(' ')
        && !mask.chars().any(|c| c.is_control())
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && !key.contains([' ', ',', ':'])
        && !key.chars().any(|c| c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_completed() {
        assert_eq!(normalize_mask("bob"), "bob!*@*");
        assert_eq!(normalize_mask("*@10.0.0.1"), "*!*@10.0.0.1");
        assert_eq!(normalize_mask("bob!~b"), "bob!~b@*");
        assert_eq!(normalize_mask("a!b@c"), "a!b@c");
        assert_eq!(normalize_mask("$m:bob"), "$m:bob!*@*");
        assert_eq!(normalize_mask("$m:$a:acct"), "$m:$a:acct");
    }

    #[test]
    fn masks_that_cannot_be_a_parameter_are_refused() {
        assert!(valid_mask("bob"));
        assert!(!valid_mask(""));
        assert!(!valid_mask("two words"));
        assert!(!valid_mask(":bob"));
        assert!(valid_mask("$m:bob"));
        assert!(!valid_mask("$m"));
        assert!(!valid_mask("$m:"));
        assert!(!valid_mask("$m:$m:bob"));
    }

    #[test]
    fn keys_are_checked() {
        assert!(valid_key("secret"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key("a,b"));
        assert!(!valid_key(&"x".repeat(MAX_KEY_LEN + 1)));
    }
}
