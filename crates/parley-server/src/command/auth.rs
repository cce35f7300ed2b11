//! Logging in and registering: `AUTHENTICATE` (SASL PLAIN and SCRAM-SHA-256), `PASS
//! account:password` and `REGISTER`. Handlers only check and collect; the slow part (Argon2
//! hashing, account lookups, throttle delays) runs in the connection's own task through
//! [`PendingAuth`], so it never blocks a runtime worker or anyone else, and lines the client sends
//! meanwhile wait their turn in order.
//!
//! SCRAM is accepted on plain-text connections from anywhere, unlike PLAIN and PASS: the password
//! never crosses the wire. An eavesdropper there can still try guesses offline against what it saw
//! (at the cost of `accounts.scram_iterations` PBKDF2 rounds per guess), and with no channel
//! binding an active attacker can take over the session after the login, as with any plain-text
//! connection. The `sts` policy keeps pointing such clients at TLS.
//!
//! `IRCV3BEARER` (the IRCv3 work-in-progress bearer-token mechanism: `authzid NUL type NUL
//! token`) logs in with a login session's token of type `parley.chat/session` (see
//! `accounts::sessions` and `command::session`): the web client's way to stay logged in across a
//! reload without keeping the password. A token is as good as a password while it lives, so it
//! is refused on plain text from elsewhere exactly as PLAIN is.

use std::net::IpAddr;

use base64::Engine;
use parley_proto::{casefold, numeric, scram, Message};

use crate::accounts::{AccountError, LoginError, ScramLogin};
use crate::cluster::event::Event;
use crate::command::registration;
use crate::config::RegistrationPolicy;
use crate::context::{
    Announced, Ctx, FollowUp, Line, LoginVia, PendingAuth, Reply, SaslState, SASL_MECHANISMS,
};
use crate::relay::{line, notify, wire};
use crate::server::Shared;

/// Longest SASL payload accepted (base64), well above any sane name and password or SCRAM
/// message (whose nonces a client chooses).
const SASL_MAX: usize = 2048;
/// The bearer-token mechanism's name.
const BEARER: &str = "IRCV3BEARER";

/// What a pending login or registration came to.
pub enum AuthOutcome {
    Login(LoginVia, Result<String, LoginError>),
    Register(String, Result<String, AccountError>),
    /// SCRAM: the account's credential (or a fake one) answered the client's first message.
    ScramChallenge(Box<ScramLogin>),
    /// SCRAM: the proof is right; the server's final message proves the server to the client.
    ScramProved {
        account: String,
        server_final: String,
    },
    /// IRCV3BEARER: the account and the session's token hash, or why not.
    Token(Result<(String, String), LoginError>),
    /// `SESSION NEW` / `SESSION REVOKE` came back from the store.
    Session(crate::command::session::Outcome),
}

/// Run the slow part of a login or registration.
pub async fn run(shared: &Shared, ip: IpAddr, pending: PendingAuth) -> AuthOutcome {
    match pending {
        PendingAuth::Login {
            account,
            password,
            via,
        } => AuthOutcome::Login(via, shared.accounts.login(&account, &password, ip).await),
        PendingAuth::Register { account, password } => {
            let result = shared.accounts.register(&account, &password).await;
            if let Ok(name) = &result {
                tracing::info!(account = %name, %ip, "account registered");
            }
            AuthOutcome::Register(account, result)
        }
        PendingAuth::ScramStart { first } => match shared.accounts.scram_start(&first, ip).await {
            Ok(login) => AuthOutcome::ScramChallenge(Box::new(login)),
            Err(err) => AuthOutcome::Login(LoginVia::Scram, Err(err)),
        },
        PendingAuth::ScramFinish {
            login,
            client_final,
        } => match shared
            .accounts
            .scram_finish(*login, &client_final, ip)
            .await
        {
            Ok((account, server_final)) => AuthOutcome::ScramProved {
                account,
                server_final,
            },
            Err(err) => AuthOutcome::Login(LoginVia::Scram, Err(err)),
        },
        PendingAuth::TokenLogin { authzid, token } => AuthOutcome::Token(
            shared
                .accounts
                .session_login(authzid.as_deref(), &token, ip)
                .await,
        ),
        pending @ (PendingAuth::SessionNew { .. } | PendingAuth::SessionRevoke { .. }) => {
            AuthOutcome::Session(crate::command::session::run(shared, pending).await)
        }
    }
}

