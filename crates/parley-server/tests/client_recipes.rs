//! The README's "Connect with a client" recipes, run as written with the real clients people
//! have: irssi (driven in a detached tmux session, since it needs a terminal) and WeeChat 3.x
//! (`weechat-headless`). Each recipe is read from README.md itself, so the README cannot drift
//! from what works: only the placeholders (`<password>`, `<fingerprint>`) and the port are
//! filled in. The server is the real one, over TLS on a loopback port, with logins required.
//!
//! A missing client program skips its test with a line on stderr, unless
//! `PARLEY_REQUIRE_CLIENTS=1` (CI sets it and installs irssi, weechat-headless and tmux).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::stock_clients::{self, fingerprint, program, Tmux};
use common::{enable_tls, Client, TestServer};

const README: &str = include_str!("../../../README.md");
const ALICE_PASSWORD: &str = "alice-recipe-pass";
const BOB_PASSWORD: &str = "bob-recipe-pass";

/// The README's recipe after the line starting with `heading`.
fn recipe(heading: &str) -> Vec<String> {
    stock_clients::recipe(README, heading)
}

/// A recipe line with alice's password, the fingerprint and the TLS port filled in.
fn fill(line: &str, fingerprint: &str, port: u16) -> String {
    stock_clients::fill(line, ALICE_PASSWORD, fingerprint, port)
}

/// A server over TLS that requires logins, with the accounts alice and bob; bob is logged in and
/// sits in the default room, watching for alice.
async fn server_and_bob() -> (TestServer, Client) {
    let server = TestServer::start_with(|c| {
        enable_tls(c);
        c.accounts.require_login = true;
    })
    .await;
    server.create_account("alice", ALICE_PASSWORD).await;
    server.create_account("bob", BOB_PASSWORD).await;
    let mut bob = server.connect().await;
    bob.login_sasl("bob", "bob", BOB_PASSWORD).await;
    bob.sync().await;
    (server, bob)
}

/// alice arrived in #lobby, logged in as alice, over TLS: bob sees her join, and WHOIS says so.
async fn bob_sees_alice_logged_in_over_tls(bob: &mut Client) {
    bob.expect(|l| l.starts_with(":alice!") && l.contains(" JOIN #lobby"))
        .await;
    bob.send("WHOIS alice").await;
    let mut account = false;
    let mut tls = false;
    loop {
        let line = bob.recv().await;
        account |= line.contains(" 330 bob alice alice ");
        tls |= line.contains(" 671 bob alice ");
        if line.contains(" 318 ") {
            break;
        }
    }
    assert!(account, "WHOIS alice shows no account alice (330)");
    assert!(tls, "WHOIS alice shows no TLS connection (671)");
}

#[tokio::test]
async fn weechat_3_recipe_logs_in_over_tls_and_joins_the_lobby() {
    let Some(weechat) = program("weechat-headless") else {
        return;
    };
    let (server, mut bob) = server_and_bob().await;
    let fingerprint = stock_clients::weechat_fingerprint(&server);
    let port = server.tls_addr().port();
    let commands: Vec<String> = recipe("WeeChat 3.x")
        .iter()
        .map(|l| fill(l, &fingerprint, port))
        .collect();
    let home = tempfile::tempdir().expect("temp dir");
    let mut child = tokio::process::Command::new(weechat)
        .arg("--dir")
        .arg(home.path())
        .arg("--run-command")
        .arg(commands.join(";"))
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start weechat-headless");
    bob_sees_alice_logged_in_over_tls(&mut bob).await;
    child.kill().await.expect("stop weechat");
}

#[tokio::test]
async fn irssi_recipe_logs_in_over_tls_joins_the_lobby_and_messages_bob() {
    let (Some(tmux), Some(irssi)) = (program("tmux"), program("irssi")) else {
        return;
    };
    let (server, mut bob) = server_and_bob().await;
    let fingerprint = fingerprint(&server);
    let port = server.tls_addr().port();
    let home = tempfile::tempdir().expect("temp dir");
    let irssi_home = home.path().join("irssi");
    std::fs::create_dir(&irssi_home).expect("irssi home");
    let session = Tmux::start(
        &tmux,
        home.path(),
        &format!("{} --home={}", irssi.display(), irssi_home.display()),
    );
    session.wait_for("Irssi v").await;
    let mut typed = Vec::new();
    for line in recipe("irssi 1.4") {
        let line = fill(&line, &fingerprint, port);
        session.type_line(&line);
        typed.push(line.clone());
        if line.starts_with("/connect") {
            bob_sees_alice_logged_in_over_tls(&mut bob).await;
        }
    }
    assert!(
        typed.iter().any(|l| l.starts_with("/msg bob ")),
        "the irssi recipe sends bob a message: {typed:?}"
    );
    let message = bob
        .expect(|l| l.starts_with(":alice!") && l.contains(" PRIVMSG bob :"))
        .await;
    assert!(message.ends_with(":hello"), "{message}");
}
