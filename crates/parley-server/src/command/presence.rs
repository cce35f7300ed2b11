//! Keeping the connection alive and saying where you are: PING, QUIT, AWAY (and its
//! `away-notify` lines to those who share a channel or monitor the nick).

use parley_proto::{numeric, Message};

use crate::cluster::event::Event;
use crate::command::multiclient;
use crate::context::{Ctx, Line, Reply};
use crate::relay::{line, notify};

/// `PING <token>`: answered with `PONG <server> :<token>` (409 without a token).
pub fn ping(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(token) = msg.param(0) else {
        return Err(Reply::new(
            numeric::ERR_NOORIGIN,
            &[],
            "No origin specified",
        ));
    };
    let name = ctx.shared.server_name();
    ctx.server_line("PONG", &[name], Some(token));
    Ok(())
}

/// `QUIT [<reason>]`: the connection ends after this line (see `connection.rs`).
pub fn quit(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let reason: String = msg.param(0).unwrap_or("").chars().take(300).collect();
    ctx.session.passing().quit = Some(reason);
    Ok(())
}

/// `AWAY [<text>]`: set (306) or clear (305) the away message others see.
pub fn away(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let text = msg.param(0).unwrap_or("");
    let away = if text.is_empty() {
        None
    } else {
        Some(
            text.chars()
                .take(ctx.shared.config.limits.away_len)
                .collect::<String>(),
        )
    };
    let now_away = away.is_some();
    let id = ctx.session.id;
    let announced = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get_mut(&id) else {
            return Ok(());
        };
        user.away = away.clone();
        let source = user.source();
        if ctx.session.registered {
            // away-notify: "clients will be sent an AWAY message when a user sharing a channel
            // with them sets, changes or removes their away state", and extended-monitor adds
            // those who monitor the nick.
            let bytes = away_line(&source, away.as_deref());
            let recipients = world.notify_recipients(id, notify::AWAY_NOTIFY);
            // The user's other sessions with away-notify see it too: it is their away state.
            let recipients = multiclient::with_siblings(&world, id, ctx.outbound, recipients);
            let line = Line::ForNotify(&bytes, notify::AWAY_NOTIFY);
            Some(ctx.announce(line, &recipients, |cluster| Event::Away {
                uid: cluster.uid_of(id),
                away,
            }))
        } else {
            None
        }
    };
    if let Some(announced) = announced {
        ctx.publish(announced);
    }
    if now_away {
        ctx.numeric(
            numeric::RPL_NOWAWAY,
            &[],
            Some("You have been marked as being away"),
        );
    } else {
        ctx.numeric(
            numeric::RPL_UNAWAY,
            &[],
            Some("You are no longer marked as being away"),
        );
    }
    Ok(())
}

/// `:nick!user@host AWAY [:message]` (away-notify): with the message when going away, without
/// when back.
pub fn away_line(source: &str, away: Option<&str>) -> Vec<u8> {
    line(Some(source), "AWAY", &[], away)
}
