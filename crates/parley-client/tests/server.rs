//! The client library against the real `parleyd`, in-process on loopback ports with a temp data
//! dir: TLS trusted through `--ca`, SASL (SCRAM-SHA-256, PLAIN) and REGISTER, channel and private
//! messages between two clients, groups, an untrusted certificate, a reconnect after the
//! server restarts, and the IRCv3 extras (MONITOR, typing, reactions and replies, read markers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use parley_client::{
    Action, Auth, Backoff, BufferKind, Client, ClientConfig, ConnectionState, Event, LineKind,
    State, Transport, TrustPolicy,
};
use parley_server::{Config, Running};
use tokio::sync::mpsc::Receiver;
use tokio::time::{timeout_at, Instant};

const TIMEOUT: Duration = Duration::from_secs(15);

fn test_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.listen.tls = vec!["127.0.0.1:0".into()];
    config.web.listen = Vec::new();
    config.server.data_dir = dir.path().to_path_buf();
    config.flood.enabled = false;
    config.accounts.require_login = true;
    config
}

fn add_account(config: &Config, name: &str, password: &str) {
    let store = parley_server::store::open_default(config).expect("account store");
    parley_server::accounts::Accounts::new(store, config)
        .add_account(name, password)
        .expect("account created");
}

struct Server {
    running: Running,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start(accounts: &[(&str, &str)]) -> Server {
        Server::start_with(accounts, |_| {}).await
    }

    async fn start_with(accounts: &[(&str, &str)], change: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir);
        change(&mut config);
        for (name, password) in accounts {
            add_account(&config, name, password);
        }
        let running = parley_server::start(config).await.expect("server starts");
        Server { running, dir }
    }

    fn plain_port(&self) -> u16 {
        self.running.plain_addrs()[0].port()
    }

    fn tls_port(&self) -> u16 {
        self.running.tls_addrs()[0].port()
    }

    fn ca_policy(&self) -> TrustPolicy {
        TrustPolicy::empty()
            .with_ca_file(self.dir.path().join("tls").join("cert.pem"))
            .expect("the generated certificate is a usable CA file")
    }
}

fn plain_config(port: u16, nick: &str, auth: Auth) -> ClientConfig {
    let mut config = ClientConfig::new("127.0.0.1", port, Transport::Plain, nick);
    config.auth = auth;
    config.reconnect = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
    };
    config
}

fn login(account: &str, password: &str) -> Auth {
    Auth::Login {
        account: account.into(),
        password: password.into(),
    }
}

/// Waits (bounded) until `ready` holds for the client's state.
async fn until(
    client: &Client,
    events: &mut Receiver<Event>,
    what: &str,
    ready: impl Fn(&State) -> bool,
) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if ready(&client.state()) {
            return;
        }
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Closed { reason })) => {
                panic!(
                    "{what}: the connection closed ({reason:?}); {:#?}",
                    dump(client)
                )
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("{what}: the event stream ended"),
            Err(_) => panic!("{what}: timed out; {:#?}", dump(client)),
        }
    }
}

fn dump(client: &Client) -> Vec<String> {
    let state = client.state();
    state
        .buffers()
        .iter()
        .flat_map(|b| {
            b.lines
                .iter()
                .map(move |l| format!("{}: {:?} {}", b.name, l.from, l.text))
        })
        .collect()
}

fn has_line(state: &State, buffer: &str, from: &str, text: &str) -> bool {
    state.buffer(buffer).is_some_and(|b| {
        b.lines
            .iter()
            .any(|l| l.from.as_deref() == Some(from) && l.text == text)
    })
}

async fn connected(config: ClientConfig) -> (Client, Receiver<Event>) {
    let (client, mut events) = Client::start(config).expect("client starts");
    until(&client, &mut events, "registration", |s| {
        *s.connection() == ConnectionState::Connected
    })
    .await;
    (client, events)
}

