//! The stock IRC clients people run, driven against the real server: irssi inside a detached
//! tmux session (it needs a terminal; we type with `send-keys` and read the screen with
//! `capture-pane`), and `weechat-headless` (which draws nothing: we type through its FIFO plugin
//! and read what it shows through its logger plugin's per-buffer files). Every wait polls with a
//! deadline, so a loaded machine slows a test down instead of failing it.
//!
//! A missing program skips its test with a line on stderr, unless `PARLEY_REQUIRE_CLIENTS=1`
//! (CI sets it and installs irssi, weechat-headless and tmux).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
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

/// `weechat-headless` in a temp home, typed at through its FIFO plugin and read through its
/// logger plugin; killed when dropped.
pub struct WeeChat {
    _child: tokio::process::Child,
    fifo_path: PathBuf,
    fifo: Option<File>,
    logs: PathBuf,
}

impl WeeChat {
    /// Start WeeChat in `home` running `commands` (joined with `;`) after its own setup of the
    /// FIFO (`<home>/fifo`) and of logs flushed at once (`<home>/logs`).
    pub fn start(weechat: &Path, home: &Path, commands: &[String]) -> WeeChat {
        let fifo_path = home.join("fifo");
        let logs = home.join("logs");
        let mut run = vec![
            format!("/set fifo.file.path {}", fifo_path.display()),
            "/set fifo.file.enabled on".to_owned(),
            format!("/set logger.file.path {}", logs.display()),
            "/set logger.file.flush_delay 0".to_owned(),
        ];
        run.extend(commands.iter().cloned());
        let child = tokio::process::Command::new(weechat)
            .arg("--dir")
            .arg(home)
            .arg("--run-command")
            .arg(run.join(";"))
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start weechat-headless");
        WeeChat {
            _child: child,
            fifo_path,
            fifo: None,
            logs,
        }
    }

    /// Run `command` (`/join #room`, or text to say) in `buffer` (`irc.server.parley`,
    /// `irc.parley.#room`), as the FIFO plugin's `buffer *command` line.
    pub async fn command(&mut self, buffer: &str, command: &str) {
        let line = format!("{buffer} *{command}\n");
        let fifo = self.fifo().await;
        fifo.write_all(line.as_bytes())
            .and_then(|()| fifo.flush())
            .unwrap_or_else(|e| panic!("write {line:?} to WeeChat's FIFO: {e}"));
    }

    /// The FIFO, opened once WeeChat has made it (kept open: every close is an EOF WeeChat has
    /// to reopen after).
    async fn fifo(&mut self) -> &mut File {
        use std::os::unix::fs::FileTypeExt;
        if self.fifo.is_none() {
            let deadline = tokio::time::Instant::now() + CLIENT_TIMEOUT;
            while !std::fs::metadata(&self.fifo_path).is_ok_and(|m| m.file_type().is_fifo()) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "WeeChat made no FIFO at {} within {CLIENT_TIMEOUT:?} (its FIFO plugin is in \
                     Debian's weechat-plugins package: is it installed?)",
                    self.fifo_path.display()
                );
                tokio::time::sleep(POLL).await;
            }
            // Opened for reading too: on Linux that never blocks, where a write-only open would
            // wait forever for a reader if WeeChat had died (we never read from it ourselves).
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.fifo_path)
                .expect("open WeeChat's FIFO");
            self.fifo = Some(file);
        }
        self.fifo.as_mut().expect("opened above")
    }

    /// The whole lines logged so far for `buffer` (`irc.server.parley`, `irc.parley.#room`),
    /// each `date time<TAB>prefix<TAB>message`; none before the buffer's log file exists. A
    /// last line still being written (no newline yet) is left for the next look.
    pub fn log(&self, buffer: &str) -> Vec<String> {
        let path = self.logs.join(format!("{buffer}.weechatlog"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole.lines().map(str::to_owned).collect()
    }

    /// Wait (bounded) until `buffer`'s log has a line whose prefix and message (the time cut
    /// off, joined by a tab) satisfy `matches`; returns that `prefix<TAB>message`.
    pub async fn wait_for_log(
        &self,
        buffer: &str,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = tokio::time::Instant::now() + CLIENT_TIMEOUT;
        loop {
            let log = self.log(buffer);
            let found = log
                .iter()
                .map(|l| l.split_once('\t').map_or(l.as_str(), |(_, rest)| rest))
                .find(|l| matches(l));
            if let Some(line) = found {
                return line.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "WeeChat's {buffer} log never showed {what} within {CLIENT_TIMEOUT:?}:\n{}",
                log.join("\n")
            );
            tokio::time::sleep(POLL).await;
        }
    }
}
