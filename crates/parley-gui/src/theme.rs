//! The light and dark looks: egui's own visuals with every text colour replaced by one that
//! meets WCAG 2.x AA contrast (4.5:1) against the background it is drawn on, and the nick
//! palettes. egui's defaults fade secondary text with transparency and use pure red for errors,
//! which falls below 4.5:1 in the light theme (and the red also in the dark one), so each colour
//! here is opaque and chosen per theme, and buttons and text fields get an outline (3:1, as WCAG
//! asks of UI components); the tests below check every pair with the WCAG formula.

use eframe::egui::{Color32, Stroke, Visuals};

/// Nick colours on the light background: dark, saturated hues. The same order of hues as the
/// dark palette and the web client's, so a person keeps a similar colour across themes.
pub const LIGHT_NICKS: [Color32; 12] = [
    Color32::from_rgb(0xc6, 0x28, 0x28), // red
    Color32::from_rgb(0xb3, 0x47, 0x00), // orange
    Color32::from_rgb(0x8a, 0x61, 0x00), // amber (not yellow: yellow cannot be dark enough)
    Color32::from_rgb(0x2e, 0x7d, 0x32), // green
    Color32::from_rgb(0x00, 0x79, 0x6b), // teal
    Color32::from_rgb(0x00, 0x77, 0x8a), // cyan
    Color32::from_rgb(0x15, 0x65, 0xc0), // blue
    Color32::from_rgb(0x43, 0x38, 0xca), // indigo
    Color32::from_rgb(0x7b, 0x1f, 0xa2), // purple
    Color32::from_rgb(0xad, 0x14, 0x57), // pink
    Color32::from_rgb(0x6d, 0x4c, 0x41), // brown
    Color32::from_rgb(0x5c, 0x6b, 0x00), // olive
];

/// Nick colours on the dark background: light, soft hues in the same order.
pub const DARK_NICKS: [Color32; 12] = [
    Color32::from_rgb(0xff, 0x8a, 0x80),
    Color32::from_rgb(0xff, 0xab, 0x40),
    Color32::from_rgb(0xff, 0xd5, 0x4f),
    Color32::from_rgb(0xae, 0xd5, 0x81),
    Color32::from_rgb(0x4d, 0xb6, 0xac),
    Color32::from_rgb(0x4d, 0xd0, 0xe1),
    Color32::from_rgb(0x64, 0xb5, 0xf6),
    Color32::from_rgb(0x9f, 0xa8, 0xda),
    Color32::from_rgb(0xce, 0x93, 0xd8),
    Color32::from_rgb(0xf4, 0x8f, 0xb1),
    Color32::from_rgb(0xbc, 0xaa, 0xa4),
    Color32::from_rgb(0xdc, 0xe7, 0x75),
];

/// egui's visuals for one theme, with readable text colours.
pub fn visuals(dark: bool) -> Visuals {
    let mut v = if dark {
        Visuals::dark()
    } else {
        Visuals::light()
    };
    if dark {
        v.widgets.noninteractive.fg_stroke.color = Color32::from_gray(205);
        v.weak_text_color = Some(Color32::from_gray(170));
        // egui's selection blue is too light under grey text (a left group, when selected).
        v.selection.bg_fill = Color32::from_rgb(0x18, 0x3a, 0x4f);
        v.hyperlink_color = Color32::from_rgb(0x64, 0xb5, 0xf6);
        v.error_fg_color = Color32::from_rgb(0xff, 0x6b, 0x6b);
        v.warn_fg_color = Color32::from_rgb(0xff, 0xab, 0x40);
        v.widgets.inactive.bg_stroke = Stroke::new(1.0, Color32::from_gray(112));
    } else {
        v.widgets.noninteractive.fg_stroke.color = Color32::from_gray(30);
        v.weak_text_color = Some(Color32::from_gray(96));
        v.selection.bg_fill = Color32::from_rgb(0xcf, 0xe8, 0xfc);
        v.hyperlink_color = Color32::from_rgb(0x0b, 0x5c, 0xad);
        v.error_fg_color = Color32::from_rgb(0xc6, 0x28, 0x28);
        v.warn_fg_color = Color32::from_rgb(0x9a, 0x4a, 0x00);
        // Button text: egui's grey 60 passes, black reads better next to the darker body text.
        v.widgets.inactive.fg_stroke.color = Color32::from_gray(20);
        v.widgets.inactive.bg_stroke = Stroke::new(1.0, Color32::from_gray(128));
    }
    v
}

