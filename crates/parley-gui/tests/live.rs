//! The window against the real server: `parleyd` runs in-process on a loopback port, and the
//! app is driven with egui_kittest as in `ui.rs` but through [`LiveConnector`], the connection
//! code the `parley-gui` binary uses (a `parley_client::Client` on a tokio runtime, a real
//! socket, SASL). A second, raw IRC client on the same server checks what goes over the wire
//! both ways, so a change on either side of the protocol (server or client library) that breaks
//! the desktop client fails here and not only for a person at the keyboard.

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
        let deadline = Instant::now() + STEP;
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

#[test]
fn logs_in_to_a_real_server_and_chats_with_an_irc_client() {
    let server = Server::start(&[("alice", "alice-secret-pass")]);
    let port = server.port();

    // bob: a raw IRC client that creates its account with REGISTER and is put in #lobby.
    let mut bob = Raw::connect(port);
    bob.send("CAP LS 302");
    bob.send("NICK bob");
    bob.send("USER bob 0 * :Bob");
    bob.send("REGISTER * * bob-secret-pass");
    bob.expect("REGISTER SUCCESS", |l| l.contains(" REGISTER SUCCESS "));
    bob.send("CAP END");
    bob.expect("the welcome (001)", |l| l.split(' ').nth(1) == Some("001"));
    bob.expect("the end of #lobby's NAMES (366)", |l| {
        l.split(' ').nth(1) == Some("366") && l.contains(" #lobby ")
    });

    // The window, with the binary's connection code; wake is for eframe's repaint, and the test
    // steps frames itself.
    let config_dir = tempfile::tempdir().expect("temp dir");
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
        Some(config_dir.path().to_path_buf()),
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
    // bob sees alice arrive, as the account she logged in with.
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
