//! The harness the end-to-end encryption tests share: parleyd's captured logs, a running
//! `parley --plain` client, a raw IRC socket, and a search of the data dir for a secret.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the server logged, at every level.
#[derive(Clone, Default)]
pub struct Logs(pub Arc<Mutex<Vec<u8>>>);

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
pub struct Plain {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub output: Arc<Mutex<String>>,
}

impl Plain {
    pub fn start(port: u16, user: &str, config: &Path) -> Plain {
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

    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("typed");
        stdin.flush().expect("flushed");
    }

    pub fn output(&self) -> String {
        self.output.lock().expect("output").clone()
    }

    pub async fn wait_for(&self, what: &str, text: &str) {
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
    pub async fn quit(mut self) -> String {
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
pub struct Raw {
    pub reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    pub writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    pub async fn login(port: u16, nick: &str, account: &str) -> Raw {
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

    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("sent");
    }

    /// Reads lines until one matches; returns all of them.
    pub async fn until(&mut self, done: impl Fn(&str) -> bool) -> Vec<String> {
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
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
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
