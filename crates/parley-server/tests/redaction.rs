//! Connection secrets under the real `parleyd` binary: a database password or NATS token given in
//! any form PostgreSQL and NATS accept (a raw `/` or `@` in the password, `?password=` in the URL,
//! a quoted `password='...'` pair, a token, several NATS URLs) must never reach the terminal, not
//! through `--print-config`, not through a failed start's error.
//!
//! Needs no database: the URLs point at a closed port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

/// The config every run starts from: no listener that could collide with another test.
const BASE: &str = "[listen]\nplain = [\"127.0.0.1:0\"]\ntls = []\n\n[web]\nlisten = []\n\n\
                    [metrics]\nlisten = []\n\n[log]\nlevel = \"debug\"\n";

/// A port nothing listens on, so connecting fails at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn parleyd(dir: &Path, config: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let file = dir.join("parley.toml");
    std::fs::write(&file, format!("{BASE}{config}")).expect("write config");
    Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("run parleyd")
}

/// Everything the run printed, for assertions and their messages.
fn printed(out: &Output) -> String {
    format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_hidden(out: &Output, secrets: &[&str]) {
    let text = printed(out);
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked:\n{text}");
    }
}

/// A TOML basic string holding `value`.
fn toml_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn print_config_never_shows_a_database_password_or_nats_token() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = closed_port();
    // Each URL as the file gives it, and the pieces of its secret that must not show.
    let cases: &[(String, &[&str])] = &[
        // A raw `/` in the password: the postgres crate reads up to the `@`.
        (
            format!("postgres://parley:Sl4sh/Pa55@127.0.0.1:{port}/parley"),
            &["Sl4sh", "Pa55"],
        ),
        // The password as a query parameter.
        (
            format!("postgres://parley@127.0.0.1:{port}/parley?password=Qu3ryPa55&sslmode=disable"),
            &["Qu3ryPa55"],
        ),
        // `:`, `?` and `#` in the password, and an escaped `@`.
        (
            format!("postgres://parley:C0l:on?Qm#H4sh%40At@127.0.0.1:{port}/parley"),
            &["C0l", "Qm#", "H4sh", "%40At"],
        ),
        // key=value pairs with a quoted password holding spaces and an escaped quote.
        (
            format!(
                "host=127.0.0.1 port={port} user=parley password='Qu0ted p\\' W0rds' dbname=parley"
            ),
            &["Qu0ted", "W0rds"],
        ),
    ];
    for (url, secrets) in cases {
        let config = format!(
            "[accounts]\nstore = \"postgres\"\npostgres_url = {}\n",
            toml_string(url)
        );
        let out = parleyd(dir.path(), &config, &["--print-config"], &[]);
        assert!(out.status.success(), "{url}: {}", printed(&out));
        assert_hidden(&out, secrets);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("127.0.0.1"),
            "the host still shows: {}",
            printed(&out)
        );
        // The same URL from the environment, as the docs recommend.
        let out = parleyd(
            dir.path(),
            "[accounts]\nstore = \"postgres\"\n",
            &["--print-config"],
            &[("PARLEY_ACCOUNTS__POSTGRES_URL", url)],
        );
        assert!(out.status.success(), "{url}: {}", printed(&out));
        assert_hidden(&out, secrets);
    }

    // NATS: a token, user and password, several servers in one setting.
    let nats = "nats://T0kenNats@127.0.0.1:4222,nats://u:NatsPa55@127.0.0.1:4223,\
                tls://S3condT0ken@127.0.0.1:4224";
    let config = format!(
        "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://p@127.0.0.1:{port}/p\"\n\n\
         [cluster]\nenabled = true\nnode_name = \"n1\"\nnats_url = {}\n",
        toml_string(nats)
    );
    // Credentials in the URL are refused (the NATS client would not use them; they belong in
    // cluster.nats_user / nats_password / nats_token), and the refusal does not repeat them.
    let out = parleyd(dir.path(), &config, &["--print-config"], &[]);
    assert!(!out.status.success(), "{}", printed(&out));
    assert_hidden(&out, &["T0kenNats", "NatsPa55", "S3condT0ken"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cluster.nats_url"), "{stderr}");
}

#[test]
fn a_failed_database_connection_never_shows_the_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = closed_port();
    for (url, secrets) in [
        (
            format!("postgres://parley:Sl4sh/Pa55@127.0.0.1:{port}/parley"),
            &["Sl4sh", "Pa55"][..],
        ),
        (
            format!("postgres://parley@127.0.0.1:{port}/parley?password=Qu3ryPa55"),
            &["Qu3ryPa55"][..],
        ),
        (
            format!("host=127.0.0.1 port={port} user=parley password='Qu0ted p\\' W0rds'"),
            &["Qu0ted", "W0rds"][..],
        ),
    ] {
        let config = "[accounts]\nstore = \"postgres\"\n";
        let env = [("PARLEY_ACCOUNTS__POSTGRES_URL", url.as_str())];
        // The server's start, and the admin CLI, which opens the same store.
        for args in [&[][..], &["users", "list"][..]] {
            let out = parleyd(dir.path(), config, args, &env);
            assert!(!out.status.success(), "{url} {args:?}: {}", printed(&out));
            assert_hidden(&out, secrets);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("PostgreSQL"),
                "the error says what failed: {stderr}"
            );
        }
    }
}
