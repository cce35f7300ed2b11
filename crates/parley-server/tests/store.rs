//! One behaviour suite for every store backend: each check below runs against a real SQLite file in
//! a temp dir and against a real PostgreSQL database (see `common/postgres.rs`), and both must give
//! the same answers. The checks use only the traits the server uses, plus raw SQL where a
//! guarantee lives in the schema (the append-only audit trail).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Barrier};

use parley_server::store::history::dm_key;
use parley_server::store::{
    AccountStore, AuditEvent, AuditFilter, Bound, ChannelRecord, HistoryQuery, HistoryStore,
    LockoutTarget, PostgresStore, ServerBan, SqliteStore, StateChange, StateStore, StoreError,
    StoredMessage, WriteBatch,
};

/// A store of any backend: all three traits on one handle.
trait Store: AccountStore + HistoryStore + StateStore {}
impl<T: AccountStore + HistoryStore + StateStore> Store for T {}

/// Raw SQL on a backend's database: rows changed, or the database's error.
type RawSql = Box<dyn Fn(&str) -> Result<u64, String>>;

/// How to open (and open again) one backend's database, and run raw SQL on it.
struct Backend {
    open: Box<dyn Fn() -> Arc<dyn Store> + Send + Sync>,
    raw: RawSql,
    /// Create the database with the schema of the last release before `lockout_lifts` (SQLite
    /// version 6, PostgreSQL version 7), as an upgrade finds it.
    create_before_lockout_lifts: Box<dyn Fn()>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("parley.db");
        let raw_path = path.clone();
        let old_path = path.clone();
        Backend {
            create_before_lockout_lifts: Box::new(move || {
                parley_server::store::sqlite::create_at_version(&old_path, 6).expect("old schema")
            }),
            open: Box::new(move || Arc::new(SqliteStore::open(&path).expect("open SQLite"))),
            raw: Box::new(move |sql| {
                rusqlite::Connection::open(&raw_path)
                    .and_then(|c| c.execute(sql, []))
                    .map(|n| n as u64)
                    .map_err(|e| e.to_string())
            }),
            _dir: Some(dir),
        }
    }

    fn postgres(test: &str) -> Option<Backend> {
        let url = common::postgres::database_for(&format!("store-suite-{test}"))?;
        // A fresh database per run: the name is per process, but a crashed earlier run with the
        // same pid could have left rows; start empty either way.
        let reset_url = url.clone();
        std::thread::spawn(move || {
            let mut client =
                postgres::Client::connect(&reset_url, postgres::NoTls).expect("connect");
            client
                .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
                .expect("reset the test database");
        })
        .join()
        .expect("reset thread");
        let raw_url = url.clone();
        let old_url = url.clone();
        Some(Backend {
            create_before_lockout_lifts: Box::new(move || {
                parley_server::store::postgres::create_at_version(&old_url, 7).expect("old schema")
            }),
            open: Box::new(move || Arc::new(PostgresStore::open(&url).expect("open PostgreSQL"))),
            raw: Box::new(move |sql| {
                let (url, sql) = (raw_url.clone(), sql.to_owned());
                std::thread::spawn(move || {
                    let describe =
                        |e: postgres::Error| parley_server::store::postgres::describe(&e);
                    let mut client =
                        postgres::Client::connect(&url, postgres::NoTls).map_err(describe)?;
                    client.execute(&sql, &[]).map_err(describe)
                })
                .join()
                .map_err(|_| "raw SQL thread panicked".to_owned())?
            }),
            _dir: None,
        })
    }
}

/// Generate `#[test]`s running each check on both backends.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $check() { super::$check(&super::Backend::sqlite()); })*
        }
        mod postgres_backend {
            $(#[test] fn $check() {
                if let Some(backend) = super::Backend::postgres(stringify!($check)) {
                    super::$check(&backend);
                }
            })*
        }
    };
}

on_both_backends!(
    accounts_are_case_insensitive_and_unique,
    fresh_database_opened_by_many_at_once,
    concurrent_creates_have_one_winner,
    update_lock_remove_and_list,
    scram_credentials_are_kept_and_cleared,
    reopening_keeps_everything,
    history_pages_match_chathistory,
    timestamps_exclude_their_whole_millisecond,
    targets_and_conversations,
    offline_messages_are_handed_out_once,
    prune_by_age_and_by_count,
    a_batch_is_all_or_nothing,
    audit_is_filtered_and_append_only,
    channels_and_server_bans_persist,
    lockout_lifts_are_kept_per_target,
    lockout_lifts_work_after_an_upgrade,
);

