//! Accounts against the real server and a real SQLite file: registering, logging in with SASL
//! PLAIN and PASS, restart persistence, refusals, lockout, guests, nick ownership, the account
//! capabilities, the plain-text policy, and the admin CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{connect_from, enable_tls, sasl_plain, Client, TestServer};

/// A server that requires logins, as the defaults do.
async fn strict() -> TestServer {
    TestServer::start_with(|c| c.accounts.require_login = true).await
}

#[tokio::test]
async fn login_is_required_and_explained() {
    let server = strict().await;
    let mut c = server.connect().await;
    c.send("NICK guest").await;
    c.send("USER guest 0 * :Guest").await;
    let lines = c.sync().await;
    assert!(!lines.iter().any(|l| l.contains(" 001 ")), "{lines:?}");
    let notices = lines.join("\n");
    assert!(
        notices.contains("This server requires an account"),
        "{notices}"
    );
    assert!(notices.contains("REGISTER * * <password>"), "{notices}");
    assert!(
        lines.iter().any(|l| l
            == ":parley.local FAIL * ACCOUNT_REQUIRED :This server requires an account; log in or register"),
        "a client can tell the refusal by its code: {lines:?}"
    );
    c.send("JOIN #x").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 451 guest :You have not registered"
    );
}

/// Every line of a `CAP LS 302` reply: a long list goes over several (`CAP * LS * :...`).
async fn cap_ls(c: &mut Client) -> String {
    let mut all = String::new();
    for _ in 0..8 {
        let line = c.recv().await;
        all.push_str(&line);
        all.push('\n');
        if !line.contains(" LS * ") {
            break;
        }
    }
    all
}

/// soju.im/account-required: advertised exactly when logins are required, and never granted.
#[tokio::test]
async fn account_required_is_advertised_when_logins_are_required() {
    let server = strict().await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = cap_ls(&mut c).await;
    assert!(ls.contains("soju.im/account-required"), "{ls}");
    c.send("CAP REQ soju.im/account-required").await;
    let nak = c.recv().await;
    assert!(nak.contains(" NAK "), "{nak}");

    let open = TestServer::start().await;
    let mut c = open.connect().await;
    c.send("CAP LS 302").await;
    let ls = cap_ls(&mut c).await;
    assert!(!ls.contains("account-required"), "{ls}");
}

#[tokio::test]
async fn register_then_restart_then_log_in_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = || {
        let mut config = common::test_config(&dir);
        config.accounts.require_login = true;
        config
    };
    let first = parley_server::start(config()).await.expect("start");
    let mut c = Client::connect(first.plain_addrs()[0]).await;
    c.send("CAP LS 302").await;
    let ls = c.recv().await;
    assert!(
        ls.contains("draft/account-registration=before-connect,custom-account-name"),
        "{ls}"
    );
    assert!(ls.contains("sasl=PLAIN"), "{ls}");
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice").await;
    c.send("REGISTER * * correct-horse").await;
    assert_eq!(
        c.expect(|l| l.contains("REGISTER")).await,
        ":parley.local REGISTER SUCCESS alice :Account created; you are now logged in"
    );
    assert_eq!(
        c.recv().await,
        ":parley.local 900 alice alice!~alice@127.0.0.1 alice :You are now logged in as alice"
    );
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    drop(c);
    if !common::postgres::server_suite_on_postgres() {
        assert!(
            dir.path().join("parley.db").exists(),
            "the database is a real file"
        );
    }

    let second = parley_server::start(config()).await.expect("restart");
    let mut again = Client::connect(second.plain_addrs()[0]).await;
    let welcome = again.login_sasl("alice", "ALICE", "correct-horse").await;
    assert!(welcome[0].contains(" 900 alice "), "{welcome:?}");
    assert_eq!(
        welcome[1],
        ":parley.local 903 alice :SASL authentication successful"
    );
    again.send("WHOIS alice").await;
    let whois = again.sync().await;
    assert!(
        whois.contains(&":parley.local 330 alice alice alice :is logged in as".to_string()),
        "{whois:?}"
    );
    second.shutdown();
}

