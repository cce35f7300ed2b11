//! Checks the parser, serializers, source splitting, mask matching and hostname validation
//! against the shared ircdocs parser-test vectors, read at run time from `shared/irc-parser-tests/`
//! (or from `$PARLEY_PARSER_TESTS`). A missing folder fails loudly: these vectors are the
//! reference, so skipping them silently would hide exactly the regressions they exist to catch.

use std::collections::BTreeMap;
use std::path::PathBuf;

use parley_proto::{validate, wildcard_match, write_line, Message, Tags, UserHost};
use yaml_rust2::{Yaml, YamlLoader};

fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("PARLEY_PARSER_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/irc-parser-tests/"
            ))
        });
    assert!(
        dir.is_dir(),
        "parser test vectors not found at {}: put the ircdocs parser-tests YAML files there \
         (the shared/ folder beside the repository) or set PARLEY_PARSER_TESTS to their folder",
        dir.display()
    );
    dir
}

/// The `tests:` list of one vector file; fails if the file is missing or holds no cases.
fn load_cases(file: &str) -> Vec<Yaml> {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|err| panic!("{} is not valid YAML: {err}", path.display()));
    let cases = docs
        .first()
        .and_then(|doc| doc["tests"].as_vec())
        .unwrap_or_else(|| panic!("{} has no `tests:` list", path.display()))
        .clone();
    assert!(
        !cases.is_empty(),
        "{} has an empty `tests:` list",
        path.display()
    );
    cases
}

fn text<'y>(node: &'y Yaml, what: &str) -> &'y str {
    node.as_str()
        .unwrap_or_else(|| panic!("`{what}` should be a string, got {node:?}"))
}

/// A key that is absent (or null) in the vectors means "not specified".
fn optional_text(node: &Yaml) -> Option<&str> {
    node.as_str()
}

fn text_list(node: &Yaml) -> Vec<&str> {
    match node.as_vec() {
        Some(items) => items.iter().map(|item| text(item, "list item")).collect(),
        None => Vec::new(),
    }
}

/// Tag key/value pairs in file order; the vectors write a missing value as "".
fn tag_pairs(node: &Yaml) -> Vec<(&str, &str)> {
    match node.as_hash() {
        Some(hash) => hash
            .iter()
            .map(|(key, value)| (text(key, "tag key"), text(value, "tag value")))
            .collect(),
        None => Vec::new(),
    }
}

/// Tags as a map where a later duplicate replaces an earlier one, as the spec asks.
fn tag_map(tags: &Tags<'_>) -> BTreeMap<String, String> {
    tags.iter()
        .map(|tag| (tag.key.to_owned(), tag.value.into_owned()))
        .collect()
}

#[test]
fn msg_split() {
    let cases = load_cases("msg-split.yaml");
    for case in &cases {
        let input = text(&case["input"], "input");
        let atoms = &case["atoms"];
        let msg =
            Message::parse(input).unwrap_or_else(|err| panic!("{input:?} should parse, got {err}"));

        let expected_tags: BTreeMap<String, String> = tag_pairs(&atoms["tags"])
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        assert_eq!(tag_map(&msg.tags), expected_tags, "tags of {input:?}");
        for (key, value) in &expected_tags {
            assert_eq!(
                msg.tags.get(key).as_deref(),
                Some(value.as_str()),
                "get({key:?}) in {input:?}"
            );
        }
        assert_eq!(
            msg.source,
            optional_text(&atoms["source"]),
            "source of {input:?}"
        );
        assert_eq!(
            msg.command,
            text(&atoms["verb"], "verb"),
            "verb of {input:?}"
        );
        assert_eq!(
            msg.params,
            text_list(&atoms["params"]),
            "params of {input:?}"
        );
    }
    println!("msg-split: {} cases", cases.len());
}

/// The tag section (if any) and the rest of a line, with tags sorted so order does not matter.
fn order_free(line: &str) -> (Vec<&str>, &str) {
    match line.strip_prefix('@').and_then(|rest| rest.split_once(' ')) {
        Some((tags, rest)) => {
            let mut tags: Vec<&str> = tags.split(';').collect();
            tags.sort_unstable();
            (tags, rest)
        }
        None => (Vec::new(), line),
    }
}

