//! One account, one user, in a whole cluster (issue 26): a login on one node whose account's
//! user lives on another becomes another session of that user there, carried over the bus
//! (`cluster::bridge`, `connection::bridged`). Real nodes on a real nats-server and PostgreSQL:
//! the session gets the user's nick and channels, what it sends the others see once from the
//! one user, what the user is sent reaches it, leaving is silent until the last session goes,
//! the user's node going away closes it, and an open a node's NATS login forges is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::cluster::Cluster;
use common::{command_of, Client};
use futures_util::StreamExt;

/// Log in to `account` (password `<account>-pw`) at `addr` with SASL before CAP END, asking
/// for `caps` and NICK `nick` (see [`common::sasl_session`]).
async fn session(
    addr: std::net::SocketAddr,
    nick: &str,
    account: &str,
    caps: &str,
) -> (Client, Vec<String>) {
    common::sasl_session(addr, nick, account, &format!("{account}-pw"), caps).await
}

/// The texts of the PRIVMSGs to `#room` in `lines`.
fn room_texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| command_of(l) == "PRIVMSG" && l.contains(" #room :"))
        .filter_map(|l| l.split(" #room :").nth(1).map(str::to_string))
        .collect()
}

/// Read until a PRIVMSG ending in `text`; the room texts and every line on the way.
async fn until_text(c: &mut Client, text: &str) -> (Vec<String>, Vec<String>) {
    let mut seen = Vec::new();
    loop {
        let line = c.recv().await;
        let done = command_of(&line) == "PRIVMSG" && line.ends_with(&format!(" :{text}"));
        seen.push(line);
        if done {
            return (room_texts(&seen), seen);
        }
    }
}

#[tokio::test]
async fn a_login_on_another_node_is_a_session_of_the_user_there() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let (n1, n2) = (cluster.nodes[0].addr, cluster.nodes[1].addr);
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    let (mut a, _) = session(n1, "alice", "alice", "echo-message message-tags").await;
    assert_eq!(a.nick, "alice");
    let mut carol = cluster.client(1, "carol").await;
    carol.send("JOIN #room").await;
    carol.sync().await;
    a.await_whois("carol").await;
    carol.await_whois("alice").await;
    a.send("JOIN #room").await;
    a.expect(|l| l.ends_with(" JOIN #room")).await;
    carol.expect(|l| l.ends_with(" JOIN #room")).await;

    // The second login is on carol's node: it becomes alice there (not alice_ here), with
    // her channel; carol sees nothing of it.
    let (mut b, burst) = session(n2, "alice", "alice", "message-tags labeled-response batch").await;
    assert_eq!(b.nick, "alice", "{burst:#?}");
    assert!(
        burst.iter().any(|l| l.ends_with(" JOIN #room")),
        "{burst:#?}"
    );
    assert!(
        burst
            .iter()
            .any(|l| command_of(l) == "353" && l.contains("carol")),
        "{burst:#?}"
    );
    let quiet = carol.sync().await;
    assert!(
        quiet
            .iter()
            .all(|l| !l.contains("JOIN") && !l.contains("NICK")),
        "{quiet:#?}"
    );

    // b's line reaches carol once, from alice, and a as the line of another session.
    b.send("PRIVMSG #room :from-b").await;
    let (at_carol, seen) = until_text(&mut carol, "from-b").await;
    assert_eq!(at_carol, ["from-b"]);
    assert!(seen.last().unwrap().starts_with(":alice!"), "{seen:#?}");
    let (at_a, _) = until_text(&mut a, "from-b").await;
    assert_eq!(at_a, ["from-b"]);
    // a's line reaches b (no echo-message on b: only the other session's lines).
    a.send("PRIVMSG #room :from-a").await;
    let (at_b, _) = until_text(&mut b, "from-a").await;
    assert_eq!(at_b, ["from-a"]);
    // A private message to alice reaches both sessions.
    carol.send("PRIVMSG alice :psst").await;
    a.expect(|l| l.ends_with("PRIVMSG alice :psst")).await;
    b.expect(|l| l.ends_with("PRIVMSG alice :psst")).await;
    // A labeled command on the carried session is answered under its label.
    b.send("@label=w1 WHOIS alice").await;
    let batch = b
        .expect(|l| l.starts_with("@label=w1 ") && l.contains("BATCH +"))
        .await;
    assert!(batch.contains("labeled-response"), "{batch}");
    let whois: Vec<String> = {
        let mut lines = Vec::new();
        loop {
            let line = b.recv().await;
            let end = command_of(&line) == "BATCH";
            lines.push(line);
            if end {
                break lines;
            }
        }
    };
    assert!(
        whois
            .iter()
            .any(|l| l.contains(" 320 ") && l.contains("2 sessions")),
        "the user's node counts both sessions: {whois:#?}"
    );
    // Names at carol's node: alice once.
    carol.send("NAMES #room").await;
    let names = carol.expect_numeric("353").await;
    assert_eq!(names.matches("alice").count(), 1, "{names}");

    // b leaving is seen by nobody; a leaving last is.
    b.send("QUIT :phone off").await;
    b.expect_closed().await;
    a.send("PRIVMSG #room :after-b").await;
    let (_, seen) = until_text(&mut carol, "after-b").await;
    assert!(seen.iter().all(|l| command_of(l) != "QUIT"), "{seen:#?}");
    a.send("QUIT :laptop off").await;
    a.expect_closed().await;
    let quit = carol.expect(|l| command_of(l) == "QUIT").await;
    assert!(
        quit.starts_with(":alice!") && quit.ends_with("laptop off"),
        "{quit}"
    );
}

