//! The end-to-end encryption bar of a private conversation, under the topic bar: a lock and
//! words ("🔒 encrypted · not verified"), the safety number once asked for, "Safety number",
//! "Mark verified" and an "Encrypt" toggle. Each button sends the action its command does
//! (`/verify <nick>`, `/verify <nick> confirm`, `/e2e on|off`), so what is checked and
//! written stays in `parley-client`.

use eframe::egui::{self, RichText, Ui};
use parley_client::Action;

use super::App;
use crate::connection::Connection;
use crate::e2e;

impl App {
    pub(super) fn e2e_bar(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        let Some(header) = e2e::header(&connection.state()) else {
            return;
        };
        let nick = header.nick.clone();
        egui::Panel::top("e2e").show(ui, |ui| {
            ui.add_space(2.0);
            ui.horizontal_wrapped(|ui| {
                let visuals = ui.visuals();
                let colour = match (header.status.off, header.status.encrypted) {
                    (true, _) => visuals.error_fg_color,
                    (false, true) if header.status.verified => visuals.text_color(),
                    (false, true) => visuals.warn_fg_color,
                    (false, false) => visuals.weak_text_color(),
                };
                ui.label(RichText::new(&header.label).strong().color(colour))
                    .on_hover_text(
                        "End-to-end encryption: only your devices and theirs can read these \
                         messages. Verify by comparing the safety number with them in person or \
                         on a call.",
                    );
                let mut encrypt = !header.status.off;
                if ui
                    .checkbox(&mut encrypt, "Encrypt")
                    .on_hover_text("Same as /e2e on or /e2e off")
                    .changed()
                {
                    connection.send(Action::E2e(Some(encrypt)));
                }
                if header.status.encrypted {
                    if ui
                        .button("Safety number")
                        .on_hover_text(format!("Same as /verify {nick}"))
                        .clicked()
                    {
                        connection.send(Action::Verify {
                            nick: nick.clone(),
                            confirm: false,
                        });
                    }
                    let mark = ui
                        .add_enabled(
                            header.can_mark_verified(),
                            egui::Button::new("Mark verified"),
                        )
                        .on_hover_text(format!(
                            "Only after comparing the number with {nick}; same as \
                             /verify {nick} confirm"
                        ))
                        .on_disabled_hover_text("Show the safety number and compare it first");
                    if mark.clicked() {
                        connection.send(Action::Verify {
                            nick: nick.clone(),
                            confirm: true,
                        });
                    }
                }
            });
            if let Some(number) = &header.safety_number {
                ui.label(RichText::new(format!("Safety number with {nick}: {number}")).monospace());
            }
            ui.add_space(2.0);
        });
    }
}
