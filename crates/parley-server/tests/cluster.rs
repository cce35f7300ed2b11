//! Cluster mode with clients on different nodes: several parleyd on one nats-server and one
//! PostgreSQL database must look like one server. Every member gets every line once and in one
//! order, a nick belongs to one user, a node that dies takes its users with it and loses nothing it
//! accepted, and a restart of the bus interrupts chat without breaking it.
//!
//! Needs nats-server and `PARLEY_TEST_POSTGRES_URL` (see `common/cluster.rs`); without them each
//! test skips, unless `PARLEY_REQUIRE_CLUSTER=1` (CI sets it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::cluster::{client_with_caps, names_in, source, Cluster, NatsServer, CONVERGE};
use common::{command_of, is_error_reply, Client, TIMEOUT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A line without its message tags.
fn untagged(line: &str) -> &str {
    match line.strip_prefix('@') {
        Some(tagged) => tagged.split_once(' ').map_or("", |(_, rest)| rest),
        None => line,
    }
}

/// A new connection to `node` that asks for the nick alice, and is told it is taken.
async fn refused_alice_on(node: &common::TestServer) -> Client {
    let mut other = node.connect().await;
    other.send("NICK alice").await;
    other.send("USER other 0 * :Test other").await;
    let refused = other.expect_numeric("433").await;
    assert!(
        refused.ends_with(" 433 * alice :Nickname is already in use"),
        "{refused}"
    );
    other
}

fn join_line(nick: &str, channel: &str) -> String {
    format!(":{} JOIN {channel}", source(nick))
}

/// The first line nats-server sends a new connection.
async fn nats_greeting(port: u16) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to nats-server");
    let mut line = String::new();
    tokio::time::timeout(TIMEOUT, BufReader::new(stream).read_line(&mut line))
        .await
        .expect("nats-server greets in time")
        .expect("read the greeting");
    line
}

#[tokio::test]
async fn nats_harness_starts_stops_and_restarts_with_its_data() {
    use async_nats::jetstream;
    let Some(mut nats) = NatsServer::start().await else {
        return;
    };
    let info = nats_greeting(nats.port()).await;
    assert!(info.starts_with("INFO "), "{info}");
    assert!(
        info.contains("\"jetstream\":true"),
        "JetStream is on: {info}"
    );

    let js = jetstream::new(nats.admin().await);
    js.create_stream(jetstream::stream::Config {
        name: "harness".into(),
        subjects: vec!["harness.>".into()],
        ..Default::default()
    })
    .await
    .expect("create a stream");
    js.publish("harness.one", "kept".into())
        .await
        .expect("publish")
        .await
        .expect("JetStream stored it");
    drop(js);

    nats.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", nats.port()))
            .await
            .is_err(),
        "a stopped nats-server accepts nothing"
    );
    nats.restart().await;
    let info = nats_greeting(nats.port()).await;
    assert!(info.starts_with("INFO "), "{info}");
    let js = jetstream::new(nats.admin().await);
    let mut stream = js
        .get_stream("harness")
        .await
        .expect("the stream survived the restart");
    let state = &stream.info().await.expect("stream info").state;
    assert_eq!(state.messages, 1, "the stored message survived the restart");
}

// ---------------------------------------------------------------------------------------------
// Messages

/// Every `PRIVMSG #room` line (tags stripped) until `ends` lines ending in `-done` came; fails
/// on an error reply on the way (a refused send would otherwise just be a line missing).
async fn room_lines_until_done(client: &mut Client, ends: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut done = 0;
    while done < ends {
        let Some(line) = client.recv_within(TIMEOUT).await else {
            panic!(
                "{}: {done} of {ends} senders finished within {TIMEOUT:?}; got {lines:#?}",
                client.nick
            );
        };
        assert!(
            !is_error_reply(&line),
            "{}: an error reply among the room lines: {line}; got {lines:#?}",
            client.nick
        );
        let line = untagged(&line).to_owned();
        if line.contains(" PRIVMSG #room :") {
            if line.ends_with("-done") {
                done += 1;
            }
            lines.push(line);
        }
    }
    lines
}

