//! `draft/multiline` (ircv3.net/specs/extensions/multiline): a client's `BATCH +ref
//! draft/multiline <target>` of PRIVMSG (or NOTICE) lines, collected until `BATCH -ref` and then
//! delivered as one message: one `draft/multiline` batch to clients that have the capability,
//! its lines one by one (blank ones left out, the msgid on the first) to the rest.
//!
//! The open batch lives in the session, bounded by `limits.multiline_max_bytes` and
//! `multiline_max_lines` (advertised as the capability's value), so a client cannot grow it
//! without end; past either the batch fails and its remaining lines are dropped. Each line is
//! stored as its own message (CHATHISTORY returns them as separate lines), all before the batch
//! is delivered; in a cluster the whole then travels the bus as one event, and every node
//! delivers it alike (`crate::multiline` serializes it).

use std::sync::Arc;

use parley_proto::{casefold, numeric, Message};

use crate::clock::now_ms;
use crate::cluster::event::{Event, Target};
use crate::command::message::may_speak_in;
use crate::context::{Ctx, MultilineBatch, Reply};
use crate::fanout::{Local, Publish};
use crate::history::{dm_key, party, Outgoing};
use crate::multiline::{next_reference, Multiline, Parts};
use crate::outbound::{HeldWakes, Outbound};
use crate::state::{is_restricted_ctcp, MemberList};
use crate::store::StoredMessage;

pub const BATCH_TYPE: &str = "draft/multiline";
const CONCAT: &str = "draft/multiline-concat";

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
    ctx.session.multiline = Some(Box::new(MultilineBatch {
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
        // "all client-only tags associated with the message must be sent attached to the
        // initial BATCH command".
        tags: msg.tags.client_only(),
    }));
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
        // `+C` looks at every line: clients without the capability get each line as a
        // PRIVMSG of its own (concatenated ones too), so a CTCP on any line is a CTCP to them.
        // The first one that is refused stands for the batch; else the first line.
        let checked = open
            .lines
            .iter()
            .map(|(text, _)| text.as_str())
            .find(|text| is_restricted_ctcp(text))
            .or_else(|| open.lines.first().map(|(text, _)| text.as_str()))
            .unwrap_or("");
        let Some(speaker) = may_speak_in(ctx, &open.target, None, checked)? else {
            return Ok(());
        };
        let target = Target::Channel(speaker.key.clone());
        send(
            ctx,
            *open,
            verb,
            Speaker {
                key: speaker.key,
                source: speaker.source,
                account: speaker.account,
                shown: speaker.shown,
                bot: speaker.bot,
            },
            speaker.members,
            Some(target),
        );
        return Ok(());
    }
    let (recipient, source, account, me, bot) = {
        let world = ctx.shared.world.lock();
        let recipient = world.user_by_nick(&open.target).map(|r| {
            (
                crate::command::message::private_recipients(
                    &world,
                    r.id,
                    ctx.session.id,
                    ctx.outbound,
                ),
                r.nick.clone(),
                party(r.account.as_deref(), &r.nick),
                r.remote.clone().or_else(|| ctx.cluster_uid(r.id)),
            )
        });
        let Some(me) = world.users.get(&ctx.session.id) else {
            return Ok(());
        };
        let mine = party(me.account.as_deref(), &me.nick);
        (recipient, me.source(), me.account.clone(), mine, me.bot)
    };
    let Some((recipients, nick, them, uid)) = recipient else {
        return Err(Reply::new(
            numeric::ERR_NOSUCHNICK,
            &[&open.target],
            "No such nick/channel",
        ));
    };
    send(
        ctx,
        *open,
        verb,
        Speaker {
            key: dm_key(&me, &them),
            source,
            account,
            shown: nick,
            bot,
        },
        Arc::new(recipients),
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
    /// The sender has user mode `+B`.
    bot: bool,
}

/// Store every line (its own message, its own msgid), then deliver the whole: here, or in a
/// cluster published once for every node (this one too) to deliver from the stream.
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
        .enumerate()
        .map(|(i, (text, _))| StoredMessage {
            msgid: ctx.shared.history.next_msgid(),
            time_ms,
            target: speaker.key.clone(),
            kind: verb.to_string(),
            source: speaker.source.clone(),
            account: speaker.account.clone(),
            to: speaker.shown.clone(),
            text: text.clone(),
            // The message's tags go with its first line, whose msgid stands for the whole.
            tags: if i == 0 {
                open.tags.clone()
            } else {
                String::new()
            },
        })
        .collect();
    let Some(first) = messages.first().map(|m| m.msgid.clone()) else {
        return;
    };
    let echo = ctx.session.caps.echo_message;
    let label = open.label.filter(|_| echo);
    let publish = target.and_then(|target| {
        ctx.publisher(|cluster| Event::Multiline {
            uid: cluster.uid_of(ctx.session.id),
            msgid: first.clone(),
            time_ms,
            verb: verb.to_string(),
            source: speaker.source.clone(),
            account: speaker.account.clone(),
            to: speaker.shown.clone(),
            target,
            lines: open.lines.clone(),
            tags: open.tags.clone(),
        })
    });
    let mut last = Some(match publish {
        Some(publish) => Handing::Publish(
            publish,
            Local {
                echo: echo.then(|| label.clone().unwrap_or_default()),
                recipients: Some(recipients),
                echo_into: None,
                sender: Some(ctx.outbound.clone()),
            },
        ),
        None => Handing::Deliver(Box::new(Whole {
            message: Multiline::new(Parts {
                reference: next_reference(),
                verb,
                source: &speaker.source,
                account: speaker.account.as_deref(),
                to: &speaker.shown,
                msgid: &first,
                time_ms,
                lines: &open.lines,
                client_tags: &open.tags,
                bot: speaker.bot,
            }),
            recipients,
            sender: ctx.outbound.clone(),
            echo,
            label,
        })),
    });
    let count = messages.len();
    let steps: Vec<Box<dyn Outgoing>> = messages
        .into_iter()
        .enumerate()
        .map(|(i, message)| {
            Box::new(Line {
                stored: Some(message),
                then: if i + 1 == count { last.take() } else { None },
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

/// One line of the batch on its way through the history writer; the last hands the whole on.
struct Line {
    stored: Option<StoredMessage>,
    then: Option<Handing>,
}

/// What the last line's turn does once every line is stored.
enum Handing {
    /// Boxed: a batch's serialized variants dwarf the other case.
    Deliver(Box<Whole>),
    /// In a cluster: publish the whole for every node.
    Publish(Publish, Local),
}

impl Outgoing for Line {
    fn take_stored(&mut self) -> Option<(StoredMessage, Option<String>)> {
        Some((self.stored.take()?, None))
    }

    fn hand_on(&mut self, held: &mut HeldWakes) {
        match self.then.take() {
            Some(Handing::Deliver(whole)) => whole.deliver(held),
            Some(Handing::Publish(publish, local)) => publish(local),
            None => {}
        }
    }
}

/// The batch and who gets it here.
struct Whole {
    message: Multiline,
    recipients: MemberList,
    sender: Arc<Outbound>,
    echo: bool,
    label: Option<String>,
}

impl Whole {
    fn deliver(&self, held: &mut HeldWakes) {
        for recipient in self.recipients.iter() {
            if !Arc::ptr_eq(recipient, &self.sender) {
                self.message.send_held(recipient, None, held);
            }
        }
        if self.echo {
            self.message
                .send_held(&self.sender, self.label.as_deref(), held);
        }
    }
}
