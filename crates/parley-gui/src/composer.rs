//! The input field's view model: Tab completion of nicks and Up/Down recall of sent lines. It
//! works on plain text and a cursor position (in chars), so the window only forwards the keys and
//! writes back what comes out, and every rule here is tested without a window. Cycling and
//! browsing end by themselves once the text is edited, so no key other than Tab, Up and Down has
//! to be reported.

use std::collections::VecDeque;

use parley_client::{casefold, BufferKind, State};

/// Sent lines remembered for Up/Down; the oldest go first.
pub const INPUT_HISTORY: usize = 100;

/// What Tab or Up/Down turned the input into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    /// Where the cursor goes, in chars.
    pub cursor: usize,
}

/// A Tab completion in progress: Tab again (with nothing edited) takes the next candidate.
#[derive(Debug)]
struct Completion {
    /// Where the completed word starts, in chars.
    start: usize,
    candidates: Vec<String>,
    index: usize,
    /// The input right after the last completion; any other input ends the cycle.
    shown: Edit,
}

/// The input field's memory between key presses.
#[derive(Debug, Default)]
pub struct Composer {
    history: VecDeque<String>,
    /// The history entry on show (an index into `history`); `None` while editing a new line.
    browsing: Option<usize>,
    /// What was typed before Up was first pressed, given back by Down past the newest line.
    draft: String,
    completion: Option<Completion>,
}

impl Composer {
    /// Remembers what was just sent (a repeat of the newest entry is kept once) and ends browsing.
    pub fn sent(&mut self, text: &str) {
        self.browsing = None;
        self.draft.clear();
        self.completion = None;
        if text.trim().is_empty() || self.history.back().map(String::as_str) == Some(text) {
            return;
        }
        if self.history.len() >= INPUT_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(text.to_string());
    }

    /// The remembered lines, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &str> {
        self.history.iter().map(String::as_str)
    }

    /// Up: the line sent before the one on show (the newest when `current` is a new line), or
    /// `None` at the oldest. A line being typed is kept as the draft.
    pub fn older(&mut self, current: &str) -> Option<Edit> {
        let at = match self.browsing {
            // Edited since it was recalled: treat it as a new draft.
            Some(at) if self.history.get(at).map(String::as_str) != Some(current) => None,
            other => other,
        };
        let next = match at {
            None => {
                self.draft = current.to_string();
                self.history.len().checked_sub(1)?
            }
            Some(at) => at.checked_sub(1)?,
        };
        self.browsing = Some(next);
        self.completion = None;
        self.history.get(next).map(|text| edit_at_end(text))
    }

    /// Down: the line sent after the one on show, then the draft; `None` when not browsing.
    pub fn newer(&mut self, current: &str) -> Option<Edit> {
        let at = self.browsing?;
        if self.history.get(at).map(String::as_str) != Some(current) {
            // Edited since it was recalled: it is the line being typed now.
            self.browsing = None;
            return None;
        }
        self.completion = None;
        if at + 1 < self.history.len() {
            self.browsing = Some(at + 1);
            return self.history.get(at + 1).map(|text| edit_at_end(text));
        }
        self.browsing = None;
        Some(edit_at_end(&std::mem::take(&mut self.draft)))
    }

    /// Tab: completes the word before `cursor` (in chars) from `nicks`. At the start of a line
    /// the nick gets ": " (the way to address someone), elsewhere a space. Tab again right after
    /// takes the next candidate, round and round. `None`: nothing to complete.
    pub fn complete(&mut self, text: &str, cursor: usize, nicks: &[String]) -> Option<Edit> {
        if let Some(completion) = &mut self.completion {
            if completion.shown.text == text && completion.shown.cursor == cursor {
                completion.index = (completion.index + 1) % completion.candidates.len();
                let choice = &completion.candidates[completion.index];
                let edit = replace(text, completion.start, cursor, choice);
                completion.shown = edit.clone();
                return Some(edit);
            }
        }
        self.completion = None;
        let cursor = cursor.min(text.chars().count());
        let before: Vec<char> = text.chars().take(cursor).collect();
        let start = before
            .iter()
            .rposition(|c| c.is_whitespace())
            .map_or(0, |at| at + 1);
        let word: String = before[start..].iter().collect();
        if word.is_empty() {
            return None;
        }
        let line_start = start == 0 || before[start - 1] == '\n';
        // No second space when the completed word already has one after it.
        let spaced = text.chars().nth(cursor).is_some_and(char::is_whitespace);
        let suffix = match (line_start, spaced) {
            (true, false) => ": ",
            (true, true) => ":",
            (false, false) => " ",
            (false, true) => "",
        };
        let folded = casefold(&word);
        let mut matching: Vec<&String> = nicks
            .iter()
            .filter(|nick| casefold(nick).starts_with(&folded))
            .collect();
        matching.sort_by_key(|nick| casefold(nick));
        matching.dedup_by_key(|nick| casefold(nick));
        let candidates: Vec<String> = matching
            .into_iter()
            .map(|nick| format!("{nick}{suffix}"))
            .collect();
        let first = candidates.first()?;
        let edit = replace(text, start, cursor, first);
        self.completion = Some(Completion {
            start,
            candidates,
            index: 0,
            shown: edit.clone(),
        });
        Some(edit)
    }
}

