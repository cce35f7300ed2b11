//! What a user types, turned into an [`Action`] by a pure function, so every front end (terminal,
//! line mode, GUI) accepts the same commands and every mistake gets the same clear message.
//! Turning an action into protocol lines needs the chat state (the active buffer, the own nick)
//! and happens in [`crate::State::act`].

/// One thing the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Plain text for the active buffer.
    Say(String),
    /// `/me text`: a CTCP ACTION in the active buffer.
    Me(String),
    Join {
        channel: String,
        key: Option<String>,
    },
    /// `/part [#chan] [reason]`; no channel means the active one.
    Part {
        channel: Option<String>,
        reason: Option<String>,
    },
    Msg {
        target: String,
        text: String,
    },
    /// Open (and focus) a private conversation, optionally saying something.
    Query {
        nick: String,
        text: Option<String>,
    },
    Nick(String),
    /// `/topic` shows, `/topic text` sets; the channel defaults to the active one.
    Topic {
        channel: Option<String>,
        topic: Option<String>,
    },
    Kick {
        channel: Option<String>,
        nick: String,
        reason: Option<String>,
    },
    Ban {
        channel: Option<String>,
        mask: String,
    },
    Invite {
        nick: String,
        channel: Option<String>,
    },
    Whois(String),
    /// `None` clears the away status.
    Away(Option<String>),
    Quit(Option<String>),
    Help(Option<String>),
    /// `/broadcast text`: `PRIVMSG $* :text`, for every user on the server (if allowed).
    Broadcast(String),
    /// `/create_group name`: join `#name` only if it does not exist yet.
    CreateGroup(String),
    JoinGroup(String),
    GroupMsg {
        group: String,
        text: String,
    },
    LeaveGroup(String),
    /// Load older history of the active buffer.
    History,
    /// Close the active buffer (parting a channel first).
    Close,
    /// `/quote LINE`: sent as is.
    Raw(String),
    /// React to a message of the active buffer (`+draft/react`); no msgid means the newest
    /// message from someone else.
    React {
        msgid: Option<String>,
        reaction: String,
    },
    /// Answer a message of the active buffer (`+draft/reply`); no msgid means the newest
    /// message from someone else.
    Reply {
        msgid: Option<String>,
        text: String,
    },
    /// The input now holds this text: typing notices (`+typing`), sent as the spec allows.
    Typing(String),
    /// `/search [#channel|nick] <words>`: a server-side search (`soju.im/search`).
    Search(SearchQuery),
    /// `/search` alone: the page of results older than those shown.
    SearchMore,
    /// `/e2e [on|off]`: end-to-end encryption for this private conversation or channel (off by
    /// default in channels: every member needs keys); alone: its status.
    E2e(Option<bool>),
    /// `/verify <nick> [confirm]`: the safety number with `nick`; `confirm` marks the keys
    /// verified after comparing it.
    Verify {
        nick: String,
        confirm: bool,
    },
    /// `/e2e devices`: this account's devices in the key directory.
    E2eDevices,
    /// `/e2e remove <id>`: take one of this account's other devices out of the directory (a
    /// lost or reinstalled one), by the start of its id as `/e2e devices` shows it.
    E2eRemove(String),
}

use crate::state::SearchQuery;

