//! What a command handler gets: the shared server, this connection's session, and its own
//! outbound buffer. Handlers never touch a socket; they decide, serialize once, and queue bytes.

use std::net::IpAddr;
use std::sync::Arc;

use parley_proto::write_line;

use crate::config::RegistrationPolicy;
use crate::outbound::Outbound;
use crate::relay::wire;
use crate::server::Shared;
use crate::state::ClientId;

/// Capabilities a client may request, in the order `CAP LS` shows them.
pub const SUPPORTED_CAPS: &[&str] = &[
    "account-notify",
    "account-tag",
    "batch",
    "cap-notify",
    "draft/chathistory",
    "echo-message",
    "extended-join",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "sasl",
    "server-time",
    "userhost-in-names",
];

/// Value of `draft/account-registration` (RFC-style keys): REGISTER works before the connection
/// is registered, and the account name may differ from the nick.
const ACCOUNT_REGISTRATION: &str = "draft/account-registration";
const ACCOUNT_REGISTRATION_VALUE: &str = "before-connect,custom-account-name";
/// Advertised when `accounts.require_login` is on; the matching refusal is
/// `FAIL * ACCOUNT_REQUIRED` (see `registration::tell_how_to_log_in`).
pub const ACCOUNT_REQUIRED_CAP: &str = "soju.im/account-required";

/// The `CAP LS` list for this connection; values (after `=`) only for `CAP LS 302` clients.
pub fn advertised_caps(shared: &Shared, session: &Session, with_values: bool) -> String {
    let mut caps: Vec<String> = SUPPORTED_CAPS
        .iter()
        .filter(|c| **c != "draft/chathistory" || shared.history.enabled())
        .map(|c| match (*c, with_values) {
            ("sasl", true) => format!("sasl={}", crate::auth::SASL_MECHANISMS),
            (c, _) => c.to_string(),
        })
        .collect();
    if shared.live().accounts.registration == RegistrationPolicy::Open {
        caps.push(if with_values {
            format!("{ACCOUNT_REGISTRATION}={ACCOUNT_REGISTRATION_VALUE}")
        } else {
            ACCOUNT_REGISTRATION.to_string()
        });
    }
    if shared.config.accounts.require_login {
        // Informational (soju.im/account-required): a client learns before CAP END that it
        // must log in, so it can say so instead of waiting as a guest. Never requestable.
        caps.push(ACCOUNT_REQUIRED_CAP.to_string());
    }
    if let (Some(tls), true) = (&shared.tls, shared.config.tls.sts) {
        // IRCv3 sts: a plain-text connection learns the TLS port to upgrade to; a secure one
        // learns how long to keep using TLS.
        caps.push(match (with_values, session.secure) {
            (false, _) => "sts".to_string(),
            (true, false) => format!("sts=port={}", tls.port),
            (true, true) => format!("sts=duration={}", shared.config.tls.sts_duration_secs),
        });
    }
    caps.sort();
    caps.join(" ")
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Caps {
    pub account_notify: bool,
    pub account_tag: bool,
    pub batch: bool,
    pub cap_notify: bool,
    pub chathistory: bool,
    pub echo_message: bool,
    pub extended_join: bool,
    pub labeled_response: bool,
    pub message_tags: bool,
    pub multi_prefix: bool,
    pub sasl: bool,
    pub server_time: bool,
    pub userhost_in_names: bool,
    pub account_registration: bool,
}

impl Caps {
    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "account-notify" => &mut self.account_notify,
            "account-tag" => &mut self.account_tag,
            "batch" => &mut self.batch,
            "cap-notify" => &mut self.cap_notify,
            "draft/chathistory" => &mut self.chathistory,
            "echo-message" => &mut self.echo_message,
            "extended-join" => &mut self.extended_join,
            "labeled-response" => &mut self.labeled_response,
            "message-tags" => &mut self.message_tags,
            "multi-prefix" => &mut self.multi_prefix,
            "sasl" => &mut self.sasl,
            "server-time" => &mut self.server_time,
            "userhost-in-names" => &mut self.userhost_in_names,
            ACCOUNT_REGISTRATION => &mut self.account_registration,
            _ => return None,
        })
    }

    /// Turn a capability on or off; false when we do not offer it.
    pub fn set(&mut self, name: &str, on: bool) -> bool {
        match self.flag(name) {
            Some(flag) => {
                *flag = on;
                true
            }
            None => false,
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut probe = *self;
        SUPPORTED_CAPS
            .iter()
            .chain([&ACCOUNT_REGISTRATION])
            .copied()
            .filter(|name| probe.flag(name).is_some_and(|on| *on))
            .collect()
    }

    /// The bits senders look at to pick a serialized variant for this client.
    pub fn wire_bits(&self) -> u8 {
        let mut bits = 0;
        if self.account_tag {
            bits |= wire::ACCOUNT_TAG;
        }
        if self.extended_join {
            bits |= wire::EXTENDED_JOIN;
        }
        if self.account_notify {
            bits |= wire::ACCOUNT_NOTIFY;
        }
        if self.server_time {
            bits |= wire::SERVER_TIME;
        }
        if self.message_tags {
            bits |= wire::MESSAGE_TAGS;
        }
        if self.echo_message {
            bits |= wire::ECHO_MESSAGE;
        }
        bits
    }
}

