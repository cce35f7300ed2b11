//! A [`Client`] over the WebSocket transport (IRCv3 WebSocket, `text.ircv3.net`), so a test
//! written for TCP runs over the web listener unchanged: a task carries each line written to the
//! client as one WebSocket message and each message received back as one line.

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::{client_config_trusting, tls_connect, Client, TestServer, TIMEOUT};

/// A raw, unregistered connection to the server's first web listener (it must have one).
pub async fn connect_websocket(server: &TestServer) -> Client {
    let addr = server.running.web_addrs()[0];
    let stream = tls_connect(addr, client_config_trusting(&server.generated_cert_pem()))
        .await
        .expect("TLS handshake with the web listener");
    let mut request = format!("wss://localhost:{}/ws", addr.port())
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("text.ircv3.net"),
    );
    let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(request, stream))
        .await
        .expect("handshake in time")
        .expect("WebSocket handshake");
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let (mut to_server, mut from_server) = ws.split();
        let (read, mut write) = tokio::io::split(theirs);
        let mut lines = BufReader::new(read).lines();
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => {
                        let line = line.trim_end_matches('\r').to_string();
                        if to_server.send(Message::text(line)).await.is_err() {
                            return;
                        }
                    }
                    _ => {
                        let _ = to_server.close().await;
                        return;
                    }
                },
                message = from_server.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        if write.write_all(format!("{text}\r\n").as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(Message::Binary(data))) => {
                        let mut line = data.to_vec();
                        line.extend_from_slice(b"\r\n");
                        if write.write_all(&line).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        let _ = write.shutdown().await;
                        return;
                    }
                },
            }
        }
    });
    Client::over(Box::new(ours))
}
