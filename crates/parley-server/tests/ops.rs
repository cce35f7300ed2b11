//! Operations against the real binary: reload on SIGHUP under load (MOTD and certificate change,
//! nobody is dropped), a bad config on reload keeps the old one, REHASH, environment overrides
//! and `parleyd check-config`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    client_config_trusting, free_port, peer_fingerprint, spawn_parleyd, tls_connect,
    wait_listening, Client,
};

fn write_config(dir: &Path, plain: u16, tls: u16, motd: &str) -> std::path::PathBuf {
    let path = dir.join("parley.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\ndata_dir = {:?}\nmotd = {motd:?}\n[listen]\nplain = [\"127.0.0.1:{plain}\"]\n\
             tls = [\"127.0.0.1:{tls}\"]\n[web]\nlisten = []\n[accounts]\nrequire_login = false\n\
             [flood]\nenabled = false\n",
            dir.display().to_string()
        ),
    )
    .expect("write config");
    path
}

/// parleyd with its log (info and up) read line by line, so a test can wait for what the server
/// says it did instead of sleeping and hoping it has.
struct Logged {
    child: tokio::process::Child,
    log: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Logged {
    fn spawn(config: &Path) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start parleyd");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, log) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            // Read to the end even once nobody listens, so a full pipe never blocks parleyd.
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        Self { child, log }
    }

    /// The next log line containing `needle` (earlier ones are passed over). The bound only keeps
    /// a server that never says it from hanging the test.
    async fn next_log(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, self.log.recv()).await {
                Ok(Some(line)) if line.contains(needle) => return line,
                Ok(Some(_)) => {}
                Ok(None) => panic!("parleyd's log ended before it said {needle:?}"),
                Err(_) => panic!("parleyd did not log {needle:?} within 30 s"),
            }
        }
    }
}

fn hangup(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

async fn motd_of(client: &mut Client) -> Vec<String> {
    client.send("MOTD").await;
    client
        .sync()
        .await
        .into_iter()
        .filter(|l| l.contains(" 372 "))
        .collect()
}

#[tokio::test]
async fn sighup_reloads_motd_and_certificate_without_dropping_anyone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (plain, tls) = (free_port(), free_port());
    let config = write_config(dir.path(), plain, tls, "first words");
    let mut server = Logged::spawn(&config);
    wait_listening(plain).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], plain));
    let tls_addr = std::net::SocketAddr::from(([127, 0, 0, 1], tls));
    let old_pem = std::fs::read(dir.path().join("tls/cert.pem")).expect("generated cert");

    let mut a = Client::connect(addr).await;
    a.register("alpha").await;
    let mut b = Client::connect(addr).await;
    b.register("beta").await;
    a.sync().await;
    assert_eq!(
        motd_of(&mut a).await,
        [":parley.local 372 alpha :- first words"]
    );

    // Chatter keeps flowing while the reload happens.
    let chatter = tokio::spawn(async move {
        for i in 0..200 {
            a.send(&format!("PRIVMSG #lobby :tick {i}")).await;
        }
        a.sync().await;
        a
    });
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "renewed");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    std::fs::write(dir.path().join("tls/cert.pem"), cert.pem()).expect("write cert");
    std::fs::write(dir.path().join("tls/key.pem"), key.serialize_pem()).expect("write key");
    write_config(dir.path(), plain, tls, "second words");
    hangup(&server.child);

    let mut a = chatter.await.expect("chatter");
    let mut seen = 0;
    while seen < 200 {
        let line = b.recv().await;
        if line.contains("PRIVMSG #lobby :tick ") {
            seen += 1;
        }
    }
    // The reload is asynchronous to us: the server logs when it is done (or refused).
    let said = server.next_log("SIGHUP: configuration").await;
    assert!(said.contains("SIGHUP: configuration reloaded"), "{said}");
    assert_eq!(
        motd_of(&mut a).await,
        [":parley.local 372 alpha :- second words"]
    );
    b.send("PING still").await;
    b.expect(|l| l.ends_with("PONG parley.local :still")).await;
    let renewed = tls_connect(tls_addr, client_config_trusting(cert.pem().as_bytes()))
        .await
        .expect("new handshakes get the renewed certificate");
    use rustls::pki_types::pem::PemObject;
    let old_der = rustls::pki_types::CertificateDer::from_pem_slice(&old_pem).expect("pem");
    assert_ne!(
        peer_fingerprint(&renewed),
        parley_server::tls::fingerprint(&old_der)
    );

    // A broken config is refused; the old one stays in force and nobody notices.
    std::fs::write(&config, "[limits]\nnick_len = \"long\"\n").expect("break config");
    hangup(&server.child);
    let said = server.next_log("SIGHUP: configuration").await;
    assert!(
        said.contains("SIGHUP: configuration NOT reloaded; the old one stays in force")
            && said.contains("limits.nick_len"),
        "{said}"
    );
    assert_eq!(
        motd_of(&mut a).await,
        [":parley.local 372 alpha :- second words"]
    );
    b.send("PING after").await;
    b.expect(|l| l.ends_with("PONG parley.local :after")).await;
}