#[tokio::test]
async fn wrong_passwords_are_refused() {
    let server = strict().await;
    drop(server.register_new("bob", "bob-password").await);

    let mut sasl = server.connect().await;
    sasl.req_sasl().await;
    sasl.send("NICK bob2").await;
    sasl.send("AUTHENTICATE PLAIN").await;
    assert_eq!(sasl.recv().await, "AUTHENTICATE +");
    sasl.send(&format!("AUTHENTICATE {}", sasl_plain("bob", "nope")))
        .await;
    assert_eq!(
        sasl.recv().await,
        ":parley.local 904 bob2 :Invalid account name or password"
    );
    // An unknown account answers exactly the same way.
    sasl.send("AUTHENTICATE PLAIN").await;
    sasl.recv().await;
    sasl.send(&format!("AUTHENTICATE {}", sasl_plain("nobody", "nope")))
        .await;
    assert_eq!(
        sasl.recv().await,
        ":parley.local 904 bob2 :Invalid account name or password"
    );

    let mut pass = server.connect().await;
    pass.send("PASS bob:wrong-password").await;
    pass.send("NICK bobby").await;
    pass.send("USER bob 0 * :Bob").await;
    let lines = pass.sync().await;
    assert!(
        lines.contains(&":parley.local 464 bobby :Invalid account name or password".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains(" 001 ")), "{lines:?}");

    let mut good = server.connect().await;
    good.send("PASS bob:bob-password").await;
    good.send("NICK bob").await;
    good.send("USER bob 0 * :Bob").await;
    good.expect(|l| l.contains(" 900 bob ")).await;
    good.expect_numeric("001").await;
}

#[tokio::test]
async fn sasl_protocol_errors() {
    let server = strict().await;
    let mut c = server.connect().await;
    c.req_sasl().await;
    c.send("AUTHENTICATE SCRAM-MD5").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 908 * PLAIN,SCRAM-SHA-256,IRCV3BEARER :are available SASL mechanisms"
    );
    assert_eq!(
        c.recv().await,
        ":parley.local 904 * :SASL authentication failed"
    );
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    c.send("AUTHENTICATE *").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 906 * :SASL authentication aborted"
    );
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    c.send("AUTHENTICATE not-base64!").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 904 * :SASL authentication failed"
    );
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    for _ in 0..6 {
        c.send(&format!("AUTHENTICATE {}", "A".repeat(400))).await;
    }
    assert_eq!(c.recv().await, ":parley.local 905 * :SASL message too long");

    let mut logged = server.register_new("carol", "carol-password").await;
    logged.send("AUTHENTICATE PLAIN").await;
    assert_eq!(
        logged.recv().await,
        ":parley.local 907 carol :You have already authenticated using SASL"
    );
    logged.send("REGISTER * * another-password").await;
    assert_eq!(
        logged.recv().await,
        ":parley.local FAIL REGISTER ALREADY_AUTHENTICATED carol :You are already logged in"
    );
}

#[tokio::test]
async fn register_refusals_use_standard_replies() {
    let server = strict().await;
    drop(server.register_new("dave", "dave-password").await);
    let mut c = server.connect().await;
    c.send("REGISTER * * whatever-password").await;
    assert_eq!(
        c.recv().await,
        ":parley.local FAIL REGISTER NEED_NICK * :Send NICK first, or name the account"
    );
    c.send("NICK DAVE").await;
    c.send("REGISTER * * other-password").await;
    assert_eq!(
        c.recv().await,
        ":parley.local FAIL REGISTER ACCOUNT_EXISTS DAVE :The account name `DAVE` is already taken"
    );
    c.send("REGISTER erin * short").await;
    let weak = c.recv().await;
    assert!(
        weak.starts_with(":parley.local FAIL REGISTER WEAK_PASSWORD erin :"),
        "{weak}"
    );
    c.send("REGISTER 9lives * long-enough-password").await;
    let bad = c.recv().await;
    assert!(
        bad.starts_with(":parley.local FAIL REGISTER BAD_ACCOUNT_NAME 9lives :"),
        "{bad}"
    );
    c.send("REGISTER erin").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 461 DAVE REGISTER :Not enough parameters"
    );
}

