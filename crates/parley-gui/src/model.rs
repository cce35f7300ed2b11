//! The view-model: what the window shows, computed from `parley_client::State` by pure
//! functions (the side list with badges, message rows with day separators, the topic and status
//! texts, nick colours, plain-word errors). Drawing code only lays these out, so everything a
//! person reads is tested here without a window.

use std::collections::VecDeque;

use chrono::{DateTime, NaiveDate, TimeZone};
use parley_client::{BufferKind, ConnectionState, Line, LineKind, State};

/// One entry of the side list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferEntry {
    pub index: usize,
    pub name: String,
    pub kind: BufferKind,
    pub unread: usize,
    pub mentions: usize,
    pub active: bool,
    /// A channel we are not in (any more): drawn muted.
    pub parted: bool,
    /// A private conversation's peer is online or not (MONITOR); `None` when unknown.
    pub online: Option<bool>,
}

impl BufferEntry {
    /// The badge text: mentions win over plain unread counts.
    pub fn badge(&self) -> Option<String> {
        match (self.mentions, self.unread) {
            (0, 0) => None,
            (0, unread) => Some(unread.to_string()),
            (mentions, _) => Some(format!("{mentions}!")),
        }
    }
}

/// The side list in three groups: the server, channels, private conversations.
pub fn buffer_entries(state: &State) -> (Vec<BufferEntry>, Vec<BufferEntry>, Vec<BufferEntry>) {
    let mut server = Vec::new();
    let mut channels = Vec::new();
    let mut private = Vec::new();
    for (index, buffer) in state.buffers().iter().enumerate() {
        let entry = BufferEntry {
            index,
            name: buffer.name.clone(),
            kind: buffer.kind,
            unread: buffer.unread,
            mentions: buffer.mentions,
            active: index == state.active_index(),
            parted: buffer.kind == BufferKind::Channel && !buffer.joined,
            online: buffer.online,
        };
        match buffer.kind {
            BufferKind::Server => server.push(entry),
            BufferKind::Channel => channels.push(entry),
            BufferKind::Query => private.push(entry),
        }
    }
    (server, channels, private)
}

/// How a row is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowStyle {
    /// Someone said something.
    Message,
    /// `* nick does something`.
    Action,
    Notice,
    /// Joins, parts, quits, nick and mode changes: muted.
    Muted,
    Info,
    Error,
    /// A peer's E2E keys changed: drawn loud, apart from other errors.
    KeyWarning,
}

/// One row of the message area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Row {
    /// "Wednesday, 1 May 2024" between lines of different (local) days.
    Day(String),
    Line {
        time: String,
        nick: Option<String>,
        /// What the nick's colour comes from: its account when known, else the nick
        /// (`State::colour_key`); `rows` fills in the nick, the window the account.
        colour_key: Option<String>,
        text: String,
        style: RowStyle,
        highlight: bool,
        own: bool,
        /// The line's msgid: what a reply or a reaction names. Without one, neither is offered.
        msgid: Option<String>,
        /// The message this one answers, quoted: "↪ bob: hi alice, ready?".
        quote: Option<String>,
        /// Reactions under the line.
        reactions: Vec<ReactionChip>,
    },
}

/// One reaction under a message: "👍 2", with who sent it for the tooltip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionChip {
    pub text: String,
    pub count: usize,
    pub nicks: String,
}

impl ReactionChip {
    pub fn label(&self) -> String {
        format!("{} {}", self.text, self.count)
    }
}

/// Longest part of a parent message quoted above a reply.
const QUOTE_CHARS: usize = 60;

/// The quote above a reply: the parent's author and its first words, or a note when the parent
/// is not loaded (older than the history on screen).
pub fn quote_of(parent: Option<&Line>) -> String {
    let Some(parent) = parent else {
        return "↪ a message not loaded".to_string();
    };
    format!("↪ {}", quote_of_row(parent.from.as_deref(), &parent.text))
}

