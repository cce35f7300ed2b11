//! The web listener: HTTPS that serves the built-in web client and carries IRC over the IRCv3
//! WebSocket transport (`text.ircv3.net` / `binary.ircv3.net`, one IRC line per message).
//!
//! A WebSocket is not given a connection loop of its own: each one is bridged onto an in-memory
//! pipe and handed to the same [`connection::serve`] as TCP clients, so every limit (line length
//! and 417, flood control, send queue, per-address caps, timeouts) applies unchanged. The browser
//! origin is checked before upgrading, since any web page can ask a browser to open a WebSocket.
//!
//! Staying logged in: after a password login the web client asks for a login session over IRC
//! (`SESSION NEW`, see `command::session`) and keeps the token, never the password, in
//! `localStorage` under the server's address; a reload logs in with it through SASL
//! `IRCV3BEARER`, and `/logout` revokes it. We chose a token over IRC rather than an HttpOnly
//! cookie on this listener: a cookie would keep the token away from page scripts, but it would
//! also log in any WebSocket the browser opens here, turning every origin-check mistake into a
//! login (cross-site WebSocket hijacking), and it would serve only this client, where a SASL
//! mechanism serves any IRC client. The cost is that a script injected into the page could read
//! the token, so the page allows only its own scripts (the Content-Security-Policy below), and
//! a token is revocable, expires unused (`web.session_days`) and is stored on the server only
//! as a SHA-256 hash.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use parley_proto::MAX_LINE_LEN;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::connection;
use crate::server::{Admitted, Shared};

/// The WebSocket subprotocols of the IRCv3 WebSocket spec, in our order of preference: binary
/// carries any byte sequence a TCP client could send; text suits browsers.
pub const SUBPROTOCOLS: [&str; 2] = ["binary.ircv3.net", "text.ircv3.net"];

/// Longest wait for a request's headers (idle keep-alive included). The TLS handshake before
/// it has `limits.handshake_timeout_secs`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// After an accept error (such as running out of file descriptors) wait before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Largest WebSocket message accepted. Above the IRC line limit, so an overlong line still gets
/// the usual 417 from the connection loop; far bigger ones end the WebSocket before allocation.
const MAX_MESSAGE_BYTES: usize = 2 * (MAX_LINE_LEN + 2);

/// Bytes buffered in each direction of the pipe between a WebSocket and its connection task.
const PIPE_BYTES: usize = 16 * 1024;

/// How long a closing WebSocket may take to answer our Close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The web client, built into the binary so there is nothing to install or build.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "/index.html",
        "text/html; charset=utf-8",
        include_str!("../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    ),
    (
        "/irc.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/irc.js"),
    ),
    (
        "/push.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/push.js"),
    ),
    // The service worker of web push notifications (IRCv3 draft/webpush): served from the
    // root, so its scope is the whole client.
    (
        "/sw.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/sw.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
    // index.html links the SVG; /favicon.ico answers too, for browsers and tools that ask for it
    // by name, so no console shows a 404.
    (
        "/favicon.svg",
        "image/svg+xml",
        include_str!("../web/favicon.svg"),
    ),
    (
        "/favicon.ico",
        "image/svg+xml",
        include_str!("../web/favicon.svg"),
    ),
];

/// Scripts, styles and sockets only from this server; no framing by other sites.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Clone)]
struct WebState {
    shared: Arc<Shared>,
    tasks: TaskTracker,
}

/// The TCP peer behind a request, and its place in the admission limits: taken at accept,
/// held by the HTTPS connection, and handed to the WebSocket it upgrades to (so a browser's
/// IRC connection counts once, as a TCP client's does).
#[derive(Clone)]
struct Peer {
    addr: SocketAddr,
    admitted: Arc<Mutex<Option<Admitted>>>,
}

/// Accept HTTPS connections until shutdown; each is served by its own task.
pub async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tasks: TaskTracker,
) {
    let local = listener.local_addr().ok();
    let router = Router::new()
        .route("/ws", get(websocket))
        .fallback(static_file)
        .with_state(WebState {
            shared: shared.clone(),
            tasks: tasks.clone(),
        });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(listener = ?local, %err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let peer = crate::listener::canonical_peer(peer);
        // Before the handshake, so a D-lined or over-the-limit address costs none.
        let admitted = match shared.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                connection::log_refusal(peer, &refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone().layer(Extension(Peer {
            addr: peer,
            admitted: Arc::new(Mutex::new(Some(admitted))),
        })));
        let shutdown = shared.shutdown.clone();
        let handshake_timeout = crate::listener::handshake_timeout(&shared);
        tasks.spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => return debug!(%peer, %err, "web TLS handshake failed"),
                Err(_) => return debug!(%peer, "web TLS handshake timed out"),
            };
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024);
            let connection = http
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            tokio::select! {
                result = connection => {
                    if let Err(err) = result {
                        debug!(%peer, %err, "web connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        });
    }
    info!(listener = ?local, "web listener closed");
}

/// `GET /ws`: check the origin, pick a subprotocol, and hand the socket to the connection loop.
async fn websocket(
    State(state): State<WebState>,
    Extension(Peer {
        addr: peer,
        admitted,
    }): Extension<Peer>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !origin_allowed(origin, host, &state.shared.config.web.allowed_origins) {
        info!(%peer, origin = origin.unwrap_or(""), "WebSocket refused: origin not allowed");
        return (
            StatusCode::FORBIDDEN,
            "This origin may not open a WebSocket here (see web.allowed_origins).\n",
        )
            .into_response();
    }
    let upgrade = upgrade
        .protocols(SUBPROTOCOLS)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES);
    // The spec's default without a negotiated subprotocol is text.
    let binary = upgrade
        .selected_protocol()
        .is_some_and(|p| p.as_bytes() == SUBPROTOCOLS[0].as_bytes());
    let WebState { shared, tasks } = state;
    // The connection's own slot; a second upgrade on one connection (which HTTP/1.1 cannot
    // really do) would need one of its own.
    let taken = admitted.lock().take();
    let admitted = match taken.map_or_else(|| shared.admit(peer.ip()), Ok) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            connection::log_refusal(peer, &refusal);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}.\n", refusal.reason()),
            )
                .into_response();
        }
    };
    upgrade
        .on_failed_upgrade(move |err| debug!(%peer, %err, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            // Tracked, so a graceful shutdown waits for WebSocket clients like any other.
            tasks.spawn(serve_websocket(shared, admitted, socket, peer, binary));
            async {}
        })
}

