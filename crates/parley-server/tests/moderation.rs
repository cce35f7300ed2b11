//! Groups that last, moderation and server operators, against the real server and a real SQLite
//! file: registered channels across a restart, OWNER, extbans and exceptions, quiets, OPER, KILL,
//! K-lines and D-lines (persisted), SUSPEND, WALLOPS, /broadcast policy, and the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{connect_from, Client, TestServer};
use parley_server::config::BroadcastPolicy;
use parley_server::Config;

fn opers(config: &mut Config) {
    config.operators.admins = vec!["root".into()];
    config.operators.moderators = vec!["mod".into()];
}

#[tokio::test]
async fn registered_channels_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = parley_server::start(common::test_config(&dir))
        .await
        .expect("start");
    let addr = first.plain_addrs()[0];
    let mut alice = common::account(addr, "alice").await;
    let mut carol = common::account(addr, "carol").await;
    alice.send("JOIN #club").await;
    alice.send("TOPIC #club :members only").await;
    alice.send("MODE #club +ik-t+l secret 10").await;
    alice
        .send("MODE #club +b-b+b *!*@10.0.0.1 *!*@10.0.0.1 $a:mallory")
        .await;
    alice.send("MODE #club +e $a:carol").await;
    alice.send("INVITE carol #club").await;
    alice.sync().await;
    carol.send("JOIN #club secret").await;
    carol.sync().await;
    alice.send("MODE #club +o carol").await;
    alice.send("OWNER #club").await;
    let owner = alice.sync().await;
    assert!(
        owner
            .iter()
            .any(|l| l.ends_with("#club is registered to alice")),
        "{owner:?}"
    );
    // The default room is nobody's.
    alice.send("OWNER #lobby").await;
    let lobby = alice.sync().await;
    assert!(
        lobby
            .iter()
            .any(|l| l.ends_with("#lobby is not registered")),
        "{lobby:?}"
    );
    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    drop((alice, carol));

    let second = parley_server::start(common::test_config(&dir))
        .await
        .expect("restart");
    let addr = second.plain_addrs()[0];
    let mut look = Client::connect(addr).await;
    look.register("looker").await;
    look.send("LIST #club").await;
    let list = look.sync().await;
    assert!(
        list.iter()
            .any(|l| l.contains(" 322 looker #club 0 :members only")),
        "an empty registered channel still exists: {list:?}"
    );
    let mut alice = common::account(addr, "alice").await;
    alice.send("JOIN #club secret").await;
    let joined = alice.sync().await;
    assert!(
        joined
            .iter()
            .any(|l| l.contains(" 353 alice = #club :@alice")),
        "owner gets ops: {joined:?}"
    );
    assert!(
        joined
            .iter()
            .any(|l| l.contains(" 332 alice #club :members only")),
        "{joined:?}"
    );
    alice.send("MODE #club").await;
    let modes = alice.sync().await;
    assert!(
        modes
            .iter()
            .any(|l| l.contains(" 324 alice #club +inkl secret 10")),
        "{modes:?}"
    );
    alice.send("MODE #club b").await;
    let bans = alice.sync().await;
    assert!(
        bans.iter()
            .any(|l| l.contains(" 367 alice #club $a:mallory alice ")),
        "{bans:?}"
    );
    assert!(!bans.iter().any(|l| l.contains("10.0.0.1")), "{bans:?}");
    alice.send("MODE #club e").await;
    let excepts = alice.sync().await;
    assert!(
        excepts
            .iter()
            .any(|l| l.contains(" 348 alice #club $a:carol alice ")),
        "{excepts:?}"
    );
    let mut carol = common::account(addr, "carol").await;
    carol.send("JOIN #club secret").await;
    let joined = carol.sync().await;
    assert!(
        joined
            .iter()
            .any(|l| l.contains(" 353 carol = #club :@alice @carol")),
        "remembered op: {joined:?}"
    );
    second.shutdown();
}

