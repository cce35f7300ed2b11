//! Who may speak on the cluster bus: only the configured nodes, each only as itself. An outsider
//! who reaches nats-server can neither read the events (private messages cross the bus) nor
//! forge one (a KILL, an account change, a message as someone else), and a node cannot pass off
//! its events, heartbeats or snapshots as another node's.
//!
//! Needs nats-server and `PARLEY_TEST_POSTGRES_URL` like `cluster.rs`; skips without them unless
//! `PARLEY_REQUIRE_CLUSTER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::cluster::{node_password, write_secret, Cluster};
use common::Client;
use futures_util::StreamExt;

/// Every message on `sub` for `within`, as (subject, payload text).
async fn drain(sub: &mut async_nats::Subscriber, within: Duration) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, sub.next()).await {
        seen.push((
            message.subject.to_string(),
            String::from_utf8_lossy(&message.payload).into_owned(),
        ));
    }
    seen
}

/// The uid a `UserUp` event among `seen` gives `nick`.
fn uid_of(seen: &[(String, String)], nick: &str) -> Option<String> {
    seen.iter().find_map(|(_, payload)| {
        let value: serde_json::Value = serde_json::from_str(payload).ok()?;
        let user = value.get("event")?.get("user")?;
        (user.get("nick")?.as_str()? == nick)
            .then(|| user.get("uid")?.as_str().map(str::to_owned))?
    })
}

