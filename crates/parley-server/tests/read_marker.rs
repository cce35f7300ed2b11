//! IRCv3 `draft/read-marker` (ircv3.net/specs/extensions/read-marker) against the real server:
//! MARKREAD set and get, the marker that never moves back nor into the future, the marker a
//! JOIN owes before its end of NAMES, the account's other sessions told, other accounts never,
//! guests refused, and the same over WebSocket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command_of, sasl_plain, Client, TestServer};

const CAP: &str = "draft/read-marker";

/// Log in to `account` (password `<account>-pw`) as `nick` with SASL, asking for `caps` too.
async fn session(server: &TestServer, nick: &str, account: &str, caps: &str) -> Client {
    log_in(server.connect().await, nick, account, caps).await
}

/// [`session`] on a connection already made (over WebSocket, say).
async fn log_in(mut c: Client, nick: &str, account: &str, caps: &str) -> Client {
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send(&format!("CAP REQ :sasl {caps}")).await;
    c.expect(|l| l.contains(" CAP ") && l.contains(" ACK "))
        .await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect(|l| l == "AUTHENTICATE +").await;
    c.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain(account, &format!("{account}-pw"))
    ))
    .await;
    c.expect_numeric("903").await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

/// A guest asking for `caps`.
async fn guest(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut c = server.connect().await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send("CAP END").await;
    c.register(nick).await;
    c
}

#[tokio::test]
async fn the_capability_is_advertised() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(ls.split([' ', ':']).any(|cap| cap == CAP), "{ls}");
}

#[tokio::test]
async fn a_marker_is_set_read_back_and_never_moves_back() {
    let server = TestServer::start().await;
    server.create_account("alice", "alice-pw").await;
    let mut alice = session(&server, "alice", "alice", CAP).await;

    // "If there is no known last message read timestamp, the `timestamp` parameter is a
    // literal `*`."
    alice.send("MARKREAD #room").await;
    assert_eq!(alice.recv().await, ":parley.local MARKREAD #room *");

    // "The server MUST reply to a successful `MARKREAD` client set command using a
    // `MARKREAD` server command".
    alice
        .send("MARKREAD #room timestamp=2024-01-04T14:33:26.123Z")
        .await;
    assert_eq!(
        alice.recv().await,
        ":parley.local MARKREAD #room timestamp=2024-01-04T14:33:26.123Z"
    );
    // "The server MUST reply to a successful `MARKREAD` get command using a `MARKREAD` server
    // command", and a target is one buffer whatever its case.
    alice.send("MARKREAD #ROOM").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local MARKREAD #ROOM timestamp=2024-01-04T14:33:26.123Z"
    );

    // "If a client sends a `MARKREAD` command with a timestamp that is below or equal to the
    // current known timestamp of the server, the server SHOULD reply with a `MARKREAD` command
    // with the newer, previous value that was stored and ignore the client timestamp."
    alice
        .send("MARKREAD #room timestamp=2023-05-01T00:00:00.000Z")
        .await;
    assert_eq!(
        alice.recv().await,
        ":parley.local MARKREAD #room timestamp=2024-01-04T14:33:26.123Z"
    );

    // "it can clamp it between the last read timestamp and the current time": the future is
    // not read yet.
    alice
        .send("MARKREAD #room timestamp=2999-01-01T00:00:00.000Z")
        .await;
    let clamped = alice.recv().await;
    let stamp = clamped
        .strip_prefix(":parley.local MARKREAD #room timestamp=")
        .expect(&clamped);
    assert!(stamp.starts_with("20") && stamp < "2999", "{clamped}");

    // A private conversation keeps its own marker, and the account keeps them all: a new
    // connection of the account reads them back from the store.
    alice
        .send("MARKREAD bob timestamp=2024-02-02T02:02:02.002Z")
        .await;
    assert_eq!(
        alice.recv().await,
        ":parley.local MARKREAD bob timestamp=2024-02-02T02:02:02.002Z"
    );
    alice.send("QUIT").await;
    alice.expect_closed().await;
    let mut again = session(&server, "alice", "alice", "").await;
    again.send("MARKREAD Bob").await;
    assert_eq!(
        again.recv().await,
        ":parley.local MARKREAD Bob timestamp=2024-02-02T02:02:02.002Z"
    );
}