#[tokio::test]
async fn logs_in_with_scram_when_the_server_offers_it() {
    let server = Server::start(&[("ivy", "ivy-password")]).await;
    let (client, _events) = connected(plain_config(
        server.plain_port(),
        "ivy",
        login("ivy", "ivy-password"),
    ))
    .await;
    assert_eq!(client.state().account(), Some("ivy"));
    // The server's audit trail names the mechanism; its writer commits in batches, so poll.
    let history = parley_server::store::open_history(&test_config(&server.dir)).expect("history");
    let filter = parley_server::store::AuditFilter {
        actor: Some("ivy".into()),
        action: Some("login".into()),
        limit: 10,
        ..Default::default()
    };
    for _ in 0..200 {
        let logins = history.audit(&filter).expect("audit");
        if let Some(login) = logins.first() {
            assert_eq!(login.detail.as_deref(), Some("scram"), "{logins:?}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the login never reached the audit trail");
}

#[tokio::test]
async fn two_clients_chat_over_tls_and_plain() {
    let server = Server::start(&[("alice", "alice-password"), ("bob", "bob-password")]).await;
    let mut tls = ClientConfig::new(
        "localhost",
        server.tls_port(),
        Transport::Tls(server.ca_policy()),
        "alice",
    );
    tls.auth = login("alice", "alice-password");
    let (alice, mut alice_events) = connected(tls).await;
    let (bob, mut bob_events) = connected(plain_config(
        server.plain_port(),
        "bob",
        login("bob", "bob-password"),
    ))
    .await;
    {
        let state = alice.state();
        assert!(state.is_secure());
        assert_eq!(state.account(), Some("alice"));
        assert!(state.has_cap("server-time"), "{:?}", state.caps());
    }

    alice.input("/join #room").await.expect("join");
    bob.input("/join_group room").await.expect("join_group");
    until(&alice, &mut alice_events, "bob in #room", |s| {
        s.buffer("#room")
            .is_some_and(|b| b.members.contains_key("bob"))
    })
    .await;
    assert_eq!(
        alice.state().active().name,
        "#room",
        "a join focuses the channel"
    );

    alice.input("hello room").await.expect("say");
    until(&bob, &mut bob_events, "alice's channel message", |s| {
        has_line(s, "#room", "alice", "hello room")
    })
    .await;
    // Her own line comes back as the server's echo, which may reach her after bob has his.
    until(&alice, &mut alice_events, "own line shown", |s| {
        has_line(s, "#room", "alice", "hello room")
    })
    .await;

    bob.input("/msg alice psst, alice").await.expect("msg");
    until(&alice, &mut alice_events, "bob's private message", |s| {
        has_line(s, "bob", "bob", "psst, alice")
    })
    .await;
    {
        let state = alice.state();
        let query = state.buffer("bob").expect("query buffer");
        assert_eq!(query.kind, BufferKind::Query);
        assert!(query.mentions >= 1, "a private message counts as a mention");
    }

    bob.input("/group_msg room via group_msg")
        .await
        .expect("group_msg");
    until(&alice, &mut alice_events, "group_msg", |s| {
        has_line(s, "#room", "bob", "via group_msg")
    })
    .await;

    bob.input("/leave_group room").await.expect("leave");
    until(&alice, &mut alice_events, "bob left", |s| {
        s.buffer("#room")
            .is_some_and(|b| !b.members.contains_key("bob"))
    })
    .await;

    alice.quit(Some("bye")).await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match timeout_at(deadline, alice_events.recv()).await {
            Ok(Some(Event::Closed { reason })) => {
                assert_eq!(reason, None);
                break;
            }
            Ok(Some(_)) => {}
            other => panic!("no Closed after quit: {other:?}"),
        }
    }
}

#[tokio::test]
async fn register_then_wrong_password_is_refused_for_good() {
    let server = Server::start(&[]).await;
    let register = Auth::Register {
        account: "carol".into(),
        password: "carol-password".into(),
    };
    let (carol, _events) = connected(plain_config(server.plain_port(), "carol", register)).await;
    assert_eq!(carol.state().account(), Some("carol"));

    let taken = Auth::Register {
        account: "carol".into(),
        password: "other-password".into(),
    };
    let reason = closed_reason(plain_config(server.plain_port(), "carol2", taken)).await;
    assert!(
        reason.contains("registration of \"carol\" refused"),
        "{reason}"
    );

    let wrong = login("carol", "wrong-password");
    let reason = closed_reason(plain_config(server.plain_port(), "carol", wrong)).await;
    assert_eq!(reason, parley_client::LOGIN_REFUSED);
}

/// A typo is one failed login, not two (SCRAM, then PLAIN with the same password): with two
/// failures allowed, one typo leaves the account open for the right password.
#[tokio::test]
async fn a_wrong_password_counts_once() {
    let server = Server::start_with(&[("hal", "hal-password")], |config| {
        config.accounts.max_failures = 2;
    })
    .await;
    let wrong = login("hal", "hal-passwort");
    let reason = closed_reason(plain_config(server.plain_port(), "hal", wrong)).await;
    assert_eq!(reason, parley_client::LOGIN_REFUSED);
    let (hal, _events) = connected(plain_config(
        server.plain_port(),
        "hal",
        login("hal", "hal-password"),
    ))
    .await;
    assert_eq!(hal.state().account(), Some("hal"));
}

/// Locked out, the client says so and when to try again, instead of "check the password".
#[tokio::test]
async fn a_lockout_is_reported_with_the_wait() {
    let server = Server::start_with(&[("ian", "ian-password")], |config| {
        config.accounts.max_failures = 1;
        config.accounts.lockout_secs = 600;
    })
    .await;
    let wrong = login("ian", "not-ians");
    let reason = closed_reason(plain_config(server.plain_port(), "ian", wrong)).await;
    assert_eq!(reason, parley_client::LOGIN_REFUSED);
    let right = login("ian", "ian-password");
    let reason = closed_reason(plain_config(server.plain_port(), "ian", right)).await;
    assert_eq!(
        reason, "Too many failed logins; try again in 10 minutes.",
        "{reason}"
    );
}

async fn closed_reason(config: ClientConfig) -> String {
    let (client, mut events) = Client::start(config).expect("client starts");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Closed { reason })) => {
                assert!(matches!(
                    client.state().connection(),
                    ConnectionState::Failed(_)
                ));
                return reason.expect("a reason");
            }
            Ok(Some(_)) => {}
            other => panic!("expected the client to give up, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn create_group_refuses_an_existing_group() {
    let server = Server::start(&[("dan", "dan-password"), ("eve", "eve-password")]).await;
    let (dan, mut dan_events) = connected(plain_config(
        server.plain_port(),
        "dan",
        login("dan", "dan-password"),
    ))
    .await;
    let (eve, mut eve_events) = connected(plain_config(
        server.plain_port(),
        "eve",
        login("eve", "eve-password"),
    ))
    .await;
    dan.input("/create_group team").await.expect("create");
    until(&dan, &mut dan_events, "dan in #team", |s| {
        s.buffer("#team").is_some_and(|b| b.joined)
    })
    .await;
    eve.input("/create_group #team").await.expect("create");
    until(&eve, &mut eve_events, "the refusal", |s| {
        s.active()
            .lines
            .iter()
            .any(|l| l.kind == LineKind::Error && l.text.contains("#team already exists"))
    })
    .await;
    assert!(eve.state().buffer("#team").is_none_or(|b| !b.joined));
}

