//! The fault suite's database half (issue 25, items 8 and 10): PostgreSQL restarts under running
//! nodes while people chat. Chat must not notice (nobody disconnected, every member gets every
//! line once, in one order); everything accepted meanwhile reaches history once; and the first
//! login after the restart, whose node's history connection died with the restart, still gets
//! the private messages that waited for it, with their count.
//!
//! Each test restarts a PostgreSQL of its own (`common/pg_instance.rs`), never the shared one.
//! Needs PostgreSQL's programs and, for the cluster, nats-server; without them a test skips,
//! unless `PARLEY_REQUIRE_CLUSTER=1` (CI sets it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use common::cluster::{client_with_caps, Cluster};
use common::pg_instance::PgInstance;
use common::{command_of, Client, TestServer};
use parley_server::config::StoreKind;
use parley_server::store::{AccountStore, HistoryStore, PostgresStore, StoredMessage, WriteBatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How long PostgreSQL stays down in the restart: long enough that the nodes try (and fail) to
/// store lines while it is, as a restart under load takes.
const DOWN_FOR: Duration = Duration::from_millis(1200);

/// One line every this often, round-robin over the members.
const LINE_EVERY: Duration = Duration::from_millis(50);

/// Lines sent after PostgreSQL is back, before the chat stops.
const LINES_AFTER: usize = 12;

/// Most lines one run sends: the chat must end even if the restart hangs, and every line must
/// fit in one CHATHISTORY page (`history.max_request`, 100 by default).
const MAX_LINES: usize = 90;

/// How long the nodes may take to store what they held while PostgreSQL was down (the writer
/// retries every half second), or members to receive every line.
const SETTLE: Duration = Duration::from_secs(30);

const BEFORE: u8 = 0;
const DOWN: u8 = 1;
const AFTER: u8 = 2;

fn phase_name(phase: u8) -> &'static str {
    match phase {
        BEFORE => "before",
        DOWN => "down",
        _ => "after",
    }
}

/// The text of a `PRIVMSG <target>` line, if it is one.
fn privmsg_text<'a>(line: &'a str, target: &str) -> Option<&'a str> {
    line.split_once(&format!(" PRIVMSG {target} :"))
        .map(|(_, text)| text)
}

/// Read `client`'s lines until it has `count` messages in `channel` (bounded by [`SETTLE`]);
/// returns their texts in the order they came. Any QUIT or ERROR on the way fails the test:
/// nobody may be disconnected by a database restart.
async fn channel_lines(client: &mut Client, channel: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + SETTLE;
    let mut texts = Vec::new();
    while texts.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(line) = client.recv_within(left).await else {
            panic!(
                "{}: only {} of {count} lines came: {texts:?}",
                client.nick,
                texts.len()
            );
        };
        assert!(
            !matches!(command_of(&line), "QUIT" | "ERROR"),
            "{}: {line}",
            client.nick
        );
        if let Some(text) = privmsg_text(&line, channel) {
            texts.push(text.to_owned());
        }
    }
    texts
}

/// A client on `server` that can read history (`draft/chathistory`, in a batch).
async fn history_reader(addr: std::net::SocketAddr, nick: &str) -> Client {
    client_with_caps(addr, nick, "draft/chathistory batch").await
}

