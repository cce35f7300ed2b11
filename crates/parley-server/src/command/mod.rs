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

pub mod about;
pub mod always_on;
pub mod auth;
pub mod channel;
pub mod chathistory;
pub mod chghost;
pub mod elist;
pub mod help;
pub mod help_text;
pub mod info;
pub mod invite_list;
pub mod join;
pub mod keys;
pub mod links;
pub mod markread;
pub mod message;
pub mod mode;
pub mod monitor;
pub mod multiclient;
pub mod multiline;
pub mod nick;
pub mod oper;
pub mod oper_login;
pub mod owner;
pub mod presence;
pub mod query;
pub mod redact;
pub mod registration;
pub mod rename;
pub mod search;
pub mod session;
pub mod setname;
pub mod tagmsg;
pub mod utf8;
pub mod webpush;
pub mod whox;

use parley_proto::{numeric, Message};

use crate::context::{Ctx, Reply};

pub fn dispatch(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    // A line of an open draft/multiline batch waits for the batch's end.
    if ctx.session.multiline.is_some() && multiline::collect(ctx, msg) {
        return;
    }
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
        "TAGMSG" => tagmsg::tagmsg(ctx, msg),
        "JOIN" => join::join(ctx, msg),
        "PART" => join::part(ctx, msg),
        "TOPIC" => channel::topic(ctx, msg),
        "NAMES" => channel::names(ctx, msg),
        "LIST" => channel::list(ctx, msg),
        "INVITE" => channel::invite(ctx, msg),
        "KICK" => channel::kick(ctx, msg),
        "RENAME" => rename::rename(ctx, msg),
        "MODE" => mode::mode(ctx, msg),
        "CHATHISTORY" => chathistory::chathistory(ctx, msg),
        "MARKREAD" => markread::markread(ctx, msg),
        "WEBPUSH" => webpush::webpush(ctx, msg),
        "SEARCH" => search::search(ctx, msg),
        "KEYS" => keys::keys(ctx, msg),
        "REDACT" => redact::redact(ctx, msg),
        "BATCH" => multiline::batch(ctx, msg),
        "OWNER" => owner::owner(ctx, msg),
        "OPER" => oper_login::oper(ctx, msg),
        "KILL" => oper::kill(ctx, msg),
        "CHGHOST" => chghost::chghost(ctx, msg),
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
        "MONITOR" => monitor::monitor(ctx, msg),
        "USERHOST" => query::userhost(ctx, msg),
        "SESSION" => session::session(ctx, msg),
        "ALWAYSON" => always_on::alwayson(ctx, msg),
        "SETNAME" => setname::setname(ctx, msg),
        "LUSERS" => info::lusers(ctx),
        "VERSION" => info::version(ctx),
        "TIME" => info::time(ctx),
        "MOTD" => info::motd(ctx),
        "INFO" => about::info(ctx, msg),
        "HELP" | "HELPOP" => help::help(ctx, msg),
        "LINKS" => links::links(ctx, msg),
        "MAP" => links::map(ctx, msg),
        "ADMIN" => info::admin(ctx, msg),
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
