//! IRCv3 `draft/message-redaction` (ircv3.net/specs/extensions/message-redaction) against the
//! real server: the author redacts its own message, a channel operator anyone's in its channel,
//! nobody else; REDACT reaches only those with the capability; the message leaves CHATHISTORY;
//! each FAIL REDACT code; private conversations; and the same over WebSocket.
//! (tests/redaction.rs is about secrets kept out of logs, not this.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command_of, Client, TestServer};

const CAP: &str = "draft/message-redaction";
/// What a modern client asks for: ids on messages, its own back, history.
const MODERN: &str =
    "server-time message-tags echo-message batch draft/chathistory draft/message-redaction";

/// Registered as a guest with `caps`, on `c`.
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

/// A line without its message tags.
fn untagged(line: &str) -> &str {
    match line.strip_prefix('@') {
        Some(tagged) => tagged.split_once(' ').map_or("", |(_, rest)| rest),
        None => line,
    }
}

/// The `msgid` tag of a line.
fn msgid(line: &str) -> String {
    let tags = line.strip_prefix('@').and_then(|t| t.split(' ').next());
    tags.into_iter()
        .flat_map(|t| t.split(';'))
        .find_map(|t| t.strip_prefix("msgid="))
        .unwrap_or_else(|| panic!("no msgid on {line}"))
        .to_string()
}

/// Send a message and return its id, from the echo.
async fn say(c: &mut Client, target: &str, text: &str) -> String {
    c.send(&format!("PRIVMSG {target} :{text}")).await;
    let echo = c
        .expect(|l| l.contains(&format!(" PRIVMSG {target} :{text}")))
        .await;
    msgid(&echo)
}

/// The texts CHATHISTORY LATEST returns for `target`.
async fn history(c: &mut Client, target: &str) -> Vec<String> {
    c.send(&format!("CHATHISTORY LATEST {target} * 50")).await;
    c.sync()
        .await
        .iter()
        .filter(|l| command_of(l) == "PRIVMSG")
        .filter_map(|l| {
            untagged(l)
                .split_once(" :")
                .map(|(_, text)| text.to_string())
        })
        .collect()
}

/// alice (first, so operator of #room), bob and carol (without the capability) in #room, all
/// past each other's joins.
async fn room(server: &TestServer) -> (Client, Client, Client) {
    let mut alice = with_caps(server, "alice", MODERN).await;
    alice.send("JOIN #room").await;
    alice.sync().await;
    let mut bob = with_caps(server, "bob", MODERN).await;
    bob.send("JOIN #room").await;
    bob.sync().await;
    let mut carol = with_caps(server, "carol", "message-tags echo-message").await;
    carol.send("JOIN #room").await;
    carol.sync().await;
    alice.sync().await;
    bob.sync().await;
    (alice, bob, carol)
}

#[tokio::test]
async fn the_capability_is_advertised() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(ls.split([' ', ':']).any(|cap| cap == CAP), "{ls}");

    // Without history nothing says who wrote a message: not offered.
    let server = TestServer::start_with(|c| c.history.enabled = false).await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(!ls.contains(CAP), "{ls}");
}

#[tokio::test]
async fn the_author_redacts_its_message_and_it_leaves_history() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, mut carol) = room(&server).await;
    let keep = say(&mut bob, "#room", "keep me").await;
    let oops = say(&mut bob, "#room", "oops").await;
    assert_ne!(keep, oops);
    for c in [&mut alice, &mut carol] {
        c.sync().await;
    }

    // "If the client is authorised to delete the message, the server: SHOULD forward this
    // `REDACT`, with an appropriate prefix, to the target recipients that have negotiated the
    // `draft/message-redaction` capability, in the same way as PRIVMSG messages."
    bob.send(&format!("REDACT #room {oops} :typo")).await;
    let expected = format!(":bob!~bob@127.0.0.1 REDACT #room {oops} :typo");
    let to_bob = bob.recv().await;
    assert_eq!(untagged(&to_bob), expected);
    let to_alice = alice.recv().await;
    assert_eq!(untagged(&to_alice), expected);
    // The REDACT has an id of its own, as in the spec's examples.
    assert_ne!(msgid(&to_alice), oops);
    // "MUST not forward this `REDACT` to target recipients that have not negotiated this
    // capability".
    assert_eq!(carol.sync().await, Vec::<String>::new());

    // "After a message is redacted, chathistory responses SHOULD either: exclude it entirely".
    assert_eq!(history(&mut alice, "#room").await, ["keep me"]);

    // Gone is gone: redacting it again finds nothing.
    bob.send(&format!("REDACT #room {oops}")).await;
    assert_eq!(
        bob.recv().await,
        format!(
            ":parley.local FAIL REDACT UNKNOWN_MSGID #room {oops} :This message does not exist or is too old"
        )
    );
}

#[tokio::test]
async fn operators_may_redact_anyones_members_only_their_own() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, mut carol) = room(&server).await;
    let from_alice = say(&mut alice, "#room", "operator speaking").await;
    let spam = say(&mut carol, "#room", "join my network").await;
    alice.sync().await;
    bob.sync().await;

    // `FAIL REDACT REDACT_FORBIDDEN <target> <target-msgid> :You are not authorised to delete
    // this message`
    bob.send(&format!("REDACT #room {from_alice}")).await;
    assert_eq!(
        bob.recv().await,
        format!(
            ":parley.local FAIL REDACT REDACT_FORBIDDEN #room {from_alice} :You are not authorised to delete this message"
        )
    );

    // "Deleting someone else's PRIVMSG": "Allowing channel moderators ... to delete unwelcome
    // messages from others".
    alice.send(&format!("REDACT #room {spam} spam")).await;
    let expected = format!(":alice!~alice@127.0.0.1 REDACT #room {spam} :spam");
    assert_eq!(untagged(&alice.recv().await), expected);
    assert_eq!(untagged(&bob.recv().await), expected);
    assert_eq!(history(&mut bob, "#room").await, ["operator speaking"]);
}

