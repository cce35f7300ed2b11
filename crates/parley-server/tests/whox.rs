//! WHOX (ircv3.net/specs/extensions/whox) and plain WHO against the real server, line by line:
//! the fields in the spec's fixed order whatever order they are asked in, the token, the
//! placeholders (`*`, `0`, `255.255.255.255`), addresses only for operators, the `WHOX` ISUPPORT
//! token; plain WHO's flags (H/G, `*`, `@`/`+` with multi-prefix); the same over a WebSocket
//! and for another node's users in a cluster. Each test quotes the sentence it checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cluster::{client_with_caps, Cluster};
use common::{account, TestServer};
use parley_server::Config;

fn apart(config: &mut Config) {
    config.server.default_channel = String::new();
}

/// "Servers supporting this specification MUST include the `WHOX` token in `RPL_ISUPPORT`
/// without any value."
#[tokio::test]
async fn whox_is_advertised_without_a_value() {
    let server = TestServer::start_with(apart).await;
    let mut c = server.client("c").await;
    c.send("VERSION").await;
    let lines = c.sync().await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 005 ") && l.split(' ').any(|token| token == "WHOX")),
        "{lines:?}"
    );
}

/// "Servers MUST send the fields in the order specified above. Servers MUST include in their
/// reply all of the standard fields requested by the client, and MUST NOT add any additional
/// field not requested by the client." / "`0` is used for `[account]` when the user is logged
/// out" / "The server will reply with zero, one or more `RPL_WHOSPCRPL` replies, followed by a
/// final `RPL_ENDOFWHO` reply. Servers MUST NOT send `RPL_WHOREPLY` replies."
#[tokio::test]
async fn fields_come_in_the_specs_order_with_the_token_and_placeholders() {
    let server = TestServer::start_with(apart).await;
    let mut alice = account(server.addr, "alice").await;
    let mut bob = server.client("bob").await;
    alice.send("JOIN #ircv3").await;
    alice.sync().await;
    bob.send("JOIN #ircv3").await;
    bob.sync().await;
    bob.send("AWAY :lunch").await;
    bob.sync().await;
    alice.sync().await; // bob's JOIN

    // Asked as `afnt`, answered as t n f a.
    alice.send("WHO #ircv3 %afnt,42").await;
    assert_eq!(
        alice.sync().await,
        [
            ":parley.local 354 alice 42 alice H@ alice",
            ":parley.local 354 alice 42 bob G 0",
            ":parley.local 315 alice #ircv3 :End of WHO list",
        ]
    );
    // The spec's first example: `WHO cooluser %cuhnar`; "`*` is used for `[channel]` when no
    // channel is returned".
    alice.send("WHO bob %cuhnar").await;
    assert_eq!(
        alice.sync().await,
        [
            ":parley.local 354 alice * ~bob 127.0.0.1 bob 0 :Test bob",
            ":parley.local 315 alice bob :End of WHO list",
        ]
    );
    // Hop count, op level; "Servers MUST ignore any non-standard field they don't support";
    // a token that is not 1 to 3 digits is not echoed.
    alice.send("WHO alice %tdoXYZ,1234").await;
    assert_eq!(
        alice.sync().await,
        [
            ":parley.local 354 alice 0 0 n/a",
            ":parley.local 315 alice alice :End of WHO list",
        ]
    );
    // Every field at once: idle time is the only one that moves, so it is checked apart.
    alice.send("WHO bob %tcuihsnfdlaor,7").await;
    let lines = alice.sync().await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let words: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        words[..12],
        [
            ":parley.local",
            "354",
            "alice",
            "7",
            "*",
            "~bob",
            "255.255.255.255",
            "127.0.0.1",
            "parley.local",
            "bob",
            "G",
            "0",
        ]
    );
    assert!(words[12].parse::<u64>().is_ok(), "idle: {lines:?}");
    assert_eq!(words[13..], ["0", "n/a", ":Test", "bob"]);
    // Flags before the `%` are allowed and ignored.
    alice.send("WHO bob o%n").await;
    assert_eq!(
        alice.sync().await,
        [
            ":parley.local 354 alice bob",
            ":parley.local 315 alice bob :End of WHO list",
        ]
    );
}

