//! SEARCH (soju's search extension, capability `soju.im/search`) against the real server on
//! SQLite and on PostgreSQL: a word said in a channel is found with its original tags; paging
//! with `before`/`after`; `limit` is capped; the scope is what the searcher may read (not a
//! channel it is not in, not another account's private messages, for a guest only its channels);
//! a redacted message is gone; bad attributes get `FAIL SEARCH INVALID_PARAMS`; searches past the
//! per-connection budget wait.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{command_of, Client, TestServer};
use parley_server::Config;

const CAPS: &str =
    "soju.im/search batch server-time message-tags account-tag echo-message draft/message-redaction";

/// Ask for the search capability (and what shows a result's tags) after registration.
async fn want_caps(c: &mut Client) {
    c.send(&format!("CAP REQ :{CAPS}")).await;
    c.expect(|l| command_of(l) == "CAP" && l.contains(" ACK "))
        .await;
    c.sync().await;
}

/// A logged-in account with the capabilities.
async fn account(server: &TestServer, nick: &str) -> Client {
    let mut c = common::account(server.addr, nick).await;
    want_caps(&mut c).await;
    c
}

/// A guest with the capabilities.
async fn guest(server: &TestServer, nick: &str) -> Client {
    let mut c = server.client(nick).await;
    want_caps(&mut c).await;
    c
}

/// The value of tag `key` on a line.
fn tag(line: &str, key: &str) -> Option<String> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
}

/// Send a message and return its echo (with its msgid and time).
async fn say(c: &mut Client, target: &str, text: &str) -> String {
    c.send(&format!("PRIVMSG {target} :{text}")).await;
    let echo = c
        .expect(|l| l.contains(&format!(" PRIVMSG {target} :{text}")))
        .await;
    // Distinct milliseconds, so paging by time has one answer.
    tokio::time::sleep(Duration::from_millis(3)).await;
    echo
}

async fn join(c: &mut Client, channel: &str) {
    c.send(&format!("JOIN {channel}")).await;
    c.expect(|l| command_of(l) == "366").await;
    c.sync().await;
}

/// Run a search; the lines of its batch (without the BATCH lines), or the FAIL/numeric line.
async fn search(c: &mut Client, attributes: &str) -> Result<Vec<String>, String> {
    c.send(&format!("SEARCH {attributes}")).await;
    let first = c
        .expect_skipping_errors(|l| matches!(command_of(l), "BATCH" | "FAIL" | "421" | "461"))
        .await;
    if command_of(&first) != "BATCH" {
        return Err(first);
    }
    assert!(first.ends_with(" soju.im/search"), "{first}");
    let id = first
        .split(' ')
        .find_map(|w| w.strip_prefix('+'))
        .expect("batch id")
        .to_string();
    let mut lines = Vec::new();
    loop {
        let line = c.recv().await;
        if command_of(&line) == "BATCH" && line.ends_with(&format!("-{id}")) {
            return Ok(lines);
        }
        assert_eq!(tag(&line, "batch").as_deref(), Some(id.as_str()), "{line}");
        lines.push(line);
    }
}

/// The texts of search results.
fn texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split(" :").last().unwrap_or_default().to_string())
        .collect()
}

fn small_limits(config: &mut Config) {
    config.search.default_limit = 3;
    config.search.max_limit = 3;
}

