//! IRCv3 message-tags against the real server (ircv3.net/specs/extensions/message-tags):
//! client-only tags relayed to `message-tags` clients and stripped for the rest, echoed, stored
//! and returned by CHATHISTORY; `TAGMSG` to channels and users; the tag size limits; over
//! WebSocket and across a cluster too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cluster::{client_with_caps, Cluster};
use common::{client_config_trusting, tls_connect, Client, TestServer, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ALICE: &str = "alice!~alice@127.0.0.1";

/// The value of tag `key` on a wire line.
fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// alice (message-tags, echo-message), bob (message-tags) and carl (no capabilities), all in
/// #lobby and synced past each other's joins.
async fn three(server: &TestServer) -> (Client, Client, Client) {
    let mut alice = client_with_caps(server.addr, "alice", "message-tags echo-message").await;
    let mut bob = client_with_caps(server.addr, "bob", "message-tags").await;
    let mut carl = server.client("carl").await;
    alice.sync().await;
    bob.sync().await;
    carl.sync().await;
    (alice, bob, carl)
}

#[tokio::test]
async fn client_only_tags_reach_message_tags_clients_and_no_one_else() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, mut carl) = three(&server).await;
    alice
        .send(
            "@+example.com/x=a\\sb;+draft/reply=abc;unprefixed=1;+dup=1;+dup=2 PRIVMSG #lobby :hi",
        )
        .await;
    let echo = alice.expect(|l| l.contains(" PRIVMSG #lobby ")).await;
    let msgid = tag(&echo, "msgid").expect("msgid").to_string();
    // "Client-only tags are client-initiated tags that servers MUST attach as-is to any
    // relevant message relayed to other clients." "Any server-initiated tags attached to
    // messages MUST be included before client-only tags". "Tags without the client-only prefix
    // MUST be removed by the server before being relayed with any message to another client."
    // "Implementations receiving messages with more than one occurrence of a tag key name
    // SHOULD disregard all but the final occurrence."
    let relayed = format!(
        "@msgid={msgid};+example.com/x=a\\sb;+draft/reply=abc;+dup=2 :{ALICE} PRIVMSG #lobby :hi"
    );
    assert_eq!(echo, relayed, "the echo (echo-message) carries them too");
    assert_eq!(bob.expect(|l| l.contains(" PRIVMSG ")).await, relayed);
    // A client that did not negotiate message-tags gets the message without any tags.
    assert_eq!(
        carl.expect(|l| l.contains(" PRIVMSG ")).await,
        format!(":{ALICE} PRIVMSG #lobby :hi")
    );

    // Private messages and NOTICE as well.
    alice.send("@+draft/react=x NOTICE bob :psst").await;
    let notice = bob.expect(|l| l.contains(" NOTICE bob ")).await;
    let msgid = tag(&notice, "msgid").expect("msgid");
    assert_eq!(
        notice,
        format!("@msgid={msgid};+draft/react=x :{ALICE} NOTICE bob :psst")
    );

    // "Implementations MUST treat tag key names as opaque identifiers and MUST NOT perform any
    // validation that would reject the message if an invalid tag key name is used." The
    // message goes through; the odd key is not passed on to clients that may be strict.
    alice.send("@+a_b=1;+ok=2;a!b PRIVMSG bob :odd keys").await;
    let odd = bob.expect(|l| l.contains(" PRIVMSG bob ")).await;
    let msgid = tag(&odd, "msgid").expect("msgid");
    assert_eq!(
        odd,
        format!("@msgid={msgid};+ok=2 :{ALICE} PRIVMSG bob :odd keys")
    );
}

