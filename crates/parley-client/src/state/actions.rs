//! What the user does, turned into lines to send: an [`Action`] (parsed from typed text by
//! [`crate::input`]) becomes protocol lines, plus local lines such as help or the own message
//! when the server does not echo it. Local mistakes come back as [`InputError`]s.

use chrono::Utc;
use parley_proto::casefold;

use crate::input::{help_for, is_channel, Action, InputError, COMMANDS};

use super::{
    irc_line, irc_tagged, iso_time, BufferKind, ConnectionState, Line, LineKind, State,
    HISTORY_BATCH,
};

/// Longest chat text put in one PRIVMSG; longer text is split, leaving room for the source
/// prefix the server adds within the 512-byte line limit.
const MAX_TEXT_BYTES: usize = 400;

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

impl State {
    // ---- outgoing ----

    /// Turns a user action into lines to send (and local lines such as help or the own message
    /// when the server does not echo). Local mistakes come back as errors.
    pub fn act(&mut self, action: Action) -> Result<Vec<String>, InputError> {
        if let Action::Typing(text) = &action {
            // Typing notices are best effort: never an error, nothing when offline.
            return Ok(self.typing_input(text, Utc::now()));
        }
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
                if buffer.kind == BufferKind::Query {
                    let nick = buffer.name.clone();
                    self.query_closed(&nick, &mut out);
                }
                self.remove_buffer(index);
            }
            Action::React { msgid, reaction } => self.react(msgid, &reaction, &mut out)?,
            Action::Reply { msgid, text } => self.reply(msgid, &text, &mut out)?,
            Action::Typing(_) => {}
            Action::Help(topic) => self.help(topic.as_deref()),
            Action::Raw(line) => out.push(line),
            Action::Search(query) => out.push(self.start_search(query)?),
            Action::SearchMore => out.push(self.search_more()?),
            Action::E2e(on) => self.e2e_toggle(on, &mut out),
            Action::Verify { nick, confirm } => self.e2e_verify(&nick, confirm, &mut out),
            Action::E2eDevices => self.e2e_devices(&mut out),
            Action::E2eRemove(id) => self.e2e_remove(&id, &mut out),
        }
        out.append(&mut self.outbox);
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
        self.say_tagged(target, text, action, None, out);
    }

    /// Sends chat text, split to fit; `reply_to` tags the first piece as a reply
    /// (`+draft/reply`), the rest follow it as plain continuation.
    pub(super) fn say_tagged(
        &mut self,
        target: &str,
        text: &str,
        action: bool,
        reply_to: Option<&str>,
        out: &mut Vec<String>,
    ) {
        if self.e2e_intercept(target, text, action, reply_to, out) {
            return;
        }
        self.say_plain(target, text, action, reply_to, out);
    }

    /// Sends chat text in clear text (no E2E for this target, or it is off).
    pub(super) fn say_plain(
        &mut self,
        target: &str,
        text: &str,
        action: bool,
        reply_to: Option<&str>,
        out: &mut Vec<String>,
    ) {
        for (i, piece) in split_text(text).into_iter().enumerate() {
            let body = if action {
                format!("\x01ACTION {piece}\x01")
            } else {
                piece.to_string()
            };
            match reply_to.filter(|_| i == 0) {
                Some(parent) => out.push(irc_tagged(
                    &[("+draft/reply", parent)],
                    "PRIVMSG",
                    &[target],
                    Some(&body),
                )),
                None => out.push(irc_line("PRIVMSG", &[target], Some(&body))),
            }
        }
        self.typing_sent(target);
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
            line.reply_to = reply_to.map(str::to_string);
            self.add_line(index, line);
        }
    }

    pub(super) fn own_line(&self, kind: LineKind, text: String) -> Line {
        Line {
            time: Utc::now(),
            kind,
            from: (kind != LineKind::Info).then(|| self.nick.clone()),
            text,
            highlight: false,
            own: false,
            history: false,
            msgid: None,
            reply_to: None,
            reactions: Vec::new(),
        }
    }

    pub(super) fn active_target(&self, why: &'static str) -> Result<String, InputError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{connected, feed, state};

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
}