/// Envelopes that would log `uid` in as `admin`, speak as it and kill it, claiming `node`.
fn forgeries(node: &str, uid: &str, victim: &str) -> Vec<Bytes> {
    let envelope = |eid: u64, event: serde_json::Value| {
        Bytes::from(
            serde_json::json!({"node": node, "incarnation": 1, "eid": eid, "event": event})
                .to_string(),
        )
    };
    vec![
        envelope(
            1,
            serde_json::json!({"type": "Account", "uid": uid,
                "source": format!("{victim}!~{victim}@127.0.0.1"), "account": "admin"}),
        ),
        envelope(
            2,
            serde_json::json!({"type": "Message", "uid": uid, "msgid": "forged1", "time_ms": 1,
                "verb": "PRIVMSG", "source": format!("{victim}!~{victim}@127.0.0.1"),
                "account": null, "to": "bob", "target": {"Everyone": null}, "text": "forged words"}),
        ),
        envelope(
            3,
            serde_json::json!({"type": "Kill", "uid": uid, "reason": "forged kill"}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outsider_on_the_bus_can_neither_read_nor_forge_events() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let prefix = cluster.prefix.clone();
    // Someone who can reach nats-server but holds no node's credentials.
    let outsider = async_nats::ConnectOptions::new()
        .connect(cluster.nats_url.as_str())
        .await;
    let mut sub = match &outsider {
        Ok(outsider) => {
            let sub = outsider.subscribe(format!("{prefix}.>")).await.ok();
            let _ = outsider.flush().await;
            sub
        }
        Err(_) => None,
    };

    let (mut alice, mut bob) = cluster.alice_and_bob_talk("the secret plan").await;

    let seen = match sub.as_mut() {
        Some(sub) => drain(sub, Duration::from_millis(500)).await,
        None => Vec::new(),
    };
    // Try the forgeries on every subject a node might read them from.
    if let (Ok(outsider), Some(uid)) = (&outsider, uid_of(&seen, "alice")) {
        for subject in [
            format!("{prefix}.ev"),
            format!("{prefix}.ev.n1"),
            format!("{prefix}.ev.n2"),
        ] {
            for payload in forgeries("n2", &uid, "alice") {
                let _ = outsider.publish(subject.clone(), payload).await;
            }
        }
        let _ = outsider.flush().await;
    }

    // Nothing forged took effect: alice is still here and not logged in, bob heard no forgery.
    // Part of the scenario: a negative check needs a moment in which a forgery could have acted
    // (the line below crosses the bus after them, but no signal says "ignored").
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.send("PRIVMSG bob :still here").await;
    bob.expect_next(":alice!~alice@127.0.0.1 PRIVMSG bob :still here")
        .await;
    let whois = bob
        .await_reply("WHOIS alice", |l| common::command_of(l) == "318")
        .await;
    assert!(whois.contains(" 318 "));
    bob.send("WHOIS alice").await;
    let lines = bob.sync().await;
    assert!(
        !lines.iter().any(|l| l.contains(" 330 ")),
        "a forged Account event logged alice in: {lines:?}"
    );
    assert!(alice.sync().await.iter().all(|l| !l.contains("ERROR")));

    // And it read nothing: no private message crossed to the outsider.
    assert!(
        !seen
            .iter()
            .any(|(_, payload)| payload.contains("the secret plan")),
        "an outsider read a private message off the bus: {seen:?}"
    );
    assert!(
        outsider.is_err(),
        "nats-server let a client without credentials in"
    );
}

/// Alice on n1 is as she was: connected, not logged in, still alice; and bob on n2 heard
/// nothing but her real words.
async fn nothing_forged_took_effect(alice: &mut Client, bob: &mut Client, marker: &str) {
    alice.send(&format!("PRIVMSG bob :{marker}")).await;
    bob.expect_next(&format!(":alice!~alice@127.0.0.1 PRIVMSG bob :{marker}"))
        .await;
    bob.send("WHOIS alice").await;
    let lines = bob.sync().await;
    assert!(
        lines.iter().any(|l| l.contains(" 311 bob alice ")),
        "alice is gone or renamed on n2: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(" 330 ")),
        "a forged Account event logged alice in on n2: {lines:?}"
    );
    let own = alice.sync().await;
    assert!(own.iter().all(|l| !l.contains("ERROR")), "{own:?}");
}

/// A node's own credentials (n3's here) let it speak only as n3, and only about n3's users:
/// nats-server refuses its events on n1's subject, and every node drops events in n1's name on
/// n3's subject, events about n1's users, and a "node down" for n1 while n1 is heard from.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cannot_speak_for_another_node_or_its_users() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let prefix = cluster.prefix.clone();
    let watcher = cluster.nats.as_ref().expect("own bus").admin().await;
    let mut events = watcher.subscribe(format!("{prefix}.ev.*")).await.unwrap();
    watcher.flush().await.unwrap();
    let mut alice = cluster.client(0, "alice").await;
    let mut bob = cluster.client(1, "bob").await;
    bob.await_whois("alice").await;
    alice.await_whois("bob").await;
    let seen = drain(&mut events, Duration::from_millis(300)).await;
    let uid = uid_of(&seen, "alice").expect("alice's UserUp crossed the bus");
    let (_, incarnation) = uid.split_once('~').unwrap();
    let incarnation = u64::from_str_radix(incarnation.split('~').next().unwrap(), 16).unwrap();

    let impostor = cluster.nats_as("n3").await.expect("n3's credentials work");
    // On n1's own subject: nats-server refuses n3 (a permissions violation, nothing stored).
    for payload in forgeries("n1", &uid, "alice") {
        let _ = impostor.publish(format!("{prefix}.ev.n1"), payload).await;
    }
    // On its own subject, in n1's name, and as n3 about n1's user, with a nick change and a
    // quit; and n1 declared down: all dropped by the nodes.
    let mut payloads = forgeries("n1", &uid, "alice");
    payloads.truncate(2);
    payloads.extend(forgeries("n3", &uid, "alice").into_iter().take(2));
    for (eid, event) in [
        (
            10,
            serde_json::json!({"type": "Nick", "uid": uid,
            "source": "alice!~alice@127.0.0.1", "nick": "mallory"}),
        ),
        (
            11,
            serde_json::json!({"type": "Quit", "uid": uid,
            "source": "alice!~alice@127.0.0.1", "reason": "forged", "channels": []}),
        ),
        (
            12,
            serde_json::json!({"type": "NodeDown", "node": "n1", "incarnation": incarnation}),
        ),
    ] {
        payloads.push(Bytes::from(
            serde_json::json!({"node": "n3", "incarnation": 1, "eid": eid, "event": event})
                .to_string(),
        ));
    }
    let js = async_nats::jetstream::new(impostor.clone());
    for payload in payloads {
        js.publish(format!("{prefix}.ev.n3"), payload)
            .await
            .expect("n3 may publish on its own subject")
            .await
            .expect("the stream took it");
    }
    // A heartbeat in n1's name on n3's subject keeps nobody alive; one on n1's is refused.
    let _ = impostor
        .publish(
            format!("{prefix}.hb.n3"),
            Bytes::from(format!("n1~{incarnation:x}")),
        )
        .await;
    impostor.flush().await.unwrap();

    // Part of the scenario, as above: time in which a forgery could have acted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    nothing_forged_took_effect(&mut alice, &mut bob, "still alice").await;
    // n1 saw no forgery either: alice is not logged in there and bob is still bob.
    alice.send("WHOIS bob").await;
    let lines = alice.sync().await;
    assert!(
        lines.iter().any(|l| l.contains(" 311 alice bob ")),
        "{lines:?}"
    );
    assert!(
        cluster
            .nats
            .as_ref()
            .unwrap()
            .log()
            .contains("Publish Violation"),
        "nats-server let n3 publish on n1's subject"
    );
}

fn cluster_config_file(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("parley.toml");
    std::fs::write(
        &path,
        format!(
            // Listeners on free ports: a node that gets far enough to listen must not collide
            // with anything else on the machine.
            "[server]\ndata_dir = {:?}\n[listen]\nplain = [\"127.0.0.1:0\"]\ntls = []\n\
             [web]\nlisten = []\n[accounts]\nstore = \"postgres\"\n\
             postgres_url = \"postgres://parley@127.0.0.1/parley\"\n\
             [cluster]\nenabled = true\nnode_name = \"n1\"\n{extra}",
            dir.display().to_string()
        ),
    )
    .unwrap();
    path
}

/// Cluster mode without NATS credentials is refused before anything starts, naming the keys;
/// `insecure = true` is the only way past, and `--print-config` never shows a NATS secret.
#[tokio::test]
async fn parleyd_refuses_a_cluster_without_credentials_and_hides_them() {
    let dir = tempfile::tempdir().unwrap();
    let open = cluster_config_file(dir.path(), "");
    let run = |config: &std::path::Path, envs: &[(&str, &str)], args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
            .arg("--config")
            .arg(config)
            .args(args)
            .envs(envs.iter().copied())
            .output()
            .expect("run parleyd")
    };
    let refused = run(&open, &[], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("cluster.nats_user") && stderr.contains("cluster.insecure"),
        "{stderr}"
    );

    let secret = "pw-that-must-not-show";
    let token = "token-that-must-not-show";
    let with_user = cluster_config_file(dir.path(), "nats_user = \"n1\"\nnodes = [\"n1\"]\n");
    let printed = run(
        &with_user,
        &[("PARLEY_CLUSTER__NATS_PASSWORD", secret)],
        &["--print-config"],
    );
    let stdout = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(stdout.contains("nats_password = \"<hidden>\""), "{stdout}");
    let with_token = cluster_config_file(dir.path(), "nodes = [\"n1\"]\n");
    let printed = run(
        &with_token,
        &[("PARLEY_CLUSTER__NATS_TOKEN", token)],
        &["--print-config"],
    );
    assert!(printed.status.success());
    assert!(!String::from_utf8_lossy(&printed.stdout).contains(token));
}

/// A real node logs in with the password from its environment and never logs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_logs_in_to_the_bus_without_logging_its_password() {
    let Some(cluster) = Cluster::start(1, |_, _| {}).await else {
        return;
    };
    let node = cluster.spawn_binary("n2", &[]).await;
    let mut bob = node.client("bob").await;
    let mut alice = cluster.client(0, "alice").await;
    alice.await_whois("bob").await;
    alice.send("PRIVMSG bob :hi").await;
    bob.expect_next(":alice!~alice@127.0.0.1 PRIVMSG bob :hi")
        .await;
    let log = node.log();
    assert!(log.contains("joined the cluster"), "{log}");
    assert!(
        !log.contains(&node_password("n2")),
        "the NATS password is in the log:\n{log}"
    );
}

