//! End-to-end encrypted private messages, the protocol side: after the login it publishes this
//! device's keys (`KEYS UPLOAD`, one-time keys topped up to 50, a fallback key); a private
//! message waits until the devices of both accounts are listed (`KEYS LIST`) and sessions exist
//! (`KEYS CLAIM`), then goes out as one PRIVMSG with the `+parley.chat/e2e` tag and the
//! placeholder body; an incoming one is decrypted (or says clearly that it cannot be) and kept
//! in the local store by msgid, so history (ciphertext on the server) reads back from there.
//! Key changes of a known peer are a warning in the conversation and drop "verified".
//! Files (the device, the SQLite store) are read and written here, under the state lock: each
//! is one small local write per message.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;

use parley_proto::{casefold, Message};

use crate::e2e::device::{verify_device, OTKS_PER_LINE, PUBLISHED_OTKS};
use crate::e2e::store::KnownDevice;
use crate::e2e::wire::{self, Payload, Plaintext, CAP, PLACEHOLDER, TAG};
use crate::e2e::{olm, trust, E2e};
use crate::input::is_channel;

use super::{irc_line, irc_tagged, BufferKind, LineKind, State};

mod devices;
mod group;

/// Messages waiting for keys; past this, new ones are refused with a line.
const MAX_PENDING: usize = 32;
/// Own encrypted messages remembered until the server echoes them (echo-message).
const MAX_SENT: usize = 32;
/// Devices accepted per account in one `KEYS LIST` answer (the server allows 10).
const MAX_DEVICES: usize = 16;
/// The tag budget left for the entries: the IRCv3 client tag limit minus the tag name, `v1:`,
/// the sender key and room for a `+draft/reply` tag.
const ENTRY_BUDGET: usize = wire::MAX_TAG_SECTION - 200;
/// Bytes an Olm pre-key message adds to its plaintext (keys, counter, MAC, AES padding).
const OLM_OVERHEAD: usize = 220;
/// Longest text in one encrypted message (the JSON must stay under `wire::MAX_PLAINTEXT`).
const MAX_PIECE: usize = 1000;

/// What the conversation with a nick is, for the UI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E2eStatus {
    /// This device has keys on this server (the server has the cap, the user is logged in).
    pub available: bool,
    /// Messages to this nick are end-to-end encrypted.
    pub encrypted: bool,
    /// The user compared the safety number and confirmed the peer's current keys.
    pub verified: bool,
    /// The user turned E2E off for this conversation (`/e2e off`).
    pub off: bool,
}

/// The devices of the account now using a nick.
#[derive(Clone, Debug)]
struct Listed {
    account: Option<String>,
    devices: Vec<KnownDevice>,
}

struct PendingSend {
    target: String,
    text: String,
    action: bool,
    reply_to: Option<String>,
}

/// The E2E part of the chat state.
#[derive(Default)]
pub(super) struct E2eState {
    /// Where this server's device files live; `None` turns E2E off (no config dir).
    dir: Option<PathBuf>,
    open: Option<E2e>,
    topping_up: bool,
    /// The directory has this device and its fallback key (the first `KEYS COUNT`).
    published: bool,
    /// Device lists by casefolded nick, refreshed for a new conversation.
    lists: HashMap<String, Listed>,
    /// `KEYS LIST` sent and not answered, with the devices collected so far.
    listing: HashMap<String, Vec<KnownDevice>>,
    /// `KEYS CLAIM` sent and not answered, by device.
    claiming: HashSet<String>,
    /// Devices the directory had no key for (skipped until the next list).
    unreachable: HashSet<String>,
    pending: VecDeque<PendingSend>,
    sent: VecDeque<(String, Plaintext)>,
    /// `/verify` asked, waiting for lists: nick, confirm.
    verify_asked: Vec<(String, bool)>,
    /// The safety number last shown per casefolded nick: a confirm must match it.
    shown: HashMap<String, String>,
    /// Conversations told they are encrypted.
    announced: HashSet<String>,
    /// End-to-end encrypted channels (`group.rs`).
    group: group::GroupState,
    /// `/e2e devices` asked: the next list of this account's devices is shown (`devices.rs`).
    show_devices: bool,
}

impl E2eState {
    /// The device, if E2E runs on this connection.
    fn ready(&mut self) -> Option<&mut E2e> {
        self.open.as_mut()
    }
}

