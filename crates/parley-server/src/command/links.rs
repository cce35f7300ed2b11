//! `LINKS` and `MAP` (modern.ircdocs.horse; MAP as InspIRCd and UnrealIRCd answer it): the
//! servers of the network. A single server lists itself; a cluster node lists itself and the
//! other nodes it has heard from within a lease, each under its own server name, which is what
//! it knows of the network without asking anyone.

use std::collections::HashMap;

use parley_proto::{numeric, Message};

use crate::context::{Ctx, Reply};

/// `LINKS`: "a server MUST send replies back using zero or more RPL_LINKS messages and mark
/// the end of the list using a RPL_ENDOFLINKS message", each `<client> * <server> :<hopcount>
/// <server info>`.
pub fn links(ctx: &mut Ctx<'_>, _msg: &Message<'_>) -> Result<(), Reply> {
    let me = ctx.shared.server_name();
    let network = &ctx.shared.config.server.network;
    ctx.numeric(
        numeric::RPL_LINKS,
        &["*", me],
        Some(&format!("0 {network} (Parley)")),
    );
    if let Some(cluster) = crate::cluster::of(ctx.shared) {
        for node in cluster.network() {
            ctx.numeric(
                numeric::RPL_LINKS,
                &["*", &node.server],
                Some(&format!("1 {network} (Parley cluster node {})", node.node)),
            );
        }
    }
    ctx.numeric(numeric::RPL_ENDOFLINKS, &["*"], Some("End of /LINKS list"));
    Ok(())
}

/// `MAP`: one `006` per server with its users and share of the network's (this server first,
/// the other nodes under it), then `018` with the totals and `007`.
pub fn map(ctx: &mut Ctx<'_>, _msg: &Message<'_>) -> Result<(), Reply> {
    let me = ctx.shared.server_name().to_owned();
    let nodes = crate::cluster::of(ctx.shared)
        .map(|c| c.network())
        .unwrap_or_default();
    let (local, remote) = {
        let world = ctx.shared.world.lock();
        let mut remote: HashMap<String, usize> = HashMap::new();
        for uid in world.remote.keys() {
            if let Some(node) = crate::cluster::identity::node_of(uid) {
                *remote.entry(node.to_owned()).or_default() += 1;
            }
        }
        let local = world.counts.registered.saturating_sub(world.remote.len());
        (local, remote)
    };
    let mut rows = vec![(me, local)];
    rows.extend(
        nodes
            .iter()
            .map(|n| (n.server.clone(), remote.get(&n.node).copied().unwrap_or(0))),
    );
    let total: usize = rows.iter().map(|(_, users)| users).sum();
    let last = rows.len() - 1;
    for (at, (server, users)) in rows.iter().enumerate() {
        let branch = match at {
            0 => "",
            at if at == last => "`-",
            _ => "|-",
        };
        // Hundredths of a percent, rounded, without floats.
        let share = (users * 10_000 + total / 2).checked_div(total).unwrap_or(0);
        ctx.numeric(
            numeric::RPL_MAP,
            &[],
            Some(&format!(
                "{branch}{server} {users} [{}.{:02}%]",
                share / 100,
                share % 100
            )),
        );
    }
    let servers = rows.len();
    let average = (total * 100 + servers / 2) / servers;
    ctx.numeric(
        numeric::RPL_MAPUSERS,
        &[],
        Some(&format!(
            "{servers} servers and {total} users, average {}.{:02} users per server",
            average / 100,
            average % 100
        )),
    );
    ctx.numeric(numeric::RPL_MAPEND, &[], Some("End of /MAP"));
    Ok(())
}