#[tokio::test]
async fn owner_hands_over_and_drops_channels() {
    let server = TestServer::start().await;
    let mut alice = common::account(server.addr, "alice").await;
    let mut bob = common::account(server.addr, "bob").await;
    alice.send("JOIN #shop").await;
    alice.sync().await;
    bob.send("JOIN #shop").await;
    bob.send("OWNER #shop bob").await;
    let refused = bob.sync().await;
    assert!(
        refused
            .iter()
            .any(|l| l.contains("FAIL OWNER NOT_OWNER #shop :Only the channel's owner")),
        "{refused:?}"
    );
    alice.send("OWNER #shop nobody").await;
    assert!(alice
        .sync()
        .await
        .iter()
        .any(|l| l.contains("FAIL OWNER NO_SUCH_ACCOUNT #shop")));
    alice.send("OWNER #shop BOB").await;
    assert!(alice
        .sync()
        .await
        .iter()
        .any(|l| l.ends_with("#shop is now registered to bob")));
    alice.send("OWNER #shop -").await;
    assert!(alice
        .sync()
        .await
        .iter()
        .any(|l| l.contains("FAIL OWNER NOT_OWNER")));
    bob.send("OWNER #shop -").await;
    assert!(bob
        .sync()
        .await
        .iter()
        .any(|l| l.ends_with("#shop is no longer registered")));
    alice.send("PART #shop").await;
    bob.send("PART #shop").await;
    bob.sync().await;
    alice.send("LIST #shop").await;
    let list = alice.sync().await;
    assert!(
        !list.iter().any(|l| l.contains(" 322 ")),
        "an unregistered empty channel vanishes: {list:?}"
    );
}

#[tokio::test]
async fn extbans_exceptions_invex_and_quiets() {
    let server = TestServer::start().await;
    let mut op = common::account(server.addr, "op").await;
    let mut mallory = common::account(server.addr, "mallory").await;
    let mut guest = server.client("guest").await;
    op.send("JOIN #mod").await;
    op.send("MODE #mod +b $a:mallory").await;
    op.sync().await;
    mallory.send("JOIN #mod").await;
    assert!(mallory
        .sync()
        .await
        .iter()
        .any(|l| l.contains(" 474 mallory #mod :Cannot join channel (+b)")));
    op.send("MODE #mod +e $a:mallory").await;
    op.sync().await;
    mallory.send("JOIN #mod").await;
    assert!(
        mallory
            .sync()
            .await
            .iter()
            .any(|l| l.contains(" JOIN #mod")),
        "the exception lets her in"
    );

    op.send("MODE #mod +i").await;
    op.sync().await;
    guest.send("JOIN #mod").await;
    assert!(guest
        .sync()
        .await
        .iter()
        .any(|l| l.contains(" 473 guest #mod ")));
    op.send("MODE #mod +I *!*@127.0.0.1").await;
    op.sync().await;
    guest.send("JOIN #mod").await;
    assert!(
        guest.sync().await.iter().any(|l| l.contains(" JOIN #mod")),
        "+I lets the guest in"
    );

    op.send("MODE #mod +q guest").await;
    op.sync().await;
    guest.send("PRIVMSG #mod :can I talk?").await;
    assert!(guest
        .sync()
        .await
        .iter()
        .any(|l| l.contains(" 404 guest #mod :Cannot send to channel (+q)")));
    op.send("MODE #mod q").await;
    let quiets = op.sync().await;
    assert!(
        quiets
            .iter()
            .any(|l| l.contains(" 728 op #mod q guest!*@* op ")),
        "{quiets:?}"
    );
    assert!(
        quiets
            .iter()
            .any(|l| l.contains(" 729 op #mod q :End of channel quiet list")),
        "{quiets:?}"
    );
    op.send("MODE #mod +v guest").await;
    op.sync().await;
    guest.send("PRIVMSG #mod :thanks").await;
    let lines = guest.sync().await;
    assert!(
        !lines.iter().any(|l| l.contains(" 404 ")),
        "voice beats quiet: {lines:?}"
    );
}