/// The background behind a line that mentions you: opaque, so its contrast with the text is
/// known (a translucent fill would depend on what lies under it).
pub fn highlight_bg(dark: bool) -> Color32 {
    if dark {
        Color32::from_rgb(0x1e, 0x3a, 0x4c)
    } else {
        Color32::from_rgb(0xdd, 0xee, 0xfb)
    }
}

/// The key-change warning (E2E): white on a deep red band, so it cannot pass for one more
/// error line. Opaque, so its contrast is known.
pub fn key_warning_colours(dark: bool) -> (Color32, Color32) {
    let bg = if dark {
        Color32::from_rgb(0x9b, 0x1c, 0x1c)
    } else {
        Color32::from_rgb(0xb4, 0x1e, 0x1e)
    };
    (Color32::WHITE, bg)
}

/// The connection's health dot: green, amber, or the error colour. A UI component, so 3:1.
pub fn health_colours(dark: bool) -> [Color32; 2] {
    if dark {
        [
            Color32::from_rgb(0x2e, 0xa0, 0x43),
            Color32::from_rgb(0xd2, 0x99, 0x22),
        ]
    } else {
        [
            Color32::from_rgb(0x1f, 0x88, 0x38),
            Color32::from_rgb(0xa0, 0x66, 0x00),
        ]
    }
}

/// The colour of a person in the message list. `key` is their account name when it is known
/// and their nick otherwise (guests); the rule is the one all Parley clients share: the FNV-1a
/// 32-bit hash of the casefolded key (CASEMAPPING=ascii, what parleyd announces) picks an entry
/// of the palette, so a person keeps their colour when they change nick.
pub fn nick_colour(dark: bool, key: &str) -> Color32 {
    let palette = if dark { &DARK_NICKS } else { &LIGHT_NICKS };
    palette[palette_index(key, palette.len())]
}

/// The shared rule ([`parley_client::colour_hash`]: FNV-1a 32-bit of the casefolded key),
/// modulo the palette's length.
pub fn palette_index(key: &str, len: usize) -> usize {
    parley_client::colour_hash(key) as usize % len.max(1)
}

/// WCAG 2.x contrast ratio of two opaque colours, from 1 (same) to 21 (black on white).
pub fn contrast_ratio(a: Color32, b: Color32) -> f64 {
    let (la, lb) = (relative_luminance(a), relative_luminance(b));
    let (light, dark) = if la >= lb { (la, lb) } else { (lb, la) };
    (light + 0.05) / (dark + 0.05)
}

