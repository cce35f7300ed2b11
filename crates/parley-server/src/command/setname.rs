//! SETNAME (ircv3.net/specs/extensions/setname): change one's realname without reconnecting.
//! The new realname goes to the user itself and to everyone who shares a channel with it (and,
//! with `extended-monitor`, who monitors its nick), but only to clients that negotiated
//! `setname`; the others keep reading it from WHO and WHOIS.

use parley_proto::Message;

use crate::cluster::event::Event;
use crate::context::{Ctx, Line, Reply};
use crate::relay::{line, notify};

/// `SETNAME :<realname>`.
pub fn setname(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    // "If a client sends a SETNAME command without having negotiated the capability, the server
    // SHOULD handle it silently (with no response)": the change is made, nothing is said.
    let negotiated = ctx.session.caps.setname;
    let realname = msg.param(0).unwrap_or("");
    let limit = ctx.shared.config.limits.realname_len;
    // "Servers MUST check the realname for validity (taking length limits into consideration)":
    // too long is refused, not cut (the client would think its whole text was taken).
    if realname.is_empty() || realname.chars().count() > limit {
        return if negotiated {
            Err(Reply::fail(
                "SETNAME",
                "INVALID_REALNAME",
                &[],
                &format!("Realname is not valid (1 to {limit} characters)"),
            ))
        } else {
            Ok(())
        };
    }
    let id = ctx.session.id;
    let announced = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get_mut(&id) else {
            return Ok(());
        };
        user.realname = realname.to_string();
        let source = user.source();
        let bytes = line(Some(&source), "SETNAME", &[], Some(realname));
        // "they MUST send the server-to-client version of the SETNAME message to all clients in
        // common channels, as well as to the client from which it originated"; "The SETNAME
        // message MUST NOT be sent to clients which do not have the setname capability
        // negotiated."
        let recipients = world.notify_recipients(id, notify::SETNAME);
        let recipients =
            crate::command::multiclient::with_siblings(&world, id, ctx.outbound, recipients);
        if negotiated {
            ctx.send(&bytes);
        }
        ctx.announce(
            Line::ForNotify(&bytes, notify::SETNAME),
            &recipients,
            |cluster| Event::Realname {
                uid: cluster.uid_of(id),
                source: source.clone(),
                realname: realname.to_string(),
            },
        )
    };
    ctx.publish(announced);
    Ok(())
}