/// The quote of a message on screen, for "Replying to …".
pub fn quote_of_row(nick: Option<&str>, text: &str) -> String {
    let mut quoted: String = text.chars().take(QUOTE_CHARS).collect();
    if text.chars().count() > QUOTE_CHARS {
        quoted.push('…');
    }
    match nick {
        Some(nick) => format!("{nick}: {quoted}"),
        None => quoted,
    }
}

/// "alice is typing…" for the active buffer at `now`, if anyone is.
pub fn typing_text(state: &State, now: DateTime<chrono::Utc>) -> Option<String> {
    state.active().typing_text(now)
}

impl Row {
    /// The row as plain text, as it is read out (and asserted on).
    pub fn plain(&self) -> String {
        match self {
            Row::Day(day) => format!("-- {day} --"),
            Row::Line {
                time,
                nick,
                text,
                style,
                ..
            } => match (style, nick) {
                (RowStyle::Message, Some(nick)) => format!("{time} <{nick}> {text}"),
                (RowStyle::Action, Some(nick)) => format!("{time} * {nick} {text}"),
                (RowStyle::Notice, Some(nick)) => format!("{time} -{nick}- {text}"),
                _ => format!("{time} {text}"),
            },
        }
    }
}

fn style_of(kind: LineKind) -> RowStyle {
    match kind {
        LineKind::Message => RowStyle::Message,
        LineKind::Action => RowStyle::Action,
        LineKind::Notice => RowStyle::Notice,
        LineKind::Info => RowStyle::Info,
        LineKind::Error => RowStyle::Error,
        LineKind::Join
        | LineKind::Part
        | LineKind::Quit
        | LineKind::Kick
        | LineKind::Nick
        | LineKind::Topic
        | LineKind::Mode => RowStyle::Muted,
    }
}

/// "Wednesday, 1 May 2024".
pub fn day_label(day: NaiveDate) -> String {
    day.format("%A, %-d %B %Y").to_string()
}

/// The rows of a buffer in the time zone `tz`, with a day separator before the first line and
/// wherever the day changes.
pub fn rows<'a, Tz: TimeZone>(lines: impl IntoIterator<Item = &'a Line>, tz: &Tz) -> Vec<Row>
where
    Tz::Offset: std::fmt::Display,
{
    let lines: Vec<&Line> = lines.into_iter().collect();
    let by_msgid: std::collections::HashMap<&str, &Line> = lines
        .iter()
        .filter_map(|l| Some((l.msgid.as_deref()?, *l)))
        .collect();
    let mut out = Vec::new();
    let mut last_day: Option<NaiveDate> = None;
    for line in lines {
        let local: DateTime<Tz> = line.time.with_timezone(tz);
        let day = local.date_naive();
        if last_day != Some(day) {
            out.push(Row::Day(day_label(day)));
            last_day = Some(day);
        }
        out.push(Row::Line {
            time: local.format("%H:%M").to_string(),
            nick: line.from.clone(),
            colour_key: line.from.clone(),
            text: line.text.clone(),
            style: if crate::e2e::is_key_warning(line) {
                RowStyle::KeyWarning
            } else {
                style_of(line.kind)
            },
            highlight: line.highlight && !line.own,
            own: line.own,
            msgid: line.msgid.clone(),
            quote: line
                .reply_to
                .as_deref()
                .map(|parent| quote_of(by_msgid.get(parent).copied())),
            reactions: line
                .reactions
                .iter()
                .map(|r| ReactionChip {
                    text: r.text.clone(),
                    count: r.count(),
                    nicks: r.nicks.join(", "),
                })
                .collect(),
        });
    }
    out
}

/// The bar above the messages.
pub fn topic_text(state: &State) -> String {
    let buffer = state.active();
    match (&buffer.kind, &buffer.topic) {
        (BufferKind::Channel, Some(topic)) if !topic.is_empty() => {
            format!("{}: {topic}", buffer.name)
        }
        (BufferKind::Channel, _) => format!("{}: no topic set", buffer.name),
        (BufferKind::Query, _) => format!("Private conversation with {}", buffer.name),
        (BufferKind::Server, _) => match state.server_name() {
            Some(name) => format!("Server messages from {name}"),
            None => "Server messages".to_string(),
        },
    }
}

