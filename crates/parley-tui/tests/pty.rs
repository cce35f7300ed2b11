//! End to end: the real `parley` binary in a pseudo-terminal logs in through its start form and
//! sends a message that a second client (the library) receives from the real server. Every wait
//! is bounded; the child is killed if it outlives the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parley_client::{Auth, Client, ClientConfig, ConnectionState, Event, State, Transport};
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

const TIMEOUT: Duration = Duration::from_secs(20);

async fn until(
    client: &Client,
    events: &mut tokio::sync::mpsc::Receiver<Event>,
    what: &str,
    ready: impl Fn(&State) -> bool,
) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if ready(&client.state()) {
            return;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(_)) => {}
            other => panic!("{what}: gave up waiting ({other:?})"),
        }
    }
}

fn wait_for_output(output: &Mutex<Vec<u8>>, needle: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if String::from_utf8_lossy(&output.lock().unwrap()).contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{needle:?} never appeared on the terminal; got {:?}",
        String::from_utf8_lossy(&output.lock().unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_client_logs_in_and_sends_a_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = parley_server::Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.listen.tls = Vec::new();
    config.web.listen = Vec::new();
    config.server.data_dir = dir.path().to_path_buf();
    config.flood.enabled = false;
    let store = parley_server::store::open_default(&config).expect("store");
    let accounts = parley_server::accounts::Accounts::new(store, &config);
    accounts
        .add_account("alice", "alice-password")
        .expect("alice");
    accounts.add_account("bob", "bob-password").expect("bob");
    let server = parley_server::start(config).await.expect("server starts");
    let port = server.plain_addrs()[0].port();

    let mut bob_config = ClientConfig::new("127.0.0.1", port, Transport::Plain, "bob");
    bob_config.auth = Auth::Login {
        account: "bob".into(),
        password: "bob-password".into(),
    };
    let (bob, mut bob_events) = Client::start(bob_config).expect("bob starts");
    until(&bob, &mut bob_events, "bob in #lobby", |s| {
        *s.connection() == ConnectionState::Connected
            && s.buffer("#lobby").is_some_and(|b| b.joined)
    })
    .await;

    let config_dir = dir.path().join("client-config");
    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 30,
            cols: 110,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pseudo-terminal");
    let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_parley"));
    command.args([
        "--server",
        &format!("127.0.0.1:{port}"),
        "--no-tls",
        "--user",
        "alice",
    ]);
    command.env("PARLEY_CONFIG_DIR", &config_dir);
    command.env("TERM", "xterm-256color");
    let mut child = pty.slave.spawn_command(command).expect("parley starts");
    drop(pty.slave);
    let output = Arc::new(Mutex::new(Vec::new()));
    let mut reader = pty.master.try_clone_reader().expect("pty reader");
    let sink = output.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    let mut keyboard = pty.master.take_writer().expect("pty writer");

    let form_shown = tokio::task::spawn_blocking({
        let output = output.clone();
        move || wait_for_output(&output, "Password")
    });
    form_shown.await.expect("start form");
    keyboard
        .write_all(b"alice-password\r")
        .expect("type the password");
    keyboard.flush().expect("flush");
    until(&bob, &mut bob_events, "alice joins #lobby", |s| {
        s.buffer("#lobby")
            .is_some_and(|b| b.members.contains_key("alice"))
    })
    .await;

    // The join reached bob; give alice's screen a moment to take the channel's focus.
    tokio::time::sleep(Duration::from_millis(300)).await;
    keyboard
        .write_all(b"hello from the terminal\r")
        .expect("type a message");
    keyboard.flush().expect("flush");
    until(&bob, &mut bob_events, "alice's message", |s| {
        s.buffer("#lobby").is_some_and(|b| {
            b.lines
                .iter()
                .any(|l| l.from.as_deref() == Some("alice") && l.text == "hello from the terminal")
        })
    })
    .await;

    keyboard.write_all(b"/quit\r").expect("type /quit");
    keyboard.flush().expect("flush");
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let status = status.expect("parley exits after /quit");
    assert!(status.success(), "{status:?}");

    let saved = std::fs::read_to_string(config_dir.join("config.toml")).expect("settings saved");
    assert!(
        saved.contains("alice") && saved.contains(&port.to_string()),
        "{saved}"
    );
    assert!(
        !saved.contains("alice-password"),
        "the password is never saved"
    );
    server.shutdown();
}
