//! Drawing, and nothing else: the start form, the certificate question and the main screen
//! (buffer list with who is online, topic, messages with reply quotes and reactions, who is
//! typing, members, status bar, input) are pure functions of the chat state and the view, so
//! tests render them into ratatui's `TestBackend` and read the cells.

use chrono::{Local, Utc};
use parley_client::{Buffer, BufferKind, ConnectionState, Line as ChatLine, LineKind, State};
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Padding, Paragraph, Wrap};
use ratatui::Frame;

use crate::theme::Theme;
use crate::view::{Field, StartForm, View};

/// Facts about the connection the status bar shows that the chat state does not know.
pub struct StatusInfo<'a> {
    pub server: &'a str,
    pub tls: bool,
    pub theme: &'a Theme,
}

pub fn draw_main(frame: &mut Frame, state: &State, view: &mut View, info: &StatusInfo<'_>) {
    let theme = info.theme;
    frame.render_widget(Block::default().style(theme.base()), frame.area());
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .split(frame.area());
    let columns = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([
            Constraint::Length(18),
            Constraint::Min(20),
            Constraint::Length(18),
        ])
        .split(rows[1]);
    draw_topic(frame, rows[0], state, theme);
    draw_buffers(frame, columns[0], state, theme);
    // An open search shows its results where the messages are.
    match state.search_results() {
        Some(results) => crate::search_view::draw_search(
            frame,
            columns[1],
            state,
            results,
            view.search_selected,
            theme,
        ),
        None => draw_messages(frame, columns[1], state, view, theme),
    }
    draw_members(frame, columns[2], state, theme);
    draw_status(frame, rows[2], state, info);
    draw_input(frame, rows[3], state, view, theme);
}

fn draw_topic(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let buffer = state.active();
    let text = match (&buffer.kind, &buffer.topic) {
        (BufferKind::Channel, Some(topic)) => format!(" {}: {topic}", buffer.name),
        (BufferKind::Channel, None) => format!(" {}: (no topic)", buffer.name),
        (BufferKind::Query, _) => format!(" private conversation with {}", buffer.name),
        (BufferKind::Server, _) => format!(" {}", state.server_name().unwrap_or("server messages")),
    };
    frame.render_widget(Paragraph::new(text).style(theme.topic), area);
}

fn draw_buffers(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let lines: Vec<Line> = state
        .buffers()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let marker = match (b.mentions, b.unread) {
                (0, 0) => String::new(),
                (0, unread) => format!(" ({unread})"),
                (mentions, _) => format!(" ({mentions}!)"),
            };
            let mut style = Style::default();
            if b.mentions > 0 {
                style = style.fg(theme.error).add_modifier(Modifier::BOLD);
            } else if b.unread > 0 {
                style = style.fg(theme.unread);
            } else if b.kind == BufferKind::Channel && !b.joined {
                style = style.fg(theme.dim);
            }
            if i == state.active_index() {
                style = style.add_modifier(Modifier::REVERSED);
            }
            // MONITOR: a filled dot for a conversation's peer online, an empty one offline.
            let presence = match b.online {
                Some(true) => "●",
                Some(false) => "○",
                None => "",
            };
            Line::from(Span::styled(
                format!("{:>2} {presence}{}{marker}", i + 1, b.name),
                style,
            ))
        })
        .collect();
    let block = Block::default().borders(Borders::RIGHT);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn line_spans(line: &ChatLine, state: &State, theme: &Theme) -> Vec<Span<'static>> {
    let time = line.time.with_timezone(&Local).format("%H:%M").to_string();
    let mut spans = vec![Span::styled(
        format!("{time} "),
        Style::default().fg(theme.dim),
    )];
    let from = line.from.clone().unwrap_or_default();
    let nick_style = Style::default()
        .fg(theme.nick(state.colour_key(&from)))
        .add_modifier(Modifier::BOLD);
    let mut text_style = Style::default();
    if line.highlight {
        text_style = text_style.fg(theme.error).add_modifier(Modifier::BOLD);
    }
    match line.kind {
        LineKind::Message => {
            spans.push(Span::styled(format!("<{from}> "), nick_style));
            spans.push(Span::styled(line.text.clone(), text_style));
        }
        LineKind::Action => {
            spans.push(Span::styled(format!("* {from} "), nick_style));
            spans.push(Span::styled(line.text.clone(), text_style));
        }
        LineKind::Notice => {
            spans.push(Span::styled(format!("-{from}- "), nick_style));
            spans.push(Span::styled(line.text.clone(), text_style));
        }
        LineKind::Error => spans.push(Span::styled(
            format!("!! {}", line.text),
            Style::default().fg(theme.error),
        )),
        LineKind::Info => spans.push(Span::raw(line.text.clone())),
        _ => spans.push(Span::styled(
            format!("-- {}", line.text),
            Style::default().fg(theme.dim),
        )),
    }
    if !line.reactions.is_empty() {
        let reactions: Vec<String> = line
            .reactions
            .iter()
            .map(|r| format!("{} {}", r.text, r.count()))
            .collect();
        spans.push(Span::styled(
            format!("  [{}]", reactions.join(" ")),
            Style::default().fg(theme.dim),
        ));
    }
    spans
}

