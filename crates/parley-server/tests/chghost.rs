//! CHGHOST (ircv3.net/specs/extensions/chghost) against the real server: an operator gives a
//! user a new username and host; clients with `chghost` (the user included, and
//! `extended-monitor` watchers) get the CHGHOST line, the others the QUIT/JOIN/MODE fallback;
//! WHOIS shows the new mask while operators still see the real address; refusals (481, bad
//! values, unknown nick); the audit trail; across a cluster; over WebSocket. Each test quotes
//! the sentence it checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::cluster::{client_with_caps, Cluster, CONVERGE};
use common::{Client, TestServer};
use parley_server::Config;

const DENIED: &str = "Permission Denied - You do not have the required operator privileges";

/// Operators (`root` an admin, `mod` a moderator with the default permissions, which do not
/// include chghost) and no default room, so nobody shares a channel unless a test says so.
fn opers(config: &mut Config) {
    config.operators.admins = vec!["root".into()];
    config.operators.moderators = vec!["mod".into()];
    config.server.default_channel = String::new();
}

async fn server() -> TestServer {
    TestServer::start_with(opers).await
}

/// Join `channel` and wait for its end of NAMES.
async fn join(client: &mut Client, channel: &str) {
    client.send(&format!("JOIN {channel}")).await;
    client.expect_numeric("366").await;
    client.sync().await;
}

#[tokio::test]
async fn cap_clients_get_chghost_and_the_others_the_fallback() {
    let server = server().await;
    let mut root = common::account(server.addr, "root").await;
    let mut alice = client_with_caps(server.addr, "alice", "chghost").await;
    let mut bob = client_with_caps(server.addr, "bob", "chghost").await;
    let mut carol = client_with_caps(server.addr, "carol", "extended-join away-notify").await;
    let mut dave = server.client("dave").await;
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        join(c, "#c").await;
    }
    alice.send("AWAY :lunch").await;
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        c.sync().await;
    }

    root.send("CHGHOST alice ~al cloak.example").await;
    assert_eq!(
        root.sync().await,
        [":parley.local NOTICE root :Changed the mask of alice to ~al@cloak.example"]
    );
    // "When a client username or host is changed, servers MUST send the CHGHOST message to
    // other clients who share channels with the target client and who have enabled the chghost
    // capability." -- `:nick!old_user@old_host.local CHGHOST new_user new_host.local`
    let expected = ":alice!~alice@127.0.0.1 CHGHOST ~al cloak.example";
    assert_eq!(bob.sync().await, [expected]);
    // "Servers SHOULD also send the CHGHOST message to the client whose own username or host
    // changed, if that client also supports the chghost capability."
    assert_eq!(alice.sync().await, [expected]);
    // "When the capability is not enabled for other clients who share channels with the
    // changed client, servers SHOULD send fallback messages to simulate the client
    // reconnecting. [...] the simulated events SHOULD include appropriate QUIT, JOIN and MODE
    // commands, to restore membership and user channel modes." alice opened #c: she is its
    // operator again after the JOIN; carol's JOIN is extended as she asked.
    assert_eq!(
        carol.sync().await,
        [
            ":alice!~alice@127.0.0.1 QUIT :Changing host",
            ":alice!~al@cloak.example JOIN #c * :Test alice",
            ":parley.local MODE #c +o alice",
            // As after her real JOIN, away-notify clients learn she is away.
            ":alice!~al@cloak.example AWAY :lunch",
        ]
    );
    assert_eq!(
        dave.sync().await,
        [
            ":alice!~alice@127.0.0.1 QUIT :Changing host",
            ":alice!~al@cloak.example JOIN #c",
            ":parley.local MODE #c +o alice",
        ]
    );

    // The new mask is hers from now on: WHOIS, WHO and the source of what she says.
    dave.send("WHOIS alice").await;
    let whois = dave.expect_numeric("311").await;
    assert_eq!(
        whois,
        ":parley.local 311 dave alice ~al cloak.example * :Test alice"
    );
    dave.sync().await;
    alice.send("PRIVMSG #c :hello").await;
    assert_eq!(
        dave.recv().await,
        ":alice!~al@cloak.example PRIVMSG #c :hello"
    );
    // Her real mask and address stay known to operators: modern.ircdocs.horse RPL_WHOISACTUALLY
    // (338), "<client> <nick> <username>@<hostname> <ip> :Is actually using host"; dave, no
    // operator, had none above.
    root.send("WHOIS alice").await;
    let whois = root.sync().await;
    assert!(
        whois.contains(
            &":parley.local 338 root alice ~alice@127.0.0.1 127.0.0.1 :Is actually using host"
                .to_string()
        ),
        "{whois:?}"
    );
    dave.send("WHOIS alice").await;
    let whois = dave.sync().await;
    assert!(!whois.iter().any(|l| l.contains(" 338 ")), "{whois:?}");
    // And WHOX `i`, not to everyone.
    root.send("WHO alice %nuhi").await;
    assert_eq!(
        root.sync().await,
        [
            ":parley.local 354 root ~al 127.0.0.1 cloak.example alice",
            ":parley.local 315 root alice :End of WHO list",
        ]
    );
    dave.send("WHO alice %nuhi").await;
    assert_eq!(
        dave.sync().await,
        [
            ":parley.local 354 dave ~al 255.255.255.255 cloak.example alice",
            ":parley.local 315 dave alice :End of WHO list",
        ]
    );

    // The change is in the audit trail, like a KILL.
    server.running.shutdown();
    assert!(server.running.wait(Duration::from_secs(5)).await);
    let mut config = common::test_config(&server.dir);
    opers(&mut config);
    let mut out = Vec::new();
    parley_server::inspect::audit(&config, None, Some("root"), None, &mut out).expect("audit");
    let trail = String::from_utf8(out).expect("utf-8");
    assert!(
        trail.lines().any(|l| l.contains(" chghost ")
            && l.contains("target=alice")
            && l.contains("alice!~alice@127.0.0.1 -> alice!~al@cloak.example")),
        "{trail}"
    );
}

