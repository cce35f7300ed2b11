//! MONITOR (ircv3.net/specs/extensions/monitor) against the real server: the list commands
//! (+, -, C, L, S), the numerics 730-734 word for word, the notifications when a monitored nick
//! connects, quits or changes nick (on both sides), case-insensitivity, the limit, the same over
//! WebSocket, and across a cluster. Each test quotes the sentence it checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cluster::{Cluster, CONVERGE};
use common::{client_config_trusting, command_of, is_error_reply, tls_connect, TestServer};

/// A server without a default channel, so that nobody shares a channel unless a test says so.
async fn server() -> TestServer {
    TestServer::start_with(|config| config.server.default_channel = String::new()).await
}

fn src(nick: &str) -> String {
    format!("{nick}!~{nick}@127.0.0.1")
}

#[tokio::test]
async fn the_monitor_token_names_the_configured_limit() {
    // "Support of this specification is indicated by the MONITOR token in RPL_ISUPPORT (005).
    // This token takes an optional parameter, of the maximum amount of targets a client may have
    // in their monitor list."
    let server = TestServer::start_with(|config| {
        config.server.default_channel = String::new();
        config.limits.monitor = 7;
    })
    .await;
    let mut c = server.connect().await;
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice").await;
    let isupport = c
        .expect(|l| command_of(l) == "005" && l.contains(" MONITOR="))
        .await;
    assert!(isupport.contains(" MONITOR=7 "), "{isupport}");
}

#[tokio::test]
async fn adding_targets_answers_with_their_status() {
    let server = server().await;
    let [mut alice, _bob] = server.clients(["alice", "bob"]).await;
    // "If any of the targets being added are online, the server will generate RPL_MONONLINE
    // numerics listing those targets that are online. If any of the targets being added are
    // offline, the server will generate RPL_MONOFFLINE numerics listing those targets that are
    // offline." -- `:<server> 730 <nick> :target[!user@host][,target[!user@host]]*`
    alice.send("MONITOR + bob,carol").await;
    assert_eq!(
        alice.sync().await,
        [
            format!(":parley.local 730 alice :{}", src("bob")),
            ":parley.local 731 alice :carol".to_string(),
        ]
    );
    // "Targets already in the list MUST NOT be added again." (in any case: nicks are compared
    // under CASEMAPPING)
    alice.send("MONITOR + BOB").await;
    alice.sync().await;
    alice.send("MONITOR L").await;
    assert_eq!(
        alice.sync().await,
        [
            ":parley.local 732 alice :bob,carol",
            ":parley.local 733 alice :End of MONITOR list",
        ]
    );
}

#[tokio::test]
async fn a_monitored_nick_coming_and_going_is_announced() {
    let server = server().await;
    let mut alice = server.client("alice").await;
    alice.send("MONITOR + Bob").await;
    assert_eq!(alice.sync().await, [":parley.local 731 alice :Bob"]);
    // 730: "This numeric is used to indicate to a client that either a target has just become
    // online ..." and "The server may send "*" instead of the nick (<nick>). (This makes it
    // possible to send the exact same message to all clients monitoring a certain target.)"
    // The nick is monitored whatever its case (CASEMAPPING).
    let mut bob = server.client("bob").await;
    alice
        .expect(|l| l == format!(":parley.local 730 * :{}", src("bob")))
        .await;
    // 731: "... either a target has just left the irc network ..."
    bob.send("QUIT :bye").await;
    bob.expect_closed().await;
    alice.expect(|l| l == ":parley.local 731 * :bob").await;
}

#[tokio::test]
async fn a_nick_change_is_offline_for_the_old_nick_and_online_for_the_new() {
    let server = server().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    alice.send("MONITOR + bob,robert").await;
    alice.sync().await;
    bob.send("NICK robert").await;
    bob.sync().await;
    // The old nick "has just left" and the new one "has just become online".
    assert_eq!(
        alice.sync().await,
        [
            ":parley.local 731 * :bob".to_string(),
            format!(
                ":parley.local 730 * :{}",
                src("bob").replacen("bob", "robert", 1)
            ),
        ]
    );
    // A change of case only is the same nick: still online, nothing to say.
    bob.send("NICK Robert").await;
    bob.sync().await;
    assert_eq!(alice.sync().await, Vec::<String>::new());
}