#[tokio::test]
async fn unknown_certificate_is_reported_and_can_be_remembered() {
    let server = Server::start(&[("fay", "fay-password")]).await;
    let known = server.dir.path().join("client-known_servers");
    let policy = TrustPolicy::empty().with_known_servers(&known);
    let mut config = ClientConfig::new(
        "localhost",
        server.tls_port(),
        Transport::Tls(policy.clone()),
        "fay",
    );
    config.auth = login("fay", "fay-password");
    let (_client, mut events) = Client::start(config.clone()).expect("client starts");
    let deadline = Instant::now() + TIMEOUT;
    let (key, fingerprint) = loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::UntrustedCertificate {
                server: key,
                fingerprint,
                message,
            })) => {
                assert!(message.contains(&fingerprint.to_string()), "{message}");
                break (key, fingerprint);
            }
            Ok(Some(_)) => {}
            other => panic!("expected an untrusted certificate, got {other:?}"),
        }
    };
    assert_eq!(
        Some(fingerprint.to_string().replace(':', "").to_lowercase()),
        server
            .running
            .tls_fingerprint()
            .map(|f| f.replace(':', "").to_lowercase())
    );
    policy.remember(&key, fingerprint).expect("stored");
    let (client, _events) = connected(config).await;
    assert!(client.state().is_secure());
}

