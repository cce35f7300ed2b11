//! Several devices, one presence (`accounts.multiclient`, issue 26 item 1) against the real
//! server: two connections logged in to one account with SASL PLAIN are one user: one nick,
//! one set of channels, each line one session sends seen by the other as echo-message shows
//! it (same msgid as the channel got), private messages to every session, JOIN/PART/NICK on
//! one seen by the other, the last session's QUIT the only one others see, the session count
//! in WHOIS, the per-account cap, and with `multiclient = false` today's separate users.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{command_of, sasl_plain, Client, TestServer};

/// Log in to `account` (password `<account>-pw`) sending NICK `nick` first, asking for
/// `caps` too (see [`common::sasl_session`]).
async fn session(
    server: &TestServer,
    nick: &str,
    account: &str,
    caps: &str,
) -> (Client, Vec<String>) {
    common::sasl_session(server.addr, nick, account, &format!("{account}-pw"), caps).await
}

/// A guest with `caps`.
async fn guest(server: &TestServer, nick: &str, caps: &str) -> Client {
    let mut c = server.connect().await;
    if !caps.is_empty() {
        c.send(&format!("CAP REQ :{caps}")).await;
        c.expect(|l| l.contains(" ACK ")).await;
        c.send("CAP END").await;
    }
    c.register(nick).await;
    c
}

async fn server_with_alice(change: impl FnOnce(&mut parley_server::Config)) -> TestServer {
    let server = TestServer::start_with(change).await;
    server.create_account("alice", "alice-pw").await;
    server
}

fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

const TAGS: &str = "message-tags server-time";

#[tokio::test]
async fn a_second_login_is_the_same_user_with_its_channels() {
    let server = server_with_alice(|_| {}).await;
    let (mut a, _) = session(&server, "alice", "alice", TAGS).await;
    a.send("JOIN #room").await;
    a.send("TOPIC #room :planning").await;
    a.sync().await;
    let mut carol = guest(&server, "carol", TAGS).await;
    carol.send("JOIN #room").await;
    carol.sync().await;
    a.sync().await;

    // Whatever NICK it sent, the second session is alice, and its burst shows alice's channels.
    let (b, burst) = session(&server, "phone", "alice", TAGS).await;
    assert_eq!(b.nick, "alice", "{burst:?}");
    let join = burst
        .iter()
        .position(|l| command_of(l) == "JOIN" && l.ends_with(" JOIN #room"))
        .unwrap_or_else(|| panic!("no JOIN #room in the burst: {burst:#?}"));
    assert!(burst[join].contains(":alice!"), "{}", burst[join]);
    let topic = burst
        .iter()
        .position(|l| command_of(l) == "332")
        .expect("topic");
    let names = burst
        .iter()
        .position(|l| command_of(l) == "353" && l.contains(" #room "))
        .expect("names");
    assert!(join < topic && topic < names, "{burst:#?}");
    assert!(burst[topic].ends_with(":planning"), "{}", burst[topic]);
    assert!(burst[names].contains("@alice") && burst[names].contains("carol"));
    // alice is listed once, not once per session.
    let listed = burst[names].rsplit(" :").next().unwrap_or("");
    assert_eq!(listed, "@alice carol", "{}", burst[names]);

    // Nobody else saw anything: no JOIN, no nick change.
    let seen = carol.sync().await;
    assert!(seen.is_empty(), "carol saw {seen:?}");
    let seen = a.sync().await;
    assert!(seen.is_empty(), "the first session saw {seen:?}");
}