/// WCAG 2.x relative luminance of an sRGB colour.
fn relative_luminance(c: Color32) -> f64 {
    let channel = |v: u8| {
        let s = f64::from(v) / 255.0;
        if s <= 0.04045 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(c.r()) + 0.7152 * channel(c.g()) + 0.0722 * channel(c.b())
}

/// Every (what, text colour, background) pair the window draws, for one theme.
pub fn text_pairs(dark: bool) -> Vec<(String, Color32, Color32)> {
    let v = visuals(dark);
    let panels = [
        ("panel", v.panel_fill),
        ("window", v.window_fill),
        ("text field", v.text_edit_bg_color()),
        ("button", v.widgets.inactive.weak_bg_fill),
    ];
    let mut pairs = Vec::new();
    for (bg_name, bg) in panels {
        for (fg_name, fg) in [
            ("body text", v.text_color()),
            ("weak text", v.weak_text_color()),
            ("link and badge", v.hyperlink_color),
            ("error", v.error_fg_color),
            ("warning", v.warn_fg_color),
        ] {
            pairs.push((format!("{fg_name} on {bg_name}"), fg, bg));
        }
    }
    let w = &v.widgets;
    for (name, state) in [
        ("button", &w.inactive),
        ("hovered button", &w.hovered),
        ("pressed button", &w.active),
        ("open menu", &w.open),
    ] {
        pairs.push((
            format!("{name} text"),
            state.fg_stroke.color,
            state.weak_bg_fill,
        ));
    }
    for (name, fg) in [
        ("selected entry", v.selection.stroke.color),
        ("selected text", v.text_color()),
        ("selected left group", v.weak_text_color()),
    ] {
        pairs.push((name.into(), fg, v.selection.bg_fill));
    }
    pairs.push(("mentioning line".into(), v.text_color(), highlight_bg(dark)));
    let (warning_fg, warning_bg) = key_warning_colours(dark);
    pairs.push(("key-change warning".into(), warning_fg, warning_bg));
    let palette = if dark { &DARK_NICKS } else { &LIGHT_NICKS };
    for (i, nick) in palette.iter().enumerate() {
        pairs.push((format!("nick colour {i}"), *nick, v.panel_fill));
        pairs.push((format!("nick colour {i} in a dialog"), *nick, v.window_fill));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A translucent (premultiplied) colour as it shows over an opaque background.
    fn over(fg: Color32, bg: Color32) -> Color32 {
        let keep = 1.0 - f32::from(fg.a()) / 255.0;
        let mix = |f: u8, b: u8| (f32::from(f) + f32::from(b) * keep).round().min(255.0) as u8;
        Color32::from_rgb(
            mix(fg.r(), bg.r()),
            mix(fg.g(), bg.g()),
            mix(fg.b(), bg.b()),
        )
    }

    #[test]
    fn the_contrast_formula_matches_wcag_examples() {
        let ratio = contrast_ratio(Color32::BLACK, Color32::WHITE);
        assert!((ratio - 21.0).abs() < 1e-9, "{ratio}");
        assert!((contrast_ratio(Color32::WHITE, Color32::WHITE) - 1.0).abs() < 1e-9);
        // #767676 on white is the well-known lightest grey that passes AA (4.54:1).
        let grey = contrast_ratio(Color32::from_gray(0x76), Color32::WHITE);
        assert!((grey - 4.54).abs() < 0.01, "{grey}");
        // egui's pure red error text on white: 4.0:1, the failure issue 22 saw.
        let red = contrast_ratio(Color32::from_rgb(255, 0, 0), Color32::WHITE);
        assert!((red - 4.0).abs() < 0.01, "{red}");
    }

    #[test]
    fn all_text_meets_wcag_aa_in_both_themes() {
        let mut failures = Vec::new();
        for dark in [false, true] {
            for (what, fg, bg) in text_pairs(dark) {
                let ratio = contrast_ratio(over(fg, bg), bg);
                if ratio < 4.5 {
                    let theme = if dark { "dark" } else { "light" };
                    failures.push(format!("{theme}: {what} {fg:?} on {bg:?} is {ratio:.2}:1"));
                }
            }
        }
        assert!(failures.is_empty(), "below 4.5:1:\n{}", failures.join("\n"));
    }

    #[test]
    fn health_dots_and_field_borders_meet_the_3_to_1_of_ui_components() {
        for dark in [false, true] {
            let v = visuals(dark);
            // Buttons' and text fields' outlines: their fills alone barely differ from the panel.
            let border = v.widgets.inactive.bg_stroke.color;
            let ratio = contrast_ratio(border, v.panel_fill);
            assert!(ratio >= 3.0, "dark={dark} border {border:?}: {ratio:.2}");
            for colour in health_colours(dark) {
                let ratio = contrast_ratio(colour, v.panel_fill);
                assert!(ratio >= 3.0, "dark={dark} {colour:?}: {ratio:.2}");
            }
        }
    }

    #[test]
    fn nick_colours_follow_the_shared_rule() {
        // FNV-1a 32-bit of "a" is 0xe40c292c (a test vector of the hash's reference code), of
        // "alice" 0x872213e7 (the web client's tests use the same); any casing gives the same.
        assert_eq!(palette_index("a", 1 << 40), 0xe40c_292c);
        assert_eq!(palette_index("ALICE", 12), 0x8722_13e7 % 12);
        assert_eq!(nick_colour(false, "Bob"), nick_colour(false, "bob"));
        let used: std::collections::HashSet<usize> = ["a", "b", "c", "d", "e", "f", "g"]
            .iter()
            .map(|k| palette_index(k, 12))
            .collect();
        assert!(used.len() > 2, "{used:?}");
    }
}