/// Work a handler leaves for the connection task because it must wait: password hashing, a message
/// waiting to be stored before it is delivered, a history read. Run in order after the line.
pub enum FollowUp {
    Auth(PendingAuth),
    /// Boxed: a delivery carries its serialized variants, far bigger than the other cases.
    Deliver(Box<crate::history::Delivery>),
    History(crate::history::HistoryRequest),
    /// Deliver the private messages that arrived while this account was offline.
    Offline(String),
    /// Claim a nick across the cluster before taking it.
    ClaimNick(String),
    /// Ask the database whether this account is a server admin (`parleyd users add --admin`),
    /// then make the connection an operator if it is; `asked` when OPER asked, so a refusal is
    /// answered.
    OperCheck {
        account: String,
        asked: bool,
    },
}

/// A login or registration waiting for the slow part (password hashing) to finish; the
/// connection task runs it after the handler returns and then calls back into [`crate::auth`].
#[derive(Debug)]
pub enum PendingAuth {
    Login {
        account: String,
        password: String,
        via: LoginVia,
    },
    Register {
        account: String,
        password: String,
    },
    /// SCRAM-SHA-256: find the account's credential and answer the client's first message.
    ScramStart {
        first: parley_proto::scram::ClientFirst,
    },
    /// SCRAM-SHA-256: check the client's proof (a failure waits out the same delay as PLAIN's).
    ScramFinish {
        login: Box<crate::accounts::ScramLogin>,
        client_final: String,
    },
    /// SASL IRCV3BEARER with a login session's token (see `accounts::sessions`).
    TokenLogin {
        authzid: Option<String>,
        token: String,
    },
    /// `SESSION NEW`: issue a login session for the account this connection is logged in to.
    SessionNew {
        account: String,
        label: String,
    },
    /// `SESSION REVOKE`: end this connection's session, or with `all` every session of the
    /// account.
    SessionRevoke {
        account: String,
        token_hash: Option<String>,
        all: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginVia {
    /// SASL PLAIN.
    Sasl,
    Pass,
    /// SASL SCRAM-SHA-256.
    Scram,
    /// SASL IRCV3BEARER with a login session's token.
    Token,
}

/// This connection's own state, kept by its task; the world holds what others need to see.
pub struct Session {
    pub id: ClientId,
    pub ip: IpAddr,
    /// The connection is TLS.
    pub secure: bool,
    pub host: String,
    /// Current nick, or empty before the first valid NICK.
    pub nick: String,
    pub got_user: bool,
    pub registered: bool,
    /// Between `CAP LS`/`CAP REQ` and `CAP END` registration waits.
    pub cap_negotiating: bool,
    pub caps: Caps,
    /// The account this connection is logged in to.
    pub account: Option<String>,
    /// The SHA-256 of the login session token this connection logged in with or was last
    /// issued (`SESSION REVOKE` ends that one); never the token itself.
    pub login_session: Option<String>,
    /// Logged in with a session token (which may not mint more: see `command::session`).
    pub token_login: bool,
    /// The SASL exchange in progress, from `AUTHENTICATE <mechanism>` to its end.
    pub sasl: Option<crate::auth::SaslState>,
    /// `PASS` given before registration, tried at registration time.
    pub pass: Option<String>,
    pub followups: std::collections::VecDeque<FollowUp>,
    /// The "you must log in" notice was already sent.
    pub told_to_log_in: bool,
    /// When this connection last broadcast (for `operators.broadcast_interval_secs`).
    pub last_broadcast: Option<tokio::time::Instant>,
    /// While a labeled command runs (IRCv3 `labeled-response`), its replies are collected here
    /// and sent afterwards under the label. A `RefCell` because replies are sent through `&Ctx`.
    pub labeled: std::cell::RefCell<Option<Labeled>>,
    /// Set by QUIT (or a fatal error): the connection ends after this line.
    pub quit: Option<String>,
    /// This connection's messages handed to the history writer and not yet delivered, oldest
    /// first (see `connection::IN_FLIGHT`).
    pub in_flight: std::collections::VecDeque<tokio::sync::oneshot::Receiver<()>>,
}

/// The label of the command being handled and the replies collected for it.
pub struct Labeled {
    pub label: String,
    pub lines: Vec<Vec<u8>>,
    /// The label already went out on an echoed message, so no `ACK` is owed.
    pub answered: bool,
}

impl Session {
    pub fn new(id: ClientId, ip: IpAddr, secure: bool) -> Self {
        Session {
            id,
            ip,
            secure,
            host: host_for(ip),
            nick: String::new(),
            got_user: false,
            registered: false,
            cap_negotiating: false,
            caps: Caps::default(),
            account: None,
            login_session: None,
            token_login: false,
            sasl: None,
            pass: None,
            followups: Default::default(),
            told_to_log_in: false,
            last_broadcast: None,
            labeled: Default::default(),
            quit: None,
            in_flight: Default::default(),
        }
    }

    /// The nick as used in numerics: `*` until one is set.
    pub fn nick_or_star(&self) -> &str {
        if self.nick.is_empty() {
            "*"
        } else {
            &self.nick
        }
    }
}

/// The host part shown for a client: its address (IPv6 with a leading ':' gets a '0' so the
/// `nick!user@host` source stays parseable).
pub fn host_for(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    let text = ip.to_string();
    if text.starts_with(':') {
        format!("0{text}")
    } else {
        text
    }
}

pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub session: &'a mut Session,
    pub outbound: &'a Arc<Outbound>,
}

/// Serialize one line without tags. Middle parameters often echo what a client sent (a bad nick,
/// an unknown channel); one that would break the line (empty, a space, a leading ':') is sent as
/// `*` instead, so a client can never inject parameters into a reply.
pub fn line(
    source: Option<&str>,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> Vec<u8> {
    // Sized up front: growing the line as it is written cost more than writing it.
    let size = source.map_or(0, |s| s.len() + 2)
        + command.len()
        + middle.iter().map(|p| p.len() + 1).sum::<usize>()
        + trailing.map_or(0, |t| t.len() + 2)
        + 2;
    let mut out = Vec::with_capacity(size);
    let breaks_line = |p: &&str| {
        p.is_empty()
            || p.starts_with(':')
            || p.bytes().any(|b| matches!(b, b' ' | b'\r' | b'\n' | 0))
    };
    if middle.iter().any(breaks_line) {
        let safe: Vec<&str> = middle
            .iter()
            .map(|p| if breaks_line(p) { "*" } else { *p })
            .collect();
        write_line(&mut out, &[], source, command, &safe, trailing);
    } else {
        write_line(&mut out, &[], source, command, middle, trailing);
    }
    out
}

impl Ctx<'_> {
    /// Queue bytes for this client. A failure means the connection is already closing, which its
    /// task notices on its own, so there is nothing more to do here.
    pub fn send(&self, bytes: &[u8]) {
        if let Some(captured) = self.session.labeled.borrow_mut().as_mut() {
            captured.lines.push(bytes.to_vec());
            return;
        }
        let _ = self.outbound.push(bytes);
    }

    /// Queue several complete lines with one push (one lock, at most one wake). A labeled
    /// command still collects them one by one, so each can carry the batch tag.
    pub fn send_lines(&self, lines: &[u8]) {
        if let Some(captured) = self.session.labeled.borrow_mut().as_mut() {
            let each = lines.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec);
            captured.lines.extend(each);
            return;
        }
        let _ = self.outbound.push(lines);
    }

