//! Automatic certificates against a real ACME server: Debian's `pebble` (Let's Encrypt's test CA)
//! on free loopback ports, and the real `parleyd` with `tls.acme_domain = "localhost"`. The test
//! waits (bounded) until parleyd's TLS and web listeners present a certificate that chains to
//! pebble's root for the name, then restarts parleyd and checks the cached one is served at once.
//! Without pebble the test skips with a line on stderr, unless `PARLEY_REQUIRE_ACME=1` (or
//! `PARLEY_REQUIRE_CLUSTER=1`, which CI sets) makes that a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{client_config_trusting, free_port, peer_fingerprint, tls_connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest wait for pebble to issue (account, order, HTTP-01 check, certificate: a few
/// seconds with PEBBLE_VA_NOSLEEP=1, more on a loaded machine).
const ISSUE_WITHIN: Duration = Duration::from_secs(90);

fn acme_required() -> bool {
    ["PARLEY_REQUIRE_ACME", "PARLEY_REQUIRE_CLUSTER"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| v == "1"))
}

fn pebble_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join("pebble"))
        .find(|candidate| candidate.is_file())
}

/// A CA of our own for pebble's HTTPS API (parleyd trusts it through `tls.acme_ca`), and the
/// API's certificate for localhost signed by it. Returns the CA's PEM path.
fn pebble_api_certificate(dir: &Path) -> PathBuf {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "parley test CA for pebble");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf params");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = leaf_params.signed_by(&leaf_key, &ca).expect("leaf");
    std::fs::write(dir.join("api-cert.pem"), leaf.pem()).expect("write api cert");
    std::fs::write(dir.join("api-key.pem"), leaf_key.serialize_pem()).expect("write api key");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("write CA");
    ca_path
}

struct Pebble {
    api: SocketAddr,
    management: SocketAddr,
    ca_pem: PathBuf,
    log: PathBuf,
    _child: tokio::process::Child,
}

