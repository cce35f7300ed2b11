//! The metrics listener against the real server: `/healthz` answers, `/metrics` speaks the
//! Prometheus text format, and its figures move when people connect, chat and fail to log in.
//! One test only: the metrics recorder is process-wide, so a second server would share counters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{http, sample, scrape, TestServer, TIMEOUT};

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