#[tokio::test]
async fn join_sends_the_marker_before_the_end_of_names() {
    let server = TestServer::start().await;
    server.create_account("alice", "alice-pw").await;
    let mut alice = session(&server, "alice", "alice", CAP).await;
    alice
        .send("MARKREAD #room timestamp=2024-01-04T14:33:26.123Z")
        .await;
    alice.sync().await;

    // "after the server sends a server `JOIN` command to the client for a corresponding
    // channel, the server MUST send a `MARKREAD` command for that channel. The command MUST be
    // sent before the `RPL_ENDOFNAMES` reply for that channel following the `JOIN`."
    alice.send("JOIN #Room").await;
    let lines = alice.sync().await;
    let commands: Vec<&str> = lines.iter().map(|l| command_of(l)).collect();
    assert_eq!(commands, ["JOIN", "MARKREAD", "353", "366"], "{lines:#?}");
    assert_eq!(
        lines[1],
        ":parley.local MARKREAD #Room timestamp=2024-01-04T14:33:26.123Z"
    );

    // "Getting the read timestamp automatically for a channel without any set timestamp":
    // `MARKREAD #channel *`.
    alice.send("JOIN #fresh").await;
    let lines = alice.sync().await;
    let commands: Vec<&str> = lines.iter().map(|l| command_of(l)).collect();
    assert_eq!(commands, ["JOIN", "MARKREAD", "353", "366"], "{lines:#?}");
    assert_eq!(lines[1], ":parley.local MARKREAD #fresh *");

    // Without the capability, no MARKREAD at all.
    let mut plain = session(&server, "alice2", "alice", "").await;
    plain.send("JOIN #room").await;
    let lines = plain.sync().await;
    assert!(
        lines.iter().all(|l| command_of(l) != "MARKREAD"),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn the_accounts_other_sessions_learn_of_a_new_marker_and_nobody_else() {
    let server = TestServer::start().await;
    server.create_account("alice", "alice-pw").await;
    server.create_account("mallory", "mallory-pw").await;
    let mut phone = session(&server, "alice", "alice", CAP).await;
    let mut laptop = session(&server, "alice_", "alice", CAP).await;
    let mut old_client = session(&server, "alice__", "alice", "").await;
    let mut mallory = session(&server, "mallory", "mallory", CAP).await;
    // Past the lobby joins of the sessions after each.
    for c in [&mut phone, &mut laptop, &mut old_client, &mut mallory] {
        c.sync().await;
    }

    // "If the `draft/read-marker` capability is negotiated, after the last read timestamp of a
    // target changes, the server SHOULD send a `MARKREAD` command for that target to all the
    // clients of the user."
    phone
        .send("MARKREAD #room timestamp=2024-01-04T14:33:26.123Z")
        .await;
    let expected = ":parley.local MARKREAD #room timestamp=2024-01-04T14:33:26.123Z";
    assert_eq!(phone.recv().await, expected);
    assert_eq!(laptop.recv().await, expected);
    assert_eq!(laptop.sync().await, Vec::<String>::new());

    // A marker that does not move tells nobody else.
    phone
        .send("MARKREAD #room timestamp=2020-01-01T00:00:00.000Z")
        .await;
    assert_eq!(phone.recv().await, expected);
    assert_eq!(laptop.sync().await, Vec::<String>::new());

    // "The read markers sent by a user MUST NOT be disclosed to other users by the server
    // without an explicit opt-in": another account learns nothing, nor can it ask.
    assert_eq!(mallory.sync().await, Vec::<String>::new());
    mallory.send("MARKREAD #room").await;
    assert_eq!(mallory.recv().await, ":parley.local MARKREAD #room *");
    // A session without the capability is not sent what it did not ask for.
    assert_eq!(old_client.sync().await, Vec::<String>::new());
}

#[tokio::test]
async fn errors_and_guests() {
    let server = TestServer::start().await;
    server.create_account("alice", "alice-pw").await;
    let mut alice = session(&server, "alice", "alice", CAP).await;
    let cases = [
        // "If the server receives a `MARKREAD` command with missing parameters, the
        // `NEED_MORE_PARAMS` error code MUST be returned."
        ("MARKREAD", "FAIL MARKREAD NEED_MORE_PARAMS :Missing parameters"),
        // "If the selectors were invalid, the `INVALID_PARAMS` error code SHOULD be returned."
        (
            "MARKREAD #room yesterday",
            "FAIL MARKREAD INVALID_PARAMS yesterday :Invalid timestamp; use timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
        ),
        // "The timestamp MUST NOT be a literal `*`."
        (
            "MARKREAD #room *",
            "FAIL MARKREAD INVALID_PARAMS * :Invalid timestamp; use timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
        ),
        (
            "MARKREAD #room timestamp=soon",
            "FAIL MARKREAD INVALID_PARAMS timestamp=soon :Invalid timestamp; use timestamp=YYYY-MM-DDThh:mm:ss.sssZ",
        ),
        ("MARKREAD a,b", "FAIL MARKREAD INVALID_PARAMS a,b :Invalid target"),
    ];
    for (command, expected) in cases {
        alice.send(command).await;
        assert_eq!(
            alice.recv().await,
            format!(":parley.local {expected}"),
            "{command}"
        );
    }

    // A guest has no account to keep a marker in: "If the read timestamp cannot be set or
    // returned due to an error, the `INTERNAL_ERROR` error code SHOULD be returned."
    let mut visitor = guest(&server, "visitor", CAP).await;
    for command in [
        "MARKREAD #room",
        "MARKREAD #room timestamp=2024-01-04T14:33:26.123Z",
    ] {
        visitor.send(command).await;
        assert_eq!(
            visitor.recv().await,
            ":parley.local FAIL MARKREAD INTERNAL_ERROR #room :Read markers are kept per account: log in to use MARKREAD",
            "{command}"
        );
    }
    // The JOIN still owes its MARKREAD (the capability is negotiated): there is none, `*`.
    visitor.send("JOIN #room").await;
    let lines = visitor.sync().await;
    let commands: Vec<&str> = lines.iter().map(|l| command_of(l)).collect();
    assert_eq!(commands, ["JOIN", "MARKREAD", "353", "366"], "{lines:#?}");
    assert_eq!(lines[1], ":parley.local MARKREAD #room *");
}

/// In a cluster a second device that logs in on another node is carried to the node of the
/// account's user (`connection::bridged`): it learns of the marker as any session does, from
/// that node, and reads it from the one database on JOIN. Needs nats-server and PostgreSQL
/// (skips without them).
#[tokio::test]
async fn sessions_on_other_nodes_learn_of_a_new_marker() {
    let Some(cluster) = common::cluster::Cluster::start(2, |_, _| {}).await else {
        return;
    };
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    let mut phone = session(&cluster.nodes[0], "alice", "alice", CAP).await;
    let mut laptop = session(&cluster.nodes[1], "alice_", "alice", CAP).await;
    phone.sync().await;
    laptop.sync().await;

    // "after the last read timestamp of a target changes, the server SHOULD send a `MARKREAD`
    // command for that target to all the clients of the user."
    phone
        .send("MARKREAD #room timestamp=2024-01-04T14:33:26.123Z")
        .await;
    // The user's node (n1) serves both sessions.
    let expected = ":n1.parley.local MARKREAD #room timestamp=2024-01-04T14:33:26.123Z";
    assert_eq!(phone.recv().await, expected);
    assert_eq!(laptop.recv().await, expected);

    laptop.send("JOIN #room").await;
    laptop.expect(|l| l.contains(" JOIN #room")).await;
    assert_eq!(laptop.recv().await, expected);
    // The phone sees its user join, as another session does, and no marker again.
    let seen = phone.sync().await;
    assert!(seen.iter().any(|l| l.contains(" JOIN #room")), "{seen:#?}");
    assert!(!seen.iter().any(|l| l.contains("MARKREAD")), "{seen:#?}");
}

/// The same over the WebSocket transport: a browser's session sets the marker, the desktop's
/// learns it, and the browser's JOIN carries it before its end of NAMES.
#[tokio::test]
async fn over_websocket_too() {
    let server = TestServer::start_with(|c| {
        c.web.listen = vec!["127.0.0.1:0".into()];
        c.server.default_channel = String::new();
    })
    .await;
    server.create_account("alice", "alice-pw").await;
    let mut desktop = session(&server, "alice", "alice", CAP).await;
    let ws = common::websocket::connect_websocket(&server).await;
    let mut browser = log_in(ws, "alice_web", "alice", CAP).await;
    desktop.sync().await;

    browser
        .send("MARKREAD #room timestamp=2024-01-04T14:33:26.123Z")
        .await;
    let expected = ":parley.local MARKREAD #room timestamp=2024-01-04T14:33:26.123Z";
    assert_eq!(browser.recv().await, expected);
    assert_eq!(desktop.recv().await, expected);

    browser.send("JOIN #room").await;
    let lines = browser.sync().await;
    let commands: Vec<&str> = lines.iter().map(|l| command_of(l)).collect();
    assert_eq!(commands, ["JOIN", "MARKREAD", "353", "366"], "{lines:#?}");
    assert_eq!(lines[1], expected);
}
