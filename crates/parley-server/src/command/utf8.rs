//! UTF8ONLY (ircv3.net/specs/extensions/utf8-only): a line that is not valid UTF-8 is refused
//! whole, before any handler sees it, with `FAIL <command> INVALID_UTF8`, so nothing that is not
//! UTF-8 is ever relayed or stored (messages, topics, realnames, away texts alike). The check
//! sits where bytes become text, in the connection's line handling; this is its answer.

use parley_proto::Message;

use crate::context::Ctx;

/// The standard reply's text, the spec's example.
const REFUSAL: &str = "Message rejected, your IRC software MUST use UTF-8 encoding on this network";

/// Answer a line that was not valid UTF-8 (`msg` parsed from it with the bad bytes replaced,
/// only to name its command). A NOTICE is never answered, as everywhere else.
pub fn refuse(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let verb = msg.command.to_ascii_uppercase();
    if verb == "NOTICE" {
        return;
    }
    // A command that is itself mangled is named `*`, as standard replies do for "no command".
    let verb = if verb.contains(char::REPLACEMENT_CHARACTER) {
        "*".to_string()
    } else {
        verb
    };
    ctx.server_line("FAIL", &[&verb, "INVALID_UTF8"], Some(REFUSAL));
}
