//! End-to-end encrypted private messages (issue 28): Olm (vodozemac) between the devices of two
//! accounts, over the server's key directory (`KEYS`, cap `parley.chat/e2e`). This module holds
//! the pieces that know nothing of IRC state: [`device`] (this install's keys, a 0600 file),
//! [`store`] (sessions, decrypted messages, trust, a 0600 SQLite file), [`olm`] (encrypt and
//! decrypt one entry), [`wire`] (the tag's format) and [`trust`] (safety numbers, key changes).
//! The protocol flow (KEYS lines, pending sends, what a buffer shows) is `state/e2e.rs`.

pub mod device;
pub mod megolm;
pub mod olm;
pub mod store;
pub mod trust;
pub mod wire;

use std::path::{Path, PathBuf};

use device::Device;
use store::Store;

/// Why E2E could not do something; shown to the user as is.
#[derive(thiserror::Error, Debug)]
pub enum E2eError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is damaged ({1}); move it away to start a new device")]
    Corrupt(PathBuf, String),
    #[error("the E2E store {0} failed: {1}")]
    Store(PathBuf, String),
    #[error("{0}")]
    Crypto(&'static str),
    #[error("no session with that device")]
    NoSession,
}

impl E2eError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> E2eError {
        E2eError::Io(path.to_path_buf(), error)
    }
}

/// This device for one logged-in account: its keys and its store.
pub struct E2e {
    pub device: Device,
    pub store: Store,
    /// The account, casefolded, as signed in `KEYS UPLOAD`.
    pub account: String,
}

impl E2e {
    /// Opens (or makes) the device and store of `account` under `dir` (one dir per server).
    pub fn open(dir: &Path, account: &str) -> Result<(E2e, bool), E2eError> {
        let (device, new) = Device::open(dir, account)?;
        let store_path = dir.join(format!("{}.sqlite", device::safe_name(account)));
        if new && store_path.exists() {
            // A new device cannot read what the old one's sessions hold: start clean.
            std::fs::remove_file(&store_path).map_err(|e| E2eError::io(&store_path, e))?;
        }
        let store = Store::open(&store_path)?;
        Ok((
            E2e {
                device,
                store,
                account: account.to_string(),
            },
            new,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::wire::{Payload, Plaintext};
    use super::*;

    fn pair() -> Result<(tempfile::TempDir, E2e, E2e), E2eError> {
        let tmp = tempfile::tempdir().map_err(|e| E2eError::io(Path::new("tmp"), e))?;
        let (alice, _) = E2e::open(&tmp.path().join("a"), "alice")?;
        let (bob, _) = E2e::open(&tmp.path().join("b"), "bob")?;
        Ok((tmp, alice, bob))
    }

    /// `from` claims one of `to`'s one-time keys, as `KEYS CLAIM` would hand it out.
    fn claim(from: &E2e, to: &mut E2e) -> Result<(), E2eError> {
        let key = to
            .device
            .top_up(0)
            .into_iter()
            .next()
            .ok_or(E2eError::NoSession)?;
        olm::start_session(&from.device, &from.store, &to.device.curve(), &key)
    }

    fn send(from: &E2e, to: &E2e, text: &str) -> Result<String, E2eError> {
        let json = Plaintext {
            text: text.into(),
            action: false,
        }
        .to_json();
        let entry = olm::encrypt(&from.store, &to.device.curve(), &json)?;
        Ok(Payload {
            sender: from.device.curve(),
            entries: vec![entry],
        }
        .to_value())
    }

    fn receive(to: &mut E2e, value: &str) -> Result<String, E2eError> {
        let payload = wire::parse(value).map_err(|_| E2eError::Crypto("wire"))?;
        let entry = payload
            .entry_for(&to.device.curve())
            .ok_or(E2eError::NoSession)?
            .clone();
        let out = olm::decrypt(&mut to.device, &to.store, &payload.sender, &entry)?;
        Plaintext::from_json(&out.plaintext)
            .map(|p| p.text)
            .ok_or(E2eError::Crypto("json"))
    }

    #[test]
    fn two_devices_talk_both_ways_and_survive_a_lost_pre_key_message() -> Result<(), E2eError> {
        let (_tmp, mut alice, mut bob) = pair()?;
        claim(&alice, &mut bob)?;
        let lost = send(&alice, &bob, "lost")?;
        assert!(
            lost.contains(":0:"),
            "the first message is a pre-key message"
        );
        let second = send(&alice, &bob, "hello bob")?;
        assert_eq!(receive(&mut bob, &second)?, "hello bob");
        // Replayed: the ratchet refuses it.
        assert!(receive(&mut bob, &second).is_err());
        let answer = send(&bob, &alice, "hello alice")?;
        assert!(
            answer.contains(":1:"),
            "bob answers in the session alice started"
        );
        assert_eq!(receive(&mut alice, &answer)?, "hello alice");
        let third = send(&alice, &bob, "third")?;
        assert!(
            third.contains(":1:"),
            "alice heard back: normal messages now"
        );
        assert_eq!(receive(&mut bob, &third)?, "third");
        // The lost one arrives late: still readable, once.
        assert_eq!(receive(&mut bob, &lost)?, "lost");
        // Sessions and keys survive a restart.
        let dir = alice.device.path().parent().map(Path::to_path_buf);
        drop(alice);
        let (mut alice, new) = E2e::open(&dir.ok_or(E2eError::NoSession)?, "alice")?;
        assert!(!new);
        let later = send(&bob, &alice, "after restart")?;
        assert_eq!(receive(&mut alice, &later)?, "after restart");
        Ok(())
    }

    #[test]
    fn a_third_device_cannot_read_and_garbage_is_refused() -> Result<(), E2eError> {
        let (tmp, alice, mut bob) = pair()?;
        let (mut eve, _) = E2e::open(&tmp.path().join("e"), "eve")?;
        claim(&alice, &mut bob)?;
        let value = send(&alice, &bob, "secret")?;
        assert!(receive(&mut eve, &value).is_err(), "no entry for eve");
        // Eve takes bob's entry as if it were hers.
        let payload = wire::parse(&value).map_err(|_| E2eError::Crypto("wire"))?;
        let stolen = payload.entries[0].clone();
        assert!(olm::decrypt(&mut eve.device, &eve.store, &payload.sender, &stolen).is_err());
        // Damaged ciphertexts of both types.
        for kind in [wire::Kind::PreKey, wire::Kind::Normal] {
            let bad = wire::Entry {
                recipient: bob.device.curve(),
                kind,
                ciphertext: "AAAA".repeat(40),
            };
            assert!(olm::decrypt(&mut bob.device, &bob.store, &payload.sender, &bad).is_err());
        }
        // The real message still decrypts after the failures.
        assert_eq!(receive(&mut bob, &value)?, "secret");
        Ok(())
    }
}
