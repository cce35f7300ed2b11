//! Node identity in a cluster (issue 25, item 3): a node name is held by one running process,
//! a crashed node gets its name back within a lease, each node has its own server name, and
//! LUSERS, LINKS, MAP, ADMIN, WHOIS and WHO show the network by those names.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::cluster::{node_password, Cluster};
use common::command_of;
use tokio::time::Instant;

/// Short, so a crashed node's claim goes stale quickly; every node of a test uses it.
const LEASE: u64 = 2;

/// Every node of the test on the short lease.
fn short_lease(_: usize, config: &mut parley_server::Config) {
    config.cluster.lease_secs = LEASE;
}

/// Run the real `parleyd` as node `name` of `cluster` until it exits (at most `within`);
/// returns whether it exited with success and its log.
async fn run_to_exit(
    cluster: &Cluster,
    name: &str,
    envs: &[(&str, &str)],
    within: Duration,
) -> (Option<bool>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = cluster.write_binary_config(dir.path(), common::free_port(), name);
    let log_path = dir.path().join("parleyd.log");
    let log = std::fs::File::create(&log_path).expect("create the log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(&config)
        .env("PARLEY_CLUSTER__NATS_PASSWORD", node_password(name))
        .env("PARLEY_CLUSTER__LEASE_SECS", LEASE.to_string())
        .envs(envs.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start parleyd");
    let status = match tokio::time::timeout(within, child.wait()).await {
        Ok(status) => Some(status.expect("reap parleyd").success()),
        Err(_) => None,
    };
    let _ = child.start_kill();
    let _ = child.wait().await;
    (
        status,
        std::fs::read_to_string(&log_path).unwrap_or_default(),
    )
}

/// The lines a command gets in answer, from a client with nothing else pending.
async fn answer(client: &mut common::Client, command: &str) -> Vec<String> {
    client.send(command).await;
    client.sync().await
}

/// A second `parleyd` started under a running node's name is refused with a message naming
/// the name, and the running node's users never notice.
#[tokio::test]
async fn a_second_node_under_a_running_nodes_name_is_refused() {
    let Some(cluster) = Cluster::start(2, short_lease).await else {
        return;
    };
    let (mut alice, mut bob) = cluster.alice_and_bob_talk("before").await;

    let started = Instant::now();
    let (exit, log) = run_to_exit(&cluster, "n1", &[], Duration::from_secs(30)).await;
    assert_eq!(
        exit,
        Some(false),
        "a second n1 must exit with failure; its log:\n{log}"
    );
    assert!(
        log.contains(
            "another node is running as cluster node \"n1\" (its server name: n1.parley.local)"
        ),
        "the refusal names the node and says another holds it; log:\n{log}"
    );
    assert!(
        !log.contains("joined the cluster"),
        "refused before joining; log:\n{log}"
    );
    eprintln!("refused after {:?}", started.elapsed());

    // n1's users were never told anything about n1: nothing arrived, and they still talk.
    let seen = bob.sync().await;
    assert!(
        seen.iter().all(|l| !l.contains("QUIT")),
        "bob saw a QUIT: {seen:?}"
    );
    bob.send("PRIVMSG alice :after").await;
    alice
        .expect_next(":bob!~bob@127.0.0.1 PRIVMSG alice :after")
        .await;
    let whois = answer(&mut bob, "WHOIS alice").await;
    assert!(
        whois.iter().any(|l| command_of(l) == "311"),
        "alice is still known on n2: {whois:?}"
    );
}

/// A node killed with -9 leaves its claim behind; started again under its name, it waits for
/// the claim to go a lease unrenewed, takes it over, and joins.
#[tokio::test]
async fn a_crashed_node_restarted_under_its_name_is_accepted_within_a_lease() {
    let Some(cluster) = Cluster::start(2, short_lease).await else {
        return;
    };
    let lease = LEASE.to_string();
    let envs = [("PARLEY_CLUSTER__LEASE_SECS", lease.as_str())];
    let mut n3 = cluster.spawn_binary("n3", &envs).await;
    let mut alice = cluster.client(0, "alice").await;
    let _carol = n3.client("carol").await;
    alice.await_whois("carol").await;
    n3.kill().await;

    let restarted = Instant::now();
    let again = cluster.spawn_binary("n3", &envs).await;
    // The listeners are bound before the node joins: its log says when it has.
    let deadline = restarted + Duration::from_secs(30);
    while !again.log().contains("joined the cluster") {
        assert!(
            Instant::now() < deadline,
            "the restarted n3 never joined; log:\n{}",
            again.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = restarted.elapsed();
    assert!(
        again.log().contains("took over this node's name"),
        "the restart took the stale claim over; log:\n{}",
        again.log()
    );
    // The claim is judged stale after one lease unrenewed; the rest is the node's start.
    assert!(
        took < Duration::from_secs(LEASE) + Duration::from_secs(8),
        "restart took {took:?}"
    );
    eprintln!("crashed n3 restarted and joined after {took:?}");
    let _dave = again.client("dave").await;
    alice.await_whois("dave").await;
}

/// A node configured with the server name of a live node is refused, naming both.
#[tokio::test]
async fn a_server_name_a_live_node_uses_is_refused() {
    let Some(cluster) = Cluster::start(1, |_, config| {
        config.cluster.lease_secs = LEASE;
        config.server.name = "irc.example.org".into();
    })
    .await
    else {
        return;
    };
    let (exit, log) = run_to_exit(
        &cluster,
        "n2",
        &[("PARLEY_SERVER__NAME", "irc.example.org")],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(exit, Some(false), "log:\n{log}");
    assert!(
        log.contains(
            "server.name \"irc.example.org\" is the server name of live cluster node \"n1\""
        ),
        "log:\n{log}"
    );
}

/// A node whose name claim another process took over (it was taken for dead) stops serving:
/// its users are told why and disconnected, rather than chatting on a duplicate node.
#[tokio::test]
async fn a_node_whose_name_was_taken_over_steps_down() {
    let Some(mut cluster) = Cluster::start(2, short_lease).await else {
        return;
    };
    let (_alice, mut bob) = cluster.alice_and_bob_talk("hello").await;
    let prefix = cluster.prefix.clone();
    let admin = cluster.nats_mut().admin().await;
    let js = async_nats::jetstream::new(admin);
    let bucket = js
        .get_key_value(format!("{prefix}_nicks"))
        .await
        .expect("the nick bucket");
    let held = bucket
        .entry("node.n2")
        .await
        .expect("read the claim")
        .expect("n2 claims its name");
    bucket
        .update(
            "node.n2",
            r#"{"incarnation":"1","server":"n2.parley.local","admin":["","",""]}"#.into(),
            held.revision,
        )
        .await
        .expect("take the claim over");
    let lines = bob.expect_closed().await;
    assert!(
        lines.iter().any(|l| l.starts_with("ERROR ")
            && l.contains("This server's node name was taken over by another process")),
        "bob is told why: {lines:?}"
    );
}

/// Each node has its own server name, and every query about the network answers with all of
/// them (modern.ircdocs.horse formats; MAP as InspIRCd's 006/018/007).
#[tokio::test]
async fn the_network_shows_every_node_under_its_own_server_name() {
    let Some(cluster) = Cluster::start(3, |i, config| {
        if i == 1 {
            config.server.admin_location = "Rack 2, Example Hosting".into();
            config.server.admin_email = "ops@example.org".into();
        }
    })
    .await
    else {
        return;
    };
    let mut alice = cluster.client(0, "alice").await;
    let _bob = cluster.client(1, "bob").await;
    let _carol = cluster.client(2, "carol").await;
    alice.await_whois("bob").await;
    alice.await_whois("carol").await;
    // The other nodes are linked once heard from and their claims read.
    alice
        .await_reply("LINKS", |l| l.contains(" 364 alice * n3.parley.local "))
        .await;
    alice
        .await_reply("LINKS", |l| l.contains(" 364 alice * n2.parley.local "))
        .await;

    assert_eq!(
        answer(&mut alice, "LINKS").await,
        [
            ":n1.parley.local 364 alice * n1.parley.local :0 Parley (Parley)",
            ":n1.parley.local 364 alice * n2.parley.local :1 Parley (Parley cluster node n2)",
            ":n1.parley.local 364 alice * n3.parley.local :1 Parley (Parley cluster node n3)",
            ":n1.parley.local 365 alice * :End of /LINKS list",
        ]
    );
    assert_eq!(
        answer(&mut alice, "LUSERS").await,
        [
            ":n1.parley.local 251 alice :There are 3 users and 0 invisible on 3 servers",
            ":n1.parley.local 252 alice 0 :operator(s) online",
            ":n1.parley.local 253 alice 0 :unknown connection(s)",
            ":n1.parley.local 254 alice 0 :channels formed",
            ":n1.parley.local 255 alice :I have 1 clients and 2 servers",
            ":n1.parley.local 265 alice 1 1 :Current local users 1, max 1",
            ":n1.parley.local 266 alice 3 3 :Current global users 3, max 3",
        ]
    );
    assert_eq!(
        answer(&mut alice, "MAP").await,
        [
            ":n1.parley.local 006 alice :n1.parley.local 1 [33.33%]",
            ":n1.parley.local 006 alice :|-n2.parley.local 1 [33.33%]",
            ":n1.parley.local 006 alice :`-n3.parley.local 1 [33.33%]",
            ":n1.parley.local 018 alice :3 servers and 3 users, average 1.00 users per server",
            ":n1.parley.local 007 alice :End of /MAP",
        ]
    );
    assert_eq!(
        answer(&mut alice, "ADMIN").await,
        [
            ":n1.parley.local 256 alice n1.parley.local :Administrative info",
            ":n1.parley.local 257 alice :Parley network",
            ":n1.parley.local 258 alice :Node n1 of the Parley network",
            ":n1.parley.local 259 alice :No administrative contact set",
        ]
    );
    // Another node's lines come from its claim, by its server name or by a user on it.
    let n2_admin = [
        ":n1.parley.local 256 alice n2.parley.local :Administrative info",
        ":n1.parley.local 257 alice :Rack 2, Example Hosting",
        ":n1.parley.local 258 alice :Node n2 of the Parley network",
        ":n1.parley.local 259 alice :ops@example.org",
    ];
    assert_eq!(answer(&mut alice, "ADMIN n2.parley.local").await, n2_admin);
    assert_eq!(answer(&mut alice, "ADMIN bob").await, n2_admin);
    assert_eq!(
        answer(&mut alice, "ADMIN nowhere.example").await,
        [":n1.parley.local 402 alice nowhere.example :No such server"]
    );
    let whois = answer(&mut alice, "WHOIS carol").await;
    assert!(
        whois.contains(&":n1.parley.local 312 alice carol n3.parley.local :Parley".to_owned()),
        "312 names carol's node's server: {whois:?}"
    );
    let who = answer(&mut alice, "WHO bob").await;
    assert_eq!(
        who[0],
        ":n1.parley.local 352 alice * ~bob 127.0.0.1 n2.parley.local bob H :0 Test bob"
    );
    let whox = answer(&mut alice, "WHO carol %ns").await;
    assert_eq!(whox[0], ":n1.parley.local 354 alice n3.parley.local carol");
}
