//! Olm between devices, on vodozemac: starting an outbound session from a claimed one-time key,
//! encrypting one entry per device, and decrypting an entry (a pre-key message starts the
//! inbound session). Sessions live pickled in the [`Store`]; every use saves the moved ratchet,
//! and a failed attempt saves nothing, so a forged or replayed message changes no state.

use vodozemac::olm::{OlmMessage, Session, SessionConfig, SessionPickle};
use vodozemac::Curve25519PublicKey;

use super::device::Device;
use super::store::Store;
use super::wire::{Entry, Kind};
use super::E2eError;

fn curve_key(key: &str) -> Result<Curve25519PublicKey, E2eError> {
    Curve25519PublicKey::from_base64(key).map_err(|_| E2eError::Crypto("a key is not valid"))
}

fn unpickle(pickle: &str) -> Result<Session, E2eError> {
    let pickle: SessionPickle = serde_json::from_str(pickle)
        .map_err(|_| E2eError::Crypto("a saved session is unreadable"))?;
    Ok(Session::from_pickle(pickle))
}

fn save(store: &Store, curve: &str, session: &Session) -> Result<(), E2eError> {
    let pickle = serde_json::to_string(&session.pickle())
        .map_err(|_| E2eError::Crypto("a session cannot be saved"))?;
    store.save_session(curve, &session.session_id(), &pickle)
}

/// Starts a session with a device from the one-time (or fallback) key the directory handed out.
pub fn start_session(
    device: &Device,
    store: &Store,
    their_curve: &str,
    one_time_key: &str,
) -> Result<(), E2eError> {
    let session = device
        .account()
        .create_outbound_session(
            SessionConfig::version_1(),
            curve_key(their_curve)?,
            curve_key(one_time_key)?,
        )
        .map_err(|_| E2eError::Crypto("no session could be made with that key"))?;
    save(store, their_curve, &session)
}

/// Encrypts `plaintext` for one device with the newest session with it.
pub fn encrypt(store: &Store, recipient: &str, plaintext: &str) -> Result<Entry, E2eError> {
    let (_, pickle) = store
        .sessions(recipient)?
        .into_iter()
        .next()
        .ok_or(E2eError::NoSession)?;
    let mut session = unpickle(&pickle)?;
    let message = session
        .encrypt(plaintext)
        .map_err(|_| E2eError::Crypto("encryption failed"))?;
    save(store, recipient, &session)?;
    let (kind, body) = message.to_parts();
    Ok(Entry {
        recipient: recipient.to_string(),
        kind: if kind == 0 {
            Kind::PreKey
        } else {
            Kind::Normal
        },
        ciphertext: vodozemac::base64_encode(body),
    })
}

/// What decrypting an entry gave.
pub struct Decrypted {
    pub plaintext: Vec<u8>,
    /// A one-time key of ours was used: publish another.
    pub used_one_time_key: bool,
}

/// Decrypts the entry `sender` (a Curve25519 key) sent to this device.
pub fn decrypt(
    device: &mut Device,
    store: &Store,
    sender: &str,
    entry: &Entry,
) -> Result<Decrypted, E2eError> {
    let bytes = vodozemac::base64_decode(&entry.ciphertext)
        .map_err(|_| E2eError::Crypto("the ciphertext is not base64"))?;
    let message = OlmMessage::from_parts(entry.kind.number(), &bytes)
        .map_err(|_| E2eError::Crypto("the ciphertext is not an Olm message"))?;
    let sessions = store.sessions(sender)?;
    match &message {
        OlmMessage::PreKey(pre_key) => {
            let id = pre_key.session_id();
            if let Some((_, pickle)) = sessions.iter().find(|(sid, _)| *sid == id) {
                // A pre-key message of a session we already have (the sender has not heard
                // back yet), or a replay: the ratchet decides.
                let mut session = unpickle(pickle)?;
                let plaintext = session
                    .decrypt(&message)
                    .map_err(|_| E2eError::Crypto("already read, or damaged"))?;
                save(store, sender, &session)?;
                return Ok(Decrypted {
                    plaintext,
                    used_one_time_key: false,
                });
            }
            let created = device
                .account_mut()
                .create_inbound_session(SessionConfig::version_1(), curve_key(sender)?, pre_key)
                .map_err(|_| E2eError::Crypto("no session could be started from it"))?;
            save(store, sender, &created.session)?;
            device.save()?;
            Ok(Decrypted {
                plaintext: created.plaintext,
                used_one_time_key: true,
            })
        }
        OlmMessage::Normal(_) => {
            for (_, pickle) in &sessions {
                let mut session = unpickle(pickle)?;
                if let Ok(plaintext) = session.decrypt(&message) {
                    save(store, sender, &session)?;
                    return Ok(Decrypted {
                        plaintext,
                        used_one_time_key: false,
                    });
                }
            }
            Err(E2eError::Crypto("no session with that device can read it"))
        }
    }
}
