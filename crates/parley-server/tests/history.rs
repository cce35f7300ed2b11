//! History against the real server and a real SQLite file: message tags, echo, CHATHISTORY and its
//! errors, replay on join, offline delivery, restart, retention, the audit trail, export, and the
//! crash test (kill -9 under load, then every message anyone received is in history).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    free_port, spawn_parleyd, wait_listening, with_command, write_binary_config, Client, TestServer,
};
use parley_server::inspect::{self, ExportFormat};

/// A registered guest that negotiated `caps` first.
async fn with_caps(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut c = server.connect().await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

/// A logged-in client: registers the account, holding registration with CAP until it is done.
async fn account(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut c = server.connect().await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send(&format!("REGISTER * * {nick}-password")).await;
    c.expect(|l| l.contains("REGISTER SUCCESS")).await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

const TAGGING: &str = "server-time message-tags echo-message batch draft/chathistory";

#[tokio::test]
async fn messages_carry_time_and_msgid_and_echo_to_the_sender() {
    let server = TestServer::start().await;
    let mut alice = with_caps(&server, "alice", TAGGING).await;
    let mut bob = with_caps(&server, "bob", "server-time message-tags").await;
    let mut carl = server.client("carl").await;
    alice.sync().await;
    alice.send("PRIVMSG #lobby :hello tagged world").await;
    let echo = alice
        .expect(|l| l.contains("PRIVMSG #lobby :hello tagged world"))
        .await;
    let got = bob
        .expect(|l| l.contains("PRIVMSG #lobby :hello tagged world"))
        .await;
    let msgid = tag(&got, "msgid").expect("msgid tag");
    assert_eq!(tag(&echo, "msgid"), Some(msgid), "{echo} / {got}");
    let time = tag(&got, "time").expect("time tag");
    assert!(time.ends_with('Z') && time.len() == 24, "{time}");
    carl.expect(|l| l == ":alice!~alice@127.0.0.1 PRIVMSG #lobby :hello tagged world")
        .await;
    // Private messages too, and the untagged sender gets no echo.
    carl.send("PRIVMSG bob :psst").await;
    let private = bob.expect(|l| l.contains("PRIVMSG bob :psst")).await;
    assert!(tag(&private, "msgid").is_some(), "{private}");
    let carl_sees = carl.sync().await;
    assert!(carl_sees.is_empty(), "{carl_sees:?}");
}

#[tokio::test]
async fn chathistory_subcommands_on_a_channel() {
    let server = TestServer::start_with(|c| c.history.max_request = 5).await;
    let mut alice = with_caps(&server, "alice", TAGGING).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        alice.send(&format!("PRIVMSG #lobby :line {i}")).await;
        let echo = alice.expect(|l| l.contains(&format!(":line {i}"))).await;
        ids.push(tag(&echo, "msgid").expect("msgid").to_string());
    }
    let texts = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.contains(" PRIVMSG "))
            .map(|l| l.rsplit(" :").next().unwrap_or("").to_string())
            .collect()
    };

    alice.send("CHATHISTORY LATEST #lobby * 3").await;
    let latest = alice.sync().await;
    assert!(
        latest[0].contains(" BATCH +") && latest[0].ends_with("chathistory #lobby"),
        "{latest:?}"
    );
    assert!(
        latest.last().expect("end").contains(" BATCH -"),
        "{latest:?}"
    );
    assert_eq!(texts(&latest), ["line 5", "line 6", "line 7"]);
    let batch_id = latest[0]
        .split(" BATCH +")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("id");
    assert!(
        latest[1].contains(&format!("batch={batch_id}")),
        "{latest:?}"
    );

    alice.send("CHATHISTORY LATEST #lobby * 50").await;
    assert_eq!(texts(&alice.sync().await).len(), 5, "capped at max_request");

    alice
        .send(&format!("CHATHISTORY BEFORE #lobby msgid={} 2", ids[4]))
        .await;
    assert_eq!(texts(&alice.sync().await), ["line 2", "line 3"]);
    alice
        .send(&format!("CHATHISTORY AFTER #lobby msgid={} 2", ids[4]))
        .await;
    assert_eq!(texts(&alice.sync().await), ["line 5", "line 6"]);
    alice
        .send(&format!("CHATHISTORY AROUND #lobby msgid={} 3", ids[4]))
        .await;
    assert_eq!(texts(&alice.sync().await), ["line 3", "line 4", "line 5"]);
    alice
        .send(&format!(
            "CHATHISTORY BETWEEN #lobby msgid={} msgid={} 5",
            ids[1], ids[5]
        ))
        .await;
    assert_eq!(texts(&alice.sync().await), ["line 2", "line 3", "line 4"]);
    alice
        .send(&format!(
            "CHATHISTORY BETWEEN #lobby msgid={} msgid={} 2",
            ids[6], ids[1]
        ))
        .await;
    assert_eq!(
        texts(&alice.sync().await),
        ["line 4", "line 5"],
        "counted back from the later end"
    );
    alice
        .send(&format!("CHATHISTORY LATEST #lobby msgid={} 5", ids[5]))
        .await;
    assert_eq!(texts(&alice.sync().await), ["line 6", "line 7"]);
    alice
        .send("CHATHISTORY AFTER #lobby timestamp=2000-01-01T00:00:00.000Z 2")
        .await;
    assert_eq!(texts(&alice.sync().await), ["line 0", "line 1"]);
    alice
        .send("CHATHISTORY BEFORE #lobby timestamp=2000-01-01T00:00:00.000Z 2")
        .await;
    assert!(texts(&alice.sync().await).is_empty());
}