fn edit_at_end(text: &str) -> Edit {
    Edit {
        text: text.to_string(),
        cursor: text.chars().count(),
    }
}

/// `text` with the chars from `start` to `end` replaced by `with`, the cursor after it.
fn replace(text: &str, start: usize, end: usize, with: &str) -> Edit {
    let head: String = text.chars().take(start).collect();
    let tail: String = text.chars().skip(end).collect();
    Edit {
        text: format!("{head}{with}{tail}"),
        cursor: start + with.chars().count(),
    }
}

/// The nicks Tab completes in the conversation on show: a channel's members, or the person in a
/// private conversation; never our own nick.
pub fn completion_nicks(state: &State) -> Vec<String> {
    let own = casefold(state.nick());
    let buffer = state.active();
    match buffer.kind {
        BufferKind::Channel => buffer
            .members
            .values()
            .map(|member| member.nick.clone())
            .filter(|nick| casefold(nick) != own)
            .collect(),
        BufferKind::Query => vec![buffer.name.clone()],
        BufferKind::Server => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_client::Auth;

    fn nicks(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn tab_at_line_start_addresses_and_cycles_in_order() {
        let mut composer = Composer::default();
        let nicks = nicks(&["bob", "Bea", "carol", "bobby"]);
        let edit = composer.complete("b", 1, &nicks).expect("a match");
        assert_eq!(edit.text, "Bea: ");
        assert_eq!(edit.cursor, 5);
        let edit = composer
            .complete(&edit.text, edit.cursor, &nicks)
            .expect("cycles");
        assert_eq!(edit.text, "bob: ");
        let edit = composer
            .complete(&edit.text, edit.cursor, &nicks)
            .expect("cycles");
        assert_eq!(edit.text, "bobby: ");
        let edit = composer
            .complete(&edit.text, edit.cursor, &nicks)
            .expect("wraps");
        assert_eq!(edit.text, "Bea: ", "round and round");
    }

    #[test]
    fn tab_mid_line_adds_a_space_and_keeps_the_rest() {
        let mut composer = Composer::default();
        let nicks = nicks(&["carol", "bob"]);
        let edit = composer
            .complete("ask CA about it", 6, &nicks)
            .expect("a match, any case");
        assert_eq!(edit.text, "ask carol about it");
        assert_eq!(edit.cursor, 9, "the cursor lands after the completion");
        let edit = composer.complete("ask b", 5, &nicks).expect("a match");
        assert_eq!((edit.text.as_str(), edit.cursor), ("ask bob ", 8));
        // A nick at the start of the second line of a multi-line input addresses too.
        let mut composer = Composer::default();
        let edit = composer.complete("hi\nbo", 5, &nicks).expect("a match");
        assert_eq!(edit.text, "hi\nbob: ");
    }

    #[test]
    fn editing_between_tabs_starts_a_new_completion() {
        let mut composer = Composer::default();
        let nicks = nicks(&["bob", "bea", "carol"]);
        let edit = composer.complete("b", 1, &nicks).expect("a match");
        assert_eq!(edit.text, "bea: ");
        // The user typed on: "bea: c" + Tab completes carol instead of cycling.
        let edit = composer.complete("bea: c", 6, &nicks).expect("a match");
        assert_eq!(edit.text, "bea: carol ");
        assert_eq!(composer.complete("bea: carol x", 12, &nicks), None);
        assert_eq!(composer.complete("", 0, &nicks), None, "no word, no guess");
        assert_eq!(composer.complete("hello ", 6, &nicks), None);
    }

    #[test]
    fn up_and_down_walk_the_history_and_give_back_the_draft() {
        let mut composer = Composer::default();
        for line in ["first", "second", "second", "  ", "third"] {
            composer.sent(line);
        }
        assert_eq!(
            composer.history().collect::<Vec<_>>(),
            ["first", "second", "third"],
            "repeats and blank lines are not kept"
        );
        let up = composer.older("half typed").expect("the newest");
        assert_eq!((up.text.as_str(), up.cursor), ("third", 5));
        let up = composer.older(&up.text).expect("older");
        assert_eq!(up.text, "second");
        let up = composer.older(&up.text).expect("older");
        assert_eq!(up.text, "first");
        assert_eq!(composer.older(&up.text), None, "nothing before the oldest");
        let down = composer.newer("first").expect("newer");
        assert_eq!(down.text, "second");
        let down = composer.newer(&down.text).expect("newer");
        assert_eq!(down.text, "third");
        let down = composer.newer(&down.text).expect("the draft");
        assert_eq!(down.text, "half typed");
        assert_eq!(composer.newer(&down.text), None, "not browsing any more");
    }

    #[test]
    fn an_edited_recall_is_a_new_draft() {
        let mut composer = Composer::default();
        composer.sent("one");
        composer.sent("two");
        let up = composer.older("").expect("two");
        assert_eq!(up.text, "two");
        assert_eq!(
            composer.newer("two!"),
            None,
            "Down leaves an edited line alone"
        );
        let up = composer
            .older("two!")
            .expect("starts again from the newest");
        assert_eq!(up.text, "two");
        let down = composer.newer("two").expect("back to the draft");
        assert_eq!(down.text, "two!");
    }

    #[test]
    fn history_is_bounded() {
        let mut composer = Composer::default();
        for n in 0..INPUT_HISTORY + 25 {
            composer.sent(&format!("line {n}"));
        }
        assert_eq!(composer.history().count(), INPUT_HISTORY);
        assert_eq!(composer.history().next(), Some("line 25"));
        let mut steps = 0;
        let mut text = String::new();
        while let Some(up) = composer.older(&text) {
            text = up.text;
            steps += 1;
        }
        assert_eq!(steps, INPUT_HISTORY);
        assert_eq!(text, "line 25");
    }

    #[test]
    fn completion_nicks_follow_the_conversation() {
        let mut state = State::new("alice", "alice");
        state.on_connected(false, Auth::Guest);
        for line in [
            ":srv 001 alice :Welcome",
            ":alice!a@h JOIN #rust",
            ":srv 353 alice = #rust :@alice bob +carol",
            ":srv 366 alice #rust :End of /NAMES list",
            ":dave!d@h PRIVMSG alice :psst",
        ] {
            state.handle_line(line);
        }
        state.set_active_by_name("#rust");
        let mut nicks = completion_nicks(&state);
        nicks.sort();
        assert_eq!(
            nicks,
            ["bob", "carol"],
            "members without prefixes or ourselves"
        );
        state.set_active_by_name("dave");
        assert_eq!(completion_nicks(&state), ["dave"]);
        state.set_active(0);
        assert!(completion_nicks(&state).is_empty());
    }
}