#[tokio::test]
async fn tagmsg_goes_to_message_tags_clients_in_channels_and_privately() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, mut carl) = three(&server).await;
    alice.send("@+typing=active TAGMSG #lobby").await;
    let echo = alice.expect(|l| l.contains(" TAGMSG ")).await;
    let msgid = tag(&echo, "msgid").expect("msgid").to_string();
    let relayed = format!("@msgid={msgid};+typing=active :{ALICE} TAGMSG #lobby");
    assert_eq!(echo, relayed);
    assert_eq!(bob.expect(|l| l.contains(" TAGMSG ")).await, relayed);
    // "Servers MUST NOT deliver TAGMSG to clients that haven't negotiated the message tags
    // capability."
    assert_eq!(carl.sync().await, Vec::<String>::new());

    // To a user: a reaction and a reply to the message just sent.
    alice
        .send(&format!(
            "@+draft/react=\u{1F44D};+draft/reply={msgid} TAGMSG bob"
        ))
        .await;
    let got = bob.expect(|l| l.contains(" TAGMSG ")).await;
    let id = tag(&got, "msgid").expect("msgid");
    assert_eq!(
        got,
        format!("@msgid={id};+draft/react=\u{1F44D};+draft/reply={msgid} :{ALICE} TAGMSG bob")
    );
    alice.expect(|l| l.contains(" TAGMSG bob")).await;
    alice.send("@+typing=active TAGMSG carl").await;
    alice.expect(|l| l.contains(" TAGMSG carl")).await;
    assert_eq!(carl.sync().await, Vec::<String>::new());

    // Without message-tags, the sender gets no echo of its own TAGMSG either.
    carl.send("CAP REQ echo-message").await;
    carl.expect(|l| l.contains(" ACK ")).await;
    carl.send("@+typing=active TAGMSG bob").await;
    assert_eq!(carl.sync().await, Vec::<String>::new());
    let got = bob.expect(|l| l.contains(" TAGMSG bob")).await;
    assert!(got.ends_with(":carl!~carl@127.0.0.1 TAGMSG bob"), "{got}");
}

#[tokio::test]
async fn tagmsg_is_refused_like_privmsg() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, mut carl) = three(&server).await;
    // "This message MUST be delivered to targets in the same way as PRIVMSG and NOTICE
    // messages. This means for example, honouring channel membership, modes, echo-message".
    alice.send("TAGMSG").await;
    assert_eq!(
        alice.expect_numeric("411").await,
        ":parley.local 411 alice :No recipient given (TAGMSG)"
    );
    alice.send("@+typing=active TAGMSG nobody").await;
    assert_eq!(
        alice.expect_numeric("401").await,
        ":parley.local 401 alice nobody :No such nick/channel"
    );
    alice.send("JOIN #quiet").await;
    alice.expect(|l| l.contains(" 366 ")).await;
    alice.send("MODE #quiet +m").await;
    alice.expect(|l| l.contains(" MODE #quiet +m")).await;
    bob.send("JOIN #quiet").await;
    bob.expect(|l| l.contains(" 366 ")).await;
    alice.sync().await;
    bob.send("@+typing=active TAGMSG #quiet").await;
    assert_eq!(
        bob.expect_numeric("404").await,
        ":parley.local 404 bob #quiet :Cannot send to channel (+m)"
    );
    carl.send("@+typing=active TAGMSG #quiet").await;
    assert_eq!(
        carl.expect_numeric("404").await,
        ":parley.local 404 carl #quiet :Cannot send to channel (+n)"
    );
    assert_eq!(
        alice.sync().await,
        Vec::<String>::new(),
        "nothing got through"
    );
}

#[tokio::test]
async fn a_labeled_tagmsg_is_echoed_under_its_label() {
    let server = TestServer::start().await;
    let mut alice = client_with_caps(
        server.addr,
        "alice",
        "message-tags echo-message labeled-response batch",
    )
    .await;
    let mut bob = client_with_caps(server.addr, "bob", "message-tags").await;
    alice.sync().await;
    // The spec's example: "C1-S: @label=123;+example-client-tag=example-value TAGMSG #channel
    // S-C1: @label=123;msgid=abc;+example-client-tag=example-value :nick!user@example.com
    // TAGMSG #channel".
    alice
        .send("@label=123;+example-client-tag=example-value TAGMSG #lobby")
        .await;
    let echo = alice.expect(|l| l.contains(" TAGMSG ")).await;
    let msgid = tag(&echo, "msgid").expect("msgid");
    assert_eq!(
        echo,
        format!(
            "@label=123;msgid={msgid};+example-client-tag=example-value :{ALICE} TAGMSG #lobby"
        )
    );
    assert_eq!(
        bob.expect(|l| l.contains(" TAGMSG ")).await,
        format!("@msgid={msgid};+example-client-tag=example-value :{ALICE} TAGMSG #lobby")
    );
}