#[tokio::test]
async fn closed_registration_is_refused_and_not_advertised() {
    let server = TestServer::start_with(|c| {
        c.accounts.require_login = true;
        c.accounts.registration = parley_server::config::RegistrationPolicy::Closed;
    })
    .await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = c.recv().await;
    assert!(!ls.contains("account-registration"), "{ls}");
    c.send("NICK frank").await;
    c.send("REGISTER * * frank-password").await;
    let fail = c.recv().await;
    assert!(
        fail.starts_with(":parley.local FAIL REGISTER DISALLOWED frank :Registration is closed"),
        "{fail}"
    );
}

#[tokio::test]
async fn two_clients_racing_for_one_name_one_wins() {
    let server = strict().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.send("NICK racer_a").await;
    b.send("NICK racer_b").await;
    a.sync().await;
    b.sync().await;
    a.send("REGISTER racer * racer-password-a").await;
    b.send("REGISTER racer * racer-password-b").await;
    let ra = a.expect(|l| l.contains("REGISTER")).await;
    let rb = b.expect(|l| l.contains("REGISTER")).await;
    let wins = [&ra, &rb]
        .iter()
        .filter(|l| l.contains("REGISTER SUCCESS racer"))
        .count();
    let losses = [&ra, &rb]
        .iter()
        .filter(|l| l.contains("FAIL REGISTER ACCOUNT_EXISTS racer"))
        .count();
    assert_eq!((wins, losses), (1, 1), "{ra} / {rb}");
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let server = TestServer::start_with(|c| {
        c.accounts.require_login = true;
        c.accounts.max_failures = 2;
    })
    .await;
    drop(server.register_new("gina", "gina-password").await);
    let mut c = server.connect().await;
    c.req_sasl().await;
    c.send("NICK gina_").await;
    for _ in 0..2 {
        c.send("AUTHENTICATE PLAIN").await;
        c.recv().await;
        c.send(&format!("AUTHENTICATE {}", sasl_plain("gina", "guess")))
            .await;
        assert_eq!(
            c.recv().await,
            ":parley.local 904 gina_ :Invalid account name or password"
        );
    }
    // Now even the right password is refused until the lockout ends.
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    c.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain("gina", "gina-password")
    ))
    .await;
    let locked = c.recv().await;
    assert!(
        locked.starts_with(":parley.local 904 gina_ :Too many failed logins; try again in "),
        "{locked}"
    );
}

#[tokio::test]
async fn guests_chat_but_cannot_take_an_account_nick() {
    let server = TestServer::start().await; // require_login = false in tests
    let mut owner = server.register_new("henry", "henry-password").await;
    owner.send("QUIT").await;
    owner.expect_closed().await;
    let mut guest = server.connect().await;
    guest.send("NICK Henry").await;
    guest.send("USER g 0 * :Guest").await;
    assert_eq!(
        guest.expect_numeric("433").await,
        ":parley.local 433 Henry Henry :Nickname is reserved by a registered account; log in as it or choose another nick"
    );
    guest.send("NICK visitor").await;
    guest.expect_numeric("001").await;
    guest.sync().await;
    guest.send("NICK henry").await;
    guest.expect_numeric("433").await;
    guest.send("PRIVMSG #lobby :guests may chat").await;
    let lines = guest.sync().await;
    assert!(lines.is_empty(), "{lines:?}");

    // The owner logs in and gets the nick.
    let mut back = server.connect().await;
    let welcome = back.login_sasl("henry", "henry", "henry-password").await;
    assert!(
        welcome.iter().any(|l| l.contains(" 001 henry ")),
        "{welcome:?}"
    );
}

