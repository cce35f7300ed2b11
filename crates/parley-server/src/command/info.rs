//! Server information: LUSERS, ADMIN, VERSION, TIME, MOTD (the configurable welcome message).

use std::time::SystemTime;

use parley_proto::{numeric, Message};

use crate::clock::httpdate_like;
use crate::context::{Ctx, Reply};
use crate::server::VERSION;

/// `LUSERS`: how many users, operators, unknown connections and channels (251-255, 265, 266).
/// In a cluster the network is every live node: 251 and 266 count the network's users and
/// servers, 255 and 265 this node's own clients and the nodes it is linked to.
pub fn lusers(ctx: &mut Ctx<'_>) -> Result<(), Reply> {
    // Unknown connections are those still registering, counted from the world rather than from the
    // open sockets: a user who has left may keep its socket a while for the final ERROR.
    let (users, invisible, unknown, channels, max, opers, local, max_local) = {
        let world = ctx.shared.world.lock();
        let counts = world.counts;
        // Every other node's user is registered there before it is known here.
        let local = counts.registered.saturating_sub(world.remote.len());
        (
            counts.registered,
            counts.invisible,
            world.users.len().saturating_sub(counts.registered),
            world.channels.len(),
            world.max_registered,
            counts.opers,
            local,
            world.max_local.max(local),
        )
    };
    let links = crate::cluster::of(ctx.shared).map_or(0, |cluster| cluster.network().len());
    ctx.numeric(
        numeric::RPL_LUSERCLIENT,
        &[],
        Some(&format!(
            "There are {} users and {invisible} invisible on {} servers",
            users.saturating_sub(invisible),
            links + 1
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
        Some(&format!("I have {local} clients and {links} servers")),
    );
    let (local, max_local) = (local.to_string(), max_local.to_string());
    ctx.numeric(
        numeric::RPL_LOCALUSERS,
        &[&local, &max_local],
        Some(&format!("Current local users {local}, max {max_local}")),
    );
    let (users, max) = (users.to_string(), max.to_string());
    ctx.numeric(
        numeric::RPL_GLOBALUSERS,
        &[&users, &max],
        Some(&format!("Current global users {users}, max {max}")),
    );
    Ok(())
}

/// `ADMIN [<target>]`: who runs a server (256-259). The target is a server of the network or
/// a user on one, answered with that server's lines from its node claim; anything else is 402.
pub fn admin(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let me = ctx.shared.server_name().to_owned();
    let (server, lines) = match msg.param(0).filter(|t| !t.is_empty()) {
        None => (me, crate::cluster::identity::admin_lines(ctx.shared)),
        Some(target) => match admin_of(ctx, target) {
            Some(found) => found,
            None => {
                return Err(Reply::new(
                    numeric::ERR_NOSUCHSERVER,
                    &[target],
                    "No such server",
                ))
            }
        },
    };
    ctx.numeric(
        numeric::RPL_ADMINME,
        &[&server],
        Some("Administrative info"),
    );
    let [location, role, email] = lines;
    ctx.numeric(numeric::RPL_ADMINLOC1, &[], Some(&location));
    ctx.numeric(numeric::RPL_ADMINLOC2, &[], Some(&role));
    ctx.numeric(numeric::RPL_ADMINEMAIL, &[], Some(&email));
    Ok(())
}

/// The server `target` names (a server of the network, or the server a nick is on) and its
/// ADMIN lines.
fn admin_of(ctx: &Ctx<'_>, target: &str) -> Option<(String, [String; 3])> {
    let me = ctx.shared.server_name();
    let cluster = crate::cluster::of(ctx.shared);
    let node = if target.eq_ignore_ascii_case(me) {
        None
    } else if let Some(view) = cluster.and_then(|c| {
        c.network()
            .into_iter()
            .find(|v| v.server.eq_ignore_ascii_case(target))
    }) {
        Some(view.node)
    } else {
        let world = ctx.shared.world.lock();
        let user = world.user_by_nick(target)?;
        match user.remote.as_deref() {
            None => None,
            Some(uid) => Some(crate::cluster::identity::node_of(uid)?.to_owned()),
        }
    };
    match (node, cluster) {
        (None, _) => Some((
            me.to_owned(),
            crate::cluster::identity::admin_lines(ctx.shared),
        )),
        (Some(node), Some(cluster)) => Some((cluster.server_name(&node), cluster.admin_of(&node)?)),
        (Some(_), None) => None,
    }
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
