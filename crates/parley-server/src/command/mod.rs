//! The dispatcher: one `match` from a command's name to its handler. Each family lives in its own
//! file; every handler is synchronous (it takes the world lock briefly and queues bytes), so no
//! handler can make a connection wait on another; what must wait (a store call, a nick claim)
//! is a follow-up the connection runs afterwards.
//!
//! Handlers return `Result<(), Reply>`: the error numerics come from the lookups in `context`
//! (`channel_named` 403, `user_named` 401, `require_member` 442, `require_op` 482,
//! `require_params` 461, `require_oper` 481) and are sent here, once, after every lock the
//! handler held is let go. What must wait is left on the context (`then_async`,
//! `then_blocking`) and answered by the connection in order.

pub mod auth;
pub mod channel;
pub mod chathistory;
pub mod help;
pub mod help_text;
pub mod info;
pub mod join;
pub mod links;
pub mod message;
pub mod mode;
pub mod nick;
pub mod oper;
pub mod owner;
pub mod presence;
pub mod query;
pub mod registration;
pub mod session;

use parley_proto::{numeric, Message};

use crate::context::{Ctx, Reply};

pub fn dispatch(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let verb = msg.command.to_ascii_uppercase();
    let answered = match verb.as_str() {
        "CAP" => registration::cap(ctx, msg),
        "NICK" => nick::nick(ctx, msg),
        "USER" => registration::user(ctx, msg),
        "PASS" => auth::pass(ctx, msg),
        "AUTHENTICATE" => auth::authenticate(ctx, msg),
        "REGISTER" => auth::register(ctx, msg),
        "PING" => presence::ping(ctx, msg),
        "PONG" => Ok(()),
        "QUIT" => presence::quit(ctx, msg),
        _ if !ctx.session.registered => Err(Reply::new(
            numeric::ERR_NOTREGISTERED,
            &[],
            "You have not registered",
        )),
        "PRIVMSG" => message::privmsg(ctx, msg, false),
        "NOTICE" => {
            // Never answered with an error (RFC 2812 3.3.2).
            let _ = message::privmsg(ctx, msg, true);
            Ok(())
        }
        "JOIN" => join::join(ctx, msg),
        "PART" => join::part(ctx, msg),
        "TOPIC" => channel::topic(ctx, msg),
        "NAMES" => channel::names(ctx, msg),
        "LIST" => channel::list(ctx, msg),
        "INVITE" => channel::invite(ctx, msg),
        "KICK" => channel::kick(ctx, msg),
        "MODE" => mode::mode(ctx, msg),
        "CHATHISTORY" => chathistory::chathistory(ctx, msg),
        "OWNER" => owner::owner(ctx, msg),
        "OPER" => oper::oper(ctx, msg),
        "KILL" => oper::kill(ctx, msg),
        "KLINE" => oper::kline(ctx, msg),
        "UNKLINE" => oper::unkline(ctx, msg),
        "DLINE" => oper::dline(ctx, msg),
        "UNDLINE" => oper::undline(ctx, msg),
        "STATS" => oper::stats(ctx, msg),
        "SUSPEND" => oper::suspend(ctx, msg, true),
        "UNSUSPEND" => oper::suspend(ctx, msg, false),
        "WALLOPS" => oper::wallops(ctx, msg),
        "REHASH" => oper::rehash(ctx, msg),
        "AWAY" => presence::away(ctx, msg),
        "WHO" => query::who(ctx, msg),
        "WHOIS" => query::whois(ctx, msg),
        "WHOWAS" => query::whowas(ctx, msg),
        "ISON" => query::ison(ctx, msg),
        "USERHOST" => query::userhost(ctx, msg),
        "SESSION" => session::session(ctx, msg),
        "LUSERS" => info::lusers(ctx),
        "VERSION" => info::version(ctx),
        "TIME" => info::time(ctx),
        "MOTD" => info::motd(ctx),
        "HELP" | "HELPOP" => help::help(ctx, msg),
        "LINKS" => links::links(ctx, msg),
        _ => Err(Reply::new(
            numeric::ERR_UNKNOWNCOMMAND,
            &[&verb],
            "Unknown command",
        )),
    };
    // Handlers end with their refusal; it is sent here, after every lock they held is let go.
    if let Err(reply) = answered {
        ctx.reply(&reply);
    }
}