#[tokio::test]
async fn account_capabilities_show_who_is_who() {
    let server = TestServer::start().await;
    let mut watcher = server.connect().await;
    watcher.nick = "watcher".into();
    watcher.send("CAP LS 302").await;
    watcher.recv().await;
    watcher.send("NICK watcher").await;
    watcher.send("USER w 0 * :Watcher").await;
    watcher
        .send("CAP REQ :account-tag extended-join account-notify")
        .await;
    watcher.expect(|l| l.contains(" ACK ")).await;
    watcher.send("CAP END").await;
    watcher.expect_numeric("001").await;
    watcher.sync().await;

    let mut ivy = server.connect().await;
    ivy.nick = "ivy".into();
    ivy.send("CAP LS 302").await;
    ivy.send("NICK ivy").await;
    ivy.send("USER ivy 0 * :Ivy Real").await;
    ivy.send("REGISTER * * ivy-password").await;
    ivy.expect(|l| l.contains("REGISTER SUCCESS")).await;
    ivy.send("CAP END").await;
    ivy.expect_numeric("001").await;
    ivy.sync().await;
    let seen = watcher.sync().await;
    assert!(
        seen.contains(&"@account=ivy :ivy!~ivy@127.0.0.1 JOIN #lobby ivy :Ivy Real".to_string()),
        "{seen:?}"
    );
    ivy.send("PRIVMSG #lobby :tagged").await;
    ivy.sync().await;
    watcher
        .expect(|l| l == "@account=ivy :ivy!~ivy@127.0.0.1 PRIVMSG #lobby :tagged")
        .await;

    // A guest who logs in later is announced with ACCOUNT.
    let mut jay = server.client("jay").await;
    watcher.sync().await;
    jay.send("REGISTER * * jay-password").await;
    jay.expect(|l| l.contains("REGISTER SUCCESS jay")).await;
    jay.sync().await;
    watcher
        .expect(|l| {
            l == "@account=jay :jay!~jay@127.0.0.1 ACCOUNT jay"
                || l == ":jay!~jay@127.0.0.1 ACCOUNT jay"
        })
        .await;
    // A client without the caps gets the plain forms.
    let mut plain = server.client("plainview").await;
    ivy.send("PRIVMSG #lobby :untagged for some").await;
    ivy.sync().await;
    plain
        .expect(|l| l == ":ivy!~ivy@127.0.0.1 PRIVMSG #lobby :untagged for some")
        .await;
}

#[tokio::test]
async fn plaintext_passwords_from_elsewhere_are_refused() {
    // Only 127.0.0.1 counts as "this machine" here, so 127.0.0.2 plays a remote client.
    let server = TestServer::start_with(|c| {
        enable_tls(c);
        c.accounts.require_login = true;
        c.accounts.plaintext_login_from = vec!["127.0.0.1/32".into()];
    })
    .await;
    drop(server.register_new("kim", "kim-password").await);
    let remote: std::net::IpAddr = "127.0.0.2".parse().expect("address");

    let mut c = connect_from(server.addr, remote).await;
    c.req_sasl().await;
    c.send("PASS kim:kim-password").await;
    let refusal = c.recv().await;
    assert!(
        refusal.contains("NOTICE * :Passwords are not accepted over an unencrypted connection"),
        "{refusal}"
    );
    assert_eq!(c.recv().await, ":parley.local 464 * :Password refused");
    c.send("AUTHENTICATE PLAIN").await;
    c.recv().await;
    c.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain("kim", "kim-password")
    ))
    .await;
    assert!(c.recv().await.contains("Passwords are not accepted"));
    assert_eq!(
        c.recv().await,
        ":parley.local 904 * :SASL authentication failed"
    );
    c.send("NICK newbie").await;
    c.send("REGISTER * * newbie-password").await;
    let fail = c.recv().await;
    assert!(
        fail.starts_with(
            ":parley.local FAIL REGISTER DISALLOWED newbie :Passwords are not accepted"
        ),
        "{fail}"
    );

    // The same login over TLS from the same address works.
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.bind(std::net::SocketAddr::new(remote, 0))
        .expect("bind");
    let tcp = tcp.connect(server.tls_addr()).await.expect("connect");
    let config = common::client_config_trusting(&server.generated_cert_pem());
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    let mut secure = Client::over(Box::new(tls));
    let welcome = secure.login_sasl("kim", "kim", "kim-password").await;
    assert!(
        welcome.iter().any(|l| l.contains(" 001 kim ")),
        "{welcome:?}"
    );
}

