//! A whole session with the stock clients of Debian 12 against the real server, the way a user
//! has one: log in with SASL over TLS, join a channel, a line each way, `/whois`, `/notify`,
//! and the history replayed on rejoining. irssi 1.4 runs in a detached tmux session and is read
//! off its screen; `weechat-headless` 3.8 is typed at through its FIFO plugin and read through
//! its logger plugin. The other side of each conversation is a raw test client (bob), so every
//! line the stock client sends is checked exactly on the wire.
//!
//! A missing client program skips its test with a line on stderr, unless
//! `PARLEY_REQUIRE_CLIENTS=1` (CI sets it and installs irssi, weechat-headless and tmux).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::stock_clients::{self, program, Tmux, WeeChat};
use common::{command_of, enable_tls, Client, TestServer};

const README: &str = include_str!("../../../README.md");
const ALICE_PASSWORD: &str = "alice-session-pass";
const BOB_PASSWORD: &str = "bob-session-pass";
const CAROL_PASSWORD: &str = "carol-session-pass";

/// A server over TLS that requires logins, with the accounts alice, bob and carol; bob is
/// logged in (over plain text: he is the test's own client) and has joined #room.
async fn server_and_bob() -> (TestServer, Client) {
    let server = TestServer::start_with(|c| {
        enable_tls(c);
        c.accounts.require_login = true;
    })
    .await;
    for (account, password) in [
        ("alice", ALICE_PASSWORD),
        ("bob", BOB_PASSWORD),
        ("carol", CAROL_PASSWORD),
    ] {
        server.create_account(account, password).await;
    }
    let mut bob = server.connect().await;
    bob.login_sasl("bob", "bob", BOB_PASSWORD).await;
    bob.send("JOIN #room").await;
    bob.expect_numeric("366").await;
    bob.sync().await;
    (server, bob)
}

/// alice arrived (in the server's default channel), logged in with SASL as alice: bob sees her
/// join, and his WHOIS says which account she authenticated as.
async fn bob_sees_alice_logged_in(bob: &mut Client) {
    bob.expect(|l| l.starts_with(":alice!") && l.contains(" JOIN #lobby"))
        .await;
    // modern.ircdocs.horse, RPL_WHOISACCOUNT (330) `<client> <nick> <account> :is logged in as`:
    // "Sent as a reply to the WHOIS command, this numeric indicates that the client with the
    // nickname <nick> was authenticated as the owner of <account>."
    bob.send("WHOIS alice").await;
    let account = bob.expect_numeric("330").await;
    assert!(
        account.ends_with(" 330 bob alice alice :is logged in as"),
        "{account}"
    );
    bob.expect_numeric("318").await;
}

/// bob sees alice join #room; returns her source (`:alice!user@host`) from that JOIN, so the
/// lines she sends later can be checked whole.
async fn bob_sees_alice_join_room(bob: &mut Client) -> String {
    let join = bob
        .expect(|l| l.starts_with(":alice!") && command_of(l) == "JOIN")
        .await;
    let (source, rest) = join.split_once(' ').expect("a JOIN with a source");
    assert_eq!(rest, "JOIN #room", "{join}");
    source.to_owned()
}

/// A line of irssi's screen without its `HH:MM ` time stamp.
fn without_time(line: &str) -> &str {
    match line.as_bytes() {
        [h1, h2, b':', m1, m2, b' ', ..] if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) => {
            &line[6..]
        }
        _ => line,
    }
}

/// Wait (bounded) until irssi's screen shows `line` (after its time stamp), exactly.
async fn irssi_shows(irssi: &Tmux, line: &str) {
    irssi
        .wait_for_line(&format!("{line:?}"), |l| without_time(l) == line)
        .await;
}

/// Wait (bounded) until WeeChat's log of `buffer` has `line` (`prefix<TAB>message`), exactly.
async fn weechat_logs(weechat: &WeeChat, buffer: &str, line: &str) {
    weechat
        .wait_for_log(buffer, &format!("{line:?}"), |l| l == line)
        .await;
}

