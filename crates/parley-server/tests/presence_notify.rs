//! Keeping member lists right without polling: `away-notify`, `setname`, `invite-notify` and
//! `extended-monitor` (ircv3.net/specs/extensions/...) against the real server, on one node and
//! across a cluster. Each test quotes the sentence it checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cluster::{client_with_caps, Cluster, CONVERGE};
use common::{command_of, Client, TestServer};

/// A server without a default channel, so that nobody shares a channel unless a test says so.
async fn server() -> TestServer {
    TestServer::start_with(|config| config.server.default_channel = String::new()).await
}

fn src(nick: &str) -> String {
    format!("{nick}!~{nick}@127.0.0.1")
}

/// Join `channel` and wait for its end of NAMES.
async fn join(client: &mut Client, channel: &str) {
    client.send(&format!("JOIN {channel}")).await;
    client.expect_numeric("366").await;
    client.sync().await;
}

#[tokio::test]
async fn cap_ls_offers_the_notifications() {
    let server = server().await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    let offered: Vec<&str> = ls.rsplit_once(" :").expect("a list").1.split(' ').collect();
    for cap in [
        "away-notify",
        "extended-monitor",
        "invite-notify",
        "setname",
        // Operators' CHGHOST changes a username and host (tests/chghost.rs).
        "chghost",
    ] {
        assert!(offered.contains(&cap), "{cap} missing from {ls}");
    }
}

#[tokio::test]
async fn away_changes_reach_channel_peers_with_away_notify() {
    let server = server().await;
    let mut alice = client_with_caps(server.addr, "alice", "away-notify").await;
    let mut carol = server.client("carol").await;
    let mut bob = server.client("bob").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        join(c, "#c").await;
    }
    for c in [&mut alice, &mut bob, &mut carol] {
        c.sync().await;
    }
    // "clients will be sent an AWAY message when a user sharing a channel with them sets,
    // changes or removes their away state" -- `:nick!user@host AWAY [:message]`
    bob.send("AWAY :out for lunch").await;
    assert_eq!(
        bob.sync().await,
        [":parley.local 306 bob :You have been marked as being away"]
    );
    assert_eq!(
        alice.sync().await,
        [format!(":{} AWAY :out for lunch", src("bob"))]
    );
    // "If the message is not present, the user ... is removing their away message/state."
    bob.send("AWAY").await;
    bob.sync().await;
    assert_eq!(alice.sync().await, [format!(":{} AWAY", src("bob"))]);
    // Without the capability: nothing.
    assert_eq!(carol.sync().await, Vec::<String>::new());
}

#[tokio::test]
async fn an_away_user_joining_is_followed_by_its_away() {
    let server = server().await;
    let mut alice = client_with_caps(server.addr, "alice", "away-notify").await;
    join(&mut alice, "#c").await;
    let mut bob = server.client("bob").await;
    bob.send("AWAY :brb").await;
    bob.sync().await;
    // "... as well as when a user joins and has an away message set."
    join(&mut bob, "#c").await;
    assert_eq!(
        alice.sync().await,
        [
            format!(":{} JOIN #c", src("bob")),
            format!(":{} AWAY :brb", src("bob")),
        ]
    );
    // "(Note that AWAY will not be sent for joining users with no away message set.)"
    let mut dave = server.client("dave").await;
    join(&mut dave, "#c").await;
    assert_eq!(alice.sync().await, [format!(":{} JOIN #c", src("dave"))]);
}

#[tokio::test]
async fn setname_changes_the_realname_for_everyone_with_the_cap() {
    let server = server().await;
    let mut alice = client_with_caps(server.addr, "alice", "setname").await;
    let mut bob = client_with_caps(server.addr, "bob", "setname").await;
    let mut carol = server.client("carol").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        join(c, "#c").await;
    }
    alice.sync().await;
    bob.sync().await;
    // "If they accept the realname change, they MUST send the server-to-client version of the
    // SETNAME message to all clients in common channels, as well as to the client from which it
    // originated" -- `:nick!user@host SETNAME :realname goes here`
    alice.send("SETNAME :Alice Liddell").await;
    let expected = format!(":{} SETNAME :Alice Liddell", src("alice"));
    assert_eq!(alice.sync().await, std::slice::from_ref(&expected));
    assert_eq!(bob.sync().await, [expected]);
    // "The SETNAME message MUST NOT be sent to clients which do not have the setname capability
    // negotiated."
    assert_eq!(carol.sync().await, Vec::<String>::new());
    carol.send("WHOIS alice").await;
    let whois = carol.expect_numeric("311").await;
    assert!(whois.ends_with(" * :Alice Liddell"), "{whois}");
}

