//! The terminal's own state, apart from the chat: the input line with its history and Tab
//! completion, the scroll position, and the start form. Key handling here is pure (keys in,
//! a [`Request`] out) so it is tested without a terminal; the chat lives in `parley_client::State`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use parley_client::input::COMMANDS;
use parley_client::State;

/// Lines of input remembered for Up/Down.
const INPUT_HISTORY: usize = 200;

/// What a key asks the main loop to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    None,
    Submit(String),
    LoadOlder,
    Quit,
}

#[derive(Default)]
pub struct View {
    pub input: String,
    /// Cursor position in chars.
    pub cursor: usize,
    history: Vec<String>,
    history_pos: Option<usize>,
    completion: Option<Completion>,
    /// Rows scrolled up from the bottom of the message view.
    pub scroll: usize,
    /// Rows the message view showed last time (for PageUp/PageDown).
    pub page: usize,
    /// The scroll reached the top last time it was drawn: PageUp then loads older history.
    pub at_top: bool,
    /// The search hit chosen with Up/Down while results are shown (`search_view`).
    pub search_selected: usize,
}

struct Completion {
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

fn byte_at(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(i, _)| i)
}

impl View {
    pub fn handle_key(&mut self, key: KeyEvent, state: &mut State) -> Request {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        if key.code != KeyCode::Tab {
            self.completion = None;
        }
        let input_empty = self.input.is_empty();
        if crate::search_view::handle_key(key, input_empty, &mut self.search_selected, state)
            .is_some()
        {
            return Request::None;
        }
        match key.code {
            KeyCode::Char('c') | KeyCode::Char('d') if ctrl => return Request::Quit,
            KeyCode::Char('n') if ctrl => self.switch(state, 1),
            KeyCode::Char('p') if ctrl => self.switch(state, -1),
            KeyCode::Right if alt => self.switch(state, 1),
            KeyCode::Left if alt => self.switch(state, -1),
            KeyCode::Char(c) if alt && c.is_ascii_digit() => {
                let index = if c == '0' {
                    9
                } else {
                    c as usize - '1' as usize
                };
                state.set_active(index);
                self.scroll = 0;
            }
            KeyCode::Char('u') if ctrl => {
                self.input.clear();
                self.cursor = 0;
            }
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.input.chars().count(),
            KeyCode::Char(c) if !ctrl => {
                let at = byte_at(&self.input, self.cursor);
                self.input.insert(at, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                let at = byte_at(&self.input, self.cursor);
                self.input.remove(at);
            }
            KeyCode::Delete if self.cursor < self.input.chars().count() => {
                let at = byte_at(&self.input, self.cursor);
                self.input.remove(at);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.input.chars().count()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.input.chars().count(),
            KeyCode::Up => self.recall(-1),
            KeyCode::Down => self.recall(1),
            KeyCode::PageUp => {
                if self.at_top {
                    return Request::LoadOlder;
                }
                self.scroll += self.page.max(2) - 1;
            }
            KeyCode::PageDown => self.scroll = self.scroll.saturating_sub(self.page.max(2) - 1),
            KeyCode::Tab => self.complete(state),
            KeyCode::Enter => {
                let text = std::mem::take(&mut self.input);
                self.cursor = 0;
                self.history_pos = None;
                if text.trim().is_empty() {
                    return Request::None;
                }
                if self.history.last() != Some(&text) {
                    self.history.push(text.clone());
                    if self.history.len() > INPUT_HISTORY {
                        self.history.remove(0);
                    }
                }
                self.scroll = 0;
                return Request::Submit(text);
            }
            _ => {}
        }
        Request::None
    }

    fn switch(&mut self, state: &mut State, step: isize) {
        let count = state.buffers().len() as isize;
        let next = (state.active_index() as isize + step).rem_euclid(count.max(1));
        state.set_active(next as usize);
        self.scroll = 0;
    }

    fn recall(&mut self, step: isize) {
        if self.history.is_empty() {
            return;
        }
        let last = self.history.len() as isize - 1;
        let pos = match self.history_pos {
            None if step < 0 => last,
            None => return,
            Some(pos) => pos as isize + step,
        };
        if pos > last {
            self.history_pos = None;
            self.input.clear();
        } else {
            let pos = pos.max(0) as usize;
            self.history_pos = Some(pos);
            self.input = self.history[pos].clone();
        }
        self.cursor = self.input.chars().count();
    }

    /// Completes the word before the cursor: commands after a leading '/', channels after '#',
    /// nicks otherwise (with ": " at the start of the line). Tab again cycles.
    fn complete(&mut self, state: &State) {
        if let Some(completion) = &mut self.completion {
            completion.index = (completion.index + 1) % completion.candidates.len();
            let choice = completion.candidates[completion.index].clone();
            let start = completion.start;
            self.replace_from(start, &choice);
            return;
        }
        let before: String = self.input.chars().take(self.cursor).collect();
        let start = before
            .rfind(' ')
            .map_or(0, |i| before[..i].chars().count() + 1);
        let word: String = before.chars().skip(start).collect();
        if word.is_empty() {
            return;
        }
        let lower = word.to_lowercase();
        let mut candidates: Vec<String> = if start == 0 && word.starts_with('/') {
            COMMANDS
                .iter()
                .map(|(name, _, _)| format!("/{name} "))
                .filter(|c| c.starts_with(&lower))
                .collect()
        } else if word.starts_with('#') {
            state
                .buffers()
                .iter()
                .filter(|b| b.name.to_lowercase().starts_with(&lower))
                .map(|b| format!("{} ", b.name))
                .collect()
        } else {
            let suffix = if start == 0 { ": " } else { " " };
            let mut nicks: Vec<String> = state
                .active()
                .members
                .values()
                .map(|m| m.nick.clone())
                .chain(
                    state
                        .buffers()
                        .iter()
                        .filter(|b| b.kind == parley_client::BufferKind::Query)
                        .map(|b| b.name.clone()),
                )
                .filter(|n| n.to_lowercase().starts_with(&lower) && n != state.nick())
                .map(|n| format!("{n}{suffix}"))
                .collect();
            nicks.dedup();
            nicks
        };
        candidates.sort();
        candidates.dedup();
        if let Some(first) = candidates.first().cloned() {
            self.replace_from(start, &first);
            self.completion = Some(Completion {
                start,
                candidates,
                index: 0,
            });
        }
    }

    fn replace_from(&mut self, start: usize, text: &str) {
        let head: String = self.input.chars().take(start).collect();
        let tail: String = self.input.chars().skip(self.cursor).collect();
        self.input = format!("{head}{text}{tail}");
        self.cursor = start + text.chars().count();
    }
}

/// Which start-form field has the focus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Server,
    Mode,
    User,
    Password,
}

const FIELDS: [Field; 4] = [Field::Server, Field::Mode, Field::User, Field::Password];

/// The start screen: server, "log in or register", username and a masked password.
#[derive(Clone, Debug)]
pub struct StartForm {
    pub server: String,
    pub register: bool,
    pub user: String,
    pub password: String,
    pub focus: Field,
    pub error: Option<String>,
    /// The server (as typed) that refused a guest: it needs an account, so an empty password
    /// is no longer offered as "guest" for it.
    pub guests_refused_by: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FormRequest {
    None,
    Submit,
    Quit,
}

impl StartForm {
    pub fn new(server: String, user: String, register: bool) -> StartForm {
        let focus = if server.is_empty() {
            Field::Server
        } else if user.is_empty() {
            Field::User
        } else {
            Field::Password
        };
        StartForm {
            server,
            register,
            user,
            password: String::new(),
            focus,
            error: None,
            guests_refused_by: None,
        }
    }

