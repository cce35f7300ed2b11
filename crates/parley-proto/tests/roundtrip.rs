//! Property tests: whatever the serializers write, the parser reads back as the same message,
//! or rejects with the matching length error when the generated line is over a limit. Generated
//! text includes spaces, colons, tag escapes and non-ASCII so the edge cases get exercised.

use parley_proto::{write_line, Message, ParseError, MAX_BODY_LEN};
use proptest::prelude::*;

fn tag_key() -> impl Strategy<Value = String> {
    r"\+?([a-z0-9.-]{1,8}/)?[A-Za-z0-9-]{1,10}"
}

fn tag_value() -> impl Strategy<Value = Option<String>> {
    // Any character but NUL: spaces, ';', '\', CR and LF must survive escaping.
    proptest::option::of(r"[^\x00]{0,12}")
}

fn source() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(r"[^\x00\r\n ]{1,20}")
}

fn command() -> impl Strategy<Value = String> {
    r"[A-Za-z]{1,12}|[0-9]{3}"
}

fn middle_params() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(r"[^\x00\r\n :][^\x00\r\n ]{0,12}", 0..6)
}

fn trailing() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(r"[^\x00\r\n]{0,40}")
}

/// The body of a serialized line: what follows the tag section, up to and including CRLF.
fn body_len(line: &str) -> usize {
    match line.strip_prefix('@').and_then(|rest| rest.split_once(' ')) {
        Some((_, body)) => body.len(),
        None => line.len(),
    }
}

proptest! {
    #[test]
    fn write_line_then_parse_gives_the_parts_back(
        tags in proptest::collection::vec((tag_key(), tag_value()), 0..5),
        source in source(),
        command in command(),
        middle in middle_params(),
        trailing in trailing(),
    ) {
        let tag_args: Vec<(&str, Option<&str>)> =
            tags.iter().map(|(key, value)| (key.as_str(), value.as_deref())).collect();
        let middle_args: Vec<&str> = middle.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        write_line(&mut out, &tag_args, source.as_deref(), &command, &middle_args, trailing.as_deref());
        let line = String::from_utf8(out).expect("serializers write UTF-8 for UTF-8 input");

        let parsed = Message::parse(&line);
        let body = body_len(&line);
        if body > MAX_BODY_LEN {
            prop_assert_eq!(parsed, Err(ParseError::BodyTooLong { len: body }));
            return Ok(());
        }
        let msg = parsed.expect("a line within the limits parses");

        let got_tags: Vec<(String, String)> =
            msg.tags.iter().map(|tag| (tag.key.to_owned(), tag.value.into_owned())).collect();
        let want_tags: Vec<(String, String)> = tags
            .iter()
            .map(|(key, value)| (key.clone(), value.clone().unwrap_or_default()))
            .collect();
        prop_assert_eq!(got_tags, want_tags);
        prop_assert_eq!(msg.source, source.as_deref());
        prop_assert_eq!(msg.command, command.as_str());
        let mut want_params = middle_args.clone();
        want_params.extend(trailing.as_deref());
        prop_assert_eq!(msg.params, want_params);
    }

    #[test]
    fn message_write_to_then_parse_is_identity(
        tags in proptest::collection::vec((tag_key(), tag_value()), 0..5),
        source in source(),
        command in command(),
        middle in middle_params(),
        trailing in trailing(),
    ) {
        let tag_args: Vec<(&str, Option<&str>)> =
            tags.iter().map(|(key, value)| (key.as_str(), value.as_deref())).collect();
        let mut first = Vec::new();
        write_line(&mut first, &tag_args, source.as_deref(), &command,
            &middle.iter().map(String::as_str).collect::<Vec<_>>(), trailing.as_deref());
        let first = String::from_utf8(first).expect("serializers write UTF-8 for UTF-8 input");
        prop_assume!(body_len(&first) <= MAX_BODY_LEN);
        let msg = Message::parse(&first).expect("a line within the limits parses");

        let mut second = Vec::new();
        msg.write_to(&mut second);
        let second = String::from_utf8(second).expect("serializers write UTF-8 for UTF-8 input");
        let reparsed = Message::parse(&second).expect("write_to output parses");
        prop_assert_eq!(&reparsed, &msg);
        // Writing is a fixed point once normalized.
        let mut third = Vec::new();
        reparsed.write_to(&mut third);
        prop_assert_eq!(third, second.into_bytes());
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(line in r"(@[^ ]{0,30} )?[^\x00]{0,80}") {
        // Any result is fine; the property is that arbitrary input is handled without a panic
        // and that an accepted line writes back to something that parses the same.
        if let Ok(msg) = Message::parse(&line) {
            let mut out = Vec::new();
            msg.write_to(&mut out);
            let out = String::from_utf8(out).expect("serializers write UTF-8 for UTF-8 input");
            prop_assert_eq!(Message::parse(&out), Ok(msg));
        }
    }
}
