//! Login sessions against the real server: `SESSION NEW` after a password login, logging in with
//! the token through SASL IRCV3BEARER, and every way a session ends (SESSION REVOKE, expiry, a
//! password change, a lock, `parleyd users logout`, eviction past `web.max_sessions`), the
//! lockout, another account's name, plain text from elsewhere, and the database holding only a
//! hash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::{command_of, connect_from, Client, TestServer};
use parley_server::config::StoreKind;

const TOKEN_TYPE: &str = "parley.chat/session";

/// A server that requires logins, with `change` applied.
async fn server_with(change: impl FnOnce(&mut parley_server::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.accounts.require_login = true;
        change(c);
    })
    .await
}

/// `SESSION NEW`, returning the token.
async fn new_token(c: &mut Client, label: &str) -> String {
    c.send(&format!("SESSION NEW :{label}")).await;
    let reply = c.expect(|l| l.contains(" SESSION NEW ")).await;
    let params: Vec<&str> = reply.split(' ').collect();
    // :server SESSION NEW <token> <expires>
    assert_eq!(params.len(), 5, "{reply}");
    let expires: i64 = params[4].parse().expect("expiry is a unix time");
    assert!(expires > 0, "{reply}");
    params[3].to_string()
}

/// A token from a new password login of `account` (one session per connection).
async fn token_for(server: &TestServer, account: &str, password: &str, label: &str) -> String {
    static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut c = server.connect().await;
    c.login_sasl(&format!("{account}_{n}"), account, password)
        .await;
    new_token(&mut c, label).await
}

fn bearer_payload(authzid: &str, token: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{TOKEN_TYPE}\0{token}"))
}

/// A new connection that logs in with a token: the SASL reply (900 or 904) and the rest.
async fn token_login(addr: std::net::SocketAddr, authzid: &str, token: &str) -> (Client, String) {
    let mut c = Client::connect(addr).await;
    token_login_on(&mut c, authzid, token).await;
    let reply = c
        .expect(|l| command_of(l) == "900" || command_of(l) == "904")
        .await;
    (c, reply)
}

/// CAP, NICK, USER and a token over IRCV3BEARER. Each connection asks for a nick of its own:
/// a connection still open from before holds its nick, and the 433 would be a failure here.
async fn token_login_on(c: &mut Client, authzid: &str, token: &str) {
    static CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CONNECTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    c.nick = format!("webby{n}");
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(ls.contains("IRCV3BEARER"), "{ls}");
    c.send(&format!("NICK {}", c.nick)).await;
    c.send(&format!("USER {} 0 * :web", c.nick)).await;
    c.send("CAP REQ :sasl").await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send("AUTHENTICATE IRCV3BEARER").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    c.send(&format!("AUTHENTICATE {}", bearer_payload(authzid, token)))
        .await;
}

fn refused_as_ended(reply: &str) {
    assert!(
        reply.contains(" 904 ") && reply.contains("Your session ended"),
        "{reply}"
    );
}

#[tokio::test]
async fn a_token_logs_in_in_place_of_the_password() {
    let server = server_with(|_| {}).await;
    let mut alice = server.register_new("alice", "alice-password").await;
    let token = new_token(&mut alice, "Firefox on Linux").await;
    assert_eq!(token.len(), 43, "32 random bytes in base64url: {token}");

    let (mut web, reply) = token_login(server.addr, "alice", &token).await;
    assert!(
        reply.contains(" 900 ") && reply.contains(" alice "),
        "{reply}"
    );
    web.expect_numeric("903").await;
    web.send("CAP END").await;
    // With accounts.multiclient (the default) the token's login joins alice's present user
    // as another session, under her nick: the welcome names it.
    let welcome = web.expect_numeric("001").await;
    let nick = welcome.split(' ').nth(2).unwrap_or_default().to_string();
    web.send(&format!("WHOIS {nick}")).await;
    let whois = web.expect_numeric("330").await;
    assert!(
        whois.contains(&format!(" {nick} alice ")),
        "logged in as alice: {whois}"
    );

    // Without an authzid the token alone names the account.
    let (_, reply) = token_login(server.addr, "", &token).await;
    assert!(
        reply.contains(" 900 ") && reply.contains(" alice "),
        "{reply}"
    );

    // One session per connection: neither the password login nor the token login mints more
    // (a stolen token cannot make itself a spare); another password login gets another token.
    for c in [&mut alice, &mut web] {
        c.send("SESSION NEW :again").await;
        let fail = c.expect(|l| l.contains(" FAIL ")).await;
        assert!(fail.contains("FAIL SESSION ALREADY_IN_SESSION"), "{fail}");
    }
    let other = token_for(&server, "alice", "alice-password", "again").await;
    assert_ne!(other, token);
}

