//! Lines from the server applied to the model: messages, membership, modes, topics, batches
//! (history), WHOIS replies and numerics, each turned into buffer lines and, where the protocol
//! asks for one, an answer to send (PONG, a rejoin after the welcome, a nick taken back).

use chrono::{DateTime, Utc};
use parley_proto::{casefold, numeric, Message, UserHost};

use super::negotiation::{lockout_wait, login_refusal, SaslStep};
use crate::input::is_channel;

use super::{
    irc_line, mentions, BufferKind, ConnectionState, Line, LineKind, Member, State, HISTORY_BATCH,
};

#[derive(Clone, Debug)]
pub(super) struct Batch {
    kind: String,
    target: Option<String>,
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

/// What every line made from one incoming message shares.
pub(super) struct Incoming {
    pub(super) time: DateTime<Utc>,
    /// The time came from the server (`time` tag): a read marker may name it.
    server_time: bool,
    history: bool,
    msgid: Option<String>,
    /// `+draft/reply`: the msgid of the message this one answers.
    reply_to: Option<String>,
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
            reply_to: self.reply_to.clone(),
            reactions: Vec::new(),
        }
    }
}

impl State {
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
        let server_time = msg
            .tags
            .get("time")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        let time = server_time.unwrap_or(now);
        let history_target = msg
            .tags
            .get("batch")
            .and_then(|id| self.batches.get(id.as_ref()))
            .filter(|b| b.kind.ends_with("chathistory"))
            .map(|b| b.target.clone());
        let ctx = Incoming {
            time,
            server_time: server_time.is_some(),
            history: history_target.is_some(),
            msgid: msg.tags.get("msgid").map(|m| m.into_owned()),
            reply_to: msg.tags.get("+draft/reply").map(|m| m.into_owned()),
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
        if self.on_search_line(msg, &command) {
            return out;
        }
        match command.as_str() {
            "PING" => out.push(irc_line("PONG", &[], msg.param(0))),
            "CAP" => self.on_cap(msg, &mut out),
            "AUTHENTICATE" => self.on_authenticate(msg, &mut out),
            "REGISTER" => self.on_register(msg, &mut out, &ctx),
            "FAIL" | "WARN" | "NOTE" => self.on_standard_reply(&command, msg, &mut out, &ctx),
            "BATCH" => self.on_batch(msg),
            "PRIVMSG" | "NOTICE" => self.on_message(&command, msg, from.as_deref(), &ctx),
            "JOIN" => {
                self.group_membership(&command, msg, from.as_deref());
                self.on_join(msg, from.as_deref(), &ctx, &mut out)
            }
            "PART" => {
                self.group_membership(&command, msg, from.as_deref());
                self.on_part(msg, from.as_deref(), &ctx)
            }
            "KICK" => {
                self.group_membership(&command, msg, from.as_deref());
                self.on_kick(msg, from.as_deref(), &ctx)
            }
            "QUIT" | "NICK" => {
                if command == "QUIT" {
                    self.group_membership(&command, msg, from.as_deref());
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
            "TAGMSG" => self.on_tagmsg(msg, from.as_deref(), &ctx, now),
            "MARKREAD" => self.on_markread(msg),
            "KEYS" => self.on_keys(msg, &mut out),
            "CHGHOST" | "SETNAME" => {}
            _ if command.len() == 3 && command.bytes().all(|b| b.is_ascii_digit()) => {
                self.on_numeric(&command, msg, &ctx, &mut out)
            }
            _ => {
                let text = format!("{} {}", msg.command, msg.params.join(" "));
                self.push_server(LineKind::Info, text, time);
            }
        }
        // What the change asked for besides its answer (a conversation opened: MONITOR it).
        out.append(&mut self.outbox);
        out
    }

    /// Where a TAGMSG or reaction from `from` to `target` belongs: a channel, or the private
    /// conversation with the other side. Never creates a buffer: tags alone open nothing.
    fn tag_buffer(&self, target: &str, from: &str) -> Option<usize> {
        let channel = target.trim_start_matches(['@', '+', '%', '~', '&']);
        if is_channel(target) {
            self.find(target)
        } else if is_channel(channel) {
            self.find(channel)
        } else if self.is_me(from) {
            self.find(target)
        } else {
            self.find(from)
        }
    }

    /// `TAGMSG`: typing notices and reactions; never a line of the conversation ("Clients
    /// that receive a TAGMSG command MUST NOT display them in the message history by
    /// default.").
    fn on_tagmsg(
        &mut self,
        msg: &Message<'_>,
        from: Option<&str>,
        ctx: &Incoming,
        now: DateTime<Utc>,
    ) {
        let (Some(target), Some(from)) = (msg.param(0), from) else {
            return;
        };
        if let Some(value) = msg.tags.get(crate::e2e::megolm::ROOM_TAG) {
            if !ctx.history && !is_channel(target) {
                self.group_room_key(&value, from);
            }
            return;
        }
        let Some(index) = self.tag_buffer(target, from) else {
            return;
        };
        if ctx.history {
            // Typing in history is long over; only reactions still mean something.
        } else if let Some(typing) = msg.tags.get("+typing") {
            self.on_typing(index, from, &typing, now);
        } else {
            // "...until any of the following conditions is met: A message is received from
            // the sender"; a TAGMSG is a message to the typing spec.
            self.buffers[index].stop_typing(from);
        }
        if let (Some(parent), Some(reaction)) =
            (msg.tags.get("+draft/reply"), msg.tags.get("+draft/react"))
        {
            self.on_reaction(index, from, &parent, &reaction);
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
        if kind == "FAIL" && command == "KEYS" && self.on_keys_fail(msg, out) {
            return;
        }
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
        // An end-to-end encrypted message: the body is a placeholder, the text is in the tag.
        let decrypted = msg
            .tags
            .get(crate::e2e::wire::TAG)
            .filter(|_| command == "PRIVMSG" && !is_channel(target))
            .map(|value| self.e2e_incoming(&value, from, ctx.msgid.as_deref(), ctx.history));
        let decrypted = decrypted.or_else(|| {
            msg.tags
                .get(crate::e2e::megolm::GROUP_TAG)
                .filter(|_| command == "PRIVMSG" && is_channel(target))
                .map(|value| self.group_incoming(&value, target, from, ctx.msgid.as_deref()))
        });
        let text = decrypted.as_deref().unwrap_or(text);
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
        if let Some(nick) = from {
            self.buffers[index].stop_typing(nick);
        }
        if ctx.server_time && index != 0 {
            let buffer = &mut self.buffers[index];
            buffer.last_message_time = buffer.last_message_time.max(Some(ctx.time));
        }
        if for_everyone && self.connection == ConnectionState::Connected {
            self.push_server_and_mirror(line);
        } else {
            self.add_line(index, line);
        }
        // A reaction may come with a body ("An example of a reaction with an additional
        // message body"): shown as a message, and counted on its parent too.
        if let (Some(nick), Some(parent), Some(reaction)) =
            (from, ctx.reply_to.as_deref(), msg.tags.get("+draft/react"))
        {
            self.on_reaction(index, nick, parent, &reaction);
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
        self.buffers[index].stop_typing(nick);
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
            buffer.stop_typing(victim);
        }
    }

    fn on_quit(&mut self, msg: &Message<'_>, from: Option<&str>, ctx: &Incoming) {
        let Some(nick) = from else {
            return;
        };
        let key = casefold(nick);
        self.accounts.remove(&key);
        self.stop_typing_everywhere(nick);
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
        self.stop_typing_everywhere(old);
        let mut renamed_query = false;
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
                // Whoever just changed nick is online.
                buffer.online = buffer.online.map(|_| true);
                present = true;
                renamed_query = true;
            }
            if present {
                self.push(
                    index,
                    ctx.line(LineKind::Nick, Some(old.to_string()), text.clone()),
                );
            }
        }
        if renamed_query && !me {
            self.query_renamed(old, new);
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
                self.e2e_start(out);
                if self.has_cap("draft/read-marker") {
                    // Channels get theirs on JOIN; conversations must ask.
                    for buffer in &self.buffers {
                        if buffer.kind == BufferKind::Query {
                            out.push(irc_line("MARKREAD", &[&buffer.name], None));
                        }
                    }
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
                    } else if *token == "MONITOR" || token.starts_with("MONITOR=") {
                        self.monitor_supported(token.strip_prefix("MONITOR="));
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
            "730" | "731" => self.on_monitor_status(code == "730", &text),
            "734" => self.on_monitor_full(arg(2)),
            "732" | "733" => {}
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Action;
    use crate::state::tests::{connected, feed, state};
    use crate::state::{colour_hash, colour_index, Auth, SERVER_BUFFER};

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
}