impl Pebble {
    /// Pebble on free loopback ports, checking HTTP-01 on `http_port`; `None` (skip) without it.
    /// `validity_secs`: the lifetime of the certificates it issues (pebble's default is 5 years).
    async fn start(dir: &Path, http_port: u16, validity_secs: Option<u64>) -> Option<Pebble> {
        let Some(binary) = pebble_binary() else {
            assert!(
                !acme_required(),
                "PARLEY_REQUIRE_ACME=1 but pebble is not installed; apt-get install pebble"
            );
            eprintln!("skipping the ACME test: pebble is not installed (apt-get install pebble)");
            return None;
        };
        let ca_pem = pebble_api_certificate(dir);
        let api = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": api.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": dir.join("api-cert.pem"),
                "privateKey": dir.join("api-key.pem"),
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(secs) = validity_secs {
            config["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("write pebble config");
        let log = dir.join("pebble.log");
        let child = tokio::process::Command::new(binary)
            .arg("-config")
            .arg(&config_path)
            // Validate at once, and never reject a nonce on purpose (pebble's default 5 %).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("pebble log"))
            .stderr(std::fs::File::create(dir.join("pebble.err")).expect("pebble err"))
            .kill_on_drop(true)
            .spawn()
            .expect("start pebble");
        let pebble = Pebble {
            api,
            management,
            ca_pem,
            log,
            _child: child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(api).await.is_err()
            || TcpStream::connect(management).await.is_err()
        {
            assert!(
                Instant::now() < deadline,
                "pebble did not start listening; its log:\n{}",
                pebble.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(pebble)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Pebble's root CA (regenerated at every start), from its management API.
    async fn root_pem(&self) -> Vec<u8> {
        let config = client_config_trusting(&std::fs::read(&self.ca_pem).expect("CA"));
        let mut tls = tls_connect(self.management, config)
            .await
            .expect("TLS to pebble's management API");
        tls.write_all(b"GET /roots/0 HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .expect("ask for the root");
        let mut response = Vec::new();
        // Go may close without close_notify; what arrived is the whole answer.
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8(response).expect("PEM is text");
        let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.as_bytes().to_vec()
    }
}

struct Parleyd {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Parleyd {
    fn start(config: &Path, log: PathBuf) -> Parleyd {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("parleyd log"))
            .kill_on_drop(true)
            .spawn()
            .expect("start parleyd");
        Parleyd { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn stop(mut self) {
        self.child.start_kill().expect("stop parleyd");
        self.child.wait().await.expect("reap parleyd");
    }
}

/// parleyd's config: TLS (and web) listeners, ACME from `pebble`, HTTP-01 on `http_port`.
fn write_config(
    dir: &Path,
    pebble: &Pebble,
    http_port: u16,
    tls_addr: SocketAddr,
    web_addr: Option<SocketAddr>,
) -> PathBuf {
    let config_path = dir.join("parley.toml");
    let web = web_addr.map(|a| format!("\"{a}\"")).unwrap_or_default();
    std::fs::write(
        &config_path,
        format!(
            "[server]\ndata_dir = {data:?}\n\
             [listen]\nplain = []\ntls = [\"{tls_addr}\"]\n\
             [web]\nlisten = [{web}]\n\
             [tls]\nacme_domain = \"localhost\"\nacme_directory = \"https://{api}/dir\"\n\
             acme_ca = {ca:?}\nacme_email = \"ops@parley.test\"\n\
             acme_http_listen = [\"127.0.0.1:{http_port}\"]\n",
            data = dir.join("data").display().to_string(),
            api = pebble.api,
            ca = pebble.ca_pem.display().to_string(),
        ),
    )
    .expect("write config");
    config_path
}

/// Connect until `addr` presents a certificate `trusting` accepts for localhost; its fingerprint.
async fn wait_for_trusted(
    addr: SocketAddr,
    trusting: Arc<rustls::ClientConfig>,
    within: Duration,
    explain: impl Fn() -> String,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        match tls_connect(addr, trusting.clone()).await {
            Ok(tls) => return peer_fingerprint(&tls),
            Err(err) => assert!(
                Instant::now() < deadline,
                "{addr} never presented a certificate from pebble's CA ({err}):\n{}",
                explain()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn parleyd_gets_and_serves_a_certificate_from_a_real_acme_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let http_port = free_port();
    let Some(pebble) = Pebble::start(dir.path(), http_port, None).await else {
        return;
    };
    let data_dir = dir.path().join("data");
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let web_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config_path = write_config(dir.path(), &pebble, http_port, tls_addr, Some(web_addr));
    let parleyd = Parleyd::start(&config_path, dir.path().join("parleyd.log"));
    let root = pebble.root_pem().await;
    let trusting_pebble = client_config_trusting(&root);
    let explain = || format!("parleyd:\n{}\npebble:\n{}", parleyd.log(), pebble.log());
    // The IRC TLS listener: first the self-signed stand-in, then pebble's certificate.
    let issued = wait_for_trusted(tls_addr, trusting_pebble.clone(), ISSUE_WITHIN, explain).await;
    let self_signed = std::fs::read(data_dir.join("tls/cert.pem")).expect("the stand-in exists");
    let self_signed_fp = parley_server::tls::fingerprint(
        &rustls::pki_types::pem::PemObject::from_pem_slice(&self_signed)
            .map(|c: rustls::pki_types::CertificateDer<'static>| c)
            .expect("PEM"),
    );
    assert_ne!(
        issued, self_signed_fp,
        "the CA's certificate, not the stand-in"
    );
    // The web listener shares the resolver, so it serves the same certificate.
    let web = tls_connect(web_addr, trusting_pebble.clone())
        .await
        .expect("the web listener presents pebble's certificate too");
    assert_eq!(peer_fingerprint(&web), issued);
    drop(web);

    // Port 80's listener answers challenges only: anything else goes to https, on our name.
    let mut http = TcpStream::connect(("127.0.0.1", http_port))
        .await
        .expect("HTTP-01 listener");
    http.write_all(b"GET /index.html HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        .await
        .expect("send");
    let mut answer = String::new();
    http.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 301"), "{answer}");
    assert!(
        answer.contains(&format!(
            "\r\nLocation: https://localhost:{}/index.html\r\n",
            web_addr.port()
        )),
        "{answer}"
    );

    // The cache: private files, and used at once after a restart without a new order.
    let cache = data_dir.join("acme");
    #[cfg(unix)]
    for file in [
        cache.join("account.json"),
        cache.join("localhost/key.pem"),
        cache.join("localhost/cert.pem"),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("cached file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is private", file.display());
    }
    parleyd.stop().await;
    let orders_before = pebble.log().matches("Issued certificate").count();
    let restarted = Parleyd::start(&config_path, dir.path().join("parleyd-2.log"));
    let explain = || format!("parleyd:\n{}", restarted.log());
    let again = wait_for_trusted(tls_addr, trusting_pebble, Duration::from_secs(10), explain).await;
    assert_eq!(
        again, issued,
        "the cached certificate is served after a restart"
    );
    assert!(
        restarted.log().contains("using the cached certificate"),
        "{}",
        restarted.log()
    );
    assert_eq!(
        pebble.log().matches("Issued certificate").count(),
        orders_before,
        "no new order for a valid cached certificate"
    );
    restarted.stop().await;
}

#[tokio::test]
async fn a_short_lived_certificate_is_renewed_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let http_port = free_port();
    // Renewal is due two thirds into a certificate's life: 6 s after issue here.
    let Some(pebble) = Pebble::start(dir.path(), http_port, Some(9)).await else {
        return;
    };
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config_path = write_config(dir.path(), &pebble, http_port, tls_addr, None);
    let parleyd = Parleyd::start(&config_path, dir.path().join("parleyd.log"));
    let trusting_pebble = client_config_trusting(&pebble.root_pem().await);
    let explain = || format!("parleyd:\n{}\npebble:\n{}", parleyd.log(), pebble.log());
    let first = wait_for_trusted(tls_addr, trusting_pebble.clone(), ISSUE_WITHIN, explain).await;
    // An open connection is not touched by the renewal.
    let mut open = tls_connect(tls_addr, trusting_pebble.clone())
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    let renewed = loop {
        let tls = tls_connect(tls_addr, trusting_pebble.clone()).await;
        if let Ok(tls) = tls {
            let fingerprint = peer_fingerprint(&tls);
            if fingerprint != first {
                break fingerprint;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no renewal within 30 s:\n{}\npebble:\n{}",
            parleyd.log(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_ne!(renewed, first);
    open.write_all(b"NICK still_here\r\nUSER u 0 * :u\r\n")
        .await
        .expect("the connection from before the renewal still works");
    let mut reply = [0u8; 64];
    let n = open
        .read(&mut reply)
        .await
        .expect("a reply on the old connection");
    assert!(n > 0);
    assert!(
        parleyd.log().matches("new certificate installed").count() >= 2,
        "{}",
        parleyd.log()
    );
    parleyd.stop().await;
}

/// A challenge the CA cannot reach: the failure is logged with the CA's reason, the self-signed
/// certificate stays in service, and the next attempt waits (no tight loop against the CA).
#[tokio::test]
async fn a_failed_challenge_is_logged_and_retried_later_not_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Pebble checks a port nobody listens on; parleyd answers on another one.
    let Some(pebble) = Pebble::start(dir.path(), free_port(), None).await else {
        return;
    };
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config_path = write_config(dir.path(), &pebble, free_port(), tls_addr, None);
    let parleyd = Parleyd::start(&config_path, dir.path().join("parleyd.log"));
    let deadline = Instant::now() + ISSUE_WITHIN;
    while !parleyd.log().contains("getting a certificate failed") {
        assert!(
            Instant::now() < deadline,
            "no failure logged:\n{}\npebble:\n{}",
            parleyd.log(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = parleyd.log();
    assert!(log.contains("retry_in_secs=300"), "{log}");
    assert!(
        log.to_lowercase().contains("connection refused"),
        "the CA's reason is in the log: {log}"
    );
    // Still served: the self-signed stand-in.
    let stand_in = std::fs::read(dir.path().join("data/tls/cert.pem")).expect("stand-in");
    let tls = tls_connect(tls_addr, client_config_trusting(&stand_in))
        .await
        .expect("the self-signed certificate is still served");
    drop(tls);
    // Part of the scenario: a negative check ("no second order yet") needs time in which a
    // retry could have come, had the 300 s backoff been ignored. Nothing marks "did not retry".
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pebble.log().matches("POST /order-plz").count(),
        1,
        "one order, then a wait:\n{}",
        pebble.log()
    );
    parleyd.stop().await;
}