#[tokio::test]
async fn wrong_tokens_and_other_token_types_are_refused() {
    let server = server_with(|_| {}).await;
    let mut alice = server.register_new("alice", "alice-password").await;
    let token = new_token(&mut alice, "x").await;

    let (_, reply) = token_login(server.addr, "alice", "not-a-token-at-all").await;
    refused_as_ended(&reply);
    let mut flipped = token.clone();
    flipped.replace_range(0..1, if token.starts_with('A') { "B" } else { "A" });
    let (_, reply) = token_login(server.addr, "alice", &flipped).await;
    refused_as_ended(&reply);

    // Another token type, or the password where a token goes, is no session.
    let mut c = server.connect().await;
    c.req_sasl().await;
    c.send("AUTHENTICATE IRCV3BEARER").await;
    c.recv().await;
    let jwt = base64::engine::general_purpose::STANDARD.encode(format!("alice\0jwt\0{token}"));
    c.send(&format!("AUTHENTICATE {jwt}")).await;
    assert_eq!(
        c.recv().await,
        ":parley.local 904 * :SASL authentication failed"
    );
    let (_, reply) = token_login(server.addr, "alice", "alice-password").await;
    assert!(reply.contains(" 904 "), "{reply}");
}

#[tokio::test]
async fn a_token_is_not_usable_for_another_account() {
    let server = server_with(|_| {}).await;
    let mut alice = server.register_new("alice", "alice-password").await;
    drop(server.register_new("bob", "bob-password").await);
    let token = new_token(&mut alice, "x").await;

    let (_, reply) = token_login(server.addr, "bob", &token).await;
    assert!(reply.contains(" 904 "), "{reply}");
    assert!(!reply.contains("alice"), "{reply}");
    // And the token still works for its own account.
    let (_, reply) = token_login(server.addr, "alice", &token).await;
    assert!(reply.contains(" 900 "), "{reply}");
}

#[tokio::test]
async fn session_revoke_ends_this_session_only_and_revoke_star_ends_all() {
    let server = server_with(|_| {}).await;
    let mut alice = server.register_new("alice", "alice-password").await;
    let first = new_token(&mut alice, "laptop").await;
    let second = token_for(&server, "alice", "alice-password", "phone").await;

    // A connection logged in with the first token logs out: that token ends, the other lives.
    let (mut web, reply) = token_login(server.addr, "alice", &first).await;
    assert!(reply.contains(" 900 "), "{reply}");
    web.send("CAP END").await;
    web.expect_numeric("001").await;
    web.send("SESSION REVOKE").await;
    let revoked = web.expect(|l| l.contains(" SESSION ")).await;
    assert!(revoked.contains(" SESSION REVOKED 1 "), "{revoked}");
    let (_, reply) = token_login(server.addr, "alice", &first).await;
    refused_as_ended(&reply);
    let (_, reply) = token_login(server.addr, "alice", &second).await;
    assert!(reply.contains(" 900 "), "{reply}");

    // Nothing more to revoke on that connection.
    web.send("SESSION REVOKE").await;
    let fail = web.expect(|l| l.contains(" FAIL ")).await;
    assert!(fail.contains("FAIL SESSION NO_SESSION"), "{fail}");

    alice.send("SESSION REVOKE *").await;
    let revoked = alice.expect(|l| l.contains(" SESSION ")).await;
    assert!(revoked.contains(" SESSION REVOKED 1 "), "{revoked}");
    let (_, reply) = token_login(server.addr, "alice", &second).await;
    refused_as_ended(&reply);
}

#[tokio::test]
async fn guests_get_no_session_and_bad_subcommands_fail() {
    let server = TestServer::start().await;
    let mut guest = server.client("guest").await;
    guest.send("SESSION NEW").await;
    let fail = guest.expect(|l| l.contains(" FAIL ")).await;
    assert!(fail.contains("FAIL SESSION ACCOUNT_REQUIRED"), "{fail}");
    let mut alice = server.register_new("alice", "alice-password").await;
    alice.send("SESSION STEAL").await;
    let fail = alice.expect(|l| l.contains(" FAIL ")).await;
    assert!(
        fail.contains("FAIL SESSION UNKNOWN_COMMAND STEAL"),
        "{fail}"
    );
}

#[tokio::test]
async fn the_admin_cli_lists_and_ends_sessions_and_a_password_change_or_lock_ends_them() {
    // Each ended session refused below counts as a failed login; that is not what this tests.
    let server = server_with(|c| c.accounts.max_failures = 100).await;
    let dir = server.dir.path();
    let mut alice = server.register_new("alice", "alice-password").await;
    let token = new_token(&mut alice, "Chromium on Debian").await;

    let (ok, out, err) = common::admin_cli(dir, &["users", "sessions", "alice"], "").await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Chromium on Debian"), "{out}");
    assert!(out.contains("1 login session of alice"), "{out}");
    assert!(!out.contains(&token), "the token is never shown: {out}");

    let (ok, out, err) = common::admin_cli(dir, &["users", "logout", "alice"], "").await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("ended 1 login session of alice"), "{out}");
    let (_, reply) = token_login(server.addr, "alice", &token).await;
    refused_as_ended(&reply);

    let token = token_for(&server, "alice", "alice-password", "x").await;
    let (ok, out, err) = common::admin_cli(
        dir,
        &["users", "passwd", "alice", "--password-stdin"],
        "a-new-password\n",
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let (_, reply) = token_login(server.addr, "alice", &token).await;
    refused_as_ended(&reply);

    let token = token_for(&server, "alice", "a-new-password", "y").await;
    let (ok, out, err) = common::admin_cli(dir, &["users", "lock", "alice"], "").await;
    assert!(ok, "{out}\n{err}");
    let (_, reply) = token_login(server.addr, "alice", &token).await;
    assert!(reply.contains(" 904 "), "{reply}");
    let (ok, out, err) = common::admin_cli(dir, &["users", "unlock", "alice"], "").await;
    assert!(ok, "{out}\n{err}");
    let (_, reply) = token_login(server.addr, "alice", &token).await;
    refused_as_ended(&reply);
}