/// bob sees alice leave #room.
async fn bob_sees_alice_part_room(bob: &mut Client, alice: &str) {
    let part = bob
        .expect(|l| l.starts_with(":alice!") && command_of(l) == "PART")
        .await;
    assert!(part.starts_with(&format!("{alice} PART #room")), "{part}");
}

#[tokio::test]
async fn irssi_session_logs_in_chats_whois_notify_and_replays_history_on_rejoin() {
    let (Some(tmux), Some(irssi)) = (program("tmux"), program("irssi")) else {
        return;
    };
    let (server, mut bob) = server_and_bob().await;
    let fingerprint = stock_clients::fingerprint(&server);
    let port = server.tls_addr().port();
    let home = tempfile::tempdir().expect("temp dir");
    let irssi_home = home.path().join("irssi");
    std::fs::create_dir(&irssi_home).expect("irssi home");
    let alice = Tmux::start(
        &tmux,
        home.path(),
        &format!("{} --home={}", irssi.display(), irssi_home.display()),
    );
    alice.wait_for("Irssi v").await;

    // irssi has no MONITOR (`strings /usr/bin/irssi` names ISON and `notify_check_time`, never
    // MONITOR): its /notify polls with ISON every notify_check_time, so a short one keeps the
    // test quick.
    alice.type_line("/set notify_check_time 1s");
    // irssi's own flood protection sends one queued command every 2.2 s once five are queued;
    // a person types slower than this script, so let the script's commands go at once.
    alice.type_line("/set cmd_queue_speed 0");

    // The README's recipe: SASL PLAIN over TLS with the certificate pinned.
    let recipe = stock_clients::recipe(README, "irssi 1.4");
    for line in recipe
        .iter()
        .filter(|l| l.starts_with("/network ") || l.starts_with("/server "))
    {
        alice.type_line(&stock_clients::fill(
            line,
            ALICE_PASSWORD,
            &fingerprint,
            port,
        ));
    }
    alice.type_line("/connect parley");
    bob_sees_alice_logged_in(&mut bob).await;

    alice.type_line("/join #room");
    let source = bob_sees_alice_join_room(&mut bob).await;
    // Typing goes to the active window: wait until irssi has opened #room's.
    alice.wait_for("has joined #room").await;

    // modern.ircdocs.horse, PRIVMSG: "The PRIVMSG command is used to send private messages
    // between users, as well as to send messages to channels. <target> is the nickname of a
    // client or the name of a channel."
    alice.type_line("hello from alice");
    let said = bob.expect(|l| command_of(l) == "PRIVMSG").await;
    assert_eq!(said, format!("{source} PRIVMSG #room :hello from alice"));

    bob.send("PRIVMSG #room :hello from bob").await;
    irssi_shows(&alice, "<@bob> hello from bob").await;

    // irssi prints WHOIS replies and notify lines in its status window (window 1): go there.
    alice.type_line("/window 1");
    // RPL_WHOISACCOUNT (330), as irssi renders it.
    alice.type_line("/whois bob");
    irssi_shows(&alice, "-!-  account  : bob").await;

    // /notify polls ISON (see above); RFC 2812 4.9: "For each nickname in the list that is
    // present, the server adds that to its reply string." alice first leaves #lobby, where
    // carol lands on connecting, so that irssi cannot learn of carol from her JOIN there: only
    // its ISON polls can tell.
    alice.type_line("/part #lobby");
    bob.expect(|l| l.starts_with(&format!("{source} PART #lobby")))
        .await;
    alice.type_line("/notify carol");
    let mut carol = server.connect().await;
    carol.login_sasl("carol", "carol", CAROL_PASSWORD).await;
    irssi_shows(
        &alice,
        "-!- Irssi: carol [~carol@127.0.0.1] [Test carol] has joined to parley",
    )
    .await;

    // History on rejoin: irssi has no draft/chathistory, so the server replays the channel's
    // recent lines on JOIN (`history.replay_on_join`).
    alice.type_line("/part #room");
    bob_sees_alice_part_room(&mut bob, &source).await;
    bob.send("PRIVMSG #room :said while alice was away").await;
    bob.sync().await;
    alice.type_line("/join #room");
    bob_sees_alice_join_room(&mut bob).await;
    irssi_shows(&alice, "<@bob> said while alice was away").await;
}

