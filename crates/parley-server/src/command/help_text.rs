//! The words `HELP` and `HELPOP` answer with: one topic per command the server accepts, plus an
//! index. Kept apart from the handler as plain data, so adding a command means adding a topic
//! here; a unit test walks the verb table in `command/mod.rs` and fails for a command without
//! one (or for a topic whose command is gone).

/// A help topic: its subject (a command in capitals, or an index word) and its lines. The first
/// line is the title (RPL_HELPSTART); the rest follow an empty line, as modern.ircdocs.horse
/// describes what most servers do.
pub struct Topic {
    pub subject: &'static str,
    pub lines: &'static [&'static str],
}

/// The answer to `HELP` without a subject.
pub const INDEX: Topic = Topic {
    subject: "*",
    lines: &[
        "** Parley help **",
        "Send HELP <command> for help on one command, for example HELP JOIN.",
        "HELP USERCMDS lists the commands everyone may use, HELP OPERCMDS the operators' ones.",
    ],
};

/// Commands everyone may use, for `HELP USERCMDS`.
pub const USERCMDS: Topic = Topic {
    subject: "USERCMDS",
    lines: &[
        "** Commands **",
        "Connecting: CAP NICK USER PASS AUTHENTICATE REGISTER PING PONG QUIT",
        "Talking: PRIVMSG NOTICE TAGMSG BATCH REDACT JOIN PART TOPIC NAMES LIST INVITE KICK",
        "Channels: MODE RENAME",
        "People: WHO WHOIS WHOWAS ISON USERHOST MONITOR AWAY SETNAME",
        "Accounts and history: SESSION ALWAYSON OWNER CHATHISTORY MARKREAD WEBPUSH SEARCH KEYS",
        "The server: LUSERS VERSION TIME MOTD INFO ADMIN LINKS MAP HELP HELPOP",
        "Send HELP <command> for any of them.",
    ],
};

/// Commands for server operators, for `HELP OPERCMDS`.
pub const OPERCMDS: Topic = Topic {
    subject: "OPERCMDS",
    lines: &[
        "** Operator commands **",
        "OPER KILL KLINE UNKLINE DLINE UNDLINE STATS SUSPEND UNSUSPEND WALLOPS REHASH CHGHOST",
        "Which of them you may use depends on your operator class (admin or moderator).",
    ],
};

