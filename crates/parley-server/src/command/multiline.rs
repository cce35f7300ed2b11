//! `draft/multiline` (ircv3.net/specs/extensions/multiline): a client's `BATCH +ref
//! draft/multiline <target>` of PRIVMSG (or NOTICE) lines, collected until `BATCH -ref` and then
//! delivered as one message: one `draft/multiline` batch to clients that have the capability,
//! its lines one by one (blank ones left out, the msgid on the first) to the rest.
//!
//! The open batch lives in the session, bounded by `limits.multiline_max_bytes` and
//! `multiline_max_lines` (advertised as the capability's value), so a client cannot grow it
//! without end; past either the batch fails and its remaining lines are dropped. Each line is
//! stored as its own message (CHATHISTORY returns them as separate lines), all before the batch
//! is delivered. In a cluster each line goes out as its own message too (the bus carries single
//! messages), so clients on every node get the separate lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parley_proto::{casefold, numeric, write_line, Message};

use crate::clock::now_ms;
use crate::cluster::event::{Event, Target};
use crate::command::message::may_speak_in;
use crate::context::{Ctx, MultilineBatch, Reply};
use crate::fanout::Publish;
use crate::history::{dm_key, party, Outgoing};
use crate::outbound::{HeldWakes, Outbound};
use crate::relay::{escape_tag, wire, with_tag, Relay};
use crate::state::MemberList;
use crate::store::StoredMessage;

pub const BATCH_TYPE: &str = "draft/multiline";
const CONCAT: &str = "draft/multiline-concat";

/// Reference tags of the batches this server sends.
static BATCH_IDS: AtomicU64 = AtomicU64::new(1);

fn fail(code: &'static str, context: &[&str], text: &str) -> Reply {
    Reply::fail("BATCH", code, context, text)
}

/// `BATCH +<ref> draft/multiline <target>` opens a batch, `BATCH -<ref>` ends and sends it.
pub fn batch(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(reference) = msg.param(0).filter(|r| r.len() > 1) else {
        return Err(Reply::need_more_params("BATCH"));
    };
    if let Some(reference) = reference.strip_prefix('-') {
        return end(ctx, reference);
    }
    let Some(reference) = reference.strip_prefix('+') else {
        return Err(fail("MULTILINE_INVALID", &[], "Invalid multiline batch"));
    };
    if msg.param(1) != Some(BATCH_TYPE) || !ctx.session.caps.multiline {
        return Err(fail(
            "MULTILINE_INVALID",
            &[],
            "Only draft/multiline batches are accepted, after CAP REQ draft/multiline",
        ));
    }
    let Some(target) = msg.param(2).filter(|t| !t.is_empty()) else {
        return Err(Reply::need_more_params("BATCH"));
    };
    if ctx.session.multiline.is_some() {
        ctx.session.multiline = None;
        return Err(fail(
            "MULTILINE_INVALID",
            &[],
            "Invalid multiline batch: another one was still open",
        ));
    }
    ctx.session.multiline = Some(MultilineBatch {
        reference: reference.chars().take(64).collect(),
        target: target.to_string(),
        verb: None,
        lines: Vec::new(),
        bytes: 0,
        failed: false,
        label: ctx
            .session
            .labeled
            .borrow()
            .as_ref()
            .map(|l| l.label.clone()),
    });
    // With echo-message the answer under the label is the batch echoed at its end; without,
    // the opening line is answered with the usual ACK.
    if ctx.session.caps.echo_message {
        if let Some(labeled) = ctx.session.labeled.get_mut() {
            labeled.answered = true;
        }
    }
    Ok(())
}

