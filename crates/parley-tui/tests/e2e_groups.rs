//! Issue 28 item 4: three `parley --plain` clients (alice, bob, carol) in a channel through a
//! real parleyd (SQLite in a temp data dir, its logs captured at TRACE). Alice types `/e2e on`:
//! her text reaches bob and carol, and is nowhere on the server (data dir files, logs,
//! CHATHISTORY). Carol leaves; the next message is shared with bob only: carol, back in the
//! channel and handed that ciphertext, has no key for it. (The harness is tests/e2e.rs's.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(30);
const SECRET: &str = "the group secret is 5512 amber-heron";
const LATER: &str = "after carol left: 8830 slate-finch";

/// Everything the server logged, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running `parley --plain`: its standard input, and its output so far.
struct Plain {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<String>>,
}

impl Plain {
    fn start(port: u16, user: &str, config: &Path) -> Plain {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["--plain", "--password-stdin", "--no-tls", "--user", user])
            .args(["--server", &format!("127.0.0.1:{port}")])
            .env("PARLEY_CONFIG_DIR", config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("parley starts");
        let output = Arc::new(Mutex::new(String::new()));
        for mut stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = stream.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .expect("output")
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            });
        }
        let mut plain = Plain {
            child,
            stdin: None,
            output,
        };
        plain.stdin = plain.child.stdin.take();
        plain.type_line(&format!("{user}-password"));
        plain
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("typed");
        stdin.flush().expect("flushed");
    }

    fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    async fn wait_for(&self, what: &str, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.output().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{what}: no {text:?} in\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes standard input (the client quits) and waits for the process to end.
    async fn quit(mut self) -> String {
        self.type_line("/quit");
        self.stdin = None;
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().expect("status").is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.wait();
        self.output()
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw IRC connection logged in with SASL PLAIN, as any other IRC client would be.
struct Raw {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    async fn login(port: u16, nick: &str, account: &str) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (read, writer) = stream.into_split();
        let mut raw = Raw {
            reader: BufReader::new(read),
            writer,
        };
        let sasl = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{account}\0{account}-password"));
        raw.send("CAP REQ :sasl message-tags server-time batch draft/chathistory echo-message")
            .await;
        raw.send(&format!("NICK {nick}")).await;
        raw.send(&format!("USER {nick} 0 * :{nick}")).await;
        raw.until(|l| l.contains(" ACK ")).await;
        raw.send("AUTHENTICATE PLAIN").await;
        raw.until(|l| l.starts_with("AUTHENTICATE")).await;
        raw.send(&format!("AUTHENTICATE {sasl}")).await;
        raw.until(|l| l.contains(" 903 ")).await;
        raw.send("CAP END").await;
        raw.until(|l| l.contains(" 001 ")).await;
        raw
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("sent");
    }

    /// Reads lines until one matches; returns all of them.
    async fn until(&mut self, done: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line)).await;
            match read {
                Ok(Ok(n)) if n > 0 => {}
                other => panic!("raw client: gave up ({other:?}) after {seen:#?}"),
            }
            let line = line.trim_end().to_string();
            if line.starts_with("PING") {
                let pong = line.replacen("PING", "PONG", 1);
                self.send(&pong).await;
            }
            let matched = done(&line);
            seen.push(line);
            if matched {
                return seen;
            }
        }
    }
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("data dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_channel_leaves_out_the_member_who_left() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let data = tempfile::tempdir().expect("data dir");
    let configs = tempfile::tempdir().expect("config dirs");
    let mut config = parley_server::Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.listen.tls = Vec::new();
    config.web.listen = Vec::new();
    config.server.data_dir = data.path().to_path_buf();
    config.flood.enabled = false;
    let store = parley_server::store::open_default(&config).expect("store");
    let accounts = parley_server::accounts::Accounts::new(store, &config);
    for name in ["alice", "bob", "carol"] {
        accounts
            .add_account(name, &format!("{name}-password"))
            .expect("account");
    }
    let server = parley_server::start(config).await.expect("server starts");
    let port = server.plain_addrs()[0].port();

    let published = "E2E: this device's keys are published";
    let mut alice = Plain::start(port, "alice", &configs.path().join("alice"));
    let mut bob = Plain::start(port, "bob", &configs.path().join("bob"));
    let mut carol = Plain::start(port, "carol", &configs.path().join("carol"));
    for (who, client) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        client.wait_for(who, published).await;
    }
    alice.type_line("/join #chan");
    alice.wait_for("alice in #chan", "[#chan]").await;
    bob.type_line("/join #chan");
    alice.wait_for("bob joins", "bob joined #chan").await;
    carol.type_line("/join #chan");
    alice.wait_for("carol joins", "carol joined #chan").await;

    alice.type_line("/e2e on");
    alice
        .wait_for("alice turns E2E on", "E2E is on for #chan")
        .await;
    alice.type_line(SECRET);
    let line = format!("[#chan] <alice> {SECRET}");
    bob.wait_for("bob reads it", &line).await;
    carol.wait_for("carol reads it", &line).await;
    alice.wait_for("alice's echo reads back", &line).await;

    carol.type_line("/part #chan");
    alice.wait_for("carol leaves", "carol left #chan").await;
    alice.type_line(LATER);
    bob.wait_for(
        "bob reads the next one",
        &format!("[#chan] <alice> {LATER}"),
    )
    .await;

    // Another IRC client of bob's account: history holds the placeholder and ciphertext only.
    let mut raw = Raw::login(port, "bobraw", "bob").await;
    raw.send("JOIN #chan").await;
    raw.until(|l| l.contains(" 366 ")).await;
    raw.send("CHATHISTORY LATEST #chan * 50").await;
    let history = raw
        .until(|l| l.starts_with("BATCH -") || l.contains(" BATCH -"))
        .await;
    let encrypted: Vec<&String> = history
        .iter()
        .filter(|l| l.contains("+parley.chat/e2e-group=v1:"))
        .collect();
    assert_eq!(encrypted.len(), 2, "{history:#?}");
    assert!(encrypted
        .iter()
        .all(|l| l.ends_with(":[encrypted message]")));
    assert!(
        !history
            .iter()
            .any(|l| l.contains(SECRET) || l.contains(LATER)),
        "{history:#?}"
    );
    let value = encrypted[1]
        .split(' ')
        .next()
        .and_then(|tags| {
            tags.trim_start_matches('@')
                .split(';')
                .find(|t| t.starts_with("+parley.chat/e2e-group="))
        })
        .expect("the tag")
        .to_string();

    // Carol comes back: her client loads the channel's history, where the message sent after
    // she left has no key on her device; the same ciphertext sent to her again neither.
    carol.type_line("/join #chan");
    alice.wait_for("carol is back", "carol joined #chan").await;
    const NO_KEY: &str = "[encrypted message: no key for it on this device]";
    carol
        .wait_for(
            "carol cannot read it in history",
            &format!("<alice> {NO_KEY}"),
        )
        .await;
    raw.send(&format!("@{value} PRIVMSG #chan :[encrypted message]"))
        .await;
    let deadline = Instant::now() + TIMEOUT;
    while carol.output().matches(NO_KEY).count() < 2 {
        assert!(Instant::now() < deadline, "{}", carol.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !carol.output().contains(LATER),
        "{}\n---alice---\n{}",
        carol.output(),
        alice.output()
    );

    // Nothing on the server holds the text: database, its -wal, any other file; the logs.
    for secret in [SECRET, LATER] {
        let leaked = files_containing(data.path(), secret.as_bytes());
        assert!(
            leaked.is_empty(),
            "plaintext on the server's disk: {leaked:?}"
        );
    }
    assert!(
        !files_containing(data.path(), b"+parley.chat/e2e-group=v1:").is_empty(),
        "the stored lines are in the data dir (so the grep looks in the right place)"
    );
    let logged = String::from_utf8_lossy(&logs.0.lock().expect("logs")).into_owned();
    assert!(!logged.is_empty(), "the server's logs were captured");
    assert!(!logged.contains(SECRET) && !logged.contains(LATER));
    for client in [alice, bob, carol] {
        let _ = client.quit().await;
    }
    server.shutdown();
}