/// The salt and iterations a node answers SCRAM for `account` with (its nonce differs each time),
/// asked by an unregistered client calling itself `nick` (a nick no other connection holds: an
/// unregistered client's nick is taken cluster-wide, and a 433 would stop the probe).
async fn scram_salt(client: &mut Client, nick: &str, account: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    client.send("CAP LS 302").await;
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    client.send("CAP REQ :sasl").await;
    client
        .expect(|l| l.contains(" CAP ") && l.contains(" ACK "))
        .await;
    client.send("AUTHENTICATE SCRAM-SHA-256").await;
    client.expect(|l| l == "AUTHENTICATE +").await;
    let exchange = parley_proto::scram::ClientExchange::new(account, "fixednonce").unwrap();
    client
        .send(&format!(
            "AUTHENTICATE {}",
            b64.encode(exchange.client_first())
        ))
        .await;
    let line = client.expect(|l| l.starts_with("AUTHENTICATE ")).await;
    let first = String::from_utf8(b64.decode(&line["AUTHENTICATE ".len()..]).unwrap()).unwrap();
    first[first.find(",s=").expect("a salt")..].to_owned()
}

/// The secret behind SCRAM's fake salts is shared through PostgreSQL, not the bus: the nick
/// bucket holds no copy anyone on the bus could read, yet both nodes (each with a secret of its
/// own in its data directory) answer an unknown name with the same salt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scram_secret_stays_off_the_bus() {
    let Some(cluster) = Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let admin = cluster.nats.as_ref().expect("own bus").admin().await;
    let bucket = async_nats::jetstream::new(admin)
        .get_key_value(format!("{}_nicks", cluster.prefix))
        .await
        .expect("the nick bucket");
    // Not compared with assert_eq!: a failure would print the secret.
    let on_bus = bucket
        .get("cfg.scram-secret")
        .await
        .expect("read the bucket");
    assert!(on_bus.is_none(), "the SCRAM secret is on the bus");
    let mut on_n1 = cluster.nodes[0].connect().await;
    let mut on_n2 = cluster.nodes[1].connect().await;
    assert_eq!(
        scram_salt(&mut on_n1, "probe1", "nobody-here").await,
        scram_salt(&mut on_n2, "probe2", "nobody-here").await,
        "the nodes answer an unknown name with different salts"
    );
}