/// Why a line of input was not accepted; the message says what to type instead.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    #[error("nothing to send")]
    Empty,
    #[error("unknown command /{0}; type /help for the list of commands")]
    UnknownCommand(String),
    #[error("usage: {0}")]
    Usage(&'static str),
    #[error("{name:?} is not a valid {what}: {reason}")]
    Invalid {
        what: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error("{0}")]
    NoTarget(&'static str),
    #[error("not connected to the server; the line was not sent")]
    NotConnected,
    #[error("line contains a line break or NUL, which IRC cannot carry")]
    ControlCharacter,
}

/// Every command with its usage and a one-line description: `/help` prints it, completion uses it.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("join", "/join <#channel> [key]", "join a channel"),
    (
        "part",
        "/part [#channel] [reason]",
        "leave a channel (default: this one)",
    ),
    ("msg", "/msg <nick|#channel> <text>", "send a message"),
    (
        "query",
        "/query <nick> [text]",
        "open a private conversation",
    ),
    ("me", "/me <action>", "send an action (* you waves)"),
    ("nick", "/nick <newnick>", "change your nick"),
    ("topic", "/topic [#channel] [text]", "show or set the topic"),
    (
        "kick",
        "/kick [#channel] <nick> [reason]",
        "remove someone (operators)",
    ),
    (
        "ban",
        "/ban [#channel] <mask|nick>",
        "ban a mask (operators)",
    ),
    ("invite", "/invite <nick> [#channel]", "invite someone"),
    ("whois", "/whois <nick>", "who is that?"),
    (
        "away",
        "/away [message]",
        "set away; without a message: back",
    ),
    ("quit", "/quit [reason]", "disconnect and exit"),
    ("exit", "/exit", "disconnect and exit"),
    ("help", "/help [command]", "this list"),
    (
        "broadcast",
        "/broadcast <text>",
        "message everyone on the server (if allowed)",
    ),
    (
        "create_group",
        "/create_group <name>",
        "create a new group (fails if it exists)",
    ),
    ("join_group", "/join_group <name>", "join a group"),
    ("group_msg", "/group_msg <name> <text>", "message a group"),
    ("leave_group", "/leave_group <name>", "leave a group"),
    ("history", "/history", "load older messages of this buffer"),
    (
        "react",
        "/react <reaction>",
        "react to the newest message here (👍, lol...)",
    ),
    (
        "reply",
        "/reply <text>",
        "answer the newest message here, quoting it",
    ),
    (
        "search",
        "/search [#channel|nick] <words>",
        "search the history on the server; alone: older results",
    ),
    (
        "e2e",
        "/e2e [on|off|devices|remove <id>]",
        "end-to-end encryption in this conversation or channel; your devices; retire one",
    ),
    (
        "verify",
        "/verify <nick> [confirm]",
        "safety number with nick; confirm after comparing it",
    ),
    ("close", "/close", "close this buffer"),
    ("quote", "/quote <raw IRC line>", "send a raw protocol line"),
];

