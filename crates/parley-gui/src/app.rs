//! The window: a login dialog (with the certificate question), then the chat (side list, topic
//! bar, messages, members, input with Send, status bar) plus the small dialogs (new group, join
//! group, message user, settings). It draws what `model` computes and turns clicks and typing into
//! `parley_client` actions; it owns no chat logic. `App::ui` takes a plain `egui::Ui`, so
//! `egui_kittest` drives the very same code a person uses.
//!
//! This module holds the `App` itself: its state, the events and phase changes of each frame,
//! and the style. Each screen is an `impl App` of its own: [`login`] (the form and the
//! certificate question), [`chat`] (the panels around the messages) and [`dialogs`] (the small
//! dialogs and the notification toasts over the chat).

mod chat;
mod dialogs;
mod e2e_bar;
mod login;
mod search;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use eframe::egui::{self, TextStyle, Ui};
use parley_client::{ClientConfig, ConnectionState, Event, Fingerprint};

use crate::composer::Composer;
use crate::connection::{Connection, Connector};
use crate::model::{self, Alert, ScrollKeeper};
use crate::notify::Notifier;
use crate::settings::{clamp_font_size, Settings, Theme};
use crate::theme;

pub use chat::nick_colour;
use dialogs::Dialog;
pub use login::LoginForm;

/// How long an in-app notification stays up.
const TOAST_TIME: Duration = Duration::from_secs(6);
/// At most this many in-app notifications at once; older ones make room.
const MAX_TOASTS: usize = 4;

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
    /// Where this install's E2E devices live (`<config>/e2e-gui`, see `e2e::E2E_FOLDER`), one
    /// folder per server inside; none: no end-to-end encryption (messages go in clear text).
    pub e2e_root: Option<PathBuf>,
    /// Show times at this offset from UTC instead of the computer's time zone, so that
    /// snapshot images and screenshots do not depend on where they are taken.
    pub utc_offset: Option<chrono::FixedOffset>,
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

struct Toast {
    alert: Alert,
    shown: Instant,
}

/// The message the next line answers: a msgid means something only in its own buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub buffer: String,
    pub msgid: String,
    /// "bob: first words", shown above the input.
    pub quote: String,
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
    /// The message the next line answers, chosen with "Reply".
    pub replying_to: Option<ReplyTo>,
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
    /// The search box and whether it is open (`app/search.rs`).
    search: search::SearchBox,
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
            replying_to: None,
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
            search: search::SearchBox::default(),
        }
    }

    /// The chat state of the current connection, if there is one (for tests and tools that look
    /// at what the window draws from); hold it only briefly, the connection updates it.
    pub fn connection_state(&self) -> Option<parking_lot::MutexGuard<'_, parley_client::State>> {
        self.connection.as_ref().map(|c| c.state())
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
}
