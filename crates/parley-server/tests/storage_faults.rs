//! Storage faults at run time against the real `parleyd` and its real SQLite file: the disk fills
//! up, or the database turns read-only, while clients chat. The server must keep delivering, say
//! so (error log, a NOTICE to operators, the `parley_history_held` gauge), and once the fault
//! clears store everything it accepted: history then has every message, also after a kill -9.
//!
//! The data dir is a small tmpfs in a mount namespace of its own (`unshare -m`), kept alive by a
//! holder process; the server and the fault commands enter it with `nsenter`. Disk full is the
//! kernel's own ENOSPC: a file fills the tmpfs. Read-only cannot be made for real under a running
//! server: the kernel refuses `mount -o remount,ro` (EBUSY) while SQLite holds its files open
//! for writing, and forces a file system read-only only after I/O errors. So that case gives
//! SQLite what a read-only file system answers, EROFS, on every write to its files, by attaching
//! `strace --inject` to the running server, and detaching it to clear the fault.
//!
//! Both need root (mount namespaces, ptrace) and `strace`; where they are not allowed the tests
//! fail and say why, unless `PARLEY_SKIP_MOUNT_TESTS=1` is set. On the PostgreSQL suite they do
//! not apply (the database is not a file here) and say so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{free_port, sample, scrape, wait_listening, Client, TIMEOUT};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const SKIP_VAR: &str = "PARLEY_SKIP_MOUNT_TESTS";
/// The tmpfs the data dir lives on: room for the database, small enough to fill in an instant.
const TMPFS_SIZE: &str = "16m";
const CHANNEL: &str = "#fault";
/// Messages in each phase. Few before the fault, so SQLite's WAL is still growing when it
/// strikes (a checkpoint would let it reuse pages a full disk already gave it).
const BEFORE: usize = 10;
const DURING: usize = 40;
const AFTER: usize = 10;

/// Whether the tests may be skipped here, said once with the reason.
fn skipping(reason: &str) -> bool {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("storage fault test SKIPPED ({SKIP_VAR}=1): {reason}");
        return true;
    }
    false
}

/// A private mount namespace with a tmpfs on `data`, the config and log beside it, and the
/// server's ports.
struct Sandbox {
    dir: tempfile::TempDir,
    /// Keeps the namespace (and the tmpfs with the database) alive across server restarts.
    holder: Child,
    holder_pid: u32,
    port: u16,
    metrics_port: u16,
}