#[tokio::test]
async fn the_user_without_the_cap_learns_its_new_host() {
    let server = server().await;
    let mut root = common::account(server.addr, "root").await;
    let mut dave = server.client("dave").await;
    root.send("CHGHOST dave dave user/dave").await;
    root.sync().await;
    // Without chghost the user is told as ircds tell it, RPL_HOSTHIDDEN (396).
    assert_eq!(
        dave.sync().await,
        [":parley.local 396 dave user/dave :is now your displayed host"]
    );
    dave.send("WHOIS dave").await;
    assert_eq!(
        dave.expect_numeric("311").await,
        ":parley.local 311 dave dave dave user/dave * :Test dave"
    );
}

#[tokio::test]
async fn extended_monitor_watchers_get_chghost() {
    let server = server().await;
    let mut root = common::account(server.addr, "root").await;
    let _alice = server.client("alice").await;
    let mut erin = client_with_caps(server.addr, "erin", "extended-monitor chghost").await;
    let mut frank = client_with_caps(server.addr, "frank", "extended-monitor").await;
    for c in [&mut erin, &mut frank] {
        c.send("MONITOR + alice").await;
        c.expect_numeric("730").await;
        c.sync().await;
    }
    root.send("CHGHOST alice ~alice vhost.example").await;
    root.sync().await;
    // ircv3.net extended-monitor: "This specification extends MONITOR to also include AWAY,
    // ACCOUNT, CHGHOST and SETNAME notifications", to clients that enabled chghost as well.
    assert_eq!(
        erin.sync().await,
        [":alice!~alice@127.0.0.1 CHGHOST ~alice vhost.example"]
    );
    assert_eq!(frank.sync().await, Vec::<String>::new());
}