#[tokio::test]
async fn a_socket_closing_on_its_node_ends_only_that_session() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let (n1, n2) = (cluster.nodes[0].addr, cluster.nodes[1].addr);
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    let (mut a, _) = session(n1, "alice", "alice", "").await;
    let mut carol = cluster.client(1, "carol").await;
    carol.await_whois("alice").await;
    let (b, _) = session(n2, "alice", "alice", "").await;
    a.send("WHOIS alice").await;
    let whois = a.sync().await;
    assert!(whois.iter().any(|l| l.contains("2 sessions")), "{whois:#?}");
    // The socket drops without QUIT: the user's node hears it and counts one session again.
    drop(b);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        a.send("WHOIS alice").await;
        let whois = a.sync().await;
        if whois.iter().all(|l| !l.contains(" 320 ")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{whois:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quiet = carol.sync().await;
    assert!(quiet.iter().all(|l| command_of(l) != "QUIT"), "{quiet:#?}");
}

#[tokio::test]
async fn the_users_node_ending_closes_its_sessions_elsewhere() {
    let Some(cluster) = Cluster::start(1, |_, c| c.cluster.lease_secs = 2).await else {
        return;
    };
    let mut home = cluster
        .spawn_binary("n2", &[("PARLEY_CLUSTER__LEASE_SECS", "2")])
        .await;
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    let (mut a, _) = session(home.addr, "alice", "alice", "").await;
    let mut carol = cluster.client(0, "carol").await;
    carol.await_whois("alice").await;
    carol.send("JOIN #room").await;
    carol.sync().await;
    a.send("JOIN #room").await;
    carol.expect(|l| l.ends_with(" JOIN #room")).await;
    let (mut b, _) = session(cluster.nodes[0].addr, "alice", "alice", "").await;
    assert_eq!(b.nick, "alice");
    a.send("WHOIS alice").await;
    assert!(a.sync().await.iter().any(|l| l.contains("2 sessions")));
    home.kill().await;
    // Judged dead within the lease (and a margin for a loaded machine): the session here
    // ends with a word of why, and carol sees alice go.
    let closing = tokio::time::timeout(Duration::from_secs(30), b.expect_closed())
        .await
        .expect("the carried session ends once its user's node is gone");
    assert!(
        closing
            .iter()
            .any(|l| l.starts_with("ERROR ") && l.contains("n2 lost")),
        "{closing:#?}"
    );
    carol.expect(|l| command_of(l) == "QUIT").await;
}

#[tokio::test]
async fn an_open_that_a_nodes_nats_login_forges_is_refused() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    let (_a, _) = session(cluster.nodes[0].addr, "alice", "alice", "").await;
    // n2's NATS login (not its database, so not the cluster's secret) opens a session of
    // alice at n1: with no MAC, a made-up one, and a real-looking body.
    let bus = cluster.nats_as("n2").await.expect("n2's bus login");
    let mut answers = bus
        .subscribe(format!("{}.sess.n2.n1", cluster.prefix))
        .await
        .expect("n2 reads what is sent to it");
    let body = serde_json::json!({
        "from": "n2", "from_incarnation": 1, "to": "n1", "sid": 42, "issued": unix_now(),
        "account": "alice", "ip": "127.0.0.1", "secure": false, "host": "x", "nick": "alice",
        "username": "x", "realname": "x", "caps": [], "cap_302": false,
        "login_session": null, "token_login": false,
    })
    .to_string();
    for mac in ["", &"0".repeat(64), &"ab".repeat(32)] {
        let mut frame = BytesMut::new();
        frame.put_u8(b'O');
        frame.put_u64(42);
        frame.put_slice(mac.as_bytes());
        frame.put_slice(body.as_bytes());
        bus.publish(format!("{}.sess.n1.n2", cluster.prefix), frame.freeze())
            .await
            .expect("n2 may publish as itself");
    }
    bus.flush().await.expect("flushed");
    let answer = tokio::time::timeout(Duration::from_secs(2), answers.next()).await;
    assert!(answer.is_err(), "a forged open was answered: {answer:?}");

    // n2 may not speak in another node's name: n3 (no node runs as n3 here) reads what is
    // handed to it, and sees n2's frame in n2's own name, never one in n1's.
    let n3 = cluster.nats_as("n3").await.expect("n3's bus login");
    let mut watch = n3
        .subscribe(format!("{}.sess.n3.*", cluster.prefix))
        .await
        .expect("n3 reads what is sent to it");
    n3.flush().await.expect("flushed");
    let frame = |kind: u8| {
        let mut frame = BytesMut::new();
        frame.put_u8(kind);
        frame.put_u64(42);
        frame.put_slice(b"QUIT\r\n");
        frame.freeze()
    };
    // The one in n1's name first: refused, whatever that does to n2's connection.
    let _ = bus
        .publish(format!("{}.sess.n3.n1", cluster.prefix), frame(b'c'))
        .await;
    let _ = bus.flush().await;
    let other = cluster.nats_as("n2").await.expect("n2's bus login");
    other
        .publish(format!("{}.sess.n3.n2", cluster.prefix), frame(b'D'))
        .await
        .expect("n2 may publish as itself");
    other.flush().await.expect("flushed");
    let Ok(Some(seen)) = tokio::time::timeout(Duration::from_secs(10), watch.next()).await else {
        panic!("n2's frame in its own name never reached n3");
    };
    assert!(
        seen.subject.ends_with(".sess.n3.n2"),
        "a frame in n1's name got through: {}",
        seen.subject
    );
    // And n2 cannot read what is handed to n3.
    if let Ok(mut spy) = other
        .subscribe(format!("{}.sess.n3.*", cluster.prefix))
        .await
    {
        let _ = other.flush().await;
        n3.publish(format!("{}.sess.n3.n3", cluster.prefix), frame(b'D'))
            .await
            .ok();
        let _ = n3.flush().await;
        let read = tokio::time::timeout(Duration::from_millis(500), spy.next()).await;
        assert!(
            !matches!(read, Ok(Some(_))),
            "n2 read a session frame meant for n3"
        );
    }
}