#[tokio::test]
async fn operators_kill_and_announce() {
    let server = TestServer::start_with(opers).await;
    let mut root = common::account(server.addr, "root").await;
    let mut victim = server.client("victim").await;
    let mut watcher = server.client("watcher").await;
    root.send("WHOIS root").await;
    let whois = root.sync().await;
    assert!(
        whois
            .iter()
            .any(|l| l.contains(" 313 root root :is an IRC operator (admin)")),
        "{whois:?}"
    );
    root.send("MODE root").await;
    assert!(root
        .sync()
        .await
        .iter()
        .any(|l| l.contains(" 221 root +ow")));

    watcher.send("KILL victim :nope").await;
    assert!(watcher
        .sync()
        .await
        .iter()
        .any(|l| l.contains(" 481 watcher ")));
    watcher.send("OPER watcher secret").await;
    assert!(watcher
        .sync()
        .await
        .iter()
        .any(|l| l.contains(" 464 watcher :Password incorrect")));

    root.send("KILL victim :be nice").await;
    root.sync().await;
    let last = victim.expect_closed().await;
    assert!(
        last.iter()
            .any(|l| l == "ERROR :Closing Link: parley.local (Killed (root (be nice)))"),
        "{last:?}"
    );
    watcher
        .expect(|l| l == ":victim!~victim@127.0.0.1 QUIT :Killed (root (be nice))")
        .await;

    watcher.send("MODE watcher +w").await;
    watcher.sync().await;
    let mut deaf = server.client("deaf").await;
    root.send("WALLOPS :maintenance at noon").await;
    root.sync().await;
    watcher
        .expect(|l| l == ":root!~root@127.0.0.1 WALLOPS :maintenance at noon")
        .await;
    assert!(!deaf.sync().await.iter().any(|l| l.contains("WALLOPS")));

    // Broadcast: operators only by default.
    watcher.send("PRIVMSG $* :hello everyone").await;
    assert!(watcher
        .sync()
        .await
        .iter()
        .any(|l| l.contains(" 481 watcher ")));
    root.send("PRIVMSG $* :server restarting soon").await;
    root.send("NOTICE $* :a global notice").await;
    root.sync().await;
    deaf.expect(|l| l == ":root!~root@127.0.0.1 PRIVMSG $* :server restarting soon")
        .await;
    deaf.expect(|l| l == ":root!~root@127.0.0.1 NOTICE $* :a global notice")
        .await;
}

#[tokio::test]
async fn broadcast_for_everyone_is_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.operators.broadcast = BroadcastPolicy::Everyone;
        c.operators.broadcast_interval_secs = 3600;
    })
    .await;
    let mut speaker = server.client("speaker").await;
    let mut listener = server.client("listener").await;
    speaker.send("PRIVMSG $* :first").await;
    speaker.sync().await;
    listener.expect(|l| l.ends_with("PRIVMSG $* :first")).await;
    speaker.send("PRIVMSG $* :second").await;
    let lines = speaker.sync().await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 263 speaker PRIVMSG :Please wait a while")),
        "{lines:?}"
    );
    assert!(!listener.sync().await.iter().any(|l| l.contains("second")));
}

#[tokio::test]
async fn klines_and_dlines_are_enforced_and_persisted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = || {
        let mut config = common::test_config(&dir);
        opers(&mut config);
        config
    };
    let first = parley_server::start(config()).await.expect("start");
    let addr = first.plain_addrs()[0];
    let mut root = common::account(addr, "root").await;
    let mut spammer = common::account(addr, "spammer").await;
    root.send("KLINE 1h $a:spammer :no spam").await;
    let reply = root.sync().await;
    assert!(
        reply
            .iter()
            .any(|l| l.contains("Added KLINE for $a:spammer")
                && l.contains("1 connection(s) closed")),
        "{reply:?}"
    );
    let last = spammer.expect_closed().await;
    assert!(
        last.iter().any(|l| l.contains("Banned: no spam")),
        "{last:?}"
    );
    root.send("DLINE 127.0.0.2 :bad neighbourhood").await;
    root.send("STATS k").await;
    let stats = root.sync().await;
    assert!(
        stats
            .iter()
            .any(|l| l.contains(" 216 root K $a:spammer root :no spam (expires ")),
        "{stats:?}"
    );
    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    drop(root);

    let second = parley_server::start(config()).await.expect("restart");
    let addr = second.plain_addrs()[0];
    // The K-line still holds: logging in as spammer ends at registration.
    let mut again = Client::connect(addr).await;
    again.req_sasl().await;
    again.send("CAP LS 302").await;
    again.send("NICK spammer").await;
    again.send("USER s 0 * :s").await;
    again.send("AUTHENTICATE PLAIN").await;
    again.expect(|l| l == "AUTHENTICATE +").await;
    again
        .send(&format!(
            "AUTHENTICATE {}",
            common::sasl_plain("spammer", "spammer-password")
        ))
        .await;
    again.expect_numeric("903").await;
    again.send("CAP END").await;
    let last = again.expect_closed().await;
    assert!(
        last.iter().any(|l| l.contains("Banned: no spam")),
        "{last:?}"
    );
    assert!(!last.iter().any(|l| l.contains(" 001 ")), "{last:?}");
    // So does the D-line, before anything else is said.
    let mut remote = connect_from(addr, "127.0.0.2".parse().expect("ip")).await;
    let refused = remote.expect_closed().await;
    assert_eq!(
        refused,
        ["ERROR :Closing Link: 127.0.0.2 (Banned: bad neighbourhood)"]
    );
    let mut root = common::account(addr, "root").await;
    root.send("UNDLINE 127.0.0.2").await;
    assert!(root
        .sync()
        .await
        .iter()
        .any(|l| l.ends_with("Removed DLINE for 127.0.0.2")));
    let mut welcome = connect_from(addr, "127.0.0.2".parse().expect("ip")).await;
    welcome.register("fromtwo").await;
    second.shutdown();
}

