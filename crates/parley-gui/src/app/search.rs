//! The search panel: Ctrl+F (or the toolbar's "Search") opens a box on the right; Enter (or "Find") asks the
//! server (`Action::Search`), the hits come in newest first, a click opens the hit's
//! conversation, "Older results" pages back. Shown only when the server offers search; what it
//! says comes from `crate::search`.

use eframe::egui::{self, Align, Button, Key, Layout, Modifiers, RichText, TextEdit, Ui};
use parley_client::{Action, SearchQuery};

use super::App;
use crate::connection::Connection;
use crate::search;

/// The panel's own state, apart from the results (those live in `parley_client::State`).
#[derive(Debug, Default)]
pub struct SearchBox {
    pub open: bool,
    pub text: String,
    /// Put the keyboard in the box on the next frame (it was just opened).
    focus: bool,
}

impl App {
    /// Opens the search box with the keyboard in it.
    pub(super) fn open_search(&mut self) {
        self.search.open = true;
        self.search.focus = true;
    }

    pub(super) fn search_panel(&mut self, ui: &mut Ui, connection: &dyn Connection) {
        if !connection.state().search_supported() {
            self.search.open = false;
            return;
        }
        if ui.input_mut(|i| i.consume_key(Modifiers::COMMAND, Key::F)) {
            self.open_search();
        }
        if !self.search.open {
            return;
        }
        let (header, rows, more) = {
            let state = connection.state();
            match state.search_results() {
                Some(results) => {
                    let rows = match &self.options.utc_offset {
                        Some(offset) => search::rows(results, offset),
                        None => search::rows(results, &chrono::Local),
                    };
                    (Some(search::header(results)), rows, results.has_more())
                }
                None => (None, Vec::new(), false),
            }
        };
        let mut submit = false;
        let mut close = false;
        let mut older = false;
        let mut open: Option<usize> = None;
        egui::Panel::right("search")
            .default_size(320.0)
            .show(ui, |ui| {
                let label = ui.label(RichText::new("Search messages").small().weak());
                ui.horizontal(|ui| {
                    let edit = ui.add(
                        TextEdit::singleline(&mut self.search.text)
                            .hint_text("words, or #group words")
                            .desired_width(180.0)
                            .char_limit(parley_client::MAX_SEARCH_TEXT)
                            .id_salt("search-text"),
                    );
                    let edit = edit.labelled_by(label.id);
                    if std::mem::take(&mut self.search.focus) {
                        edit.request_focus();
                    }
                    if edit.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
                        submit = true;
                    }
                    if ui.button("Find").clicked() {
                        submit = true;
                    }
                    if ui.button("Close search").on_hover_text("Esc").clicked() {
                        close = true;
                    }
                });
                if let Some(header) = &header {
                    ui.label(RichText::new(header).small());
                }
                egui::ScrollArea::vertical()
                    .id_salt("search-results")
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        ui.with_layout(Layout::top_down_justified(Align::LEFT), |ui| {
                            for row in &rows {
                                let button =
                                    Button::selectable(false, row.label()).wrap().frame(false);
                                let response = ui
                                    .add(button)
                                    .on_hover_text(format!("Open {} at this message", row.place));
                                if response.clicked() {
                                    open = Some(row.index);
                                }
                            }
                            if more && ui.button("Older results").clicked() {
                                older = true;
                            }
                        });
                    });
            });
        if self.search.open && ui.input(|i| i.key_pressed(Key::Escape)) {
            close = true;
        }
        if submit {
            let words = self.search.text.trim().to_string();
            if !words.is_empty() {
                // "#group words" limits the search to that group, as /search does.
                let query = match parley_client::input::parse(&format!("/search {words}")) {
                    Ok(Action::Search(query)) => query,
                    _ => SearchQuery {
                        text: words,
                        ..SearchQuery::default()
                    },
                };
                connection.send(Action::Search(query));
            }
        }
        if older {
            connection.send(Action::SearchMore);
        }
        if let Some(index) = open {
            connection.state().open_search_hit(index);
        }
        if close {
            self.search.open = false;
            connection.state().clear_search();
        }
    }
}
