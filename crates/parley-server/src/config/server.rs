//! `[server]`, `[listen]` and `[log]`: who the server says it is, where it accepts connections and
//! what it logs; with the reader of `server.default_channel_modes`, which the check and the state
//! that makes the default room both use.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[server]`: who this server says it is and how it greets people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The server's own name, the source of its replies.
    pub name: String,
    /// The network name announced in `RPL_ISUPPORT` (`NETWORK=`).
    pub network: String,
    /// Where the server is and who runs it, for `ADMIN` (257); empty says the network's name.
    pub admin_location: String,
    /// How to reach the server's administrators, for `ADMIN` (259); empty says none is set.
    pub admin_email: String,
    /// The message of the day; may span several lines.
    pub motd: String,
    /// Channel new clients are joined to after registration; empty turns that off.
    pub default_channel: String,
    /// The default room's modes whenever it is made (at start, after a restart, after it
    /// emptied), like `"+nt"`: see [`parse_room_modes`].
    pub default_channel_modes: String,
    /// The default room's topic whenever it is made; empty for none.
    pub default_channel_topic: String,
    /// Where persistent state lives. Defaults to the platform's data directory
    /// ([`crate::data_dir::platform_default`]); a relative path in a config file is taken from
    /// the file's directory (see [`Config::effective`](super::Config::effective)).
    pub data_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: "parley.local".to_owned(),
            network: "Parley".to_owned(),
            admin_location: String::new(),
            admin_email: String::new(),
            motd: "Welcome to Parley, a small and friendly IRC server.\n\
                   Everyone meets in #lobby: say hello there, and be kind.\n"
                .to_owned(),
            default_channel: "#lobby".to_owned(),
            default_channel_modes: "+nt".to_owned(),
            default_channel_topic: String::new(),
            data_dir: crate::data_dir::platform_default(),
        }
    }
}

/// `[listen]`: the addresses the server accepts connections on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// Plain-text (non-TLS) IRC listeners, each an `ip:port` socket address.
    pub plain: Vec<String>,
    /// TLS IRC listeners, each an `ip:port` socket address.
    pub tls: Vec<String>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            plain: vec!["127.0.0.1:6667".to_owned()],
            tls: vec!["0.0.0.0:6697".to_owned()],
        }
    }
}

/// `[log]`: what the server logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A level name (`trace`..`error`, `off`) or `tracing` filter directives such as `info,parley=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}

/// The default room's modes, as `server.default_channel_modes` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomModes {
    pub moderated: bool,
    pub no_external: bool,
    pub topic_ops_only: bool,
    pub limit: Option<usize>,
}

/// Read a `server.default_channel_modes` value: `+` (optional) and flags from `m`, `n`, `t`,
/// `l`, then `l`'s member limit, like `"+ntl 200"`. The error says what to write instead.
pub fn parse_room_modes(text: &str) -> Result<RoomModes, String> {
    let mut words = text.split_whitespace();
    let flags = words.next().unwrap_or("");
    let mut modes = RoomModes::default();
    let mut wants_limit = false;
    for (index, c) in flags.chars().enumerate() {
        match c {
            '+' if index == 0 => {}
            'm' => modes.moderated = true,
            'n' => modes.no_external = true,
            't' => modes.topic_ops_only = true,
            'l' => wants_limit = true,
            'i' | 'k' => {
                return Err(format!(
                    "+{c} would refuse every new user's automatic join (they come without an \
                     invite or key); leave it out, e.g. \"+nt\""
                ))
            }
            '-' => {
                return Err(format!(
                    "{text:?} takes modes away; list only the modes the room has, like \"+nt\""
                ))
            }
            other => {
                return Err(format!(
                    "{other:?} is not a mode the default channel can have; use m (moderated), \
                     n (no messages from outside), t (only operators set the topic) and \
                     l N (member limit), like \"+ntl 200\""
                ))
            }
        }
    }
    if wants_limit {
        let limit = words
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                "+l needs a member limit (a number above 0) after the flags, like \"+ntl 200\""
                    .to_owned()
            })?;
        modes.limit = Some(limit);
    }
    if let Some(extra) = words.next() {
        return Err(format!(
            "{extra:?} follows the modes but none of them takes it; only l takes a number, \
             like \"+ntl 200\""
        ));
    }
    Ok(modes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::invalid;

    #[test]
    fn default_channel_modes_and_topic_rules() {
        assert_eq!(
            parse_room_modes("+nt"),
            Ok(RoomModes {
                no_external: true,
                topic_ops_only: true,
                ..RoomModes::default()
            })
        );
        assert_eq!(
            parse_room_modes("mntl 200"),
            Ok(RoomModes {
                moderated: true,
                no_external: true,
                topic_ops_only: true,
                limit: Some(200),
            })
        );
        assert_eq!(parse_room_modes(""), Ok(RoomModes::default()));
        assert_eq!(parse_room_modes("+"), Ok(RoomModes::default()));
        for (bad, says) in [
            ("+int", "+i would refuse"),
            ("+k secret", "+k would refuse"),
            ("+n-t", "takes modes away"),
            ("+nx", "'x' is not a mode"),
            ("+ntl", "+l needs a member limit"),
            ("+ntl 0", "+l needs a member limit"),
            ("+nt 5", "\"5\" follows the modes"),
        ] {
            let text = format!("[server]\nname = \"a\"\ndefault_channel_modes = {bad:?}\n");
            let (key, line, message) = invalid(&text);
            assert_eq!(
                (key.as_str(), line),
                ("server.default_channel_modes", 3),
                "{bad:?}"
            );
            assert!(message.contains(says), "{bad:?}: {message}");
        }
        let (key, line, _) = invalid("[server]\ndefault_channel_topic = \"a\\nb\"\n");
        assert_eq!((key.as_str(), line), ("server.default_channel_topic", 2));
        let (key, line, message) =
            invalid("[server]\ndefault_channel_topic = \"hello\"\n[limits]\ntopic_len = 3\n");
        assert_eq!((key.as_str(), line), ("server.default_channel_topic", 2));
        assert!(message.contains("limits.topic_len"), "{message}");
    }
}
