//! The chat as a UI renders it: buffers (the server, each channel, each private conversation)
//! with their lines, members, topics, unread and mention counts, plus the own nick, account and
//! connection state. `State` is pure and synchronous: it applies parsed `Message`s and user
//! `Action`s and answers with the protocol lines to send, so all IRC logic (CAP, SASL, REGISTER,
//! rejoin, history, /create_group's existence check) is unit-testable without a socket.
//!
//! Logins prefer SASL SCRAM-SHA-256 when the server offers it (the password never crosses the
//! wire), then PLAIN. SCRAM's key derivation (PBKDF2, about 0.1-0.3 s at the server's default
//! rounds) runs inside [`State::handle_message`], so the first login blocks its caller that long;
//! the salted password is then kept per account, salt and rounds, so reconnects skip it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use parley_proto::sasl;
use parley_proto::scram::{self, ClientExchange, ClientResponse, SaltedPassword};
use parley_proto::{casefold, numeric, write_line, Message, UserHost};

use crate::input::{help_for, is_channel, Action, InputError, COMMANDS};

/// Name of the buffer that holds server notices and replies not tied to a channel or nick.
pub const SERVER_BUFFER: &str = "server";
/// Lines kept per buffer; older ones are dropped (they can be reloaded with `/history`).
pub const MAX_LINES_PER_BUFFER: usize = 2000;
/// Lines asked for when loading history.
pub const HISTORY_BATCH: usize = 50;
/// Longest chat text put in one PRIVMSG; longer text is split, leaving room for the source
/// prefix the server adds within the 512-byte line limit.
const MAX_TEXT_BYTES: usize = 400;
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

/// Where the connection is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    Disconnected,
    Connecting,
    /// Connected, negotiating capabilities and logging in.
    Registering,
    Connected,
    /// Lost; the next attempt starts after `delay`.
    Reconnecting {
        attempt: u32,
        delay: Duration,
    },
    /// Given up, with the reason (wrong password, untrusted certificate...).
    Failed(String),
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionState::Disconnected => write!(f, "disconnected"),
            ConnectionState::Connecting => write!(f, "connecting"),
            ConnectionState::Registering => write!(f, "logging in"),
            ConnectionState::Connected => write!(f, "connected"),
            ConnectionState::Reconnecting { delay, .. } => {
                write!(f, "reconnecting in {}s", delay.as_secs().max(1))
            }
            ConnectionState::Failed(_) => write!(f, "failed"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferKind {
    Server,
    Channel,
    Query,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Message,
    Action,
    Notice,
    Join,
    Part,
    Quit,
    Kick,
    Nick,
    Topic,
    Mode,
    /// Local information: help, replies, status.
    Info,
    /// Something failed: a refusal from the server or a local mistake.
    Error,
}

/// One line of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// From the `time` tag (server-time) when present, else when it arrived.
    pub time: DateTime<Utc>,
    pub kind: LineKind,
    /// The nick that said it, for messages, actions, notices and membership changes.
    pub from: Option<String>,
    pub text: String,
    /// It mentions the own nick (or is a private message).
    pub highlight: bool,
    /// Sent by us.
    pub own: bool,
    /// Loaded from the server's history rather than received live.
    pub history: bool,
    pub msgid: Option<String>,
}

/// A channel member and their prefix modes, highest first (for example "@+").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub nick: String,
    pub prefixes: String,
    pub away: bool,
}

/// A conversation: the server, a channel or a private conversation.
#[derive(Clone, Debug)]
pub struct Buffer {
    pub name: String,
    pub kind: BufferKind,
    pub lines: VecDeque<Line>,
    /// Keyed by casefolded nick.
    pub members: BTreeMap<String, Member>,
    pub topic: Option<String>,
    pub unread: usize,
    pub mentions: usize,
    /// We are in the channel right now.
    pub joined: bool,
    /// Join it again after a reconnect.
    rejoin: bool,
    /// A NAMES reply is being collected (the next 353 does not clear the list).
    names_in_progress: bool,
}

impl Buffer {
    fn new(name: &str, kind: BufferKind) -> Buffer {
        Buffer {
            name: name.to_string(),
            kind,
            lines: VecDeque::new(),
            members: BTreeMap::new(),
            topic: None,
            unread: 0,
            mentions: 0,
            joined: false,
            rejoin: false,
            names_in_progress: false,
        }
    }

