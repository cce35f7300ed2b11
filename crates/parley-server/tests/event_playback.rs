//! `draft/event-playback` (ircv3.net/specs/extensions/chathistory) against the real server, on
//! SQLite and (with `PARLEY_TEST_STORE=postgres`) PostgreSQL: a reaction or a reply sent with
//! TAGMSG is stored and comes back from CHATHISTORY, the replay on join and offline delivery,
//! with its tags, msgid and time, to clients that negotiated the capability; everyone else sees
//! exactly what they saw before; typing notices are never stored. Parley stores no membership
//! events, so playback covers TAGMSG only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cluster::{client_with_caps, Cluster};
use common::{Client, TestServer};

const ALICE: &str = "alice!~alice@127.0.0.1";
const BASE: &str = "message-tags server-time batch draft/chathistory";
const PLAYBACK: &str = "message-tags server-time batch draft/chathistory draft/event-playback";
const THUMBS: &str = "\u{1F44D}";

/// The value of tag `key` on a wire line.
fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The lines a request draws, with the batch id replaced by `ID` so they compare exactly.
async fn answer(c: &mut Client, request: &str) -> Vec<String> {
    c.send(request).await;
    let lines = c.sync().await;
    let id = lines
        .iter()
        .find_map(|l| l.split(" BATCH +").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_string);
    match id {
        Some(id) => lines
            .into_iter()
            .map(|l| {
                l.replace(&format!("batch={id}"), "batch=ID")
                    .replace(&format!("BATCH +{id} "), "BATCH +ID ")
                    .replace(&format!("BATCH -{id}"), "BATCH -ID")
            })
            .collect(),
        None => lines,
    }
}

/// What alice said in #r, as a `message-tags` + `server-time` client gets it back.
struct Said {
    /// `@msgid=..;time=..` of the PRIVMSG.
    hello: (String, String),
    /// `@msgid=..;time=..` of the reaction.
    react: (String, String),
}

/// alice (with playback) and bob (without) in #r; alice says hello, reacts to it, and types.
async fn talk(server: &TestServer) -> (Client, Client, Said) {
    let mut alice =
        client_with_caps(server.addr, "alice", &format!("{PLAYBACK} echo-message")).await;
    let mut bob = client_with_caps(server.addr, "bob", BASE).await;
    for c in [&mut alice, &mut bob] {
        c.send("JOIN #r").await;
        c.expect(|l| l.contains(" 366 ")).await;
    }
    alice.sync().await;
    alice.send("PRIVMSG #r :hello").await;
    let echo = alice.expect(|l| l.ends_with("PRIVMSG #r :hello")).await;
    let hello = (
        tag(&echo, "msgid").unwrap().to_string(),
        tag(&echo, "time").unwrap().to_string(),
    );
    alice
        .send(&format!(
            "@+draft/react={THUMBS};+draft/reply={} TAGMSG #r",
            hello.0
        ))
        .await;
    let echo = alice.expect(|l| l.contains(" TAGMSG #r")).await;
    let react = (
        tag(&echo, "msgid").unwrap().to_string(),
        tag(&echo, "time").unwrap().to_string(),
    );
    alice.send("@+typing=active TAGMSG #r").await;
    alice.expect(|l| l.contains("+typing=active")).await;
    bob.sync().await;
    (alice, bob, Said { hello, react })
}

fn hello_line(said: &Said) -> String {
    let (id, time) = &said.hello;
    format!("@batch=ID;msgid={id};time={time} :{ALICE} PRIVMSG #r :hello")
}

fn react_line(said: &Said) -> String {
    let (id, time) = &said.react;
    format!(
        "@batch=ID;msgid={id};time={time};+draft/react={THUMBS};+draft/reply={} :{ALICE} TAGMSG #r",
        said.hello.0
    )
}

/// Whether `CAP LS 302` on `server` lists `draft/event-playback`.
async fn offered(server: &TestServer) -> bool {
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    ls.split([' ', ':'])
        .any(|cap| cap == "draft/event-playback")
}

#[tokio::test]
async fn the_capability_is_offered_only_with_history() {
    // "implementations SHOULD use the `draft/chathistory` and `draft/event-playback` CAP names
    // to be interoperable with other software implementing a compatible work-in-progress
    // version" (ircv3.net chathistory).
    assert!(offered(&TestServer::start().await).await);
    let without = TestServer::start_with(|c| c.history.enabled = false).await;
    assert!(!offered(&without).await);
}

