//! Whether a name a client offers may be used: nicknames, channel names and hostnames. The rules
//! are kept ASCII-strict for nicks and hosts (so casefolding stays trivial and names can't be
//! spoofed with look-alikes) and permissive for channels, which only need to survive the wire.

/// Longest hostname in bytes, not counting one trailing '.'.
const MAX_HOSTNAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A DNS-style hostname with at least one '.': labels of 1-63 letters, digits and '-', none
/// starting or ending with '-'. One trailing '.' is allowed ("services." is fine, "irc" is not).
pub fn hostname(s: &str) -> bool {
    if !s.contains('.') {
        return false;
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() || name.len() > MAX_HOSTNAME_LEN {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

fn is_nick_special(b: u8) -> bool {
    matches!(
        b,
        b'[' | b']' | b'\\' | b'`' | b'_' | b'^' | b'{' | b'|' | b'}'
    )
}

/// Non-empty, at most `max_len` bytes, first a letter or one of []\`_^{|}, then letters, digits,
/// those specials or '-'. Everything else (spaces, ',', '*', '?', '!', '@', ':', '#', non-ASCII)
/// is refused.
pub fn nick(s: &str, max_len: usize) -> bool {
    let bytes = s.as_bytes();
    let Some((&first, rest)) = bytes.split_first() else {
        return false;
    };
    bytes.len() <= max_len
        && (first.is_ascii_alphabetic() || is_nick_special(first))
        && rest
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || is_nick_special(b) || b == b'-')
}

/// Starts with '#' or '&', 2..=`max_len` bytes, and holds no space, ',', ':', BEL or other
/// control character. Non-ASCII text is allowed.
pub fn channel(s: &str, max_len: usize) -> bool {
    (s.starts_with('#') || s.starts_with('&'))
        && (2..=max_len).contains(&s.len())
        && !s
            .chars()
            .any(|c| c == ' ' || c == ',' || c == ':' || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        for good in [
            "a.b",
            "irc.example.com",
            "services.",
            "1.2.3.4",
            "xn--bcher-kva.ch",
        ] {
            assert!(hostname(good), "{good}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let too_long = format!("{}com", "abcdefghi.".repeat(26));
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            ".a.b",
            "irc",
            "-a.b",
            "a-.b",
            "a_b.c",
            "a b.c",
            "é.com",
            &long_label,
            &too_long,
        ] {
            assert!(!hostname(bad), "{bad}");
        }
    }

    #[test]
    fn nicks() {
        for good in ["a", "Nick", "[away]", "_x-1", "a`^{|}\\"] {
            assert!(nick(good, 30), "{good}");
        }
        for bad in [
            "", "1abc", "-abc", "a b", "a,b", "a*", "a?", "a!b", "a@b", "a:b", "#a", "né", "a.b",
        ] {
            assert!(!nick(bad, 30), "{bad}");
        }
        assert!(nick("abcd", 4));
        assert!(!nick("abcde", 4));
    }

    #[test]
    fn channels() {
        for good in ["#a", "&local", "#rust-lang", "#ünïcode", "##"] {
            assert!(channel(good, 50), "{good}");
        }
        for bad in [
            "#", "a", "", "#a b", "#a,b", "#a\x07", "#a:b", "#a\tb", "#\u{85}",
        ] {
            assert!(!channel(bad, 50), "{bad:?}");
        }
        assert!(channel("#abc", 4));
        assert!(!channel("#abcd", 4));
    }
}
