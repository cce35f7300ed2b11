//! Registration against the real server: CAP negotiation, NICK/USER, the welcome burst, MOTD,
//! the default room, and the refusals before and after registering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{with_command, TestServer};

#[tokio::test]
async fn welcome_burst_then_motd_then_lobby() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice Liddell").await;
    let first = c.recv().await;
    assert_eq!(
        first,
        ":parley.local 001 alice :Welcome to the Parley IRC Network alice!~alice@127.0.0.1"
    );
    for code in ["002", "003", "004"] {
        assert!(c
            .recv()
            .await
            .starts_with(&format!(":parley.local {code} alice ")));
    }
    let isupport = c.expect_numeric("005").await;
    assert!(isupport.contains("CASEMAPPING=ascii"), "{isupport}");
    let rest = c.sync().await;
    let all = rest.join("\n");
    assert!(all.contains("NETWORK=Parley"), "{all}");
    assert!(all.contains("PREFIX=(ov)@+"), "{all}");
    assert!(all.contains(" 251 alice "), "{all}");
    assert!(all.contains(" 375 alice "), "{all}");
    assert!(all.contains(" 372 alice :- Welcome to Parley"), "{all}");
    let motd_end = rest
        .iter()
        .position(|l| l.contains(" 376 "))
        .expect("MOTD end");
    let join = rest
        .iter()
        .position(|l| l == ":alice!~alice@127.0.0.1 JOIN #lobby")
        .expect("lobby join");
    assert!(motd_end < join, "the lobby join follows the MOTD");
    assert!(rest.contains(&":parley.local 353 alice = #lobby :alice".to_string()));
}

#[tokio::test]
async fn cap_negotiation_holds_registration_until_end() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.recv().await;
    assert_eq!(
        ls,
        ":parley.local CAP * LS :account-notify account-tag away-notify batch cap-notify chghost \
         draft/account-registration=before-connect,custom-account-name draft/channel-rename \
         draft/chathistory draft/event-playback draft/message-redaction \
         draft/multiline=max-bytes=4096,max-lines=100 \
         draft/read-marker echo-message extended-join extended-monitor invite-notify \
         labeled-response message-tags multi-prefix parley.chat/e2e \
         sasl=PLAIN,SCRAM-SHA-256,IRCV3BEARER \
         server-time setname soju.im/search \
         userhost-in-names"
    );
    c.send("NICK bob").await;
    c.send("USER bob 0 * :Bob").await;
    c.send("CAP REQ :multi-prefix bogus-cap").await;
    assert_eq!(
        c.recv().await,
        ":parley.local CAP bob NAK :multi-prefix bogus-cap"
    );
    c.send("CAP REQ :multi-prefix").await;
    assert_eq!(c.recv().await, ":parley.local CAP bob ACK :multi-prefix");
    let before_end = c.sync().await;
    assert!(
        before_end.is_empty(),
        "no welcome before CAP END: {before_end:?}"
    );
    c.send("CAP LIST").await;
    // CAP LS 302 turns cap-notify on implicitly, as the spec says.
    assert_eq!(
        c.recv().await,
        ":parley.local CAP bob LIST :cap-notify multi-prefix"
    );
    c.send("CAP END").await;
    c.expect_numeric("001").await;
}

#[tokio::test]
async fn commands_before_registration_get_451() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send("JOIN #x").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 451 * :You have not registered"
    );
    c.send("CAP FROB").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 410 * FROB :Invalid CAP command"
    );
}

#[tokio::test]
async fn nick_errors() {
    let server = TestServer::start().await;
    let _alice = server.client("alice").await;
    let mut c = server.connect().await;
    c.send("NICK").await;
    assert_eq!(c.recv().await, ":parley.local 431 * :No nickname given");
    c.send("NICK 1abc").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 432 * 1abc :Erroneous nickname"
    );
    c.send("NICK ALICE").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 433 * ALICE :Nickname is already in use"
    );
    c.send("USER x 0 * :x").await;
    c.send("NICK carol").await;
    c.expect_numeric("001").await;
    c.send("USER again 0 * :again").await;
    c.expect(|l| l == ":parley.local 462 carol :You may not reregister")
        .await;
}

#[tokio::test]
async fn nick_change_is_seen_by_channel_members() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.sync().await;
    bob.send("NICK robert").await;
    let own = bob.sync().await;
    assert_eq!(own, vec![":bob!~bob@127.0.0.1 NICK :robert".to_string()]);
    let seen = alice.sync().await;
    assert_eq!(with_command(&seen, "NICK").len(), 1, "{seen:?}");
    assert_eq!(seen[0], ":bob!~bob@127.0.0.1 NICK :robert");
    // The old nick is free again and the new one is taken.
    let mut carol = server.connect().await;
    carol.send("NICK robert").await;
    carol.expect_numeric("433").await;
    carol.send("NICK bob").await;
    carol.send("USER c 0 * :c").await;
    carol.expect_numeric("001").await;
}

#[tokio::test]
async fn default_channel_can_be_turned_off() {
    let server = TestServer::start_with(|c| c.server.default_channel = String::new()).await;
    let mut c = server.connect().await;
    c.send("NICK solo").await;
    c.send("USER solo 0 * :Solo").await;
    let lines = c.sync().await;
    assert!(lines.iter().any(|l| l.contains(" 376 ")));
    assert!(with_command(&lines, "JOIN").is_empty(), "{lines:?}");
}

