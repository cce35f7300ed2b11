//! Cluster mode: what a connection held must not outlive it, and what a dead node took with it
//! must not vanish. A nick claimed before registration is free on every node as soon as the
//! connection ends, whichever way it ends (issue 25, item 2); a private message sent to a user
//! of a node killed inside its lease waits for the account's next login, and a guest's sender
//! hears 401 (issue 25, item 5).
//!
//! Needs nats-server and `PARLEY_TEST_POSTGRES_URL` (see `common/cluster.rs`); without them each
//! test skips, unless `PARLEY_REQUIRE_CLUSTER=1` (CI sets it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{Cluster, CONVERGE};
use common::{command_of, sasl_plain, Client};
use tokio::time::Instant;

/// How soon a nick given back on one node must be free on another: a release is one round trip
/// to the bus, so this is generous, and far below the 60 s a leaked claim lasted.
const FREE_WITHIN: Duration = Duration::from_secs(2);
/// The shortest lease allowed: a killed node is declared down within a few seconds of it.
const LEASE: &str = "2";

/// Whether `prober` (registered on another node) can take `nick` now: it takes it and gives it
/// back if so; a 433 says someone holds it.
async fn can_take(prober: &mut Client, nick: &str) -> bool {
    prober.send(&format!("NICK {nick}")).await;
    let lines = prober.sync().await;
    let taken = format!(" NICK :{nick}");
    if lines.iter().any(|l| l.ends_with(&taken)) {
        let own = prober.nick.clone();
        prober.send(&format!("NICK {own}")).await;
        prober.sync().await;
        return true;
    }
    assert!(
        lines.len() == 1 && command_of(&lines[0]) == "433",
        "NICK {nick}: {lines:?}"
    );
    false
}