#[tokio::test]
async fn chathistory_returns_a_reaction_only_with_event_playback() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, said) = talk(&server).await;

    // "If the client has not negotiated the `event-playback` capability, the server MUST NOT
    // send any lines other than `PRIVMSG` and `NOTICE` in the reply batch."
    assert_eq!(
        answer(&mut bob, "CHATHISTORY LATEST #r * 10").await,
        [
            ":parley.local BATCH +ID chathistory #r".to_string(),
            hello_line(&said),
            ":parley.local BATCH -ID".to_string(),
        ]
    );
    // The limit counts what bob is shown: the reaction, newer, does not take hello's place.
    assert_eq!(
        answer(&mut bob, "CHATHISTORY LATEST #r * 1").await,
        [
            ":parley.local BATCH +ID chathistory #r".to_string(),
            hello_line(&said),
            ":parley.local BATCH -ID".to_string(),
        ]
    );

    // "If the client has negotiated `event-playback`, the server SHOULD send additional lines
    // relevant to the chat history, including but not limited to `TAGMSG`": the reaction, with
    // its client tags, its original msgid and time ("The `msgid` tag that identifies each
    // individual message in a response MUST be the `msgid` tag as originally sent"). The
    // typing notice is not history.
    assert_eq!(
        answer(&mut alice, "CHATHISTORY LATEST #r * 10").await,
        [
            ":parley.local BATCH +ID chathistory #r".to_string(),
            hello_line(&said),
            react_line(&said),
            ":parley.local BATCH -ID".to_string(),
        ]
    );
}

#[tokio::test]
async fn every_subcommand_filters_alike_and_targets_is_unaffected() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, said) = talk(&server).await;
    let (hello, react) = (&said.hello.0, &said.react.0);
    let early = "timestamp=2000-01-01T00:00:00.000Z";
    let late = "timestamp=2100-01-01T00:00:00.000Z";
    for (request, with, without) in [
        (format!("CHATHISTORY BEFORE #r {late} 10"), 2, 1),
        (format!("CHATHISTORY AFTER #r {early} 10"), 2, 1),
        (format!("CHATHISTORY AFTER #r msgid={hello} 10"), 1, 0),
        (format!("CHATHISTORY AROUND #r msgid={react} 10"), 2, 1),
        (format!("CHATHISTORY BETWEEN #r {early} {late} 10"), 2, 1),
        (format!("CHATHISTORY LATEST #r msgid={hello} 10"), 1, 0),
    ] {
        let count = |lines: &[String]| lines.iter().filter(|l| l.contains(" :alice!")).count();
        let got = answer(&mut alice, &request).await;
        assert_eq!(count(&got), with, "{request} with playback: {got:?}");
        assert_eq!(
            got.iter().any(|l| *l == react_line(&said)),
            with > without,
            "{request}: {got:?}"
        );
        let got = answer(&mut bob, &request).await;
        assert_eq!(count(&got), without, "{request} without playback: {got:?}");
        assert!(!got.iter().any(|l| l.contains(" TAGMSG ")), "{got:?}");
    }

    // TARGETS: the conversation's latest activity is hello, the reaction aside, for both.
    let request = format!("CHATHISTORY TARGETS {early} {late} 10");
    let expected = [
        ":parley.local BATCH +ID draft/chathistory-targets".to_string(),
        format!(
            "@batch=ID :parley.local CHATHISTORY TARGETS #r {}",
            said.hello.1
        ),
        ":parley.local BATCH -ID".to_string(),
    ];
    assert_eq!(answer(&mut alice, &request).await, expected);
    assert_eq!(answer(&mut bob, &request).await, expected);
}

