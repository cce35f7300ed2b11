//! The window: a login dialog (with the certificate question), then the chat (side list, topic
//! bar, messages, members, input with Send, status bar) plus the small dialogs (new group, join
//! group, message user, settings). It draws what `model` computes and turns clicks and typing into
//! `parley_client` actions; it owns no chat logic. `App::ui` takes a plain `egui::Ui`, so
//! `egui_kittest` drives the very same code a person uses.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui::{
    self, text::LayoutJob, Align, Align2, Button, Color32, FontId, Id, Key, Layout, RichText,
    TextEdit, TextFormat, TextStyle, Ui,
};
use parley_client::{
    input, Action, Auth, BufferKind, ClientConfig, ConnectionState, Event, Fingerprint, LineKind,
    Transport,
};

use crate::composer::{self, Composer, Edit};
use crate::connection::{Connection, Connector};
use crate::model::{self, Alert, Health, Row, RowStyle, ScrollKeeper};
use crate::notify::Notifier;
use crate::settings::{clamp_font_size, Settings, Theme, MAX_FONT_SIZE, MIN_FONT_SIZE};
use crate::theme;

/// How long an in-app notification stays up.
const TOAST_TIME: Duration = Duration::from_secs(6);
/// At most this many in-app notifications at once; older ones make room.
const MAX_TOASTS: usize = 4;
/// Wait this long before asking for older history again while nothing new arrived.
const HISTORY_RETRY: Duration = Duration::from_secs(10);

/// Fixed choices from the command line that the login form does not show.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Accept only these certificate fingerprints (instead of the system's CAs).
    pub pins: Vec<Fingerprint>,
    /// Trust certificates from these PEM files too.
    pub ca_files: Vec<PathBuf>,
    /// Channels to join after logging in.
    pub autojoin: Vec<String>,
    /// Where `known_servers` lives (accepted certificates); none: nothing is remembered.
    pub known_servers: Option<PathBuf>,
    /// Show times at this offset from UTC instead of the computer's time zone, so that
    /// snapshot images and screenshots do not depend on where they are taken.
    pub utc_offset: Option<chrono::FixedOffset>,
}

/// The login dialog's fields.
#[derive(Clone, Debug, Default)]
pub struct LoginForm {
    pub server: String,
    pub port: String,
    pub tls: bool,
    pub user: String,
    pub password: String,
    pub error: Option<String>,
}

impl LoginForm {
    pub fn from_settings(settings: &Settings) -> LoginForm {
        LoginForm {
            server: settings.server.clone(),
            port: settings.port.to_string(),
            tls: settings.tls,
            user: settings.user.clone(),
            password: String::new(),
            error: None,
        }
    }

    /// The client configuration for "Log in" (`register == false`) or "Register", or what to fix.
    pub fn client_config(&self, register: bool, options: &Options) -> Result<ClientConfig, String> {
        let server = self.server.trim();
        if server.is_empty() || server.contains(char::is_whitespace) {
            return Err("Enter the server's name or address, like chat.example.org.".into());
        }
        let port: u16 = match self.port.trim().parse() {
            Ok(port) if port > 0 => port,
            _ => return Err(
                "The port must be a number from 1 to 65535 (usually 6697 with TLS, 6667 without)."
                    .into(),
            ),
        };
        let user = self.user.trim();
        if user.is_empty() {
            return Err("Enter your username.".into());
        }
        if let Err(error) = input::parse(&format!("/nick {user}")) {
            return Err(format!("That username cannot be used: {error}."));
        }
        if register && self.password.is_empty() {
            return Err("Choose a password for the new account.".into());
        }
        let transport = if self.tls {
            let policy = parley_client::trust_policy(
                &options.pins,
                &options.ca_files,
                options.known_servers.clone(),
            )
            .map_err(|e| format!("Cannot use the certificate file: {e}"))?;
            Transport::Tls(policy)
        } else {
            Transport::Plain
        };
        let mut config = ClientConfig::new(server, port, transport, user);
        config.auth = match (self.password.is_empty(), register) {
            (true, _) => Auth::Guest,
            (false, true) => Auth::Register {
                account: user.to_string(),
                password: self.password.clone(),
            },
            (false, false) => Auth::Login {
                account: user.to_string(),
                password: self.password.clone(),
            },
        };
        config.autojoin = options.autojoin.clone();
        Ok(config)
    }
}

