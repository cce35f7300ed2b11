//! CHATHISTORY against the real server, the parts ircv3.net/specs/extensions/chathistory and
//! real clients found wrong: `AROUND` centred on its reference (a timestamp too), `TARGETS`
//! listing the conversations whose latest activity is in the window, and messages to yourself
//! delivered, stored once and returned once. `PARLEY_TEST_STORE=postgres` runs them on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, TestServer};

const CAPS: &str = "server-time message-tags echo-message batch draft/chathistory";

/// A logged-in client that negotiated `caps`: registers the account `nick`, holding
/// registration with CAP until it is done.
async fn account(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut c = server.connect().await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send(&format!("REGISTER * * {nick}-password")).await;
    c.expect(|l| l.contains("REGISTER SUCCESS")).await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The texts of the PRIVMSGs among `lines`.
fn texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains(" PRIVMSG "))
        .map(|l| l.rsplit(" :").next().unwrap_or("").to_string())
        .collect()
}

/// Send `text` to `target` and return the echo's (msgid, time). Waits a few milliseconds
/// after, so the next message has a time of its own (references by timestamp need that).
async fn say(client: &mut Client, target: &str, text: &str) -> (String, String) {
    client.send(&format!("PRIVMSG {target} :{text}")).await;
    let echo = client
        .expect(|l| l.ends_with(&format!(" PRIVMSG {target} :{text}")))
        .await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    (
        tag(&echo, "msgid").expect("msgid").to_string(),
        tag(&echo, "time").expect("time").to_string(),
    )
}

#[tokio::test]
async fn around_is_centred_on_its_reference_a_timestamp_too() {
    let server = TestServer::start().await;
    let mut alice = account(&server, "alice", CAPS).await;
    alice.send("JOIN #around").await;
    alice.expect(|l| l.contains(" 366 ")).await;
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.push(say(&mut alice, "#around", &format!("line {i}")).await);
    }
    // "AROUND: Request a number of messages before and after the timestamp or msgid with the
    // total number of returned messages not exceeding limit." Parley returns the reference and
    // up to limit/2 after it, the rest before it.
    let cases = [
        (format!("msgid={}", sent[7].0), 1, vec!["line 7"]),
        (
            format!("msgid={}", sent[7].0),
            3,
            vec!["line 6", "line 7", "line 8"],
        ),
        (
            format!("msgid={}", sent[4].0),
            4,
            vec!["line 3", "line 4", "line 5", "line 6"],
        ),
        // A timestamp names the message said at that time (a client's reference is usually
        // a message's own `time` tag): the page is centred on it, not on the gap before it.
        (format!("timestamp={}", sent[7].1), 1, vec!["line 7"]),
        (
            format!("timestamp={}", sent[7].1),
            3,
            vec!["line 6", "line 7", "line 8"],
        ),
        (
            format!("timestamp={}", sent[0].1),
            3,
            vec!["line 0", "line 1"],
        ),
    ];
    for (reference, limit, expected) in cases {
        alice
            .send(&format!("CHATHISTORY AROUND #around {reference} {limit}"))
            .await;
        assert_eq!(
            texts(&alice.sync().await),
            expected,
            "AROUND {reference} {limit}"
        );
    }
}

/// `CHATHISTORY TARGETS` over the window: each `<target> <time>` of its batch, in order.
async fn targets(client: &mut Client, from: &str, to: &str, limit: usize) -> Vec<String> {
    client
        .send(&format!(
            "CHATHISTORY TARGETS timestamp={from} timestamp={to} {limit}"
        ))
        .await;
    let lines = client.sync().await;
    assert!(lines[0].contains(" BATCH +"), "{lines:?}");
    let batch = lines[0]
        .split(" BATCH +")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("batch id")
        .to_string();
    let prefix = format!("@batch={batch} :parley.local CHATHISTORY TARGETS ");
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| l.strip_prefix(&prefix).expect(l).to_string())
        .collect()
}

