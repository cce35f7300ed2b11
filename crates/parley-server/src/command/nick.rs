//! NICK: claim a nick before registration, or change it after (seen by everyone who shares a
//! channel). Nicks are unique under ASCII casemapping; a client may change its own nick's case.
//!
//! A nick that names an account belongs to whoever is logged in to it: an unregistered
//! connection holding it (a squatter, or a client that has not logged in yet) loses it to the
//! owner, with a 433, when the owner asks for it or logs in without a nick, as ergo does.

use std::time::Duration;

use parley_proto::{casefold, numeric, validate, Message};

use crate::cluster::event::Event;
use crate::cluster::ClaimError;
use crate::command::{multiclient, registration};
use crate::context::{Announced, Ctx, Line, Reply};
use crate::relay::line;
use crate::state::{ClientId, WhowasEntry, World};

/// `NICK <nick>`: take a valid, free nick (an account's own nick only when logged in to it; in
/// a cluster once claimed network-wide).
pub fn nick(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(wanted) = msg.param(0).filter(|n| !n.is_empty()) else {
        return Err(Reply::no_nickname_given());
    };
    if !validate::nick(wanted, ctx.shared.config.limits.nick_len) {
        return Err(Reply::new(
            numeric::ERR_ERRONEUSNICKNAME,
            &[wanted],
            "Erroneous nickname",
        ));
    }
    let id = ctx.session.id;
    let folded = casefold(wanted);
    if wanted == ctx.session.nick && holds(ctx, &folded) {
        return Ok(());
    }
    // Before registration the owner may still log in, so the check waits for try_complete.
    if ctx.session.registered && !registration::nick_allowed(ctx, wanted) {
        return Ok(());
    }
    let holder = ctx
        .shared
        .world
        .lock()
        .nicks
        .get(&folded)
        .copied()
        .filter(|holder| *holder != id);
    let mut evicted = None;
    if let Some(holder) = holder {
        if !ctx.session.registered && becomes_session_of(ctx, holder) {
            // Logged in already (SASL before NICK, as irssi does) to the account of the user
            // holding the nick: this connection is about to be another session of that user
            // and takes its nick then. A 433 here would make the client send another NICK,
            // which, arriving after the welcome, would rename the user on every session.
            ctx.session.nick = wanted.to_owned();
            registration::try_complete(ctx);
            return Ok(());
        }
        if !(owns(ctx, &folded) && evict_squatter(ctx, holder, wanted)) {
            return Err(nick_in_use(wanted));
        }
        evicted = Some(holder);
    }
    // A new case of the nick it holds is still its claim: nothing to ask the cluster.
    let recased = casefold(&ctx.session.nick) == folded && holds(ctx, &folded);
    if ctx.announcer().claims_nicks() && !recased {
        // Held once in the whole cluster: claimed first, then taken in `claimed`.
        claim(ctx, wanted, evicted);
        return Ok(());
    }
    take(ctx, wanted);
    Ok(())
}

/// Whether this connection's nick index entry for `folded` is its own. Not so for a nick an
/// account's owner took back (see [`evict_squatter`]): the session still shows it until then.
pub fn holds(ctx: &Ctx<'_>, folded: &str) -> bool {
    ctx.shared.world.lock().nicks.get(folded) == Some(&ctx.session.id)
}

/// Whether this registering connection, logged in, will become another session of `holder`
/// (`multiclient::attach` here, or carried to the holder's node in a cluster).
fn becomes_session_of(ctx: &Ctx<'_>, holder: crate::state::ClientId) -> bool {
    let Some(account) = ctx.session.account.as_deref().map(casefold) else {
        return false;
    };
    let same_account = ctx.shared.world.lock().users.get(&holder).is_some_and(|u| {
        u.registered && u.account.as_deref().is_some_and(|a| casefold(a) == account)
    });
    same_account
        && (crate::command::multiclient::can_attach(ctx)
            || crate::command::multiclient::home_elsewhere(ctx).is_some())
}

/// Whether this connection is logged in to the account named `folded`.
fn owns(ctx: &Ctx<'_>, folded: &str) -> bool {
    ctx.session
        .account
        .as_deref()
        .is_some_and(|account| casefold(account) == folded)
}

/// Take `nick` from `holder`, for its account's owner: only from an unregistered connection here
/// that is not logged in to that account. The holder is told with a 433 and must pick another
/// nick before it can register (`registration::try_complete` checks). A registered user keeps
/// the nick it has (renaming it needs its own connection task to agree), and so does a holder on
/// another node of a cluster. Returns whether the nick is free now; in a cluster its claim is
/// still the holder's, for [`claim`] to release before claiming it.
fn evict_squatter(ctx: &Ctx<'_>, holder: ClientId, nick: &str) -> bool {
    let folded = casefold(nick);
    let outbound = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get_mut(&holder) else {
            return false;
        };
        let owner_too = user
            .account
            .as_deref()
            .is_some_and(|account| casefold(account) == folded);
        if user.registered || user.remote.is_some() || owner_too {
            return false;
        }
        user.nick.clear();
        let outbound = user.outbound.clone();
        world.nicks.remove(&folded);
        outbound
    };
    let _ = outbound.push(&line(
        Some(ctx.shared.server_name()),
        numeric::ERR_NICKNAMEINUSE,
        &["*", nick],
        Some(RESERVED),
    ));
    tracing::info!(client = holder.0, account = %nick, "account owner took its nick from an unregistered connection");
    true
}

