//! `MARKREAD` (IRCv3 `draft/read-marker`): where an account stopped reading each channel and
//! conversation, kept in the account store so every device of the account (and every node of a
//! cluster) agrees. A marker only moves forward and never past the present; it is the account's
//! alone and never shown to anyone else. Guests have no account to keep it in and are refused.
//!
//! The store is asked off the handler (a follow-up), so the marker a JOIN owes comes from the
//! follow-up too, and the channel's NAMES after it (the spec wants it before 366).

use parley_proto::{casefold, validate, Message};

use crate::clock::{now_ms, parse_time};
use crate::cluster::event::Event;
use crate::command::channel::send_names;
use crate::context::{Ctx, Reply};
use crate::relay::{read_marker_line, wire};

const COMMAND: &str = "MARKREAD";

/// `MARKREAD <target>` asks for the marker; `MARKREAD <target> timestamp=<time>` moves it.
pub fn markread(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(target) = msg.param(0).filter(|t| !t.is_empty()) else {
        return Err(Reply::fail(
            COMMAND,
            "NEED_MORE_PARAMS",
            &[],
            "Missing parameters",
        ));
    };
    let limits = &ctx.shared.config.limits;
    if !validate::channel(target, limits.channel_len) && !validate::nick(target, limits.nick_len) {
        return Err(Reply::fail(
            COMMAND,
            "INVALID_PARAMS",
            &[target],
            "Invalid target",
        ));
    }
    let Some(account) = ctx.session.account.as_deref().map(casefold) else {
        return Err(Reply::fail(
            COMMAND,
            "INTERNAL_ERROR",
            &[target],
            "Read markers are kept per account: log in to use MARKREAD",
        ));
    };
    let key = casefold(target);
    let target = target.to_string();
    let store = ctx.shared.accounts.store().clone();
    let Some(stamp) = msg.param(1) else {
        ctx.then_blocking(
            move || store.read_marker(&account, &key),
            move |ctx, stored| match stored {
                Ok(at) => ctx.send(&read_marker_line(ctx.shared.server_name(), &target, at)),
                Err(error) => failed(ctx, &target, &error),
            },
        );
        return Ok(());
    };
    let Some(at) = stamp.strip_prefix("timestamp=").and_then(parse_time) else {
        return Err(Reply::fail(
            COMMAND,
            "INVALID_PARAMS",
            &[stamp],
            "Invalid timestamp; use timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
        ));
    };
    // "it can clamp it between the last read timestamp and the current time": a client cannot
    // mark the future read.
    let at = at.min(now_ms());
    let keep = limits.read_markers_per_account;
    let setter = ctx.session.id;
    let asking = account.clone();
    ctx.then_blocking(
        move || store.advance_read_marker(&asking, &key, at, keep),
        move |ctx, stored| match stored {
            Ok(stored) => {
                ctx.send(&read_marker_line(
                    ctx.shared.server_name(),
                    &target,
                    Some(stored),
                ));
                if stored == at {
                    tell_other_sessions(ctx, account, target, stored, setter);
                }
            }
            Err(error) => failed(ctx, &target, &error),
        },
    );
    Ok(())
}

/// The account's other sessions with the capability learn the new marker: here at once, in a
/// cluster on every node from the stream.
fn tell_other_sessions(
    ctx: &Ctx<'_>,
    account: String,
    target: String,
    time_ms: i64,
    setter: crate::state::ClientId,
) {
    let bytes = read_marker_line(ctx.shared.server_name(), &target, Some(time_ms));
    // The setter's own other sessions (one user, several devices) are told here at once, in a
    // cluster too: the stream's copy skips the setting user, whose node is this one.
    let siblings: Vec<_> = {
        let world = ctx.shared.world.lock();
        let mut sessions = world.siblings(setter, ctx.outbound);
        sessions.retain(|s| s.wire_caps() & wire::READ_MARKER != 0);
        if ctx.cluster_uid(setter).is_none() {
            sessions.extend(world.sessions_of(&account, wire::READ_MARKER, Some(setter)));
        }
        sessions
    };
    crate::fanout::send_now(&bytes, &siblings);
    let Some(uid) = ctx.cluster_uid(setter) else {
        return;
    };
    ctx.replicate(|_| {
        Some(Event::ReadMarker {
            uid,
            account,
            target,
            time_ms,
        })
    });
}

fn failed(ctx: &Ctx<'_>, target: &str, error: &crate::store::StoreError) {
    tracing::warn!(%error, "cannot read or store a read marker");
    ctx.reply(&Reply::fail(
        COMMAND,
        "INTERNAL_ERROR",
        &[target],
        "The read timestamp could not be set",
    ));
}

/// Right after this user's JOIN of `shown`, before its NAMES: with `draft/read-marker` the
/// channel's marker is owed first. A guest's (`*`) goes now; true when the caller must leave
/// the NAMES to [`then_names`], which first asks the store for the account's marker.
pub fn names_wait(ctx: &Ctx<'_>, shown: &str) -> bool {
    if !ctx.session.caps.read_marker {
        return false;
    }
    if ctx.session.account.is_none() {
        ctx.send(&read_marker_line(ctx.shared.server_name(), shown, None));
        return false;
    }
    true
}

/// The marker of channel `key` (shown as `shown`) and then its NAMES (see [`names_wait`]).
pub fn then_names(ctx: &mut Ctx<'_>, key: String, shown: String) {
    let Some(account) = ctx.session.account.as_deref().map(casefold) else {
        return;
    };
    let store = ctx.shared.accounts.store().clone();
    let asked = key.clone();
    ctx.then_blocking(
        move || store.read_marker(&account, &asked),
        move |ctx, stored| {
            let at = stored.unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot read a read marker; sent as none");
                None
            });
            ctx.send(&read_marker_line(ctx.shared.server_name(), &shown, at));
            send_names(ctx, &mut ctx.shared.world.lock(), &key);
        },
    );
}
