//! SASL SCRAM-SHA-256 against the real server on loopback, with a real SQLite file: logging in,
//! wrong passwords and unknown names failing alike, replayed and forged proofs, an account from
//! before SCRAM gaining a credential at its first PLAIN login, aborts, protocol errors, the
//! shared lockout, and SCRAM being allowed where a plain-text password is not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use common::{command_of, connect_from, sasl_plain, Client, TestServer};
use parley_proto::scram::{ClientExchange, ClientResponse, SaltedPassword, MAX_ITERATIONS};

/// A server that requires logins, as the defaults do.
async fn strict() -> TestServer {
    TestServer::start_with(|c| c.accounts.require_login = true).await
}

fn b64(text: &str) -> String {
    BASE64.encode(text)
}

fn unb64(text: &str) -> String {
    String::from_utf8(BASE64.decode(text).expect("base64 from the server")).expect("utf-8")
}

/// Create `account` with REGISTER and disconnect.
async fn register(server: &TestServer, account: &str, password: &str) {
    let mut c = server.connect().await;
    c.nick = account.to_string();
    c.send(&format!("NICK {account}")).await;
    c.send(&format!("REGISTER * * {password}")).await;
    c.expect(|l| l.contains("REGISTER SUCCESS")).await;
}

/// CAP LS 302, NICK, USER and `CAP REQ sasl`, as a SASL client starts; returns the LS line.
async fn begin(c: &mut Client, nick: &str) -> String {
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("CAP REQ :sasl").await;
    c.expect(|l| l.contains(" CAP ") && l.contains(" ACK "))
        .await;
    ls
}

/// `AUTHENTICATE SCRAM-SHA-256` and the client's first message; returns the exchange and the
/// server's first message, decoded.
async fn start(c: &mut Client, account: &str, nonce: &str) -> (ClientExchange, String) {
    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    let client = ClientExchange::new(account, nonce).expect("client");
    c.send(&format!("AUTHENTICATE {}", b64(&client.client_first())))
        .await;
    let line = c.recv().await;
    let payload = line
        .strip_prefix("AUTHENTICATE ")
        .unwrap_or_else(|| panic!("expected the server-first message, got {line}"));
    (client, unb64(payload))
}

/// Answer the server's first message with the proof for `password`; returns the response sent
/// and the server's next line.
async fn prove(
    c: &mut Client,
    client: &ClientExchange,
    server_first: &str,
    password: &str,
) -> (ClientResponse, String) {
    let challenge = client
        .server_first(server_first, MAX_ITERATIONS)
        .expect("a well-formed server-first message");
    let salted =
        SaltedPassword::derive(password, challenge.salt(), challenge.iterations()).expect("derive");
    let response = challenge.respond(&salted);
    c.send(&format!("AUTHENTICATE {}", b64(response.message())))
        .await;
    let reply = c.recv().await;
    (response, reply)
}

/// A whole SCRAM login up to 903, checking the server's signature on the way.
async fn scram_login(c: &mut Client, account: &str, password: &str) -> Vec<String> {
    let (client, server_first) = start(c, account, "fyko+d2lbbFgONRv9qkxdawL").await;
    let (response, reply) = prove(c, &client, &server_first, password).await;
    let server_final = reply
        .strip_prefix("AUTHENTICATE ")
        .unwrap_or_else(|| panic!("expected the server-final message, got {reply}"));
    response
        .verify_server_final(&unb64(server_final))
        .expect("the server proves it knows the credential");
    c.send("AUTHENTICATE +").await;
    let logged_in = c.expect(|l| command_of(l) == "900").await;
    vec![logged_in, c.expect_numeric("903").await]
}

/// The salt and iteration count of a server-first message (its nonce is random each time).
fn salt_and_iterations(server_first: &str) -> &str {
    &server_first[server_first.find(",s=").expect("a salt")..]
}

