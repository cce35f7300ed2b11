//! What a command handler gets: the shared server, this connection's session, and its own
//! outbound buffer. Handlers never touch a socket; they decide, serialize once, and queue bytes.

use std::net::IpAddr;
use std::sync::Arc;

use parley_proto::{casefold, numeric};

use futures_util::future::BoxFuture;

use crate::cluster::event::{Event, Uid};
use crate::cluster::{ClaimError, Cluster};
use crate::config::RegistrationPolicy;
use crate::fanout::{self, EchoWait, Local, Publish};
use crate::isupport;
use crate::outbound::Outbound;
use crate::relay::{line, notify, wire, Relay};
use crate::server::Shared;
use crate::state::{Channel, ClientId, MemberList, MemberStatus, OperClass, User, World};

/// Capabilities a client may request, in the order `CAP LS` shows them.
pub const SUPPORTED_CAPS: &[&str] = &[
    "account-notify",
    "account-tag",
    "away-notify",
    "batch",
    "cap-notify",
    "chghost",
    "draft/channel-rename",
    "draft/chathistory",
    "draft/event-playback",
    "draft/message-redaction",
    "draft/multiline",
    "draft/read-marker",
    "draft/webpush",
    "echo-message",
    "extended-join",
    "extended-monitor",
    "invite-notify",
    "labeled-response",
    "message-tags",
    "multi-prefix",
    "parley.chat/e2e",
    "sasl",
    "server-time",
    "setname",
    "soju.im/search",
    "userhost-in-names",
];

/// The end-to-end key directory's capability (`command::keys`, docs/e2e.md).
pub const E2E_CAP: &str = "parley.chat/e2e";

/// Value of `draft/account-registration` (RFC-style keys): REGISTER works before the connection
/// is registered (unless `accounts.register_before_connect` is off), and the account name may
/// differ from the nick.
const ACCOUNT_REGISTRATION: &str = crate::server::ACCOUNT_REGISTRATION_CAP;
const ACCOUNT_REGISTRATION_VALUE: &str = "before-connect,custom-account-name";
const ACCOUNT_REGISTRATION_AFTER_CONNECT: &str = "custom-account-name";
/// Advertised when `accounts.require_login` is on; the matching refusal is
/// `FAIL * ACCOUNT_REQUIRED` (see `registration::tell_how_to_log_in`).
pub const ACCOUNT_REQUIRED_CAP: &str = "soju.im/account-required";