/// The nodes reach nats-server over TLS, trusting only the configured CA and presenting a
/// client certificate; a client with the right password but no certificate is turned away.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_reach_the_bus_over_tls_with_client_certificates() {
    let Some(cluster) = Cluster::start_tls(2).await else {
        return;
    };
    let _alice_and_bob = cluster.alice_and_bob_talk("over tls").await;

    let tls = cluster.tls.as_ref().expect("a TLS cluster");
    let without_certificate = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::with_user_and_password("n3".into(), node_password("n3"))
            .add_root_certificates(tls.ca.clone())
            .require_tls(true)
            .connect(cluster.nats_url.as_str()),
    )
    .await;
    assert!(
        !matches!(without_certificate, Ok(Ok(_))),
        "nats-server let a client without a certificate in"
    );
}

/// A stream made by an older parleyd (every event on `<prefix>.ev`) is widened at start to the
/// per-node subjects, with the documented permissions, and the nodes then talk as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_older_event_stream_is_moved_to_per_node_subjects() {
    use async_nats::jetstream::stream;
    let Some(mut cluster) = Cluster::start(0, |_, _| {}).await else {
        return;
    };
    let js = async_nats::jetstream::new(cluster.nats.as_ref().expect("own bus").admin().await);
    let name = format!("{}_EVENTS", cluster.prefix);
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{}.ev", cluster.prefix)],
        storage: stream::StorageType::File,
        max_age: Duration::from_secs(3600),
        max_bytes: 1 << 30,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("the old stream");
    cluster.add_node().await;
    cluster.add_node().await;
    let _alice_and_bob = cluster.alice_and_bob_talk("after the upgrade").await;
    let info = js
        .get_stream(&name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(info.subjects, vec![format!("{}.ev.*", cluster.prefix)]);
}