/// A line tagged `batch=<ref>`: taken into the open batch (true), or false for the dispatcher to
/// handle as usual when no batch is open.
pub fn collect(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> bool {
    let Some(reference) = msg.tags.get("batch") else {
        return false;
    };
    let Some(open) = ctx.session.multiline.as_mut() else {
        return false;
    };
    if open.failed {
        return true;
    }
    let limits = &ctx.shared.config.limits;
    let refusal = (|| {
        if reference != open.reference.as_str() {
            return Err(fail("MULTILINE_INVALID", &[], "Invalid multiline batch"));
        }
        let verb = match msg.command.to_ascii_uppercase().as_str() {
            "PRIVMSG" => "PRIVMSG",
            "NOTICE" => "NOTICE",
            _ => return Err(fail("MULTILINE_INVALID", &[], "Invalid multiline batch")),
        };
        if open.verb.is_some_and(|v| v != verb) {
            return Err(fail("MULTILINE_INVALID", &[], "Invalid multiline batch"));
        }
        open.verb = Some(verb);
        let target = msg.param(0).unwrap_or("");
        if casefold(target) != casefold(&open.target) {
            return Err(fail(
                "MULTILINE_INVALID_TARGET",
                &[&open.target, target],
                "Invalid multiline target",
            ));
        }
        let text = msg.param(1).unwrap_or("");
        let concat = msg.tags.get(CONCAT).is_some();
        // "Clients MUST NOT send blank lines with the `draft/multiline-concat` tag."
        if concat && text.is_empty() {
            return Err(fail("MULTILINE_INVALID", &[], "Invalid multiline batch"));
        }
        if open.lines.len() >= limits.multiline_max_lines {
            let limit = limits.multiline_max_lines.to_string();
            return Err(fail(
                "MULTILINE_MAX_LINES",
                &[&limit],
                "Multiline batch max-lines exceeded",
            ));
        }
        let joint = usize::from(!open.lines.is_empty() && !concat);
        let bytes = open.bytes + joint + text.len();
        if bytes > limits.multiline_max_bytes {
            let limit = limits.multiline_max_bytes.to_string();
            return Err(fail(
                "MULTILINE_MAX_BYTES",
                &[&limit],
                "Multiline batch max-bytes exceeded",
            ));
        }
        open.bytes = bytes;
        open.lines.push((text.to_string(), concat));
        Ok(())
    })();
    if let Err(reply) = refusal {
        // Failed: what it held goes now; the rest of its lines are dropped until its end.
        open.failed = true;
        open.lines = Vec::new();
        ctx.reply(&reply);
    }
    true
}

/// `BATCH -<ref>`: check the whole, then store and deliver it.
fn end(ctx: &mut Ctx<'_>, reference: &str) -> Result<(), Reply> {
    let Some(open) = ctx.session.multiline.take() else {
        return Err(fail("MULTILINE_INVALID", &[], "Invalid multiline batch"));
    };
    if open.failed {
        return Ok(());
    }
    // "Clients MUST NOT send messages consisting entirely of blank lines."
    let blank = open.lines.iter().all(|(text, _)| text.is_empty());
    if open.reference != reference || blank {
        return Err(fail("MULTILINE_INVALID", &[], "Invalid multiline batch"));
    }
    let verb = open.verb.unwrap_or("PRIVMSG");
    if open.target.starts_with(['#', '&']) {
        let Some((key, source, account, shown, members)) = may_speak_in(ctx, &open.target)? else {
            return Ok(());
        };
        let target = Target::Channel(key.clone());
        send(
            ctx,
            open,
            verb,
            Speaker {
                key,
                source,
                account,
                shown,
            },
            members,
            Some(target),
        );
        return Ok(());
    }
    let (recipient, source, account, me) = {
        let world = ctx.shared.world.lock();
        let recipient = world.user_by_nick(&open.target).map(|r| {
            (
                r.outbound.clone(),
                r.nick.clone(),
                party(r.account.as_deref(), &r.nick),
                r.remote.clone().or_else(|| ctx.cluster_uid(r.id)),
            )
        });
        let Some(me) = world.users.get(&ctx.session.id) else {
            return Ok(());
        };
        let mine = party(me.account.as_deref(), &me.nick);
        (recipient, me.source(), me.account.clone(), mine)
    };
    let Some((outbound, nick, them, uid)) = recipient else {
        return Err(Reply::new(
            numeric::ERR_NOSUCHNICK,
            &[&open.target],
            "No such nick/channel",
        ));
    };
    send(
        ctx,
        open,
        verb,
        Speaker {
            key: dm_key(&me, &them),
            source,
            account,
            shown: nick,
        },
        Arc::new(vec![outbound]),
        uid.map(Target::User),
    );
    Ok(())
}

/// Who says it where: the history key, the sender, and the target as recipients see it.
struct Speaker {
    key: String,
    source: String,
    account: Option<String>,
    shown: String,
}

/// Store every line (its own message, its own msgid), then deliver the whole.
fn send(
    ctx: &mut Ctx<'_>,
    open: MultilineBatch,
    verb: &'static str,
    speaker: Speaker,
    recipients: MemberList,
    target: Option<Target>,
) {
    let time_ms = now_ms();
    let messages: Vec<StoredMessage> = open
        .lines
        .iter()
        .map(|(text, _)| StoredMessage {
            msgid: ctx.shared.history.next_msgid(),
            time_ms,
            target: speaker.key.clone(),
            kind: verb.to_string(),
            source: speaker.source.clone(),
            account: speaker.account.clone(),
            to: speaker.shown.clone(),
            text: text.clone(),
        })
        .collect();
    let Some(first) = messages.first().map(|m| m.msgid.clone()) else {
        return;
    };
    let echo = ctx.session.caps.echo_message;
    let whole = Whole {
        verb,
        reference: format!("ml{}", BATCH_IDS.fetch_add(1, Ordering::Relaxed)),
        first,
        time_ms,
        speaker,
        lines: open.lines,
        recipients,
        sender: ctx.outbound.clone(),
        echo,
        label: open.label.filter(|_| echo),
    };
    // In a cluster each line is published as a message of its own, for every node (this one
    // too) to deliver from the stream; here the last line's turn delivers the whole.
    let publishers: Option<Vec<Publish>> = target.map(|target| {
        messages
            .iter()
            .filter_map(|m| {
                ctx.publisher(|cluster| Event::Message {
                    uid: cluster.uid_of(ctx.session.id),
                    msgid: m.msgid.clone(),
                    time_ms: m.time_ms,
                    verb: m.kind.clone(),
                    source: m.source.clone(),
                    account: m.account.clone(),
                    to: m.to.clone(),
                    target: target.clone(),
                    text: m.text.clone(),
                })
            })
            .collect()
    });
    let mut publishers = publishers.filter(|p| !p.is_empty()).map(Vec::into_iter);
    let count = messages.len();
    let mut whole = Some(whole);
    let steps: Vec<Box<dyn Outgoing>> = messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            let publish = publishers.as_mut().and_then(Iterator::next);
            let deliver = if i + 1 == count && publish.is_none() {
                whole.take()
            } else {
                None
            };
            Box::new(Line {
                stored: Some(message),
                publish,
                echo,
                whole: deliver,
            }) as Box<dyn Outgoing>
        })
        .collect();
    ctx.then_async(
        move |on| {
            Box::pin(async move {
                let mut last = None;
                for step in steps {
                    last = on.shared.history.enqueue(step).await;
                }
                if let Some(delivered) = last {
                    let _ = delivered.await;
                }
            })
        },
        |_, ()| {},
    );
}

