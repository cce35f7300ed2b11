//! The window against the real server: `parleyd` runs in-process on a loopback port, and the
//! app is driven with egui_kittest as in `ui.rs` but through [`LiveConnector`], the connection
//! code the `parley-gui` binary uses (a `parley_client::Client` on a tokio runtime, a real
//! socket, SASL). A second, raw IRC client on the same server checks what goes over the wire
//! both ways, so a change on either side of the protocol (server or client library) that breaks
//! the desktop client fails here and not only for a person at the keyboard.
//!
//! The second test starts the real `parley-gui` binary under Xvfb (a window drawn with Mesa's
//! software OpenGL) with `--password-file`, and the raw client sees it log in and join. It needs
//! `apt-get install xvfb libgl1-mesa-dri libegl1 libxkbcommon-x11-0` (as `.ci/run` does); without
//! `xvfb-run` it is skipped with a message, unless `PARLEY_REQUIRE_XVFB=1` (set in CI) makes that
//! a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use parley_client::{ConnectionState, State};
use parley_gui::connection::LiveConnector;
use parley_gui::notify::Recorder;
use parley_gui::settings::Settings;
use parley_gui::{App, Options, Phase};
use parley_server::{Config, Running};

/// How long one step (connect, log in, a message to arrive) may take: generous for a loaded CI
/// machine, and only the upper bound of a wait that ends as soon as the step is done.
const STEP: Duration = Duration::from_secs(10);