#[tokio::test]
async fn an_invalid_realname_is_refused_with_fail() {
    let server = TestServer::start_with(|config| {
        config.server.default_channel = String::new();
        config.limits.realname_len = 10;
    })
    .await;
    let mut alice = client_with_caps(server.addr, "alice", "setname").await;
    // "When enabled, servers MUST provide a NAMELEN token in RPL_ISUPPORT with the maximum
    // allowed length for realnames."
    let mut probe = server.connect().await;
    probe.send("NICK probe").await;
    probe.send("USER probe 0 * :Probe").await;
    let isupport = probe
        .expect(|l| command_of(l) == "005" && l.contains(" NAMELEN="))
        .await;
    assert!(isupport.contains(" NAMELEN=10 "), "{isupport}");
    // "If the server rejects the realname due to invalidity, it MUST send a FAIL message of the
    // following format: FAIL SETNAME INVALID_REALNAME :Realname is not valid"
    alice.send("SETNAME :far too long a name").await;
    assert_eq!(
        alice.sync().await,
        [":parley.local FAIL SETNAME INVALID_REALNAME :Realname is not valid (1 to 10 characters)"]
    );
    alice.send("SETNAME :").await;
    let lines = alice.sync().await;
    assert!(
        lines.len() == 1 && lines[0].contains(" FAIL SETNAME INVALID_REALNAME "),
        "{lines:?}"
    );
    alice.send("WHOIS alice").await;
    let whois = alice.expect_numeric("311").await;
    assert!(whois.ends_with(" * :Test alice"), "unchanged: {whois}");
}

#[tokio::test]
async fn setname_without_the_cap_is_handled_silently() {
    let server = server().await;
    let mut bob = server.client("bob").await;
    // "If a client sends a SETNAME command without having negotiated the capability, the server
    // SHOULD handle it silently (with no response), as historic implementations did."
    bob.send("SETNAME :Robert").await;
    assert_eq!(bob.sync().await, Vec::<String>::new());
    bob.send("WHOIS bob").await;
    let whois = bob.expect_numeric("311").await;
    assert!(whois.ends_with(" * :Robert"), "{whois}");
}

#[tokio::test]
async fn channel_operators_with_invite_notify_see_invites() {
    let server = server().await;
    let mut alice = client_with_caps(server.addr, "alice", "invite-notify").await;
    join(&mut alice, "#c").await; // the first to join: operator
    let mut dave = client_with_caps(server.addr, "dave", "invite-notify").await;
    let mut bob = server.client("bob").await;
    join(&mut dave, "#c").await;
    join(&mut bob, "#c").await;
    let mut carol = server.client("carol").await;
    alice.sync().await;
    dave.sync().await;
    // `:<inviter> INVITE <target> <channel>`; "a server may choose to only send the message to
    // clients having channel op": alice (op) is told, dave (a member) is not.
    bob.send("INVITE carol #c").await;
    bob.expect_numeric("341").await;
    carol
        .expect(|l| l == format!(":{} INVITE carol #c", src("bob")))
        .await;
    assert_eq!(
        alice.sync().await,
        [format!(":{} INVITE carol #c", src("bob"))]
    );
    assert_eq!(dave.sync().await, Vec::<String>::new());
}

#[tokio::test]
async fn extended_monitor_brings_changes_of_monitored_nicks_without_a_shared_channel() {
    let server = server().await;
    let mut alice = client_with_caps(
        server.addr,
        "alice",
        "extended-monitor away-notify setname account-notify",
    )
    .await;
    // away-notify without extended-monitor: only channel peers.
    let mut carol = client_with_caps(server.addr, "carol", "away-notify setname").await;
    for c in [&mut alice, &mut carol] {
        c.send("MONITOR + bob").await;
        c.sync().await;
    }
    let mut bob = server.client("bob").await;
    alice.expect_numeric("730").await;
    carol.expect_numeric("730").await;
    // "If away-notify is also enabled, the client will get AWAY notifications for monitored
    // nicks."
    bob.send("AWAY :gone").await;
    bob.sync().await;
    assert_eq!(alice.sync().await, [format!(":{} AWAY :gone", src("bob"))]);
    // "If setname is also enabled, the client will get SETNAME notifications for monitored
    // nicks."
    bob.send("SETNAME :Bobby").await;
    bob.sync().await;
    assert_eq!(
        alice.sync().await,
        [format!(":{} SETNAME :Bobby", src("bob"))]
    );
    assert_eq!(carol.sync().await, Vec::<String>::new());
    // Sharing a channel as well, alice hears of it once.
    join(&mut alice, "#c").await;
    join(&mut bob, "#c").await;
    alice.sync().await;
    bob.send("AWAY").await;
    bob.sync().await;
    assert_eq!(alice.sync().await, [format!(":{} AWAY", src("bob"))]);
    // "If account-notify is also enabled, the client will get ACCOUNT notifications for
    // monitored nicks." (bob parts first, so only the monitor brings it)
    bob.send("PART #c").await;
    bob.sync().await;
    alice.sync().await;
    bob.send("REGISTER * * bob-password-1").await;
    bob.expect(|l| l.contains("REGISTER SUCCESS")).await;
    bob.sync().await;
    alice
        .expect(|l| l == format!(":{} ACCOUNT bob", src("bob")))
        .await;
}

