//! The E2E wire format, fixed by the protocol: the `+parley.chat/e2e` client tag on a PRIVMSG
//! whose body is only a placeholder. Everything here comes from the network and is untrusted:
//! parsing is bounded (entry count, key and ciphertext sizes, charset) and never panics; the
//! crypto itself happens in [`super::olm`].

use serde::{Deserialize, Serialize};

/// The client-only tag that carries the ciphertexts.
pub const TAG: &str = "+parley.chat/e2e";
/// The capability of a server with the key directory.
pub const CAP: &str = "parley.chat/e2e";
/// What clients without E2E show.
pub const PLACEHOLDER: &str = "[encrypted message]";
/// The whole client tag section must stay under this (IRCv3 client tag limit).
pub const MAX_TAG_SECTION: usize = 4094;
/// More entries than this is not a message from a Parley client (10 devices per account each).
pub const MAX_ENTRIES: usize = 20;
/// A key in unpadded base64: 32 bytes.
pub const KEY_LEN: usize = 43;
/// Longest plaintext JSON accepted after decryption.
pub const MAX_PLAINTEXT: usize = 4096;

/// The two Olm message types, as the payload writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    PreKey,
    Normal,
}

impl Kind {
    fn digit(self) -> char {
        match self {
            Kind::PreKey => '0',
            Kind::Normal => '1',
        }
    }
    /// vodozemac's message type number.
    pub fn number(self) -> usize {
        match self {
            Kind::PreKey => 0,
            Kind::Normal => 1,
        }
    }
}

/// One recipient device's ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The recipient device's Curve25519 identity key (base64).
    pub recipient: String,
    pub kind: Kind,
    /// vodozemac's base64 of the Olm message body.
    pub ciphertext: String,
}

/// A parsed `v1:` payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The sending device's Curve25519 identity key (base64).
    pub sender: String,
    pub entries: Vec<Entry>,
}

/// Why a tag value is not a payload this client can use.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("unknown version (this client reads v1)")]
    Version,
    #[error("the tag is longer than the IRCv3 limit")]
    TooLong,
    #[error("a device key is not {KEY_LEN} base64 characters")]
    BadKey,
    #[error("an entry is not <device>:<type>:<ciphertext>")]
    BadEntry,
    #[error("more than {MAX_ENTRIES} devices")]
    TooManyEntries,
    #[error("the same device appears twice")]
    DuplicateEntry,
}

fn is_base64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// A Curve25519 or Ed25519 public key as the protocol writes it.
pub fn is_key(s: &str) -> bool {
    s.len() == KEY_LEN && is_base64(s)
}

/// Parses a tag value. Bounded by [`MAX_TAG_SECTION`] and [`MAX_ENTRIES`].
pub fn parse(value: &str) -> Result<Payload, WireError> {
    if value.len() > MAX_TAG_SECTION {
        return Err(WireError::TooLong);
    }
    let rest = value.strip_prefix("v1:").ok_or(WireError::Version)?;
    let mut parts = rest.split(',');
    let sender = parts.next().unwrap_or("");
    if !is_key(sender) {
        return Err(WireError::BadKey);
    }
    let mut entries: Vec<Entry> = Vec::new();
    for part in parts {
        if entries.len() == MAX_ENTRIES {
            return Err(WireError::TooManyEntries);
        }
        let mut fields = part.splitn(3, ':');
        let (Some(recipient), Some(kind), Some(ciphertext)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(WireError::BadEntry);
        };
        if !is_key(recipient) {
            return Err(WireError::BadKey);
        }
        let kind = match kind {
            "0" => Kind::PreKey,
            "1" => Kind::Normal,
            _ => return Err(WireError::BadEntry),
        };
        if ciphertext.is_empty() || !is_base64(ciphertext) {
            return Err(WireError::BadEntry);
        }
        if entries.iter().any(|e| e.recipient == recipient) {
            return Err(WireError::DuplicateEntry);
        }
        entries.push(Entry {
            recipient: recipient.to_string(),
            kind,
            ciphertext: ciphertext.to_string(),
        });
    }
    if entries.is_empty() {
        return Err(WireError::BadEntry);
    }
    Ok(Payload {
        sender: sender.to_string(),
        entries,
    })
}