impl Sandbox {
    /// `None` when skipped; panics with the reason when the namespace cannot be made.
    async fn new() -> Option<Sandbox> {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        // `sleep` bounds the holder's life even if the test process dies without killing it.
        let spawned = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount -t tmpfs -o size=\"$2\" parley-fault \"$1\" && echo mounted && exec sleep 300",
            )
            .arg("sh")
            .arg(&data)
            .arg(TMPFS_SIZE)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut holder = match spawned {
            Ok(child) => child,
            Err(err) if skipping(&format!("cannot run unshare: {err}")) => return None,
            Err(err) => panic!(
                "storage fault tests need `unshare` (util-linux): {err}; set {SKIP_VAR}=1 to skip them"
            ),
        };
        let mut stdout = BufReader::new(holder.stdout.take().expect("piped stdout"));
        let mut first = String::new();
        let _ = tokio::time::timeout(TIMEOUT, stdout.read_line(&mut first)).await;
        if first.trim() != "mounted" {
            let _ = holder.start_kill();
            let output = holder.wait_with_output().await.expect("holder output");
            let why = format!(
                "cannot make a mount namespace with a tmpfs (needs root: unshare -m, mount -t tmpfs): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            if skipping(&why) {
                return None;
            }
            panic!("{why}; set {SKIP_VAR}=1 to skip these tests where that is not allowed");
        }
        let holder_pid = holder.id().expect("holder running");
        let sandbox = Sandbox {
            dir,
            holder,
            holder_pid,
            port: free_port(),
            metrics_port: free_port(),
        };
        std::fs::write(
            sandbox.dir.path().join("parley.toml"),
            format!(
                "[server]\ndata_dir = {:?}\ndefault_channel = \"{CHANNEL}\"\n\
                 [listen]\nplain = [\"127.0.0.1:{}\"]\ntls = []\n[web]\nlisten = []\n\
                 [metrics]\nlisten = [\"127.0.0.1:{}\"]\n\
                 [accounts]\nrequire_login = false\n[flood]\nenabled = false\n\
                 [operators]\nadmins = [\"op\"]\n[history]\nmax_request = 1000\n",
                data.display().to_string(),
                sandbox.port,
                sandbox.metrics_port,
            ),
        )
        .expect("write config");
        Some(sandbox)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("parleyd.log")
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A command run inside the namespace.
    fn enter(&self) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("-t")
            .arg(self.holder_pid.to_string())
            .args(["-m", "--"]);
        command
    }

    /// `sh -c script` inside the namespace (`$1` is the data dir); its output, whatever it exits with.
    async fn shell(&self, script: &str) -> std::process::Output {
        let run = self
            .enter()
            .args(["sh", "-c", script, "sh"])
            .arg(self.data())
            .output();
        tokio::time::timeout(TIMEOUT, run)
            .await
            .expect("shell command finished in time")
            .expect("run nsenter")
    }

    /// Start `parleyd` in the namespace, its log appended to `parleyd.log`; killed on drop.
    async fn start(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open the server log");
        let child = self
            .enter()
            .arg(env!("CARGO_BIN_EXE_parleyd"))
            .arg("--config")
            .arg(self.dir.path().join("parley.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start parleyd through nsenter");
        wait_listening(self.port).await;
        child
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Wait (bounded) for a log line containing all of `words`; returns it, or fails with the log.
    async fn log_line(&self, words: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| words.iter().all(|w| l.contains(w))) {
                return line.to_string();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no server log line with {words:?}; the log:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn held(&self) -> f64 {
        let metrics = SocketAddr::from(([127, 0, 0, 1], self.metrics_port));
        sample(&scrape(metrics).await, "parley_history_held")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.holder.start_kill();
    }
}

/// How the fault is made and cleared.
enum Fault {
    /// A file fills the tmpfs; deleting it clears the fault.
    DiskFull,
    /// `strace` answers EROFS to every write to the database's files; detaching clears it.
    ReadOnly(Option<Child>),
}

impl Fault {
    async fn begin(&mut self, sandbox: &Sandbox, server_pid: u32) {
        match self {
            Fault::DiskFull => {
                let out = sandbox
                    .shell("head -c 1G /dev/zero > \"$1/filler\"; df -k \"$1\"")
                    .await;
                let said = String::from_utf8_lossy(&out.stderr);
                assert!(
                    said.contains("No space left"),
                    "the filler should have filled the tmpfs; it said {said:?} and df {:?}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            Fault::ReadOnly(tracer) => {
                let db = sandbox.data().join("parley.db").display().to_string();
                let calls = "write,pwrite64,pwritev,pwritev2,fsync,fdatasync,ftruncate,fallocate";
                let spawned = sandbox
                    .enter()
                    .args(["strace", "-f", "-p", &server_pid.to_string()])
                    .arg(format!("-etrace={calls}"))
                    .arg(format!("-einject={calls}:error=EROFS"))
                    .args(["-P", &db, "-P", &format!("{db}-wal")])
                    .args(["-P", &format!("{db}-shm"), "-P", &format!("{db}-journal")])
                    .arg("-o")
                    .arg(sandbox.dir.path().join("strace.log"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn();
                let mut child = match spawned {
                    Ok(child) => child,
                    Err(err) => panic!(
                        "the read-only fault needs `strace` (apt-get install strace): {err}; \
                         set {SKIP_VAR}=1 to skip these tests where it cannot run"
                    ),
                };
                // strace says "Process N attached" once it holds the server's threads.
                let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
                let mut said = String::new();
                let _ = tokio::time::timeout(TIMEOUT, stderr.read_line(&mut said)).await;
                assert!(
                    said.contains("attached"),
                    "strace did not attach to parleyd (needs root or CAP_SYS_PTRACE): {said:?}; \
                     set {SKIP_VAR}=1 to skip these tests where ptrace is not allowed"
                );
                // Drain the rest so strace never blocks on a full pipe.
                tokio::spawn(async move {
                    let mut line = String::new();
                    while matches!(stderr.read_line(&mut line).await, Ok(n) if n > 0) {
                        line.clear();
                    }
                });
                *tracer = Some(child);
            }
        }
    }

    /// What the server's log must say about the failure (SQLite's words for it).
    fn sqlite_says(&self) -> &'static str {
        match self {
            Fault::DiskFull => "database or disk is full",
            // A failed write() is SQLITE_IOERR, whatever the errno.
            Fault::ReadOnly(_) => "disk I/O error",
        }
    }

    async fn clear(&mut self, sandbox: &Sandbox) {
        match self {
            Fault::DiskFull => {
                let out = sandbox.shell("rm \"$1/filler\"").await;
                assert!(out.status.success(), "remove the filler: {out:?}");
            }
            Fault::ReadOnly(tracer) => {
                let mut child = tracer.take().expect("strace attached");
                let pid = child.id().expect("strace running");
                // SIGINT makes strace detach and leave the server running; SIGKILL would not.
                let status = Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status()
                    .await
                    .expect("run kill");
                assert!(status.success(), "signal strace");
                tokio::time::timeout(TIMEOUT, child.wait())
                    .await
                    .expect("strace detached in time")
                    .expect("strace reaped");
                let trace = std::fs::read_to_string(sandbox.dir.path().join("strace.log"))
                    .unwrap_or_default();
                assert!(
                    trace.contains("EROFS") && trace.contains("(INJECTED)"),
                    "strace refused no write to the database; its log:\n{trace}"
                );
            }
        }
    }
}

/// A guest in the channel that asked for history and message tags.
async fn history_reader(addr: SocketAddr, nick: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send("CAP REQ :draft/chathistory message-tags batch")
        .await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("CAP END").await;
    c.expect_numeric("366").await;
    c.sync().await;
    c
}

/// The channel's stored messages, oldest first.
async fn stored(addr: SocketAddr, nick: &str) -> Vec<String> {
    let mut reader = history_reader(addr, nick).await;
    reader
        .send(&format!("CHATHISTORY LATEST {CHANNEL} * 1000"))
        .await;
    let needle = format!(" PRIVMSG {CHANNEL} :");
    reader
        .sync()
        .await
        .iter()
        .filter_map(|l| l.split(&needle).nth(1).map(str::to_string))
        .collect()
}

/// `alice` says `count` lines tagged `phase`; `bob` must receive every one, in order.
async fn chat(alice: &mut Client, bob: &mut Client, phase: &str, count: usize) -> Vec<String> {
    let texts: Vec<String> = (0..count).map(|i| format!("{phase}-{i}")).collect();
    let mut burst = String::new();
    for text in &texts {
        burst.push_str(&format!("PRIVMSG {CHANNEL} :{text}\r\n"));
    }
    alice.send_raw(burst.as_bytes()).await;
    let needle = format!(" PRIVMSG {CHANNEL} :");
    for text in &texts {
        let line = bob.expect(|l| l.contains(&needle)).await;
        assert_eq!(
            line.split(&needle).nth(1),
            Some(text.as_str()),
            "bob got messages out of order"
        );
    }
    texts
}

/// The whole story for one kind of fault.
async fn chat_through(mut fault: Fault) {
    if common::postgres::server_suite_on_postgres() {
        eprintln!("storage fault test not run on the PostgreSQL suite: it faults the SQLite file");
        return;
    }
    let Some(sandbox) = Sandbox::new().await else {
        return;
    };
    let addr = sandbox.addr();
    let mut server = sandbox.start().await;
    let server_pid = server.id().expect("server running");

    // An operator (an account named in [operators], made operator when it logs in) and two guests.
    let mut op = Client::connect(addr).await;
    op.nick = "op".into();
    op.send("CAP LS 302").await;
    op.send("NICK op").await;
    op.send("USER op 0 * :op").await;
    op.send("REGISTER * * fault-test-password").await;
    op.expect(|l| l.contains("REGISTER SUCCESS")).await;
    op.send("CAP END").await;
    op.expect_numeric("381").await;
    op.sync().await;
    let mut alice = Client::connect(addr).await;
    alice.register("alice").await;
    let mut bob = Client::connect(addr).await;
    bob.register("bob").await;
    alice.sync().await;

    let mut sent = chat(&mut alice, &mut bob, "before", BEFORE).await;
    assert_eq!(sandbox.held().await, 0.0, "nothing held while healthy");

    fault.begin(&sandbox, server_pid).await;
    sent.extend(chat(&mut alice, &mut bob, "during", DURING).await);
    // Loudly: the error log with SQLite's own words, the operators, the gauge.
    let logged = sandbox
        .log_line(&["history write failed", fault.sqlite_says()])
        .await;
    assert!(logged.contains("ERROR"), "{logged}");
    let notice = op
        .expect(|l| l.contains(" NOTICE op :") && l.contains("History database refuses writes"))
        .await;
    assert!(notice.contains(fault.sqlite_says()), "{notice}");
    let held = sandbox.held().await;
    assert!(held > 0.0, "the gauge shows the held messages, got {held}");
    assert!(
        !stored(addr, "peek")
            .await
            .iter()
            .any(|t| t.starts_with("during-")),
        "the fault should have kept the messages out of the database"
    );

    fault.clear(&sandbox).await;
    sandbox.log_line(&["history database writable again"]).await;
    op.expect(|l| l.contains(" NOTICE op :") && l.contains("History database writes again"))
        .await;
    assert_eq!(sandbox.held().await, 0.0, "nothing held after recovery");
    sent.extend(chat(&mut alice, &mut bob, "after", AFTER).await);

    assert_eq!(
        stored(addr, "auditor").await,
        sent,
        "after recovery history has every message, once, in order"
    );

    // And it is on disk, not only in a running server: kill -9 and ask again.
    server.start_kill().expect("kill -9");
    server.wait().await.expect("reaped");
    let _restarted = sandbox.start().await;
    assert_eq!(
        stored(addr, "auditor2").await,
        sent,
        "after a kill -9 and restart history has every message"
    );
}

#[tokio::test]
async fn a_full_disk_delays_storing_but_loses_nothing() {
    chat_through(Fault::DiskFull).await;
}

#[tokio::test]
async fn a_read_only_database_delays_storing_but_loses_nothing() {
    chat_through(Fault::ReadOnly(None)).await;
}