/// "`255.255.255.255` is used for `[ip]` when the server refuses to disclose the IP address":
/// to everyone but an operator and the user itself.
#[tokio::test]
async fn addresses_only_for_operators_and_oneself() {
    let server = TestServer::start_with(|c| {
        apart(c);
        c.operators.admins = vec!["root".into()];
    })
    .await;
    let mut bob = server.client("bob").await;
    let mut root = account(server.addr, "root").await;
    bob.send("WHO root %in").await;
    assert_eq!(
        bob.sync().await,
        [
            ":parley.local 354 bob 255.255.255.255 root",
            ":parley.local 315 bob root :End of WHO list",
        ]
    );
    bob.send("WHO bob %in").await;
    assert_eq!(
        bob.sync().await,
        [
            ":parley.local 354 bob 127.0.0.1 bob",
            ":parley.local 315 bob bob :End of WHO list",
        ]
    );
    root.send("WHO bob %in").await;
    assert_eq!(
        root.sync().await,
        [
            ":parley.local 354 root 127.0.0.1 bob",
            ":parley.local 315 root bob :End of WHO list",
        ]
    );
}

/// Plain WHO stays RPL_WHOREPLY: "`<client> <channel> <username> <host> <server> <nick>
/// <flags> :<hopcount> <realname>`", flags "H" or "G", "*" for an operator, then "the highest
/// channel membership prefix" (all of them with multi-prefix: "the WHO reply [...] MUST
/// contain all prefixes in order of rank").
#[tokio::test]
async fn plain_who_flags_with_and_without_multi_prefix() {
    let server = TestServer::start_with(apart).await;
    let mut op = server.client("op").await;
    let mut multi = client_with_caps(server.addr, "multi", "multi-prefix").await;
    op.send("JOIN #room").await;
    op.sync().await;
    multi.send("JOIN #room").await;
    multi.sync().await;
    op.send("MODE #room +v op").await;
    op.send("AWAY :out").await;
    op.sync().await;
    multi.sync().await;
    multi.send("WHO #room").await;
    assert_eq!(
        multi.sync().await,
        [
            ":parley.local 352 multi #room ~op 127.0.0.1 parley.local op G@+ :0 Test op",
            ":parley.local 352 multi #room ~multi 127.0.0.1 parley.local multi H :0 Test multi",
            ":parley.local 315 multi #room :End of WHO list",
        ]
    );
    op.send("WHO #room").await;
    assert_eq!(
        op.sync().await,
        [
            ":parley.local 352 op #room ~op 127.0.0.1 parley.local op G@ :0 Test op",
            ":parley.local 352 op #room ~multi 127.0.0.1 parley.local multi H :0 Test multi",
            ":parley.local 315 op #room :End of WHO list",
        ]
    );
}

/// The same WHOX over the WebSocket transport.
#[tokio::test]
async fn whox_over_a_websocket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start_with(|c| {
        apart(c);
        c.web.listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let mut tcp = server.client("tcpuser").await;
    tcp.send("JOIN #web").await;
    tcp.sync().await;
    let web = server.running.web_addrs()[0];
    let stream = common::tls_connect(
        web,
        common::client_config_trusting(&server.generated_cert_pem()),
    )
    .await
    .expect("TLS handshake with the web listener");
    let request = format!("wss://localhost:{}/ws", web.port())
        .into_client_request()
        .expect("request");
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("WebSocket handshake");
    for line in [
        "NICK webby",
        "USER webby 0 * :Web user",
        "JOIN #web",
        "WHO #web %tnfa,5",
    ] {
        ws.send(Message::text(line)).await.expect("send");
    }
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout(common::TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid message");
        let line = match message {
            Message::Text(text) => text.to_string(),
            Message::Binary(data) => String::from_utf8_lossy(&data).into_owned(),
            _ => continue,
        };
        let end = line.contains(" 315 ");
        if line.contains(" 354 ") || end {
            seen.push(line);
        }
        if end {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ":parley.local 354 webby 5 tcpuser H@ 0",
            ":parley.local 354 webby 5 webby H 0",
            ":parley.local 315 webby #web :End of WHO list",
        ]
    );
}

/// In a cluster another node's users are listed as this node's are; their address is not
/// known here, so it is the placeholder even for an operator, and their idle time is 0.
#[tokio::test]
async fn another_nodes_users_appear_the_same() {
    let Some(cluster) = Cluster::start(2, |_, c| c.operators.admins = vec!["root".into()]).await
    else {
        return;
    };
    let mut here = cluster.client(0, "here").await;
    let mut there = cluster.client(1, "there").await;
    here.await_whois("there").await;
    there.await_whois("here").await;
    here.send("WHO there %tcuihsnfdlar,9").await;
    let lines = here.sync().await;
    assert_eq!(
        lines,
        [
            ":n1.parley.local 354 here 9 * ~there 255.255.255.255 127.0.0.1 n2.parley.local there H 0 0 0 :Test there",
            ":n1.parley.local 315 here there :End of WHO list",
        ]
    );
    here.send("WHO there").await;
    assert_eq!(
        here.sync().await,
        [
            ":n1.parley.local 352 here * ~there 127.0.0.1 n2.parley.local there H :0 Test there",
            ":n1.parley.local 315 here there :End of WHO list",
        ]
    );
}