#[tokio::test]
async fn quit_tells_channel_members_and_closes() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut bob = server.client("bob").await;
    alice.sync().await;
    bob.send("QUIT :see you").await;
    let last = bob.expect_closed().await;
    assert_eq!(
        last,
        vec!["ERROR :Closing Link: 127.0.0.1 (Quit: see you)".to_string()]
    );
    alice
        .expect(|l| l == ":bob!~bob@127.0.0.1 QUIT :Quit: see you")
        .await;
}

/// A client that goes away without QUIT (the window closed, the laptop slept, a reset) is shown
/// to the others as "Connection closed", however the socket ended: a FIN, a reset, or a TLS
/// session cut without its close_notify. "Killed" is for an operator's KILL alone.
#[tokio::test]
async fn a_dropped_socket_quits_with_connection_closed() {
    let server = TestServer::start_with(common::enable_tls).await;
    let mut alice = server.client("alice").await;

    // A plain close (FIN).
    let bob = server.client("bob").await;
    alice.sync().await;
    drop(bob);
    alice
        .expect(|l| l == ":bob!~bob@127.0.0.1 QUIT :Connection closed")
        .await;

    // A reset: linger 0 makes the close an RST, as when a client dies with unread input.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.set_zero_linger().unwrap();
    let mut carol = common::Client::over(Box::new(stream));
    carol.register("carol").await;
    alice.sync().await;
    drop(carol);
    alice
        .expect(|l| l == ":carol!~carol@127.0.0.1 QUIT :Connection closed")
        .await;

    // TLS cut without close_notify, as a killed client leaves it.
    let mut dave = server.connect_tls().await;
    dave.register("dave").await;
    alice.sync().await;
    drop(dave);
    alice
        .expect(|l| l == ":dave!~dave@127.0.0.1 QUIT :Connection closed")
        .await;
}

#[tokio::test]
async fn ping_pong_and_unknown_command() {
    let server = TestServer::start().await;
    let mut c = server.client("pinger").await;
    c.send("PING :hello there").await;
    assert_eq!(
        c.recv().await,
        ":parley.local PONG parley.local :hello there"
    );
    c.send("PING").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 409 pinger :No origin specified"
    );
    c.send("FROBNICATE x").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 421 pinger FROBNICATE :Unknown command"
    );
}

/// modern.ircdocs.horse, USER message: "The minimum length of `<username>` is 1, ie. it MUST NOT
/// be empty. If it is empty, the server SHOULD reject the command with ERR_NEEDMOREPARAMS (even if
/// an empty parameter is provided)". The realname is held to the same rule, as ergo and irctest's
/// testEmptyRealname do (`USER username * * :` gets 461): a USER that names nobody is no USER,
/// so registration waits for a real one.
#[tokio::test]
async fn user_with_an_empty_realname_gets_461_and_does_not_register() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send("NICK foo").await;
    c.send("USER u 0 * :").await;
    assert_eq!(
        c.sync().await,
        vec![":parley.local 461 foo USER :Not enough parameters".to_string()]
    );
    // Refused, not counted: a proper USER afterwards still registers (no 462).
    c.send("USER u 0 * :Foo Bar").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 001 foo :Welcome to the Parley IRC Network foo!~u@127.0.0.1"
    );
}

/// The same before NICK: the 461 goes to `*` and nothing is remembered of the refused USER.
#[tokio::test]
async fn user_with_an_empty_realname_before_nick_gets_461() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.send("USER u 0 * :").await;
    assert_eq!(
        c.sync().await,
        vec![":parley.local 461 * USER :Not enough parameters".to_string()]
    );
    c.send("NICK foo").await;
    assert_eq!(c.sync().await, Vec::<String>::new());
    c.send("USER u 0 * :Foo").await;
    c.expect_numeric("001").await;
}

/// "If the server's list of capabilities is too long to fit in a single line, it MAY send
/// multiple lines. When sent, all lines except the last one MUST have an asterisk (*) as a
/// parameter before the capability list" (IRCv3 capability negotiation, CAP LS 302). A long
/// server name and a long nick push the list past 510 bytes: it comes in lines that fit, the
/// first marked `*`, and together they name every capability once.
#[tokio::test]
async fn a_cap_ls_too_long_for_one_line_continues_with_an_asterisk() {
    let name = format!("irc.{}.example.org", "long-server-name".repeat(3));
    let server = TestServer::start_with(|c| c.server.name = name.clone()).await;
    let mut one = server.connect().await;
    one.send("CAP LS").await;
    let old = one.recv().await;
    assert!(
        old.starts_with(&format!(":{name} CAP * LS :account-notify ")),
        "{old}"
    );
    let mut c = server.connect().await;
    let nick = "n".repeat(30);
    c.send(&format!("NICK {nick}")).await;
    c.send("CAP LS 302").await;
    let first = c.recv().await;
    let second = c.recv().await;
    let head = format!(":{name} CAP {nick} LS ");
    assert!(first.starts_with(&format!("{head}* :")), "{first}");
    assert!(second.starts_with(&format!("{head}:")), "{second}");
    for line in [&first, &second] {
        assert!(line.len() <= 510, "{} bytes: {line}", line.len());
    }
    let caps: Vec<&str> = [&first, &second]
        .iter()
        .flat_map(|l| l.split_once(" :").map_or("", |(_, caps)| caps).split(' '))
        .collect();
    for cap in [
        "account-notify",
        "sasl=PLAIN,SCRAM-SHA-256,IRCV3BEARER",
        "userhost-in-names",
    ] {
        assert_eq!(
            caps.iter().filter(|c| **c == cap).count(),
            1,
            "{cap}: {caps:?}"
        );
    }
    c.send("CAP END").await;
    c.send("USER u 0 * :U").await;
    c.expect(|l| l.contains(" 001 ")).await;
}
