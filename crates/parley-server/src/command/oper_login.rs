//! `OPER <name> <password>` as on every other IRC server: the name picks an operator block of
//! the config (`[[operators.opers]]`), whose TLS, host and account rules must let this
//! connection in (491 otherwise) and whose Argon2id hash the password must match (464
//! otherwise). The check runs in the accounts' hashing pool and counts against the login
//! lockout (`accounts::oper_check`), so guessing is as slow as guessing a login and an unknown
//! name is answered like a wrong password. Operators by account stay: `OPER` alone, or `OPER`
//! naming one's own account, asks whether the account is an operator, as before.

use parley_proto::{casefold, numeric, wildcard_match, Message};

use crate::accounts::OperCheck;
use crate::config::{OperBlock, OperBlockClass};
use crate::context::{Ctx, Reply};
use crate::state::{OperClass, User};

/// `OPER [<name> <password>]`.
pub fn oper(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let already = ctx.oper_class_in(&ctx.shared.world.lock());
    if let Some(class) = already {
        // Said again, as a server answers a second OPER.
        ctx.numeric(
            numeric::RPL_YOUREOPER,
            &[],
            Some(&format!("You are now an IRC operator ({})", class.name())),
        );
        return Ok(());
    }
    let (Some(name), Some(password)) = (msg.param(0), msg.param(1)) else {
        if msg.params.len() == 1 {
            return Err(Reply::need_more_params("OPER"));
        }
        return by_account(ctx);
    };
    let live = ctx.shared.live();
    let block = live
        .operators
        .opers
        .iter()
        .find(|b| casefold(&b.name) == casefold(name))
        .cloned();
    let own_account = ctx
        .session
        .account
        .as_deref()
        .is_some_and(|account| casefold(account) == casefold(name));
    if block.is_none() && own_account {
        return by_account(ctx);
    }
    let allowed = match &block {
        Some(block) => {
            let world = ctx.shared.world.lock();
            let me = world.users.get(&ctx.session.id);
            me.is_some_and(|me| may_use(block, me, ctx.session.secure))
        }
        None => false,
    };
    let hash = block.as_ref().map(|b| b.password_hash.clone());
    let (asked, password) = (name.to_owned(), password.to_owned());
    let ip = ctx.session.ip;
    ctx.then_async(
        move |on| {
            Box::pin(async move {
                on.shared
                    .accounts
                    .check_oper(&asked, &password, hash, allowed, ip)
                    .await
            })
        },
        move |ctx, checked| answered(ctx, block.as_ref(), checked),
    );
    Ok(())
}

/// Operators by account: `OPER` with no block named asks whether the account is one.
fn by_account(ctx: &mut Ctx<'_>) -> Result<(), Reply> {
    if ctx.session.account.is_none() {
        return Err(Reply::new(
            numeric::ERR_NOOPERHOST,
            &[],
            "Log in to an operator account first",
        ));
    }
    ctx.grant_oper(true);
    Ok(())
}

/// Whether `block`'s rules let `me` (over TLS if `secure`) use it.
fn may_use(block: &OperBlock, me: &User, secure: bool) -> bool {
    if block.require_tls && !secure {
        return false;
    }
    if !block.account.is_empty()
        && me.account.as_deref().map(casefold) != Some(casefold(&block.account))
    {
        return false;
    }
    block.hosts.is_empty() || block.hosts.iter().any(|mask| host_matches(mask, me))
}

/// A block's host entry: a network or address against the IP, else a `user@host` (or
/// `nick!user@host`) mask against the user.
fn host_matches(mask: &str, me: &User) -> bool {
    let ip = me.ip.to_canonical();
    if let Ok(network) = mask.parse::<ipnet::IpNet>() {
        return network.contains(&ip);
    }
    if let Ok(address) = mask.parse::<std::net::IpAddr>() {
        return address.to_canonical() == ip;
    }
    let full = if mask.contains('!') {
        mask.to_owned()
    } else if mask.contains('@') {
        format!("*!{mask}")
    } else {
        format!("*!*@{mask}")
    };
    wildcard_match(&full, &me.source())
}

/// The answer to an OPER attempt, once the check is done.
fn answered(
    ctx: &mut Ctx<'_>,
    block: Option<&OperBlock>,
    checked: Result<OperCheck, crate::accounts::LoginError>,
) {
    // A block's name is the config's; a name that is none may be a password typed there.
    let shown = block.map_or("(no such operator)", |b| b.name.as_str());
    let ip = ctx.session.ip;
    match (checked, block) {
        (Ok(OperCheck::Granted), Some(block)) => {
            tracing::info!(oper = %block.name, %ip, nick = %ctx.session.nick, "OPER succeeded");
            let class = match block.class {
                OperBlockClass::Admin => OperClass::Admin,
                OperBlockClass::Moderator => OperClass::Moderator,
            };
            ctx.grant_oper_class(&format!("oper:{}", block.name), class);
        }
        (Ok(OperCheck::NotFromHere), _) => {
            tracing::warn!(oper = %shown, %ip, "OPER refused: not allowed from this connection");
            ctx.audit("oper_failed", shown, Some("not from this host"));
            ctx.numeric(
                numeric::ERR_NOOPERHOST,
                &[],
                Some("No O-lines for your host"),
            );
        }
        (Ok(OperCheck::Locked { retry_after_secs }), _) => {
            ctx.audit("oper_failed", shown, Some("locked out"));
            ctx.numeric(
                numeric::ERR_PASSWDMISMATCH,
                &[],
                Some(&format!(
                    "Too many failed attempts; try again in {retry_after_secs} seconds"
                )),
            );
        }
        (Ok(_), _) => {
            tracing::warn!(oper = %shown, %ip, "OPER failed: wrong name or password");
            ctx.audit("oper_failed", shown, Some("wrong name or password"));
            ctx.numeric(numeric::ERR_PASSWDMISMATCH, &[], Some("Password incorrect"));
        }
        (Err(error), _) => {
            tracing::error!(%error, %ip, "OPER could not be checked");
            ctx.server_line(
                "NOTICE",
                &[ctx.session.nick_or_star()],
                Some("OPER could not be checked just now; try again"),
            );
        }
    }
}