/// Registration refused the nick this connection asked for (an account's, and it is not logged
/// in to it): it holds it no more, here or in the cluster, so the owner can take it on any node
/// at once rather than after the registration timeout; the connection must pick another.
pub fn give_up_refused(ctx: &mut Ctx<'_>) {
    let id = ctx.session.id;
    let folded = casefold(&ctx.session.nick);
    {
        let mut world = ctx.shared.world.lock();
        if world.nicks.get(&folded) == Some(&id) {
            world.nicks.remove(&folded);
        }
        if let Some(user) = world.users.get_mut(&id) {
            user.nick.clear();
        }
    }
    ctx.session.nick.clear();
    release(ctx, folded);
}

/// What a connection hears when a nick is an account's and it is not logged in to it.
pub const RESERVED: &str =
    "Nickname is reserved by a registered account; log in as it or choose another nick";

/// Just logged in, before registration and still without a nick (its NICK was refused, say,
/// because someone held it): take the account's name as nick, from a squatter if need be.
pub fn claim_account_nick(ctx: &mut Ctx<'_>, account: &str) {
    if ctx.session.registered
        || !ctx.session.nick.is_empty()
        || !validate::nick(account, ctx.shared.config.limits.nick_len)
    {
        return;
    }
    let folded = casefold(account);
    let holder = ctx.shared.world.lock().nicks.get(&folded).copied();
    if let Some(holder) = holder {
        if holder == ctx.session.id || !evict_squatter(ctx, holder, account) {
            return;
        }
    }
    if ctx.announcer().claims_nicks() {
        claim(ctx, account, holder);
        return;
    }
    take(ctx, account);
}

/// 433 ERR_NICKNAMEINUSE.
fn nick_in_use(wanted: &str) -> Reply {
    Reply::new(
        numeric::ERR_NICKNAMEINUSE,
        &[wanted],
        "Nickname is already in use",
    )
}

fn in_use(ctx: &Ctx<'_>, wanted: &str) {
    ctx.reply(&nick_in_use(wanted));
}

/// A registering connection that was to become another session of a user (so its NICK of the
/// user's nick was taken without a claim, [`becomes_session_of`]) stays a user of its own after
/// all: the user's node did not take it. Mostly because that user has just left (its last
/// session closed a moment before this login, its QUIT still on the bus when the login was
/// decided); then the nick is about to be free. So it is claimed as NICK would claim it, but
/// patiently ([`claim_when_freed`]); a 433 only if it is still someone's after that.
pub fn claim_or_refuse_unheld(ctx: &mut Ctx<'_>) {
    let nick = std::mem::take(&mut ctx.session.nick);
    if nick.is_empty() {
        return;
    }
    if holds(ctx, &casefold(&nick)) {
        ctx.session.nick = nick;
        return;
    }
    claim_when_freed(ctx, &nick);
}

/// How long [`claim_when_freed`] waits for a departing user's nick: its QUIT to reach this node
/// and its claim to be given back on the bus. Both take milliseconds; a node that is gone took
/// the handover's wait already.
const FREED_WAIT: Duration = Duration::from_secs(2);
/// How often that wait looks again (at most 100 times, for this one connection).
const FREED_POLL: Duration = Duration::from_millis(20);

/// Claim `wanted` once its holder here is gone and its claim across the cluster given back,
/// waiting up to [`FREED_WAIT`] for both, then see [`claimed`] (so a 433 if it is still taken).
/// A user's node publishes its QUIT and gives back its nick's claim separately, in either order.
fn claim_when_freed(ctx: &mut Ctx<'_>, wanted: &str) {
    let (folded, wanted, id) = (casefold(wanted), wanted.to_string(), ctx.session.id);
    ctx.then_async(
        move |on| {
            Box::pin(async move {
                let deadline = tokio::time::Instant::now() + FREED_WAIT;
                let held_here = || {
                    on.shared
                        .world
                        .lock()
                        .nicks
                        .get(&folded)
                        .is_some_and(|holder| *holder != id)
                };
                loop {
                    let waited_enough = tokio::time::Instant::now() >= deadline;
                    if held_here() {
                        if waited_enough {
                            return Err(ClaimError::Taken);
                        }
                    } else {
                        let result = on.claim_nick(&folded, id).await;
                        if waited_enough || !matches!(result, Err(ClaimError::Taken)) {
                            return result;
                        }
                    }
                    tokio::time::sleep(FREED_POLL).await;
                }
            })
        },
        move |ctx, result| claimed(ctx, &wanted, result),
    );
}

