//! Misbehaving clients and exhausted limits against the real server: a client vanishing mid-line,
//! per-network connection limits, the members-per-channel limit, and accounts and groups intact
//! after a `kill -9` of the server process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    connect_from, free_port, spawn_parleyd, wait_listening, write_binary_config, Client, TestServer,
};

#[tokio::test]
async fn a_client_vanishing_mid_line_harms_no_one() {
    let server = TestServer::start().await;
    let mut stays = server.client("stays").await;
    let mut leaves = server.client("leaves").await;
    stays.sync().await;
    leaves
        .send_raw(b"PRIVMSG #lobby :this line never ends")
        .await;
    drop(leaves);
    stays
        .expect(|l| l.contains("QUIT") && l.starts_with(":leaves!"))
        .await;
    let rest = stays.sync().await;
    assert!(
        !rest.iter().any(|l| l.contains("never ends")),
        "a half line is not a message: {rest:?}"
    );
    stays.send("PRIVMSG #lobby :still here").await;
    stays.send("PING alive").await;
    stays
        .expect(|l| l.ends_with("PONG parley.local :alive"))
        .await;
}

#[tokio::test]
async fn connections_per_network_are_limited() {
    let server = TestServer::start_with(|c| c.limits.max_clients_per_cidr = 2).await;
    let mut a = connect_from(server.addr, "127.0.0.1".parse().expect("ip")).await;
    let mut b = connect_from(server.addr, "127.0.0.2".parse().expect("ip")).await;
    a.register("first").await;
    b.register("second").await;
    let mut c = connect_from(server.addr, "127.0.0.3".parse().expect("ip")).await;
    let refused = c.expect_closed().await;
    assert_eq!(
        refused,
        ["ERROR :Closing Link: 127.0.0.3 (Too many connections from your network)"]
    );
    drop(a);
    // Once one leaves, the network has room again (bounded wait for the server to notice).
    let mut admitted = false;
    for _ in 0..50 {
        let mut d = connect_from(server.addr, "127.0.0.3".parse().expect("ip")).await;
        d.send("PING room").await;
        if let Some(line) = d.try_recv_lossy().await {
            if line.contains("PONG") {
                admitted = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted);
}

#[tokio::test]
async fn members_per_channel_is_limited() {
    let server = TestServer::start_with(|c| {
        c.limits.members_per_channel = 2;
        c.server.default_channel = String::new();
    })
    .await;
    let [mut a, mut b, mut c] = server.clients(["a", "b", "c"]).await;
    a.send("JOIN #small").await;
    a.sync().await;
    b.send("JOIN #small").await;
    b.sync().await;
    c.send("JOIN #small").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 471 c #small :Cannot join channel (the server's member limit is reached)"
    );
}

#[tokio::test]
async fn accounts_and_groups_survive_kill_dash_nine() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = write_binary_config(dir.path(), port);
    let mut server = spawn_parleyd(&config, &[]);
    wait_listening(port).await;
    let mut owner = Client::connect(addr).await;
    owner.nick = "owner".into();
    owner.send("CAP LS 302").await;
    owner.send("NICK owner").await;
    owner.send("USER o 0 * :o").await;
    owner.send("REGISTER * * owner-password").await;
    owner.expect(|l| l.contains("REGISTER SUCCESS")).await;
    owner.send("CAP END").await;
    owner.expect_numeric("001").await;
    owner.send("JOIN #kept").await;
    owner.send("TOPIC #kept :still here after a crash").await;
    owner.sync().await;
    // The channel is saved by the history writer's next commit; a message through it forces one.
    owner.send("PRIVMSG #kept :sync the writer").await;
    owner.sync().await;
    server.start_kill().expect("kill -9");
    server.wait().await.expect("reaped");

    let _restarted = spawn_parleyd(&config, &[]);
    wait_listening(port).await;
    let mut back = Client::connect(addr).await;
    let welcome = back.login_sasl("owner", "owner", "owner-password").await;
    assert!(
        welcome.iter().any(|l| l.contains(" 001 owner ")),
        "the account survived: {welcome:?}"
    );
    back.send("JOIN #kept").await;
    let joined = back.sync().await;
    assert!(
        joined
            .iter()
            .any(|l| l.contains(" 332 owner #kept :still here after a crash")),
        "the group survived: {joined:?}"
    );
    assert!(
        joined
            .iter()
            .any(|l| l.contains(" 353 owner = #kept :@owner")),
        "{joined:?}"
    );
}
