//! PRIVMSG and NOTICE against the real server: channel fan-out without echo, private messages,
//! several targets at once, every error reply (and NOTICE's silence), and AWAY replies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command_of, with_command, TestServer};

#[tokio::test]
async fn channel_message_reaches_every_other_member_without_echo() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;

    alice.send("PRIVMSG #lobby :hello, everyone").await;
    assert!(alice.sync().await.is_empty(), "the sender gets no echo");
    let expected = ":alice!~alice@127.0.0.1 PRIVMSG #lobby :hello, everyone".to_string();
    assert_eq!(bob.sync().await, vec![expected.clone()]);
    assert_eq!(carol.sync().await, vec![expected]);

    // The channel name is matched case-insensitively and shown as it was created.
    bob.send("NOTICE #LOBBY :a notice").await;
    assert!(bob.sync().await.is_empty(), "the sender gets no echo");
    let expected = ":bob!~bob@127.0.0.1 NOTICE #lobby :a notice".to_string();
    assert_eq!(alice.sync().await, vec![expected.clone()]);
    assert_eq!(carol.sync().await, vec![expected]);
}

#[tokio::test]
async fn private_message_and_notice_to_a_nick() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;

    alice.send("PRIVMSG bob :just between us").await;
    assert!(alice.sync().await.is_empty());
    assert_eq!(
        bob.sync().await,
        vec![":alice!~alice@127.0.0.1 PRIVMSG bob :just between us".to_string()]
    );
    assert!(carol.sync().await.is_empty(), "nobody else sees it");

    alice.send("NOTICE bob :psst").await;
    assert!(alice.sync().await.is_empty());
    assert_eq!(
        bob.sync().await,
        vec![":alice!~alice@127.0.0.1 NOTICE bob :psst".to_string()]
    );
}

#[tokio::test]
async fn nick_target_is_case_insensitive() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    alice.send("PRIVMSG BOB :shouting your name").await;
    assert!(alice.sync().await.is_empty());
    // The recipient sees its own nick as it chose it.
    assert_eq!(
        bob.sync().await,
        vec![":alice!~alice@127.0.0.1 PRIVMSG bob :shouting your name".to_string()]
    );
}

#[tokio::test]
async fn several_targets_in_one_message() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;

    carol.send("PRIVMSG alice,#lobby :to both").await;
    assert!(carol.sync().await.is_empty());
    // alice gets it twice: once privately, once through the channel, in target order.
    assert_eq!(
        alice.sync().await,
        vec![
            ":carol!~carol@127.0.0.1 PRIVMSG alice :to both".to_string(),
            ":carol!~carol@127.0.0.1 PRIVMSG #lobby :to both".to_string(),
        ]
    );
    assert_eq!(
        bob.sync().await,
        vec![":carol!~carol@127.0.0.1 PRIVMSG #lobby :to both".to_string()]
    );

    // A bad target among good ones gets its error; the others still get the message.
    carol.send("PRIVMSG nobody,bob :partial").await;
    assert_eq!(
        carol.sync().await,
        vec![":parley.local 401 carol nobody :No such nick/channel".to_string()]
    );
    assert_eq!(
        bob.sync().await,
        vec![":carol!~carol@127.0.0.1 PRIVMSG bob :partial".to_string()]
    );
}

#[tokio::test]
async fn privmsg_errors() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;

    alice.send("PRIVMSG").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 411 alice :No recipient given (PRIVMSG)"
    );
    alice.send("PRIVMSG #lobby").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 412 alice :No text to send"
    );
    alice.send("PRIVMSG #lobby :").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 412 alice :No text to send"
    );
    alice.send("PRIVMSG ghost :anyone?").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 401 alice ghost :No such nick/channel"
    );
    alice.send("PRIVMSG #nowhere :anyone?").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 403 alice #nowhere :No such channel"
    );
    assert!(alice.sync().await.is_empty(), "one reply per error");
}

#[tokio::test]
async fn outsider_cannot_send_to_a_no_external_channel() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    alice.send("JOIN #private").await;
    alice.sync().await;

    // New channels are +n: only members may talk there.
    bob.send("PRIVMSG #private :let me in").await;
    assert_eq!(
        bob.sync().await,
        vec![":parley.local 404 bob #private :Cannot send to channel (+n)".to_string()]
    );
    bob.send("NOTICE #private :let me in").await;
    assert!(bob.sync().await.is_empty(), "NOTICE gets no error");
    assert!(alice.sync().await.is_empty(), "nothing reached the channel");

    // With -n, outsiders may send.
    alice.send("MODE #private -n").await;
    alice.sync().await;
    bob.send("PRIVMSG #private :from outside").await;
    assert!(bob.sync().await.is_empty());
    assert_eq!(
        alice.sync().await,
        vec![":bob!~bob@127.0.0.1 PRIVMSG #private :from outside".to_string()]
    );
}

