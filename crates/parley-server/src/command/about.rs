//! `INFO`: what this server is (371 lines, then 374), from facts known at build time: the
//! software and its version, the target it was built for, the license. Nothing external is
//! linked, so the answer is the same offline and gives an attacker no more than VERSION does.

use parley_proto::{casefold, numeric, Message};

use crate::context::{Ctx, Reply};
use crate::server::VERSION;

const RPL_INFO: &str = "371";
const RPL_ENDOFINFO: &str = "374";

/// `INFO [<target>]`: "the server will respond with zero or more `RPL_INFO` replies, followed by
/// one `RPL_ENDOFINFO` numeric" (modern.ircdocs.horse); a target other than this server is 402.
pub fn info(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let name = ctx.shared.server_name();
    if let Some(target) = msg.param(0).filter(|t| !t.is_empty()) {
        if casefold(target) != casefold(name) {
            return Err(Reply::new(
                numeric::ERR_NOSUCHSERVER,
                &[target],
                "No such server",
            ));
        }
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let lines = [
        format!("{name} runs {VERSION}, the Parley chat server (parleyd)"),
        "An IRC server with the IRCv3 extensions modern clients use, written in Rust on tokio."
            .to_owned(),
        format!(
            "Built for {}-{} ({profile} build).",
            std::env::consts::ARCH,
            std::env::consts::OS
        ),
        format!("License: {}.", env!("CARGO_PKG_LICENSE")),
        format!("Network: {}.", ctx.shared.config.server.network),
    ];
    for text in &lines {
        ctx.numeric(RPL_INFO, &[], Some(text));
    }
    ctx.numeric(RPL_ENDOFINFO, &[], Some("End of INFO list"));
    Ok(())
}