/// Claim `wanted` across the cluster, in order with this connection's other lines, then see
/// [`claimed`] with the answer. The claim of a squatter `evicted` here is released first, and
/// awaited: claimed at once, the nick would still be the squatter's and its owner get a 433.
fn claim(ctx: &mut Ctx<'_>, wanted: &str, evicted: Option<ClientId>) {
    let (folded, wanted, id) = (casefold(wanted), wanted.to_string(), ctx.session.id);
    ctx.then_async(
        move |on| {
            Box::pin(async move {
                if let Some(squatter) = evicted {
                    on.release_nick_now(&folded, squatter).await;
                }
                on.claim_nick(&folded, id).await
            })
        },
        move |ctx, result| claimed(ctx, &wanted, result),
    );
}

/// Give back a nick this connection claimed, in order with its other lines: a release still
/// on its way could otherwise delete its next claim of the same nick.
fn release(ctx: &mut Ctx<'_>, folded: String) {
    if folded.is_empty() {
        return;
    }
    let id = ctx.session.id;
    ctx.then_async(
        move |on| Box::pin(async move { on.release_nick_now(&folded, id).await }),
        |_, ()| {},
    );
}

/// The cluster's answer to a nick claim.
fn claimed(ctx: &mut Ctx<'_>, wanted: &str, result: Result<(), ClaimError>) {
    match result {
        Ok(()) => {
            let id = ctx.session.id;
            let taken_here = ctx
                .shared
                .world
                .lock()
                .nicks
                .get(&casefold(wanted))
                .is_some_and(|owner| *owner != id);
            if taken_here {
                // Someone here still shows it (their QUIT is on its way): not ours after all.
                release(ctx, casefold(wanted));
                in_use(ctx, wanted);
                return;
            }
            let old = casefold(&ctx.session.nick);
            take(ctx, wanted);
            if old != casefold(wanted) {
                release(ctx, old);
            }
        }
        Err(ClaimError::Taken) => in_use(ctx, wanted),
        Err(ClaimError::Unavailable) => ctx.numeric(
            numeric::ERR_UNAVAILRESOURCE,
            &[wanted],
            Some("Nick is temporarily unavailable (the network cannot confirm it is free); try again"),
        ),
    }
}

/// Make `wanted` this connection's nick, telling everyone who shares a channel.
fn take(ctx: &mut Ctx<'_>, wanted: &str) {
    let id = ctx.session.id;
    let folded = casefold(wanted);
    // The lock is let go before the user's own NICK line and the publishing (which may apply
    // the event here, taking it again).
    let (announce, announced) = {
        let mut world = ctx.shared.world.lock();
        let old_folded = casefold(&ctx.session.nick);
        if world.nicks.get(&old_folded) == Some(&id) {
            world.nicks.remove(&old_folded);
        }
        world.nicks.insert(folded, id);
        let whowas_limit = ctx.shared.config.limits.whowas_entries;
        let mut announce = None;
        let mut announced = Announced::default();
        if let Some(user) = world.users.get(&id) {
            if user.registered {
                announce = Some((
                    user.source(),
                    line(Some(&user.source()), "NICK", &[], Some(wanted)),
                ));
            }
        }
        if let Some((source, bytes)) = &announce {
            if let Some(entry) = world.users.get(&id).map(|u| WhowasEntry::of(u)) {
                // Keep the old nick findable by WHOWAS, as other servers do.
                world.push_whowas(entry, whowas_limit);
            }
            let neighbours = std::sync::Arc::new(world.neighbours(id));
            // The user's other sessions follow it to the new nick.
            let neighbours = multiclient::with_siblings(&world, id, ctx.outbound, neighbours);
            multiclient::mark_changed(&world, id, ctx.outbound);
            announced = ctx.announce(Line::Bytes(bytes), &neighbours, |cluster| Event::Nick {
                uid: cluster.uid_of(id),
                source: source.clone(),
                nick: wanted.to_string(),
            });
        }
        let World {
            users, channels, ..
        } = &mut *world;
        if let Some(user) = users.get_mut(&id) {
            user.nick = wanted.to_string();
            for key in &user.channels {
                if let Some(channel) = channels.get_mut(key) {
                    channel.names_changed();
                }
            }
        }
        if announce.is_some() {
            if let Some(source) = world.users.get(&id).map(|u| u.source()) {
                let server = ctx.shared.server_name();
                world.monitor_renamed(server, &ctx.session.nick, wanted, &source);
            }
        }
        (announce, announced)
    };
    if let Some((_, bytes)) = &announce {
        ctx.send(bytes);
    }
    ctx.publish(announced);
    ctx.session.nick = wanted.to_string();
    registration::try_complete(ctx);
}
