//! IRCv3 `draft/multiline` (ircv3.net/specs/extensions/multiline) against the real server: the
//! capability's limits, a batch delivered whole to clients that have it and line by line to the
//! rest, private batches, history keeping each line, every FAIL BATCH code, and the same over
//! WebSocket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command_of, Client, TestServer};

const MULTI: &str = "batch message-tags echo-message draft/multiline";

async fn with_caps_on(mut c: Client, nick: &str, caps: &str) -> Client {
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

async fn with_caps(server: &TestServer, nick: &str, caps: &str) -> Client {
    with_caps_on(server.connect().await, nick, caps).await
}

/// The tags of a line (without '@'), and the rest.
fn split_tags(line: &str) -> (&str, &str) {
    match line.strip_prefix('@') {
        Some(tagged) => tagged.split_once(' ').unwrap_or((tagged, "")),
        None => ("", line),
    }
}

fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    split_tags(line)
        .0
        .split(';')
        .find_map(|t| t.strip_prefix(&format!("{key}=")))
}

/// The spec's example batch: "hello", then "how is " and "everyone?" joined.
async fn send_example(c: &mut Client, target: &str) {
    c.send(&format!("BATCH +123 draft/multiline {target}"))
        .await;
    c.send(&format!("@batch=123 PRIVMSG {target} hello")).await;
    c.send(&format!("@batch=123 privmsg {target} :how is "))
        .await;
    c.send(&format!(
        "@batch=123;draft/multiline-concat PRIVMSG {target} :everyone?"
    ))
    .await;
    c.send("BATCH -123").await;
}

/// alice (sender), bob (has multiline), carol (has not), all in #room and quiet.
async fn room(server: &TestServer) -> (Client, Client, Client) {
    let mut alice = with_caps(server, "alice", MULTI).await;
    let mut bob = with_caps(server, "bob", MULTI).await;
    let mut carol = with_caps(server, "carol", "message-tags").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.send("JOIN #room").await;
        c.sync().await;
    }
    for c in [&mut alice, &mut bob, &mut carol] {
        c.sync().await;
    }
    (alice, bob, carol)
}

#[tokio::test]
async fn the_capability_names_its_limits() {
    let server = TestServer::start_with(|c| {
        c.limits.multiline_max_bytes = 2048;
        c.limits.multiline_max_lines = 7;
    })
    .await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    // "The capability MUST be advertised by servers with a REQUIRED value": `max-bytes`
    // (REQUIRED) and `max-lines` (RECOMMENDED).
    assert!(
        ls.split([' ', ':'])
            .any(|cap| cap == "draft/multiline=max-bytes=2048,max-lines=7"),
        "{ls}"
    );
}