/// One topic per command `dispatch` accepts, alphabetical.
pub const COMMANDS: &[Topic] = &[
    Topic {
        subject: "ADMIN",
        lines: &[
            "ADMIN [<server or nick>]",
            "Shows where a server of this network is and how to reach its administrators.",
        ],
    },
    Topic {
        subject: "ALWAYSON",
        lines: &[
            "ALWAYSON [ON | OFF]",
            "Shows or sets always-on for your account: when your last connection closes you",
            "stay in your channels (away), and your next login plays back what you missed.",
        ],
    },
    Topic {
        subject: "AUTHENTICATE",
        lines: &[
            "AUTHENTICATE <mechanism> | <base64 data> | * | +",
            "Logs in with SASL before registration; enable it first with CAP REQ :sasl.",
            "Mechanisms: PLAIN, SCRAM-SHA-256 and IRCV3BEARER (a login session's token).",
            "Data goes in base64 chunks of 400 bytes; * aborts, + is an empty response.",
        ],
    },
    Topic {
        subject: "AWAY",
        lines: &[
            "AWAY [:<message>]",
            "With a message, marks you away: people who message you get it as a reply.",
            "Without one, marks you back.",
        ],
    },
    Topic {
        subject: "BATCH",
        lines: &[
            "BATCH +<ref> draft/multiline <target> | BATCH -<ref>",
            "Sends one message of several lines (IRCv3 draft/multiline; CAP REQ :draft/multiline).",
            "Open the batch, send PRIVMSG or NOTICE lines tagged batch=<ref> to the same target,",
            "then close it. Clients without multiline get the lines one by one.",
        ],
    },
    Topic {
        subject: "CAP",
        lines: &[
            "CAP LS [302] | LIST | REQ :<capabilities> | END",
            "Negotiates IRCv3 capabilities. CAP LS lists what the server offers and holds",
            "registration until CAP END; CAP REQ turns capabilities on (-name turns one off).",
        ],
    },
    Topic {
        subject: "CHATHISTORY",
        lines: &[
            "CHATHISTORY LATEST|BEFORE|AFTER|AROUND <target> <reference> <limit>",
            "CHATHISTORY BETWEEN <target> <reference> <reference> <limit>",
            "CHATHISTORY TARGETS <timestamp> <timestamp> <limit>",
            "Fetches stored messages of a channel you are in or a private conversation.",
            "A reference is * (LATEST only), timestamp=<ISO 8601 time> or msgid=<id>.",
        ],
    },
    Topic {
        subject: "CHGHOST",
        lines: &[
            "CHGHOST <nick> <new-user> <new-host>",
            "Operators: changes the username and host others see for someone (a virtual host).",
            "Their real address stays visible to operators (WHO %i); the change is audited.",
        ],
    },
    Topic {
        subject: "DLINE",
        lines: &[
            "DLINE [<duration>] <address or CIDR> [:<reason>]",
            "Operators: refuses connections from an address or network and closes those",
            "connected from it. A duration like 30m, 1h or 7d makes it expire.",
        ],
    },
    Topic {
        subject: "HELP",
        lines: &[
            "HELP [<subject>]",
            "Shows help on a command, or the index without a subject.",
            "HELP USERCMDS and HELP OPERCMDS list the commands.",
        ],
    },
    Topic {
        subject: "HELPOP",
        lines: &[
            "HELPOP [<subject>]",
            "The same as HELP, for clients that send HELPOP.",
        ],
    },
    Topic {
        subject: "INFO",
        lines: &[
            "INFO",
            "Shows what this server is: software, version, build and network.",
        ],
    },
    Topic {
        subject: "INVITE",
        lines: &[
            "INVITE <nick> <channel>",
            "Invites someone to a channel you are in; they may then join it even if it is",
            "invite-only (+i). On a +i channel only its operators may invite.",
        ],
    },
    Topic {
        subject: "ISON",
        lines: &[
            "ISON <nick> [<nick> ...]",
            "Answers which of the given nicks are online.",
        ],
    },
    Topic {
        subject: "JOIN",
        lines: &[
            "JOIN <channel>[,<channel>...] [<key>[,<key>...]]",
            "Joins channels, creating those that do not exist (you become their operator).",
            "JOIN 0 leaves every channel you are in.",
        ],
    },
    Topic {
        subject: "KEYS",
        lines: &[
            "KEYS UPLOAD|OTK|FALLBACK|COUNT|REMOVE <device key> ...  or  KEYS LIST|CLAIM <nick> ...",
            "The end-to-end encryption key directory (parley.chat/e2e): Parley clients publish",
            "their devices' public keys and fetch their peers'. Needs an account. See docs/e2e.md.",
        ],
    },
    Topic {
        subject: "KICK",
        lines: &[
            "KICK <channel> <nick>[,<nick>...] [:<reason>]",
            "Channel operators: removes someone from the channel.",
        ],
    },
    Topic {
        subject: "KILL",
        lines: &[
            "KILL <nick> :<reason>",
            "Operators: disconnects someone from the server.",
        ],
    },
    Topic {
        subject: "KLINE",
        lines: &[
            "KLINE [<duration>] <nick!user@host mask> [:<reason>]",
            "Operators: bans a mask from the server and disconnects those it matches.",
            "A duration like 30m, 1h or 7d makes it expire.",
        ],
    },
    Topic {
        subject: "LINKS",
        lines: &[
            "LINKS",
            "Lists the servers of this network: this one, and in a cluster the other nodes it",
            "hears from, each under its own server name.",
        ],
    },
    Topic {
        subject: "LIST",
        lines: &[
            "LIST [<channel>[,<channel>...]]",
            "Lists channels with their member counts and topics (secret ones only to their",
            "members).",
        ],
    },
    Topic {
        subject: "LUSERS",
        lines: &[
            "LUSERS",
            "Shows how many people, operators and channels there are.",
        ],
    },
    Topic {
        subject: "MAP",
        lines: &[
            "MAP",
            "Shows the servers of this network with how many people are on each.",
        ],
    },
    Topic {
        subject: "MARKREAD",
        lines: &[
            "MARKREAD <target> [timestamp=<time>]",
            "Sets or asks where you stopped reading a channel or conversation (IRCv3",
            "draft/read-marker). Needs an account; your other devices are told. It never goes back.",
        ],
    },
    Topic {
        subject: "MODE",
        lines: &[
            "MODE <channel> [<+|-modes> [<parameters>]]  or  MODE <nick> [<+|-modes>]",
            "Channel modes: o (operator) v (voice) b (ban) e (ban exception) I (invite",
            "exception) q (quiet) k (key) l (member limit) i (invite-only) m (moderated)",
            "n (no messages from outside) s (secret) t (only operators set the topic).",
            "User modes: i (invisible) w (receive WALLOPS) o (operator, only removable).",
            "MODE <channel> b (or e, I, q) lists that list.",
        ],
    },
    Topic {
        subject: "MONITOR",
        lines: &[
            "MONITOR + <nick>[,<nick>...] | - <nick>[,...] | C | L | S",
            "Watches nicks: you are told (730/731) when they connect or leave.",
            "+ adds, - removes, C clears your list, L lists it, S shows who is online now.",
        ],
    },
    Topic {
        subject: "MOTD",
        lines: &["MOTD", "Shows the server's message of the day."],
    },
    Topic {
        subject: "NAMES",
        lines: &[
            "NAMES <channel>[,<channel>...]",
            "Lists who is in a channel (@ marks operators, + voiced members).",
        ],
    },
    Topic {
        subject: "NICK",
        lines: &[
            "NICK <nick>",
            "Sets or changes your nick. A registered account's name is that account's own.",
        ],
    },
    Topic {
        subject: "NOTICE",
        lines: &[
            "NOTICE <target>[,<target>...] :<text>",
            "Like PRIVMSG, but never answered automatically, not even with an error.",
        ],
    },
    Topic {
        subject: "OPER",
        lines: &[
            "OPER [<name> [<password>]]",
            "Makes you a server operator if your account is one.",
        ],
    },
    Topic {
        subject: "OWNER",
        lines: &[
            "OWNER <channel> [<account> | -]",
            "Shows a registered channel's owner. Its owner (or an operator) may hand it to",
            "another account, register an unregistered channel, or drop it with -.",
        ],
    },
    Topic {
        subject: "PART",
        lines: &[
            "PART <channel>[,<channel>...] [:<reason>]",
            "Leaves channels.",
        ],
    },
    Topic {
        subject: "PASS",
        lines: &[
            "PASS <account>:<password>",
            "Before registration: logs in to an account (PASS <password> uses your nick).",
            "SASL (AUTHENTICATE) is the better way where your client has it.",
        ],
    },
    Topic {
        subject: "PING",
        lines: &[
            "PING <token>",
            "The server answers with PONG and the same token.",
        ],
    },
    Topic {
        subject: "PONG",
        lines: &["PONG <token>", "Answers the server's PING."],
    },
    Topic {
        subject: "PRIVMSG",
        lines: &[
            "PRIVMSG <target>[,<target>...] :<text>",
            "Sends a message to channels or people. A message to an account that is",
            "offline is kept for its next login.",
        ],
    },
    Topic {
        subject: "QUIT",
        lines: &["QUIT [:<reason>]", "Disconnects, telling others why."],
    },
    Topic {
        subject: "REDACT",
        lines: &[
            "REDACT <target> <msgid> [:<reason>]",
            "Deletes a message (IRCv3 draft/message-redaction): your own, or any in a channel",
            "you operate. It disappears from history too.",
        ],
    },
    Topic {
        subject: "REGISTER",
        lines: &[
            "REGISTER <account | *> <email | *> <password>",
            "Creates an account (* uses your nick as its name) and logs you in to it.",
        ],
    },
    Topic {
        subject: "REHASH",
        lines: &[
            "REHASH",
            "Operators: re-reads the config file and certificate, as SIGHUP does.",
        ],
    },
    Topic {
        subject: "RENAME",
        lines: &[
            "RENAME <#old> <#new> [:<reason>]",
            "Renames a channel you operate; members, modes, topic and history follow it.",
            "Clients without draft/channel-rename see a PART and a JOIN.",
            "A registered channel is renamed by its owner only.",
        ],
    },
    Topic {
        subject: "SEARCH",
        lines: &[
            "SEARCH text=<words>[;in=<target>][;from=<nick>][;after=<time>][;before=<time>][;limit=<n>]",
            "Finds stored messages by their words in the channels you are in and your own",
            "conversations (capability soju.im/search). Every word must match; word* matches a",
            "prefix; escape spaces in a value as \\s. You get the newest matches (at or before",
            "before=), or with after= the first ones from then, in a soju.im/search batch.",
        ],
    },
    Topic {
        subject: "SESSION",
        lines: &[
            "SESSION NEW [:<label>]  or  SESSION REVOKE [*]",
            "NEW issues a login token for this account (for SASL IRCV3BEARER) so a device",
            "need not keep your password; REVOKE ends this connection's session, * all of them.",
        ],
    },
    Topic {
        subject: "SETNAME",
        lines: &[
            "SETNAME :<realname>",
            "Changes your real name (IRCv3 setname); others with the cap are told.",
        ],
    },
    Topic {
        subject: "STATS",
        lines: &[
            "STATS <k | d>",
            "Operators: lists the K-lines (k) or D-lines (d).",
        ],
    },
    Topic {
        subject: "SUSPEND",
        lines: &[
            "SUSPEND <account> [:<reason>]",
            "Operators: refuses an account's logins and disconnects its connections.",
        ],
    },
    Topic {
        subject: "TAGMSG",
        lines: &[
            "TAGMSG <target>[,<target>...]",
            "Sends only tags, such as +typing=active or +draft/react=<emoji> (IRCv3 message-tags).",
            "Delivered only to clients that enabled message-tags. Reactions and replies are",
            "kept in history (shown to clients with draft/event-playback); typing is not.",
        ],
    },
    Topic {
        subject: "TIME",
        lines: &["TIME", "Shows the server's local time."],
    },
    Topic {
        subject: "TOPIC",
        lines: &[
            "TOPIC <channel> [:<topic>]",
            "Shows a channel's topic, or sets it (on a +t channel only its operators may).",
        ],
    },
    Topic {
        subject: "UNDLINE",
        lines: &["UNDLINE <address or CIDR>", "Operators: removes a D-line."],
    },
    Topic {
        subject: "UNKLINE",
        lines: &["UNKLINE <mask>", "Operators: removes a K-line."],
    },
    Topic {
        subject: "UNSUSPEND",
        lines: &[
            "UNSUSPEND <account>",
            "Operators: lets a suspended account log in again.",
        ],
    },
    Topic {
        subject: "USER",
        lines: &[
            "USER <username> 0 * :<realname>",
            "Before registration: gives your username and real name.",
        ],
    },
    Topic {
        subject: "USERHOST",
        lines: &[
            "USERHOST <nick> [<nick> ...]",
            "Shows the user@host of up to five nicks.",
        ],
    },
    Topic {
        subject: "VERSION",
        lines: &[
            "VERSION",
            "Shows the server's version and what it supports (ISUPPORT).",
        ],
    },
    Topic {
        subject: "WALLOPS",
        lines: &[
            "WALLOPS :<text>",
            "Operators: sends a message to everyone with user mode +w.",
        ],
    },
    Topic {
        subject: "WEBPUSH",
        lines: &[
            "WEBPUSH REGISTER <endpoint> p256dh=<key>;auth=<secret>  or  WEBPUSH UNREGISTER <endpoint>",
            "Subscribes a browser to push notifications of private messages and mentions while",
            "it is closed (IRCv3 draft/webpush); the web client does it from its bell. Needs an account.",
        ],
    },
    Topic {
        subject: "WHO",
        lines: &[
            "WHO <channel | mask>",
            "Lists the members of a channel, or the people whose nick matches a mask.",
        ],
    },
    Topic {
        subject: "WHOIS",
        lines: &[
            "WHOIS <nick>",
            "Shows who someone is: their host, account, channels, idle time and more.",
        ],
    },
    Topic {
        subject: "WHOWAS",
        lines: &[
            "WHOWAS <nick> [<count>]",
            "Shows who recently used a nick that is gone.",
        ],
    },
];

