//! End-to-end encrypted private messages in the desktop client (issue 28), against the real
//! server in-process on a loopback port: the window (egui_kittest, the binary's
//! `LiveConnector`) logged in as alice, with her E2E device in a temp config dir laid out as
//! the binary lays it out; bob is a second GUI model (`Live`, the same connection code, no
//! window) with his own device. Their DM is readable on both sides, history on the server
//! holds only the placeholder and the ciphertext (a raw socket of bob's account reads
//! CHATHISTORY), and the conversation's header reads right before and after verifying; a new
//! device of bob's makes the loud key-change warning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use eframe::egui;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use parley_client::{Action, Auth, ClientConfig, ConnectionState, State, Transport};
use parley_gui::connection::{Connection, Live, LiveConnector};
use parley_gui::notify::Recorder;
use parley_gui::settings::Settings;
use parley_gui::{App, Options, Phase};
use parley_server::{Config, Running};

/// The upper bound of one step's wait (it ends as soon as the step is done).
const STEP: Duration = Duration::from_secs(15);
const SECRET: &str = "the door code is 4711 blue-heron";
const REPLY: &str = "got it, see you at 8";
const PUBLISHED: &str = "E2E: this device's keys are published";

struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    running: Running,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::default();
        config.listen.plain = vec!["127.0.0.1:0".into()];
        config.listen.tls = Vec::new();
        config.web.listen = Vec::new();
        config.server.data_dir = dir.path().to_path_buf();
        config.flood.enabled = false;
        for name in ["alice", "bob"] {
            let store = parley_server::store::open_default(&config).expect("account store");
            parley_server::accounts::Accounts::new(store, &config)
                .add_account(name, &format!("{name}-secret-pass"))
                .expect("account created");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let running = runtime
            .block_on(parley_server::start(config))
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
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Every line of every buffer, for a failure message.
fn describe(state: &State) -> String {
    let mut out = format!("connection {:?}; buffers:", state.connection());
    for buffer in state.buffers() {
        out.push_str(&format!("\n  {}:", buffer.name));
        for line in &buffer.lines {
            out.push_str(&format!(
                "\n    {:?} {:?} {:?}",
                line.kind, line.from, line.text
            ));
        }
    }
    out
}

fn has_line(state: &State, buffer: &str, text: &str) -> bool {
    state
        .buffer(buffer)
        .is_some_and(|b| b.lines.iter().any(|l| l.text.contains(text)))
}

/// Steps the window until `ready` holds (at most [`STEP`]).
fn until(harness: &mut Harness<'static, App>, what: &str, ready: impl Fn(&State) -> bool) {
    let deadline = Instant::now() + STEP;
    loop {
        harness.step();
        if harness
            .state()
            .connection_state()
            .is_some_and(|s| ready(&s))
        {
            harness.run_steps(2);
            return;
        }
        if Instant::now() >= deadline {
            let state = harness.state().connection_state().map(|s| describe(&s));
            panic!("the window: timed out waiting for {what}; {state:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until bob's model satisfies `ready` (at most [`STEP`]).
fn until_live(live: &Live, what: &str, ready: impl Fn(&State) -> bool) {
    let deadline = Instant::now() + STEP;
    loop {
        if ready(&live.state()) {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "bob: timed out waiting for {what}; {}",
                describe(&live.state())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A second GUI model (the window's connection code without a window) logged in as bob.
fn bob_model(server: &Server, e2e_dir: &Path) -> Live {
    let mut config = ClientConfig::new("127.0.0.1", server.port(), Transport::Plain, "bob");
    config.auth = Auth::Login {
        account: "bob".into(),
        password: "bob-secret-pass".into(),
    };
    config.e2e_dir = Some(e2e_dir.to_path_buf());
    let live = Live::start(config, &server.handle(), Arc::new(|| {})).expect("bob connects");
    until_live(&live, "bob's keys published", |s| {
        has_line(s, parley_client::SERVER_BUFFER, PUBLISHED)
    });
    live
}

fn fill(harness: &mut Harness<'static, App>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.run();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.run();
    harness.get_by_label(label).type_text(text);
    harness.run();
}

/// Types a line into the composer and presses Enter.
fn type_line(harness: &mut Harness<'static, App>, text: &str) {
    let input = harness.get_by_role(egui::accesskit::Role::MultilineTextInput);
    input.focus();
    input.type_text(text);
    harness.run_steps(2);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
}

/// The window logged in as alice, with E2E devices under `e2e_root` as the binary has them.
fn alice_window(server: &Server, config_dir: &Path, e2e_root: &Path) -> Harness<'static, App> {
    let connector = LiveConnector {
        runtime: server.handle(),
        wake: Arc::new(|| {}),
    };
    let options = Options {
        utc_offset: chrono::FixedOffset::east_opt(0),
        e2e_root: Some(e2e_root.to_path_buf()),
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
        .with_size([1100.0, 700.0])
        .build_ui_state(|ui, app: &mut App| app.ui(ui), app);
    fill(&mut harness, "Server", "127.0.0.1");
    fill(&mut harness, "Port", &server.port().to_string());
    harness.get_by_label("Encrypt the connection (TLS)").click();
    harness.run();
    fill(&mut harness, "Username", "alice");
    fill(&mut harness, "Password", "alice-secret-pass");
    harness.get_by_label("Log in").click();
    harness.step();
    until(&mut harness, "alice logged in, keys published", |s| {
        matches!(s.connection(), ConnectionState::Connected)
            && has_line(s, parley_client::SERVER_BUFFER, PUBLISHED)
    });
    assert!(matches!(harness.state().phase, Phase::Chat));
    harness
}

/// bob's account's history with alice, read by a raw socket logged in to bob's account.
fn history_with_alice(port: u16) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let sasl = base64::engine::general_purpose::STANDARD.encode("\0bob\0bob-secret-pass");
    for line in [
        "CAP REQ :sasl message-tags server-time batch draft/chathistory".to_string(),
        "NICK bobraw".into(),
        "USER bobraw 0 * :bobraw".into(),
        "AUTHENTICATE PLAIN".into(),
        format!("AUTHENTICATE {sasl}"),
        "CAP END".into(),
        "CHATHISTORY LATEST alice * 50".into(),
    ] {
        writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
    }
    let deadline = Instant::now() + STEP;
    let mut seen = Vec::new();
    let mut buf = String::new();
    let mut in_batch = false;
    while Instant::now() < deadline {
        match reader.read_line(&mut buf) {
            Ok(0) => break,
            Ok(_) if buf.ends_with('\n') => {
                let line = buf.trim_end().to_string();
                buf.clear();
                if let Some(token) = line.strip_prefix("PING ") {
                    let _ = writer.write_all(format!("PONG {token}\r\n").as_bytes());
                }
                if line.contains(" BATCH +") && line.contains("chathistory") {
                    in_batch = true;
                }
                let end = in_batch && line.contains(" BATCH -");
                seen.push(line);
                if end {
                    return seen;
                }
            }
            _ => {}
        }
    }
    panic!(
        "no CHATHISTORY batch; the raw client read:\n{}",
        seen.join("\n")
    );
}

#[test]
fn an_encrypted_dm_between_the_window_and_another_parley_client() {
    let server = Server::start();
    let configs = tempfile::tempdir().expect("temp dir");
    let e2e_root = configs.path().join("e2e-gui");
    let bob = bob_model(&server, &configs.path().join("bob"));
    let mut alice = alice_window(&server, &configs.path().join("gui"), &e2e_root);
    // The device lives where the binary keeps it: <config>/e2e-gui/<host>-<port>/<account>.
    let device = e2e_root
        .join(format!("127.0.0.1-{}", server.port()))
        .join("alice.device");
    assert!(device.exists(), "{device:?}");

    // alice writes to bob from the composer: bob's client reads it, the header says encrypted.
    type_line(&mut alice, "/query bob");
    type_line(&mut alice, SECRET);
    until_live(&bob, "bob reads alice's message", |s| {
        has_line(s, "alice", SECRET)
    });
    until(&mut alice, "alice's echo and the header", |s| {
        has_line(s, "bob", SECRET) && parley_gui::e2e::header(s).is_some_and(|h| h.status.encrypted)
    });
    alice.get_by_label("🔒 encrypted · not verified");
    assert!(alice
        .query_by_label_contains("Safety number with bob")
        .is_none());

    // The server keeps only the placeholder and the ciphertext.
    let history = history_with_alice(server.port());
    let tagged = history
        .iter()
        .find(|l| l.contains("+parley.chat/e2e=v1:"))
        .unwrap_or_else(|| panic!("the encrypted line in history: {history:#?}"));
    assert!(tagged.ends_with(":[encrypted message]"), "{tagged}");
    assert!(!history.iter().any(|l| l.contains(SECRET)), "{history:#?}");

    // bob answers: the window decrypts and shows it.
    bob.send(Action::Msg {
        target: "alice".into(),
        text: REPLY.into(),
    });
    until(&mut alice, "bob's answer, decrypted", |s| {
        s.buffer("bob").is_some_and(|b| {
            b.lines
                .iter()
                .any(|l| l.from.as_deref() == Some("bob") && l.text == REPLY)
        })
    });
    alice.get_by_label_contains(&format!("bob  {REPLY}"));

    // "Safety number" shows the number bob's client shows too; "Mark verified" confirms it.
    alice.get_by_label("Safety number").click();
    until(&mut alice, "the safety number", |s| {
        parley_gui::e2e::header(s).is_some_and(|h| h.safety_number.is_some())
    });
    bob.send(Action::Verify {
        nick: "alice".into(),
        confirm: false,
    });
    until_live(&bob, "bob's safety number", |s| {
        has_line(s, "alice", "safety number with alice: ")
    });
    let number = alice
        .state()
        .connection_state()
        .and_then(|s| parley_gui::e2e::header(&s))
        .and_then(|h| h.safety_number)
        .expect("a number");
    assert!(has_line(
        &bob.state(),
        "alice",
        &format!("safety number with alice: {number}.")
    ));
    alice.get_by_label_contains(&format!("Safety number with bob: {number}"));
    alice.get_by_label("Mark verified").click();
    until(&mut alice, "verified", |s| {
        parley_gui::e2e::header(s).is_some_and(|h| h.status.verified)
    });
    alice.get_by_label("🔒 encrypted · verified");

    // The composer's /e2e turns it off and on, as the checkbox does.
    type_line(&mut alice, "/e2e off");
    until(&mut alice, "E2E off", |s| {
        parley_gui::e2e::header(s).is_some_and(|h| h.status.off)
    });
    alice.get_by_label("🔓 not encrypted (turned off)");
    alice.get_by_label("Encrypt").click();
    until(&mut alice, "E2E on again", |s| {
        parley_gui::e2e::header(s).is_some_and(|h| !h.status.off && h.status.verified)
    });

    // bob gets a new device: /verify typed in the composer lists it, and the warning is loud.
    let bob_new = bob_model(&server, &configs.path().join("bob-new"));
    type_line(&mut alice, "/verify bob");
    until(&mut alice, "the key-change warning", |s| {
        has_line(s, "bob", "*** WARNING: bob's keys changed")
    });
    alice.get_by_label_contains("⚠ *** WARNING: bob's keys changed");
    alice.get_by_label("🔒 encrypted · not verified");
    let rows = alice
        .state()
        .connection_state()
        .and_then(|s| {
            s.buffer("bob")
                .map(|b| parley_gui::model::rows(b.lines.iter(), &chrono::Utc))
        })
        .unwrap_or_default();
    assert!(rows.iter().any(|r| matches!(
        r,
        parley_gui::model::Row::Line {
            style: parley_gui::model::RowStyle::KeyWarning,
            ..
        }
    )));

    bob.send(Action::Quit(None));
    bob_new.send(Action::Quit(None));
    drop(alice);
    drop(server);
}