#[tokio::test]
async fn chathistory_errors() {
    let server = TestServer::start().await;
    let mut c = with_caps(&server, "asker", TAGGING).await;
    let mut other = server.client("other").await;
    other.send("JOIN #secret").await;
    other.sync().await;
    c.sync().await;
    let cases = [
        ("CHATHISTORY", "FAIL CHATHISTORY NEED_MORE_PARAMS * :Missing subcommand"),
        ("CHATHISTORY FETCH #lobby * 5", "FAIL CHATHISTORY UNKNOWN_COMMAND FETCH :Unknown CHATHISTORY subcommand"),
        ("CHATHISTORY LATEST #lobby *", "FAIL CHATHISTORY NEED_MORE_PARAMS LATEST :Missing parameters"),
        ("CHATHISTORY LATEST #lobby * many", "FAIL CHATHISTORY INVALID_PARAMS LATEST many :Invalid limit"),
        ("CHATHISTORY BEFORE #lobby yesterday 5", "FAIL CHATHISTORY INVALID_PARAMS BEFORE #lobby :Invalid message reference; use timestamp=... or msgid=..."),
        ("CHATHISTORY LATEST #secret * 5", "FAIL CHATHISTORY INVALID_TARGET LATEST #secret :You cannot see the history of that target"),
        ("CHATHISTORY LATEST other * 5", "FAIL CHATHISTORY INVALID_TARGET LATEST other :You cannot see the history of that target"),
    ];
    for (command, expected) in cases {
        c.send(command).await;
        assert_eq!(
            c.recv().await,
            format!(":parley.local {expected}"),
            "{command}"
        );
    }
    // An unknown msgid is not an error, just nothing.
    c.send("CHATHISTORY BEFORE #lobby msgid=nope 5").await;
    let lines = c.sync().await;
    assert!(lines.iter().all(|l| !l.contains("PRIVMSG")), "{lines:?}");
}

#[tokio::test]
async fn history_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = || {
        let mut config = common::test_config(&dir);
        config.server.default_channel = "#keep".into();
        config
    };
    let first = parley_server::start(config()).await.expect("start");
    let mut c = Client::connect(first.plain_addrs()[0]).await;
    c.register("writer").await;
    for i in 0..3 {
        c.send(&format!("PRIVMSG #keep :kept {i}")).await;
    }
    c.sync().await;
    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    drop(c);

    let second = parley_server::start(config()).await.expect("restart");
    let mut reader = Client::connect(second.plain_addrs()[0]).await;
    reader.nick = "reader".into();
    reader.send("CAP LS 302").await;
    reader.send("CAP REQ :draft/chathistory batch").await;
    reader.send("NICK reader").await;
    reader.send("USER reader 0 * :r").await;
    reader.send("CAP END").await;
    reader.expect_numeric("366").await;
    reader.send("CHATHISTORY LATEST #keep * 10").await;
    let lines = reader.sync().await;
    let batch = with_command(&lines, "BATCH")
        .first()
        .and_then(|l| l.split(' ').nth(2))
        .and_then(|reference| reference.strip_prefix('+'))
        .map(|reference| format!("@batch={reference} "))
        .unwrap_or_else(|| panic!("no BATCH opened: {lines:?}"));
    let kept = with_command(&lines, "PRIVMSG");
    assert_eq!(kept.len(), 3, "{lines:?}");
    for (i, line) in kept.iter().enumerate() {
        assert!(line.starts_with(&batch), "not in the batch: {lines:?}");
        assert!(
            line.ends_with(&format!(" PRIVMSG #keep :kept {i}")),
            "{lines:?}"
        );
    }
    second.shutdown();
}

