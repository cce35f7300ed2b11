//! This account's devices in the key directory (`/e2e devices`, `/e2e remove <id>`). A device
//! whose files are gone (a reinstall, a lost phone) stays listed until someone removes it:
//! others keep encrypting for it, and at 10 devices the account can add no more. Only another
//! device of the account may remove one, and never itself (to retire this device, delete its
//! file: it makes a new one at the next login).

use parley_proto::casefold;

use super::super::{irc_line, LineKind, State};
use crate::e2e::store::KnownDevice;

/// How much of a device's id `/e2e devices` shows (enough to tell ten apart).
const SHOWN_ID: usize = 12;

impl State {
    /// `/e2e devices`: list this account's devices (the answer comes as a list of own nick).
    pub(in crate::state) fn e2e_devices(&mut self, out: &mut Vec<String>) {
        if self.e2e.open.is_none() {
            self.e2e_note(
                None,
                LineKind::Error,
                "E2E is not running on this connection (no key directory, or not logged in)"
                    .to_string(),
            );
            return;
        }
        self.e2e.show_devices = true;
        let nick = self.nick.clone();
        self.e2e.lists.remove(&casefold(&nick));
        self.e2e_list(&nick, out);
    }

    /// `/e2e remove <id>`: `KEYS REMOVE` for the one other device of this account whose id
    /// starts with `id`, as the last `/e2e devices` listed them.
    pub(in crate::state) fn e2e_remove(&mut self, id: &str, out: &mut Vec<String>) {
        let Some(this) = self.e2e_device() else {
            return self.e2e_devices(out);
        };
        let listed = self
            .e2e
            .lists
            .get(&casefold(&self.nick))
            .map(|l| l.devices.clone())
            .unwrap_or_default();
        let matching: Vec<&KnownDevice> =
            listed.iter().filter(|d| d.curve.starts_with(id)).collect();
        let text = match matching.as_slice() {
            [] => format!("E2E: no device of yours starts with {id} (/e2e devices lists them)"),
            [device] if device.curve == this => format!(
                "E2E: {id} is this device; to retire it, delete its file (a new one is made at \
                 the next login) and remove it from another device"
            ),
            [device] => {
                out.push(irc_line("KEYS", &["REMOVE", &device.curve], None));
                return;
            }
            _ => format!("E2E: several of your devices start with {id}; give more of its id"),
        };
        self.e2e_note(None, LineKind::Error, text);
    }

    /// The answer to `/e2e devices`.
    pub(super) fn show_own_devices(&mut self, devices: &[KnownDevice]) {
        let this = self.e2e_device().unwrap_or_default();
        let mut text = format!("E2E: your account has {} device(s):", devices.len());
        for device in devices {
            let id = device.curve.get(..SHOWN_ID).unwrap_or(&device.curve);
            text.push_str(&format!(" {id}"));
            if device.curve == this {
                text.push_str(" (this device)");
            }
        }
        text.push_str(" - /e2e remove <id> removes one you no longer use");
        self.e2e_note(None, LineKind::Info, text);
    }

    /// `KEYS REMOVED <curve>`.
    pub(super) fn on_device_removed(&mut self, curve: &str) {
        let nick = casefold(&self.nick);
        if let Some(listed) = self.e2e.lists.get_mut(&nick) {
            listed.devices.retain(|d| d.curve != curve);
        }
        let id = curve.get(..SHOWN_ID).unwrap_or(curve);
        let mut text = format!("E2E: device {id} removed; messages are no longer encrypted for it");
        if !self.e2e.published {
            text.push_str(" (reconnect to publish this device)");
        }
        self.e2e_note(None, LineKind::Info, text);
    }

    /// `FAIL KEYS TOO_MANY_DEVICES`: this device could not be published.
    pub(super) fn on_too_many_devices(&mut self) {
        let text = "E2E: your account has the most devices the server keeps (10), so this one \
                    is not published: /e2e devices lists them, /e2e remove <id> removes one you \
                    no longer use"
            .to_string();
        self.e2e_note(None, LineKind::Error, text);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{device_line, find, login};
    use crate::input::Action;

    fn server_notes(s: &crate::state::State) -> Vec<String> {
        s.buffers()[0]
            .lines
            .iter()
            .map(|l| l.text.clone())
            .collect()
    }

    #[test]
    fn devices_are_listed_and_another_one_removed_but_never_this_one() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let (mut phone, phone_out) = login("alice", &tmp.path().join("phone"));
        // A second device of the same account (a laptop, or the phone before a reinstall).
        let (_, old_out) = login("alice", &tmp.path().join("old"));
        let this = find(&phone_out, "KEYS UPLOAD")[0].to_string();
        let old = find(&old_out, "KEYS UPLOAD")[0].to_string();
        let curve = |upload: &str| upload.split(' ').nth(2).unwrap_or("").to_string();
        let (this_curve, old_curve) = (curve(&this), curve(&old));

        let out = phone.act(Action::E2eDevices).expect("asked");
        assert_eq!(out, ["KEYS LIST alice"]);
        for line in [
            device_line("alice", &this),
            device_line("alice", &old),
            ":srv KEYS END alice alice".to_string(),
        ] {
            phone.handle_line(&line);
        }
        let notes = server_notes(&phone);
        let listing = notes
            .iter()
            .find(|n| n.starts_with("E2E: your account has 2 device(s):"))
            .expect("the devices are shown");
        assert!(listing.contains(&format!("{} (this device)", &this_curve[..12])));
        assert!(listing.contains(&old_curve[..12]));

        // This device is refused; the other is removed by its id's start.
        let out = phone
            .act(Action::E2eRemove(this_curve[..12].to_string()))
            .expect("local");
        assert!(out.is_empty(), "{out:?}");
        assert!(server_notes(&phone)
            .last()
            .is_some_and(|n| n.contains("is this device")));
        let out = phone.act(Action::E2eRemove("zzz".into())).expect("local");
        assert!(out.is_empty(), "{out:?}");
        let out = phone
            .act(Action::E2eRemove(old_curve[..12].to_string()))
            .expect("sent");
        assert_eq!(out, [format!("KEYS REMOVE {old_curve}")]);
        phone.handle_line(&format!(":srv KEYS REMOVED {old_curve}"));
        assert!(server_notes(&phone)
            .last()
            .is_some_and(|n| n.contains("removed")));
        // At the server's cap, the user is told how to make room.
        phone.handle_line(&format!(
            ":srv FAIL KEYS TOO_MANY_DEVICES {this_curve} :Too many devices"
        ));
        assert!(server_notes(&phone)
            .last()
            .is_some_and(|n| n.contains("/e2e remove <id>")));
    }
}
