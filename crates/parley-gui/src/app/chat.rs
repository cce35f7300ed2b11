//! The chat screen: toolbar, status bar, the list of conversations (with who is online),
//! members, the input with its Tab completion and history keys (telling others while you type,
//! and who is typing here), the topic bar and the messages (with reply quotes, reactions, and a
//! right-click menu to reply or react; asking the server for older history when scrolled to the
//! top).

use std::time::{Duration, Instant};

use eframe::egui::{
    self, text::LayoutJob, Align, Button, Color32, FontId, Id, Key, Layout, RichText, TextEdit,
    TextFormat, TextStyle, Ui,
};
use parley_client::{input, Action, BufferKind, LineKind};

use super::dialogs::Dialog;
use super::{App, Phase, ReplyTo};
use crate::composer::{self, Edit};
use crate::connection::Connection;
use crate::model::{self, Health, Row, RowStyle};
use crate::settings::Theme;
use crate::theme;

/// Wait this long before asking for older history again while nothing new arrived.
const HISTORY_RETRY: Duration = Duration::from_secs(10);
/// The reactions offered in a message's menu.
const QUICK_REACTIONS: &[&str] = &["👍", "❤", "😂", "🎉", "👀"];

/// What a click on a message asked for.
enum RowAction {
    /// Answer it: its msgid and its quote.
    Reply(String, String),
    /// React to it (its msgid) with this.
    React(String, String),
}

/// A key the input field handles itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EditKey {
    Tab,
    Up,
    Down,
}

/// What `App::take_composer_keys` found among this frame's keys.
#[derive(Debug, Default)]
struct ComposerKeys {
    send: bool,
    edit: Option<EditKey>,
}

impl App {
    // ---- the chat ----

    pub(super) fn chat_ui(&mut self, ui: &mut Ui) {
        let Some(connection) = self.connection.take() else {
            self.phase = Phase::Login;
            return;
        };
        self.toolbar(ui, connection.as_ref());
        self.status_bar(ui, connection.as_ref());
        self.side_list(ui, connection.as_ref());
        self.members(ui, connection.as_ref());
        self.search_panel(ui, connection.as_ref());
        self.composer(ui, connection.as_ref());
        self.topic_bar(ui, connection.as_ref());
        self.e2e_bar(ui, connection.as_ref());
        self.messages(ui, connection.as_ref());
        self.dialogs(ui, connection.as_ref());
        self.toasts_ui(ui, connection.as_ref());
        if !matches!(self.phase, Phase::Chat) {
            // "Log in again" was pressed while this connection was lent to the drawing code.
            connection.send(Action::Quit(None));
        } else if self.connection.is_none() {
            self.connection = Some(connection);
        }
    }