/// Poll (bounded by [`FREE_WITHIN`]) until `prober` can take `nick`; how long it took.
async fn free_soon(prober: &mut Client, nick: &str, path: &str) -> Duration {
    let start = Instant::now();
    while !can_take(prober, nick).await {
        assert!(
            start.elapsed() < FREE_WITHIN,
            "{path}: {nick} was still claimed {FREE_WITHIN:?} after the connection ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// A connection to `addr` that asked for `nick` (and nothing else), once the claim is in.
async fn asking(addr: SocketAddr, nick: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.send(&format!("NICK {nick}")).await;
    c.sync().await;
    c
}

/// Before registration a connection claims its nick network-wide; however it ends (closed,
/// QUIT, the registration timeout; a registered user's KILL too) or whatever it asks for next,
/// what it gave up is free on the other node within moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nick_claimed_before_registration_is_free_elsewhere_once_given_up() {
    let Some(cluster) = Cluster::start(2, |_, config| {
        config.limits.registration_timeout_secs = 2;
        config.operators.admins = vec!["root".into()];
    })
    .await
    else {
        return;
    };
    let here = cluster.nodes[0].addr;
    let mut prober = cluster.client(1, "prober").await;
    let mut took = Vec::new();

    // Closed without a word.
    let c = asking(here, "zed").await;
    assert!(!can_take(&mut prober, "zed").await, "the claim is held");
    drop(c);
    took.push(("closed", free_soon(&mut prober, "zed", "closed").await));

    // QUIT.
    let mut c = asking(here, "zoe").await;
    assert!(!can_take(&mut prober, "zoe").await, "the claim is held");
    c.send("QUIT").await;
    c.expect_closed().await;
    took.push(("QUIT", free_soon(&mut prober, "zoe", "QUIT").await));

    // Another NICK before registration: the first is free while the connection goes on.
    let mut c = asking(here, "zak").await;
    c.send("NICK zara").await;
    c.sync().await;
    took.push(("replaced", free_soon(&mut prober, "zak", "replaced").await));
    assert!(
        !can_take(&mut prober, "zara").await,
        "the new claim is held"
    );
    drop(c);
    took.push(("closed", free_soon(&mut prober, "zara", "closed").await));

    // The registration timeout (2 s here) ends it.
    let mut c = asking(here, "zeb").await;
    assert!(!can_take(&mut prober, "zeb").await, "the claim is held");
    let last = c.expect_closed().await;
    assert!(
        last.iter().any(|l| l.contains("Registration timed out")),
        "{last:?}"
    );
    took.push(("timeout", free_soon(&mut prober, "zeb", "timeout").await));

    // A registered user killed by an operator.
    let mut root = common::account(here, "root").await;
    let mut victim = cluster.client(0, "victim").await;
    assert!(!can_take(&mut prober, "victim").await, "the nick is held");
    root.send("KILL victim :enough").await;
    victim.expect_closed().await;
    took.push(("KILL", free_soon(&mut prober, "victim", "KILL").await));
    eprintln!("free on the other node after: {took:?}");
}

/// The lines of a SASL PLAIN login with `nick` on a fresh connection to `addr`, up to and with
/// the end of the welcome (or the server closing); never stops at an error.
async fn sasl_login(addr: SocketAddr, nick: &str, account: &str, password: &str) -> Vec<String> {
    let mut c = Client::connect(addr).await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :Test {nick}")).await;
    c.send("CAP REQ :sasl").await;
    c.send("AUTHENTICATE PLAIN").await;
    c.send(&format!("AUTHENTICATE {}", sasl_plain(account, password)))
        .await;
    c.send("CAP END").await;
    let mut lines = Vec::new();
    let deadline = Instant::now() + CONVERGE;
    while let Some(line) = c
        .recv_within(deadline.saturating_duration_since(Instant::now()))
        .await
    {
        let done = matches!(command_of(&line), "376" | "422" | "904");
        lines.push(line);
        if done {
            break;
        }
    }
    lines.extend(c.sync().await);
    lines
}

/// Whether a login's lines say it logged in (903) and registered as `nick`, with no 433 after
/// the 903 (one before it, while a squatter here held the nick, is how the owner takes it back).
fn logged_in_as(lines: &[String], nick: &str) -> bool {
    let codes: Vec<&str> = lines.iter().map(|l| command_of(l)).collect();
    let Some(logged_in) = codes.iter().position(|c| *c == "903") else {
        return false;
    };
    !codes[logged_in..].contains(&"433")
        && lines
            .iter()
            .any(|l| command_of(l) == "001" && l.split(' ').nth(2) == Some(nick))
}

/// An account's owner logging in on one node gets its nick (903, then the welcome as it, no
/// 433) after someone on another node asked for it and failed a login, was refused it as
/// reserved while staying connected, or squatted it on the owner's own node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_gets_its_nick_after_failed_and_refused_attempts_on_other_connections() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let (elsewhere, home) = (cluster.nodes[0].addr, cluster.nodes[1].addr);
    cluster.nodes[0]
        .create_account("alice", "alice-password")
        .await;

    // A failed SASL login with the nick, then the connection closes.
    let failed = sasl_login(elsewhere, "alice", "alice", "wrong").await;
    assert!(failed.iter().any(|l| command_of(l) == "904"), "{failed:?}");
    let start = Instant::now();
    loop {
        let lines = sasl_login(home, "alice", "alice", "alice-password").await;
        if logged_in_as(&lines, "alice") {
            break;
        }
        assert!(
            start.elapsed() < FREE_WITHIN,
            "after a failed login elsewhere the owner still got: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Refused as reserved, and still connected (until the registration timeout, 60 s).
    let start = Instant::now();
    let mut guest = loop {
        let mut guest = Client::connect(elsewhere).await;
        guest.send("NICK alice").await;
        guest.send("USER guest 0 * :Test guest").await;
        let refused = guest.expect_numeric("433").await;
        if refused.contains("reserved") {
            break guest;
        }
        // The owner's last connection is still giving it back.
        assert!(start.elapsed() < FREE_WITHIN, "{refused}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let start = Instant::now();
    loop {
        let lines = sasl_login(home, "alice", "alice", "alice-password").await;
        if logged_in_as(&lines, "alice") {
            break;
        }
        assert!(
            start.elapsed() < FREE_WITHIN,
            "with a refused guest still connected elsewhere the owner got: {lines:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The guest can still register, under another nick.
    guest.nick = "guest".into();
    guest.send("NICK guest").await;
    guest.expect_numeric("001").await;

    // A squatter on the owner's own node loses it to the owner at once.
    let start = Instant::now();
    let mut squatter = loop {
        // The owner's last connection may still be giving it back.
        let mut squatter = Client::connect(home).await;
        squatter.send("NICK alice").await;
        let lines = squatter.sync().await;
        if !lines.iter().any(|l| command_of(l) == "433") {
            break squatter;
        }
        assert!(start.elapsed() < FREE_WITHIN, "{lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines = sasl_login(home, "alice", "alice", "alice-password").await;
    assert!(logged_in_as(&lines, "alice"), "{lines:?}");
    let told = squatter.expect_numeric("433").await;
    assert!(told.contains("reserved"), "{told}");
}

/// A user of a node killed inside its lease never gets what is sent to it meanwhile: a message
/// to an account waits for its next login (with the count) and its sender is told so; a guest's
/// sender gets 401 once the node is known lost. What the node had delivered while it lived is
/// not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_messages_to_a_killed_node_wait_for_the_account_or_draw_401() {
    let Some(cluster) = Cluster::start(2, |_, config| config.cluster.lease_secs = 2).await else {
        return;
    };
    let mut doomed = cluster
        .spawn_binary("n3", &[("PARLEY_CLUSTER__LEASE_SECS", LEASE)])
        .await;
    let mut bob = common::account(doomed.addr, "bob").await;
    bob.nick = "bob".into();
    let _gus = doomed.client("gus").await;
    let mut alice = cluster.client(0, "alice").await;
    alice.await_whois("bob").await;
    alice.await_whois("gus").await;

    // Delivered while n3 lived, and heard from since: not kept again.
    alice.send("PRIVMSG bob :early").await;
    bob.expect(|l| l.ends_with(" PRIVMSG bob :early")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    doomed.kill().await;
    let killed = Instant::now();
    // Inside the lease: n3 still looks alive, and nobody can tell these go nowhere.
    for text in ["late one", "late two"] {
        alice.send(&format!("PRIVMSG bob :{text}")).await;
    }
    alice.send("PRIVMSG gus :hello gus").await;
    let early = alice.sync().await;
    assert!(
        !early.iter().any(|l| command_of(l) == "401"),
        "answered before n3 was known lost: {early:?}"
    );

    // Once n3's lease has run out: the sender hears what became of them, once per nick.
    let notice =
        "NOTICE alice :bob is not online; they will get your message when they next log in";
    let no_gus = " 401 alice gus :No such nick/channel";
    let mut seen = Vec::new();
    while !(seen.iter().any(|l: &String| l.ends_with(notice))
        && seen.iter().any(|l: &String| l.ends_with(no_gus)))
    {
        let left = (Duration::from_secs(30)).saturating_sub(killed.elapsed());
        let Some(line) = alice.recv_within(left).await else {
            panic!("alice never heard what became of her messages to n3's users: {seen:?}");
        };
        seen.push(line);
    }
    seen.extend(alice.sync().await);
    assert_eq!(
        seen.iter().filter(|l| l.ends_with(notice)).count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|l| l.ends_with(no_gus)).count(),
        1,
        "{seen:?}"
    );
    eprintln!("alice told {:?} after the kill", killed.elapsed());

    // bob's next login (on another node, another nick) gets both, with the count, and not the
    // one n3 delivered.
    let lines = sasl_login(cluster.nodes[1].addr, "bobby", "bob", "bob-password").await;
    assert!(lines.iter().any(|l| command_of(l) == "903"), "{lines:?}");
    let count = lines
        .iter()
        .filter(|l| l.contains("You have 2 private messages received while you were away"))
        .count();
    assert_eq!(count, 1, "{lines:?}");
    // Without server-time each line starts with the time it was sent.
    let texts: Vec<&str> = lines
        .iter()
        .filter(|l| command_of(l) == "PRIVMSG")
        .filter_map(|l| l.rsplit("] ").next())
        .collect();
    assert_eq!(texts, ["late one", "late two"], "{lines:?}");
}