/// The real server with a temp data dir, on a plain loopback port, guests refused (as by
/// default): everyone here has an account.
struct Server {
    /// Taken on drop, to shut down without waiting for the server's blocking threads.
    runtime: Option<tokio::runtime::Runtime>,
    running: Running,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with these accounts, created the way the admin CLI does (before the
    /// server opens the store: it holds the database while it runs).
    fn start(accounts: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.listen.plain = vec!["127.0.0.1:0".into()];
        config.listen.tls = Vec::new();
        config.web.listen = Vec::new();
        config.server.data_dir = dir.path().to_path_buf();
        config.accounts.require_login = true;
        for (name, password) in accounts {
            let store = parley_server::store::open_default(&config).expect("account store");
            parley_server::accounts::Accounts::new(store, &config)
                .add_account(name, password)
                .expect("account created");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let running = runtime
            .block_on(parley_server::start(config.clone()))
            .expect("server starts");
        Server {
            runtime: Some(runtime),
            running,
            _dir: dir,
        }
    }

    fn port(&self) -> u16 {
        self.running.plain_addrs()[0].port()
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().expect("running").handle().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.running.shutdown();
        // Dropping a runtime waits for every blocking task, and the server keeps some (the
        // store's) for as long as the process lives: wait for the rest, briefly.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A plain IRC client on a blocking socket: every line it reads is kept, so a failure shows
/// what the server said instead of the line that was expected.
struct Raw {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    seen: Vec<String>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
        // Short reads, so `expect` can check its deadline between lines.
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        Raw {
            writer: stream.try_clone().expect("clone the socket"),
            reader: BufReader::new(stream),
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send a line");
    }

    /// Reads until a line satisfies `wanted`, answering PINGs; fails at once on a line that is
    /// an error reply (a numeric 400-599, or FAIL), so an error cannot be skipped on the way.
    fn expect(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        self.expect_within(STEP, what, wanted)
    }

    fn expect_within(
        &mut self,
        bound: Duration,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + bound;
        let mut buf = String::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "raw client: timed out waiting for {what}; it read:\n{}",
                self.seen.join("\n")
            );
            match self.reader.read_line(&mut buf) {
                Ok(0) => panic!(
                    "raw client: the server closed the connection while waiting for {what}; \
                     it read:\n{}",
                    self.seen.join("\n")
                ),
                Ok(_) if buf.ends_with('\n') => {
                    let line = buf.trim_end_matches(['\r', '\n']).to_string();
                    buf.clear();
                    self.seen.push(line.clone());
                    if let Some(token) = line.strip_prefix("PING ") {
                        self.send(&format!("PONG {token}"));
                        continue;
                    }
                    if wanted(&line) {
                        return line;
                    }
                    assert!(
                        !is_error_reply(&line),
                        "raw client: an error reply while waiting for {what}: {line}\n\
                         it read:\n{}",
                        self.seen.join("\n")
                    );
                }
                // A partial line (the read timed out in the middle): keep it and read on.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("raw client: reading failed while waiting for {what}: {e}"),
            }
        }
    }
}

/// Registers `nick` as a new account with REGISTER and waits until it is in #lobby.
fn raw_member(port: u16, nick: &str) -> Raw {
    let mut raw = Raw::connect(port);
    raw.send("CAP LS 302");
    raw.send(&format!("NICK {nick}"));
    raw.send(&format!("USER {nick} 0 * :{nick}"));
    raw.send(&format!("REGISTER * * {nick}-secret-pass"));
    raw.expect("REGISTER SUCCESS", |l| l.contains(" REGISTER SUCCESS "));
    raw.send("CAP END");
    raw.expect("the welcome (001)", |l| l.split(' ').nth(1) == Some("001"));
    raw.expect("the end of #lobby's NAMES (366)", |l| {
        l.split(' ').nth(1) == Some("366") && l.contains(" #lobby ")
    });
    raw
}

/// A numeric reply from 400 to 599, or a standard-replies FAIL, as the second word.
fn is_error_reply(line: &str) -> bool {
    let mut words = line.split(' ');
    if line.starts_with('@') {
        words.next();
    }
    if line.starts_with(':') || line.starts_with('@') {
        words.next();
    }
    match words.next() {
        Some("FAIL") => true,
        Some(code) if code.len() == 3 => code
            .parse::<u16>()
            .is_ok_and(|code| (400..600).contains(&code)),
        _ => false,
    }
}

/// Steps the window (one frame at a time: while connecting it keeps repainting) until `ready`
/// holds, at most [`STEP`]; a failure prints the chat state.
fn until(harness: &mut Harness<'static, App>, what: &str, ready: impl Fn(&App) -> bool) {
    let deadline = Instant::now() + STEP;
    loop {
        harness.step();
        if ready(harness.state()) {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "the window: timed out waiting for {what}; phase {:?}, form error {:?}, {}",
                harness.state().phase,
                harness.state().form.error,
                harness
                    .state()
                    .connection_state()
                    .map_or_else(|| "no connection".to_string(), |state| describe(&state))
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn describe(state: &State) -> String {
    let mut out = format!("connection {:?}; buffers:", state.connection());
    for buffer in state.buffers() {
        out.push_str(&format!("\n  {} (joined {}):", buffer.name, buffer.joined));
        for line in &buffer.lines {
            out.push_str(&format!("\n    {:?} {:?}", line.from, line.text));
        }
    }
    out
}

/// The text field's content replaced by `text`, as a person does: select all, then type.
fn fill(harness: &mut Harness<'static, App>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.run();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run();
    harness.get_by_label(label).type_text(text);
    harness.run();
}

/// The window (with the binary's connection code) logged in as alice on `server`, in #lobby.
fn logged_in_window(server: &Server, config_dir: &std::path::Path) -> Harness<'static, App> {
    let port = server.port();
    // The window, with the binary's connection code; wake is for eframe's repaint, and the test
    // steps frames itself.
    let connector = LiveConnector {
        runtime: server.handle(),
        wake: Arc::new(|| {}),
    };
    let options = Options {
        utc_offset: chrono::FixedOffset::east_opt(0),
        ..Options::default()
    };
    let app = App::new(
        Settings::default(),
        Some(config_dir.to_path_buf()),
        Box::new(connector),
        Box::new(Recorder::default()),
        options,
    );
    let mut harness = Harness::builder()
        .with_size([1000.0, 700.0])
        .build_ui_state(|ui, app: &mut App| app.ui(ui), app);
    assert!(matches!(harness.state().phase, Phase::Login));

    // The login form, filled in as a person would.
    fill(&mut harness, "Server", "127.0.0.1");
    fill(&mut harness, "Port", &port.to_string());
    // Plain text: the server here has no TLS listener (the client allows it only to loopback).
    harness.get_by_label("Encrypt the connection (TLS)").click();
    harness.run();
    fill(&mut harness, "Username", "alice");
    fill(&mut harness, "Password", "alice-secret-pass");
    let form = &harness.state().form;
    assert_eq!(
        (form.server.as_str(), form.port.as_str(), form.tls),
        ("127.0.0.1", port.to_string().as_str(), false)
    );
    harness.get_by_label("Log in").click();
    harness.step();

    until(&mut harness, "the chat window, logged in", |app| {
        matches!(app.phase, Phase::Chat)
    });
    until(&mut harness, "#lobby joined", |app| {
        app.connection_state().is_some_and(|state| {
            matches!(state.connection(), ConnectionState::Connected)
                && state.buffer("#lobby").is_some_and(|b| b.joined)
        })
    });
    harness.run_steps(2);
    harness.get_by_label_contains(&format!(
        "Connected to 127.0.0.1:{port} (not encrypted) as alice"
    ));
    harness
}

#[test]
fn logs_in_to_a_real_server_and_chats_with_an_irc_client() {
    let server = Server::start(&[("alice", "alice-secret-pass")]);
    let port = server.port();

    // bob: a raw IRC client that creates its account with REGISTER and is put in #lobby.
    let mut bob = raw_member(port, "bob");

    let config_dir = tempfile::tempdir().expect("temp dir");
    let mut harness = logged_in_window(&server, config_dir.path());
    // The status bar says "as alice" only after the server confirmed the login (900); bob sees
    // her arrive.
    bob.expect("alice joining #lobby", |l| {
        l.starts_with(":alice!") && l.contains(" JOIN #lobby")
    });

    // alice writes in #lobby (the server's default channel, shown on joining) from the composer.
    assert_eq!(
        harness
            .state()
            .connection_state()
            .map(|s| s.active().name.clone()),
        Some("#lobby".to_string())
    );
    let input = harness.get_by_role(egui::accesskit::Role::MultilineTextInput);
    input.focus();
    input.type_text("hello from the desktop");
    harness.run_steps(2);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    let got = bob.expect("alice's message in #lobby", |l| {
        l.contains(" PRIVMSG #lobby :hello from the desktop")
    });
    assert!(got.starts_with(":alice!"), "{got}");

    // bob answers; the window shows it.
    bob.send("PRIVMSG #lobby :hi alice, from a plain IRC client");
    until(&mut harness, "bob's message in #lobby", |app| {
        app.connection_state().is_some_and(|state| {
            state.buffer("#lobby").is_some_and(|b| {
                b.lines.iter().any(|l| {
                    l.from.as_deref() == Some("bob")
                        && l.text == "hi alice, from a plain IRC client"
                })
            })
        })
    });
    harness.run_steps(2);
    harness.get_by_label_contains("hi alice, from a plain IRC client");

    bob.send("QUIT");
    drop(harness);
    drop(server);
}

/// A tag's value in a raw line (`@a=1;msgid=x :nick!u@h PRIVMSG ...`), unescaped enough for
/// the ids the server makes.
fn tag<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tags = line.strip_prefix('@')?.split(' ').next()?;
    tags.split(';')
        .find_map(|t| t.strip_prefix(key)?.strip_prefix('='))
}

/// Typing, reactions and replies between the window and a plain IRC client with message-tags,
/// through the real server: "The typing=active notification SHOULD be sent by clients
/// continuously while the user is making updates to the text-input field"; a reaction is
/// "+draft/react=<reaction>" with "+draft/reply=<msgid>", whose value "references the server
/// provided ID of another message".
#[test]
fn typing_reactions_and_replies_with_an_irc_client() {
    let server = Server::start(&[("alice", "alice-secret-pass")]);
    let mut bob = raw_member(server.port(), "bob");
    let config_dir = tempfile::tempdir().expect("temp dir");
    let mut harness = logged_in_window(&server, config_dir.path());
    bob.expect("alice joining #lobby", |l| {
        l.starts_with(":alice!") && l.contains(" JOIN #lobby")
    });
    bob.send("CAP REQ :message-tags");
    bob.expect("message-tags acknowledged", |l| {
        l.contains(" CAP bob ACK ") && l.contains("message-tags")
    });

    // alice types: bob is told, and her message carries the msgid he reacts to.
    let input = harness.get_by_role(egui::accesskit::Role::MultilineTextInput);
    input.focus();
    input.type_text("release is out");
    harness.run_steps(2);
    bob.expect("alice typing", |l| {
        tag(l, "+typing") == Some("active") && l.contains(" TAGMSG #lobby")
    });
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    let message = bob.expect("alice's message", |l| {
        l.contains(" PRIVMSG #lobby :release is out")
    });
    let msgid = tag(&message, "msgid").expect("a msgid on alice's message");
    bob.send(&format!(
        "@+draft/reply={msgid};+draft/react=🎉 TAGMSG #lobby"
    ));
    until(&mut harness, "bob's reaction", |app| {
        app.connection_state().is_some_and(|state| {
            state.buffer("#lobby").is_some_and(|b| {
                b.line_by_msgid(msgid)
                    .is_some_and(|l| l.reactions.iter().any(|r| r.text == "🎉"))
            })
        })
    });
    harness.run_steps(2);
    harness.get_by_label("🎉 1");

    // bob types, then asks; the window shows him typing, then his line, which alice answers.
    bob.send("@+typing=active TAGMSG #lobby");
    until(&mut harness, "bob typing", |app| {
        app.connection_state().is_some_and(|state| {
            state
                .buffer("#lobby")
                .is_some_and(|b| b.typing(chrono::Utc::now()) == ["bob"])
        })
    });
    harness.run_steps(2);
    harness.get_by_label("bob is typing…");
    bob.send("PRIVMSG #lobby :which version?");
    until(&mut harness, "bob's question", |app| {
        app.connection_state().is_some_and(|state| {
            state.buffer("#lobby").is_some_and(|b| {
                b.lines
                    .iter()
                    .any(|l| l.text == "which version?" && l.msgid.is_some())
            })
        })
    });
    harness.run_steps(2);
    assert!(harness.query_by_label("bob is typing…").is_none());
    harness
        .get_by_label_contains("bob  which version?")
        .click_secondary();
    harness.run();
    harness.get_by_label("Reply").click();
    harness.run();
    let input = harness.get_by_role(egui::accesskit::Role::MultilineTextInput);
    input.focus();
    input.type_text("0.3");
    harness.run_steps(2);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    let reply = bob.expect("alice's reply", |l| l.contains(" PRIVMSG #lobby :0.3"));
    assert!(tag(&reply, "+draft/reply").is_some(), "{reply}");

    bob.send("QUIT");
    drop(harness);
    drop(server);
}

/// The `parley-gui` binary under `xvfb-run`, in its own process group so that the window and
/// the X server go together when the test ends (even by a panic).
struct Window {
    child: std::process::Child,
}

impl Drop for Window {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn the_binary_logs_in_under_xvfb() {
    let found = std::process::Command::new("xvfb-run")
        .arg("--help")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("PARLEY_REQUIRE_XVFB").is_none(),
            "xvfb-run is missing: apt-get install xvfb libgl1-mesa-dri libegl1 libxkbcommon-x11-0"
        );
        eprintln!("skipped: xvfb-run is missing (apt-get install xvfb libgl1-mesa-dri libegl1)");
        return;
    }
    let server = Server::start(&[("carol", "carol-secret-pass")]);
    let port = server.port();
    let mut bob = raw_member(port, "bob");

    let home = tempfile::tempdir().expect("temp dir");
    let password_file = home.path().join("password");
    std::fs::write(&password_file, "carol-secret-pass\n").expect("write the password file");
    let log = std::fs::File::create(home.path().join("gui.log")).expect("log file");
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new("xvfb-run")
        .args([
            "-a",
            "-s",
            "-screen 0 1280x800x24",
            env!("CARGO_BIN_EXE_parley-gui"),
        ])
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--no-tls",
        ])
        .args(["--user", "carol", "--password-file"])
        .arg(&password_file)
        // Its settings and known servers go to the temp dir, not the user's.
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start xvfb-run");
    let window = Window { child };

    // Starting X and software OpenGL takes longer than a protocol step on a loaded machine.
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bob.expect_within(3 * STEP, "carol (the GUI) joining #lobby", |l| {
            l.starts_with(":carol!") && l.contains(" JOIN #lobby")
        })
    }));
    if joined.is_err() {
        drop(window);
        let log = std::fs::read_to_string(home.path().join("gui.log")).unwrap_or_default();
        panic!("parley-gui did not log in; its output:\n{log}");
    }
    drop(window);
    // Closing the window ends the session: the server tells bob.
    bob.expect("carol quitting", |l| {
        l.starts_with(":carol!") && l.contains(" QUIT")
    });
}
