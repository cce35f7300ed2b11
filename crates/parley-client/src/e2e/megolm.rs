//! End-to-end encrypted channels (issue 28, item 4): Megolm (vodozemac) group sessions. The
//! sender's outbound session lives in memory only (a restart starts a new one); its session
//! key goes to every device of every member over Olm (the `+parley.chat/e2e-room` tag, whose
//! plaintext is a [`RoomKey`]); inbound sessions are kept in the [`Store`] by sender device and
//! session id, bound to the room they were shared for, so a key shared for one channel never
//! reads another's messages. Everything parsed here comes from the network: bounded, no panic.
//! The protocol is docs/e2e-groups.md; the IRC flow is `state/e2e/group.rs`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use vodozemac::megolm::{
    DecryptionError, GroupSession, InboundGroupSession, InboundGroupSessionPickle, MegolmMessage,
    SessionConfig, SessionKey,
};

use super::store::Store;
use super::wire::{is_key, MAX_PLAINTEXT, MAX_TAG_SECTION};
use super::E2eError;

/// The tag on the `TAGMSG <nick>` that shares a room key (an Olm payload as in DMs).
pub const ROOM_TAG: &str = "+parley.chat/e2e-room";
/// The tag on a channel PRIVMSG that carries the Megolm ciphertext.
pub const GROUP_TAG: &str = "+parley.chat/e2e-group";
/// An outbound session encrypts at most this many messages, then a new one is shared.
pub const ROTATE_AFTER: u32 = 100;
/// Longest channel name a room key may name.
const MAX_ROOM: usize = 200;
/// Longest session key accepted (vodozemac's is 306 base64 characters).
const MAX_SESSION_KEY: usize = 1024;

/// The JSON inside the Olm message of a room key share.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RoomKey {
    pub room: String,
    pub session_id: String,
    pub session_key: String,
}

impl RoomKey {
    pub fn to_json(&self) -> String {
        // A struct of three strings always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a decrypted room key; bounded, and shaped as the protocol says or `None`.
    pub fn from_json(bytes: &[u8]) -> Option<RoomKey> {
        if bytes.len() > MAX_PLAINTEXT {
            return None;
        }
        let key: RoomKey = serde_json::from_slice(bytes).ok()?;
        let room_ok = !key.room.is_empty()
            && key.room.len() <= MAX_ROOM
            && key.room.starts_with(['#', '&'])
            && !key.room.contains([' ', ',', '\x07', '\r', '\n', '\0']);
        let key_ok = !key.session_key.is_empty()
            && key.session_key.len() <= MAX_SESSION_KEY
            && key.session_key.bytes().all(is_base64_byte);
        (room_ok && is_key(&key.session_id) && key_ok).then_some(key)
    }
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// A parsed `v1:<sender-curve>:<session_id>:<ciphertext>` group tag value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPayload {
    pub sender: String,
    pub session_id: String,
    pub ciphertext: String,
}

impl GroupPayload {
    pub fn parse(value: &str) -> Option<GroupPayload> {
        if value.len() > MAX_TAG_SECTION {
            return None;
        }
        let mut parts = value.strip_prefix("v1:")?.splitn(3, ':');
        let (sender, session_id, ciphertext) = (parts.next()?, parts.next()?, parts.next()?);
        let ok = is_key(sender)
            && is_key(session_id)
            && !ciphertext.is_empty()
            && ciphertext.bytes().all(is_base64_byte);
        ok.then(|| GroupPayload {
            sender: sender.to_string(),
            session_id: session_id.to_string(),
            ciphertext: ciphertext.to_string(),
        })
    }

