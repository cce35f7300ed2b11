//! End-to-end encrypted channels, the protocol side (docs/e2e-groups.md). `/e2e on` in a channel
//! lists every member's devices and refuses, naming them, when a member has no keys. A message
//! there waits (in the DM queue) for the lists and Olm sessions, then: a new Megolm session when
//! there is none, someone joined, left, was kicked or quit, the devices changed, or 100 messages
//! went out; its key goes to each member's devices as `TAGMSG <nick>` with the room key tag
//! (packed per nick, split when the tag would be too long); the text goes as a PRIVMSG with the
//! group tag and the placeholder body. A room key is accepted only from a member of the channel
//! whose listed devices hold the sending key (checked again once the list comes).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use parley_proto::{casefold, Message};

use crate::e2e::megolm::{self, GroupError, GroupPayload, Outbound, RoomKey, GROUP_TAG, ROOM_TAG};
use crate::e2e::olm;
use crate::e2e::wire::{self, Payload, Plaintext, PLACEHOLDER};

use super::super::{irc_line, irc_tagged, BufferKind, LineKind, State};
use super::{split_for_json, PendingSend, ENTRY_BUDGET};

/// Room keys accepted before the sender's device list came, waiting for that check.
const MAX_CHECKS: usize = 64;
/// Longest JSON in one group message (Megolm adds ~100 bytes, base64 a third).
const MAX_GROUP_JSON: usize = 2000;

/// The group part of the E2E state (reset with it on every login).
#[derive(Default)]
pub(in crate::state) struct GroupState {
    /// Outbound sessions by casefolded channel.
    outbound: HashMap<String, Outbound>,
    /// Channels where membership changed since the session was made.
    dirty: HashSet<String>,
    /// `/e2e on` typed, waiting for the members' device lists (channel names as typed).
    enabling: Vec<String>,
    /// Room keys accepted from a sender not yet listed: nick, sender device, session id.
    checks: VecDeque<(String, String, String)>,
}

/// What a waiting channel message needs next.
pub(super) enum GroupStep {
    /// Lists or claims were asked: wait for them.
    Wait,
    /// Sent or refused (with a line saying why).
    Done,
}

impl State {
    fn group_note(&mut self, room: &str, kind: LineKind, text: String) {
        let index = self.buffer_index(room, BufferKind::Channel);
        let line = self.own_line(LineKind::Info, text);
        self.push(index, super::super::Line { kind, ..line });
    }

