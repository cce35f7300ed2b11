//! Looking people and the server up against the real server: WHO, WHOIS, WHOWAS, ISON, USERHOST,
//! LUSERS, VERSION, TIME and MOTD, with exact replies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{with_command, TestServer};

#[tokio::test]
async fn who_channel_lists_members_with_flags() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    bob.send("AWAY :lunch").await;
    bob.sync().await;

    carol.send("WHO #LOBBY").await;
    assert_eq!(
        carol.sync().await,
        vec![
            ":parley.local 352 carol #lobby ~alice 127.0.0.1 parley.local alice H :0 Test alice",
            ":parley.local 352 carol #lobby ~bob 127.0.0.1 parley.local bob G :0 Test bob",
            ":parley.local 352 carol #lobby ~carol 127.0.0.1 parley.local carol H :0 Test carol",
            ":parley.local 315 carol #LOBBY :End of WHO list",
        ]
    );

    // An unknown channel is just an empty list.
    alice.send("WHO #nowhere").await;
    assert_eq!(
        alice.sync().await,
        vec![":parley.local 315 alice #nowhere :End of WHO list"]
    );
}

#[tokio::test]
async fn who_nick_and_who_mask() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, _carol] = server.clients(["alice", "bob", "carol"]).await;

    alice.send("WHO BOB").await;
    assert_eq!(
        alice.sync().await,
        vec![
            ":parley.local 352 alice * ~bob 127.0.0.1 parley.local bob H :0 Test bob",
            ":parley.local 315 alice BOB :End of WHO list",
        ]
    );

    bob.send("AWAY :out").await;
    bob.sync().await;
    // "*o*" matches bob and carol by nick; alice's nick and realname have no 'o'.
    alice.send("WHO *o*").await;
    let mut lines = alice.sync().await;
    assert_eq!(
        lines.pop().as_deref(),
        Some(":parley.local 315 alice *o* :End of WHO list")
    );
    lines.sort();
    assert_eq!(
        lines,
        vec![
            ":parley.local 352 alice * ~bob 127.0.0.1 parley.local bob G :0 Test bob",
            ":parley.local 352 alice * ~carol 127.0.0.1 parley.local carol H :0 Test carol",
        ]
    );

    // A mask can match the realname too.
    alice.send("WHO *carol").await;
    let lines = alice.sync().await;
    assert_eq!(with_command(&lines, "352").len(), 1, "{lines:?}");
    assert!(lines[0].ends_with(" carol H :0 Test carol"), "{lines:?}");
}

#[tokio::test]
async fn who_hides_invisible_users_from_strangers() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut eve] = server.clients(["alice", "bob", "eve"]).await;
    eve.send("MODE eve +i").await;
    eve.sync().await;
    bob.send("PART #lobby").await;
    bob.sync().await;
    alice.sync().await;
    eve.sync().await;

    // bob shares no channel with eve: mask searches and channel lists skip her ...
    bob.send("WHO e*").await;
    assert_eq!(
        bob.sync().await,
        vec![":parley.local 315 bob e* :End of WHO list"]
    );
    bob.send("WHO #lobby").await;
    let lines = bob.sync().await;
    assert_eq!(
        lines,
        vec![
            ":parley.local 352 bob #lobby ~alice 127.0.0.1 parley.local alice H :0 Test alice",
            ":parley.local 315 bob #lobby :End of WHO list",
        ]
    );
    // ... but her exact nick is answered.
    bob.send("WHO eve").await;
    assert_eq!(with_command(&bob.sync().await, "352").len(), 1);
    // alice shares #lobby with her and sees her everywhere.
    alice.send("WHO e*").await;
    assert_eq!(with_command(&alice.sync().await, "352").len(), 1);
}

