//! CHATHISTORY (IRCv3 `draft/chathistory`), replay on join and offline delivery: the handler
//! checks the request and who may see what, then leaves the read to the connection task; the
//! answer comes back here to be written as a `chathistory` batch. Stored TAGMSGs (reactions
//! and replies) are in it only for clients with `draft/event-playback` (`history::events`).

use std::sync::atomic::{AtomicU64, Ordering};

use parley_proto::{casefold, write_line, Message};

use crate::clock::format_time;
use crate::context::{Ctx, Reply};
use crate::history::{dm_key, events, party, HistoryAnswer, HistoryRequest};
use crate::relay::append_client_tags;
use crate::store::history::parties;
use crate::store::{Bound, HistoryQuery, StoredMessage};

static BATCH_IDS: AtomicU64 = AtomicU64::new(1);

fn fail(ctx: &Ctx<'_>, code: &str, context: &[&str], text: &str) {
    let mut middle = vec!["CHATHISTORY", code];
    middle.extend_from_slice(context);
    ctx.server_line("FAIL", &middle, Some(text));
}

/// `timestamp=2026-11-25T13:00:00.000Z` or `msgid=...`.
fn parse_bound(text: &str) -> Option<Bound> {
    if let Some(ts) = text.strip_prefix("timestamp=") {
        let at = humantime::parse_rfc3339_weak(ts).ok()?;
        let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        return Some(Bound::Time(i64::try_from(ms).ok()?));
    }
    let msgid = text.strip_prefix("msgid=")?;
    (!msgid.is_empty()).then(|| Bound::MsgId(msgid.to_string()))
}

/// `CHATHISTORY <subcommand> ...` (IRCv3 draft/chathistory): its refusals are `FAIL
/// CHATHISTORY` standard replies; the read itself is a follow-up.
pub fn chathistory(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(sub) = msg.param(0).map(str::to_ascii_uppercase) else {
        return Err(Reply::fail(
            "CHATHISTORY",
            "NEED_MORE_PARAMS",
            &["*"],
            "Missing subcommand",
        ));
    };
    if !ctx.shared.history.enabled() {
        return Err(Reply::fail(
            "CHATHISTORY",
            "MESSAGE_ERROR",
            &[&sub],
            "History is turned off on this server",
        ));
    }
    let needed = match sub.as_str() {
        "LATEST" | "BEFORE" | "AFTER" | "AROUND" | "TARGETS" => 4,
        "BETWEEN" => 5,
        _ => {
            return Err(Reply::fail(
                "CHATHISTORY",
                "UNKNOWN_COMMAND",
                &[&sub],
                "Unknown CHATHISTORY subcommand",
            ));
        }
    };
    if msg.params.len() < needed {
        return Err(Reply::fail(
            "CHATHISTORY",
            "NEED_MORE_PARAMS",
            &[&sub],
            "Missing parameters",
        ));
    }
    let max = ctx.shared.history.config.max_request;
    let Some(limit) = msg.params[needed - 1]
        .parse::<usize>()
        .ok()
        .filter(|l| *l > 0)
    else {
        return Err(Reply::fail(
            "CHATHISTORY",
            "INVALID_PARAMS",
            &[&sub, msg.params[needed - 1]],
            "Invalid limit",
        ));
    };
    let limit = limit.min(max);
    if sub == "TARGETS" {
        return targets(ctx, msg.params[1], msg.params[2], limit);
    }
    let target = msg.params[1];
    let bound = |i: usize| parse_bound(msg.params[i]);
    let query = match sub.as_str() {
        "LATEST" if msg.params[2] == "*" => Some(HistoryQuery::Latest(None)),
        "LATEST" => bound(2).map(|b| HistoryQuery::Latest(Some(b))),
        "BEFORE" => bound(2).map(HistoryQuery::Before),
        "AFTER" => bound(2).map(HistoryQuery::After),
        "AROUND" => bound(2).map(HistoryQuery::Around),
        _ => bound(2)
            .zip(bound(3))
            .map(|(a, b)| HistoryQuery::Between(a, b)),
    };
    let Some(query) = query else {
        return Err(Reply::fail(
            "CHATHISTORY",
            "INVALID_PARAMS",
            &[&sub, target],
            "Invalid message reference; use timestamp=... or msgid=...",
        ));
    };
    if !is_history_target(ctx, target) {
        return Err(Reply::fail(
            "CHATHISTORY",
            "INVALID_TARGET",
            &[&sub, target],
            "That is not a channel or a nick",
        ));
    }
    let Some((key, shown)) = conversation(ctx, target) else {
        return Err(Reply::fail(
            "CHATHISTORY",
            "INVALID_TARGET",
            &[&sub, target],
            "You cannot see the history of that target",
        ));
    };
    read(
        ctx,
        HistoryRequest::Query {
            subcommand: sub,
            key,
            shown,
            query,
            limit,
            events: playback(ctx),
        },
    );
    Ok(())
}