/// Pieces of `text` whose JSON fits `max_json` bytes, cut at character boundaries.
fn split_for_json(text: &str, max_json: usize) -> Vec<String> {
    let room = max_json.saturating_sub(30).clamp(1, MAX_PIECE);
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut size = 0;
    for c in text.chars() {
        let cost = match c {
            '"' | '\\' => 2,
            c if c.is_control() => 6,
            c => c.len_utf8(),
        };
        if size + cost > room && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
            size = 0;
        }
        current.push(c);
        size += cost;
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

impl State {
    /// Where E2E keeps this server's device files (see `paths::e2e_dir`); `None` disables E2E.
    pub fn set_e2e_dir(&mut self, dir: Option<PathBuf>) {
        self.e2e.dir = dir;
    }

    /// This device's Curve25519 key on this server, once E2E runs.
    pub fn e2e_device(&self) -> Option<String> {
        self.e2e.open.as_ref().map(|e| e.device.curve())
    }

    /// Whether the conversation with `nick` is encrypted and verified (for a status bar).
    pub fn e2e_status(&self, nick: &str) -> E2eStatus {
        let Some(e2e) = &self.e2e.open else {
            return E2eStatus::default();
        };
        let key = casefold(nick);
        let off = e2e.store.is_off(&key).unwrap_or(false);
        let listed = self.e2e.lists.get(&key);
        let account = listed
            .and_then(|l| l.account.clone())
            .or_else(|| self.account_of(nick).map(casefold));
        let has_devices = listed.is_some_and(|l| !l.devices.is_empty())
            || account
                .as_deref()
                .is_some_and(|a| e2e.store.devices(a).is_ok_and(|d| !d.is_empty()));
        let verified = account
            .as_deref()
            .is_some_and(|a| e2e.store.verified(a).unwrap_or(false));
        E2eStatus {
            available: true,
            encrypted: has_devices && !off,
            verified: has_devices && verified,
            off,
        }
    }

    /// After the welcome: opens this account's device and publishes its keys.
    pub(super) fn e2e_start(&mut self, out: &mut Vec<String>) {
        let dir = self.e2e.dir.clone();
        let old = std::mem::replace(
            &mut self.e2e,
            E2eState {
                dir,
                ..E2eState::default()
            },
        );
        for send in old.pending {
            let text = format!("not sent (the connection was lost): {}", send.text);
            self.e2e_note(Some(&send.target), LineKind::Error, text);
        }
        let (Some(dir), Some(account)) = (self.e2e.dir.clone(), self.account.clone()) else {
            return;
        };
        if !self.has_cap(CAP) {
            return;
        }
        let account = casefold(&account);
        let e2e = match E2e::open(&dir, &account) {
            Ok((e2e, _)) => e2e,
            Err(error) => {
                self.e2e_note(None, LineKind::Error, format!("E2E is off: {error}"));
                return;
            }
        };
        let curve = e2e.device.curve();
        out.push(irc_line(
            "KEYS",
            &[
                "UPLOAD",
                &curve,
                &e2e.device.ed25519(),
                &e2e.device.upload_signature(&account),
            ],
            None,
        ));
        self.e2e.open = Some(e2e);
    }

    /// The directory has this device: give it a fresh fallback key and top up one-time keys
    /// (asked only now, so no key line can overtake the upload).
    fn on_uploaded(&mut self, curve: &str, out: &mut Vec<String>) {
        let Some(e2e) = self.e2e.open.as_mut() else {
            return;
        };
        if curve != e2e.device.curve() {
            return;
        }
        if let Some(fallback) = e2e.device.rotate_fallback() {
            out.push(irc_line("KEYS", &["FALLBACK", curve, &fallback], None));
        }
        if let Err(error) = e2e.device.save() {
            self.e2e_note(None, LineKind::Error, format!("E2E: {error}"));
            return;
        }
        out.push(irc_line("KEYS", &["COUNT", curve], None));
    }

    /// A line about E2E in a conversation (or the server buffer).
    fn e2e_note(&mut self, nick: Option<&str>, kind: LineKind, text: String) {
        let index = match nick {
            Some(nick) => self.buffer_index(nick, BufferKind::Query),
            None => 0,
        };
        let line = self.own_line(LineKind::Info, text);
        self.push(index, super::Line { kind, ..line });
    }

    /// `KEYS ...` from the server.
    pub(super) fn on_keys(&mut self, msg: &Message<'_>, out: &mut Vec<String>) {
        let arg = |i| msg.param(i).unwrap_or("");
        match arg(0).to_ascii_uppercase().as_str() {
            "COUNT" => self.on_keys_count(arg(1), arg(2).parse().unwrap_or(0), out),
            "DEVICE" => {
                let (nick, account, curve, ed, sig) = (arg(1), arg(2), arg(3), arg(4), arg(5));
                let Some(collected) = self.e2e.listing.get_mut(&casefold(nick)) else {
                    return;
                };
                let signed = wire::is_key(curve)
                    && (verify_device(account, curve, ed, sig)
                        || verify_device(&casefold(account), curve, ed, sig));
                if signed && collected.len() < MAX_DEVICES {
                    collected.push(KnownDevice {
                        curve: curve.to_string(),
                        ed25519: ed.to_string(),
                    });
                } else if !signed {
                    let text =
                        format!("E2E: ignored a device of {nick} whose keys are not signed by it");
                    self.e2e_note(None, LineKind::Error, text);
                }
            }
            "END" => {
                let (nick, account) = (arg(1), arg(2));
                if let Some(devices) = self.e2e.listing.remove(&casefold(nick)) {
                    self.on_listed(nick, Some(casefold(account)), devices);
                    self.e2e_progress(out);
                }
            }
            "UPLOADED" => self.on_uploaded(arg(1), out),
            "REMOVED" => self.on_device_removed(arg(1)),
            "CLAIMED" => {
                let (curve, key) = (arg(3), arg(4));
                if !self.e2e.claiming.remove(curve) {
                    return;
                }
                if let Some(e2e) = self.e2e.ready() {
                    if let Err(error) = olm::start_session(&e2e.device, &e2e.store, curve, key) {
                        self.e2e.unreachable.insert(curve.to_string());
                        self.e2e_note(None, LineKind::Error, format!("E2E: {error}"));
                    }
                }
                self.e2e_progress(out);
            }
            _ => {}
        }
    }

    fn on_keys_count(&mut self, curve: &str, published: usize, out: &mut Vec<String>) {
        let Some(e2e) = self.e2e.open.as_mut() else {
            return;
        };
        if curve != e2e.device.curve() {
            return;
        }
        if !self.e2e.published {
            // The first count answers the fallback key: others can reach this device now.
            self.e2e.published = true;
            let text = format!(
                "E2E: this device's keys are published (device {}...); private messages to \
                 accounts with keys are end-to-end encrypted",
                curve.get(..8).unwrap_or("?")
            );
            self.e2e_note(None, LineKind::Info, text);
        }
        let Some(e2e) = self.e2e.open.as_mut() else {
            return;
        };
        if published >= PUBLISHED_OTKS {
            self.e2e.topping_up = false;
            return;
        }
        if self.e2e.topping_up {
            return;
        }
        let keys = e2e.device.top_up(published);
        if let Err(error) = e2e.device.save() {
            self.e2e_note(None, LineKind::Error, format!("E2E: {error}"));
            return;
        }
        for chunk in keys.chunks(OTKS_PER_LINE) {
            out.push(irc_line("KEYS", &["OTK", curve, &chunk.join(",")], None));
        }
        self.e2e.topping_up = !keys.is_empty();
    }

    /// `FAIL KEYS ...`: part of the flow (no keys, no account) or an error to show. Returns
    /// whether it was handled here.
    pub(super) fn on_keys_fail(&mut self, msg: &Message<'_>, out: &mut Vec<String>) -> bool {
        let code = msg.param(1).unwrap_or("");
        let context = msg.param(2).filter(|_| msg.params.len() > 3).unwrap_or("");
        match code {
            "NO_SUCH_NICK" | "NO_ACCOUNT" => {
                if self.e2e.listing.remove(&casefold(context)).is_some() {
                    self.on_listed(context, None, Vec::new());
                }
            }
            "NO_KEYS" | "RATE_LIMITED" => {
                let device = msg.param(3).filter(|_| msg.params.len() > 4);
                let gone: Vec<String> = match device {
                    Some(curve) => vec![curve.to_string()],
                    None => self.e2e.claiming.iter().cloned().collect(),
                };
                for curve in gone {
                    self.e2e.claiming.remove(&curve);
                    self.e2e.unreachable.insert(curve);
                }
            }
            "TOO_MANY_KEYS" => self.e2e.topping_up = false,
            "TOO_MANY_DEVICES" => self.on_too_many_devices(),
            _ => return false,
        }
        self.e2e_progress(out);
        true
    }

    /// A device list arrived: remember it, warn if a known peer's keys changed.
    fn on_listed(&mut self, nick: &str, account: Option<String>, devices: Vec<KnownDevice>) {
        let key = casefold(nick);
        for device in &devices {
            self.e2e.unreachable.remove(&device.curve);
        }
        let own = account.as_deref() == self.e2e.open.as_ref().map(|e| e.account.as_str());
        let mut warning = None;
        let mut announce = false;
        if let (Some(e2e), Some(account)) = (self.e2e.open.as_mut(), account.as_deref()) {
            let known = e2e.store.devices(account).unwrap_or_default();
            let change = trust::compare(&known, &devices);
            if !own && !known.is_empty() && !change.is_empty() {
                let _ = e2e.store.set_verified(account, false);
                warning = Some(format!(
                    "*** WARNING: {nick}'s keys changed ({}). Someone may be reading along, or \
                     {nick} has a new device: compare the safety number again (/verify {nick}) \
                     before trusting this conversation",
                    change.describe()
                ));
            }
            if !devices.is_empty() || known.is_empty() {
                let _ = e2e.store.set_devices(account, &devices);
            }
            announce = !own && !devices.is_empty() && !self.e2e.announced.contains(&key);
        }
        if own && std::mem::take(&mut self.e2e.show_devices) {
            self.show_own_devices(&devices);
        }
        self.e2e
            .lists
            .insert(key.clone(), Listed { account, devices });
        if let Some(warning) = warning {
            self.e2e_note(Some(nick), LineKind::Error, warning);
        }
        if announce && self.find(nick).is_some() {
            self.e2e.announced.insert(key);
            let status = self.e2e_status(nick);
            let text = match (status.off, status.verified) {
                (true, _) => format!("E2E is off for {nick} (/e2e on turns it on)"),
                (false, true) => format!("messages with {nick} are end-to-end encrypted, verified"),
                (false, false) => format!(
                    "messages with {nick} are end-to-end encrypted, not verified (/verify {nick})"
                ),
            };
            self.e2e_note(Some(nick), LineKind::Info, text);
        }
    }

    /// A peer that had keys lists none now (another client, or a server hiding the devices):
    /// nothing goes out in clear text until the user says so with `/e2e off`. Returns whether
    /// the message was refused.
    fn refuse_downgrade(&mut self, target: &str) -> bool {
        let account = self
            .e2e
            .lists
            .get(&casefold(target))
            .and_then(|l| l.account.clone())
            .or_else(|| self.account_of(target).map(casefold));
        let had_keys = account.is_some_and(|a| {
            self.e2e
                .open
                .as_ref()
                .is_some_and(|e| e.store.devices(&a).is_ok_and(|d| !d.is_empty()))
        });
        if had_keys {
            self.e2e_note(
                Some(target),
                LineKind::Error,
                format!(
                    "not sent: {target} had E2E keys and now lists none; /e2e off sends in \
                     clear text"
                ),
            );
        }
        had_keys
    }

    fn e2e_list(&mut self, nick: &str, out: &mut Vec<String>) {
        let key = casefold(nick);
        if let std::collections::hash_map::Entry::Vacant(slot) = self.e2e.listing.entry(key) {
            slot.insert(Vec::new());
            out.push(irc_line("KEYS", &["LIST", nick], None));
        }
    }

    /// Sends a private message encrypted when E2E applies; false to send it in clear text.
    pub(super) fn e2e_intercept(
        &mut self,
        target: &str,
        text: &str,
        action: bool,
        reply_to: Option<&str>,
        out: &mut Vec<String>,
    ) -> bool {
        if is_channel(target) {
            return self.group_intercept(target, text, action, reply_to, out);
        }
        if target.starts_with('$') {
            return false;
        }
        let key = casefold(target);
        let Some(e2e) = self.e2e.ready() else {
            return false;
        };
        if e2e.store.is_off(&key).unwrap_or(false) {
            return false;
        }
        if self
            .e2e
            .lists
            .get(&key)
            .is_some_and(|l| l.devices.is_empty())
        {
            return self.refuse_downgrade(target);
        }
        if self.e2e.pending.len() >= MAX_PENDING {
            self.e2e_note(
                Some(target),
                LineKind::Error,
                "not sent: too many messages wait for keys".into(),
            );
            return true;
        }
        self.e2e.pending.push_back(PendingSend {
            target: target.to_string(),
            text: text.to_string(),
            action,
            reply_to: reply_to.map(str::to_string),
        });
        let own = self.nick.clone();
        if !self.e2e.lists.contains_key(&key) {
            self.e2e_list(target, out);
        }
        if !self.e2e.lists.contains_key(&casefold(&own)) {
            self.e2e_list(&own, out);
        }
        self.typing_sent(target);
        self.e2e_progress(out);
        true
    }

    /// Moves waiting work on: `/verify` answers, claims, then the messages themselves.
    fn e2e_progress(&mut self, out: &mut Vec<String>) {
        let own_key = casefold(&self.nick);
        for (nick, confirm) in std::mem::take(&mut self.e2e.verify_asked) {
            let key = casefold(&nick);
            if self.e2e.listing.contains_key(&key) || self.e2e.listing.contains_key(&own_key) {
                self.e2e.verify_asked.push((nick, confirm));
            } else {
                self.verify_answer(&nick, confirm);
            }
        }
        self.group_progress();
        if !self.e2e.listing.is_empty() || !self.e2e.claiming.is_empty() {
            return;
        }
        while let Some(send) = self.e2e.pending.pop_front() {
            if is_channel(&send.target) {
                if let group::GroupStep::Wait = self.group_step(&send, out) {
                    self.e2e.pending.push_front(send);
                    return;
                }
                continue;
            }
            match self.e2e_claims(&send.target, out) {
                Some(true) => {
                    self.e2e.pending.push_front(send);
                    return;
                }
                Some(false) => self.e2e_send(send, out),
                None if self.refuse_downgrade(&send.target) => {}
                None => {
                    let text = send.text.clone();
                    let target = send.target.clone();
                    // Not listed any more (no account): plain text, said so.
                    self.e2e_note(
                        Some(&target),
                        LineKind::Info,
                        format!("{target} has no E2E keys: sent in clear text"),
                    );
                    let body_action = send.action;
                    self.say_plain(&target, &text, body_action, send.reply_to.as_deref(), out);
                }
            }
        }
    }

    /// The devices a message to `target` goes to: the peer's and our other devices.
    fn recipients(&self, target: &str) -> Option<Vec<(String, String)>> {
        let me = self.e2e.open.as_ref()?.device.curve();
        let peer = self.e2e.lists.get(&casefold(target))?;
        if peer.devices.is_empty() {
            return None;
        }
        let mut all: Vec<(String, String)> = peer
            .devices
            .iter()
            .map(|d| (target.to_string(), d.curve.clone()))
            .collect();
        if let Some(own) = self.e2e.lists.get(&casefold(&self.nick)) {
            all.extend(
                own.devices
                    .iter()
                    .filter(|d| d.curve != me)
                    .map(|d| (self.nick.clone(), d.curve.clone())),
            );
        }
        all.retain(|(_, curve)| !self.e2e.unreachable.contains(curve));
        Some(all)
    }

    /// Claims keys for devices without a session. `Some(true)`: wait for the answers;
    /// `Some(false)`: ready; `None`: the peer has no devices.
    fn e2e_claims(&mut self, target: &str, out: &mut Vec<String>) -> Option<bool> {
        let recipients = self.recipients(target)?;
        let store = &self.e2e.open.as_ref()?.store;
        let missing: Vec<(String, String)> = recipients
            .into_iter()
            .filter(|(_, curve)| !store.has_session(curve).unwrap_or(false))
            .collect();
        for (nick, curve) in &missing {
            self.e2e.claiming.insert(curve.clone());
            out.push(irc_line("KEYS", &["CLAIM", nick, curve], None));
        }
        Some(!missing.is_empty())
    }

    fn e2e_send(&mut self, send: PendingSend, out: &mut Vec<String>) {
        let target = send.target.clone();
        let recipients = self.recipients(&target).unwrap_or_default();
        let peer_key = casefold(&target);
        let reaches_peer = self.e2e.lists.get(&peer_key).is_some_and(|l| {
            l.devices
                .iter()
                .any(|d| recipients.iter().any(|(_, c)| *c == d.curve))
        });
        if !reaches_peer {
            self.e2e_note(
                Some(&target),
                LineKind::Error,
                format!("not sent: no device of {target} could be reached (no keys left)"),
            );
            return;
        }
        let per_entry = ENTRY_BUDGET / recipients.len() - wire::KEY_LEN - 4;
        let max_json = (per_entry * 3 / 4).saturating_sub(OLM_OVERHEAD);
        if max_json < 40 {
            self.e2e_note(
                Some(&target),
                LineKind::Error,
                format!(
                    "not sent: too many devices ({}) for one line",
                    recipients.len()
                ),
            );
            return;
        }
        let Some(e2e) = self.e2e.open.as_ref() else {
            return;
        };
        let sender = e2e.device.curve();
        let mut lines = Vec::new();
        let mut sent = Vec::new();
        for (i, piece) in split_for_json(&send.text, max_json).into_iter().enumerate() {
            let plain = Plaintext {
                text: piece,
                action: send.action,
            };
            let json = plain.to_json();
            let mut entries = Vec::new();
            for (_, curve) in &recipients {
                match olm::encrypt(&e2e.store, curve, &json) {
                    Ok(entry) => entries.push(entry),
                    Err(error) => {
                        let text = format!("not sent: {error}");
                        self.e2e_note(Some(&target), LineKind::Error, text);
                        return;
                    }
                }
            }
            let value = Payload {
                sender: sender.clone(),
                entries,
            }
            .to_value();
            let mut tags = vec![(TAG, value.as_str())];
            if let Some(parent) = send.reply_to.as_deref().filter(|_| i == 0) {
                tags.push(("+draft/reply", parent));
            }
            lines.push(irc_tagged(&tags, "PRIVMSG", &[&target], Some(PLACEHOLDER)));
            sent.push((value, plain));
        }
        out.extend(lines);
        let echo = self.has_cap("echo-message");
        for (value, plain) in sent {
            if echo {
                if self.e2e.sent.len() >= MAX_SENT {
                    self.e2e.sent.pop_front();
                }
                self.e2e.sent.push_back((value, plain));
            } else {
                let index = self.buffer_index(&target, BufferKind::Query);
                let kind = if plain.action {
                    LineKind::Action
                } else {
                    LineKind::Message
                };
                let mut line = self.own_line(kind, plain.text);
                line.own = true;
                self.add_line(index, line);
            }
        }
    }

    /// The text to show for an encrypted PRIVMSG (`value` is the tag): from the store, our
    /// own send, or decrypted now; else a line that says why it cannot be read.
    pub(super) fn e2e_incoming(
        &mut self,
        value: &str,
        from: Option<&str>,
        msgid: Option<&str>,
        history: bool,
    ) -> String {
        const CANNOT: &str = "[encrypted message: cannot decrypt on this device]";
        let show = |plain: &Plaintext| {
            if plain.action {
                format!("\x01ACTION {}\x01", plain.text)
            } else {
                plain.text.clone()
            }
        };
        let Some(e2e) = self.e2e.open.as_mut() else {
            return CANNOT.to_string();
        };
        if let Some(msgid) = msgid {
            if let Ok(Some((text, action))) = e2e.store.message(msgid) {
                return show(&Plaintext { text, action });
            }
        }
        let payload = match wire::parse(value) {
            Ok(payload) => payload,
            Err(error) => return format!("[encrypted message: unreadable: {error}]"),
        };
        let own = from.is_some_and(|f| casefold(f) == casefold(&self.nick));
        if own {
            if let Some(at) = self.e2e.sent.iter().position(|(v, _)| v == value) {
                if let Some((_, plain)) = self.e2e.sent.remove(at) {
                    if let Some(msgid) = msgid {
                        let _ = e2e.store.save_message(msgid, &plain.text, plain.action);
                    }
                    return show(&plain);
                }
            }
        }
        let me = e2e.device.curve();
        let Some(entry) = payload.entry_for(&me).cloned() else {
            return CANNOT.to_string();
        };
        let decrypted = olm::decrypt(&mut e2e.device, &e2e.store, &payload.sender, &entry);
        let decrypted = match decrypted {
            Ok(decrypted) => decrypted,
            Err(error) => {
                return format!("[encrypted message: cannot decrypt on this device: {error}]")
            }
        };
        if decrypted.used_one_time_key && !history {
            self.outbox.push(irc_line("KEYS", &["COUNT", &me], None));
        }
        let Some(plain) = Plaintext::from_json(&decrypted.plaintext) else {
            return "[encrypted message: unreadable content]".to_string();
        };
        if let Some(msgid) = msgid {
            let _ = e2e.store.save_message(msgid, &plain.text, plain.action);
        }
        let mut text = show(&plain);
        if let Some(nick) = from {
            let listed = self.e2e.lists.get(&casefold(nick));
            let known = listed.map(|l| l.devices.iter().any(|d| d.curve == payload.sender));
            match known {
                Some(true) => {}
                Some(false) if history => {}
                Some(false) => {
                    text = format!("(from a device not listed for {nick}) {text}");
                    self.e2e.lists.remove(&casefold(nick));
                }
                None => {}
            }
            if known != Some(true) && !history {
                let mut out = Vec::new();
                self.e2e_list(nick, &mut out);
                self.outbox.extend(out);
            }
        }
        text
    }

    /// `/e2e [on|off]` in a private conversation or a channel.
    pub(super) fn e2e_toggle(&mut self, on: Option<bool>, out: &mut Vec<String>) {
        let buffer = self.active();
        if buffer.kind == BufferKind::Channel && self.e2e.open.is_some() {
            let room = buffer.name.clone();
            self.group_toggle(&room, on, out);
            return;
        }
        if buffer.kind != BufferKind::Query && buffer.kind != BufferKind::Channel {
            self.add_local(
                LineKind::Error,
                "/e2e works in a private conversation (/query <nick>) or a channel".into(),
            );
            return;
        }
        let nick = buffer.name.clone();
        let Some(e2e) = self.e2e.open.as_ref() else {
            self.add_local(
                LineKind::Error,
                "E2E is not available here (the server has no key directory, or you are not \
                 logged in)"
                    .into(),
            );
            return;
        };
        if let Some(on) = on {
            if let Err(error) = e2e.store.set_off(&casefold(&nick), !on) {
                self.add_local(LineKind::Error, format!("E2E: {error}"));
                return;
            }
        }
        let status = self.e2e_status(&nick);
        let text = match (status.off, status.encrypted, status.verified) {
            (true, _, _) => format!("E2E is off for {nick}: messages go in clear text"),
            (false, true, true) => format!("E2E is on for {nick}: encrypted, verified"),
            (false, true, false) => {
                format!("E2E is on for {nick}: encrypted, not verified (/verify {nick})")
            }
            (false, false, _) => format!(
                "E2E is on for {nick}: messages are encrypted once {nick}'s devices have keys"
            ),
        };
        self.add_local(LineKind::Info, text);
    }

    /// `/verify <nick> [confirm]`: lists both accounts' devices again, then answers.
    pub(super) fn e2e_verify(&mut self, nick: &str, confirm: bool, out: &mut Vec<String>) {
        if self.e2e.open.is_none() {
            self.add_local(
                LineKind::Error,
                "E2E is not available here (the server has no key directory, or you are not \
                 logged in)"
                    .into(),
            );
            return;
        }
        self.e2e.verify_asked.push((nick.to_string(), confirm));
        let own = self.nick.clone();
        self.e2e.lists.remove(&casefold(nick));
        self.e2e.lists.remove(&casefold(&own));
        self.e2e_list(nick, out);
        self.e2e_list(&own, out);
    }

    fn verify_answer(&mut self, nick: &str, confirm: bool) {
        let key = casefold(nick);
        let peer = self.e2e.lists.get(&key).cloned();
        let mine = self.e2e.lists.get(&casefold(&self.nick)).cloned();
        let (Some(e2e), Some(peer), Some(mine)) = (self.e2e.open.as_ref(), peer, mine) else {
            return;
        };
        let (Some(account), false) = (peer.account.clone(), peer.devices.is_empty()) else {
            self.e2e_note(
                Some(nick),
                LineKind::Error,
                format!("{nick} has no E2E keys"),
            );
            return;
        };
        let number = trust::safety_number(&e2e.account, &mine.devices, &account, &peer.devices);
        let text = if !confirm {
            self.e2e.shown.insert(key, number.clone());
            format!(
                "safety number with {nick}: {number}. Compare it with {nick}'s (in person or \
                 on a call); if they match, type /verify {nick} confirm"
            )
        } else if self.e2e.shown.get(&key) != Some(&number) {
            format!(
                "not verified: {nick}'s safety number is {number}, not the one you compared \
                 (or you did not look yet); compare this one, then /verify {nick} confirm"
            )
        } else {
            match e2e.store.set_verified(&account, true) {
                Ok(()) => format!("{nick}'s keys are verified (safety number {number})"),
                Err(error) => format!("E2E: {error}"),
            }
        };
        self.e2e_note(Some(nick), LineKind::Info, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Action;
    use crate::state::Auth;

    const CAPS: &str = "message-tags server-time echo-message parley.chat/e2e";

    /// A logged-in state with E2E under `dir`, and what it sent after the welcome.
    pub(super) fn login(nick: &str, dir: &std::path::Path) -> (State, Vec<String>) {
        let mut s = State::new(nick, nick);
        s.set_e2e_dir(Some(dir.to_path_buf()));
        s.on_connected(false, Auth::Guest);
        let mut out = Vec::new();
        for line in [
            format!(":srv CAP * LS :{CAPS}"),
            format!(":srv CAP {nick} ACK :{CAPS}"),
            format!(":srv 900 {nick} {nick}!u@h {nick} :You are now logged in as {nick}"),
            format!(":srv 001 {nick} :Welcome"),
        ] {
            out.extend(s.handle_line(&line));
        }
        (s, out)
    }

    pub(super) fn find<'a>(out: &'a [String], prefix: &str) -> Vec<&'a str> {
        out.iter()
            .filter(|l| l.starts_with(prefix))
            .map(String::as_str)
            .collect()
    }

    /// The `KEYS DEVICE` line the directory would send for an `UPLOAD` line.
    pub(super) fn device_line(nick: &str, upload: &str) -> String {
        let words: Vec<&str> = upload.split(' ').collect();
        format!(
            ":srv KEYS DEVICE {nick} {nick} {} {} {}",
            words[2], words[3], words[4]
        )
    }

    #[test]
    fn a_private_message_is_encrypted_for_the_peer_and_decrypted_there() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let (mut alice, alice_out) = login("alice", &tmp.path().join("a"));
        let (mut bob, bob_out) = login("bob", &tmp.path().join("b"));
        let alice_upload = find(&alice_out, "KEYS UPLOAD")[0].to_string();
        let bob_upload = find(&bob_out, "KEYS UPLOAD")[0].to_string();
        let bob_curve = bob_upload.split(' ').nth(2).unwrap_or("").to_string();
        // The directory counts 0 one-time keys: bob publishes 50, 10 per line.
        let otk = bob.handle_line(&format!(":srv KEYS COUNT {bob_curve} 0"));
        assert_eq!(find(&otk, "KEYS OTK").len(), 5);
        let one_key = otk[0].rsplit(' ').next().unwrap_or("").split(',').next();
        let one_key = one_key.unwrap_or("").to_string();

        let out = alice.act(Action::Msg {
            target: "bob".into(),
            text: "the secret".into(),
        });
        let out = out.expect("sent");
        assert_eq!(
            out,
            ["KEYS LIST bob", "KEYS LIST alice"],
            "nothing in clear text"
        );
        let mut out = Vec::new();
        for line in [
            device_line("bob", &bob_upload),
            ":srv KEYS END bob bob".to_string(),
            device_line("alice", &alice_upload),
            ":srv KEYS END alice alice".to_string(),
        ] {
            out.extend(alice.handle_line(&line));
        }
        assert_eq!(out, [format!("KEYS CLAIM bob {bob_curve}")]);
        let out = alice.handle_line(&format!(":srv KEYS CLAIMED bob bob {bob_curve} {one_key}"));
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("@+parley.chat/e2e=v1:"), "{}", out[0]);
        assert!(out[0].ends_with("PRIVMSG bob :[encrypted message]"));
        assert!(!out[0].contains("secret"));
        let tags = out[0].split(' ').next().unwrap_or("");
        // Bob receives it; alice gets her echo.
        bob.handle_line(&format!(
            "{tags};msgid=m1 :alice!u@h PRIVMSG bob :[encrypted message]"
        ));
        alice.handle_line(&format!(
            "{tags};msgid=m1 :alice!u@h PRIVMSG bob :[encrypted message]"
        ));
        let last = |s: &State| {
            s.buffer("bob")
                .or(s.buffer("alice"))
                .and_then(|b| b.lines.back().cloned())
        };
        let bob_line = bob.buffer("alice").and_then(|b| b.lines.back().cloned());
        assert_eq!(bob_line.map(|l| l.text), Some("the secret".to_string()));
        assert_eq!(last(&alice).map(|l| l.text), Some("the secret".to_string()));
        // A replay under another msgid does not decrypt again; history of m1 reads the store.
        bob.handle_line(&format!(
            "{tags};msgid=m2 :alice!u@h PRIVMSG bob :[encrypted message]"
        ));
        let replay = bob.buffer("alice").and_then(|b| b.lines.back().cloned());
        assert!(replay.is_some_and(|l| l.text.starts_with("[encrypted message: cannot decrypt")));
        // A malformed tag is a clear line, not a panic.
        bob.handle_line("@+parley.chat/e2e=v1:x :alice!u@h PRIVMSG bob :[encrypted message]");
        let bad = bob.buffer("alice").and_then(|b| b.lines.back().cloned());
        assert!(bad.is_some_and(|l| l.text.starts_with("[encrypted message: unreadable")));
        // Bob's keys change: alice is warned in the conversation.
        let other = tmp.path().join("b2");
        let (_, new_out) = login("bob", &other);
        let new_upload = find(&new_out, "KEYS UPLOAD")[0].to_string();
        alice
            .act(Action::Verify {
                nick: "bob".into(),
                confirm: false,
            })
            .expect("asked");
        for line in [
            device_line("bob", &new_upload),
            ":srv KEYS END bob bob".to_string(),
            device_line("alice", &alice_upload),
            ":srv KEYS END alice alice".to_string(),
        ] {
            alice.handle_line(&line);
        }
        let texts: Vec<String> = alice
            .buffer("bob")
            .map(|b| b.lines.iter().map(|l| l.text.clone()).collect())
            .unwrap_or_default();
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("*** WARNING: bob's keys changed")),
            "{texts:?}"
        );
        assert!(texts
            .iter()
            .any(|t| t.starts_with("safety number with bob: ")));
        assert!(!alice.e2e_status("bob").verified);
        assert!(alice.e2e_status("bob").encrypted);
        // Confirming the number just compared marks bob verified.
        alice
            .act(Action::Verify {
                nick: "bob".into(),
                confirm: true,
            })
            .expect("asked");
        for line in [
            device_line("bob", &new_upload),
            ":srv KEYS END bob bob".to_string(),
            device_line("alice", &alice_upload),
            ":srv KEYS END alice alice".to_string(),
        ] {
            alice.handle_line(&line);
        }
        assert!(alice.e2e_status("bob").verified);
        // Keys changed between the comparison and the confirm: refused, and the change warns.
        let (_, third_out) = login("bob", &tmp.path().join("b3"));
        let third_upload = find(&third_out, "KEYS UPLOAD")[0].to_string();
        alice
            .act(Action::Verify {
                nick: "bob".into(),
                confirm: true,
            })
            .expect("asked");
        for line in [
            device_line("bob", &third_upload),
            ":srv KEYS END bob bob".to_string(),
            device_line("alice", &alice_upload),
            ":srv KEYS END alice alice".to_string(),
        ] {
            alice.handle_line(&line);
        }
        assert!(!alice.e2e_status("bob").verified);
        let last = alice.buffer("bob").and_then(|b| b.lines.back().cloned());
        assert!(last.is_some_and(|l| l.text.starts_with("not verified: bob's safety number")));
    }

    #[test]
    fn a_peer_whose_keys_vanish_gets_nothing_in_clear_text() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let (mut alice, alice_out) = login("alice", &tmp.path().join("a"));
        let (_bob, bob_out) = login("bob", &tmp.path().join("b"));
        let alice_upload = find(&alice_out, "KEYS UPLOAD")[0].to_string();
        let bob_upload = find(&bob_out, "KEYS UPLOAD")[0].to_string();
        alice
            .act(Action::Verify {
                nick: "bob".into(),
                confirm: false,
            })
            .expect("asked");
        for line in [
            device_line("bob", &bob_upload),
            ":srv KEYS END bob bob".to_string(),
            device_line("alice", &alice_upload),
            ":srv KEYS END alice alice".to_string(),
        ] {
            alice.handle_line(&line);
        }
        // The server now says bob has no devices.
        alice
            .act(Action::Verify {
                nick: "bob".into(),
                confirm: false,
            })
            .expect("asked");
        alice.handle_line(":srv KEYS END bob bob");
        alice.handle_line(&device_line("alice", &alice_upload));
        alice.handle_line(":srv KEYS END alice alice");
        let out = alice.act(Action::Msg {
            target: "bob".into(),
            text: "psst".into(),
        });
        assert_eq!(out, Ok(Vec::new()), "nothing sent");
        let texts: Vec<String> = alice
            .buffer("bob")
            .map(|b| b.lines.iter().map(|l| l.text.clone()).collect())
            .unwrap_or_default();
        assert!(
            texts.iter().any(|t| t.contains("1 device(s) removed")),
            "{texts:?}"
        );
        assert!(texts
            .iter()
            .any(|t| t.starts_with("not sent: bob had E2E keys")));
        // Turned off by the user: clear text.
        alice.set_active_by_name("bob");
        alice.act(Action::E2e(Some(false))).expect("local");
        let out = alice.act(Action::Msg {
            target: "bob".into(),
            text: "psst".into(),
        });
        assert_eq!(out, Ok(vec!["PRIVMSG bob :psst".to_string()]));
    }

    #[test]
    fn text_is_split_to_fit_the_json_budget() {
        let pieces = split_for_json(&"ab\"".repeat(100), 100);
        assert!(pieces.len() > 1);
        assert!(pieces
            .iter()
            .all(|p| serde_json::to_string(p).map_or(0, |j| j.len()) <= 100));
        assert_eq!(pieces.concat(), "ab\"".repeat(100));
        assert_eq!(split_for_json("é", 1), ["é"]);
    }
}
