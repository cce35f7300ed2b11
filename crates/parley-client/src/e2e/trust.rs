//! Trust between two accounts: a safety number both sides compute from the two accounts'
//! Ed25519 device keys (compared out of band, like Signal's), and the check that a known peer's
//! devices did not change behind the user's back. A change is never silent: the caller prints a
//! warning and the peer stops being "verified".

use sha2::{Digest, Sha256};

use super::store::KnownDevice;

/// Digits of one account's half: 6 groups of 5, from 30 bytes of its hash.
fn half(account: &str, devices: &[KnownDevice]) -> Vec<String> {
    let mut keys: Vec<&str> = devices.iter().map(|d| d.ed25519.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut hash = Sha256::new();
    hash.update(b"parley-e2e-safety-number-v1\0");
    hash.update(account.as_bytes());
    for key in keys {
        hash.update(b"\0");
        hash.update(key.as_bytes());
    }
    let digest = hash.finalize();
    digest
        .chunks(5)
        .take(6)
        .map(|chunk| {
            let value = chunk.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
            format!("{:05}", value % 100_000)
        })
        .collect()
}

/// The safety number of two accounts (casefolded) and their devices: 12 groups of 5 digits,
/// the same on both sides (the halves are ordered by account).
pub fn safety_number(
    me: &str,
    my_devices: &[KnownDevice],
    peer: &str,
    peer_devices: &[KnownDevice],
) -> String {
    let mut halves = [(me, half(me, my_devices)), (peer, half(peer, peer_devices))];
    halves.sort_by(|a, b| a.0.cmp(b.0));
    halves
        .iter()
        .flat_map(|(_, groups)| groups.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What changed between the devices remembered and those listed now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub added: usize,
    pub removed: usize,
    /// Same Curve25519 key, another Ed25519 key.
    pub rekeyed: usize,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        *self == Change::default()
    }

    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.added > 0 {
            parts.push(format!("{} new device(s)", self.added));
        }
        if self.removed > 0 {
            parts.push(format!("{} device(s) removed", self.removed));
        }
        if self.rekeyed > 0 {
            parts.push(format!(
                "{} device(s) with another signing key",
                self.rekeyed
            ));
        }
        parts.join(", ")
    }
}

/// Compares a peer's remembered devices with the current ones.
pub fn compare(known: &[KnownDevice], now: &[KnownDevice]) -> Change {
    let mut change = Change::default();
    for device in now {
        match known.iter().find(|k| k.curve == device.curve) {
            None => change.added += 1,
            Some(k) if k.ed25519 != device.ed25519 => change.rekeyed += 1,
            Some(_) => {}
        }
    }
    change.removed = known
        .iter()
        .filter(|k| !now.iter().any(|d| d.curve == k.curve))
        .count();
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(c: &str, e: &str) -> KnownDevice {
        KnownDevice {
            curve: c.into(),
            ed25519: e.into(),
        }
    }

    #[test]
    fn both_sides_compute_the_same_number_and_a_key_changes_it() {
        let alice = [dev("a1", "ea1"), dev("a2", "ea2")];
        let bob = [dev("b1", "eb1")];
        let seen_by_alice = safety_number("alice", &alice, "bob", &bob);
        let seen_by_bob =
            safety_number("bob", &bob, "alice", &[alice[1].clone(), alice[0].clone()]);
        assert_eq!(seen_by_alice, seen_by_bob);
        let groups: Vec<&str> = seen_by_alice.split(' ').collect();
        assert_eq!(groups.len(), 12);
        assert!(groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
        let other = safety_number("alice", &alice, "bob", &[dev("b1", "eb9")]);
        assert_ne!(seen_by_alice, other);
    }

    #[test]
    fn changes_are_counted() {
        let known = [dev("a", "1"), dev("b", "2")];
        assert!(compare(&known, &known).is_empty());
        let change = compare(&known, &[dev("a", "9"), dev("c", "3")]);
        assert_eq!(
            change,
            Change {
                added: 1,
                removed: 1,
                rekeyed: 1
            }
        );
        assert!(change.describe().contains("new device"));
    }
}