#[tokio::test]
async fn unknown_ids_and_targets_fail_alike() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, _carol) = room(&server).await;
    bob.send("JOIN #other").await;
    bob.sync().await;
    let elsewhere = say(&mut bob, "#other", "in another room").await;
    alice.sync().await;

    let cases = [
        // `FAIL REDACT UNKNOWN_MSGID <target> <target-msgid> :This message does not exist or is
        // too old`, for an id nobody sent and for one sent elsewhere (no probing other rooms).
        (
            "REDACT #room nosuchid".to_string(),
            "FAIL REDACT UNKNOWN_MSGID #room nosuchid :This message does not exist or is too old"
                .to_string(),
        ),
        (
            format!("REDACT #room {elsewhere}"),
            format!("FAIL REDACT UNKNOWN_MSGID #room {elsewhere} :This message does not exist or is too old"),
        ),
        // `FAIL REDACT INVALID_TARGET <target> :You cannot delete messages from <target>`: a
        // channel this user is not in, or none at all.
        (
            format!("REDACT #other {elsewhere}"),
            "FAIL REDACT INVALID_TARGET #other :You cannot delete messages from #other".to_string(),
        ),
        (
            "REDACT #nowhere x".to_string(),
            "FAIL REDACT INVALID_TARGET #nowhere :You cannot delete messages from #nowhere"
                .to_string(),
        ),
    ];
    for (command, expected) in cases {
        alice.send(&command).await;
        assert_eq!(
            alice.recv().await,
            format!(":parley.local {expected}"),
            "{command}"
        );
    }
    alice.send("REDACT #room").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 461 alice REDACT :Not enough parameters"
    );
    // The message elsewhere is still there.
    assert_eq!(history(&mut bob, "#other").await, ["in another room"]);
}

#[tokio::test]
async fn in_private_only_the_author_redacts() {
    let server = TestServer::start().await;
    let mut alice = with_caps(&server, "alice", MODERN).await;
    let mut bob = with_caps(&server, "bob", MODERN).await;
    alice.sync().await;
    let secret = say(&mut alice, "bob", "wrong window").await;
    bob.expect(|l| l.contains("PRIVMSG bob :wrong window"))
        .await;

    bob.send(&format!("REDACT alice {secret}")).await;
    assert_eq!(
        bob.recv().await,
        format!(
            ":parley.local FAIL REDACT REDACT_FORBIDDEN alice {secret} :You are not authorised to delete this message"
        )
    );

    alice.send(&format!("REDACT bob {secret}")).await;
    let expected = format!(":alice!~alice@127.0.0.1 REDACT bob {secret}");
    assert_eq!(untagged(&alice.recv().await), expected);
    assert_eq!(untagged(&bob.recv().await), expected);
    assert!(history(&mut bob, "alice").await.is_empty());
}

#[tokio::test]
async fn over_websocket_too() {
    let server = TestServer::start_with(|c| c.web.listen = vec!["127.0.0.1:0".into()]).await;
    let mut alice = with_caps(&server, "alice", MODERN).await;
    alice.send("JOIN #room").await;
    alice.sync().await;
    let ws = common::websocket::connect_websocket(&server).await;
    let mut browser = with_caps_on(ws, "webby", MODERN).await;
    browser.send("JOIN #room").await;
    browser.sync().await;
    alice.sync().await;

    let id = say(&mut browser, "#room", "sent from a browser").await;
    alice.expect(|l| l.contains(" :sent from a browser")).await;
    browser.send(&format!("REDACT #room {id}")).await;
    let expected = format!(":webby!~webby@127.0.0.1 REDACT #room {id}");
    assert_eq!(untagged(&browser.recv().await), expected);
    assert_eq!(untagged(&alice.recv().await), expected);
    assert!(history(&mut alice, "#room").await.is_empty());
}

/// In a cluster the members on other nodes are told too, and the message leaves the one
/// database. Needs nats-server and PostgreSQL (skips without them).
#[tokio::test]
async fn members_on_other_nodes_are_told() {
    let Some(cluster) = common::cluster::Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice = with_caps(&cluster.nodes[0], "alice", MODERN).await;
    let mut bob = with_caps(&cluster.nodes[1], "bob", MODERN).await;
    bob.await_whois("alice").await;
    alice.await_whois("bob").await;
    alice.send("JOIN #room").await;
    alice.sync().await;
    bob.send("JOIN #room").await;
    bob.sync().await;
    alice
        .expect(|l| untagged(l).starts_with(":bob!") && l.ends_with(" JOIN #room"))
        .await;

    let id = say(&mut alice, "#room", "across nodes").await;
    bob.expect(|l| l.ends_with(" :across nodes")).await;
    alice.send(&format!("REDACT #room {id}")).await;
    let expected = format!(":alice!~alice@127.0.0.1 REDACT #room {id}");
    assert_eq!(untagged(&alice.recv().await), expected);
    let told = bob.expect(|l| command_of(l) == "REDACT").await;
    assert_eq!(untagged(&told), expected);
    assert!(history(&mut bob, "#room").await.is_empty());
}
