//! What opens over the chat: the small dialogs (new group, join group, message user,
//! settings) and the in-app notification toasts.

use eframe::egui::{self, Align2, Id, Key, RichText, TextEdit, Ui};
use parley_client::input;

use super::App;
use crate::connection::Connection;
use crate::settings::{Theme, MAX_FONT_SIZE, MIN_FONT_SIZE};

/// A small dialog over the chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Dialog {
    NewGroup(String),
    JoinGroup(String),
    MessageUser(String),
    Settings,
}

impl App {
    pub(super) fn dialogs(&mut self, ui: &mut Ui, connection: &dyn Connection) {
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
                    ui.add_space(6.0);
                    if ui
                        .checkbox(
                            &mut self.settings.typing_notices,
                            "Show others when I am typing",
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

    pub(super) fn toasts_ui(&mut self, ui: &mut Ui, connection: &dyn Connection) {
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
