//! Server information: LUSERS, VERSION, TIME, MOTD (the configurable welcome message).

use std::time::SystemTime;

use parley_proto::numeric;

use crate::clock::httpdate_like;
use crate::context::{Ctx, Reply};
use crate::server::VERSION;

/// `LUSERS`: how many users, operators, unknown connections and channels (251-255, 265, 266).
pub fn lusers(ctx: &mut Ctx<'_>) -> Result<(), Reply> {
    // Unknown connections are those still registering, counted from the world rather than from the
    // open sockets: a user who has left may keep its socket a while for the final ERROR.
    let (users, invisible, unknown, channels, max, opers) = {
        let world = ctx.shared.world.lock();
        let counts = world.counts;
        (
            counts.registered,
            counts.invisible,
            world.users.len().saturating_sub(counts.registered),
            world.channels.len(),
            world.max_registered,
            counts.opers,
        )
    };
    ctx.numeric(
        numeric::RPL_LUSERCLIENT,
        &[],
        Some(&format!(
            "There are {} users and {invisible} invisible on 1 servers",
            users.saturating_sub(invisible)
        )),
    );
    ctx.numeric(
        numeric::RPL_LUSEROP,
        &[&opers.to_string()],
        Some("operator(s) online"),
    );
    ctx.numeric(
        numeric::RPL_LUSERUNKNOWN,
        &[&unknown.to_string()],
        Some("unknown connection(s)"),
    );
    ctx.numeric(
        numeric::RPL_LUSERCHANNELS,
        &[&channels.to_string()],
        Some("channels formed"),
    );
    ctx.numeric(
        numeric::RPL_LUSERME,
        &[],
        Some(&format!("I have {users} clients and 0 servers")),
    );
    let (users, max) = (users.to_string(), max.to_string());
    ctx.numeric(
        numeric::RPL_LOCALUSERS,
        &[&users, &max],
        Some(&format!("Current local users {users}, max {max}")),
    );
    ctx.numeric(
        numeric::RPL_GLOBALUSERS,
        &[&users, &max],
        Some(&format!("Current global users {users}, max {max}")),
    );
    Ok(())
}

/// `VERSION`: 351, then the ISUPPORT tokens.
pub fn version(ctx: &mut Ctx<'_>) -> Result<(), Reply> {
    let name = ctx.shared.server_name();
    ctx.numeric(
        numeric::RPL_VERSION,
        &[VERSION, name],
        Some("Parley chat server"),
    );
    ctx.send_isupport();
    Ok(())
}

/// `TIME`: the server's local time (391).
pub fn time(ctx: &mut Ctx<'_>) -> Result<(), Reply> {
    let name = ctx.shared.server_name();
    ctx.numeric(
        numeric::RPL_TIME,
        &[name],
        Some(&httpdate_like(SystemTime::now())),
    );
    Ok(())
}

/// `MOTD`: the configured message of the day (375, 372..., 376), or 422 without one.
pub fn motd(ctx: &mut Ctx<'_>) -> Result<(), Reply> {
    let live = ctx.shared.live();
    let motd = &live.server.motd;
    if motd.trim().is_empty() {
        return Err(Reply::new(numeric::ERR_NOMOTD, &[], "MOTD File is missing"));
    }
    let name = ctx.shared.server_name();
    ctx.numeric(
        numeric::RPL_MOTDSTART,
        &[],
        Some(&format!("- {name} Message of the day - ")),
    );
    for text in motd.lines() {
        // Long lines are cut at a character boundary so each 372 fits in one IRC line.
        let cut = text
            .char_indices()
            .nth(400)
            .map_or(text.len(), |(at, _)| at);
        ctx.numeric(numeric::RPL_MOTD, &[], Some(&format!("- {}", &text[..cut])));
    }
    ctx.numeric(numeric::RPL_ENDOFMOTD, &[], Some("End of /MOTD command."));
    Ok(())
}