#[tokio::test]
async fn tag_data_over_4094_bytes_gets_417_and_is_not_relayed() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, _carl) = three(&server).await;
    // "Clients MUST NOT send messages with tag data exceeding 4094 bytes, this includes tags
    // with or without the client-only prefix." "Servers MUST reply with the ERR_INPUTTOOLONG
    // (417) error numeric if a client sends a message with more tag data than the allowed
    // limit." Exactly 4094 bytes pass, with the server's own tags before them.
    let value = "v".repeat(4094 - "+big=".len());
    alice.send(&format!("@+big={value} TAGMSG bob")).await;
    let got = bob.expect(|l| l.contains(" TAGMSG ")).await;
    let msgid = tag(&got, "msgid").expect("msgid");
    assert_eq!(
        got,
        format!("@msgid={msgid};+big={value} :{ALICE} TAGMSG bob")
    );
    alice.sync().await;
    for over in [
        format!("@+big={value}v TAGMSG bob"),
        format!("@label=x;+big={value} PRIVMSG bob :hi"),
        format!("@plain={value}vvvv PRIVMSG bob :hi"),
    ] {
        alice.send(&over).await;
        assert_eq!(
            alice.sync().await,
            [":parley.local 417 alice :Input line was too long"],
            "{}",
            &over[..20]
        );
    }
    assert_eq!(bob.sync().await, Vec::<String>::new());
}

#[tokio::test]
async fn history_keeps_client_tags_and_not_tagmsg() {
    let server = TestServer::start().await;
    let caps = "message-tags server-time echo-message batch draft/chathistory";
    let mut alice = client_with_caps(server.addr, "alice", caps).await;
    let mut bob = client_with_caps(server.addr, "bob", "batch server-time draft/chathistory").await;
    alice.sync().await;
    alice
        .send("@+draft/reply=abc;+example.com/k=v\\:w PRIVMSG #lobby :stored")
        .await;
    let echo = alice.expect(|l| l.contains(" PRIVMSG ")).await;
    let (msgid, time) = (
        tag(&echo, "msgid").expect("msgid"),
        tag(&echo, "time").expect("time"),
    );
    alice.send("@+typing=active TAGMSG #lobby").await;
    alice.expect(|l| l.contains(" TAGMSG ")).await;
    alice.send("CHATHISTORY LATEST #lobby * 10").await;
    let lines = alice.sync().await;
    let batch = lines[0]
        .split(" BATCH +")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("a batch");
    // The batch/chathistory spec: messages are replayed "with the same tags as the original
    // message" (the msgid and time, and the client-only tags that rode on it); a TAGMSG is not
    // stored (CHATHISTORY: "the server MUST NOT send any lines other than PRIVMSG and NOTICE"
    // to a client without event-playback).
    assert_eq!(
        lines[1..lines.len() - 1],
        [format!(
            "@batch={batch};msgid={msgid};time={time};+draft/reply=abc;+example.com/k=v\\:w \
             :{ALICE} PRIVMSG #lobby :stored"
        )]
    );
    // Without message-tags: the message, no msgid and no client-only tags, live and replayed.
    assert_eq!(
        bob.sync().await,
        [format!("@time={time} :{ALICE} PRIVMSG #lobby :stored")]
    );
    bob.send("CHATHISTORY LATEST #lobby * 10").await;
    let lines = bob.sync().await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[1].ends_with(&format!(";time={time} :{ALICE} PRIVMSG #lobby :stored")),
        "{lines:?}"
    );
}

