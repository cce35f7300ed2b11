//! Always-on accounts on one node (issue 26, item 2): an account that turned it on stays in its
//! channels, away, holding its nick, when its last connection closes; its next login takes the
//! presence over (same nick, a JOIN burst, away cleared) and, for a client without
//! chathistory, plays back what was said meanwhile, bounded by `accounts.replay_limit` with an
//! "N more" notice. The presence survives a restart on the same database.

mod common;

use common::{account, command_of, sasl_plain, Client, TestServer};
use parley_server::config::Config;

/// Log `account` in with SASL PLAIN (its password is `<account>-password`, as
/// `common::account` makes it) asking for `caps` too, registering with `nick`; returns the
/// client and everything up to the end of its welcome and what follows at once.
async fn login(
    addr: std::net::SocketAddr,
    nick: &str,
    account: &str,
    caps: &str,
) -> (Client, Vec<String>) {
    let mut c = Client::connect(addr).await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.expect(|l| l.contains(" CAP * LS ")).await;
    c.send(format!("CAP REQ :sasl {caps}").trim_end()).await;
    c.expect(|l| l.contains(" CAP ") && l.contains(" ACK "))
        .await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("AUTHENTICATE PLAIN").await;
    // Walks past the 433 a NICK of the kept presence's nick gets before the login: the
    // login then takes that nick over (asserted by the callers, on the 001).
    c.expect_skipping_errors(|l| l == "AUTHENTICATE +").await;
    c.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain(account, &format!("{account}-password"))
    ))
    .await;
    c.expect_numeric("903").await;
    c.send("CAP END").await;
    let mut seen = vec![c.expect_numeric("001").await];
    seen.extend(c.sync().await);
    (c, seen)
}

fn config_with(change: impl FnOnce(&mut Config)) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        config.accounts.replay_limit = 3;
        change(config);
    }
}

/// alice (always-on) in #room with bob, then gone: bob sees no QUIT but an AWAY, WHOIS and
/// NAMES still show her, and her nick stays hers.
async fn alice_kept_in_room(server: &TestServer) -> (Client, Client) {
    let mut alice = account(server.addr, "alice").await;
    alice.send("ALWAYSON").await;
    alice.expect(|l| l.contains(" ALWAYSON OFF ")).await;
    alice.send("ALWAYSON ON").await;
    alice.expect(|l| l.contains(" ALWAYSON ON ")).await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    let mut bob = server.client("bob").await;
    bob.send("CAP REQ :away-notify").await;
    bob.expect(|l| l.contains(" ACK ")).await;
    bob.send("JOIN #room").await;
    bob.expect_numeric("366").await;
    alice.sync().await;
    alice.send("QUIT :laptop closed").await;
    alice.expect_closed().await;
    let away = bob
        .expect(|l| command_of(l) == "AWAY" || command_of(l) == "QUIT")
        .await;
    assert!(
        away.starts_with(":alice!")
            && away.ends_with(" AWAY :Not connected (always-on: messages are kept)"),
        "{away}"
    );
    (alice, bob)
}