#[tokio::test]
async fn an_always_on_users_kept_presence_is_resumed_from_another_node() {
    let Some(cluster) = Cluster::start(2, |_, c| {
        c.accounts.always_on = parley_server::config::AlwaysOnPolicy::On;
    })
    .await
    else {
        return;
    };
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    let (mut a, _) = session(cluster.nodes[0].addr, "alice", "alice", "").await;
    a.send("JOIN #keep").await;
    a.expect(|l| l.ends_with(" JOIN #keep")).await;
    let mut carol = cluster.client(1, "carol").await;
    carol.send("JOIN #keep").await;
    carol.sync().await;
    drop(a);
    // Kept on n1 (away, still in #keep); the next login, on n2, is that user again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        carol.send("WHOIS alice").await;
        let whois = carol.sync().await;
        if whois.iter().any(|l| command_of(l) == "301") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{whois:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (b, burst) = session(cluster.nodes[1].addr, "alice", "alice", "").await;
    assert_eq!(b.nick, "alice", "{burst:#?}");
    assert!(
        burst.iter().any(|l| l.ends_with(" JOIN #keep")),
        "{burst:#?}"
    );
    carol.send("NAMES #keep").await;
    let names = carol.expect_numeric("353").await;
    assert_eq!(names.matches("alice").count(), 1, "{names}");
    assert!(!names.contains("alice_"), "{names}");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tokio::test]
async fn a_login_before_nick_on_another_node_is_not_refused_the_users_nick() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    let (mut a, _) = session(cluster.nodes[0].addr, "alice", "alice", "").await;
    let mut carol = cluster.client(1, "carol").await;
    carol.await_whois("alice").await;
    // irssi's order (SASL, CAP END, then NICK): no 433 for the user's own nick at n2.
    let (_c, seen) =
        common::sasl_before_nick(cluster.nodes[1].addr, "alice", "alice", "alice-pw").await;
    assert!(seen.iter().all(|l| command_of(l) != "433"), "{seen:#?}");
    assert!(seen.iter().any(|l| l.contains(" 001 alice ")), "{seen:#?}");
    a.send("WHOIS alice").await;
    let whois = a.sync().await;
    assert!(whois.iter().any(|l| l.contains("2 sessions")), "{whois:#?}");
    assert!(whois.iter().all(|l| command_of(l) != "NICK"), "{whois:#?}");
}