#[tokio::test]
async fn scram_is_offered_and_logs_in() {
    let server = strict().await;
    register(&server, "alice", "correct-horse").await;

    let mut c = server.connect().await;
    let ls = begin(&mut c, "alice").await;
    assert!(ls.contains("sasl=PLAIN,SCRAM-SHA-256"), "{ls}");
    let (client, server_first) = start(&mut c, "Alice", "rOprNGfwEbeRWgbNEkqO").await;
    assert!(
        server_first.starts_with("r=rOprNGfwEbeRWgbNEkqO") && server_first.ends_with(",i=4096"),
        "{server_first}"
    );
    let (response, reply) = prove(&mut c, &client, &server_first, "correct-horse").await;
    let server_final = unb64(reply.strip_prefix("AUTHENTICATE ").expect("server-final"));
    response
        .verify_server_final(&server_final)
        .expect("server signature");
    // Not logged in until the client's empty answer to the server's final message.
    c.send("AUTHENTICATE +").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 900 alice alice!~alice@127.0.0.1 alice :You are now logged in as alice"
    );
    assert_eq!(
        c.recv().await,
        ":parley.local 903 alice :SASL authentication successful"
    );
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.send("WHOIS alice").await;
    let whois = c.sync().await;
    assert!(
        whois.contains(&":parley.local 330 alice alice alice :is logged in as".to_string()),
        "{whois:?}"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_account_fail_alike() {
    let server = strict().await;
    register(&server, "bob", "bob-password").await;

    let mut c = server.connect().await;
    c.req_sasl().await;
    c.send("NICK bob2").await;
    let (client, real) = start(&mut c, "bob", "nonce-one").await;
    let (_, reply) = prove(&mut c, &client, &real, "not-bobs").await;
    assert_eq!(
        reply,
        ":parley.local 904 bob2 :Invalid account name or password"
    );

    let (client, fake) = start(&mut c, "nobody", "nonce-one").await;
    assert_eq!(
        salt_and_iterations(&real).len(),
        salt_and_iterations(&fake).len(),
        "{real} / {fake}"
    );
    assert!(fake.ends_with(",i=4096"), "{fake}");
    let (_, reply) = prove(&mut c, &client, &fake, "bob-password").await;
    assert_eq!(
        reply,
        ":parley.local 904 bob2 :Invalid account name or password"
    );

    // An unknown name's salt stays the same from one attempt to the next, as a real one does.
    let (_, again) = start(&mut c, "NOBODY", "nonce-two").await;
    assert_eq!(salt_and_iterations(&again), salt_and_iterations(&fake));
    c.send("AUTHENTICATE *").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 906 bob2 :SASL authentication aborted"
    );
    let (_, real_again) = start(&mut c, "bob", "nonce-two").await;
    assert_eq!(salt_and_iterations(&real_again), salt_and_iterations(&real));
}

#[tokio::test]
async fn replayed_and_forged_final_messages_are_refused() {
    let server = strict().await;
    register(&server, "carol", "carol-password").await;

    // A good exchange, watched by an eavesdropper.
    let mut good = server.connect().await;
    good.req_sasl().await;
    good.send("NICK carol").await;
    let (client, server_first) = start(&mut good, "carol", "same-client-nonce").await;
    let (response, reply) = prove(&mut good, &client, &server_first, "carol-password").await;
    assert!(reply.starts_with("AUTHENTICATE "), "{reply}");

    // Replayed into a new exchange with the same client nonce: the server's nonce differs.
    let mut replay = server.connect().await;
    replay.req_sasl().await;
    replay.send("NICK mallory").await;
    let (_, other_first) = start(&mut replay, "carol", "same-client-nonce").await;
    assert_ne!(
        other_first, server_first,
        "each exchange gets a fresh server nonce"
    );
    replay
        .send(&format!("AUTHENTICATE {}", b64(response.message())))
        .await;
    assert_eq!(
        replay.recv().await,
        ":parley.local 904 mallory :Invalid account name or password"
    );

    // Forged: the right nonce, a proof that is not the password's.
    let (client, server_first) = start(&mut replay, "carol", "forger").await;
    let nonce = &server_first[2..server_first.find(',').expect("nonce")];
    let forged = format!("c=biws,r={nonce},p={}", BASE64.encode([7u8; 32]));
    replay.send(&format!("AUTHENTICATE {}", b64(&forged))).await;
    assert_eq!(
        replay.recv().await,
        ":parley.local 904 mallory :Invalid account name or password"
    );
    drop(client);

    // The real client is unaffected.
    good.send("AUTHENTICATE +").await;
    good.expect_numeric("903").await;
}

