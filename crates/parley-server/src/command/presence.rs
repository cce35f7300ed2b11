//! Keeping the connection alive and saying where you are: PING, QUIT, AWAY.

use parley_proto::{numeric, Message};

use crate::context::{Ctx, Reply};

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
    ctx.session.quit = Some(reason);
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
    if let Some(user) = ctx.shared.world.lock().users.get_mut(&ctx.session.id) {
        user.away = away.clone();
    }
    if ctx.session.registered {
        ctx.replicate(|cluster| {
            Some(crate::cluster::event::Event::Away {
                uid: cluster.uid_of(ctx.session.id),
                away,
            })
        });
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