/// WeeChat started with the README's 3.x recipe (SASL PLAIN over TLS, the certificate pinned)
/// after `settings`, logged in: bob has seen alice arrive with her account.
async fn weechat_logged_in(
    server: &TestServer,
    bob: &mut Client,
    home: &std::path::Path,
    settings: &[&str],
) -> Option<WeeChat> {
    let weechat = program("weechat-headless")?;
    let fingerprint = stock_clients::weechat_fingerprint(server);
    let port = server.tls_addr().port();
    let mut commands: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
    commands.extend(
        stock_clients::recipe(README, "WeeChat 3.x")
            .iter()
            .map(|l| stock_clients::fill(l, ALICE_PASSWORD, &fingerprint, port)),
    );
    let alice = WeeChat::start(&weechat, home, &commands);
    bob_sees_alice_logged_in(bob).await;
    // WeeChat refuses /join before it counts the server as connected (at the welcome), and
    // /notify's first check needs the ISUPPORT tokens (MONITOR=): wait for the MOTD's end.
    alice
        .wait_for_log(SERVER_BUFFER, "the end of the welcome", |l| {
            l.ends_with("End of /MOTD command.")
        })
        .await;
    Some(alice)
}

const SERVER_BUFFER: &str = "irc.server.parley";
const ROOM_BUFFER: &str = "irc.parley.#room";

#[tokio::test]
async fn weechat_session_logs_in_chats_whois_and_replays_history_on_rejoin() {
    let (server, mut bob) = server_and_bob().await;
    let home = tempfile::tempdir().expect("temp dir");
    let Some(mut alice) = weechat_logged_in(&server, &mut bob, home.path(), &[]).await else {
        return;
    };

    alice.command(SERVER_BUFFER, "/join #room").await;
    let source = bob_sees_alice_join_room(&mut bob).await;
    alice
        .wait_for_log(ROOM_BUFFER, "alice's join", |l| {
            l.contains("alice") && l.contains("has joined #room")
        })
        .await;

    // modern.ircdocs.horse, PRIVMSG: "The PRIVMSG command is used to send private messages
    // between users, as well as to send messages to channels."
    alice.command(ROOM_BUFFER, "hello from alice").await;
    let said = bob.expect(|l| command_of(l) == "PRIVMSG").await;
    assert_eq!(said, format!("{source} PRIVMSG #room :hello from alice"));

    bob.send("PRIVMSG #room :hello from bob").await;
    weechat_logs(&alice, ROOM_BUFFER, "@bob\thello from bob").await;

    // RPL_WHOISACCOUNT (330), as WeeChat renders it in the server buffer.
    alice.command(SERVER_BUFFER, "/whois bob").await;
    weechat_logs(&alice, SERVER_BUFFER, "--\t[bob] is logged in as bob").await;

    // History on rejoin: WeeChat 3.8 has no draft/chathistory, so the server replays the
    // channel's recent lines on JOIN (`history.replay_on_join`).
    alice.command(ROOM_BUFFER, "/part").await;
    bob_sees_alice_part_room(&mut bob, &source).await;
    bob.send("PRIVMSG #room :said while alice was away").await;
    bob.sync().await;
    alice.command(SERVER_BUFFER, "/join #room").await;
    bob_sees_alice_join_room(&mut bob).await;
    weechat_logs(&alice, ROOM_BUFFER, "@bob\tsaid while alice was away").await;
}