#[tokio::test]
async fn environment_overrides_and_check_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (plain, tls) = (free_port(), free_port());
    let config = write_config(dir.path(), plain, tls, "from the file");
    let _child = spawn_parleyd(&config, &[("PARLEY_SERVER__MOTD", "from the environment")]);
    wait_listening(plain).await;
    let mut c = Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], plain))).await;
    c.register("envy").await;
    assert_eq!(
        motd_of(&mut c).await,
        [":parley.local 372 envy :- from the environment"]
    );

    let check = |args: &[&str], envs: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
            .args(args)
            .envs(envs.iter().copied())
            .output()
            .expect("run parleyd")
    };
    let ok = check(&["check-config", config.to_str().expect("utf-8")], &[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nname = \"ok\"\n\n[limits]\nnick_lenn = 3\n").expect("write");
    let out = check(&["check-config", bad.to_str().expect("utf-8")], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:5: unknown key `limits.nick_lenn`"),
        "{err}"
    );
    let out = check(
        &["check-config", config.to_str().expect("utf-8")],
        &[("PARLEY_LIMITS__NICK_LEN", "0")],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("environment variable PARLEY_LIMITS__NICK_LEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A configured certificate that is not there fails the check, naming the file.
    let missing = dir.path().join("no-such-cert.pem");
    let out = check(
        &["check-config", config.to_str().expect("utf-8")],
        &[
            ("PARLEY_TLS__CERT", missing.to_str().expect("utf-8")),
            ("PARLEY_TLS__KEY", missing.to_str().expect("utf-8")),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tls.cert / tls.key cannot be used") && err.contains("no-such-cert.pem"),
        "{err}"
    );
    // --print-config says which keys a reload changes.
    let printed = check(&["--print-config"], &[]);
    let text = String::from_utf8_lossy(&printed.stdout);
    assert!(
        text.contains("Takes effect on reload") && text.contains("Changing it needs a restart")
    );
}

#[tokio::test]
async fn rehash_is_for_operators() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::test_config(&dir);
    config.operators.admins = vec!["root".into()];
    let path = dir.path().join("parley.toml");
    std::fs::write(&path, "[server]\nmotd = \"rehashed\"\n").expect("write");
    let running = parley_server::start(config).await.expect("start");
    running.set_config_source(Some(path), Some(dir.path().to_path_buf()));
    let addr = running.plain_addrs()[0];
    let mut guest = Client::connect(addr).await;
    guest.register("guest").await;
    guest.send("REHASH").await;
    assert!(guest.sync().await.iter().any(|l| l.contains(" 481 guest ")));
    let mut root = Client::connect(addr).await;
    root.nick = "root".into();
    root.send("CAP LS 302").await;
    root.send("NICK root").await;
    root.send("USER r 0 * :r").await;
    root.send("REGISTER * * root-password").await;
    root.expect(|l| l.contains("REGISTER SUCCESS")).await;
    root.send("CAP END").await;
    root.expect_numeric("381").await;
    root.sync().await;
    root.send("REHASH").await;
    let lines = root.sync().await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" 382 root parleyd :Rehashing")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("Configuration reloaded")),
        "{lines:?}"
    );
    assert_eq!(
        motd_of(&mut guest).await,
        [":parley.local 372 guest :- rehashed"]
    );
    running.shutdown();
}

#[tokio::test]
async fn backup_makes_a_database_the_server_can_start_from() {
    let dir = tempfile::tempdir().expect("temp dir");
    let running = parley_server::start(common::test_config(&dir))
        .await
        .expect("start");
    let addr = running.plain_addrs()[0];
    let mut c = Client::connect(addr).await;
    c.nick = "saver".into();
    c.send("CAP LS 302").await;
    c.send("NICK saver").await;
    c.send("USER s 0 * :s").await;
    c.send("REGISTER * * saver-password").await;
    c.expect(|l| l.contains("REGISTER SUCCESS")).await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.send("PRIVMSG #lobby :keep me").await;
    c.sync().await;

    // While the server runs, through the real binary.
    let config_path = dir.path().join("parley.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\ndata_dir = {:?}\n",
            dir.path().display().to_string()
        ),
    )
    .expect("config");
    let restored = tempfile::tempdir().expect("temp dir");
    let copy = restored.path().join("parley.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .args([
            "--config",
            config_path.to_str().expect("utf-8"),
            "backup",
            copy.to_str().expect("utf-8"),
        ])
        .envs(common::store_env(dir.path()))
        .output()
        .expect("run parleyd backup");
    if common::postgres::server_suite_on_postgres() {
        // PostgreSQL is backed up with its own tools; the command says so and writes nothing.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("pg_dump"), "{err}");
        assert!(
            !err.contains("parley_test:"),
            "no password in errors: {err}"
        );
        assert!(!copy.exists());
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .args([
            "--config",
            config_path.to_str().expect("utf-8"),
            "backup",
            copy.to_str().expect("utf-8"),
        ])
        .output()
        .expect("run parleyd backup");
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );
    running.shutdown();

    let from_backup = parley_server::start(common::test_config(&restored))
        .await
        .expect("start from backup");
    let mut back = Client::connect(from_backup.plain_addrs()[0]).await;
    let welcome = back.login_sasl("saver", "saver", "saver-password").await;
    assert!(
        welcome.iter().any(|l| l.contains(" 001 saver ")),
        "{welcome:?}"
    );
    let mut out = Vec::new();
    let mut config = common::test_config(&restored);
    config.server.data_dir = restored.path().to_path_buf();
    parley_server::inspect::export(
        &config,
        "#lobby",
        parley_server::inspect::ExportFormat::Text,
        &mut out,
    )
    .expect("export");
    assert!(String::from_utf8_lossy(&out).contains("<saver> keep me"));
    from_backup.shutdown();
}
