//! `SEARCH <attributes>` (soju's search extension, capability `soju.im/search`): full-text search
//! of the history this client may read, answered as a `soju.im/search` batch of the stored
//! messages with their original `time`, `msgid` and `account` tags.
//!
//! Who may see what is CHATHISTORY's rule, reused (`chathistory::conversation`): a channel only
//! while this client is in it, a private conversation only of the account it is logged in to;
//! with no `in=`, every channel it is in and (logged in) all its account's conversations. The
//! store looks only inside that scope. The cost is bounded three ways: `limit`, a per-connection
//! budget (the flood bucket: excess searches wait, as excess lines do) and the store's timeout.

use parley_proto::{casefold, numeric, unescape_tag_value, Message};

use super::chathistory::{close_batch, conversation, is_history_target, open_batch, render};
use crate::config::FloodConfig;
use crate::context::{Ctx, Reply};
use crate::flood::FloodControl;
use crate::server::Shared;
use crate::store::search::{search_words, SearchError, SearchQuery};
use crate::store::StoredMessage;

/// The capability (and batch type) the spec names.
pub const CAP: &str = "soju.im/search";

/// Whether this server offers `SEARCH` at all: it searches stored history.
pub fn offered(shared: &Shared) -> bool {
    shared.history.enabled() && shared.config.search.enabled
}

fn invalid(attribute: &str, text: &str) -> Reply {
    Reply::fail("SEARCH", "INVALID_PARAMS", &[attribute], text)
}

/// `2019-01-04T14:33:26.123Z` (the `server-time` format) as ms since the Unix epoch.
fn parse_time(text: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    let ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// The attributes as sent (`key=value;key=value`, values escaped as tag values), the later of a
/// key sent twice winning, as with message tags.
fn attributes(raw: &str) -> Vec<(&str, String)> {
    let mut found: Vec<(&str, String)> = Vec::new();
    for item in raw.split(';').filter(|item| !item.is_empty()) {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        let value = unescape_tag_value(value).into_owned();
        found.retain(|(k, _)| *k != key);
        found.push((key, value));
    }
    found
}

/// `SEARCH <attributes>`: check every attribute, decide the scope, and leave the read (after
/// this connection's search budget allows it) to the connection.
pub fn search(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    // "The soju.im/search capability MUST be negotiated": without it the command is not there.
    if !ctx.session.caps.search || !offered(ctx.shared) {
        return Err(Reply::new(
            numeric::ERR_UNKNOWNCOMMAND,
            &["SEARCH"],
            "Unknown command",
        ));
    }
    let Some(raw) = msg.param(0) else {
        return Err(Reply::need_more_params("SEARCH"));
    };
    let query = resolve(ctx, raw)?;
    let config = &ctx.shared.config.search;
    let slots = config.max_concurrent;
    let budget = ctx.session.search_budget.get_or_insert_with(|| {
        Box::new(FloodControl::new(&FloodConfig {
            enabled: true,
            burst: config.burst,
            lines_per_second: f64::from(config.per_minute) / 60.0,
        }))
    });
    let wait = budget.take();
    ctx.then_async(
        move |on| {
            Box::pin(async move {
                if let Some(wait) = wait {
                    // Like a flooded line: this connection waits, nobody else does.
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = on.shared.shutdown.cancelled() => return Ok(Vec::new()),
                    }
                }
                on.shared.history.search(query, slots).await
            })
        },
        answer,
    );
    Ok(())
}

/// The query `raw` asks for, inside what this client may read; the FAIL for the first bad
/// attribute otherwise.
fn resolve(ctx: &Ctx<'_>, raw: &str) -> Result<SearchQuery, Reply> {
    let config = &ctx.shared.config.search;
    let mut query = SearchQuery {
        words: Vec::new(),
        targets: Vec::new(),
        party: None,
        from: None,
        after: None,
        before: None,
        limit: config.default_limit,
        timeout: std::time::Duration::from_millis(config.timeout_ms),
    };
    let mut within: Option<String> = None;
    for (key, value) in attributes(raw) {
        match key {
            "text" => {
                if value.len() > config.max_text_len {
                    return Err(invalid("text", "The search text is too long"));
                }
                match search_words(&value, config.max_words) {
                    None => return Err(invalid("text", "The search text has too many words")),
                    Some(words) if words.is_empty() => {
                        return Err(invalid("text", "The search text has no words"))
                    }
                    Some(words) => query.words = words,
                }
            }
            "in" => within = Some(value),
            "from" => {
                if !parley_proto::validate::nick(&value, ctx.shared.config.limits.nick_len) {
                    return Err(invalid("from", "Invalid criteria"));
                }
                query.from = Some(value);
            }
            "after" | "before" => {
                let Some(ms) = parse_time(&value) else {
                    return Err(invalid(key, "Invalid criteria"));
                };
                if key == "after" {
                    query.after = Some(ms);
                } else {
                    query.before = Some(ms);
                }
            }
            "limit" => match value.parse::<usize>() {
                Ok(limit) if limit > 0 => query.limit = limit.min(config.max_limit),
                _ => return Err(invalid("limit", "Invalid limit")),
            },
            // Attributes this server does not know are no criteria (as soju does).
            _ => {}
        }
    }
    let account = ctx.session.account.as_deref().map(casefold);
    match within {
        Some(target) => {
            // One answer for "no such channel" and "not yours to read": nothing leaks.
            if !is_history_target(ctx, &target) {
                return Err(invalid("in", "Invalid criteria"));
            }
            let Some((key, _shown)) = conversation(ctx, &target) else {
                return Err(invalid("in", "You cannot search that target"));
            };
            query.targets.push(key);
        }
        None => {
            let world = ctx.shared.world.lock();
            if let Some(user) = world.users.get(&ctx.session.id) {
                query.targets.extend(user.channels.iter().cloned());
            }
            drop(world);
            query.party = account;
        }
    }
    Ok(query)
}

/// Write the search's answer: the batch of messages, or why there is none.
fn answer(ctx: &mut Ctx<'_>, result: Result<Vec<StoredMessage>, SearchError>) {
    let messages = match result {
        Ok(messages) => messages,
        Err(SearchError::TimedOut(after)) => {
            tracing::info!(?after, nick = %ctx.session.nick, "a search was stopped");
            ctx.server_line(
                "FAIL",
                &["SEARCH", "INTERNAL_ERROR", "timeout"],
                Some(
                    "The search took too long; narrow it with in=, from=, after= or before=, \
                     or use fewer or longer words",
                ),
            );
            return;
        }
        Err(SearchError::Store(err)) => {
            tracing::error!(%err, "search failed");
            ctx.server_line(
                "FAIL",
                &["SEARCH", "INTERNAL_ERROR"],
                Some("The search could not be run"),
            );
            return;
        }
    };
    let batch = open_batch(ctx, CAP, &[]);
    for m in &messages {
        ctx.send(&render(ctx, m, batch.as_deref(), true));
    }
    close_batch(ctx, batch);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_unescaped_and_the_last_wins() {
        assert_eq!(
            attributes("text=a\\sb\\:c;in=#chan;text=d;;flag"),
            vec![
                ("in", "#chan".into()),
                ("text", "d".into()),
                ("flag", "".into())
            ]
        );
        assert_eq!(
            attributes("text=hello world;limit=2"),
            vec![("text", "hello world".into()), ("limit", "2".into())]
        );
    }

    #[test]
    fn times_are_server_time() {
        assert_eq!(
            parse_time("2019-01-04T14:33:26.123Z"),
            Some(1_546_612_406_123)
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