#[tokio::test]
async fn replay_on_join_for_clients_without_chathistory() {
    let server = TestServer::start_with(|c| c.history.replay_on_join = 2).await;
    let mut talker = server.client("talker").await;
    talker.send("JOIN #room").await;
    for i in 0..3 {
        talker.send(&format!("PRIVMSG #room :said {i}")).await;
    }
    talker.sync().await;
    let mut plain = server.client("latecomer").await;
    plain.send("JOIN #room").await;
    let lines = plain.sync().await;
    let replayed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("PRIVMSG #room"))
        .collect();
    assert_eq!(replayed.len(), 2, "{lines:?}");
    assert!(
        replayed[0].contains(":[") && replayed[0].contains(" UTC] said 1"),
        "{lines:?}"
    );
    let names_end = lines
        .iter()
        .position(|l| l.contains(" 366 "))
        .expect("names");
    let first_replay = lines
        .iter()
        .position(|l| l.contains("said 1"))
        .expect("replay");
    assert!(names_end < first_replay, "replay follows NAMES");

    let mut timed = with_caps(&server, "timed", "server-time").await;
    timed.send("JOIN #room").await;
    let lines = timed.sync().await;
    let replayed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("PRIVMSG #room"))
        .collect();
    assert_eq!(replayed.len(), 2, "{lines:?}");
    assert!(
        replayed[1].starts_with("@time=") && replayed[1].ends_with(":said 2"),
        "{lines:?}"
    );

    let mut modern = with_caps(&server, "modern", "draft/chathistory").await;
    modern.send("JOIN #room").await;
    let lines = modern.sync().await;
    assert!(
        !lines.iter().any(|l| l.contains("PRIVMSG")),
        "chathistory clients fetch themselves: {lines:?}"
    );
}

#[tokio::test]
async fn private_history_and_offline_delivery() {
    let server = TestServer::start().await;
    let mut alice = account(&server, "alice", TAGGING).await;
    let mut bob = account(&server, "bob", TAGGING).await;
    alice.send("PRIVMSG bob :hi bob").await;
    alice.sync().await;
    bob.expect(|l| l.contains("PRIVMSG bob :hi bob")).await;
    bob.send("PRIVMSG alice :hi alice").await;
    bob.sync().await;
    alice
        .expect(|l| l.contains("PRIVMSG alice :hi alice"))
        .await;
    alice.send("CHATHISTORY LATEST bob * 10").await;
    let lines = alice.sync().await;
    let texts: Vec<&String> = lines.iter().filter(|l| l.contains(" PRIVMSG ")).collect();
    assert_eq!(texts.len(), 2, "{lines:?}");
    assert!(
        texts[0].ends_with(":hi bob") && texts[1].ends_with(":hi alice"),
        "{lines:?}"
    );

    alice
        .send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
        .await;
    let lines = alice.sync().await;
    assert!(
        lines.iter().any(|l| l.contains("CHATHISTORY TARGETS bob ")),
        "{lines:?}"
    );

    // Bob leaves; what alice sends meanwhile waits for him.
    bob.send("QUIT").await;
    bob.expect_closed().await;
    alice.send("PRIVMSG bob :while you were out").await;
    assert_eq!(
        alice.expect(|l| l.contains("NOTICE")).await,
        ":parley.local NOTICE alice :bob is not online; they will get your message when they next log in"
    );
    alice.send("PRIVMSG nobody_here :x").await;
    alice.expect_numeric("401").await;

    let mut back = Client::connect(server.addr).await;
    let welcome = back.login_sasl("bob", "bob", "bob-password").await;
    let all = welcome.join("\n");
    assert!(
        all.contains("NOTICE bob :You have 1 private message received while you were away:"),
        "{all}"
    );
    assert!(
        all.contains(":alice!~alice@127.0.0.1 PRIVMSG bob :[")
            && all.contains("UTC] while you were out"),
        "{all}"
    );
    // Delivered once: the next login has nothing waiting.
    back.send("QUIT").await;
    back.expect_closed().await;
    let mut again = Client::connect(server.addr).await;
    let welcome = again.login_sasl("bob", "bob", "bob-password").await;
    assert!(
        !welcome.join("\n").contains("while you were away"),
        "{welcome:?}"
    );
}

