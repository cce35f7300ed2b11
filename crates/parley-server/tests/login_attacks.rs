//! Attacks on logins against the real server (issue 21): a parallel burst of PLAIN or PASS guesses
//! against the lockout, a suspended account as a password oracle, a squatter on an account's
//! nick, and secrets from a PASS line in the log. And the lockout's fairness (issue 22): one
//! user's typos on this machine lock nobody else out, and `parleyd users unlock` ends a lockout
//! in the running server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::{
    command_of, free_port, sasl_plain, wait_listening, write_binary_config, Client, TestServer,
};

const MAX_FAILURES: u32 = 5;
/// Connections in a burst, all from 127.0.0.1: well past `MAX_FAILURES`.
const BURST: usize = 30;
const LOCKED: &str = "Too many failed logins; try again in ";
const INVALID: &str = "Invalid account name or password";

async fn lockout_server() -> TestServer {
    TestServer::start_with(|c| {
        c.accounts.require_login = true;
        c.accounts.max_failures = MAX_FAILURES;
    })
    .await
}

/// Send `lines` after a PING in one write, and wait for the PONG. The server answers the PING
/// only once it has handled every line of that read, so on return the login those lines started
/// has been counted, or is waiting on the hash.
async fn send_then_pong(c: &mut Client, token: &str, lines: &str) {
    c.send_raw(format!("PING {token}\r\n{lines}").as_bytes())
        .await;
    c.expect(|l| l.contains(" PONG ") && l.ends_with(token))
        .await;
}

/// The first numeric reply with one of `codes` (as `904`), the reply a login came to.
async fn outcome(c: &mut Client, codes: &[&str]) -> String {
    c.expect(|l| codes.contains(&command_of(l))).await
}

