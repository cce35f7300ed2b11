//! `SESSION`: login sessions for clients that should stay logged in without keeping the password
//! (the web client across a reload). A vendor extension: IRCv3 has a mechanism to log in with a
//! bearer token (`IRCV3BEARER`, see `auth`) but no way yet to obtain one for the IRC server
//! itself, so the token type is `parley.chat/session` and this command issues and revokes them.
//!
//! ```text
//! SESSION NEW [:<label>]   ->  SESSION NEW <token> <expires-unix-time>
//! SESSION REVOKE           ->  SESSION REVOKED <count> :<text>   (this connection's session)
//! SESSION REVOKE *         ->  SESSION REVOKED <count> :<text>   (every session of the account)
//! ```
//!
//! Errors are standard replies: `FAIL SESSION <code> :<text>` with `ACCOUNT_REQUIRED`,
//! `INSECURE`, `ALREADY_IN_SESSION` (one session per connection, so a stolen token cannot
//! mint fresh ones), `NO_SESSION`, `UNKNOWN_COMMAND` or `TEMPORARILY_UNAVAILABLE`. A token is sent
//! once, only over a connection a password may cross, and never logged; only its hash is kept.

use parley_proto::Message;

use crate::accounts::{token_hash, IssuedSession};
use crate::context::{Ctx, FollowUp, PendingAuth, Reply};
use crate::server::Shared;
use crate::store::StoreError;

/// What a `SESSION` command came to, once the store answered.
pub enum Outcome {
    Issued(Result<IssuedSession, StoreError>),
    Revoked {
        all: bool,
        result: Result<usize, StoreError>,
    },
}

/// `SESSION NEW [:label]`, `SESSION REVOKE [*]`: login sessions of the account this connection
/// is logged in to; refusals are `FAIL SESSION` standard replies.
pub fn session(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    let sub = msg.params[0].to_ascii_uppercase();
    let Some(account) = ctx.session.account.clone() else {
        return Err(Reply::fail(
            "SESSION",
            "ACCOUNT_REQUIRED",
            &[],
            "Log in to an account first",
        ));
    };
    match sub.as_str() {
        "NEW" => {
            if !crate::command::auth::password_allowed_here(ctx) {
                return Err(Reply::fail("SESSION", "INSECURE", &[], "Session tokens are only given over an encrypted connection; reconnect with TLS"));
            }
            // One session per connection: a connection that logged in with a token cannot mint
            // more, so whoever stole a token is shut out by that session's /logout, and a
            // password login asks once.
            if ctx.session.token_login || ctx.session.login_session.is_some() {
                return Err(Reply::fail("SESSION", "ALREADY_IN_SESSION", &[], "This connection already has a login session; log in with a password for another"));
            }
            let label = msg.param(1).unwrap_or("").to_owned();
            ctx.session
                .followups
                .push_back(FollowUp::Auth(PendingAuth::SessionNew { account, label }));
        }
        "REVOKE" => {
            let all = msg.param(1) == Some("*");
            let token_hash = ctx.session.login_session.clone();
            if !all && token_hash.is_none() {
                return Err(Reply::fail(
                    "SESSION",
                    "NO_SESSION",
                    &[],
                    "This connection has no login session; SESSION REVOKE * ends them all",
                ));
            }
            ctx.session
                .followups
                .push_back(FollowUp::Auth(PendingAuth::SessionRevoke {
                    account,
                    token_hash,
                    all,
                }));
        }
        _ => {
            return Err(Reply::fail(
                "SESSION",
                "UNKNOWN_COMMAND",
                &[&sub],
                "Use SESSION NEW [:label], SESSION REVOKE or SESSION REVOKE *",
            ))
        }
    }
    Ok(())
}

/// The store's part, in the connection task.
pub async fn run(shared: &Shared, pending: PendingAuth) -> Outcome {
    match pending {
        PendingAuth::SessionNew { account, label } => {
            Outcome::Issued(shared.accounts.issue_session(&account, &label).await)
        }
        PendingAuth::SessionRevoke {
            account,
            token_hash,
            all,
        } => Outcome::Revoked {
            all,
            result: match (all, token_hash) {
                (true, _) => shared.accounts.revoke_sessions(&account).await,
                (false, Some(hash)) => shared.accounts.revoke_session(&hash).await.map(usize::from),
                (false, None) => Ok(0),
            },
        },
        _ => Outcome::Revoked {
            all: false,
            result: Ok(0),
        },
    }
}

/// Tell the client what came of it.
pub fn finish(ctx: &mut Ctx<'_>, outcome: Outcome) {
    match outcome {
        Outcome::Issued(Ok(issued)) => {
            ctx.session.login_session = Some(token_hash(&issued.token));
            let account = ctx.session.account.clone().unwrap_or_default();
            ctx.audit("session_new", &account, None);
            ctx.server_line(
                "SESSION",
                &["NEW", &issued.token, &issued.expires_at.to_string()],
                None,
            );
        }
        Outcome::Revoked {
            all,
            result: Ok(count),
        } => {
            ctx.session.login_session = None;
            let account = ctx.session.account.clone().unwrap_or_default();
            ctx.audit(
                "session_revoke",
                &account,
                Some(if all { "all" } else { "this" }),
            );
            let text = match (all, count) {
                (true, 1) => "1 login session ended".to_owned(),
                (true, n) => format!("{n} login sessions ended"),
                (false, _) => "This login session ended".to_owned(),
            };
            ctx.server_line("SESSION", &["REVOKED", &count.to_string()], Some(&text));
        }
        Outcome::Issued(Err(error))
        | Outcome::Revoked {
            result: Err(error), ..
        } => {
            tracing::error!(%error, "login session store failed");
            fail(
                ctx,
                "TEMPORARILY_UNAVAILABLE",
                "Login sessions are unavailable right now; try again later",
            );
        }
    }
}

fn fail(ctx: &Ctx<'_>, code: &str, text: &str) {
    ctx.server_line("FAIL", &["SESSION", code], Some(text));
}
