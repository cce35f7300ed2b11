//! Always-on on a cluster (issue 26, item 2): a kept presence is a user for every node (its
//! away travels, no QUIT), and when its node dies hard another node adopts it (a compare-and-set
//! on the owning node life in PostgreSQL): the presence is back in its channels as seen from
//! the survivor, and the account's next login there takes it over and gets what was said while
//! it was away.

mod common;

use std::time::Duration;

use common::cluster::{source, Cluster};
use common::{account, command_of, Client};
use parley_server::store::{AccountStore, AlwaysOnStore, PostgresStore, StoredPresence};
use tokio::time::Instant;

/// Log `account` in with SASL PLAIN under `nick`; the client and what came up to the end of its
/// welcome and what follows at once.
async fn login(addr: std::net::SocketAddr, nick: &str, account: &str) -> (Client, Vec<String>) {
    let password = format!("{account}-password");
    common::sasl_session(addr, nick, account, &password, "").await
}

/// Wait (bounded) until the shared store names an owner for `account`'s kept presence: the row
/// is written just after the connection's end is handled, and a node killed before that has
/// nothing to hand over.
async fn await_stored_owner(postgres_url: &str, account: &str) {
    let store = PostgresStore::open(postgres_url).expect("open PostgreSQL");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let owners = store.presence_owners().expect("read the owners");
        if owners.iter().any(|(a, _)| a == account) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{account}'s presence never got an owner: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_presence_survives_its_node_and_resumes_on_another() {
    const LEASE: u64 = 2;
    // The survivor keeps none of its own users (its limit is 0): a node failure still must
    // not drop the always-on accounts it adopts.
    let Some(cluster) = Cluster::start(1, |_, c| {
        c.cluster.lease_secs = LEASE;
        c.accounts.always_on_limit = 0;
    })
    .await
    else {
        return;
    };
    let mut doomed = cluster
        .spawn_binary("n2", &[("PARLEY_CLUSTER__LEASE_SECS", "2")])
        .await;

    // alice, always-on, in #room on the node that will die; bob in #room on the other.
    let mut alice = account(doomed.addr, "alice").await;
    alice.send("ALWAYSON ON").await;
    alice.expect(|l| l.contains(" ALWAYSON ON ")).await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    let mut bob = cluster.client(0, "bob").await;
    bob.send("CAP REQ :away-notify").await;
    bob.expect(|l| l.contains(" ACK ")).await;
    bob.join_after("#room", &["@alice"]).await;
    alice
        .expect(|l| l.starts_with(&format!(":{} JOIN ", source("bob"))))
        .await;

    // Her last connection closes: bob, on the other node, sees her go away, not quit.
    alice.send("QUIT :laptop closed").await;
    alice.expect_closed().await;
    let (away, _) = bob
        .expect_within(Duration::from_secs(10), |l| {
            command_of(l) == "AWAY" || command_of(l) == "QUIT"
        })
        .await;
    assert!(
        away.starts_with(":alice!") && away.contains(" AWAY :"),
        "{away}"
    );
    bob.send("PRIVMSG #room :said while you were away").await;
    assert!(bob.sync().await.is_empty());

    await_stored_owner(&cluster.postgres_url, "alice").await;
    // Her node dies hard. The survivor drops its users (a QUIT) and adopts her presence (a
    // JOIN), within the lease and a heartbeat check; the bound only stops a hang.
    doomed.kill().await;
    let killed = Instant::now();
    let bound = Duration::from_secs(LEASE + 30);
    let (quit, _) = bob
        .expect_within(bound, |l| {
            l.starts_with(":alice!") && command_of(l) != "AWAY"
        })
        .await;
    assert_eq!(command_of(&quit), "QUIT", "{quit}");
    let left = bound.saturating_sub(killed.elapsed());
    let (join, _) = bob
        .expect_within(left, |l| {
            l.starts_with(":alice!") && command_of(l) != "AWAY"
        })
        .await;
    assert!(
        join.ends_with(" JOIN #room") || join.ends_with(" JOIN :#room"),
        "{join}"
    );
    // In the channel as the survivor last saw her: a channel operator still.
    let names = bob.names("#room").await;
    let expected: std::collections::BTreeSet<String> =
        ["@alice", "bob"].iter().map(|n| n.to_string()).collect();
    assert_eq!(names, expected);
    bob.send("WHOIS alice").await;
    let whois = bob.sync().await;
    assert!(
        whois.iter().any(|l| command_of(l) == "301"),
        "the adopted presence is away: {whois:?}"
    );

    // Her next login, on the survivor, takes the presence over: her nick, the JOIN burst, and
    // the line said while she was away (no chathistory: replayed).
    let (_alice, seen) = login(cluster.nodes[0].addr, "alice_", "alice").await;
    assert!(seen[0].contains(" 001 alice "), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| command_of(l) == "JOIN" && l.starts_with(":alice!") && l.ends_with("#room")),
        "no JOIN burst: {seen:#?}"
    );
    assert!(
        seen.iter().any(|l| command_of(l) == "PRIVMSG"
            && l.starts_with(&format!(":{} PRIVMSG #room :", source("bob")))
            && l.ends_with(" said while you were away")),
        "no catch-up line: {seen:#?}"
    );
    // bob sees her back from away on the same node, not a second JOIN. The away's end reaches
    // him through the cluster's stream, which may be after her login's own lines: waited for.
    let (_, before) = bob
        .expect_within(Duration::from_secs(10), |l| {
            l.starts_with(":alice!") && l.ends_with(" AWAY")
        })
        .await;
    let after = bob.sync().await;
    assert!(
        !before.iter().chain(&after).any(|l| command_of(l) == "JOIN"),
        "{before:?} {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_presence_resumes_from_either_node() {
    // Every account always-on: the account keeps one presence, on n1, wherever it logs in.
    let Some(cluster) = Cluster::start(2, |_, c| {
        c.accounts.always_on = parley_server::config::AlwaysOnPolicy::On;
    })
    .await
    else {
        return;
    };
    let mut alice = account(cluster.nodes[0].addr, "alice").await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    let mut bob = cluster.client(1, "bob").await;
    bob.send("CAP REQ :away-notify").await;
    bob.expect(|l| l.contains(" ACK ")).await;
    bob.join_after("#room", &["@alice"]).await;
    alice
        .expect(|l| l.starts_with(&format!(":{} JOIN ", source("bob"))))
        .await;

    // Kept on n1: bob, on n2, sees her go away and no QUIT.
    alice.send("QUIT :laptop closed").await;
    alice.expect_closed().await;
    let (away, _) = bob
        .expect_within(Duration::from_secs(10), |l| {
            command_of(l) == "AWAY" || command_of(l) == "QUIT"
        })
        .await;
    assert!(
        away.starts_with(":alice!") && away.contains(" AWAY :"),
        "{away}"
    );
    bob.send("PRIVMSG #room :line one").await;
    assert!(bob.sync().await.is_empty());

    // A login on n2 is carried to n1 and resumes the presence there: her nick, the JOIN
    // burst, the catch-up; bob on n2 sees her come back from away, with no JOIN.
    let (mut other, seen) = login(cluster.nodes[1].addr, "alice2", "alice").await;
    assert!(seen[0].contains(" 001 alice "), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| command_of(l) == "JOIN" && l.starts_with(":alice!") && l.ends_with("#room")),
        "no JOIN burst: {seen:#?}"
    );
    let caught_up = |l: &str| command_of(l) == "PRIVMSG" && l.ends_with(" line one");
    if !seen.iter().any(|l| caught_up(l)) {
        // The catch-up is read from the shared history after the welcome; on a loaded machine
        // it may come after the answer to the login's first PING.
        other
            .expect_within(Duration::from_secs(10), caught_up)
            .await;
    }
    let (back, before) = bob
        .expect_within(Duration::from_secs(10), |l| l.starts_with(":alice!"))
        .await;
    assert!(back.ends_with(" AWAY"), "{back} after {before:?}");

    // When it leaves, the account is kept again, on n1: bob sees her go away, no QUIT.
    other.send("QUIT :phone off").await;
    other.expect_closed().await;
    let (away, _) = bob
        .expect_within(Duration::from_secs(10), |l| {
            command_of(l) == "AWAY" || command_of(l) == "QUIT"
        })
        .await;
    assert!(
        away.starts_with(":alice!") && away.contains(" AWAY :"),
        "{away}"
    );
    bob.send("WHOIS alice2").await;
    assert!(
        bob.sync().await.iter().any(|l| command_of(l) == "401"),
        "no second user"
    );

    // The next login on n1 resumes it too, and bob sees her come back.
    let (_alice, seen) = login(cluster.nodes[0].addr, "alice_", "alice").await;
    assert!(seen[0].contains(" 001 alice "), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| command_of(l) == "JOIN" && l.starts_with(":alice!") && l.ends_with("#room")),
        "no JOIN burst: {seen:#?}"
    );
    let (back, before) = bob
        .expect_within(Duration::from_secs(10), |l| l.starts_with(":alice!"))
        .await;
    assert!(back.ends_with(" AWAY"), "{back} after {before:?}");
}