#[tokio::test]
async fn whois_reports_user_channels_server_idle() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    let before = SystemTime::now();

    bob.send("WHOIS alice").await;
    let lines = bob.sync().await;
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(
        lines[0],
        ":parley.local 311 bob alice ~alice 127.0.0.1 * :Test alice"
    );
    assert_eq!(lines[1], ":parley.local 319 bob alice :#lobby");
    assert_eq!(lines[2], ":parley.local 312 bob alice parley.local :Parley");
    let idle: Vec<&str> = lines[3].split(' ').collect();
    assert_eq!(
        idle[..4],
        [":parley.local", "317", "bob", "alice"],
        "{lines:?}"
    );
    assert!(idle[4].parse::<u64>().unwrap() < 60, "{lines:?}");
    let signon: u64 = idle[5].parse().unwrap();
    let now = before
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        signon <= now && now - signon < 60,
        "signon {signon}, now {now}"
    );
    assert!(lines[3].ends_with(" :seconds idle, signon time"));
    assert_eq!(lines[4], ":parley.local 318 bob alice :End of /WHOIS list");

    // Away adds 301 before the idle line; the nick is matched case-insensitively.
    alice.send("AWAY :brb").await;
    alice.sync().await;
    bob.send("WHOIS ALICE").await;
    let lines = bob.sync().await;
    let codes: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(codes, ["311", "319", "312", "301", "317", "318"]);
    assert_eq!(lines[3], ":parley.local 301 bob alice :brb");

    // `WHOIS server nick` asks about the nick.
    alice.send("WHOIS parley.local bob").await;
    let lines = alice.sync().await;
    assert_eq!(
        lines[0],
        ":parley.local 311 alice bob ~bob 127.0.0.1 * :Test bob"
    );
    assert_eq!(lines[1], ":parley.local 319 alice bob :#lobby");
}

#[tokio::test]
async fn whois_errors() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.send("WHOIS ghost").await;
    assert_eq!(
        alice.sync().await,
        vec![
            ":parley.local 401 alice ghost :No such nick/channel",
            ":parley.local 318 alice ghost :End of /WHOIS list",
        ]
    );
    alice.send("WHOIS").await;
    assert_eq!(
        alice.sync().await,
        vec![":parley.local 431 alice :No nickname given"]
    );
}

/// The two lines of one WHOWAS entry, checking the time in 312 parses and is recent.
fn assert_whowas_entry(lines: &[String], asker: &str, nick: &str, realname: &str) {
    assert_eq!(
        lines[0],
        format!(":parley.local 314 {asker} {nick} ~{nick} 127.0.0.1 * :{realname}")
    );
    let prefix = format!(":parley.local 312 {asker} {nick} parley.local :");
    let when = lines[1]
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{lines:?}"));
    let when = humantime::parse_rfc3339(when).expect("an RFC 3339 time");
    let age = SystemTime::now()
        .duration_since(when)
        .unwrap_or(Duration::ZERO);
    assert!(age < Duration::from_secs(60), "{lines:?}");
}

#[tokio::test]
async fn whowas_after_quit_and_nick_change() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;

    bob.send("QUIT :bye").await;
    bob.expect_closed().await;
    alice.expect(|l| l.ends_with(" QUIT :Quit: bye")).await;
    alice.send("WHOWAS bob").await;
    let lines = alice.sync().await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_whowas_entry(&lines, "alice", "bob", "Test bob");
    assert_eq!(lines[2], ":parley.local 369 alice bob :End of WHOWAS");

    carol.send("NICK caroline").await;
    carol.sync().await;
    alice.send("WHOWAS CAROL").await;
    let lines = alice.sync().await;
    // The NICK line alice saw, then the entry.
    assert_eq!(lines[0], ":carol!~carol@127.0.0.1 NICK :caroline");
    assert_whowas_entry(&lines[1..], "alice", "carol", "Test carol");
    assert_eq!(lines[3], ":parley.local 369 alice CAROL :End of WHOWAS");
    assert_eq!(lines.len(), 4, "{lines:?}");

    alice.send("WHOWAS ghost").await;
    assert_eq!(
        alice.sync().await,
        vec![
            ":parley.local 406 alice ghost :There was no such nickname",
            ":parley.local 369 alice ghost :End of WHOWAS",
        ]
    );
    alice.send("WHOWAS").await;
    assert_eq!(
        alice.sync().await,
        vec![":parley.local 431 alice :No nickname given"]
    );
}

#[tokio::test]
async fn whowas_remembers_each_use_and_honours_count() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    bob.send("NICK bob2").await;
    bob.send("NICK bob").await;
    bob.send("NICK bob3").await;
    bob.sync().await;
    alice.sync().await;
    alice.send("WHOWAS bob").await;
    let lines = alice.sync().await;
    assert_eq!(with_command(&lines, "314").len(), 2, "{lines:?}");
    alice.send("WHOWAS bob 1").await;
    let lines = alice.sync().await;
    assert_eq!(with_command(&lines, "314").len(), 1, "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
}