#[tokio::test]
async fn suspension_and_moderator_permissions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::test_config(&dir);
    opers(&mut config);
    let running = parley_server::start(config.clone()).await.expect("start");
    let addr = running.plain_addrs()[0];
    let mut moderator = common::account(addr, "mod").await;
    let mut root = common::account(addr, "root").await;
    let mut troll = common::account(addr, "troll").await;
    moderator.send("DLINE 10.0.0.0/8 :no").await;
    assert!(
        moderator
            .sync()
            .await
            .iter()
            .any(|l| l.contains(" 481 mod ")),
        "moderators lack dline by default"
    );
    moderator.send("SUSPEND troll").await;
    assert!(moderator
        .sync()
        .await
        .iter()
        .any(|l| l.contains(" 481 mod ")));
    root.send("SUSPEND troll :repeated abuse").await;
    assert!(root
        .sync()
        .await
        .iter()
        .any(|l| l.ends_with("Suspended troll; 1 connection(s) closed")));
    let last = troll.expect_closed().await;
    assert!(
        last.iter()
            .any(|l| l.contains("Account suspended: repeated abuse")),
        "{last:?}"
    );
    let mut back = Client::connect(addr).await;
    back.req_sasl().await;
    back.send("AUTHENTICATE PLAIN").await;
    back.recv().await;
    back.send(&format!(
        "AUTHENTICATE {}",
        common::sasl_plain("troll", "troll-password")
    ))
    .await;
    assert!(back
        .recv()
        .await
        .contains(" 904 * :This account is disabled"));
    root.send("UNSUSPEND troll").await;
    root.sync().await;
    running.shutdown();
    assert!(running.wait(Duration::from_secs(5)).await);

    let mut out = Vec::new();
    parley_server::inspect::audit(&config, None, Some("root"), None, &mut out).expect("audit");
    let trail = String::from_utf8(out).expect("utf-8");
    // The action is its own column: "suspend" must not be found inside "unsuspend".
    let actions: Vec<(&str, &str)> = trail
        .lines()
        .filter_map(|line| {
            // `<time>  <action>  actor=… target=…`; the time is one RFC 3339 word.
            let action = line.split_whitespace().nth(1)?;
            let target = line.split_whitespace().find(|w| w.starts_with("target="))?;
            Some((action, target))
        })
        .collect();
    for (action, target) in [
        ("oper_up", "target=root"),
        ("suspend", "target=troll"),
        ("unsuspend", "target=troll"),
    ] {
        assert!(
            actions.contains(&(action, target)),
            "{action} {target} missing in\n{trail}"
        );
    }
}

