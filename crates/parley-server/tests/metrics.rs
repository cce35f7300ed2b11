//! The metrics listener against the real server: `/healthz` answers, `/metrics` speaks the
//! Prometheus text format, and its figures move when people connect, chat and fail to log in.
//! One test reads figures: the metrics recorder is process-wide, so a second server would share
//! counters and gauges. The others test the HTTP edges and never ask for `/metrics` with GET or
//! HEAD (which would render, and so set the shared gauges), so they may run beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{http, sample, scrape, TestServer, TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long the listener waits for a request head (`metrics_http::REQUEST_TIMEOUT`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn metrics_show_connections_chat_and_failed_logins() {
    let off = TestServer::start().await;
    assert!(off.running.metrics_addrs().is_empty(), "off by default");
    off.running.shutdown();

    let server = TestServer::start_with(|config| {
        config.metrics.listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let addr = server.running.metrics_addrs()[0];
    assert!(addr.ip().is_loopback());

    assert_eq!(http(addr, "GET", "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http(addr, "GET", "/nope").await.0, 404);
    assert_eq!(http(addr, "POST", "/metrics").await.0, 405);
    assert_eq!(http(addr, "HEAD", "/metrics").await, (200, String::new()));

    let before = scrape(addr).await;
    assert_eq!(sample(&before, "parley_connections"), 0.0);

    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    for n in 0..5 {
        alice.send(&format!("PRIVMSG #lobby :message {n}")).await;
    }
    alice.sync().await;
    let got = bob.sync().await;
    assert_eq!(got.len(), 5, "{got:?}");

    let after = scrape(addr).await;
    assert!(
        after.contains("# TYPE parley_lines_received_total counter"),
        "{after}"
    );
    assert_eq!(sample(&after, "parley_connections"), 2.0, "{after}");
    assert_eq!(sample(&after, "parley_registered_users"), 2.0, "{after}");
    assert_eq!(sample(&after, "parley_channels"), 1.0, "{after}");
    assert!(sample(&after, "parley_connections_accepted_total") >= 2.0);
    let read = |text: &str| sample(text, "parley_lines_received_total");
    assert!(read(&after) - read(&before) >= 5.0, "{after}");
    let sent = |text: &str| sample(text, "parley_lines_sent_total");
    assert!(sent(&after) - sent(&before) >= 5.0, "{after}");
    assert!(sample(&after, "parley_bytes_sent_total") > 0.0);
    // Each message was committed to the store before bob got it.
    assert!(
        sample(&after, "parley_store_write_seconds_count") >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "parley_history_batch_size_count") >= 1.0,
        "{after}"
    );
    assert!(
        after.contains("parley_store_write_seconds_bucket{le=\"+Inf\"}"),
        "a real histogram, not a summary: {after}"
    );

    let mut guesser = server.connect().await;
    guesser.send("PASS nobody:wrong-password").await;
    guesser.send("NICK guesser").await;
    guesser.send("USER guesser 0 * :Guesser").await;
    guesser.expect_numeric("464").await;
    assert!(sample(&scrape(addr).await, "parley_login_failures_total") >= 1.0);

    drop((alice, bob, guesser));
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let now = scrape(addr).await;
        if sample(&now, "parley_connections") == 0.0 {
            assert_eq!(sample(&now, "parley_registered_users"), 0.0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections stayed open: {now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    server.running.shutdown();
    assert!(server.running.wait(Duration::from_secs(5)).await);
}

async fn metrics_server() -> (TestServer, SocketAddr) {
    let server = TestServer::start_with(|config| {
        config.metrics.listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let addr = server.running.metrics_addrs()[0];
    (server, addr)
}

/// Send `request` byte for byte and read the whole answer (the listener closes after one).
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to metrics");
        stream.write_all(request).await.expect("send request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read response");
        response
    };
    let response = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .expect("metrics answered and closed in time");
    String::from_utf8(response).expect("UTF-8 response")
}

fn status(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let (head, _) = response.split_once("\r\n\r\n")?;
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

#[tokio::test]
async fn other_paths_methods_and_malformed_requests_get_http_answers() {
    let (server, addr) = metrics_server().await;

    let missing = exchange(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status(&missing), "HTTP/1.1 404 Not Found", "{missing}");
    assert_eq!(body(&missing), "not found; try /metrics or /healthz\n");
    assert_eq!(
        header(&missing, "Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&missing, "Connection"), Some("close"), "{missing}");
    // No such resource whatever the method: 404, not 405 (which promises the path exists).
    let missing = exchange(addr, b"POST /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status(&missing), "HTTP/1.1 404 Not Found", "{missing}");

    // 405 names the methods that would work (RFC 9110 15.5.6: it must send Allow).
    for path in ["/metrics", "/healthz"] {
        let refused = exchange(
            addr,
            format!("DELETE {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(
            status(&refused),
            "HTTP/1.1 405 Method Not Allowed",
            "{refused}"
        );
        assert_eq!(header(&refused, "Allow"), Some("GET,HEAD"), "{refused}");
        assert_eq!(body(&refused), "use GET\n");
    }
    // A body is never read: a request announcing a megabyte it never sends is answered at once.
    let refused = exchange(
        addr,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
    )
    .await;
    assert_eq!(
        status(&refused),
        "HTTP/1.1 405 Method Not Allowed",
        "{refused}"
    );

    // The query is not part of the path; an absolute-form target names the same resource.
    let health = exchange(addr, b"GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        (status(&health), body(&health)),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    let health = exchange(addr, b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        (status(&health), body(&health)),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    // HTTP/1.0 scrapers (and curl -0) work too.
    let health = exchange(addr, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(body(&health), "ok\n", "{health}");

    // Not HTTP at all, and a request head over the 8 KiB limit.
    let garbage = exchange(addr, b"HELLO THERE\r\n\r\n").await;
    assert_eq!(status(&garbage), "HTTP/1.1 400 Bad Request", "{garbage}");
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let huge = exchange(addr, huge.as_bytes()).await;
    assert_eq!(
        status(&huge),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "{huge}"
    );

    server.running.shutdown();
    assert!(server.running.wait(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_dropped_and_holds_up_no_one() {
    let (server, addr) = metrics_server().await;
    let started = Instant::now();
    let silent = TcpStream::connect(addr).await.expect("connect");
    let mut partial = TcpStream::connect(addr).await.expect("connect");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("send half a head");

    // Meanwhile the listener answers everyone else.
    assert_eq!(http(addr, "GET", "/healthz").await, (200, "ok\n".into()));

    for (name, mut stream) in [("silent", silent), ("partial", partial)] {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(REQUEST_TIMEOUT + TIMEOUT, stream.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("the {name} connection was never dropped"));
        // Closed (or reset) without an answer: nothing was asked.
        assert!(read.is_err() || answer.is_empty(), "{name}: {answer:?}");
    }
    let elapsed = started.elapsed();
    // Dropped by the request timeout, not by the later connection deadline (twice as long)...
    assert!(
        elapsed < REQUEST_TIMEOUT + Duration::from_secs(4),
        "dropped after {elapsed:?}"
    );
    // ...and a slow scraper gets the whole timeout.
    assert!(
        elapsed >= REQUEST_TIMEOUT - Duration::from_millis(100),
        "dropped after {elapsed:?}"
    );

    server.running.shutdown();
    assert!(server.running.wait(Duration::from_secs(5)).await);
}