/// Whether a browser page from `origin` may open a WebSocket. Requests without an `Origin` come
/// from programs, not pages, and cannot ride on a user's browser, so they are let through.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    // Our own origin: the page was loaded from the host the browser is talking to now.
    host.is_some_and(|host| {
        origin
            .strip_prefix("https://")
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    })
}

/// One WebSocket's life: the connection loop on one end of a pipe, the bridge on the other.
async fn serve_websocket(
    shared: Arc<Shared>,
    admitted: Admitted,
    socket: WebSocket,
    peer: SocketAddr,
    binary: bool,
) {
    let (server_end, bridge_end) = tokio::io::duplex(PIPE_BYTES);
    debug!(%peer, binary, "WebSocket client connected");
    tokio::join!(
        connection::serve(shared, admitted, server_end, peer, true),
        bridge(socket, bridge_end, binary),
    );
}

/// Translate WebSocket messages into CRLF-terminated lines and back.
async fn bridge(socket: WebSocket, pipe: tokio::io::DuplexStream, binary: bool) {
    let (mut ws_out, mut ws_in) = socket.split();
    let (pipe_in, mut pipe_out) = tokio::io::split(pipe);
    let inbound = async move {
        while let Some(message) = ws_in.next().await {
            let data: Bytes = match message {
                Ok(WsMessage::Text(text)) => Bytes::from(text),
                Ok(WsMessage::Binary(data)) => data,
                Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => continue,
                Ok(WsMessage::Close(_)) | Err(_) => break,
            };
            let line = trim_line_ending(&data);
            if line.is_empty() {
                continue;
            }
            if pipe_out.write_all(line).await.is_err() || pipe_out.write_all(b"\r\n").await.is_err()
            {
                break;
            }
        }
        // End of input: the connection loop sees the socket close.
        let _ = pipe_out.shutdown().await;
    };
    let outbound = async move {
        let mut reader = BufReader::with_capacity(PIPE_BYTES, pipe_in);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = trim_line_ending(&line);
            let message = if binary {
                WsMessage::Binary(Bytes::copy_from_slice(text))
            } else {
                WsMessage::Text(String::from_utf8_lossy(text).into_owned().into())
            };
            if ws_out.feed(message).await.is_err() {
                return;
            }
            // Everything already waiting travels in one flush, as with the TCP writer.
            if reader.buffer().is_empty() && ws_out.flush().await.is_err() {
                return;
            }
        }
        let _ = ws_out.send(WsMessage::Close(None)).await;
    };
    let inbound = tokio::spawn(inbound);
    outbound.await;
    // The server side is done; give the browser a moment to answer the Close, then drop it.
    let abort = inbound.abort_handle();
    if tokio::time::timeout(CLOSE_GRACE, inbound).await.is_err() {
        abort.abort();
    }
}

fn trim_line_ending(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = line {
        line = rest;
    }
    line
}

/// The built-in web client's files (GET and HEAD only).
async fn static_file(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD here.\n").into_response();
    }
    let Some((_, content_type, body)) = ASSETS.iter().find(|(path, _, _)| *path == uri.path())
    else {
        return (StatusCode::NOT_FOUND, "Not found.\n").into_response();
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(*body)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origin_is_allowed_and_others_are_not() {
        let host = Some("chat.example.org:8443");
        assert!(origin_allowed(
            Some("https://chat.example.org:8443"),
            host,
            &[]
        ));
        assert!(origin_allowed(
            Some("https://CHAT.example.org:8443/"),
            host,
            &[]
        ));
        assert!(!origin_allowed(Some("https://evil.example"), host, &[]));
        assert!(!origin_allowed(
            Some("http://chat.example.org:8443"),
            host,
            &[]
        ));
        assert!(!origin_allowed(Some("null"), host, &[]));
        assert!(!origin_allowed(Some("https://x"), None, &[]));
    }

    #[test]
    fn configured_origins_and_wildcard() {
        let allowed = vec!["https://client.example".to_string()];
        assert!(origin_allowed(
            Some("https://client.example"),
            Some("irc.example:8443"),
            &allowed
        ));
        assert!(!origin_allowed(
            Some("https://other.example"),
            Some("irc.example:8443"),
            &allowed
        ));
        assert!(origin_allowed(
            Some("https://anything"),
            None,
            &["*".to_string()]
        ));
    }

    #[test]
    fn programs_without_origin_are_allowed() {
        assert!(origin_allowed(None, None, &[]));
    }

    #[test]
    fn line_endings_are_trimmed() {
        assert_eq!(trim_line_ending(b"PING x\r\n"), b"PING x");
        assert_eq!(trim_line_ending(b"PING x"), b"PING x");
        assert_eq!(trim_line_ending(b"\r\n"), b"");
    }

    #[test]
    fn assets_are_built_in() {
        for (path, content_type, body) in ASSETS {
            assert!(!body.is_empty(), "{path}");
            assert!(
                content_type.contains("charset=utf-8") || content_type.starts_with("image/"),
                "{path}"
            );
        }
    }
}