/// The compare-and-set adoption rests on: two nodes adopting the same dead life's presences at
/// once, each on its own PostgreSQL connection, get each presence exactly once between them.
#[test]
fn postgres_gives_each_presence_to_one_adopter() {
    let Some(url) = common::postgres::database_for("cluster-always-on-adopt") else {
        return;
    };
    let store = PostgresStore::open(&url).expect("open PostgreSQL");
    const ACCOUNTS: usize = 20;
    for i in 0..ACCOUNTS {
        let name = format!("kept{i}");
        // The database is kept between runs: an account from an earlier run is reused.
        let _ = store.create_account(&name, "hash");
        store.set_always_on(&name, true).expect("opt in");
        let presence = StoredPresence {
            nick: name.clone(),
            username: "u".into(),
            realname: "r".into(),
            host: "h".into(),
            channels: vec!["#room".into()],
            away_since_ms: 1,
        };
        store
            .save_presence_owned(&name, &presence, "n1~dead")
            .expect("keep");
    }
    let adopters: Vec<_> = ["n2~b", "n3~c"]
        .into_iter()
        .map(|me| {
            let url = url.clone();
            std::thread::spawn(move || {
                let store = PostgresStore::open(&url).expect("open PostgreSQL");
                (0..ACCOUNTS)
                    .filter(|i| {
                        store
                            .adopt_presence(&format!("kept{i}"), "n1~dead", me)
                            .expect("adopt")
                            .is_some()
                    })
                    .collect::<Vec<usize>>()
            })
        })
        .collect();
    let won: Vec<Vec<usize>> = adopters
        .into_iter()
        .map(|adopter| adopter.join().expect("adopter thread"))
        .collect();
    let mut all: Vec<usize> = won.concat();
    all.sort_unstable();
    assert_eq!(all, (0..ACCOUNTS).collect::<Vec<_>>(), "{won:?}");
    // The rows name their new owners, and the dead life owns none.
    let owners = store.presence_owners().expect("owners");
    assert!(owners
        .iter()
        .filter(|(account, _)| account.starts_with("kept"))
        .all(|(_, owner)| owner == "n2~b" || owner == "n3~c"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_restarts_alone_takes_its_kept_presences_back() {
    let Some(cluster) = Cluster::start(0, |_, _| {}).await else {
        return;
    };
    // A short lease: the next life waits that long for the dead one's name claim to lapse.
    let lease = [("PARLEY_CLUSTER__LEASE_SECS", "2")];
    let mut node = cluster.spawn_binary("n1", &lease).await;
    let mut alice = account(node.addr, "alice").await;
    alice.send("ALWAYSON ON").await;
    alice.expect(|l| l.contains(" ALWAYSON ON ")).await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    alice.send("QUIT :laptop closed").await;
    alice.expect_closed().await;
    // The row is written when the connection's end is handled: wait until the node shows the
    // presence kept (away) before killing it.
    let mut watcher = node.client("watcher").await;
    watcher
        .await_reply("WHOIS alice", |l| command_of(l) == "301")
        .await;
    drop(watcher);
    await_stored_owner(&cluster.postgres_url, "alice").await;
    node.kill().await;

    // Its next life has no other node to adopt from: it adopts its own earlier life's
    // presence once it has joined the bus (its own NodeDown for that life).
    let node = cluster.spawn_binary("n1", &lease).await;
    let mut watcher = node.client("watcher").await;
    watcher
        .await_reply("WHOIS alice", |l| command_of(l) == "301")
        .await;
    let (_alice, seen) = login(node.addr, "alice_", "alice").await;
    assert!(seen[0].contains(" 001 alice "), "{seen:#?}");
    assert!(
        seen.iter()
            .any(|l| command_of(l) == "JOIN" && l.starts_with(":alice!") && l.ends_with("#room")),
        "no JOIN burst: {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn always_on_turned_on_at_one_node_keeps_the_account_at_another() {
    // accounts.always_on = opt-in (the default): the setting is made on n1, after n2 started.
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let mut alice = account(cluster.nodes[1].addr, "alice").await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    let mut bob = cluster.client(0, "bob").await;
    bob.send("CAP REQ :away-notify").await;
    bob.expect(|l| l.contains(" ACK ")).await;
    bob.join_after("#room", &["@alice"]).await;
    alice
        .expect(|l| l.starts_with(&format!(":{} JOIN ", source("bob"))))
        .await;

    // Another session of hers, on n1 (a user of its own there), turns it on, then leaves: not
    // kept, her user on n2 is the account's presence.
    let (mut other, _) = login(cluster.nodes[0].addr, "alice1", "alice").await;
    other.send("ALWAYSON ON").await;
    other.expect(|l| l.contains(" ALWAYSON ON ")).await;
    other.send("QUIT :done").await;
    other.expect_closed().await;
    // Once n2 has seen that user go (the stream brings the setting before it), her user
    // there is the account's only one.
    alice
        .await_reply("WHOIS alice1", |l| command_of(l) == "401")
        .await;

    // Her last session on n2 leaves: n2 heard the setting, so she stays, away.
    alice.send("QUIT :laptop closed").await;
    alice.expect_closed().await;
    let (away, _) = bob
        .expect_within(Duration::from_secs(10), |l| {
            l.starts_with(":alice!") && (command_of(l) == "AWAY" || command_of(l) == "QUIT")
        })
        .await;
    assert!(away.contains(" AWAY :"), "{away}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_stopped_cleanly_hands_its_kept_presence_to_another() {
    let Some(cluster) = Cluster::start(1, |_, c| c.cluster.lease_secs = 2).await else {
        return;
    };
    let mut leaving = cluster
        .spawn_binary("n2", &[("PARLEY_CLUSTER__LEASE_SECS", "2")])
        .await;
    let mut alice = account(leaving.addr, "alice").await;
    alice.send("ALWAYSON ON").await;
    alice.expect(|l| l.contains(" ALWAYSON ON ")).await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    let mut bob = cluster.client(0, "bob").await;
    bob.join_after("#room", &["@alice"]).await;
    alice.send("QUIT :laptop closed").await;
    alice.expect_closed().await;
    bob.await_reply("WHOIS alice", |l| command_of(l) == "301")
        .await;

    leaving.stop("TERM", Duration::from_secs(20)).await;
    let (join, _) = bob
        .expect_within(Duration::from_secs(20), |l| {
            l.starts_with(":alice!") && command_of(l) == "JOIN"
        })
        .await;
    assert!(join.ends_with("#room"), "{join}");
    let (_alice, seen) = login(cluster.nodes[0].addr, "alice_", "alice").await;
    assert!(seen[0].contains(" 001 alice "), "{seen:#?}");
}

/// A kept presence whose nick a live user holds when its node dies comes back under another
/// nick (`alice_`), as a registration would, rather than being forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_presence_whose_nick_was_taken_is_adopted_under_another() {
    const LEASE: u64 = 2;
    let Some(cluster) = Cluster::start(1, |_, c| c.cluster.lease_secs = LEASE).await else {
        return;
    };
    let mut doomed = cluster
        .spawn_binary("n2", &[("PARLEY_CLUSTER__LEASE_SECS", "2")])
        .await;
    let mut alice = account(doomed.addr, "alice").await;
    alice.send("ALWAYSON ON").await;
    alice.expect(|l| l.contains(" ALWAYSON ON ")).await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    let mut bob = cluster.client(0, "bob").await;
    bob.join_after("#room", &["@alice"]).await;
    alice.send("QUIT :laptop closed").await;
    alice.expect_closed().await;
    await_stored_owner(&cluster.postgres_url, "alice").await;

    // bob's node hands "alice" to bob in the nick bucket (as a claim of a live user would be
    // when the dead node's claims are released), then the keeping node dies.
    let admin = cluster.nats.as_ref().expect("own bus").admin().await;
    let bucket = async_nats::jetstream::new(admin)
        .get_key_value(format!("{}_nicks", cluster.prefix))
        .await
        .expect("the nick bucket");
    let key = |nick: &str| {
        let hex: String = nick.bytes().map(|b| format!("{b:02x}")).collect();
        format!("n.{hex}")
    };
    let bobs = bucket
        .get(key("bob"))
        .await
        .expect("read the bucket")
        .expect("bob's claim");
    bucket
        .put(key("alice"), bobs)
        .await
        .expect("write the bucket");
    doomed.kill().await;
    let (join, _) = bob
        .expect_within(Duration::from_secs(LEASE + 30), |l| {
            command_of(l) == "JOIN" && l.contains("#room")
        })
        .await;
    assert!(join.starts_with(":alice_!"), "{join}");
    let names = bob.names("#room").await;
    assert!(names.contains("@alice_"), "{names:?}");
}

/// A node that the others gave up (paused past the lease) while it kept a presence: a survivor
/// adopts the presence, and the paused node, once it runs again and learns it was given up,
/// drops its own copy, so the account's next login there is carried to the adopter (one user,
/// not two).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_given_up_drops_its_kept_copy_and_a_login_there_reaches_the_adopter() {
    const LEASE: u64 = 2;
    let Some(cluster) = Cluster::start(1, |_, c| c.cluster.lease_secs = LEASE).await else {
        return;
    };
    let paused = cluster
        .spawn_binary("n2", &[("PARLEY_CLUSTER__LEASE_SECS", "2")])
        .await;
    let mut alice = account(paused.addr, "alice").await;
    alice.send("ALWAYSON ON").await;
    alice.expect(|l| l.contains(" ALWAYSON ON ")).await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    let mut bob = cluster.client(0, "bob").await;
    bob.send("CAP REQ :away-notify").await;
    bob.expect(|l| l.contains(" ACK ")).await;
    bob.join_after("#room", &["@alice"]).await;
    alice.send("QUIT :laptop closed").await;
    alice.expect_closed().await;
    await_stored_owner(&cluster.postgres_url, "alice").await;

    paused.pause();
    let bound = Duration::from_secs(LEASE + 30);
    let (join, _) = bob
        .expect_within(bound, |l| {
            l.starts_with(":alice!") && command_of(l) == "JOIN"
        })
        .await;
    assert!(join.ends_with("#room"), "{join}");
    paused.resume();
    // The resumed node hears that it was given up; its kept copy goes. A login there then
    // resumes the adopted presence on n1: bob sees her come back from away, no JOIN.
    // Until then (and while it tells its own connections to go), n2 may still show its copy.
    let deadline = Instant::now() + bound;
    while whois_server(paused.addr, "alice").await.as_deref() != Some("n1.parley.local") {
        assert!(Instant::now() < deadline, "n2 never saw alice on n1");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_c, seen) = login(paused.addr, "alice", "alice").await;
    assert!(
        seen[0].starts_with(":n1.") && seen[0].contains(" 001 alice "),
        "{seen:#?}"
    );
    // (The adopted presence's away may come first.)
    let (_, before) = bob
        .expect_within(Duration::from_secs(10), |l| {
            l.starts_with(":alice!") && l.ends_with(" AWAY")
        })
        .await;
    assert!(
        !before.iter().any(|l| command_of(l) == "QUIT"),
        "{before:?}"
    );
}

/// The server WHOIS at `addr` names for `nick` (from a guest's connection there), or `None`:
/// no such user, or the connection was closed on the way (a node telling its connections to go
/// may close this one too).
async fn whois_server(addr: std::net::SocketAddr, nick: &str) -> Option<String> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (read, mut write) = stream.into_split();
    let probe = format!("NICK whoisprobe\r\nUSER probe 0 * :probe\r\nWHOIS {nick}\r\n");
    write.write_all(probe.as_bytes()).await.ok()?;
    let mut lines = tokio::io::BufReader::new(read).lines();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            match command_of(&line) {
                "312" => return line.split(' ').nth(4).map(str::to_owned),
                "318" | "401" | "ERROR" => return None,
                _ => {}
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()?
}