/// What CHATHISTORY returns of `channel` now, polled until it holds `expected` lines (bounded by
/// [`SETTLE`]); the texts in stored order.
async fn stored_lines(reader: &mut Client, channel: &str, expected: usize) -> Vec<String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        reader
            .send(&format!("CHATHISTORY LATEST {channel} * 100"))
            .await;
        let texts: Vec<String> = reader
            .sync()
            .await
            .iter()
            .filter_map(|l| privmsg_text(l, channel).map(str::to_owned))
            .collect();
        if texts.len() >= expected || Instant::now() >= deadline {
            return texts;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Log in as `account` (password `<account>-password`, as `common::account` made it) with SASL
/// on a new connection, and read what offline delivery says until `expected` private messages
/// came (bounded by [`SETTLE`]). Returns the server's notices and the messages' texts.
async fn login_for_offline(
    addr: std::net::SocketAddr,
    account: &str,
    expected: usize,
) -> (Vec<String>, Vec<String>) {
    let mut client = Client::connect(addr).await;
    let mut lines = client
        .login_sasl(account, account, &format!("{account}-password"))
        .await;
    let deadline = Instant::now() + SETTLE;
    loop {
        // Without the server's name (each node may have its own).
        let notices: Vec<String> = lines
            .iter()
            .filter(|l| command_of(l) == "NOTICE" && l.contains(" while you were away"))
            .filter_map(|l| {
                l.split_once(" NOTICE ")
                    .map(|(_, notice)| notice.to_owned())
            })
            .collect();
        // Without the `[time] ` a client without server-time is shown first.
        let messages: Vec<String> = lines
            .iter()
            .filter_map(|l| privmsg_text(l, account))
            .map(|text| {
                text.split_once("] ")
                    .map_or(text, |(_, text)| text)
                    .to_owned()
            })
            .collect();
        let failed = notices.iter().any(|n| n.contains("could not be read"));
        if messages.len() >= expected || failed || Instant::now() >= deadline {
            // Nothing more may come: a sync after the delivery shows no second copy.
            lines = client.sync().await;
            let more: Vec<&String> = lines
                .iter()
                .filter(|l| privmsg_text(l, account).is_some())
                .collect();
            assert!(more.is_empty(), "{account}: more came later: {more:?}");
            client.send("QUIT").await;
            client.expect_closed().await;
            return (notices, messages);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(line) = client.recv_within(left).await {
            lines.push(line);
        }
    }
}

/// `from` sends `account` private messages while it is offline; each is answered with the
/// notice that it will be delivered at the next login.
async fn leave_offline(from: &mut Client, account: &str, texts: &[&str]) {
    for text in texts {
        from.send(&format!("PRIVMSG {account} :{text}")).await;
        from.expect(|l| {
            command_of(l) == "NOTICE" && l.contains(&format!("{account} is not online"))
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_under_three_nodes_loses_and_repeats_nothing() {
    let Some(mut pg) = PgInstance::start().await else {
        return;
    };
    let url = pg.url();
    let Some(cluster) = Cluster::start(3, |_, config| {
        config.accounts.postgres_url = url.clone();
        config.cluster.lease_secs = 3;
    })
    .await
    else {
        return;
    };
    let addrs: Vec<_> = cluster.nodes.iter().map(|n| n.addr).collect();

    // dave has an account and is away; two messages wait for him.
    let mut dave = common::account(addrs[0], "dave").await;
    dave.send("QUIT").await;
    dave.expect_closed().await;
    let mut members = Vec::new();
    for (i, nick) in ["m1", "m2", "m3"].into_iter().enumerate() {
        members.push(client_with_caps(addrs[i], nick, "echo-message").await);
    }
    leave_offline(&mut members[0], "dave", &["away 1", "away 2"]).await;

    // One member on each node, in one channel, each node knowing all three.
    members[0].join_after("#faults", &[]).await;
    members[1].join_after("#faults", &["@m1"]).await;
    members[2].join_after("#faults", &["@m1", "m2"]).await;
    for member in &mut members {
        member.await_names("#faults", &["@m1", "m2", "m3"]).await;
    }

    // Lines flow, round-robin from every node, while PostgreSQL stops, stays down, and starts.
    let phase = AtomicU8::new(BEFORE);
    let chat = async {
        let mut sent: Vec<(String, u8)> = Vec::new();
        let mut after = 0;
        let mut told_dave = false;
        while sent.len() < MAX_LINES && after < LINES_AFTER {
            let now = phase.load(Ordering::SeqCst);
            let text = format!("line {:02} {}", sent.len(), phase_name(now));
            let sender = sent.len() % members.len();
            members[sender]
                .send(&format!("PRIVMSG #faults :{text}"))
                .await;
            sent.push((text, now));
            if now == DOWN && !told_dave {
                // A private message for dave while the database is down: held, then stored.
                members[0].send("PRIVMSG dave :away 3 (during)").await;
                told_dave = true;
            }
            after += usize::from(now == AFTER);
            tokio::time::sleep(LINE_EVERY).await;
        }
        sent
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        pg.stop().await;
        phase.store(DOWN, Ordering::SeqCst);
        let down = Instant::now();
        tokio::time::sleep(DOWN_FOR).await;
        pg.start_server().await;
        phase.store(AFTER, Ordering::SeqCst);
        down.elapsed()
    };
    let (sent, outage) = tokio::join!(chat, restart);
    let during: Vec<&String> = sent
        .iter()
        .filter(|(_, p)| *p == DOWN)
        .map(|(t, _)| t)
        .collect();
    eprintln!(
        "sent {} lines, {} of them while PostgreSQL was down ({outage:?})",
        sent.len(),
        during.len()
    );
    assert!(
        during.len() >= 5,
        "the restart must fall amid the chat: {sent:?}"
    );

    // Every member got every line once, in one order, and nobody was disconnected.
    let all: BTreeSet<&String> = sent.iter().map(|(t, _)| t).collect();
    let mut seen = Vec::new();
    for member in &mut members {
        let lines = channel_lines(member, "#faults", sent.len()).await;
        let distinct: BTreeSet<&String> = lines.iter().collect();
        assert_eq!(distinct, all, "{}: every line, none twice", member.nick);
        seen.push(lines);
    }
    assert_eq!(seen[0], seen[1], "m1 and m2 saw one order");
    assert_eq!(seen[0], seen[2], "m1 and m3 saw one order");
    for member in &mut members {
        // Still connected, and nothing else pending.
        let rest = member.sync().await;
        assert!(
            rest.iter().all(|l| privmsg_text(l, "#faults").is_none()),
            "{}: a line came twice: {rest:?}",
            member.nick
        );
    }

    // History holds every line once, those sent while PostgreSQL was down included. Read on
    // n1: n3's history connection must stay as the restart left it for dave's login below.
    let mut reader = history_reader(addrs[0], "reader").await;
    reader.join_after("#faults", &["@m1", "m2", "m3"]).await;
    let stored = stored_lines(&mut reader, "#faults", sent.len()).await;
    let mut sorted = stored.clone();
    sorted.sort();
    let expected: Vec<String> = all.iter().map(|t| t.to_string()).collect();
    assert_eq!(sorted, expected, "history holds each line exactly once");

    // The first login after the restart, on n3 (whose connection for history reads died with
    // the restart and was not used since), gets what waited, with the count, once.
    let (notices, messages) = login_for_offline(addrs[2], "dave", 3).await;
    assert_eq!(
        notices,
        ["dave :You have 3 private messages received while you were away:"],
        "{messages:?}"
    );
    assert_eq!(messages, ["away 1", "away 2", "away 3 (during)"]);
    // That login's connection closed as it returned; the next one, on n2, comes once n2 has
    // seen dave leave n3. (A login there while n2 still shows him on n3 is handed to n3, which
    // no longer has him, and registers here without the nick: issue 26's note, a known gap.)
    let deadline = Instant::now() + SETTLE;
    loop {
        members[1].send("WHOIS dave").await;
        if members[1].sync().await.iter().any(|l| l.contains(" 401 ")) {
            break;
        }
        assert!(Instant::now() < deadline, "n2 never saw dave leave n3");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Handed over: a second login finds nothing waiting.
    let (notices, messages) = login_for_offline(addrs[1], "dave", 0).await;
    assert!(
        notices.is_empty() && messages.is_empty(),
        "{notices:?} {messages:?}"
    );
}

/// How many messages wait for someone's next login.
const WAITING: &str = "SELECT count(*) FROM offline";

/// A single node on PostgreSQL: the first login after a restart gets its offline messages; and
/// when they cannot be read, the user is told and they wait for the next login, never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_survive_a_postgresql_restart_on_one_node() {
    let Some(mut pg) = PgInstance::start().await else {
        return;
    };
    let url = pg.url();
    let server = TestServer::start_with(|config| {
        config.accounts.store = StoreKind::Postgres;
        config.accounts.postgres_url = url.clone();
    })
    .await;
    let mut dave = common::account(server.addr, "dave").await;
    dave.send("QUIT").await;
    dave.expect_closed().await;
    let mut alice = server.client("alice").await;
    leave_offline(&mut alice, "dave", &["one", "two"]).await;
    // Stored before the restart (the notice may leave before the writer's commit).
    pg.await_number("postgres", WAITING, 2).await;

    // A restart with nobody using the database: every connection parleyd holds is dead after.
    pg.stop().await;
    pg.start_server().await;
    let (notices, messages) = login_for_offline(server.addr, "dave", 2).await;
    assert_eq!(
        notices,
        ["dave :You have 2 private messages received while you were away:"]
    );
    assert_eq!(messages, ["one", "two"]);

    // A read that fails for good (here the table is away) is reported, and nothing is taken.
    leave_offline(&mut alice, "dave", &["three"]).await;
    pg.await_number("postgres", WAITING, 1).await;
    pg.execute("postgres", "ALTER TABLE offline RENAME TO offline_away")
        .await;
    let (notices, messages) = login_for_offline(server.addr, "dave", 1).await;
    assert!(messages.is_empty(), "{messages:?}");
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains("could not be read just now; they are kept"),
        "{notices:?}"
    );
    assert_eq!(
        pg.number("postgres", "SELECT count(*) FROM offline_away")
            .await,
        1,
        "the message still waits"
    );
    pg.execute("postgres", "ALTER TABLE offline_away RENAME TO offline")
        .await;
    let (notices, messages) = login_for_offline(server.addr, "dave", 1).await;
    assert_eq!(
        notices,
        ["dave :You have 1 private message received while you were away:"]
    );
    assert_eq!(messages, ["three"]);
    assert_eq!(pg.number("postgres", WAITING).await, 0, "handed over once");
    server.running.shutdown();
}

/// A TCP proxy in front of PostgreSQL that, when armed, lets the next `COMMIT` through and then
/// cuts the connection before PostgreSQL's answer gets back: the one moment a client cannot
/// know whether its write took effect. Every other byte, and every later connection, passes.
struct CommitCutter {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CommitCutter {
    async fn start(upstream: u16) -> CommitCutter {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cuts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (on, count) = (armed.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                tokio::spawn(Self::relay(client, server, on.clone(), count.clone()));
            }
        });
        CommitCutter {
            port,
            armed,
            cuts,
            task,
        }
    }

    /// Cut the connection that sends the next COMMIT.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    async fn relay(
        client: TcpStream,
        server: TcpStream,
        armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
        cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let mute = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let muted = mute.clone();
        let back = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = server_read.read(&mut buf).await {
                if n == 0 || muted.load(Ordering::SeqCst) {
                    break;
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            // Dropping the write half here closes the client's side: its COMMIT goes unanswered.
        });
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = client_read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let commit = buf[..n].windows(7).any(|w| w == b"COMMIT\0");
            if commit && armed.swap(false, Ordering::SeqCst) {
                cuts.fetch_add(1, Ordering::SeqCst);
                // The answer is dropped, and the client's side closed, as soon as it comes.
                mute.store(true, Ordering::SeqCst);
                let _ = server_write.write_all(&buf[..n]).await;
                // Let PostgreSQL finish the commit before its side closes too.
                tokio::time::sleep(Duration::from_millis(300)).await;
                back.abort();
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        back.abort();
    }
}

impl Drop for CommitCutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Run a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.expect("store task")
}

/// When the connection dies while COMMIT is on its way, the store asks PostgreSQL what became
/// of the transaction instead of guessing: a group commit that did commit is reported stored
/// (and storing the same batch again, as the history writer does after an error, adds nothing);
/// a taken offline message that did commit is handed to the caller, not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_neither_repeated_nor_lost() {
    let Some(pg) = PgInstance::start().await else {
        return;
    };
    let cutter = CommitCutter::start(pg.port()).await;
    // On loopback the store speaks plain PostgreSQL, which the proxy can read.
    let via_proxy = pg
        .url()
        .replace(&format!(":{}/", pg.port()), &format!(":{}/", cutter.port));
    let store = blocking(move || PostgresStore::open(&via_proxy))
        .await
        .expect("open the store through the proxy");
    let store = std::sync::Arc::new(store);
    let count = |sql: &'static str| {
        let url = pg.url();
        blocking(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            client.query_one(sql, &[]).expect("count").get::<_, i64>(0)
        })
    };
    {
        let store = store.clone();
        blocking(move || store.create_account("dave", "$argon2id$not-a-real-hash"))
            .await
            .expect("create dave");
    }
    let batch = WriteBatch {
        messages: vec![StoredMessage {
            msgid: "cutter0000000001".to_owned(),
            time_ms: 1_700_000_000_000,
            target: "dm:4:alice|dave".to_owned(),
            kind: "PRIVMSG".to_owned(),
            source: "alice!~alice@127.0.0.1".to_owned(),
            account: None,
            to: "dave".to_owned(),
            text: "sent as the database restarted".to_owned(),
            tags: String::new(),
        }],
        offline: vec![("dave".to_owned(), "cutter0000000001".to_owned())],
        ..WriteBatch::default()
    };

    cutter.arm();
    let write = {
        let (store, batch) = (store.clone(), batch.clone());
        blocking(move || store.write(&batch)).await
    };
    assert_eq!(cutter.cuts(), 1, "the proxy cut the COMMIT's answer");
    write.expect("the write committed, and the store found out");
    assert_eq!(count("SELECT count(*) FROM messages").await, 1);
    assert_eq!(count("SELECT count(*) FROM offline").await, 1);
    // The history writer keeps a batch whose write failed and writes it again: harmless now.
    {
        let (store, batch) = (store.clone(), batch.clone());
        blocking(move || store.write(&batch))
            .await
            .expect("the same batch again");
    }
    assert_eq!(count("SELECT count(*) FROM messages").await, 1);
    assert_eq!(count("SELECT count(*) FROM offline").await, 1);

    cutter.arm();
    let taken = {
        let store = store.clone();
        blocking(move || store.take_offline("dave", 10)).await
    };
    assert_eq!(cutter.cuts(), 2, "the proxy cut the COMMIT's answer");
    let taken = taken.expect("taken, and the store found out");
    assert_eq!(
        taken.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["sent as the database restarted"],
        "the message that left the waiting list is handed over"
    );
    assert_eq!(count("SELECT count(*) FROM offline").await, 0);
}