/// Whether this client is shown stored TAGMSGs.
fn playback(ctx: &Ctx<'_>) -> bool {
    let caps = ctx.session.caps;
    events::played_back(caps.event_playback, caps.message_tags)
}

/// A channel name or a nick (account names follow the nick rules): the only things that have a
/// history. Anything else is refused before it can be made into a history key.
pub(super) fn is_history_target(ctx: &Ctx<'_>, target: &str) -> bool {
    let limits = &ctx.shared.config.limits;
    if target.starts_with(['#', '&']) {
        parley_proto::validate::channel(target, limits.channel_len)
    } else {
        parley_proto::validate::nick(target, limits.nick_len)
    }
}

/// The history key of `target` and the name to show, if this client may read it: a channel it is
/// in, or (when logged in) a private conversation with someone.
pub(super) fn conversation(ctx: &Ctx<'_>, target: &str) -> Option<(String, String)> {
    let world = ctx.shared.world.lock();
    if target.starts_with(['#', '&']) {
        let key = casefold(target);
        let channel = world.channels.get(&key)?;
        channel.status(ctx.session.id)?;
        return Some((key, channel.name.clone()));
    }
    let me = ctx.session.account.as_deref()?;
    let other = match world.user_by_nick(target) {
        Some(user) => party(user.account.as_deref(), &user.nick),
        None => casefold(target),
    };
    Some((dm_key(&casefold(me), &other), target.to_string()))
}

