//! The server's defences against the real network: overlong lines, slow readers, floods, silent
//! and half-open connections, too many connections from one address, and a graceful shutdown.
//! Where time is what is tested (timeouts, flood delays) only lower bounds are asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{with_command, TestServer};
use tokio::time::Instant;

const TOO_LONG: &str = ":parley.local 417 alice :Input line was too long";

#[tokio::test]
async fn overlong_line_gets_417_and_connection_keeps_working() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    // 16 + 600 bytes of body: over the 512-byte limit, well under the framing limit.
    alice
        .send(&format!("PRIVMSG #lobby :{}", "a".repeat(600)))
        .await;
    assert_eq!(alice.sync().await, vec![TOO_LONG]);
    assert!(bob.sync().await.is_empty(), "the long line was not relayed");

    // Exactly at the limit (510 bytes + CRLF = 512) is fine.
    let text = "b".repeat(510 - "PRIVMSG #lobby :".len());
    alice.send(&format!("PRIVMSG #lobby :{text}")).await;
    assert!(alice.sync().await.is_empty());
    assert_eq!(
        bob.sync().await,
        vec![format!(":alice!~alice@127.0.0.1 PRIVMSG #lobby :{text}")]
    );
}

#[tokio::test]
async fn endless_line_gets_one_417_then_the_next_line_is_handled() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    for size in [20_000, 200_000] {
        alice.send_raw(&vec![b'x'; size]).await;
        alice.send_raw(b"\r\n").await;
        assert_eq!(alice.sync().await, vec![TOO_LONG], "a line of {size} bytes");
    }
    // The rest of an overlong line is skipped, not taken for a command.
    alice.send_raw(&vec![b'x'; 20_000]).await;
    alice
        .send_raw(b" PING :not-a-command\r\nPING :real\r\n")
        .await;
    assert_eq!(alice.recv().await, TOO_LONG);
    assert_eq!(alice.recv().await, ":parley.local PONG parley.local :real");
}