#[tokio::test]
async fn ison_lists_only_online_nicks() {
    let server = TestServer::start().await;
    let [mut alice, _bob] = server.clients(["alice", "bob"]).await;
    alice.send("ISON BOB ghost alice").await;
    assert_eq!(alice.recv().await, ":parley.local 303 alice :bob alice");
    alice.send("ISON :ghost bob").await;
    assert_eq!(alice.recv().await, ":parley.local 303 alice :bob");
    alice.send("ISON ghost").await;
    assert_eq!(alice.recv().await, ":parley.local 303 alice :");
    alice.send("ISON").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 461 alice ISON :Not enough parameters"
    );
}

#[tokio::test]
async fn userhost_shows_presence() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    alice.send("USERHOST bob ghost alice").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 302 alice :bob=+~bob@127.0.0.1 alice=+~alice@127.0.0.1"
    );
    bob.send("AWAY :away").await;
    bob.sync().await;
    alice.send("USERHOST bob").await;
    assert_eq!(
        alice.recv().await,
        ":parley.local 302 alice :bob=-~bob@127.0.0.1"
    );
}

/// The LUSERS burst, in order, as `alice` sees it.
fn lusers_lines(users: usize, unknown: usize, channels: usize, max: usize) -> Vec<String> {
    vec![
        format!(":parley.local 251 alice :There are {users} users and 0 invisible on 1 servers"),
        ":parley.local 252 alice 0 :operator(s) online".to_string(),
        format!(":parley.local 253 alice {unknown} :unknown connection(s)"),
        format!(":parley.local 254 alice {channels} :channels formed"),
        format!(":parley.local 255 alice :I have {users} clients and 0 servers"),
        format!(":parley.local 265 alice {users} {max} :Current local users {users}, max {max}"),
        format!(":parley.local 266 alice {users} {max} :Current global users {users}, max {max}"),
    ]
}

#[tokio::test]
async fn lusers_counts_users_unknowns_channels_and_peak() {
    let server = TestServer::start().await;
    let [mut alice, mut bob, _carol] = server.clients(["alice", "bob", "carol"]).await;
    // A connection that has not registered; its PONG proves the server has accepted it.
    let mut stranger = server.connect().await;
    stranger.send("PING :here").await;
    assert_eq!(
        stranger.recv().await,
        ":parley.local PONG parley.local :here"
    );
    alice.send("JOIN #other").await;
    alice.sync().await;

    alice.send("LUSERS").await;
    assert_eq!(alice.sync().await, lusers_lines(3, 1, 2, 3));

    bob.send("QUIT").await;
    bob.expect_closed().await;
    alice.expect(|l| l.ends_with(" QUIT :Quit")).await;
    // The peak stays at 3; the channel count is unchanged since #other still has alice.
    alice.send("LUSERS").await;
    assert_eq!(alice.sync().await, lusers_lines(2, 1, 2, 3));

    // Invisible users are counted apart.
    alice.send("MODE alice +i").await;
    alice.sync().await;
    alice.send("LUSERS").await;
    let lines = alice.sync().await;
    assert_eq!(
        lines[0],
        ":parley.local 251 alice :There are 1 users and 1 invisible on 1 servers"
    );
}

/// The counts are kept as users change and leave, not counted afresh: each change must show.
#[tokio::test]
async fn lusers_counts_follow_mode_changes_and_departures() {
    let server = TestServer::start().await;
    let [mut alice, mut bob] = server.clients(["alice", "bob"]).await;
    let first = |lines: Vec<String>| lines.into_iter().next().unwrap_or_default();
    bob.send("MODE bob +i").await;
    bob.sync().await;
    bob.send("MODE bob +i").await;
    bob.sync().await;
    alice.send("LUSERS").await;
    assert_eq!(
        first(alice.sync().await),
        ":parley.local 251 alice :There are 1 users and 1 invisible on 1 servers"
    );
    bob.send("MODE bob -i").await;
    bob.sync().await;
    bob.send("MODE bob +i").await;
    bob.sync().await;
    bob.send("QUIT").await;
    bob.expect_closed().await;
    alice.sync().await;
    alice.send("LUSERS").await;
    assert_eq!(alice.sync().await, lusers_lines(1, 0, 1, 2));
}