/// ircv3.net/specs/extensions/monitor: "Currently, ISON requests by clients use a large amount
/// of bandwidth. It is expected that it is more efficient for this to be done by the server at
/// the expense of cpu cycles." and "Support of this specification is indicated by the MONITOR
/// token in RPL_ISUPPORT (005)." WeeChat's /notify uses MONITOR when the server advertises it,
/// ISON otherwise; with ISON polled only every 60 minutes, only MONITOR's 730 (RPL_MONONLINE)
/// can tell WeeChat in time that carol has connected.
#[tokio::test]
async fn weechat_notify_uses_monitor() {
    let (server, mut bob) = server_and_bob().await;
    let home = tempfile::tempdir().expect("temp dir");
    let settings = ["/set irc.network.notify_check_ison 60"];
    let Some(mut alice) = weechat_logged_in(&server, &mut bob, home.path(), &settings).await else {
        return;
    };

    alice
        .command(SERVER_BUFFER, "/notify add carol parley")
        .await;
    // WeeChat checks a new entry at once (MONITOR + carol, or one ISON): carol is offline, and
    // only after WeeChat knows that does she connect, so the next line is a change of state.
    weechat_logs(&alice, SERVER_BUFFER, "--\tnotify: carol is offline").await;
    let mut carol = server.connect().await;
    carol.login_sasl("carol", "carol", CAROL_PASSWORD).await;
    // How WeeChat 3.8 renders 730 was checked by hand against a stand-in server that answers
    // MONITOR: "notify: carol is offline", then "notify: carol (~carol@127.0.0.1) has connected".
    weechat_logs(
        &alice,
        SERVER_BUFFER,
        "--\tnotify: carol (~carol@127.0.0.1) has connected",
    )
    .await;
}

/// irssi as a second device of an account already connected (`accounts.multiclient`): it logs
/// in with SASL and only then sends NICK (irssi's order), gets the user's nick and channels,
/// and chats as that user; the first session sees its lines, bob sees one alice, no JOIN, no
/// nick change.
#[tokio::test]
async fn irssi_as_a_second_device_is_the_same_user() {
    let (Some(tmux), Some(irssi)) = (program("tmux"), program("irssi")) else {
        return;
    };
    let (server, mut bob) = server_and_bob().await;
    // The first device: a raw client logged in as alice, in #room.
    let mut laptop = server.connect().await;
    laptop.login_sasl("alice", "alice", ALICE_PASSWORD).await;
    laptop.send("JOIN #room").await;
    laptop
        .expect(|l| command_of(l) == "366" && l.contains(" #room "))
        .await;
    let join = bob
        .expect(|l| l.starts_with(":alice!") && l.ends_with(" JOIN #room"))
        .await;
    let source = join.split(' ').next().unwrap_or("").to_string();
    laptop.sync().await;
    bob.sync().await;

    let fingerprint = stock_clients::fingerprint(&server);
    let port = server.tls_addr().port();
    let home = tempfile::tempdir().expect("temp dir");
    let irssi_home = home.path().join("irssi");
    std::fs::create_dir(&irssi_home).expect("irssi home");
    let phone = Tmux::start(
        &tmux,
        home.path(),
        &format!("{} --home={}", irssi.display(), irssi_home.display()),
    );
    phone.wait_for("Irssi v").await;
    phone.type_line("/set cmd_queue_speed 0");
    let recipe = stock_clients::recipe(README, "irssi 1.4");
    for line in recipe
        .iter()
        .filter(|l| l.starts_with("/network ") || l.starts_with("/server "))
    {
        phone.type_line(&stock_clients::fill(
            line,
            ALICE_PASSWORD,
            &fingerprint,
            port,
        ));
    }
    phone.type_line("/connect parley");
    // The JOIN burst (after the MOTD) opens #room's window in irssi, as its own JOIN would.
    phone.wait_for("End of /MOTD").await;
    phone.type_line("/window goto #room");
    phone.wait_for("has joined #room").await;
    phone.type_line("hello from the phone");
    let said = bob.expect(|l| command_of(l) == "PRIVMSG").await;
    assert_eq!(
        said,
        format!("{source} PRIVMSG #room :hello from the phone")
    );
    let seen = laptop.expect(|l| command_of(l) == "PRIVMSG").await;
    assert!(
        seen.ends_with("PRIVMSG #room :hello from the phone"),
        "{seen}"
    );
    bob.send("PRIVMSG #room :hello both").await;
    irssi_shows(&phone, "<@bob> hello both").await;
    // Nobody saw a second alice arrive or a nick change.
    let quiet = bob.sync().await;
    assert!(
        quiet
            .iter()
            .all(|l| !["JOIN", "NICK"].contains(&command_of(l))),
        "{quiet:#?}"
    );
    let laptop_saw = laptop.sync().await;
    assert!(
        laptop_saw.iter().all(|l| command_of(l) != "NICK"),
        "{laptop_saw:#?}"
    );
}