#[tokio::test]
async fn remove_clear_list_and_status() {
    let server = server().await;
    let [mut alice, _bob] = server.clients(["alice", "bob"]).await;
    alice.send("MONITOR + bob,carol,dave").await;
    alice.sync().await;
    // "MONITOR - ... Removes the given list of targets from the list of targets being monitored.
    // No output will be returned for use of this command."
    alice.send("MONITOR - CAROL").await;
    assert_eq!(alice.sync().await, Vec::<String>::new());
    // "MONITOR S: Outputs for each target in the list being monitored, whether the client is
    // online or offline."
    alice.send("MONITOR S").await;
    assert_eq!(
        alice.sync().await,
        [
            format!(":parley.local 730 alice :{}", src("bob")),
            ":parley.local 731 alice :dave".to_string(),
        ]
    );
    // "MONITOR C: Clears the list of targets being monitored. No output will be returned for use
    // of this command."
    alice.send("MONITOR C").await;
    assert_eq!(alice.sync().await, Vec::<String>::new());
    // "MONITOR L: ... All output will use RPL_MONLIST, and the output will be terminated with
    // RPL_ENDOFMONLIST."
    alice.send("MONITOR L").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local 733 alice :End of MONITOR list"]
    );
    // Cleared means no more notifications.
    let mut dave = server.client("dave").await;
    dave.sync().await;
    assert_eq!(alice.sync().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_full_list_refuses_the_rest_with_734() {
    let server = TestServer::start_with(|config| {
        config.server.default_channel = String::new();
        config.limits.monitor = 2;
    })
    .await;
    let mut alice = server.client("alice").await;
    // `:<server> 734 <nick> <limit> <targets> :Monitor list is full.` -- "the <targets>
    // parameter is the list of targets, as the client sent them, that cannot be added."
    alice.send("MONITOR + a1,a2,A3,a4").await;
    let lines = alice.sync().await;
    assert_eq!(
        lines,
        [
            ":parley.local 734 alice 2 A3,a4 :Monitor list is full.",
            ":parley.local 731 alice :a1,a2",
        ]
    );
    // Those already listed still fit.
    alice.send("MONITOR + A1").await;
    assert_eq!(alice.sync().await, [":parley.local 731 alice :A1"]);
}

#[tokio::test]
async fn only_nicks_are_targets_and_long_answers_are_split() {
    let server = server().await;
    let mut alice = server.client("alice").await;
    // "For this specification, 'target' MUST be a valid nick as determined by the IRC daemon."
    alice.send("MONITOR + #chan,*!*@*,ok").await;
    assert_eq!(alice.sync().await, [":parley.local 731 alice :ok"]);
    // "In commands and numerics where multiple targets may occur, the length of the target list
    // is limited only by the buffer size of 512 chars"
    let many: Vec<String> = (0..45).map(|i| format!("someone{i:02}")).collect();
    alice.send(&format!("MONITOR + {}", many.join(","))).await;
    let lines = alice.sync().await;
    assert!(lines.len() > 1, "{lines:?}");
    let mut listed = Vec::new();
    for line in &lines {
        assert!(line.len() + 2 <= 512, "{line}");
        let list = line
            .strip_prefix(":parley.local 731 alice :")
            .expect("731 lines");
        listed.extend(list.split(',').map(str::to_string));
    }
    assert_eq!(listed, many);
}

#[tokio::test]
async fn a_watcher_that_leaves_stops_being_told() {
    let server = server().await;
    let mut alice = server.client("alice").await;
    alice.send("MONITOR + bob").await;
    alice.sync().await;
    alice.send("QUIT").await;
    alice.expect_closed().await;
    // Nobody left to tell: bob's arrival must not trip over the departed watcher.
    let mut carol = server.client("carol").await;
    carol.send("MONITOR + bob").await;
    carol.sync().await;
    let _bob = server.client("bob").await;
    carol
        .expect(|l| l == format!(":parley.local 730 * :{}", src("bob")))
        .await;
}

#[tokio::test]
async fn monitor_works_over_websocket() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start_with(|config| {
        config.server.default_channel = String::new();
        config.web.listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let web = server.running.web_addrs()[0];
    let stream = tls_connect(web, client_config_trusting(&server.generated_cert_pem()))
        .await
        .expect("TLS to the web listener");
    let request = format!("wss://localhost:{}/ws", web.port())
        .into_client_request()
        .expect("request");
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket handshake");
    for line in ["NICK alice", "USER alice 0 * :Alice", "MONITOR + bob"] {
        ws.send(Message::text(line)).await.expect("send");
    }
    while next(&mut ws).await != ":parley.local 731 alice :bob" {}
    let _bob = server.client("bob").await;
    while next(&mut ws).await != format!(":parley.local 730 * :{}", src("bob")) {}
}

/// The next text line on a WebSocket (failing on an error reply).
async fn next<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(common::TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid message");
        if let Message::Text(text) = message {
            let line = text.to_string();
            assert!(!is_error_reply(&line), "{line}");
            return line;
        }
    }
}

#[tokio::test]
async fn users_on_other_nodes_are_monitored_too() {
    let Some(cluster) = Cluster::start(2, |_, config| {
        config.server.default_channel = String::new();
    })
    .await
    else {
        return;
    };
    let mut alice = cluster.client(0, "alice").await;
    alice.send("MONITOR + bob,robert").await;
    alice.sync().await;
    // bob connects to the other node: "a target has just become online".
    let mut bob = cluster.client(1, "bob").await;
    alice
        .expect_within(CONVERGE, |l| {
            l == format!(":n1.parley.local 730 * :{}", src("bob"))
        })
        .await;
    bob.send("NICK robert").await;
    bob.sync().await;
    alice
        .expect_within(CONVERGE, |l| l == ":n1.parley.local 731 * :bob")
        .await;
    alice
        .expect_within(CONVERGE, |l| {
            l == ":n1.parley.local 730 * :robert!~bob@127.0.0.1"
        })
        .await;
    // And the status of a remote user is known here.
    alice.send("MONITOR S").await;
    let status = alice.sync().await;
    assert_eq!(
        status,
        [
            ":n1.parley.local 730 alice :robert!~bob@127.0.0.1",
            ":n1.parley.local 731 alice :bob"
        ]
    );
    bob.send("QUIT").await;
    bob.expect_closed().await;
    alice
        .expect_within(CONVERGE, |l| l == ":n1.parley.local 731 * :robert")
        .await;
}

#[tokio::test]
async fn bad_modifiers_and_missing_targets_are_errors() {
    let server = server().await;
    let mut alice = server.client("alice").await;
    // "Each use of the MONITOR command takes a special modifier": without one, 461; with an
    // unknown one, an error naming it (ergo's 400 ERR_UNKNOWNERROR).
    alice.send("MONITOR").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local 461 alice MONITOR :Not enough parameters"]
    );
    alice.send("MONITOR +").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local 461 alice MONITOR :Not enough parameters"]
    );
    alice.send("MONITOR X bob").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local 400 alice MONITOR X :Unknown MONITOR modifier (use +, -, C, L or S)"]
    );
}

#[tokio::test]
async fn a_limit_of_zero_turns_monitor_off() {
    let server = TestServer::start_with(|config| {
        config.server.default_channel = String::new();
        config.limits.monitor = 0;
    })
    .await;
    let mut c = server.connect().await;
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice").await;
    c.expect_numeric("001").await;
    let welcome = c.sync().await;
    // Not advertised ("Support of this specification is indicated by the MONITOR token"), and
    // not answered as if it were.
    assert!(
        !welcome.iter().any(|l| l.contains(" MONITOR")),
        "{welcome:?}"
    );
    c.send("MONITOR + bob").await;
    assert_eq!(
        c.sync().await,
        [":parley.local 421 alice MONITOR :Unknown command"]
    );
}
