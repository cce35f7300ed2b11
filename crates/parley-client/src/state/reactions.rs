//! Replies and reactions (ircv3.net/specs/client-tags/reply and /react): a message names its
//! parent with `+draft/reply=<msgid>`; a reaction is `+draft/react` with that reply tag, mostly
//! on a TAGMSG. Reactions are kept on the parent line, one entry per distinct reaction with who
//! sent it, so a UI shows "👍 2" under the message; reactions whose parent is not loaded wait
//! (bounded) for it to come with older history. Sending needs `message-tags`; without it a
//! reply goes out as plain text addressed to the parent's author, and reacting is refused.

use parley_proto::casefold;

use super::{irc_tagged, Buffer, Line, State};
use crate::input::InputError;

/// Longest reaction kept or sent: an emoji sequence or a short word ("lol", ":)").
pub const MAX_REACTION_BYTES: usize = 64;
/// Distinct reactions kept per message, so one member cannot pile up endless ones.
const MAX_REACTIONS_PER_LINE: usize = 20;
/// Nicks kept per reaction (a nick-changing flood cannot grow one without bound).
const MAX_NICKS_PER_REACTION: usize = 500;
/// Reactions kept per buffer for messages not loaded.
pub(super) const MAX_ORPHANS: usize = 200;

/// One reaction to a message and who sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reaction {
    pub text: String,
    /// The nicks that reacted so, in order.
    pub nicks: Vec<String>,
}

impl Reaction {
    pub fn count(&self) -> usize {
        self.nicks.len()
    }
}

/// A reaction worth keeping: short, one line, no control characters.
fn valid_reaction(text: &str) -> bool {
    !text.trim().is_empty()
        && text.len() <= MAX_REACTION_BYTES
        && !text.chars().any(char::is_control)
}

/// Adds `nick`'s `text` reaction to `line`, once per nick and reaction.
fn add_reaction(line: &mut Line, nick: &str, text: &str) {
    let key = casefold(nick);
    let full = line.reactions.len() >= MAX_REACTIONS_PER_LINE;
    match line.reactions.iter_mut().find(|r| r.text == text) {
        Some(reaction)
            if reaction.nicks.len() < MAX_NICKS_PER_REACTION
                && !reaction.nicks.iter().any(|n| casefold(n) == key) =>
        {
            reaction.nicks.push(nick.to_string());
        }
        Some(_) => {}
        None if !full => line.reactions.push(Reaction {
            text: text.to_string(),
            nicks: vec![nick.to_string()],
        }),
        None => {}
    }
}

/// Gives a line arriving now the reactions that came before it.
pub(super) fn adopt_orphans(buffer: &mut Buffer, msgid: &str, line: &mut Line) {
    if buffer.orphan_reactions.is_empty() {
        return;
    }
    buffer.orphan_reactions.retain(|(parent, nick, text)| {
        if parent == msgid {
            add_reaction(line, nick, text);
            false
        } else {
            true
        }
    });
}

impl State {
    /// `nick` reacted with `text` to message `parent` in buffer `index`.
    pub(super) fn on_reaction(&mut self, index: usize, nick: &str, parent: &str, text: &str) {
        if !valid_reaction(text) {
            return;
        }
        let buffer = &mut self.buffers[index];
        let line = buffer
            .lines
            .iter_mut()
            .rev()
            .find(|l| l.msgid.as_deref() == Some(parent));
        match line {
            Some(line) => add_reaction(line, nick, text),
            None => {
                if buffer.orphan_reactions.len() >= MAX_ORPHANS {
                    buffer.orphan_reactions.pop_front();
                }
                buffer.orphan_reactions.push_back((
                    parent.to_string(),
                    nick.to_string(),
                    text.to_string(),
                ));
            }
        }
    }

    /// The message a `/react` or `/reply` without a msgid is about: the newest one in the
    /// active buffer from someone else that has a msgid.
    fn latest_other_msgid(&self) -> Option<String> {
        self.active()
            .lines
            .iter()
            .rev()
            .filter(|l| !l.own && l.from.as_deref().is_some_and(|f| !self.is_me(f)))
            .find_map(|l| l.msgid.clone())
    }

