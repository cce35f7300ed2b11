//! One data directory wherever you stand: the real `parleyd` binary, started from different
//! working directories by the same user, finds the same accounts and certificate; every admin
//! command says which directory it used, and none makes a new one without saying so.
//!
//! HOME and XDG_DATA_HOME point into temp dirs, so nothing here touches the real home.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A user's environment: a home, a data home, and two unrelated working directories.
struct Home {
    _root: tempfile::TempDir,
    home: PathBuf,
    data_home: PathBuf,
    here: PathBuf,
    there: PathBuf,
}

impl Home {
    fn new() -> Home {
        let root = tempfile::tempdir().unwrap();
        let path = |name: &str| {
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        };
        Home {
            home: path("home"),
            data_home: root.path().join("home/.local/share"),
            here: path("work/here"),
            there: path("elsewhere/there"),
            _root: root,
        }
    }

    /// Where the platform default puts Parley's data for this user.
    fn data_dir(&self) -> PathBuf {
        self.data_home.join("parley")
    }

    fn command(&self, cwd: &Path, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"));
        command
            .args(args)
            .current_dir(cwd)
            .env("HOME", &self.home)
            .env("XDG_DATA_HOME", &self.data_home)
            .env_remove("STATE_DIRECTORY")
            .env("RUST_LOG", "info");
        // The suite's store settings must not leak in: this is about the SQLite data directory.
        for (var, _) in std::env::vars() {
            if var.starts_with("PARLEY_") {
                command.env_remove(var);
            }
        }
        command
    }

    /// Run `parleyd ARGS` in `cwd` with `stdin`; returns (success, stdout, stderr).
    async fn run(&self, cwd: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = self
            .command(cwd, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run parleyd");
        let mut input = child.stdin.take().unwrap();
        // A command that refuses exits without reading it: a broken pipe here is no failure.
        let _ = input.write_all(stdin.as_bytes()).await;
        drop(input);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("parleyd finishes")
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn fingerprint(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("SHA-256 fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned()
}

#[tokio::test]
async fn every_command_finds_the_same_data_directory_wherever_it_starts() {
    let user = Home::new();
    let data_line = format!("data directory: {}", user.data_dir().display());

    let (ok, out, err) = user
        .run(
            &user.here,
            &["users", "add", "alice", "--password-stdin"],
            "correct horse battery\n",
        )
        .await;
    assert!(ok, "{out}{err}");
    assert_eq!(first_line(&out), data_line, "{out}");
    assert!(
        out.contains(&format!(
            "created new data directory {}",
            user.data_dir().display()
        )),
        "{out}"
    );
    assert!(user.data_dir().join("parley.db").is_file());
    assert!(
        !user.here.join("parley").exists(),
        "nothing made in the working directory"
    );

    let (ok, out, err) = user.run(&user.there, &["users", "list"], "").await;
    assert!(ok, "{out}{err}");
    assert_eq!(first_line(&out), data_line, "{out}");
    assert!(
        out.contains("alice"),
        "the same database from elsewhere: {out}"
    );
    assert!(!out.contains("created"), "{out}");

    // The certificate: made once (and said so), then the same from anywhere.
    let (ok, here, err) = user.run(&user.here, &["cert", "show"], "").await;
    assert!(ok, "{here}{err}");
    assert_eq!(first_line(&here), data_line, "{here}");
    assert!(
        here.contains("generated a new self-signed certificate"),
        "{here}"
    );
    let (ok, there, err) = user.run(&user.there, &["cert", "show"], "").await;
    assert!(ok, "{there}{err}");
    assert_eq!(first_line(&there), data_line, "{there}");
    assert!(!there.contains("generated"), "{there}");
    assert_eq!(fingerprint(&here), fingerprint(&there));
    assert!(!user.there.join("parley").exists());

    // The server, started from a third place, logs the same directory and presents that certificate.
    let port = common::free_port();
    let mut server = user
        .command(&user.home, &[])
        .env("PARLEY_LISTEN__PLAIN", format!("[\"127.0.0.1:{port}\"]"))
        .env("PARLEY_LISTEN__TLS", "[\"127.0.0.1:0\"]")
        .env("PARLEY_WEB__LISTEN", "[]")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start parleyd");
    let mut log = BufReader::new(server.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let wanted = fingerprint(&here);
    let (mut dir_logged, mut cert_logged) = (false, false);
    while !(dir_logged && cert_logged) {
        let line = tokio::time::timeout(common::TIMEOUT, log.next_line())
            .await
            .unwrap_or_else(|_| panic!("server log so far: {seen:#?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("server exited; log: {seen:#?}"));
        dir_logged |= line.contains("data directory")
            && line.contains(&user.data_dir().display().to_string());
        cert_logged |= line.contains(&wanted);
        seen.push(line);
    }
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("created new data directory")),
        "{seen:#?}"
    );
    server.kill().await.unwrap();
}

#[tokio::test]
async fn admin_commands_on_a_missing_data_directory_say_what_they_did() {
    let user = Home::new();
    let missing = user.here.join("no/such/dir");
    let missing_text = missing.display().to_string();
    let dir_arg = ["--data-dir", missing_text.as_str()];

    // Commands that read what is there refuse, name the path and how to choose another.
    for args in [
        &["users", "list"][..],
        &["users", "passwd", "alice", "--password-stdin"],
        &["users", "remove", "alice"],
        &["users", "lock", "alice"],
        &["users", "unlock", "alice"],
        &["cert", "show"],
        &["history", "export", "#lobby"],
        &["audit"],
        &["backup", "/dev/null"],
    ] {
        let args: Vec<&str> = dir_arg.iter().chain(args).copied().collect();
        let (ok, out, err) = user.run(&user.there, &args, "a password here\n").await;
        assert!(!ok, "{args:?} succeeded: {out}{err}");
        assert!(
            err.contains(&format!("no data directory at {missing_text}")),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("--config") && err.contains("server.data_dir"),
            "{args:?}: {err}"
        );
        assert!(!missing.exists(), "{args:?} created {missing_text}");
    }

    // `users add` on a new install makes it, and says so.
    let args: Vec<&str> = dir_arg
        .iter()
        .chain(&["users", "add", "alice", "--password-stdin"])
        .copied()
        .collect();
    let (ok, out, err) = user
        .run(&user.there, &args, "correct horse battery\n")
        .await;
    assert!(ok, "{out}{err}");
    assert_eq!(first_line(&out), format!("data directory: {missing_text}"));
    assert!(
        out.contains(&format!("created new data directory {missing_text}")),
        "{out}"
    );
    assert!(missing.join("parley.db").is_file());
}

#[tokio::test]
async fn a_relative_data_dir_in_a_config_file_is_taken_from_the_file_s_directory() {
    let user = Home::new();
    let config = user.here.join("parley.toml");
    std::fs::write(&config, "[server]\ndata_dir = \"state\"\n").unwrap();
    let config_text = config.display().to_string();
    let expected = user.here.join("state");

    let (ok, out, err) = user
        .run(
            &user.there,
            &[
                "--config",
                &config_text,
                "users",
                "add",
                "bob",
                "--password-stdin",
            ],
            "correct horse battery\n",
        )
        .await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        first_line(&out),
        format!("data directory: {}", expected.display())
    );
    assert!(expected.join("parley.db").is_file());
    assert!(!user.there.join("state").exists());

    // `check-config` says where the data goes, too.
    let (ok, out, err) = user
        .run(&user.home, &["--config", &config_text, "check-config"], "")
        .await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("data directory: {}", expected.display())),
        "{out}"
    );
}