#[tokio::test]
async fn only_operators_with_the_permission_change_a_host() {
    let server = server().await;
    let mut bob = server.client("bob").await;
    let mut moderator = common::account(server.addr, "mod").await;
    let _alice = server.client("alice").await;
    // modern.ircdocs.horse, ERR_NOPRIVILEGES (481): "Indicates that the command failed because
    // the user is not an IRC operator."
    bob.send("CHGHOST alice x y.example").await;
    assert_eq!(
        bob.sync().await,
        [format!(":parley.local 481 bob :{DENIED}")]
    );
    // A moderator holds only the permissions in moderator_permissions (no chghost by default).
    moderator.send("CHGHOST alice x y.example").await;
    assert_eq!(
        moderator.sync().await,
        [format!(":parley.local 481 mod :{DENIED}")]
    );
    bob.send("WHOIS alice").await;
    assert_eq!(
        bob.expect_numeric("311").await,
        ":parley.local 311 bob alice ~alice 127.0.0.1 * :Test alice"
    );
}

#[tokio::test]
async fn bad_values_and_unknown_nicks_are_refused() {
    let server = server().await;
    let mut root = common::account(server.addr, "root").await;
    let _alice = server.client("alice").await;
    let long = "a".repeat(65);
    let bad_host = ":parley.local FAIL CHGHOST INVALID_HOSTNAME :A host is 1 to 64 of the \
                    characters A-Z a-z 0-9 - . : / and starts with a letter or digit";
    for host in ["bad!host", "-x.example", long.as_str()] {
        root.send(&format!("CHGHOST alice al {host}")).await;
        assert_eq!(root.sync().await, [bad_host], "{host}");
    }
    root.send("CHGHOST alice b@d ok.example").await;
    assert_eq!(
        root.sync().await,
        [
            ":parley.local FAIL CHGHOST INVALID_USERNAME :A username is 1 to 16 of the characters \
          A-Z a-z 0-9 - _ . (a leading ~ allowed)"
        ]
    );
    root.send("CHGHOST nobody al ok.example").await;
    assert_eq!(
        root.sync().await,
        [":parley.local 401 root nobody :No such nick/channel"]
    );
    root.send("CHGHOST alice al").await;
    assert_eq!(
        root.sync().await,
        [":parley.local 461 root CHGHOST :Not enough parameters"]
    );
}

#[tokio::test]
async fn chghost_crosses_the_cluster() {
    let Some(cluster) = Cluster::start(2, |_, config| opers(config)).await else {
        return;
    };
    let mut root = common::account(cluster.nodes[0].addr, "root").await;
    let mut alice = client_with_caps(cluster.nodes[0].addr, "alice", "chghost").await;
    join(&mut alice, "#c").await;
    let mut bob = client_with_caps(cluster.nodes[1].addr, "bob", "chghost").await;
    let mut carol = cluster.client(1, "carol").await;
    for c in [&mut bob, &mut carol] {
        join(c, "#c").await;
    }
    alice
        .expect_within(CONVERGE, |l| {
            l.starts_with(":carol!") && l.contains(" JOIN ")
        })
        .await;
    alice.sync().await;
    root.send("CHGHOST alice ~al cloak.example").await;
    root.sync().await;
    // The other node's clients: "servers MUST send the CHGHOST message to other clients who
    // share channels with the target client and who have enabled the chghost capability", and
    // the fallback ("QUIT, JOIN and MODE") to those without it.
    bob.expect_within(CONVERGE, |l| {
        l == ":alice!~alice@127.0.0.1 CHGHOST ~al cloak.example"
    })
    .await;
    carol
        .expect_within(CONVERGE, |l| {
            l == ":alice!~alice@127.0.0.1 QUIT :Changing host"
        })
        .await;
    assert_eq!(carol.recv().await, ":alice!~al@cloak.example JOIN #c");
    assert_eq!(carol.recv().await, ":n2.parley.local MODE #c +o alice");
    // The other node keeps the new mask.
    carol.send("WHOIS alice").await;
    assert_eq!(
        carol.expect_numeric("311").await,
        ":n2.parley.local 311 carol alice ~al cloak.example * :Test alice"
    );
    // A user of the other node: only its own node may announce it, so that node makes the
    // change on request; everyone hears it as from a local change.
    root.send("CHGHOST bob ~b b.example").await;
    assert_eq!(
        root.sync().await,
        [":n1.parley.local NOTICE root :Changed the mask of bob to ~b@b.example"]
    );
    let expected = ":bob!~bob@127.0.0.1 CHGHOST ~b b.example";
    alice.expect_within(CONVERGE, |l| l == expected).await;
    bob.expect_within(CONVERGE, |l| l == expected).await;
    carol
        .expect_within(CONVERGE, |l| l == ":bob!~bob@127.0.0.1 QUIT :Changing host")
        .await;
    assert_eq!(carol.recv().await, ":bob!~b@b.example JOIN #c");
    root.send("WHOIS bob").await;
    assert_eq!(
        root.expect_numeric("311").await,
        ":n1.parley.local 311 root bob ~b b.example * :Test bob"
    );
}