#[tokio::test]
async fn admin_cli_adds_imports_and_locks_accounts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, out, err) = common::admin_cli(
        dir.path(),
        &["users", "add", "Mallory", "--password-stdin"],
        "mallory-password\n",
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let file = dir.path().join("users.txt");
    std::fs::write(
        &file,
        "# team\nnina:nina-password\noscar,oscar-password\nbroken line\nmallory:again-password\nnina:dup-password\npat:short\n",
    )
    .expect("write users file");
    let (ok, out, err) = common::admin_cli(
        dir.path(),
        &["users", "import", file.to_str().expect("utf-8")],
        "",
    )
    .await;
    assert!(!ok, "bad lines make the import fail: {out}\n{err}");
    let report = format!("{out}\n{err}");
    assert!(report.contains("users.txt:4"), "{report}");
    assert!(report.contains("users.txt:7"), "{report}");
    assert!(report.contains("added 2"), "{report}");
    let (ok, out, _) = common::admin_cli(dir.path(), &["users", "list"], "").await;
    assert!(ok);
    for name in ["Mallory", "nina", "oscar"] {
        assert!(out.contains(name), "{out}");
    }
    assert!(!out.contains("pat"), "{out}");
    let (ok, _, err) = common::admin_cli(dir.path(), &["users", "lock", "oscar"], "").await;
    assert!(ok, "{err}");

    let mut config = common::test_config(&dir);
    config.accounts.require_login = true;
    let running = parley_server::start(config).await.expect("start");
    let addr = running.plain_addrs()[0];
    let mut nina = Client::connect(addr).await;
    let welcome = nina.login_sasl("nina", "nina", "nina-password").await;
    assert!(
        welcome.iter().any(|l| l.contains(" 001 nina ")),
        "{welcome:?}"
    );
    let mut oscar = Client::connect(addr).await;
    oscar.req_sasl().await;
    oscar.send("AUTHENTICATE PLAIN").await;
    oscar.recv().await;
    oscar
        .send(&format!(
            "AUTHENTICATE {}",
            sasl_plain("oscar", "oscar-password")
        ))
        .await;
    let refused = oscar.recv().await;
    assert!(
        refused.starts_with(":parley.local 904 * :This account is disabled"),
        "{refused}"
    );
    running.shutdown();
}