    fn toolbar(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        egui::Panel::top("toolbar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("Parley");
                ui.separator();
                if ui.button("New group").clicked() {
                    self.dialog = Some(Dialog::NewGroup(String::new()));
                }
                if ui.button("Join group").clicked() {
                    self.dialog = Some(Dialog::JoinGroup(String::new()));
                }
                if ui.button("Message user").clicked() {
                    self.dialog = Some(Dialog::MessageUser(String::new()));
                }
                if connection.state().search_supported()
                    && ui.button("Search").on_hover_text("Ctrl+F").clicked()
                {
                    self.open_search();
                }
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    if ui.button("Settings").clicked() {
                        self.dialog = Some(Dialog::Settings);
                    }
                    let dark = ui.visuals().dark_mode;
                    let (label, next) = if dark {
                        ("Light theme", Theme::Light)
                    } else {
                        ("Dark theme", Theme::Dark)
                    };
                    if ui.button(label).clicked() {
                        self.settings.theme = next;
                        self.save_settings();
                    }
                });
            });
        });
    }

    fn status_bar(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        let server = format!("{}:{}", self.form.server.trim(), self.form.port.trim());
        let (health, text) = model::status_text(&connection.state(), &server, self.form.tls);
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                let [good, waiting] = theme::health_colours(ui.visuals().dark_mode);
                let colour = match health {
                    Health::Good => good,
                    Health::Waiting => waiting,
                    Health::Bad => ui.visuals().error_fg_color,
                };
                let (dot, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                ui.painter().circle_filled(dot.center(), 4.5, colour);
                ui.label(RichText::new(text).small());
                if let Some(reason) = &self.ended {
                    ui.separator();
                    ui.label(
                        RichText::new(format!("Disconnected: {reason}"))
                            .small()
                            .color(ui.visuals().error_fg_color),
                    );
                    if ui.small_button("Log in again").clicked() {
                        let error = self.ended.take();
                        self.back_to_login(error);
                    }
                }
            });
        });
    }

    fn side_list(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        let (server, channels, private) = model::buffer_entries(&connection.state());
        let mut select: Option<usize> = None;
        let mut leave: Option<String> = None;
        let mut close: Option<usize> = None;
        egui::Panel::left("buffers")
            .default_size(190.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    ui.with_layout(Layout::top_down_justified(Align::LEFT), |ui| {
                        let mut entry_ui = |ui: &mut Ui, entry: &model::BufferEntry| {
                            let mut text = RichText::new(&entry.name);
                            if entry.mentions > 0 || entry.unread > 0 {
                                text = text.strong();
                            }
                            if entry.parted {
                                text = text.weak();
                            }
                            if let Some(online) = entry.online {
                                // A green bullet before the name of a peer online; offline
                                // names are muted.
                                let mut job = LayoutJob::default();
                                if online {
                                    let font = TextStyle::Body.resolve(ui.style());
                                    let colour = theme::health_colours(ui.visuals().dark_mode)[0];
                                    job.append("• ", 0.0, TextFormat::simple(font, colour));
                                } else if !entry.active {
                                    text = text.weak();
                                }
                                text.append_to(
                                    &mut job,
                                    ui.style(),
                                    egui::FontSelection::Default,
                                    Align::Center,
                                );
                                let mut button = Button::selectable(entry.active, job);
                                if let Some(badge) = entry.badge() {
                                    button = button.right_text(
                                        RichText::new(badge)
                                            .strong()
                                            .color(ui.visuals().error_fg_color),
                                    );
                                }
                                let response = ui.add(button).on_hover_text(if online {
                                    format!("{} is online", entry.name)
                                } else {
                                    format!("{} is offline", entry.name)
                                });
                                if response.clicked() {
                                    select = Some(entry.index);
                                }
                                response.context_menu(|ui| {
                                    if ui.button("Close").clicked() {
                                        close = Some(entry.index);
                                    }
                                });
                                return;
                            }
                            let mut button = Button::selectable(entry.active, text);
                            if let Some(badge) = entry.badge() {
                                let colour = if entry.mentions > 0 {
                                    ui.visuals().error_fg_color
                                } else {
                                    ui.visuals().hyperlink_color
                                };
                                button =
                                    button.right_text(RichText::new(badge).strong().color(colour));
                            }
                            let response = ui.add(button);
                            if response.clicked() {
                                select = Some(entry.index);
                            }
                            if entry.kind != BufferKind::Server {
                                response.context_menu(|ui| {
                                    if entry.kind == BufferKind::Channel
                                        && !entry.parted
                                        && ui.button("Leave group").clicked()
                                    {
                                        leave = Some(entry.name.clone());
                                    }
                                    if ui.button("Close").clicked() {
                                        close = Some(entry.index);
                                    }
                                });
                            }
                        };
                        for entry in &server {
                            entry_ui(ui, entry);
                        }
                        ui.add_space(6.0);
                        ui.label(RichText::new("Groups").small().weak());
                        for entry in &channels {
                            entry_ui(ui, entry);
                        }
                        ui.add_space(6.0);
                        ui.label(RichText::new("Private").small().weak());
                        for entry in &private {
                            entry_ui(ui, entry);
                        }
                    });
                });
            });
        if let Some(index) = select {
            connection.state().set_active(index);
        }
        if let Some(channel) = leave {
            connection.send(Action::LeaveGroup(channel));
        }
        if let Some(index) = close {
            connection.state().set_active(index);
            connection.send(Action::Close);
        }
    }

    fn members(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        let members: Vec<(String, String, bool, String)> = {
            let state = connection.state();
            let buffer = state.active();
            if buffer.kind != BufferKind::Channel {
                return;
            }
            buffer
                .sorted_members(state.prefix_order())
                .into_iter()
                .map(|m| {
                    let key = state.colour_key(&m.nick).to_string();
                    (m.nick.clone(), m.prefixes.clone(), m.away, key)
                })
                .collect()
        };
        let own = connection.state().nick().to_string();
        let mut query: Option<String> = None;
        let mut whois: Option<String> = None;
        egui::Panel::right("members")
            .default_size(150.0)
            .show(ui, |ui| {
                ui.label(
                    RichText::new(format!("{} members", members.len()))
                        .small()
                        .weak(),
                );
                egui::ScrollArea::vertical().show(ui, |ui| {
                    for (nick, prefixes, away, colour_key) in &members {
                        let prefix = prefixes
                            .chars()
                            .next()
                            .map(String::from)
                            .unwrap_or_default();
                        let mut text = RichText::new(format!("{prefix}{nick}"))
                            .color(nick_colour(ui, colour_key));
                        if *away {
                            text = text.italics().weak();
                        }
                        let response = ui.add(Button::selectable(false, text).frame(false));
                        let response = response.on_hover_text(if *away {
                            "away; double-click for a private conversation"
                        } else {
                            "double-click for a private conversation"
                        });
                        if response.double_clicked() && !nick.eq_ignore_ascii_case(&own) {
                            query = Some(nick.clone());
                        }
                        response.context_menu(|ui| {
                            if ui.button("Message").clicked() {
                                query = Some(nick.clone());
                            }
                            if ui.button("Who is this?").clicked() {
                                whois = Some(nick.clone());
                            }
                        });
                    }
                });
            });
        if let Some(nick) = query {
            connection.send(Action::Query { nick, text: None });
        }
        if let Some(nick) = whois {
            connection.send(Action::Whois(nick));
        }
    }

    fn composer(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        let target = {
            let state = connection.state();
            let buffer = state.active();
            // A reply chosen in another buffer does not follow the user here.
            if self
                .replying_to
                .as_ref()
                .is_some_and(|reply| reply.buffer != buffer.name)
            {
                self.replying_to = None;
            }
            match buffer.kind {
                BufferKind::Server => "Type a /command (try /help)".to_string(),
                _ => format!("Message {}", buffer.name),
            }
        };
        let input_id = Id::unique("chat-input");
        let now = chrono::Utc::now();
        let (typing, typing_changes) = {
            let state = connection.state();
            (
                model::typing_text(&state, now),
                state.active().typing_changes_at(now),
            )
        };
        if let Some(at) = typing_changes {
            // Redraw when the typing line expires by itself.
            let wait = (at - now).to_std().unwrap_or_default();
            ui.ctx()
                .request_repaint_after(wait + Duration::from_millis(50));
        }
        egui::Panel::bottom("composer").show(ui, |ui| {
            ui.add_space(4.0);
            if let Some(typing) = typing {
                ui.label(RichText::new(typing).small().italics().weak());
            }
            let mut cancel_reply = false;
            if let Some(reply) = &self.replying_to {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(format!("Replying to {}", reply.quote)).small());
                    if ui.small_button("✖").on_hover_text("Do not reply").clicked() {
                        cancel_reply = true;
                    }
                });
            }
            if cancel_reply {
                self.replying_to = None;
            }
            let keys = if ui.memory(|m| m.has_focus(input_id)) {
                self.take_composer_keys(ui)
            } else {
                ComposerKeys::default()
            };
            let mut send = keys.send;
            if let Some(key) = keys.edit {
                self.edit_input(ui.ctx(), input_id, key, connection);
            }
            ui.horizontal(|ui| {
                let button_width = 70.0;
                let response = ui.add(
                    TextEdit::multiline(&mut self.input)
                        .id(input_id)
                        .hint_text(target)
                        .desired_rows(1)
                        // Tab completes nicks instead of leaving the field (Escape leaves).
                        .lock_focus(true)
                        .desired_width(ui.available_width() - button_width),
                );
                if ui
                    .add_sized(
                        [button_width - 8.0, response.rect.height()],
                        Button::new("Send"),
                    )
                    .clicked()
                {
                    send = true;
                }
                if send {
                    response.request_focus();
                } else if response.changed() && self.settings.typing_notices {
                    connection.send(Action::Typing(self.input.clone()));
                }
            });
            ui.add_space(4.0);
            if send {
                self.send_input(connection);
            }
        });
    }

    /// Takes the keys the input field gives a meaning of its own before the text field sees
    /// them: Enter sends (Shift+Enter makes a new line), Tab completes a nick, Up and Down recall
    /// sent lines while the input is a single line (in a longer one they move the cursor).
    fn take_composer_keys(&self, ui: &Ui) -> ComposerKeys {
        let single_line = !self.input.contains('\n');
        let mut keys = ComposerKeys::default();
        ui.input_mut(|i| {
            i.events.retain(|event| {
                let egui::Event::Key {
                    key,
                    pressed: true,
                    modifiers,
                    ..
                } = event
                else {
                    return true;
                };
                let plain = modifiers.is_none();
                match key {
                    Key::Enter if !modifiers.shift => keys.send = true,
                    Key::Tab if plain => keys.edit = Some(EditKey::Tab),
                    Key::ArrowUp if plain && single_line => keys.edit = Some(EditKey::Up),
                    Key::ArrowDown if plain && single_line => keys.edit = Some(EditKey::Down),
                    _ => return true,
                }
                false
            });
        });
        keys
    }

    /// Applies Tab, Up or Down through the composer and puts the cursor where it says.
    fn edit_input(
        &mut self,
        ctx: &egui::Context,
        input_id: Id,
        key: EditKey,
        connection: &dyn Connection,
    ) {
        let mut state = egui::text_edit::TextEditState::load(ctx, input_id).unwrap_or_default();
        let edit: Option<Edit> = match key {
            EditKey::Tab => {
                let cursor = state
                    .cursor
                    .char_range()
                    .map_or(self.input.chars().count(), |range| range.primary.index.0);
                let nicks = composer::completion_nicks(&connection.state());
                self.composer.complete(&self.input, cursor, &nicks)
            }
            EditKey::Up => self.composer.older(&self.input),
            EditKey::Down => self.composer.newer(&self.input),
        };
        if let Some(edit) = edit {
            self.input = edit.text;
            state
                .cursor
                .set_char_range(Some(egui::text::CCursorRange::one(
                    egui::text::CCursor::new(edit.cursor),
                )));
            state.store(ctx, input_id);
        }
    }

    /// Sends what the input holds: each line is a message or a command.
    fn send_input(&mut self, connection: &dyn Connection) {
        let text = std::mem::take(&mut self.input);
        self.composer.sent(&text);
        for line in model::input_lines(&text) {
            match input::parse(line) {
                // The first message after "Reply" answers the message chosen.
                Ok(Action::Say(text)) if self.replying_to.is_some() => {
                    let msgid = self.replying_to.take().map(|reply| reply.msgid);
                    connection.send(Action::Reply { msgid, text });
                }
                Ok(action) => connection.send(action),
                Err(error) => connection
                    .state()
                    .add_local(LineKind::Error, error.to_string()),
            }
        }
    }

    fn topic_bar(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        let topic = model::topic_text(&connection.state());
        egui::Panel::top("topic").show(ui, |ui| {
            ui.add_space(2.0);
            ui.add(egui::Label::new(RichText::new(topic).strong()).truncate())
                .on_hover_text("The topic; change it with /topic <text>");
            ui.add_space(2.0);
        });
    }

    fn messages(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        // A copy, so the lines measured below are the ones drawn even while more arrive.
        let (name, kind, lines, can_load, colour_keys) = {
            let state = connection.state();
            let buffer = state.active();
            let can_load = buffer.kind != BufferKind::Server
                && (state.has_cap("draft/chathistory") || state.has_cap("chathistory"));
            let colour_keys: std::collections::HashMap<String, String> = buffer
                .lines
                .iter()
                .filter_map(|l| l.from.as_deref())
                .map(|nick| (nick.to_string(), state.colour_key(nick).to_string()))
                .collect();
            (
                buffer.name.clone(),
                buffer.kind,
                buffer.lines.clone(),
                can_load,
                colour_keys,
            )
        };
        let line_count = lines.len();
        let mut rows = match &self.options.utc_offset {
            Some(offset) => model::rows(&lines, offset),
            None => model::rows(&lines, &chrono::Local),
        };
        // Colours follow the account, as in the other Parley clients.
        for row in &mut rows {
            if let Row::Line {
                nick: Some(nick),
                colour_key,
                ..
            } = row
            {
                if let Some(key) = colour_keys.get(nick.as_str()) {
                    *colour_key = Some(key.clone());
                }
            }
        }
        let pending = self
            .pending_scroll
            .take()
            .filter(|(buffer, _)| *buffer == name)
            .map(|(_, offset)| offset);
        let mut load_older = false;
        let mut row_action: Option<RowAction> = None;
        egui::CentralPanel::default().show(ui, |ui| {
            let mut area = egui::ScrollArea::vertical()
                .id_salt(("messages", &name))
                .stick_to_bottom(true)
                .auto_shrink([false, false]);
            if let Some(offset) = pending {
                area = area.vertical_scroll_offset(offset);
            }
            let output = area.show(ui, |ui| {
                let content_top = ui.max_rect().top();
                if can_load && ui.small_button("Load older messages").clicked() {
                    load_older = true;
                }
                if rows.is_empty() && kind != BufferKind::Server {
                    ui.label(RichText::new("No messages yet.").weak());
                }
                let mut line_tops = Vec::with_capacity(line_count);
                for row in &rows {
                    let (rect, action) = row_ui(ui, row);
                    if action.is_some() {
                        row_action = action;
                    }
                    if matches!(row, Row::Line { .. }) {
                        line_tops.push(rect.top() - content_top);
                    }
                }
                line_tops
            });
            let offset = output.state.clamped_offset().y;
            let max_offset = output.content_size.y - output.inner_rect.height();
            if let Some(kept) = self
                .scroll
                .keep(&name, &lines, &output.inner, offset, max_offset)
            {
                self.pending_scroll = Some((name.clone(), kept));
                // Draw again at the kept offset before anything is shown.
                ui.ctx()
                    .request_discard("keep the messages still while lines arrive above them");
                ui.ctx().request_repaint();
            }
            let scrollable = output.content_size.y > output.inner_rect.height();
            let at_top = offset <= 1.0;
            let scrolled_up = ui.input(|i| i.smooth_scroll_delta.y > 0.0);
            if can_load && scrollable && at_top && scrolled_up {
                load_older = true;
            }
        });
        if load_older && self.may_ask_history(&name, line_count) {
            connection.send(Action::History);
        }
        match row_action {
            Some(RowAction::Reply(msgid, quote)) => {
                self.replying_to = Some(ReplyTo {
                    buffer: name.clone(),
                    msgid,
                    quote,
                })
            }
            Some(RowAction::React(msgid, reaction)) => connection.send(Action::React {
                msgid: Some(msgid),
                reaction,
            }),
            None => {}
        }
    }

    /// Asks for older history at most once per arrival (or every `HISTORY_RETRY` when nothing came).
    fn may_ask_history(&mut self, buffer: &str, line_count: usize) -> bool {
        let now = Instant::now();
        let allowed = match self.history_asked.get(buffer) {
            None => true,
            Some((count, at)) => *count != line_count || now.duration_since(*at) > HISTORY_RETRY,
        };
        if allowed {
            self.history_asked
                .insert(buffer.to_string(), (line_count, now));
        }
        allowed
    }
}