#[tokio::test]
async fn reconnects_and_rejoins_after_a_server_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir);
    config.listen.tls = Vec::new();
    add_account(&config, "gus", "gus-password");
    let first = parley_server::start(config.clone())
        .await
        .expect("server starts");
    let addr = first.plain_addrs()[0];
    let (gus, mut events) = connected(plain_config(
        addr.port(),
        "gus",
        login("gus", "gus-password"),
    ))
    .await;
    gus.input("/join #stay").await.expect("join");
    until(&gus, &mut events, "joined", |s| {
        s.buffer("#stay").is_some_and(|b| b.joined)
    })
    .await;

    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    until(&gus, &mut events, "noticed the loss", |s| {
        s.buffer("#stay").is_some_and(|b| !b.joined)
    })
    .await;

    config.listen.plain = vec![addr.to_string()];
    let second = parley_server::start(config).await.expect("restart");
    until(&gus, &mut events, "rejoined after reconnect", |s| {
        *s.connection() == ConnectionState::Connected && s.buffer("#stay").is_some_and(|b| b.joined)
    })
    .await;
    assert_eq!(gus.state().account(), Some("gus"));
    second.shutdown();
}

/// A guest on a server that requires accounts hears it at once, in one sentence, and the client
/// stops: no screen of raw server text, no reconnect loop until the registration timeout.
#[tokio::test]
async fn a_guest_is_told_the_server_needs_an_account() {
    let server = Server::start(&[]).await;
    let started = Instant::now();
    let reason = closed_reason(plain_config(server.plain_port(), "visitor", Auth::Guest)).await;
    assert!(
        reason.starts_with(parley_client::ACCOUNT_REQUIRED),
        "{reason}"
    );
    assert!(
        reason.contains("register"),
        "open registration is offered: {reason}"
    );
    // A client that waited for the server to give up on it would take the server's
    // registration timeout (limits.registration_timeout_secs, 60 s by default); anything short
    // of that, however slow the machine, is "at once".
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "no waiting for the registration timeout"
    );
}

/// With the server's multiclient on (its default), a second device is another session of the
/// same user: the same nick and channels at once, and still there when the first leaves.
#[tokio::test]
async fn a_second_device_is_the_same_user() {
    let server = Server::start(&[("dave", "dave-password")]).await;
    let (first, mut first_events) = connected(plain_config(
        server.plain_port(),
        "dave",
        login("dave", "dave-password"),
    ))
    .await;
    let (second, mut second_events) = connected(plain_config(
        server.plain_port(),
        "dave",
        login("dave", "dave-password"),
    ))
    .await;
    assert_eq!(second.state().nick(), "dave");
    until(&second, &mut second_events, "in #lobby as dave", |s| {
        s.buffer("#lobby")
            .is_some_and(|b| b.members.contains_key("dave"))
    })
    .await;
    first.quit(None).await;
    closed(&mut first_events).await;
    second
        .input("/msg #lobby is still here")
        .await
        .expect("said");
    until(&second, &mut second_events, "its own line echoed", |s| {
        s.nick() == "dave"
            && s.buffer("#lobby").is_some_and(|b| {
                b.members.contains_key("dave")
                    && b.lines.iter().any(|l| l.text.contains("is still here"))
            })
    })
    .await;
}

/// Without multiclient, a second device gets `dave_` while the first holds `dave`, is told
/// why, and takes `dave` back as soon as the first device leaves.
#[tokio::test]
async fn a_second_device_gets_the_nick_back_when_the_first_leaves() {
    let server = Server::start_with(&[("dave", "dave-password")], |config| {
        config.accounts.multiclient = false
    })
    .await;
    let (first, mut first_events) = connected(plain_config(
        server.plain_port(),
        "dave",
        login("dave", "dave-password"),
    ))
    .await;
    let (second, mut second_events) = connected(plain_config(
        server.plain_port(),
        "dave",
        login("dave", "dave-password"),
    ))
    .await;
    assert_eq!(second.state().nick(), "dave_");
    assert!(dump(&second)
        .iter()
        .any(|l| l.contains("because dave is in use by another of your devices")));
    until(&second, &mut second_events, "both in #lobby", |s| {
        s.buffer("#lobby")
            .is_some_and(|b| b.members.contains_key("dave"))
    })
    .await;
    first.quit(None).await;
    while let Some(event) = first_events.recv().await {
        if matches!(event, Event::Closed { .. }) {
            break;
        }
    }
    until(&second, &mut second_events, "the nick taken back", |s| {
        s.nick() == "dave"
    })
    .await;
}

/// Waits until the client's connection task has ended (after a quit).
async fn closed(events: &mut Receiver<Event>) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Closed { .. })) | Ok(None) => return,
            Ok(Some(_)) => {}
            Err(_) => panic!("no Closed after quit"),
        }
    }
}