/// `parleyd users unlock` stamps; a running server reads them. One stamp per kind and key, the
/// latest kept.
fn lockout_lifts_are_kept_per_target(backend: &Backend) {
    let store = (backend.open)();
    let alice = LockoutTarget::Account("alice".to_owned());
    let address = LockoutTarget::Address("alice".to_owned());
    assert_eq!(store.lockout_lifted_at(&alice).expect("lookup"), None);
    store.lift_lockout(&alice, 1_000).expect("lift");
    assert_eq!(
        store.lockout_lifted_at(&alice).expect("lookup"),
        Some(1_000)
    );
    assert_eq!(
        store.lockout_lifted_at(&address).expect("lookup"),
        None,
        "an address is not an account"
    );
    store.lift_lockout(&alice, 2_000).expect("lift again");
    let v6 = LockoutTarget::Address("2001:db8:1:2::/64".to_owned());
    store.lift_lockout(&v6, 3_000).expect("lift an address");
    let store = (backend.open)();
    assert_eq!(
        store.lockout_lifted_at(&alice).expect("lookup"),
        Some(2_000)
    );
    assert_eq!(store.lockout_lifted_at(&v6).expect("lookup"), Some(3_000));
}

/// A database from before the stamps gains their table, and keeps its accounts.
fn lockout_lifts_work_after_an_upgrade(backend: &Backend) {
    (backend.create_before_lockout_lifts)();
    (backend.raw)(
        "INSERT INTO accounts (name, name_folded, password_hash, created_at, locked) \
         VALUES ('Old', 'old', 'h', 1, FALSE)",
    )
    .expect("an account from before");
    let store = (backend.open)();
    assert_eq!(
        store.account("old").expect("lookup").expect("kept").name,
        "Old"
    );
    let old = LockoutTarget::Account("old".to_owned());
    store.lift_lockout(&old, 5).expect("lift");
    assert_eq!(store.lockout_lifted_at(&old).expect("lookup"), Some(5));
}

fn accounts_are_case_insensitive_and_unique(backend: &Backend) {
    let store = (backend.open)();
    store.create_account("MixedCase", "h1").expect("create");
    let record = store.account("mIXEDcASE").expect("lookup").expect("found");
    assert_eq!(record.name, "MixedCase");
    assert_eq!(record.password_hash, "h1");
    assert!(!record.locked);
    assert!(store.account("mixedcas").expect("lookup").is_none());
    match store.create_account("MIXEDCASE", "h2") {
        Err(StoreError::AlreadyExists(name)) => assert_eq!(name, "MIXEDCASE"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let record = store.account("mixedcase").expect("lookup").expect("found");
    assert_eq!(record.password_hash, "h1", "the clash did not overwrite");
}

/// Nodes (or the server and the CLI) opening a new database together: each waits for whoever
/// migrates first, and all of them end up on the complete schema.
fn fresh_database_opened_by_many_at_once(backend: &Backend) {
    const OPENERS: usize = 6;
    let start = Barrier::new(OPENERS);
    let open = &backend.open;
    let stores: Vec<Arc<dyn Store>> = std::thread::scope(|scope| {
        let openers: Vec<_> = (0..OPENERS)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    open()
                })
            })
            .collect();
        openers
            .into_iter()
            .map(|opener| opener.join().expect("every opener opens the database"))
            .collect()
    });
    for (index, store) in stores.iter().enumerate() {
        store
            .create_account(&format!("opener{index}"), "h")
            .expect("the schema is complete");
    }
    assert_eq!(stores[0].list_accounts().expect("list").len(), OPENERS);
}

fn concurrent_creates_have_one_winner(backend: &Backend) {
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(2));
        // Separate connections, as two nodes (or a node and the CLI) would have.
        let stores = [(backend.open)(), (backend.open)()];
        let handles: Vec<_> = stores
            .into_iter()
            .zip(["Racer", "rACER"])
            .map(|(store, spelling)| {
                let barrier = Arc::clone(&barrier);
                let name = format!("{spelling}{round}");
                std::thread::spawn(move || {
                    barrier.wait();
                    store.create_account(&name, "h")
                })
            })
            .collect();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(StoreError::AlreadyExists(_)))),
            "round {round}: {results:?}"
        );
    }
    assert_eq!((backend.open)().list_accounts().expect("list").len(), 5);
}

