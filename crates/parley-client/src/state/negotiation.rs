//! Capability negotiation and login, from the socket opening to the welcome: `CAP LS 302` and
//! `REQ`, then SASL (SCRAM-SHA-256 when the server offers it, so the password never crosses the
//! wire, else PLAIN), `PASS`, or `REGISTER`; and the words a person reads when a login is refused.
//!
//! SCRAM's key derivation (PBKDF2, about 0.1-0.3 s at the server's default rounds) runs inside
//! [`State::handle_message`], so the first login blocks its caller that long; the salted password
//! is then kept per account, salt and rounds, so reconnects skip it.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use parley_proto::sasl;
use parley_proto::scram::{self, ClientExchange, ClientResponse, SaltedPassword};
use parley_proto::Message;

use super::incoming::Incoming;
use super::{irc_line, ConnectionState, LineKind, State};

/// Longest SASL payload accepted from a server (base64), far above any SCRAM message.
const MAX_SASL_PAYLOAD: usize = 8192;

/// Capabilities requested when the server offers them.
pub const WANTED_CAPS: &[&str] = &[
    "sasl",
    "server-time",
    "message-tags",
    "echo-message",
    "batch",
    "draft/chathistory",
    "chathistory",
    "account-tag",
    "account-notify",
    "extended-join",
    "multi-prefix",
    "away-notify",
    "userhost-in-names",
    "cap-notify",
    "invite-notify",
    "draft/read-marker",
    // Reactions from history: CHATHISTORY returns TAGMSG only with event-playback.
    "draft/event-playback",
    // Server-side search (state/search.rs): soju's name and the draft one.
    "soju.im/search",
    "draft/search",
    // End-to-end encrypted private messages (state/e2e.rs): the server's key directory.
    "parley.chat/e2e",
];

/// How to log in during connection registration.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// No account (servers that allow guests, or plain IRC servers).
    Guest,
    /// SASL SCRAM-SHA-256 when offered, else SASL PLAIN, else `PASS account:password`.
    Login { account: String, password: String },
    /// Create the account with `REGISTER * * <password>` (draft/account-registration).
    Register { account: String, password: String },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Guest => write!(f, "Guest"),
            Auth::Login { account, .. } => write!(f, "Login({account}, <password>)"),
            Auth::Register { account, .. } => write!(f, "Register({account}, <password>)"),
        }
    }
}

/// Capability negotiation and login, alive from connect until the welcome.
pub(super) struct Negotiation {
    auth: Auth,
    offered: BTreeMap<String, String>,
    /// Waiting for the server's answer to REQ, AUTHENTICATE or REGISTER.
    waiting: bool,
    pub(super) ended: bool,
    pub(super) nick_attempts: u32,
    /// The nick sent with NICK at the start, before any 433 added underscores.
    pub(super) asked_nick: String,
    /// Where the SASL login stands, once one started.
    pub(super) sasl: Option<SaslStep>,
    /// SCRAM was tried and failed, and PLAIN is (or was) the second try.
    scram_fell_back: bool,
}

/// The steps of a SASL login.
pub(super) enum SaslStep {
    /// `AUTHENTICATE PLAIN` sent; the payload goes at the server's `+`.
    Plain,
    /// `AUTHENTICATE SCRAM-SHA-256` sent; the first message goes at the server's `+`.
    ScramStart,
    /// The first message went out; the server's challenge so far.
    ScramChallenge {
        exchange: ClientExchange,
        buffer: String,
    },
    /// The proof went out; the server's signature so far.
    ScramVerify {
        response: ClientResponse,
        buffer: String,
    },
    /// The server proved itself; 903 comes next.
    ScramDone,
    /// SCRAM could not go on here (a challenge this client refuses); PLAIN follows the 906.
    ScramAborted,
}

/// The salted password of the last SCRAM login, so a reconnect skips the slow derivation. Only
/// valid for the same account, password, salt and rounds (the salt changes with the password).
pub(super) struct ScramCache {
    account: String,
    password: String,
    salt: Vec<u8>,
    iterations: u32,
    salted: SaltedPassword,
}

/// Send `text` as a SASL payload: base64 in 400-byte chunks, and `+` after a full last chunk.
fn push_sasl_payload(out: &mut Vec<String>, text: &str) {
    for chunk in sasl::encode(text.as_bytes()) {
        out.push(irc_line("AUTHENTICATE", &[&chunk], None));
    }
}

