//! Test harness: the real server on a loopback port, and a client that speaks raw IRC over a real
//! socket. `sync` makes tests deterministic without sleeps: the server answers a PING only after
//! everything sent before it has been handled, so the lines before the PONG are all there is.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parley_server::{Config, Running};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long any single expected line may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub running: Running,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// A config for tests: an ephemeral loopback port, a temp data dir, no flood delays.
pub fn test_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.server.data_dir = dir.path().to_path_buf();
    config.flood.enabled = false;
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir);
        change(&mut config);
        let running = parley_server::start(config).await.expect("server starts");
        let addr = running.plain_addrs()[0];
        TestServer { running, addr, dir }
    }

    /// A raw, unregistered connection.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A registered client, past the welcome burst and its default-channel join.
    pub async fn client(&self, nick: &str) -> Client {
        let mut client = self.connect().await;
        client.register(nick).await;
        client
    }
}

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    pub nick: String,
}

static SYNC: AtomicU64 = AtomicU64::new(0);

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to server");
        let (read, write) = stream.into_split();
        Client {
            reader: BufReader::new(read),
            writer: write,
            nick: String::new(),
        }
    }

    /// NICK + USER, then wait for the end of the MOTD and (when the server has one) the lobby join.
    pub async fn register(&mut self, nick: &str) {
        self.nick = nick.to_string();
        self.send(&format!("NICK {nick}")).await;
        self.send(&format!("USER {nick} 0 * :Test {nick}")).await;
        self.expect(|l| l.contains(" 001 ")).await;
        self.expect(|l| l.contains(" 376 ") || l.contains(" 422 "))
            .await;
        self.sync().await;
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write to server");
    }

    /// The next line, without its line ending; `None` when the server closed the connection.
    pub async fn try_recv(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut line))
            .await
            .unwrap_or_else(|_| panic!("{}: no line from the server within {TIMEOUT:?}", self.nick))
            .expect("read from server");
        if n == 0 {
            return None;
        }
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    }

    pub async fn recv(&mut self) -> String {
        match self.try_recv().await {
            Some(line) => line,
            None => panic!("{}: server closed the connection", self.nick),
        }
    }

    /// Read until a line matches, returning it; fails with every line seen on timeout or close.
    pub async fn expect(&mut self, matches: impl Fn(&str) -> bool) -> String {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line)).await;
            match read {
                Err(_) => panic!("{}: expected line never came; saw {seen:#?}", self.nick),
                Ok(Ok(0)) => panic!("{}: connection closed; saw {seen:#?}", self.nick),
                Ok(Err(e)) => panic!("{}: read error {e}; saw {seen:#?}", self.nick),
                Ok(Ok(_)) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if matches(&line) {
                return line;
            }
            seen.push(line);
        }
    }

    /// Read until a numeric reply with this code addressed to us.
    pub async fn expect_numeric(&mut self, code: &str) -> String {
        let needle = format!(" {code} ");
        self.expect(|l| l.contains(&needle)).await
    }

    /// Everything the server sends before answering a fresh PING: all replies to what was sent
    /// before, and everything others had caused by then.
    pub async fn sync(&mut self) -> Vec<String> {
        let token = format!("sync-{}", SYNC.fetch_add(1, Ordering::Relaxed));
        self.send(&format!("PING {token}")).await;
        let mut lines = Vec::new();
        loop {
            let line = self.recv().await;
            if line.contains(" PONG ") && line.ends_with(&token) {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Read until the server closes the connection; returns the lines seen on the way.
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.try_recv().await {
            lines.push(line);
        }
        lines
    }
}

/// Lines whose command (after the source) is `command`.
pub fn with_command<'a>(lines: &'a [String], command: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.split(' ').nth(1) == Some(command))
        .collect()
}