/// The cases every store must pass.
async fn core_cases(server: &TestServer) {
    let mut alice = account(server, "alice").await;
    let mut bob = account(server, "bob").await;
    let mut dave = account(server, "dave").await;
    let mut carol = guest(server, "carol").await;
    join(&mut alice, "#talk").await;
    join(&mut bob, "#talk").await;
    join(&mut bob, "#hidden").await;
    bob.send("MODE #hidden +s").await;
    bob.sync().await;
    join(&mut carol, "#other").await;

    let found_me = say(&mut bob, "#talk", "the Deploy is on friday").await;
    say(&mut bob, "#talk", "nothing to see").await;
    say(&mut bob, "#hidden", "deploy the secret plan").await;
    say(&mut bob, "dave", "deploy just for dave").await;
    say(&mut alice, "bob", "deploy between alice and bob").await;
    for c in [&mut alice, &mut dave, &mut carol] {
        c.sync().await;
    }

    // A word said in a channel, found with its original tags; and alice's own conversation.
    let results = search(&mut alice, "text=deploy").await.expect("a batch");
    assert_eq!(
        texts(&results),
        ["the Deploy is on friday", "deploy between alice and bob"],
        "{results:#?}"
    );
    let hit = &results[0];
    assert_eq!(tag(hit, "msgid"), tag(&found_me, "msgid"), "{hit}");
    assert_eq!(tag(hit, "time"), tag(&found_me, "time"), "{hit}");
    assert_eq!(tag(hit, "account").as_deref(), Some("bob"), "{hit}");
    // The line as it was relayed, after its tags.
    let relayed = |l: &str| l.split_once(' ').map(|(_, rest)| rest.to_string());
    assert_eq!(relayed(hit), relayed(&found_me));

    // All words must match, in any order, any case; `*` makes a prefix.
    let results = search(&mut alice, "text=FRIDAY\\sdeploy;in=#talk").await;
    assert_eq!(
        texts(&results.expect("a batch")),
        ["the Deploy is on friday"]
    );
    let results = search(&mut alice, "text=depl*\\sfri*;in=#talk").await;
    assert_eq!(
        texts(&results.expect("a batch")),
        ["the Deploy is on friday"]
    );
    // FTS syntax is only words: no error, no match beyond them.
    let results = search(
        &mut alice,
        "text=\"deploy\\sOR\\snothing\"\\sNEAR(x);in=#talk",
    )
    .await;
    assert_eq!(texts(&results.expect("a batch")), Vec::<String>::new());
    // from= is the sender's nick.
    let results = search(&mut alice, "from=ALICE").await.expect("a batch");
    assert_eq!(texts(&results), ["deploy between alice and bob"]);

    // Not a channel alice is not in, secret or not; one answer whether it exists or not.
    for target in ["#hidden", "#nowhere"] {
        let refused = search(&mut alice, &format!("text=deploy;in={target}")).await;
        let line = refused.expect_err("refused");
        assert!(line.contains("FAIL SEARCH INVALID_PARAMS in :"), "{line}");
    }
    // Not bob's conversation with dave, by naming either of them.
    let results = search(&mut alice, "text=dave").await.expect("a batch");
    assert_eq!(texts(&results), Vec::<String>::new());
    let results = search(&mut alice, "text=deploy;in=dave")
        .await
        .expect("a batch");
    assert_eq!(texts(&results), Vec::<String>::new());
    // dave sees his own.
    let results = search(&mut dave, "text=deploy").await.expect("a batch");
    assert_eq!(texts(&results), ["deploy just for dave"]);
    // A guest searches only its channels, and has no private conversations to name.
    let results = search(&mut carol, "text=deploy").await.expect("a batch");
    assert_eq!(texts(&results), Vec::<String>::new());
    let line = search(&mut carol, "text=deploy;in=alice")
        .await
        .expect_err("refused");
    assert!(line.contains("FAIL SEARCH INVALID_PARAMS in :"), "{line}");
    // Leaving a channel leaves its search.
    bob.send("PART #hidden").await;
    bob.sync().await;
    let results = search(&mut bob, "text=secret").await.expect("a batch");
    assert_eq!(texts(&results), Vec::<String>::new());

    // A redacted message cannot be found any more.
    let msgid = tag(&found_me, "msgid").expect("msgid");
    bob.send(&format!("REDACT #talk {msgid}")).await;
    bob.expect(|l| l.contains(" REDACT #talk ")).await;
    alice.sync().await;
    let results = search(&mut alice, "text=friday").await.expect("a batch");
    assert_eq!(texts(&results), Vec::<String>::new());

    // Paging, and limit capped at search.max_limit (3 here).
    let mut pages = Vec::new();
    for n in 1..=5 {
        pages.push(say(&mut bob, "#talk", &format!("page {n}")).await);
    }
    alice.sync().await;
    let newest = search(&mut alice, "text=page;limit=50")
        .await
        .expect("a batch");
    assert_eq!(texts(&newest), ["page 3", "page 4", "page 5"]);
    let oldest_time = tag(&newest[0], "time").expect("time");
    // "before: the message was sent at or before this time".
    let older = search(&mut alice, &format!("text=page;before={oldest_time}"))
        .await
        .expect("a batch");
    assert_eq!(texts(&older), ["page 1", "page 2", "page 3"]);
    let second_time = tag(&pages[1], "time").expect("time");
    // From `after` forwards, oldest first: "at or after this time".
    let forwards = search(
        &mut alice,
        &format!("text=page;after={second_time};limit=2"),
    )
    .await
    .expect("a batch");
    assert_eq!(texts(&forwards), ["page 2", "page 3"]);
    let none = search(&mut alice, "text=page;before=2010-01-01T00:00:00.000Z")
        .await
        .expect("an empty batch");
    assert!(none.is_empty(), "{none:#?}");
}

#[tokio::test]
async fn search_on_sqlite() {
    let server = TestServer::start_with(small_limits).await;
    core_cases(&server).await;
}

#[tokio::test]
async fn search_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(url) = common::postgres::database_for(&format!("search-{}", dir.path().display()))
    else {
        return;
    };
    let server = TestServer::start_with(|config| {
        small_limits(config);
        config.accounts.store = parley_server::config::StoreKind::Postgres;
        config.accounts.postgres_url = url;
    })
    .await;
    core_cases(&server).await;
}

