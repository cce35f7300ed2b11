//! Catch-up after a takeover, for a client without `draft/chathistory` (one with it fetches
//! what it missed itself, from its read markers, and is sent nothing). Each channel the
//! presence kept and each private conversation active while it was away is played back from
//! the account's read marker there, or from when the last session left, up to when the login
//! took over (later lines came live), at most `accounts.replay_limit` lines each, oldest first,
//! then a NOTICE saying how many more are in history. Lines keep their `time` and `msgid` tags
//! (in a `chathistory` batch for a client with `batch`); one without `server-time` gets the
//! time written into the text, as a JOIN's replay does.

use parley_proto::casefold;

use crate::command::chathistory::{close_batch, open_batch, render};
use crate::context::Ctx;
use crate::history::{HistoryAnswer, HistoryRequest};
use crate::server::Shared;
use crate::store::history::parties;
use crate::store::{Bound, HistoryQuery, StoredMessage};

/// How far past the replay limit lines are counted for the "N more" notice: a bound on what one
/// login reads per conversation, however long the account was away ("1000+ more").
const COUNT_PAST_LIMIT: usize = 1000;
/// Most private conversations played back at one login.
const MAX_CONVERSATIONS: usize = 100;

/// One conversation's catch-up.
struct Replay {
    shown: String,
    messages: Vec<StoredMessage>,
    /// Lines in the window past those replayed (at most [`COUNT_PAST_LIMIT`]).
    more: usize,
}

/// What to read, fixed when the login took over.
struct Plan {
    account: String,
    /// (history key, shown name, read-marker key) of each conversation.
    targets: Vec<(String, String, String)>,
    since_ms: i64,
    until_ms: i64,
    limit: usize,
    events: bool,
}

/// Queue the catch-up of `channels` (key, shown) and of the account's private conversations,
/// from `since_ms` (the last session left) to `until_ms` (the takeover).
pub(super) fn start(
    ctx: &mut Ctx<'_>,
    account: String,
    channels: Vec<(String, String)>,
    since_ms: i64,
    until_ms: i64,
) {
    let limit = ctx.shared.config.accounts.replay_limit;
    if ctx.session.caps.chathistory || !ctx.shared.history.enabled() || limit == 0 {
        return;
    }
    let plan = Plan {
        account,
        targets: channels
            .into_iter()
            .map(|(key, shown)| (key.clone(), shown, key))
            .collect(),
        since_ms,
        until_ms,
        limit,
        events: crate::history::events::played_back(
            ctx.session.caps.event_playback,
            ctx.session.caps.message_tags,
        ),
    };
    ctx.then_async(move |on| Box::pin(gather(on.shared, plan)), deliver);
}

/// Read every conversation's catch-up (history reads and markers, on the blocking pool).
async fn gather(shared: &Shared, mut plan: Plan) -> Vec<Replay> {
    // Private conversations whose latest line came while the account was away.
    let asked = HistoryRequest::Targets {
        keys: vec![(format!("@dm:{}", plan.account), String::new())],
        from_ms: plan.since_ms,
        to_ms: plan.until_ms.saturating_add(1),
        limit: MAX_CONVERSATIONS,
    };
    match shared.history.fetch(asked).await {
        HistoryAnswer::Targets {
            result: Ok(rows), ..
        } => {
            for row in rows {
                let (Some(a), Some(b)) = parties(&row.target) else {
                    continue;
                };
                let other = if a == plan.account { b } else { a };
                let shown = other.trim_start_matches('~').to_owned();
                plan.targets
                    .push((row.target.clone(), shown.clone(), casefold(&shown)));
            }
        }
        HistoryAnswer::Targets {
            result: Err(err), ..
        } => {
            tracing::error!(%err, "always-on: cannot list private conversations for catch-up")
        }
        HistoryAnswer::Messages { .. } => {}
    }
    let mut replays = Vec::with_capacity(plan.targets.len());
    for (key, shown, marker_key) in plan.targets {
        let store = shared.accounts.store().clone();
        let account = plan.account.clone();
        let marker = tokio::task::spawn_blocking(move || store.read_marker(&account, &marker_key))
            .await
            .ok()
            .and_then(|read| {
                read.unwrap_or_else(|err| {
                    tracing::warn!(%err, "always-on: cannot read a read marker; replaying from away");
                    None
                })
            });
        let from = marker.unwrap_or(plan.since_ms).max(0);
        if from >= plan.until_ms {
            continue;
        }
        let request = HistoryRequest::Query {
            subcommand: String::new(),
            key,
            shown: shown.clone(),
            query: HistoryQuery::Between(Bound::Time(from), Bound::Time(plan.until_ms)),
            limit: plan.limit + COUNT_PAST_LIMIT,
            events: plan.events,
        };
        match shared.history.fetch(request).await {
            HistoryAnswer::Messages {
                result: Ok(mut messages),
                ..
            } => {
                let more = messages.len().saturating_sub(plan.limit);
                messages.truncate(plan.limit);
                replays.push(Replay {
                    shown,
                    messages,
                    more,
                });
            }
            HistoryAnswer::Messages {
                result: Err(err), ..
            } => {
                tracing::error!(%err, target = %shown, "always-on: catch-up read failed");
                replays.push(Replay {
                    shown,
                    messages: Vec::new(),
                    more: 0,
                });
            }
            HistoryAnswer::Targets { .. } => {}
        }
    }
    replays
}

/// Write the catch-up: a batch (or plain lines) per conversation, then its "N more" notice.
fn deliver(ctx: &mut Ctx<'_>, replays: Vec<Replay>) {
    let nick = ctx.session.nick.clone();
    let me = ctx.session.account.as_deref().map(casefold);
    for replay in replays {
        if replay.messages.is_empty() {
            continue;
        }
        let batch = open_batch(ctx, "chathistory", &[&replay.shown]);
        for mut m in replay.messages {
            // A private line to the account is shown as addressed to the nick it has now.
            if !replay.shown.starts_with(['#', '&']) && m.account.as_deref().map(casefold) != me {
                m.to = nick.clone();
            }
            ctx.send(&render(ctx, &m, batch.as_deref(), true));
        }
        close_batch(ctx, batch);
        if replay.more > 0 {
            let plus = if replay.more >= COUNT_PAST_LIMIT {
                "+"
            } else {
                ""
            };
            let text = format!(
                "{}: {}{plus} more line{} in history (use /chathistory or a client that supports it)",
                replay.shown,
                replay.more,
                if replay.more == 1 { "" } else { "s" },
            );
            ctx.server_line("NOTICE", &[&nick], Some(&text));
        }
    }
}