/// Whether this connection may send a password: over TLS, from a trusted network, or by config.
pub(crate) fn password_allowed_here(ctx: &Ctx<'_>) -> bool {
    ctx.session.secure
        || ctx.shared.live().accounts.allow_plaintext_login
        || ctx
            .shared
            .plaintext_login_from
            .iter()
            .any(|net| net.contains(&ctx.session.ip))
}

const INSECURE_REFUSAL: &str = "Passwords are not accepted over an unencrypted connection from \
     another machine; reconnect with TLS (port 6697)";

/// `AUTHENTICATE <mechanism>`, then the payload in chunks (IRCv3 SASL 3.2): start an
/// exchange, collect a message, and hand each complete one to its mechanism.
pub fn authenticate(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 1)?;
    let arg = msg.params[0];
    if ctx.session.account.is_some() {
        return Err(Reply::new(
            numeric::ERR_SASLALREADY,
            &[],
            "You have already authenticated using SASL",
        ));
    }
    // "The client MUST enable the sasl capability before using the AUTHENTICATE command"
    // (SASL 3.1). The spec names no reply for one that did not; 904 is SASL's "other errors
    // not explicitly mentioned", and tells the client that SASL (not the command) failed,
    // where 421 would claim the server has no AUTHENTICATE. The connection goes on.
    if !ctx.session.caps.sasl {
        ctx.session.end_sasl();
        return Err(Reply::new(
            numeric::ERR_SASLFAIL,
            &[],
            "SASL authentication failed: enable the sasl capability (CAP REQ :sasl) first",
        ));
    }
    if arg == "*" {
        ctx.session.end_sasl();
        return Err(Reply::new(
            numeric::ERR_SASLABORTED,
            &[],
            "SASL authentication aborted",
        ));
    }
    if let Some(SaslState::Overlong) = ctx.session.sasl() {
        if arg.len() >= parley_proto::sasl::CHUNK_LEN {
            return Ok(());
        }
        // Its last chunk, or a new attempt: a mechanism name is never a last chunk of base64
        // (none is a multiple of 4 characters from the base64 alphabet).
        ctx.session.end_sasl();
        if is_mechanism(arg) {
            return start_mechanism(ctx, arg);
        }
        return Ok(());
    }
    if let Some(SaslState::ScramProved { .. }) = ctx.session.sasl() {
        if let Some(SaslState::ScramProved { account }) = ctx.session.take_sasl() {
            if arg != "+" {
                return Err(sasl_failed());
            }
            finish(ctx, AuthOutcome::Login(LoginVia::Scram, Ok(account)));
        }
        return Ok(());
    }
    let buffer = match ctx.session.sasl_mut() {
        Some(
            SaslState::Plain(buffer)
            | SaslState::Bearer(buffer)
            | SaslState::ScramFirst(buffer)
            | SaslState::ScramFinal {
                payload: buffer, ..
            },
        ) => buffer,
        Some(SaslState::ScramProved { .. } | SaslState::Overlong) => return Ok(()), // answered above
        None => return start_mechanism(ctx, arg),
    };
    match parley_proto::sasl::push_chunk(buffer, arg, SASL_MAX) {
        Err(parley_proto::sasl::TooLong { .. }) => {
            // A full chunk means more of this message follows: drop it as it comes.
            ctx.session.passing().sasl =
                (arg.len() >= parley_proto::sasl::CHUNK_LEN).then_some(SaslState::Overlong);
            return Err(Reply::new(
                numeric::ERR_SASLTOOLONG,
                &[],
                "SASL message too long",
            ));
        }
        Ok(parley_proto::sasl::Progress::Partial) => return Ok(()), // more chunks follow
        Ok(parley_proto::sasl::Progress::Complete) => {}
    }
    match ctx.session.take_sasl() {
        Some(SaslState::Plain(payload)) => plain(ctx, &payload),
        Some(SaslState::Bearer(payload)) => bearer(ctx, &payload),
        Some(SaslState::ScramFirst(payload)) => scram_first(ctx, &payload),
        Some(SaslState::ScramFinal { payload, login }) => scram_final(ctx, &payload, login),
        Some(SaslState::ScramProved { .. } | SaslState::Overlong) | None => Ok(()),
    }
}