/// A SCRAM secret an older version left in the nick bucket (readable by anyone on its open bus)
/// is removed when a node of this version starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scram_secret_left_on_the_bus_is_removed() {
    use async_nats::jetstream::stream;
    let Some(mut cluster) = Cluster::start(0, |_, _| {}).await else {
        return;
    };
    let js = async_nats::jetstream::new(cluster.nats.as_ref().expect("own bus").admin().await);
    let bucket = format!("{}_nicks", cluster.prefix);
    // The bucket as a node makes it (see Cluster::connect).
    js.create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("the old bucket");
    let kv = js.get_key_value(&bucket).await.expect("the bucket");
    kv.put("cfg.scram-secret", Bytes::from(vec![7u8; 32]))
        .await
        .expect("the old secret");
    cluster.add_node().await;
    let left = kv.get("cfg.scram-secret").await.expect("read the bucket");
    assert!(left.is_none(), "the old SCRAM secret is still on the bus");
}

/// The nodes log in with nkeys (a seed file each, listed in nats-server as `{ nkey: U... }`
/// with the same per-node permissions) and talk across nodes; a key nats-server does not list
/// gets nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_log_in_to_the_bus_with_nkeys() {
    let Some(cluster) = Cluster::start_nkeys(2).await else {
        return;
    };
    let _alice_and_bob = cluster.alice_and_bob_talk("signed in by nkey").await;

    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new()
            .nkey(stranger)
            .connect(cluster.nats_url.as_str()),
    )
    .await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "nats-server let an unlisted nkey in"
    );
}

/// The several-machines recipe of docs/cluster.md: nkeys and TLS with client certificates at
/// once, nats-server started with the documented config and `tls` block. The nodes talk; a
/// listed nkey without a client certificate, and a certificate without a listed nkey, are both
/// turned away.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_log_in_with_nkeys_over_tls_as_the_recipe_says() {
    let Some(cluster) = Cluster::start_nkeys_tls(2).await else {
        return;
    };
    let _alice_and_bob = cluster.alice_and_bob_talk("nkey over tls").await;

    let tls = cluster.tls.as_ref().expect("a TLS cluster");
    let nkeys = cluster.nkeys.as_ref().expect("an nkey cluster");
    let seed = std::fs::read_to_string(nkeys.seed_file("n3")).unwrap();
    let without_certificate = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new()
            .nkey(seed.trim().to_owned())
            .add_root_certificates(tls.ca.clone())
            .require_tls(true)
            .connect(cluster.nats_url.as_str()),
    )
    .await;
    assert!(
        !matches!(without_certificate, Ok(Ok(_))),
        "nats-server let a node's nkey in without a client certificate"
    );
    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    let without_nkey = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new()
            .nkey(stranger)
            .add_root_certificates(tls.ca.clone())
            .add_client_certificate(tls.client_cert.clone(), tls.client_key.clone())
            .connect(cluster.nats_url.as_str()),
    )
    .await;
    assert!(
        !matches!(without_nkey, Ok(Ok(_))),
        "nats-server let a client certificate in without a listed nkey"
    );
}

/// What parleyd prints when run with `config` and `envs`, and whether it exited in time (20 s)
/// with a failure.
async fn parleyd_fails(config: &std::path::Path, envs: &[(&str, &str)], args: &[&str]) -> String {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(envs.iter().copied())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("parleyd gave up within 20 s")
        .expect("run parleyd");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "parleyd started: {printed}");
    printed
}

/// A node whose seed nats-server does not know is refused at start, with an error that says its
/// login was refused and names the keys to check; a file that holds no seed is refused before
/// the bus is tried, naming the key and the path. Neither error shows the seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_a_wrong_or_malformed_nkey_seed_is_refused_clearly() {
    let Some(cluster) = Cluster::start_nkeys(0).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("n1.nk");
    let wrong = nkeys::KeyPair::new_user().seed().unwrap();
    write_secret(&seed_file, &wrong);
    let config = cluster_config_file(
        dir.path(),
        &format!(
            "nats_url = {:?}\nprefix = {:?}\nnodes = [\"n1\", \"n2\"]\nnats_nkey_seed_file = {:?}\n",
            cluster.nats_url,
            cluster.prefix,
            seed_file.display().to_string()
        ),
    );
    let printed = parleyd_fails(&config, &[], &[]).await;
    assert!(
        printed.contains("refused this node's login") && printed.contains("nats_nkey_seed_file"),
        "{printed}"
    );
    assert!(!printed.contains(&wrong), "the seed was printed: {printed}");

    write_secret(&seed_file, "SUnot-a-seed-at-all");
    let printed = parleyd_fails(&config, &[], &[]).await;
    assert!(
        printed.contains("cluster.nats_nkey_seed_file")
            && printed.contains(&seed_file.display().to_string())
            && printed.contains("does not hold a NATS user nkey seed"),
        "{printed}"
    );
    assert!(
        !printed.contains("SUnot-a-seed"),
        "the seed was printed: {printed}"
    );
}