    /// `:server <code> <nick> <middle...> [:trailing]`
    pub fn numeric(&self, code: &str, middle: &[&str], trailing: Option<&str>) {
        // The welcome burst alone is two dozen numerics: their parameter lists stay on the stack.
        let mut on_stack = [""; 16];
        let heap;
        let params: &[&str] = match on_stack.get_mut(..=middle.len()) {
            Some(params) => {
                params[0] = self.session.nick_or_star();
                params[1..].copy_from_slice(middle);
                params
            }
            None => {
                heap = [&[self.session.nick_or_star()], middle].concat();
                &heap
            }
        };
        self.send(&line(
            Some(self.shared.server_name()),
            code,
            params,
            trailing,
        ));
    }

    /// ERR_NEEDMOREPARAMS when `msg` has fewer than `n` params; returns whether it has enough.
    pub fn need_params(&self, msg: &parley_proto::Message<'_>, n: usize) -> bool {
        if msg.params.len() >= n {
            return true;
        }
        self.numeric(
            parley_proto::numeric::ERR_NEEDMOREPARAMS,
            &[&msg.command.to_ascii_uppercase()],
            Some("Not enough parameters"),
        );
        false
    }

    /// Record an action of this connection's user in the audit trail: the nick it acted under and
    /// the account behind it as actor, the connection's address as source.
    pub fn audit(&self, action: &str, target: &str, detail: Option<&str>) {
        self.shared.history.audit(
            action,
            Some(&self.session.nick),
            self.session.account.as_deref(),
            Some(target),
            Some(&self.session.ip.to_string()),
            detail,
        );
    }

    /// A line from the server itself (NOTICE, PONG, CAP ...).
    pub fn server_line(&self, command: &str, middle: &[&str], trailing: Option<&str>) {
        self.send(&line(
            Some(self.shared.server_name()),
            command,
            middle,
            trailing,
        ));
    }
}
