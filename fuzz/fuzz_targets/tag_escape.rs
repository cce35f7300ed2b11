//! Tag values: `unescape(escape(v)) == v` for every string, unescaping arbitrary (client-sent)
//! text never panics, and an escaped value is always a valid tag value inside a line that
//! `Message::parse` accepts and whose `Tags::get` gives the value back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_proto::{escape_tag_value, unescape_tag_value, write_line, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let mut escaped = Vec::new();
    escape_tag_value(value, &mut escaped);
    let escaped = String::from_utf8(escaped).expect("escaping keeps UTF-8");
    assert!(
        !escaped.contains([';', ' ', '\r', '\n', '\0']) || value.contains('\0'),
        "escaped value {escaped:?} still holds a separator"
    );
    assert_eq!(unescape_tag_value(&escaped), value, "escape then unescape");

    // Whatever a client sends as a value unescapes without panicking.
    let _ = unescape_tag_value(value);

    // Within a real line: NUL cannot travel in IRC at all, and long values are refused by size.
    if !value.contains('\0') {
        let mut line = Vec::new();
        write_line(
            &mut line,
            &[("+fuzz", Some(value))],
            None,
            "TAGMSG",
            &["#c"],
            None,
        );
        let line = String::from_utf8(line).expect("writing keeps UTF-8");
        if let Ok(message) = Message::parse(&line) {
            let got = message.tags.get("+fuzz").expect("the tag is there");
            assert_eq!(got, value, "tag value through a line");
        } else {
            assert!(
                escaped.len() > 4000,
                "a short tag value was refused: {line:?}"
            );
        }
    }
});