#[tokio::test]
async fn bad_attributes_get_the_fail_and_the_capability_is_needed() {
    let server = TestServer::start().await;
    let mut c = server.client("eve").await;
    // "The soju.im/search capability MUST be negotiated."
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP eve LS ")).await;
    assert!(
        ls.split([' ', ':']).any(|cap| cap == "soju.im/search"),
        "{ls}"
    );
    let line = search(&mut c, "text=hello").await.expect_err("refused");
    assert_eq!(command_of(&line), "421", "{line}");
    want_caps(&mut c).await;
    join(&mut c, "#here").await;

    let long = "a".repeat(201);
    for (attributes, name) in [
        ("limit=0", "limit"),
        ("limit=lots", "limit"),
        ("limit=-1", "limit"),
        ("before=yesterday", "before"),
        ("after=2019-13-45T00:00:00Z", "after"),
        ("text=!!!", "text"),
        (&format!("text={long}") as &str, "text"),
        ("text=a\\sb\\sc\\sd\\se\\sf\\sg\\sh\\si", "text"),
        ("from=not\\sa\\snick", "from"),
        ("in=not\\sa\\starget", "in"),
        ("in=#here;text=ok;in=#elsewhere", "in"),
    ] {
        let line = search(&mut c, attributes).await.expect_err(attributes);
        assert!(
            line.contains(&format!(" FAIL SEARCH INVALID_PARAMS {name} :")),
            "{attributes}: {line}"
        );
    }
    let line = search(&mut c, "").await.expect_err("no attributes");
    assert_eq!(command_of(&line), "461", "{line}");
    // Unknown attributes are no criteria.
    let results = search(&mut c, "text=hello;colour=blue").await;
    assert_eq!(results, Ok(Vec::new()));

    // Without history there is nothing to search: not offered.
    let server = TestServer::start_with(|c| c.history.enabled = false).await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.expect(|l| l.contains(" CAP * LS ")).await;
    assert!(!ls.contains("soju.im/search"), "{ls}");
}

#[tokio::test]
async fn searches_past_the_budget_wait_their_turn() {
    // One at once, then one per 100 ms.
    let server = TestServer::start_with(|c| {
        c.search.burst = 1;
        c.search.per_minute = 600;
    })
    .await;
    let mut c = guest(&server, "speedy").await;
    join(&mut c, "#here").await;
    let start = Instant::now();
    for _ in 0..4 {
        assert_eq!(search(&mut c, "text=anything").await, Ok(Vec::new()));
    }
    // Three of the four waited ~100 ms each; none was refused.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(280), "{took:?}");
}

/// History stored before the search index existed is indexed by the migration that makes it.
async fn history_from_before_the_index_is_found(mut config: Config, dir: tempfile::TempDir) {
    small_limits(&mut config);
    let sql = "INSERT INTO messages (msgid, time_ms, target, kind, source, account, recipient, \
               text) VALUES ('old1', 1000, '#old', 'PRIVMSG', 'bob!u@h', 'bob', '#old', \
               'an old lighthouse story'), ('old2', 2000, '#old', 'PRIVMSG', 'bob!u@h', 'bob', \
               '#old', 'nothing else')"
        .to_string();
    match config.accounts.store {
        parley_server::config::StoreKind::Sqlite => {
            let path = parley_server::store::database_path(&config);
            // Schema 13: the last one without `messages_fts`.
            parley_server::store::sqlite::create_at_version(&path, 13).expect("old schema");
            rusqlite::Connection::open(&path)
                .and_then(|c| c.execute(&sql, []))
                .expect("old rows");
        }
        parley_server::config::StoreKind::Postgres => {
            let url = config.accounts.postgres_url.clone();
            // Schema 14: the last one without the `search` column.
            parley_server::store::postgres::create_at_version(&url, 14).expect("old schema");
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                client.batch_execute(&sql).expect("old rows");
            })
            .join()
            .expect("old rows thread");
        }
    }
    let running = parley_server::start(config)
        .await
        .expect("starts and migrates");
    let server = TestServer {
        addr: running.plain_addrs()[0],
        running,
        dir,
    };
    let mut alice = guest(&server, "alice").await;
    join(&mut alice, "#old").await;
    let results = search(&mut alice, "text=lighthouse")
        .await
        .expect("a batch");
    assert_eq!(texts(&results), ["an old lighthouse story"]);
    assert_eq!(tag(&results[0], "msgid").as_deref(), Some("old1"));
    assert_eq!(
        tag(&results[0], "time").as_deref(),
        Some("1970-01-01T00:00:01.000Z")
    );
}

#[tokio::test]
async fn the_migration_indexes_old_history_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::test_config(&dir);
    config.accounts.store = parley_server::config::StoreKind::Sqlite;
    history_from_before_the_index_is_found(config, dir).await;
}

#[tokio::test]
async fn the_migration_indexes_old_history_on_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(url) = common::postgres::database_for(&format!("search-old-{}", dir.path().display()))
    else {
        return;
    };
    let mut config = common::test_config(&dir);
    config.accounts.store = parley_server::config::StoreKind::Postgres;
    config.accounts.postgres_url = url;
    history_from_before_the_index_is_found(config, dir).await;
}