/// Whether anything waits for an account is kept in memory, read from the database at start:
/// a message left for someone before a restart still reaches them after it, once.
#[tokio::test]
async fn offline_messages_wait_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = parley_server::start(common::test_config(&dir))
        .await
        .expect("start");
    let addr = first.plain_addrs()[0];
    for (nick, password) in [("carol", "carol-password"), ("dan", "dan-password")] {
        let mut c = Client::connect(addr).await;
        c.register(nick).await;
        c.send(&format!("REGISTER * * {password}")).await;
        c.expect(|l| l.contains("REGISTER SUCCESS")).await;
        c.send("QUIT").await;
        c.expect_closed().await;
    }
    let mut carol = Client::connect(addr).await;
    carol.login_sasl("carol", "carol", "carol-password").await;
    carol.send("PRIVMSG dan :see you after the restart").await;
    carol.expect(|l| l.contains("is not online")).await;
    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    drop(carol);

    let second = parley_server::start(common::test_config(&dir))
        .await
        .expect("restart");
    let addr = second.plain_addrs()[0];
    let mut dan = Client::connect(addr).await;
    let welcome = dan
        .login_sasl("dan", "dan", "dan-password")
        .await
        .join("\n");
    assert!(
        welcome.contains("UTC] see you after the restart"),
        "{welcome}"
    );
    // And a message left after the restart is found too, by the memory the writer keeps.
    dan.send("QUIT").await;
    dan.expect_closed().await;
    let mut carol = Client::connect(addr).await;
    carol.login_sasl("carol", "carol", "carol-password").await;
    carol.send("PRIVMSG dan :and once more").await;
    carol.expect(|l| l.contains("is not online")).await;
    carol.sync().await;
    let mut dan = Client::connect(addr).await;
    let welcome = dan
        .login_sasl("dan", "dan", "dan-password")
        .await
        .join("\n");
    assert!(
        welcome.contains("UTC] and once more") && !welcome.contains("after the restart"),
        "{welcome}"
    );
    second.shutdown();
}

#[tokio::test]
async fn retention_prunes_old_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = parley_server::start(common::test_config(&dir))
        .await
        .expect("start");
    let mut c = Client::connect(first.plain_addrs()[0]).await;
    c.register("chatty").await;
    for i in 0..6 {
        c.send(&format!("PRIVMSG #lobby :msg {i}")).await;
    }
    c.sync().await;
    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    drop(c);

    let mut config = common::test_config(&dir);
    config.history.max_rows_per_target = 3;
    let second = parley_server::start(config.clone()).await.expect("restart");
    // Pruning runs at start; give it a moment, bounded.
    let mut kept = usize::MAX;
    for _ in 0..50 {
        let mut out = Vec::new();
        kept = inspect::export(&config, "#lobby", ExportFormat::Text, &mut out).expect("export");
        if kept == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kept, 3);
    let mut out = Vec::new();
    inspect::export(&config, "#lobby", ExportFormat::Json, &mut out).expect("export");
    let text = String::from_utf8(out).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["text"], "msg 5");
    assert_eq!(lines[0]["source"], "chatty!~chatty@127.0.0.1");
    second.shutdown();
}