/// The `CAP LS` list for this connection; values (after `=`) only for `CAP LS 302` clients.
pub fn advertised_caps(shared: &Shared, session: &Session, with_values: bool) -> String {
    let mut caps: Vec<String> = SUPPORTED_CAPS
        .iter()
        .filter(|c| **c != "draft/chathistory" || shared.history.enabled())
        // Who wrote a message is known only from history.
        .filter(|c| **c != "draft/message-redaction" || shared.history.enabled())
        // Playback covers TAGMSG only (reactions and replies: `history::events`): membership
        // events are not stored, which the spec allows ("SHOULD send additional lines").
        .filter(|c| **c != "draft/event-playback" || shared.history.enabled())
        // Only with a push service (`webpush.enabled`) and its VAPID key.
        .filter(|c| **c != crate::webpush::CAP || shared.webpush.is_some())
        // Only with the key directory KEYS answers from.
        .filter(|c| **c != E2E_CAP || shared.e2e_keys.is_some())
        // SEARCH reads stored history.
        .filter(|c| {
            **c != "soju.im/search" || (shared.history.enabled() && shared.config.search.enabled)
        })
        .map(|c| match (*c, with_values) {
            ("sasl", true) => format!("sasl={}", SASL_MECHANISMS),
            (crate::webpush::CAP, true) => match &shared.webpush {
                Some(webpush) => format!("{}={}", crate::webpush::CAP, webpush.cap_value()),
                None => crate::webpush::CAP.to_string(),
            },
            ("draft/multiline", true) => format!(
                "draft/multiline=max-bytes={},max-lines={}",
                shared.config.limits.multiline_max_bytes, shared.config.limits.multiline_max_lines
            ),
            (c, _) => c.to_string(),
        })
        .collect();
    if shared.live().accounts.registration == RegistrationPolicy::Open {
        caps.push(if with_values {
            let value = if shared.config.accounts.register_before_connect {
                ACCOUNT_REGISTRATION_VALUE
            } else {
                ACCOUNT_REGISTRATION_AFTER_CONNECT
            };
            format!("{ACCOUNT_REGISTRATION}={value}")
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

/// The mechanisms offered, in `CAP LS 302` (`sasl=`) and in 908 (RPL_SASLMECHS).
pub const SASL_MECHANISMS: &str = "PLAIN,SCRAM-SHA-256,IRCV3BEARER";

/// A SASL exchange in progress on one connection.
pub enum SaslState {
    /// PLAIN: the payload so far.
    Plain(String),
    /// IRCV3BEARER: the payload so far.
    Bearer(String),
    /// SCRAM-SHA-256, before the client's first message: that message so far.
    ScramFirst(String),
    /// The server's first message went out: the client's final message so far.
    ScramFinal {
        payload: String,
        login: Box<crate::accounts::ScramLogin>,
    },
    /// The proof checked out and the server's final message went out. IRC has no "success with
    /// data", so as RFC 4422 section 5 says the client answers it with an empty response (`+`),
    /// and only then is it logged in (900, 903).
    ScramProved { account: String },
    /// A message went past its limit and got one 905: the rest of its chunks (sent before the
    /// client could read the 905) are dropped until its last, shorter one, so one attempt gets
    /// one answer rather than a 904 per leftover chunk.
    Overlong,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Caps {
    pub account_notify: bool,
    pub account_tag: bool,
    pub batch: bool,
    pub cap_notify: bool,
    pub channel_rename: bool,
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
    pub away_notify: bool,
    pub extended_monitor: bool,
    pub invite_notify: bool,
    pub setname: bool,
    pub read_marker: bool,
    pub multiline: bool,
    pub message_redaction: bool,
    pub event_playback: bool,
    pub chghost: bool,
    pub webpush: bool,
    /// `soju.im/search`: the SEARCH command (`command::search`).
    pub search: bool,
    /// `parley.chat/e2e`: informational (the key directory is there); KEYS works without it.
    pub e2e: bool,
}

impl Caps {
    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "account-notify" => &mut self.account_notify,
            "account-tag" => &mut self.account_tag,
            "batch" => &mut self.batch,
            "cap-notify" => &mut self.cap_notify,
            "draft/channel-rename" => &mut self.channel_rename,
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
            "away-notify" => &mut self.away_notify,
            "extended-monitor" => &mut self.extended_monitor,
            "invite-notify" => &mut self.invite_notify,
            "setname" => &mut self.setname,
            "draft/read-marker" => &mut self.read_marker,
            "draft/message-redaction" => &mut self.message_redaction,
            "draft/multiline" => &mut self.multiline,
            "draft/event-playback" => &mut self.event_playback,
            "chghost" => &mut self.chghost,
            crate::webpush::CAP => &mut self.webpush,
            "soju.im/search" => &mut self.search,
            E2E_CAP => &mut self.e2e,
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
    pub fn wire_bits(&self) -> u16 {
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
        if self.read_marker {
            bits |= wire::READ_MARKER;
        }
        if self.multiline {
            bits |= wire::MULTILINE;
        }
        if self.message_redaction {
            bits |= wire::MESSAGE_REDACTION;
        }
        if self.channel_rename {
            bits |= wire::CHANNEL_RENAME;
        }
        if self.multi_prefix {
            bits |= wire::MULTI_PREFIX;
        }
        if self.userhost_in_names {
            bits |= wire::USERHOST_IN_NAMES;
        }
        bits
    }

    /// The notifications this client asked for ([`notify`] bits), read by senders choosing
    /// who gets a line.
    pub fn notify_bits(&self) -> u8 {
        let mut bits = 0;
        for (on, bit) in [
            (self.away_notify, notify::AWAY_NOTIFY),
            (self.setname, notify::SETNAME),
            (self.invite_notify, notify::INVITE_NOTIFY),
            (self.extended_monitor, notify::EXTENDED_MONITOR),
            (self.account_notify, notify::ACCOUNT_NOTIFY),
            (self.cap_notify, notify::CAP_NOTIFY),
            (self.chghost, notify::CHGHOST),
        ] {
            if on {
                bits |= bit;
            }
        }
        bits
    }
}

/// Work a handler leaves for the connection task because it must wait, run in order after the
/// line. Two kinds have their own path and the rest is one opaque [`Step`], so the connection
/// runs store reads, blocking calls and nick claims without knowing which subsystem they ask.
pub enum FollowUp {
    /// A login or registration. Its own variant, not a [`Step`]: registration must not finish
    /// while one is pending (`registration::try_complete` looks for it in the queue), and its
    /// outcome goes to `command::auth` whichever way it was asked (SASL, PASS, REGISTER,
    /// SESSION).
    Auth(PendingAuth),
    /// A message to store before it is delivered: the hot path, which the connection may leave
    /// in flight while it reads on (no boxed step per message). Boxed: a delivery carries its
    /// serialized variants, far bigger than the other cases.
    Deliver(Box<crate::fanout::Delivery>),
    /// Anything else that waits (see [`Ctx::then_async`] and [`Ctx::then_blocking`]).
    Then(Step),
}

/// A handler's waiting step: given this connection's [`Announcer`] (the shared state and its
/// buffer), a future whose answer is the handler's second half.
pub type Step = Box<dyn for<'s> FnOnce(Announcer<'s>) -> BoxFuture<'s, Continuation> + Send>;

/// What a connection does with a waiting step's answer: a handler's second half.
pub type Continuation = Box<dyn for<'c, 'd> FnOnce(&'c mut Ctx<'d>) + Send>;

/// Pins down a closure's signature as a [`Step`]'s, which closure inference cannot do by itself
/// for a future that borrows its argument.
fn step<F>(step: F) -> F
where
    F: for<'s> FnOnce(Announcer<'s>) -> BoxFuture<'s, Continuation> + Send + 'static,
{
    step
}

/// A login or registration waiting for the slow part (password hashing) to finish; the
/// connection task runs it after the handler returns and then calls back into `command::auth`.
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
    /// Negotiated with `CAP LS 302` (or newer): `cap-notify` is on and stays on.
    pub cap_302: bool,
    pub caps: Caps,
    /// The account this connection is logged in to.
    pub account: Option<String>,
    /// The SHA-256 of the login session token this connection logged in with or was last
    /// issued (`SESSION REVOKE` ends that one); never the token itself.
    pub login_session: Option<String>,
    /// Logged in with a session token (which may not mint more: see `command::session`).
    pub token_login: bool,
    pub followups: std::collections::VecDeque<FollowUp>,
    /// The "you must log in" notice was already sent.
    pub told_to_log_in: bool,
    /// While a labeled command runs (IRCv3 `labeled-response`), its replies are collected here
    /// and sent afterwards under the label. A `RefCell` because replies are sent through `&Ctx`.
    pub labeled: std::cell::RefCell<Option<Box<Labeled>>>,
    /// This connection's messages handed to the history writer and not yet delivered, oldest
    /// first (see `connection::IN_FLIGHT`).
    pub in_flight: std::collections::VecDeque<tokio::sync::oneshot::Receiver<()>>,
    /// The `draft/multiline` batch this client has open (see `command::multiline`).
    pub multiline: Option<Box<MultilineBatch>>,
    /// This connection's SEARCH budget (`search.burst`, `search.per_minute`), made at its first
    /// search: searches past it wait, as lines past the flood budget do.
    pub search_budget: Option<Box<crate::flood::FloodControl>>,
    /// What a connection holds only for moments of its life (see [`Passing`]); `None` while
    /// none of it is set, which is most of the time.
    pub passing: Option<Box<Passing>>,
    /// The connection never goes to another node: it came over the bus itself (a session of a
    /// user here whose socket is on another node), or the node it should have gone to did not
    /// answer.
    pub stays: bool,
}

/// What a connection holds only for moments of its life: a SASL exchange, a `PASS` waiting for
/// registration, a QUIT on its way out, a handover to another node being made, an operator's
/// broadcast pace. Boxed in [`Session::passing`] and dropped when empty: inline, these 120 bytes
/// were a tenth of what every idle connection's task holds (BENCHMARKS.md, issue 27 target 3).
#[derive(Default)]
pub struct Passing {
    /// The SASL exchange in progress, from `AUTHENTICATE <mechanism>` to its end.
    pub sasl: Option<SaslState>,
    /// `PASS` given before registration, tried at registration time.
    pub pass: Option<String>,
    /// Set by QUIT (or a fatal error): the connection ends after this line.
    pub quit: Option<String>,
    /// In a cluster: the node whose user this connection becomes another session of, set when
    /// registration finds its account's user there; the connection then carries its lines to
    /// that node and back (`connection::bridged`).
    pub hand_off_to: Option<String>,
    /// When this connection last broadcast (for `operators.broadcast_interval_secs`).
    pub last_broadcast: Option<tokio::time::Instant>,
}

impl Passing {
    fn is_empty(&self) -> bool {
        self.sasl.is_none()
            && self.pass.is_none()
            && self.quit.is_none()
            && self.hand_off_to.is_none()
            && self.last_broadcast.is_none()
    }
}

/// A client's open `draft/multiline` batch: its lines so far, bounded by
/// `limits.multiline_max_bytes` and `multiline_max_lines`.
pub struct MultilineBatch {
    pub reference: String,
    /// The target as the BATCH named it.
    pub target: String,
    /// `PRIVMSG` or `NOTICE`, as the first line said; `None` before it.
    pub verb: Option<&'static str>,
    /// Each line's text and whether it carried `draft/multiline-concat`.
    pub lines: Vec<(String, bool)>,
    /// The combined message's length so far (a joining line feed counts one).
    pub bytes: usize,
    /// The batch broke a rule and was answered with a FAIL: its remaining lines are dropped.
    pub failed: bool,
    /// The opening BATCH's `label` (labeled-response), for the echo.
    pub label: Option<String>,
    /// The opening BATCH's client-only tags, escaped (`+a=1;+b`): the whole message's.
    pub tags: String,
}

/// The label of the command being handled and the replies collected for it.
pub struct Labeled {
    pub label: String,
    pub lines: Vec<LabeledLine>,
    /// The label already went out on its own (a `draft/multiline` batch's echo carries it), so
    /// no `ACK` is owed.
    pub answered: bool,
}

/// Longest label honoured, in bytes: "The value MUST NOT exceed 64 bytes" (labeled-response).
pub const MAX_LABEL_LEN: usize = 64;

impl Labeled {
    /// A label as the client sent it (unescaped), if it is one: a value is required and may
    /// not pass [`MAX_LABEL_LEN`]. Anything else is no label at all, since answering under a
    /// shortened one would pair the answer with a request the client never made.
    pub fn new(label: &str) -> Option<Labeled> {
        (!label.is_empty() && label.len() <= MAX_LABEL_LEN).then(|| Labeled {
            label: label.to_string(),
            lines: Vec::new(),
            answered: false,
        })
    }
}

/// One reply collected for a labeled command.
pub enum LabeledLine {
    Line(Vec<u8>),
    /// The echo of a message, once the history writer has stored and delivered it (see
    /// `fanout::Delivery::echo_into`) or, in a cluster, the stream has brought it back; the
    /// connection waits for it (a while) before answering.
    Echo(EchoWait),
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
            cap_302: false,
            caps: Caps::default(),
            account: None,
            login_session: None,
            token_login: false,
            followups: Default::default(),
            told_to_log_in: false,
            labeled: Default::default(),
            in_flight: Default::default(),
            multiline: None,
            search_budget: None,
            passing: None,
            stays: false,
        }
    }

    /// The passing state, made on first use (see [`Session::settle`]).
    pub fn passing(&mut self) -> &mut Passing {
        self.passing.get_or_insert_with(Default::default)
    }

    /// The SASL exchange in progress, if any (without making the passing state).
    pub fn sasl(&self) -> Option<&SaslState> {
        self.passing.as_ref()?.sasl.as_ref()
    }

    /// The SASL exchange in progress, to change it in place.
    pub fn sasl_mut(&mut self) -> Option<&mut SaslState> {
        self.passing.as_mut()?.sasl.as_mut()
    }

    /// The SASL exchange in progress, ended.
    pub fn take_sasl(&mut self) -> Option<SaslState> {
        self.passing.as_mut()?.sasl.take()
    }

    /// End the SASL exchange, if one is in progress.
    pub fn end_sasl(&mut self) {
        if let Some(passing) = self.passing.as_mut() {
            passing.sasl = None;
        }
    }

    /// Give the passing state back once nothing in it is set: called after every line, so a
    /// connection that registered, or finished a SASL exchange, goes back to holding none.
    pub fn settle(&mut self) {
        if self
            .passing
            .as_ref()
            .is_some_and(|passing| passing.is_empty())
        {
            self.passing = None;
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

/// An event's line as [`Ctx::announce`] takes it: the same bytes for everyone, or a relay that
/// serializes once per wire variant (JOIN's `extended-join`, `account-tag` ...).
#[derive(Clone, Copy)]
pub enum Line<'a> {
    Bytes(&'a [u8]),
    Relay(&'a Relay),
    /// The same bytes, only for those whose wire capabilities include the bit (ACCOUNT lines
    /// go only to `account-notify` clients).
    ForCap(&'a [u8], u16),
    /// The same bytes, only for those who asked for the notification (a [`notify`] bit: AWAY
    /// lines go only to `away-notify` clients).
    ForNotify(&'a [u8], u8),
}

impl<'a> Line<'a> {
    /// The bytes `member` gets, if any (a [`Line::ForCap`] only for those with the cap).
    pub fn bytes_for(self, member: &Outbound) -> Option<&'a [u8]> {
        match self {
            Line::Bytes(bytes) => Some(bytes),
            Line::ForCap(bytes, bit) => (member.wire_caps() & bit != 0).then_some(bytes),
            Line::ForNotify(bytes, bit) => (member.notify_caps() & bit != 0).then_some(bytes),
            Line::Relay(relay) => Some(relay.bytes_for(member.wire_caps())),
        }
    }

    /// Queue it for each of `members` now (each writer woken on its own).
    pub fn send_now(self, members: &[Arc<Outbound>]) {
        match self {
            Line::Bytes(bytes) => fanout::send_now(bytes, members),
            Line::ForCap(bytes, bit) => fanout::send_now_to_cap(bytes, members, bit),
            Line::ForNotify(bytes, bit) => fanout::send_now_to_notify(bytes, members, bit, None),
            Line::Relay(relay) => {
                for member in members {
                    relay.send_to(member);
                }
            }
        }
    }
}

/// What [`Ctx::announce`] leaves for the cluster: the event, to publish with [`Ctx::publish`]
/// once the world lock is let go (publishing may apply it here, which takes that lock). Empty
/// without a cluster, where everyone got the line already.
#[must_use = "publish it with Ctx::publish once the world lock is let go"]
#[derive(Default)]
pub struct Announced {
    events: Vec<(Arc<Cluster>, Event, Local)>,
    /// In a cluster, the acting user's buffer.
    actor: Option<Arc<Outbound>>,
    /// In a cluster, the acting user was among the members and got the line at once.
    actor_told: bool,
}

impl Announced {
    /// In a cluster, `who` (when given) gets the line at once too, as the acting user did (a
    /// KICK's target on this node); without one everybody has it already.
    pub fn also_now(&self, line: Line<'_>, who: Option<&Arc<Outbound>>) {
        if let (Some(actor), Some(who)) = (&self.actor, who) {
            if !Arc::ptr_eq(actor, who) {
                line.send_now(std::slice::from_ref(who));
            }
        }
    }

    /// In a cluster, the acting user gets the line at once even if it was not among those it
    /// was announced to (see its one use, channel MODE); without a cluster nothing happens.
    pub fn tell_actor(&self, line: Line<'_>) {
        if let (Some(actor), false) = (&self.actor, self.actor_told) {
            line.send_now(std::slice::from_ref(actor));
        }
    }

    /// In a cluster: who on this node gets the line when the stream brings it back, when that
    /// is not those it was announced to (after a PART or KICK, the members who remain).
    pub fn then_to(mut self, recipients: MemberList) -> Self {
        if let Some((_, _, local)) = self.events.last_mut() {
            local.recipients = Some(recipients);
        }
        self
    }

    /// Another announcement's event, published after this one's.
    pub fn and(mut self, other: Announced) -> Self {
        self.events.extend(other.events);
        self.actor = self.actor.or(other.actor);
        self.actor_told |= other.actor_told;
        self
    }
}

/// The one way an event leaves a handler or a connection for the users who must see it, here
/// and on the other nodes: callers never ask whether there is a cluster. Without one, lines go
/// straight into the recipients' buffers through [`fanout`]; in a cluster the event is published
/// and every node, this one included, delivers it from the stream with the same `fanout` code
/// (`cluster::apply`).
pub struct Announcer<'a> {
    pub shared: &'a Shared,
    /// The buffer of the user who acted.
    pub actor: &'a Arc<Outbound>,
}

impl Announcer<'_> {
    /// Announce an event to `members`: the one way a change reaches others. Without a cluster
    /// they all get `line` now, in the order the world lock gives. In a cluster the acting user
    /// (if among `members`) gets it now and the rest, on every node, when the stream brings back
    /// the `event` (made only then), in the stream's one order. Hand the result to
    /// [`Announcer::publish`] once the world lock is let go.
    pub fn announce(
        &self,
        line: Line<'_>,
        members: &MemberList,
        event: impl FnOnce(&Cluster) -> Event,
    ) -> Announced {
        let Some(cluster) = crate::cluster::of(self.shared) else {
            line.send_now(members);
            return Announced::default();
        };
        let actor_told = members.iter().any(|m| Arc::ptr_eq(m, self.actor));
        if actor_told {
            line.send_now(std::slice::from_ref(self.actor));
        }
        let local = Local {
            echo: None,
            recipients: Some(members.clone()),
            echo_into: None,
            sender: Some(self.actor.clone()),
        };
        Announced {
            events: vec![(cluster.clone(), event(cluster), local)],
            actor: Some(self.actor.clone()),
            actor_told,
        }
    }

    /// Tell the other nodes of a change they must mirror that has no line of its own here (user
    /// modes, a user coming up, an invite for their user): nothing without a cluster, or when
    /// `event` makes none. Publishes at once, so call it without the world lock.
    pub fn replicate(&self, event: impl FnOnce(&Cluster) -> Option<Event>) {
        if let Some(cluster) = crate::cluster::of(self.shared) {
            if let Some(event) = event(cluster) {
                cluster.publish(self.shared, event, None);
            }
        }
    }

    /// In a cluster, how to publish a stored message once the history writer has it (see
    /// [`crate::fanout::Delivery::publish`]); `None` delivers it here.
    pub fn publisher(&self, event: impl FnOnce(&Cluster) -> Event) -> Option<Publish> {
        crate::cluster::of(self.shared).map(|cluster| cluster.publisher(event(cluster)))
    }

    /// Publish what [`Announcer::announce`] left for the cluster. Call it after letting go of
    /// the world lock (publishing may deliver here at once, which takes it).
    pub fn publish(&self, announced: Announced) {
        for (cluster, event, local) in announced.events {
            cluster.publish_to(self.shared, event, local);
        }
    }

    /// Announce a message that is not stored (a broadcast to everyone) to `members`, never the
    /// sender: without a cluster they get it now, and the sender its echo if `echo`; in a
    /// cluster all of it, the echo too, comes from the stream on every node alike.
    pub fn announce_message(
        &self,
        relay: &Relay,
        members: &[Arc<Outbound>],
        echo: bool,
        event: impl FnOnce(&Cluster) -> Event,
    ) {
        match crate::cluster::of(self.shared) {
            Some(cluster) => cluster.publish(self.shared, event(cluster), echo.then(String::new)),
            None => {
                Line::Relay(relay).send_now(members);
                if echo {
                    relay.send_to(self.actor);
                }
            }
        }
    }

    /// The name a user of this node has across the cluster; none without one.
    pub fn uid(&self, id: ClientId) -> Option<Uid> {
        crate::cluster::of(self.shared).map(|cluster| cluster.uid_of(id))
    }

    /// Whether a nick must be claimed across the network before it is taken: in a cluster a nick
    /// is held once, network-wide, and the claim is a follow-up the connection runs
    /// ([`Announcer::claim_nick`]).
    pub fn claims_nicks(&self) -> bool {
        crate::cluster::of(self.shared).is_some()
    }

    /// Claim a nick (casefolded) for user `id` across the cluster before taking it; always
    /// granted without one.
    pub async fn claim_nick(&self, folded: &str, id: ClientId) -> Result<(), ClaimError> {
        match crate::cluster::of(self.shared) {
            Some(cluster) => cluster.claim(folded, &cluster.uid_of(id)).await,
            None => Ok(()),
        }
    }

    /// Give a nick (casefolded) that user `id` held back to the cluster.
    pub fn release_nick(&self, folded: &str, id: ClientId) {
        if let Some(cluster) = crate::cluster::of(self.shared) {
            cluster.release(folded, &cluster.uid_of(id));
        }
    }

    /// Give a nick (casefolded) that user `id` held back to the cluster, and wait until the bus
    /// has it (bounded): for a connection that goes on, so its next claim comes after it.
    pub async fn release_nick_now(&self, folded: &str, id: ClientId) {
        if let Some(cluster) = crate::cluster::of(self.shared) {
            cluster.release_now(folded, &cluster.uid_of(id)).await;
        }
    }
}

/// A handler's refusal: the error it ends with. Handlers return `Err(Reply)` (mostly through `?`
/// on the lookups below) and the dispatcher sends it, after the handler has let go of every
/// lock; the numerics' words live here, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An error numeric: its code, the parameters after the client's nick, and its text.
    Numeric {
        code: &'static str,
        params: Vec<String>,
        text: &'static str,
    },
    /// An IRCv3 standard reply: `FAIL <command> <code> <context...> :<text>`.
    Fail {
        command: &'static str,
        code: &'static str,
        context: Vec<String>,
        text: String,
    },
}

impl Reply {
    pub fn new(code: &'static str, params: &[&str], text: &'static str) -> Self {
        Reply::Numeric {
            code,
            params: params.iter().map(|p| p.to_string()).collect(),
            text,
        }
    }

    /// A `FAIL` standard reply.
    pub fn fail(command: &'static str, code: &'static str, context: &[&str], text: &str) -> Self {
        Reply::Fail {
            command,
            code,
            context: context.iter().map(|p| p.to_string()).collect(),
            text: text.to_string(),
        }
    }

    /// 461 ERR_NEEDMOREPARAMS.
    pub fn need_more_params(command: &str) -> Self {
        Reply::new(
            numeric::ERR_NEEDMOREPARAMS,
            &[&command.to_ascii_uppercase()],
            "Not enough parameters",
        )
    }

    /// 462 ERR_ALREADYREGISTERED.
    pub fn already_registered() -> Self {
        Reply::new(
            numeric::ERR_ALREADYREGISTERED,
            &[],
            "You may not reregister",
        )
    }

    /// 431 ERR_NONICKNAMEGIVEN.
    pub fn no_nickname_given() -> Self {
        Reply::new(numeric::ERR_NONICKNAMEGIVEN, &[], "No nickname given")
    }

    /// 401 ERR_NOSUCHNICK.
    pub fn no_such_nick(nick: &str) -> Self {
        Reply::new(numeric::ERR_NOSUCHNICK, &[nick], "No such nick/channel")
    }

    /// 403 ERR_NOSUCHCHANNEL.
    pub fn no_such_channel(name: &str) -> Self {
        Reply::new(numeric::ERR_NOSUCHCHANNEL, &[name], "No such channel")
    }

    /// 441 ERR_USERNOTINCHANNEL.
    pub fn not_in_channel(nick: &str, channel: &str) -> Self {
        Reply::new(
            numeric::ERR_USERNOTINCHANNEL,
            &[nick, channel],
            "They aren't on that channel",
        )
    }

    /// 442 ERR_NOTONCHANNEL.
    pub fn not_on_channel(channel: &str) -> Self {
        Reply::new(
            numeric::ERR_NOTONCHANNEL,
            &[channel],
            "You're not on that channel",
        )
    }

    /// 481 ERR_NOPRIVILEGES.
    pub fn no_privileges() -> Self {
        Reply::new(
            numeric::ERR_NOPRIVILEGES,
            &[],
            "Permission Denied - You do not have the required operator privileges",
        )
    }

    /// 482 ERR_CHANOPRIVSNEEDED.
    pub fn chanop_needed(channel: &str) -> Self {
        Reply::new(
            numeric::ERR_CHANOPRIVSNEEDED,
            &[channel],
            "You're not channel operator",
        )
    }
}

/// Lookups that answer with the spec's numeric when what a client named is not there.
pub trait Lookup {
    /// The channel `name` names, with its casefolded key (403 if there is none).
    fn channel_named(&self, name: &str) -> Result<(String, &Channel), Reply>;
    /// The user with this nick (401 if there is none).
    fn user_named(&self, nick: &str) -> Result<&User, Reply>;
}

impl Lookup for World {
    fn channel_named(&self, name: &str) -> Result<(String, &Channel), Reply> {
        let key = casefold(name);
        match self.channels.get(&key) {
            Some(channel) => Ok((key, channel)),
            None => Err(Reply::no_such_channel(name)),
        }
    }

    fn user_named(&self, nick: &str) -> Result<&User, Reply> {
        self.user_by_nick(nick)
            .ok_or_else(|| Reply::no_such_nick(nick))
    }
}

pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub session: &'a mut Session,
    pub outbound: &'a Arc<Outbound>,
}

impl Ctx<'_> {
    /// Queue bytes for this client. A failure means the connection is already closing, which its
    /// task notices on its own, so there is nothing more to do here.
    pub fn send(&self, bytes: &[u8]) {
        if let Some(captured) = self.session.labeled.borrow_mut().as_mut() {
            captured.lines.push(LabeledLine::Line(bytes.to_vec()));
            return;
        }
        let _ = self.outbound.push(bytes);
    }

    /// Queue several complete lines with one push (one lock, at most one wake). A labeled
    /// command still collects them one by one, so each can carry the batch tag.
    pub fn send_lines(&self, lines: &[u8]) {
        if let Some(captured) = self.session.labeled.borrow_mut().as_mut() {
            let each = lines
                .split_inclusive(|b| *b == b'\n')
                .map(|line| LabeledLine::Line(line.to_vec()));
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

    /// The `RPL_ISUPPORT` (005) lines: the tokens computed at start, [`isupport::PER_LINE`] a
    /// line.
    pub fn send_isupport(&self) {
        for chunk in self.shared.isupport.chunks(isupport::PER_LINE) {
            let tokens: Vec<&str> = chunk.iter().map(String::as_str).collect();
            self.numeric(
                parley_proto::numeric::RPL_ISUPPORT,
                &tokens,
                Some("are supported by this server"),
            );
        }
    }

    /// Make this connection an operator if its account is one: at once for a config admin, after
    /// asking the database otherwise, since the database may make a moderator or a plain account
    /// an admin (`parleyd users add --admin`). `asked` when OPER asked, so "no" gets its 491.
    pub fn grant_oper(&mut self, asked: bool) {
        let Some(account) = self.session.account.clone() else {
            return;
        };
        match self.shared.oper_class(&account) {
            Some(OperClass::Admin) => self.grant_oper_class(&account, OperClass::Admin),
            _ => {
                let asking = account.clone();
                self.then_async(
                    move |on| Box::pin(async move { on.shared.accounts.is_admin(&asking).await }),
                    move |ctx, admin| ctx.oper_checked(&account, asked, admin),
                )
            }
        }
    }

    /// The database's answer for [`Ctx::grant_oper`]: the higher of its word and the config's.
    fn oper_checked(
        &mut self,
        account: &str,
        asked: bool,
        admin: Result<bool, crate::store::StoreError>,
    ) {
        // Logged out or into another account meanwhile: the answer is about someone else.
        if self.session.account.as_deref() != Some(account) {
            return;
        }
        let unread = admin.is_err();
        let admin = admin.unwrap_or_else(|error| {
            tracing::warn!(%account, %error, "cannot read whether the account is an admin");
            false
        });
        let class = if admin {
            Some(OperClass::Admin)
        } else {
            self.shared.oper_class(account)
        };
        match class {
            Some(class) => self.grant_oper_class(account, class),
            // Not "you are no operator" (491): the database did not say, and a later OPER may
            // find that it is one.
            None if unread => {
                let nick = self.session.nick.clone();
                self.server_line(
                    "NOTICE",
                    &[&nick],
                    Some(
                        "Whether your account is a server operator could not be read just now; \
                         try OPER again later",
                    ),
                );
            }
            None if asked => self.numeric(
                numeric::ERR_NOOPERHOST,
                &[],
                Some("Your account is not a server operator"),
            ),
            None => {}
        }
    }

    /// Give this connection operator status of `class` (nothing if it has some already).
    pub fn grant_oper_class(&mut self, account: &str, class: OperClass) {
        let source = {
            let mut world = self.shared.world.lock();
            let Some(user) = world.users.get_mut(&self.session.id) else {
                return;
            };
            if user.oper.is_some() {
                return;
            }
            user.oper = Some(class);
            user.wallops = true;
            let source = user.source();
            world.counts.opers += 1;
            source
        };
        self.numeric(
            parley_proto::numeric::RPL_YOUREOPER,
            &[],
            Some(&format!("You are now an IRC operator ({})", class.name())),
        );
        let nick = self.session.nick.clone();
        self.send(&line(Some(&source), "MODE", &[&nick], Some("+ow")));
        if self.session.registered {
            self.replicate(|cluster| {
                let world = self.shared.world.lock();
                let me = world.users.get(&self.session.id);
                Some(Event::UserModes {
                    uid: cluster.uid_of(self.session.id),
                    invisible: me.is_some_and(|u| u.invisible),
                    oper: true,
                    bot: me.is_some_and(|u| u.bot),
                })
            });
        }
        self.audit("oper_up", account, Some(class.name()));
    }

    /// The way out for this connection's events (see [`Announcer`]).
    pub fn announcer(&self) -> Announcer<'_> {
        Announcer {
            shared: self.shared,
            actor: self.outbound,
        }
    }

    /// [`Announcer::announce`] for this connection's user. While a labeled command runs, the
    /// user's own copy (its JOIN, its NICK ...) is part of the command's response, so it goes
    /// with the other replies under the label rather than ahead of them.
    pub fn announce(
        &self,
        line: Line<'_>,
        members: &MemberList,
        event: impl FnOnce(&Cluster) -> Event,
    ) -> Announced {
        let me = self.outbound;
        let labeled = self.session.labeled.borrow().is_some();
        if !labeled || !members.iter().any(|m| Arc::ptr_eq(m, me)) {
            return self.announcer().announce(line, members, event);
        }
        if let Some(bytes) = line.bytes_for(me) {
            self.send(bytes);
        }
        let others: MemberList = Arc::new(
            members
                .iter()
                .filter(|m| !Arc::ptr_eq(m, me))
                .cloned()
                .collect(),
        );
        let mut announced = self.announcer().announce(line, &others, event);
        announced.actor_told = true;
        announced
    }

    /// [`Announcer::replicate`].
    pub fn replicate(&self, event: impl FnOnce(&Cluster) -> Option<Event>) {
        self.announcer().replicate(event)
    }

    /// [`Announcer::publisher`].
    pub fn publisher(&self, event: impl FnOnce(&Cluster) -> Event) -> Option<Publish> {
        self.announcer().publisher(event)
    }

    /// [`Announcer::publish`].
    pub fn publish(&self, announced: Announced) {
        self.announcer().publish(announced)
    }

    /// [`Announcer::announce_message`], echoed to this user if it asked for `echo-message`.
    pub fn announce_message(
        &self,
        relay: &Relay,
        members: &[Arc<Outbound>],
        event: impl FnOnce(&Cluster) -> Event,
    ) {
        let echo = self.session.caps.echo_message;
        // A labeled command's echo is its response: collected with the rest (in a cluster the
        // stream brings it back, into a slot the connection waits on).
        let labeled = self.session.labeled.borrow().is_some();
        if !(echo && labeled) {
            return self
                .announcer()
                .announce_message(relay, members, echo, event);
        }
        match crate::cluster::of(self.shared) {
            None => {
                self.announcer()
                    .announce_message(relay, members, false, event);
                self.send(relay.bytes_for(self.outbound.wire_caps()));
            }
            Some(cluster) => {
                let (slot, wait) = tokio::sync::oneshot::channel();
                if let Some(labeled) = self.session.labeled.borrow_mut().as_mut() {
                    labeled.lines.push(LabeledLine::Echo(wait));
                }
                let local = Local {
                    echo: Some(String::new()),
                    recipients: None,
                    echo_into: Some(slot),
                    sender: Some(self.outbound.clone()),
                };
                cluster.publish_to(self.shared, event(cluster), local);
            }
        }
    }

    /// [`Announced::tell_actor`], under the label while a labeled command runs: the line is
    /// then (part of) the command's response.
    pub fn tell_actor(&self, announced: &Announced, line: Line<'_>) {
        let labeled = self.session.labeled.borrow().is_some();
        if !(labeled && announced.actor.is_some() && !announced.actor_told) {
            announced.tell_actor(line);
        } else if let Some(bytes) = line.bytes_for(self.outbound) {
            self.send(bytes);
        }
    }

    /// [`Announcer::uid`] of a user of this node.
    pub fn cluster_uid(&self, id: ClientId) -> Option<Uid> {
        self.announcer().uid(id)
    }

    /// A private message went to `uid`, a user of another node: remembered until that node
    /// shows it was alive to deliver it (see `cluster::undelivered`).
    pub fn sent_to_remote(&self, uid: &str, sent: crate::cluster::undelivered::Sent) {
        if let Some(cluster) = crate::cluster::of(self.shared) {
            cluster.undelivered.remember(uid, sent);
        }
    }

    /// Send a handler's refusal.
    pub fn reply(&self, reply: &Reply) {
        match reply {
            Reply::Numeric { code, params, text } => {
                let params: Vec<&str> = params.iter().map(String::as_str).collect();
                self.numeric(code, &params, Some(text));
            }
            Reply::Fail {
                command,
                code,
                context,
                text,
            } => {
                let mut middle = vec![*command, *code];
                middle.extend(context.iter().map(String::as_str));
                self.server_line("FAIL", &middle, Some(text));
            }
        }
    }

    /// Run `work` (a store call, which blocks) on the blocking pool, off this runtime's worker
    /// threads, and then `then` with its answer, back on this connection in order with its
    /// other follow-ups. The connection runs it without knowing what it is.
    pub fn then_blocking<R: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> R + Send + 'static,
        then: impl FnOnce(&mut Ctx<'_>, R) + Send + 'static,
    ) {
        self.then_async(
            |_| Box::pin(tokio::task::spawn_blocking(work)),
            |ctx, answer| match answer {
                Ok(answer) => then(ctx, answer),
                Err(err) => tracing::error!(%err, "a blocking store call failed"),
            },
        );
    }

    /// Await `work` (a history read, a nick claim across the cluster: anything that waits
    /// without blocking a thread) and then run `then` with its answer, back on this connection
    /// in order with its other follow-ups. `work` gets the shared state and this connection's
    /// buffer through an [`Announcer`]; the connection runs it without knowing what it is.
    pub fn then_async<R: Send + 'static>(
        &mut self,
        work: impl for<'s> FnOnce(Announcer<'s>) -> BoxFuture<'s, R> + Send + 'static,
        then: impl FnOnce(&mut Ctx<'_>, R) + Send + 'static,
    ) {
        let waiting = step(move |on| {
            Box::pin(async move {
                let answer = work(on).await;
                Box::new(move |ctx: &mut Ctx<'_>| then(ctx, answer)) as Continuation
            })
        });
        self.session
            .followups
            .push_back(FollowUp::Then(Box::new(waiting)));
    }

    /// 461 unless `msg` has at least `n` parameters.
    pub fn require_params(&self, msg: &parley_proto::Message<'_>, n: usize) -> Result<(), Reply> {
        if msg.params.len() >= n {
            Ok(())
        } else {
            Err(Reply::need_more_params(msg.command))
        }
    }

    /// This connection's server-operator class, read from `world` (a caller holding the world
    /// lock passes it in), `None` if it is no operator.
    pub fn oper_class_in(&self, world: &World) -> Option<OperClass> {
        world.users.get(&self.session.id).and_then(|u| u.oper)
    }

    /// 481 unless this user is a server operator holding `permission`.
    pub fn require_oper(&self, permission: &str) -> Result<(), Reply> {
        let class = self.oper_class_in(&self.shared.world.lock());
        if self.shared.oper_can(class, permission) {
            Ok(())
        } else {
            Err(Reply::no_privileges())
        }
    }

    /// Whether this user sees secret (`+s`) channels it is not in: an operator with the
    /// `channels` permission (ergo's opers do too), whose job includes finding abuse there.
    pub fn sees_secret_channels(&self, world: &World) -> bool {
        self.shared.oper_can(self.oper_class_in(world), "channels")
    }

    /// This user's status in `channel` (442 if not a member).
    pub fn require_member(&self, channel: &Channel) -> Result<MemberStatus, Reply> {
        channel
            .status(self.session.id)
            .ok_or_else(|| Reply::not_on_channel(&channel.name))
    }

    /// 442 unless this user is in `channel` (`key` its casefolded name), 482 unless they may
    /// do what its operators do there (see `Shared::may_moderate`).
    pub fn require_op(&self, world: &World, key: &str, channel: &Channel) -> Result<(), Reply> {
        let status = self.require_member(channel)?;
        if self
            .shared
            .may_moderate(key, Some(status), self.oper_class_in(world))
        {
            Ok(())
        } else {
            Err(Reply::chanop_needed(&channel.name))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's future holds its `Session` for as long as it lasts, so its size is
    /// memory per idle connection (issue 27): what only some connections use (an open
    /// multiline batch, a label's replies, a search budget) is boxed. 608 bytes before that,
    /// 376 after, 264 once what a connection holds only for moments (`Passing`) was boxed too;
    /// the bound leaves room for a field or two, not for another inline batch.
    /// The passing state is made when needed and given back once empty, so a connection that
    /// registered with PASS or SASL holds none of it afterwards.
    #[test]
    fn the_passing_state_is_given_back_once_empty() {
        let mut session = Session::new(ClientId(1), "127.0.0.1".parse().expect("ip"), false);
        session.settle();
        assert!(session.passing.is_none());
        session.passing().pass = Some("secret".into());
        session.passing().sasl = Some(SaslState::Overlong);
        session.settle();
        assert!(session.sasl().is_some(), "kept while in use");
        session.end_sasl();
        assert!(session
            .passing
            .as_mut()
            .and_then(|p| p.pass.take())
            .is_some());
        session.settle();
        assert!(session.passing.is_none(), "given back once empty");
        session.end_sasl();
        assert!(session.take_sasl().is_none());
        assert!(session.passing.is_none(), "ending nothing makes nothing");
    }

    #[test]
    fn a_session_keeps_what_few_connections_use_out_of_line() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 288, "Session is {size} bytes");
    }

    #[test]
    fn lookups_answer_with_the_spec_numerics() {
        let mut world = World::default();
        world
            .channels
            .insert(casefold("#Rust"), Channel::new("#Rust"));
        let (key, channel) = world.channel_named("#RUST").expect("found casefolded");
        assert_eq!((key.as_str(), channel.name.as_str()), ("#rust", "#Rust"));
        assert_eq!(
            world.channel_named("#nope").err(),
            Some(Reply::new(
                numeric::ERR_NOSUCHCHANNEL,
                &["#nope"],
                "No such channel"
            ))
        );
        assert_eq!(
            world.user_named("ghost").err(),
            Some(Reply::new(
                numeric::ERR_NOSUCHNICK,
                &["ghost"],
                "No such nick/channel"
            ))
        );
    }

    /// What was queued for `out`, read the way its connection's writer reads it.
    async fn taken(out: &Outbound) -> Vec<u8> {
        out.close_with(b"");
        let mut sink = Vec::new();
        crate::outbound::run_writer(out, &mut sink).await;
        sink
    }

    #[tokio::test]
    async fn a_line_for_a_cap_reaches_only_those_who_have_it() {
        let with = Arc::new(Outbound::new(1 << 16));
        with.set_wire_caps(wire::ACCOUNT_NOTIFY);
        let without = Arc::new(Outbound::new(1 << 16));
        Line::ForCap(b":a ACCOUNT x\r\n", wire::ACCOUNT_NOTIFY)
            .send_now(&[with.clone(), without.clone()]);
        assert_eq!(taken(&with).await, b":a ACCOUNT x\r\n");
        assert!(taken(&without).await.is_empty());
    }

    #[tokio::test]
    async fn without_a_cluster_nothing_is_left_to_publish_or_to_tell_the_actor() {
        let actor = Arc::new(Outbound::new(1 << 16));
        let announced = Announced::default().then_to(Arc::new(vec![actor.clone()]));
        announced.tell_actor(Line::Bytes(b"x\r\n"));
        announced.also_now(Line::Bytes(b"y\r\n"), Some(&actor));
        assert!(announced.events.is_empty());
        assert!(taken(&actor).await.is_empty());
    }

    #[test]
    fn need_more_params_names_the_command_in_capitals() {
        assert_eq!(
            Reply::need_more_params("kick"),
            Reply::new(
                numeric::ERR_NEEDMOREPARAMS,
                &["KICK"],
                "Not enough parameters"
            )
        );
    }
}