#[tokio::test]
async fn a_batch_arrives_whole_with_the_capability_and_line_by_line_without() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, mut carol) = room(&server).await;
    send_example(&mut alice, "#room").await;
    // The sender's echo is the same batch (and once it is back, everyone has it).
    let echo = alice.sync().await;
    assert_eq!(echo.len(), 5, "{echo:#?}");

    // "Server sending the same batch": the opening BATCH carries the msgid and account tags,
    // the lines keep the client's composition and its concat tags.
    let lines = bob.sync().await;
    let opening = &lines[0];
    let msgid = tag(opening, "msgid")
        .expect("msgid on the opening BATCH")
        .to_string();
    let (_, opening) = split_tags(opening);
    let reference = opening
        .strip_prefix(":alice!~alice@127.0.0.1 BATCH +")
        .and_then(|rest| rest.strip_suffix(" draft/multiline #room"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(
        lines[1..],
        [
            format!("@batch={reference} :alice!~alice@127.0.0.1 PRIVMSG #room :hello"),
            format!("@batch={reference} :alice!~alice@127.0.0.1 PRIVMSG #room :how is "),
            format!(
                "@batch={reference};draft/multiline-concat :alice!~alice@127.0.0.1 PRIVMSG #room :everyone?"
            ),
            format!(":alice!~alice@127.0.0.1 BATCH -{reference}"),
        ]
    );
    assert_eq!(tag(&echo[0], "msgid"), Some(msgid.as_str()));

    // "When delivering multiline batches to clients that have not negotiated the multiline
    // capability, servers MUST deliver the component messages without using a multiline
    // BATCH", and "Servers MUST only include a message ID on the first message of a batch
    // when sending a fallback to non-supporting clients."
    let lines = carol.sync().await;
    assert_eq!(
        lines,
        [
            format!("@msgid={msgid} :alice!~alice@127.0.0.1 PRIVMSG #room :hello"),
            ":alice!~alice@127.0.0.1 PRIVMSG #room :how is ".to_string(),
            ":alice!~alice@127.0.0.1 PRIVMSG #room :everyone?".to_string(),
        ]
    );
}

#[tokio::test]
async fn blank_lines_reach_only_clients_with_the_capability_and_history_keeps_each_line() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, mut carol) = room(&server).await;
    alice.send("BATCH +b draft/multiline #room").await;
    alice.send("@batch=b PRIVMSG #room :first").await;
    // "Servers MUST NOT reject blank lines."
    alice.send("@batch=b PRIVMSG #room :").await;
    alice.send("@batch=b PRIVMSG #room :third").await;
    alice.send("BATCH -b").await;
    alice.sync().await;
    let texts = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| command_of(l) == "PRIVMSG")
            .map(|l| {
                l.split_once(" PRIVMSG #room :")
                    .map(|x| x.1)
                    .unwrap_or("?")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(texts(&bob.sync().await), ["first", "", "third"]);
    // "Servers MUST NOT send blank lines to clients that have not negotiated the multiline
    // capability."
    assert_eq!(texts(&carol.sync().await), ["first", "third"]);

    // History keeps each line as a message of its own.
    let mut reader = with_caps(&server, "reader", "batch server-time draft/chathistory").await;
    reader.send("JOIN #room").await;
    reader.sync().await;
    reader.send("CHATHISTORY LATEST #room * 10").await;
    let history = reader.sync().await;
    assert_eq!(texts(&history), ["first", "", "third"], "{history:#?}");
}

#[tokio::test]
async fn a_private_batch_reaches_its_recipient() {
    let server = TestServer::start().await;
    let mut alice = with_caps(&server, "alice", MULTI).await;
    let mut bob = with_caps(&server, "bob", MULTI).await;
    alice.sync().await;
    send_example(&mut alice, "bob").await;
    alice.sync().await;
    let lines = bob.sync().await;
    let commands: Vec<&str> = lines.iter().map(|l| command_of(l)).collect();
    assert_eq!(
        commands,
        ["BATCH", "PRIVMSG", "PRIVMSG", "PRIVMSG", "BATCH"],
        "{lines:#?}"
    );
    assert!(lines[0].ends_with(" draft/multiline bob"), "{lines:#?}");
}

#[tokio::test]
async fn bad_batches_fail_with_the_spec_codes() {
    let server = TestServer::start_with(|c| {
        c.limits.multiline_max_bytes = 512;
        c.limits.multiline_max_lines = 3;
    })
    .await;
    let (mut alice, mut bob, _carol) = room(&server).await;

    // "Invalid multiline batch target"
    alice.send("BATCH +456 draft/multiline #room").await;
    alice.send("@batch=456 PRIVMSG #bar hello").await;
    alice.send("BATCH -456").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local FAIL BATCH MULTILINE_INVALID_TARGET #room #bar :Invalid multiline target"]
    );

    // "`max-lines` exceeded multiline batch"
    alice.send("BATCH +abc draft/multiline #room").await;
    for i in 0..5 {
        alice
            .send(&format!("@batch=abc PRIVMSG #room :line {i}"))
            .await;
    }
    alice.send("BATCH -abc").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local FAIL BATCH MULTILINE_MAX_LINES 3 :Multiline batch max-lines exceeded"]
    );

    // "`max-bytes` exceeded multiline batch": each joining line feed counts one byte.
    alice.send("BATCH +big draft/multiline #room").await;
    alice
        .send(&format!("@batch=big PRIVMSG #room :{}", "x".repeat(300)))
        .await;
    alice
        .send(&format!("@batch=big PRIVMSG #room :{}", "y".repeat(212)))
        .await;
    alice.send("BATCH -big").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local FAIL BATCH MULTILINE_MAX_BYTES 512 :Multiline batch max-bytes exceeded"]
    );

    // "`MULTILINE_INVALID`: any other error": only blank lines, a concat tag on a blank line,
    // an end that was never opened.
    for batch in [
        vec![
            "BATCH +e draft/multiline #room",
            "@batch=e PRIVMSG #room :",
            "BATCH -e",
        ],
        vec![
            "BATCH +f draft/multiline #room",
            "@batch=f PRIVMSG #room :a",
            "@batch=f;draft/multiline-concat PRIVMSG #room :",
            "BATCH -f",
        ],
        vec!["BATCH -never"],
    ] {
        for line in &batch {
            alice.send(line).await;
        }
        assert_eq!(
            alice.sync().await,
            [":parley.local FAIL BATCH MULTILINE_INVALID :Invalid multiline batch"],
            "{batch:?}"
        );
    }
    // Nothing of the failed batches reached anyone.
    assert_eq!(bob.sync().await, Vec::<String>::new());

    // A refused channel is refused as a PRIVMSG would be.
    alice.send("BATCH +n draft/multiline #nowhere").await;
    alice.send("@batch=n PRIVMSG #nowhere :hi").await;
    alice.send("BATCH -n").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local 403 alice #nowhere :No such channel"]
    );
}

