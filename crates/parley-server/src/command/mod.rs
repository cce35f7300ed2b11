//! The dispatcher: one `match` from a command's name to its handler. Each family lives in its own
//! file; every handler is synchronous (it takes the world lock briefly and queues bytes), so no
//! handler can make a connection wait on another.

pub mod auth;
pub mod channel;
pub mod chathistory;
pub mod info;
pub mod join;
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

use crate::context::Ctx;

pub fn dispatch(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let verb = msg.command.to_ascii_uppercase();
    match verb.as_str() {
        "CAP" => registration::cap(ctx, msg),
        "NICK" => nick::nick(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "USER" => registration::user(ctx, msg),
        "PASS" => auth::pass(ctx, msg),
        "AUTHENTICATE" => auth::authenticate(ctx, msg),
        "REGISTER" => auth::register(ctx, msg),
        "PING" => presence::ping(ctx, msg),
        "PONG" => {}
        "QUIT" => presence::quit(ctx, msg),
        _ if !ctx.session.registered => {
            ctx.numeric(
                numeric::ERR_NOTREGISTERED,
                &[],
                Some("You have not registered"),
            );
        }
        "PRIVMSG" => message::privmsg(ctx, msg, false).unwrap_or_else(|reply| ctx.reply(&reply)),
        "NOTICE" => {
            // Never answered with an error (RFC 2812 3.3.2).
            let _ = message::privmsg(ctx, msg, true);
        }
        "JOIN" => join::join(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "PART" => join::part(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "TOPIC" => channel::topic(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "NAMES" => channel::names(ctx, msg),
        "LIST" => channel::list(ctx, msg),
        "INVITE" => channel::invite(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "KICK" => channel::kick(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "MODE" => mode::mode(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "CHATHISTORY" => chathistory::chathistory(ctx, msg),
        "OWNER" => owner::owner(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "OPER" => oper::oper(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "KILL" => oper::kill(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "KLINE" => oper::kline(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "UNKLINE" => oper::unkline(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "DLINE" => oper::dline(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "UNDLINE" => oper::undline(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "STATS" => oper::stats(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "SUSPEND" => oper::suspend(ctx, msg, true).unwrap_or_else(|reply| ctx.reply(&reply)),
        "UNSUSPEND" => oper::suspend(ctx, msg, false).unwrap_or_else(|reply| ctx.reply(&reply)),
        "WALLOPS" => oper::wallops(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
        "REHASH" => oper::rehash(ctx, msg).unwrap_or_else(|reply| ctx.reply(&reply)),
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
        _ => ctx.numeric(
            numeric::ERR_UNKNOWNCOMMAND,
            &[&verb],
            Some("Unknown command"),
        ),
    }
}
