//! The login screen: the form (server, port, TLS, username, password; log in or create an
//! account) and the question about a certificate the client does not know yet, and turning
//! either into a connection.

use eframe::egui::{self, Key, RichText, TextEdit, Ui};
use parley_client::{input, Action, Auth, ClientConfig, Fingerprint, Transport};

use super::{App, Options, Phase};
use crate::model;
use crate::settings::Settings;

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
        // This install is an E2E device per (server, account), kept in the config directory.
        config.e2e_dir = options
            .e2e_root
            .as_deref()
            .map(|root| crate::e2e::server_dir(root, server, port));
        Ok(config)
    }
}

impl App {
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

    pub(super) fn back_to_login(&mut self, error: Option<String>) {
        if let Some(connection) = self.connection.take() {
            connection.send(Action::Quit(None));
        }
        self.form.error = error;
        self.phase = Phase::Login;
        self.dialog = None;
    }

    // ---- the login dialog ----

    pub(super) fn login_ui(&mut self, ui: &mut Ui) {
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
}