/// Parses one line of input. Text not starting with '/' (or starting with "//") is chat text.
pub fn parse(line: &str) -> Result<Action, InputError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.contains(['\r', '\n', '\0']) {
        return Err(InputError::ControlCharacter);
    }
    if line.trim().is_empty() {
        return Err(InputError::Empty);
    }
    let Some(command_line) = line.strip_prefix('/') else {
        return Ok(Action::Say(line.to_string()));
    };
    if command_line.starts_with('/') {
        return Ok(Action::Say(command_line.to_string()));
    }
    let (name, rest) = split_word(command_line);
    let rest = rest.trim();
    let name = name.to_ascii_lowercase();
    let usage = |u: &'static str| InputError::Usage(u);
    let text = |u: &'static str| {
        if rest.is_empty() {
            Err(usage(u))
        } else {
            Ok(rest.to_string())
        }
    };
    let optional = || (!rest.is_empty()).then(|| rest.to_string());
    Ok(match name.as_str() {
        "join" | "j" => {
            let (channel, key) = split_word(rest);
            if channel.is_empty() {
                return Err(usage("/join <#channel> [key]"));
            }
            Action::Join {
                channel: channel_name(channel)?,
                key: word(key),
            }
        }
        "part" | "leave" => {
            let (first, after) = split_word(rest);
            if is_channel(first) {
                Action::Part {
                    channel: Some(first.to_string()),
                    reason: word_rest(after),
                }
            } else {
                Action::Part {
                    channel: None,
                    reason: optional(),
                }
            }
        }
        "msg" | "privmsg" | "m" => {
            let (target, body) = split_word(rest);
            if target.is_empty() || body.trim().is_empty() {
                return Err(usage("/msg <nick|#channel> <text>"));
            }
            Action::Msg {
                target: target.to_string(),
                text: body.to_string(),
            }
        }
        "query" | "q" => {
            let (nick, body) = split_word(rest);
            if nick.is_empty() {
                return Err(usage("/query <nick> [text]"));
            }
            Action::Query {
                nick: nick_name(nick)?,
                text: word_rest(body),
            }
        }
        "me" => Action::Me(text("/me <action>")?),
        "nick" => {
            let (nick, extra) = split_word(rest);
            if nick.is_empty() || !extra.trim().is_empty() {
                return Err(usage("/nick <newnick>"));
            }
            Action::Nick(nick_name(nick)?)
        }
        "topic" => {
            let (first, after) = split_word(rest);
            if is_channel(first) {
                Action::Topic {
                    channel: Some(first.to_string()),
                    topic: word_rest(after),
                }
            } else {
                Action::Topic {
                    channel: None,
                    topic: optional(),
                }
            }
        }
        "kick" => {
            let (first, after) = split_word(rest);
            let (channel, nick, reason) = if is_channel(first) {
                let (nick, reason) = split_word(after);
                (Some(first.to_string()), nick, reason)
            } else {
                (None, first, after)
            };
            if nick.is_empty() {
                return Err(usage("/kick [#channel] <nick> [reason]"));
            }
            Action::Kick {
                channel,
                nick: nick.to_string(),
                reason: word_rest(reason),
            }
        }
        "ban" => {
            let (first, after) = split_word(rest);
            let (channel, mask) = if is_channel(first) {
                (Some(first.to_string()), after.trim())
            } else {
                (None, rest)
            };
            if mask.is_empty() || mask.contains(' ') {
                return Err(usage("/ban [#channel] <mask|nick>"));
            }
            Action::Ban {
                channel,
                mask: mask.to_string(),
            }
        }
        "invite" => {
            let (nick, channel) = split_word(rest);
            if nick.is_empty() {
                return Err(usage("/invite <nick> [#channel]"));
            }
            Action::Invite {
                nick: nick.to_string(),
                channel: word(channel),
            }
        }
        "whois" | "wi" => {
            let (nick, _) = split_word(rest);
            if nick.is_empty() {
                return Err(usage("/whois <nick>"));
            }
            Action::Whois(nick.to_string())
        }
        "away" => Action::Away(optional()),
        "quit" => Action::Quit(optional()),
        "exit" => Action::Quit(None),
        "help" | "h" | "?" => {
            Action::Help(word(rest).map(|w| w.trim_start_matches('/').to_string()))
        }
        "broadcast" | "wall" => Action::Broadcast(text("/broadcast <text>")?),
        "create_group" => Action::CreateGroup(group_name(rest, "/create_group <name>")?),
        "join_group" => Action::JoinGroup(group_name(rest, "/join_group <name>")?),
        "leave_group" => Action::LeaveGroup(group_name(rest, "/leave_group <name>")?),
        "group_msg" => {
            let (group, body) = split_word(rest);
            if group.is_empty() || body.trim().is_empty() {
                return Err(usage("/group_msg <name> <text>"));
            }
            Action::GroupMsg {
                group: group_name(group, "/group_msg <name> <text>")?,
                text: body.to_string(),
            }
        }
        "history" => Action::History,
        "react" => Action::React {
            msgid: None,
            reaction: text("/react <reaction>")?,
        },
        "reply" => Action::Reply {
            msgid: None,
            text: text("/reply <text>")?,
        },
        "search" | "grep" => search_action(rest),
        "e2e" => {
            let (word, after) = split_word(rest);
            match (word.to_ascii_lowercase().as_str(), after.trim()) {
                ("", _) => Action::E2e(None),
                ("on", "") => Action::E2e(Some(true)),
                ("off", "") => Action::E2e(Some(false)),
                ("devices", "") => Action::E2eDevices,
                ("remove", id) if !id.is_empty() && !id.contains(' ') => {
                    Action::E2eRemove(id.to_string())
                }
                _ => return Err(usage("/e2e [on|off|devices|remove <device id>]")),
            }
        }
        "verify" => {
            let (nick, after) = split_word(rest);
            let confirm = match after.trim() {
                "" => false,
                "confirm" => true,
                _ => return Err(usage("/verify <nick> [confirm]")),
            };
            if nick.is_empty() {
                return Err(usage("/verify <nick> [confirm]"));
            }
            Action::Verify {
                nick: nick_name(nick)?,
                confirm,
            }
        }
        "close" | "wc" => Action::Close,
        "quote" | "raw" => Action::Raw(text("/quote <raw IRC line>")?),
        _ => return Err(InputError::UnknownCommand(name)),
    })
}

