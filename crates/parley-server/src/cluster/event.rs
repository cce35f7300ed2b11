//! What crosses the bus: one [`Envelope`] per change or message, JSON in a JetStream stream.
//!
//! Every node reads the stream in its one order, so everything a node delivers from it reaches
//! its local users in the same order as on every other node. An event says what changed, in
//! words a replica can apply without the checks the origin already made (the origin decided a
//! JOIN was allowed; the others only add the member), and carries what the lines users see are
//! made of, so each node serializes them once for its own users.

use serde::{Deserialize, Serialize};

/// A user anywhere in the cluster: `node~incarnation~connection`. The incarnation changes at
/// every start, so users of a node's earlier life are never mistaken for its current ones.
pub type Uid = String;

pub fn uid(node: &str, incarnation: u64, id: u64) -> Uid {
    format!("{node}~{incarnation:x}~{id}")
}

/// The node and incarnation a uid belongs to.
pub fn uid_origin(uid: &str) -> Option<(&str, u64)> {
    let mut parts = uid.split('~');
    let node = parts.next()?;
    let incarnation = u64::from_str_radix(parts.next()?, 16).ok()?;
    Some((node, incarnation))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub node: String,
    pub incarnation: u64,
    /// This node's own count of what it published; matches a stream entry to the local work
    /// (an echo's label) waiting for it.
    pub eid: u64,
    pub event: Event,
}

/// A registered user as other nodes see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserInfo {
    pub uid: Uid,
    pub nick: String,
    pub username: String,
    pub realname: String,
    pub host: String,
    pub account: Option<String>,
    pub secure: bool,
    pub away: Option<String>,
    pub invisible: bool,
    /// User mode `+B`; absent from older nodes' events (no bot then).
    #[serde(default)]
    pub bot: bool,
    pub oper: bool,
    pub signon_ms: i64,
}

/// A member of a channel in a snapshot: who, and whether `@` and `+`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Membership {
    pub uid: Uid,
    pub op: bool,
    pub voice: bool,
}

/// A channel's state in a snapshot, for a node that starts while others run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelInfo {
    pub name: String,
    pub created_ms: i64,
    pub topic: Option<TopicInfo>,
    /// The mode changes that rebuild the channel's modes and lists from nothing.
    pub modes: Vec<ModeChange>,
    pub members: Vec<Membership>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicInfo {
    pub text: String,
    pub set_by: String,
    pub set_at_ms: i64,
}

/// One applied channel mode change: `+o nick`, `-k`, `+b mask`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModeChange {
    pub adding: bool,
    pub mode: char,
    pub arg: Option<String>,
    /// For `+o`/`+v`: the member's uid (`arg` is its nick, as the line shows it), so every node
    /// changes that user's status and not whoever holds the nick when the event is read.
    /// Absent from older nodes' events, which are applied by nick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Uid>,
}

