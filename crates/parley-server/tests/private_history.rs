//! Private history belongs to its two parties only. Names may contain `|` (it is a nick
//! character), so a history key that joined two names with `|` let a third account name a
//! conversation that was not its own: alice wrote to `bob|x`, and `x` read it back as
//! `CHATHISTORY LATEST alice|bob`. These tests make that attack against the real server (on
//! SQLite, and on PostgreSQL with `PARLEY_TEST_STORE=postgres`), check that CHATHISTORY takes
//! only a channel or a nick as its target, and that history written under the old keys is
//! migrated to its real parties.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, TestServer};

const CAPS: &str = "server-time message-tags batch draft/chathistory";

/// A client logged in to a new account named like its nick.
async fn registered(server: &TestServer, nick: &str) -> Client {
    let mut c = server.connect().await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{CAPS}")).await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER u 0 * :{nick}")).await;
    c.send(&format!("REGISTER * * {nick}-password")).await;
    c.expect(|l| l.contains("REGISTER SUCCESS")).await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

/// The PRIVMSG texts a CHATHISTORY request returns.
async fn history(c: &mut Client, request: &str) -> Vec<String> {
    c.send(request).await;
    c.sync()
        .await
        .into_iter()
        .filter(|l| l.contains(" PRIVMSG "))
        .map(|l| l.rsplit_once(" :").map(|(_, t)| t.to_string()).unwrap_or(l))
        .collect()
}

#[tokio::test]
async fn a_third_account_cannot_read_a_conversation_by_forging_its_key() {
    let server = TestServer::start().await;
    let mut alice = registered(&server, "alice").await;
    let mut bobx = registered(&server, "bob|x").await;
    let mut x = registered(&server, "x").await;

    alice.send("PRIVMSG bob|x :secret while online").await;
    bobx.expect(|l| l.ends_with(":secret while online")).await;
    bobx.send("QUIT").await;
    bobx.expect_closed().await;
    alice.send("PRIVMSG bob|x :secret while away").await;
    alice.expect(|l| l.contains("is not online")).await;
    alice.sync().await;

    // The attack: `alice|bob` is a valid nick, so it passes target validation; what it must
    // not do is name alice's conversation with `bob|x`.
    for request in [
        "CHATHISTORY LATEST alice|bob * 10",
        "CHATHISTORY BEFORE alice|bob timestamp=2100-01-01T00:00:00.000Z 10",
    ] {
        let leaked = history(&mut x, request).await;
        assert!(leaked.is_empty(), "{request} showed x {leaked:?}");
    }
    x.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
        .await;
    let targets = x.sync().await;
    assert!(
        !targets.iter().any(|l| l.contains("CHATHISTORY TARGETS")),
        "{targets:?}"
    );

    // The real parties still read it.
    assert_eq!(
        history(&mut alice, "CHATHISTORY LATEST bob|x * 10").await,
        ["secret while online", "secret while away"]
    );
    let mut back = Client::connect(server.addr).await;
    back.login_sasl("bob|x", "bob|x", "bob|x-password").await;
    back.send(&format!("CAP REQ :{CAPS}")).await;
    back.expect(|l| l.contains(" ACK ")).await;
    assert_eq!(
        history(&mut back, "CHATHISTORY LATEST alice * 10").await,
        ["secret while online", "secret while away"]
    );
    back.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
        .await;
    let targets = back.sync().await;
    assert!(
        targets
            .iter()
            .any(|l| l.contains("CHATHISTORY TARGETS alice ")),
        "{targets:?}"
    );
}

#[tokio::test]
async fn chathistory_takes_only_a_channel_or_a_nick_as_target() {
    let server = TestServer::start().await;
    let mut x = registered(&server, "x").await;
    for target in [
        "alice,bob",
        "~guest",
        "dm:alice|bob",
        "a*",
        "nick!user@host",
    ] {
        x.send(&format!("CHATHISTORY LATEST {target} * 10")).await;
        assert_eq!(
            x.recv().await,
            format!(
                ":parley.local FAIL CHATHISTORY INVALID_TARGET LATEST {target} \
                 :That is not a channel or a nick"
            ),
        );
    }
}

/// A database written by parleyd before the keys changed (schema 4), holding a conversation
/// whose old key `dm:alice|bob|x` is also what `alice|bob` + `x` would have made. Opened by this
/// server, it belongs to alice and `bob|x` only.
#[tokio::test]
async fn old_conversations_stay_with_their_real_parties_after_the_migration() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = common::test_config(&dir);
    let rows = [
        // (msgid, time, key, sender account, source, recipient, text), as schema 4 stored them
        // (its party columns split the key at the first `|`).
        (
            "old1",
            1_000,
            "dm:alice|bob|x",
            "alice",
            "alice!u@h",
            "bob|x",
            "old secret",
        ),
        (
            "old2",
            2_000,
            "dm:alice|bob|x",
            "bob|x",
            "bob|x!u@h",
            "alice",
            "old reply",
        ),
        (
            "old3",
            3_000,
            "dm:alice|x",
            "x",
            "x!u@h",
            "alice",
            "x to alice",
        ),
    ];
    let insert = "INSERT INTO messages (msgid, time_ms, target, kind, source, account, \
                  recipient, text, party_a, party_b) VALUES ";
    let values: Vec<String> = rows
        .iter()
        .map(|(id, time, key, account, source, to, text)| {
            let (a, b) = key["dm:".len()..].split_once('|').expect("old key");
            format!(
                "('{id}', {time}, '{key}', 'PRIVMSG', '{source}', '{account}', '{to}', \
                 '{text}', '{a}', '{b}')"
            )
        })
        .collect();
    let sql = format!("{insert}{}", values.join(", "));
    match config.accounts.store {
        parley_server::config::StoreKind::Sqlite => {
            let path = parley_server::store::database_path(&config);
            parley_server::store::sqlite::create_at_version(&path, 4).expect("old schema");
            rusqlite::Connection::open(&path)
                .and_then(|c| c.execute(&sql, []))
                .expect("old rows");
        }
        parley_server::config::StoreKind::Postgres => {
            let url = config.accounts.postgres_url.clone();
            parley_server::store::postgres::create_at_version(&url, 4).expect("old schema");
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                client.batch_execute(&sql).expect("old rows");
            })
            .join()
            .expect("old rows thread");
        }
    }

    let running = parley_server::start(config)
        .await
        .expect("starts and migrates");
    let server = TestServer {
        addr: running.plain_addrs()[0],
        running,
        dir,
    };
    let mut alice = registered(&server, "alice").await;
    let mut bobx = registered(&server, "bob|x").await;
    let mut x = registered(&server, "x").await;
    assert_eq!(
        history(&mut alice, "CHATHISTORY LATEST bob|x * 10").await,
        ["old secret", "old reply"]
    );
    assert_eq!(
        history(&mut bobx, "CHATHISTORY LATEST alice * 10").await,
        ["old secret", "old reply"]
    );
    assert!(history(&mut x, "CHATHISTORY LATEST alice|bob * 10")
        .await
        .is_empty());
    assert_eq!(
        history(&mut x, "CHATHISTORY LATEST alice * 10").await,
        ["x to alice"]
    );
    assert_eq!(
        history(&mut alice, "CHATHISTORY LATEST x * 10").await,
        ["x to alice"]
    );
}