    /// Whether an empty password may still mean "guest" for the server in the form.
    pub fn guests_possible(&self) -> bool {
        self.guests_refused_by.as_deref() != Some(self.server.trim())
    }

    pub fn handle_key(&mut self, key: KeyEvent) -> FormRequest {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let position = FIELDS.iter().position(|f| *f == self.focus).unwrap_or(0);
        match key.code {
            KeyCode::Esc => return FormRequest::Quit,
            KeyCode::Char('c') if ctrl => return FormRequest::Quit,
            KeyCode::Tab | KeyCode::Down => self.focus = FIELDS[(position + 1) % FIELDS.len()],
            KeyCode::BackTab | KeyCode::Up => {
                self.focus = FIELDS[(position + FIELDS.len() - 1) % FIELDS.len()]
            }
            KeyCode::Enter => {
                if self.server.trim().is_empty() {
                    self.error = Some("enter the server as host:port".into());
                    self.focus = Field::Server;
                } else if self.user.trim().is_empty() {
                    self.error = Some("enter your username".into());
                    self.focus = Field::User;
                } else if self.register && self.password.is_empty() {
                    self.error = Some("choose a password for the new account".into());
                    self.focus = Field::Password;
                } else if self.password.is_empty() && !self.guests_possible() {
                    self.error = Some(
                        "this server needs an account: enter your password, or choose \
                         'register new account'"
                            .into(),
                    );
                    self.focus = Field::Password;
                } else {
                    return FormRequest::Submit;
                }
            }
            KeyCode::Left | KeyCode::Right | KeyCode::Char(' ') if self.focus == Field::Mode => {
                self.register = !self.register
            }
            KeyCode::Backspace => {
                if let Some(field) = self.text_field() {
                    field.pop();
                }
            }
            KeyCode::Char(c) if !ctrl => {
                if let Some(field) = self.text_field() {
                    field.push(c);
                }
            }
            _ => {}
        }
        FormRequest::None
    }

