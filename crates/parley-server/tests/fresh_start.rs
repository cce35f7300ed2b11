//! A deploy script starts `parleyd` and runs `parleyd users add` at the same moment on a fresh
//! data directory: both create and migrate the same new database at once. Both must succeed,
//! every time, whichever gets there first (on PostgreSQL too, with `PARLEY_TEST_STORE=postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{free_port, spawn_parleyd, store_env, wait_listening, write_binary_config};
use tokio::io::AsyncWriteExt;

/// Rounds of the race: enough to hit the interleavings on a loaded 2-core machine, few enough to
/// keep the test to seconds.
const ROUNDS: usize = 12;

#[tokio::test]
async fn server_and_users_add_start_together_on_a_fresh_directory() {
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = write_binary_config(dir.path(), port);
        let envs = store_env(dir.path());
        let env_refs: Vec<(&str, &str)> =
            envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

        let mut add = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
            .arg("--config")
            .arg(&config)
            .args(["users", "add", "deployer", "--password-stdin"])
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start parleyd users add");
        let mut server = spawn_parleyd(&config, &env_refs);
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
        // The server is up (or still starting) and has not exited.
        wait_listening(port).await;
        assert!(
            server.try_wait().expect("poll the server").is_none(),
            "round {round}: the server exited"
        );
        server.kill().await.expect("stop the server");
    }
}
