//! SASL and REGISTER at the edges of the specs (ircv3.net/specs/extensions/sasl-3.1,
//! ircv3.net/specs/extensions/account-registration): AUTHENTICATE without the `sasl`
//! capability, and REGISTER before the connection is registered when the server refuses that.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{sasl_plain, TestServer};

/// "The client MUST enable the sasl capability before using the AUTHENTICATE command." The spec
/// names no reply for a client that did not: it gets 904 ("other errors not explicitly
/// mentioned by other numerics"), its payload is not taken, and it is not disconnected.
#[tokio::test]
async fn authenticate_without_the_sasl_cap_fails_without_a_disconnect() {
    let server = TestServer::start().await;
    server.create_account("ivan", "ivan-password-1").await;
    let mut c = server.connect().await;
    c.nick = "ivan".into();
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 904 * :SASL authentication failed: enable the sasl capability \
         (CAP REQ :sasl) first"
    );
    c.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain("ivan", "ivan-password-1")
    ))
    .await;
    assert_eq!(
        c.recv().await,
        ":parley.local 904 * :SASL authentication failed: enable the sasl capability \
         (CAP REQ :sasl) first"
    );
    // Still connected, and registers as a guest (ivan's nick is the account's).
    c.nick = "ivy".into();
    c.send("NICK ivy").await;
    c.send("USER ivy 0 * :Ivy").await;
    c.expect_numeric("001").await;
    let lines = c.sync().await;
    assert!(
        !lines.iter().any(|l| l.contains(" 900 ")),
        "not logged in: {lines:#?}"
    );
    // A client that took the capability back is refused the same way.
    let mut d = server.connect().await;
    d.send("CAP LS 302").await;
    d.send("CAP REQ :sasl").await;
    d.expect(|l| l.ends_with(" ACK :sasl")).await;
    d.send("CAP REQ :-sasl").await;
    d.expect(|l| l.ends_with(" ACK :-sasl")).await;
    d.send("AUTHENTICATE PLAIN").await;
    assert_eq!(
        d.recv().await,
        ":parley.local 904 * :SASL authentication failed: enable the sasl capability \
         (CAP REQ :sasl) first"
    );
    // With the capability, the same exchange logs in.
    let mut e = server.connect().await;
    e.req_sasl().await;
    e.send("AUTHENTICATE PLAIN").await;
    assert_eq!(e.recv().await, "AUTHENTICATE +");
    e.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain("ivan", "ivan-password-1")
    ))
    .await;
    e.expect_numeric("903").await;
}

/// "FAIL REGISTER COMPLETE_CONNECTION_REQUIRED <message>: Sent by the server if the client sent
/// a REGISTER command before connection registration. The server MUST NOT sent these replies if
/// it advertizes the `before-connect` key": with `accounts.register_before_connect` off, the
/// key is gone from the capability's value and an early REGISTER gets that FAIL; after the
/// welcome REGISTER works.
#[tokio::test]
async fn register_after_connect_only_when_configured() {
    let server = TestServer::start_with(|config| {
        config.accounts.register_before_connect = false;
    })
    .await;
    let mut c = server.connect().await;
    c.nick = "kim".into();
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(
        ls.contains(" draft/account-registration=custom-account-name "),
        "{ls}"
    );
    assert!(!ls.contains("before-connect"), "{ls}");
    c.send("NICK kim").await;
    c.send("USER kim 0 * :Kim").await;
    c.send("REGISTER * * kim-password-1").await;
    assert_eq!(
        c.recv().await,
        ":parley.local FAIL REGISTER COMPLETE_CONNECTION_REQUIRED :Register the connection \
         first (NICK, USER, CAP END), then send REGISTER again"
    );
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c.send("REGISTER * * kim-password-1").await;
    c.expect(|l| l.contains(" REGISTER SUCCESS kim ")).await;

    // By default REGISTER works before the connection is registered, and says so.
    let server = TestServer::start().await;
    let mut d = server.connect().await;
    d.send("CAP LS 302").await;
    let ls = d.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(
        ls.contains(" draft/account-registration=before-connect,custom-account-name "),
        "{ls}"
    );
}