#[tokio::test]
async fn chghost_reaches_a_websocket_client() {
    let server = TestServer::start_with(|config| {
        opers(config);
        config.web.listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let mut root = common::account(server.addr, "root").await;
    let mut alice = server.client("alice").await;
    join(&mut alice, "#c").await;
    let mut browser = common::websocket::connect_websocket(&server).await;
    browser.nick = "webby".into();
    browser.send("CAP LS 302").await;
    browser.send("CAP REQ :chghost").await;
    browser.expect(|l| l.contains(" ACK ")).await;
    browser.send("NICK webby").await;
    browser.send("USER webby 0 * :webby").await;
    browser.send("CAP END").await;
    browser.expect_numeric("001").await;
    browser.sync().await;
    join(&mut browser, "#c").await;
    alice.sync().await;
    root.send("CHGHOST alice ~al cloak.example").await;
    root.sync().await;
    // "servers MUST send the CHGHOST message to other clients who share channels with the
    // target client and who have enabled the chghost capability" -- over WebSocket as over TCP.
    assert_eq!(
        browser.sync().await,
        [":alice!~alice@127.0.0.1 CHGHOST ~al cloak.example"]
    );
}

#[tokio::test]
async fn a_new_host_is_no_way_around_a_ban_on_the_real_one() {
    let server = server().await;
    let mut root = common::account(server.addr, "root").await;
    let mut op = server.client("op").await;
    join(&mut op, "#c").await;
    let mut troll = server.client("troll").await;
    op.send("MODE #c +b *!*@127.0.0.1").await;
    op.sync().await;
    root.send("CHGHOST troll troll clean.example").await;
    root.sync().await;
    troll.sync().await;
    // The ban names the address troll connected from; its shown host is another now.
    troll.send("JOIN #c").await;
    assert_eq!(
        troll.sync().await,
        [":parley.local 474 troll #c :Cannot join channel (+b)"]
    );
    // So does a K-line: it closes troll, whatever its shown host.
    root.send("KLINE *@127.0.0.1 :go away").await;
    let last = troll.expect_closed().await;
    assert!(last.iter().any(|l| l.contains("go away")), "{last:?}");
}

#[tokio::test]
async fn a_moderator_given_the_permission_may_change_a_host() {
    let server = TestServer::start_with(|config| {
        opers(config);
        config.operators.moderator_permissions = vec!["chghost".into()];
    })
    .await;
    let mut moderator = common::account(server.addr, "mod").await;
    let mut alice = server.client("alice").await;
    moderator.send("CHGHOST alice alice staff.example").await;
    assert_eq!(
        moderator.sync().await,
        [":parley.local NOTICE mod :Changed the mask of alice to alice@staff.example"]
    );
    assert_eq!(
        alice.sync().await,
        [":parley.local 396 alice staff.example :is now your displayed host"]
    );
}