#[tokio::test]
async fn notifications_cross_the_cluster() {
    let Some(cluster) = Cluster::start(2, |_, config| {
        config.server.default_channel = String::new();
    })
    .await
    else {
        return;
    };
    let mut alice = client_with_caps(
        cluster.nodes[0].addr,
        "alice",
        "away-notify setname invite-notify",
    )
    .await;
    join(&mut alice, "#c").await;
    let mut bob = cluster.client(1, "bob").await;
    bob.send("AWAY :afk").await;
    bob.sync().await;
    bob.send("JOIN #c").await;
    // The away joiner's AWAY follows its JOIN on the other node too.
    alice
        .expect_within(CONVERGE, |l| l == format!(":{} JOIN #c", src("bob")))
        .await;
    alice
        .expect_within(CONVERGE, |l| l == format!(":{} AWAY :afk", src("bob")))
        .await;
    bob.send("AWAY").await;
    alice
        .expect_within(CONVERGE, |l| l == format!(":{} AWAY", src("bob")))
        .await;
    bob.send("SETNAME :Remote Bob").await;
    alice
        .expect_within(CONVERGE, |l| {
            l == format!(":{} SETNAME :Remote Bob", src("bob"))
        })
        .await;
    // An invite on the other node reaches alice, the channel's operator, here.
    let _carol = cluster.client(1, "carol").await;
    bob.send("INVITE carol #c").await;
    alice
        .expect_within(CONVERGE, |l| {
            l == format!(":{} INVITE carol #c", src("bob"))
        })
        .await;
    // bob's own node keeps the new realname.
    bob.send("WHOIS bob").await;
    let whois = bob.expect_numeric("311").await;
    assert!(whois.ends_with(" * :Remote Bob"), "{whois}");
    // and alice's node too.
    alice.send("WHOIS bob").await;
    let (whois, _) = alice
        .expect_within(CONVERGE, |l| command_of(l) == "311")
        .await;
    assert!(whois.ends_with(" * :Remote Bob"), "{whois}");
}

#[tokio::test]
async fn cap_notify_tells_of_registration_opening_and_closing_on_reload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::test_config(&dir);
    config.server.default_channel = String::new();
    let path = dir.path().join("parley.toml");
    let write = |registration: &str| {
        let text = format!(
            "[server]\ndefault_channel = \"\"\n[accounts]\nrequire_login = false\n\
             registration = \"{registration}\"\n"
        );
        std::fs::write(&path, text).expect("write the config");
    };
    let running = parley_server::start(config).await.expect("start");
    running.set_config_source(Some(path.clone()), Some(dir.path().to_path_buf()));
    let addr = running.plain_addrs()[0];
    // "The cap-notify capability MUST be implicitly enabled if the client requests CAP LS with
    // a version of 302 or newer"
    let mut modern = client_with_caps(addr, "modern", "server-time").await;
    let mut old = Client::connect(addr).await;
    old.register("old").await;
    // "When enabled, the server MUST notify clients about all new capabilities and about
    // existing capabilities that are no longer available" -- `CAP <nick> DEL :<extension 1>`
    write("closed");
    running.reload().expect("reload");
    assert_eq!(
        modern.sync().await,
        [":parley.local CAP modern DEL :draft/account-registration"]
    );
    write("open");
    running.reload().expect("reload");
    assert_eq!(
        modern.sync().await,
        [":parley.local CAP modern NEW :draft/account-registration"]
    );
    // A client that never asked for cap-notify hears nothing.
    assert_eq!(old.sync().await, Vec::<String>::new());
    // "Further, the cap-notify capability MAY NOT be disabled if the client requests CAP LS
    // with a version of 302 or newer."
    modern.send("CAP REQ :-cap-notify").await;
    assert_eq!(
        modern.sync().await,
        [":parley.local CAP modern NAK :-cap-notify"]
    );
    // "Clients that do not support CAP LS version 302 MAY request the cap-notify capability
    // explicitly. Such clients MAY disable the capability at any time."
    old.send("CAP REQ :cap-notify").await;
    old.sync().await;
    write("closed");
    running.reload().expect("reload");
    assert_eq!(
        old.sync().await,
        [":parley.local CAP old DEL :draft/account-registration"]
    );
    old.send("CAP REQ :-cap-notify").await;
    assert_eq!(old.sync().await, [":parley.local CAP old ACK :-cap-notify"]);
    write("open");
    running.reload().expect("reload");
    assert_eq!(old.sync().await, Vec::<String>::new());
    running.shutdown();
}
