//! `parley --plain` against the real server, as the second device of an account: the nick is
//! taken by the first device, the server joins everyone to #lobby, and text typed after
//! `/join #club` (or with `--join '#club'`) must reach #club, with a line saying where it went.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parley_client::{Auth, Client, ClientConfig, ConnectionState, Event, State, Transport};

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

async fn logged_in(port: u16, name: &str) -> (Client, tokio::sync::mpsc::Receiver<Event>) {
    let mut config = ClientConfig::new("127.0.0.1", port, Transport::Plain, name);
    config.auth = Auth::Login {
        account: name.into(),
        password: format!("{name}-password"),
    };
    let (client, mut events) = Client::start(config).expect("client starts");
    until(&client, &mut events, "logged in and in #lobby", |s| {
        *s.connection() == ConnectionState::Connected
            && s.buffer("#lobby").is_some_and(|b| b.joined)
    })
    .await;
    (client, events)
}

/// Runs `parley --plain` with `input` after the password on standard input; returns its output.
async fn run_plain(port: u16, extra: &[&str], input: &str) -> String {
    let mut args = vec!["--no-tls"];
    args.extend_from_slice(extra);
    run_parley(port, &args, input).await
}

async fn run_parley(port: u16, extra: &[&str], input: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["--plain", "--password-stdin", "--user", "dave"])
        .args(["--server", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("PARLEY_CONFIG_DIR", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("parley starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("dave-password\n{input}").as_bytes())
        .expect("input");
    drop(stdin);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if child.try_wait().expect("status").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().expect("output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn said_in(state: &State, channel: &str, text: &str) -> bool {
    state
        .buffer(channel)
        .is_some_and(|b| b.lines.iter().any(|l| l.text == text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_goes_to_the_channel_joined_last() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = parley_server::Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.listen.tls = Vec::new();
    config.web.listen = Vec::new();
    config.server.data_dir = dir.path().to_path_buf();
    config.flood.enabled = false;
    // Each device a user of its own, so the second one says why it is `dave_` (with the
    // server's multiclient on it would be another session of `dave`).
    config.accounts.multiclient = false;
    let store = parley_server::store::open_default(&config).expect("store");
    let accounts = parley_server::accounts::Accounts::new(store, &config);
    for name in ["dave", "bob"] {
        accounts
            .add_account(name, &format!("{name}-password"))
            .expect("account");
    }
    let server = parley_server::start(config).await.expect("server starts");
    let port = server.plain_addrs()[0].port();

    // dave's first device holds the nick; bob watches both channels.
    let (_first_device, _first_events) = logged_in(port, "dave").await;
    let (bob, mut bob_events) = logged_in(port, "bob").await;
    bob.input("/join #club").await.expect("join");
    until(&bob, &mut bob_events, "bob in #club", |s| {
        s.buffer("#club").is_some_and(|b| b.joined)
    })
    .await;

    let output = run_plain(port, &[], "/join #club\nhello club\n").await;
    until(&bob, &mut bob_events, "the line in #club", |s| {
        said_in(s, "#club", "hello club")
    })
    .await;
    assert!(!said_in(&bob.state(), "#lobby", "hello club"), "{output}");
    assert!(output.contains("-> #club"), "where the text went: {output}");
    assert!(
        output.contains("connected as dave_ because dave is in use"),
        "{output}"
    );

    let output = run_plain(port, &["--join", "#club"], "hello again\n").await;
    until(&bob, &mut bob_events, "the --join line in #club", |s| {
        said_in(s, "#club", "hello again")
    })
    .await;
    assert!(!said_in(&bob.state(), "#lobby", "hello again"), "{output}");
    assert!(output.contains("-> #club"), "{output}");
    server.shutdown();
}

/// `--trust` prints the certificate's fingerprint once (it used to come twice, then a third
/// time in the "trusting" line), and the lines piped before the trust reach the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusting_a_certificate_prints_its_fingerprint_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = parley_server::Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    config.listen.tls = vec!["127.0.0.1:0".into()];
    config.web.listen = Vec::new();
    config.server.data_dir = dir.path().to_path_buf();
    config.flood.enabled = false;
    let store = parley_server::store::open_default(&config).expect("store");
    let accounts = parley_server::accounts::Accounts::new(store, &config);
    for name in ["dave", "bob"] {
        accounts
            .add_account(name, &format!("{name}-password"))
            .expect("account");
    }
    let server = parley_server::start(config).await.expect("server starts");
    let fingerprint = server.tls_fingerprint().expect("a TLS certificate");
    let (bob, mut bob_events) = logged_in(server.plain_addrs()[0].port(), "bob").await;

    let tls_port = server.tls_addrs()[0].port();
    let output = run_parley(
        tls_port,
        &["--tls", "--trust"],
        "/join #lobby\nhello over TLS\n",
    )
    .await;
    assert_eq!(
        output.matches(&fingerprint).count(),
        1,
        "the fingerprint is printed once: {output}"
    );
    assert!(output.contains("trusting this certificate"), "{output}");
    until(
        &bob,
        &mut bob_events,
        "the line typed before the trust",
        |s| said_in(s, "#lobby", "hello over TLS"),
    )
    .await;
    server.shutdown();
}