    pub fn to_value(&self) -> String {
        format!("v1:{}:{}:{}", self.sender, self.session_id, self.ciphertext)
    }
}

/// This device's outbound session for one channel, and who it was shared with.
pub struct Outbound {
    session: GroupSession,
    /// Messages encrypted with it.
    pub sent: u32,
    /// Casefolded member nicks when it was made.
    pub members: BTreeSet<String>,
    /// Device keys it was shared with.
    pub devices: BTreeSet<String>,
}

impl Outbound {
    /// A new session; this device imports it too, so its own echo and history read back.
    pub fn new(
        store: &Store,
        room: &str,
        own_curve: &str,
        members: BTreeSet<String>,
        devices: BTreeSet<String>,
    ) -> Result<Outbound, E2eError> {
        let session = GroupSession::new(SessionConfig::version_1());
        let outbound = Outbound {
            session,
            sent: 0,
            members,
            devices,
        };
        import(store, room, own_curve, &outbound.room_key(room))?;
        Ok(outbound)
    }

    pub fn room_key(&self, room: &str) -> RoomKey {
        RoomKey {
            room: room.to_string(),
            session_id: self.session.session_id(),
            session_key: self.session.session_key().to_base64(),
        }
    }

    /// Encrypts one message's JSON.
    pub fn encrypt(&mut self, own_curve: &str, plaintext: &str) -> GroupPayload {
        self.sent = self.sent.saturating_add(1);
        GroupPayload {
            sender: own_curve.to_string(),
            session_id: self.session.session_id(),
            ciphertext: self.session.encrypt(plaintext).to_base64(),
        }
    }
}

/// Stores the inbound session a room key gives, received (Olm-authenticated) from `sender`.
pub fn import(store: &Store, room: &str, sender: &str, key: &RoomKey) -> Result<(), E2eError> {
    let session_key = SessionKey::from_base64(&key.session_key)
        .map_err(|_| E2eError::Crypto("the room key is not a Megolm session key"))?;
    let session = InboundGroupSession::new(&session_key, SessionConfig::version_1());
    if session.session_id() != key.session_id {
        return Err(E2eError::Crypto(
            "the room key does not match its session id",
        ));
    }
    let pickle = serde_json::to_string(&session.pickle())
        .map_err(|_| E2eError::Crypto("a session cannot be saved"))?;
    store.save_group_session(sender, &key.session_id, room, &pickle)
}

/// Why a group message could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum GroupError {
    /// No room key for this session on this device (shared before we joined, or not with us).
    NoKey,
    /// The session was shared for another channel.
    WrongRoom,
    /// Damaged, forged or not Megolm.
    Invalid,
}

/// What a group message decrypted to.
pub struct GroupDecrypted {
    pub plaintext: Vec<u8>,
    pub message_index: u32,
}