/// One line of the batch on its way through the history writer.
struct Line {
    stored: Option<StoredMessage>,
    /// In a cluster: publish this line once stored.
    publish: Option<Publish>,
    /// The sender gets its published line back (`echo-message`).
    echo: bool,
    /// Without one, on the last line: the whole batch to deliver.
    whole: Option<Whole>,
}

impl Outgoing for Line {
    fn take_stored(&mut self) -> Option<(StoredMessage, Option<String>)> {
        Some((self.stored.take()?, None))
    }

    fn hand_on(&mut self, held: &mut HeldWakes) {
        if let Some(publish) = self.publish.take() {
            publish(crate::fanout::Local {
                echo: self.echo.then(String::new),
                recipients: None,
            });
        }
        if let Some(whole) = self.whole.take() {
            whole.deliver(held);
        }
    }
}

/// The batch as recipients get it.
struct Whole {
    verb: &'static str,
    reference: String,
    first: String,
    time_ms: i64,
    speaker: Speaker,
    lines: Vec<(String, bool)>,
    recipients: MemberList,
    sender: Arc<Outbound>,
    echo: bool,
    label: Option<String>,
}

impl Whole {
    fn deliver(&self, held: &mut HeldWakes) {
        let opening = Relay::new(
            &self.speaker.source,
            self.speaker.account.as_deref(),
            "BATCH",
            &[
                &format!("+{}", self.reference),
                BATCH_TYPE,
                &self.speaker.shown,
            ],
            None,
        )
        .with_identity(&self.first, self.time_ms);
        let batched = self.batched();
        let fallback = self.fallback();
        for recipient in self.recipients.iter() {
            if Arc::ptr_eq(recipient, &self.sender) {
                continue;
            }
            self.send_to(recipient, &opening, &batched, &fallback, None, held);
        }
        if self.echo {
            let label = self.label.as_deref();
            self.send_to(&self.sender, &opening, &batched, &fallback, label, held);
        }
    }