    /// The nicks in a channel as the client knows them.
    fn group_members(&self, room: &str) -> Vec<String> {
        self.find(room)
            .map(|i| {
                self.buffers[i]
                    .members
                    .values()
                    .map(|m| m.nick.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Lists the members not listed yet; whether all are listed (and none is being listed).
    fn group_list_members(&mut self, room: &str, out: &mut Vec<String>) -> bool {
        let mut ready = true;
        for nick in self.group_members(room) {
            let key = casefold(&nick);
            if self.e2e.listing.contains_key(&key) {
                ready = false;
            } else if !self.e2e.lists.contains_key(&key) {
                self.e2e_list(&nick, out);
                ready = false;
            }
        }
        ready
    }

    /// Members whose accounts list no device.
    fn group_without_keys(&self, room: &str) -> Vec<String> {
        self.group_members(room)
            .into_iter()
            .filter(|nick| {
                self.e2e
                    .lists
                    .get(&casefold(nick))
                    .is_none_or(|l| l.devices.is_empty())
            })
            .collect()
    }

    /// Whether channel messages to `room` are encrypted here (`/e2e on` was typed).
    pub fn group_e2e_on(&self, room: &str) -> bool {
        self.e2e
            .open
            .as_ref()
            .is_some_and(|e| e.store.group_on(&casefold(room)).unwrap_or(false))
    }

    /// Queues a channel message when E2E is on there; false to send it in clear text.
    pub(super) fn group_intercept(
        &mut self,
        target: &str,
        text: &str,
        action: bool,
        reply_to: Option<&str>,
        out: &mut Vec<String>,
    ) -> bool {
        if !self.group_e2e_on(target) {
            return false;
        }
        if self.e2e.pending.len() >= super::MAX_PENDING {
            let text = "not sent: too many messages wait for keys".to_string();
            self.group_note(target, LineKind::Error, text);
            return true;
        }
        self.e2e.pending.push_back(PendingSend {
            target: target.to_string(),
            text: text.to_string(),
            action,
            reply_to: reply_to.map(str::to_string),
        });
        self.typing_sent(target);
        self.e2e_progress(out);
        true
    }

    /// Moves a waiting channel message on (called with no list or claim outstanding).
    pub(super) fn group_step(&mut self, send: &PendingSend, out: &mut Vec<String>) -> GroupStep {
        let room = send.target.clone();
        if !self.group_list_members(&room, out) {
            return GroupStep::Wait;
        }
        let missing = self.group_without_keys(&room);
        if !missing.is_empty() {
            let text = format!(
                "not sent: {} in {room} have no E2E keys; /e2e off sends in clear text",
                missing.join(", ")
            );
            self.group_note(&room, LineKind::Error, text);
            return GroupStep::Done;
        }
        let Some(e2e) = self.e2e.open.as_ref() else {
            return GroupStep::Done;
        };
        let me = e2e.device.curve();
        let mut recipients: Vec<(String, String)> = Vec::new();
        for nick in self.group_members(&room) {
            if let Some(list) = self.e2e.lists.get(&casefold(&nick)) {
                for device in &list.devices {
                    let fresh = !recipients.iter().any(|(_, c)| *c == device.curve);
                    if fresh && device.curve != me && !self.e2e.unreachable.contains(&device.curve)
                    {
                        recipients.push((nick.clone(), device.curve.clone()));
                    }
                }
            }
        }
        let missing: Vec<(String, String)> = recipients
            .iter()
            .filter(|(_, curve)| !e2e.store.has_session(curve).unwrap_or(false))
            .cloned()
            .collect();
        if !missing.is_empty() {
            for (nick, curve) in missing {
                self.e2e.claiming.insert(curve.clone());
                out.push(irc_line("KEYS", &["CLAIM", &nick, &curve], None));
            }
            return GroupStep::Wait;
        }
        self.group_send(send, recipients, out);
        GroupStep::Done
    }

    /// A new outbound session when the old one may not be used any more, shared over Olm.
    fn group_session(
        &mut self,
        room: &str,
        recipients: &[(String, String)],
        out: &mut Vec<String>,
    ) -> Result<(), String> {
        let key = casefold(room);
        let members: BTreeSet<String> = self
            .group_members(room)
            .iter()
            .map(|n| casefold(n))
            .collect();
        let devices: BTreeSet<String> = recipients.iter().map(|(_, c)| c.clone()).collect();
        let current = self.e2e.group.outbound.get(&key).is_some_and(|o| {
            o.sent < megolm::ROTATE_AFTER && o.members == members && o.devices == devices
        });
        if current && !self.e2e.group.dirty.contains(&key) {
            return Ok(());
        }
        let e2e = self.e2e.open.as_ref().ok_or("E2E is off")?;
        let me = e2e.device.curve();
        let outbound =
            Outbound::new(&e2e.store, &key, &me, members, devices).map_err(|e| e.to_string())?;
        let json = outbound.room_key(&key).to_json();
        // One TAGMSG per nick, split when the entries would not fit one tag.
        let mut by_nick: Vec<(String, Vec<wire::Entry>)> = Vec::new();
        for (nick, curve) in recipients {
            let entry = olm::encrypt(&e2e.store, curve, &json).map_err(|e| e.to_string())?;
            match by_nick.last_mut() {
                Some((n, entries)) if n == nick => entries.push(entry),
                _ => by_nick.push((nick.clone(), vec![entry])),
            }
        }
        for (nick, entries) in by_nick {
            let mut batch: Vec<wire::Entry> = Vec::new();
            let mut size = 0;
            for entry in entries {
                let cost = entry.recipient.len() + entry.ciphertext.len() + 4;
                if !batch.is_empty() && size + cost > ENTRY_BUDGET {
                    out.push(room_key_line(&me, &nick, std::mem::take(&mut batch)));
                    size = 0;
                }
                size += cost;
                batch.push(entry);
            }
            if !batch.is_empty() {
                out.push(room_key_line(&me, &nick, batch));
            }
        }
        self.e2e.group.dirty.remove(&key);
        self.e2e.group.outbound.insert(key, outbound);
        Ok(())
    }

    fn group_send(
        &mut self,
        send: &PendingSend,
        recipients: Vec<(String, String)>,
        out: &mut Vec<String>,
    ) {
        let room = send.target.clone();
        if let Err(error) = self.group_session(&room, &recipients, out) {
            self.group_note(&room, LineKind::Error, format!("not sent: {error}"));
            return;
        }
        let Some(me) = self.e2e_device() else {
            return;
        };
        let key = casefold(&room);
        let mut shown = Vec::new();
        for (i, piece) in split_for_json(&send.text, MAX_GROUP_JSON)
            .into_iter()
            .enumerate()
        {
            let plain = Plaintext {
                text: piece,
                action: send.action,
            };
            let Some(outbound) = self.e2e.group.outbound.get_mut(&key) else {
                return;
            };
            let value = outbound.encrypt(&me, &plain.to_json()).to_value();
            let mut tags = vec![(GROUP_TAG, value.as_str())];
            if let Some(parent) = send.reply_to.as_deref().filter(|_| i == 0) {
                tags.push(("+draft/reply", parent));
            }
            out.push(irc_tagged(&tags, "PRIVMSG", &[&room], Some(PLACEHOLDER)));
            shown.push(plain);
        }
        if !self.has_cap("echo-message") {
            let index = self.buffer_index(&room, BufferKind::Channel);
            for plain in shown {
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

    /// Room key checks and `/e2e on` answers whose device lists have come.
    pub(super) fn group_progress(&mut self) {
        let listed = |s: &State, nick: &str| {
            let key = casefold(nick);
            s.e2e.lists.contains_key(&key) && !s.e2e.listing.contains_key(&key)
        };
        for (nick, sender, session_id) in std::mem::take(&mut self.e2e.group.checks) {
            if !listed(self, &nick) {
                self.e2e.group.checks.push_back((nick, sender, session_id));
                continue;
            }
            let known = self
                .e2e
                .lists
                .get(&casefold(&nick))
                .is_some_and(|l| l.devices.iter().any(|d| d.curve == sender));
            if !known {
                if let Some(e2e) = self.e2e.open.as_ref() {
                    let _ = e2e.store.remove_group_session(&sender, &session_id);
                }
                let text = format!(
                    "E2E: dropped a room key from {nick}: it came from a device not listed for \
                     {nick}"
                );
                self.e2e_note(None, LineKind::Error, text);
            }
        }
        for room in std::mem::take(&mut self.e2e.group.enabling) {
            let members = self.group_members(&room);
            if !members.iter().all(|n| listed(self, n)) {
                self.e2e.group.enabling.push(room);
                continue;
            }
            let missing = self.group_without_keys(&room);
            let text = if !missing.is_empty() {
                format!(
                    "E2E stays off for {room}: {} have no E2E keys (every member needs a Parley \
                     client with keys)",
                    missing.join(", ")
                )
            } else {
                match self
                    .e2e
                    .open
                    .as_ref()
                    .map(|e| e.store.set_group_on(&casefold(&room), true))
                {
                    Some(Ok(())) => format!(
                        "E2E is on for {room}: messages are end-to-end encrypted for its {} \
                         members, with a new key whenever someone joins or leaves",
                        members.len()
                    ),
                    Some(Err(error)) => format!("E2E: {error}"),
                    None => continue,
                }
            };
            let kind = if missing.is_empty() {
                LineKind::Info
            } else {
                LineKind::Error
            };
            self.group_note(&room, kind, text);
        }
    }

    /// `/e2e [on|off]` in a channel.
    pub(super) fn group_toggle(&mut self, room: &str, on: Option<bool>, out: &mut Vec<String>) {
        let Some(e2e) = self.e2e.open.as_ref() else {
            return;
        };
        let key = casefold(room);
        match on {
            Some(true) => {
                // Fresh lists: who is here and which devices they have now.
                for nick in self.group_members(room) {
                    self.e2e.lists.remove(&casefold(&nick));
                }
                if !self.e2e.group.enabling.iter().any(|r| casefold(r) == key) {
                    self.e2e.group.enabling.push(room.to_string());
                }
                self.group_list_members(room, out);
                self.e2e_progress(out);
            }
            Some(false) => {
                let text = match e2e.store.set_group_on(&key, false) {
                    Ok(()) => format!("E2E is off for {room}: messages go in clear text"),
                    Err(error) => format!("E2E: {error}"),
                };
                self.e2e.group.outbound.remove(&key);
                self.add_local(LineKind::Info, text);
            }
            None => {
                let text = if self.group_e2e_on(room) {
                    format!("E2E is on for {room} (/e2e off turns it off)")
                } else {
                    format!("E2E is off for {room} (/e2e on encrypts if every member has keys)")
                };
                self.add_local(LineKind::Info, text);
            }
        }
    }

    /// JOIN, PART, KICK or QUIT: the next message in the channel(s) uses a new session.
    pub(in crate::state) fn group_membership(
        &mut self,
        command: &str,
        msg: &Message<'_>,
        from: Option<&str>,
    ) {
        match (command, msg.param(0)) {
            ("QUIT", _) => {
                let rooms: Vec<String> = self.e2e.group.outbound.keys().cloned().collect();
                self.e2e.group.dirty.extend(rooms);
            }
            (_, Some(channels)) => {
                for room in channels.split(',') {
                    self.e2e.group.dirty.insert(casefold(room));
                }
            }
            _ => {}
        }
        if command == "JOIN" {
            // The nick may belong to another account now: list it again.
            if let Some(nick) = from {
                self.e2e.lists.remove(&casefold(nick));
            }
        }
    }

    /// `TAGMSG` with a room key: decrypt it (Olm), accept it from a member of the channel.
    pub(in crate::state) fn group_room_key(&mut self, value: &str, from: &str) {
        let Some(e2e) = self.e2e.open.as_mut() else {
            return;
        };
        let Ok(payload) = wire::parse(value) else {
            return;
        };
        let me = e2e.device.curve();
        let Some(entry) = payload.entry_for(&me).cloned() else {
            return;
        };
        let decrypted = match olm::decrypt(&mut e2e.device, &e2e.store, &payload.sender, &entry) {
            Ok(decrypted) => decrypted,
            Err(error) => {
                let text = format!("E2E: a room key from {from} cannot be decrypted: {error}");
                self.e2e_note(None, LineKind::Error, text);
                return;
            }
        };
        if decrypted.used_one_time_key {
            self.outbox.push(irc_line("KEYS", &["COUNT", &me], None));
        }
        let Some(key) = RoomKey::from_json(&decrypted.plaintext) else {
            self.e2e_note(
                None,
                LineKind::Error,
                format!("E2E: a bad room key from {from}"),
            );
            return;
        };
        let member = self
            .find(&key.room)
            .is_some_and(|i| self.buffers[i].members.contains_key(&casefold(from)));
        if !member {
            let text = format!(
                "E2E: refused a room key for {} from {from}: not a member of it",
                key.room
            );
            self.e2e_note(None, LineKind::Error, text);
            return;
        }
        let listed = self.e2e.lists.get(&casefold(from)).cloned();
        if listed
            .as_ref()
            .is_some_and(|l| !l.devices.iter().any(|d| d.curve == payload.sender))
        {
            let text = format!(
                "E2E: refused a room key for {} from {from}: sent by a device not listed for \
                 {from}",
                key.room
            );
            self.e2e_note(None, LineKind::Error, text);
            return;
        }
        let Some(e2e) = self.e2e.open.as_ref() else {
            return;
        };
        if let Err(error) = megolm::import(&e2e.store, &casefold(&key.room), &payload.sender, &key)
        {
            self.e2e_note(None, LineKind::Error, format!("E2E: {error}"));
            return;
        }
        if listed.is_none() {
            // Accepted now (its messages may follow at once), checked when the list comes.
            if self.e2e.group.checks.len() >= MAX_CHECKS {
                self.e2e.group.checks.pop_front();
            }
            let check = (from.to_string(), payload.sender.clone(), key.session_id);
            self.e2e.group.checks.push_back(check);
            let mut out = Vec::new();
            self.e2e_list(from, &mut out);
            self.outbox.extend(out);
        }
    }

    /// The text of an encrypted channel message: from the store by msgid, or decrypted now.
    pub(in crate::state) fn group_incoming(
        &mut self,
        value: &str,
        room: &str,
        from: Option<&str>,
        msgid: Option<&str>,
    ) -> String {
        let Some(e2e) = self.e2e.open.as_ref() else {
            return "[encrypted message: cannot decrypt on this device]".to_string();
        };
        if let Some(msgid) = msgid {
            if let Ok(Some((text, action))) = e2e.store.group_message(&casefold(room), msgid) {
                return show(&Plaintext { text, action });
            }
        }
        let Some(payload) = GroupPayload::parse(value) else {
            return "[encrypted message: unreadable]".to_string();
        };
        let decrypted = match megolm::decrypt(&e2e.store, &casefold(room), &payload) {
            Ok(decrypted) => decrypted,
            Err(GroupError::NoKey) => {
                return "[encrypted message: no key for it on this device]".to_string()
            }
            Err(GroupError::WrongRoom) => {
                return "[encrypted message: its key belongs to another channel]".to_string()
            }
            Err(GroupError::Invalid) => {
                return "[encrypted message: cannot decrypt on this device]".to_string()
            }
        };
        let Some(plain) = Plaintext::from_json(&decrypted.plaintext) else {
            return "[encrypted message: unreadable content]".to_string();
        };
        if let Some(msgid) = msgid {
            let first = e2e.store.group_seen(
                &payload.sender,
                &payload.session_id,
                decrypted.message_index,
                msgid,
            );
            if first.is_ok_and(|first| first != msgid) {
                return "[encrypted message: a replay of an earlier message]".to_string();
            }
            let _ = e2e
                .store
                .save_group_message(&casefold(room), msgid, &plain.text, plain.action);
        }
        let mut text = show(&plain);
        if let Some(nick) = from {
            let listed = self.e2e.lists.get(&casefold(nick));
            if listed.is_some_and(|l| !l.devices.iter().any(|d| d.curve == payload.sender)) {
                text = format!("(from a device not listed for {nick}) {text}");
            }
        }
        text
    }
}

fn show(plain: &Plaintext) -> String {
    if plain.action {
        format!("\x01ACTION {}\x01", plain.text)
    } else {
        plain.text.clone()
    }
}

fn room_key_line(me: &str, nick: &str, entries: Vec<wire::Entry>) -> String {
    let value = Payload {
        sender: me.to_string(),
        entries,
    }
    .to_value();
    irc_tagged(&[(ROOM_TAG, value.as_str())], "TAGMSG", &[nick], None)
}

#[cfg(test)]
mod tests {
    use super::super::super::Auth;
    use super::*;
    use crate::input::Action;

    const CAPS: &str = "message-tags server-time echo-message parley.chat/e2e";

    struct Client {
        nick: &'static str,
        state: State,
        upload: String,
        curve: String,
        otks: Vec<String>,
    }

    fn login(nick: &'static str, dir: &std::path::Path) -> Client {
        let mut state = State::new(nick, nick);
        state.set_e2e_dir(Some(dir.to_path_buf()));
        state.on_connected(false, Auth::Guest);
        let mut out = Vec::new();
        for line in [
            format!(":srv CAP * LS :{CAPS}"),
            format!(":srv CAP {nick} ACK :{CAPS}"),
            format!(":srv 900 {nick} {nick}!u@h {nick} :You are now logged in as {nick}"),
            format!(":srv 001 {nick} :Welcome"),
        ] {
            out.extend(state.handle_line(&line));
        }
        let upload = out
            .iter()
            .find(|l| l.starts_with("KEYS UPLOAD"))
            .cloned()
            .unwrap_or_default();
        let curve = upload.split(' ').nth(2).unwrap_or("").to_string();
        let otks: Vec<String> = state
            .handle_line(&format!(":srv KEYS COUNT {curve} 0"))
            .iter()
            .filter_map(|l| l.rsplit(' ').next())
            .flat_map(|keys| keys.split(',').map(str::to_string).collect::<Vec<_>>())
            .collect();
        Client {
            nick,
            state,
            upload,
            curve,
            otks,
        }
    }

    fn device_lines(c: &Client) -> [String; 2] {
        let w: Vec<&str> = c.upload.split(' ').collect();
        [
            format!(
                ":srv KEYS DEVICE {0} {0} {1} {2} {3}",
                c.nick, w[2], w[3], w[4]
            ),
            format!(":srv KEYS END {0} {0}", c.nick),
        ]
    }

    /// Answers the KEYS LIST and CLAIM lines in `out` from the directory `all` holds.
    fn answer(c: &mut Client, all: &mut [&mut Client], mut out: Vec<String>) -> Vec<String> {
        let mut sent = Vec::new();
        for _ in 0..10 {
            let mut next = Vec::new();
            for line in out {
                let words: Vec<&str> = line.split(' ').collect();
                if line.starts_with("KEYS LIST ") {
                    let me_listed = words[2] == c.nick;
                    let lines = match all.iter().find(|o| o.nick == words[2]) {
                        Some(o) => device_lines(o),
                        None if me_listed => device_lines(c),
                        None => [String::new(), format!(":srv KEYS END {0} {0}", words[2])],
                    };
                    for l in lines.iter().filter(|l| !l.is_empty()) {
                        next.extend(c.state.handle_line(l));
                    }
                } else if line.starts_with("KEYS CLAIM ") {
                    let Some(o) = all.iter_mut().find(|o| o.nick == words[2]) else {
                        continue;
                    };
                    let key = o.otks.pop().unwrap_or_default();
                    next.extend(c.state.handle_line(&format!(
                        ":srv KEYS CLAIMED {0} {0} {1} {key}",
                        o.nick, o.curve
                    )));
                } else if !line.starts_with("KEYS ") {
                    sent.push(line);
                }
            }
            if next.is_empty() {
                break;
            }
            out = next;
        }
        sent
    }

    /// What `to` receives for a line `from` sent (tags, then source).
    fn relay(line: &str, from: &str, msgid: &str) -> String {
        let (tags, rest) = line.split_once(' ').unwrap_or(("", line));
        format!("{tags};msgid={msgid} :{from}!u@h {rest}")
    }

    fn last(c: &Client, buffer: &str) -> String {
        c.state
            .buffer(buffer)
            .and_then(|b| b.lines.back().map(|l| l.text.clone()))
            .unwrap_or_default()
    }

    fn texts(c: &Client, buffer: &str) -> Vec<String> {
        c.state
            .buffer(buffer)
            .map(|b| b.lines.iter().map(|l| l.text.clone()).collect())
            .unwrap_or_default()
    }

    fn join(c: &mut Client, names: &str) {
        c.state.handle_line(&format!(":{0}!u@h JOIN #chan", c.nick));
        c.state
            .handle_line(&format!(":srv 353 {} = #chan :{names}", c.nick));
        c.state
            .handle_line(&format!(":srv 366 {} #chan :End of /NAMES list.", c.nick));
    }

    #[test]
    fn three_devices_share_read_rotate_on_leave_and_refuse_a_forged_key() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let mut alice = login("alice", &tmp.path().join("a"));
        let mut bob = login("bob", &tmp.path().join("b"));
        let mut carol = login("carol", &tmp.path().join("c"));
        let dave = login("dave", &tmp.path().join("d"));
        for c in [&mut alice, &mut bob, &mut carol] {
            join(c, "alice bob carol");
        }
        alice.state.set_active_by_name("#chan");
        // Off by default: clear text.
        let out = alice.state.act(Action::Msg {
            target: "#chan".into(),
            text: "plain".into(),
        });
        assert_eq!(out, Ok(vec!["PRIVMSG #chan :plain".to_string()]));
        // Zed, in the channel, lists no device: refused, named.
        alice.state.handle_line(":zed!u@h JOIN #chan");
        let out = alice.state.act(Action::E2e(Some(true))).expect("asked");
        answer(&mut alice, &mut [&mut bob, &mut carol], out);
        assert!(
            last(&alice, "#chan").starts_with("E2E stays off for #chan: zed have no E2E keys"),
            "{:?}",
            texts(&alice, "#chan")
        );
        assert!(!alice.state.group_e2e_on("#chan"));
        alice.state.handle_line(":zed!u@h PART #chan");
        let out = alice.state.act(Action::E2e(Some(true))).expect("asked");
        answer(&mut alice, &mut [&mut bob, &mut carol], out);
        assert!(
            alice.state.group_e2e_on("#chan"),
            "{:?}",
            texts(&alice, "#chan")
        );

        // Share and decrypt.
        let out = alice.state.act(Action::Msg {
            target: "#chan".into(),
            text: "hello group".into(),
        });
        let sent = answer(
            &mut alice,
            &mut [&mut bob, &mut carol],
            out.expect("queued"),
        );
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(
            sent[0].starts_with("@+parley.chat/e2e-room=v1:") && sent[0].ends_with("TAGMSG bob")
        );
        assert!(sent[1].ends_with("TAGMSG carol"));
        assert!(sent[2].starts_with("@+parley.chat/e2e-group=v1:"));
        assert!(sent[2].ends_with("PRIVMSG #chan :[encrypted message]"));
        assert!(sent.iter().all(|l| !l.contains("hello")));
        for (c, key) in [(&mut bob, &sent[0]), (&mut carol, &sent[1])] {
            c.state.handle_line(&relay(key, "alice", "k1"));
            c.state.handle_line(&relay(&sent[2], "alice", "m1"));
            assert_eq!(last(c, "#chan"), "hello group", "{:?}", texts(c, "#chan"));
        }
        alice.state.handle_line(&relay(&sent[2], "alice", "m1"));
        assert_eq!(last(&alice, "#chan"), "hello group", "own echo reads back");
        // A replay under another msgid is said to be one.
        bob.state.handle_line(&relay(&sent[2], "alice", "m1-again"));
        assert!(last(&bob, "#chan").contains("replay"));
        // The same msgid again (scrollback) reads from the local store.
        bob.state.handle_line(&relay(&sent[2], "alice", "m1"));
        assert_eq!(last(&bob, "#chan"), "hello group");
        let second = alice.state.act(Action::Msg {
            target: "#chan".into(),
            text: "still the same key".into(),
        });
        let second = answer(&mut alice, &mut [&mut bob, &mut carol], second.expect("q"));
        assert_eq!(second.len(), 1, "no rotation without a change: {second:?}");

        // Carol leaves: the next message uses a new key, shared with bob only.
        for c in [&mut alice, &mut bob] {
            c.state.handle_line(":carol!u@h PART #chan :bye");
        }
        let out = alice.state.act(Action::Msg {
            target: "#chan".into(),
            text: "carol cannot read this".into(),
        });
        let sent = answer(
            &mut alice,
            &mut [&mut bob, &mut carol],
            out.expect("queued"),
        );
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[0].ends_with("TAGMSG bob"));
        bob.state.handle_line(&relay(&sent[0], "alice", "k2"));
        bob.state.handle_line(&relay(&sent[1], "alice", "m3"));
        assert_eq!(last(&bob, "#chan"), "carol cannot read this");
        carol.state.handle_line(&relay(&sent[1], "alice", "m3"));
        assert_eq!(
            last(&carol, "#chan"),
            "[encrypted message: no key for it on this device]"
        );

        // Dave (not a member) shares a key for #chan with bob: refused, his message unreadable.
        let key = bob.otks.pop().unwrap_or_default();
        {
            let e2e = dave.state.e2e.open.as_ref().expect("dave's device");
            olm::start_session(&e2e.device, &e2e.store, &bob.curve, &key).expect("session");
            let mut forged = Outbound::new(
                &e2e.store,
                "#chan",
                &dave.curve,
                BTreeSet::new(),
                BTreeSet::new(),
            )
            .expect("session");
            let json = forged.room_key("#chan").to_json();
            let entry = olm::encrypt(&e2e.store, &bob.curve, &json).expect("olm");
            let tag = room_key_line(&dave.curve, "bob", vec![entry]);
            bob.state.handle_line(&relay(&tag, "dave", "k3"));
            let value = forged
                .encrypt(&dave.curve, r#"{"text":"forged"}"#)
                .to_value();
            bob.state.handle_line(&format!(
                "@{GROUP_TAG}={value};msgid=m4 :dave!u@h PRIVMSG #chan :[encrypted message]"
            ));
        }
        let server: Vec<String> = bob
            .state
            .buffers()
            .first()
            .map(|b| b.lines.iter().map(|l| l.text.clone()).collect())
            .unwrap_or_default();
        assert!(
            server
                .iter()
                .any(|t| t.starts_with("E2E: refused a room key for #chan from dave")),
            "{server:?}"
        );
        assert_eq!(
            last(&bob, "#chan"),
            "[encrypted message: no key for it on this device]"
        );

        // Bad input: clear lines, no panic.
        for bad in [
            format!("@{GROUP_TAG}=v1:x :alice!u@h PRIVMSG #chan :[encrypted message]"),
            format!("@{GROUP_TAG}= :alice!u@h PRIVMSG #chan :x"),
            format!("@{ROOM_TAG}=v1:x :alice!u@h TAGMSG bob"),
            format!("@{ROOM_TAG}=garbage :alice!u@h TAGMSG #chan"),
        ] {
            bob.state.handle_line(&bad);
        }
        assert_eq!(last(&bob, "#chan"), "[encrypted message: unreadable]");
    }

    #[test]
    fn quit_join_and_kick_each_make_a_new_session_for_who_is_there() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let mut alice = login("alice", &tmp.path().join("a"));
        let mut bob = login("bob", &tmp.path().join("b"));
        let mut carol = login("carol", &tmp.path().join("c"));
        join(&mut alice, "alice bob carol");
        alice.state.set_active_by_name("#chan");
        let out = alice.state.act(Action::E2e(Some(true))).expect("asked");
        answer(&mut alice, &mut [&mut bob, &mut carol], out);
        let mut shared_with = |alice: &mut Client, event: Option<&str>| {
            if let Some(event) = event {
                alice.state.handle_line(event);
            }
            let out = alice.state.act(Action::Msg {
                target: "#chan".into(),
                text: "x".into(),
            });
            let sent = answer(alice, &mut [&mut bob, &mut carol], out.expect("queued"));
            sent.iter()
                .filter(|l| l.contains(" TAGMSG "))
                .filter_map(|l| l.rsplit(' ').next().map(str::to_string))
                .collect::<Vec<_>>()
        };
        assert_eq!(shared_with(&mut alice, None), ["bob", "carol"]);
        assert!(shared_with(&mut alice, None).is_empty());
        let quit = ":carol!u@h QUIT :gone";
        assert_eq!(shared_with(&mut alice, Some(quit)), ["bob"]);
        let back = ":carol!u@h JOIN #chan";
        assert_eq!(shared_with(&mut alice, Some(back)), ["bob", "carol"]);
        let kick = ":bob!u@h KICK #chan carol :out";
        assert_eq!(shared_with(&mut alice, Some(kick)), ["bob"]);
    }

    #[test]
    fn a_new_session_every_hundred_messages() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let mut alice = login("alice", &tmp.path().join("a"));
        let mut bob = login("bob", &tmp.path().join("b"));
        for c in [&mut alice, &mut bob] {
            join(c, "alice bob");
        }
        alice.state.set_active_by_name("#chan");
        let out = alice.state.act(Action::E2e(Some(true))).expect("asked");
        answer(&mut alice, &mut [&mut bob], out);
        let mut shares = Vec::new();
        for i in 0..=megolm::ROTATE_AFTER {
            let out = alice.state.act(Action::Msg {
                target: "#chan".into(),
                text: format!("m{i}"),
            });
            let sent = answer(&mut alice, &mut [&mut bob], out.expect("queued"));
            if sent.iter().any(|l| l.contains("TAGMSG bob")) {
                shares.push(i);
            }
        }
        assert_eq!(shares, [0, megolm::ROTATE_AFTER]);
    }
}
