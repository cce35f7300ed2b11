//! What `parleyd audit` and `parleyd history export` print goes to an operator's terminal, and
//! much of it was typed by users: a kick reason or a message holding terminal escapes
//! (`ESC [2J` clears the screen, `ESC ]0;...BEL` retitles the window, U+009B is a one-character
//! CSI) must come out as visible text, never as raw control characters. The audit trail also names
//! the account behind an action, not only the nick it was done under. Runs the real binary on
//! the data the real server wrote (SQLite, or PostgreSQL with `PARLEY_TEST_STORE=postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{free_port, store_env, write_binary_config, Client, TestServer};

/// Every control character an attacker might use: C0 (ESC, BEL, the IRC colour and bold codes),
/// DEL, and C1 (CSI).
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;owned\u{7} \u{3}4red\u{2}bold \u{7f}del \u{9b}31m csi";

/// The raw control characters in `output`, if any (newlines end lines and are fine).
fn raw_controls(output: &str) -> Vec<char> {
    output
        .chars()
        .filter(|c| c.is_control() && *c != '\n')
        .collect()
}

fn parleyd(config: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(config)
        .args(args)
        .envs(store_env(dir))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run parleyd");
    assert!(
        out.status.success(),
        "parleyd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the output is UTF-8")
}

#[tokio::test]
async fn audit_and_export_print_no_raw_control_characters_and_name_the_account() {
    let server = TestServer::start().await;
    let mut op = server.client("opnick").await;
    op.send("REGISTER * * opnick-password").await;
    op.expect(|l| l.contains("REGISTER SUCCESS")).await;
    // The account stays `opnick`; the nick the kick is done under is another.
    op.send("NICK shadow").await;
    op.send("JOIN #mod").await;
    op.sync().await;
    let mut victim: Client = server.client("victim").await;
    victim.send("JOIN #mod").await;
    victim.sync().await;
    op.sync().await;
    op.send(&format!("PRIVMSG #mod :{HOSTILE}")).await;
    op.send(&format!("KICK #mod victim :{HOSTILE}")).await;
    victim.expect(|l| l.contains(" KICK #mod victim ")).await;
    op.sync().await;
    let TestServer { running, dir, .. } = server;
    running.shutdown();
    assert!(running.wait(Duration::from_secs(5)).await);

    let config = write_binary_config(dir.path(), free_port());
    let audit = parleyd(&config, dir.path(), &["audit"]);
    assert_eq!(
        raw_controls(&audit),
        Vec::<char>::new(),
        "audit printed raw controls:\n{audit}"
    );
    let kick = audit
        .lines()
        .find(|l| l.contains(" kick "))
        .unwrap_or_else(|| panic!("no kick in\n{audit}"));
    assert!(
        kick.contains("actor=shadow account=opnick target=victim"),
        "{kick}"
    );
    assert!(
        kick.ends_with(r"#mod: \x1b[2J\x1b]0;owned\x07 \x034red\x02bold \x7fdel \u{9b}31m csi"),
        "{kick}"
    );
    // Asking for the account finds what it did under any nick.
    let by_account = parleyd(
        &config,
        dir.path(),
        &["audit", "--actor", "opnick", "--action", "kick"],
    );
    assert_eq!(by_account.lines().count(), 1, "{by_account}");

    let text = parleyd(&config, dir.path(), &["history", "export", "#mod"]);
    assert_eq!(
        raw_controls(&text),
        Vec::<char>::new(),
        "export printed raw controls:\n{text}"
    );
    assert!(
        text.contains(r"<shadow> \x1b[2J\x1b]0;owned\x07 \x034red\x02bold \x7fdel \u{9b}31m csi"),
        "{text}"
    );
    let json = parleyd(
        &config,
        dir.path(),
        &["history", "export", "#mod", "--format", "json"],
    );
    assert_eq!(
        raw_controls(&json),
        Vec::<char>::new(),
        "JSON export printed raw controls:\n{json}"
    );
    // JSON keeps the exact text, in JSON's own escapes.
    let line = json
        .lines()
        .find(|l| l.contains("csi"))
        .unwrap_or_else(|| panic!("no message in\n{json}"));
    let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(value["text"], HOSTILE);
}