    fn send_to(
        &self,
        recipient: &Arc<Outbound>,
        opening: &Relay,
        batched: &[u8],
        fallback: &[Relay],
        label: Option<&str>,
        held: &mut HeldWakes,
    ) {
        let caps = recipient.wire_caps();
        if caps & wire::MULTILINE != 0 {
            let mut bytes = opening.bytes_for(caps).to_vec();
            if let Some(label) = label {
                // "Servers MUST only include the label tag on the opening BATCH command".
                bytes = with_tag(&bytes, &format!("label={}", escape_tag(label)));
            }
            bytes.extend_from_slice(batched);
            let _ = recipient.push_held(&bytes, held);
        } else {
            for (i, line) in fallback.iter().enumerate() {
                let bytes = line.bytes_for(caps);
                let _ = match (i, label) {
                    (0, Some(label)) => recipient.push_held(
                        &with_tag(bytes, &format!("label={}", escape_tag(label))),
                        held,
                    ),
                    _ => recipient.push_held(bytes, held),
                };
            }
        }
    }

    /// The lines inside the batch and its end, the same for everyone who has the capability.
    fn batched(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let shown = [self.speaker.shown.as_str()];
        for (text, concat) in &self.lines {
            let mut tags = vec![("batch", Some(self.reference.as_str()))];
            if *concat {
                tags.push((CONCAT, None));
            }
            write_line(
                &mut out,
                &tags,
                Some(&self.speaker.source),
                self.verb,
                &shown,
                Some(text),
            );
        }
        let end = format!("-{}", self.reference);
        write_line(
            &mut out,
            &[],
            Some(&self.speaker.source),
            "BATCH",
            &[&end],
            None,
        );
        out
    }

    /// The lines one by one for clients without the capability: "Servers MUST NOT send blank
    /// lines to clients that have not negotiated the multiline capability", and the msgid only
    /// on the first.
    fn fallback(&self) -> Vec<Relay> {
        let shown = [self.speaker.shown.as_str()];
        let mut lines = self.lines.iter().filter(|(text, _)| !text.is_empty());
        let mut relays = Vec::new();
        if let Some((text, _)) = lines.next() {
            relays.push(
                Relay::new(
                    &self.speaker.source,
                    self.speaker.account.as_deref(),
                    self.verb,
                    &shown,
                    Some(text),
                )
                .with_identity(&self.first, self.time_ms),
            );
        }
        for (text, _) in lines {
            relays.push(Relay::new(
                &self.speaker.source,
                self.speaker.account.as_deref(),
                self.verb,
                &shown,
                Some(text),
            ));
        }
        relays
    }
}
