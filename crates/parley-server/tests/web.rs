//! The web listener against the real server: real TLS, real WebSocket handshakes (tokio-tungstenite
//! as the browser), subprotocol negotiation, origin checks, chat with a TCP client, the limits a
//! TCP client has, and the built-in web client's files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::{client_config_trusting, is_error_reply, tls_connect, TestServer, TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TlsStream<TcpStream>>;

async fn web_server() -> TestServer {
    TestServer::start_with(|config| config.web.listen = vec!["127.0.0.1:0".into()]).await
}

fn web_addr(server: &TestServer) -> SocketAddr {
    server.running.web_addrs()[0]
}

async fn tls(server: &TestServer) -> TlsStream<TcpStream> {
    tls_connect(
        web_addr(server),
        client_config_trusting(&server.generated_cert_pem()),
    )
    .await
    .expect("TLS handshake with the web listener")
}

/// A WebSocket handshake with the given `Origin` and subprotocols; the response or the error.
async fn ws_connect(
    server: &TestServer,
    origin: Option<&str>,
    protocols: &str,
) -> Result<(Ws, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let port = web_addr(server).port();
    let mut request = format!("wss://localhost:{port}/ws")
        .into_client_request()
        .expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).expect("origin"));
    }
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocols).expect("protocols"),
        );
    }
    let stream = tls(server).await;
    let (ws, response) =
        tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("handshake in time")?;
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().expect("ascii").to_string());
    Ok((ws, protocol))
}

/// The next IRC line on a WebSocket, as text, and whether it came as a binary message.
async fn next_line(ws: &mut Ws) -> (String, bool) {
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid message");
        match message {
            Message::Text(text) => return (text.to_string(), false),
            Message::Binary(data) => return (String::from_utf8_lossy(&data).into_owned(), true),
            _ => continue,
        }
    }
}

/// Read until a line matches; fails on an error reply before it, as `Client::expect` does.
async fn expect_line(ws: &mut Ws, matches: impl Fn(&str) -> bool) -> String {
    let mut seen = Vec::new();
    loop {
        let (line, _) = next_line(ws).await;
        assert!(!line.ends_with('\n'), "no line ending inside a message");
        if matches(&line) {
            return line;
        }
        seen.push(line);
        assert!(
            !seen.last().is_some_and(|l| is_error_reply(l)),
            "an error reply came before the expected line; saw {seen:#?}"
        );
        assert!(seen.len() < 200, "expected line never came; saw {seen:#?}");
    }
}

async fn send(ws: &mut Ws, line: &str) {
    ws.send(Message::text(line)).await.expect("send");
}

#[tokio::test]
async fn subprotocols_are_negotiated() {
    let server = web_server().await;
    let own = format!("https://localhost:{}", web_addr(&server).port());
    let (mut ws, protocol) = ws_connect(&server, Some(&own), "text.ircv3.net")
        .await
        .expect("text");
    assert_eq!(protocol.as_deref(), Some("text.ircv3.net"));
    send(&mut ws, "PING :text-check").await;
    let (line, binary) = next_line(&mut ws).await;
    assert!(line.ends_with("PONG parley.local :text-check"), "{line}");
    assert!(!binary, "text.ircv3.net answers in text messages");

    let (mut ws, protocol) = ws_connect(&server, Some(&own), "text.ircv3.net, binary.ircv3.net")
        .await
        .expect("both");
    assert_eq!(protocol.as_deref(), Some("binary.ircv3.net"));
    ws.send(Message::binary(b"PING :bin".to_vec()))
        .await
        .expect("send");
    let (line, binary) = next_line(&mut ws).await;
    assert!(line.ends_with("PONG parley.local :bin"), "{line}");
    assert!(binary, "binary.ircv3.net answers in binary messages");

    // No subprotocol (a program, no Origin): text, and no protocol header.
    let (mut ws, protocol) = ws_connect(&server, None, "").await.expect("none");
    assert_eq!(protocol, None);
    send(&mut ws, "PING :plain").await;
    let (line, binary) = next_line(&mut ws).await;
    assert!(line.ends_with(":plain") && !binary, "{line}");
}

#[tokio::test]
async fn foreign_origin_is_refused_with_403() {
    let server = web_server().await;
    let Err(err) = ws_connect(&server, Some("https://evil.example"), "text.ircv3.net").await else {
        panic!("a foreign origin was let in");
    };
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected an HTTP 403, got {other:?}"),
    }
    // Configured origins are let in.
    let server = TestServer::start_with(|config| {
        config.web.listen = vec!["127.0.0.1:0".into()];
        config.web.allowed_origins = vec!["https://client.example".into()];
    })
    .await;
    ws_connect(&server, Some("https://client.example"), "text.ircv3.net")
        .await
        .expect("allowed origin");
}