/// Where the window is.
#[derive(Debug)]
pub enum Phase {
    Login,
    Connecting {
        register: bool,
    },
    /// The server's certificate is unknown: trust it?
    Trust {
        server: String,
        fingerprint: Fingerprint,
        message: String,
    },
    Chat,
}

/// A small dialog over the chat.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Dialog {
    NewGroup(String),
    JoinGroup(String),
    MessageUser(String),
    Settings,
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

struct Toast {
    alert: Alert,
    shown: Instant,
}

pub struct App {
    pub settings: Settings,
    config_dir: Option<PathBuf>,
    connector: Box<dyn Connector>,
    notifier: Box<dyn Notifier>,
    options: Options,
    pub form: LoginForm,
    pub phase: Phase,
    connection: Option<Box<dyn Connection>>,
    config: Option<ClientConfig>,
    /// The connection ended for good while chatting, with this reason.
    ended: Option<String>,
    pub input: String,
    /// Tab completion and Up/Down history of the input.
    composer: Composer,
    /// Keeps the message view still when lines arrive above it.
    scroll: ScrollKeeper,
    /// The offset `scroll` asked for, applied to that buffer's view in the next pass.
    pending_scroll: Option<(String, f32)>,
    dialog: Option<Dialog>,
    /// Why the dialog's input was refused (an invalid group name...).
    dialog_error: Option<String>,
    toasts: VecDeque<Toast>,
    /// Per buffer: the line count when older history was last asked for, and when.
    history_asked: HashMap<String, (usize, Instant)>,
    applied_style: Option<(Theme, u32)>,
    /// The user quit: the window should close.
    pub quit: bool,
    /// Show this buffer once it exists (the first channel joined from the command line).
    focus_when_joined: Option<String>,
}

impl App {
    pub fn new(
        settings: Settings,
        config_dir: Option<PathBuf>,
        connector: Box<dyn Connector>,
        notifier: Box<dyn Notifier>,
        options: Options,
    ) -> App {
        App {
            form: LoginForm::from_settings(&settings),
            settings,
            config_dir,
            connector,
            notifier,
            options,
            phase: Phase::Login,
            connection: None,
            config: None,
            ended: None,
            input: String::new(),
            composer: Composer::default(),
            scroll: ScrollKeeper::default(),
            pending_scroll: None,
            dialog: None,
            dialog_error: None,
            toasts: VecDeque::new(),
            history_asked: HashMap::new(),
            applied_style: None,
            quit: false,
            focus_when_joined: None,
        }
    }

