//! A `draft/multiline` message on its way to recipients: one batch (the opening BATCH with the
//! message's tags, the lines as the sender composed them, the end) for clients with the
//! capability, the lines one by one for the rest. Below the handlers and the cluster, so a
//! batch is serialized the same way whether this node's client sent it or the bus brought it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parley_proto::write_line;

use crate::outbound::{HeldWakes, Outbound};
use crate::relay::{escape_tag, wire, with_tag, Relay};

const BATCH_TYPE: &str = "draft/multiline";
const CONCAT: &str = "draft/multiline-concat";

/// Reference tags of the batches this node sends.
static BATCH_IDS: AtomicU64 = AtomicU64::new(1);

/// A reference tag for a batch this node sends, unique on it.
pub fn next_reference() -> String {
    format!("ml{}", BATCH_IDS.fetch_add(1, Ordering::Relaxed))
}

/// One multiline message, serialized once per wire variant like a [`Relay`].
pub struct Multiline {
    opening: Relay,
    /// The lines inside the batch and its end: the same for everyone with the capability.
    batched: Vec<u8>,
    /// The lines one by one for the rest: "Servers MUST NOT send blank lines to clients that
    /// have not negotiated the multiline capability", and the msgid only on the first.
    fallback: Vec<Relay>,
}

/// What a multiline message is made of.
pub struct Parts<'a> {
    /// A reference tag unique on this node ([`next_reference`]).
    pub reference: String,
    pub verb: &'static str,
    pub source: &'a str,
    pub account: Option<&'a str>,
    /// The target as recipients see it.
    pub to: &'a str,
    /// The first line's msgid, which stands for the whole message.
    pub msgid: &'a str,
    pub time_ms: i64,
    /// Each line's text and whether it carried `draft/multiline-concat`.
    pub lines: &'a [(String, bool)],
    /// The opening BATCH's client-only tags, escaped: on the opening BATCH, and on the first
    /// line for clients without the capability.
    pub client_tags: &'a str,
    /// The sender is a bot (`+B`): the `bot` tag for `message-tags` clients.
    pub bot: bool,
}

impl Multiline {
    pub fn new(parts: Parts<'_>) -> Self {
        let Parts {
            reference,
            verb,
            source,
            account,
            to,
            msgid,
            time_ms,
            lines,
            client_tags,
            bot,
        } = parts;
        let opening = Relay::new(
            source,
            account,
            "BATCH",
            &[&format!("+{reference}"), BATCH_TYPE, to],
            None,
        )
        .with_identity(msgid, time_ms)
        .with_client_tags(client_tags)
        .with_bot(bot);
        let mut batched = Vec::new();
        for (text, concat) in lines {
            let mut tags = vec![("batch", Some(reference.as_str()))];
            if *concat {
                tags.push((CONCAT, None));
            }
            write_line(&mut batched, &tags, Some(source), verb, &[to], Some(text));
        }
        let end = format!("-{reference}");
        write_line(&mut batched, &[], Some(source), "BATCH", &[&end], None);
        let mut fallback = Vec::new();
        for (text, _) in lines.iter().filter(|(text, _)| !text.is_empty()) {
            let relay = Relay::new(source, account, verb, &[to], Some(text)).with_bot(bot);
            fallback.push(if fallback.is_empty() {
                relay
                    .with_identity(msgid, time_ms)
                    .with_client_tags(client_tags)
            } else {
                relay
            });
        }
        Multiline {
            opening,
            batched,
            fallback,
        }
    }

    /// Queue it for one recipient, with `label` (labeled-response) on its first line: "Servers
    /// MUST only include the label tag on the opening BATCH command".
    pub fn send_held(&self, recipient: &Arc<Outbound>, label: Option<&str>, held: &mut HeldWakes) {
        let caps = recipient.wire_caps();
        let labeled = |bytes: &[u8]| match label {
            Some(label) => with_tag(bytes, &format!("label={}", escape_tag(label))),
            None => bytes.to_vec(),
        };
        if caps & wire::MULTILINE != 0 {
            let mut bytes = labeled(self.opening.bytes_for(caps));
            bytes.extend_from_slice(&self.batched);
            let _ = recipient.push_held(&bytes, held);
            return;
        }
        for (i, line) in self.fallback.iter().enumerate() {
            let bytes = line.bytes_for(caps);
            let _ = if i == 0 {
                recipient.push_held(&labeled(bytes), held)
            } else {
                recipient.push_held(bytes, held)
            };
        }
    }
}