#[tokio::test]
async fn a_line_from_one_session_reaches_the_other_as_its_echo() {
    let server = server_with_alice(|_| {}).await;
    let (mut a, _) = session(&server, "alice", "alice", &format!("{TAGS} echo-message")).await;
    a.send("JOIN #room").await;
    a.sync().await;
    let mut carol = guest(&server, "carol", TAGS).await;
    carol.send("JOIN #room").await;
    carol.sync().await;
    a.sync().await;
    let (mut b, _) = session(&server, "alice", "alice", TAGS).await;

    a.send("@+draft/reply=x PRIVMSG #room :hello from the laptop")
        .await;
    let at_carol = carol.expect(|l| l.contains(" PRIVMSG #room ")).await;
    let at_b = b.expect(|l| l.contains(" PRIVMSG #room ")).await;
    let echo = a.expect(|l| l.contains(" PRIVMSG #room ")).await;
    let msgid = tag(&at_carol, "msgid").expect("msgid");
    assert_eq!(tag(&at_b, "msgid"), Some(msgid), "{at_b}");
    assert_eq!(tag(&echo, "msgid"), Some(msgid), "{echo}");
    assert!(tag(&at_b, "time").is_some(), "{at_b}");
    assert!(
        at_b.contains("+draft/reply=x"),
        "client tags intact: {at_b}"
    );
    assert!(
        at_b.contains(" :alice!") && at_b.ends_with(":hello from the laptop"),
        "{at_b}"
    );

    // b has no echo-message: what it sends comes back to a (once), never to b.
    b.send("PRIVMSG #room :hello from the phone").await;
    let at_carol = carol.expect(|l| l.contains(" PRIVMSG #room ")).await;
    let at_a = a.expect(|l| l.contains(" PRIVMSG #room ")).await;
    assert_eq!(tag(&at_a, "msgid"), tag(&at_carol, "msgid"));
    assert!(at_a.ends_with(":hello from the phone"), "{at_a}");
    let rest = a.sync().await;
    assert!(rest.iter().all(|l| !l.contains("PRIVMSG")), "{rest:?}");
    let rest = b.sync().await;
    assert!(rest.iter().all(|l| !l.contains("PRIVMSG")), "{rest:?}");

    // A private message to alice reaches both sessions; one from b to carol reaches a too.
    carol.send("PRIVMSG alice :psst").await;
    a.expect(|l| l.contains(" PRIVMSG alice :psst")).await;
    b.expect(|l| l.contains(" PRIVMSG alice :psst")).await;
    b.send("NOTICE carol :noted").await;
    carol.expect(|l| l.contains(" NOTICE carol :noted")).await;
    let at_a = a.expect(|l| l.contains(" NOTICE carol :noted")).await;
    assert!(at_a.contains(":alice!"), "{at_a}");
}

#[tokio::test]
async fn join_part_and_nick_on_one_session_apply_to_the_user() {
    let server = server_with_alice(|_| {}).await;
    let (mut a, _) = session(&server, "alice", "alice", "").await;
    let (mut b, _) = session(&server, "alice", "alice", "multi-prefix").await;

    a.send("JOIN #new").await;
    a.expect(|l| l.ends_with(" JOIN #new")).await;
    let b_join = b.sync().await;
    let join = b_join
        .iter()
        .position(|l| l.ends_with(" JOIN #new"))
        .unwrap_or_else(|| panic!("b did not join: {b_join:?}"));
    let names = b_join
        .iter()
        .position(|l| command_of(l) == "353")
        .expect("names for b");
    assert!(join < names);
    assert!(b_join[names].contains(" #new :@alice"), "{}", b_join[names]);
    assert!(b_join.iter().any(|l| command_of(l) == "366"));

    b.send("PART #new :bye").await;
    b.expect(|l| l.contains(" PART #new")).await;
    a.expect(|l| l.contains(" PART #new")).await;

    a.send("NICK alicia").await;
    a.expect(|l| l.contains(" NICK :alicia") || l.contains(" NICK alicia"))
        .await;
    b.expect(|l| l.contains(" NICK :alicia") || l.contains(" NICK alicia"))
        .await;
    // b's own replies now name it by the new nick.
    b.send("WHOIS alicia").await;
    let user = b.expect_numeric("311").await;
    assert!(user.contains(" 311 alicia alicia "), "{user}");
}

#[tokio::test]
async fn only_the_last_session_to_leave_is_seen_leaving() {
    let server = server_with_alice(|_| {}).await;
    let (mut a, _) = session(&server, "alice", "alice", "").await;
    let (mut b, _) = session(&server, "alice", "alice", "").await;
    let mut carol = guest(&server, "carol", "").await;
    carol.send("MONITOR + alice").await;
    carol.expect_numeric("730").await;
    carol.sync().await;

    a.send("QUIT :laptop closed").await;
    a.expect_closed().await;
    // alice is still in #lobby, with carol, and online for MONITOR.
    b.send("PRIVMSG #lobby :still here").await;
    let seen = carol.expect(|l| l.contains("PRIVMSG #lobby")).await;
    assert!(seen.contains(":alice!"), "{seen}");
    let seen = carol.sync().await;
    assert!(
        seen.iter()
            .all(|l| !l.contains("QUIT") && command_of(l) != "731"),
        "carol saw {seen:?}"
    );

    b.send("QUIT :phone off").await;
    b.expect_closed().await;
    let quit = carol.expect(|l| command_of(l) == "QUIT").await;
    assert!(
        quit.starts_with(":alice!") && quit.ends_with("phone off"),
        "{quit}"
    );
    carol.expect_numeric("731").await;
}

