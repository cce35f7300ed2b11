//! IRCv3 message tags. `Tags` keeps the raw, still-escaped tag section borrowed from the line, so
//! parsing a message never allocates for tags and relaying them copies bytes verbatim; values are
//! unescaped only when someone asks for them. Escaping lives here too, so both directions agree.

use std::borrow::Cow;

use crate::{ParseError, MAX_CLIENT_TAGS_LEN, MAX_TAGS_LEN};

/// The tag section of a message, without its leading '@'. Empty when the line had no tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tags<'a>(&'a str);

/// One tag with its value unescaped; a tag sent without a value has the value "".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag<'a> {
    pub key: &'a str,
    pub value: Cow<'a, str>,
}

impl<'a> Tags<'a> {
    /// Checks a raw tag section (without '@') the way `Message::parse` does: the section within
    /// `MAX_TAGS_LEN` and the client-only part within `MAX_CLIENT_TAGS_LEN`. Keys are not
    /// checked: "Implementations MUST treat tag key names as opaque identifiers and MUST NOT
    /// perform any validation that would reject the message if an invalid tag key name is used"
    /// (ircv3.net message-tags). Empty items (as in "a;;b" or a trailing ';') are skipped.
    pub fn parse(raw: &'a str) -> Result<Tags<'a>, ParseError> {
        let section_len = raw.len() + 2;
        if section_len > MAX_TAGS_LEN {
            return Err(ParseError::TagsTooLong { len: section_len });
        }
        if raw.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(ParseError::ContainsNulOrNewline);
        }
        if raw.contains(' ') {
            return Err(ParseError::TagContainsSpace);
        }
        let mut client_bytes = 0usize;
        let mut client_count = 0usize;
        for item in raw.split(';').filter(|item| !item.is_empty()) {
            let key = item.split_once('=').map_or(item, |(key, _)| key);
            if key.starts_with('+') {
                client_bytes += item.len();
                client_count += 1;
            }
        }
        let client_len = client_bytes + client_count.saturating_sub(1);
        if client_len > MAX_CLIENT_TAGS_LEN {
            return Err(ParseError::ClientTagsTooLong { len: client_len });
        }
        Ok(Tags(raw))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The section exactly as received (escaped, without '@'), for relaying without re-encoding.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// Every tag in the order sent, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = Tag<'a>> {
        raw_items(self.0).map(|(key, value)| Tag {
            key,
            value: unescape_tag_value(value),
        })
    }

    /// The client-only (`+`-prefixed) tags, still escaped, as one section to relay verbatim
    /// (`+a=1;+example.com/b`): every other tag dropped, a key sent twice kept once with its
    /// later value (the spec's "disregard all but the final occurrence"), an empty value
    /// written as a bare key (the spec makes `foo=` equal to `foo`). Empty when there are none.
    /// A key outside the spec's grammar is left out rather than relayed, so the message still
    /// reaches clients whose parsers are strict about keys.
    pub fn client_only(&self) -> String {
        let items: Vec<(&str, &str)> = raw_items(self.0)
            .filter(|(key, _)| key.starts_with('+') && is_valid_key(key))
            .collect();
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        let mut kept: Vec<(&str, &str)> = items
            .into_iter()
            .rev()
            .filter(|(key, _)| seen.insert(*key))
            .collect();
        kept.reverse();
        let mut out = String::new();
        for (key, value) in kept {
            if !out.is_empty() {
                out.push(';');
            }
            out.push_str(key);
            if !value.is_empty() {
                out.push('=');
                out.push_str(value);
            }
        }
        out
    }

    /// The value of `key`, unescaped; when a key is sent twice the later one wins, as the spec says.
    pub fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        raw_items(self.0)
            .filter(|(item_key, _)| *item_key == key)
            .last()
            .map(|(_, value)| unescape_tag_value(value))
    }
}

fn raw_items(raw: &str) -> impl Iterator<Item = (&str, &str)> {
    raw.split(';')
        .filter(|item| !item.is_empty())
        .map(|item| item.split_once('=').unwrap_or((item, "")))
}