#[tokio::test]
async fn version_then_isupport() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.send("VERSION").await;
    let lines = alice.sync().await;
    assert_eq!(
        lines[0],
        format!(
            ":parley.local 351 alice {} parley.local :Parley chat server",
            parley_server::VERSION
        )
    );
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines[1..] {
        assert!(line.starts_with(":parley.local 005 alice "), "{line}");
        assert!(line.ends_with(" :are supported by this server"), "{line}");
    }
    let all = lines.join("\n");
    assert!(all.contains(" NETWORK=Parley "), "{all}");
    assert!(all.contains(" MAXTARGETS=4 "), "{all}");
    assert!(all.contains(" CASEMAPPING=ascii "), "{all}");
}

#[tokio::test]
async fn time_is_now() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.send("TIME").await;
    let line = alice.recv().await;
    let when = line
        .strip_prefix(":parley.local 391 alice parley.local :")
        .unwrap_or_else(|| panic!("{line}"));
    let when = humantime::parse_rfc3339(when).expect("an RFC 3339 time");
    let now = SystemTime::now();
    let skew = now.duration_since(when).unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_secs(60), "{line}");
}

#[tokio::test]
async fn motd_on_request() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    alice.send("MOTD").await;
    assert_eq!(
        alice.sync().await,
        vec![
            ":parley.local 375 alice :- parley.local Message of the day - ",
            ":parley.local 372 alice :- Welcome to Parley, a small and friendly IRC server.",
            ":parley.local 372 alice :- Everyone meets in #lobby: say hello there, and be kind.",
            ":parley.local 376 alice :End of /MOTD command.",
        ]
    );
}

#[tokio::test]
async fn empty_motd_gives_422() {
    let server = TestServer::start_with(|c| c.server.motd = String::new()).await;
    let mut c = server.connect().await;
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice").await;
    let burst = c.sync().await;
    assert!(
        burst.contains(&":parley.local 422 alice :MOTD File is missing".to_string()),
        "{burst:?}"
    );
    assert!(with_command(&burst, "375").is_empty(), "{burst:?}");
    c.send("MOTD").await;
    assert_eq!(
        c.sync().await,
        vec![":parley.local 422 alice :MOTD File is missing"]
    );
}

#[tokio::test]
async fn queries_ignore_connections_still_registering() {
    let server = TestServer::start().await;
    let mut alice = server.client("alice").await;
    let mut pending = server.connect().await;
    pending.send("NICK pending").await;
    pending.send("PING :seen").await;
    assert_eq!(
        pending.recv().await,
        ":parley.local PONG parley.local :seen"
    );

    alice.send("WHOIS pending").await;
    assert_eq!(
        with_command(&alice.sync().await, "401").len(),
        1,
        "not visible to WHOIS"
    );
    alice.send("ISON pending alice").await;
    assert_eq!(alice.recv().await, ":parley.local 303 alice :alice");
    alice.send("USERHOST pending").await;
    assert_eq!(alice.recv().await, ":parley.local 302 alice :");
    alice.send("WHO *").await;
    let lines = alice.sync().await;
    assert_eq!(with_command(&lines, "352").len(), 1, "{lines:?}");
}