/// The row above a reply: "      ↪ bob: is the release out?" (the parent's first words).
fn quote_spans(line: &ChatLine, buffer: &Buffer, theme: &Theme) -> Option<Vec<Span<'static>>> {
    let parent = line.reply_to.as_deref()?;
    let quote = match buffer.line_by_msgid(parent) {
        Some(parent) => {
            let mut text: String = parent.text.chars().take(50).collect();
            if parent.text.chars().count() > 50 {
                text.push('…');
            }
            format!("↪ {}: {text}", parent.from.as_deref().unwrap_or("?"))
        }
        None => "↪ a message not loaded".to_string(),
    };
    Some(vec![Span::styled(
        format!("      {quote}"),
        Style::default().fg(theme.dim),
    )])
}

/// Splits styled spans into rows of at most `width` characters.
fn wrap(spans: Vec<Span<'static>>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut rows = vec![Vec::new()];
    let mut used = 0;
    for span in spans {
        let mut piece = String::new();
        for c in span.content.chars() {
            if used == width {
                if !piece.is_empty() {
                    if let Some(row) = rows.last_mut() {
                        row.push(Span::styled(std::mem::take(&mut piece), span.style));
                    }
                }
                rows.push(Vec::new());
                used = 0;
            }
            piece.push(c);
            used += 1;
        }
        if !piece.is_empty() {
            if let Some(row) = rows.last_mut() {
                row.push(Span::styled(piece, span.style));
            }
        }
    }
    rows.into_iter().map(Line::from).collect()
}

fn draw_messages(frame: &mut Frame, area: Rect, state: &State, view: &mut View, theme: &Theme) {
    let buffer = state.active();
    let width = area.width as usize;
    // Who is typing takes the last row while anyone is.
    let mut area = area;
    if let Some(typing) = buffer.typing_text(Utc::now()) {
        if area.height > 1 {
            area.height -= 1;
            let row = Rect::new(area.x, area.y + area.height, area.width, 1);
            let text = Span::styled(
                format!(" {typing}"),
                Style::default()
                    .fg(theme.dim)
                    .add_modifier(Modifier::ITALIC),
            );
            frame.render_widget(Paragraph::new(Line::from(text)), row);
        }
    }
    let height = area.height as usize;
    let rows: Vec<Line> = buffer
        .lines
        .iter()
        .flat_map(|l| {
            let quote = quote_spans(l, buffer, theme).map(|q| wrap(q, width));
            quote
                .into_iter()
                .flatten()
                .chain(wrap(line_spans(l, state, theme), width))
        })
        .collect();
    let max_scroll = rows.len().saturating_sub(height);
    view.scroll = view.scroll.min(max_scroll);
    view.page = height;
    view.at_top = view.scroll >= max_scroll;
    let end = rows.len() - view.scroll;
    let start = end.saturating_sub(height);
    let visible: Vec<Line> = rows[start..end].to_vec();
    frame.render_widget(Paragraph::new(visible), area);
}