/// A WebSocket session on the server's web listener (text.ircv3.net), registered as `nick`
/// with `message-tags`.
async fn websocket(
    server: &TestServer,
    nick: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let addr = server.running.web_addrs()[0];
    let request = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .expect("request");
    let stream = tls_connect(addr, client_config_trusting(&server.generated_cert_pem()))
        .await
        .expect("TLS to the web listener");
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket handshake");
    for line in [
        "CAP REQ message-tags".to_string(),
        format!("NICK {nick}"),
        format!("USER {nick} 0 * :Web"),
        "CAP END".to_string(),
    ] {
        ws.send(Message::text(line)).await.expect("send");
    }
    ws_expect(&mut ws, |l| l.contains(" 001 ")).await;
    ws
}

async fn ws_expect(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    >,
    matches: impl Fn(&str) -> bool,
) -> String {
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid message");
        if let Message::Text(text) = message {
            if matches(&text) {
                return text.to_string();
            }
        }
    }
}

#[tokio::test]
async fn tagmsg_over_websocket() {
    let server =
        TestServer::start_with(|config| config.web.listen = vec!["127.0.0.1:0".into()]).await;
    let mut ws = websocket(&server, "webby").await;
    let mut tcp = client_with_caps(server.addr, "tcpuser", "message-tags").await;
    tcp.send("@+typing=active TAGMSG webby").await;
    let got = ws_expect(&mut ws, |l| l.contains(" TAGMSG ")).await;
    let msgid = tag(&got, "msgid").expect("msgid");
    assert_eq!(
        got,
        format!("@msgid={msgid};+typing=active :tcpuser!~tcpuser@127.0.0.1 TAGMSG webby")
    );
    ws.send(Message::text(
        "@+draft/react=ok;+draft/reply=x TAGMSG tcpuser",
    ))
    .await
    .expect("send");
    let got = tcp.expect(|l| l.contains(" TAGMSG ")).await;
    let msgid = tag(&got, "msgid").expect("msgid");
    assert_eq!(
        got,
        format!(
            "@msgid={msgid};+draft/react=ok;+draft/reply=x :webby!~webby@127.0.0.1 TAGMSG tcpuser"
        )
    );
}

#[tokio::test]
async fn client_tags_and_tagmsg_cross_the_cluster() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice =
        client_with_caps(cluster.nodes[0].addr, "alice", "message-tags echo-message").await;
    let mut bob = client_with_caps(cluster.nodes[1].addr, "bob", "message-tags").await;
    let mut carl = cluster.client(1, "carl").await;
    alice.await_whois("bob").await;
    alice.await_whois("carl").await;
    alice.send("@+typing=active TAGMSG bob").await;
    let echo = alice.expect(|l| l.contains(" TAGMSG ")).await;
    let msgid = tag(&echo, "msgid").expect("msgid");
    let relayed = format!("@msgid={msgid};+typing=active :{ALICE} TAGMSG bob");
    assert_eq!(echo, relayed);
    assert_eq!(bob.expect(|l| l.contains(" TAGMSG ")).await, relayed);
    alice.send("@+draft/reply=abc PRIVMSG carl :hi").await;
    alice.send("@+draft/reply=abc PRIVMSG bob :hi").await;
    let got = bob.expect(|l| l.contains(" PRIVMSG ")).await;
    let msgid = tag(&got, "msgid").expect("msgid");
    assert_eq!(
        got,
        format!("@msgid={msgid};+draft/reply=abc :{ALICE} PRIVMSG bob :hi")
    );
    // carl (no message-tags) got the message untagged, and never the TAGMSG.
    assert_eq!(
        carl.expect(|l| l.contains(" PRIVMSG ")).await,
        format!(":{ALICE} PRIVMSG carl :hi")
    );
    // A message to oneself through the bus: delivered, and echoed (echo-message), alike.
    alice.sync().await;
    alice
        .send("@+draft/react=x PRIVMSG alice :note to self")
        .await;
    let first = alice.expect(|l| l.contains(" PRIVMSG alice ")).await;
    let second = alice.expect(|l| l.contains(" PRIVMSG alice ")).await;
    let msgid = tag(&first, "msgid").expect("msgid");
    let expected = format!("@msgid={msgid};+draft/react=x :{ALICE} PRIVMSG alice :note to self");
    assert_eq!((first.as_str(), second.as_str()), (&*expected, &*expected));
}
