//! `TAGMSG` (IRCv3 message-tags): a message of client-only tags and no text, such as the
//! `+typing` notices and `+draft/react` reactions of modern clients. It goes the way of
//! PRIVMSG (`command/message.rs`): the same permission checks and targets, echo-message and
//! labels, the cluster; but only `message-tags` clients ever get one. History keeps a reaction
//! or a reply, never a typing notice, and plays it back only to `draft/event-playback` clients
//! (the rule and its reasons: `history::events`).

use parley_proto::{numeric, Message};

use super::message::{split_targets, to_channel, to_nick, Said};
use crate::context::{Ctx, Reply};

/// `TAGMSG <target>[,<target>...]`: "This message MUST be delivered to targets in the same way
/// as PRIVMSG and NOTICE messages" (ircv3.net message-tags), so its refusals are PRIVMSG's.
pub fn tagmsg(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(targets) = msg.param(0).filter(|t| !t.is_empty()) else {
        return Err(Reply::new(
            numeric::ERR_NORECIPIENT,
            &[],
            "No recipient given (TAGMSG)",
        ));
    };
    let tags = msg.tags.client_only();
    let said = Said {
        verb: "TAGMSG",
        text: "",
        tags: &tags,
    };
    for target in split_targets(ctx, targets)? {
        // STATUSMSG targets (`@#chan`) too: "TAGMSG ... is also subject to STATUSMSG".
        if crate::isupport::split_statusmsg(target)
            .1
            .starts_with(['#', '&'])
        {
            if let Err(reply) = to_channel(ctx, &said, target) {
                ctx.reply(&reply);
            }
        } else if target.starts_with('$') {
            // Only operators message everyone, and a tag-only broadcast has no use.
            ctx.numeric(
                numeric::ERR_NOSUCHNICK,
                &[target],
                Some("No such nick/channel"),
            );
        } else {
            to_nick(ctx, &said, target);
        }
    }
    Ok(())
}