/// The default room belongs to the server: its first joiner gets no operator status, and
/// nobody can register it or lock everyone else out of it. Server operators with the
/// `channels` permission moderate it.
#[tokio::test]
async fn the_default_room_cannot_be_taken_over() {
    let server = TestServer::start_with(opers).await;
    // The first one in the empty room, logged in so that OWNER could register it to her.
    let mut mallory = common::account(server.addr, "mallory").await;
    let mut bob = server.client("bob").await;
    mallory.sync().await;
    mallory.send("NAMES #lobby").await;
    let names = mallory.sync().await;
    assert!(
        names
            .iter()
            .any(|l| l.ends_with(" 353 mallory = #lobby :mallory bob")),
        "no operator status for the first joiner: {names:?}"
    );
    mallory.send("OWNER #lobby mallory").await;
    let owner = mallory.sync().await;
    assert!(
        owner
            .iter()
            .any(|l| l.starts_with(":parley.local FAIL OWNER DEFAULT_CHANNEL #lobby :")),
        "{owner:?}"
    );
    let not_op = ":parley.local 482 mallory #lobby :You're not channel operator";
    for attempt in [
        "MODE #lobby +b *!*@*",
        "MODE #lobby +i",
        "MODE #lobby +o mallory",
        "TOPIC #lobby :mallory was here",
        "KICK #lobby bob",
    ] {
        mallory.send(attempt).await;
        let got = mallory.sync().await;
        assert_eq!(got, vec![not_op.to_string()], "{attempt}");
    }
    mallory.send("OWNER #lobby").await;
    let owner = mallory.sync().await;
    assert!(
        owner
            .iter()
            .any(|l| l.ends_with("#lobby is not registered")),
        "{owner:?}"
    );
    // Everyone after still lands in the room.
    let mut late = server.client("late").await;
    late.send("NAMES #lobby").await;
    let names = late.sync().await;
    assert!(
        names
            .iter()
            .any(|l| l.contains(" 353 late = #lobby :") && l.ends_with(" late")),
        "{names:?}"
    );
    // A server operator (an admin: every permission) moderates it without channel status,
    // and cannot register it either.
    let mut root = common::account(server.addr, "root").await;
    root.send("MODE #lobby +m").await;
    let moderated = root.sync().await;
    assert!(
        moderated.iter().any(|l| l.ends_with(" MODE #lobby +m")),
        "{moderated:?}"
    );
    root.send("KICK #lobby mallory :enough").await;
    let kicked = root.sync().await;
    assert!(
        kicked
            .iter()
            .any(|l| l.ends_with(" KICK #lobby mallory :enough")),
        "{kicked:?}"
    );
    root.send("OWNER #lobby root").await;
    let owner = root.sync().await;
    assert!(
        owner
            .iter()
            .any(|l| l.starts_with(":parley.local FAIL OWNER DEFAULT_CHANNEL #lobby :")),
        "{owner:?}"
    );
    drop(bob.sync().await);
}

