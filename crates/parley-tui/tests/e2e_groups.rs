//! Issue 28 item 4: three `parley --plain` clients (alice, bob, carol) in a channel through a
//! real parleyd (SQLite in a temp data dir, its logs captured at TRACE). Alice types `/e2e on`:
//! her text reaches bob and carol, and is nowhere on the server (data dir files, logs,
//! CHATHISTORY). Carol leaves; the next message is shared with bob only: carol, back in the
//! channel and handed that ciphertext, has no key for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;
use tokio::time::Instant;

const SECRET: &str = "the group secret is 5512 amber-heron";
const LATER: &str = "after carol left: 8830 slate-finch";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_channel_leaves_out_the_member_who_left() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let data = tempfile::tempdir().expect("data dir");
    let configs = tempfile::tempdir().expect("config dirs");
    let mut config = parley_server::Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.listen.tls = Vec::new();
    config.web.listen = Vec::new();
    config.server.data_dir = data.path().to_path_buf();
    config.flood.enabled = false;
    let store = parley_server::store::open_default(&config).expect("store");
    let accounts = parley_server::accounts::Accounts::new(store, &config);
    for name in ["alice", "bob", "carol"] {
        accounts
            .add_account(name, &format!("{name}-password"))
            .expect("account");
    }
    let server = parley_server::start(config).await.expect("server starts");
    let port = server.plain_addrs()[0].port();

    let published = "E2E: this device's keys are published";
    let mut alice = Plain::start(port, "alice", &configs.path().join("alice"));
    let mut bob = Plain::start(port, "bob", &configs.path().join("bob"));
    let mut carol = Plain::start(port, "carol", &configs.path().join("carol"));
    for (who, client) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        client.wait_for(who, published).await;
    }
    alice.type_line("/join #chan");
    alice.wait_for("alice in #chan", "[#chan]").await;
    bob.type_line("/join #chan");
    alice.wait_for("bob joins", "bob joined #chan").await;
    carol.type_line("/join #chan");
    alice.wait_for("carol joins", "carol joined #chan").await;

    alice.type_line("/e2e on");
    alice
        .wait_for("alice turns E2E on", "E2E is on for #chan")
        .await;
    alice.type_line(SECRET);
    let line = format!("[#chan] <alice> {SECRET}");
    bob.wait_for("bob reads it", &line).await;
    carol.wait_for("carol reads it", &line).await;
    alice.wait_for("alice's echo reads back", &line).await;

    carol.type_line("/part #chan");
    alice.wait_for("carol leaves", "carol left #chan").await;
    alice.type_line(LATER);
    bob.wait_for(
        "bob reads the next one",
        &format!("[#chan] <alice> {LATER}"),
    )
    .await;

    // Another IRC client of bob's account: history holds the placeholder and ciphertext only.
    let mut raw = Raw::login(port, "bobraw", "bob").await;
    raw.send("JOIN #chan").await;
    raw.until(|l| l.contains(" 366 ")).await;
    raw.send("CHATHISTORY LATEST #chan * 50").await;
    let history = raw
        .until(|l| l.starts_with("BATCH -") || l.contains(" BATCH -"))
        .await;
    let encrypted: Vec<&String> = history
        .iter()
        .filter(|l| l.contains("+parley.chat/e2e-group=v1:"))
        .collect();
    assert_eq!(encrypted.len(), 2, "{history:#?}");
    assert!(encrypted
        .iter()
        .all(|l| l.ends_with(":[encrypted message]")));
    assert!(
        !history
            .iter()
            .any(|l| l.contains(SECRET) || l.contains(LATER)),
        "{history:#?}"
    );
    let value = encrypted[1]
        .split(' ')
        .next()
        .and_then(|tags| {
            tags.trim_start_matches('@')
                .split(';')
                .find(|t| t.starts_with("+parley.chat/e2e-group="))
        })
        .expect("the tag")
        .to_string();

    // Carol comes back: her client loads the channel's history, where the message sent after
    // she left has no key on her device; the same ciphertext sent to her again neither.
    carol.type_line("/join #chan");
    alice.wait_for("carol is back", "carol joined #chan").await;
    const NO_KEY: &str = "[encrypted message: no key for it on this device]";
    carol
        .wait_for(
            "carol cannot read it in history",
            &format!("<alice> {NO_KEY}"),
        )
        .await;
    raw.send(&format!("@{value} PRIVMSG #chan :[encrypted message]"))
        .await;
    let deadline = Instant::now() + TIMEOUT;
    while carol.output().matches(NO_KEY).count() < 2 {
        assert!(Instant::now() < deadline, "{}", carol.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !carol.output().contains(LATER),
        "{}\n---alice---\n{}",
        carol.output(),
        alice.output()
    );

    // Nothing on the server holds the text: database, its -wal, any other file; the logs.
    for secret in [SECRET, LATER] {
        let leaked = files_containing(data.path(), secret.as_bytes());
        assert!(
            leaked.is_empty(),
            "plaintext on the server's disk: {leaked:?}"
        );
    }
    assert!(
        !files_containing(data.path(), b"+parley.chat/e2e-group=v1:").is_empty(),
        "the stored lines are in the data dir (so the grep looks in the right place)"
    );
    let logged = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(!logged.is_empty(), "the server's logs were captured");
    assert!(!logged.contains(SECRET) && !logged.contains(LATER));
    for client in [alice, bob, carol] {
        let _ = client.quit().await;
    }
    server.shutdown();
}
