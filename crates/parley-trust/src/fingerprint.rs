//! The SHA-256 fingerprint of a certificate: what a user compares, pins and stores.
//! It is shown the way `openssl x509 -noout -fingerprint -sha256` shows it (uppercase hex pairs
//! joined by `:`) so a user can compare it with what the server's operator publishes; parsing is
//! lenient about case, colons and the `sha256:` or openssl `sha256 Fingerprint=` prefixes.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::TrustError;

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(cert_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(cert_der).into())
    }

    /// Reads a fingerprint as users paste it: `AB:CD:...`, `abcd...`, `sha256:AB:CD...` or a whole
    /// `sha256 Fingerprint=AB:CD:...` line from openssl.
    pub fn parse(input: &str) -> Result<Self, TrustError> {
        let bad = |reason: &str| TrustError::BadFingerprint {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let mut text = input.trim();
        if let Some((label, value)) = text.split_once('=') {
            if label.trim().eq_ignore_ascii_case("sha256 fingerprint") {
                text = value.trim();
            }
        }
        if let Some(prefix) = text.get(..7) {
            if prefix.eq_ignore_ascii_case("sha256:") {
                text = &text[7..];
            }
        }
        let hex: Vec<u8> = text.bytes().filter(|&b| b != b':').collect();
        if hex.len() != 64 {
            return Err(bad(&format!(
                "expected 64 hex digits (32 bytes), found {}",
                hex.len()
            )));
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |d: u8| {
                (d as char)
                    .to_digit(16)
                    .ok_or_else(|| bad(&format!("'{}' is not a hex digit", d as char)))
            };
            *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(Fingerprint(bytes))
    }

    /// The raw 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for Fingerprint {
    type Err = TrustError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // `printf 'hello' | sha256sum` = 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
    const HELLO: &str = "2C:F2:4D:BA:5F:B0:A3:0E:26:E8:3B:2A:C5:B9:E2:9E:\
                         1B:16:1E:5C:1F:A7:42:5E:73:04:33:62:93:8B:98:24";

    #[test]
    fn displays_like_openssl() {
        let fp = Fingerprint::of(b"hello");
        assert_eq!(fp.to_string(), HELLO);
        assert_eq!(fp.to_string().len(), 32 * 3 - 1);
    }

    #[test]
    fn parses_what_it_displays_and_common_pastes() {
        let fp = Fingerprint::of(b"hello");
        let plain = HELLO.replace(':', "");
        for input in [
            HELLO.to_string(),
            HELLO.to_lowercase(),
            plain.clone(),
            format!("sha256:{plain}"),
            format!("SHA256:{HELLO}"),
            format!("sha256 Fingerprint={HELLO}\n"),
            format!("  {plain}  "),
        ] {
            assert_eq!(Fingerprint::parse(&input).ok(), Some(fp), "input {input:?}");
        }
    }

    #[test]
    fn rejects_wrong_length_and_non_hex() {
        let short = Fingerprint::parse("AB:CD").expect_err("too short");
        assert!(short.to_string().contains("found 4"), "{short}");
        let not_hex = HELLO.replacen("2C", "ZZ", 1);
        let err = Fingerprint::parse(&not_hex).expect_err("not hex");
        assert!(err.to_string().contains("'Z'"), "{err}");
        assert!(Fingerprint::parse(&HELLO.replacen("2C", "2CF", 1)).is_err());
    }
}
