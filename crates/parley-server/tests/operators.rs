//! Operator and owner commands, line by line, against the real server: K-lines on nick, user@host,
//! full and account masks and their removal, D-lines on a network, bans that expire, what a
//! moderator without a permission is refused, logging in again after UNSUSPEND, every error
//! OWNER gives, and the list-mode numerics (346/347, 348/349, 478). Errors are checked as the
//! whole answer, so a test also fails when something else happened besides.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{connect_from, Client, TestServer};
use parley_server::Config;

const DENIED: &str = "Permission Denied - You do not have the required operator privileges";

fn opers(config: &mut Config) {
    config.operators.admins = vec!["root".into()];
    config.operators.moderators = vec!["mod".into()];
}

/// Operators, and no default room: nobody shares a channel, so an operator's answer is all it
/// sees (no JOINs of later clients, no QUIT of whom it banned).
fn opers_apart(config: &mut Config) {
    opers(config);
    config.server.default_channel = String::new();
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

/// A NOTICE from the server to `nick`.
fn notice(nick: &str, text: &str) -> String {
    format!(":parley.local NOTICE {nick} :{text}")
}

/// A SASL PLAIN attempt before registration: the first reply after the credentials, with
/// nothing but 900 (logged in) allowed before it.
async fn sasl(addr: std::net::SocketAddr, account: &str, password: &str) -> String {
    let mut c = Client::connect(addr).await;
    c.req_sasl().await;
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    c.send(&format!(
        "AUTHENTICATE {}",
        common::sasl_plain(account, password)
    ))
    .await;
    let mut reply = c.recv().await;
    if reply.contains(" 900 ") {
        reply = c.recv().await;
    }
    reply
}

/// Connect from `from` and try to register as `nick`: the lines up to the close when the server
/// refuses, or `None` once it welcomed us (the client is dropped).
async fn refused(addr: std::net::SocketAddr, from: IpAddr, nick: &str) -> Option<Vec<String>> {
    let mut c = connect_from(addr, from).await;
    c.nick = nick.to_string();
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    let mut lines = Vec::new();
    while let Some(line) = c.try_recv().await {
        if line.contains(" 001 ") {
            return None;
        }
        lines.push(line);
    }
    Some(lines)
}

/// KLINE takes a nick, a `user@host`, a full `nick!user@host` or an `$a:account` mask; each
/// closes whom it covers at once and refuses them at registration, nobody else. UNKLINE takes
/// the mask as it was given and lifts it.
#[tokio::test]
async fn klines_on_every_mask_form_and_unkline() {
    let server = TestServer::start_with(opers_apart).await;
    let mut root = common::account(server.addr, "root").await;
    let mut bystander = server.client("bystander").await;
    let here = ip("127.0.0.1");

    for (given, stored, nick) in [
        ("pest", "pest!*@*", "pest"),
        ("~lurker@127.0.0.1", "*!~lurker@127.0.0.1", "lurker"),
        ("tro*!~troll@127.0.0.*", "tro*!~troll@127.0.0.*", "troll"),
    ] {
        let mut victim = server.client(nick).await;
        root.send(&format!("KLINE {given} :go away")).await;
        assert_eq!(
            root.sync().await,
            [notice(
                "root",
                &format!("Added KLINE for {stored} (expires never); 1 connection(s) closed")
            )],
            "{given}"
        );
        assert_eq!(
            victim.expect_closed().await,
            ["ERROR :Closing Link: (Banned: go away)"],
            "{given}"
        );
        assert_eq!(
            refused(server.addr, here, nick).await,
            Some(vec![
                format!(":parley.local 465 {nick} :You are banned from this server: go away"),
                "ERROR :Closing Link: (Banned: go away)".to_string()
            ]),
            "{given} holds at registration"
        );
    }
    root.send("STATS k").await;
    let stats = root.sync().await;
    for mask in ["pest!*@*", "*!~lurker@127.0.0.1", "tro*!~troll@127.0.0.*"] {
        assert!(
            stats
                .iter()
                .any(|l| l
                    == &format!(":parley.local 216 root K {mask} root :go away (expires never)")),
            "{mask}: {stats:?}"
        );
    }
    assert_eq!(
        stats.last().map(String::as_str),
        Some(":parley.local 219 root k :End of /STATS report")
    );

    // An account mask covers the account's logins, wherever they come from.
    let mut spammer = common::account(server.addr, "spammer").await;
    root.send("KLINE $a:spammer :no spam").await;
    assert_eq!(
        root.sync().await,
        [notice(
            "root",
            "Added KLINE for $a:spammer (expires never); 1 connection(s) closed"
        )]
    );
    assert_eq!(
        spammer.expect_closed().await,
        ["ERROR :Closing Link: (Banned: no spam)"]
    );

    let mut elsewhere = connect_from(server.addr, ip("127.0.0.6")).await;
    elsewhere.req_sasl().await;
    elsewhere.nick = "spammer".into();
    elsewhere.send("CAP LS 302").await;
    elsewhere.send("NICK spammer").await;
    elsewhere.send("USER spammer 0 * :spammer").await;
    elsewhere.send("AUTHENTICATE PLAIN").await;
    elsewhere.expect(|l| l == "AUTHENTICATE +").await;
    elsewhere
        .send(&format!(
            "AUTHENTICATE {}",
            common::sasl_plain("spammer", "spammer-password")
        ))
        .await;
    elsewhere.expect_numeric("903").await;
    elsewhere.send("CAP END").await;
    assert_eq!(
        elsewhere.expect_closed().await,
        [
            ":parley.local 465 spammer :You are banned from this server: no spam",
            "ERROR :Closing Link: (Banned: no spam)"
        ]
    );

    // Nobody else was touched.
    assert!(bystander.sync().await.iter().all(|l| !l.contains("ERROR")));

    // UNKLINE by the mask as given, the stored form, or an account mask; an unknown one says so.
    for (given, stored) in [
        ("pest", "pest!*@*"),
        ("~lurker@127.0.0.1", "*!~lurker@127.0.0.1"),
        ("TRO*!~troll@127.0.0.*", "tro*!~troll@127.0.0.*"),
        ("$a:spammer", "$a:spammer"),
    ] {
        root.send(&format!("UNKLINE {given}")).await;
        assert_eq!(
            root.sync().await,
            [notice("root", &format!("Removed KLINE for {stored}"))],
            "{given}"
        );
    }
    // A duration with no mask is too few parameters, not a ban on a nick called "1h".
    for attempt in ["KLINE", "KLINE 1h", "UNKLINE", "DLINE 1h", "UNDLINE"] {
        root.send(attempt).await;
        let verb = attempt.split(' ').next().unwrap_or_default();
        assert_eq!(
            root.sync().await,
            [format!(
                ":parley.local 461 root {verb} :Not enough parameters"
            )],
            "{attempt}"
        );
    }
    root.send("UNKLINE pest").await;
    assert_eq!(root.sync().await, [notice("root", "No KLINE matches pest")]);
    root.send("STATS k").await;
    assert_eq!(
        root.sync().await,
        [":parley.local 219 root k :End of /STATS report"]
    );
    for nick in ["pest", "lurker", "troll"] {
        assert_eq!(refused(server.addr, here, nick).await, None, "{nick}");
    }
    let mut back = common::account(server.addr, "spammer").await;
    back.send("JOIN #back").await;
    assert!(back.sync().await.iter().any(|l| l.ends_with(" JOIN #back")));
}

/// A D-line on a network covers every address in it and no other: connected clients from it
/// are closed, new ones get one ERROR line before anything else; UNDLINE lifts it.
#[tokio::test]
async fn dline_on_a_network_and_undline() {
    let server = TestServer::start_with(opers_apart).await;
    let mut root = common::account(server.addr, "root").await;
    let mut inside = connect_from(server.addr, ip("127.0.0.3")).await;
    inside.register("inside").await;
    let mut outside = connect_from(server.addr, ip("127.0.0.4")).await;
    outside.register("outside").await;

    root.send("DLINE 127.0.0.2/31 :bad neighbourhood").await;
    assert_eq!(
        root.sync().await,
        [notice(
            "root",
            "Added DLINE for 127.0.0.2/31 (expires never); 1 connection(s) closed"
        )]
    );
    assert_eq!(
        inside.expect_closed().await,
        ["ERROR :Closing Link: (Banned: bad neighbourhood)"]
    );
    for from in ["127.0.0.2", "127.0.0.3"] {
        let mut c = connect_from(server.addr, ip(from)).await;
        assert_eq!(
            c.expect_closed().await,
            [format!(
                "ERROR :Closing Link: {from} (Banned: bad neighbourhood)"
            )]
        );
    }
    assert_eq!(refused(server.addr, ip("127.0.0.4"), "four").await, None);
    assert!(outside.sync().await.iter().all(|l| !l.contains("ERROR")));

    root.send("STATS d").await;
    assert_eq!(
        root.sync().await,
        [
            ":parley.local 216 root D 127.0.0.2/31 root :bad neighbourhood (expires never)",
            ":parley.local 219 root d :End of /STATS report",
        ]
    );
    root.send("DLINE example.com").await;
    assert_eq!(
        root.sync().await,
        [notice(
            "root",
            "example.com is not an address or network (like 10.0.0.0/8)"
        )]
    );
    root.send("UNDLINE 127.0.0.2").await;
    assert_eq!(
        root.sync().await,
        [notice("root", "No DLINE matches 127.0.0.2")]
    );
    root.send("UNDLINE 127.0.0.2/31").await;
    assert_eq!(
        root.sync().await,
        [notice("root", "Removed DLINE for 127.0.0.2/31")]
    );
    assert_eq!(refused(server.addr, ip("127.0.0.3"), "three").await, None);
}

/// A ban with a duration holds until then and not after: STATS stops listing it and the
/// address or nick gets in again, with no UNKLINE/UNDLINE.
#[tokio::test]
async fn klines_and_dlines_with_a_duration_expire() {
    let server = TestServer::start_with(opers_apart).await;
    let mut root = common::account(server.addr, "root").await;
    root.send("KLINE 3s brief :cool off").await;
    root.send("DLINE 3s 127.0.0.5 :cool off").await;
    let added = root.sync().await;
    assert_eq!(added.len(), 2, "{added:?}");
    assert!(
        added[0].starts_with(":parley.local NOTICE root :Added KLINE for brief!*@* (expires ")
            && added[0].ends_with("); 0 connection(s) closed"),
        "{added:?}"
    );
    assert!(
        added[1].starts_with(":parley.local NOTICE root :Added DLINE for 127.0.0.5 (expires "),
        "{added:?}"
    );
    assert_eq!(
        refused(server.addr, ip("127.0.0.1"), "brief").await,
        Some(vec![
            ":parley.local 465 brief :You are banned from this server: cool off".to_string(),
            "ERROR :Closing Link: (Banned: cool off)".to_string()
        ])
    );
    assert_eq!(
        refused(server.addr, ip("127.0.0.5"), "five").await,
        Some(vec![
            "ERROR :Closing Link: 127.0.0.5 (Banned: cool off)".to_string()
        ])
    );

    // Poll, bounded, rather than sleep past the expiry.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        root.send("STATS k").await;
        root.send("STATS d").await;
        let stats = root.sync().await;
        if stats
            == [
                ":parley.local 219 root k :End of /STATS report",
                ":parley.local 219 root d :End of /STATS report",
            ]
        {
            break;
        }
        // One may expire a moment before the other.
        assert!(stats.len() <= 4, "{stats:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bans never expired: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(refused(server.addr, ip("127.0.0.1"), "brief").await, None);
    assert_eq!(refused(server.addr, ip("127.0.0.5"), "five").await, None);
}

/// A moderator holds only the permissions in `moderator_permissions`: what it was given works,
/// everything else is a 481 and nothing more, and changes nothing.
#[tokio::test]
async fn a_moderator_may_do_only_what_it_was_given() {
    let server = TestServer::start_with(|c| {
        opers_apart(c);
        c.operators.moderator_permissions = vec!["kill".into()];
    })
    .await;
    let mut root = common::account(server.addr, "root").await;
    let mut moderator = common::account(server.addr, "mod").await;
    let mut troll = common::account(server.addr, "troll").await;
    let mut victim = server.client("victim").await;

    let denied = format!(":parley.local 481 mod :{DENIED}");
    for attempt in [
        "KLINE troll :no",
        "UNKLINE troll",
        "DLINE 127.0.0.2 :no",
        "UNDLINE 127.0.0.2",
        "STATS k",
        "STATS d",
        "SUSPEND troll :no",
        "UNSUSPEND troll",
        "WALLOPS :hello",
        "REHASH",
    ] {
        moderator.send(attempt).await;
        assert_eq!(
            moderator.sync().await,
            std::slice::from_ref(&denied),
            "{attempt}"
        );
    }
    moderator.send("PRIVMSG $* :hello everyone").await;
    assert_eq!(
        moderator.sync().await,
        [":parley.local 481 mod :Permission Denied - only server operators may message everyone"]
    );
    // Nothing of it happened.
    assert!(troll.sync().await.is_empty());
    assert!(victim.sync().await.is_empty());
    root.send("STATS k").await;
    root.send("STATS d").await;
    assert_eq!(
        root.sync().await,
        [
            ":parley.local 219 root k :End of /STATS report",
            ":parley.local 219 root d :End of /STATS report",
        ]
    );
    assert_eq!(
        sasl(server.addr, "troll", "troll-password").await,
        ":parley.local 903 * :SASL authentication successful"
    );

    // KILL it was given.
    moderator.send("KILL victim :be nice").await;
    assert_eq!(moderator.sync().await, [notice("mod", "Killed victim")]);
    assert_eq!(
        victim.expect_closed().await,
        [
            ":mod!~mod@127.0.0.1 KILL victim :be nice",
            "ERROR :Closing Link: parley.local (Killed (mod (be nice)))"
        ]
    );
}

/// SUSPEND refuses the account's logins; UNSUSPEND lets the same password in at once.
#[tokio::test]
async fn login_works_again_right_after_unsuspend() {
    let server = TestServer::start_with(opers_apart).await;
    let mut root = common::account(server.addr, "root").await;
    let mut troll = common::account(server.addr, "troll").await;
    root.send("SUSPEND troll :repeated abuse").await;
    assert_eq!(
        root.sync().await,
        [notice("root", "Suspended troll; 1 connection(s) closed")]
    );
    assert_eq!(
        troll.expect_closed().await,
        ["ERROR :Closing Link: (Account suspended: repeated abuse)"]
    );
    assert_eq!(
        sasl(server.addr, "troll", "troll-password").await,
        ":parley.local 904 * :This account is disabled; ask a server operator"
    );

    // An account that does not exist is said to be one, not "suspended".
    root.send("SUSPEND nobody").await;
    assert_eq!(
        root.sync().await,
        [notice(
            "root",
            "Cannot change nobody: there is no account named `nobody`"
        )]
    );
    root.send("UNSUSPEND troll").await;
    assert_eq!(root.sync().await, [notice("root", "Unsuspended troll")]);
    let mut back = Client::connect(server.addr).await;
    let lines = back.login_sasl("back", "troll", "troll-password").await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 900 back back!~back@127.0.0.1 troll :")),
        "{lines:?}"
    );
}

/// Every way OWNER says no, each as the one line it answers: too few parameters, a channel
/// that does not exist, a guest (no account) who is the channel's operator, a logged-in member
/// who is not the owner, an account that does not exist, and the default room.
#[tokio::test]
async fn owner_errors_line_by_line() {
    let server = TestServer::start_with(opers).await;
    let mut alice = common::account(server.addr, "alice").await;
    let mut bob = common::account(server.addr, "bob").await;
    let mut guest = server.client("guest").await;
    // Past the others' JOINs to the default room.
    alice.sync().await;
    bob.sync().await;

    let mut early = Client::connect(server.addr).await;
    early.send("OWNER #lobby").await;
    assert_eq!(
        early.sync().await,
        [":parley.local 451 * :You have not registered"]
    );

    alice.send("OWNER").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local 461 alice OWNER :Not enough parameters"]
    );
    alice.send("OWNER #nowhere alice").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local FAIL OWNER NO_SUCH_CHANNEL #nowhere :No such channel"]
    );
    alice.send("OWNER #nowhere").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local FAIL OWNER NO_SUCH_CHANNEL #nowhere :No such channel"]
    );

    // A guest who made a channel is its operator, but has no account to register it to.
    guest.send("JOIN #guests").await;
    guest.sync().await;
    for attempt in [
        "OWNER #guests guest",
        "OWNER #guests alice",
        "OWNER #guests -",
    ] {
        guest.send(attempt).await;
        assert_eq!(
            guest.sync().await,
            [
                ":parley.local FAIL OWNER NOT_OWNER #guests :Only the channel's owner (or a \
              server operator) can do that"
            ],
            "{attempt}"
        );
    }
    guest.send("OWNER #guests").await;
    assert_eq!(
        guest.sync().await,
        [notice("guest", "#guests is not registered")]
    );

    // Alice's channel: bob, a member (even an operator there), cannot take it or drop it.
    alice.send("JOIN #shop").await;
    alice.sync().await;
    bob.send("JOIN #shop").await;
    bob.sync().await;
    alice.send("MODE #shop +o bob").await;
    alice.sync().await;
    bob.sync().await;
    for attempt in ["OWNER #shop bob", "OWNER #shop -", "OWNER #SHOP alice"] {
        bob.send(attempt).await;
        assert_eq!(
            bob.sync().await,
            [
                ":parley.local FAIL OWNER NOT_OWNER #shop :Only the channel's owner (or a \
              server operator) can do that"
            ],
            "{attempt}"
        );
    }
    bob.send("OWNER #shop").await;
    assert_eq!(
        bob.sync().await,
        [notice("bob", "#shop is registered to alice")]
    );
    alice.send("OWNER #shop nobody").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local FAIL OWNER NO_SUCH_ACCOUNT #shop :There is no account named nobody"]
    );
    alice.send("OWNER #shop").await;
    assert_eq!(
        alice.sync().await,
        [notice("alice", "#shop is registered to alice")]
    );

    // The default room: nobody's, not even an admin's.
    for (client, nick) in [(&mut alice, "alice"), (&mut bob, "bob")] {
        client.send(&format!("OWNER #lobby {nick}")).await;
        assert_eq!(
            client.sync().await,
            [
                ":parley.local FAIL OWNER DEFAULT_CHANNEL #lobby :#lobby is the server's default \
              room: nobody owns it, server operators moderate it"
            ]
        );
    }
    let mut root = common::account(server.addr, "root").await;
    root.send("OWNER #LOBBY root").await;
    assert_eq!(
        root.sync().await,
        [
            ":parley.local FAIL OWNER DEFAULT_CHANNEL #lobby :#lobby is the server's default \
          room: nobody owns it, server operators moderate it"
        ]
    );
    root.send("OWNER #lobby").await;
    assert_eq!(
        root.sync().await,
        [notice("root", "#lobby is not registered")]
    );

    // A moderator without the `channels` permission is nobody here; an admin may hand the
    // channel over without being in it.
    let mut moderator = common::account(server.addr, "mod").await;
    root.sync().await;
    alice.sync().await;
    moderator.send("OWNER #shop mod").await;
    assert_eq!(
        moderator.sync().await,
        [
            ":parley.local FAIL OWNER NOT_OWNER #shop :Only the channel's owner (or a \
          server operator) can do that"
        ]
    );
    root.send("OWNER #shop BOB").await;
    assert_eq!(
        root.sync().await,
        [notice("root", "#shop is now registered to bob")]
    );
    alice.send("OWNER #shop alice").await;
    assert_eq!(
        alice.sync().await,
        [
            ":parley.local FAIL OWNER NOT_OWNER #shop :Only the channel's owner (or a \
          server operator) can do that"
        ]
    );
}