impl Payload {
    /// The tag value: `v1:<sender>,<recipient>:<type>:<ciphertext>...`.
    pub fn to_value(&self) -> String {
        let mut out = format!("v1:{}", self.sender);
        for entry in &self.entries {
            out.push(',');
            out.push_str(&entry.recipient);
            out.push(':');
            out.push(entry.kind.digit());
            out.push(':');
            out.push_str(&entry.ciphertext);
        }
        out
    }

    /// The entry for one device, if the sender encrypted for it.
    pub fn entry_for(&self, curve: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.recipient == curve)
    }
}

/// The encrypted JSON: `{"text": "..."}`, `"action": true` for /me.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Plaintext {
    pub text: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub action: bool,
}

impl Plaintext {
    pub fn to_json(&self) -> String {
        // A struct of a string and a bool always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads decrypted bytes; control characters (a line break that would fake a line in the
    /// output) become spaces.
    pub fn from_json(bytes: &[u8]) -> Option<Plaintext> {
        if bytes.len() > MAX_PLAINTEXT {
            return None;
        }
        let mut plain: Plaintext = serde_json::from_slice(bytes).ok()?;
        plain.text = plain
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const K2: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    #[test]
    fn round_trip() {
        let payload = Payload {
            sender: K1.into(),
            entries: vec![
                Entry {
                    recipient: K2.into(),
                    kind: Kind::PreKey,
                    ciphertext: "abc+/9".into(),
                },
                Entry {
                    recipient: K1.into(),
                    kind: Kind::Normal,
                    ciphertext: "xyz".into(),
                },
            ],
        };
        let value = payload.to_value();
        assert_eq!(value, format!("v1:{K1},{K2}:0:abc+/9,{K1}:1:xyz"));
        assert_eq!(parse(&value), Ok(payload));
    }

    #[test]
    fn bad_input_is_refused_without_panic() {
        let cases = [
            "",
            "v1",
            "v1:",
            "v2:x",
            &format!("v1:{K1}"),
            &format!("v1:{K1},"),
            &format!("v1:{K1},{K2}"),
            &format!("v1:{K1},{K2}:"),
            &format!("v1:{K1},{K2}:2:abc"),
            &format!("v1:{K1},{K2}:0:"),
            &format!("v1:{K1},{K2}:0:a=b"),
            &format!("v1:{K1},{K2}:0:a b"),
            &format!("v1:{K1},short:0:abc"),
            &format!("v1:short,{K2}:0:abc"),
            &format!("v1:{K1},{K2}:0:abc,{K2}:1:abc"),
            "v1:ééééééééééééééééééééééééééééééééééééééééééé,x:0:y",
            ":::,,,:::",
        ];
        for case in cases {
            assert!(parse(case).is_err(), "{case:?} parsed");
        }
        let huge = format!("v1:{K1},{K2}:0:{}", "A".repeat(MAX_TAG_SECTION));
        assert_eq!(parse(&huge), Err(WireError::TooLong));
        let many: String = (0..=MAX_ENTRIES)
            .map(|i| format!(",{:A>43}:1:x", i))
            .collect();
        assert_eq!(
            parse(&format!("v1:{K1}{many}")),
            Err(WireError::TooManyEntries)
        );
        // Every prefix and a few mutations of a good payload: no panic whatever comes back.
        let good = format!("v1:{K1},{K2}:0:abc,{K1}:1:xyz");
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
            let mut mutated = good.clone().into_bytes();
            mutated[cut] = b':';
            let _ = parse(&String::from_utf8_lossy(&mutated));
        }
    }

    #[test]
    fn plaintext_json_is_bounded_and_cleaned() {
        let plain = Plaintext {
            text: "hi".into(),
            action: false,
        };
        assert_eq!(plain.to_json(), r#"{"text":"hi"}"#);
        assert_eq!(Plaintext::from_json(br#"{"text":"hi"}"#), Some(plain));
        let fake = Plaintext::from_json(b"{\"text\":\"a\\r\\n12:00 [x] <root> b\"}");
        assert_eq!(fake.map(|p| p.text), Some("a  12:00 [x] <root> b".into()));
        assert_eq!(Plaintext::from_json(b"not json"), None);
        assert_eq!(Plaintext::from_json(b"{\"x\":1}"), None);
        let big = format!("{{\"text\":\"{}\"}}", "a".repeat(MAX_PLAINTEXT));
        assert_eq!(Plaintext::from_json(big.as_bytes()), None);
    }
}
