//! The chat as a UI renders it: buffers (the server, each channel, each private conversation)
//! with their lines, members, topics, unread and mention counts, plus the own nick, account and
//! connection state. `State` is pure and synchronous: it applies parsed `Message`s and user
//! `Action`s and answers with the protocol lines to send, so all IRC logic (CAP, SASL, REGISTER,
//! rejoin, history, /create_group's existence check) is unit-testable without a socket.
//!
//! This module holds the model and the bookkeeping every part shares (finding, creating and
//! filling buffers); its children are the three ways the model changes, each an `impl State`:
//! [`negotiation`] (CAP, SASL and REGISTER until the welcome), [`incoming`] (lines from the
//! server) and [`actions`] (what the user typed, turned into lines to send). The IRCv3 extras a
//! modern chat shows live beside them: [`typing`] (who is typing, and our own notices),
//! [`reactions`] (replies and reactions per message), [`monitor`] (who of the private
//! conversations is online) and [`read_marker`] (what the account read on any device).

mod actions;
mod e2e;
mod incoming;
mod monitor;
mod negotiation;
mod reactions;
mod read_marker;
mod search;
mod typing;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use parley_proto::{casefold, write_line};

use e2e::E2eState;
pub use e2e::E2eStatus;
use incoming::Batch;
use monitor::Monitor;
pub use negotiation::{
    is_login_refusal, login_refusal, Auth, ACCOUNT_REQUIRED, LOGIN_REFUSED, WANTED_CAPS,
};
use negotiation::{Negotiation, ScramCache};
pub use reactions::Reaction;
use search::Search;
pub use search::{
    SearchHit, SearchQuery, SearchResults, SearchStatus, MAX_SEARCH_HITS, MAX_SEARCH_TEXT,
    SEARCH_CAPS, SEARCH_PAGE,
};
use typing::{OutgoingTyping, Typist};

/// Name of the buffer that holds server notices and replies not tied to a channel or nick.
pub const SERVER_BUFFER: &str = "server";
/// Lines kept per buffer; older ones are dropped (they can be reloaded with `/history`).
pub const MAX_LINES_PER_BUFFER: usize = 2000;
/// Lines asked for when loading history.
pub const HISTORY_BATCH: usize = 50;

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
    /// The msgid of the message this one answers (`+draft/reply`).
    pub reply_to: Option<String>,
    /// Reactions to this message (`+draft/react`), in the order they first came.
    pub reactions: Vec<Reaction>,
}

impl Line {
    /// A message, action or notice (or anything that highlights): what unread counts.
    fn counts_as_unread(&self) -> bool {
        matches!(
            self.kind,
            LineKind::Message | LineKind::Action | LineKind::Notice
        ) || self.highlight
    }
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
    /// Who is typing here, by casefolded nick (`+typing`); see [`Buffer::typing`].
    typists: BTreeMap<String, Typist>,
    /// A private conversation's peer is online (`Some(true)`) or not, from MONITOR; `None`
    /// when the server has no MONITOR or has not said yet.
    pub online: Option<bool>,
    /// The time of the last message the account read here, on any device
    /// (`draft/read-marker`); `None` when the server keeps none.
    pub read_marker: Option<DateTime<Utc>>,
    /// The server time of the newest message here: what a MARKREAD names.
    last_message_time: Option<DateTime<Utc>>,
    /// Reactions to messages not loaded (yet), by msgid: applied when the message comes
    /// (older history loaded later). Bounded by [`reactions::MAX_ORPHANS`].
    orphan_reactions: VecDeque<(String, String, String)>,
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
            typists: BTreeMap::new(),
            online: None,
            read_marker: None,
            last_message_time: None,
            orphan_reactions: VecDeque::new(),
        }
    }

    /// The line with this msgid, if it is loaded.
    pub fn line_by_msgid(&self, msgid: &str) -> Option<&Line> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.msgid.as_deref() == Some(msgid))
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
    /// Lines wanted by changes that answer nothing themselves (a buffer opened or focused, a
    /// nick renamed): sent with the next answer or [`State::tick`].
    outbox: Vec<String>,
    /// Our own typing notices per target, throttled as the spec asks.
    typing_out: OutgoingTyping,
    /// The server's MONITOR support and what we asked it to watch.
    monitor: Monitor,
    /// Buffers read (focused, or a message arrived while focused) and up to when, whose
    /// MARKREAD is not sent yet.
    read_pending: Vec<(String, DateTime<Utc>)>,
    /// The current server-side search and its results (`soju.im/search`).
    search: Search,
    /// End-to-end encrypted private messages: this device, its store, pending sends.
    e2e: E2eState,
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