/// The nkey and .creds keys count as a login, only one login may be set (the error names the
/// keys), a seed in the environment is hidden by --print-config, and a missing file is named.
#[tokio::test]
async fn nkey_and_creds_settings_are_checked_and_the_seed_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let seed_file = dir.path().join("n1.nk");
    let seed = nkeys::KeyPair::new_user().seed().unwrap();
    write_secret(&seed_file, &seed);
    let run = |extra: &str, envs: &[(&str, &str)], args: &[&str]| {
        let config = cluster_config_file(dir.path(), &format!("nodes = [\"n1\"]\n{extra}"));
        std::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .envs(envs.iter().copied())
            .output()
            .expect("run parleyd")
    };
    let seed_key = format!(
        "nats_nkey_seed_file = {:?}\n",
        seed_file.display().to_string()
    );

    let ok = run(&seed_key, &[], &["--print-config"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let two = run(
        &format!("nats_user = \"n1\"\n{seed_key}"),
        &[("PARLEY_CLUSTER__NATS_PASSWORD", "pw")],
        &["--print-config"],
    );
    let stderr = String::from_utf8_lossy(&two.stderr);
    assert!(!two.status.success(), "two logins were accepted");
    assert!(
        stderr.contains("cluster.nats_user") && stderr.contains("cluster.nats_nkey_seed_file"),
        "{stderr}"
    );

    let printed = run(
        "",
        &[("PARLEY_CLUSTER__NATS_NKEY_SEED", &seed)],
        &["--print-config"],
    );
    let stdout = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    assert!(!stdout.contains(&seed), "--print-config shows the seed");
    assert!(stdout.contains("nats_nkey_seed = \"<hidden>\""), "{stdout}");

    let missing = dir.path().join("nowhere.creds");
    let gone = run(
        &format!("nats_creds_file = {:?}\n", missing.display().to_string()),
        &[],
        &["--print-config"],
    );
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(!gone.status.success(), "a missing .creds file was accepted");
    assert!(
        stderr.contains("cluster.nats_creds_file") && stderr.contains("nowhere.creds"),
        "{stderr}"
    );
}

/// nats-server in operator mode (accounts and users as JWTs, as `nsc` manages them): each node
/// logs in with its own `.creds` file and the nodes talk across; a file that is no `.creds`
/// file stops a node at start, naming the key and the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_log_in_to_the_bus_with_creds_files() {
    let Some(cluster) = Cluster::start_creds(2).await else {
        return;
    };
    let _alice_and_bob = cluster.alice_and_bob_talk("signed in by creds").await;

    let outsider = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::ConnectOptions::new().connect(cluster.nats_url.as_str()),
    )
    .await;
    assert!(
        !matches!(outsider, Ok(Ok(_))),
        "nats-server in operator mode let a client without credentials in"
    );

    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("n1.creds");
    write_secret(&creds, "-----BEGIN NATS USER JWT-----\nnot a jwt\n");
    let config = cluster_config_file(
        dir.path(),
        &format!(
            "nats_url = {:?}\nprefix = {:?}\nnodes = [\"n1\"]\nnats_creds_file = {:?}\n",
            cluster.nats_url,
            cluster.prefix,
            creds.display().to_string()
        ),
    );
    let printed = parleyd_fails(&config, &[], &[]).await;
    assert!(
        printed.contains("cluster.nats_creds_file")
            && printed.contains(&creds.display().to_string())
            && printed.contains("is not a NATS .creds file"),
        "{printed}"
    );
}