/// Registration completed (`CAP END`, or NICK and USER without CAP) in the middle of an
/// exchange. sasl-3.1: "If the client completes registration (with CAP END, NICK, USER and any
/// other necessary messages) while the SASL authentication attempt is in progress, the server
/// SHOULD abort it and send a 906 numeric, then register the client without authentication."
/// A login already being checked is not in the way: it finishes before the next line is read.
/// The leftover chunks of an overlong message are still dropped after registration.
pub fn abort_on_registration(ctx: &mut Ctx<'_>) {
    match ctx.session.sasl() {
        None | Some(SaslState::Overlong) => {}
        Some(_) => {
            ctx.session.end_sasl();
            ctx.numeric(
                numeric::ERR_SASLABORTED,
                &[],
                Some("SASL authentication aborted"),
            );
        }
    }
}

/// Whether `name` is one of the mechanisms offered.
fn is_mechanism(name: &str) -> bool {
    ["PLAIN", scram::MECHANISM, BEARER]
        .iter()
        .any(|mechanism| name.eq_ignore_ascii_case(mechanism))
}

/// `AUTHENTICATE <mechanism>`: begin an exchange, or list the mechanisms there are.
fn start_mechanism(ctx: &mut Ctx<'_>, mechanism: &str) -> Result<(), Reply> {
    let state = if mechanism.eq_ignore_ascii_case("PLAIN") {
        SaslState::Plain(String::new())
    } else if mechanism.eq_ignore_ascii_case(scram::MECHANISM) {
        SaslState::ScramFirst(String::new())
    } else if mechanism.eq_ignore_ascii_case(BEARER) {
        SaslState::Bearer(String::new())
    } else {
        ctx.numeric(
            numeric::RPL_SASLMECHS,
            &[SASL_MECHANISMS],
            Some("are available SASL mechanisms"),
        );
        return Err(sasl_failed());
    };
    ctx.session.passing().sasl = Some(state);
    ctx.send(&line(None, "AUTHENTICATE", &["+"], None));
    Ok(())
}

