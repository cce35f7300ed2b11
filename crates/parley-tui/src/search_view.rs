//! The results of `/search` (server-side search, `soju.im/search`), shown in place of the
//! messages while a search is open: a header saying what was looked for and how it went, then
//! one row per hit, newest first (date and time, where, who, text). Up/Down choose a hit when the
//! input is empty, Enter opens its conversation, Esc closes the results, and `/search` alone
//! asks for older ones. Kept apart from `ui.rs` and `view.rs` so those only route to it.

use chrono::Local;
use crossterm::event::{KeyCode, KeyEvent};
use parley_client::{LineKind, SearchResults, SearchStatus, State};
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::theme::Theme;

/// The header: what was looked for, how many were found, and what the keys do.
pub fn header(results: &SearchResults) -> String {
    let query = &results.query;
    let place = query
        .target
        .as_deref()
        .map(|t| format!(" in {t}"))
        .unwrap_or_default();
    let what = format!("search \"{}\"{place}", query.text);
    let count = results.hits.len();
    let plural = if count == 1 { "" } else { "s" };
    match &results.status {
        SearchStatus::Waiting if count == 0 => format!("{what}: searching..."),
        SearchStatus::Waiting => format!("{what}: {count} result{plural}, loading older..."),
        SearchStatus::Failed { code, text } => {
            format!("{what} failed: {text} ({code}) - Esc closes")
        }
        SearchStatus::Done { more } => {
            let older = if *more { ", /search for older" } else { "" };
            format!("{what}: {count} result{plural} - Up/Down, Enter opens, Esc closes{older}")
        }
    }
}