fn draw_members(frame: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let buffer = state.active();
    let mut lines = Vec::new();
    if buffer.kind == BufferKind::Channel {
        lines.push(Line::from(Span::styled(
            format!("{} users", buffer.members.len()),
            Style::default().add_modifier(Modifier::BOLD),
        )));
        for member in buffer.sorted_members(state.prefix_order()) {
            let mut style = Style::default().fg(theme.nick(state.colour_key(&member.nick)));
            if member.away {
                style = style.add_modifier(Modifier::DIM);
            }
            lines.push(Line::from(vec![
                Span::raw(format!(
                    "{:>1}",
                    member.prefixes.chars().next().unwrap_or(' ')
                )),
                Span::styled(member.nick.clone(), style),
            ]));
        }
    }
    let block = Block::default().borders(Borders::LEFT);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_status(frame: &mut Frame, area: Rect, state: &State, info: &StatusInfo<'_>) {
    let connection = state.connection();
    let theme = info.theme;
    let colour = match connection {
        ConnectionState::Connected => theme.good,
        ConnectionState::Failed(_) => theme.error,
        _ => theme.waiting,
    };
    let security = if info.tls { "TLS" } else { "plain" };
    let account = match state.account() {
        Some(account) => format!("account {account}"),
        None => "no account".to_string(),
    };
    let away = if state.is_away() { " [away]" } else { "" };
    let active = state.active();
    let e2e = if active.kind == parley_client::BufferKind::Query {
        let status = state.e2e_status(&active.name);
        match (status.encrypted, status.verified) {
            (true, true) => " [encrypted, verified]",
            (true, false) => " [encrypted, not verified]",
            (false, _) if status.available => " [not encrypted]",
            (false, _) => "",
        }
    } else {
        ""
    };
    let spans = vec![
        Span::styled(format!(" [{connection}] "), Style::default().fg(colour)),
        Span::raw(format!(
            "{} | {security} | {} | {account}{away}{e2e} | PgUp/PgDn scroll, Ctrl-N/P buffers, /help",
            info.server,
            state.nick()
        )),
    ];
    frame.render_widget(Paragraph::new(Line::from(spans)).style(theme.bar), area);
}

fn draw_input(frame: &mut Frame, area: Rect, state: &State, view: &View, theme: &Theme) {
    let prompt = format!("[{}] ", state.active().name);
    let prompt_width = prompt.chars().count();
    let available = (area.width as usize)
        .saturating_sub(prompt_width + 1)
        .max(1);
    let skip = view.cursor.saturating_sub(available);
    let shown: String = view.input.chars().skip(skip).take(available).collect();
    let line = Line::from(vec![
        Span::styled(prompt, Style::default().fg(theme.prompt)),
        Span::raw(shown),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (prompt_width + view.cursor - skip) as u16;
    frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
}

pub fn draw_start(frame: &mut Frame, form: &StartForm, theme: &Theme) {
    frame.render_widget(Block::default().style(theme.base()), frame.area());
    let area = centered(frame.area(), 60, 14);
    frame.render_widget(Clear, area);
    // Left padding, so a wrapped error line starts under the text, not at the border.
    let block = Block::default()
        .borders(Borders::ALL)
        .padding(Padding::new(2, 0, 0, 0))
        .title(" parley - connect ");
    let field = |label: &str, value: String, focused: bool| {
        let style = if focused {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        };
        Line::from(vec![
            Span::raw(format!("{label:>8}: ")),
            Span::styled(format!("{value:<30}"), style),
        ])
    };
    let mode = if form.register {
        "( ) log in   (x) register new account"
    } else {
        "(x) log in   ( ) register new account"
    };
    let mut lines = vec![
        Line::raw(""),
        field("Server", form.server.clone(), form.focus == Field::Server),
        field("Account", mode.to_string(), form.focus == Field::Mode),
        field("Username", form.user.clone(), form.focus == Field::User),
        field(
            "Password",
            "*".repeat(form.password.chars().count()),
            form.focus == Field::Password,
        ),
        Line::raw(""),
        Line::styled(
            "Tab/Up/Down: next field   Left/Right: log in or register",
            Style::default().fg(theme.dim),
        ),
        Line::styled("Enter: connect   Esc: quit", Style::default().fg(theme.dim)),
    ];
    // The server's refusal of a guest already says it needs an account: no second hint then.
    let hint = if form.guests_possible() {
        Some("Empty password: guest, where the server allows guests")
    } else if form.error.is_none() {
        Some("This server needs an account: log in or register")
    } else {
        None
    };
    if let Some(hint) = hint {
        lines.push(Line::styled(hint, Style::default().fg(theme.dim)));
    }
    if let Some(error) = &form.error {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            error.clone(),
            Style::default().fg(theme.error),
        ));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .style(theme.base())
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The certificate question: the refusal (with the fingerprint) and "store it? y/n".
pub fn draw_trust(frame: &mut Frame, message: &str, theme: &Theme) {
    frame.render_widget(Block::default().style(theme.base()), frame.area());
    let area = centered(frame.area(), 90, 18);
    frame.render_widget(Clear, area);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" unknown certificate ");
    let inner = usize::from(area.width.saturating_sub(2));
    let mut lines: Vec<Line> = message
        .lines()
        .flat_map(|l| fingerprint_rows(l, inner))
        .map(Line::raw)
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "Trust this certificate and remember it in known_servers? [y/n]",
        Style::default().add_modifier(Modifier::BOLD),
    ));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .style(theme.base())
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// A fingerprint line (`AB:CD:...`) too wide for `width` split between byte pairs, each row
/// keeping the line's indent, so no byte is cut in two; any other line is returned as it is (the
/// paragraph wraps words).
fn fingerprint_rows(line: &str, width: usize) -> Vec<String> {
    let text = line.trim_start();
    let indent = &line[..line.len() - text.len()];
    let is_fingerprint = text.len() > 2
        && text.contains(':')
        && text.chars().all(|c| c == ':' || c.is_ascii_hexdigit());
    if !is_fingerprint || line.chars().count() <= width {
        return vec![line.to_string()];
    }
    // Each byte takes "AB:" (3 columns), the colon kept at the end of a row to show it goes on.
    let per_row = (width.saturating_sub(indent.len()) / 3).max(1);
    let bytes: Vec<&str> = text.split(':').collect();
    let rows = bytes.chunks(per_row).count();
    bytes
        .chunks(per_row)
        .enumerate()
        .map(|(i, chunk)| {
            let colon = if i + 1 < rows { ":" } else { "" };
            format!("{indent}{}{colon}", chunk.join(":"))
        })
        .collect()
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    /// The screen as text, one string per row.
    pub fn screen(terminal: &Terminal<TestBackend>) -> Vec<String> {
        let buffer = terminal.backend().buffer();
        let width = buffer.area.width as usize;
        buffer
            .content
            .chunks(width)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
            .collect()
    }

    pub fn sample_state() -> State {
        let mut state = State::new("alice", "Alice");
        state.on_connected(true, parley_client::Auth::Guest);
        for line in [
            ":parley.local CAP * LS :server-time",
            ":parley.local CAP alice ACK :server-time",
            ":parley.local 001 alice :Welcome to Parley, alice",
            ":parley.local 900 alice alice!~alice@127.0.0.1 alice :You are now logged in as alice",
            ":alice!~alice@127.0.0.1 JOIN #lobby",
            ":alice!~alice@127.0.0.1 JOIN #rust",
            ":parley.local 332 alice #rust :All things Rust",
            ":parley.local 353 alice = #rust :@alice bob +carol",
            ":parley.local 366 alice #rust :End of /NAMES list",
        ] {
            state.handle_line(line);
        }
        state.set_active_by_name("#rust");
        for line in [
            "@time=2024-05-01T09:30:00.000Z :bob!~bob@127.0.0.1 PRIVMSG #rust :hi alice, ready?",
            "@time=2024-05-01T09:31:00.000Z :carol!~carol@127.0.0.1 PRIVMSG #rust :\x01ACTION waves\x01",
            "@time=2024-05-01T09:32:00.000Z :bob!~bob@127.0.0.1 PRIVMSG #lobby :anyone?",
            "@time=2024-05-01T09:33:00.000Z :dave!~dave@127.0.0.1 PRIVMSG alice :psst",
        ] {
            state.handle_line(line);
        }
        state.set_active_by_name("#rust");
        state
    }

    #[test]
    fn main_screen_shows_buffers_messages_members_and_status() {
        let state = sample_state();
        let mut view = View::default();
        let mut terminal = Terminal::new(TestBackend::new(100, 14)).expect("test terminal");
        let theme = Theme::default();
        let info = StatusInfo {
            server: "localhost:6697",
            tls: true,
            theme: &theme,
        };
        terminal
            .draw(|frame| draw_main(frame, &state, &mut view, &info))
            .expect("draws");
        let rows = screen(&terminal);
        let text = rows.join("\n");
        assert!(rows[0].contains("#rust: All things Rust"), "{text}");
        assert!(text.contains("<bob> hi alice, ready?"), "{text}");
        assert!(text.contains("* carol waves"), "{text}");
        assert!(text.contains(" 2 #lobby (1)"), "unread marker: {text}");
        assert!(text.contains(" 4 dave (1!)"), "mention marker: {text}");
        assert!(
            text.contains("@alice") && text.contains("+carol") && text.contains(" bob"),
            "{text}"
        );
        assert!(text.contains("3 users"), "{text}");
        assert!(
            rows[12].contains("[connected]")
                && rows[12].contains("TLS")
                && rows[12].contains("account alice"),
            "{text}"
        );
        assert!(rows[13].starts_with("[#rust] "), "{text}");
    }

    #[test]
    fn replies_reactions_typing_and_presence_are_shown() {
        let mut state = sample_state();
        for line in [
            ":parley.local CAP alice ACK :message-tags",
            ":parley.local 005 alice MONITOR=10 :are supported",
            ":parley.local 730 alice :dave!d@h",
            "@time=2024-05-01T09:40:00.000Z;msgid=p1 :bob!b@h PRIVMSG #rust :is the release out?",
            "@msgid=r1;+draft/reply=p1;+draft/react=+1 :carol!c@h TAGMSG #rust",
            "@time=2024-05-01T09:41:00.000Z;msgid=p2;+draft/reply=p1 :carol!c@h PRIVMSG #rust :yes, since this morning",
            "@+typing=active :bob!b@h TAGMSG #rust",
        ] {
            state.handle_line(line);
        }
        let mut view = View::default();
        let mut terminal = Terminal::new(TestBackend::new(100, 14)).expect("test terminal");
        let theme = Theme::default();
        let info = StatusInfo {
            server: "localhost:6697",
            tls: true,
            theme: &theme,
        };
        terminal
            .draw(|frame| draw_main(frame, &state, &mut view, &info))
            .expect("draws");
        let rows = screen(&terminal);
        let text = rows.join("\n");
        assert!(text.contains("<bob> is the release out?  [+1 1]"), "{text}");
        assert!(text.contains("      ↪ bob: is the release out?"), "{text}");
        assert!(text.contains("<carol> yes, since this morning"), "{text}");
        assert!(rows[11].contains(" bob is typing…"), "{text}");
        assert!(text.contains(" 4 ●dave (1!)"), "{text}");
    }

    #[test]
    fn page_up_scrolls_back() {
        let mut state = sample_state();
        for i in 0..40 {
            state.handle_line(&format!(":bob!u@h PRIVMSG #rust :line {i}"));
        }
        let mut view = View::default();
        let mut terminal = Terminal::new(TestBackend::new(80, 12)).expect("test terminal");
        let theme = Theme::default();
        let info = StatusInfo {
            server: "s",
            tls: false,
            theme: &theme,
        };
        terminal
            .draw(|f| draw_main(f, &state, &mut view, &info))
            .expect("draws");
        assert!(screen(&terminal).join("\n").contains("line 39"));
        view.handle_key(
            crossterm::event::KeyEvent::new(
                crossterm::event::KeyCode::PageUp,
                crossterm::event::KeyModifiers::NONE,
            ),
            &mut state,
        );
        terminal
            .draw(|f| draw_main(f, &state, &mut view, &info))
            .expect("draws");
        let text = screen(&terminal).join("\n");
        assert!(
            !text.contains("line 39") && text.contains("line 30"),
            "{text}"
        );
    }

    #[test]
    fn start_form_masks_the_password() {
        let mut form = StartForm::new("localhost:6697".into(), "alice".into(), false);
        form.password = "secret".into();
        let mut terminal = Terminal::new(TestBackend::new(80, 20)).expect("test terminal");
        terminal
            .draw(|f| draw_start(f, &form, &Theme::default()))
            .expect("draws");
        let text = screen(&terminal).join("\n");
        assert!(text.contains("Server: localhost:6697"), "{text}");
        assert!(text.contains("Password: ******"), "{text}");
        assert!(!text.contains("secret"));
    }

    #[test]
    fn the_trust_dialog_breaks_a_fingerprint_only_between_bytes() {
        let fingerprint = (0..32)
            .map(|i| format!("{:02X}", i * 7 % 256))
            .collect::<Vec<_>>()
            .join(":");
        let message = format!(
            "the certificate of localhost:6697 is not trusted: it is not signed by a trusted \
             certificate authority.\nIts SHA-256 fingerprint is\n    {fingerprint}"
        );
        for width in [120u16, 92, 80, 60, 40] {
            let mut terminal = Terminal::new(TestBackend::new(width, 30)).expect("test terminal");
            terminal
                .draw(|f| draw_trust(f, &message, &Theme::default()))
                .expect("draws");
            let rows = screen(&terminal);
            // Every row holding part of the fingerprint holds whole bytes, and together they
            // spell it out in order.
            let parts: Vec<String> = rows
                .iter()
                .map(|r| {
                    r.trim_matches(|c: char| c == '│' || c.is_whitespace())
                        .to_string()
                })
                .filter(|r| !r.is_empty() && r.chars().all(|c| c == ':' || c.is_ascii_hexdigit()))
                .collect();
            for part in &parts {
                assert!(
                    part.trim_end_matches(':').split(':').all(|b| b.len() == 2),
                    "a byte was cut at width {width}: {rows:#?}"
                );
            }
            assert_eq!(parts.concat(), fingerprint, "width {width}: {rows:#?}");
        }
    }

    #[test]
    fn nicks_are_coloured_by_account_in_both_themes() {
        use crate::theme::ThemeName;
        use ratatui::style::Color;
        let mut state = sample_state();
        for line in [
            ":parley.local CAP alice ACK :account-tag extended-join",
            ":bob_laptop!u@h JOIN #rust bob :Bob",
            "@account=bob :bob!~bob@127.0.0.1 PRIVMSG #rust :one person",
        ] {
            state.handle_line(line);
        }
        for name in [ThemeName::Dark, ThemeName::Light] {
            let theme = Theme::new(name);
            let colour = theme.nick(state.colour_key("bob_laptop"));
            assert_eq!(colour, theme.nick(state.colour_key("bob")), "{name:?}");
            assert_eq!(colour, theme.nick("BOB"));
            let mut view = View::default();
            let mut terminal = Terminal::new(TestBackend::new(100, 14)).expect("test terminal");
            let info = StatusInfo {
                server: "s",
                tls: true,
                theme: &theme,
            };
            terminal
                .draw(|f| draw_main(f, &state, &mut view, &info))
                .expect("draws");
            let buffer = terminal.backend().buffer();
            let row = screen(&terminal)
                .iter()
                .position(|r| r.contains("<bob> one person"))
                .expect("the line is shown");
            let column = screen(&terminal)[row].find("<bob>").expect("nick");
            let cell = &buffer[(column as u16, row as u16)];
            assert_eq!(
                cell.fg, colour,
                "{name:?}: the nick has its account's colour"
            );
            assert_eq!(
                buffer[(50u16, 5u16)].bg,
                theme.background,
                "{name:?}: painted"
            );
        }
        let dark = Theme::new(ThemeName::Dark);
        let light = Theme::new(ThemeName::Light);
        assert_ne!(dark.background, light.background);
        assert!(light
            .nicks
            .iter()
            .all(|c| !matches!(c, Color::Yellow | Color::LightYellow)));
    }
}
