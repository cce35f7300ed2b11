//! What the window shows about end-to-end encryption (issue 28): the header of a private
//! conversation (lock and words, the safety number last shown, what can be done) and which
//! message rows are key-change warnings. Computed from `parley_client::State` only: the crypto,
//! the `/e2e` and `/verify` flow and the texts all live in `parley-client`, so the GUI and the
//! TUI say the same thing and the buttons here are the same actions the commands are.

use std::path::{Path, PathBuf};

use parley_client::{BufferKind, E2eStatus, Line, LineKind, State};

/// Where the desktop client keeps its E2E devices under the config directory: its own folder,
/// beside the terminal client's `e2e/`. The device files have no lock, so a GUI and a TUI
/// running at once on one account must not share one (each would overwrite the other's
/// one-time keys and sessions); as two devices of the account, both read every message.
pub const E2E_FOLDER: &str = "e2e-gui";

/// The directory of the device files for one server, under `root` (`<config>/e2e-gui`): one
/// device and local store per account there, named as `parley_client::paths::e2e_dir` names
/// the terminal client's.
pub fn server_dir(root: &Path, host: &str, port: u16) -> PathBuf {
    root.join(parley_client::e2e::device::safe_name(&format!(
        "{host}-{port}"
    )))
}

/// The start of the key-change warning `parley-client` puts in a conversation.
const WARNING_PREFIX: &str = "*** WARNING: ";

/// Whether a line is the loud key-change warning (drawn apart from other errors).
pub fn is_key_warning(line: &Line) -> bool {
    line.kind == LineKind::Error && line.from.is_none() && line.text.starts_with(WARNING_PREFIX)
}

/// The E2E part of a private conversation's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub nick: String,
    pub status: E2eStatus,
    /// "🔒 encrypted · not verified", "🔓 not encrypted", ...
    pub label: String,
    /// The safety number `/verify` showed last in this conversation, while it is current.
    pub safety_number: Option<String>,
}

impl Header {
    /// "Mark verified" confirms the number on screen: offered only when one is shown.
    pub fn can_mark_verified(&self) -> bool {
        self.status.encrypted && !self.status.verified && self.safety_number.is_some()
    }
}

/// The header of the active buffer, when it is a private conversation on a server where this
/// device has keys.
pub fn header(state: &State) -> Option<Header> {
    let buffer = state.active();
    if buffer.kind != BufferKind::Query {
        return None;
    }
    let status = state.e2e_status(&buffer.name);
    if !status.available {
        return None;
    }
    let label = match (status.off, status.encrypted, status.verified) {
        (true, _, _) => "🔓 not encrypted (turned off)",
        (false, true, true) => "🔒 encrypted · verified",
        (false, true, false) => "🔒 encrypted · not verified",
        (false, false, _) => "🔓 not encrypted (no keys)",
    };
    Some(Header {
        nick: buffer.name.clone(),
        status,
        label: label.to_string(),
        safety_number: safety_number(buffer.lines.iter(), &buffer.name),
    })
}

/// The safety number from the latest `/verify` answer among `lines`, unless a key-change
/// warning came after it (then the number is stale and must be asked again).
fn safety_number<'a>(
    lines: impl DoubleEndedIterator<Item = &'a Line>,
    nick: &str,
) -> Option<String> {
    let shown = format!("safety number with {nick}: ");
    let refused = format!("not verified: {nick}'s safety number is ");
    let verified = format!("{nick}'s keys are verified (safety number ");
    for line in lines.rev() {
        if is_key_warning(line) {
            return None;
        }
        // Only the client's own notes (a peer's message cannot pose as one). A forged note
        // would still not verify anything: the confirm is checked against the number
        // `parley-client` itself showed.
        if line.kind != LineKind::Info || line.from.is_some() {
            continue;
        }
        let text = line.text.as_str();
        let number = if let Some(rest) = text.strip_prefix(&shown) {
            rest.split('.').next()
        } else if let Some(rest) = text.strip_prefix(&refused) {
            rest.split(',').next()
        } else if let Some(rest) = text.strip_prefix(&verified) {
            rest.strip_suffix(')')
        } else {
            None
        };
        if let Some(number) = number.filter(|n| is_safety_number(n)) {
            return Some(number.to_string());
        }
    }
    None
}

/// 12 groups of 5 digits, as `parley-client` writes it: anything else is not taken as one.
fn is_safety_number(text: &str) -> bool {
    let groups: Vec<&str> = text.split(' ').collect();
    groups.len() == 12
        && groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMBER: &str = "12345 23456 34567 45678 56789 67890 78901 89012 90123 01234 11111 22222";

    fn line(kind: LineKind, text: &str) -> Line {
        let mut state = State::new("alice", "alice");
        state.add_local(kind, text.to_string());
        state
            .buffers()
            .first()
            .and_then(|b| b.lines.back().cloned())
            .expect("the line just added")
    }

    #[test]
    fn the_number_shown_last_is_the_one_offered_until_a_key_change() {
        let asked = line(
            LineKind::Info,
            &format!("safety number with bob: {NUMBER}. Compare it with bob's (in person)"),
        );
        let lines = [asked.clone()];
        assert_eq!(safety_number(lines.iter(), "bob"), Some(NUMBER.into()));
        // Another nick's number, or something that only looks like the prefix, is not taken.
        assert_eq!(safety_number(lines.iter(), "carol"), None);
        let forged = line(LineKind::Info, "safety number with bob: 1 2 3. hi");
        assert_eq!(safety_number([forged].iter(), "bob"), None);
        let warning = line(
            LineKind::Error,
            "*** WARNING: bob's keys changed (1 device(s) added). Someone may be reading along",
        );
        assert!(is_key_warning(&warning));
        assert!(!is_key_warning(&asked));
        assert_eq!(safety_number([asked, warning].iter(), "bob"), None);
    }
}