fn irc_line(command: &str, middle: &[&str], trailing: Option<&str>) -> String {
    let mut out = Vec::new();
    write_line(&mut out, &[], None, command, middle, trailing);
    let mut line = String::from_utf8_lossy(&out).into_owned();
    line.truncate(line.trim_end_matches(['\r', '\n']).len());
    line
}

/// A line with client tags (`+typing`, `+draft/reply`...), escaped as message-tags asks.
fn irc_tagged(
    tags: &[(&str, &str)],
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) -> String {
    let tags: Vec<(&str, Option<&str>)> = tags.iter().map(|(k, v)| (*k, Some(*v))).collect();
    let mut out = Vec::new();
    write_line(&mut out, &tags, None, command, middle, trailing);
    let mut line = String::from_utf8_lossy(&out).into_owned();
    line.truncate(line.trim_end_matches(['\r', '\n']).len());
    line
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

/// FNV-1a (32-bit) of the casefolded name: [`colour_index`] before the modulo.
pub fn colour_hash(name: &str) -> u32 {
    casefold(name).bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
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
            outbox: Vec::new(),
            typing_out: OutgoingTyping::default(),
            monitor: Monitor::default(),
            read_pending: Vec::new(),
            search: Search::default(),
            e2e: E2eState::default(),
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

    /// Focuses a buffer and clears its unread and mention counts; with `draft/read-marker`
    /// the other devices learn it was read at the next [`State::tick`].
    pub fn set_active(&mut self, index: usize) {
        if index < self.buffers.len() {
            self.active = index;
            let buffer = &mut self.buffers[index];
            buffer.unread = 0;
            buffer.mentions = 0;
            let name = buffer.name.clone();
            self.note_read(&name);
        }
    }

    /// Time passes: sends what waited for it (typing `paused` after 6 s idle, a throttled
    /// typing notice, read markers). The client calls it about once a second.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<String> {
        if self.connection != ConnectionState::Connected {
            return Vec::new();
        }
        let mut out = std::mem::take(&mut self.outbox);
        self.typing_tick(now, &mut out);
        self.flush_read_markers(&mut out);
        out
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

    fn fail(&mut self, reason: String) {
        self.push_server(LineKind::Error, reason.clone(), Utc::now());
        self.connection = ConnectionState::Failed(reason.clone());
        self.fatal = Some(reason);
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
        if kind == BufferKind::Query {
            self.query_opened(name);
        }
        self.buffers.len() - 1
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
            reply_to: None,
            reactions: Vec::new(),
        };
        self.push(0, line);
    }

    fn push(&mut self, index: usize, line: Line) {
        self.add_line(index, line);
    }

    /// Adds a line, counting it as unread (and as a mention) where that applies.
    fn add_line(&mut self, index: usize, mut line: Line) {
        let active = index == self.active;
        let buffer = &mut self.buffers[index];
        if let Some(msgid) = line.msgid.clone() {
            reactions::adopt_orphans(buffer, &msgid, &mut line);
        }
        let counts = line.counts_as_unread();
        // History the account has not read on any device is unread here too.
        let unread_history =
            line.history && buffer.read_marker.is_some_and(|read| line.time > read);
        if line.history {
            if !buffer.insert_history(line.clone()) {
                return;
            }
        } else {
            buffer.push(line.clone());
        }
        if !active && !line.own && counts && (!line.history || unread_history) {
            buffer.unread += 1;
            if line.highlight {
                buffer.mentions += 1;
            }
        }
        if active && counts {
            let name = buffer.name.clone();
            self.note_read(&name);
        }
        if self.record_new_lines {
            self.new_lines
                .push((self.buffers[index].name.clone(), line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn state() -> State {
        State::new("me", "Me")
    }

    /// Feeds lines as if received, returning everything the state wanted to send.
    pub(super) fn feed(state: &mut State, lines: &[&str]) -> Vec<String> {
        lines.iter().flat_map(|l| state.handle_line(l)).collect()
    }

    /// A state past registration with the given caps acknowledged.
    pub(super) fn connected(caps: &str) -> State {
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
    fn mention_matching() {
        assert!(mentions("hey Me!", "me"));
        assert!(mentions("me: hi", "me"));
        assert!(!mentions("meme", "me"));
        assert!(!mentions("some_me", "me"));
    }
}