/// How the connection is doing, for the status bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Good,
    Waiting,
    Bad,
}

/// The status bar: "Connected to host:port (TLS) as alice", "Reconnecting in 4 s (attempt 2)".
pub fn status_text(state: &State, server: &str, tls: bool) -> (Health, String) {
    let security = if tls { "TLS" } else { "not encrypted" };
    match state.connection() {
        ConnectionState::Connected => {
            let who = match state.account() {
                Some(account) if account == state.nick() => format!("as {account}"),
                Some(account) => format!("as {} (account {account})", state.nick()),
                None => format!("as {} (guest)", state.nick()),
            };
            let away = if state.is_away() { ", away" } else { "" };
            (
                Health::Good,
                format!("Connected to {server} ({security}) {who}{away}"),
            )
        }
        ConnectionState::Connecting => (Health::Waiting, format!("Connecting to {server}…")),
        ConnectionState::Registering => (Health::Waiting, format!("Logging in to {server}…")),
        ConnectionState::Reconnecting { attempt, delay } => {
            let why = state
                .last_error()
                .map(|e| format!(": {}", plain_error(e)))
                .unwrap_or_default();
            (
                Health::Waiting,
                format!(
                    "Connection lost{why}. Reconnecting in {} s (attempt {attempt})",
                    delay.as_secs().max(1)
                ),
            )
        }
        ConnectionState::Disconnected => (Health::Bad, "Disconnected".to_string()),
        ConnectionState::Failed(reason) => (Health::Bad, plain_error(reason)),
    }
}

/// Library and server messages turned into words a person acts on: a known reason becomes one
/// sentence of advice, followed by the underlying words only when they add something. The
/// library's own advice ("(check the account name and password)") is dropped from those words,
/// so a refused password is said once, not three times as issue 22 saw.
pub fn plain_error(reason: &str) -> String {
    if parley_client::is_login_refusal(reason) {
        // Already the sentence to show; advice on top would say it twice.
        return reason.to_string();
    }
    let detail = error_detail(reason);
    let lower = reason.to_ascii_lowercase();
    // A lockout is its own advice: the password may well be right, so saying "not accepted"
    // would send the person hunting for a typo.
    if lower.contains("too many") {
        return sentence(detail);
    }
    let (advice, restates) = if lower.contains("connection refused") {
        ("Nothing answers at that address and port: check the server name and port, and that the server is running.", false)
    } else if lower.contains("timed out") {
        (
            "The server did not answer in time: check the address and your network.",
            false,
        )
    } else if lower.contains("failed to lookup")
        || lower.contains("name or service not known")
        || lower.contains("no address")
    {
        (
            "That server name does not exist: check its spelling.",
            false,
        )
    } else if lower.contains("sasl") || lower.contains("password") || lower.contains("login") {
        let generic = [
            "authentication failed",
            "password",
            "credentials",
            "not accepted",
        ];
        let detail = detail.to_ascii_lowercase();
        (
            "The username or password was not accepted.",
            generic.iter().any(|g| detail.contains(g)),
        )
    } else if lower.contains("already exists") || lower.contains("account_exists") {
        (
            "That username is taken: pick another, or log in instead.",
            false,
        )
    } else {
        return detail.to_string();
    };
    if restates || detail.is_empty() {
        advice.to_string()
    } else {
        format!("{advice} ({detail})")
    }
}

/// The words under a library error, without its "login failed:" frame and its parenthesised
/// advice, which `plain_error` says in its own words.
fn error_detail(reason: &str) -> &str {
    let mut detail = reason.trim();
    if let Some(rest) = detail
        .get(..13)
        .filter(|p| p.eq_ignore_ascii_case("login failed:"))
        .and_then(|_| detail.get(13..))
    {
        detail = rest.trim_start();
    }
    if let Some(at) = detail.find(" (check ") {
        detail = detail[..at].trim_end();
    }
    detail
}