/// Add one `AUTHENTICATE` chunk from the server to `buffer`. `None` while more chunks follow;
/// then the payload as text, or `Some(None)` when it is not base64 UTF-8 or is too long.
fn collect_sasl_chunk(buffer: &mut String, chunk: &str) -> Option<Option<String>> {
    match sasl::push_chunk(buffer, chunk, MAX_SASL_PAYLOAD) {
        Err(sasl::TooLong { .. }) => return Some(None),
        Ok(sasl::Progress::Partial) => return None,
        Ok(sasl::Progress::Complete) => {}
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(std::mem::take(buffer))
        .ok();
    Some(bytes.and_then(|bytes| String::from_utf8(bytes).ok()))
}

/// A fresh SCRAM client nonce from the OS random source.
fn random_nonce() -> Option<String> {
    let mut random = [0; 18];
    getrandom::fill(&mut random)
        .map_err(|error| tracing::warn!(%error, "no OS random source for a SCRAM nonce"))
        .ok()?;
    Some(scram::nonce_from_random(&random))
}

/// Give up on SCRAM mid-exchange (`AUTHENTICATE *`); PLAIN follows the server's 906.
fn abort_scram(out: &mut Vec<String>) -> SaslStep {
    out.push(irc_line("AUTHENTICATE", &["*"], None));
    SaslStep::ScramAborted
}

/// What a client says when the server refused an account name and password.
pub const LOGIN_REFUSED: &str = "The username or password was not accepted.";
const LOCKED_OUT: &str = "Too many failed logins";
const SERVER_REFUSED_LOGIN: &str = "The server refused the login";
/// What a guest is told by a server that requires an account.
pub const ACCOUNT_REQUIRED: &str = "This server needs an account";
/// The informational capability of servers that let no one in without logging in.
const ACCOUNT_REQUIRED_CAP: &str = "soju.im/account-required";

/// The server's words for a refused login (904, 464) as one sentence a person acts on: the
/// server's reason is kept only where it says more than "wrong name or password".
pub fn login_refusal(server_text: &str) -> String {
    if let Some(wait) = lockout_wait(server_text) {
        return match wait {
            Some(secs) if secs < 60 => {
                format!("{LOCKED_OUT}; try again in {secs} second{}.", plural(secs))
            }
            Some(secs) => {
                let minutes = secs.div_ceil(60);
                format!(
                    "{LOCKED_OUT}; try again in {minutes} minute{}.",
                    plural(minutes)
                )
            }
            None => format!("{LOCKED_OUT}; try again later."),
        };
    }
    let lower = server_text.trim().to_ascii_lowercase();
    let says_nothing_more = lower.is_empty()
        || lower.contains("invalid account name or password")
        || lower.contains("password incorrect")
        || lower.starts_with("sasl authentication failed");
    if says_nothing_more {
        LOGIN_REFUSED.to_string()
    } else {
        format!("{SERVER_REFUSED_LOGIN}: {}", server_text.trim())
    }
}

/// Whether `reason` is already one of [`login_refusal`]'s sentences, or the refusal of a guest
/// by a server that requires an account (a UI adds no advice, and goes back to its login form).
pub fn is_login_refusal(reason: &str) -> bool {
    [
        LOGIN_REFUSED,
        LOCKED_OUT,
        SERVER_REFUSED_LOGIN,
        ACCOUNT_REQUIRED,
    ]
    .iter()
    .any(|p| reason.starts_with(p))
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A lockout refusal ("too many failed logins; try again in N seconds", any case): `Some` with
/// the seconds to wait when the server said them.
pub(super) fn lockout_wait(server_text: &str) -> Option<Option<u64>> {
    let lower = server_text.to_ascii_lowercase();
    if !lower.contains("too many failed logins") {
        return None;
    }
    let Some(after) = lower.split("try again in").nth(1) else {
        return Some(None);
    };
    let Some(number) = after.split_whitespace().next() else {
        return Some(None);
    };
    let secs = number.parse::<u64>().ok();
    let unit = after.split_whitespace().nth(1).unwrap_or("seconds");
    Some(secs.map(|n| {
        if unit.starts_with("minute") {
            n.saturating_mul(60)
        } else {
            n
        }
    }))
}

impl State {
    /// A socket is open: start registration. Returns the lines to send first.
    pub fn on_connected(&mut self, secure: bool, auth: Auth) -> Vec<String> {
        self.secure = secure;
        self.connection = ConnectionState::Registering;
        self.caps.clear();
        self.batches.clear();
        self.pending_creates.clear();
        self.outbox.clear();
        self.read_pending.clear();
        self.typing_out = Default::default();
        self.monitor_reset();
        self.nick = match &auth {
            Auth::Register { account, .. } => account.clone(),
            _ => self.wanted_nick.clone(),
        };
        self.negotiation = Some(Negotiation {
            auth,
            offered: BTreeMap::new(),
            waiting: false,
            ended: false,
            nick_attempts: 0,
            asked_nick: self.nick.clone(),
            sasl: None,
            scram_fell_back: false,
        });
        vec![
            irc_line("CAP", &["LS", "302"], None),
            irc_line("NICK", &[&self.nick], None),
            irc_line("USER", &[&self.nick, "0", "*"], Some(&self.realname)),
        ]
    }

    pub(super) fn on_cap(&mut self, msg: &Message<'_>, out: &mut Vec<String>) {
        let sub = msg.param(1).unwrap_or("").to_ascii_uppercase();
        let list = msg.params.last().copied().unwrap_or("");
        match sub.as_str() {
            "LS" => {
                let more = msg.param(2) == Some("*") && msg.params.len() > 3;
                let Some(negotiation) = self.negotiation.as_mut() else {
                    return;
                };
                for cap in list.split(' ').filter(|c| !c.is_empty()) {
                    let (name, value) = cap.split_once('=').unwrap_or((cap, ""));
                    negotiation
                        .offered
                        .insert(name.to_string(), value.to_string());
                }
                if more {
                    return;
                }
                let guest = negotiation.auth == Auth::Guest;
                if guest && negotiation.offered.contains_key(ACCOUNT_REQUIRED_CAP) {
                    self.guest_refused(out);
                    return;
                }
                let Some(negotiation) = self.negotiation.as_mut() else {
                    return;
                };
                let wanted: Vec<&str> = WANTED_CAPS
                    .iter()
                    .copied()
                    .filter(|c| negotiation.offered.contains_key(*c))
                    .collect();
                if wanted.is_empty() {
                    self.after_caps(out);
                } else {
                    negotiation.waiting = true;
                    out.push(irc_line("CAP", &["REQ"], Some(&wanted.join(" "))));
                }
            }
            "ACK" => {
                for cap in list.split(' ').filter(|c| !c.is_empty()) {
                    match cap.strip_prefix('-') {
                        Some(off) => self.caps.retain(|c| c != off),
                        None if !self.has_cap(cap) => self.caps.push(cap.to_string()),
                        None => {}
                    }
                }
                if self.negotiation.as_ref().is_some_and(|n| n.waiting) {
                    self.after_caps(out);
                }
            }
            "NAK" if self.negotiation.as_ref().is_some_and(|n| n.waiting) => {
                self.after_caps(out);
            }
            "DEL" => {
                for cap in list.split(' ') {
                    self.caps.retain(|c| c != cap);
                }
            }
            _ => {}
        }
    }

    /// Capabilities are settled: log in or register, or end negotiation.
    fn after_caps(&mut self, out: &mut Vec<String>) {
        let sasl = self.has_cap("sasl");
        let Some(negotiation) = self.negotiation.as_mut() else {
            return;
        };
        negotiation.waiting = false;
        match negotiation.auth.clone() {
            Auth::Login { .. } if sasl => {
                negotiation.waiting = true;
                // `sasl=` lists the mechanisms (CAP 302); without a list, PLAIN is the safe guess.
                let scram = negotiation.offered.get("sasl").is_some_and(|mechanisms| {
                    mechanisms
                        .split(',')
                        .any(|m| m.eq_ignore_ascii_case(scram::MECHANISM))
                });
                let (step, mechanism) = if scram {
                    (SaslStep::ScramStart, scram::MECHANISM)
                } else {
                    (SaslStep::Plain, "PLAIN")
                };
                negotiation.sasl = Some(step);
                out.push(irc_line("AUTHENTICATE", &[mechanism], None));
            }
            Auth::Login { account, password } => {
                out.push(irc_line(
                    "PASS",
                    &[],
                    Some(&format!("{account}:{password}")),
                ));
                self.end_cap(out);
            }
            Auth::Register { account, password } => {
                if let Some(value) = negotiation.offered.get("draft/account-registration") {
                    negotiation.waiting = true;
                    // '*' means "my nick"; name the account when the server allows a name that
                    // differs, so a nick taken meanwhile cannot register a different account.
                    let name = if value.contains("custom-account-name") {
                        account.as_str()
                    } else {
                        "*"
                    };
                    out.push(irc_line("REGISTER", &[name, "*"], Some(&password)));
                } else {
                    self.fail(
                        "this server does not offer account registration \
                         (draft/account-registration); ask its operator for an account"
                            .to_string(),
                    );
                    out.push(irc_line("QUIT", &[], None));
                }
            }
            Auth::Guest => self.end_cap(out),
        }
    }

    /// The server lets no one in without an account: say so once, with what to do, and stop
    /// (no retry loop, no waiting for the registration timeout).
    pub(super) fn guest_refused(&mut self, out: &mut Vec<String>) {
        let can_register = self
            .negotiation
            .as_ref()
            .is_some_and(|n| n.offered.contains_key("draft/account-registration"));
        let advice = if can_register {
            "create one with a username and password (register a new account), or log in"
        } else {
            "ask its admin for one, then log in with it"
        };
        self.fail(format!("{ACCOUNT_REQUIRED}: {advice}."));
        out.push(irc_line("QUIT", &[], None));
    }

    pub(super) fn end_cap(&mut self, out: &mut Vec<String>) {
        if let Some(negotiation) = self.negotiation.as_mut() {
            if !negotiation.ended {
                negotiation.ended = true;
                negotiation.waiting = false;
                out.push(irc_line("CAP", &["END"], None));
            }
        }
    }

    pub(super) fn on_authenticate(&mut self, msg: &Message<'_>, out: &mut Vec<String>) {
        let Some(arg) = msg.param(0) else {
            return;
        };
        let Some(negotiation) = self.negotiation.as_mut() else {
            return;
        };
        let Auth::Login { account, password } = negotiation.auth.clone() else {
            return;
        };
        let step = negotiation.sasl.take();
        let next = match step {
            Some(SaslStep::Plain) if arg == "+" => {
                push_sasl_payload(out, &format!("{account}\0{account}\0{password}"));
                Some(SaslStep::Plain)
            }
            Some(SaslStep::ScramStart) if arg == "+" => {
                match random_nonce().and_then(|nonce| ClientExchange::new(&account, &nonce).ok()) {
                    Some(exchange) => {
                        push_sasl_payload(out, &exchange.client_first());
                        Some(SaslStep::ScramChallenge {
                            exchange,
                            buffer: String::new(),
                        })
                    }
                    None => Some(abort_scram(out)),
                }
            }
            Some(SaslStep::ScramChallenge {
                exchange,
                mut buffer,
            }) => match collect_sasl_chunk(&mut buffer, arg) {
                None => Some(SaslStep::ScramChallenge { exchange, buffer }),
                Some(payload) => {
                    let challenge = payload.and_then(|text| {
                        exchange
                            .server_first(&text, scram::MAX_ITERATIONS)
                            .map_err(|error| tracing::warn!(%error, "SCRAM challenge refused"))
                            .ok()
                    });
                    let response = challenge.and_then(|challenge| {
                        let salted = self.salted_password(&account, &password, &challenge)?;
                        Some(challenge.respond(&salted))
                    });
                    match response {
                        Some(response) => {
                            push_sasl_payload(out, response.message());
                            Some(SaslStep::ScramVerify {
                                response,
                                buffer: String::new(),
                            })
                        }
                        None => Some(abort_scram(out)),
                    }
                }
            },
            Some(SaslStep::ScramVerify {
                response,
                mut buffer,
            }) => match collect_sasl_chunk(&mut buffer, arg) {
                None => Some(SaslStep::ScramVerify { response, buffer }),
                Some(payload) => {
                    let verified = payload.ok_or(scram::ScramError::Malformed("not base64"));
                    match verified.and_then(|text| response.verify_server_final(&text)) {
                        Ok(()) => {
                            out.push(irc_line("AUTHENTICATE", &["+"], None));
                            Some(SaslStep::ScramDone)
                        }
                        Err(error) => {
                            // Not a wrong password: this server does not hold the account's
                            // credential. Telling it the password (PLAIN) would be worse.
                            self.fail(format!(
                                "login stopped: the server could not prove it knows this \
                                 account ({error}); it may not be the server you meant"
                            ));
                            out.push(irc_line("AUTHENTICATE", &["*"], None));
                            out.push(irc_line("QUIT", &[], None));
                            None
                        }
                    }
                }
            },
            other => other,
        };
        if let Some(negotiation) = self.negotiation.as_mut() {
            negotiation.sasl = next;
        }
    }

    /// The salted password for this challenge: from the cache when the last login used the same
    /// account, password, salt and rounds, else derived (slow) and cached.
    fn salted_password(
        &mut self,
        account: &str,
        password: &str,
        challenge: &scram::ServerChallenge,
    ) -> Option<SaltedPassword> {
        if let Some(cache) = &self.scram_cache {
            if cache.account == account
                && cache.password == password
                && cache.salt == challenge.salt()
                && cache.iterations == challenge.iterations()
            {
                return Some(cache.salted.clone());
            }
        }
        let salted = SaltedPassword::derive(password, challenge.salt(), challenge.iterations())
            .map_err(|error| tracing::warn!(%error, "SCRAM cannot use this password"))
            .ok()?;
        self.scram_cache = Some(ScramCache {
            account: account.to_string(),
            password: password.to_string(),
            salt: challenge.salt().to_vec(),
            iterations: challenge.iterations(),
            salted: salted.clone(),
        });
        Some(salted)
    }

    /// When SCRAM could not be tried (the server refused the mechanism, or this client aborted a
    /// challenge it will not answer), try PLAIN once. Returns whether it did.
    pub(super) fn fall_back_to_plain(&mut self, out: &mut Vec<String>) -> bool {
        let Some(negotiation) = self.negotiation.as_mut() else {
            return false;
        };
        // Only while no password was tried: the server refused the mechanism itself, or this
        // client stopped the exchange. After a proof, a 904 is the server judging the password;
        // PLAIN with the same password would count the same typo twice towards the lockout.
        let password_untried = matches!(
            negotiation.sasl,
            Some(SaslStep::ScramStart | SaslStep::ScramAborted)
        );
        if !password_untried || negotiation.scram_fell_back {
            return false;
        }
        negotiation.scram_fell_back = true;
        negotiation.sasl = Some(SaslStep::Plain);
        out.push(irc_line("AUTHENTICATE", &["PLAIN"], None));
        true
    }

    pub(super) fn on_register(&mut self, msg: &Message<'_>, out: &mut Vec<String>, ctx: &Incoming) {
        match msg.param(0) {
            Some("SUCCESS") => {
                if let Some(account) = msg.param(1) {
                    self.account = Some(account.to_string());
                }
                let text = format!("account created: {}", msg.param(1).unwrap_or("?"));
                self.push_server(LineKind::Info, text, ctx.time);
                self.end_cap(out);
            }
            Some("VERIFICATION_REQUIRED") => {
                self.fail(format!(
                    "registration needs verification: {}",
                    msg.params.last().copied().unwrap_or("")
                ));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{feed, state};
    use parley_proto::sasl::CHUNK_LEN as SASL_CHUNK;

    #[test]
    fn guest_registration_requests_offered_caps_only() {
        let mut s = state();
        let first = s.on_connected(false, Auth::Guest);
        assert_eq!(first, ["CAP LS 302", "NICK me", "USER me 0 * :Me"]);
        let out = feed(
            &mut s,
            &[
                ":srv CAP * LS * :server-time sasl=PLAIN",
                ":srv CAP * LS :echo-message foo",
            ],
        );
        assert_eq!(out, ["CAP REQ :sasl server-time echo-message"]);
        let out = feed(&mut s, &[":srv CAP * ACK :sasl server-time echo-message"]);
        assert_eq!(out, ["CAP END"]);
        assert!(s.has_cap("echo-message"));
        feed(&mut s, &[":srv 001 me :Welcome"]);
        assert_eq!(*s.connection(), ConnectionState::Connected);
    }

    #[test]
    fn sasl_plain_login() {
        let mut s = state();
        s.on_connected(
            true,
            Auth::Login {
                account: "alice".into(),
                password: "pw".into(),
            },
        );
        let out = feed(
            &mut s,
            &[
                ":srv CAP * LS :sasl",
                ":srv CAP * ACK :sasl",
                "AUTHENTICATE +",
            ],
        );
        let payload = base64::engine::general_purpose::STANDARD.encode("alice\0alice\0pw");
        assert_eq!(
            out,
            [
                "CAP REQ :sasl".to_string(),
                "AUTHENTICATE PLAIN".into(),
                format!("AUTHENTICATE {payload}")
            ]
        );
        let out = feed(
            &mut s,
            &[
                ":srv 900 me me!u@h alice :You are now logged in as alice",
                ":srv 903 me :SASL ok",
            ],
        );
        assert_eq!(out, ["CAP END"]);
        assert_eq!(s.account(), Some("alice"));
        assert!(s.take_fatal().is_none());
    }

    /// The server's side of SCRAM for the state's tests: alice's credential for `password`.
    struct ScramServer {
        credential: scram::StoredCredential,
        exchange: Option<scram::ServerExchange>,
    }

    impl ScramServer {
        fn new(password: &str) -> Self {
            ScramServer {
                credential: scram::StoredCredential::new(password, b"sixteen byte salt", 4096)
                    .expect("credential"),
                exchange: None,
            }
        }

        /// Answer one `AUTHENTICATE` line from the client with the server's next line.
        fn answer(&mut self, line: &str) -> String {
            let payload = line
                .strip_prefix("AUTHENTICATE ")
                .expect("an AUTHENTICATE line");
            let b64 = base64::engine::general_purpose::STANDARD;
            let text = String::from_utf8(b64.decode(payload).expect("base64")).expect("utf-8");
            let reply = match self.exchange.take() {
                None => {
                    let first = scram::ClientFirst::parse(&text).expect("client-first");
                    assert_eq!(first.username(), "alice");
                    let exchange =
                        scram::ServerExchange::new(&first, "server-nonce", self.credential.clone())
                            .expect("server");
                    let reply = exchange.server_first().to_string();
                    self.exchange = Some(exchange);
                    reply
                }
                Some(exchange) => match exchange.finish(&text) {
                    Ok(server_final) => server_final,
                    Err(_) => return ":srv 904 me :Invalid account name or password".into(),
                },
            };
            format!("AUTHENTICATE {}", b64.encode(reply))
        }
    }

    fn scram_login_state(password: &str) -> State {
        let mut s = state();
        s.on_connected(
            true,
            Auth::Login {
                account: "alice".into(),
                password: password.into(),
            },
        );
        let out = feed(
            &mut s,
            &[
                ":srv CAP * LS :sasl=PLAIN,SCRAM-SHA-256",
                ":srv CAP * ACK :sasl",
            ],
        );
        assert_eq!(out, ["CAP REQ :sasl", "AUTHENTICATE SCRAM-SHA-256"]);
        s
    }

    #[test]
    fn sasl_scram_login_when_offered() {
        for round in 0..2 {
            // The second round reconnects and uses the cached salted password.
            let mut s = scram_login_state("pencil");
            let mut server = ScramServer::new("pencil");
            let first = feed(&mut s, &["AUTHENTICATE +"]);
            assert_eq!(first.len(), 1, "{first:?}");
            let challenge = server.answer(&first[0]);
            let proof = feed(&mut s, &[&challenge]);
            assert_eq!(proof.len(), 1, "{proof:?}");
            let signature = server.answer(&proof[0]);
            assert!(
                signature.starts_with("AUTHENTICATE "),
                "round {round}: {signature}"
            );
            assert_eq!(feed(&mut s, &[&signature]), ["AUTHENTICATE +"]);
            let out = feed(
                &mut s,
                &[
                    ":srv 900 me me!u@h alice :You are now logged in as alice",
                    ":srv 903 me :SASL ok",
                ],
            );
            assert_eq!(out, ["CAP END"]);
            assert_eq!(s.account(), Some("alice"));
            assert!(s.take_fatal().is_none());
        }
    }

    #[test]
    fn a_refused_scram_password_is_not_tried_again_with_plain() {
        let mut s = scram_login_state("not-pencil");
        let mut server = ScramServer::new("pencil");
        let first = feed(&mut s, &["AUTHENTICATE +"]);
        let proof = feed(&mut s, &[&server.answer(&first[0])]);
        let refusal = server.answer(&proof[0]);
        // One typo is one failed login: no PLAIN retry with the same password.
        assert_eq!(feed(&mut s, &[&refusal]), ["QUIT"]);
        assert_eq!(s.take_fatal().as_deref(), Some(LOGIN_REFUSED));
    }

    #[test]
    fn a_server_refusing_the_scram_mechanism_gets_plain() {
        let mut s = scram_login_state("pencil");
        let out = feed(
            &mut s,
            &[
                ":srv 908 me PLAIN :are available SASL mechanisms",
                ":srv 904 me :SASL authentication failed",
            ],
        );
        assert_eq!(out, ["AUTHENTICATE PLAIN"]);
    }

    #[test]
    fn a_lockout_is_said_as_such_and_not_retried() {
        let mut s = scram_login_state("pencil");
        let out = feed(
            &mut s,
            &[":srv 904 me :Too many failed logins; try again in 900 seconds"],
        );
        assert_eq!(out, ["QUIT"], "no PLAIN retry against a lockout");
        assert_eq!(
            s.take_fatal().as_deref(),
            Some("Too many failed logins; try again in 15 minutes.")
        );
        for (server, said) in [
            (
                "too many failed logins; try again in 61 seconds",
                "try again in 2 minutes.",
            ),
            (
                "TOO MANY FAILED LOGINS; TRY AGAIN IN 45 SECONDS",
                "try again in 45 seconds.",
            ),
            (
                "too many failed logins; try again in 1 seconds",
                "try again in 1 second.",
            ),
            ("Too many failed logins", "try again later."),
            (
                "Too many failed logins; try again in a while",
                "try again later.",
            ),
        ] {
            let message = login_refusal(server);
            assert!(message.starts_with("Too many failed logins; "), "{message}");
            assert!(message.ends_with(said), "{server:?} -> {message}");
            assert!(is_login_refusal(&message));
        }
        assert_eq!(
            login_refusal("Invalid account name or password"),
            LOGIN_REFUSED
        );
        assert_eq!(
            login_refusal("This account is disabled; ask a server operator"),
            "The server refused the login: This account is disabled; ask a server operator"
        );
    }

    #[test]
    fn a_server_that_cannot_prove_itself_is_left_without_the_password() {
        let mut s = scram_login_state("pencil");
        let mut server = ScramServer::new("pencil");
        let first = feed(&mut s, &["AUTHENTICATE +"]);
        feed(&mut s, &[&server.answer(&first[0])]);
        let wrong = base64::engine::general_purpose::STANDARD.encode(format!(
            "v={}",
            base64::engine::general_purpose::STANDARD.encode([0u8; 32])
        ));
        let out = feed(&mut s, &[&format!("AUTHENTICATE {wrong}")]);
        assert_eq!(out, ["AUTHENTICATE *", "QUIT"]);
        let reason = s.take_fatal().expect("fatal");
        assert!(reason.contains("could not prove"), "{reason}");
        // No PLAIN afterwards: that would hand the password to the impostor.
        assert!(feed(&mut s, &[":srv 906 me :SASL authentication aborted"])
            .iter()
            .all(|l| !l.starts_with("AUTHENTICATE")));
    }

    #[test]
    fn a_challenge_this_client_refuses_is_aborted_for_plain() {
        let mut s = scram_login_state("pencil");
        let first = feed(&mut s, &["AUTHENTICATE +"]);
        let b64 = base64::engine::general_purpose::STANDARD;
        let client_first =
            String::from_utf8(b64.decode(&first[0]["AUTHENTICATE ".len()..]).expect("b64"))
                .expect("utf-8");
        let nonce = &client_first[client_first.find("r=").expect("nonce") + 2..];
        // Far more rounds than a client should spend.
        let greedy = b64.encode(format!("r={nonce}xyz,s=c2FsdA==,i=50000000"));
        assert_eq!(
            feed(&mut s, &[&format!("AUTHENTICATE {greedy}")]),
            ["AUTHENTICATE *"]
        );
        assert_eq!(
            feed(&mut s, &[":srv 906 me :SASL authentication aborted"]),
            ["AUTHENTICATE PLAIN"]
        );
    }

    #[test]
    fn sasl_payloads_are_chunked_and_collected() {
        let mut out = Vec::new();
        push_sasl_payload(&mut out, &"x".repeat(300)); // 400 base64 characters exactly
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], "AUTHENTICATE +");
        let mut buffer = String::new();
        assert_eq!(
            collect_sasl_chunk(&mut buffer, &out[0]["AUTHENTICATE ".len()..]),
            None
        );
        assert_eq!(
            collect_sasl_chunk(&mut buffer, "+"),
            Some(Some("x".repeat(300)))
        );
        assert_eq!(collect_sasl_chunk(&mut buffer, "!!"), Some(None));
        let mut huge = String::new();
        let chunk = "A".repeat(SASL_CHUNK);
        let mut result = None;
        for _ in 0..30 {
            result = collect_sasl_chunk(&mut huge, &chunk);
            if result.is_some() {
                break;
            }
        }
        assert_eq!(
            result,
            Some(None),
            "a server cannot grow the buffer without bound"
        );
    }

    #[test]
    fn last_error_is_kept_until_the_next_welcome() {
        let mut s = State::new("me", "Me");
        assert_eq!(s.last_error(), None);
        s.on_connect_failed("cannot connect to h:1: connection refused");
        assert_eq!(
            s.last_error(),
            Some("cannot connect to h:1: connection refused")
        );
        assert!(s.buffers()[0]
            .lines
            .iter()
            .any(|l| l.kind == LineKind::Error && l.text.contains("connection refused")));
        s.on_connected(false, Auth::Guest);
        feed(&mut s, &[":srv 001 me :Welcome"]);
        assert_eq!(s.last_error(), None);
        s.on_disconnected("read error");
        assert_eq!(s.last_error(), Some("read error"));
    }

    #[test]
    fn failed_login_is_fatal() {
        let mut s = state();
        s.on_connected(
            true,
            Auth::Login {
                account: "alice".into(),
                password: "bad".into(),
            },
        );
        feed(
            &mut s,
            &[
                ":srv CAP * LS :sasl",
                ":srv CAP * ACK :sasl",
                "AUTHENTICATE +",
            ],
        );
        let out = feed(&mut s, &[":srv 904 me :SASL authentication failed"]);
        assert_eq!(out, ["QUIT"]);
        let reason = s.take_fatal().expect("a refused login stops reconnecting");
        assert_eq!(reason, LOGIN_REFUSED);
        assert!(matches!(s.connection(), ConnectionState::Failed(_)));
    }

    #[test]
    fn login_without_sasl_uses_pass() {
        let mut s = state();
        s.on_connected(
            false,
            Auth::Login {
                account: "a".into(),
                password: "p w".into(),
            },
        );
        let out = feed(
            &mut s,
            &[
                ":srv CAP * LS :multi-prefix",
                ":srv CAP * ACK :multi-prefix",
            ],
        );
        assert_eq!(out, ["CAP REQ :multi-prefix", "PASS :a:p w", "CAP END"]);
    }

    #[test]
    fn register_success_and_failure() {
        let mut s = state();
        let first = s.on_connected(
            false,
            Auth::Register {
                account: "newbie".into(),
                password: "long-pass".into(),
            },
        );
        assert_eq!(first[1], "NICK newbie");
        let out = feed(
            &mut s,
            &[":srv CAP * LS :draft/account-registration=before-connect"],
        );
        assert_eq!(out, ["REGISTER * * :long-pass"]);
        let out = feed(&mut s, &[":srv REGISTER SUCCESS newbie :Account created"]);
        assert_eq!(out, ["CAP END"]);
        assert_eq!(s.account(), Some("newbie"));

        let mut s = state();
        s.on_connected(
            false,
            Auth::Register {
                account: "taken".into(),
                password: "long-pass".into(),
            },
        );
        feed(&mut s, &[":srv CAP * LS :draft/account-registration"]);
        let out = feed(
            &mut s,
            &[":srv FAIL REGISTER ACCOUNT_EXISTS taken :Account already exists"],
        );
        assert_eq!(out, ["QUIT"]);
        let reason = s.take_fatal().expect("fatal");
        assert!(
            reason.contains("ACCOUNT_EXISTS") && reason.contains("already exists"),
            "{reason}"
        );
    }

    #[test]
    fn register_on_a_server_without_it_fails_clearly() {
        let mut s = state();
        s.on_connected(
            false,
            Auth::Register {
                account: "x".into(),
                password: "long-pass".into(),
            },
        );
        feed(
            &mut s,
            &[
                ":srv CAP * LS :multi-prefix",
                ":srv CAP * ACK :multi-prefix",
            ],
        );
        assert!(s
            .take_fatal()
            .expect("fatal")
            .contains("does not offer account registration"));
    }

    #[test]
    fn a_guest_is_told_at_once_that_the_server_needs_an_account() {
        let mut s = state();
        s.on_connected(false, Auth::Guest);
        let out = feed(
            &mut s,
            &[":srv CAP * LS :sasl soju.im/account-required draft/account-registration"],
        );
        assert_eq!(out, ["QUIT"], "no CAP END, no waiting for a timeout");
        let reason = s.take_fatal().expect("no retry loop");
        assert!(reason.starts_with(ACCOUNT_REQUIRED), "{reason}");
        assert!(reason.contains("register"), "{reason}");
        assert!(is_login_refusal(&reason));

        // A server without the capability says it with FAIL * ACCOUNT_REQUIRED.
        let mut s = state();
        s.on_connected(false, Auth::Guest);
        assert_eq!(feed(&mut s, &[":srv CAP * LS :sasl"]), ["CAP REQ :sasl"]);
        feed(&mut s, &[":srv CAP * ACK :sasl"]);
        let out = feed(
            &mut s,
            &[":srv FAIL * ACCOUNT_REQUIRED :This server requires an account"],
        );
        assert_eq!(out, ["QUIT"]);
        let reason = s.take_fatal().expect("fatal");
        assert!(reason.contains("ask its admin"), "{reason}");

        // With a password the capability changes nothing.
        let mut s = state();
        s.on_connected(
            false,
            Auth::Login {
                account: "alice".into(),
                password: "pw".into(),
            },
        );
        let out = feed(&mut s, &[":srv CAP * LS :sasl soju.im/account-required"]);
        assert_eq!(out, ["CAP REQ :sasl"]);
    }

    #[test]
    fn nick_in_use_during_registration_retries() {
        let mut s = state();
        s.on_connected(false, Auth::Guest);
        let out = feed(&mut s, &[":srv 433 * me :Nickname is already in use"]);
        assert_eq!(out, ["NICK me_"]);
        feed(&mut s, &[":srv 001 me_ :Welcome"]);
        assert_eq!(s.nick(), "me_");
        assert!(
            s.buffers()[0]
                .lines
                .iter()
                .any(|l| l.text.starts_with("connected as me_ because me is in use")),
            "the user is told why the nick differs"
        );
        // A guest's nick is not chased.
        assert!(feed(&mut s, &[":me!u@h QUIT :bye"]).is_empty());
    }
}
