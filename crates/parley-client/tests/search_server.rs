//! `SEARCH` from the client library against the real `parleyd` on loopback: a word said in a
//! channel and in a private message is found, with where, who and msgid, and a search limited
//! to the channel finds only the channel's. Runs only when the server offers the extension
//! (`soju.im/search` or `draft/search`); until the server side is built it says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use parley_client::{
    Action, Auth, Backoff, Client, ClientConfig, ConnectionState, Event, SearchQuery, SearchStatus,
    State, Transport,
};
use parley_server::{Config, Running};
use tokio::sync::mpsc::Receiver;
use tokio::time::{timeout_at, Instant};

const TIMEOUT: Duration = Duration::from_secs(15);

async fn start_server(accounts: &[(&str, &str)]) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.listen.tls = Vec::new();
    config.web.listen = Vec::new();
    config.server.data_dir = dir.path().to_path_buf();
    config.flood.enabled = false;
    config.accounts.require_login = true;
    for (name, password) in accounts {
        let store = parley_server::store::open_default(&config).expect("account store");
        parley_server::accounts::Accounts::new(store, &config)
            .add_account(name, password)
            .expect("account created");
    }
    let running = parley_server::start(config).await.expect("server starts");
    (running, dir)
}

fn client_config(port: u16, account: &str) -> ClientConfig {
    let mut config = ClientConfig::new("127.0.0.1", port, Transport::Plain, account);
    config.auth = Auth::Login {
        account: account.into(),
        password: format!("{account}-password"),
    };
    config.reconnect = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
    };
    config
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
            Ok(Some(Event::Closed { reason })) => panic!("{what}: closed ({reason:?})"),
            Ok(Some(_)) => {}
            Ok(None) => panic!("{what}: the event stream ended"),
            Err(_) => panic!(
                "{what}: timed out; search: {:?}",
                client.state().search_results()
            ),
        }
    }
}

async fn connected(config: ClientConfig) -> (Client, Receiver<Event>) {
    let (client, mut events) = Client::start(config).expect("client starts");
    until(&client, &mut events, "registration", |s| {
        *s.connection() == ConnectionState::Connected
    })
    .await;
    (client, events)
}

/// Searches until the answer has `want` hits (the history writer may lag the live line by a
/// moment); a bounded number of tries.
async fn search_until(
    client: &Client,
    events: &mut Receiver<Event>,
    query: SearchQuery,
    want: usize,
) {
    for _ in 0..20 {
        client
            .act(Action::Search(query.clone()))
            .await
            .expect("search sent");
        until(client, events, "the search answered", |s| {
            s.search_results()
                .is_some_and(|r| r.status != SearchStatus::Waiting)
        })
        .await;
        if client
            .state()
            .search_results()
            .is_some_and(|r| r.hits.len() >= want)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!(
        "{want} hits never came: {:?}",
        client.state().search_results()
    );
}

#[tokio::test]
async fn a_word_said_in_a_channel_and_in_private_is_found() {
    let (server, _dir) =
        start_server(&[("alice", "alice-password"), ("bob", "bob-password")]).await;
    let port = server.plain_addrs()[0].port();
    let (alice, mut alice_events) = connected(client_config(port, "alice")).await;
    if !alice.state().search_supported() {
        eprintln!("parleyd does not offer soju.im/search (yet): nothing to test");
        return;
    }
    let (bob, mut bob_events) = connected(client_config(port, "bob")).await;
    for (client, events) in [(&alice, &mut alice_events), (&bob, &mut bob_events)] {
        client.input("/join #room").await.expect("join");
        until(client, events, "in #room", |s| {
            s.buffer("#room").is_some_and(|b| b.joined)
        })
        .await;
    }
    bob.input("/msg #room the quick brown fox")
        .await
        .expect("said");
    bob.input("/msg #room nothing to see").await.expect("said");
    bob.input("/msg alice a private fox").await.expect("said");
    until(&alice, &mut alice_events, "bob's lines", |s| {
        s.buffer("bob").is_some_and(|b| !b.lines.is_empty())
    })
    .await;

    let everywhere = SearchQuery {
        text: "fox".into(),
        ..SearchQuery::default()
    };
    search_until(&alice, &mut alice_events, everywhere, 2).await;
    let hits = alice
        .state()
        .search_results()
        .expect("results")
        .hits
        .clone();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(
        (
            hits[0].buffer.as_str(),
            hits[0].from.as_str(),
            hits[0].text.as_str()
        ),
        ("bob", "bob", "a private fox"),
        "newest first, under the other side"
    );
    assert_eq!(
        (hits[1].buffer.as_str(), hits[1].text.as_str()),
        ("#room", "the quick brown fox")
    );
    assert!(hits.iter().all(|h| h.msgid.is_some()), "{hits:?}");
    assert!(
        alice.state().buffer("#room").is_some_and(|b| b
            .lines
            .iter()
            .filter(|l| l.text.contains("fox"))
            .count()
            == 1),
        "found lines are not added to the conversation"
    );

    let in_room = SearchQuery {
        text: "fox".into(),
        target: Some("#room".into()),
        from: None,
    };
    search_until(&alice, &mut alice_events, in_room, 1).await;
    let hits = alice
        .state()
        .search_results()
        .expect("results")
        .hits
        .clone();
    assert_eq!(
        hits.iter().map(|h| h.text.as_str()).collect::<Vec<_>>(),
        ["the quick brown fox"]
    );
}
