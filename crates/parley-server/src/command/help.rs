//! `HELP` and `HELPOP` (modern.ircdocs.horse): a topic's title as RPL_HELPSTART (704), its text
//! as RPL_HELPTXT (705) after an empty one, its last line as RPL_ENDOFHELP (706); an unknown
//! subject is one ERR_HELPNOTFOUND (524). The words live in `help_text.rs`.

use parley_proto::{numeric, Message};

use crate::command::help_text;
use crate::context::{Ctx, Reply};

/// `HELP [<subject>]` (and `HELPOP`, which older clients send): "servers MUST either: reply with
/// a single ERR_HELPNOTFOUND message; or reply with a single RPL_HELPSTART message, then
/// arbitrarily many RPL_HELPTXT messages, then a single RPL_ENDOFHELP".
pub fn help(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let asked = msg.param(0).map(str::trim).filter(|s| !s.is_empty());
    let Some(topic) = help_text::topic(asked.unwrap_or("*")) else {
        // "The <subject> MUST be the one requested by the client, but may be casefolded;
        // unless it would be an invalid parameter, in which case it MUST be `*`" (a subject
        // with a space, say: `numeric` writes `*` for any parameter that would break the line).
        let subject = asked.unwrap_or("*").to_ascii_uppercase();
        return Err(Reply::new(
            numeric::ERR_HELPNOTFOUND,
            &[&subject],
            "No help available on this topic",
        ));
    };
    let subject = topic.subject;
    let (title, text) = topic
        .lines
        .split_first()
        .expect("every help topic has a title and text (help_text's tests check it)");
    ctx.numeric(numeric::RPL_HELPSTART, &[subject], Some(title));
    // "The RPL_HELPSTART message SHOULD be some sort of title and the first RPL_HELPTXT
    // message SHOULD be empty."
    ctx.numeric(numeric::RPL_HELPTXT, &[subject], Some(""));
    let (last, middle) = text
        .split_last()
        .expect("every help topic has a title and text (help_text's tests check it)");
    for line in middle {
        ctx.numeric(numeric::RPL_HELPTXT, &[subject], Some(line));
    }
    ctx.numeric(numeric::RPL_ENDOFHELP, &[subject], Some(last));
    Ok(())
}