#[tokio::test]
async fn targets_lists_conversations_whose_latest_message_is_in_the_window() {
    let server = TestServer::start().await;
    let mut alice = account(&server, "alice", CAPS).await;
    let mut bob = account(&server, "bob", "batch").await;
    for channel in ["#first", "#second"] {
        alice.send(&format!("JOIN {channel}")).await;
        alice.expect(|l| l.contains(" 366 ")).await;
    }
    let (_, first_early) = say(&mut alice, "#first", "early").await;
    let (_, second) = say(&mut alice, "#second", "middle").await;
    let (_, private) = say(&mut alice, "bob", "psst").await;
    let (_, first_late) = say(&mut alice, "#first", "late").await;
    bob.sync().await;
    const EPOCH: &str = "2000-01-01T00:00:00.000Z";
    const FUTURE: &str = "2100-01-01T00:00:00.000Z";
    // "TARGETS: Request a list of targets (channels and direct message conversations) whose
    // latest message falls between the two timestamps", in the order of that latest message.
    // #first was spoken in again after the window ends, so its latest message is not in it.
    assert_eq!(
        targets(&mut alice, EPOCH, &first_late, 10).await,
        [format!("#second {second}"), format!("bob {private}")]
    );
    assert_eq!(
        targets(&mut alice, EPOCH, FUTURE, 10).await,
        [
            format!("#second {second}"),
            format!("bob {private}"),
            format!("#first {first_late}")
        ]
    );
    // As with BETWEEN, the limit counts from the first timestamp given.
    assert_eq!(
        targets(&mut alice, EPOCH, FUTURE, 1).await,
        [format!("#second {second}")]
    );
    assert_eq!(
        targets(&mut alice, FUTURE, EPOCH, 2).await,
        [format!("bob {private}"), format!("#first {first_late}")]
    );
    // The window's start is exclusive too: nothing before #first's early line counts.
    assert!(first_early < second);
    assert_eq!(
        targets(&mut alice, &first_late, FUTURE, 10).await,
        Vec::<String>::new()
    );
    // bob sees his side of the private conversation.
    assert_eq!(
        targets(&mut bob, EPOCH, FUTURE, 10).await,
        [format!("alice {private}")]
    );
}

#[tokio::test]
async fn messages_to_yourself_are_delivered_stored_once_and_returned_once() {
    let server = TestServer::start().await;
    let mut alice = account(
        &server,
        "alice",
        "server-time message-tags batch labeled-response draft/chathistory",
    )
    .await;
    let me = "alice!~alice@127.0.0.1";
    let privmsgs = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.contains(" PRIVMSG "))
            .collect()
    };
    // RFC 2812 3.3.1: PRIVMSG goes to "<msgtarget>", which may be the sender's own nick; the
    // sender is then its recipient and gets the message once.
    alice.send("PRIVMSG alice :first").await;
    let first = privmsgs(alice.sync().await);
    assert_eq!(first.len(), 1, "{first:?}");
    let msgid = tag(&first[0], "msgid").expect("msgid");
    let time = tag(&first[0], "time").expect("time");
    assert_eq!(
        first[0],
        format!("@msgid={msgid};time={time} :{me} PRIVMSG alice :first")
    );
    // echo-message: "If enabled, servers MUST send PRIVMSG and NOTICE messages back to the
    // client that sent them": the echo besides the delivery, the two the same.
    alice.send("CAP REQ echo-message").await;
    alice.expect(|l| l.contains(" ACK ")).await;
    alice.send("PRIVMSG alice :second").await;
    let second = privmsgs(alice.sync().await);
    assert_eq!(second.len(), 2, "{second:?}");
    assert_eq!(second[0], second[1]);
    // labeled-response: exactly one of the two carries the label (the echo).
    alice.send("@label=xyz PRIVMSG alice :third").await;
    let third = privmsgs(alice.sync().await);
    assert_eq!(third.len(), 2, "{third:?}");
    assert_eq!(
        third
            .iter()
            .filter(|l| tag(l, "label") == Some("xyz"))
            .count(),
        1,
        "{third:?}"
    );
    // Stored once each, and returned once each.
    alice.send("CHATHISTORY LATEST alice * 10").await;
    assert_eq!(
        texts(&alice.sync().await),
        ["first", "second", "third"],
        "each message once"
    );
}