#[tokio::test]
async fn the_replay_on_join_has_the_reaction_only_with_event_playback() {
    let server = TestServer::start().await;
    let (_alice, _bob, said) = talk(&server).await;

    // Without draft/chathistory the server replays the channel's last lines on join.
    let mut carl = client_with_caps(server.addr, "carl", "message-tags server-time batch").await;
    carl.send("JOIN #r").await;
    let lines = carl.sync().await;
    assert!(
        lines.iter().any(|l| l.ends_with(" PRIVMSG #r :hello")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains(" TAGMSG ")), "{lines:?}");

    let mut dave = client_with_caps(
        server.addr,
        "dave",
        "message-tags server-time batch draft/event-playback",
    )
    .await;
    dave.send("JOIN #r").await;
    let lines: Vec<String> = dave
        .sync()
        .await
        .into_iter()
        .map(|l| match tag(&l, "batch") {
            Some(id) => l.replacen(&format!("batch={id}"), "batch=ID", 1),
            None => l,
        })
        .collect();
    assert!(lines.contains(&react_line(&said)), "{lines:?}");

    // A client without message-tags never gets a TAGMSG: "Servers MUST NOT deliver TAGMSG to
    // clients that haven't negotiated the message tags capability."
    let mut erin = client_with_caps(server.addr, "erin", "draft/event-playback").await;
    erin.send("JOIN #r").await;
    let lines = erin.sync().await;
    // Without server-time the replay writes the time into the text.
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" PRIVMSG #r :[") && l.ends_with(" UTC] hello")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("TAGMSG")), "{lines:?}");
}

/// A client logged in to a new account named like its nick, with `caps`.
async fn registered(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut c = server.connect().await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER u 0 * :{nick}")).await;
    c.send(&format!("REGISTER * * {nick}-password")).await;
    c.expect(|l| l.contains("REGISTER SUCCESS")).await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

/// Quit, and wait until the server has let go of the connection.
async fn gone(mut c: Client) {
    c.send("QUIT").await;
    c.expect_closed().await;
}

/// Log `nick` back in to its account with `caps`; the lines up to and after the welcome.
async fn login(server: &TestServer, nick: &str, caps: &str) -> (Client, Vec<String>) {
    use base64::Engine;
    let mut c = server.connect().await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{caps} sasl")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER u 0 * :{nick}")).await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect(|l| l.starts_with("AUTHENTICATE +")).await;
    let payload = base64::engine::general_purpose::STANDARD
        .encode(format!("{nick}\0{nick}\0{nick}-password"));
    c.send(&format!("AUTHENTICATE {payload}")).await;
    c.expect_numeric("903").await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    let lines = c.sync().await;
    (c, lines)
}