fn update_lock_remove_and_list(backend: &Backend) {
    let store = (backend.open)();
    for name in ["carol", "Bob", "alice"] {
        store.create_account(name, "old").expect("create");
    }
    store.set_password("BOB", "new").expect("set password");
    store.set_locked("Carol", true).expect("lock");
    let names: Vec<String> = store
        .list_accounts()
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["alice", "Bob", "carol"]);
    assert_eq!(store.account("bob").unwrap().unwrap().password_hash, "new");
    assert!(store.account("carol").unwrap().unwrap().locked);
    store.set_locked("carol", false).expect("unlock");
    assert!(!store.account("carol").unwrap().unwrap().locked);
    store.remove_account("ALICE").expect("remove");
    assert!(store.account("alice").expect("lookup").is_none());
    for result in [
        store.remove_account("alice"),
        store.set_password("nobody", "h"),
        store.set_locked("nobody", true),
    ] {
        assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    }
}

fn scram_credentials_are_kept_and_cleared(backend: &Backend) {
    let store = (backend.open)();
    store.create_account("Alice", "h1").expect("create");
    assert_eq!(store.account("alice").unwrap().unwrap().scram, None);
    let credential = "SCRAM-SHA-256$4096:c2FsdA==$a:b";
    store
        .set_scram("ALICE", Some(credential))
        .expect("set scram");
    assert_eq!(
        store.account("alice").unwrap().unwrap().scram.as_deref(),
        Some(credential)
    );
    assert_eq!(
        store.list_accounts().expect("list")[0].scram.as_deref(),
        Some(credential)
    );
    store.set_password("alice", "h2").expect("set password");
    assert_eq!(
        store.account("alice").unwrap().unwrap().scram,
        None,
        "a new password makes the old credential stale"
    );
    assert!(matches!(
        store.set_scram("nobody", None),
        Err(StoreError::NotFound(_))
    ));
}

fn reopening_keeps_everything(backend: &Backend) {
    let store = (backend.open)();
    store.create_account("alice", "h").expect("create");
    store
        .write(&batch(vec![message("#room", "m1", 10, "hi")]))
        .expect("write");
    drop(store);
    // The migrations run again on open and must find nothing to do.
    let store = (backend.open)();
    assert!(store.account("ALICE").expect("lookup").is_some());
    let rows = store
        .query("#room", &HistoryQuery::Latest(None), 10)
        .expect("query");
    assert_eq!(ids(&rows), ["m1"]);
}

fn message(target: &str, msgid: &str, time_ms: i64, text: &str) -> StoredMessage {
    StoredMessage {
        msgid: msgid.to_owned(),
        time_ms,
        target: target.to_owned(),
        kind: "PRIVMSG".to_owned(),
        source: "alice!alice@127.0.0.1".to_owned(),
        account: Some("alice".to_owned()),
        to: target.to_owned(),
        text: text.to_owned(),
        tags: String::new(),
    }
}

fn batch(messages: Vec<StoredMessage>) -> WriteBatch {
    WriteBatch {
        messages,
        ..WriteBatch::default()
    }
}

fn ids(rows: &[StoredMessage]) -> Vec<&str> {
    rows.iter().map(|m| m.msgid.as_str()).collect()
}

/// Ten messages m1..m10; m4, m5 and m6 share a millisecond, so ties order by insertion.
fn ten_messages(store: &dyn Store) {
    let times = [100, 200, 300, 400, 400, 400, 700, 800, 900, 1000];
    let messages = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            message(
                "#room",
                &format!("m{}", i + 1),
                *t,
                &format!("line {}", i + 1),
            )
        })
        .collect();
    store.write(&batch(messages)).expect("write");
    // Another conversation in the same table must never leak into #room's pages.
    store
        .write(&batch(vec![message("#other", "x1", 450, "elsewhere")]))
        .expect("write");
}