#[tokio::test]
async fn slow_reader_is_disconnected_and_others_keep_receiving() {
    let server = TestServer::start_with(|c| c.limits.send_queue_bytes = 4096).await;
    let [mut sender, mut reader, mut slow] = server.clients(["sender", "reader", "slow"]).await;

    // `slow` never reads while the sender talks, so the kernel buffers fill and then its send
    // queue overflows. Loopback buffers hold a few megabytes at most; 32 MB is far beyond that.
    // Each batch stays under the 4 KiB queue and the reader drains it before the next, so only a
    // client that does not read can overflow.
    let text = "z".repeat(480);
    let quit = ":slow!~slow@127.0.0.1 QUIT :SendQ exceeded";
    let mut sent = 0usize;
    let mut received = 0usize;
    // How often each reading member saw the slow one's QUIT.
    let (mut sender_quits, mut reader_quits) = (0, 0);
    while reader_quits == 0 {
        assert!(
            sent * text.len() < 32 << 20,
            "slow reader was never disconnected"
        );
        let mut batch = String::new();
        for _ in 0..7 {
            batch.push_str(&format!("PRIVMSG #lobby :{sent} {text}\r\n"));
            sent += 1;
        }
        // The batch and its PING go in one write: a separate small write would wait for the
        // server's delayed ACK (Nagle), making each round trip 40 ms.
        batch.push_str(&format!("PING :batch-{sent}\r\n"));
        sender.send_raw(batch.as_bytes()).await;
        let pong = format!(":parley.local PONG parley.local :batch-{sent}");
        loop {
            let line = sender.recv().await;
            if line == pong {
                break;
            }
            assert_eq!(line, quit, "the sender sees nothing but the QUIT");
            sender_quits += 1;
        }
        for line in reader.sync().await {
            if line == quit {
                reader_quits += 1;
                continue;
            }
            assert_eq!(
                line,
                format!(":sender!~sender@127.0.0.1 PRIVMSG #lobby :{received} {text}"),
                "the reader gets every line, in order"
            );
            received += 1;
        }
    }
    assert_eq!(received, sent, "the reader got everything");
    // Both stay connected and in the channel, and saw the QUIT once.
    sender.send("PRIVMSG #lobby :still here").await;
    for line in sender.sync().await {
        assert_eq!(line, quit);
        sender_quits += 1;
    }
    assert_eq!((sender_quits, reader_quits), (1, 1));
    assert_eq!(
        reader.sync().await,
        vec![":sender!~sender@127.0.0.1 PRIVMSG #lobby :still here"]
    );

    // While the server still tries to tell the slow client why (its socket is full), it no longer
    // counts as a user, nor as an unregistered ("unknown") connection.
    sender.send("LUSERS").await;
    let lusers = sender.sync().await;
    assert_eq!(
        lusers[..3],
        [
            ":parley.local 251 sender :There are 2 users and 0 invisible on 1 servers",
            ":parley.local 252 sender 0 :operator(s) online",
            ":parley.local 253 sender 0 :unknown connection(s)",
        ]
    );

    // The slow client's socket may be too full for the ERROR, but once it reads it reaches EOF,
    // having got less than everything.
    let lines = slow.expect_closed().await;
    let relayed = with_command(&lines, "PRIVMSG").len();
    assert!(relayed < sent, "{relayed} of {sent}");
    sender.send("NAMES #lobby").await;
    let names = sender.sync().await;
    assert!(
        names.contains(&":parley.local 353 sender = #lobby :sender reader".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn flood_control_delays_but_keeps_every_line_in_order() {
    let server = TestServer::start_with(|c| {
        c.flood.enabled = true;
        c.flood.burst = 5;
        c.flood.lines_per_second = 5.0;
    })
    .await;
    let [mut flooder, mut other] = server.clients(["flooder", "other"]).await;

    let mut burst = String::new();
    for i in 0..15 {
        burst.push_str(&format!("PING :flood-{i}\r\n"));
    }
    let started = Instant::now();
    flooder.send_raw(burst.as_bytes()).await;

    // Another client is not slowed by someone else's flood: its answer comes before the flood's
    // last one, which (at 5 lines/s past a burst of 5) is at least 2 s away.
    let _ = other.sync().await;
    let other_answered = Instant::now();

    for i in 0..15 {
        assert_eq!(
            flooder.recv().await,
            format!(":parley.local PONG parley.local :flood-{i}")
        );
    }
    let last = Instant::now();
    assert!(
        last - started >= Duration::from_millis(1500),
        "15 lines at 5/s past a burst of 5 took only {:?}",
        last - started
    );
    assert!(
        other_answered < last,
        "the other client waited for the flood"
    );
}

#[tokio::test]
async fn registration_timeout_closes_unregistered_connections() {
    let server = TestServer::start_with(|c| c.limits.registration_timeout_secs = 1).await;
    let mut alice = server.client("alice").await;
    let mut stranger = server.connect().await;
    stranger.send("NICK stranger").await;
    let started = Instant::now();
    assert_eq!(
        stranger.expect_closed().await,
        vec!["ERROR :Closing Link: 127.0.0.1 (Registration timed out)"]
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    // The registered client has no such deadline, and the nick is free again.
    assert!(alice.sync().await.is_empty());
    let _stranger = server.client("stranger").await;
}

#[tokio::test]
async fn silent_clients_are_pinged_then_dropped() {
    let server = TestServer::start_with(|c| {
        c.limits.ping_interval_secs = 1;
        c.limits.ping_timeout_secs = 1;
    })
    .await;
    let [mut alive, mut silent] = server.clients(["alive", "silent"]).await;

    // `alive` answers every PING; it must get two of them (so it outlives `silent`) and see
    // `silent` time out in between.
    let mut pings = 0;
    let mut quit_seen = false;
    while pings < 2 || !quit_seen {
        let line = alive.recv().await;
        if line == "PING :parley.local" {
            pings += 1;
            alive.send("PONG :parley.local").await;
        } else {
            assert_eq!(
                line,
                ":silent!~silent@127.0.0.1 QUIT :Ping timeout: 2 seconds"
            );
            quit_seen = true;
        }
    }
    assert!(alive.sync().await.is_empty());

    assert_eq!(
        silent.expect_closed().await,
        vec![
            "PING :parley.local",
            "ERROR :Closing Link: 127.0.0.1 (Ping timeout: 2 seconds)"
        ]
    );
}

#[tokio::test]
async fn connections_per_address_are_limited() {
    let server = TestServer::start_with(|c| c.limits.max_clients_per_ip = 2).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    // A PONG proves the server has counted the connection.
    for c in [&mut first, &mut second] {
        c.send("PING :counted").await;
        assert_eq!(c.recv().await, ":parley.local PONG parley.local :counted");
    }
    let mut third = server.connect().await;
    assert_eq!(
        third.expect_closed().await,
        vec!["ERROR :Closing Link: 127.0.0.1 (Too many connections from your address)"]
    );
    assert_eq!(server.running.connection_count(), 2);

    // A connection that ends frees its slot. The server counts it free just after the EOF, so
    // try a few times; every refusal must be the same clean ERROR.
    first.send("QUIT").await;
    first.expect_closed().await;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut next = server.connect().await;
        next.send("PING :again").await;
        let reply = next.recv().await;
        if reply == ":parley.local PONG parley.local :again" {
            break;
        }
        assert_eq!(
            reply,
            "ERROR :Closing Link: 127.0.0.1 (Too many connections from your address)"
        );
        assert!(attempts < 200, "the slot was never freed");
        tokio::task::yield_now().await;
    }
}

/// On a dual-stack listener (`[::]`) IPv4 clients arrive as `::ffff:a.b.c.d`. They are counted
/// as the IPv4 address they are: one address across an IPv4 and a dual-stack listener, and
/// by their own /24 rather than all together in the one /64 every mapped address shares.
#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_are_counted_as_ipv4() {
    let server = TestServer::start_with(|c| {
        c.listen.plain = vec!["[::]:0".into(), "127.0.0.1:0".into()];
        c.limits.max_clients_per_ip = 1;
        c.limits.max_clients_per_cidr = 2;
    })
    .await;
    let dual = std::net::SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
    let v4_only = server.running.plain_addrs()[1];
    let from = |ip: &str| ip.parse::<std::net::IpAddr>().expect("ip");
    let mut first = common::connect_from(v4_only, from("127.0.0.1")).await;
    first.register("first").await;
    first.send("WHOIS first").await;
    let whois = first.sync().await;
    assert!(
        whois
            .iter()
            .any(|l| l.contains(" 311 first first ~first 127.0.0.1 ")),
        "{whois:?}"
    );
    // The same address through the dual-stack listener is the same address.
    let mut again = common::connect_from(dual, from("127.0.0.1")).await;
    assert_eq!(
        again.expect_closed().await,
        vec!["ERROR :Closing Link: 127.0.0.1 (Too many connections from your address)"]
    );
    // Other IPv4 networks are not all one IPv6 /64.
    for (nick, ip) in [("second", "127.0.1.1"), ("third", "127.0.2.1")] {
        let mut client = common::connect_from(dual, from(ip)).await;
        client.register(nick).await;
        client.send(&format!("WHOIS {nick}")).await;
        let whois = client.sync().await;
        assert!(
            whois
                .iter()
                .any(|l| l.contains(&format!(" 311 {nick} {nick} ~{nick} {ip} "))),
            "{whois:?}"
        );
    }
}

#[tokio::test]
async fn shutdown_says_goodbye_and_finishes() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    let mut stranger = server.connect().await;
    stranger.send("PING :counted").await;
    stranger.recv().await;

    server.running.shutdown();
    for client in [&mut alice, &mut bob, &mut stranger] {
        let lines = client.expect_closed().await;
        assert_eq!(
            lines.last().map(String::as_str),
            Some("ERROR :Server shutting down"),
            "{lines:?}"
        );
        // Before its own goodbye a client may see its channel neighbours leave.
        for line in &lines[..lines.len() - 1] {
            assert!(line.ends_with(" QUIT :Server shutting down"), "{lines:?}");
        }
    }
    assert!(server.running.wait(Duration::from_secs(5)).await);
    assert_eq!(server.running.connection_count(), 0);
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn a_full_server_refuses_with_an_error() {
    let server = TestServer::start_with(|c| c.limits.max_clients = 1).await;
    let _alice = server.client("alice").await;
    let mut second = server.connect().await;
    assert_eq!(
        second.expect_closed().await,
        vec!["ERROR :Closing Link: 127.0.0.1 (Server is full, try again later)"]
    );
}

#[tokio::test]
async fn shutdown_interrupts_flood_delays() {
    let server = TestServer::start_with(|c| {
        c.flood.enabled = true;
        c.flood.burst = 1;
        c.flood.lines_per_second = 0.1;
    })
    .await;
    let mut flooder = server.connect().await;
    // The first line passes; the second waits 10 s for its token.
    flooder.send("PING :first").await;
    flooder.send("PING :second").await;
    assert_eq!(
        flooder.recv().await,
        ":parley.local PONG parley.local :first"
    );
    server.running.shutdown();
    assert_eq!(
        flooder.expect_closed().await,
        vec!["ERROR :Server shutting down"]
    );
    assert!(server.running.wait(Duration::from_secs(5)).await);
}