#[tokio::test]
async fn an_account_from_before_scram_gains_it_at_its_first_plain_login() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::test_config(&dir);
    config.accounts.require_login = true;
    {
        // Made the way an older parleyd made it: a password hash and no SCRAM credential.
        let store = parley_server::store::open_default(&config).expect("store");
        let accounts = parley_server::accounts::Accounts::new(store, &config);
        let hash = parley_server::accounts::hash_password("dave-password").expect("hash");
        accounts
            .add_hashed_account("dave", &hash, None)
            .expect("old account");
        let record = accounts.account("dave").expect("lookup").expect("found");
        assert_eq!(record.scram, None);
    }
    let running = parley_server::start(config).await.expect("start");
    let addr = running.plain_addrs()[0];

    let mut before = Client::connect(addr).await;
    before.req_sasl().await;
    before.send("NICK dave_").await;
    let (client, server_first) = start(&mut before, "dave", "n1").await;
    let (_, reply) = prove(&mut before, &client, &server_first, "dave-password").await;
    assert!(reply.contains(" 904 "), "no credential yet: {reply}");

    let mut plain = Client::connect(addr).await;
    let welcome = plain.login_sasl("dave", "dave", "dave-password").await;
    assert!(
        welcome.iter().any(|l| l.contains(" 001 dave ")),
        "{welcome:?}"
    );

    let mut after = Client::connect(addr).await;
    begin(&mut after, "dave2").await;
    let done = scram_login(&mut after, "dave", "dave-password").await;
    assert!(
        done[1].ends_with(":SASL authentication successful"),
        "{done:?}"
    );
    running.shutdown();
}

#[tokio::test]
async fn aborts_and_protocol_errors() {
    let server = strict().await;
    register(&server, "erin", "erin-password").await;
    let mut c = server.connect().await;
    c.req_sasl().await;

    c.send("AUTHENTICATE SCRAM-SHA-1").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 908 * PLAIN,SCRAM-SHA-256,IRCV3BEARER :are available SASL mechanisms"
    );
    assert_eq!(
        c.recv().await,
        ":parley.local 904 * :SASL authentication failed"
    );

    // Aborted before the first message, and after the server's first message.
    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    c.recv().await;
    c.send("AUTHENTICATE *").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 906 * :SASL authentication aborted"
    );
    start(&mut c, "erin", "abc").await;
    c.send("AUTHENTICATE *").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 906 * :SASL authentication aborted"
    );

    let refused = [
        b64("p=tls-unique,,n=erin,r=abc"), // channel binding
        b64("n,,m=x,n=erin,r=abc"),        // a mandatory extension
        b64("n,a=bob,n=erin,r=abc"),       // acting as someone else
        b64("n,,n=erin"),                  // no nonce
        "not-base64!".to_string(),
        "+".to_string(), // empty
    ];
    for first in refused {
        c.send("AUTHENTICATE SCRAM-SHA-256").await;
        c.recv().await;
        c.send(&format!("AUTHENTICATE {first}")).await;
        assert_eq!(
            c.recv().await,
            ":parley.local 904 * :SASL authentication failed",
            "{first}"
        );
    }

    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    c.recv().await;
    for _ in 0..6 {
        c.send(&format!("AUTHENTICATE {}", "A".repeat(400))).await;
    }
    assert_eq!(c.recv().await, ":parley.local 905 * :SASL message too long");

    // After the server's final message, anything but the empty answer ends the exchange.
    let (client, server_first) = start(&mut c, "erin", "abc").await;
    let (_, reply) = prove(&mut c, &client, &server_first, "erin-password").await;
    assert!(reply.starts_with("AUTHENTICATE "), "{reply}");
    c.send("AUTHENTICATE eHl6").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 904 * :SASL authentication failed"
    );
    // And a clean exchange still works on the same connection.
    begin(&mut c, "erin").await;
    scram_login(&mut c, "erin", "erin-password").await;
    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 907 erin :You have already authenticated using SASL"
    );
}

#[tokio::test]
async fn scram_failures_count_toward_the_same_lockout() {
    let server = TestServer::start_with(|c| {
        c.accounts.require_login = true;
        c.accounts.max_failures = 2;
    })
    .await;
    register(&server, "fay", "fay-password").await;
    let mut c = server.connect().await;
    c.req_sasl().await;
    c.send("NICK fay_").await;
    // One SCRAM failure and one PLAIN failure reach max_failures together.
    let (client, server_first) = start(&mut c, "fay", "n").await;
    let (_, reply) = prove(&mut c, &client, &server_first, "guess").await;
    assert!(reply.contains(" 904 "), "{reply}");
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    c.send(&format!("AUTHENTICATE {}", sasl_plain("fay", "guess2")))
        .await;
    assert!(c.recv().await.contains(" 904 "));
    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    c.recv().await;
    let client = ClientExchange::new("fay", "n").expect("client");
    c.send(&format!("AUTHENTICATE {}", b64(&client.client_first())))
        .await;
    let locked = c.recv().await;
    assert!(
        locked.starts_with(":parley.local 904 fay_ :Too many failed logins; try again in "),
        "{locked}"
    );
}