/// A base64 payload as UTF-8 text (`+` alone is the empty payload).
fn decode_text(payload: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Send a payload as SASL does: base64 in 400-byte chunks, and `+` after a full last chunk.
fn send_payload(ctx: &Ctx<'_>, text: &str) {
    for chunk in parley_proto::sasl::encode(text.as_bytes()) {
        ctx.send(&line(None, "AUTHENTICATE", &[&chunk], None));
    }
}

/// SCRAM's client-first message: parse it here, look the account up in the connection task.
fn scram_first(ctx: &mut Ctx<'_>, payload: &str) -> Result<(), Reply> {
    let first = match decode_text(payload).map(|text| scram::ClientFirst::parse(&text)) {
        Some(Ok(first)) => first,
        Some(Err(error)) => {
            tracing::debug!(ip = %ctx.session.ip, %error, "SCRAM client-first refused");
            return Err(sasl_failed());
        }
        None => return Err(sasl_failed()),
    };
    // As for PLAIN: acting as another account than the one proven is not supported.
    if first
        .authzid()
        .is_some_and(|authzid| casefold(authzid) != casefold(first.username()))
    {
        return Err(sasl_failed());
    }
    ctx.session
        .followups
        .push_back(FollowUp::Auth(PendingAuth::ScramStart { first }));
    Ok(())
}

/// SCRAM's client-final message: the proof is checked in the connection task, where a failure
/// can wait out its delay.
fn scram_final(ctx: &mut Ctx<'_>, payload: &str, login: Box<ScramLogin>) -> Result<(), Reply> {
    let Some(client_final) = decode_text(payload) else {
        return Err(sasl_failed());
    };
    ctx.session
        .followups
        .push_back(FollowUp::Auth(PendingAuth::ScramFinish {
            login,
            client_final,
        }));
    Ok(())
}

/// PLAIN's one message: name and password, refused on plain text from elsewhere.
fn plain(ctx: &mut Ctx<'_>, payload: &str) -> Result<(), Reply> {
    let Some((account, password)) = decode_plain(payload) else {
        return Err(sasl_failed());
    };
    secret_allowed_here(ctx, "plain-text SASL login refused")?;
    ctx.session
        .followups
        .push_back(FollowUp::Auth(PendingAuth::Login {
            account,
            password,
            via: LoginVia::Sasl,
        }));
    Ok(())
}

/// IRCV3BEARER's one message: a session token, refused on plain text from elsewhere as a
/// password is (whoever reads it can log in with it).
fn bearer(ctx: &mut Ctx<'_>, payload: &str) -> Result<(), Reply> {
    let Some((authzid, token)) = decode_bearer(payload) else {
        return Err(sasl_failed());
    };
    secret_allowed_here(ctx, "plain-text token login refused")?;
    ctx.session
        .followups
        .push_back(FollowUp::Auth(PendingAuth::TokenLogin { authzid, token }));
    Ok(())
}

/// 904, after a notice saying why, for a secret (a password or a session token) sent in clear
/// from another machine: whoever reads the line could log in with it.
fn secret_allowed_here(ctx: &Ctx<'_>, log: &'static str) -> Result<(), Reply> {
    if password_allowed_here(ctx) {
        return Ok(());
    }
    ctx.server_line(
        "NOTICE",
        &[ctx.session.nick_or_star()],
        Some(INSECURE_REFUSAL),
    );
    tracing::warn!(ip = %ctx.session.ip, "{log}");
    Err(sasl_failed())
}

/// `[authzid] \0 token_type \0 token`, base64-encoded; only our session type is known.
fn decode_bearer(payload: &str) -> Option<(Option<String>, String)> {
    let text = decode_text(payload)?;
    let mut parts = text.split('\0');
    let (authzid, kind, token) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || kind != crate::accounts::TOKEN_TYPE || token.is_empty() {
        return None;
    }
    let authzid = (!authzid.is_empty()).then(|| authzid.to_owned());
    Some((authzid, token.to_owned()))
}

/// `authzid \0 authcid \0 password`, base64-encoded; an authzid other than the authcid is refused.
fn decode_plain(payload: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\0');
    let (authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || authcid.is_empty() || password.is_empty() {
        return None;
    }
    if !authzid.is_empty() && casefold(authzid) != casefold(authcid) {
        return None;
    }
    Some((authcid.to_string(), password.to_string()))
}

/// 904 ERR_SASLFAIL.
fn sasl_failed() -> Reply {
    Reply::new(numeric::ERR_SASLFAIL, &[], "SASL authentication failed")
}

/// `PASS account:password` (or `PASS password`, with the nick as the account) before registration.
pub fn pass(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    if ctx.session.registered {
        return Err(Reply::already_registered());
    }
    ctx.require_params(msg, 1)?;
    if !password_allowed_here(ctx) {
        ctx.server_line(
            "NOTICE",
            &[ctx.session.nick_or_star()],
            Some(INSECURE_REFUSAL),
        );
        tracing::warn!(ip = %ctx.session.ip, "plain-text PASS login refused");
        return Err(Reply::new(
            numeric::ERR_PASSWDMISMATCH,
            &[],
            "Password refused",
        ));
    }
    ctx.session.passing().pass = Some(msg.params[0].to_string());
    Ok(())
}

/// Turn a stored PASS into a pending login, once the nick is known. Returns whether it did.
pub fn start_pass_login(ctx: &mut Ctx<'_>) -> bool {
    let Some(pass) = ctx.session.passing.as_mut().and_then(|p| p.pass.take()) else {
        return false;
    };
    let (account, password) = match pass.split_once(':') {
        Some((account, password)) if !account.is_empty() => {
            (account.to_string(), password.to_string())
        }
        _ => (ctx.session.nick.clone(), pass),
    };
    ctx.session
        .followups
        .push_back(FollowUp::Auth(PendingAuth::Login {
            account,
            password,
            via: LoginVia::Pass,
        }));
    true
}

/// `REGISTER <account|*> <email|*> <password>` (IRCv3 draft/account-registration).
pub fn register(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    ctx.require_params(msg, 3)?;
    let (requested, password) = (msg.params[0], msg.params[2]);
    let fail = |code: &'static str, account: &str, text: &str| {
        Reply::fail("REGISTER", code, &[account], text)
    };
    if ctx.shared.live().accounts.registration == RegistrationPolicy::Closed {
        let shown = match (requested, ctx.session.nick.as_str()) {
            ("*", nick) if !nick.is_empty() => nick,
            _ => requested,
        };
        return Err(fail(
            "DISALLOWED",
            shown,
            "Registration is closed on this server; ask an administrator for an account",
        ));
    }
    // "FAIL REGISTER COMPLETE_CONNECTION_REQUIRED <message>: Sent by the server if the client
    // sent a REGISTER command before connection registration" (never when `before-connect` is
    // advertised, which this same switch decides).
    if !ctx.session.registered && !ctx.shared.config.accounts.register_before_connect {
        return Err(Reply::fail(
            "REGISTER",
            "COMPLETE_CONNECTION_REQUIRED",
            &[],
            "Register the connection first (NICK, USER, CAP END), then send REGISTER again",
        ));
    }
    if let Some(account) = &ctx.session.account {
        return Err(fail(
            "ALREADY_AUTHENTICATED",
            account,
            "You are already logged in",
        ));
    }
    let account = match requested {
        "*" if ctx.session.nick.is_empty() => {
            return Err(fail(
                "NEED_NICK",
                "*",
                "Send NICK first, or name the account",
            ))
        }
        "*" => ctx.session.nick.clone(),
        named => named.to_string(),
    };
    if !password_allowed_here(ctx) {
        return Err(fail("DISALLOWED", &account, INSECURE_REFUSAL));
    }
    ctx.shared
        .accounts
        .check_name(&account)
        .map_err(|err| fail("BAD_ACCOUNT_NAME", &account, &err.to_string()))?;
    ctx.shared
        .accounts
        .check_password(password)
        .map_err(|err| fail("WEAK_PASSWORD", &account, &err.to_string()))?;
    ctx.session
        .followups
        .push_back(FollowUp::Auth(PendingAuth::Register {
            account,
            password: password.to_string(),
        }));
    Ok(())
}

/// Report the outcome of a pending login or registration, then carry on with registration.
pub fn finish(ctx: &mut Ctx<'_>, outcome: AuthOutcome) {
    // A token login is reported as any other login, once the connection knows its session.
    let outcome = match outcome {
        AuthOutcome::Token(Ok((account, token_hash))) => {
            ctx.session.login_session = Some(token_hash);
            ctx.session.token_login = true;
            AuthOutcome::Login(LoginVia::Token, Ok(account))
        }
        AuthOutcome::Token(Err(err)) => AuthOutcome::Login(LoginVia::Token, Err(err)),
        AuthOutcome::Session(outcome) => return crate::command::session::finish(ctx, outcome),
        other => other,
    };
    let ip = ctx.session.ip.to_string();
    match &outcome {
        AuthOutcome::Login(via, Ok(account)) => ctx.shared.history.audit(
            "login",
            Some(account),
            Some(account),
            None,
            Some(&ip),
            Some(match via {
                LoginVia::Sasl => "sasl",
                LoginVia::Pass => "pass",
                LoginVia::Scram => "scram",
                LoginVia::Token => "session token",
            }),
        ),
        AuthOutcome::Login(_, Err(err)) => {
            crate::metrics::record_login_failure();
            ctx.shared.history.audit(
                "login_failed",
                None,
                None,
                None,
                Some(&ip),
                Some(&err.to_string()),
            )
        }
        AuthOutcome::Register(_, Ok(account)) => ctx.shared.history.audit(
            "register",
            Some(account),
            Some(account),
            Some(account),
            Some(&ip),
            None,
        ),
        AuthOutcome::Register(_, Err(_))
        | AuthOutcome::ScramChallenge(_)
        | AuthOutcome::ScramProved { .. }
        | AuthOutcome::Token(_)
        | AuthOutcome::Session(_) => {}
    }
    match outcome {
        AuthOutcome::ScramChallenge(login) => {
            send_payload(ctx, login.server_first());
            ctx.session.passing().sasl = Some(SaslState::ScramFinal {
                payload: String::new(),
                login,
            });
        }
        AuthOutcome::ScramProved {
            account,
            server_final,
        } => {
            send_payload(ctx, &server_final);
            ctx.session.passing().sasl = Some(SaslState::ScramProved { account });
        }
        AuthOutcome::Login(via, Ok(account)) => {
            logged_in(ctx, &account);
            if via != LoginVia::Pass {
                ctx.numeric(
                    numeric::RPL_SASLSUCCESS,
                    &[],
                    Some("SASL authentication successful"),
                );
            }
        }
        AuthOutcome::Login(via, Err(err)) => {
            let text = match &err {
                LoginError::Invalid => "Invalid account name or password".to_string(),
                LoginError::Store(_) | LoginError::Task(_) => {
                    tracing::error!(%err, "login could not be checked");
                    "Logging in is unavailable right now; try again later".to_string()
                }
                other => capitalized(&other.to_string()),
            };
            match via {
                LoginVia::Sasl | LoginVia::Scram | LoginVia::Token => {
                    ctx.numeric(numeric::ERR_SASLFAIL, &[], Some(&text))
                }
                LoginVia::Pass => ctx.numeric(numeric::ERR_PASSWDMISMATCH, &[], Some(&text)),
            }
        }
        AuthOutcome::Register(_, Ok(account)) => {
            ctx.server_line(
                "REGISTER",
                &["SUCCESS", &account],
                Some("Account created; you are now logged in"),
            );
            logged_in(ctx, &account);
        }
        // Turned into logins or answered above.
        AuthOutcome::Token(_) | AuthOutcome::Session(_) => {}
        AuthOutcome::Register(requested, Err(err)) => {
            let code = match &err {
                AccountError::AlreadyExists(_) => "ACCOUNT_EXISTS",
                AccountError::InvalidName { .. } => "BAD_ACCOUNT_NAME",
                AccountError::PasswordTooShort { .. } => "WEAK_PASSWORD",
                AccountError::PasswordTooLong { .. } => "UNACCEPTABLE_PASSWORD",
                _ => {
                    tracing::error!(%err, "registration failed");
                    "TEMPORARILY_UNAVAILABLE"
                }
            };
            let text = capitalized(&err.to_string());
            ctx.server_line("FAIL", &["REGISTER", code, &requested], Some(&text));
        }
    }
    if let Some(account) = ctx.session.account.clone() {
        crate::command::nick::claim_account_nick(ctx, &account);
    }
    if ctx.session.sasl().is_some() {
        return; // a SCRAM exchange goes on: the client answers first
    }
    registration::try_complete(ctx);
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Record the login, tell the client (900) and, after registration, its neighbours
/// (`account-notify`).
fn logged_in(ctx: &mut Ctx<'_>, account: &str) {
    ctx.session.account = Some(account.to_string());
    if ctx.session.registered {
        crate::command::chathistory::offline(ctx, casefold(account));
        if ctx.shared.live().operators.auto_oper {
            ctx.grant_oper(false);
        }
    }
    let mut announced = Announced::default();
    let source = {
        let mut world = ctx.shared.world.lock();
        let Some(user) = world.users.get_mut(&ctx.session.id) else {
            return;
        };
        user.account = Some(account.to_string());
        let source = user.source();
        if user.registered {
            let bytes = line(Some(&source), "ACCOUNT", &[account], None);
            // extended-monitor: "If account-notify is also enabled, the client will get
            // ACCOUNT notifications for monitored nicks."
            let neighbours = world.notify_recipients(ctx.session.id, notify::ACCOUNT_NOTIFY);
            let to_notified = Line::ForCap(&bytes, wire::ACCOUNT_NOTIFY);
            announced = ctx.announce(to_notified, &neighbours, |cluster| Event::Account {
                uid: cluster.uid_of(ctx.session.id),
                source: source.clone(),
                account: Some(account.to_string()),
            });
            if ctx.session.caps.account_notify {
                ctx.send(&bytes);
            }
        }
        source
    };
    ctx.publish(announced);
    let mask = if ctx.session.nick.is_empty() {
        "*".to_string()
    } else {
        source
    };
    ctx.numeric(
        numeric::RPL_LOGGEDIN,
        &[&mask, account],
        Some(&format!("You are now logged in as {account}")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn plain_payloads_decode() {
        assert_eq!(
            decode_plain(&encode("\0alice\0secret pw")),
            Some(("alice".into(), "secret pw".into()))
        );
        assert_eq!(
            decode_plain(&encode("Alice\0alice\0pw")),
            Some(("alice".into(), "pw".into()))
        );
        assert_eq!(
            decode_plain(&encode("bob\0alice\0pw")),
            None,
            "authzid must match"
        );
        assert_eq!(decode_plain(&encode("\0alice\0")), None, "empty password");
        assert_eq!(decode_plain(&encode("alice")), None, "no separators");
        assert_eq!(decode_plain("!!!not base64"), None);
    }
}
