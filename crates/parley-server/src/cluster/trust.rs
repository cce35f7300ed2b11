//! Who may say what on the cluster bus. Every subject a node publishes on ends in its own name,
//! and nats-server's per-node permissions (docs/cluster.md) make that name true; these rules
//! then tie what an event claims to that name: an event about a user must come from the node
//! the user is on. Events one node sends about another's users by design (an operator's KILL,
//! a KICK, an INVITE, bans) are left to the nodes' mutual trust.

use super::event::{self, Event};

/// The last token of a subject: the node that published it, on every subject nodes publish on.
pub fn last_token(subject: &str) -> &str {
    subject.rsplit('.').next().unwrap_or_default()
}

/// The node whose uid this is (user-level events must come from that node).
pub fn uid_node(uid: &str) -> Option<&str> {
    event::uid_origin(uid).map(|(node, _)| node)
}

/// The user a user-level event is about, which only that user's node may announce. None for
/// events one node may send about another's users (an operator's KILL, a KICK, an INVITE), for
/// bans, and for NodeDown (checked on its own in `receive`).
pub fn actor(event: &Event) -> Option<&str> {
    match event {
        Event::UserUp { user } => Some(&user.uid),
        Event::Quit { uid, .. }
        | Event::Nick { uid, .. }
        | Event::Account { uid, .. }
        | Event::Away { uid, .. }
        | Event::Realname { uid, .. }
        | Event::HostChange { uid, .. }
        | Event::Join { uid, .. }
        | Event::Part { uid, .. }
        | Event::Topic { uid, .. }
        | Event::Mode { uid, .. }
        | Event::Message { uid, .. }
        | Event::UserModes { uid, .. }
        | Event::ReadMarker { uid, .. }
        | Event::Redact { uid, .. }
        | Event::Rename { uid, .. }
        | Event::Multiline { uid, .. }
        | Event::Wallops { uid, .. }
        | Event::AlwaysOn { uid, .. } => Some(uid),
        Event::Kick { by, .. } => Some(by),
        Event::Invite { .. }
        | Event::Kill { .. }
        | Event::HostChangeRequest { .. }
        | Event::ServerBanAdded { .. }
        | Event::ServerBanRemoved { .. }
        | Event::NodeDown { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_the_last_token() {
        assert_eq!(last_token("parley.ev.n1"), "n1");
        assert_eq!(last_token("parley.snap.n2.n3"), "n3");
        assert_eq!(uid_node("n1~abc~7"), Some("n1"));
        assert_eq!(uid_node("garbage"), None);
    }

    #[test]
    fn user_events_name_their_user_and_operator_events_do_not() {
        let uid = event::uid("n1", 5, 9);
        let kill = Event::Kill {
            uid: uid.clone(),
            reason: "bye".into(),
            line: String::new(),
        };
        assert_eq!(actor(&kill), None);
        let account = Event::Account {
            uid: uid.clone(),
            source: "a!a@h".into(),
            account: Some("admin".into()),
        };
        assert_eq!(actor(&account).and_then(uid_node), Some("n1"));
        let kick = Event::Kick {
            source: "op!o@h".into(),
            channel: "#c".into(),
            target: event::uid("n2", 1, 1),
            target_nick: "t".into(),
            reason: "r".into(),
            by: uid,
        };
        assert_eq!(actor(&kick).and_then(uid_node), Some("n1"));
    }

    #[test]
    fn a_host_change_is_its_users_node_s_and_a_request_an_operator_s() {
        let uid = event::uid("n1", 5, 9);
        let change = Event::HostChange {
            uid: uid.clone(),
            source: "a!~a@h".into(),
            username: "~a".into(),
            host: "cloak".into(),
        };
        assert_eq!(actor(&change), Some(uid.as_str()));
        let request = Event::HostChangeRequest {
            uid,
            username: "~a".into(),
            host: "cloak".into(),
        };
        assert_eq!(actor(&request), None);
    }
}
