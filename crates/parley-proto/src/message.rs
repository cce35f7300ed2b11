//! One IRC line as a `Message` that borrows every part from the line, and the two serializers.
//! Parsing follows modern IRC (tags, optional source, command, space-separated params with a
//! ':' trailing) and enforces the byte limits up front, so handlers never see an oversized line.
//! `write_line` builds an outgoing line in one pass straight into the caller's buffer.

use crate::tags::escape_tag_value;
use crate::{ParseError, Tags, MAX_BODY_LEN};

/// A parsed line. Nothing is copied: every field points into the line given to `parse`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message<'a> {
    /// The raw tag section without '@'; empty when the line had none.
    pub tags: Tags<'a>,
    /// The source without its leading ':'.
    pub source: Option<&'a str>,
    /// The command as sent: letters (any case) or a three-digit numeric.
    pub command: &'a str,
    /// Middle params then the trailing one, the trailing without its ':'.
    pub params: Vec<&'a str>,
}

impl<'a> Message<'a> {
    /// Parses one line; a trailing "\r\n" or "\n" is allowed and ignored.
    pub fn parse(line: &'a str) -> Result<Message<'a>, ParseError> {
        let line = line
            .strip_suffix("\r\n")
            .or_else(|| line.strip_suffix('\n'))
            .unwrap_or(line);
        if line.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(ParseError::ContainsNulOrNewline);
        }

        let (tags, body) = match line.strip_prefix('@') {
            Some(after_at) => {
                let (raw, body) = after_at.split_once(' ').unwrap_or((after_at, ""));
                (Tags::parse(raw)?, body)
            }
            None => (Tags::default(), line),
        };
        let body = body.trim_start_matches(' ');
        if body.is_empty() {
            return Err(if line.starts_with('@') {
                ParseError::MissingCommand
            } else {
                ParseError::Empty
            });
        }
        let body_len = body.len() + 2;
        if body_len > MAX_BODY_LEN {
            return Err(ParseError::BodyTooLong { len: body_len });
        }

        let mut rest = body;
        let source = match rest.strip_prefix(':') {
            Some(after_colon) => {
                let (source, after) = after_colon.split_once(' ').unwrap_or((after_colon, ""));
                if source.is_empty() {
                    return Err(ParseError::EmptySource);
                }
                rest = after.trim_start_matches(' ');
                Some(source)
            }
            None => None,
        };

        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(ParseError::MissingCommand);
        }
        if !is_valid_command(command) {
            return Err(ParseError::InvalidCommand);
        }

        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing);
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param);
            rest = after;
        }

        Ok(Message {
            tags,
            source,
            command,
            params,
        })
    }

    /// The `i`th param (0-based), if the line had that many.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied()
    }

    /// Appends the message as a line ending in "\r\n". Tags are written as their raw (already
    /// escaped) section; the last param gets a ':' only when it needs one. Middle params must be
    /// non-empty, without spaces and not start with ':' - the caller's invariant, not checked here.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        if !self.tags.is_empty() {
            out.push(b'@');
            out.extend_from_slice(self.tags.raw().as_bytes());
            out.push(b' ');
        }
        write_source_and_command(out, self.source, self.command);
        if let Some((last, middle)) = self.params.split_last() {
            for param in middle {
                out.push(b' ');
                out.extend_from_slice(param.as_bytes());
            }
            out.push(b' ');
            if last.is_empty() || last.contains(' ') || last.starts_with(':') {
                out.push(b':');
            }
            out.extend_from_slice(last.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Letters only (any case) or exactly three digits.
fn is_valid_command(command: &str) -> bool {
    let bytes = command.as_bytes();
    bytes.iter().all(u8::is_ascii_alphabetic)
        || (bytes.len() == 3 && bytes.iter().all(u8::is_ascii_digit))
}

fn write_source_and_command(out: &mut Vec<u8>, source: Option<&str>, command: &str) {
    if let Some(source) = source {
        out.push(b':');
        out.extend_from_slice(source.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(command.as_bytes());
}

/// Serialize one line into `out` in one pass: optional tags (values escaped), optional ":source",
/// command, middle params, and optional trailing (always written with a leading ':'), then "\r\n".
/// A tag with `None` or an empty value is written as a bare key, which the spec treats as equal.
/// Middle params must be non-empty, without spaces and not start with ':' (not checked here).
pub fn write_line(
    out: &mut Vec<u8>,
    tags: &[(&str, Option<&str>)],
    source: Option<&str>,
    command: &str,
    middle: &[&str],
    trailing: Option<&str>,
) {
    for (i, (key, value)) in tags.iter().enumerate() {
        out.push(if i == 0 { b'@' } else { b';' });
        out.extend_from_slice(key.as_bytes());
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            out.push(b'=');
            escape_tag_value(value, out);
        }
    }
    if !tags.is_empty() {
        out.push(b' ');
    }
    write_source_and_command(out, source, command);
    for param in middle {
        out.push(b' ');
        out.extend_from_slice(param.as_bytes());
    }
    if let Some(trailing) = trailing {
        out.extend_from_slice(b" :");
        out.extend_from_slice(trailing.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MAX_CLIENT_TAGS_LEN, MAX_TAGS_LEN};

    fn parse(line: &str) -> Message<'_> {
        Message::parse(line).expect("test line is valid")
    }

    fn written(message: &Message<'_>) -> String {
        let mut out = Vec::new();
        message.write_to(&mut out);
        String::from_utf8(out).expect("serializing keeps UTF-8 intact")
    }

    #[test]
    fn parses_every_part() {
        let msg = parse("@id=1;+draft/x :nick!u@h PRIVMSG #chan :hello there\r\n");
        assert_eq!(msg.tags.get("id").as_deref(), Some("1"));
        assert_eq!(msg.tags.get("+draft/x").as_deref(), Some(""));
        assert_eq!(msg.source, Some("nick!u@h"));
        assert_eq!(msg.command, "PRIVMSG");
        assert_eq!(msg.params, ["#chan", "hello there"]);
        assert_eq!(msg.param(1), Some("hello there"));
        assert_eq!(msg.param(2), None);
    }

    #[test]
    fn line_endings_are_optional() {
        for line in ["PING x", "PING x\n", "PING x\r\n"] {
            assert_eq!(parse(line).params, ["x"], "{line:?}");
        }
    }

    #[test]
    fn repeated_spaces_separate_once() {
        let msg = parse("@a=b   :src   MODE  #c   +o  nick   ");
        assert_eq!(msg.source, Some("src"));
        assert_eq!(msg.params, ["#c", "+o", "nick"]);
    }

    #[test]
    fn empty_trailing_is_a_param() {
        assert_eq!(parse("AWAY :").params, [""]);
        assert!(parse("AWAY ").params.is_empty());
    }

    #[test]
    fn rejects_bad_lines() {
        let cases = [
            ("", ParseError::Empty),
            ("   \r\n", ParseError::Empty),
            ("@a=b", ParseError::MissingCommand),
            ("@a=b   ", ParseError::MissingCommand),
            (":src", ParseError::MissingCommand),
            (":src   ", ParseError::MissingCommand),
            (": PING", ParseError::EmptySource),
            ("PRIV_MSG x", ParseError::InvalidCommand),
            ("12 x", ParseError::InvalidCommand),
            ("1234 x", ParseError::InvalidCommand),
            ("P1NG x", ParseError::InvalidCommand),
            ("PING a\0b", ParseError::ContainsNulOrNewline),
            ("PING a\rb", ParseError::ContainsNulOrNewline),
            ("PING a\nb\r\n", ParseError::ContainsNulOrNewline),
            ("PING x\r\n\r\n", ParseError::ContainsNulOrNewline),
        ];
        for (line, expected) in cases {
            assert_eq!(Message::parse(line), Err(expected), "{line:?}");
        }
    }

    #[test]
    fn body_limit_counts_crlf_and_excludes_tags() {
        let tags = format!("@a={} ", "t".repeat(1000));
        let fits = format!(
            "{tags}PRIVMSG #c :{}",
            "x".repeat(510 - "PRIVMSG #c :".len())
        );
        assert!(Message::parse(&fits).is_ok());
        let over = format!("{fits}x\r\n");
        assert_eq!(
            Message::parse(&over),
            Err(ParseError::BodyTooLong { len: 513 })
        );
    }

    #[test]
    fn tag_limits_are_enforced() {
        let big = format!("@a={} PING", "v".repeat(MAX_TAGS_LEN));
        assert!(matches!(
            Message::parse(&big),
            Err(ParseError::TagsTooLong { .. })
        ));
        let client = format!("@+a={} PING", "v".repeat(MAX_CLIENT_TAGS_LEN));
        assert!(matches!(
            Message::parse(&client),
            Err(ParseError::ClientTagsTooLong { .. })
        ));
    }

    #[test]
    fn numerics_and_mixed_case_commands() {
        assert_eq!(parse(":s 001 me :Welcome").command, "001");
        assert_eq!(parse("privMsg a b").command, "privMsg");
    }

    #[test]
    fn write_to_adds_colon_only_when_needed() {
        assert_eq!(written(&parse("JOIN #a")), "JOIN #a\r\n");
        assert_eq!(written(&parse("PRIVMSG #a :hi")), "PRIVMSG #a hi\r\n");
        assert_eq!(
            written(&parse("PRIVMSG #a :hi you")),
            "PRIVMSG #a :hi you\r\n"
        );
        assert_eq!(written(&parse("PRIVMSG #a ::)")), "PRIVMSG #a ::)\r\n");
        assert_eq!(written(&parse("AWAY :")), "AWAY :\r\n");
        assert_eq!(written(&parse("AWAY")), "AWAY\r\n");
        assert_eq!(
            written(&parse("@a=x\\sy;b :src  TOPIC #a  :new topic")),
            "@a=x\\sy;b :src TOPIC #a :new topic\r\n"
        );
    }

    #[test]
    fn write_line_escapes_tags_and_always_colons_trailing() {
        let mut out = Vec::new();
        write_line(
            &mut out,
            &[("time", Some("a b;c")), ("+x", None), ("y", Some(""))],
            Some("srv"),
            "NOTICE",
            &["*", "nick"],
            Some("hi"),
        );
        assert_eq!(out, b"@time=a\\sb\\:c;+x;y :srv NOTICE * nick :hi\r\n");

        out.clear();
        write_line(&mut out, &[], None, "PING", &[], None);
        assert_eq!(out, b"PING\r\n");
    }

    #[test]
    fn write_line_output_parses_back() {
        let mut out = Vec::new();
        write_line(
            &mut out,
            &[("msgid", Some("a\\b\r\n"))],
            Some("n!u@h"),
            "PRIVMSG",
            &["#c"],
            Some(":) hi"),
        );
        let line = std::str::from_utf8(&out).expect("serializing keeps UTF-8 intact");
        let msg = parse(line);
        assert_eq!(msg.tags.get("msgid").as_deref(), Some("a\\b\r\n"));
        assert_eq!(msg.source, Some("n!u@h"));
        assert_eq!(msg.params, ["#c", ":) hi"]);
    }
}