fn assert_matches_one(out: &[u8], matches: &[&str], how: &str) {
    let line = std::str::from_utf8(out).expect("serializers write UTF-8 for UTF-8 input");
    let line = line
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("{how} output {line:?} must end in CRLF"));
    let found = matches
        .iter()
        .any(|allowed| *allowed == line || order_free(allowed) == order_free(line));
    assert!(found, "{how} wrote {line:?}, expected one of {matches:?}");
}

#[test]
fn msg_join() {
    let cases = load_cases("msg-join.yaml");
    for case in &cases {
        let atoms = &case["atoms"];
        let matches = text_list(&case["matches"]);
        assert!(!matches.is_empty(), "case without matches: {case:?}");
        let tags = tag_pairs(&atoms["tags"]);
        let source = optional_text(&atoms["source"]);
        let verb = text(&atoms["verb"], "verb");
        let params = text_list(&atoms["params"]);

        // write_line: the last param as the always-colon trailing.
        let tag_args: Vec<(&str, Option<&str>)> = tags
            .iter()
            .map(|(key, value)| (*key, Some(*value).filter(|value| !value.is_empty())))
            .collect();
        let (middle, trailing) = match params.split_last() {
            Some((last, middle)) => (middle, Some(*last)),
            None => (&params[..], None),
        };
        let mut out = Vec::new();
        write_line(&mut out, &tag_args, source, verb, middle, trailing);
        assert_matches_one(&out, &matches, "write_line");

        // Message::write_to: tags carried raw, as when relaying; the colon added only if needed.
        let mut raw_tags = Vec::new();
        write_line(&mut raw_tags, &tag_args, None, "X", &[], None);
        let raw_tags = std::str::from_utf8(&raw_tags).expect("tags serialize to UTF-8");
        let raw_tags = raw_tags
            .strip_prefix('@')
            .and_then(|rest| rest.strip_suffix(" X\r\n"))
            .unwrap_or("");
        let message = Message {
            tags: Tags::parse(raw_tags).expect("escaped vector tags form a valid section"),
            source,
            command: verb,
            params: params.clone(),
        };
        let mut out = Vec::new();
        message.write_to(&mut out);
        assert_matches_one(&out, &matches, "Message::write_to");

        // And what we wrote reads back as the same atoms.
        let line = std::str::from_utf8(&out).expect("serializers write UTF-8 for UTF-8 input");
        let reparsed = Message::parse(line).expect("our own output parses");
        assert_eq!(reparsed, message, "reparsed {line:?}");
        let expected: BTreeMap<String, String> = tags
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        assert_eq!(tag_map(&reparsed.tags), expected, "tags of {line:?}");
    }
    println!("msg-join: {} cases", cases.len());
}

#[test]
fn userhost_split() {
    let cases = load_cases("userhost-split.yaml");
    for case in &cases {
        let source = text(&case["source"], "source");
        let atoms = &case["atoms"];
        let parts = UserHost::parse(source);
        // The vectors treat a missing part as "".
        assert_eq!(
            parts.nick,
            optional_text(&atoms["nick"]).unwrap_or(""),
            "{source:?}"
        );
        assert_eq!(
            parts.user.unwrap_or(""),
            optional_text(&atoms["user"]).unwrap_or(""),
            "user of {source:?}"
        );
        assert_eq!(
            parts.host.unwrap_or(""),
            optional_text(&atoms["host"]).unwrap_or(""),
            "host of {source:?}"
        );
    }
    println!("userhost-split: {} cases", cases.len());
}

#[test]
fn mask_match() {
    let cases = load_cases("mask-match.yaml");
    let mut checked = 0;
    for case in &cases {
        let mask = text(&case["mask"], "mask");
        for text in text_list(&case["matches"]) {
            assert!(wildcard_match(mask, text), "{mask:?} should match {text:?}");
            checked += 1;
        }
        for text in text_list(&case["fails"]) {
            assert!(
                !wildcard_match(mask, text),
                "{mask:?} should not match {text:?}"
            );
            checked += 1;
        }
    }
    assert!(
        checked > cases.len(),
        "mask vectors had no matches/fails lists"
    );
    println!("mask-match: {} masks, {checked} checks", cases.len());
}

#[test]
fn validate_hostname() {
    let cases = load_cases("validate-hostname.yaml");
    for case in &cases {
        let host = text(&case["host"], "host");
        let valid = case["valid"]
            .as_bool()
            .unwrap_or_else(|| panic!("`valid` of {host:?} should be true or false"));
        assert_eq!(validate::hostname(host), valid, "hostname {host:?}");
    }
    println!("validate-hostname: {} cases", cases.len());
}