#[tokio::test]
async fn the_oldest_session_is_evicted_past_max_sessions() {
    let server = server_with(|c| c.web.max_sessions = 2).await;
    let mut alice = server.register_new("alice", "alice-password").await;
    let first = new_token(&mut alice, "1").await;
    let second = token_for(&server, "alice", "alice-password", "2").await;
    let third = token_for(&server, "alice", "alice-password", "3").await;
    let (_, reply) = token_login(server.addr, "alice", &first).await;
    refused_as_ended(&reply);
    for token in [second, third] {
        let (_, reply) = token_login(server.addr, "alice", &token).await;
        assert!(reply.contains(" 900 "), "{reply}");
    }
}

#[tokio::test]
async fn failed_token_logins_count_against_the_lockout() {
    let server = server_with(|c| {
        c.accounts.max_failures = 2;
        c.accounts.lockout_secs = 600;
    })
    .await;
    let mut alice = server.register_new("alice", "alice-password").await;
    let token = new_token(&mut alice, "x").await;
    for _ in 0..2 {
        let (_, reply) = token_login(server.addr, "alice", "guessed-token").await;
        assert!(reply.contains(" 904 "), "{reply}");
    }
    let (_, reply) = token_login(server.addr, "alice", &token).await;
    assert!(
        reply.contains(" 904 ") && reply.contains("oo many failed logins"),
        "{reply}"
    );
}

#[tokio::test]
async fn tokens_are_neither_given_nor_taken_on_plain_text_from_elsewhere() {
    // As for passwords: only 127.0.0.1 is "this machine", so 127.0.0.2 plays a remote client.
    let server =
        server_with(|c| c.accounts.plaintext_login_from = vec!["127.0.0.1/32".into()]).await;
    let mut alice = server.register_new("alice", "alice-password").await;
    let token = new_token(&mut alice, "x").await;
    let remote: std::net::IpAddr = "127.0.0.2".parse().expect("address");
    let mut c = connect_from(server.addr, remote).await;
    token_login_on(&mut c, "alice", &token).await;
    let notice = c
        .expect(|l| l.contains(" NOTICE ") || l.contains(" 90"))
        .await;
    assert!(
        notice.contains("not accepted over an unencrypted"),
        "{notice}"
    );
    c.expect_numeric("904").await;
}

/// The SQLite file of a server that ran on it (whatever `PARLEY_TEST_STORE` says).
async fn sqlite_server() -> TestServer {
    server_with(|c| c.accounts.store = StoreKind::Sqlite).await
}

fn database(server: &TestServer) -> rusqlite::Connection {
    rusqlite::Connection::open(server.dir.path().join("parley.db")).expect("open the database")
}

#[tokio::test]
async fn an_expired_token_is_refused_and_forgotten() {
    let server = sqlite_server().await;
    let mut alice = server.register_new("alice", "alice-password").await;
    let token = new_token(&mut alice, "x").await;
    database(&server)
        .execute("UPDATE sessions SET expires_at = 1", [])
        .expect("age the session");
    let (_, reply) = token_login(server.addr, "alice", &token).await;
    refused_as_ended(&reply);
    let left: i64 = database(&server)
        .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
        .expect("count");
    assert_eq!(left, 0, "the expired session is deleted");

    // One nobody tries again goes when the account makes its next session.
    token_for(&server, "alice", "alice-password", "y").await;
    database(&server)
        .execute("UPDATE sessions SET expires_at = 1", [])
        .expect("age the session");
    token_for(&server, "alice", "alice-password", "z").await;
    let labels: Vec<String> = database(&server)
        .prepare("SELECT label FROM sessions")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("labels");
    assert_eq!(labels, ["z"]);
}

#[tokio::test]
async fn the_database_keeps_only_the_tokens_hash() {
    let server = sqlite_server().await;
    let mut alice = server.register_new("alice", "alice-password").await;
    let token = new_token(&mut alice, "Firefox").await;
    let (_, reply) = token_login(server.addr, "alice", &token).await;
    assert!(reply.contains(" 900 "), "{reply}");
    let (hash, label, account): (String, String, String) = database(&server)
        .query_row(
            "SELECT token_hash, label, account_folded FROM sessions",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .expect("one session");
    assert_eq!(hash, parley_server::accounts::token_hash(&token));
    assert_eq!((label.as_str(), account.as_str()), ("Firefox", "alice"));
    // Nowhere in the files, in any table or the write-ahead log.
    for name in ["parley.db", "parley.db-wal"] {
        let path = server.dir.path().join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "the token is in {name}"
            );
        }
    }
}