/// MONITOR for the private-conversation list (ircv3.net/specs/extensions/monitor): "If any of
/// the targets being added are online, the server will generate RPL_MONONLINE numerics"; 731
/// "indicate[s] to a client that either a target has just left the irc network", 730 that it
/// has "just become online".
#[tokio::test]
async fn a_conversations_peer_is_shown_online_and_offline() {
    let server = Server::start(&[("alice", "alice-password"), ("carol", "carol-password")]).await;
    let port = server.plain_port();
    let (alice, mut alice_events) = connected(plain_config(
        port,
        "alice",
        login("alice", "alice-password"),
    ))
    .await;
    let carol_config = plain_config(port, "carol", login("carol", "carol-password"));
    let (carol, mut carol_events) = connected(carol_config.clone()).await;
    alice
        .act(Action::Query {
            nick: "carol".into(),
            text: None,
        })
        .await
        .expect("query");
    until(&alice, &mut alice_events, "carol online", |s| {
        s.buffer("carol").and_then(|b| b.online) == Some(true)
    })
    .await;
    carol.quit(None).await;
    closed(&mut carol_events).await;
    until(&alice, &mut alice_events, "carol offline", |s| {
        s.buffer("carol").and_then(|b| b.online) == Some(false)
    })
    .await;
    let (_carol, _events) = connected(carol_config).await;
    until(&alice, &mut alice_events, "carol back", |s| {
        s.buffer("carol").and_then(|b| b.online) == Some(true)
    })
    .await;
}

/// Typing notices, reactions and replies between two real clients: "The typing=active
/// notification SHOULD be sent by clients continuously while the user is making updates to the
/// text-input field"; "+draft/react=<reaction>" "MUST be used in conjunction with the
/// +draft/reply client tag"; "+draft/reply=<msgid>" "references the server provided ID of
/// another message".
#[tokio::test]
async fn typing_reactions_and_replies_reach_the_other_client() {
    let server = Server::start(&[("alice", "alice-password"), ("bob", "bob-password")]).await;
    let port = server.plain_port();
    let (alice, mut alice_events) = connected(plain_config(
        port,
        "alice",
        login("alice", "alice-password"),
    ))
    .await;
    let (bob, mut bob_events) =
        connected(plain_config(port, "bob", login("bob", "bob-password"))).await;
    assert!(
        bob.state().has_cap("message-tags"),
        "{:?}",
        bob.state().caps()
    );
    alice.input("/join #room").await.expect("join");
    bob.input("/join #room").await.expect("join");
    until(&alice, &mut alice_events, "bob in #room", |s| {
        s.buffer("#room")
            .is_some_and(|b| b.members.contains_key("bob"))
    })
    .await;
    until(&bob, &mut bob_events, "bob in #room", |s| {
        s.buffer("#room").is_some_and(|b| b.joined)
    })
    .await;

    bob.act(Action::Typing("ship".into()))
        .await
        .expect("typing");
    until(&alice, &mut alice_events, "bob typing", |s| {
        s.buffer("#room")
            .is_some_and(|b| b.typing(chrono::Utc::now()) == ["bob"])
    })
    .await;

    alice.input("ship it?").await.expect("say");
    let with_msgid = |s: &State, text: &str| {
        s.buffer("#room").and_then(|b| {
            b.lines
                .iter()
                .find(|l| l.text == text)
                .and_then(|l| l.msgid.clone())
        })
    };
    until(&bob, &mut bob_events, "alice's line with its msgid", |s| {
        with_msgid(s, "ship it?").is_some()
    })
    .await;
    let parent = with_msgid(&bob.state(), "ship it?").expect("msgid");
    // Bob's message ends his typing on alice's side.
    bob.input("/react 👍").await.expect("react");
    bob.input("/reply yes, ship it").await.expect("reply");
    until(
        &alice,
        &mut alice_events,
        "the reaction and the reply",
        |s| {
            let Some(buffer) = s.buffer("#room") else {
                return false;
            };
            let reacted = buffer.line_by_msgid(&parent).is_some_and(|l| {
                l.reactions.len() == 1
                    && l.reactions[0].text == "👍"
                    && l.reactions[0].nicks == ["bob"]
            });
            let replied = buffer.lines.iter().any(|l| {
                l.text == "yes, ship it" && l.reply_to.as_deref() == Some(parent.as_str())
            });
            reacted && replied
        },
    )
    .await;
    assert!(alice
        .state()
        .buffer("#room")
        .is_some_and(|b| b.typing(chrono::Utc::now()).is_empty()));
}