/// `parleyd users add NAME --admin` makes a server admin without an `[operators]` entry: it is
/// an operator from its login (381, +o) and may /broadcast; other accounts get 481 and 491.
/// `users admin NAME on|off` changes it, for the next login or OPER. Done while the server
/// runs, as a new install would.
#[tokio::test]
async fn an_admin_made_by_the_cli_is_an_operator_without_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = parley_server::start(common::test_config(&dir))
        .await
        .expect("start");
    let addr = running.plain_addrs()[0];
    let (ok, out, err) = common::admin_cli(
        dir.path(),
        &["users", "add", "boss", "--admin", "--password-stdin"],
        "boss-password\n",
    )
    .await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("added account boss, a server admin"), "{out}");
    let (ok, out, err) = common::admin_cli(
        dir.path(),
        &["users", "add", "pleb", "--password-stdin"],
        "pleb-password\n",
    )
    .await;
    assert!(ok, "{out}\n{err}");

    let mut listener = Client::connect(addr).await;
    listener.register("listener").await;
    let mut boss = Client::connect(addr).await;
    let welcome = boss.login_sasl("boss", "boss", "boss-password").await;
    assert!(
        welcome
            .iter()
            .any(|l| l == ":parley.local 381 boss :You are now an IRC operator (admin)"),
        "{welcome:?}"
    );
    assert!(
        welcome.iter().any(|l| l.ends_with(" MODE boss :+ow")),
        "{welcome:?}"
    );
    boss.send("PRIVMSG $* :maintenance at noon").await;
    let sent = boss.sync().await;
    assert!(!sent.iter().any(|l| l.contains(" 481 ")), "{sent:?}");
    listener
        .expect(|l| l == ":boss!~boss@127.0.0.1 PRIVMSG $* :maintenance at noon")
        .await;

    let mut pleb = Client::connect(addr).await;
    let welcome = pleb.login_sasl("pleb", "pleb", "pleb-password").await;
    assert!(!welcome.iter().any(|l| l.contains(" 381 ")), "{welcome:?}");
    pleb.send("PRIVMSG $* :me too").await;
    assert_eq!(
        pleb.sync().await,
        vec![
            ":parley.local 481 pleb :Permission Denied - only server operators may message everyone"
                .to_string()
        ]
    );
    pleb.send("OPER").await;
    assert_eq!(
        pleb.sync().await,
        vec![":parley.local 491 pleb :Your account is not a server operator".to_string()]
    );

    // Switched by the CLI: pleb becomes one at OPER; boss is one no more at the next login.
    let (ok, out, err) = common::admin_cli(dir.path(), &["users", "admin", "pleb", "on"], "").await;
    assert!(ok, "{out}\n{err}");
    pleb.send("OPER").await;
    let oper = pleb.sync().await;
    assert!(
        oper.iter()
            .any(|l| l == ":parley.local 381 pleb :You are now an IRC operator (admin)"),
        "{oper:?}"
    );
    let (ok, out, err) =
        common::admin_cli(dir.path(), &["users", "admin", "boss", "off"], "").await;
    assert!(ok, "{out}\n{err}");
    boss.send("QUIT").await;
    boss.expect_closed().await;
    let mut boss = Client::connect(addr).await;
    let welcome = boss.login_sasl("boss", "boss", "boss-password").await;
    assert!(!welcome.iter().any(|l| l.contains(" 381 ")), "{welcome:?}");
    let (ok, out, _) = common::admin_cli(dir.path(), &["users", "list"], "").await;
    assert!(ok);
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .split_whitespace()
            .last()
            .map(str::to_owned)
    };
    assert_eq!(row("boss").as_deref(), Some("no"), "{out}");
    assert_eq!(row("pleb").as_deref(), Some("yes"), "{out}");
    running.shutdown();
}

// draft/account-registration: "ACCOUNT_EXISTS: the account name is already registered", sent as
// `FAIL REGISTER ACCOUNT_EXISTS <account> :<message>`, whether or not NICK came first.
#[tokio::test]
async fn register_before_nick_naming_an_existing_account_is_account_exists() {
    let server = strict().await;
    server.create_account("frank", "frank-password").await;
    let mut c = server.connect().await;
    c.send("REGISTER frank * another-password").await;
    assert_eq!(
        c.recv().await,
        ":parley.local FAIL REGISTER ACCOUNT_EXISTS frank :The account name `frank` is already taken"
    );
    // The connection is still usable: a new name registers.
    c.send("REGISTER frankie * another-password").await;
    c.expect(|l| l.contains("REGISTER SUCCESS frankie")).await;
}