/// Decrypts a group message sent in `room` (casefolded).
pub fn decrypt(
    store: &Store,
    room: &str,
    payload: &GroupPayload,
) -> Result<GroupDecrypted, GroupError> {
    let Ok(Some((session_room, pickle))) =
        store.group_session(&payload.sender, &payload.session_id)
    else {
        return Err(GroupError::NoKey);
    };
    if session_room != room {
        return Err(GroupError::WrongRoom);
    }
    let pickle: InboundGroupSessionPickle =
        serde_json::from_str(&pickle).map_err(|_| GroupError::Invalid)?;
    let mut session = InboundGroupSession::from_pickle(pickle);
    let message =
        MegolmMessage::from_base64(&payload.ciphertext).map_err(|_| GroupError::Invalid)?;
    match session.decrypt(&message) {
        Ok(out) => Ok(GroupDecrypted {
            plaintext: out.plaintext,
            message_index: out.message_index,
        }),
        Err(DecryptionError::UnknownMessageIndex(..)) => Err(GroupError::NoKey),
        Err(_) => Err(GroupError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn stores(tmp: &Path) -> Result<Vec<Store>, E2eError> {
        ["a", "b", "c"]
            .iter()
            .map(|n| Store::open(&tmp.join(format!("{n}.sqlite"))))
            .collect()
    }

    const ALICE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    fn text(out: Result<GroupDecrypted, GroupError>) -> Result<String, GroupError> {
        out.map(|d| String::from_utf8_lossy(&d.plaintext).into_owned())
    }

    #[test]
    fn a_shared_session_reads_and_a_rotated_one_leaves_the_leaver_out() -> Result<(), E2eError> {
        let tmp = tempfile::tempdir().map_err(|e| E2eError::io(Path::new("tmp"), e))?;
        let s = stores(tmp.path())?;
        let mut first = Outbound::new(&s[0], "#chan", ALICE, BTreeSet::new(), BTreeSet::new())?;
        let key = first.room_key("#chan");
        import(&s[1], "#chan", ALICE, &key)?;
        import(&s[2], "#chan", ALICE, &key)?;
        let message = first.encrypt(ALICE, "hello all");
        for store in &s {
            assert_eq!(
                text(decrypt(store, "#chan", &message)),
                Ok("hello all".into())
            );
        }
        // Carol left: a new session, shared with bob only.
        let mut second = Outbound::new(&s[0], "#chan", ALICE, BTreeSet::new(), BTreeSet::new())?;
        assert_ne!(second.room_key("#chan").session_id, key.session_id);
        import(&s[1], "#chan", ALICE, &second.room_key("#chan"))?;
        let after = second.encrypt(ALICE, "carol is gone");
        assert_eq!(
            text(decrypt(&s[1], "#chan", &after)),
            Ok("carol is gone".into())
        );
        assert_eq!(
            text(decrypt(&s[2], "#chan", &after)),
            Err(GroupError::NoKey)
        );
        // A key shared for #chan does not read a message claimed to be in #other.
        assert_eq!(
            text(decrypt(&s[1], "#other", &after)),
            Err(GroupError::WrongRoom)
        );
        Ok(())
    }

    #[test]
    fn bad_input_is_refused_without_panic() -> Result<(), E2eError> {
        let tmp = tempfile::tempdir().map_err(|e| E2eError::io(Path::new("tmp"), e))?;
        let s = stores(tmp.path())?;
        let mut out = Outbound::new(&s[0], "#chan", ALICE, BTreeSet::new(), BTreeSet::new())?;
        let good = out.encrypt(ALICE, "x").to_value();
        assert!(GroupPayload::parse(&good).is_some());
        for cut in 0..good.len() {
            if let Some(p) = GroupPayload::parse(&good[..cut]) {
                assert!(decrypt(&s[0], "#chan", &p).is_err());
            }
            let mut bytes = good.clone().into_bytes();
            bytes[cut] = if bytes[cut] == b'A' { b'B' } else { b'A' };
            if let Some(p) = GroupPayload::parse(&String::from_utf8_lossy(&bytes)) {
                assert!(decrypt(&s[0], "#chan", &p).is_err(), "mutated at {cut}");
            }
        }
        for bad in [
            "",
            "v1:",
            "v2:a:b:c",
            &format!("v1:{ALICE}:{ALICE}:"),
            "v1:x:y:z",
        ] {
            assert_eq!(GroupPayload::parse(bad), None, "{bad:?}");
        }
        let key = out.room_key("#chan");
        assert!(RoomKey::from_json(key.to_json().as_bytes()).is_some());
        for room in ["", "chan", "#a b", "#a,b"] {
            let bad = RoomKey {
                room: room.into(),
                ..key.clone()
            };
            assert!(
                RoomKey::from_json(bad.to_json().as_bytes()).is_none(),
                "{room:?}"
            );
        }
        assert!(RoomKey::from_json(b"[1,2]").is_none());
        // A session key that is not one, or does not match its id, is refused.
        let wrong_id = RoomKey {
            session_id: ALICE.into(),
            ..key.clone()
        };
        assert!(import(&s[1], "#chan", ALICE, &wrong_id).is_err());
        let garbage = RoomKey {
            session_key: "AAAA".into(),
            ..key
        };
        assert!(import(&s[1], "#chan", ALICE, &garbage).is_err());
        Ok(())
    }
}