/// Fill list mode `mode` of `channel` to the MAXLIST limit (100), six masks a line.
async fn fill(op: &mut Client, channel: &str, mode: char) {
    let masks: Vec<String> = (0..100).map(|i| format!("*!*@10.{i}.0.1")).collect();
    for chunk in masks.chunks(6) {
        let letters: String = std::iter::repeat_n(mode, chunk.len()).collect();
        op.send(&format!("MODE {channel} +{letters} {}", chunk.join(" ")))
            .await;
    }
    op.sync().await;
}

/// The invite-exception list (346/347) and exception list (348/349) as the spec words them,
/// with who set each entry and when; and 478 once a list holds MAXLIST entries, with the
/// list unchanged.
#[tokio::test]
async fn list_mode_numerics() {
    let server = TestServer::start().await;
    let mut op = server.client("op").await;
    let mut watcher = server.client("watcher").await;
    op.send("JOIN #lists").await;
    op.sync().await;
    watcher.send("JOIN #lists").await;
    watcher.sync().await;
    op.sync().await;

    op.send("MODE #lists I").await;
    op.send("MODE #lists e").await;
    assert_eq!(
        op.sync().await,
        [
            ":parley.local 347 op #lists :End of channel invite list",
            ":parley.local 349 op #lists :End of channel exception list",
        ]
    );
    op.send("MODE #lists +Ie *!*@10.0.0.1 $a:carol").await;
    op.sync().await;
    // Anyone may look at the lists.
    watcher.sync().await;
    watcher.send("MODE #lists I").await;
    watcher.send("MODE #lists e").await;
    let lists = watcher.sync().await;
    assert_eq!(lists.len(), 4, "{lists:?}");
    let stamped = |line: &str, prefix: &str| {
        let rest = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line}"));
        let at: u64 = rest.parse().unwrap_or_else(|_| panic!("set-at in {line}"));
        assert!(at > 1_600_000_000, "{line}");
    };
    stamped(
        &lists[0],
        ":parley.local 346 watcher #lists *!*@10.0.0.1 op ",
    );
    assert_eq!(
        lists[1],
        ":parley.local 347 watcher #lists :End of channel invite list"
    );
    stamped(&lists[2], ":parley.local 348 watcher #lists $a:carol op ");
    assert_eq!(
        lists[3],
        ":parley.local 349 watcher #lists :End of channel exception list"
    );
    op.send("MODE #lists -I+e *!*@10.0.0.1 $a:carol").await;
    op.sync().await;
    op.send("MODE #lists I").await;
    let lists = op.sync().await;
    assert_eq!(
        lists,
        [":parley.local 347 op #lists :End of channel invite list"]
    );

    for mode in ['b', 'e', 'I', 'q'] {
        let channel = format!("#full{mode}");
        op.send(&format!("JOIN {channel}")).await;
        op.sync().await;
        fill(&mut op, &channel, mode).await;
        op.send(&format!("MODE {channel} +{mode} *!*@192.0.2.1"))
            .await;
        assert_eq!(
            op.sync().await,
            [format!(
                ":parley.local 478 op {channel} {mode} :Channel list is full"
            )],
            "{mode}"
        );
        op.send(&format!("MODE {channel} {mode}")).await;
        let list = op.sync().await;
        assert_eq!(list.len(), 101, "{mode}: the list stays at 100");
        assert!(!list.iter().any(|l| l.contains("192.0.2.1")), "{mode}");
        // Room again after one is removed.
        op.send(&format!(
            "MODE {channel} -{mode}+{mode} *!*@10.0.0.1 *!*@192.0.2.1"
        ))
        .await;
        let changed = op.sync().await;
        assert_eq!(
            changed,
            [format!(
                ":op!~op@127.0.0.1 MODE {channel} -{mode}+{mode} *!*@10.0.0.1 *!*@192.0.2.1"
            )],
            "{mode}"
        );
    }
}