/// `['+'] [vendor '/'] name`: name of letters, digits and '-'; vendor a hostname-like run.
fn is_valid_key(key: &str) -> bool {
    let key = key.strip_prefix('+').unwrap_or(key);
    let (vendor, name) = match key.rsplit_once('/') {
        Some((vendor, name)) => (Some(vendor), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let vendor_ok = vendor.is_none_or(|vendor| {
        !vendor.is_empty()
            && vendor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    });
    name_ok && vendor_ok
}

/// Appends `value` escaped for a tag: ';' -> "\:", ' ' -> "\s", '\' -> "\\", CR -> "\r", LF -> "\n".
pub fn escape_tag_value(value: &str, out: &mut Vec<u8>) {
    let mut plain_from = 0;
    for (i, b) in value.bytes().enumerate() {
        let escaped: &[u8] = match b {
            b';' => b"\\:",
            b' ' => b"\\s",
            b'\\' => b"\\\\",
            b'\r' => b"\\r",
            b'\n' => b"\\n",
            _ => continue,
        };
        out.extend_from_slice(&value.as_bytes()[plain_from..i]);
        out.extend_from_slice(escaped);
        plain_from = i + 1;
    }
    out.extend_from_slice(&value.as_bytes()[plain_from..]);
}

/// Undoes `escape_tag_value`. Per the spec a '\' before any other character is dropped, and so is
/// a '\' at the very end. Borrows when there is nothing to unescape.
pub fn unescape_tag_value(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(value: &str) -> String {
        let mut out = Vec::new();
        escape_tag_value(value, &mut out);
        String::from_utf8(out).expect("escaping keeps UTF-8 intact")
    }

    #[test]
    fn escape_covers_every_special_character() {
        assert_eq!(escaped("a;b c\\d\re\nf"), "a\\:b\\sc\\\\d\\re\\nf");
        assert_eq!(escaped("plain"), "plain");
        assert_eq!(escaped(""), "");
    }

    #[test]
    fn unescape_inverts_escape() {
        for value in ["", "x", "; \\\r\n", "héllo wörld;", "\\\\s"] {
            assert_eq!(unescape_tag_value(&escaped(value)), value);
        }
    }

    #[test]
    fn unescape_drops_stray_backslashes() {
        assert_eq!(unescape_tag_value("value\\1"), "value1");
        assert_eq!(unescape_tag_value("value1\\"), "value1");
        assert!(matches!(unescape_tag_value("none"), Cow::Borrowed("none")));
    }

    #[test]
    fn get_returns_last_duplicate_and_iter_keeps_all() {
        let tags = Tags::parse("a=1;b;a=2;c=x\\sy").expect("valid tags");
        assert_eq!(tags.get("a").as_deref(), Some("2"));
        assert_eq!(tags.get("b").as_deref(), Some(""));
        assert_eq!(tags.get("c").as_deref(), Some("x y"));
        assert_eq!(tags.get("missing"), None);
        let keys: Vec<_> = tags.iter().map(|tag| tag.key).collect();
        assert_eq!(keys, ["a", "b", "a", "c"]);
    }

    #[test]
    fn keys_are_opaque_but_only_well_formed_client_keys_are_relayed() {
        for good in ["a", "+draft/reply", "example.com/x-y", "+a", "A1-"] {
            assert!(Tags::parse(good).is_ok(), "{good} should be accepted");
            assert!(is_valid_key(good), "{good}");
        }
        for odd in ["=v", "+", "a_b", "/x", "v/", "+/x", "k!=1", "a.b", "+a_b=1"] {
            let tags = Tags::parse(odd).expect("an odd key does not reject the message");
            assert_eq!(tags.client_only(), "", "{odd}");
        }
        let mixed = Tags::parse("+a_b=1;+ok=2").expect("valid");
        assert_eq!(mixed.client_only(), "+ok=2");
        assert_eq!(mixed.get("+a_b").as_deref(), Some("1"));
    }

    #[test]
    fn client_only_keeps_the_last_of_each_plus_tag_verbatim() {
        let tags = Tags::parse("label=1;+a=x\\sy;+example.com/b;msgid=z;+a=2;+c=").expect("valid");
        assert_eq!(tags.client_only(), "+example.com/b;+a=2;+c");
        assert_eq!(Tags::parse("a=1;b").expect("valid").client_only(), "");
        assert_eq!(Tags::default().client_only(), "");
    }

    #[test]
    fn empty_items_are_skipped() {
        let tags = Tags::parse("a=1;;b;").expect("empty items are tolerated");
        assert_eq!(tags.iter().count(), 2);
    }

    #[test]
    fn client_tag_limit_counts_items_and_separators() {
        // Two client tags of 2046 bytes each plus one ';' is exactly 4093 bytes.
        let value = "v".repeat(2046 - "+a=".len());
        let fits = format!("+a={value};+b={value};plain={}", "p".repeat(3000));
        assert!(Tags::parse(&fits).is_ok());
        let over = format!("+a={value}x;+b={value}x");
        assert_eq!(
            Tags::parse(&over),
            Err(ParseError::ClientTagsTooLong { len: 4095 })
        );
    }

    #[test]
    fn section_limit_counts_at_sign_and_space() {
        let fits = format!("a={}", "v".repeat(MAX_TAGS_LEN - 2 - 2));
        assert!(Tags::parse(&fits).is_ok());
        let over = format!("a={}", "v".repeat(MAX_TAGS_LEN - 2 - 1));
        assert_eq!(
            Tags::parse(&over),
            Err(ParseError::TagsTooLong {
                len: MAX_TAGS_LEN + 1
            })
        );
    }
}