#[tokio::test]
async fn websocket_client_chats_with_tcp_client() {
    let server = web_server().await;
    let own = format!("https://localhost:{}", web_addr(&server).port());
    let (mut ws, _) = ws_connect(&server, Some(&own), "text.ircv3.net")
        .await
        .expect("connect");
    send(&mut ws, "NICK webby").await;
    send(&mut ws, "USER webby 0 * :Web User").await;
    expect_line(&mut ws, |l| l.contains(" 001 webby ")).await;
    expect_line(&mut ws, |l| l.contains(" JOIN") && l.contains("#lobby")).await;
    expect_line(&mut ws, |l| l.contains(" 366 ")).await;

    let mut tcp = server.client("tcpuser").await;
    expect_line(&mut ws, |l| {
        l.starts_with(":tcpuser!") && l.contains("JOIN")
    })
    .await;
    send(&mut ws, "PRIVMSG #lobby :hello from the browser").await;
    tcp.expect(|l| l == ":webby!~webby@127.0.0.1 PRIVMSG #lobby :hello from the browser")
        .await;
    tcp.send("PRIVMSG webby :hello from the terminal").await;
    expect_line(&mut ws, |l| {
        l == ":tcpuser!~tcpuser@127.0.0.1 PRIVMSG webby :hello from the terminal"
    })
    .await;

    // The same limits as TCP: an overlong line gets 417 and the connection goes on.
    let long = format!("PRIVMSG #lobby :{}", "x".repeat(9000));
    send(&mut ws, &long).await;
    expect_line(&mut ws, |l| l.contains(" 417 webby ")).await;
    send(&mut ws, "WHOIS webby").await;
    expect_line(&mut ws, |l| {
        l.contains(" 671 webby webby ") // a WebSocket over TLS is a secure connection
    })
    .await;

    // Closing the WebSocket quits the user.
    ws.close(None).await.expect("close");
    tcp.expect(|l| l.starts_with(":webby!") && l.contains("QUIT"))
        .await;
}

#[tokio::test]
async fn web_client_files_are_served() {
    let server = web_server().await;
    for (path, content_type, marker) in [
        ("/", "text/html; charset=utf-8", "<!doctype html>"),
        ("/app.js", "text/javascript; charset=utf-8", "import"),
        ("/irc.js", "text/javascript; charset=utf-8", "export"),
        ("/style.css", "text/css; charset=utf-8", "{"),
        // The icon index.html links, and the name browsers ask for without a link.
        ("/favicon.svg", "image/svg+xml", "<svg"),
        ("/favicon.ico", "image/svg+xml", "<svg"),
    ] {
        let (head, body) = http_get(&server, path).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-type: {content_type}")),
            "{path}: {head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-security-policy"),
            "{head}"
        );
        assert!(
            body.to_ascii_lowercase().contains(marker),
            "{path} body lacks {marker}"
        );
    }
    let (head, _) = http_get(&server, "/nope").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

/// One HTTP/1.1 GET over TLS, read to the end (the server closes after `Connection: close`).
async fn http_get(server: &TestServer, path: &str) -> (String, String) {
    let mut stream = tls(server).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .ok();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    (head.to_string(), body.to_string())
}

/// A WebSocket client counts once against `limits.max_clients_per_ip`: the slot its HTTPS
/// connection took at accept becomes its IRC connection's, and is given back when it leaves.
#[tokio::test]
async fn a_websocket_client_counts_once_against_the_address_limit() {
    let server = TestServer::start_with(|config| {
        config.web.listen = vec!["127.0.0.1:0".into()];
        config.limits.max_clients_per_ip = 1;
    })
    .await;
    let (mut ws, _) = ws_connect(&server, None, "").await.expect("the one slot");
    send(&mut ws, "PING :counted-once").await;
    let line = expect_line(&mut ws, |l| l.contains("PONG")).await;
    assert!(line.ends_with(":counted-once"), "{line}");
    assert_eq!(server.running.connection_count(), 1);
    // The address is at its limit: a second connection is closed before its handshake.
    let mut extra = TcpStream::connect(web_addr(&server))
        .await
        .expect("connect");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(TIMEOUT, extra.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    send(&mut ws, "QUIT").await;
    drop(ws);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while server.running.connection_count() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    ws_connect(&server, None, "").await.expect("the slot again");
}