    /// The chat state of the current connection, if there is one (for tests and tools that look
    /// at what the window draws from); hold it only briefly, the connection updates it.
    pub fn connection_state(&self) -> Option<parking_lot::MutexGuard<'_, parley_client::State>> {
        self.connection.as_ref().map(|c| c.state())
    }

    /// Starts logging in (or registering) with what the form holds.
    pub fn submit_login(&mut self, register: bool) {
        match self.form.client_config(register, &self.options) {
            Ok(config) => self.connect(config, register),
            Err(error) => self.form.error = Some(error),
        }
    }

    fn connect(&mut self, config: ClientConfig, register: bool) {
        self.form.error = None;
        self.ended = None;
        self.history_asked.clear();
        match self.connector.connect(config.clone()) {
            Ok(connection) => {
                self.focus_when_joined = config.autojoin.first().cloned();
                self.connection = Some(connection);
                self.config = Some(config);
                self.phase = Phase::Connecting { register };
            }
            Err(error) => {
                self.form.error = Some(model::plain_error(&error.to_string()));
                self.phase = Phase::Login;
            }
        }
    }

    fn back_to_login(&mut self, error: Option<String>) {
        if let Some(connection) = self.connection.take() {
            connection.send(Action::Quit(None));
        }
        self.form.error = error;
        self.phase = Phase::Login;
        self.dialog = None;
    }

    fn save_settings(&self) {
        if let Some(dir) = &self.config_dir {
            if let Err(error) = self.settings.save(dir) {
                tracing::warn!(error = format!("{error:#}"), "cannot save the settings");
            }
        }
    }

    /// Events, phase changes and notifications: everything that is not drawing.
    fn update(&mut self, ctx: &egui::Context) {
        while let Some(event) = self.connection.as_mut().and_then(|c| c.poll_event()) {
            match event {
                Event::Changed => {}
                Event::UntrustedCertificate {
                    server,
                    fingerprint,
                    message,
                } => {
                    self.connection = None;
                    self.phase = Phase::Trust {
                        server,
                        fingerprint,
                        message,
                    };
                }
                Event::Closed { reason } => match (&self.phase, reason) {
                    (Phase::Trust { .. }, _) => {}
                    (Phase::Chat, None) => {
                        self.quit = true;
                        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    }
                    (Phase::Chat, Some(reason)) => self.ended = Some(model::plain_error(&reason)),
                    (_, reason) => {
                        self.connection = None;
                        self.form.error = reason.map(|r| model::plain_error(&r));
                        self.phase = Phase::Login;
                    }
                },
            }
        }
        if let (Phase::Connecting { .. }, Some(connection)) = (&self.phase, &self.connection) {
            let (connection_state, last_error) = {
                let state = connection.state();
                (
                    state.connection().clone(),
                    state.last_error().map(str::to_string),
                )
            };
            match connection_state {
                ConnectionState::Connected => {
                    self.phase = Phase::Chat;
                    self.form.password.clear();
                    self.settings.server = self.form.server.trim().to_string();
                    self.settings.port =
                        self.form.port.trim().parse().unwrap_or(self.settings.port);
                    self.settings.tls = self.form.tls;
                    self.settings.user = self.form.user.trim().to_string();
                    self.save_settings();
                }
                // While logging in, a failed attempt is reported rather than retried quietly.
                ConnectionState::Reconnecting { .. } => {
                    let error = last_error.unwrap_or_else(|| "the connection failed".into());
                    self.back_to_login(Some(model::plain_error(&error)));
                }
                _ => {}
            }
        }
        if let (Phase::Chat, Some(connection), Some(name)) =
            (&self.phase, &self.connection, &self.focus_when_joined)
        {
            let mut state = connection.state();
            if state.buffer(name).is_some_and(|b| b.joined) && state.set_active_by_name(name) {
                self.focus_when_joined = None;
            }
        }
        if let Some(connection) = &self.connection {
            let new_lines = connection.state().take_new_lines();
            let focused = ctx.input(|i| i.viewport().focused).unwrap_or(true);
            let active = connection.state().active().name.clone();
            for alert in model::alerts(&new_lines) {
                if focused && alert.buffer == active {
                    continue;
                }
                if self.settings.notifications {
                    self.notifier.notify(&alert.title(), &alert.text);
                }
                if self.toasts.len() >= MAX_TOASTS {
                    self.toasts.pop_front();
                }
                self.toasts.push_back(Toast {
                    alert,
                    shown: Instant::now(),
                });
            }
        }
        let active = self
            .connection
            .as_ref()
            .map(|c| c.state().active().name.clone());
        // A notice about the conversation on screen has done its job.
        self.toasts
            .retain(|t| t.shown.elapsed() < TOAST_TIME && Some(&t.alert.buffer) != active.as_ref());
        if !self.toasts.is_empty() {
            ctx.request_repaint_after(Duration::from_millis(500));
        }
        if matches!(
            self.connection
                .as_ref()
                .map(|c| c.state().connection().clone()),
            Some(ConnectionState::Reconnecting { .. } | ConnectionState::Connecting)
        ) {
            // The countdown in the status bar.
            ctx.request_repaint_after(Duration::from_secs(1));
        }
    }

    fn apply_style(&mut self, ctx: &egui::Context) {
        let font_size = clamp_font_size(self.settings.font_size);
        let wanted = (self.settings.theme, (font_size * 10.0) as u32);
        if self.applied_style == Some(wanted) {
            return;
        }
        self.applied_style = Some(wanted);
        ctx.set_theme(self.settings.theme.preference());
        ctx.set_visuals_of(egui::Theme::Light, theme::visuals(false));
        ctx.set_visuals_of(egui::Theme::Dark, theme::visuals(true));
        ctx.all_styles_mut(|style| {
            for (text_style, font) in style.text_styles.iter_mut() {
                font.size = match text_style {
                    TextStyle::Small => font_size * 0.75,
                    TextStyle::Heading => font_size * 1.45,
                    _ => font_size,
                };
            }
        });
    }

    /// Draws one frame and handles what happened since the last.
    pub fn ui(&mut self, ui: &mut Ui) {
        let ctx = ui.ctx().clone();
        self.apply_style(&ctx);
        self.update(&ctx);
        match self.phase {
            Phase::Chat => self.chat_ui(ui),
            _ => self.login_ui(ui),
        }
    }

    // ---- the login dialog ----

    fn login_ui(&mut self, ui: &mut Ui) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space((ui.available_height() * 0.12).min(80.0));
                ui.heading("Parley");
                ui.label(RichText::new("Log in to your chat server").weak());
                ui.add_space(12.0);
                egui::Frame::group(ui.style())
                    .inner_margin(16.0)
                    .show(ui, |ui| {
                        ui.set_max_width(420.0);
                        match &self.phase {
                            Phase::Trust { .. } => self.trust_ui(ui),
                            _ => self.form_ui(ui),
                        }
                    });
            });
        });
    }

    fn form_ui(&mut self, ui: &mut Ui) {
        let busy = matches!(self.phase, Phase::Connecting { .. });
        let mut submit: Option<bool> = None;
        egui::Grid::new("login-grid")
            .num_columns(2)
            .spacing([10.0, 8.0])
            .show(ui, |ui| {
                let label = ui.label("Server");
                ui.add_enabled(
                    !busy,
                    TextEdit::singleline(&mut self.form.server).hint_text("chat.example.org"),
                )
                .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Port");
                ui.add_enabled(
                    !busy,
                    TextEdit::singleline(&mut self.form.port).desired_width(80.0),
                )
                .labelled_by(label.id);
                ui.end_row();
                ui.label("");
                ui.add_enabled(
                    !busy,
                    egui::Checkbox::new(&mut self.form.tls, "Encrypt the connection (TLS)"),
                );
                ui.end_row();
                let label = ui.label("Username");
                ui.add_enabled(!busy, TextEdit::singleline(&mut self.form.user))
                    .labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Password");
                let password = ui
                    .add_enabled(
                        !busy,
                        TextEdit::singleline(&mut self.form.password).password(true),
                    )
                    .labelled_by(label.id);
                if password.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
                    submit = Some(false);
                }
                ui.end_row();
            });
        if !self.form.tls {
            ui.label(
                RichText::new(
                    "Without TLS, passwords travel unencrypted; Parley allows that only to this computer.",
                )
                .small()
                .weak(),
            );
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if busy {
                ui.add(egui::Spinner::new());
                let what = match self.phase {
                    Phase::Connecting { register: true } => "Creating your account…",
                    _ => "Logging in…",
                };
                ui.label(what);
                if ui.button("Cancel").clicked() {
                    self.back_to_login(None);
                }
            } else {
                if ui.button(RichText::new("Log in").strong()).clicked() {
                    submit = Some(false);
                }
                if ui
                    .button("Register")
                    .on_hover_text("Create a new account with this username and password")
                    .clicked()
                {
                    submit = Some(true);
                }
            }
        });
        if let Some(error) = &self.form.error {
            ui.add_space(8.0);
            ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
        }
        if let Some(register) = submit {
            self.submit_login(register);
        }
    }

    fn trust_ui(&mut self, ui: &mut Ui) {
        let Phase::Trust {
            server,
            fingerprint,
            message,
        } = &self.phase
        else {
            return;
        };
        let (server, fingerprint, message) = (server.clone(), *fingerprint, message.clone());
        ui.heading("Unknown certificate");
        ui.label(format!(
            "The server {server} identifies itself with a certificate that nothing you trust vouches for. \
             If it is your own server (or your admin can confirm it), compare this fingerprint with \
             the one `parleyd cert show` prints there:"
        ));
        ui.add_space(6.0);
        ui.label(RichText::new(fingerprint.to_string()).monospace().strong());
        ui.add_space(6.0);
        ui.collapsing("Details", |ui| ui.label(RichText::new(&message).small()));
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.button("Trust and connect").clicked() {
                self.trust(&server, fingerprint);
            }
            if ui.button("Cancel").clicked() {
                self.form.error = Some("Not connected: the certificate was not trusted.".into());
                self.phase = Phase::Login;
            }
        });
    }

    fn trust(&mut self, server: &str, fingerprint: Fingerprint) {
        let Some(mut config) = self.config.clone() else {
            self.phase = Phase::Login;
            return;
        };
        let register = matches!(config.auth, Auth::Register { .. });
        if let Transport::Tls(policy) = &config.transport {
            let result = if policy.known_servers_path().is_some() {
                policy.remember(server, fingerprint)
            } else {
                Ok(())
            };
            if let Err(error) = result {
                self.form.error = Some(format!("Cannot remember the certificate: {error}"));
                self.phase = Phase::Login;
                return;
            }
            // Also trust it for this run, with or without a known_servers file.
            config.transport = Transport::Tls(policy.clone().with_pin(fingerprint));
        }
        self.connect(config, register);
    }

    // ---- the chat ----

    fn chat_ui(&mut self, ui: &mut Ui) {
        let Some(connection) = self.connection.take() else {
            self.phase = Phase::Login;
            return;
        };
        self.toolbar(ui, connection.as_ref());
        self.status_bar(ui, connection.as_ref());
        self.side_list(ui, connection.as_ref());
        self.members(ui, connection.as_ref());
        self.composer(ui, connection.as_ref());
        self.topic_bar(ui, connection.as_ref());
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

    fn toolbar(&mut self, ui: &mut Ui, _connection: &dyn Connection) {
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
            match buffer.kind {
                BufferKind::Server => "Type a /command (try /help)".to_string(),
                _ => format!("Message {}", buffer.name),
            }
        };
        let input_id = Id::unique("chat-input");
        egui::Panel::bottom("composer").show(ui, |ui| {
            ui.add_space(4.0);
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
                    let rect = row_ui(ui, row);
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

    fn dialogs(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        let Some(mut dialog) = self.dialog.take() else {
            return;
        };
        let mut keep = true;
        let mut settings_changed = false;
        let mut submitted: Option<String> = None;
        let error = self.dialog_error.clone();
        let form = match &dialog {
            Dialog::NewGroup(_) => ("New group", "Group name", "Create", "/create_group"),
            Dialog::JoinGroup(_) => ("Join a group", "Group name", "Join", "/join_group"),
            Dialog::MessageUser(_) => ("Message a user", "Username", "Open", "/query"),
            Dialog::Settings => ("Settings", "", "", ""),
        };
        let ctx = ui.ctx().clone();
        let modal = egui::Modal::new(Id::unique("dialog")).show(&ctx, |ui| {
            ui.set_width(340.0);
            match &mut dialog {
                Dialog::Settings => {
                    ui.heading("Settings");
                    ui.add_space(6.0);
                    ui.label("Theme");
                    ui.horizontal(|ui| {
                        for theme in [Theme::System, Theme::Light, Theme::Dark] {
                            if ui
                                .radio_value(&mut self.settings.theme, theme, theme.label())
                                .changed()
                            {
                                settings_changed = true;
                            }
                        }
                    });
                    ui.add_space(6.0);
                    let label = ui.label("Font size");
                    if ui
                        .add(egui::Slider::new(
                            &mut self.settings.font_size,
                            MIN_FONT_SIZE..=MAX_FONT_SIZE,
                        ))
                        .labelled_by(label.id)
                        .changed()
                    {
                        settings_changed = true;
                    }
                    ui.add_space(6.0);
                    if ui
                        .checkbox(
                            &mut self.settings.notifications,
                            "Desktop notifications for mentions and private messages",
                        )
                        .changed()
                    {
                        settings_changed = true;
                    }
                    ui.add_space(10.0);
                    if ui.button("Close").clicked() {
                        keep = false;
                    }
                }
                Dialog::NewGroup(name) | Dialog::JoinGroup(name) | Dialog::MessageUser(name) => {
                    let (title, field, button, command) = form;
                    ui.heading(title);
                    ui.add_space(6.0);
                    let label = ui.label(field);
                    let response = ui
                        .add(TextEdit::singleline(name).desired_width(f32::INFINITY))
                        .labelled_by(label.id);
                    if !response.has_focus() && name.is_empty() {
                        response.request_focus();
                    }
                    let entered = response.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button(button).clicked() || entered {
                            submitted = Some(format!("{command} {}", name.trim()));
                        }
                        if ui.button("Cancel").clicked() {
                            keep = false;
                        }
                    });
                    if let Some(error) = &error {
                        ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
                    }
                }
            }
        });
        if modal.should_close() {
            keep = false;
        }
        if let Some(command) = submitted {
            match input::parse(&command) {
                Ok(action) => {
                    connection.send(action);
                    keep = false;
                    self.dialog_error = None;
                }
                Err(error) => self.dialog_error = Some(error.to_string()),
            }
        }
        if settings_changed {
            self.save_settings();
        }
        if keep {
            self.dialog = Some(dialog);
        } else {
            self.dialog_error = None;
        }
    }

    fn toasts_ui(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        if self.toasts.is_empty() {
            return;
        }
        let mut open: Option<String> = None;
        let ctx = ui.ctx().clone();
        egui::Area::new(Id::unique("toasts"))
            .anchor(Align2::RIGHT_BOTTOM, [-170.0, -80.0])
            .show(&ctx, |ui| {
                for toast in &self.toasts {
                    egui::Frame::popup(ui.style()).show(ui, |ui| {
                        ui.set_max_width(280.0);
                        ui.strong(toast.alert.title());
                        ui.add(egui::Label::new(&toast.alert.text).truncate());
                        if ui.small_button("Show").clicked() {
                            open = Some(toast.alert.buffer.clone());
                        }
                    });
                }
            });
        if let Some(buffer) = open {
            connection.state().set_active_by_name(&buffer);
            self.toasts.retain(|t| t.alert.buffer != buffer);
        }
    }
}

/// A person's colour from the current theme's palette; `key` is their account, or their nick
/// when the account is unknown (see `theme::nick_colour`).
pub fn nick_colour(ui: &Ui, key: &str) -> Color32 {
    theme::nick_colour(ui.visuals().dark_mode, key)
}

/// Draws one row of the message area; returns where it landed.
fn row_ui(ui: &mut Ui, row: &Row) -> egui::Rect {
    match row {
        Row::Day(day) => {
            ui.add_space(4.0);
            let rect = ui
                .vertical_centered(|ui| ui.label(RichText::new(day).small().weak()).rect)
                .inner;
            ui.add_space(2.0);
            rect
        }
        Row::Line {
            time,
            nick,
            colour_key,
            text,
            style,
            highlight,
            ..
        } => {
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
                (RowStyle::Muted, _) => {
                    let mut muted = format(&small, weak);
                    muted.italics = true;
                    job.append(text, 0.0, muted);
                }
                _ => job.append(text, 0.0, format(&body, normal)),
            }
            ui.add(egui::Label::new(job).wrap()).rect
        }
    }
}