/// Draws the results into the message area; `selected` is the chosen hit.
pub fn draw_search(
    frame: &mut Frame,
    area: Rect,
    state: &State,
    results: &SearchResults,
    selected: usize,
    theme: &Theme,
) {
    let height = area.height as usize;
    let selected = selected.min(results.hits.len().saturating_sub(1));
    let mut rows = vec![Line::from(Span::styled(
        header(results),
        Style::default().add_modifier(Modifier::BOLD),
    ))];
    // Keep the chosen hit in view: scroll by whole pages of hits below the header.
    let per_page = height.saturating_sub(1).max(1);
    let first = selected / per_page * per_page;
    for (i, hit) in results.hits.iter().enumerate().skip(first).take(per_page) {
        let time = hit.time.with_timezone(&Local).format("%Y-%m-%d %H:%M");
        let who = match hit.kind {
            LineKind::Action => format!("* {}", hit.from),
            LineKind::Notice => format!("-{}-", hit.from),
            _ => format!("<{}>", hit.from),
        };
        let mut row = vec![
            Span::styled(format!("{time} "), Style::default().fg(theme.dim)),
            Span::styled(
                format!("{} ", hit.buffer),
                Style::default().fg(theme.unread),
            ),
            Span::styled(
                format!("{who} "),
                Style::default()
                    .fg(theme.nick(state.colour_key(&hit.from)))
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(hit.text.clone()),
        ];
        if i == selected {
            row = row
                .into_iter()
                .map(|s| s.patch_style(Style::default().add_modifier(Modifier::REVERSED)))
                .collect();
        }
        rows.push(Line::from(row));
    }
    frame.render_widget(Paragraph::new(rows), area);
}

/// What a key does while results are shown; `None` when it is not for the results (typing,
/// editing, or a command line being entered). `selected` is kept within the hits.
pub fn handle_key(
    key: KeyEvent,
    input_empty: bool,
    selected: &mut usize,
    state: &mut State,
) -> Option<()> {
    let count = state.search_results()?.hits.len();
    match key.code {
        KeyCode::Esc => {
            state.clear_search();
            *selected = 0;
        }
        KeyCode::Down if input_empty => *selected = (*selected + 1).min(count.saturating_sub(1)),
        KeyCode::Up if input_empty => *selected = selected.saturating_sub(1),
        KeyCode::Enter if input_empty && count > 0 => {
            state.open_search_hit(*selected)?;
            state.clear_search();
            *selected = 0;
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::{draw_main, StatusInfo};
    use crate::view::View;
    use crossterm::event::KeyModifiers;
    use parley_client::{input, Action};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn screen(state: &State, view: &mut View) -> String {
        let mut terminal = Terminal::new(TestBackend::new(110, 12)).expect("test terminal");
        let theme = Theme::default();
        let info = StatusInfo {
            server: "localhost:6697",
            tls: true,
            theme: &theme,
        };
        terminal
            .draw(|frame| draw_main(frame, state, view, &info))
            .expect("draws");
        let buffer = terminal.backend().buffer();
        let width = buffer.area.width as usize;
        buffer
            .content
            .chunks(width)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn logged_in(caps: &str) -> State {
        let mut state = State::new("alice", "Alice");
        state.on_connected(true, parley_client::Auth::Guest);
        for line in [
            format!(":srv CAP * LS :{caps}"),
            format!(":srv CAP alice ACK :{caps}"),
            ":srv 001 alice :Welcome".to_string(),
            ":srv 900 alice alice!a@h alice :You are now logged in as alice".to_string(),
            ":alice!a@h JOIN #chan".to_string(),
            ":alice!a@h JOIN #lobby".to_string(),
        ] {
            state.handle_line(&line);
        }
        state
    }

    /// The spec's second example, and a private hit.
    fn answered(state: &mut State) {
        for line in [
            ":irc.host BATCH +ID soju.im/search",
            "@batch=ID;msgid=1234;time=2019-01-04T14:33:26.123Z :bill!indent@host PRIVMSG #chan :That was fast!",
            "@batch=ID;msgid=1235;time=2019-01-04T14:35:26.123Z :jackie!indent@host PRIVMSG #chan :Fasting is hard.",
            "@batch=ID;msgid=1236;time=2019-01-04T14:36:00.000Z :dave!d@h PRIVMSG alice :fast lane?",
            ":irc.host BATCH -ID",
        ] {
            state.handle_line(line);
        }
    }

    #[test]
    fn search_results_replace_the_messages_and_enter_opens_one() {
        let mut state = logged_in("soju.im/search batch server-time");
        let mut view = View::default();
        let sent = input::parse("/search #chan fast")
            .and_then(|a| state.act(a))
            .expect("sent");
        assert_eq!(sent, ["SEARCH text=fast;in=#chan;limit=50"]);
        assert!(screen(&state, &mut view).contains("search \"fast\" in #chan: searching..."));
        answered(&mut state);
        let text = screen(&state, &mut view);
        assert!(
            text.contains("search \"fast\" in #chan: 3 results - Up/Down, Enter opens, Esc closes"),
            "{text}"
        );
        assert!(text.contains("dave <dave> fast lane?"), "{text}");
        assert!(text.contains("#chan <jackie> Fasting is hard."), "{text}");
        assert!(text.contains("#chan <bill> That was fast!"), "{text}");
        assert!(
            !text.contains("/search for older"),
            "one short page: {text}"
        );
        let newest = text.find("fast lane?").expect("shown");
        let oldest = text.find("That was fast!").expect("shown");
        assert!(newest < oldest, "newest first: {text}");

        // Down twice chooses bill's message; Enter opens #chan and closes the results.
        view.handle_key(key(KeyCode::Down), &mut state);
        view.handle_key(key(KeyCode::Down), &mut state);
        view.handle_key(key(KeyCode::Down), &mut state);
        assert_eq!(
            view.handle_key(key(KeyCode::Enter), &mut state),
            crate::view::Request::None
        );
        assert_eq!(state.active().name, "#chan");
        assert!(state.search_results().is_none());
        let text = screen(&state, &mut view);
        assert!(!text.contains("search \"fast\""), "{text}");

        // Esc closes without moving; typed text still goes to the input.
        state
            .act(Action::Search(parley_client::SearchQuery {
                text: "fast".into(),
                ..Default::default()
            }))
            .expect("sent");
        answered(&mut state);
        view.handle_key(key(KeyCode::Char('x')), &mut state);
        assert_eq!(view.input, "x");
        view.handle_key(key(KeyCode::Esc), &mut state);
        assert!(state.search_results().is_none());
        assert_eq!(state.active().name, "#chan");
    }

    #[test]
    fn a_refusal_is_shown_and_help_lists_search() {
        let mut state = logged_in("soju.im/search batch server-time");
        let mut view = View::default();
        state.act(Action::Help(None)).expect("help is local");
        let help: Vec<&str> = state
            .active()
            .lines
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        assert!(
            help.iter()
                .any(|l| l.contains("/search [#channel|nick] <words>")),
            "{help:?}"
        );
        input::parse("/search x")
            .and_then(|a| state.act(a))
            .expect("sent");
        state.handle_line(":srv FAIL SEARCH INVALID_PARAMS in :Invalid parameters");
        let text = screen(&state, &mut view);
        assert!(
            text.contains("search \"x\" failed: Invalid parameters (INVALID_PARAMS)"),
            "{text}"
        );
    }

    #[test]
    fn a_marker_from_another_device_clears_the_unread_count() {
        // Item 3 of issue 26: read on the phone, cleared here.
        let mut state = logged_in("draft/read-marker batch server-time");
        state.set_active_by_name("#lobby");
        state.handle_line("@time=2024-05-01T09:30:00.000Z :bob!b@h PRIVMSG #chan :one");
        state.handle_line("@time=2024-05-01T09:31:00.000Z :bob!b@h PRIVMSG #chan :two");
        let mut view = View::default();
        assert!(screen(&state, &mut view).contains(" 2 #chan (2)"));
        state.handle_line(":srv MARKREAD #chan timestamp=2024-05-01T09:30:00.000Z");
        assert!(screen(&state, &mut view).contains(" 2 #chan (1)"));
        state.handle_line(":srv MARKREAD #chan timestamp=2024-05-01T09:31:00.000Z");
        let text = screen(&state, &mut view);
        assert!(
            text.contains(" 2 #chan ") && !text.contains("#chan ("),
            "{text}"
        );
    }
}