#[tokio::test]
async fn scram_is_allowed_where_plain_text_passwords_are_not() {
    // Only 127.0.0.1 counts as "this machine", so 127.0.0.2 plays a remote plain-text client.
    let server = TestServer::start_with(|c| {
        c.accounts.require_login = true;
        c.accounts.plaintext_login_from = vec!["127.0.0.1/32".into()];
    })
    .await;
    register(&server, "gus", "gus-password").await;
    let remote: std::net::IpAddr = "127.0.0.2".parse().expect("address");

    let mut c = connect_from(server.addr, remote).await;
    begin(&mut c, "gus").await;
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    c.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain("gus", "gus-password")
    ))
    .await;
    assert!(c.recv().await.contains("Passwords are not accepted"));
    assert!(c.recv().await.contains(" 904 "));
    let done = scram_login(&mut c, "gus", "gus-password").await;
    assert!(done[0].contains(" 900 gus "), "{done:?}");
    c.send("CAP END").await;
    c.expect_numeric("001").await;
}

#[tokio::test]
async fn a_stalled_exchange_ends_with_the_registration_timeout() {
    let server = TestServer::start_with(|c| {
        c.accounts.require_login = true;
        c.limits.registration_timeout_secs = 1;
    })
    .await;
    register(&server, "hal", "hal-password").await;
    let mut c = server.connect().await;
    c.req_sasl().await;
    c.send("NICK hal_").await;
    start(&mut c, "hal", "n").await;
    c.send("USER hal 0 * :hal").await;
    let rest = c.expect_closed().await;
    assert!(
        rest.iter().any(|l| l.contains("Registration timed out")),
        "{rest:?}"
    );
}

/// Clients such as gamja and goguma send their login without waiting where they can: CAP, NICK,
/// USER, the mechanism and the first SASL message in one write, and `CAP END` right behind the
/// last SASL line. The server handles a connection's lines in order, each login step finished
/// before the next line, so both SCRAM and PLAIN log in and registration waits for the result.
#[tokio::test]
async fn a_pipelining_client_logs_in_with_its_steps_sent_together() {
    let server = strict().await;
    register(&server, "pip", "pipelined-password").await;

    let mut c = server.connect().await;
    c.nick = "pip".into();
    let client = ClientExchange::new("pip", "pipelinednonce").expect("client");
    c.send_raw(
        format!(
            "CAP LS 302\r\nNICK pip\r\nUSER pip 0 * :pip\r\nCAP REQ :sasl\r\n\
             AUTHENTICATE SCRAM-SHA-256\r\nAUTHENTICATE {}\r\n",
            b64(&client.client_first())
        )
        .as_bytes(),
    )
    .await;
    let line = c
        .expect(|l| l.starts_with("AUTHENTICATE ") && l != "AUTHENTICATE +")
        .await;
    let server_first = unb64(line.strip_prefix("AUTHENTICATE ").expect("server-first"));
    let (response, reply) = prove(&mut c, &client, &server_first, "pipelined-password").await;
    let server_final = unb64(reply.strip_prefix("AUTHENTICATE ").expect("server-final"));
    response
        .verify_server_final(&server_final)
        .expect("server signature");
    c.send_raw(b"AUTHENTICATE +\r\nCAP END\r\n").await;
    assert!(c.recv().await.contains(" 900 pip "));
    c.expect_numeric("903").await;
    assert!(c.recv().await.contains(" 001 pip "), "welcome after 903");
    c.send("WHOIS pip").await;
    let whois = c.sync().await;
    assert!(
        whois.iter().any(|l| l.contains(" 330 pip pip pip ")),
        "{whois:?}"
    );

    // PLAIN in a single write, CAP END included.
    let mut p = server.connect().await;
    p.nick = "pip2".into();
    p.send_raw(
        format!(
            "CAP LS 302\r\nNICK pip2\r\nUSER pip2 0 * :pip2\r\nCAP REQ :sasl\r\n\
             AUTHENTICATE PLAIN\r\nAUTHENTICATE {}\r\nCAP END\r\n",
            sasl_plain("pip", "pipelined-password")
        )
        .as_bytes(),
    )
    .await;
    p.expect_numeric("903").await;
    // pip is still here, so with accounts.multiclient (the default) this login is another
    // session of that user, welcomed under its nick.
    assert!(p.recv().await.contains(" 001 pip "), "welcome after 903");
}
