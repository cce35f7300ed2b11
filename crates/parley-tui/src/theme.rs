//! The full-screen client's two colour themes, dark and light. Each paints its own background
//! and text colour, so it reads the same whatever the terminal's own colours are; the light one
//! uses darker shades (256-colour palette) for nicks, hints and errors so they stay readable on
//! white. Nick colours index the palette with `parley_client::colour_index` of the account.

use ratatui::style::{Color, Style};
use serde::{Deserialize, Serialize};

/// Which theme, as chosen with `--theme` and remembered in the settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ThemeName {
    #[default]
    Dark,
    Light,
}

/// The colours of one theme.
#[derive(Clone, Debug)]
pub struct Theme {
    pub background: Color,
    pub text: Color,
    /// Times, joins and parts, hints: quieter than the text, still readable.
    pub dim: Color,
    pub bar: Style,
    pub topic: Style,
    pub error: Color,
    pub unread: Color,
    pub prompt: Color,
    /// The connection state in the status bar: connected, and on the way.
    pub good: Color,
    pub waiting: Color,
    pub nicks: &'static [Color],
}

const DARK_NICKS: [Color; 11] = [
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::Cyan,
];

/// Dark shades of the 256-colour palette, each at least 4.5:1 against white.
const LIGHT_NICKS: [Color; 11] = [
    Color::Indexed(124), // dark red
    Color::Indexed(28),  // green
    Color::Indexed(19),  // dark blue
    Color::Indexed(90),  // purple
    Color::Indexed(23),  // teal
    Color::Indexed(130), // brown
    Color::Indexed(54),  // violet
    Color::Indexed(22),  // dark green
    Color::Indexed(88),  // maroon
    Color::Indexed(25),  // blue
    Color::Indexed(127), // magenta
];

impl Theme {
    pub fn new(name: ThemeName) -> Theme {
        match name {
            ThemeName::Dark => Theme {
                background: Color::Black,
                text: Color::White,
                dim: Color::Gray,
                bar: Style::default().bg(Color::DarkGray).fg(Color::White),
                topic: Style::default().bg(Color::Blue).fg(Color::White),
                error: Color::LightRed,
                unread: Color::Yellow,
                prompt: Color::Cyan,
                good: Color::LightGreen,
                waiting: Color::Yellow,
                nicks: &DARK_NICKS,
            },
            ThemeName::Light => Theme {
                background: Color::Indexed(231), // white
                text: Color::Indexed(16),        // black
                dim: Color::Indexed(241),
                bar: Style::default()
                    .bg(Color::Indexed(252))
                    .fg(Color::Indexed(16)),
                topic: Style::default()
                    .bg(Color::Indexed(153))
                    .fg(Color::Indexed(16)),
                error: Color::Indexed(124),
                unread: Color::Indexed(130),
                prompt: Color::Indexed(25),
                good: Color::Indexed(22),
                waiting: Color::Indexed(130),
                nicks: &LIGHT_NICKS,
            },
        }
    }

    /// The whole screen's base: the theme's background and text colour.
    pub fn base(&self) -> Style {
        Style::default().bg(self.background).fg(self.text)
    }

    /// The colour of a nick, from its colour key (its account, else the nick).
    pub fn nick(&self, colour_key: &str) -> Color {
        self.nicks[parley_client::colour_index(colour_key, self.nicks.len())]
    }
}

impl Default for Theme {
    fn default() -> Self {
        Theme::new(ThemeName::default())
    }
}