fn history_pages_match_chathistory(backend: &Backend) {
    let store = (backend.open)();
    ten_messages(&*store);
    let page = |query: HistoryQuery, limit| {
        let rows = store.query("#room", &query, limit).expect("query");
        ids(&rows)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let id = |s: &str| Bound::MsgId(s.to_owned());
    assert_eq!(page(HistoryQuery::Latest(None), 3), ["m8", "m9", "m10"]);
    assert_eq!(
        page(HistoryQuery::Latest(Some(id("m7"))), 10),
        ["m8", "m9", "m10"]
    );
    assert_eq!(page(HistoryQuery::Before(id("m5")), 2), ["m3", "m4"]);
    assert_eq!(page(HistoryQuery::After(id("m5")), 2), ["m6", "m7"]);
    assert_eq!(
        page(HistoryQuery::Around(id("m5")), 4),
        ["m4", "m5", "m6", "m7"]
    );
    assert_eq!(
        page(HistoryQuery::Between(id("m2"), id("m6")), 10),
        ["m3", "m4", "m5"]
    );
    // Between with the bounds the other way round counts back from the later one.
    assert_eq!(
        page(HistoryQuery::Between(id("m6"), id("m2")), 2),
        ["m4", "m5"]
    );
    assert!(page(HistoryQuery::Before(id("no-such-id")), 5).is_empty());
    let full = store
        .query("#room", &HistoryQuery::Latest(None), 1)
        .expect("query");
    assert_eq!(full[0].text, "line 10");
    assert_eq!(full[0].account.as_deref(), Some("alice"));
    assert_eq!(full[0].time_ms, 1000);
}

fn timestamps_exclude_their_whole_millisecond(backend: &Backend) {
    let store = (backend.open)();
    ten_messages(&*store);
    let page = |query: HistoryQuery| {
        let rows = store.query("#room", &query, 10).expect("query");
        ids(&rows)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        page(HistoryQuery::Before(Bound::Time(400))),
        ["m1", "m2", "m3"]
    );
    assert_eq!(
        page(HistoryQuery::After(Bound::Time(400))),
        ["m7", "m8", "m9", "m10"]
    );
    assert_eq!(
        page(HistoryQuery::Between(Bound::Time(300), Bound::Time(800))),
        ["m4", "m5", "m6", "m7"]
    );
}

fn targets_and_conversations(backend: &Backend) {
    let store = (backend.open)();
    let (alice_bob, alice_carol) = (dm_key("alice", "bob"), dm_key("alice", "carol"));
    store
        .write(&batch(vec![
            message(&alice_bob, "d1", 100, "hi bob"),
            message(&alice_carol, "d2", 300, "hi carol"),
            message(&dm_key("bob", "carol"), "d3", 200, "hi"),
            message("#room", "c1", 50, "channel"),
        ]))
        .expect("write");
    let mut mine = store.conversations_of("alice").expect("conversations");
    mine.sort();
    assert_eq!(mine, [alice_bob.clone(), alice_carol.clone()]);
    let active = store
        .targets(&mine, 0, 1000, 10)
        .expect("targets")
        .into_iter()
        .map(|t| (t.target, t.latest_ms))
        .collect::<Vec<_>>();
    // Oldest activity first (CHATHISTORY TARGETS counts `limit` from its first bound).
    assert_eq!(
        active,
        [(alice_bob.clone(), 100), (alice_carol.clone(), 300)]
    );
    // The window is exclusive at both ends, and the limit holds.
    let narrow = store.targets(&mine, 100, 1000, 10).expect("targets");
    assert_eq!(narrow.len(), 1);
    assert_eq!(store.targets(&mine, 0, 1000, 1).expect("targets").len(), 1);
    // A conversation whose latest message came after the window is not listed in it.
    let before_carol = store.targets(&mine, 0, 250, 10).expect("targets");
    assert_eq!(before_carol.len(), 1);
    assert_eq!(before_carol[0].target, alice_bob);
    let updated_later = store.targets(std::slice::from_ref(&alice_carol), 0, 250, 10);
    assert!(updated_later.expect("targets").is_empty());
    assert!(store.targets(&[], 0, 1000, 10).expect("targets").is_empty());
}

fn offline_messages_are_handed_out_once(backend: &Backend) {
    let store = (backend.open)();
    let messages: Vec<_> = (1..=3)
        .map(|i| {
            message(
                "dm:alice|bob",
                &format!("o{i}"),
                i * 10,
                "while you were out",
            )
        })
        .collect();
    let offline = messages
        .iter()
        .map(|m| ("bob".to_owned(), m.msgid.clone()))
        .collect();
    store
        .write(&WriteBatch {
            messages,
            offline,
            ..WriteBatch::default()
        })
        .expect("write");
    assert_eq!(store.offline_accounts().expect("accounts"), ["bob"]);
    assert_eq!(
        ids(&store.take_offline("bob", 2).expect("take")),
        ["o1", "o2"]
    );
    assert_eq!(ids(&store.take_offline("bob", 2).expect("take")), ["o3"]);
    assert!(store.take_offline("bob", 2).expect("take").is_empty());
    assert!(store.offline_accounts().expect("accounts").is_empty());
    assert!(store.take_offline("alice", 2).expect("take").is_empty());
    // Handing out removes the mark, not the history.
    assert_eq!(
        store
            .query("dm:alice|bob", &HistoryQuery::Latest(None), 10)
            .expect("query")
            .len(),
        3
    );
}

fn prune_by_age_and_by_count(backend: &Backend) {
    let store = (backend.open)();
    ten_messages(&*store);
    // #room has 10 messages, #other 1: older than 250 goes (m1, m2).
    assert_eq!(store.prune(Some(250), None).expect("prune"), 2);
    // At most 3 per conversation: m3..m7 of #room go; #other keeps its one.
    assert_eq!(store.prune(None, Some(3)).expect("prune"), 5);
    let rows = store
        .query("#room", &HistoryQuery::Latest(None), 10)
        .expect("query");
    assert_eq!(ids(&rows), ["m8", "m9", "m10"]);
    assert_eq!(
        store
            .query("#other", &HistoryQuery::Latest(None), 10)
            .expect("query")
            .len(),
        1
    );
}

fn a_batch_is_all_or_nothing(backend: &Backend) {
    let store = (backend.open)();
    store
        .write(&batch(vec![message("#room", "dup", 1, "first")]))
        .expect("write");
    let mut failing = batch(vec![
        message("#room", "new", 2, "would be lost"),
        message("#room", "dup", 3, "duplicate msgid"),
    ]);
    failing.audit.push(audit("login", Some("alice"), 5));
    assert!(
        store.write(&failing).is_err(),
        "a duplicate msgid is refused"
    );
    let rows = store
        .query("#room", &HistoryQuery::Latest(None), 10)
        .expect("query");
    assert_eq!(ids(&rows), ["dup"], "nothing of the failed batch was kept");
    assert!(store
        .audit(&AuditFilter::default())
        .expect("audit")
        .is_empty());
}

fn audit(action: &str, actor: Option<&str>, time_ms: i64) -> AuditEvent {
    AuditEvent {
        time_ms,
        action: action.to_owned(),
        actor: actor.map(str::to_owned),
        account: None,
        target: Some("#room".to_owned()),
        ip: Some("127.0.0.1".to_owned()),
        detail: None,
    }
}

fn audit_is_filtered_and_append_only(backend: &Backend) {
    let store = (backend.open)();
    store
        .write(&WriteBatch {
            audit: vec![
                audit("login", Some("Alice"), 10),
                audit("kick", Some("alice"), 20),
                audit("login", Some("bob"), 30),
                audit("server_start", None, 40),
                AuditEvent {
                    account: Some("Carol".to_owned()),
                    ..audit("kick", Some("shadow"), 50)
                },
            ],
            ..WriteBatch::default()
        })
        .expect("write");
    let actions = |filter: AuditFilter| {
        store
            .audit(&filter)
            .expect("audit")
            .into_iter()
            .map(|e| (e.action, e.time_ms))
            .collect::<Vec<_>>()
    };
    assert_eq!(actions(AuditFilter::default()).len(), 5);
    // The actor filter finds an account's actions whatever nick they were done under.
    assert_eq!(
        actions(AuditFilter {
            actor: Some("carol".to_owned()),
            ..AuditFilter::default()
        }),
        [("kick".to_owned(), 50)]
    );
    let kick = store
        .audit(&AuditFilter {
            since_ms: Some(50),
            ..AuditFilter::default()
        })
        .expect("audit");
    assert_eq!(
        (kick[0].actor.as_deref(), kick[0].account.as_deref()),
        (Some("shadow"), Some("Carol"))
    );
    assert_eq!(
        actions(AuditFilter {
            actor: Some("ALICE".to_owned()),
            ..AuditFilter::default()
        }),
        [("login".to_owned(), 10), ("kick".to_owned(), 20)]
    );
    assert_eq!(
        actions(AuditFilter {
            action: Some("login".to_owned()),
            since_ms: Some(15),
            ..AuditFilter::default()
        }),
        [("login".to_owned(), 30)]
    );
    assert_eq!(
        actions(AuditFilter {
            limit: 1,
            ..AuditFilter::default()
        })
        .len(),
        1
    );
    for sql in ["UPDATE audit SET action = 'nothing'", "DELETE FROM audit"] {
        let result = (backend.raw)(sql);
        assert!(
            result
                .as_ref()
                .is_err_and(|e| e.contains("the audit trail is append-only")),
            "{sql}: {result:?}"
        );
    }
    assert_eq!(
        actions(AuditFilter::default()).len(),
        5,
        "the trail is intact"
    );
}

fn channels_and_server_bans_persist(backend: &Backend) {
    let store = (backend.open)();
    let channel = |name: &str, topic: &str| ChannelRecord {
        name: name.to_owned(),
        owner: "alice".to_owned(),
        created_ms: 1,
        topic: Some(parley_server::store::StoredTopic {
            text: topic.to_owned(),
            set_by: "alice".to_owned(),
            set_at_ms: 2,
        }),
        flags: "nt".to_owned(),
        key: None,
        limit: Some(50),
        lists: Vec::new(),
        operators: vec!["bob".to_owned()],
    };
    let ban = |kind: &str, mask: &str, expires_ms| ServerBan {
        kind: kind.to_owned(),
        mask: mask.to_owned(),
        reason: "spam".to_owned(),
        set_by: "oper".to_owned(),
        set_at_ms: 1,
        expires_ms,
    };
    let state = |changes: Vec<StateChange>| WriteBatch {
        state: changes,
        ..WriteBatch::default()
    };
    store
        .write(&state(vec![
            StateChange::SaveChannel(Box::new(channel("#Rust", "old topic"))),
            StateChange::SaveChannel(Box::new(channel("#gone", "bye"))),
            StateChange::AddServerBan(ban("kline", "*!*@spam.example", None)),
            StateChange::AddServerBan(ban("dline", "192.0.2.0/24", Some(500))),
            StateChange::AddServerBan(ban("kline", "$a:troll", Some(5000))),
        ]))
        .expect("write");
    store
        .write(&state(vec![
            // Saving again replaces the record (the casefolded name is the key).
            StateChange::SaveChannel(Box::new(channel("#RUST", "new topic"))),
            StateChange::DropChannel("#gone".to_owned()),
            StateChange::RemoveServerBan("kline".to_owned(), "$A:TROLL".to_owned()),
        ]))
        .expect("write");
    let channels = store.channels().expect("channels");
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].name, "#RUST");
    assert_eq!(
        channels[0].topic.as_ref().map(|t| t.text.as_str()),
        Some("new topic")
    );
    assert_eq!(channels[0].operators, ["bob"]);
    let masks = |now| {
        let mut masks: Vec<String> = store
            .server_bans(now)
            .expect("bans")
            .into_iter()
            .map(|b| b.mask)
            .collect();
        masks.sort();
        masks
    };
    assert_eq!(masks(100), ["*!*@spam.example", "192.0.2.0/24"]);
    assert_eq!(
        masks(600),
        ["*!*@spam.example"],
        "expired bans are not loaded"
    );
}