#[tokio::test]
async fn too_many_targets() {
    let server = TestServer::start_with(|c| c.limits.targets_per_message = 2).await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;

    alice.send("PRIVMSG bob,carol,#lobby :hi").await;
    assert_eq!(
        alice.sync().await,
        vec![":parley.local 407 alice bob :Too many targets".to_string()]
    );
    // Nothing was delivered to anyone.
    assert!(bob.sync().await.is_empty());
    assert!(carol.sync().await.is_empty());

    // At the limit it works.
    alice.send("PRIVMSG bob,carol :hi").await;
    assert!(alice.sync().await.is_empty());
    assert_eq!(bob.sync().await.len(), 1);
    assert_eq!(carol.sync().await.len(), 1);

    // NOTICE with too many targets is silently dropped.
    alice.send("NOTICE bob,carol,#lobby :hi").await;
    assert!(alice.sync().await.is_empty());
    assert!(bob.sync().await.is_empty());
}

#[tokio::test]
async fn notice_never_draws_an_error() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    bob.send("AWAY :gone fishing").await;
    bob.sync().await;
    for line in [
        "NOTICE",
        "NOTICE #lobby",
        "NOTICE #lobby :",
        "NOTICE ghost :hi",
        "NOTICE #nowhere :hi",
        "NOTICE bob :no away reply either",
    ] {
        alice.send(line).await;
        let replies = alice.sync().await;
        assert!(replies.is_empty(), "{line}: {replies:?}");
    }
    assert_eq!(
        bob.sync().await,
        vec![":alice!~alice@127.0.0.1 NOTICE bob :no away reply either".to_string()]
    );
}

#[tokio::test]
async fn away_status_and_reply() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;

    bob.send("AWAY :gone fishing").await;
    assert_eq!(
        bob.sync().await,
        vec![":parley.local 306 bob :You have been marked as being away".to_string()]
    );

    alice.send("PRIVMSG bob :are you there?").await;
    assert_eq!(
        alice.sync().await,
        vec![":parley.local 301 alice bob :gone fishing".to_string()]
    );
    // The message is still delivered.
    assert_eq!(
        bob.sync().await,
        vec![":alice!~alice@127.0.0.1 PRIVMSG bob :are you there?".to_string()]
    );

    // A channel message does not draw away replies.
    alice.send("PRIVMSG #lobby :anyone?").await;
    assert!(alice.sync().await.is_empty());

    bob.send("AWAY").await;
    let lines = bob.sync().await;
    assert_eq!(
        with_command(&lines, "305"),
        vec![":parley.local 305 bob :You are no longer marked as being away"]
    );
    assert_eq!(lines.len(), 2, "the channel message and 305: {lines:?}");

    alice.send("PRIVMSG bob :back?").await;
    assert!(alice.sync().await.is_empty(), "no 301 once back");
}

#[tokio::test]
async fn away_message_is_cut_to_awaylen_and_empty_text_unsets() {
    let server = TestServer::start_with(|c| c.limits.away_len = 10).await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    bob.send("AWAY :0123456789abcdef").await;
    bob.sync().await;
    alice.send("PRIVMSG bob :hi").await;
    assert_eq!(
        alice.sync().await,
        vec![":parley.local 301 alice bob :0123456789"]
    );
    bob.send("AWAY :").await;
    assert_eq!(
        with_command(&bob.sync().await, "305").len(),
        1,
        "an empty away text means back"
    );
    alice.send("PRIVMSG bob :hi").await;
    assert!(alice.sync().await.is_empty());
}

#[tokio::test]
async fn a_nick_still_registering_cannot_be_messaged() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut pending = server.connect().await;
    pending.send("NICK pending").await;
    pending.send("PING :seen").await;
    assert_eq!(
        pending.recv().await,
        ":parley.local PONG parley.local :seen"
    );
    alice.send("PRIVMSG pending :hello?").await;
    assert_eq!(
        alice.sync().await,
        vec![":parley.local 401 alice pending :No such nick/channel"]
    );
    // Once registered it can.
    pending.send("USER pending 0 * :Pending").await;
    pending.expect(|l| command_of(l) == "376").await;
    pending.sync().await;
    assert_eq!(
        alice.sync().await,
        vec![":pending!~pending@127.0.0.1 JOIN #lobby"]
    );
    alice.send("PRIVMSG pending :hello!").await;
    assert!(alice.sync().await.is_empty());
    assert_eq!(
        pending.sync().await,
        vec![":alice!~alice@127.0.0.1 PRIVMSG pending :hello!".to_string()]
    );
}

/// A sender's lines may wait in the history writer several at a time; they still arrive in the
/// order sent, each once, and a PART sent right behind them never overtakes them.
#[tokio::test]
async fn a_burst_of_messages_arrives_in_order_before_the_senders_part() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    let mut burst = String::new();
    for i in 0..300 {
        burst.push_str(&format!("PRIVMSG #lobby :line {i}\r\n"));
    }
    burst.push_str("PART #lobby :done\r\n");
    alice.send_raw(burst.as_bytes()).await;
    let mut got = Vec::new();
    loop {
        let line = bob.recv().await;
        if line.contains(" PART ") {
            assert_eq!(line, ":alice!~alice@127.0.0.1 PART #lobby :done");
            break;
        }
        got.push(line);
    }
    let expected: Vec<String> = (0..300)
        .map(|i| format!(":alice!~alice@127.0.0.1 PRIVMSG #lobby :line {i}"))
        .collect();
    assert_eq!(got, expected);
    assert!(bob.sync().await.is_empty(), "nothing after the PART");
}