#[tokio::test]
async fn audit_trail_records_who_did_what() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = common::test_config(&dir);
    let running = parley_server::start(config.clone()).await.expect("start");
    let addr = running.plain_addrs()[0];
    let mut op = Client::connect(addr).await;
    op.register("op").await;
    op.send("REGISTER * * op-password").await;
    op.expect(|l| l.contains("REGISTER SUCCESS")).await;
    op.send("JOIN #mod").await;
    // op made #mod (and is its operator) before victim comes: a login's follow-ups (offline
    // messages, the admin check) may hold op's JOIN back while victim registers.
    op.sync().await;
    let mut victim = Client::connect(addr).await;
    victim.register("victim").await;
    victim.send("JOIN #mod").await;
    victim.sync().await;
    op.sync().await;
    op.send("KICK #mod victim :behave").await;
    op.send("MODE #mod +b victim").await;
    op.sync().await;
    let mut failed = Client::connect(addr).await;
    failed.req_sasl().await;
    failed.send("AUTHENTICATE PLAIN").await;
    failed.recv().await;
    failed
        .send(&format!(
            "AUTHENTICATE {}",
            common::sasl_plain("op", "wrong")
        ))
        .await;
    failed.expect_numeric("904").await;
    op.sync().await;
    running.shutdown();
    assert!(running.wait(Duration::from_secs(5)).await);

    let mut out = Vec::new();
    inspect::audit(&config, None, None, None, &mut out).expect("audit");
    let trail = String::from_utf8(out).expect("utf-8");
    for expected in [
        "register       actor=op account=op target=op ip=127.0.0.1",
        "kick           actor=op account=op target=victim ip=127.0.0.1  #mod: behave",
        "ban            actor=op account=op target=victim!*@* ip=127.0.0.1  #mod",
        "login_failed   actor=- target=- ip=127.0.0.1  invalid account name or password",
    ] {
        assert!(trail.contains(expected), "missing {expected:?} in\n{trail}");
    }
    let mut out = Vec::new();
    let kicks =
        inspect::audit(&config, Some("1h"), Some("op"), Some("kick"), &mut out).expect("audit");
    assert_eq!(kicks, 1, "{}", String::from_utf8_lossy(&out));
}

#[tokio::test]
async fn kill_dash_nine_loses_nothing_anyone_received() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = write_binary_config(dir.path(), port);
    let envs: &[(&str, &str)] = &[
        ("PARLEY_SERVER__DEFAULT_CHANNEL", "#crash"),
        ("PARLEY_HISTORY__MAX_REQUEST", "1000"),
    ];
    let mut server = spawn_parleyd(&config, envs);
    wait_listening(port).await;

    let mut receiver = Client::connect(addr).await;
    receiver.register("receiver").await;
    let mut senders = Vec::new();
    for s in 0..3 {
        let mut c = Client::connect(addr).await;
        c.register(&format!("sender{s}")).await;
        senders.push(c);
    }
    receiver.sync().await;
    // Senders write flat out from their own tasks; the receiver reads until it has seen plenty.
    let mut writers = Vec::new();
    for (s, mut c) in senders.into_iter().enumerate() {
        writers.push(tokio::spawn(async move {
            let mut batch = String::new();
            for i in 0..2000 {
                batch.push_str(&format!("PRIVMSG #crash :s{s}-{i}\r\n"));
                if i % 50 == 49 {
                    c.send_raw(batch.as_bytes()).await;
                    batch.clear();
                }
            }
            c
        }));
    }
    let mut received = Vec::new();
    while received.len() < 1500 {
        let line = receiver.recv().await;
        if let Some(text) = line.split(" PRIVMSG #crash :").nth(1) {
            received.push(text.to_string());
        }
    }
    server.start_kill().expect("kill -9");
    server.wait().await.expect("reaped");
    // Whatever else arrived before the socket died counts as received too.
    while let Ok(Some(line)) =
        tokio::time::timeout(Duration::from_secs(2), receiver.try_recv_lossy()).await
    {
        if let Some(text) = line.split(" PRIVMSG #crash :").nth(1) {
            received.push(text.to_string());
        }
    }
    for w in writers {
        let _ = w.await;
    }

    let _restarted = spawn_parleyd(&config, envs);
    wait_listening(port).await;
    let mut reader = Client::connect(addr).await;
    reader.nick = "auditor".into();
    reader.send("CAP LS 302").await;
    reader.send("CAP REQ :draft/chathistory message-tags").await;
    reader.send("NICK auditor").await;
    reader.send("USER a 0 * :a").await;
    reader.send("CAP END").await;
    reader.expect_numeric("366").await;
    let mut stored = std::collections::HashSet::new();
    // Page back by msgid: a timestamp bound would skip the rest of its millisecond.
    let mut before = String::from("timestamp=2100-01-01T00:00:00.000Z");
    loop {
        reader
            .send(&format!("CHATHISTORY BEFORE #crash {before} 1000"))
            .await;
        let lines = reader.sync().await;
        let page: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(" PRIVMSG #crash :"))
            .collect();
        if page.is_empty() {
            break;
        }
        let oldest = page[0];
        let msgid = tag(oldest, "msgid").map(str::to_string);
        for line in &page {
            if let Some(text) = line.split(" PRIVMSG #crash :").nth(1) {
                stored.insert(text.to_string());
            }
        }
        match msgid {
            Some(id) => before = format!("msgid={id}"),
            None => break,
        }
        if page.len() < 1000 {
            break;
        }
    }
    let missing: Vec<&String> = received.iter().filter(|t| !stored.contains(*t)).collect();
    assert!(received.len() >= 1500);
    assert!(
        missing.is_empty(),
        "{} received messages are not in history, e.g. {:?}",
        missing.len(),
        missing.first()
    );
}