/// `/search` alone continues the last search; a first word that is a channel limits it there
/// (a nick is recognised by [`crate::State`], which knows the open conversations).
fn search_action(rest: &str) -> Action {
    let (first, after) = split_word(rest);
    if first.is_empty() {
        return Action::SearchMore;
    }
    let (target, text) = if is_channel(first) && !after.trim().is_empty() {
        (Some(first.to_string()), after.trim())
    } else {
        (None, rest)
    };
    Action::Search(SearchQuery {
        text: text.to_string(),
        target,
        from: None,
    })
}

/// The usage and description of a command, for `/help <command>`.
pub fn help_for(command: &str) -> Option<(&'static str, &'static str)> {
    let command = command.to_ascii_lowercase();
    COMMANDS
        .iter()
        .find(|(name, _, _)| *name == command)
        .map(|(_, usage, about)| (*usage, *about))
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.split_once(' ') {
        Some((first, rest)) => (first, rest.trim_start()),
        None => (s, ""),
    }
}

fn word(s: &str) -> Option<String> {
    let (first, _) = split_word(s);
    (!first.is_empty()).then(|| first.to_string())
}

fn word_rest(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// '#' and '&' start channel names (CHANTYPES of nearly every server).
pub fn is_channel(name: &str) -> bool {
    name.starts_with(['#', '&'])
}

fn check_name(what: &'static str, name: &str) -> Result<(), InputError> {
    let invalid = |reason| InputError::Invalid {
        what,
        name: name.to_string(),
        reason,
    };
    if name.chars().any(|c| c.is_control() || c == ' ' || c == ',') {
        return Err(invalid(
            "spaces, commas and control characters are not allowed",
        ));
    }
    if name.len() > 50 {
        return Err(invalid("it is longer than 50 bytes"));
    }
    Ok(())
}

/// A channel name as typed (with or without '#'), checked and with its '#'.
pub fn channel_name(name: &str) -> Result<String, InputError> {
    check_name("channel name", name)?;
    Ok(if is_channel(name) {
        name.to_string()
    } else {
        format!("#{name}")
    })
}

fn nick_name(nick: &str) -> Result<String, InputError> {
    check_name("nick", nick)?;
    if is_channel(nick) || nick.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == ':') {
        return Err(InputError::Invalid {
            what: "nick",
            name: nick.to_string(),
            reason: "a nick cannot start with a digit, '-', ':', '#' or '&'",
        });
    }
    Ok(nick.to_string())
}