/// `text` as a sentence: a capital first letter and a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// Multi-line input: each non-empty line is sent on its own (IRC carries one line per message).
pub fn input_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// Keeps the message view still when lines come or go above what is on screen (older history
/// put in front, the oldest lines dropped past the buffer's limit): the line at the top of the
/// view stays where it was instead of the text jumping. At the bottom the view follows new lines
/// as before. The window reports where each line landed after laying them out; this decides the
/// scroll offset, so the rule is tested without a window.
#[derive(Debug, Default)]
pub struct ScrollKeeper {
    anchor: Option<ScrollAnchor>,
}

#[derive(Debug)]
struct ScrollAnchor {
    buffer: String,
    line: LineKey,
    /// The line's top, from the top of the content.
    top: f32,
    /// The view was scrolled to the end: it follows new lines and needs no help.
    at_bottom: bool,
}

/// A line told apart from its neighbours the way history is de-duplicated.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LineKey {
    msgid: Option<String>,
    time: DateTime<chrono::Utc>,
    from: Option<String>,
    text: String,
}

impl LineKey {
    fn of(line: &Line) -> LineKey {
        LineKey {
            msgid: line.msgid.clone(),
            time: line.time,
            from: line.from.clone(),
            text: line.text.clone(),
        }
    }
}

/// Offsets closer than this are the same: layout rounding is not a jump.
const SCROLL_SLACK: f32 = 0.5;

impl ScrollKeeper {
    /// After a frame laid out `lines` of `buffer` with line `i`'s top at `tops[i]` (from the top
    /// of the content), scrolled down by `offset` of at most `max_offset`: returns the offset that
    /// puts the line that was at the top of the view last frame back where it was, when it moved.
    pub fn keep(
        &mut self,
        buffer: &str,
        lines: &VecDeque<Line>,
        tops: &[f32],
        offset: f32,
        max_offset: f32,
    ) -> Option<f32> {
        let moved = self.anchor.as_ref().and_then(|anchor| {
            if anchor.buffer != buffer || anchor.at_bottom {
                return None;
            }
            let at = lines.iter().position(|l| LineKey::of(l) == anchor.line)?;
            let shift = tops.get(at)? - anchor.top;
            (shift.abs() > SCROLL_SLACK).then_some(shift)
        });
        let kept = moved.map(|shift| (offset + shift).clamp(0.0, max_offset.max(0.0)));
        let offset = kept.unwrap_or(offset);
        let at_bottom = kept.is_none() && offset >= max_offset - SCROLL_SLACK;
        // The first line that starts inside the view, or the one the view starts in.
        let first_shown = tops
            .iter()
            .position(|top| *top >= offset - SCROLL_SLACK)
            .or_else(|| tops.len().checked_sub(1));
        self.anchor = first_shown.and_then(|at| {
            Some(ScrollAnchor {
                buffer: buffer.to_string(),
                line: LineKey::of(lines.get(at)?),
                top: tops[at],
                at_bottom,
            })
        });
        kept
    }
}

/// A new line worth a notification: a mention or a private message from someone else, live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub buffer: String,
    pub from: String,
    pub text: String,
}

impl Alert {
    pub fn title(&self) -> String {
        if self.buffer.starts_with(['#', '&']) {
            format!("{} in {}", self.from, self.buffer)
        } else {
            format!("{} (private)", self.from)
        }
    }
}