#[tokio::test]
async fn an_always_on_account_stays_away_and_catches_up_at_its_next_login() {
    let server = TestServer::start_with(config_with(|_| {})).await;
    let (_gone, mut bob) = alice_kept_in_room(&server).await;

    bob.send("WHOIS alice").await;
    let whois = bob.sync().await;
    assert!(whois.iter().any(|l| command_of(l) == "311"), "{whois:?}");
    assert!(
        whois
            .iter()
            .any(|l| command_of(l) == "301" && l.contains("always-on")),
        "{whois:?}"
    );
    bob.send("NAMES #room").await;
    let names = bob.expect_numeric("353").await;
    assert!(names.contains("alice"), "{names}");
    let mut guest = server.connect().await;
    guest.send("NICK alice").await;
    let taken = guest
        .expect_skipping_errors(|l| command_of(l) == "433")
        .await;
    assert!(taken.contains(" alice "), "{taken}");

    for n in 1..=5 {
        bob.send(&format!("PRIVMSG #room :line {n}")).await;
    }
    bob.send("PRIVMSG alice :are you there?").await;
    bob.send("PRIVMSG alice :ping me").await;
    let said = bob.sync().await;
    assert!(!said.iter().any(|l| command_of(l) == "401"), "{said:?}");

    // No chathistory: replayed, three lines per conversation (accounts.replay_limit), then
    // the count of the rest. Asked for under another nick, the login gets the kept one.
    let (mut alice, seen) = login(server.addr, "alice_", "alice", "server-time batch").await;
    assert!(seen[0].contains(" 001 alice "), "{seen:?}");
    let join = seen
        .iter()
        .position(|l| command_of(l) == "JOIN" && l.ends_with("#room"))
        .unwrap_or_else(|| panic!("no JOIN burst: {seen:#?}"));
    assert!(seen[join].contains(" :alice!"), "{seen:?}");
    assert!(
        seen.iter()
            .any(|l| command_of(l) == "353" && l.contains("bob")),
        "{seen:#?}"
    );
    let replayed: Vec<&String> = seen
        .iter()
        .filter(|l| command_of(l) == "PRIVMSG" && l.contains(" #room :"))
        .collect();
    assert_eq!(replayed.len(), 3, "{seen:#?}");
    assert!(
        replayed[0].ends_with(":line 1") && replayed[2].ends_with(":line 3"),
        "{replayed:?}"
    );
    assert!(
        replayed
            .iter()
            .all(|l| l.contains("time=") && l.contains("batch=")),
        "{replayed:?}"
    );
    assert!(
        seen.iter().any(|l| command_of(l) == "NOTICE"
            && l.contains("#room: 2 more lines in history (use /chathistory")),
        "{seen:#?}"
    );
    let private: Vec<&String> = seen
        .iter()
        .filter(|l| command_of(l) == "PRIVMSG" && l.contains(" alice :"))
        .collect();
    assert_eq!(private.len(), 2, "{seen:#?}");
    assert!(private[0].ends_with(":are you there?"), "{private:?}");
    assert!(seen
        .iter()
        .any(|l| l.contains("BATCH +") && l.contains(" chathistory #room")));

    // bob saw her come back from away, not a JOIN.
    let back = bob.sync().await;
    assert!(
        back.iter()
            .any(|l| l.starts_with(":alice!") && l.ends_with(" AWAY")),
        "{back:?}"
    );
    assert!(!back.iter().any(|l| command_of(l) == "JOIN"), "{back:?}");
    bob.send("PRIVMSG #room :welcome back").await;
    alice
        .expect(|l| l.ends_with("PRIVMSG #room :welcome back"))
        .await;
    bob.send("WHOIS alice").await;
    let whois = bob.sync().await;
    assert!(!whois.iter().any(|l| command_of(l) == "301"), "{whois:?}");
}

#[tokio::test]
async fn a_client_with_chathistory_is_sent_no_catch_up() {
    let server = TestServer::start_with(config_with(|_| {})).await;
    let (_gone, mut bob) = alice_kept_in_room(&server).await;
    bob.send("PRIVMSG #room :while away").await;
    bob.send("PRIVMSG alice :psst").await;
    bob.sync().await;
    let (_alice, seen) = login(
        server.addr,
        "alice",
        "alice",
        "draft/chathistory batch server-time message-tags",
    )
    .await;
    assert!(seen[0].contains(" 001 alice "), "{seen:?}");
    assert!(
        seen.iter()
            .any(|l| command_of(l) == "JOIN" && l.ends_with("#room")),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|l| command_of(l) == "PRIVMSG"),
        "a chathistory client fetches for itself: {seen:#?}"
    );
}

#[tokio::test]
async fn without_always_on_the_last_connection_quits() {
    let server = TestServer::start_with(config_with(|_| {})).await;
    let mut alice = account(server.addr, "alice").await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    let mut bob = server.client("bob").await;
    bob.send("JOIN #room").await;
    bob.expect_numeric("366").await;
    alice.send("QUIT").await;
    alice.expect_closed().await;
    bob.expect(|l| l.starts_with(":alice!") && command_of(l) == "QUIT")
        .await;
}

#[tokio::test]
async fn always_on_refuses_guests_and_a_server_that_turned_it_off() {
    let server = TestServer::start_with(config_with(|_| {})).await;
    let mut guest = server.client("guest").await;
    guest.send("ALWAYSON ON").await;
    guest
        .expect_skipping_errors(|l| l.contains("FAIL ALWAYSON ACCOUNT_REQUIRED"))
        .await;
    let off = TestServer::start_with(config_with(|c| {
        c.accounts.always_on = parley_server::config::AlwaysOnPolicy::Off;
    }))
    .await;
    let mut alice = account(off.addr, "alice").await;
    alice.send("ALWAYSON ON").await;
    alice
        .expect_skipping_errors(|l| l.contains("FAIL ALWAYSON DISABLED"))
        .await;
}

