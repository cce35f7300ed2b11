//! Nodes of two versions on one stream, as during a rolling upgrade. An event this version
//! cannot read (a kind added by a newer parleyd, or a field it cannot take) is skipped, never
//! fatal: the stream goes on. It is logged once per sending node and kind, since a newer node
//! may send thousands of them until every node is upgraded.
//!
//! What keeps versions compatible is serde's behaviour, relied on by the event definitions:
//! fields a reader does not know are ignored, and a field added later is `#[serde(default)]`.

use std::collections::HashSet;

use parking_lot::Mutex;
use serde::Deserialize;

/// Most (node, kind) pairs remembered, and so logged: past this, skipped events go unlogged.
const REMEMBERED: usize = 64;

/// The kinds of unreadable events already logged, per sending node.
#[derive(Default)]
pub struct Unreadable {
    logged: Mutex<HashSet<(String, String)>>,
}

/// Just enough of an envelope to say who sent an event and of what kind.
#[derive(Deserialize)]
struct Outline {
    node: String,
    event: Kind,
}

#[derive(Deserialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: String,
}

/// The sending node and the event kind of a payload that is an envelope at all.
fn outline(payload: &[u8]) -> Option<(String, String)> {
    let outline: Outline = serde_json::from_slice(payload).ok()?;
    Some((outline.node, outline.event.kind))
}

impl Unreadable {
    /// An event on the stream that did not parse: skip it, logging once per node and kind.
    pub(super) fn skip(&self, payload: &[u8], err: &serde_json::Error) {
        let (node, kind) =
            outline(payload).unwrap_or_else(|| ("(unknown)".to_owned(), "(none)".to_owned()));
        // Both come from the sender: bounded in number, and escaped when logged.
        let first = {
            let mut logged = self.logged.lock();
            logged.len() < REMEMBERED && logged.insert((node.clone(), kind.clone()))
        };
        if first {
            tracing::warn!(
                node = %node.escape_debug(),
                kind = %kind.escape_debug(),
                %err,
                "skipped a cluster event this parleyd cannot read (a newer version's? logged once \
                 per node and kind): upgrade every node to the same version"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::event::{Envelope, Event};

    #[test]
    fn an_unknown_kind_is_no_envelope_but_names_its_sender_and_kind() {
        let payload = br#"{"node":"n9","incarnation":5,"eid":1,
            "event":{"type":"FromTheFuture","uid":"n9~5~1","shiny":true}}"#;
        assert!(serde_json::from_slice::<Envelope>(payload).is_err());
        assert_eq!(
            outline(payload),
            Some(("n9".to_owned(), "FromTheFuture".to_owned()))
        );
        assert_eq!(outline(b"not json"), None);
    }

    #[test]
    fn a_newer_field_in_a_known_kind_is_ignored() -> Result<(), serde_json::Error> {
        let payload = br#"{"node":"n9","incarnation":5,"eid":1,"priority":3,
            "event":{"type":"Away","uid":"n9~5~1","away":"lunch","since_ms":42}}"#;
        let envelope: Envelope = serde_json::from_slice(payload)?;
        assert!(matches!(envelope.event, Event::Away { away: Some(a), .. } if a == "lunch"));
        Ok(())
    }

    #[test]
    fn skipped_kinds_are_remembered_within_a_bound() {
        let unreadable = Unreadable::default();
        let err = serde_json::from_slice::<Envelope>(b"{}").err();
        let Some(err) = err else {
            panic!("an empty object is no envelope");
        };
        for i in 0..(REMEMBERED + 20) {
            let payload = format!(r#"{{"node":"n{i}","event":{{"type":"X"}}}}"#);
            unreadable.skip(payload.as_bytes(), &err);
            unreadable.skip(payload.as_bytes(), &err);
        }
        assert_eq!(unreadable.logged.lock().len(), REMEMBERED);
    }
}