#[tokio::test]
async fn whois_shows_the_session_count_to_the_user_only() {
    let server = server_with_alice(|_| {}).await;
    let (mut a, _) = session(&server, "alice", "alice", "").await;
    let (_b, _) = session(&server, "alice", "alice", "").await;
    let mut carol = guest(&server, "carol", "").await;

    a.send("WHOIS alice").await;
    let mut lines = Vec::new();
    loop {
        let line = a.recv().await;
        if command_of(&line) == "318" {
            break;
        }
        lines.push(line);
    }
    let count = lines
        .iter()
        .find(|l| command_of(l) == "320")
        .unwrap_or_else(|| panic!("no 320 in {lines:#?}"));
    assert!(
        count.ends_with(" 320 alice alice :is connected from 2 sessions"),
        "{count}"
    );

    carol.send("WHOIS alice").await;
    let mut lines = Vec::new();
    loop {
        let line = carol.recv().await;
        if command_of(&line) == "318" {
            break;
        }
        lines.push(line);
    }
    assert!(lines.iter().all(|l| command_of(l) != "320"), "{lines:#?}");
}

#[tokio::test]
async fn a_read_marker_set_on_one_session_reaches_the_other() {
    let server = server_with_alice(|_| {}).await;
    let caps = "draft/read-marker server-time";
    let (mut a, _) = session(&server, "alice", "alice", caps).await;
    let (mut b, _) = session(&server, "alice", "alice", caps).await;
    a.send("MARKREAD #lobby timestamp=2025-01-01T00:00:00.000Z")
        .await;
    let mine = a.expect(|l| command_of(l) == "MARKREAD").await;
    let other = b.expect(|l| command_of(l) == "MARKREAD").await;
    assert!(
        mine.ends_with("#lobby timestamp=2025-01-01T00:00:00.000Z"),
        "{mine}"
    );
    assert_eq!(other, mine);
    let rest = a.sync().await;
    assert!(rest.iter().all(|l| command_of(l) != "MARKREAD"), "{rest:?}");
}

#[tokio::test]
async fn past_the_session_cap_a_login_is_refused() {
    let server = server_with_alice(|c| c.accounts.max_sessions = 2).await;
    let (_a, _) = session(&server, "alice", "alice", "").await;
    let (_b, _) = session(&server, "alice", "alice", "").await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    c.send("NICK third").await;
    c.send("USER third 0 * :third").await;
    c.send("CAP REQ :sasl").await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect(|l| l == "AUTHENTICATE +").await;
    c.send(&format!("AUTHENTICATE {}", sasl_plain("alice", "alice-pw")))
        .await;
    c.expect_numeric("903").await;
    c.send("CAP END").await;
    let lines = c.expect_closed().await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" FAIL * TOO_MANY_SESSIONS ")),
        "{lines:#?}"
    );
    assert!(lines.iter().all(|l| command_of(l) != "001"), "{lines:#?}");
    assert!(
        lines.last().is_some_and(|l| command_of(l) == "ERROR"),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn without_multiclient_a_second_login_is_a_user_of_its_own() {
    let server = server_with_alice(|c| c.accounts.multiclient = false).await;
    let (mut a, _) = session(&server, "alice", "alice", "").await;
    let (b, _) = session(&server, "alice2", "alice", "").await;
    assert_eq!(b.nick, "alice2");
    // The first session sees a user of another nick come into the lobby.
    let join = a.expect(|l| l.ends_with(" JOIN #lobby")).await;
    assert!(join.starts_with(":alice2!"), "{join}");
}

#[test]
fn a_bad_session_cap_names_its_key() {
    let error = parley_server::Config::from_toml_str("[accounts]\nmax_sessions = 0\n")
        .expect_err("0 sessions is no cap");
    assert!(
        error.to_string().contains("accounts.max_sessions"),
        "{error}"
    );
    let config =
        parley_server::Config::from_toml_str("[accounts]\nmulticlient = false\nmax_sessions = 3\n")
            .expect("valid");
    assert!(!config.accounts.multiclient);
    assert_eq!(config.accounts.max_sessions, 3);
    let defaults = parley_server::Config::default();
    assert!(defaults.accounts.multiclient);
    assert_eq!(defaults.accounts.max_sessions, 10);
}

/// The PRIVMSG texts to `#room` among `lines`, in order.
fn room_texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains(" PRIVMSG #room :"))
        .filter_map(|l| l.rsplit(" PRIVMSG #room :").next())
        .map(str::to_string)
        .collect()
}

/// Read until the `#room` message `text` arrives; every `#room` text up to it, that one last,
/// and every line before it.
async fn room_until(c: &mut Client, text: &str) -> (Vec<String>, Vec<String>) {
    let wanted = format!(" PRIVMSG #room :{text}");
    let (line, mut seen) = c
        .expect_within(common::TIMEOUT, |l| l.ends_with(&wanted))
        .await;
    seen.push(line);
    (room_texts(&seen), seen)
}