/// The history writer's connection leaves checkpoints to another connection
/// (`defer_checkpoints`), so no commit waits for one; `checkpoint` from elsewhere then moves the
/// whole log into the database. SQLite only: PostgreSQL checkpoints by itself.
#[test]
fn sqlite_checkpoints_run_off_the_writers_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("parley.db");
    let writer = SqliteStore::open(&path).expect("open");
    writer.defer_checkpoints().expect("defer");
    // Each commit of one message writes several pages: well past SQLite's automatic checkpoint
    // at 1000 pages of log.
    for i in 0..400 {
        writer
            .write(&batch(vec![message("#ck", &format!("ck{i}"), i, "x")]))
            .expect("write");
    }
    let frames = |mode: &str| -> (i64, i64) {
        rusqlite::Connection::open(&path)
            .expect("raw")
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
                Ok((row.get(1)?, row.get(2)?))
            })
            .expect("checkpoint pragma")
    };
    let other = SqliteStore::open(&path).expect("open again");
    other.checkpoint().expect("checkpoint");
    let (log, done) = frames("PASSIVE");
    assert!(
        log > 1000,
        "no automatic checkpoint restarted the log during the writes: {log} frames"
    );
    assert_eq!(log, done, "the checkpoint moved the whole log");
    assert_eq!(
        ids(&writer
            .query("#ck", &HistoryQuery::Latest(None), 2)
            .expect("query")),
        ["ck398", "ck399"]
    );
}
