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
/// The pseudo-terminal's size.
const ROWS: u16 = 30;
const COLS: u16 = 110;

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

/// The screen that `bytes` draw on a `rows` x `cols` terminal, one string per row. Only what the
/// terminal backend uses to place text matters here: cursor positioning (`CSI row;col H`) and
/// printable characters; colours, modes and other escapes are skipped. Raw bytes cannot answer
/// "what does the screen show": the backend redraws only the cells that changed, so a word on
/// screen need not appear in one piece in the output.
fn screen(bytes: &[u8], rows: usize, cols: usize) -> Vec<String> {
    let mut grid = vec![vec![' '; cols]; rows];
    let (mut row, mut col) = (0usize, 0usize);
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    let mut params = String::new();
                    let mut last = None;
                    for p in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&p) {
                            last = Some(p);
                            break;
                        }
                        params.push(p);
                    }
                    match last {
                        Some('H' | 'f') => {
                            let mut at = params.split(';').map(|n| n.parse::<usize>().unwrap_or(1));
                            row = at.next().unwrap_or(1).saturating_sub(1);
                            col = at.next().unwrap_or(1).saturating_sub(1);
                        }
                        Some('J') if params == "2" => {
                            grid.iter_mut().for_each(|r| r.fill(' '));
                        }
                        _ => {}
                    }
                }
                // OSC: up to BEL or ST.
                Some(']') => {
                    while let Some(p) = chars.next() {
                        if p == '\u{7}' || (p == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' => col = 0,
            '\n' => row += 1,
            c if !c.is_control() => {
                if let Some(cell) = grid.get_mut(row).and_then(|r| r.get_mut(col)) {
                    *cell = c;
                }
                col += 1;
            }
            _ => {}
        }
    }
    grid.into_iter().map(|r| r.into_iter().collect()).collect()
}

/// Wait (bounded) until a row of the terminal's screen contains `needle`.
fn wait_for_screen(output: &Mutex<Vec<u8>>, needle: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let shown = screen(&output.lock().unwrap(), ROWS as usize, COLS as usize);
        if shown.iter().any(|row| row.contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared on the screen:\n{}",
            shown.join("\n")
        );
        // Polls the screen the reader thread fills; the terminal gives no other signal.
        std::thread::sleep(Duration::from_millis(20));
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
            rows: ROWS,
            cols: COLS,
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

    // What alice types goes to the buffer in focus: wait until her prompt names the channel.
    tokio::task::spawn_blocking({
        let output = output.clone();
        move || wait_for_screen(&output, "[#lobby] ")
    })
    .await
    .expect("#lobby in focus");
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