    /// Members sorted by their highest prefix (ops first), then by nick.
    pub fn sorted_members(&self, prefix_order: &str) -> Vec<&Member> {
        let rank = |m: &Member| {
            m.prefixes
                .chars()
                .next()
                .and_then(|p| prefix_order.find(p))
                .unwrap_or(usize::MAX)
        };
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then_with(|| casefold(&a.nick).cmp(&casefold(&b.nick)))
        });
        members
    }

    /// The time of the oldest line, where older history starts.
    pub fn oldest_time(&self) -> Option<DateTime<Utc>> {
        self.lines.iter().map(|l| l.time).min()
    }

    fn push(&mut self, line: Line) {
        if self.lines.len() >= MAX_LINES_PER_BUFFER {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    /// Puts a history line in time order; skips one that is already there.
    fn insert_history(&mut self, line: Line) -> bool {
        let duplicate = self.lines.iter().any(|l| match (&l.msgid, &line.msgid) {
            (Some(a), Some(b)) => a == b,
            _ => l.time == line.time && l.from == line.from && l.text == line.text,
        });
        if duplicate {
            return false;
        }
        let at = self.lines.partition_point(|l| l.time <= line.time);
        self.lines.insert(at, line);
        if self.lines.len() > MAX_LINES_PER_BUFFER {
            self.lines.pop_back();
        }
        true
    }
}

/// Capability negotiation and login, alive from connect until the welcome.
struct Negotiation {
    auth: Auth,
    offered: BTreeMap<String, String>,
    /// Waiting for the server's answer to REQ, AUTHENTICATE or REGISTER.
    waiting: bool,
    ended: bool,
    nick_attempts: u32,
    /// The nick sent with NICK at the start, before any 433 added underscores.
    asked_nick: String,
    /// Where the SASL login stands, once one started.
    sasl: Option<SaslStep>,
    /// SCRAM was tried and failed, and PLAIN is (or was) the second try.
    scram_fell_back: bool,
}

/// The steps of a SASL login.
enum SaslStep {
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
struct ScramCache {
    account: String,
    password: String,
    salt: Vec<u8>,
    iterations: u32,
    salted: SaltedPassword,
}

#[derive(Clone, Debug)]
struct Batch {
    kind: String,
    target: Option<String>,
}

/// The whole client-side world. See the module docs.
pub struct State {
    nick: String,
    wanted_nick: String,
    realname: String,
    account: Option<String>,
    connection: ConnectionState,
    secure: bool,
    server_name: Option<String>,
    network: Option<String>,
    caps: Vec<String>,
    /// ISUPPORT PREFIX: mode letters and their prefix characters, highest first.
    prefix_modes: String,
    prefix_chars: String,
    buffers: Vec<Buffer>,
    active: usize,
    negotiation: Option<Negotiation>,
    batches: HashMap<String, Batch>,
    /// Channels asked about by /create_group, in order, with "a 322 came for it".
    pending_creates: VecDeque<(String, bool)>,
    /// Buffer to focus once it appears (after a join the user asked for).
    pending_focus: Option<String>,
    broadcast_pending: bool,
    away: bool,
    fatal: Option<String>,
    /// Why the last connection attempt failed or the last connection ended.
    last_error: Option<String>,
    new_lines: Vec<(String, Line)>,
    record_new_lines: bool,
    scram_cache: Option<ScramCache>,
    /// Accounts of the nicks seen, casefolded nick -> account, learnt from `account-tag`,
    /// `extended-join`, `account-notify` and WHOIS (330); a nick missing here is a guest or
    /// not known yet.
    accounts: HashMap<String, String>,
    /// Buffers where each pending /whois was typed, by casefolded nick, oldest first.
    whois_asked: VecDeque<(String, String)>,
    /// The account's own nick, held by another connection (another device) when we came in:
    /// taken back as soon as that one quits or changes nick.
    reclaim_nick: Option<String>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("nick", &self.nick)
            .field("account", &self.account)
            .field("connection", &self.connection)
            .field("buffers", &self.buffers.len())
            .finish_non_exhaustive()
    }
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

fn irc_line(command: &str, middle: &[&str], trailing: Option<&str>) -> String {
    let mut out = Vec::new();
    write_line(&mut out, &[], None, command, middle, trailing);
    let mut line = String::from_utf8_lossy(&out).into_owned();
    line.truncate(line.trim_end_matches(['\r', '\n']).len());
    line
}

/// Splits chat text into pieces of at most `MAX_TEXT_BYTES`, at character boundaries.
fn split_text(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > MAX_TEXT_BYTES {
        let mut cut = MAX_TEXT_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        // Prefer to cut at a space so words stay whole.
        if let Some(space) = rest[..cut].rfind(' ').filter(|&s| s > MAX_TEXT_BYTES / 2) {
            cut = space + 1;
        }
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

/// Whether `text` mentions `nick` as a whole word, case-insensitively.
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let text = casefold(text);
    let nick = casefold(nick);
    let is_word = |c: char| c.is_alphanumeric() || "[]\\`_^{|}-".contains(c);
    text.match_indices(&nick).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + nick.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The colour of a name among `palette_len` colours, the same in every Parley client: FNV-1a
/// (32-bit) of the casefolded name's bytes, modulo the palette's length. Give it
/// [`State::colour_key`] (the account, else the nick).
pub fn colour_index(name: &str, palette_len: usize) -> usize {
    colour_hash(name) as usize % palette_len.max(1)
}

/// A WHOIS reply in words: `params` are the reply's parameters after our own nick, the subject
/// first. The replies whose trailing text reads on after the nick ("is an IRC operator", "is using
/// a secure connection") are the nick and that text; the others put their fields into a sentence,
/// so `330 alice alice :is logged in as` reads "alice is logged in as alice".
fn whois_line(code: &str, params: &[&str]) -> String {
    let field = |i: usize| params.get(i).copied().unwrap_or("");
    let nick = field(0);
    match code {
        "312" => format!("{nick} is connected to {} ({})", field(1), field(2)),
        "317" => {
            let idle = field(1).parse::<u64>().map(idle_words);
            let signon = field(2)
                .parse::<i64>()
                .ok()
                .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
                .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string());
            match (idle, signon) {
                (Ok(idle), Some(signon)) => {
                    format!("{nick} has been idle {idle}, signed on {signon}")
                }
                (Ok(idle), None) => format!("{nick} has been idle {idle}"),
                _ => params.join(" "),
            }
        }
        "318" => format!("End of WHOIS for {nick}"),
        "319" => format!("{nick} is on {}", field(1)),
        "330" if params.len() >= 3 => format!("{nick} is logged in as {}", field(1)),
        _ => params.join(" "),
    }
}

/// An idle time as a person says it: "42s", "5m 3s", "2h 10m", "3d 4h".
fn idle_words(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// FNV-1a (32-bit) of the casefolded name: [`colour_index`] before the modulo.
pub fn colour_hash(name: &str) -> u32 {
    casefold(name).bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
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
fn lockout_wait(server_text: &str) -> Option<Option<u64>> {
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

/// The timestamp format of the `time` tag and of CHATHISTORY: ISO 8601 UTC with milliseconds.
pub fn iso_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl State {
    pub fn new(nick: &str, realname: &str) -> State {
        State {
            nick: nick.to_string(),
            wanted_nick: nick.to_string(),
            realname: realname.to_string(),
            account: None,
            connection: ConnectionState::Disconnected,
            secure: false,
            server_name: None,
            network: None,
            caps: Vec::new(),
            prefix_modes: "ov".to_string(),
            prefix_chars: "@+".to_string(),
            buffers: vec![Buffer::new(SERVER_BUFFER, BufferKind::Server)],
            active: 0,
            negotiation: None,
            scram_cache: None,
            batches: HashMap::new(),
            pending_creates: VecDeque::new(),
            pending_focus: None,
            broadcast_pending: false,
            away: false,
            fatal: None,
            last_error: None,
            new_lines: Vec::new(),
            record_new_lines: false,
            accounts: HashMap::new(),
            whois_asked: VecDeque::new(),
            reclaim_nick: None,
        }
    }

    /// The account `nick` is logged in to, when the server said so.
    pub fn account_of(&self, nick: &str) -> Option<&str> {
        self.accounts.get(&casefold(nick)).map(String::as_str)
    }

    /// What a nick's colour is made from: its account, so one person keeps one colour across
    /// nicks and devices, else (guests) the nick. See [`colour_index`].
    pub fn colour_key<'a>(&'a self, nick: &'a str) -> &'a str {
        self.account_of(nick).unwrap_or(nick)
    }

    // ---- what a UI reads ----

    pub fn nick(&self) -> &str {
        &self.nick
    }
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
    pub fn connection(&self) -> &ConnectionState {
        &self.connection
    }
    /// The connection is TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    pub fn server_name(&self) -> Option<&str> {
        self.network.as_deref().or(self.server_name.as_deref())
    }
    /// Capabilities the server acknowledged.
    pub fn caps(&self) -> &[String] {
        &self.caps
    }
    pub fn has_cap(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }
    pub fn is_away(&self) -> bool {
        self.away
    }
    /// Prefix characters in rank order, highest first ("@+" by default).
    pub fn prefix_order(&self) -> &str {
        &self.prefix_chars
    }
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }
    pub fn active_index(&self) -> usize {
        self.active
    }
    pub fn active(&self) -> &Buffer {
        // `active` is kept a valid index by every method that removes buffers.
        &self.buffers[self.active.min(self.buffers.len() - 1)]
    }
    pub fn buffer(&self, name: &str) -> Option<&Buffer> {
        self.find(name).map(|i| &self.buffers[i])
    }

    /// Focuses a buffer and clears its unread and mention counts.
    pub fn set_active(&mut self, index: usize) {
        if index < self.buffers.len() {
            self.active = index;
            let buffer = &mut self.buffers[index];
            buffer.unread = 0;
            buffer.mentions = 0;
        }
    }

    /// Focuses a buffer by name; false if there is none.
    pub fn set_active_by_name(&mut self, name: &str) -> bool {
        match self.find(name) {
            Some(index) => {
                self.set_active(index);
                true
            }
            None => false,
        }
    }

    /// Turns on recording of every new line for [`State::take_new_lines`] (the line mode).
    pub fn record_new_lines(&mut self, on: bool) {
        self.record_new_lines = on;
    }

    /// Lines added since the last call, with the name of their buffer.
    pub fn take_new_lines(&mut self) -> Vec<(String, Line)> {
        std::mem::take(&mut self.new_lines)
    }

    /// A reason to stop reconnecting (a refused login), once.
    pub fn take_fatal(&mut self) -> Option<String> {
        self.fatal.take()
    }

    /// Why the last connection attempt failed or the last connection was lost, kept until the
    /// next successful login: a login dialog shows it while the client retries.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// A connection attempt failed before a socket was open (refused, unreachable, timed out);
    /// the client will retry.
    pub fn on_connect_failed(&mut self, reason: &str) {
        self.push_server(
            LineKind::Error,
            format!("cannot connect: {reason}"),
            Utc::now(),
        );
        self.last_error = Some(reason.to_string());
    }

    /// Adds a local line (an input error, a client notice) to the active buffer.
    pub fn add_local(&mut self, kind: LineKind, text: String) {
        let line = self.own_line(LineKind::Info, text);
        let line = Line { kind, ..line };
        let active = self.active;
        self.push(active, line);
    }

    /// Focuses `channel` once the server confirms the join (the last `--join` channel, say),
    /// whatever other channel the server joins meanwhile.
    pub fn focus_when_joined(&mut self, channel: &str) {
        self.pending_focus = Some(channel.to_string());
    }

    /// The channel a join was asked for and neither confirmed nor refused yet.
    pub fn awaiting_join(&self) -> Option<&str> {
        self.pending_focus.as_deref()
    }

    /// Channels to join on (re)connect: `autojoin` adds to those the user was in.
    pub fn want_channel(&mut self, channel: &str) {
        let index = self.buffer_index(channel, BufferKind::Channel);
        self.buffers[index].rejoin = true;
    }

    // ---- connection life ----

    pub fn set_connection(&mut self, connection: ConnectionState) {
        if let ConnectionState::Failed(reason) = &connection {
            self.push_server(LineKind::Error, reason.clone(), Utc::now());
            self.last_error = Some(reason.clone());
        }
        if connection == ConnectionState::Connected {
            self.last_error = None;
        }
        self.connection = connection;
    }

    /// A socket is open: start registration. Returns the lines to send first.
    pub fn on_connected(&mut self, secure: bool, auth: Auth) -> Vec<String> {
        self.secure = secure;
        self.connection = ConnectionState::Registering;
        self.caps.clear();
        self.batches.clear();
        self.pending_creates.clear();
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

    /// The socket closed. Channels are remembered for the rejoin.
    pub fn on_disconnected(&mut self, reason: &str) {
        self.negotiation = None;
        self.last_error = Some(reason.to_string());
        for buffer in &mut self.buffers {
            if buffer.joined {
                buffer.joined = false;
                buffer.members.clear();
            }
        }
        self.push_server(
            LineKind::Error,
            format!("disconnected: {reason}"),
            Utc::now(),
        );
        if !matches!(self.connection, ConnectionState::Failed(_)) {
            self.connection = ConnectionState::Disconnected;
        }
    }

    // ---- incoming ----

    /// Parses and applies one raw line; a line that does not parse is ignored.
    pub fn handle_line(&mut self, line: &str) -> Vec<String> {
        match Message::parse(line) {
            Ok(msg) => self.handle_message(&msg, Utc::now()),
            Err(error) => {
                tracing::debug!(%error, "unparsable line from the server ignored");
                Vec::new()
            }
        }
    }

    /// Applies one message received at `now`; returns the lines to send in answer.
    pub fn handle_message(&mut self, msg: &Message<'_>, now: DateTime<Utc>) -> Vec<String> {
        let time = msg
            .tags
            .get("time")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now);
        let history_target = msg
            .tags
            .get("batch")
            .and_then(|id| self.batches.get(id.as_ref()))
            .filter(|b| b.kind.ends_with("chathistory"))
            .map(|b| b.target.clone());
        let ctx = Incoming {
            time,
            history: history_target.is_some(),
            msgid: msg.tags.get("msgid").map(|m| m.into_owned()),
        };
        let source = msg.source.map(UserHost::parse);
        let from = source.map(|s| s.nick.to_string());
        let command = msg.command.to_ascii_uppercase();
        if let (Some(nick), Some(account)) = (&from, msg.tags.get("account")) {
            if history_target.is_none() {
                self.accounts.insert(casefold(nick), account.into_owned());
            }
        }
        let mut out = Vec::new();
        match command.as_str() {
            "PING" => out.push(irc_line("PONG", &[], msg.param(0))),
            "CAP" => self.on_cap(msg, &mut out),
            "AUTHENTICATE" => self.on_authenticate(msg, &mut out),
            "REGISTER" => self.on_register(msg, &mut out, &ctx),
            "FAIL" | "WARN" | "NOTE" => self.on_standard_reply(&command, msg, &mut out, &ctx),
            "BATCH" => self.on_batch(msg),
            "PRIVMSG" | "NOTICE" => self.on_message(&command, msg, from.as_deref(), &ctx),
            "JOIN" => self.on_join(msg, from.as_deref(), &ctx, &mut out),
            "PART" => self.on_part(msg, from.as_deref(), &ctx),
            "KICK" => self.on_kick(msg, from.as_deref(), &ctx),
            "QUIT" | "NICK" => {
                if command == "QUIT" {
                    self.on_quit(msg, from.as_deref(), &ctx);
                } else {
                    self.on_nick(msg, from.as_deref(), &ctx);
                }
                let freed = from
                    .as_deref()
                    .zip(self.reclaim_nick.as_deref())
                    .is_some_and(|(gone, wanted)| {
                        casefold(gone) == casefold(wanted) && !self.is_me(wanted)
                    });
                if freed {
                    if let Some(wanted) = self.reclaim_nick.take() {
                        out.push(irc_line("NICK", &[&wanted], None));
                    }
                }
            }
            "TOPIC" => {
                if let (Some(channel), Some(topic)) = (msg.param(0), msg.param(1)) {
                    let who = from.clone().unwrap_or_default();
                    let index = self.buffer_index(channel, BufferKind::Channel);
                    self.buffers[index].topic = Some(topic.to_string());
                    self.push(
                        index,
                        ctx.line(
                            LineKind::Topic,
                            from,
                            format!("{who} changed the topic to: {topic}"),
                        ),
                    );
                }
            }
            "MODE" => self.on_mode(msg, from.as_deref(), &ctx),
            "AWAY" => {
                let away = msg.param(0).is_some();
                if let Some(nick) = &from {
                    let key = casefold(nick);
                    for buffer in &mut self.buffers {
                        if let Some(member) = buffer.members.get_mut(&key) {
                            member.away = away;
                        }
                    }
                }
            }
            "INVITE" => {
                if let Some(channel) = msg.param(1) {
                    let who = from.clone().unwrap_or_default();
                    let text = if msg.param(0).is_some_and(|t| self.is_me(t)) {
                        format!("{who} invites you to {channel} (type /join {channel})")
                    } else {
                        format!("{who} invited {} to {channel}", msg.param(0).unwrap_or("?"))
                    };
                    let active = self.active;
                    self.push(active, ctx.line(LineKind::Info, from, text));
                }
            }
            "ERROR" => {
                let text = msg.param(0).unwrap_or("closing the connection").to_string();
                self.push_server(LineKind::Error, format!("server: {text}"), time);
            }
            "ACCOUNT" => {
                // account-notify: `*` is a logout.
                if let (Some(nick), Some(account)) = (&from, msg.param(0)) {
                    self.learn_account(nick, Some(account));
                }
            }
            "WALLOPS" => {
                let who = from.clone().unwrap_or_default();
                let text = format!("wallops from {who}: {}", msg.param(0).unwrap_or(""));
                let line = ctx.line(LineKind::Notice, from.clone(), text);
                self.push_server_and_mirror(line);
            }
            "CHGHOST" | "TAGMSG" | "SETNAME" => {}
            _ if command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit()) => {
                self.on_numeric(&command, msg, &ctx, &mut out)
            }
            _ => {
                let text = format!("{} {}", msg.command, msg.params.join(" "));
                self.push_server(LineKind::Info, text, time);
            }
        }
        out
    }

    fn on_cap(&mut self, msg: &Message<'_>, out: &mut Vec<String>) {
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
    fn guest_refused(&mut self, out: &mut Vec<String>) {
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

    fn end_cap(&mut self, out: &mut Vec<String>) {
        if let Some(negotiation) = self.negotiation.as_mut() {
            if !negotiation.ended {
                negotiation.ended = true;
                negotiation.waiting = false;
                out.push(irc_line("CAP", &["END"], None));
            }
        }
    }

    fn fail(&mut self, reason: String) {
        self.push_server(LineKind::Error, reason.clone(), Utc::now());
        self.connection = ConnectionState::Failed(reason.clone());
        self.fatal = Some(reason);
    }

    fn on_authenticate(&mut self, msg: &Message<'_>, out: &mut Vec<String>) {
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
    fn fall_back_to_plain(&mut self, out: &mut Vec<String>) -> bool {
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

    fn on_register(&mut self, msg: &Message<'_>, out: &mut Vec<String>, ctx: &Incoming) {
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

    fn on_standard_reply(
        &mut self,
        kind: &str,
        msg: &Message<'_>,
        out: &mut Vec<String>,
        ctx: &Incoming,
    ) {
        let command = msg.param(0).unwrap_or("*");
        let code = msg.param(1).unwrap_or("");
        let text = msg.params.last().copied().unwrap_or("");
        let registering = self.negotiation.as_ref().is_some_and(|n| !n.ended);
        let before_welcome = self.negotiation.is_some();
        if kind == "FAIL" && code == "ACCOUNT_REQUIRED" && before_welcome {
            self.guest_refused(out);
            return;
        }
        if kind == "FAIL" && command == "REGISTER" && registering {
            let account = msg.param(2).unwrap_or("");
            self.fail(format!(
                "registration of {account:?} refused ({code}): {text}"
            ));
            out.push(irc_line("QUIT", &[], None));
            return;
        }
        let line_kind = if kind == "FAIL" {
            LineKind::Error
        } else {
            LineKind::Info
        };
        let active = self.active;
        self.push(
            active,
            ctx.line(
                line_kind,
                None,
                format!(
                    "{command} {}: {text}",
                    code.to_ascii_lowercase().replace('_', " ")
                ),
            ),
        );
    }

    fn on_batch(&mut self, msg: &Message<'_>) {
        let Some(reference) = msg.param(0) else {
            return;
        };
        if let Some(id) = reference.strip_prefix('+') {
            self.batches.insert(
                id.to_string(),
                Batch {
                    kind: msg.param(1).unwrap_or("").to_string(),
                    target: msg.param(2).map(str::to_string),
                },
            );
        } else if let Some(id) = reference.strip_prefix('-') {
            self.batches.remove(id);
        }
    }

    fn on_message(&mut self, command: &str, msg: &Message<'_>, from: Option<&str>, ctx: &Incoming) {
        let (Some(target), Some(text)) = (msg.param(0), msg.param(1)) else {
            return;
        };
        let from_server =
            from.is_none_or(|f| f.contains('.') && !msg.source.is_some_and(|s| s.contains('!')));
        let own = from.is_some_and(|f| self.is_me(f));
        let mut kind = if command == "NOTICE" {
            LineKind::Notice
        } else {
            LineKind::Message
        };
        let mut body = text.to_string();
        if let Some(ctcp) = text.strip_prefix('\x01') {
            let ctcp = ctcp.strip_suffix('\x01').unwrap_or(ctcp);
            match ctcp.split_once(' ') {
                Some(("ACTION", action)) => {
                    kind = LineKind::Action;
                    body = action.to_string();
                }
                _ if ctcp == "ACTION" => {
                    kind = LineKind::Action;
                    body = String::new();
                }
                _ => {
                    // Other CTCP requests (VERSION, PING...) are shown, never answered.
                    kind = LineKind::Info;
                    body = format!("CTCP {ctcp} from {}", from.unwrap_or("?"));
                }
            }
        }
        let index = if target.starts_with('$') {
            0
        } else if is_channel(target) || target.starts_with(['@', '+']) && is_channel(&target[1..]) {
            let channel = target.trim_start_matches(['@', '+', '%', '~', '&']);
            let channel = if is_channel(channel) { channel } else { target };
            self.buffer_index(channel, BufferKind::Channel)
        } else if own {
            self.buffer_index(target, BufferKind::Query)
        } else if from_server || target == "*" {
            0
        } else {
            match from {
                Some(nick) => self.buffer_index(nick, BufferKind::Query),
                None => 0,
            }
        };
        let private = self.buffers[index].kind == BufferKind::Query;
        let highlight = !own
            && kind != LineKind::Info
            && (private || target.starts_with('$') || mentions(&body, &self.nick));
        let mut line = ctx.line(kind, from.map(str::to_string), body);
        line.own = own;
        line.highlight = highlight;
        if target.starts_with('$') && kind != LineKind::Info {
            line.text = format!("[broadcast] {}", line.text);
        }
        let for_everyone = index == 0 && !own && (target.starts_with('$') || from_server);
        if for_everyone && self.connection == ConnectionState::Connected {
            self.push_server_and_mirror(line);
        } else {
            self.add_line(index, line);
        }
    }

    fn on_join(
        &mut self,
        msg: &Message<'_>,
        from: Option<&str>,
        ctx: &Incoming,
        out: &mut Vec<String>,
    ) {
        let (Some(channel), Some(nick)) = (msg.param(0), from) else {
            return;
        };
        let index = self.buffer_index(channel, BufferKind::Channel);
        if self.is_me(nick) {
            let buffer = &mut self.buffers[index];
            buffer.joined = true;
            buffer.rejoin = true;
            buffer.members.clear();
            let name = buffer.name.clone();
            // The channel the user asked for wins; a join the server made (its default
            // channel) takes the focus only from the server buffer and only when the user is not
            // waiting for another channel, so typed text never lands in a channel not chosen.
            let asked = self
                .pending_focus
                .as_deref()
                .is_some_and(|f| casefold(f) == casefold(&name));
            if asked {
                self.pending_focus = None;
                self.set_active(index);
            } else if self.active == 0 && self.pending_focus.is_none() {
                self.set_active(index);
            }
            if self.history_cap().is_some() {
                out.push(irc_line(
                    "CHATHISTORY",
                    &["LATEST", &name, "*", &HISTORY_BATCH.to_string()],
                    None,
                ));
            }
        }
        if self.has_cap("extended-join") {
            self.learn_account(nick, msg.param(1));
        }
        let buffer = &mut self.buffers[index];
        buffer.members.insert(
            casefold(nick),
            Member {
                nick: nick.to_string(),
                prefixes: String::new(),
                away: false,
            },
        );
        let name = buffer.name.clone();
        let text = format!("{nick} joined {name}");
        self.push(
            index,
            ctx.line(LineKind::Join, Some(nick.to_string()), text),
        );
    }

    fn on_part(&mut self, msg: &Message<'_>, from: Option<&str>, ctx: &Incoming) {
        let (Some(channel), Some(nick)) = (msg.param(0), from) else {
            return;
        };
        let Some(index) = self.find(channel) else {
            return;
        };
        let reason = msg.param(1).map(|r| format!(" ({r})")).unwrap_or_default();
        let name = self.buffers[index].name.clone();
        if self.is_me(nick) {
            // Leaving is a choice: the channel leaves the list and is not rejoined.
            self.remove_buffer(index);
            self.push_server(LineKind::Part, format!("you left {name}{reason}"), ctx.time);
            return;
        }
        let text = format!("{nick} left {name}{reason}");
        self.push(
            index,
            ctx.line(LineKind::Part, Some(nick.to_string()), text),
        );
        self.buffers[index].members.remove(&casefold(nick));
    }

    fn on_kick(&mut self, msg: &Message<'_>, from: Option<&str>, ctx: &Incoming) {
        let (Some(channel), Some(victim)) = (msg.param(0), msg.param(1)) else {
            return;
        };
        let Some(index) = self.find(channel) else {
            return;
        };
        let by = from.unwrap_or("?");
        let reason = msg.param(2).map(|r| format!(" ({r})")).unwrap_or_default();
        let me = self.is_me(victim);
        let text = if me {
            format!("you were kicked from {channel} by {by}{reason}")
        } else {
            format!("{victim} was kicked by {by}{reason}")
        };
        let mut line = ctx.line(LineKind::Kick, from.map(str::to_string), text);
        line.highlight = me;
        self.add_line(index, line);
        let buffer = &mut self.buffers[index];
        if me {
            buffer.joined = false;
            buffer.rejoin = false;
            buffer.members.clear();
        } else {
            buffer.members.remove(&casefold(victim));
        }
    }

    fn on_quit(&mut self, msg: &Message<'_>, from: Option<&str>, ctx: &Incoming) {
        let Some(nick) = from else {
            return;
        };
        let key = casefold(nick);
        self.accounts.remove(&key);
        let reason = msg.param(0).map(|r| format!(" ({r})")).unwrap_or_default();
        for index in 0..self.buffers.len() {
            let buffer = &mut self.buffers[index];
            let present = buffer.members.remove(&key).is_some()
                || (buffer.kind == BufferKind::Query && casefold(&buffer.name) == key);
            if present {
                self.push(
                    index,
                    ctx.line(
                        LineKind::Quit,
                        Some(nick.to_string()),
                        format!("{nick} quit{reason}"),
                    ),
                );
            }
        }
    }

    fn on_nick(&mut self, msg: &Message<'_>, from: Option<&str>, ctx: &Incoming) {
        let (Some(old), Some(new)) = (from, msg.param(0)) else {
            return;
        };
        let me = self.is_me(old);
        if me {
            self.nick = new.to_string();
            self.wanted_nick = new.to_string();
        }
        let (old_key, new_key) = (casefold(old), casefold(new));
        match self.accounts.remove(&old_key) {
            Some(account) => self.accounts.insert(new_key.clone(), account),
            None => self.accounts.remove(&new_key),
        };
        let text = if me {
            format!("you are now known as {new}")
        } else {
            format!("{old} is now known as {new}")
        };
        for index in 0..self.buffers.len() {
            let buffer = &mut self.buffers[index];
            let mut present = me && buffer.kind == BufferKind::Server;
            if let Some(mut member) = buffer.members.remove(&old_key) {
                member.nick = new.to_string();
                buffer.members.insert(new_key.clone(), member);
                present = true;
            }
            if buffer.kind == BufferKind::Query && casefold(&buffer.name) == old_key {
                buffer.name = new.to_string();
                present = true;
            }
            if present {
                self.push(
                    index,
                    ctx.line(LineKind::Nick, Some(old.to_string()), text.clone()),
                );
            }
        }
    }

    fn on_mode(&mut self, msg: &Message<'_>, from: Option<&str>, ctx: &Incoming) {
        let Some(target) = msg.param(0) else {
            return;
        };
        let changes = msg.params[1..].join(" ");
        let who = from.unwrap_or("server");
        if !is_channel(target) {
            self.push_server(
                LineKind::Mode,
                format!("{who} sets mode {changes} on {target}"),
                ctx.time,
            );
            return;
        }
        let index = self.buffer_index(target, BufferKind::Channel);
        let mut args = msg.params.iter().skip(2);
        let mut adding = true;
        for c in msg.param(1).unwrap_or("").chars() {
            match c {
                '+' => adding = true,
                '-' => adding = false,
                _ => {
                    if let Some(rank) = self.prefix_modes.find(c) {
                        let Some(nick) = args.next() else { break };
                        let prefix = self.prefix_chars.chars().nth(rank).unwrap_or('@');
                        let order = self.prefix_chars.clone();
                        if let Some(member) = self.buffers[index].members.get_mut(&casefold(nick)) {
                            member.prefixes.retain(|p| p != prefix);
                            if adding {
                                member.prefixes.push(prefix);
                                let mut chars: Vec<char> = member.prefixes.chars().collect();
                                chars.sort_by_key(|p| order.find(*p).unwrap_or(usize::MAX));
                                member.prefixes = chars.into_iter().collect();
                            }
                        }
                    } else if "beIk".contains(c) || (c == 'l' && adding) {
                        args.next();
                    }
                }
            }
        }
        self.push(
            index,
            ctx.line(
                LineKind::Mode,
                from.map(str::to_string),
                format!("{who} sets mode {changes}"),
            ),
        );
    }

    fn on_numeric(&mut self, code: &str, msg: &Message<'_>, ctx: &Incoming, out: &mut Vec<String>) {
        let text = msg.params.last().copied().unwrap_or("").to_string();
        let arg = |i| msg.param(i).unwrap_or("");
        match code {
            numeric::RPL_WELCOME => {
                if let Some(nick) = msg.param(0) {
                    self.nick = nick.to_string();
                }
                let asked = self.negotiation.as_ref().map(|n| n.asked_nick.clone());
                if let Some(account) = self.account.clone() {
                    // Our own lines and member entry get our account's colour from the start.
                    let nick = self.nick.clone();
                    self.learn_account(&nick, Some(&account));
                }
                self.server_name = msg.source.map(str::to_string);
                self.negotiation = None;
                self.connection = ConnectionState::Connected;
                self.last_error = None;
                self.push_server_and_mirror(ctx.line(LineKind::Info, None, text));
                self.reclaim_nick = asked.clone().filter(|a| {
                    !self.is_me(a)
                        && self
                            .account
                            .as_deref()
                            .is_some_and(|account| casefold(account) == casefold(a))
                });
                if let Some(asked) = asked.filter(|a| !self.is_me(a)) {
                    // Most often the account is online on another device, which keeps the nick.
                    let text = if self.reclaim_nick.is_some() {
                        format!(
                            "connected as {} because {asked} is in use by another of your \
                             devices; {asked} is taken back as soon as that one leaves",
                            self.nick
                        )
                    } else {
                        format!(
                            "connected as {} because {asked} is in use; /nick {asked} takes it \
                             once it is free",
                            self.nick
                        )
                    };
                    let active = self.active;
                    self.push(active, ctx.line(LineKind::Info, None, text.clone()));
                    if active != 0 {
                        self.push_server(LineKind::Info, text, ctx.time);
                    }
                }
                for buffer in &self.buffers {
                    if buffer.kind == BufferKind::Channel && buffer.rejoin && !buffer.joined {
                        out.push(irc_line("JOIN", &[&buffer.name], None));
                    }
                }
                if self.away {
                    out.push(irc_line("AWAY", &[], Some("away")));
                }
            }
            numeric::RPL_ISUPPORT => {
                for token in &msg.params[1..msg.params.len().saturating_sub(1)] {
                    if let Some(value) = token.strip_prefix("PREFIX=(") {
                        if let Some((modes, chars)) = value.split_once(')') {
                            if modes.len() == chars.len() && !modes.is_empty() {
                                self.prefix_modes = modes.to_string();
                                self.prefix_chars = chars.to_string();
                            }
                        }
                    } else if let Some(network) = token.strip_prefix("NETWORK=") {
                        self.network = Some(network.to_string());
                    }
                }
            }
            numeric::RPL_LOGGEDIN => {
                self.account = msg.param(2).map(str::to_string);
                self.push_server(LineKind::Info, text, ctx.time);
            }
            numeric::RPL_SASLSUCCESS => self.end_cap(out),
            numeric::ERR_SASLFAIL | numeric::ERR_SASLTOOLONG | numeric::ERR_NICKLOCKED => {
                if code == numeric::ERR_SASLFAIL
                    && lockout_wait(&text).is_none()
                    && self.fall_back_to_plain(out)
                {
                    return;
                }
                self.fail(login_refusal(&text));
                out.push(irc_line("QUIT", &[], None));
            }
            numeric::ERR_SASLABORTED | numeric::ERR_SASLALREADY => {
                let aborted = self
                    .negotiation
                    .as_ref()
                    .is_some_and(|n| matches!(n.sasl, Some(SaslStep::ScramAborted)));
                if !(aborted && self.fall_back_to_plain(out)) {
                    self.end_cap(out);
                }
            }
            numeric::ERR_PASSWDMISMATCH => self.fail(login_refusal(&text)),
            numeric::ERR_YOUREBANNEDCREEP => {
                self.fail(format!("The server refused the connection: {text}"));
            }
            numeric::ERR_NICKNAMEINUSE | numeric::ERR_ERRONEUSNICKNAME
                if self.connection == ConnectionState::Registering =>
            {
                let attempts = self.negotiation.as_ref().map_or(0, |n| n.nick_attempts);
                if attempts >= 5 || code == numeric::ERR_ERRONEUSNICKNAME {
                    self.fail(format!("nick {:?} refused: {text}", arg(1)));
                    out.push(irc_line("QUIT", &[], None));
                } else {
                    if let Some(n) = self.negotiation.as_mut() {
                        n.nick_attempts += 1;
                    }
                    self.nick.push('_');
                    out.push(irc_line("NICK", &[&self.nick], None));
                }
            }
            numeric::RPL_TOPIC => {
                let index = self.buffer_index(arg(1), BufferKind::Channel);
                self.buffers[index].topic = Some(text.clone());
                self.push(
                    index,
                    ctx.line(LineKind::Topic, None, format!("topic: {text}")),
                );
            }
            numeric::RPL_NOTOPIC => {
                if let Some(index) = self.find(arg(1)) {
                    self.buffers[index].topic = None;
                    self.push(
                        index,
                        ctx.line(LineKind::Topic, None, "no topic is set".into()),
                    );
                }
            }
            numeric::RPL_NAMREPLY => {
                let index = self.buffer_index(arg(2), BufferKind::Channel);
                let prefixes = self.prefix_chars.clone();
                let buffer = &mut self.buffers[index];
                if !buffer.names_in_progress {
                    buffer.members.clear();
                    buffer.names_in_progress = true;
                }
                for entry in text.split(' ').filter(|e| !e.is_empty()) {
                    let nick_start = entry.find(|c| !prefixes.contains(c)).unwrap_or(entry.len());
                    let (modes, rest) = entry.split_at(nick_start);
                    let nick = UserHost::parse(rest).nick;
                    if nick.is_empty() {
                        continue;
                    }
                    buffer.members.insert(
                        casefold(nick),
                        Member {
                            nick: nick.to_string(),
                            prefixes: modes.to_string(),
                            away: false,
                        },
                    );
                }
            }
            numeric::RPL_ENDOFNAMES => {
                if let Some(index) = self.find(arg(1)) {
                    self.buffers[index].names_in_progress = false;
                }
            }
            numeric::RPL_LIST => {
                let channel = arg(1);
                if let Some((pending, seen)) = self.pending_creates.front_mut() {
                    if casefold(pending) == casefold(channel) {
                        *seen = true;
                        return;
                    }
                }
                self.push_server(
                    LineKind::Info,
                    format!("{channel} ({} users): {text}", arg(2)),
                    ctx.time,
                );
            }
            numeric::RPL_LISTSTART => {}
            numeric::RPL_LISTEND => {
                if let Some((channel, exists)) = self.pending_creates.pop_front() {
                    let active = self.active;
                    if exists {
                        self.push(active, ctx.line(
                            LineKind::Error,
                            None,
                            format!("group {channel} already exists; use /join_group {channel} to join it"),
                        ));
                    } else {
                        self.pending_focus = Some(channel.clone());
                        out.push(irc_line("JOIN", &[&channel], None));
                    }
                }
            }
            numeric::RPL_NOWAWAY | numeric::RPL_UNAWAY => {
                self.away = code == numeric::RPL_NOWAWAY;
                let active = self.active;
                self.push(active, ctx.line(LineKind::Info, None, text));
            }
            numeric::RPL_AWAY => {
                let nick = arg(1);
                let index = self.find(nick).unwrap_or(self.active);
                self.push(
                    index,
                    ctx.line(LineKind::Info, None, format!("{nick} is away: {text}")),
                );
            }
            numeric::RPL_WHOISUSER => {
                let line = format!("{} is {}@{} ({text})", arg(1), arg(2), arg(3));
                let index = self.whois_buffer(arg(1), false);
                self.push(index, ctx.line(LineKind::Info, None, line));
            }
            "312" | "313" | "317" | "318" | "319" | "320" | "330" | "338" | "378" | "379"
            | "671" | "276" => {
                if code == "330" {
                    self.learn_account(arg(1), Some(arg(2)));
                }
                let details = whois_line(code, &msg.params[1..]);
                let index = self.whois_buffer(arg(1), code == "318");
                self.push(index, ctx.line(LineKind::Info, None, details));
            }
            numeric::RPL_CREATIONTIME
            | numeric::RPL_TOPICWHOTIME
            | numeric::RPL_ENDOFWHO
            | numeric::RPL_MYINFO
            | numeric::RPL_INVITING => {}
            _ if code.starts_with('4') || code.starts_with('5') || code == numeric::ERR_NOPRIVS => {
                self.on_error_numeric(code, msg, ctx);
            }
            _ if matches!(
                code,
                "314" | "369" | "352" | "341" | "324" | "221" | "302" | "303" | "391" | "351"
            ) =>
            {
                let details = msg.params[1..].join(" ");
                let active = self.active;
                self.push(active, ctx.line(LineKind::Info, None, details));
            }
            _ => {
                let details = if msg.params.len() > 2 {
                    msg.params[1..].join(" ")
                } else {
                    text
                };
                self.push_server(LineKind::Info, details, ctx.time);
            }
        }
    }

    fn on_error_numeric(&mut self, code: &str, msg: &Message<'_>, ctx: &Incoming) {
        let text = msg.params.last().copied().unwrap_or("");
        let subject = if msg.params.len() > 2 {
            msg.param(1)
        } else {
            None
        };
        let broadcast_refused = self.broadcast_pending
            && (code == numeric::ERR_NOPRIVILEGES
                || code == numeric::ERR_NOPRIVS
                || subject.is_some_and(|s| s.starts_with('$')));
        if broadcast_refused {
            self.broadcast_pending = false;
            let active = self.active;
            let mut line = ctx.line(
                LineKind::Error,
                None,
                format!("broadcast refused by the server: {text}"),
            );
            line.highlight = true;
            self.push(active, line);
            return;
        }
        let refused_join = subject.is_some_and(|s| {
            self.pending_focus
                .as_deref()
                .is_some_and(|f| casefold(f) == casefold(s))
        });
        if refused_join {
            // The channel asked for will not come: a later join may take the focus again.
            self.pending_focus = None;
        }
        let whois = code == numeric::ERR_NOSUCHNICK
            && subject.is_some_and(|s| self.whois_asked.iter().any(|(n, _)| *n == casefold(s)));
        let index = match subject {
            Some(nick) if whois => self.whois_buffer(nick, true),
            _ => subject.and_then(|s| self.find(s)).unwrap_or(self.active),
        };
        let detail = match subject {
            Some(subject) => format!("{subject}: {text}"),
            None => text.to_string(),
        };
        self.push(
            index,
            ctx.line(LineKind::Error, None, format!("error: {detail}")),
        );
    }

    // ---- outgoing ----

    /// Turns a user action into lines to send (and local lines such as help or the own message
    /// when the server does not echo). Local mistakes come back as errors.
    pub fn act(&mut self, action: Action) -> Result<Vec<String>, InputError> {
        let local = matches!(
            action,
            Action::Help(_) | Action::Close | Action::Query { text: None, .. }
        );
        if !local && self.connection != ConnectionState::Connected {
            return Err(InputError::NotConnected);
        }
        let mut out = Vec::new();
        match action {
            Action::Say(text) => {
                let target = self.active_target("type /join <#channel> or /query <nick> first; the server buffer takes only commands")?;
                self.say(&target, &text, false, &mut out);
            }
            Action::Me(text) => {
                let target =
                    self.active_target("/me works in a channel or a private conversation")?;
                self.say(&target, &text, true, &mut out);
            }
            Action::Msg { target, text }
            | Action::GroupMsg {
                group: target,
                text,
            } => {
                if !is_channel(&target) {
                    let index = self.buffer_index(&target, BufferKind::Query);
                    self.set_active(index);
                }
                self.say(&target, &text, false, &mut out);
            }
            Action::Query { nick, text } => {
                let exists = self.find(&nick).is_some();
                let index = self.buffer_index(&nick, BufferKind::Query);
                self.set_active(index);
                if !exists
                    && self.connection == ConnectionState::Connected
                    && self.history_cap().is_some()
                {
                    out.push(irc_line(
                        "CHATHISTORY",
                        &["LATEST", &nick, "*", &HISTORY_BATCH.to_string()],
                        None,
                    ));
                }
                if let Some(text) = text {
                    if self.connection != ConnectionState::Connected {
                        return Err(InputError::NotConnected);
                    }
                    self.say(&nick, &text, false, &mut out);
                }
            }
            Action::Join { channel, key } => {
                self.pending_focus = Some(channel.clone());
                match key {
                    Some(key) => out.push(irc_line("JOIN", &[&channel, &key], None)),
                    None => out.push(irc_line("JOIN", &[&channel], None)),
                }
            }
            Action::JoinGroup(channel) => {
                self.pending_focus = Some(channel.clone());
                out.push(irc_line("JOIN", &[&channel], None));
            }
            Action::CreateGroup(channel) => {
                self.pending_creates.push_back((channel.clone(), false));
                out.push(irc_line("LIST", &[&channel], None));
            }
            Action::Part { channel, reason } => {
                let channel = match channel {
                    Some(c) => c,
                    None => self.active_channel(
                        "/part needs a channel: /part #channel, or use it in a channel",
                    )?,
                };
                out.push(irc_line("PART", &[&channel], reason.as_deref()));
            }
            Action::LeaveGroup(channel) => out.push(irc_line("PART", &[&channel], None)),
            Action::Nick(nick) => {
                self.wanted_nick = nick.clone();
                out.push(irc_line("NICK", &[&nick], None));
            }
            Action::Topic { channel, topic } => {
                let channel = match channel {
                    Some(c) => c,
                    None => {
                        self.active_channel("/topic needs a channel: /topic #channel [text]")?
                    }
                };
                match topic {
                    Some(topic) => out.push(irc_line("TOPIC", &[&channel], Some(&topic))),
                    None => out.push(irc_line("TOPIC", &[&channel], None)),
                }
            }
            Action::Kick {
                channel,
                nick,
                reason,
            } => {
                let channel = match channel {
                    Some(c) => c,
                    None => self.active_channel("/kick needs a channel: /kick #channel nick")?,
                };
                out.push(irc_line("KICK", &[&channel, &nick], reason.as_deref()));
            }
            Action::Ban { channel, mask } => {
                let channel = match channel {
                    Some(c) => c,
                    None => self.active_channel("/ban needs a channel: /ban #channel mask")?,
                };
                let mask = if mask.contains(['!', '@', '*']) {
                    mask
                } else {
                    format!("{mask}!*@*")
                };
                out.push(irc_line("MODE", &[&channel, "+b", &mask], None));
            }
            Action::Invite { nick, channel } => {
                let channel = match channel {
                    Some(c) => c,
                    None => {
                        self.active_channel("/invite needs a channel: /invite nick #channel")?
                    }
                };
                out.push(irc_line("INVITE", &[&nick, &channel], None));
            }
            Action::Whois(nick) => {
                let asked_in = self.active().name.clone();
                self.whois_asked.push_back((casefold(&nick), asked_in));
                // A server that never answers must not make the list grow without bound.
                if self.whois_asked.len() > 16 {
                    self.whois_asked.pop_front();
                }
                out.push(irc_line("WHOIS", &[&nick], None));
            }
            Action::Away(Some(message)) => out.push(irc_line("AWAY", &[], Some(&message))),
            Action::Away(None) => out.push(irc_line("AWAY", &[], None)),
            Action::Quit(reason) => out.push(irc_line(
                "QUIT",
                &[],
                Some(reason.as_deref().unwrap_or("Leaving")),
            )),
            Action::Broadcast(text) => {
                self.broadcast_pending = true;
                for piece in split_text(&text) {
                    out.push(irc_line("PRIVMSG", &["$*"], Some(piece)));
                }
                if !self.has_cap("echo-message") {
                    let mut line = self.own_line(LineKind::Message, format!("[broadcast] {text}"));
                    line.own = true;
                    self.add_line(0, line);
                }
            }
            Action::History => {
                let buffer = self.active();
                if buffer.kind == BufferKind::Server {
                    return Err(InputError::NoTarget(
                        "history is kept for channels and private conversations",
                    ));
                }
                if self.history_cap().is_none() {
                    return Err(InputError::NoTarget(
                        "this server keeps no history (no draft/chathistory)",
                    ));
                }
                let name = buffer.name.clone();
                let bound = match buffer.oldest_time() {
                    Some(time) => format!("timestamp={}", iso_time(time)),
                    None => "*".to_string(),
                };
                let sub = if bound == "*" { "LATEST" } else { "BEFORE" };
                out.push(irc_line(
                    "CHATHISTORY",
                    &[sub, &name, &bound, &HISTORY_BATCH.to_string()],
                    None,
                ));
            }
            Action::Close => {
                let index = self.active;
                if index == 0 {
                    return Err(InputError::NoTarget(
                        "the server buffer cannot be closed; /quit to leave",
                    ));
                }
                let buffer = &self.buffers[index];
                if buffer.kind == BufferKind::Channel && buffer.joined {
                    out.push(irc_line("PART", &[&buffer.name], None));
                }
                self.remove_buffer(index);
            }
            Action::Help(topic) => self.help(topic.as_deref()),
            Action::Raw(line) => out.push(line),
        }
        Ok(out)
    }

    fn help(&mut self, topic: Option<&str>) {
        let lines: Vec<String> = match topic {
            Some(topic) => match help_for(topic) {
                Some((usage, about)) => vec![format!("{usage}  -  {about}")],
                None => vec![format!("no command /{topic}; /help lists them all")],
            },
            None => {
                let mut lines =
                    vec!["commands (text without '/' goes to this buffer):".to_string()];
                lines.extend(
                    COMMANDS
                        .iter()
                        .map(|(_, usage, about)| format!("  {usage:<34} {about}")),
                );
                lines
            }
        };
        let active = self.active;
        for text in lines {
            let line = self.own_line(LineKind::Info, text);
            self.push(active, line);
        }
    }

    fn say(&mut self, target: &str, text: &str, action: bool, out: &mut Vec<String>) {
        for piece in split_text(text) {
            let body = if action {
                format!("\x01ACTION {piece}\x01")
            } else {
                piece.to_string()
            };
            out.push(irc_line("PRIVMSG", &[target], Some(&body)));
        }
        if !self.has_cap("echo-message") {
            let kind = if action {
                LineKind::Action
            } else {
                LineKind::Message
            };
            let index = if is_channel(target) {
                self.buffer_index(target, BufferKind::Channel)
            } else {
                self.buffer_index(target, BufferKind::Query)
            };
            let mut line = self.own_line(kind, text.to_string());
            line.own = true;
            self.add_line(index, line);
        }
    }

    fn own_line(&self, kind: LineKind, text: String) -> Line {
        Line {
            time: Utc::now(),
            kind,
            from: (kind != LineKind::Info).then(|| self.nick.clone()),
            text,
            highlight: false,
            own: false,
            history: false,
            msgid: None,
        }
    }

    fn active_target(&self, why: &'static str) -> Result<String, InputError> {
        let buffer = self.active();
        match buffer.kind {
            BufferKind::Server => Err(InputError::NoTarget(why)),
            _ => Ok(buffer.name.clone()),
        }
    }

    fn active_channel(&self, why: &'static str) -> Result<String, InputError> {
        let buffer = self.active();
        match buffer.kind {
            BufferKind::Channel => Ok(buffer.name.clone()),
            _ => Err(InputError::NoTarget(why)),
        }
    }

    // ---- helpers ----

    fn history_cap(&self) -> Option<&'static str> {
        if self.has_cap("draft/chathistory") {
            Some("draft/chathistory")
        } else if self.has_cap("chathistory") {
            Some("chathistory")
        } else {
            None
        }
    }

    fn is_me(&self, nick: &str) -> bool {
        casefold(nick) == casefold(&self.nick)
    }

    fn find(&self, name: &str) -> Option<usize> {
        let key = casefold(name);
        self.buffers.iter().position(|b| casefold(&b.name) == key)
    }

    /// Drops a buffer (never the server's), keeping the focus on the same buffer, or on the
    /// one before it when it was the one dropped.
    fn remove_buffer(&mut self, index: usize) {
        if index == 0 || index >= self.buffers.len() {
            return;
        }
        self.buffers.remove(index);
        if self.active == index {
            self.set_active(index - 1);
        } else if self.active > index {
            self.active -= 1;
        }
    }

    /// The buffer with this name, created if missing.
    fn buffer_index(&mut self, name: &str, kind: BufferKind) -> usize {
        if let Some(index) = self.find(name) {
            return index;
        }
        self.buffers.push(Buffer::new(name, kind));
        self.buffers.len() - 1
    }

    /// Where a WHOIS reply about `nick` goes: the buffer the /whois was typed in (while it
    /// still exists), else the one on screen. `end` (318) closes that question.
    fn whois_buffer(&mut self, nick: &str, end: bool) -> usize {
        let key = casefold(nick);
        let at = self.whois_asked.iter().position(|(n, _)| *n == key);
        let asked_in = match (at, end) {
            (Some(at), true) => self.whois_asked.remove(at).map(|(_, b)| b),
            (Some(at), false) => self.whois_asked.get(at).map(|(_, b)| b.clone()),
            (None, _) => None,
        };
        asked_in
            .and_then(|name| self.find(&name))
            .unwrap_or(self.active)
    }

    /// Records (or forgets, for `None` or `*`) the account of a nick.
    fn learn_account(&mut self, nick: &str, account: Option<&str>) {
        match account.filter(|a| !a.is_empty() && *a != "*") {
            Some(account) => self.accounts.insert(casefold(nick), account.to_string()),
            None => self.accounts.remove(&casefold(nick)),
        };
    }

    /// A line for the server buffer that the user should see wherever they are (the welcome,
    /// a broadcast, WALLOPS, a server notice): also shown in the conversation on screen. Only
    /// the server buffer's copy counts as unread and goes to the line mode's output.
    fn push_server_and_mirror(&mut self, line: Line) {
        let active = self.active;
        self.add_line(0, line.clone());
        if active != 0 {
            if let Some(buffer) = self.buffers.get_mut(active) {
                buffer.push(line);
            }
        }
    }

    fn push_server(&mut self, kind: LineKind, text: String, time: DateTime<Utc>) {
        let line = Line {
            time,
            kind,
            from: None,
            text,
            highlight: false,
            own: false,
            history: false,
            msgid: None,
        };
        self.push(0, line);
    }

    fn push(&mut self, index: usize, line: Line) {
        self.add_line(index, line);
    }

    /// Adds a line, counting it as unread (and as a mention) where that applies.
    fn add_line(&mut self, index: usize, line: Line) {
        let active = index == self.active;
        let buffer = &mut self.buffers[index];
        if line.history {
            if !buffer.insert_history(line.clone()) {
                return;
            }
        } else {
            let counts = matches!(
                line.kind,
                LineKind::Message | LineKind::Action | LineKind::Notice
            ) || line.highlight;
            if !active && !line.own && counts {
                buffer.unread += 1;
                if line.highlight {
                    buffer.mentions += 1;
                }
            }
            buffer.push(line.clone());
        }
        if self.record_new_lines {
            self.new_lines
                .push((self.buffers[index].name.clone(), line));
        }
    }
}

/// What every line made from one incoming message shares.
struct Incoming {
    time: DateTime<Utc>,
    history: bool,
    msgid: Option<String>,
}

impl Incoming {
    fn line(&self, kind: LineKind, from: Option<String>, text: String) -> Line {
        Line {
            time: self.time,
            kind,
            from,
            text,
            highlight: false,
            own: false,
            history: self.history,
            msgid: self.msgid.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_proto::sasl::CHUNK_LEN as SASL_CHUNK;

    fn state() -> State {
        State::new("me", "Me")
    }

    /// Feeds lines as if received, returning everything the state wanted to send.
    fn feed(state: &mut State, lines: &[&str]) -> Vec<String> {
        lines.iter().flat_map(|l| state.handle_line(l)).collect()
    }

    /// A state past registration with the given caps acknowledged.
    fn connected(caps: &str) -> State {
        let mut s = state();
        s.on_connected(false, Auth::Guest);
        feed(
            &mut s,
            &[
                &format!(":srv CAP * LS :{caps}"),
                &format!(":srv CAP me ACK :{caps}"),
                ":srv 001 me :Welcome",
                ":srv 005 me PREFIX=(ov)@+ NETWORK=Test :are supported",
            ],
        );
        s
    }

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
    fn whois_replies_read_as_sentences() {
        let params = |s: &'static str| s.split(' ').collect::<Vec<_>>();
        assert_eq!(
            whois_line("312", &params("alice parley.local Parley")),
            "alice is connected to parley.local (Parley)"
        );
        assert_eq!(
            whois_line("317", &params("alice 303 1796519920 seconds")),
            "alice has been idle 5m 3s, signed on 2026-12-06 01:18 UTC"
        );
        assert_eq!(
            whois_line("319", &["alice", "#lobby @#club"]),
            "alice is on #lobby @#club"
        );
        assert_eq!(
            whois_line("671", &params("alice is using a secure connection")),
            "alice is using a secure connection"
        );
        // A malformed reply is shown as it came, not dropped.
        assert_eq!(whois_line("317", &params("alice soon")), "alice soon");
        assert_eq!(idle_words(0), "0s");
        assert_eq!(idle_words(7_800), "2h 10m");
        assert_eq!(idle_words(273_600), "3d 4h");
    }

    #[test]
    fn whois_answers_where_it_was_asked() {
        fn texts(s: &State, name: &str) -> Vec<String> {
            s.buffer(name)
                .expect("buffer")
                .lines
                .iter()
                .map(|l| l.text.clone())
                .collect()
        }
        let mut s = connected("");
        feed(&mut s, &[":me!u@h JOIN #a", ":me!u@h JOIN #b"]);
        s.set_active_by_name("#a");
        assert_eq!(
            s.act(Action::Whois("Bob".into())).expect("whois"),
            ["WHOIS Bob"]
        );
        s.set_active_by_name("#b");
        feed(
            &mut s,
            &[
                ":srv 311 me bob ~bob host * :Bob",
                ":srv 330 me bob bobby :is logged in as",
                ":srv 318 me bob :End of /WHOIS list",
            ],
        );
        assert!(
            texts(&s, "#a")
                .iter()
                .any(|t| t.starts_with("bob is ~bob@host")),
            "{:?}",
            texts(&s, "#a")
        );
        assert!(texts(&s, "#a").contains(&"bob is logged in as bobby".to_string()));
        assert!(texts(&s, "#a").contains(&"End of WHOIS for bob".to_string()));
        assert!(!texts(&s, "#b").iter().any(|t| t.contains("bob")));
        assert_eq!(s.account_of("BOB"), Some("bobby"));
        // An unknown nick's refusal goes there too.
        s.set_active_by_name("#a");
        s.act(Action::Whois("ghost".into())).expect("whois");
        s.set_active_by_name("#b");
        feed(&mut s, &[":srv 401 me ghost :No such nick/channel"]);
        assert!(texts(&s, "#a")
            .iter()
            .any(|t| t.contains("ghost: No such nick")));
    }

    #[test]
    fn welcome_and_broadcasts_show_in_the_conversation_too() {
        let mut s = connected("");
        feed(&mut s, &[":me!u@h JOIN #a"]);
        s.set_active_by_name("#a");
        feed(
            &mut s,
            &[
                ":op!o@h PRIVMSG $* :maintenance at noon",
                ":parley.local NOTICE me :the server restarts soon",
                ":op!o@h WALLOPS :ops meeting",
            ],
        );
        let server: Vec<&str> = s.buffers()[0]
            .lines
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        let here: Vec<&str> = s
            .buffer("#a")
            .expect("#a")
            .lines
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        for text in [
            "[broadcast] maintenance at noon",
            "the server restarts soon",
        ] {
            assert!(server.contains(&text), "{server:?}");
            assert!(here.contains(&text), "{here:?}");
        }
        assert!(here.iter().any(|t| t.contains("ops meeting")), "{here:?}");
        // A reconnect's welcome lands where the user is.
        s.on_disconnected("gone");
        s.on_connected(false, Auth::Guest);
        feed(&mut s, &[":srv 001 me :Welcome back to Parley"]);
        assert!(s
            .buffer("#a")
            .expect("#a")
            .lines
            .iter()
            .any(|l| l.text == "Welcome back to Parley"));
    }

    #[test]
    fn a_left_channel_leaves_the_list_and_is_not_rejoined() {
        let mut s = connected("");
        feed(
            &mut s,
            &[":me!u@h JOIN #a", ":me!u@h JOIN #b", ":me!u@h JOIN #c"],
        );
        s.set_active_by_name("#c");
        feed(&mut s, &[":me!u@h PART #b :bye"]);
        assert!(s.buffer("#b").is_none());
        assert_eq!(s.active().name, "#c", "the focus stays where it was");
        feed(&mut s, &[":me!u@h PART #c"]);
        assert_eq!(s.active().name, "#a");
        assert!(s.buffers()[0]
            .lines
            .iter()
            .any(|l| l.text == "you left #b (bye)"));
        s.on_disconnected("gone");
        s.on_connected(false, Auth::Guest);
        let out = feed(&mut s, &[":srv 001 me :Welcome"]);
        assert!(out.contains(&"JOIN #a".to_string()), "{out:?}");
        assert!(
            !out.iter().any(|l| l.contains("#b") || l.contains("#c")),
            "{out:?}"
        );
    }

    #[test]
    fn colours_follow_the_account() {
        assert_eq!(colour_hash("a"), 0xe40c_292c, "FNV-1a 32-bit");
        assert_eq!(colour_hash("Alice"), colour_hash("alice"), "casefolded");
        let mut s = connected("account-tag extended-join account-notify");
        feed(
            &mut s,
            &[
                ":alice!u@h JOIN #a alice :Alice",
                ":guest!u@h JOIN #a * :Guest",
                "@account=alice :alice_phone!u@h PRIVMSG #a :from my phone",
            ],
        );
        assert_eq!(s.colour_key("alice"), "alice");
        assert_eq!(
            s.colour_key("alice_phone"),
            "alice",
            "another device, one colour"
        );
        assert_eq!(s.colour_key("guest"), "guest", "guests by nick");
        feed(&mut s, &[":guest!u@h ACCOUNT gina"]);
        assert_eq!(s.colour_key("guest"), "gina");
        feed(&mut s, &[":guest!u@h NICK gina_"]);
        assert_eq!(s.colour_key("gina_"), "gina");
        feed(&mut s, &[":gina_!u@h ACCOUNT *", ":alice!u@h QUIT :bye"]);
        assert_eq!(s.colour_key("gina_"), "gina_");
        assert_eq!(s.colour_key("alice"), "alice");
        assert_eq!(s.account_of("alice"), None);

        let mut own = State::new("me_", "Me");
        own.on_connected(false, Auth::Guest);
        feed(
            &mut own,
            &[
                ":srv 900 me_ me_!u@h mine :You are now logged in as mine",
                ":srv 001 me_ :Welcome",
            ],
        );
        assert_eq!(own.colour_key("me_"), "mine", "the own nick too");
        assert_eq!(
            colour_index(s.colour_key("alice_phone"), 12),
            colour_index("ALICE", 12)
        );
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

    #[test]
    fn a_second_device_takes_the_accounts_nick_back_when_it_is_free() {
        let mut s = state();
        s.on_connected(false, Auth::Guest);
        feed(&mut s, &[":srv 433 * me :Nickname is already in use"]);
        feed(
            &mut s,
            &[
                ":srv 900 me_ me_!u@h me :You are now logged in as me",
                ":srv 001 me_ :Welcome",
            ],
        );
        assert!(feed(&mut s, &[":other!u@h QUIT :bye"]).is_empty());
        assert_eq!(feed(&mut s, &[":me!u@h QUIT :phone off"]), ["NICK me"]);
        feed(&mut s, &[":me_!u@h NICK me"]);
        assert_eq!(s.nick(), "me");
        assert!(feed(&mut s, &[":x!u@h NICK me_"]).is_empty(), "asked once");
    }

    #[test]
    fn the_channel_asked_for_keeps_the_focus_over_a_default_channel() {
        // The server joins everyone to #lobby right after the welcome; the user asked for #club.
        let mut s = connected("");
        s.act(Action::Join {
            channel: "#club".into(),
            key: None,
        })
        .expect("join");
        feed(&mut s, &[":me!u@h JOIN #lobby"]);
        assert_eq!(
            s.active().name,
            SERVER_BUFFER,
            "#lobby does not take the focus"
        );
        feed(&mut s, &[":me!u@h JOIN #club"]);
        assert_eq!(s.active().name, "#club");
        let out = s.act(Action::Say("hello club".into())).expect("say");
        assert_eq!(out, ["PRIVMSG #club :hello club"]);

        // A refused join does not hold the focus back for good.
        let mut s = connected("");
        s.act(Action::Join {
            channel: "#closed".into(),
            key: None,
        })
        .expect("join");
        feed(&mut s, &[":srv 473 me #closed :Cannot join channel (+i)"]);
        feed(&mut s, &[":me!u@h JOIN #lobby"]);
        assert_eq!(s.active().name, "#lobby");

        // --join: the last channel named is focused once joined, whatever came first.
        let mut s = state();
        s.want_channel("#club");
        s.focus_when_joined("#club");
        s.on_connected(false, Auth::Guest);
        let out = feed(&mut s, &[":srv 001 me :Welcome", ":me!u@h JOIN #lobby"]);
        assert!(out.contains(&"JOIN #club".to_string()), "{out:?}");
        feed(&mut s, &[":me!u@h JOIN #club"]);
        assert_eq!(s.active().name, "#club");
    }

    #[test]
    fn ping_is_answered() {
        let mut s = state();
        assert_eq!(feed(&mut s, &["PING :abc def"]), ["PONG :abc def"]);
    }

    #[test]
    fn join_names_topic_and_modes() {
        let mut s = connected("multi-prefix");
        let out = feed(
            &mut s,
            &[
                ":me!u@h JOIN #rust",
                ":srv 332 me #rust :Rust talk",
                ":srv 353 me = #rust :@+op +voice me",
                ":srv 366 me #rust :End",
                ":bob!u@h JOIN #rust",
                ":op!u@h MODE #rust +o bob",
                ":op!u@h MODE #rust -v voice",
            ],
        );
        assert!(out.is_empty(), "no history cap, nothing to ask: {out:?}");
        let b = s.buffer("#RUST").expect("channel buffer");
        assert!(b.joined);
        assert_eq!(b.topic.as_deref(), Some("Rust talk"));
        let members: Vec<(String, String)> = b
            .sorted_members("@+")
            .iter()
            .map(|m| (m.prefixes.clone(), m.nick.clone()))
            .collect();
        assert_eq!(
            members,
            [
                ("@".into(), "bob".into()),
                ("@+".into(), "op".into()),
                ("".into(), "me".into()),
                ("".into(), "voice".into())
            ]
        );
        assert_eq!(
            s.active().name,
            "#rust",
            "a join from the server buffer focuses the channel"
        );
        feed(
            &mut s,
            &[
                ":bob!u@h PART #rust :bye",
                ":op!u@h QUIT :gone",
                ":x!u@h NICK y",
            ],
        );
        let b = s.buffer("#rust").expect("buffer");
        assert_eq!(b.members.len(), 2);
        assert!(b
            .lines
            .iter()
            .any(|l| l.kind == LineKind::Quit && l.text == "op quit (gone)"));
    }

    #[test]
    fn messages_unread_mentions_and_queries() {
        let mut s = connected("server-time");
        feed(&mut s, &[":me!u@h JOIN #a", ":me!u@h JOIN #b"]);
        assert!(s.set_active_by_name("#a"));
        feed(
            &mut s,
            &[
                "@time=2024-05-01T10:00:00.000Z :bob!u@h PRIVMSG #b :hello all",
                ":bob!u@h PRIVMSG #b :hey ME, look",
                ":bob!u@h PRIVMSG #b :meme is not me-ntion",
                ":bob!u@h PRIVMSG #a :seen here",
                ":carol!u@h PRIVMSG me :psst",
                ":carol!u@h PRIVMSG me :\x01ACTION waves\x01",
            ],
        );
        let b = s.buffer("#b").expect("#b");
        assert_eq!((b.unread, b.mentions), (3, 1));
        let first = b
            .lines
            .iter()
            .find(|l| l.text == "hello all")
            .expect("bob's line");
        assert_eq!(
            first.time.to_rfc3339(),
            "2024-05-01T10:00:00+00:00",
            "server-time is used"
        );
        assert_eq!(
            s.buffer("#a").map(|b| b.unread),
            Some(0),
            "the active buffer counts nothing"
        );
        let q = s.buffer("carol").expect("a private message opens a query");
        assert_eq!(q.kind, BufferKind::Query);
        assert_eq!((q.unread, q.mentions), (2, 2));
        assert_eq!(q.lines[1].kind, LineKind::Action);
        assert_eq!(q.lines[1].text, "waves");
        let index = s.buffers().iter().position(|b| b.name == "#b").expect("#b");
        s.set_active(index);
        assert_eq!(s.active().unread, 0);
        assert_eq!(s.active().mentions, 0);
    }

    #[test]
    fn own_messages_are_local_without_echo_and_not_doubled_with_it() {
        let mut s = connected("server-time");
        feed(&mut s, &[":me!u@h JOIN #a"]);
        let out = s.act(Action::Say("hi".into())).expect("in a channel");
        assert_eq!(out, ["PRIVMSG #a :hi"]);
        assert_eq!(
            s.active().lines.back().map(|l| (l.own, l.text.as_str())),
            Some((true, "hi"))
        );

        let mut s = connected("echo-message");
        feed(&mut s, &[":me!u@h JOIN #a"]);
        let before = s.active().lines.len();
        s.act(Action::Say("hi".into())).expect("in a channel");
        assert_eq!(s.active().lines.len(), before, "waits for the echo");
        feed(&mut s, &[":me!u@h PRIVMSG #a :hi"]);
        assert_eq!(s.active().lines.len(), before + 1);
        assert_eq!(s.active().unread, 0);
        feed(&mut s, &[":me!u@h PRIVMSG bob :private"]);
        assert_eq!(
            s.buffer("bob").map(|b| b.lines.len()),
            Some(1),
            "echoed PM goes to the peer's buffer"
        );
    }

    #[test]
    fn actions_need_context_and_connection() {
        let mut s = state();
        assert_eq!(
            s.act(Action::Say("x".into())),
            Err(InputError::NotConnected)
        );
        let mut s = connected("");
        assert!(matches!(
            s.act(Action::Say("x".into())),
            Err(InputError::NoTarget(_))
        ));
        assert!(matches!(
            s.act(Action::Part {
                channel: None,
                reason: None
            }),
            Err(InputError::NoTarget(_))
        ));
        assert_eq!(
            s.act(Action::Broadcast("hi all".into())),
            Ok(vec!["PRIVMSG $* :hi all".to_string()])
        );
        assert_eq!(
            s.act(Action::Ban {
                channel: Some("#a".into()),
                mask: "bob".into()
            }),
            Ok(vec!["MODE #a +b bob!*@*".to_string()])
        );
        assert_eq!(
            s.act(Action::Quit(None)),
            Ok(vec!["QUIT :Leaving".to_string()])
        );
        s.act(Action::Help(None)).expect("help is local");
        assert!(s
            .active()
            .lines
            .iter()
            .any(|l| l.text.contains("/create_group <name>")));
    }

    #[test]
    fn broadcast_refusal_is_shown_clearly() {
        let mut s = connected("");
        s.act(Action::Broadcast("hello".into())).expect("connected");
        feed(
            &mut s,
            &[":srv 481 me :Permission Denied- You're not an IRC operator"],
        );
        let last = s.active().lines.back().expect("a line");
        assert_eq!(last.kind, LineKind::Error);
        assert!(
            last.text.starts_with("broadcast refused by the server"),
            "{}",
            last.text
        );
    }

    #[test]
    fn long_text_is_split_at_char_boundaries() {
        let mut s = connected("");
        feed(&mut s, &[":me!u@h JOIN #a"]);
        let text = "é".repeat(500);
        let out = s.act(Action::Say(text.clone())).expect("sent");
        assert_eq!(out.len(), 3);
        let joined: String = out
            .iter()
            .map(|l| l.trim_start_matches("PRIVMSG #a :"))
            .collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn create_group_checks_the_list_first() {
        let mut s = connected("");
        assert_eq!(
            s.act(Action::CreateGroup("#new".into())),
            Ok(vec!["LIST #new".to_string()])
        );
        let out = feed(
            &mut s,
            &[
                ":srv 321 me Channel :Users Name",
                ":srv 323 me :End of /LIST",
            ],
        );
        assert_eq!(out, ["JOIN #new"]);

        s.act(Action::CreateGroup("#old".into()))
            .expect("connected");
        let out = feed(
            &mut s,
            &[":srv 322 me #old 3 :topic", ":srv 323 me :End of /LIST"],
        );
        assert!(out.is_empty());
        let last = s.active().lines.back().expect("a line");
        assert_eq!(last.kind, LineKind::Error);
        assert!(last.text.contains("#old already exists"), "{}", last.text);
    }

    #[test]
    fn history_batches_fill_in_order_without_unread() {
        let mut s = connected("draft/chathistory batch server-time message-tags");
        let out = feed(&mut s, &[":me!u@h JOIN #a"]);
        assert_eq!(out, ["CHATHISTORY LATEST #a * 50"]);
        s.set_active(0);
        feed(
            &mut s,
            &[
                ":srv BATCH +h1 chathistory #a",
                "@batch=h1;time=2024-01-01T00:00:02.000Z;msgid=m2 :bob!u@h PRIVMSG #a :second",
                "@batch=h1;time=2024-01-01T00:00:01.000Z;msgid=m1 :bob!u@h PRIVMSG #a :first",
                ":srv BATCH -h1",
                // The same line again (a reconnect's LATEST) is not shown twice.
                ":srv BATCH +h2 chathistory #a",
                "@batch=h2;time=2024-01-01T00:00:01.000Z;msgid=m1 :bob!u@h PRIVMSG #a :first",
                ":srv BATCH -h2",
            ],
        );
        let b = s.buffer("#a").expect("#a");
        let texts: Vec<&str> = b.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts[..2], ["first", "second"]);
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert_eq!(b.unread, 0, "history is not unread");
        let index = s.buffers().iter().position(|b| b.name == "#a").expect("#a");
        s.set_active(index);
        assert_eq!(
            s.act(Action::History),
            Ok(vec![
                "CHATHISTORY BEFORE #a timestamp=2024-01-01T00:00:01.000Z 50".to_string()
            ])
        );
    }

    #[test]
    fn reconnect_rejoins_channels_still_wanted() {
        let mut s = connected("");
        feed(
            &mut s,
            &[
                ":me!u@h JOIN #keep",
                ":me!u@h JOIN #gone",
                ":me!u@h PART #gone",
            ],
        );
        s.on_disconnected("test");
        assert!(!s.buffer("#keep").expect("kept").joined);
        s.on_connected(false, Auth::Guest);
        let out = feed(&mut s, &[":srv CAP * LS :", ":srv 001 me :Welcome back"]);
        assert_eq!(out, ["CAP END", "JOIN #keep"]);
    }

    #[test]
    fn kick_and_errors_land_in_the_right_buffer() {
        let mut s = connected("");
        feed(
            &mut s,
            &[
                ":me!u@h JOIN #a",
                ":op!u@h KICK #a me :behave",
                ":srv 404 me #a :Cannot send to channel",
            ],
        );
        let b = s.buffer("#a").expect("#a");
        assert!(!b.joined);
        assert!(b
            .lines
            .iter()
            .any(|l| l.text == "you were kicked from #a by op (behave)"));
        assert!(b
            .lines
            .iter()
            .any(|l| l.kind == LineKind::Error && l.text == "error: #a: Cannot send to channel"));
    }

    #[test]
    fn mention_matching() {
        assert!(mentions("hey Me!", "me"));
        assert!(mentions("me: hi", "me"));
        assert!(!mentions("meme", "me"));
        assert!(!mentions("some_me", "me"));
    }
}