/// A group is a channel; users type its name with or without '#'.
fn group_name(rest: &str, usage: &'static str) -> Result<String, InputError> {
    let (name, extra) = split_word(rest);
    if name.is_empty() || !extra.trim().is_empty() {
        return Err(InputError::Usage(usage));
    }
    let channel = channel_name(name)?;
    if channel.len() < 2 {
        return Err(InputError::Usage(usage));
    }
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_escaped_slash_are_chat() {
        assert_eq!(parse("hello there"), Ok(Action::Say("hello there".into())));
        assert_eq!(
            parse("//not a command"),
            Ok(Action::Say("/not a command".into()))
        );
        assert_eq!(parse("   "), Err(InputError::Empty));
        assert_eq!(parse("a\0b"), Err(InputError::ControlCharacter));
    }

    #[test]
    fn short_commands() {
        assert_eq!(
            parse("/msg bob hi there"),
            Ok(Action::Msg {
                target: "bob".into(),
                text: "hi there".into()
            })
        );
        assert_eq!(
            parse("/broadcast all hands"),
            Ok(Action::Broadcast("all hands".into()))
        );
        assert_eq!(
            parse("/create_group team"),
            Ok(Action::CreateGroup("#team".into()))
        );
        assert_eq!(
            parse("/join_group #team"),
            Ok(Action::JoinGroup("#team".into()))
        );
        assert_eq!(
            parse("/leave_group team"),
            Ok(Action::LeaveGroup("#team".into()))
        );
        assert_eq!(
            parse("/group_msg team lunch?"),
            Ok(Action::GroupMsg {
                group: "#team".into(),
                text: "lunch?".into()
            })
        );
        assert_eq!(parse("/exit"), Ok(Action::Quit(None)));
    }

    #[test]
    fn irc_commands() {
        assert_eq!(
            parse("/JOIN rust key"),
            Ok(Action::Join {
                channel: "#rust".into(),
                key: Some("key".into())
            })
        );
        assert_eq!(
            parse("/part #a bye all"),
            Ok(Action::Part {
                channel: Some("#a".into()),
                reason: Some("bye all".into())
            })
        );
        assert_eq!(
            parse("/part see you"),
            Ok(Action::Part {
                channel: None,
                reason: Some("see you".into())
            })
        );
        assert_eq!(
            parse("/kick bob spam"),
            Ok(Action::Kick {
                channel: None,
                nick: "bob".into(),
                reason: Some("spam".into())
            })
        );
        assert_eq!(
            parse("/topic #a new topic"),
            Ok(Action::Topic {
                channel: Some("#a".into()),
                topic: Some("new topic".into())
            })
        );
        assert_eq!(parse("/away"), Ok(Action::Away(None)));
        assert_eq!(parse("/me waves"), Ok(Action::Me("waves".into())));
        assert_eq!(parse("/quote PING x"), Ok(Action::Raw("PING x".into())));
        assert_eq!(parse("/help msg"), Ok(Action::Help(Some("msg".into()))));
        assert_eq!(
            parse("/react 👍"),
            Ok(Action::React {
                msgid: None,
                reaction: "👍".into()
            })
        );
        assert_eq!(
            parse("/reply sure, at noon"),
            Ok(Action::Reply {
                msgid: None,
                text: "sure, at noon".into()
            })
        );
        assert_eq!(parse("/react"), Err(InputError::Usage("/react <reaction>")));
    }

    #[test]
    fn bad_input_is_explained() {
        assert_eq!(
            parse("/frobnicate"),
            Err(InputError::UnknownCommand("frobnicate".into()))
        );
        assert_eq!(
            parse("/msg bob"),
            Err(InputError::Usage("/msg <nick|#channel> <text>"))
        );
        assert_eq!(
            parse("/create_group"),
            Err(InputError::Usage("/create_group <name>"))
        );
        assert_eq!(
            parse("/create_group a b"),
            Err(InputError::Usage("/create_group <name>"))
        );
        assert!(matches!(
            parse("/nick 9lives"),
            Err(InputError::Invalid { .. })
        ));
        assert!(matches!(
            parse("/join a,b"),
            Err(InputError::Invalid { .. })
        ));
        assert_eq!(parse("/me"), Err(InputError::Usage("/me <action>")));
        let message = parse("/frob").expect_err("unknown").to_string();
        assert!(message.contains("/help"), "{message}");
    }

    #[test]
    fn every_command_has_help() {
        for (name, usage, _) in COMMANDS {
            assert!(usage.starts_with(&format!("/{name}")), "{usage}");
            assert!(help_for(name).is_some());
        }
    }
}