/// modern.ircdocs.horse, Secret channel mode: "A channel that is set to secret will not show up
/// in responses to the LIST or NAMES command unless the client sending the command is joined to
/// the channel. Likewise, secret channels will not show up in the RPL_WHOISCHANNELS (319)
/// numeric unless the user the numeric is being sent to is joined to that channel." RFC 2811
/// (4.2.6) says the same: the server acts as if a secret channel does not exist for TOPIC, LIST
/// and NAMES, MODE excepted. WHO of a secret channel answers a non-member with 315 alone, as
/// ergo does. Members see everything.
#[tokio::test]
async fn secret_channel_hidden_from_non_members() {
    let server = TestServer::start_with(|c| c.server.default_channel = String::new()).await;
    let [mut alice, mut bob, mut carol] = server.clients(["alice", "bob", "carol"]).await;
    alice.send("JOIN #hid,#open").await;
    alice.sync().await;
    alice.send("MODE #hid +s").await;
    alice.sync().await;
    bob.send("JOIN #hid").await;
    bob.sync().await;
    alice.sync().await;

    carol.send("LIST").await;
    assert_eq!(
        carol.sync().await,
        vec![
            ":parley.local 321 carol Channel :Users  Name",
            ":parley.local 322 carol #open 1 :",
            ":parley.local 323 carol :End of /LIST",
        ]
    );
    carol.send("LIST #hid").await;
    assert_eq!(
        carol.sync().await,
        vec![
            ":parley.local 321 carol Channel :Users  Name",
            ":parley.local 323 carol :End of /LIST",
        ]
    );
    carol.send("NAMES #hid").await;
    assert_eq!(
        carol.sync().await,
        vec![":parley.local 366 carol #hid :End of /NAMES list"]
    );
    carol.send("WHOIS alice").await;
    let whois = carol.sync().await;
    assert_eq!(
        with_command(&whois, "319"),
        vec![":parley.local 319 carol alice :@#open"],
        "{whois:?}"
    );
    carol.send("WHOIS bob").await;
    let whois = carol.sync().await;
    assert!(with_command(&whois, "319").is_empty(), "{whois:?}");
    carol.send("WHO #hid").await;
    assert_eq!(
        carol.sync().await,
        vec![":parley.local 315 carol #hid :End of WHO list"]
    );

    // A member sees it everywhere, with `@` for a secret channel in 353.
    bob.send("LIST").await;
    assert_eq!(
        with_command(&bob.sync().await, "322"),
        vec![
            ":parley.local 322 bob #hid 2 :",
            ":parley.local 322 bob #open 1 :"
        ]
    );
    bob.send("NAMES #hid").await;
    assert_eq!(
        bob.sync().await,
        vec![
            ":parley.local 353 bob @ #hid :@alice bob",
            ":parley.local 366 bob #hid :End of /NAMES list",
        ]
    );
    bob.send("WHOIS alice").await;
    assert_eq!(
        with_command(&bob.sync().await, "319"),
        vec![":parley.local 319 bob alice :@#hid @#open"]
    );
    bob.send("WHO #hid").await;
    assert_eq!(with_command(&bob.sync().await, "352").len(), 2);

    // Once -s, everyone sees it again.
    alice.send("MODE #hid -s").await;
    alice.sync().await;
    bob.sync().await;
    carol.send("LIST #hid").await;
    assert_eq!(
        with_command(&carol.sync().await, "322"),
        vec![":parley.local 322 carol #hid 2 :"]
    );
    carol.send("NAMES #hid").await;
    assert_eq!(
        carol.sync().await,
        vec![
            ":parley.local 353 carol = #hid :@alice bob",
            ":parley.local 366 carol #hid :End of /NAMES list",
        ]
    );
}

/// A server operator allowed to manage channels (permission `channels`; admins have every
/// permission) sees secret channels in LIST, NAMES, WHOIS and WHO, as ergo's opers do: it is
/// the operator's job to find abuse hidden there. Other operators are as blind as anyone.
#[tokio::test]
async fn secret_channel_visible_to_operators_with_channels_permission() {
    let server = TestServer::start_with(|c| {
        c.server.default_channel = String::new();
        c.operators.admins = vec!["root".into()];
        c.operators.moderators = vec!["mod".into()];
    })
    .await;
    let [mut alice] = server.clients(["alice"]).await;
    alice.send("JOIN #hid").await;
    alice.sync().await;
    alice.send("MODE #hid +s").await;
    alice.sync().await;

    let mut root = common::account(server.addr, "root").await;
    root.send("LIST").await;
    assert_eq!(
        with_command(&root.sync().await, "322"),
        vec![":parley.local 322 root #hid 1 :"]
    );
    root.send("NAMES #hid").await;
    assert_eq!(
        root.sync().await,
        vec![
            ":parley.local 353 root @ #hid :@alice",
            ":parley.local 366 root #hid :End of /NAMES list",
        ]
    );
    root.send("WHOIS alice").await;
    assert_eq!(
        with_command(&root.sync().await, "319"),
        vec![":parley.local 319 root alice :@#hid"]
    );
    root.send("WHO #hid").await;
    assert_eq!(with_command(&root.sync().await, "352").len(), 1);

    let mut moderator = common::account(server.addr, "mod").await;
    moderator.send("LIST").await;
    assert!(with_command(&moderator.sync().await, "322").is_empty());
    moderator.send("WHOIS alice").await;
    assert!(with_command(&moderator.sync().await, "319").is_empty());
}
