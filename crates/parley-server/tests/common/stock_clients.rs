//! The stock IRC clients people run, driven against the real server: irssi inside a detached
//! tmux session (it needs a terminal; we type with `send-keys` and read the screen with
//! `capture-pane`). Every wait polls with a deadline, so a loaded machine slows a test down
//! instead of failing it.
//!
//! A missing program skips its test with a line on stderr, unless `PARLEY_REQUIRE_CLIENTS=1`
//! (CI sets it and installs irssi, weechat-headless and tmux).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::TestServer;

/// How long a stock client may take to show one expected thing: longer than a raw socket's
/// [`super::TIMEOUT`], since the client's own event loop and rendering sit in between.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a screen or a log file is looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

/// `Some(path)` of an installed program, or `None` after saying why the test skips (a panic
/// under `PARLEY_REQUIRE_CLIENTS=1`).
pub fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let why = format!("`{name}` is not installed (apt-get install {name})");
        let required = std::env::var("PARLEY_REQUIRE_CLIENTS").is_ok_and(|v| v == "1");
        assert!(!required, "PARLEY_REQUIRE_CLIENTS=1 but {why}");
        eprintln!("skipping: {why}");
    }
    found
}

/// The lines of the first fenced code block after the line of `readme` starting with `heading`
/// (the README is passed in, so only the test files that read it are rebuilt when it changes).
pub fn recipe(readme: &str, heading: &str) -> Vec<String> {
    let mut lines = readme.lines().skip_while(|l| !l.starts_with(heading));
    assert!(
        lines.next().is_some(),
        "README has no line starting {heading:?}"
    );
    let mut lines = lines.skip_while(|l| !l.starts_with("```")).skip(1);
    let block: Vec<String> = lines
        .by_ref()
        .take_while(|l| !l.starts_with("```"))
        .map(str::to_owned)
        .collect();
    assert!(!block.is_empty(), "README's {heading:?} recipe is empty");
    block
}

/// A recipe line with the placeholders and the TLS port filled in.
pub fn fill(line: &str, password: &str, fingerprint: &str, port: u16) -> String {
    line.replace("<password>", password)
        .replace("<fingerprint>", fingerprint)
        .replace("127.0.0.1 6697", &format!("127.0.0.1 {port}"))
        .replace("127.0.0.1/6697", &format!("127.0.0.1/{port}"))
}

/// The generated certificate's SHA-256 fingerprint, as `parleyd cert show` prints it (upper-case
/// hex pairs with colons: irssi's form).
pub fn fingerprint(server: &TestServer) -> String {
    use rustls::pki_types::pem::PemObject;
    let pem = server.generated_cert_pem();
    let cert = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("a certificate")
        .expect("PEM certificate");
    parley_server::tls::fingerprint(&cert)
}

/// The fingerprint as WeeChat wants it: lower-case hex without colons.
pub fn weechat_fingerprint(server: &TestServer) -> String {
    fingerprint(server).replace(':', "").to_lowercase()
}

/// A detached tmux session on its own socket, killed when dropped.
pub struct Tmux {
    program: PathBuf,
    socket: PathBuf,
}

impl Tmux {
    pub fn start(tmux: &Path, dir: &Path, command: &str) -> Tmux {
        let socket = dir.join("tmux.sock");
        let status = std::process::Command::new(tmux)
            .arg("-S")
            .arg(&socket)
            .args(["new-session", "-d", "-x", "150", "-y", "40", command])
            .env("HOME", dir)
            .env("TERM", "xterm-256color")
            .status()
            .expect("start tmux");
        assert!(status.success(), "tmux new-session failed");
        Tmux {
            program: tmux.to_path_buf(),
            socket,
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(&self.program)
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the terminal shows now, as text.
    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p"])
    }

    /// Type a line and press Enter.
    pub fn type_line(&self, line: &str) {
        self.run(&["send-keys", "-l", line]);
        self.run(&["send-keys", "Enter"]);
    }

    /// Wait (bounded) until the screen shows `text`.
    pub async fn wait_for(&self, text: &str) {
        self.wait_until(&format!("{text:?}"), |screen| screen.contains(text))
            .await;
    }

    /// Wait (bounded) until a line of the screen satisfies `matches`; returns that line.
    pub async fn wait_for_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let screen = self
            .wait_until(what, |screen| screen.lines().any(&matches))
            .await;
        let line = screen.lines().find(|l| matches(l));
        line.expect("the screen had the line").to_owned()
    }

    /// Wait (bounded) until the whole screen satisfies `matches`; returns that screen.
    async fn wait_until(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + CLIENT_TIMEOUT;
        loop {
            let screen = self.screen();
            if matches(&screen) {
                return screen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the screen never showed {what} within {CLIENT_TIMEOUT:?}:\n{screen}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}