#[tokio::test]
async fn a_kept_presence_comes_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = || {
        let mut config = common::test_config(&dir);
        config.accounts.replay_limit = 3;
        config
    };
    let first = parley_server::start(config()).await.expect("start");
    let addr = first.plain_addrs()[0];
    let mut alice = account(addr, "alice").await;
    alice.send("ALWAYSON ON").await;
    alice.expect(|l| l.contains(" ALWAYSON ON ")).await;
    alice.send("JOIN #room").await;
    alice.expect_numeric("366").await;
    alice.send("QUIT").await;
    alice.expect_closed().await;
    first.shutdown();
    assert!(first.wait(std::time::Duration::from_secs(5)).await);

    let second = parley_server::start(config()).await.expect("restart");
    let addr = second.plain_addrs()[0];
    let mut bob = Client::connect(addr).await;
    bob.register("bob").await;
    bob.send("JOIN #room").await;
    let joined = bob.sync().await;
    assert!(
        joined
            .iter()
            .any(|l| command_of(l) == "353" && l.contains("alice")),
        "{joined:#?}"
    );
    bob.send("WHOIS alice").await;
    let whois = bob.sync().await;
    assert!(whois.iter().any(|l| command_of(l) == "301"), "{whois:?}");
    bob.send("PRIVMSG #room :said after the restart").await;
    bob.sync().await;

    let (_alice, seen) = login(addr, "alice", "alice", "").await;
    assert!(
        seen.iter()
            .any(|l| command_of(l) == "JOIN" && l.ends_with("#room")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|l| command_of(l) == "PRIVMSG"
            && l.contains(" #room :[")
            && l.ends_with("said after the restart")),
        "{seen:#?}"
    );
    second.shutdown();
}

/// `accounts.always_on_limit` bounds the users kept without a session (anyone may register
/// accounts): past it, a leaving always-on user quits as usual.
#[tokio::test]
async fn past_the_always_on_limit_a_leaving_user_quits() {
    let server = TestServer::start_with(config_with(|c| c.accounts.always_on_limit = 1)).await;
    let (_gone, mut bob) = alice_kept_in_room(&server).await;
    let mut carol = account(server.addr, "carol").await;
    carol.send("ALWAYSON ON").await;
    carol.expect(|l| l.contains(" ALWAYSON ON ")).await;
    carol.send("JOIN #room").await;
    carol.expect_numeric("366").await;
    bob.sync().await;
    carol.send("QUIT").await;
    carol.expect_closed().await;
    let gone = bob
        .expect(|l| l.starts_with(":carol!") && matches!(command_of(l), "QUIT" | "AWAY"))
        .await;
    assert_eq!(command_of(&gone), "QUIT", "{gone}");
}

/// An operator's SUSPEND or KILL ends a kept presence, which has no connection to close: its
/// channels see it QUIT, and a suspended account is not kept again.
#[tokio::test]
async fn suspend_and_kill_end_a_kept_presence() {
    let server = TestServer::start_with(config_with(|c| {
        c.operators.admins = vec!["root".into()];
    }))
    .await;
    let mut root = account(server.addr, "root").await;
    let (_gone, mut bob) = alice_kept_in_room(&server).await;
    root.send("SUSPEND alice :abuse").await;
    root.sync().await;
    let quit = bob
        .expect(|l| l.starts_with(":alice!") && command_of(l) == "QUIT")
        .await;
    assert!(quit.ends_with(":Account suspended: abuse"), "{quit}");
    bob.send("NAMES #room").await;
    let names = bob.expect_numeric("353").await;
    assert!(!names.contains("alice"), "{names}");

    let mut carol = account(server.addr, "carol").await;
    carol.send("ALWAYSON ON").await;
    carol.expect(|l| l.contains(" ALWAYSON ON ")).await;
    carol.send("JOIN #room").await;
    carol.expect_numeric("366").await;
    bob.sync().await;
    carol.send("QUIT").await;
    carol.expect_closed().await;
    bob.expect(|l| l.starts_with(":carol!") && command_of(l) == "AWAY")
        .await;
    root.send("KILL carol :enough").await;
    root.sync().await;
    let quit = bob
        .expect(|l| l.starts_with(":carol!") && command_of(l) == "QUIT")
        .await;
    assert!(quit.contains("Killed (root (enough))"), "{quit}");
}