    /// `TAGMSG` with `+draft/reply` and `+draft/react` to the active buffer.
    pub(super) fn react(
        &mut self,
        msgid: Option<String>,
        reaction: &str,
        out: &mut Vec<String>,
    ) -> Result<(), InputError> {
        let target =
            self.active_target("reactions are for messages in a channel or a conversation")?;
        if !self.has_cap("message-tags") {
            return Err(InputError::NoTarget(
                "this server does not carry reactions (no message-tags)",
            ));
        }
        let reaction = reaction.trim();
        if !valid_reaction(reaction) {
            return Err(InputError::Invalid {
                what: "reaction",
                name: reaction.to_string(),
                reason: "a reaction is one line of at most 64 bytes",
            });
        }
        let msgid = msgid
            .or_else(|| self.latest_other_msgid())
            .ok_or(InputError::NoTarget(
                "there is no message to react to here yet",
            ))?;
        out.push(irc_tagged(
            &[("+draft/reply", &msgid), ("+draft/react", reaction)],
            "TAGMSG",
            &[&target],
            None,
        ));
        if !self.has_cap("echo-message") {
            let index = self.active;
            let nick = self.nick.clone();
            self.on_reaction(index, &nick, &msgid, reaction);
        }
        Ok(())
    }

    /// A message to the active buffer answering `msgid` (default: the newest one from
    /// someone else).
    pub(super) fn reply(
        &mut self,
        msgid: Option<String>,
        text: &str,
        out: &mut Vec<String>,
    ) -> Result<(), InputError> {
        let target =
            self.active_target("replies are for messages in a channel or a conversation")?;
        let msgid = msgid
            .or_else(|| self.latest_other_msgid())
            .ok_or(InputError::NoTarget(
                "there is no message to reply to here yet",
            ))?;
        if self.has_cap("message-tags") {
            self.say_tagged(&target, text, false, Some(&msgid), out);
        } else {
            // Without client tags the reply still reads as one, addressed to the author.
            let author = self
                .active()
                .line_by_msgid(&msgid)
                .and_then(|l| l.from.clone());
            let text = match author {
                Some(author) => format!("{author}: {text}"),
                None => text.to_string(),
            };
            self.say_tagged(&target, &text, false, None, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::input::{Action, InputError};
    use crate::state::tests::{connected, feed};
    use crate::state::Reaction;

    #[test]
    fn replies_and_reactions_are_kept_on_their_messages() {
        let mut s = connected("message-tags server-time echo-message");
        feed(
            &mut s,
            &[
                ":me!u@h JOIN #a",
                // The spec's example: "S: @draft/msgid=123 ... PRIVMSG #channel :Hello!"
                "@msgid=123 :nick!user@host PRIVMSG #a :Hello!",
                // "C: @+draft/reply=123;+draft/react=lol TAGMSG #channel" and its relay
                "@msgid=456;+draft/reply=123;+draft/react=lol :nick2!user2@host2 TAGMSG #a",
                "@msgid=457;+draft/reply=123;+draft/react=lol :nick3!u@h TAGMSG #a",
                "@msgid=458;+draft/reply=123;+draft/react=👋 :nick2!user2@host2 TAGMSG #a",
                // The same reaction again (a replay) counts once.
                "@msgid=459;+draft/reply=123;+draft/react=lol :NICK2!user2@host2 TAGMSG #a",
                // "@+draft/reply=123 ... PRIVMSG #channel :Hello to you!"
                "@msgid=460;+draft/reply=123 :nick2!user2@host2 PRIVMSG #a :Hello to you!",
            ],
        );
        let b = s.buffer("#a").expect("#a");
        let hello = b.line_by_msgid("123").expect("the parent");
        assert_eq!(
            hello.reactions,
            [
                Reaction {
                    text: "lol".into(),
                    nicks: vec!["nick2".into(), "nick3".into()]
                },
                Reaction {
                    text: "👋".into(),
                    nicks: vec!["nick2".into()]
                }
            ]
        );
        let reply = b.line_by_msgid("460").expect("the reply");
        assert_eq!(reply.reply_to.as_deref(), Some("123"));
        assert_eq!(reply.text, "Hello to you!");
        // TAGMSGs are no lines: "Clients that receive a TAGMSG command MUST NOT display them
        // in the message history by default."
        assert_eq!(b.lines.len(), 3, "join, hello and the reply");
    }

    #[test]
    fn reactions_in_history_and_before_their_message() {
        let mut s = connected("message-tags server-time batch draft/chathistory");
        feed(
            &mut s,
            &[
                ":me!u@h JOIN #a",
                ":srv BATCH +h chathistory #a",
                "@batch=h;time=2024-01-01T00:00:01.000Z;msgid=m1 :bob!u@h PRIVMSG #a :hi",
                "@batch=h;time=2024-01-01T00:00:02.000Z;msgid=m2;+draft/reply=m1;+draft/react=+1 :carol!u@h TAGMSG #a",
                "@batch=h;time=2024-01-01T00:00:03.000Z;msgid=m3;+draft/reply=m0;+draft/react=:) :carol!u@h TAGMSG #a",
                ":srv BATCH -h",
                // Older history brings the parent of the orphan.
                ":srv BATCH +o chathistory #a",
                "@batch=o;time=2023-12-31T00:00:00.000Z;msgid=m0 :dave!u@h PRIVMSG #a :old",
                ":srv BATCH -o",
            ],
        );
        let b = s.buffer("#a").expect("#a");
        assert_eq!(b.line_by_msgid("m1").expect("m1").reactions[0].text, "+1");
        assert_eq!(
            b.line_by_msgid("m0").expect("m0").reactions,
            [Reaction {
                text: ":)".into(),
                nicks: vec!["carol".into()]
            }]
        );
    }

    #[test]
    fn reacting_and_replying_send_the_spec_tags() {
        let mut s = connected("message-tags echo-message");
        feed(
            &mut s,
            &[
                ":me!u@h JOIN #a",
                "@msgid=123 :nick!user@host PRIVMSG #a :Hello!",
            ],
        );
        assert_eq!(
            s.act(Action::React {
                msgid: None,
                reaction: "👋".into()
            }),
            Ok(vec![
                "@+draft/reply=123;+draft/react=👋 TAGMSG #a".to_string()
            ])
        );
        assert_eq!(
            s.act(Action::Reply {
                msgid: Some("123".into()),
                text: "Hello to you!".into()
            }),
            Ok(vec![
                "@+draft/reply=123 PRIVMSG #a :Hello to you!".to_string()
            ])
        );
        // A reaction with a space or ';' is escaped, not cut (message-tags escaping).
        assert_eq!(
            s.act(Action::React {
                msgid: Some("123".into()),
                reaction: "a b;c".into()
            }),
            Ok(vec![
                "@+draft/reply=123;+draft/react=a\\sb\\:c TAGMSG #a".to_string()
            ])
        );
        assert!(matches!(
            s.act(Action::React {
                msgid: None,
                reaction: "x".repeat(65)
            }),
            Err(InputError::Invalid { .. })
        ));

        // Without message-tags: no reactions, and a reply names the author instead.
        let mut s = connected("");
        feed(
            &mut s,
            &[":me!u@h JOIN #a", "@msgid=9 :bob!u@h PRIVMSG #a :question?"],
        );
        assert!(matches!(
            s.act(Action::React {
                msgid: None,
                reaction: "+1".into()
            }),
            Err(InputError::NoTarget(_))
        ));
        assert_eq!(
            s.act(Action::Reply {
                msgid: None,
                text: "answer".into()
            }),
            Ok(vec!["PRIVMSG #a :bob: answer".to_string()])
        );
        // Without echo-message our own reaction is shown at once.
        let mut s = connected("message-tags");
        feed(
            &mut s,
            &[":me!u@h JOIN #a", "@msgid=1 :bob!u@h PRIVMSG #a :hi"],
        );
        s.act(Action::React {
            msgid: None,
            reaction: "+1".into(),
        })
        .expect("sent");
        let line = s.active().line_by_msgid("1").expect("line");
        assert_eq!(line.reactions[0].nicks, ["me"]);
    }

    #[test]
    fn a_flood_of_reactions_is_bounded() {
        let mut s = connected("message-tags");
        feed(
            &mut s,
            &[":me!u@h JOIN #a", "@msgid=1 :bob!u@h PRIVMSG #a :hi"],
        );
        for i in 0..50 {
            feed(
                &mut s,
                &[&format!(
                    "@+draft/reply=1;+draft/react=r{i} :eve!u@h TAGMSG #a"
                )],
            );
            feed(
                &mut s,
                &[&format!(
                    "@+draft/reply=gone{i};+draft/react=x :eve!u@h TAGMSG #a"
                )],
            );
        }
        let b = s.buffer("#a").expect("#a");
        assert_eq!(b.line_by_msgid("1").expect("line").reactions.len(), 20);
        assert!(b.orphan_reactions.len() <= super::MAX_ORPHANS);
    }
}