/// Read markers shared between two sessions of one account (draft/read-marker): "after the last
/// read timestamp of a target changes, the server SHOULD send a MARKREAD command for that
/// target to all the clients of the user."
#[tokio::test]
async fn a_read_marker_reaches_the_accounts_other_session() {
    let server = Server::start(&[("alice", "alice-password"), ("bob", "bob-password")]).await;
    let port = server.plain_port();
    let alice_config = plain_config(port, "alice", login("alice", "alice-password"));
    let (laptop, mut laptop_events) = connected(alice_config.clone()).await;
    let (phone, mut phone_events) = connected(alice_config).await;
    let (bob, mut bob_events) =
        connected(plain_config(port, "bob", login("bob", "bob-password"))).await;
    assert!(phone.state().has_cap("draft/read-marker"));
    for client in [&laptop, &phone, &bob] {
        client.input("/join #room").await.expect("join");
    }
    for (client, events) in [(&laptop, &mut laptop_events), (&phone, &mut phone_events)] {
        until(client, events, "in #room", |s| {
            s.buffer("#room").is_some_and(|b| b.joined)
        })
        .await;
        // Both devices look at the server messages, so #room counts unread.
        client.state().set_active(0);
    }
    until(&bob, &mut bob_events, "in #room", |s| {
        s.buffer("#room").is_some_and(|b| b.joined)
    })
    .await;
    bob.input("news for alice").await.expect("say");
    for (client, events) in [(&laptop, &mut laptop_events), (&phone, &mut phone_events)] {
        until(client, events, "the news unread", |s| {
            s.buffer("#room").is_some_and(|b| b.unread == 1)
        })
        .await;
    }
    // Read on the laptop...
    laptop.state().set_active_by_name("#room");
    // ...is read on the phone, without the phone opening #room.
    until(&phone, &mut phone_events, "read on the other device", |s| {
        s.buffer("#room")
            .is_some_and(|b| b.unread == 0 && b.read_marker.is_some())
    })
    .await;
    assert_eq!(phone.state().active_index(), 0);
}

/// A reaction survives a fresh login: "If the client has negotiated `event-playback`, the
/// server SHOULD send additional lines relevant to the chat history, including but not limited
/// to `TAGMSG`" (ircv3.net chathistory), so the history fetched on join carries it.
#[tokio::test]
async fn a_reaction_comes_back_from_history_after_a_fresh_login() {
    let server = Server::start(&[("alice", "alice-password"), ("bob", "bob-password")]).await;
    let port = server.plain_port();
    let alice_config = plain_config(port, "alice", login("alice", "alice-password"));
    let (alice, mut alice_events) = connected(alice_config.clone()).await;
    let (bob, mut bob_events) =
        connected(plain_config(port, "bob", login("bob", "bob-password"))).await;
    assert!(
        bob.state().has_cap("draft/event-playback"),
        "{:?}",
        bob.state().caps()
    );
    alice.input("/join #room").await.expect("join");
    bob.input("/join #room").await.expect("join");
    until(&alice, &mut alice_events, "bob in #room", |s| {
        s.buffer("#room")
            .is_some_and(|b| b.members.contains_key("bob"))
    })
    .await;
    alice.input("react to me").await.expect("say");
    until(&bob, &mut bob_events, "alice's line with its msgid", |s| {
        s.buffer("#room").is_some_and(|b| {
            b.lines
                .iter()
                .any(|l| l.text == "react to me" && l.msgid.is_some())
        })
    })
    .await;
    bob.input("/react 👍").await.expect("react");
    until(&alice, &mut alice_events, "the reaction live", |s| {
        s.buffer("#room").is_some_and(|b| {
            b.lines
                .iter()
                .any(|l| l.text == "react to me" && l.reactions.len() == 1)
        })
    })
    .await;

    // A fresh session of alice's: the line and its reaction come from history.
    let (again, mut again_events) = connected(alice_config).await;
    again.input("/join #room").await.expect("join");
    until(
        &again,
        &mut again_events,
        "the reaction from history",
        |s| {
            s.buffer("#room").is_some_and(|b| {
                b.lines.iter().any(|l| {
                    l.text == "react to me"
                        && l.reactions.len() == 1
                        && l.reactions[0].text == "👍"
                        && l.reactions[0].nicks == ["bob"]
                })
            })
        },
    )
    .await;
}
