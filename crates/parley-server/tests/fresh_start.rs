//! A deploy script starts `parleyd` and runs `parleyd users add` at the same moment on a fresh
//! data directory: both create and migrate the same new database at once. Both must succeed,
//! every time, whichever gets there first (on PostgreSQL too, with `PARLEY_TEST_STORE=postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{free_port, store_env, write_binary_config};
use tokio::io::AsyncWriteExt;

/// Races run side by side (so each runs on a busy machine, as a deploy's does) and how many
/// times: enough to hit the interleavings, few enough to keep the test to seconds.
const AT_ONCE: usize = 4;
const BATCHES: usize = 8;

#[tokio::test]
async fn server_and_users_add_start_together_on_a_fresh_directory() {
    for batch in 0..BATCHES {
        let races: Vec<_> = (0..AT_ONCE)
            .map(|n| tokio::spawn(race(batch * AT_ONCE + n)))
            .collect();
        for race in races {
            race.await.expect("the race task");
        }
    }
}

/// Tries of a round whose server found its port taken (see [`race`]).
const PORT_TRIES: usize = 3;

/// One deploy, on a new directory and port; again on another port if the server found its
/// port taken. `free_port` lets the port go before the server binds it, and meanwhile a
/// connection of the same machine (four races at once, each with PostgreSQL connections on the
/// second pass) may get it as its own ephemeral port: CI saw it once. Not what this test is
/// about; any other failure fails the round at once.
async fn race(round: usize) {
    for _ in 1..PORT_TRIES {
        if race_once(round, false).await {
            return;
        }
    }
    race_once(round, true).await;
}

/// One deploy: `parleyd` and `parleyd users add` started at the same moment on a new directory.
/// False when the server could not bind its port and `last` is not set (the round is run
/// again); any other failure panics.
async fn race_once(round: usize, last: bool) -> bool {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = write_binary_config(dir.path(), port);
    let envs = store_env(dir.path());
    let env_refs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut add = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(&config)
        .args(["users", "add", "deployer", "--password-stdin"])
        .envs(env_refs.iter().copied())
        .env("RUST_LOG", "warn")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start parleyd users add");
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(&config)
        .envs(env_refs.iter().copied())
        .env("RUST_LOG", "warn")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start parleyd");
    let mut stdin = add.stdin.take().expect("piped stdin");
    stdin
        .write_all(b"deployer-password\n")
        .await
        .expect("write the password");
    drop(stdin);

    let added = tokio::time::timeout(Duration::from_secs(30), add.wait_with_output())
        .await
        .expect("users add finishes")
        .expect("users add runs");
    assert!(
        added.status.success(),
        "round {round}: users add failed: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(
        String::from_utf8_lossy(&added.stdout).contains("added account deployer"),
        "round {round}: {}",
        String::from_utf8_lossy(&added.stdout)
    );
    // The server came up and stays up: it did not exit on the other's half-made schema.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if server.try_wait().expect("poll the server").is_some()
            || tokio::time::Instant::now() > deadline
        {
            server.start_kill().ok();
            let out = server
                .wait_with_output()
                .await
                .expect("the server's output");
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !last && stderr.contains("Address already in use") {
                return false;
            }
            panic!("round {round}: the server did not start: {stderr}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().await.expect("stop the server");
    true
}
