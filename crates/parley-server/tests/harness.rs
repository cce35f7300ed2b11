//! The test harness itself: `expect` must not walk past an error reply to the line it waits for,
//! and `expect_numeric` must match a numeric reply, not a message that quotes one. Every other
//! test leans on these; a lenient helper lets a failed step pass unseen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command_of, is_error_reply, with_command, TestServer};

#[test]
fn the_command_is_the_word_after_tags_and_source() {
    assert_eq!(
        command_of(":parley.local 403 alice #x :No such channel"),
        "403"
    );
    assert_eq!(
        command_of("@time=2026-01-01T00:00:00.000Z :bob!~bob@h PRIVMSG alice :a 403 b"),
        "PRIVMSG"
    );
    assert_eq!(command_of("@label=1 FAIL SESSION NO_SESSION :none"), "FAIL");
    assert_eq!(command_of("ERROR :Closing link"), "ERROR");
    assert_eq!(command_of("AUTHENTICATE +"), "AUTHENTICATE");
    assert_eq!(command_of(""), "");

    let lines = [
        "@batch=h1 :w!~w@h PRIVMSG #c :a".to_string(),
        ":w!~w@h PRIVMSG #c :b".to_string(),
        ":w!~w@h NOTICE #c :PRIVMSG".to_string(),
    ];
    assert_eq!(with_command(&lines, "PRIVMSG").len(), 2, "{lines:?}");
}

#[test]
fn error_replies_are_4xx_and_5xx_numerics_fail_and_error() {
    for line in [
        ":parley.local 401 alice bob :No such nick/channel",
        ":parley.local 599 alice :x",
        ":parley.local FAIL SESSION NO_SESSION :No session",
        "@label=x :parley.local 433 * nina :Nickname is already in use",
        "ERROR :Closing link",
    ] {
        assert!(is_error_reply(line), "{line}");
    }
    for line in [
        ":parley.local 001 alice :Welcome",
        ":parley.local 399 alice :x",
        ":parley.local 600 alice :x",
        ":parley.local WARN REHASH CERTS_EXPIRED :x",
        ":parley.local NOTE * OPER_MESSAGE :x",
        ":bob!~bob@127.0.0.1 PRIVMSG alice :ERROR 403 FAIL",
        ":parley.local 4033 alice :x",
    ] {
        assert!(!is_error_reply(line), "{line}");
    }
}

#[tokio::test]
async fn expect_numeric_skips_a_message_that_quotes_the_code() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    bob.send("PRIVMSG alice :the server said 403 to me").await;
    bob.sync().await;
    alice.send("PART #nowhere").await;
    let reply = alice.expect_numeric("403").await;
    assert_eq!(reply, ":parley.local 403 alice #nowhere :No such channel");
}

/// The panic message of a test step run on its own task, or `None` when it did not panic.
async fn panic_of(step: impl std::future::Future<Output = ()> + Send + 'static) -> Option<String> {
    let err = tokio::spawn(step).await.err()?;
    let payload = err.into_panic();
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn expect_fails_on_an_error_reply_before_the_match() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let panic = panic_of(async move {
        alice.send("PART #nowhere").await;
        alice.send("PING after-the-error").await;
        alice.expect(|l| l.ends_with("after-the-error")).await;
    })
    .await
    .expect("expect walked past the 403");
    assert!(panic.contains("an error reply came before"), "{panic}");
    assert!(panic.contains(" 403 alice #nowhere "), "{panic}");
}

#[tokio::test]
async fn an_error_the_matcher_names_or_the_lenient_helper_passes() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.send("PART #nowhere").await;
    let reply = alice.expect(is_error_reply).await;
    assert_eq!(command_of(&reply), "403");

    alice.send("PART #nowhere").await;
    alice.send("PING after-the-error").await;
    let pong = alice
        .expect_skipping_errors(|l| l.ends_with("after-the-error"))
        .await;
    assert_eq!(command_of(&pong), "PONG");
}