#[tokio::test]
async fn over_websocket_too() {
    let server = TestServer::start_with(|c| c.web.listen = vec!["127.0.0.1:0".into()]).await;
    let mut bob = with_caps(&server, "bob", MULTI).await;
    bob.send("JOIN #room").await;
    bob.sync().await;
    let ws = common::websocket::connect_websocket(&server).await;
    let mut browser = with_caps_on(ws, "webby", MULTI).await;
    browser.send("JOIN #room").await;
    browser.sync().await;
    bob.sync().await;

    send_example(&mut browser, "#room").await;
    browser.sync().await;
    let lines = bob.sync().await;
    let commands: Vec<&str> = lines.iter().map(|l| command_of(l)).collect();
    assert_eq!(
        commands,
        ["BATCH", "PRIVMSG", "PRIVMSG", "PRIVMSG", "BATCH"],
        "{lines:#?}"
    );
    assert!(
        lines[3].ends_with(" PRIVMSG #room :everyone?"),
        "{lines:#?}"
    );
    assert!(lines[3].contains("draft/multiline-concat"), "{lines:#?}");
}

/// In a cluster the whole batch travels the bus as one event: members on every node get it as
/// a batch (the sender's echo too), those without the capability line by line. Needs
/// nats-server and PostgreSQL (skips without them).
#[tokio::test]
async fn in_a_cluster_the_batch_reaches_every_node() {
    let Some(cluster) = common::cluster::Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice = with_caps(&cluster.nodes[0], "alice", MULTI).await;
    let mut bob = with_caps(&cluster.nodes[1], "bob", MULTI).await;
    let mut carol = with_caps(&cluster.nodes[1], "carol", "message-tags").await;
    bob.await_whois("alice").await;
    alice.await_whois("carol").await;
    alice.send("JOIN #room").await;
    alice.sync().await;
    for c in [&mut bob, &mut carol] {
        c.send("JOIN #room").await;
        c.sync().await;
    }
    alice
        .expect(|l| l.starts_with(":carol!") && l.ends_with(" JOIN #room"))
        .await;
    bob.expect(|l| l.starts_with(":carol!") && l.ends_with(" JOIN #room"))
        .await;

    send_example(&mut alice, "#room").await;
    for c in [&mut alice, &mut bob] {
        let opening = c.expect(|l| command_of(l) == "BATCH").await;
        assert!(opening.ends_with(" draft/multiline #room"), "{opening}");
        let mut rest = Vec::new();
        for _ in 0..4 {
            rest.push(c.recv().await);
        }
        let commands: Vec<&str> = rest.iter().map(|l| command_of(l)).collect();
        assert_eq!(
            commands,
            ["PRIVMSG", "PRIVMSG", "PRIVMSG", "BATCH"],
            "{rest:#?}"
        );
        assert!(rest[2].contains("draft/multiline-concat"), "{rest:#?}");
    }
    let mut texts = Vec::new();
    while texts.len() < 3 {
        let line = carol.expect(|l| command_of(l) == "PRIVMSG").await;
        texts.push(line.split_once(" PRIVMSG #room :").map(|x| x.1.to_string()));
    }
    assert_eq!(
        texts,
        [
            Some("hello".into()),
            Some("how is ".into()),
            Some("everyone?".into())
        ]
    );
}

/// "Servers MUST only include the label tag on the opening BATCH command when replying to a
/// client using `echo-message`" (labeled-response).
#[tokio::test]
async fn the_label_rides_on_the_echoed_opening_batch() {
    let server = TestServer::start().await;
    let mut alice = with_caps(&server, "alice", &format!("{MULTI} labeled-response")).await;
    alice.send("JOIN #room").await;
    alice.sync().await;
    alice
        .send("@label=ml1 BATCH +x draft/multiline #room")
        .await;
    alice.send("@batch=x PRIVMSG #room :one").await;
    alice.send("@batch=x PRIVMSG #room :two").await;
    alice.send("BATCH -x").await;
    let echo = alice.sync().await;
    assert_eq!(echo.len(), 4, "{echo:#?}");
    assert_eq!(tag(&echo[0], "label"), Some("ml1"), "{echo:#?}");
    assert!(
        echo[1..].iter().all(|l| tag(l, "label").is_none()),
        "{echo:#?}"
    );
}
