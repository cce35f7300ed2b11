//! `INVITE` with no parameters: the channels this user holds a pending invite to (336, then
//! 337), as modern.ircdocs.horse describes, so a client can show what it may still join. Invites
//! live in each channel (`Channel::invited`), so this walks the channels once.

use parley_proto::numeric;

use crate::context::{Ctx, Reply};

pub fn invites(ctx: &mut Ctx<'_>) -> Result<(), Reply> {
    let mut channels: Vec<String> = {
        let world = ctx.shared.world.lock();
        world
            .channels
            .values()
            .filter(|c| c.invited.contains_key(&ctx.session.id))
            .map(|c| c.name.clone())
            .collect()
    };
    channels.sort();
    for channel in &channels {
        ctx.numeric(numeric::RPL_INVITEDLIST, &[channel], None);
    }
    ctx.numeric(
        numeric::RPL_ENDOFINVITEDLIST,
        &[],
        Some("End of /INVITE list"),
    );
    Ok(())
}
