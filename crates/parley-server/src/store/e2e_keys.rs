//! The end-to-end encryption key directory (`KEYS`, capability `parley.chat/e2e`): per account,
//! its devices' public identity keys, and per device a pool of one-time keys and one fallback
//! key that other accounts claim to start an Olm session. Only public keys are ever here; the
//! server hands them out and never needs a private one. Its own trait beside
//! [`super::AccountStore`], opened on a connection of its own so a claim never waits behind a
//! login or a history write. A claim removes the key it returns in the same statement, so two
//! claimers (on one node or two) never get the same one-time key.

use super::StoreError;

/// One device as published: named by its Curve25519 identity key, with its Ed25519 signing key
/// and that key's signature over `parley-e2e-device:<account>:<curve>` (clients check it). All
/// three are unpadded standard base64, as vodozemac writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub curve: String,
    pub ed25519: String,
    pub signature: String,
}

/// What [`E2eKeyStore::upload_device`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// The device is stored now (new, or already there with these keys: nothing changed).
    Stored,
    /// This Curve25519 key is stored with another Ed25519 key, or for another account: a device
    /// is never silently replaced or moved, so a client sees a changed key as a new device.
    KeyMismatch,
    /// The account has the most devices allowed already; nothing changed.
    TooManyDevices,
}

/// The unclaimed one-time keys of a device, or why there is no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCount {
    /// How many one-time keys of the device are left unclaimed (the fallback key not counted).
    Unclaimed(usize),
    /// The account has no device with this Curve25519 key.
    UnknownDevice,
    /// Adding the keys would leave more unclaimed than allowed; none were added.
    TooManyKeys,
}

/// What [`E2eKeyStore::claim_key`] handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// A one-time key, now gone from the server: nobody else gets it.
    OneTime(String),
    /// No one-time key was left: the fallback key, which stays.
    Fallback(String),
    /// The device has neither (or the account has no such device).
    NoKeys,
}

/// Where device and one-time keys are kept. Account names are casefolded by the backend; every
/// method blocks. A device belongs to one account, and every write names the account it acts
/// for, so no account can change another's devices or keys.
pub trait E2eKeyStore: Send + Sync {
    /// Publish `device` for `account`; a device already stored with the same keys is a no-op.
    /// [`StoreError::NotFound`] when the account is gone.
    fn upload_device(
        &self,
        account: &str,
        device: &Device,
        max_devices: usize,
    ) -> Result<Uploaded, StoreError>;
    /// Add one-time `keys` to `account`'s device `curve` (a key already there is not added
    /// twice), unless that would leave more than `max_unclaimed` unclaimed.
    fn add_one_time_keys(
        &self,
        account: &str,
        curve: &str,
        keys: &[String],
        max_unclaimed: usize,
    ) -> Result<KeyCount, StoreError>;
    /// Set (replace) the fallback key of `account`'s device `curve`; the count of one-time keys.
    fn set_fallback_key(
        &self,
        account: &str,
        curve: &str,
        key: &str,
    ) -> Result<KeyCount, StoreError>;
    /// How many one-time keys of `account`'s device `curve` are unclaimed.
    fn count_one_time_keys(&self, account: &str, curve: &str) -> Result<KeyCount, StoreError>;
    /// Remove `account`'s device `curve` with all its keys; whether there was one.
    fn remove_device(&self, account: &str, curve: &str) -> Result<bool, StoreError>;
    /// `account`'s devices, oldest first.
    fn devices(&self, account: &str) -> Result<Vec<Device>, StoreError>;
    /// Take a one-time key of `account`'s device `curve` (removed, so it is used once), or its
    /// fallback key when none is left.
    fn claim_key(&self, account: &str, curve: &str) -> Result<Claimed, StoreError>;
}