/// A node that does not take handovers (an older version, or bus permissions without the
/// `sess` subjects) holds alice: a login of hers on n1, in irssi's order, waits for the
/// handover's answer, then gets the 433 its NICK was spared and registers on n1 under
/// another nick, as before clusters shared sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_whose_users_node_does_not_answer_registers_here() {
    let Some(cluster) = Cluster::start(1, |_, _| {}).await else {
        return;
    };
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    // "n3" is such a node: only its events on the bus, alice among its users.
    let n3 = cluster.nats_as("n3").await.expect("n3's bus login");
    let js = async_nats::jetstream::new(n3);
    let user = serde_json::json!({"uid": "n3~1~7", "nick": "alice", "username": "~alice",
        "realname": "alice", "host": "127.0.0.1", "account": "alice", "secure": false,
        "away": null, "invisible": false, "oper": false, "signon_ms": 1});
    let envelope = serde_json::json!({"node": "n3", "incarnation": 1, "eid": 1,
        "event": {"type": "UserUp", "user": user}});
    js.publish(
        format!("{}.ev.n3", cluster.prefix),
        envelope.to_string().into(),
    )
    .await
    .expect("published")
    .await
    .expect("stored");
    let mut carol = cluster.client(0, "carol").await;
    carol.await_whois("alice").await;

    let mut c = common::sasl_then_nick(cluster.nodes[0].addr, "alice", "alice", "alice-pw").await;
    let refused = c.expect_skipping_errors(|l| command_of(l) == "433").await;
    assert!(refused.contains(" alice "), "{refused}");
    c.send("NICK alice2").await;
    let welcome = c.expect_numeric("001").await;
    assert!(welcome.contains(" 001 alice2 "), "{welcome}");
}