/// A person's colour from the current theme's palette; `key` is their account, or their nick
/// when the account is unknown (see `theme::nick_colour`).
pub fn nick_colour(ui: &Ui, key: &str) -> Color32 {
    theme::nick_colour(ui.visuals().dark_mode, key)
}

/// Draws one row of the message area; returns where it landed and what a click asked for.
fn row_ui(ui: &mut Ui, row: &Row) -> (egui::Rect, Option<RowAction>) {
    match row {
        Row::Day(day) => {
            ui.add_space(4.0);
            let rect = ui
                .vertical_centered(|ui| ui.label(RichText::new(day).small().weak()).rect)
                .inner;
            ui.add_space(2.0);
            (rect, None)
        }
        Row::Line {
            time,
            nick,
            colour_key,
            text,
            style,
            highlight,
            msgid,
            quote,
            reactions,
            ..
        } => {
            let mut action = None;
            let quote_rect = quote.as_ref().map(|quote| {
                ui.label(RichText::new(format!("      {quote}")).small().weak())
                    .rect
            });
            let body = TextStyle::Body.resolve(ui.style());
            let small = FontId::new(body.size * 0.8, body.family.clone());
            let visuals = ui.visuals();
            let normal = visuals.text_color();
            let weak = visuals.weak_text_color();
            let format = |font: &FontId, color: Color32| TextFormat {
                font_id: font.clone(),
                color,
                valign: Align::Center,
                ..Default::default()
            };
            let mut job = LayoutJob::default();
            job.append(&format!("{time}  "), 0.0, format(&small, weak));
            let colour_key = colour_key
                .as_deref()
                .or(nick.as_deref())
                .unwrap_or_default();
            let nick_fmt = format(&body, nick_colour(ui, colour_key));
            let mut text_fmt = format(&body, normal);
            if *highlight {
                text_fmt.background = theme::highlight_bg(visuals.dark_mode);
            }
            match (style, nick) {
                (RowStyle::Message, Some(nick)) => {
                    job.append(nick, 0.0, nick_fmt);
                    job.append(&format!("  {text}"), 0.0, text_fmt);
                }
                (RowStyle::Action, Some(nick)) => {
                    job.append(&format!("* {nick}"), 0.0, nick_fmt);
                    text_fmt.italics = true;
                    job.append(&format!(" {text}"), 0.0, text_fmt);
                }
                (RowStyle::Notice, Some(nick)) => {
                    job.append(&format!("-{nick}-"), 0.0, nick_fmt);
                    job.append(&format!(" {text}"), 0.0, text_fmt);
                }
                (RowStyle::Error, _) => {
                    job.append(text, 0.0, format(&body, visuals.error_fg_color));
                }
                (RowStyle::KeyWarning, _) => {
                    let (fg, bg) = theme::key_warning_colours(visuals.dark_mode);
                    let mut loud = format(&body, fg);
                    loud.background = bg;
                    job.append(&format!("⚠ {text}"), 0.0, loud);
                }
                (RowStyle::Muted, _) => {
                    let mut muted = format(&small, weak);
                    muted.italics = true;
                    job.append(text, 0.0, muted);
                }
                _ => job.append(text, 0.0, format(&body, normal)),
            }
            let response = ui.add(egui::Label::new(job).wrap().sense(egui::Sense::click()));
            let mut rect = response.rect;
            if let Some(quote_rect) = quote_rect {
                rect = rect.union(quote_rect);
            }
            if let Some(msgid) = msgid {
                response.context_menu(|ui| {
                    if ui.button("Reply").clicked() {
                        let quote = model::quote_of_row(nick.as_deref(), text);
                        action = Some(RowAction::Reply(msgid.clone(), quote));
                        ui.close();
                    }
                    ui.horizontal(|ui| {
                        for reaction in QUICK_REACTIONS {
                            if ui
                                .button(*reaction)
                                .on_hover_text(format!("React with {reaction}"))
                                .clicked()
                            {
                                action =
                                    Some(RowAction::React(msgid.clone(), reaction.to_string()));
                                ui.close();
                            }
                        }
                    });
                });
                if !reactions.is_empty() {
                    let chips = ui.horizontal_wrapped(|ui| {
                        ui.add_space(40.0);
                        for chip in reactions {
                            let clicked = ui
                                .small_button(chip.label())
                                .on_hover_text(format!("{} (click to react too)", chip.nicks))
                                .clicked();
                            if clicked {
                                action = Some(RowAction::React(msgid.clone(), chip.text.clone()));
                            }
                        }
                    });
                    rect = rect.union(chips.response.rect);
                }
            }
            (rect, action)
        }
    }
}