#[tokio::test]
async fn in_a_cluster_sessions_on_one_node_chat_as_one() {
    let Some(cluster) = common::cluster::Cluster::start(2, |_, _| {}).await else {
        return;
    };
    let home = &cluster.nodes[0];
    home.create_account("alice", "alice-pw").await;
    let (mut a, _) = session(home, "alice", "alice", "echo-message message-tags").await;
    let mut carol = cluster.client(1, "carol").await;
    carol.send("JOIN #room").await;
    carol.sync().await;
    a.await_whois("carol").await;
    carol.await_whois("alice").await;
    a.send("JOIN #room").await;
    a.expect(|l| l.ends_with(" JOIN #room")).await;
    carol.expect(|l| l.ends_with(" JOIN #room")).await;
    let (mut b, burst) = session(home, "alice", "alice", "message-tags").await;
    assert!(
        burst.iter().any(|l| l.ends_with(" JOIN #room")),
        "{burst:#?}"
    );

    // Each line once, to each session as echo-message would: a (echo-message) gets its own
    // and b's, b only a's, carol on the other node both.
    a.send("PRIVMSG #room :one").await;
    let (at_b, b_lines) = room_until(&mut b, "one").await;
    assert_eq!(at_b, ["one"]);
    let (echo, a_lines) = room_until(&mut a, "one").await;
    assert_eq!(echo, ["one"]);
    let msgid = |lines: &[String]| {
        let line = lines.last().cloned().unwrap_or_default();
        tag(&line, "msgid").map(str::to_string)
    };
    assert!(msgid(&b_lines).is_some());
    assert_eq!(msgid(&b_lines), msgid(&a_lines));
    b.send("PRIVMSG #room :two").await;
    let (at_a, _) = room_until(&mut a, "two").await;
    assert_eq!(at_a, ["two"]);
    let (at_carol, _) = room_until(&mut carol, "two").await;
    assert_eq!(at_carol, ["one", "two"]);
    carol.send("PRIVMSG #room :three").await;
    let (at_a, _) = room_until(&mut a, "three").await;
    assert_eq!(at_a, ["three"]);
    let (at_b, _) = room_until(&mut b, "three").await;
    assert_eq!(at_b, ["three"], "no echo of its own line for b");

    // b leaving is seen by nobody on the other node; a leaving last is.
    b.send("QUIT :phone off").await;
    b.expect_closed().await;
    a.send("PRIVMSG #room :four").await;
    let (_, seen) = room_until(&mut carol, "four").await;
    assert!(seen.iter().all(|l| command_of(l) != "QUIT"), "{seen:#?}");
    a.send("QUIT :laptop off").await;
    a.expect_closed().await;
    let quit = carol.expect(|l| command_of(l) == "QUIT").await;
    assert!(
        quit.starts_with(":alice!") && quit.ends_with("laptop off"),
        "{quit}"
    );
}

#[tokio::test]
async fn an_operators_kill_ends_every_session() {
    let server = server_with_alice(|c| c.operators.admins = vec!["root".into()]).await;
    let mut root = common::account(server.addr, "root").await;
    let (mut a, _) = session(&server, "alice", "alice", "").await;
    let (mut b, _) = session(&server, "alice", "alice", "").await;
    root.sync().await;
    root.send("WHOIS alice").await;
    let count = root.expect_numeric("320").await;
    assert!(count.ends_with(" :is connected from 2 sessions"), "{count}");
    root.sync().await;

    root.send("KILL alice :enough").await;
    for session in [&mut a, &mut b] {
        let lines = session.expect_closed().await;
        assert!(
            lines.iter().any(|l| l.ends_with(" KILL alice :enough")),
            "{lines:#?}"
        );
    }
    // One QUIT for the user, with the kill's reason, once its last session is gone.
    let quit = root.expect(|l| command_of(l) == "QUIT").await;
    assert!(
        quit.starts_with(":alice!") && quit.contains("Killed"),
        "{quit}"
    );
    let rest = root.sync().await;
    assert!(rest.iter().all(|l| command_of(l) != "QUIT"), "{rest:#?}");
}

#[tokio::test]
async fn a_login_before_nick_asking_for_the_users_nick_is_not_refused() {
    let server = server_with_alice(|_| {}).await;
    let (mut a, _) = session(&server, "alice", "alice", "").await;
    a.send("JOIN #room").await;
    a.expect(|l| l.ends_with(" JOIN #room")).await;
    // irssi's order: logged in before NICK. A 433 would make it send NICK alice_, which,
    // arriving after the welcome, renamed the user on every session.
    let (_b, seen) = common::sasl_before_nick(server.addr, "alice", "alice", "alice-pw").await;
    assert!(seen.iter().all(|l| command_of(l) != "433"), "{seen:#?}");
    assert!(seen.iter().any(|l| l.contains(" 001 alice ")), "{seen:#?}");
    assert!(seen.iter().any(|l| l.ends_with(" JOIN #room")), "{seen:#?}");
    let after = a.sync().await;
    assert!(after.iter().all(|l| command_of(l) != "NICK"), "{after:#?}");
}