fn targets(ctx: &mut Ctx<'_>, from: &str, to: &str, limit: usize) -> Result<(), Reply> {
    let (Some(Bound::Time(a)), Some(Bound::Time(b))) = (parse_bound(from), parse_bound(to)) else {
        return Err(Reply::fail(
            "CHATHISTORY",
            "INVALID_PARAMS",
            &["TARGETS", from],
            "TARGETS takes two timestamp= bounds",
        ));
    };
    // The order matters: `limit` counts from the first bound (see `HistoryStore::targets`).
    let (from_ms, to_ms) = (a, b);
    let mut keys: Vec<(String, String)> = {
        let world = ctx.shared.world.lock();
        world
            .users
            .get(&ctx.session.id)
            .map(|u| {
                u.channels
                    .iter()
                    .filter_map(|k| world.channels.get(k).map(|c| (k.clone(), c.name.clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(account) = ctx.session.account.as_deref() {
        // Private conversations are found in the connection task (a database read).
        keys.push((format!("@dm:{}", casefold(account)), String::new()));
    }
    read(
        ctx,
        HistoryRequest::Targets {
            keys,
            from_ms,
            to_ms,
            limit,
        },
    );
    Ok(())
}

/// One stored message as this client should see it, inside `batch` if given. Clients without
/// `server-time` get the time written into the text instead, when `time_in_text`.
pub fn render(
    ctx: &Ctx<'_>,
    m: &StoredMessage,
    batch: Option<&str>,
    time_in_text: bool,
) -> Vec<u8> {
    let caps = ctx.session.caps;
    let time = format_time(m.time_ms);
    let mut tags: Vec<(&str, Option<&str>)> = Vec::new();
    if let (true, Some(account)) = (caps.account_tag, &m.account) {
        tags.push(("account", Some(account)));
    }
    if let Some(batch) = batch {
        tags.push(("batch", Some(batch)));
    }
    if caps.message_tags {
        tags.push(("msgid", Some(&m.msgid)));
    }
    if caps.server_time {
        tags.push(("time", Some(&time)));
    }
    let text = if m.kind == events::TAGMSG {
        // A TAGMSG has no text, so no time written into it either.
        None
    } else if time_in_text && !caps.server_time {
        Some(format!(
            "[{} UTC] {}",
            time.get(..16).unwrap_or(&time).replace('T', " "),
            m.text
        ))
    } else {
        Some(m.text.clone())
    };
    let mut out = Vec::with_capacity(64 + text.as_ref().map_or(0, String::len));
    write_line(
        &mut out,
        &tags,
        Some(&m.source),
        &m.kind,
        &[&m.to],
        text.as_deref(),
    );
    if caps.message_tags && !m.tags.is_empty() {
        // As relayed at the time: the client-only tags after the server's.
        return append_client_tags(out, &m.tags);
    }
    out
}

/// Start a batch if the client understands them; returns its id.
pub(crate) fn open_batch(ctx: &Ctx<'_>, kind: &str, params: &[&str]) -> Option<String> {
    if !ctx.session.caps.batch {
        return None;
    }
    let id = format!("h{}", BATCH_IDS.fetch_add(1, Ordering::Relaxed));
    let opener = format!("+{id}");
    let mut middle = vec![opener.as_str(), kind];
    middle.extend_from_slice(params);
    ctx.server_line("BATCH", &middle, None);
    Some(id)
}

pub(crate) fn close_batch(ctx: &Ctx<'_>, id: Option<String>) {
    if let Some(id) = id {
        ctx.server_line("BATCH", &[&format!("-{id}")], None);
    }
}

/// Write the answer to a history read.
pub fn answer(ctx: &mut Ctx<'_>, answer: HistoryAnswer) {
    match answer {
        HistoryAnswer::Messages { request, result } => {
            let (shown, replay, sub) = match &request {
                HistoryRequest::Query {
                    shown, subcommand, ..
                } => (shown.clone(), false, subcommand.clone()),
                HistoryRequest::Replay { shown, .. } => (shown.clone(), true, String::new()),
                HistoryRequest::Targets { .. } => return,
            };
            let messages = match result {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::error!(%err, "history read failed");
                    if !replay {
                        fail(
                            ctx,
                            "MESSAGE_ERROR",
                            &[&sub, &shown],
                            "History is unavailable right now",
                        );
                    }
                    return;
                }
            };
            if replay && messages.is_empty() {
                return;
            }
            let batch = open_batch(ctx, "chathistory", &[&shown]);
            for m in &messages {
                ctx.send(&render(ctx, m, batch.as_deref(), replay));
            }
            close_batch(ctx, batch);
        }
        HistoryAnswer::Targets { keys, result } => {
            let rows = match result {
                Ok(rows) => rows,
                Err(err) => {
                    tracing::error!(%err, "history targets failed");
                    fail(
                        ctx,
                        "MESSAGE_ERROR",
                        &["TARGETS"],
                        "History is unavailable right now",
                    );
                    return;
                }
            };
            let me = ctx.session.account.as_deref().map(casefold);
            let batch = open_batch(ctx, "draft/chathistory-targets", &[]);
            for row in rows {
                let shown = keys
                    .iter()
                    .find(|(k, _)| *k == row.target)
                    .map(|(_, s)| s.clone())
                    .filter(|s| !s.is_empty())
                    .or_else(|| other_party(&row.target, me.as_deref()));
                let Some(shown) = shown else { continue };
                let time = format_time(row.latest_ms);
                let line = {
                    let mut tags: Vec<(&str, Option<&str>)> = Vec::new();
                    if let Some(id) = &batch {
                        tags.push(("batch", Some(id)));
                    }
                    let mut out = Vec::new();
                    write_line(
                        &mut out,
                        &tags,
                        Some(ctx.shared.server_name()),
                        "CHATHISTORY",
                        &["TARGETS", &shown, &time],
                        None,
                    );
                    out
                };
                ctx.send(&line);
            }
            close_batch(ctx, batch);
        }
    }
}

/// The other side of a private conversation key, as a nick-like name.
fn other_party(key: &str, me: Option<&str>) -> Option<String> {
    let (Some(a), Some(b)) = parties(key) else {
        return None;
    };
    let other = if Some(a) == me { b } else { a };
    Some(other.trim_start_matches('~').to_string())
}

/// Read the history `request` asks for, in order with this connection's other lines, and
/// [`answer`] with it.
pub fn read(ctx: &mut Ctx<'_>, request: HistoryRequest) {
    ctx.then_async(move |on| Box::pin(on.shared.history.fetch(request)), answer);
}

/// Hand over the private messages that arrived while `account` (casefolded) was offline, in
/// order with this connection's other lines.
pub fn offline(ctx: &mut Ctx<'_>, account: String) {
    ctx.then_async(
        move |on| Box::pin(on.shared.history.take_offline(account)),
        deliver_offline,
    );
}

/// Hand over private messages that arrived while this account was away.
fn deliver_offline(
    ctx: &mut Ctx<'_>,
    result: Result<Vec<StoredMessage>, crate::store::StoreError>,
) {
    let messages = match result {
        Ok(messages) => messages,
        Err(err) => {
            // Nothing was taken (the read and the removal are one transaction), so they wait
            // for the next login; the user hears that, not silence that looks like "none".
            tracing::error!(%err, account = ?ctx.session.account, "offline messages could not be read; they stay waiting");
            let nick = ctx.session.nick.clone();
            ctx.server_line(
                "NOTICE",
                &[&nick],
                Some(
                    "Private messages received while you were away could not be read just \
                     now; they are kept and will be delivered when you next log in",
                ),
            );
            return;
        }
    };
    // A reaction waits in history for those that cannot be shown it now.
    let shown = playback(ctx);
    let messages: Vec<StoredMessage> = messages
        .into_iter()
        .filter(|m| shown || m.kind != events::TAGMSG)
        .collect();
    if messages.is_empty() {
        return;
    }
    // Reactions and replies are not counted as messages (they have no text to read).
    let count = messages.iter().filter(|m| m.kind != events::TAGMSG).count();
    let nick = ctx.session.nick.clone();
    if count > 0 {
        ctx.server_line(
            "NOTICE",
            &[&nick],
            Some(&format!(
                "You have {count} private message{} received while you were away:",
                if count == 1 { "" } else { "s" }
            )),
        );
    }
    let batch = open_batch(ctx, "chathistory", &[&nick]);
    for mut m in messages {
        // Shown as addressed to the nick in use now.
        m.to = nick.clone();
        ctx.send(&render(ctx, &m, batch.as_deref(), true));
    }
    close_batch(ctx, batch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse() {
        assert_eq!(
            parse_bound("timestamp=2023-11-14T22:13:20.123Z"),
            Some(Bound::Time(1_700_000_000_123))
        );
        assert_eq!(parse_bound("msgid=abc"), Some(Bound::MsgId("abc".into())));
        assert_eq!(parse_bound("msgid="), None);
        assert_eq!(parse_bound("timestamp=yesterday"), None);
        assert_eq!(parse_bound("*"), None);
    }

    #[test]
    fn other_party_of_a_key() {
        assert_eq!(
            other_party(&dm_key("alice", "bob"), Some("alice")),
            Some("bob".into())
        );
        assert_eq!(
            other_party(&dm_key("alice", "~guest"), Some("alice")),
            Some("guest".into())
        );
        assert_eq!(
            other_party(&dm_key("x", "alice|bob"), Some("x")),
            Some("alice|bob".into())
        );
        assert_eq!(other_party("#chan", Some("alice")), None);
    }
}
