//! `LINKS` (modern.ircdocs.horse): the servers this one knows. A single server lists itself; a
//! cluster node lists itself and the other nodes it has heard from within a lease, which is
//! what it knows of the network without asking anyone.

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
        for node in cluster.nodes_heard() {
            ctx.numeric(
                numeric::RPL_LINKS,
                &["*", &node],
                Some(&format!("1 {network} (Parley cluster node)")),
            );
        }
    }
    ctx.numeric(numeric::RPL_ENDOFLINKS, &["*"], Some("End of /LINKS list"));
    Ok(())
}
