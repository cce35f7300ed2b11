//! What an operator's monitoring sees of a node (issue 25, item 7): `/healthz` turns 503 and
//! names the bus or the database while it is down, and `ok` again when it is back; a cluster
//! node's `/metrics` has its bus state, peers, stream lag and users; and a node that cannot use
//! its bus at start says which of connect, login, TLS or JetStream failed, and exits.
//!
//! Real parts only: nats-server (stopped and restarted), PostgreSQL behind a TCP relay this test
//! cuts (the shared server itself is never touched), and the `parleyd` binary for the start-up
//! failures. Needs nats-server and `PARLEY_TEST_POSTGRES_URL` like `cluster.rs`; skips without
//! them unless `PARLEY_REQUIRE_CLUSTER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::cluster::{
    cluster_required, nats_server_path, node_password, Cluster, NatsServer, NatsTls, NODES,
};
use common::{free_port, http, postgres, sample, scrape, TestServer};
use parley_server::config::StoreKind;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How long a probe may take to notice a change: the bus flag is immediate, the database check
/// is cached for 5 s and waits up to 2 s, reconnecting to NATS backs off up to a few seconds.
const NOTICE: Duration = Duration::from_secs(30);

/// Poll `/healthz` at `addr` until `wanted(status, body)`, at most [`NOTICE`]; the last answer.
async fn await_health(addr: SocketAddr, wanted: impl Fn(u16, &str) -> bool) -> (u16, String) {
    let deadline = Instant::now() + NOTICE;
    loop {
        let (status, body) = http(addr, "GET", "/healthz").await;
        if wanted(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never changed as expected; last answer {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_while_the_bus_is_down_and_ok_when_it_is_back() {
    let Some(mut cluster) = Cluster::start(1, |_, config| {
        config.metrics.listen = vec!["127.0.0.1:0".into()];
        config.cluster.lease_secs = 3;
    })
    .await
    else {
        return;
    };
    let addr = cluster.nodes[0].running.metrics_addrs()[0];
    assert_eq!(http(addr, "GET", "/healthz").await, (200, "ok\n".into()));

    let url = cluster.nats_url.clone();
    cluster.nats_mut().stop();
    let (_, body) = await_health(addr, |status, _| status == 503).await;
    assert_eq!(
        body,
        format!("not ok\ncluster bus: disconnected from {url}; reconnecting\n"),
        "names the bus and only the bus"
    );

    cluster.nats_mut().restart().await;
    await_health(addr, |status, body| status == 200 && body == "ok\n").await;
}

/// A TCP relay from a loopback port to `target`, for cutting a node off from its database
/// without touching the database: [`Relay::cut`] closes the port and every relayed connection,
/// [`Relay::mend`] listens on the same port again.
struct Relay {
    port: u16,
    target: SocketAddr,
    tasks: JoinSet<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let mut relay = Relay {
            port: free_port(),
            target,
            tasks: JoinSet::new(),
        };
        relay.mend().await;
        relay
    }

    async fn mend(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the relay's port is free again");
        let target = self.target;
        self.tasks.spawn(async move {
            // The connections are tasks of this one, so aborting it closes them all.
            let mut relayed = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                relayed.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    async fn cut(&mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// `url` with its `host:port` replaced by `127.0.0.1:port`, and that `host:port` as it was.
fn via_port(url: &str, port: u16) -> (String, SocketAddr) {
    let (scheme_and_login, rest) = url.rsplit_once('@').expect("the test URL has a login");
    let (host_port, database) = rest.split_once('/').expect("the test URL names a database");
    let target = host_port
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("the test PostgreSQL is at an IP address and port");
    (
        format!("{scheme_and_login}@127.0.0.1:{port}/{database}"),
        target,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_while_the_database_is_unreachable_and_ok_when_it_is_back() {
    let Some(direct) = postgres::database_for("cluster-health-db") else {
        assert!(!cluster_required(), "PARLEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let (_, target) = via_port(&direct, 0);
    let mut relay = Relay::start(target).await;
    let (relayed, _) = via_port(&direct, relay.port);
    let server = TestServer::start_with(|config| {
        config.metrics.listen = vec!["127.0.0.1:0".into()];
        config.accounts.store = StoreKind::Postgres;
        config.accounts.postgres_url = relayed.clone();
    })
    .await;
    let addr = server.running.metrics_addrs()[0];
    assert_eq!(http(addr, "GET", "/healthz").await, (200, "ok\n".into()));

    relay.cut().await;
    let (_, body) = await_health(addr, |status, _| status == 503).await;
    assert!(
        body.starts_with("not ok\ndatabase: ") && body.contains("PostgreSQL"),
        "names the database: {body}"
    );
    assert!(!body.contains("parley_test:"), "no password: {body}");

    relay.mend().await;
    await_health(addr, |status, body| status == 200 && body == "ok\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_bus_peers_lag_and_users_of_a_cluster() {
    let Some(cluster) = Cluster::start(2, |_, config| {
        config.metrics.listen = vec!["127.0.0.1:0".into()];
        config.cluster.lease_secs = 3;
    })
    .await
    else {
        return;
    };
    let (_alice, mut bob) = cluster.alice_and_bob_talk("hello").await;
    let _carol = cluster.client(0, "carol").await;
    bob.await_whois("carol").await;
    let first = cluster.nodes[0].running.metrics_addrs()[0];
    let second = cluster.nodes[1].running.metrics_addrs()[0];

    // The recorder is process-wide, so each scrape is read before the next node's.
    let deadline = Instant::now() + NOTICE;
    let text = loop {
        let text = scrape(first).await;
        // The heartbeat and the last events may still be on their way.
        if sample(&text, "parley_cluster_peers") == 1.0
            && sample(&text, "parley_cluster_stream_lag_events") == 0.0
            && text.contains("parley_cluster_stream_lag_events ")
        {
            break text;
        }
        assert!(Instant::now() < deadline, "n1 never settled: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&text, "parley_cluster_bus_connected"), 1.0, "{text}");
    assert_eq!(
        sample(&text, "parley_cluster_peer_up{node=\"n2\"}"),
        1.0,
        "{text}"
    );
    assert!(
        text.contains("parley_cluster_peer_up{node=\"n3\"} 0"),
        "a configured node never seen is down: {text}"
    );
    assert!(
        !text.contains("parley_cluster_peer_up{node=\"n1\"}"),
        "not itself: {text}"
    );
    assert_eq!(sample(&text, "parley_cluster_local_users"), 2.0, "{text}");
    assert_eq!(sample(&text, "parley_cluster_network_users"), 3.0, "{text}");
    assert!(
        text.contains("# HELP parley_cluster_stream_lag_events"),
        "described: {text}"
    );

    let text = scrape(second).await;
    assert_eq!(sample(&text, "parley_cluster_local_users"), 1.0, "{text}");
    assert_eq!(sample(&text, "parley_cluster_network_users"), 3.0, "{text}");
    assert_eq!(sample(&text, "parley_cluster_peers"), 1.0, "{text}");
}

/// Run `parleyd` as node n1 of a cluster on `nats_url` (with `cluster_lines` added to its
/// `[cluster]` and `envs` set) and wait for it to give up: its exit status and what it printed.
/// Nothing past the bus is reached, so the database URL is a placeholder.
async fn start_fails(nats_url: &str, cluster_lines: &str, envs: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("parley.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {data:?}\n[listen]\nplain = [\"127.0.0.1:{port}\"]\ntls = []\n\
             [web]\nlisten = []\n\
             [accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://nobody@127.0.0.1:1/none\"\n\
             [cluster]\nenabled = true\nnats_url = {nats_url:?}\nnode_name = \"n1\"\n\
             prefix = \"health\"\nnodes = {NODES:?}\nnats_user = \"n1\"\n{cluster_lines}",
            data = dir.path().display().to_string(),
            port = free_port(),
        ),
    )
    .expect("write the node's config");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(&config)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(40), run)
        .await
        .expect("parleyd gave up within 40 s")
        .expect("run parleyd");
    let printed = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "parleyd started: {printed}");
    // What an operator reads, shown with --nocapture.
    eprintln!("parleyd at {nats_url} said: {}", printed.trim_end());
    printed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_nothing_at_its_nats_url_says_it_cannot_connect() {
    if nats_server_path().is_none() {
        return;
    }
    let url = format!("nats://127.0.0.1:{}", free_port());
    let printed = start_fails(&url, "", &[("PARLEY_CLUSTER__NATS_PASSWORD", "any")]).await;
    assert!(
        printed.contains(&format!("cannot connect to the NATS server at {url}"))
            && printed.contains("cluster.nats_url"),
        "{printed}"
    );
    assert!(!printed.contains("JetStream"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_password_says_its_login_was_refused() {
    let Some(nats) = NatsServer::start_for("health", None).await else {
        return;
    };
    let printed = start_fails(
        &nats.url(),
        "",
        &[("PARLEY_CLUSTER__NATS_PASSWORD", "not-the-password")],
    )
    .await;
    assert!(
        printed.contains(&format!(
            "the NATS server at {} refused this node's login",
            nats.url()
        )) && printed.contains("nats_password"),
        "{printed}"
    );
    assert!(!printed.contains("JetStream"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_speaking_tls_to_a_plain_server_says_tls_failed() {
    let Some(nats) = NatsServer::start_for("health", None).await else {
        return;
    };
    let url = nats.url().replace("nats://", "tls://");
    let password = node_password("n1");
    let printed = start_fails(&url, "", &[("PARLEY_CLUSTER__NATS_PASSWORD", &password)]).await;
    assert!(
        printed.contains(&format!("TLS to the NATS server at {url} failed"))
            && printed.contains("does not speak TLS on that port"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_trusting_the_wrong_ca_says_tls_failed() {
    let right = NatsTls::generate();
    let Some(nats) = NatsServer::start_for("health", Some(&right)).await else {
        return;
    };
    let wrong = NatsTls::generate();
    let url = nats.url().replace("nats://", "tls://");
    let lines = format!(
        "nats_tls_ca = {:?}\nnats_tls_cert = {:?}\nnats_tls_key = {:?}\n",
        path(&wrong.ca),
        path(&right.client_cert),
        path(&right.client_key),
    );
    let password = node_password("n1");
    let printed = start_fails(
        &url,
        &lines,
        &[("PARLEY_CLUSTER__NATS_PASSWORD", &password)],
    )
    .await;
    assert!(
        printed.contains(&format!("TLS to the NATS server at {url} failed"))
            && printed.contains("not signed by the CA in cluster.nats_tls_ca"),
        "{printed}"
    );
}

fn path(path: &Path) -> String {
    path.display().to_string()
}

/// A nats-server with this config text, with JetStream only if `jetstream`; killed on drop.
struct PlainNats {
    port: u16,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl PlainNats {
    async fn start(config: &str, jetstream: bool) -> Option<PlainNats> {
        let binary = nats_server_path()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config_file = dir.path().join("nats.conf");
        std::fs::write(&config_file, config).expect("write the nats-server config");
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("-c")
            .arg(&config_file)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        if jetstream {
            command
                .arg("-js")
                .arg("-sd")
                .arg(dir.path().join("jetstream"));
        }
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("run nats-server");
        let mut nats = PlainNats {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                nats.child.try_wait().ok().flatten().is_none(),
                "nats-server exited"
            );
            assert!(Instant::now() < deadline, "nats-server never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(nats)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_server_without_jetstream_says_so() {
    let Some(nats) = PlainNats::start("", false).await else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let printed = start_fails(&url, "", &[("PARLEY_CLUSTER__NATS_PASSWORD", "any")]).await;
    assert!(
        printed.contains(&format!("the NATS server at {url} runs without JetStream"))
            && printed.contains("-js"),
        "{printed}"
    );
}

/// nats-server lets n1 in but not at the JetStream API: the error names JetStream and the
/// permissions to check, and the log line before it quotes nats-server's refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_permissions_refuse_jetstream_says_so() {
    let config = "authorization {\n  users = [\n    { user: n1, password: \"pw\", permissions: {\n      \
                  publish: { allow: [\"health.>\"] }, subscribe: { allow: [\"_INBOX.>\", \"health.>\"] } } }\n  ]\n}\n";
    let Some(nats) = PlainNats::start(config, true).await else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let printed = start_fails(&url, "", &[("PARLEY_CLUSTER__NATS_PASSWORD", "pw")]).await;
    assert!(
        printed.contains(&format!("JetStream at {url} refused the event stream"))
            && printed.contains("Permissions Violation for Publish to")
            && printed.contains("permissions"),
        "{printed}"
    );
}