#[tokio::test]
async fn a_reaction_to_someone_offline_waits_for_a_client_that_can_show_it() {
    let server = TestServer::start().await;
    let mut alice = registered(&server, "alice", &format!("{PLAYBACK} echo-message")).await;
    gone(registered(&server, "bob", BASE).await).await;
    alice.send("PRIVMSG bob :are you there").await;
    let lines = alice.sync().await;
    assert!(
        lines.iter().any(|l| l.contains("is not online")),
        "{lines:?}"
    );
    let echo = lines
        .iter()
        .find(|l| l.ends_with("PRIVMSG bob :are you there"))
        .expect("echo");
    let hello = tag(echo, "msgid").unwrap().to_string();
    // A reaction is kept for bob, without a second "not online" notice; a typing notice is
    // not kept, and is answered like a nick that is not there.
    alice
        .send(&format!("@+draft/react=ok;+draft/reply={hello} TAGMSG bob"))
        .await;
    alice.send("@+typing=active TAGMSG bob").await;
    let lines = alice.sync().await;
    assert!(
        !lines.iter().any(|l| l.contains("is not online")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == ":parley.local 401 alice bob :No such nick/channel"),
        "{lines:?}"
    );

    // bob comes back without event-playback: one message, and no TAGMSG.
    let (bob, lines) = login(&server, "bob", BASE).await;
    assert!(
        lines
            .iter()
            .any(|l| l
                .ends_with("NOTICE bob :You have 1 private message received while you were away:")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("TAGMSG")), "{lines:?}");
    // The reaction is still history, for a client that can show it.
    gone(bob).await;
    let (mut bob, _) = login(&server, "bob", PLAYBACK).await;
    let got = answer(&mut bob, "CHATHISTORY LATEST alice * 10").await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(
        got[2].ends_with(&format!(
            ";+draft/react=ok;+draft/reply={hello} :alice!~u@127.0.0.1 TAGMSG bob"
        )),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_reaction_offline_is_delivered_to_an_event_playback_login() {
    let server = TestServer::start().await;
    let mut alice = registered(&server, "alice", &format!("{PLAYBACK} echo-message")).await;
    gone(registered(&server, "bob", BASE).await).await;
    alice
        .send("@+draft/react=ok;+draft/reply=x TAGMSG bob")
        .await;
    let echo = alice.expect(|l| l.contains(" TAGMSG bob")).await;
    let (id, time) = (tag(&echo, "msgid").unwrap(), tag(&echo, "time").unwrap());
    let (_bob, lines) = login(&server, "bob", PLAYBACK).await;
    let lines: Vec<String> = lines
        .into_iter()
        .map(|l| match tag(&l, "batch") {
            Some(b) => l.replacen(&format!("batch={b}"), "batch=ID", 1),
            None => l,
        })
        .collect();
    assert!(
        lines.contains(&format!(
            "@batch=ID;msgid={id};time={time};+draft/react=ok;+draft/reply=x \
             :alice!~u@127.0.0.1 TAGMSG bob"
        )),
        "{lines:?}"
    );
    // No "You have 0 private messages".
    assert!(
        !lines.iter().any(|l| l.contains("private message")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_redacted_reaction_leaves_history() {
    let server = TestServer::start().await;
    let (mut alice, _bob, said) = talk(&server).await;
    alice.send("CAP REQ draft/message-redaction").await;
    alice.expect(|l| l.contains(" ACK ")).await;
    // "Use cases include retracting accidentally sent messages, moderation, and removing a
    // `+draft/react` client tag" (ircv3.net message-redaction): by the reaction's own msgid.
    alice.send(&format!("REDACT #r {}", said.react.0)).await;
    alice.expect(|l| l.contains(" REDACT #r ")).await;
    assert_eq!(
        answer(&mut alice, "CHATHISTORY LATEST #r * 10").await,
        [
            ":parley.local BATCH +ID chathistory #r".to_string(),
            hello_line(&said),
            ":parley.local BATCH -ID".to_string(),
        ]
    );
}

#[tokio::test]
async fn across_a_cluster_the_origin_stores_a_reaction_once_and_typing_never() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice = client_with_caps(
        cluster.nodes[0].addr,
        "alice",
        &format!("{PLAYBACK} echo-message"),
    )
    .await;
    let mut bob = client_with_caps(cluster.nodes[1].addr, "bob", PLAYBACK).await;
    let mut carl = client_with_caps(cluster.nodes[1].addr, "carl", BASE).await;
    alice.send("JOIN #r").await;
    alice.expect(|l| l.contains(" 366 ")).await;
    // One after the other, so alice's channel is hers on both nodes.
    for (c, before) in [
        (&mut bob, &["@alice"][..]),
        (&mut carl, &["@alice", "bob"][..]),
    ] {
        c.await_names("#r", before).await;
        c.send("JOIN #r").await;
        c.expect(|l| l.contains(" 366 ")).await;
    }
    alice.await_names("#r", &["@alice", "bob", "carl"]).await;
    alice.send("PRIVMSG #r :hello").await;
    let echo = alice.expect(|l| l.ends_with("PRIVMSG #r :hello")).await;
    let hello = tag(&echo, "msgid").unwrap().to_string();
    alice
        .send(&format!("@+draft/react=ok;+draft/reply={hello} TAGMSG #r"))
        .await;
    let echo = alice.expect(|l| l.contains(" TAGMSG #r")).await;
    let react = tag(&echo, "msgid").unwrap().to_string();
    alice.send("@+typing=active TAGMSG #r").await;
    alice.expect(|l| l.contains("+typing=active")).await;
    bob.expect(|l| l.contains("+typing=active")).await;

    // On the other node: the reaction once, with the origin's msgid; no typing notice.
    let got = answer(&mut bob, "CHATHISTORY LATEST #r * 10").await;
    let tagmsgs: Vec<&String> = got.iter().filter(|l| l.contains(" TAGMSG ")).collect();
    assert_eq!(tagmsgs.len(), 1, "{got:?}");
    assert_eq!(tag(tagmsgs[0], "msgid"), Some(react.as_str()), "{got:?}");
    assert!(tagmsgs[0].ends_with(&format!(
        ";+draft/react=ok;+draft/reply={hello} :{ALICE} TAGMSG #r"
    )));
    carl.expect(|l| l.contains("+typing=active")).await;
    let got = answer(&mut carl, "CHATHISTORY LATEST #r * 10").await;
    assert!(!got.iter().any(|l| l.contains(" TAGMSG ")), "{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
}