/// alice's last session, on a node that then leaves her, is gone by the time that node would
/// have taken her new login (n3 here: it publishes her QUIT while the handover waits and never
/// answers, and gives back her nick's claim only after that). The login stays on n1 and
/// registers as alice: the nick is free again, claimed as NICK claims it once n3 let go of it,
/// no 433 for a nick nobody holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_whose_user_left_meanwhile_keeps_the_nick() {
    let Some(cluster) = Cluster::start(1, |_, _| {}).await else {
        return;
    };
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    let n3 = cluster.nats_as("n3").await.expect("n3's bus login");
    let js = async_nats::jetstream::new(n3);
    // n3 holds her nick's claim, as a node does for each of its users ("n." and the hex of the
    // casefolded nick, in the `<prefix>_nicks` bucket).
    let nicks = js
        .get_key_value(format!("{}_nicks", cluster.prefix))
        .await
        .expect("the nick bucket");
    let key = format!("n.{}", hex("alice"));
    nicks
        .create(&key, "n3~1~7".into())
        .await
        .expect("n3 claims alice");
    let publish = |eid: u64, event: serde_json::Value| {
        let js = js.clone();
        let subject = format!("{}.ev.n3", cluster.prefix);
        async move {
            let envelope =
                serde_json::json!({"node": "n3", "incarnation": 1, "eid": eid, "event": event});
            js.publish(subject, envelope.to_string().into())
                .await
                .expect("published")
                .await
                .expect("stored");
        }
    };
    let user = serde_json::json!({"uid": "n3~1~7", "nick": "alice", "username": "~alice",
        "realname": "alice", "host": "127.0.0.1", "account": "alice", "secure": false,
        "away": null, "invisible": false, "oper": false, "signon_ms": 1});
    publish(1, serde_json::json!({"type": "UserUp", "user": user})).await;
    let mut carol = cluster.client(0, "carol").await;
    carol.await_whois("alice").await;

    let mut c = common::sasl_then_nick(cluster.nodes[0].addr, "alice", "alice", "alice-pw").await;
    // The handover to n3 is on its way (n1 waits for an answer that never comes); alice leaves.
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(
        2,
        serde_json::json!({"type": "Quit", "uid": "n3~1~7", "source": "alice!~alice@127.0.0.1",
            "reason": "Quit: gone", "channels": []}),
    )
    .await;
    // Its claim goes a little after the QUIT (a node gives it back in the background).
    tokio::time::sleep(Duration::from_millis(5_300)).await;
    nicks.delete(&key).await.expect("n3 gives alice back");
    let mut seen = Vec::new();
    let welcome = loop {
        let line = c.recv().await;
        seen.push(line.clone());
        if command_of(&line) == "001" {
            break line;
        }
    };
    assert!(welcome.contains(" 001 alice "), "{seen:#?}");
    assert!(seen.iter().all(|l| command_of(l) != "433"), "{seen:#?}");
    carol.send("WHOIS alice").await;
    let whois = carol.sync().await;
    assert!(whois.iter().any(|l| command_of(l) == "311"), "{whois:#?}");
}

/// A phone logging in on n2 just as the laptop's session on n1 closes, again and again: each
/// login registers as alice (a session of her on n1 if she is still there, a user of its own
/// on n2 if not), never with a 433.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_on_another_node_right_after_the_last_session_closed_keeps_the_nick() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let (n1, n2) = (cluster.nodes[0].addr, cluster.nodes[1].addr);
    cluster.nodes[0].create_account("alice", "alice-pw").await;
    for round in 0..6 {
        let (from, to) = if round % 2 == 0 { (n1, n2) } else { (n2, n1) };
        let (mut laptop, _) = session(from, "alice", "alice", "").await;
        assert_eq!(laptop.nick, "alice", "round {round}");
        laptop.send("QUIT :bye").await;
        drop(laptop);
        let (phone, seen) = common::sasl_before_nick(to, "alice", "alice", "alice-pw").await;
        assert!(
            seen.iter().all(|l| command_of(l) != "433"),
            "round {round}: {seen:#?}"
        );
        assert!(
            seen.iter().any(|l| l.contains(" 001 alice ")),
            "round {round}: {seen:#?}"
        );
        drop(phone);
        // The next round's login starts from nobody: wait until both nodes have seen her go.
        for node in 0..2 {
            let mut watcher = cluster.client(node, &format!("w{round}x{node}")).await;
            watcher
                .await_reply("WHOIS alice", |l| command_of(l) == "401")
                .await;
        }
    }
}

/// `text` as lowercase hex, the way nick keys spell a nick.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}
