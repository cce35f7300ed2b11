//! Issue 28's done-when test: two `parley --plain` clients (alice, bob) exchange an end-to-end
//! encrypted private message through a real parleyd (SQLite in a temp data dir, its logs
//! captured at TRACE). The text must show on bob's screen (and in alice's echo) and nowhere on
//! the server: not in any file of the data dir (database, -wal, audit), not in the logs, not in
//! CHATHISTORY (a raw socket logged in as bob, which sees only the placeholder). A third
//! account's client handed the ciphertext cannot read it, and bob's replaced device makes
//! alice's client print the key-change warning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const SECRET: &str = "the vault code is 7391 purple-otter";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_dm_is_readable_only_by_its_recipient() {
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
    let export_config = config.clone();
    let server = parley_server::start(config).await.expect("server starts");
    let port = server.plain_addrs()[0].port();

    let published = "E2E: this device's keys are published";
    let alice_dir = configs.path().join("alice");
    let bob_dir = configs.path().join("bob");
    let mut alice = Plain::start(port, "alice", &alice_dir);
    let bob = Plain::start(port, "bob", &bob_dir);
    alice.wait_for("alice's keys", published).await;
    bob.wait_for("bob's keys", published).await;

    alice.type_line(&format!("/msg bob {SECRET}"));
    bob.wait_for("bob reads it", &format!("<alice> {SECRET}"))
        .await;
    alice
        .wait_for("alice's echo shows her text", &format!("<alice> {SECRET}"))
        .await;
    alice
        .wait_for(
            "the conversation says so",
            "end-to-end encrypted, not verified",
        )
        .await;

    // Another IRC client of bob's account: history holds the placeholder and ciphertext only.
    let mut raw = Raw::login(port, "bobraw", "bob").await;
    raw.send("CHATHISTORY LATEST alice * 50").await;
    let history = raw
        .until(|l| l.starts_with("BATCH -") || l.contains(" BATCH -"))
        .await;
    let tagged = history
        .iter()
        .find(|l| l.contains("+parley.chat/e2e=v1:"))
        .unwrap_or_else(|| panic!("the encrypted line in history: {history:#?}"))
        .clone();
    assert!(tagged.ends_with(":[encrypted message]"), "{tagged}");
    assert!(!history.iter().any(|l| l.contains(SECRET)), "{history:#?}");

    // A third account's Parley client, handed the same ciphertext, cannot read it.
    let carol = Plain::start(port, "carol", &configs.path().join("carol"));
    carol.wait_for("carol's keys", published).await;
    let value = tagged
        .split(' ')
        .next()
        .and_then(|tags| {
            tags.trim_start_matches('@')
                .split(';')
                .find(|t| t.starts_with("+parley.chat/e2e="))
        })
        .expect("the tag")
        .to_string();
    raw.send(&format!("@{value} PRIVMSG carol :[encrypted message]"))
        .await;
    carol
        .wait_for(
            "carol gets the line",
            // (multiclient may make the raw session another session of `bob`)
            "> [encrypted message: cannot decrypt on this device]",
        )
        .await;
    assert!(!carol.output().contains(SECRET), "{}", carol.output());

    // Nothing on the server holds the text: database (with its audit trail), its -wal, any
    // other file; the history export; the logs (the audit log target's lines too).
    let leaked = files_containing(data.path(), SECRET.as_bytes());
    assert!(
        leaked.is_empty(),
        "plaintext on the server's disk: {leaked:?}"
    );
    assert!(
        !files_containing(data.path(), b"[encrypted message]").is_empty(),
        "the stored line is in the data dir (so the grep looks in the right place)"
    );
    // `parleyd history export` of the conversation (text and JSON): the placeholder only.
    for format in [
        parley_server::inspect::ExportFormat::Text,
        parley_server::inspect::ExportFormat::Json,
    ] {
        let mut exported = Vec::new();
        parley_server::inspect::export(&export_config, "alice,bob", format, &mut exported)
            .expect("history export");
        let exported = String::from_utf8_lossy(&exported);
        assert!(exported.contains("[encrypted message]"), "{exported}");
        assert!(
            !exported.contains(SECRET),
            "plaintext in the history export"
        );
    }
    let logged = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(!logged.is_empty(), "the server's logs were captured");
    assert!(!logged.contains(SECRET), "plaintext in the server's logs");

    // Bob's device is replaced: the device file goes, bob logs in again and writes to alice.
    let bob_output = bob.quit().await;
    assert!(bob_output.contains(SECRET));
    let device = bob_dir
        .join("e2e")
        .join(format!("127.0.0.1-{port}"))
        .join("bob.device");
    std::fs::remove_file(&device).expect("bob's device file was there");
    let mut bob = Plain::start(port, "bob", &bob_dir);
    bob.wait_for("bob's new keys", published).await;
    bob.type_line("/msg alice it is me, new phone");
    alice
        .wait_for("alice reads the new device", "it is me, new phone")
        .await;
    alice
        .wait_for("alice is warned", "*** WARNING: bob's keys changed")
        .await;
    assert!(!alice.output().contains("bob's keys are verified"));
    let _ = alice.quit().await;
    let _ = bob.quit().await;
    server.shutdown();
}