/// At most MAX_FAILURES guesses of a burst are checked; all later ones, and the right password
/// sent last, are refused as locked.
fn assert_burst_held(wrong: &[String], right: &str) {
    let checked = wrong.iter().filter(|l| l.ends_with(INVALID)).count();
    let locked = wrong.iter().filter(|l| l.contains(LOCKED)).count();
    assert!(
        checked <= MAX_FAILURES as usize,
        "{checked} wrong guesses of one burst were checked (max_failures = {MAX_FAILURES}): {wrong:#?}"
    );
    assert_eq!(checked + locked, wrong.len(), "{wrong:#?}");
    assert!(
        right.contains(LOCKED),
        "the right password after the burst must be refused as locked, got {right}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_plain_burst_gets_at_most_max_failures_guesses() {
    let server = lockout_server().await;
    server.create_account("ivy", "ivy-password").await;
    let mut clients = Vec::new();
    for i in 0..BURST {
        let mut c = server.connect().await;
        c.req_sasl().await;
        c.nick = format!("b{i}");
        c.send(&format!("NICK b{i}")).await;
        c.send("AUTHENTICATE PLAIN").await;
        assert_eq!(c.recv().await, "AUTHENTICATE +");
        clients.push(c);
    }
    let (wrong, right) = clients.split_at_mut(BURST - 1);
    // Every wrong guess is in before the right one is sent, and none has been answered yet: the
    // right one arrives while all of them are in flight.
    for (i, c) in wrong.iter_mut().enumerate() {
        let payload = sasl_plain("ivy", &format!("guess-{i}"));
        send_then_pong(
            c,
            &format!("burst{i}"),
            &format!("AUTHENTICATE {payload}\r\n"),
        )
        .await;
    }
    let right = &mut right[0];
    right
        .send(&format!(
            "AUTHENTICATE {}",
            sasl_plain("ivy", "ivy-password")
        ))
        .await;
    let mut answers = Vec::new();
    for c in wrong.iter_mut() {
        answers.push(outcome(c, &["904", "903"]).await);
    }
    let answer = outcome(right, &["904", "903", "900"]).await;
    assert_burst_held(&answers, &answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_pass_burst_gets_at_most_max_failures_guesses() {
    let server = lockout_server().await;
    server.create_account("jade", "jade-password").await;
    let mut clients = Vec::new();
    for i in 0..BURST {
        let mut c = server.connect().await;
        c.nick = format!("p{i}");
        clients.push(c);
    }
    let (wrong, right) = clients.split_at_mut(BURST - 1);
    for (i, c) in wrong.iter_mut().enumerate() {
        let lines = format!("PASS jade:guess-{i}\r\nNICK p{i}\r\nUSER p 0 * :p\r\n");
        send_then_pong(c, &format!("pass{i}"), &lines).await;
    }
    let right = &mut right[0];
    right
        .send_raw(b"PASS jade:jade-password\r\nNICK p29\r\nUSER p 0 * :p\r\n")
        .await;
    let mut answers = Vec::new();
    for c in wrong.iter_mut() {
        answers.push(outcome(c, &["464", "900"]).await);
    }
    let answer = outcome(right, &["464", "900"]).await;
    assert_burst_held(&answers, &answer);
}

/// Many right passwords at once from one address (a bouncer reconnecting its users) are all
/// accepted: a success gives its place back, however many log in together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_right_logins_from_one_address_all_succeed() {
    let server = lockout_server().await;
    server.create_account("kit", "kit-password").await;
    let mut clients = Vec::new();
    for i in 0..3 * MAX_FAILURES as usize {
        let mut c = server.connect().await;
        c.req_sasl().await;
        c.nick = format!("k{i}");
        c.send(&format!("NICK k{i}")).await;
        c.send("AUTHENTICATE PLAIN").await;
        assert_eq!(c.recv().await, "AUTHENTICATE +");
        clients.push(c);
    }
    let payload = sasl_plain("kit", "kit-password");
    for c in clients.iter_mut() {
        c.send(&format!("AUTHENTICATE {payload}")).await;
    }
    for c in clients.iter_mut() {
        let answer = outcome(c, &["904", "903"]).await;
        assert!(answer.contains(" 903 "), "{answer}");
    }
    // And one after another, many more times than max_failures: nothing was left counted.
    for i in 0..2 * MAX_FAILURES {
        let answer = sasl_answer(server.addr, "kit", "kit-password").await;
        assert!(answer.contains(" 903 "), "login {i}: {answer}");
    }
}

/// Run the admin CLI, which must succeed.
async fn parleyd_cli(dir: &std::path::Path, args: &[&str], stdin: &str) {
    let (ok, _, err) = common::admin_cli(dir, args, stdin).await;
    assert!(ok, "parleyd {args:?}: {err}");
}

/// One SASL PLAIN attempt on a fresh connection; the reply, without the server prefix.
async fn sasl_answer(addr: std::net::SocketAddr, account: &str, password: &str) -> String {
    let mut c = Client::connect(addr).await;
    c.req_sasl().await;
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    c.send(&format!("AUTHENTICATE {}", sasl_plain(account, password)))
        .await;
    outcome(&mut c, &["904", "903"]).await
}

/// One PASS attempt on a fresh connection; the reply.
async fn pass_answer(addr: std::net::SocketAddr, account: &str, password: &str) -> String {
    let mut c = Client::connect(addr).await;
    c.send(&format!("PASS {account}:{password}")).await;
    c.send("NICK probe").await;
    c.send("USER probe 0 * :probe").await;
    outcome(&mut c, &["464", "900"]).await
}

#[tokio::test]
async fn suspended_account_answers_the_same_for_any_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    parleyd_cli(
        dir.path(),
        &["users", "add", "lena", "--password-stdin"],
        "lena-password\n",
    )
    .await;
    parleyd_cli(dir.path(), &["users", "lock", "lena"], "").await;
    let mut config = common::test_config(&dir);
    config.accounts.require_login = true;
    config.accounts.max_failures = 10;
    let running = parley_server::start(config).await.expect("start");
    let addr = running.plain_addrs()[0];

    let right = sasl_answer(addr, "lena", "lena-password").await;
    let wrong = sasl_answer(addr, "lena", "not-her-password").await;
    assert_eq!(right, wrong, "SASL: the answer must not tell the password");
    assert!(right.contains("This account is disabled"), "{right}");

    let right = pass_answer(addr, "lena", "lena-password").await;
    let wrong = pass_answer(addr, "lena", "not-her-password").await;
    assert_eq!(right, wrong, "PASS: the answer must not tell the password");
    assert!(right.contains("This account is disabled"), "{right}");
    running.shutdown();
}

#[tokio::test]
async fn owner_takes_its_nick_from_an_unregistered_squatter() {
    let server = TestServer::start().await; // guests allowed
    server.create_account("nina", "nina-password").await;
    let mut squatter = server.connect().await;
    squatter.nick = "squatter".into();
    squatter.send("NICK nina").await;
    squatter.sync().await;

    // A SASL client asking for its own nick first, as clients do.
    let mut owner = server.connect().await;
    owner.nick = "nina".into();
    owner.send("CAP LS 302").await;
    owner.send("NICK nina").await;
    owner.send("USER nina 0 * :Nina").await;
    owner.send("CAP REQ :sasl").await;
    // Before the login the squatter holds the nick, and the owner is told so.
    let taken = owner.expect_numeric("433").await;
    assert!(taken.contains(" 433 * nina "), "{taken}");
    owner
        .expect(|l| l.contains(" CAP ") && l.contains(" ACK "))
        .await;
    owner.send("AUTHENTICATE PLAIN").await;
    owner.expect(|l| l == "AUTHENTICATE +").await;
    owner
        .send(&format!(
            "AUTHENTICATE {}",
            sasl_plain("nina", "nina-password")
        ))
        .await;
    outcome(&mut owner, &["903", "904"]).await;
    owner.send("CAP END").await;
    let welcome = owner.expect_numeric("001").await;
    assert!(welcome.contains(" 001 nina "), "{welcome}");
    owner.sync().await;

    // The squatter was told, and cannot register as nina any more.
    let told = squatter.expect_numeric("433").await;
    assert!(told.contains(" nina "), "{told}");
    squatter.send("USER s 0 * :s").await;
    let lines = squatter.sync().await;
    assert!(!lines.iter().any(|l| l.contains(" 001 ")), "{lines:?}");
    squatter.send("NICK sam").await;
    squatter.expect_numeric("001").await;
}

#[tokio::test]
async fn logged_in_owner_takes_its_nick_with_nick() {
    let server = TestServer::start().await;
    server.create_account("olga", "olga-password").await;
    let mut squatter = server.connect().await;
    squatter.nick = "squatter".into();
    squatter.send("NICK olga").await;
    squatter.sync().await;

    let mut owner = server.connect().await;
    let welcome = owner.login_sasl("olga_", "olga", "olga-password").await;
    assert!(
        welcome.iter().any(|l| l.contains(" 001 olga_ ")),
        "{welcome:?}"
    );
    owner.send("NICK olga").await;
    let renamed = owner.expect(|l| l.contains(" NICK ")).await;
    assert!(
        renamed.starts_with(":olga_!") && renamed.ends_with("NICK :olga"),
        "{renamed}"
    );
    squatter.expect_numeric("433").await;

    // A registered guest cannot take it, and a registered user keeps its own nick.
    let mut guest = server.client("guest").await;
    guest.send("NICK olga").await;
    guest.expect_numeric("433").await;
    owner.send("NICK olga_").await;
    owner.expect(|l| l.contains(" NICK ")).await;
}

#[tokio::test]
async fn pass_and_sasl_secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    parleyd_cli(
        dir.path(),
        &["users", "add", "pia", "--password-stdin"],
        "pia-password\n",
    )
    .await;
    let port = free_port();
    let config = write_binary_config(dir.path(), port);
    let log_path = dir.path().join("parleyd.log");
    let log = std::fs::File::create(&log_path).expect("create the log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "trace")
        .env("PARLEY_ACCOUNTS__MAX_FAILURES", "3")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start parleyd");
    wait_listening(port).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // A password with a colon in it, sent the way many clients send a server password: the part
    // before the colon is taken as an account name, but it is half the password.
    let mut c = Client::connect(addr).await;
    c.send("PASS Sup3rS3cret:Tail99").await;
    c.send("NICK pia").await;
    c.send("USER pia 0 * :pia").await;
    outcome(&mut c, &["464", "900"]).await;
    // The same with a nick that is no account, and through SASL PLAIN with the password typed
    // into the name.
    let mut c = Client::connect(addr).await;
    c.send("PASS Hidd3nHalf:0therHalf").await;
    c.send("NICK visitor").await;
    c.send("USER v 0 * :v").await;
    outcome(&mut c, &["464", "900"]).await;
    let answer = sasl_answer(addr, "Pl41nS3cret", "Pl41nTail").await;
    assert!(answer.contains(" 904 "), "{answer}");
    // The name is locked out after three (max_failures = 3): refusals are logged too.
    for _ in 0..4 {
        sasl_answer(addr, "L0ck0utS3cret", "whatever-1").await;
    }
    child.start_kill().expect("stop parleyd");
    child.wait().await.expect("reap parleyd");

    let log = std::fs::read_to_string(&log_path).expect("read the log");
    assert!(
        log.contains("login failed"),
        "the log is being written: {log}"
    );
    for secret in [
        "Sup3rS3cret",
        "Tail99",
        "Hidd3nHalf",
        "0therHalf",
        "Pl41nS3cret",
        "Pl41nTail",
        "L0ck0utS3cret",
        "whatever-1",
    ] {
        assert!(!log.contains(secret), "`{secret}` is in the log:\n{log}");
    }
}

/// A server whose address lock would trip at two names: every test below would lock 127.0.0.1
/// if loopback were locked as an address.
async fn fairness_server() -> TestServer {
    TestServer::start_with(|c| {
        c.accounts.require_login = true;
        c.accounts.max_failures = 3;
        c.accounts.address_max_accounts = 2;
    })
    .await
}

/// One user's typos past the account's limit, and failures naming other accounts too, all from
/// 127.0.0.1: only the accounts are locked out, so another user on this machine logs in, with
/// SASL PLAIN and with PASS.
#[tokio::test]
async fn one_users_typos_on_this_machine_leave_the_others_in() {
    let server = fairness_server().await;
    server.create_account("ann", "ann-password").await;
    server.create_account("ben", "ben-password").await;
    for i in 0..3 {
        let answer = if i % 2 == 0 {
            sasl_answer(server.addr, "ann", &format!("ann-typo-{i}")).await
        } else {
            pass_answer(server.addr, "ann", &format!("ann-typo-{i}")).await
        };
        assert!(answer.ends_with(INVALID), "typo {i}: {answer}");
    }
    let answer = sasl_answer(server.addr, "ann", "ann-password").await;
    assert!(answer.contains(LOCKED), "ann is locked out: {answer}");
    for name in ["xavier", "yolanda", "zed"] {
        let answer = sasl_answer(server.addr, name, "a-guess-a-guess").await;
        assert!(answer.ends_with(INVALID), "{name}: {answer}");
    }

    let answer = pass_answer(server.addr, "ann", "ann-password").await;
    assert!(answer.contains(LOCKED), "ann is still locked out: {answer}");
    let answer = sasl_answer(server.addr, "ben", "ben-password").await;
    assert!(
        answer.contains(" 903 "),
        "SASL PLAIN from 127.0.0.1: {answer}"
    );
    // Last: a PASS login that succeeds keeps pass_answer's nick.
    let answer = pass_answer(server.addr, "ben", "ben-password").await;
    assert!(answer.contains(" 900 "), "PASS from 127.0.0.1: {answer}");
}

/// `parleyd users unlock NAME`, run while the server runs, ends a lockout after failed logins
/// (and a disable) at once; a lockout that begins after it holds as before.
#[tokio::test]
async fn users_unlock_lifts_the_lockout_in_the_running_server() {
    let server = fairness_server().await;
    server.create_account("cleo", "cleo-password").await;
    let dir = server.dir.path();
    for i in 0..3 {
        let answer = sasl_answer(server.addr, "cleo", &format!("cleo-typo-{i}")).await;
        assert!(answer.ends_with(INVALID), "{answer}");
    }
    for answer in [
        sasl_answer(server.addr, "cleo", "cleo-password").await,
        pass_answer(server.addr, "cleo", "cleo-password").await,
    ] {
        assert!(answer.contains(LOCKED), "locked out: {answer}");
    }

    let (ok, out, err) = common::admin_cli(dir, &["users", "unlock", "cleo"], "").await;
    assert!(ok, "parleyd users unlock: {err}");
    assert!(
        out.contains(
            "unlocked cleo: the account was not disabled; any lockout after failed logins is \
             lifted, so the running server lets cleo log in again"
        ),
        "{out}"
    );
    let answer = sasl_answer(server.addr, "cleo", "cleo-password").await;
    assert!(answer.contains(" 903 "), "right after the unlock: {answer}");

    // Disabled and locked out at once: one unlock ends both.
    parleyd_cli(dir, &["users", "lock", "cleo"], "").await;
    for i in 0..3 {
        sasl_answer(server.addr, "cleo", &format!("cleo-typo-{i}")).await;
    }
    let answer = pass_answer(server.addr, "cleo", "cleo-password").await;
    assert!(answer.contains(LOCKED), "locked out again: {answer}");
    let (ok, out, err) = common::admin_cli(dir, &["users", "unlock", "CLEO"], "").await;
    assert!(ok, "parleyd users unlock: {err}");
    assert!(
        out.contains(
            "unlocked cleo: the account was disabled (`parleyd users lock`) and is enabled again"
        ),
        "{out}"
    );
    let answer = pass_answer(server.addr, "cleo", "cleo-password").await;
    assert!(
        answer.contains(" 900 "),
        "PASS right after the unlock: {answer}"
    );
}

/// `parleyd users unlock --address`: the real binary records the address (an IPv6 address as its
/// /64), says that loopback is never locked, and wants a name or an address. That the running
/// server honours the stamp is tested in `accounts.rs`: a test cannot connect from elsewhere.
#[tokio::test]
async fn users_unlock_address_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, out, err) = common::admin_cli(
        dir.path(),
        &["users", "unlock", "--address", "2001:db8:7:8::42"],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let out = common::after_data_dir_line(&out, dir.path());
    assert!(
        out.starts_with(
            "unlocked 2001:db8:7:8::/64 (an IPv6 address is locked out with its whole /64)"
        ),
        "{out}"
    );
    let (ok, out, err) = common::admin_cli(
        dir.path(),
        &["users", "unlock", "--address", "203.0.113.5"],
        "",
    )
    .await;
    assert!(ok, "{err}");
    let out = common::after_data_dir_line(&out, dir.path());
    assert!(out.starts_with("unlocked 203.0.113.5: "), "{out}");
    let (ok, out, err) = common::admin_cli(
        dir.path(),
        &["users", "unlock", "--address", "127.0.0.1"],
        "",
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("never locked out as an address"), "{out}");
    let (ok, _, err) = common::admin_cli(dir.path(), &["users", "unlock"], "").await;
    assert!(
        !ok && err.contains("required arguments were not provided"),
        "{err}"
    );
    let (ok, _, err) = common::admin_cli(
        dir.path(),
        &["users", "unlock", "cleo", "--address", "203.0.113.5"],
        "",
    )
    .await;
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}
