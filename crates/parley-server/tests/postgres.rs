//! The PostgreSQL store under the real server, where it differs from a file: the database drops
//! every connection while people chat (a restart, a failover, an admin's `pg_terminate_backend`),
//! and parleyd must keep chatting, reconnect by itself, and lose nothing it accepted.
//!
//! Runs only with `PARLEY_TEST_POSTGRES_URL` set (see `common/postgres.rs`); CI sets it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, TestServer};
use parley_server::config::StoreKind;

/// Close every session on `url`'s database but the caller's, as a restart of PostgreSQL would.
/// Returns how many were closed.
fn terminate_sessions(url: &str) -> i64 {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .expect("terminate sessions")
            .get::<_, i64>(0)
    })
    .join()
    .expect("terminate thread")
}

async fn history_client(server: &TestServer, nick: &str) -> Client {
    let mut c = server.connect().await;
    c.nick = nick.to_owned();
    c.send("CAP LS 302").await;
    c.send("CAP REQ :draft/chathistory batch").await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("CAP END").await;
    c.expect_numeric("366").await;
    c.sync().await;
    c
}

/// The `#lobby` lines CHATHISTORY returns that start with `prefix`.
async fn stored(c: &mut Client, prefix: &str) -> Vec<String> {
    c.send("CHATHISTORY LATEST #lobby * 100").await;
    c.sync()
        .await
        .into_iter()
        .filter_map(|l| {
            l.split_once(" PRIVMSG #lobby :")
                .map(|(_, text)| text.to_owned())
        })
        .filter(|text| text.starts_with(prefix))
        .collect()
}

#[tokio::test]
async fn lost_database_connections_come_back_and_nothing_accepted_is_lost() {
    let Some(url) = common::postgres::database_for("postgres-reconnect") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = {
        let url = url.clone();
        let path = dir.path().to_path_buf();
        move || {
            let mut config = parley_server::Config::default();
            config.listen.plain = vec!["127.0.0.1:0".into()];
            config.listen.tls = Vec::new();
            config.web.listen = Vec::new();
            config.metrics.listen = Vec::new();
            config.server.data_dir = path.clone();
            config.flood.enabled = false;
            config.accounts.require_login = false;
            config.accounts.store = StoreKind::Postgres;
            config.accounts.postgres_url = url.clone();
            config
        }
    };
    let running = parley_server::start(config()).await.expect("start");
    let server = TestServer {
        addr: running.plain_addrs()[0],
        running,
        dir,
    };
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.send("PRIVMSG #lobby :pg before").await;
    bob.expect(|l| l.ends_with(":pg before")).await;

    let closed = terminate_sessions(&url);
    assert!(
        closed >= 3,
        "the server's account, history and state connections were open: {closed}"
    );

    // Chat goes on at once: the writer holds what it cannot store yet and retries.
    for i in 0..5 {
        alice.send(&format!("PRIVMSG #lobby :pg during {i}")).await;
        bob.expect(|l| l.ends_with(&format!(":pg during {i}")))
            .await;
    }
    // The account store reconnects on its next call: registering works.
    let mut carol = server.client("carol").await;
    carol.send("REGISTER * * carol-password").await;
    carol.expect(|l| l.contains("REGISTER SUCCESS")).await;

    // Everything accepted reaches the database (bounded wait for the writer's retry).
    let mut reader = history_client(&server, "reader").await;
    let mut texts = Vec::new();
    for _ in 0..60 {
        texts = stored(&mut reader, "pg ").await;
        if texts.len() == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        texts,
        [
            "pg before",
            "pg during 0",
            "pg during 1",
            "pg during 2",
            "pg during 3",
            "pg during 4"
        ]
    );

    // And it is really in PostgreSQL: a new server on the same database sees it all.
    server.running.shutdown();
    assert!(server.running.wait(Duration::from_secs(10)).await);
    drop((alice, bob, carol, reader));
    let again = parley_server::start(config()).await.expect("restart");
    let second = TestServer {
        addr: again.plain_addrs()[0],
        running: again,
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let mut reader = history_client(&second, "reader2").await;
    assert_eq!(stored(&mut reader, "pg ").await.len(), 6);
    let mut carol = second.connect().await;
    let welcome = carol.login_sasl("carol", "carol", "carol-password").await;
    assert!(welcome[0].contains(" 900 "), "{welcome:?}");
    second.running.shutdown();
}