/// Alerts among the lines `State::take_new_lines` returned.
pub fn alerts(new_lines: &[(String, Line)]) -> Vec<Alert> {
    new_lines
        .iter()
        .filter(|(_, line)| {
            line.highlight
                && !line.own
                && !line.history
                && matches!(
                    line.kind,
                    LineKind::Message | LineKind::Action | LineKind::Notice
                )
        })
        .map(|(buffer, line)| Alert {
            buffer: buffer.clone(),
            from: line.from.clone().unwrap_or_default(),
            text: line.text.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};
    use parley_client::Auth;

    pub fn sample_state() -> State {
        let mut state = State::new("alice", "Alice");
        state.on_connected(true, Auth::Guest);
        for line in [
            ":parley.local CAP * LS :server-time",
            ":parley.local CAP alice ACK :server-time",
            ":parley.local 001 alice :Welcome to Parley, alice",
            ":parley.local 900 alice alice!~alice@127.0.0.1 alice :You are now logged in as alice",
            ":alice!~alice@127.0.0.1 JOIN #lobby",
            ":alice!~alice@127.0.0.1 JOIN #rust",
            ":parley.local 332 alice #rust :All things Rust",
            ":parley.local 353 alice = #rust :@alice bob +carol",
            ":parley.local 366 alice #rust :End of /NAMES list",
        ] {
            state.handle_line(line);
        }
        state.set_active_by_name("#rust");
        for line in [
            "@time=2024-05-01T09:30:00.000Z :bob!~bob@h PRIVMSG #rust :hi alice, ready?",
            "@time=2024-05-01T09:31:00.000Z :carol!~carol@h PRIVMSG #rust :\x01ACTION waves\x01",
            "@time=2024-05-02T08:00:00.000Z :dave!~dave@h JOIN #rust",
            "@time=2024-05-02T09:32:00.000Z :bob!~bob@h PRIVMSG #lobby :anyone?",
            "@time=2024-05-02T09:33:00.000Z :dave!~dave@h PRIVMSG alice :psst",
        ] {
            state.handle_line(line);
        }
        state
    }

    #[test]
    fn side_list_groups_and_badges() {
        let state = sample_state();
        let (server, channels, private) = buffer_entries(&state);
        assert_eq!(server.len(), 1);
        let names: Vec<&str> = channels.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["#lobby", "#rust"]);
        assert_eq!(channels[0].badge().as_deref(), Some("1"));
        assert!(channels[1].active && channels[1].badge().is_none());
        assert_eq!(private[0].name, "dave");
        assert_eq!(
            private[0].badge().as_deref(),
            Some("1!"),
            "a private message counts as a mention"
        );
    }

    #[test]
    fn rows_have_times_day_separators_and_muted_joins() {
        let state = sample_state();
        let utc = FixedOffset::east_opt(0).expect("zero offset");
        let rows = rows(&state.active().lines, &utc);
        let text: Vec<String> = rows.iter().map(Row::plain).collect();
        let first_day = text
            .iter()
            .position(|t| t == "-- Wednesday, 1 May 2024 --")
            .expect("a separator for 1 May");
        let hi = text
            .iter()
            .position(|t| t == "09:30 <bob> hi alice, ready?")
            .expect("bob's line");
        let second_day = text
            .iter()
            .position(|t| t == "-- Thursday, 2 May 2024 --")
            .expect("a separator for 2 May");
        assert!(first_day < hi && hi < second_day, "{text:#?}");
        assert!(
            text.contains(&"09:31 * carol waves".to_string()),
            "{text:#?}"
        );
        let join = rows
            .iter()
            .find(|r| matches!(r, Row::Line { text, .. } if text.contains("dave")))
            .expect("the join");
        assert!(
            matches!(
                join,
                Row::Line {
                    style: RowStyle::Muted,
                    ..
                }
            ),
            "{join:?}"
        );
        let highlighted = rows.iter().any(
            |r| matches!(r, Row::Line { highlight: true, text, .. } if text.contains("hi alice")),
        );
        assert!(highlighted, "a mention is highlighted");
    }

    #[test]
    fn replies_are_quoted_and_reactions_counted() {
        let mut state = sample_state();
        state.handle_line(":srv CAP alice ACK :message-tags");
        for line in [
            "@time=2024-05-02T10:00:00.000Z;msgid=p1 :bob!b@h PRIVMSG #rust :is the 0.3 release out yet? I would like to try the new reconnect code",
            "@msgid=r1;+draft/reply=p1;+draft/react=👍 :carol!c@h TAGMSG #rust",
            "@msgid=r2;+draft/reply=p1;+draft/react=👍 :dave!d@h TAGMSG #rust",
            "@time=2024-05-02T10:01:00.000Z;msgid=p2;+draft/reply=p1 :carol!c@h PRIVMSG #rust :yes, tagged this morning",
            "@time=2024-05-02T10:02:00.000Z;msgid=p3;+draft/reply=gone :dave!d@h PRIVMSG #rust :agreed",
        ] {
            state.handle_line(line);
        }
        let utc = FixedOffset::east_opt(0).expect("zero offset");
        let rows = rows(&state.active().lines, &utc);
        let find = |id: &str| {
            rows.iter()
                .find(|r| matches!(r, Row::Line { msgid: Some(m), .. } if m == id))
                .expect("the row")
        };
        let Row::Line { reactions, .. } = find("p1") else {
            unreachable!()
        };
        assert_eq!(reactions.len(), 1);
        assert_eq!(reactions[0].label(), "👍 2");
        assert_eq!(reactions[0].nicks, "carol, dave");
        let Row::Line { quote, .. } = find("p2") else {
            unreachable!()
        };
        assert_eq!(
            quote.as_deref(),
            Some("↪ bob: is the 0.3 release out yet? I would like to try the new reco…")
        );
        let Row::Line { quote, .. } = find("p3") else {
            unreachable!()
        };
        assert_eq!(quote.as_deref(), Some("↪ a message not loaded"));
    }

    #[test]
    fn typing_and_online_status() {
        let mut state = sample_state();
        state.handle_line(":srv CAP alice ACK :message-tags");
        state.handle_line(":srv 005 alice MONITOR=10 :are supported");
        state.handle_line(":srv 730 alice :dave!d@h");
        let (_, _, private) = buffer_entries(&state);
        assert_eq!(private[0].online, Some(true));
        state.handle_line("@+typing=active :bob!b@h TAGMSG #rust");
        let now = chrono::Utc::now();
        assert_eq!(typing_text(&state, now).as_deref(), Some("bob is typing…"));
        assert_eq!(
            typing_text(&state, now + chrono::Duration::seconds(7)),
            None
        );
    }

    #[test]
    fn topic_and_status() {
        let mut state = sample_state();
        assert_eq!(topic_text(&state), "#rust: All things Rust");
        let (health, text) = status_text(&state, "localhost:6697", true);
        assert_eq!(health, Health::Good);
        assert_eq!(text, "Connected to localhost:6697 (TLS) as alice");
        state.set_active_by_name("dave");
        assert_eq!(topic_text(&state), "Private conversation with dave");
        state.on_disconnected("read error");
        state.set_connection(ConnectionState::Reconnecting {
            attempt: 2,
            delay: std::time::Duration::from_secs(4),
        });
        let (health, text) = status_text(&state, "h", false);
        assert_eq!(health, Health::Waiting);
        assert_eq!(
            text,
            "Connection lost: read error. Reconnecting in 4 s (attempt 2)"
        );
    }

    #[test]
    fn errors_in_plain_words() {
        let text = plain_error("cannot connect to h:1: Connection refused (os error 111)");
        assert!(text.starts_with("Nothing answers"), "{text}");
        // The library's words for a refused password (parley-client's state/negotiation.rs):
        // said once.
        let text = plain_error(
            "login failed: SASL authentication failed (check the account name and password)",
        );
        assert_eq!(text, "The username or password was not accepted.");
        // Words that add something stay, once, without the library's advice.
        let text =
            plain_error("login failed: Account suspended (check the account name and password)");
        assert_eq!(
            text,
            "The username or password was not accepted. (Account suspended)"
        );
        // A lockout is not a typo: its own words, not "not accepted".
        let text = plain_error("login failed: too many failed logins, try again in 15 minutes");
        assert_eq!(text, "Too many failed logins, try again in 15 minutes.");
        let text = plain_error("login failed: SASL authentication failed");
        assert!(text.contains("username or password"), "{text}");
        // The client library's own sentence is shown once, without advice around it.
        let refused = parley_client::login_refusal("Invalid account name or password");
        assert_eq!(
            plain_error(&refused),
            "The username or password was not accepted."
        );
        let locked =
            parley_client::login_refusal("too many failed logins; try again in 900 seconds");
        assert_eq!(
            plain_error(&locked),
            "Too many failed logins; try again in 15 minutes."
        );
        assert_eq!(plain_error("something else"), "something else");
    }

    #[test]
    fn multi_line_input() {
        assert_eq!(input_lines("one\n\n two\n"), ["one", " two"]);
    }

    fn numbered_lines(range: std::ops::Range<u32>) -> VecDeque<Line> {
        range
            .map(|n| Line {
                time: Utc
                    .timestamp_opt(1_700_000_000 + i64::from(n), 0)
                    .single()
                    .expect("a time in range"),
                kind: LineKind::Message,
                from: Some("bob".into()),
                text: format!("line {n}"),
                highlight: false,
                own: false,
                history: false,
                msgid: None,
                reply_to: None,
                reactions: Vec::new(),
            })
            .collect()
    }

    /// Every line 20 high, below a 30 high "Load older messages" button.
    fn tops(lines: &VecDeque<Line>) -> Vec<f32> {
        (0..lines.len()).map(|i| 30.0 + 20.0 * i as f32).collect()
    }

    #[test]
    fn older_history_above_the_view_does_not_move_it() {
        let mut keeper = ScrollKeeper::default();
        let mut lines = numbered_lines(100..150);
        // Scrolled up to the top, where "Load older" is.
        assert_eq!(keeper.keep("#a", &lines, &tops(&lines), 0.0, 630.0), None);
        for line in numbered_lines(80..100).into_iter().rev() {
            lines.push_front(line);
        }
        let kept = keeper.keep("#a", &lines, &tops(&lines), 0.0, 1030.0);
        assert_eq!(kept, Some(400.0), "20 lines of 20 above: down by 400");
        assert_eq!(
            keeper.keep("#a", &lines, &tops(&lines), 400.0, 1030.0),
            None,
            "once kept, it stays put"
        );
        // Scrolling by hand is never undone.
        assert_eq!(
            keeper.keep("#a", &lines, &tops(&lines), 250.0, 1030.0),
            None
        );
    }

    #[test]
    fn the_bottom_follows_new_lines_and_dropped_lines_pull_back() {
        let mut keeper = ScrollKeeper::default();
        let mut lines = numbered_lines(0..50);
        // At the bottom: new lines at the end (and old ones dropped) are egui's to follow.
        assert_eq!(keeper.keep("#a", &lines, &tops(&lines), 630.0, 630.0), None);
        lines.pop_front();
        lines.extend(numbered_lines(50..51));
        assert_eq!(keeper.keep("#a", &lines, &tops(&lines), 630.0, 630.0), None);
        // Reading further up while the oldest lines are dropped: the view moves up with them.
        assert_eq!(keeper.keep("#a", &lines, &tops(&lines), 210.0, 630.0), None);
        lines.pop_front();
        lines.pop_front();
        lines.extend(numbered_lines(51..53));
        assert_eq!(
            keeper.keep("#a", &lines, &tops(&lines), 210.0, 630.0),
            Some(170.0)
        );
        // Another buffer on show: nothing carries over.
        let other = numbered_lines(0..10);
        assert_eq!(keeper.keep("#b", &other, &tops(&other), 0.0, 0.0), None);
    }

    #[test]
    fn alerts_for_mentions_and_private_messages_only() {
        let mut state = sample_state();
        state.take_new_lines();
        state.record_new_lines(true);
        for line in [
            ":bob!~bob@h PRIVMSG #lobby :plain chatter",
            ":bob!~bob@h PRIVMSG #lobby :alice: lunch?",
            ":erin!~erin@h PRIVMSG alice :hello there",
        ] {
            state.handle_line(line);
        }
        let alerts = alerts(&state.take_new_lines());
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        assert_eq!(alerts[0].title(), "bob in #lobby");
        assert_eq!(alerts[1].title(), "erin (private)");
        assert_eq!(alerts[1].text, "hello there");
        let _ = Utc::now();
    }
}