    fn text_field(&mut self) -> Option<&mut String> {
        match self.focus {
            Field::Server => Some(&mut self.server),
            Field::User => Some(&mut self.user),
            Field::Password => Some(&mut self.password),
            Field::Mode => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn typed(view: &mut View, state: &mut State, text: &str) {
        for c in text.chars() {
            view.handle_key(key(KeyCode::Char(c)), state);
        }
    }

    fn joined_state() -> State {
        let mut state = State::new("me", "Me");
        state.on_connected(false, parley_client::Auth::Guest);
        for line in [
            ":srv CAP * LS :",
            ":srv 001 me :Welcome",
            ":me!u@h JOIN #rust",
            ":srv 353 me = #rust :me @bobby bea",
            ":srv 366 me #rust :End",
        ] {
            state.handle_line(line);
        }
        state
    }

    #[test]
    fn enter_submits_and_history_recalls() {
        let mut state = joined_state();
        let mut view = View::default();
        typed(&mut view, &mut state, "hello");
        assert_eq!(
            view.handle_key(key(KeyCode::Enter), &mut state),
            Request::Submit("hello".into())
        );
        assert_eq!(view.input, "");
        view.handle_key(key(KeyCode::Up), &mut state);
        assert_eq!(view.input, "hello");
        view.handle_key(key(KeyCode::Down), &mut state);
        assert_eq!(view.input, "");
    }

    #[test]
    fn tab_completes_nicks_channels_and_commands() {
        let mut state = joined_state();
        let mut view = View::default();
        typed(&mut view, &mut state, "b");
        view.handle_key(key(KeyCode::Tab), &mut state);
        assert_eq!(view.input, "bea: ");
        view.handle_key(key(KeyCode::Tab), &mut state);
        assert_eq!(view.input, "bobby: ", "Tab again cycles");

        let mut view = View::default();
        typed(&mut view, &mut state, "/crea");
        view.handle_key(key(KeyCode::Tab), &mut state);
        assert_eq!(view.input, "/create_group ");
        typed(&mut view, &mut state, "x #ru");
        view.handle_key(key(KeyCode::Tab), &mut state);
        assert_eq!(view.input, "/create_group x #rust ");
    }

    #[test]
    fn no_guest_login_is_offered_where_the_server_refused_one() {
        let mut form = StartForm::new("chat.example:6697".into(), "ann".into(), false);
        assert!(form.guests_possible());
        assert_eq!(form.handle_key(key(KeyCode::Enter)), FormRequest::Submit);
        form.guests_refused_by = Some("chat.example:6697".into());
        assert_eq!(form.handle_key(key(KeyCode::Enter)), FormRequest::None);
        assert!(form
            .error
            .as_deref()
            .is_some_and(|e| e.contains("needs an account")));
        form.handle_key(key(KeyCode::Char('x')));
        assert_eq!(form.handle_key(key(KeyCode::Enter)), FormRequest::Submit);
    }

    #[test]
    fn start_form_masks_nothing_but_requires_fields() {
        let mut form = StartForm::new(String::new(), String::new(), false);
        assert_eq!(form.focus, Field::Server);
        assert_eq!(form.handle_key(key(KeyCode::Enter)), FormRequest::None);
        assert!(form.error.is_some());
        for c in "localhost:6667".chars() {
            form.handle_key(key(KeyCode::Char(c)));
        }
        form.handle_key(key(KeyCode::Tab));
        form.handle_key(key(KeyCode::Right));
        assert!(form.register);
        form.handle_key(key(KeyCode::Tab));
        form.handle_key(key(KeyCode::Char('a')));
        form.handle_key(key(KeyCode::Tab));
        assert_eq!(
            form.handle_key(key(KeyCode::Enter)),
            FormRequest::None,
            "register needs a password"
        );
        form.handle_key(key(KeyCode::Char('p')));
        assert_eq!(form.handle_key(key(KeyCode::Enter)), FormRequest::Submit);
        assert_eq!(
            (
                form.server.as_str(),
                form.user.as_str(),
                form.password.as_str()
            ),
            ("localhost:6667", "a", "p")
        );
    }
}