#[tokio::test]
async fn labeled_responses() {
    let server = TestServer::start().await;
    let mut c = with_caps(
        &server,
        "labeler",
        "labeled-response batch echo-message message-tags",
    )
    .await;
    c.send("@label=p1 PING hello").await;
    assert_eq!(
        c.recv().await,
        "@label=p1 :parley.local PONG parley.local :hello"
    );
    c.send("@label=a1 PONG nothing").await;
    assert_eq!(c.recv().await, "@label=a1 :parley.local ACK");
    c.send("@label=w1 WHOIS labeler").await;
    let lines = c.sync().await;
    assert!(
        lines[0].starts_with("@label=w1 :parley.local BATCH +")
            && lines[0].ends_with(" labeled-response"),
        "{lines:?}"
    );
    let id = lines[0]
        .split('+')
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("batch id");
    assert!(
        lines[1].starts_with(&format!("@batch={id} :parley.local 311 ")),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().expect("end"),
        &format!(":parley.local BATCH -{id}")
    );
    c.send("@label=m1 PRIVMSG #lobby :labeled hello").await;
    let echo = c.recv().await;
    assert!(echo.starts_with("@label=m1;msgid="), "{echo}");
    assert!(echo.ends_with(" PRIVMSG #lobby :labeled hello"), "{echo}");
    let rest = c.sync().await;
    assert!(rest.is_empty(), "no ACK after a labeled echo: {rest:?}");
    // Without the cap, labels are ignored.
    let mut plain = server.client("unlabeled").await;
    plain.send("@label=x PING y").await;
    assert_eq!(plain.recv().await, ":parley.local PONG parley.local :y");
}

/// A client's lines are answered in the order sent, whatever each waits for: a message being
/// stored, a history read (an async step) and an account lookup on the blocking pool, sent in
/// one write, come back in that order and before the PING sent after them.
#[tokio::test]
async fn waiting_steps_sent_in_one_write_are_answered_in_order() {
    let server = TestServer::start().await;
    let mut alice = account(&server, "alice", TAGGING).await;
    alice.send("JOIN #mine").await;
    alice.sync().await;
    alice
        .send_raw(
            b"PRIVMSG #mine :before\r\nCHATHISTORY LATEST #mine * 5\r\n\
              OWNER #mine nobody\r\nPING :last\r\n",
        )
        .await;
    let mut lines = Vec::new();
    while lines
        .last()
        .is_none_or(|l: &String| !l.ends_with(" PONG parley.local :last"))
    {
        lines.push(alice.recv().await);
    }
    let commands: Vec<&str> = lines.iter().map(|l| common::command_of(l)).collect();
    assert_eq!(
        commands,
        ["PRIVMSG", "BATCH", "PRIVMSG", "BATCH", "FAIL", "PONG"],
        "{lines:?}"
    );
    assert!(lines[0].ends_with(" PRIVMSG #mine :before"), "{lines:?}");
    assert!(lines[1].ends_with(" chathistory #mine"), "{lines:?}");
    assert!(lines[2].ends_with(" PRIVMSG #mine :before"), "{lines:?}");
    assert_eq!(
        lines[4],
        ":parley.local FAIL OWNER NO_SUCH_ACCOUNT #mine :There is no account named nobody"
    );
}