/// The default room's modes and topic come from the config, every time it is made: at the
/// first join, after it emptied, after a restart. Members cannot change them, not even one a
/// server operator made a channel operator there; a server operator with `channels` can, until
/// the room is made again.
#[tokio::test]
async fn the_default_room_takes_its_modes_from_the_config_every_time_it_is_made() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = || {
        let mut config = common::test_config(&dir);
        config.operators.moderators = vec!["mod".into()];
        config.operators.moderator_permissions = vec!["channels".into()];
        config.server.default_channel_modes = "+mntl 50".into();
        config.server.default_channel_topic = "Be kind, say hello".into();
        config
    };
    let running = parley_server::start(config()).await.expect("start");
    let addr = running.plain_addrs()[0];

    let mut bob = Client::connect(addr).await;
    bob.nick = "bob".into();
    bob.send("NICK bob").await;
    bob.send("USER bob 0 * :bob").await;
    let welcome = bob.sync().await;
    assert!(
        welcome
            .iter()
            .any(|l| l == ":parley.local 332 bob #lobby :Be kind, say hello"),
        "the configured topic: {welcome:?}"
    );
    assert!(
        welcome
            .iter()
            .any(|l| l.ends_with(" 353 bob = #lobby :bob")),
        "the first joiner gets no operator status: {welcome:?}"
    );
    bob.send("MODE #lobby").await;
    let modes = bob.sync().await;
    assert!(
        modes
            .iter()
            .any(|l| l == ":parley.local 324 bob #lobby +mntl 50"),
        "{modes:?}"
    );
    bob.send("MODE #lobby +i").await;
    assert_eq!(
        bob.sync().await,
        vec![":parley.local 482 bob #lobby :You're not channel operator".to_string()]
    );

    // A moderator with the channels permission: may make bob a channel operator there, but
    // the room's own modes stay the server operators' to change.
    let mut moderator = common::account(addr, "mod").await;
    moderator.send("MODE #lobby +o bob").await;
    moderator.sync().await;
    bob.sync().await;
    for attempt in [
        "MODE #lobby +i",
        "MODE #lobby -m",
        "MODE #lobby +k sesame",
        "MODE #lobby -l",
    ] {
        bob.send(attempt).await;
        assert_eq!(
            bob.sync().await,
            vec![
                ":parley.local 482 bob #lobby :Only server operators may change the default \
                 channel's modes"
                    .to_string()
            ],
            "{attempt}"
        );
    }
    moderator.send("MODE #lobby +i-m").await;
    let changed = moderator.sync().await;
    assert!(
        changed.iter().any(|l| l.ends_with(" MODE #lobby +i-m")),
        "{changed:?}"
    );
    moderator.send("MODE #lobby").await;
    assert!(moderator
        .sync()
        .await
        .iter()
        .any(|l| l.ends_with(" 324 mod #lobby +intl 50")));

    // Emptied, it is made again as the config says: the next user gets in despite the +i.
    // (Each leaves the room before the server's goodbye, so once both are closed it is empty.)
    for mut gone in [bob, moderator] {
        gone.send("QUIT").await;
        gone.expect_closed().await;
    }
    let mut carol = Client::connect(addr).await;
    carol.register("carol").await;
    carol.send("MODE #lobby").await;
    let modes = carol.sync().await;
    assert!(
        modes
            .iter()
            .any(|l| l == ":parley.local 324 carol #lobby +mntl 50"),
        "{modes:?}"
    );

    // And after a restart.
    running.shutdown();
    assert!(running.wait(Duration::from_secs(5)).await);
    drop(carol);
    let running = parley_server::start(config()).await.expect("restart");
    let mut dave = Client::connect(running.plain_addrs()[0]).await;
    dave.register("dave").await;
    dave.send("MODE #lobby").await;
    let modes = dave.sync().await;
    assert!(
        modes
            .iter()
            .any(|l| l == ":parley.local 324 dave #lobby +mntl 50"),
        "{modes:?}"
    );
    dave.send("TOPIC #lobby").await;
    let topic = dave.sync().await;
    assert!(
        topic
            .iter()
            .any(|l| l == ":parley.local 332 dave #lobby :Be kind, say hello"),
        "{topic:?}"
    );
}

/// A default room registered while it was an ordinary channel (another default, or an older
/// parleyd) comes back with the config's modes, not the stored `+i` that would turn every new
/// user's automatic join away.
#[tokio::test]
async fn a_stored_record_cannot_take_the_config_s_modes_from_the_default_room() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::test_config(&dir);
    config.server.default_channel = String::new();
    let first = parley_server::start(config).await.expect("start");
    let mut alice = common::account(first.plain_addrs()[0], "alice").await;
    alice.send("JOIN #lobby").await;
    alice.send("OWNER #lobby").await;
    alice.send("MODE #lobby +i").await;
    let owned = alice.sync().await;
    assert!(
        owned
            .iter()
            .any(|l| l.ends_with("#lobby is registered to alice")),
        "{owned:?}"
    );
    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    drop(alice);

    let mut config = common::test_config(&dir);
    config.server.default_channel_modes = "+nt".into();
    let second = parley_server::start(config).await.expect("restart");
    let mut bob = Client::connect(second.plain_addrs()[0]).await;
    bob.register("bob").await;
    bob.send("MODE #lobby").await;
    let modes = bob.sync().await;
    assert!(
        modes
            .iter()
            .any(|l| l == ":parley.local 324 bob #lobby +nt"),
        "{modes:?}"
    );
}