// account-tag: "the server MUST add this tag to ... messages sent by a user who is logged in",
// INVITE included, for recipients that enabled `account-tag`.
#[tokio::test]
async fn invite_carries_the_inviters_account_tag() {
    let server = strict().await;
    let mut alice = common::account(server.addr, "alice").await;
    let mut bob = common::account(server.addr, "bob").await;
    bob.send("CAP REQ account-tag").await;
    bob.expect(|l| l.contains(" ACK ")).await;
    alice.send("JOIN #tagged").await;
    alice.expect(|l| l.contains(" 366 ")).await;
    alice.send("INVITE bob #tagged").await;
    alice.expect_numeric("341").await;
    assert_eq!(
        bob.recv().await,
        "@account=alice :alice!~alice@127.0.0.1 INVITE bob #tagged"
    );
}

// sasl-3.1: "If the client completes registration (with CAP END, NICK, USER and any other
// necessary messages) while the SASL authentication attempt is in progress, the server SHOULD
// abort it and send a 906 numeric, then register the client without authentication."
#[tokio::test]
async fn cap_end_during_sasl_aborts_it_and_registers_a_guest() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.nick = "gina".into();
    c.send("CAP LS 302").await;
    c.expect(|l| l.contains(" CAP * LS ")).await;
    c.send("CAP REQ sasl").await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send("NICK gina").await;
    c.send("USER gina 0 * :Gina").await;
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    c.send("CAP END").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 906 gina :SASL authentication aborted"
    );
    c.expect_numeric("001").await;
    c.send("WHOIS gina").await;
    let lines = c.sync().await;
    assert!(!lines.iter().any(|l| l.contains(" 330 ")), "{lines:?}");
}

// sasl-3.1, ERR_SASLTOOLONG: "Sent when the SASL message is too long". One attempt gets one 905;
// the rest of its 400-byte chunks are ignored until the last (shorter) one, and `AUTHENTICATE *`
// aborts: "the server MUST abort the exchange and send a 906".
#[tokio::test]
async fn an_endless_sasl_payload_gets_one_905() {
    let server = strict().await;
    server.create_account("hank", "hank-password").await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    c.send("CAP REQ sasl").await;
    c.expect(|l| l.contains(" ACK ")).await;
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    for _ in 0..20 {
        c.send(&format!("AUTHENTICATE {}", "A".repeat(400))).await;
    }
    c.send("AUTHENTICATE AAAA").await;
    let lines = c.sync().await;
    assert_eq!(
        lines,
        [":parley.local 905 * :SASL message too long"],
        "one 905, the rest ignored"
    );
    // Starting over works once the overlong message ended.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    for _ in 0..8 {
        c.send(&format!("AUTHENTICATE {}", "A".repeat(400))).await;
    }
    assert_eq!(c.recv().await, ":parley.local 905 * :SASL message too long");
    c.send("AUTHENTICATE *").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 906 * :SASL authentication aborted"
    );
    // A client may also start over without ending the overlong message: a mechanism name is
    // never the last chunk of a base64 payload.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    for _ in 0..8 {
        c.send(&format!("AUTHENTICATE {}", "A".repeat(400))).await;
    }
    assert_eq!(c.recv().await, ":parley.local 905 * :SASL message too long");
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    c.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain("hank", "hank-password")
    ))
    .await;
    c.expect_numeric("903").await;
}

// sasl-3.1 again, for a client that does not hold registration with CAP: its NICK and USER
// complete registration, so the exchange it left waiting is aborted (906) rather than holding
// the connection until the registration timeout.
#[tokio::test]
async fn nick_and_user_during_sasl_abort_it_and_register_a_guest() {
    let server = TestServer::start().await;
    let mut c = server.connect().await;
    c.req_sasl().await;
    c.nick = "ida".into();
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.recv().await, "AUTHENTICATE +");
    c.send("NICK ida").await;
    c.send("USER ida 0 * :Ida").await;
    assert_eq!(
        c.recv().await,
        ":parley.local 906 ida :SASL authentication aborted"
    );
    c.expect_numeric("001").await;
}