/// Where a message goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Target {
    /// Casefolded channel name.
    Channel(String),
    User(Uid),
    /// `$*`: every user.
    Everyone,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    UserUp {
        user: UserInfo,
    },
    /// The user is gone; its channels (casefolded) are named because on its own node it is
    /// already gone when the stream hands the event back.
    Quit {
        uid: Uid,
        source: String,
        reason: String,
        channels: Vec<String>,
    },
    Nick {
        uid: Uid,
        /// `old!user@host`.
        source: String,
        nick: String,
    },
    Account {
        uid: Uid,
        source: String,
        account: Option<String>,
    },
    Away {
        uid: Uid,
        away: Option<String>,
    },
    /// SETNAME: the user's new realname.
    Realname {
        uid: Uid,
        source: String,
        realname: String,
    },
    /// CHGHOST: an operator of the user's own node gave it a new username and host; `source`
    /// is its old mask, which the CHGHOST line comes from.
    HostChange {
        uid: Uid,
        source: String,
        username: String,
        host: String,
    },
    Join {
        uid: Uid,
        source: String,
        account: Option<String>,
        realname: String,
        channel: String,
        op: bool,
        voice: bool,
    },
    Part {
        uid: Uid,
        source: String,
        channel: String,
        reason: Option<String>,
    },
    Kick {
        source: String,
        channel: String,
        target: Uid,
        target_nick: String,
        reason: String,
        /// Who kicked, so their own node does not tell them twice.
        by: Uid,
    },
    Topic {
        uid: Uid,
        source: String,
        channel: String,
        topic: Option<TopicInfo>,
    },
    Mode {
        uid: Uid,
        source: String,
        channel: String,
        changes: Vec<ModeChange>,
    },
    Message {
        uid: Uid,
        msgid: String,
        time_ms: i64,
        /// `PRIVMSG`, `NOTICE` or `TAGMSG`.
        verb: String,
        source: String,
        account: Option<String>,
        /// The target as the sender wrote it (a channel's or nick's shown name, or `$*`).
        to: String,
        target: Target,
        text: String,
        /// The sender's client-only tags, escaped (`+a=1;+b`); absent from older nodes'
        /// events, whose messages then arrive without them.
        #[serde(default)]
        tags: String,
    },
    /// A channel operator renamed a channel (draft/channel-rename): every node moves it in its
    /// replica and tells its own members. Older nodes skip it (unknown type) and keep the old
    /// name until the channel's members rejoin.
    Rename {
        uid: Uid,
        source: String,
        account: Option<String>,
        /// The channel's name before, as it was shown.
        old: String,
        new: String,
        reason: String,
    },
    /// A user's own modes changed: `+i`, operator status.
    UserModes {
        uid: Uid,
        invisible: bool,
        oper: bool,
        /// `+B`; absent from older nodes' events.
        #[serde(default)]
        bot: bool,
    },
    /// An INVITE to a user on another node: that node lets them past `+i` (and past a ban if
    /// the inviter was a channel operator) and tells them.
    Invite {
        source: String,
        channel: String,
        target: Uid,
        target_nick: String,
        /// Absent from older nodes' events: such an invite is taken as a member's, which
        /// opens `+i` but not a ban.
        #[serde(default)]
        by_operator: bool,
        /// The inviter's account, for the `account` tag (account-tag); absent from older
        /// nodes' events, whose invites then arrive untagged.
        #[serde(default)]
        account: Option<String>,
    },
    /// An operator's CHGHOST of a user on another node: that node makes the change and
    /// publishes the `HostChange` (only it may speak for its user).
    HostChangeRequest {
        uid: Uid,
        username: String,
        host: String,
    },
    /// An operator's KILL of a user on another node: that node closes the connection.
    Kill {
        uid: Uid,
        reason: String,
        /// The `KILL` line its user gets first (from the operator); absent from older nodes'
        /// events, whose kills then close with the `ERROR` alone.
        #[serde(default)]
        line: String,
    },
    /// A KLINE or DLINE added (stored by the node that took it): every node enforces it.
    ServerBanAdded {
        ban: crate::store::ServerBan,
    },
    ServerBanRemoved {
        kind: String,
        mask: String,
    },
    /// An account's read marker moved (IRCv3 `draft/read-marker`): every node tells that
    /// account's sessions with the capability, but the one that set it (which got its answer).
    ReadMarker {
        uid: Uid,
        /// Casefolded.
        account: String,
        /// The target as the setting session wrote it.
        target: String,
        time_ms: i64,
    },
    /// A message was redacted (IRCv3 `draft/message-redaction`) and is gone from history: its
    /// conversation's members with the capability are told, but the one who redacted it.
    Redact {
        uid: Uid,
        source: String,
        account: Option<String>,
        /// The REDACT's own id and time.
        msgid: String,
        time_ms: i64,
        target: Target,
        /// The target as the redacting user wrote it.
        to: String,
        redacted: String,
        reason: Option<String>,
    },
    /// A `draft/multiline` message, its lines already stored by the sender's node: delivered
    /// whole (see `crate::multiline`). `msgid` is its first line's.
    Multiline {
        uid: Uid,
        msgid: String,
        time_ms: i64,
        /// `PRIVMSG` or `NOTICE`.
        verb: String,
        source: String,
        account: Option<String>,
        to: String,
        target: Target,
        /// Each line's text and whether it carried `draft/multiline-concat`.
        lines: Vec<(String, bool)>,
        /// The opening BATCH's client-only tags, escaped; absent from older nodes' events.
        #[serde(default)]
        tags: String,
    },
    /// An operator's WALLOPS: every node gives `line` to its own users with user mode `+w`.
    Wallops {
        uid: Uid,
        line: String,
    },
    /// An account turned always-on on or off (`ALWAYSON`, stored by the user's node): every
    /// node keeps its copy of the setting, so the account's last session leaving any node is
    /// kept. Older nodes skip it (unknown type) and learn the setting at their next start.
    AlwaysOn {
        uid: Uid,
        /// Casefolded; the user's account.
        account: String,
        on: bool,
    },
    /// A node stopped renewing its lease: its users are gone.
    NodeDown {
        node: String,
        incarnation: u64,
        /// The fence: the last stream sequence the judging node had read when it judged. Had
        /// the stream anything from the accused node after it, the judgement came from a stale
        /// view (published late, after a pause or a cut) and every node ignores it alike. 0 (a
        /// node saying it restarted, or an older node): no fence.
        #[serde(default)]
        seen: u64,
    },
}

/// What a node answers a starting node: its own users, and the channels they are in.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub node: String,
    pub incarnation: u64,
    pub users: Vec<UserInfo>,
    pub channels: Vec<ChannelInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_name_their_origin() {
        let id = uid("n1", 0xabc, 42);
        assert_eq!(id, "n1~abc~42");
        assert_eq!(uid_origin(&id), Some(("n1", 0xabc)));
        assert_eq!(uid_origin("n1"), None);
        assert_eq!(uid_origin("n1~zz~1"), None);
    }

    #[test]
    fn events_survive_the_wire() -> Result<(), serde_json::Error> {
        let event = Envelope {
            node: "n1".into(),
            incarnation: 7,
            eid: 3,
            event: Event::Message {
                uid: uid("n1", 7, 1),
                msgid: "m1".into(),
                time_ms: 5,
                verb: "PRIVMSG".into(),
                source: "a!a@h".into(),
                account: None,
                to: "#Room".into(),
                target: Target::Channel("#room".into()),
                text: "hi ~ there".into(),
                tags: "+draft/reply=m0".into(),
            },
        };
        let text = serde_json::to_string(&event)?;
        let back: Envelope = serde_json::from_str(&text)?;
        assert_eq!(back.eid, 3);
        match back.event {
            Event::Message { text, target, .. } => {
                assert_eq!(text, "hi ~ there");
                assert_eq!(target, Target::Channel("#room".into()));
            }
            other => panic!("wrong event back: {other:?}"),
        }
        Ok(())
    }
}