/// Registered channels outlive their members, so one account may own only so many
/// (`limits.registered_channels_per_account`). Past that a channel it creates is still made,
/// just not registered, and OWNER will not hand it a channel.
#[tokio::test]
async fn registered_channels_per_account_are_capped() {
    let server = TestServer::start_with(|config| {
        config.limits.registered_channels_per_account = 2;
    })
    .await;
    let mut alice = common::account(server.addr, "alice").await;
    let mut bob = common::account(server.addr, "bob").await;
    for name in ["#a1", "#a2"] {
        alice.send(&format!("JOIN {name}")).await;
        alice.send(&format!("OWNER {name}")).await;
        let got = alice.sync().await;
        assert!(
            got.iter()
                .any(|l| l.ends_with(&format!("{name} is registered to alice"))),
            "{got:?}"
        );
    }
    alice.send("JOIN #a3").await;
    let got = alice.sync().await;
    assert!(
        got.iter().any(|l| l == ":alice!~alice@127.0.0.1 JOIN #a3"),
        "the channel is still made: {got:?}"
    );
    assert!(
        got.iter().any(
            |l| l.starts_with(":parley.local NOTICE alice :#a3 is not registered")
                && l.contains("already owns 2")
        ),
        "and the user is told why it will not last: {got:?}"
    );
    alice.send("OWNER #a3").await;
    let got = alice.sync().await;
    assert!(
        got.iter().any(|l| l.ends_with("#a3 is not registered")),
        "{got:?}"
    );
    // Nor can it be registered by hand, or handed to an account at the limit.
    alice.send("OWNER #a3 alice").await;
    let got = alice.sync().await;
    assert!(
        got.iter()
            .any(|l| l.starts_with(":parley.local FAIL OWNER TOO_MANY_CHANNELS #a3 :")),
        "{got:?}"
    );
    for name in ["#b1", "#b2"] {
        bob.send(&format!("JOIN {name}")).await;
    }
    bob.sync().await;
    alice.send("OWNER #a1 bob").await;
    let got = alice.sync().await;
    assert!(
        got.iter()
            .any(|l| l.starts_with(":parley.local FAIL OWNER TOO_MANY_CHANNELS #a1 :")),
        "{got:?}"
    );
    // Dropping one makes room again.
    alice.send("OWNER #a1 -").await;
    alice.send("JOIN #a4").await;
    alice.send("OWNER #a4").await;
    let got = alice.sync().await;
    assert!(
        got.iter()
            .any(|l| l.ends_with("#a4 is registered to alice")),
        "{got:?}"
    );
}

/// A D-line on an IPv4 address holds for clients that reach a dual-stack listener (`[::]`),
/// where they arrive as `::ffff:a.b.c.d`: connected ones are dropped, new ones refused.
#[tokio::test]
async fn dlines_catch_ipv4_clients_of_a_dual_stack_listener() {
    let server = TestServer::start_with(|c| {
        opers(c);
        c.listen.plain = vec!["[::]:0".into()];
    })
    .await;
    let port = server.addr.port();
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let mut root = common::account(v6, "root").await;
    let mut victim = Client::connect(v4).await;
    victim.register("victim").await;
    root.send("DLINE 127.0.0.0/8 :go away").await;
    root.sync().await;
    let last = victim.expect_closed().await;
    assert!(
        last.iter().any(|l| l.contains("Banned: go away")),
        "{last:?}"
    );
    let mut again = Client::connect(v4).await;
    assert_eq!(
        again.expect_closed().await,
        ["ERROR :Closing Link: 127.0.0.1 (Banned: go away)"]
    );
}

/// A TLS handshake from `from` to `addr`, trusting the server's generated certificate.
async fn tls_from(
    server: &TestServer,
    addr: std::net::SocketAddr,
    from: std::net::IpAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(from, 0))?;
    let tcp = socket.connect(addr).await?;
    let config = common::client_config_trusting(&server.generated_cert_pem());
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("valid name");
    tokio::time::timeout(common::TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// A D-lined address is turned away before the TLS handshake, on the TLS port and on the web
/// (HTTPS) port: it costs the server no handshake and holds no connection.
#[tokio::test]
async fn dlined_addresses_get_no_tls_handshake() {
    let server = TestServer::start_with(|c| {
        opers(c);
        common::enable_tls(c);
        c.web.listen = vec!["127.0.0.1:0".into()];
    })
    .await;
    let mut root = common::account(server.addr, "root").await;
    root.send("DLINE 127.0.0.2 :go away").await;
    root.sync().await;
    let banned: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
    for addr in [server.tls_addr(), server.running.web_addrs()[0]] {
        assert!(
            tls_from(&server, addr, banned).await.is_err(),
            "no handshake for a D-lined address on {addr}"
        );
    }
    let other: std::net::IpAddr = "127.0.0.3".parse().expect("ip");
    for addr in [server.tls_addr(), server.running.web_addrs()[0]] {
        tls_from(&server, addr, other)
            .await
            .expect("others still get their handshake");
    }
}