/// The topic for `subject` (any case), if there is one.
pub fn topic(subject: &str) -> Option<&'static Topic> {
    [&INDEX, &USERCMDS, &OPERCMDS]
        .into_iter()
        .chain(COMMANDS)
        .find(|t| t.subject.eq_ignore_ascii_case(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verbs `dispatch` matches on, read from its source: every `"VERB" =>` arm (and each
    /// name of a `"A" | "B" =>` arm) of the one `match` in `command/mod.rs`.
    fn dispatched_verbs() -> Vec<String> {
        let source = include_str!("mod.rs");
        let body = source
            .split_once("pub fn dispatch(")
            .map(|(_, rest)| rest)
            .expect("command/mod.rs has fn dispatch");
        let mut verbs = Vec::new();
        for line in body.lines() {
            let line = line.trim();
            let Some((pattern, _)) = line.split_once("=>") else {
                continue;
            };
            if !pattern.trim_start().starts_with('"') {
                continue;
            }
            for name in pattern.split('|') {
                let name = name.trim().trim_matches('"');
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase()) {
                    verbs.push(name.to_string());
                }
            }
        }
        verbs
    }

    #[test]
    fn every_dispatched_command_has_help() {
        let verbs = dispatched_verbs();
        assert!(verbs.len() > 40, "the verb table was read: {verbs:?}");
        let missing: Vec<&String> = verbs.iter().filter(|v| topic(v).is_none()).collect();
        assert!(
            missing.is_empty(),
            "commands without a help topic in command/help_text.rs: {missing:?}"
        );
    }

    #[test]
    fn every_command_topic_is_a_dispatched_command() {
        let verbs = dispatched_verbs();
        let stale: Vec<&str> = COMMANDS
            .iter()
            .map(|t| t.subject)
            .filter(|s| !verbs.iter().any(|v| v == s))
            .collect();
        assert!(
            stale.is_empty(),
            "help for commands that are gone: {stale:?}"
        );
    }

    #[test]
    fn every_command_is_in_an_index() {
        let listed: Vec<&str> = USERCMDS.lines[1..]
            .iter()
            .chain(&OPERCMDS.lines[1..])
            .flat_map(|l| l.split([' ', ':']))
            .collect();
        for topic in COMMANDS {
            assert!(
                listed.contains(&topic.subject),
                "{} is in neither USERCMDS nor OPERCMDS",
                topic.subject
            );
        }
    }

    #[test]
    fn topics_have_a_title_and_text_and_fit_a_line() {
        for topic in [&INDEX, &USERCMDS, &OPERCMDS].into_iter().chain(COMMANDS) {
            assert!(topic.lines.len() >= 2, "{}", topic.subject);
            for line in topic.lines {
                // Room for the numeric, the nick and the subject in a 512-byte line.
                assert!(line.len() <= 400, "{}: {line}", topic.subject);
                assert!(!line.contains(['\r', '\n']), "{}", topic.subject);
            }
        }
    }
}