/// Write `count` lines and a `-done` line without waiting for anything, yielding between lines
/// so that senders run side by side interleave.
async fn send_burst(client: &mut Client, count: usize) {
    let nick = client.nick.clone();
    for i in 0..count {
        client.send(&format!("PRIVMSG #room :{nick}-{i}")).await;
        tokio::task::yield_now().await;
    }
    client.send(&format!("PRIVMSG #room :{nick}-done")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channel_messages_reach_every_member_once_in_one_order() {
    let Some(cluster) = Cluster::start(3, |_, _| {}).await else {
        return;
    };
    // A sender and a listener on each node, all with echo-message: everyone sees every line.
    let mut members = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        for role in ["s", "l"] {
            let nick = format!("{role}{}", i + 1);
            members.push(client_with_caps(node.addr, &nick, "echo-message").await);
        }
    }
    // One at a time, each once the ones before are visible on its node: all see each JOIN.
    let mut names: Vec<String> = Vec::new();
    for k in 0..members.len() {
        let before: Vec<&str> = names.iter().map(String::as_str).collect();
        let burst = members[k].join_after("#room", &before).await;
        let nick = members[k].nick.clone();
        names.push(if k == 0 {
            format!("@{nick}")
        } else {
            nick.clone()
        });
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            names_in(&burst, "#room"),
            set(&all),
            "{nick}'s join: {burst:?}"
        );
        for member in &mut members[..k] {
            member.expect_next(&join_line(&nick, "#room")).await;
        }
    }

    const LINES: usize = 20;
    let [s1, _, s2, _, s3, _] = members.as_mut_slice() else {
        unreachable!("two members on each of three nodes");
    };
    tokio::join!(
        send_burst(s1, LINES),
        send_burst(s2, LINES),
        send_burst(s3, LINES)
    );

    let mut received = Vec::new();
    for member in &mut members {
        received.push((member.nick.clone(), room_lines_until_done(member, 3).await));
    }
    for (nick, lines) in &received {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for line in lines {
            *counts.entry(line.as_str()).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "{nick} got lines more than once: {twice:?}"
        );
        for sender in ["s1", "s2", "s3"] {
            let expected: Vec<String> = (0..LINES)
                .map(|i| format!("{sender}-{i}"))
                .chain([format!("{sender}-done")])
                .map(|text| format!(":{} PRIVMSG #room :{text}", source(sender)))
                .collect();
            let got: Vec<&String> = lines
                .iter()
                .filter(|l| l.starts_with(&format!(":{sender}!")))
                .collect();
            assert_eq!(
                got,
                expected.iter().collect::<Vec<_>>(),
                "{nick}: {sender}'s lines"
            );
        }
    }
    // One order for everyone, wherever they are.
    let (first, reference) = &received[0];
    for (nick, lines) in &received[1..] {
        if let Some(at) = (0..reference.len()).find(|&i| lines.get(i) != reference.get(i)) {
            panic!(
                "{first} and {nick} saw different orders from line {at}:\n{first}: {:#?}\n{nick}: {:#?}",
                &reference[at..],
                &lines[at..]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_messages_and_whois_cross_nodes() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice = cluster.client(0, "alice").await;
    let mut bob = cluster.client(1, "bob").await;

    let user = alice.await_whois("bob").await;
    assert!(
        user.ends_with(" 311 alice bob ~bob 127.0.0.1 * :Test bob"),
        "{user}"
    );
    let user = bob.await_whois("alice").await;
    assert!(
        user.ends_with(" 311 bob alice ~alice 127.0.0.1 * :Test alice"),
        "{user}"
    );

    // Each exactly once: the next line after one message is the next message.
    alice.send("PRIVMSG bob :hello from n1").await;
    alice.send("PRIVMSG bob :again from n1").await;
    bob.expect_next(":alice!~alice@127.0.0.1 PRIVMSG bob :hello from n1")
        .await;
    bob.expect_next(":alice!~alice@127.0.0.1 PRIVMSG bob :again from n1")
        .await;
    bob.send("PRIVMSG alice :hello from n2").await;
    bob.send("NOTICE alice :noticed on n2").await;
    alice
        .expect_next(":bob!~bob@127.0.0.1 PRIVMSG alice :hello from n2")
        .await;
    alice
        .expect_next(":bob!~bob@127.0.0.1 NOTICE alice :noticed on n2")
        .await;

    // Nobody by that name on any node.
    alice.send("PRIVMSG nobody :anyone?").await;
    let lines = alice.sync().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].ends_with(" 401 alice nobody :No such nick/channel"),
        "{lines:?}"
    );
    // And the senders got nothing else: no echo, no copy from the other node.
    assert!(alice.sync().await.is_empty());
    assert!(bob.sync().await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Channel membership

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_changes_are_seen_on_every_node() {
    let Some(cluster) = Cluster::start(3, |_, _| {}).await else {
        return;
    };
    let mut alice = cluster.client(0, "alice").await;
    let mut bob = cluster.client(1, "bob").await;
    let mut carol = cluster.client(2, "carol").await;

    alice.join_after("#room", &[]).await;
    let burst = bob.join_after("#room", &["@alice"]).await;
    assert_eq!(names_in(&burst, "#room"), set(&["@alice", "bob"]));
    alice.expect_next(&join_line("bob", "#room")).await;
    let burst = carol.join_after("#room", &["@alice", "bob"]).await;
    assert_eq!(names_in(&burst, "#room"), set(&["@alice", "bob", "carol"]));
    alice.expect_next(&join_line("carol", "#room")).await;
    bob.expect_next(&join_line("carol", "#room")).await;
    // NAMES on node 3 lists the users of nodes 1 and 2.
    assert_eq!(carol.names("#room").await, set(&["@alice", "bob", "carol"]));

    let topic = ":alice!~alice@127.0.0.1 TOPIC #room :one topic for all nodes";
    alice.send("TOPIC #room :one topic for all nodes").await;
    for member in [&mut alice, &mut bob, &mut carol] {
        member.expect_next(topic).await;
    }
    carol.send("TOPIC #room").await;
    let reply = carol.sync().await;
    assert!(
        reply
            .first()
            .is_some_and(|l| l.ends_with(" 332 carol #room :one topic for all nodes")),
        "{reply:?}"
    );

    let op = ":alice!~alice@127.0.0.1 MODE #room +o bob";
    alice.send("MODE #room +o bob").await;
    for member in [&mut alice, &mut bob, &mut carol] {
        member.expect_next(op).await;
    }
    // Bob's new status holds on his own node: he can use it there.
    let voice = ":bob!~bob@127.0.0.1 MODE #room +v carol";
    bob.send("MODE #room +v carol").await;
    for member in [&mut alice, &mut bob, &mut carol] {
        member.expect_next(voice).await;
    }
    assert_eq!(
        alice.names("#room").await,
        set(&["@alice", "@bob", "+carol"])
    );

    let nick = ":carol!~carol@127.0.0.1 NICK :caroline";
    carol.send("NICK caroline").await;
    carol.nick = "caroline".into();
    for member in [&mut alice, &mut bob, &mut carol] {
        member.expect_next(nick).await;
    }
    alice.send("WHOIS caroline").await;
    let whois = alice.sync().await;
    assert!(
        whois
            .first()
            .is_some_and(|l| l.ends_with(" 311 alice caroline ~carol 127.0.0.1 * :Test carol")),
        "{whois:?}"
    );
    // The old nick is free again, on another node too.
    let _new_carol = cluster.client(0, "carol").await;

    let part = ":bob!~bob@127.0.0.1 PART #room :moving on";
    bob.send("PART #room :moving on").await;
    for member in [&mut alice, &mut bob, &mut carol] {
        member.expect_next(part).await;
    }
    assert_eq!(carol.names("#room").await, set(&["@alice", "+caroline"]));

    let quit = ":caroline!~carol@127.0.0.1 QUIT :Quit: leaving now";
    carol.send("QUIT :leaving now").await;
    alice.expect_next(quit).await;
    carol.expect_closed().await;
    assert_eq!(alice.names("#room").await, set(&["@alice"]));
    // Bob shares no channel with her any more: the QUIT is not for him.
    assert_eq!(bob.recv_within(Duration::from_millis(500)).await, None);
}

// ---------------------------------------------------------------------------------------------
// Nicks

#[derive(Debug)]
struct Claim {
    won: bool,
    reply: String,
    /// What came before the reply (such as the other racer's NICK).
    before: Vec<String>,
}

/// The answer to `NICK prize`: our own NICK line, or 433.
async fn claim(client: &mut Client, prize: &str) -> Claim {
    let own = format!(":{}!", client.nick);
    let changed = format!(" NICK :{prize}");
    let refused = format!(" 433 {} {prize} :Nickname is already in use", client.nick);
    let (reply, before) = client
        .expect_within(TIMEOUT, |l| {
            (l.starts_with(&own) && l.ends_with(&changed)) || l.ends_with(&refused)
        })
        .await;
    Claim {
        won: !reply.ends_with(&refused),
        reply,
        before,
    }
}

fn nick_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.split(' ').nth(1) == Some("NICK"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nick_belongs_to_one_user_across_nodes() {
    let Some(cluster) = Cluster::start(3, |_, _| {}).await else {
        return;
    };
    let _alice = cluster.client(0, "alice").await;
    // Taken on node 1: refused on node 2, before registration and after, in any case.
    let mut other = refused_alice_on(&cluster.nodes[1]).await;
    other.send("NICK ALICE").await;
    let refused = other.expect_numeric("433").await;
    assert!(
        refused.ends_with(" 433 * ALICE :Nickname is already in use"),
        "{refused}"
    );
    other.nick = "other".into();
    other.send("NICK other").await;
    other.expect_numeric("001").await;
    other.sync().await;
    other.send("NICK Alice").await;
    let lines = other.sync().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].ends_with(" 433 other Alice :Nickname is already in use"),
        "{lines:?}"
    );

    // Two users on different nodes ask for the same new nick at the same moment; a watcher on a
    // third node sees, in one channel with both, what everybody sees.
    let mut racers = [
        cluster.client(0, "racer1").await,
        cluster.client(1, "racer2").await,
    ];
    let mut watcher = cluster.client(2, "watcher").await;
    watcher.join_after("#race", &[]).await;
    racers[0].join_after("#race", &["@watcher"]).await;
    watcher.expect_next(&join_line("racer1", "#race")).await;
    racers[1].join_after("#race", &["@watcher", "racer1"]).await;
    watcher.expect_next(&join_line("racer2", "#race")).await;
    racers[0].expect_next(&join_line("racer2", "#race")).await;

    // Per racer: the NICK lines of the other one's wins, which it must see, once each.
    let mut others_wins: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let mut seen: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for round in 0..10 {
        let prize = format!("prize{round}");
        let ask = format!("NICK {prize}");
        let [first, second] = &mut racers;
        tokio::join!(first.send(&ask), second.send(&ask));
        let claims = tokio::join!(claim(first, &prize), claim(second, &prize));
        let claims = [claims.0, claims.1];
        let winners: Vec<usize> = (0..2).filter(|&r| claims[r].won).collect();
        assert_eq!(winners.len(), 1, "round {round}: {claims:#?}");
        let winner = winners[0];
        let change = claims[winner].reply.clone();
        racers[winner].nick = prize.clone();
        others_wins[1 - winner].push(change.clone());
        for (r, claim) in claims.into_iter().enumerate() {
            seen[r].extend(claim.before);
        }
        // The watcher sees the one NICK, and no other, before it.
        watcher.expect_next(&change).await;
    }
    // A barrier through the channel: each racer's last line, after all of its NICKs.
    for racer in &mut racers {
        let nick = racer.nick.clone();
        racer.send(&format!("PRIVMSG #race :{nick} done")).await;
    }
    let done = |r: &Client| format!(" PRIVMSG #race :{} done", r.nick);
    let done_lines = [done(&racers[0]), done(&racers[1])];
    for (r, racer) in racers.iter_mut().enumerate() {
        let (_, before) = racer
            .expect_within(TIMEOUT, |l| l.ends_with(&done_lines[1 - r]))
            .await;
        seen[r].extend(before);
        assert_eq!(
            nick_lines(&seen[r]),
            others_wins[r],
            "{} saw exactly the other racer's wins",
            racer.nick
        );
    }
    // The watcher gets both, in either order, and no NICK before them.
    let mut after = Vec::new();
    while !done_lines
        .iter()
        .all(|d| after.iter().any(|l: &String| l.ends_with(d)))
    {
        let Some(line) = watcher.recv_within(TIMEOUT).await else {
            panic!("watcher: no line within {TIMEOUT:?}; saw {after:#?}");
        };
        after.push(line);
    }
    assert!(nick_lines(&after).is_empty(), "{after:?}");
    assert!(!after.iter().any(|l| is_error_reply(l)), "{after:?}");

    // One user per nick on every node: NAMES and WHOIS agree everywhere.
    let current = [racers[0].nick.clone(), racers[1].nick.clone()];
    let expected = set(&["@watcher", &current[0], &current[1]]);
    assert_eq!(watcher.names("#race").await, expected);
    for racer in &mut racers {
        assert_eq!(racer.names("#race").await, expected);
    }
    for (r, nick) in current.iter().enumerate() {
        let user = format!(" {nick} ~racer{} 127.0.0.1 * :Test racer{}", r + 1, r + 1);
        for asker in [&mut watcher, &mut racers[0]] {
            asker.send(&format!("WHOIS {nick}")).await;
            let lines = asker.sync().await;
            let found: Vec<&String> = lines.iter().filter(|l| l.contains(" 311 ")).collect();
            assert!(
                found.len() == 1 && found[0].ends_with(&user),
                "{}: {lines:?}",
                asker.nick
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Failures

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_takes_its_users_away_and_loses_no_message() {
    const LEASE: u64 = 2;
    let Some(cluster) = Cluster::start(2, |_, c| c.cluster.lease_secs = LEASE).await else {
        return;
    };
    let mut doomed = cluster
        .spawn_binary("n3", &[("PARLEY_CLUSTER__LEASE_SECS", "2")])
        .await;
    let mut alice =
        client_with_caps(cluster.nodes[0].addr, "alice", "draft/chathistory batch").await;
    let mut bob = cluster.client(1, "bob").await;
    let mut victim = doomed.client("victim").await;
    alice.join_after("#room", &[]).await;
    bob.join_after("#room", &["@alice"]).await;
    alice.expect_next(&join_line("bob", "#room")).await;
    victim.join_after("#room", &["@alice", "bob"]).await;
    alice.expect_next(&join_line("victim", "#room")).await;
    bob.expect_next(&join_line("victim", "#room")).await;

    let sent: Vec<String> = (0..10).map(|i| format!("last words {i}")).collect();
    for text in &sent {
        victim.send(&format!("PRIVMSG #room :{text}")).await;
    }
    for member in [&mut alice, &mut bob] {
        for text in &sent {
            member
                .expect_next(&format!(":{} PRIVMSG #room :{text}", source("victim")))
                .await;
        }
    }

    doomed.kill().await;
    let killed = Instant::now();
    // A killed node cannot say goodbye: the others quit its users and free their nicks when its
    // lease (cluster.lease_secs, set to the smallest allowed, 2 s) runs out with no heartbeat
    // from it, seen at their next heartbeat check. So this takes a few seconds by design. The
    // bound only stops a node that never notices from hanging the test; it is no speed claim.
    let bound = Duration::from_secs(LEASE + 60);
    let quit = format!(":{} QUIT ", source("victim"));
    for member in [&mut alice, &mut bob] {
        let left = bound.saturating_sub(killed.elapsed());
        let (_, before) = member.expect_within(left, |l| l.starts_with(&quit)).await;
        assert!(before.is_empty(), "{}: {before:?}", member.nick);
    }
    drop(victim);
    assert_eq!(bob.names("#room").await, set(&["@alice", "bob"]));

    // Its nick is free again: a user on another node takes it (within the same bound).
    let mut heir = cluster.client(1, "heir").await;
    loop {
        heir.send("NICK victim").await;
        let lines = heir.sync().await;
        if lines == [":heir!~heir@127.0.0.1 NICK :victim"] {
            break;
        }
        assert!(
            lines.len() == 1 && lines[0].contains(" 433 heir victim "),
            "{lines:?}"
        );
        assert!(
            killed.elapsed() < bound,
            "the dead node's nick victim was still taken {bound:?} after the kill: its lease \
             never ran out"
        );
        // Poll: nothing tells a user on another node that a nick became free.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing it accepted is lost: another node's history has every line it sent, once.
    let deadline = Instant::now() + CONVERGE;
    let mut stored = Vec::new();
    while Instant::now() < deadline {
        alice.send("CHATHISTORY LATEST #room * 50").await;
        let lines = alice.sync().await;
        let from_victim = format!(":{} PRIVMSG #room :", source("victim"));
        stored = lines
            .iter()
            .filter_map(|l| untagged(l).strip_prefix(&from_victim))
            .map(str::to_owned)
            .collect();
        if stored == sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        stored, sent,
        "CHATHISTORY on n1 after n3 was killed has what n3 accepted"
    );
}

/// Send probe lines from `from` until one reaches `to` (bounded: the bus is coming back).
async fn probe(from: &mut Client, to: &mut Client, within: Duration) {
    let deadline = Instant::now() + within;
    let marker = format!(" PRIVMSG #room :probe from {}", from.nick);
    for k in 0.. {
        from.send(&format!("PRIVMSG #room :probe from {} {k}", from.nick))
            .await;
        let wait_until = Instant::now() + Duration::from_millis(500);
        while let Some(line) = to
            .recv_within(wait_until.saturating_duration_since(Instant::now()))
            .await
        {
            if line.contains(&marker) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no probe from {} reached {} within {within:?} ({k} sent)",
            from.nick,
            to.nick
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_carry_on_after_nats_restarts() {
    let Some(mut cluster) = Cluster::start(2, |_, c| c.cluster.lease_secs = 30).await else {
        return;
    };
    let mut alice = cluster.client(0, "alice").await;
    let mut bob = cluster.client(1, "bob").await;
    alice.join_after("#room", &[]).await;
    bob.join_after("#room", &["@alice"]).await;
    alice.expect_next(&join_line("bob", "#room")).await;
    alice.send("PRIVMSG #room :before the outage").await;
    bob.expect_next(":alice!~alice@127.0.0.1 PRIVMSG #room :before the outage")
        .await;

    cluster.nats_mut().stop();
    // Part of the scenario: an outage long enough for both nodes to see the bus gone.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.nats_mut().restart().await;
    let restarted = Instant::now();
    let bound = Duration::from_secs(20);
    probe(&mut alice, &mut bob, bound).await;
    probe(
        &mut bob,
        &mut alice,
        bound.saturating_sub(restarted.elapsed()),
    )
    .await;

    // Nobody was taken for dead: both are still members, on both nodes.
    assert_eq!(alice.names("#room").await, set(&["@alice", "bob"]));
    assert_eq!(bob.names("#room").await, set(&["@alice", "bob"]));
    // The nick claims outlived the restart too.
    refused_alice_on(&cluster.nodes[1]).await;
    // And chat goes on as before.
    alice.send("PRIVMSG #room :after the outage").await;
    bob.expect_within(TIMEOUT, |l| {
        l == ":alice!~alice@127.0.0.1 PRIVMSG #room :after the outage"
    })
    .await;
}

/// Invites and user modes cross nodes too: an INVITE lets a user on another node into a `+i`
/// channel, and a user's `+i` shows in the other node's counts.
#[tokio::test]
async fn invites_and_user_modes_cross_nodes() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice = cluster.client(0, "alice").await;
    let mut bob = cluster.client(1, "bob").await;
    alice.await_whois("bob").await;
    bob.await_whois("alice").await;

    // +i on node 1; bob on node 2 is refused, then invited, then let in.
    alice.send("JOIN #club").await;
    alice.send("MODE #club +i").await;
    alice.sync().await;
    // Once node 2 shows the channel +i, bob's JOIN there is refused.
    bob.await_reply("MODE #club", |l| {
        l.contains(" 324 ") && l.split(' ').nth(4).is_some_and(|m| m.contains('i'))
    })
    .await;
    bob.send("JOIN #club").await;
    let refused = bob.expect(|l| command_of(l) == "473").await;
    assert!(
        refused.ends_with(" 473 bob #club :Cannot join channel (+i)"),
        "{refused}"
    );
    alice.send("INVITE bob #club").await;
    let invite = bob.expect(|l| l.contains(" INVITE ")).await;
    assert_eq!(invite, ":alice!~alice@127.0.0.1 INVITE bob #club");
    bob.send("JOIN #club").await;
    bob.expect(|l| l == ":bob!~bob@127.0.0.1 JOIN #club").await;
    alice
        .expect(|l| l == ":bob!~bob@127.0.0.1 JOIN #club")
        .await;

    // bob turns invisible on node 2; node 1 counts him so.
    bob.send("MODE bob +i").await;
    bob.expect(|l| l.ends_with(" MODE bob :+i")).await;
    alice
        .await_reply("LUSERS", |l| {
            l.contains(" 251 ") && l.contains(" and 1 invisible ")
        })
        .await;
}

/// A member's INVITE crosses nodes as a member's: it does not let a banned user on another node
/// past the ban; an operator's does.
#[tokio::test]
async fn only_an_operators_invite_overrides_a_ban_across_nodes() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice = cluster.client(0, "alice").await;
    let mut dave = cluster.client(0, "dave").await;
    let mut carol = cluster.client(1, "carol").await;
    alice.await_whois("carol").await;
    dave.await_whois("carol").await;
    carol.await_whois("alice").await;

    alice.send("JOIN #club").await;
    alice.send("MODE #club +b carol").await;
    alice.sync().await;
    dave.send("JOIN #club").await;
    dave.expect(|l| l == ":dave!~dave@127.0.0.1 JOIN #club")
        .await;
    dave.sync().await;
    // Node 2 knows of the ban before carol tries.
    carol
        .await_reply("MODE #club b", |l| {
            l.contains(" 367 ") && l.contains("carol!*@*")
        })
        .await;

    dave.send("INVITE carol #club").await;
    dave.expect_numeric("341").await;
    carol.expect(|l| l.contains(" INVITE carol #club")).await;
    carol.send("JOIN #club").await;
    let refused = carol
        .expect(|l| command_of(l) == "474" || l.contains(" JOIN "))
        .await;
    assert!(
        refused.ends_with(" 474 carol #club :Cannot join channel (+b)"),
        "{refused}"
    );

    alice.send("INVITE carol #club").await;
    alice.expect_numeric("341").await;
    carol.expect(|l| l.contains(" INVITE carol #club")).await;
    carol.send("JOIN #club").await;
    carol
        .expect(|l| l == ":carol!~carol@127.0.0.1 JOIN #club")
        .await;
}

/// One SASL PLAIN login on a fresh connection to `node`: the 903/904 line.
async fn sasl_outcome(node: &common::TestServer, account: &str, password: &str) -> String {
    let mut c = node.connect().await;
    c.req_sasl().await;
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    c.send(&format!(
        "AUTHENTICATE {}",
        common::sasl_plain(account, password)
    ))
    .await;
    c.expect(|l| command_of(l) == "903" || command_of(l) == "904")
        .await
}

/// Each node keeps its own lockouts after failed logins in memory; one `parleyd users unlock`
/// against the shared database ends them on every node, with no restart and no message on the
/// bus.
#[tokio::test]
async fn users_unlock_reaches_every_node() {
    let Some(cluster) = Cluster::start(2, |_, config| {
        config.accounts.require_login = true;
        config.accounts.max_failures = 2;
    })
    .await
    else {
        return;
    };
    let mut owner = cluster.nodes[0].connect().await;
    owner.send("NICK dora").await;
    owner.send("REGISTER * * dora-password").await;
    owner.expect(|l| l.contains("REGISTER SUCCESS")).await;
    drop(owner);
    for node in &cluster.nodes {
        for i in 0..2 {
            let answer = sasl_outcome(node, "dora", &format!("typo-{i}")).await;
            assert!(answer.contains(" 904 "), "{answer}");
        }
        let answer = sasl_outcome(node, "dora", "dora-password").await;
        assert!(answer.contains("Too many failed logins"), "{answer}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("parley.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {:?}\n[accounts]\nstore = \"postgres\"\npostgres_url = {:?}\n",
            dir.path().display().to_string(),
            cluster.postgres_url
        ),
    )
    .expect("write config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(&config)
        .args(["users", "unlock", "dora"])
        .output()
        .await
        .expect("run parleyd users unlock");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (i, node) in cluster.nodes.iter().enumerate() {
        let answer = sasl_outcome(node, "dora", "dora-password").await;
        assert!(answer.contains(" 903 "), "node {i}: {answer}");
    }
}

/// A secret channel is secret on every node: once `+s` reaches the other node, a non-member
/// there finds it in neither LIST, NAMES, WHOIS nor WHO, while a member there sees it with `@`
/// in 353 (modern.ircdocs.horse, RPL_NAMREPLY: "("@", 0x40): Secret channel (secret channel
/// mode "+s")").
#[tokio::test]
async fn secret_channels_are_hidden_on_every_node() {
    let Some(mut cluster) =
        Cluster::start(2, |_, config| config.server.default_channel = String::new()).await
    else {
        return;
    };
    let mut alice = cluster.client(0, "alice").await;
    let mut carol = cluster.client(1, "carol").await;
    let mut bob = cluster.client(1, "bob").await;
    carol.await_whois("alice").await;
    alice.send("JOIN #hid").await;
    alice.send("MODE #hid +s").await;
    alice.sync().await;
    bob.await_reply("MODE #hid", |l| {
        l.contains(" 324 ") && l.split(' ').nth(4).is_some_and(|m| m.contains('s'))
    })
    .await;

    carol.send("LIST").await;
    let got = carol.sync().await;
    assert!(
        !got.iter().any(|l| l.contains("#hid")),
        "LIST on the other node: {got:?}"
    );
    carol.send("NAMES #hid").await;
    let got = carol.sync().await;
    assert!(
        got.len() == 1 && got[0].ends_with(" 366 carol #hid :End of /NAMES list"),
        "NAMES on the other node: {got:?}"
    );
    carol.send("WHOIS alice").await;
    let got = carol.sync().await;
    assert!(
        !got.iter().any(|l| command_of(l) == "319"),
        "WHOIS on the other node: {got:?}"
    );
    carol.send("WHO #hid").await;
    let got = carol.sync().await;
    assert!(
        !got.iter().any(|l| command_of(l) == "352"),
        "WHO on the other node: {got:?}"
    );

    bob.send("JOIN #hid").await;
    let joined = bob.expect(|l| command_of(l) == "353").await;
    assert!(joined.ends_with(" 353 bob @ #hid :@alice bob"), "{joined}");

    // A node that starts later learns the channel from the others' snapshot, +s included.
    cluster.add_node().await;
    let mut dave = cluster.client(2, "dave").await;
    dave.await_reply("MODE #hid", |l| {
        l.contains(" 324 ") && l.split(' ').nth(4).is_some_and(|m| m.contains('s'))
    })
    .await;
    dave.send("LIST").await;
    let got = dave.sync().await;
    assert!(
        !got.iter().any(|l| l.contains("#hid")),
        "LIST on the late node: {got:?}"
    );
}

/// account-tag: "the server MUST add this tag to ... messages sent by a user who is logged in";
/// an INVITE from a logged-in user on another node carries the `account` tag too.
#[tokio::test]
async fn an_invite_across_nodes_carries_the_account_tag() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice = common::account(cluster.nodes[0].addr, "alice").await;
    let mut bob = common::account(cluster.nodes[1].addr, "bob").await;
    bob.send("CAP REQ account-tag").await;
    bob.expect(|l| l.contains(" ACK ")).await;
    alice.await_whois("bob").await;
    alice.send("JOIN #tagged").await;
    alice.expect(|l| l.contains(" 366 ")).await;
    alice.send("INVITE bob #tagged").await;
    let invite = bob.expect(|l| l.contains(" INVITE ")).await;
    assert_eq!(
        invite,
        "@account=alice :alice!~alice@127.0.0.1 INVITE bob #tagged"
    );
}
