//! Real TLS handshakes against a rustls server on 127.0.0.1:0, with certificates made by rcgen:
//! a CA and its leaves, self-signed leaves, an expired leaf and a leaf for another host name.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use parley_trust::{handshake, server_key, Fingerprint, KnownServers, TrustError, TrustPolicy};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// A certificate and its key, ready to serve.
struct ServerCert {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
    pem: String,
}

impl ServerCert {
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.chain[0])
    }

    fn write_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).expect("write PEM");
        path
    }
}

struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Parley Test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.crt");
        std::fs::write(&path, self.issuer.pem()).expect("write CA PEM");
        path
    }

    fn leaf(&self, names: &[&str]) -> ServerCert {
        self.leaf_with(leaf_params(names))
    }

    fn leaf_with(&self, params: CertificateParams) -> ServerCert {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed leaf");
        ServerCert {
            chain: vec![cert.der().clone(), self.issuer.der().clone()],
            key: key.serialize_der(),
            pem: cert.pem(),
        }
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, "parley test server");
    params
}

fn self_signed(params: CertificateParams) -> ServerCert {
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    ServerCert {
        chain: vec![cert.der().clone()],
        key: key.serialize_der(),
        pem: cert.pem(),
    }
}

fn expired_params() -> CertificateParams {
    let mut params = leaf_params(&["localhost", "127.0.0.1"]);
    params.not_before = date_time_ymd(2019, 1, 1);
    params.not_after = date_time_ymd(2020, 1, 1);
    params
}

fn server_config(cert: &ServerCert) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            cert.chain.clone(),
            PrivatePkcs8KeyDer::from(cert.key.clone()).into(),
        )
        .expect("server certificate");
    Arc::new(config)
}

/// A TLS server on 127.0.0.1:0 that greets each client with "hello"; its certificate can be
/// swapped to play a server whose certificate changed.
struct TestServer {
    port: u16,
    config: Arc<Mutex<Arc<ServerConfig>>>,
}

impl TestServer {
    async fn start(cert: &ServerCert) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let config = Arc::new(Mutex::new(server_config(cert)));
        let shared = config.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let current = shared.lock().expect("config lock").clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = TlsAcceptor::from(current).accept(tcp).await {
                        let _ = tls.write_all(b"hello\n").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        TestServer { port, config }
    }

    fn serve(&self, cert: &ServerCert) {
        *self.config.lock().expect("config lock") = server_config(cert);
    }

    fn key(&self) -> String {
        server_key("localhost", self.port)
    }

    /// Connects as a client asking for `host`, and reads the greeting when trusted.
    async fn talk(&self, host: &str, policy: &TrustPolicy) -> Result<String, TrustError> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("tcp connect");
        let tls = handshake(tcp, host, self.port, policy).await?;
        let mut line = String::new();
        BufReader::new(tls)
            .read_line(&mut line)
            .await
            .expect("greeting");
        Ok(line)
    }
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[tokio::test]
async fn ca_file_trusts_the_leaves_it_signed() {
    let tmp = dir();
    let ca = TestCa::new();
    let server = TestServer::start(&ca.leaf(&["localhost", "127.0.0.1"])).await;
    let policy = TrustPolicy::empty()
        .with_ca_file(ca.write_pem(tmp.path()))
        .expect("CA file");
    assert_eq!(
        server.talk("localhost", &policy).await.expect("trusted"),
        "hello\n"
    );
    assert_eq!(
        server
            .talk("127.0.0.1", &policy)
            .await
            .expect("trusted by IP"),
        "hello\n"
    );

    let via_connect = parley_trust::connect("127.0.0.1", server.port, &policy).await;
    assert!(via_connect.is_ok(), "{:?}", via_connect.err());
}

#[tokio::test]
async fn a_self_signed_server_certificate_works_as_its_own_ca() {
    let tmp = dir();
    let cert = self_signed(leaf_params(&["localhost"]));
    let server = TestServer::start(&cert).await;
    let policy = TrustPolicy::system_roots()
        .with_ca_file(cert.write_pem(tmp.path(), "server.crt"))
        .expect("--ca server.crt");
    assert_eq!(
        server.talk("localhost", &policy).await.expect("trusted"),
        "hello\n"
    );
}

#[tokio::test]
async fn an_unknown_certificate_is_refused_with_its_fingerprint() {
    let cert = self_signed(leaf_params(&["localhost"]));
    let server = TestServer::start(&cert).await;
    let err = server
        .talk("localhost", &TrustPolicy::system_roots())
        .await
        .expect_err("nothing vouches for a fresh self-signed certificate");
    let TrustError::UnknownCertificate {
        server: ref server_name,
        fingerprint,
        ..
    } = err
    else {
        panic!("expected UnknownCertificate, got {err:?}");
    };
    assert_eq!(server_name, &server.key());
    assert_eq!(fingerprint, cert.fingerprint());
    let message = err.to_string();
    assert!(
        message.contains(&cert.fingerprint().to_string()),
        "{message}"
    );
    assert!(
        message.contains("--fingerprint")
            && message.matches(&cert.fingerprint().to_string()).count() == 1,
        "{message}"
    );
    assert!(message.contains("--ca"), "{message}");
}

#[tokio::test]
async fn a_ca_signed_leaf_is_unknown_without_its_ca() {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = TestServer::start(&leaf).await;
    let err = server
        .talk("localhost", &TrustPolicy::empty())
        .await
        .expect_err("no CA given");
    assert!(
        matches!(err, TrustError::UnknownCertificate { fingerprint, .. } if fingerprint == leaf.fingerprint()),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_pinned_fingerprint_is_trusted() {
    let cert = self_signed(leaf_params(&["some.other.name"]));
    let server = TestServer::start(&cert).await;
    let fingerprint = Fingerprint::parse(&cert.fingerprint().to_string()).expect("round trip");
    let policy = TrustPolicy::empty().with_pin(fingerprint);
    // The pin names the certificate, so its host names do not matter.
    assert_eq!(
        server.talk("localhost", &policy).await.expect("pinned"),
        "hello\n"
    );
}

#[tokio::test]
async fn a_wrong_pin_is_refused_even_when_a_ca_vouches() {
    let tmp = dir();
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let server = TestServer::start(&leaf).await;
    let other = Fingerprint::of(b"some other certificate");
    let policy = TrustPolicy::empty()
        .with_ca_file(ca.write_pem(tmp.path()))
        .expect("CA file")
        .with_pin(other);
    let err = server
        .talk("localhost", &policy)
        .await
        .expect_err("pin differs");
    match &err {
        TrustError::PinMismatch { pinned, got, .. } => {
            assert_eq!(pinned, &vec![other]);
            assert_eq!(*got, leaf.fingerprint());
        }
        _ => panic!("expected PinMismatch, got {err:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&other.to_string()), "{message}");
    assert!(
        message.contains(&leaf.fingerprint().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn known_servers_trusts_on_explicit_yes_and_refuses_a_change_loudly() {
    let tmp = dir();
    let file = tmp.path().join("known_servers");
    let first = self_signed(leaf_params(&["localhost"]));
    let server = TestServer::start(&first).await;
    let policy = TrustPolicy::empty().with_known_servers(&file);

    let err = server
        .talk("localhost", &policy)
        .await
        .expect_err("not yet known");
    let TrustError::UnknownCertificate {
        server: ref key,
        fingerprint,
        ..
    } = err
    else {
        panic!("expected UnknownCertificate, got {err:?}");
    };
    assert_eq!(fingerprint, first.fingerprint());
    assert!(
        err.to_string()
            .contains(&format!("answer yes to store it in {}", file.display())),
        "{err}"
    );
    assert!(!file.exists(), "nothing is stored without a yes");

    policy.remember(key, fingerprint).expect("stored");
    assert_eq!(
        KnownServers::load(&file)
            .expect("loads")
            .get(&server.key())
            .map(|e| e.fingerprint),
        Some(first.fingerprint())
    );
    assert_eq!(
        server.talk("localhost", &policy).await.expect("known now"),
        "hello\n"
    );

    let second = self_signed(leaf_params(&["localhost"]));
    server.serve(&second);
    let err = server
        .talk("localhost", &policy)
        .await
        .expect_err("changed");
    match &err {
        TrustError::CertificateChanged {
            expected,
            got,
            file: where_stored,
            line,
            ..
        } => {
            assert_eq!(*expected, first.fingerprint());
            assert_eq!(*got, second.fingerprint());
            assert_eq!(where_stored, &file);
            let text = std::fs::read_to_string(&file).expect("read known_servers");
            let stored = text.lines().nth(line - 1).expect("line exists");
            assert!(stored.starts_with(&server.key()), "{stored}");
        }
        _ => panic!("expected CertificateChanged, got {err:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("CHANGED"), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("remove line 3"), "{message}");
}

#[tokio::test]
async fn known_servers_is_keyed_by_port() {
    let tmp = dir();
    let file = tmp.path().join("known_servers");
    let cert = self_signed(leaf_params(&["localhost"]));
    let server = TestServer::start(&cert).await;
    let policy = TrustPolicy::empty().with_known_servers(&file);
    policy
        .remember(
            &server_key("localhost", server.port.wrapping_add(1)),
            cert.fingerprint(),
        )
        .expect("stored");
    let err = server
        .talk("localhost", &policy)
        .await
        .expect_err("other port");
    assert!(
        matches!(err, TrustError::UnknownCertificate { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_ca_signed_renewal_is_not_a_change() {
    let tmp = dir();
    let file = tmp.path().join("known_servers");
    let ca = TestCa::new();
    let server = TestServer::start(&ca.leaf(&["localhost"])).await;
    KnownServers::load(&file)
        .expect("empty")
        .trust(&server.key(), Fingerprint::of(b"an older certificate"))
        .expect("stored");
    let policy = TrustPolicy::empty()
        .with_ca_file(ca.write_pem(tmp.path()))
        .expect("CA file")
        .with_known_servers(&file);
    assert_eq!(
        server.talk("localhost", &policy).await.expect("CA vouches"),
        "hello\n"
    );
}

#[tokio::test]
async fn a_hostname_mismatch_is_refused_and_names_the_certificate_names() {
    let tmp = dir();
    let ca = TestCa::new();
    let leaf = ca.leaf(&["irc.other.example", "10.0.0.1"]);
    let server = TestServer::start(&leaf).await;
    let policy = TrustPolicy::empty()
        .with_ca_file(ca.write_pem(tmp.path()))
        .expect("CA file");
    let err = server
        .talk("localhost", &policy)
        .await
        .expect_err("wrong name");
    match &err {
        TrustError::HostnameMismatch {
            host,
            presented,
            fingerprint,
            ..
        } => {
            assert_eq!(host, "localhost");
            assert_eq!(
                presented,
                &vec!["irc.other.example".to_string(), "10.0.0.1".to_string()]
            );
            assert_eq!(*fingerprint, leaf.fingerprint());
        }
        _ => panic!("expected HostnameMismatch, got {err:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("is for irc.other.example, 10.0.0.1, not for localhost"),
        "{message}"
    );
    assert!(message.contains("not for localhost"), "{message}");
}

#[tokio::test]
async fn an_expired_ca_signed_certificate_is_refused() {
    let tmp = dir();
    let ca = TestCa::new();
    let leaf = ca.leaf_with(expired_params());
    let server = TestServer::start(&leaf).await;
    let policy = TrustPolicy::empty()
        .with_ca_file(ca.write_pem(tmp.path()))
        .expect("CA file");
    let err = server
        .talk("localhost", &policy)
        .await
        .expect_err("expired");
    assert!(
        matches!(err, TrustError::Expired { fingerprint, .. } if fingerprint == leaf.fingerprint()),
        "{err:?}"
    );
    assert!(err.to_string().contains("expired on 2020-01-01"), "{err}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused_even_when_pinned_or_known() {
    let tmp = dir();
    let cert = self_signed(expired_params());
    let server = TestServer::start(&cert).await;

    let pinned = TrustPolicy::empty().with_pin(cert.fingerprint());
    let err = server
        .talk("localhost", &pinned)
        .await
        .expect_err("expired");
    assert!(matches!(err, TrustError::Expired { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("expired on 2020-01-01 00:00:00 UTC"),
        "{err}"
    );

    let file = tmp.path().join("known_servers");
    let known = TrustPolicy::empty().with_known_servers(&file);
    known
        .remember(&server.key(), cert.fingerprint())
        .expect("stored");
    let err = server.talk("localhost", &known).await.expect_err("expired");
    assert!(matches!(err, TrustError::Expired { .. }), "{err:?}");
}

#[tokio::test]
async fn a_not_yet_valid_certificate_is_refused() {
    let mut params = leaf_params(&["localhost"]);
    params.not_before = date_time_ymd(2090, 1, 1);
    params.not_after = date_time_ymd(2091, 1, 1);
    let cert = self_signed(params);
    let server = TestServer::start(&cert).await;
    let policy = TrustPolicy::empty().with_pin(cert.fingerprint());
    let err = server.talk("localhost", &policy).await.expect_err("future");
    assert!(matches!(err, TrustError::NotYetValid { .. }), "{err:?}");
    assert!(err.to_string().contains("2090-01-01"), "{err}");
}

#[test]
fn a_ca_file_without_certificates_is_refused_with_its_path() {
    let tmp = dir();
    let path = tmp.path().join("empty.crt");
    std::fs::write(&path, "not a certificate\n").expect("write");
    let err = TrustPolicy::empty()
        .with_ca_file(&path)
        .expect_err("no PEM");
    assert!(matches!(err, TrustError::BadCaFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    let missing = tmp.path().join("missing.crt");
    let err = TrustPolicy::empty()
        .with_ca_file(&missing)
        .expect_err("missing");
    assert!(err.to_string().contains("missing.crt"), "{err}");
}

#[test]
fn remember_needs_a_known_servers_file() {
    let err = TrustPolicy::empty()
        .remember("irc.example:6697", Fingerprint::of(b"x"))
        .expect_err("no file configured");
    assert!(
        matches!(err, TrustError::NoKnownServersFile { .. }),
        "{err:?}"
    );
}

#[test]
fn fingerprint_matches_openssl() {
    let tmp = dir();
    let cert = self_signed(leaf_params(&["localhost"]));
    let path = cert.write_pem(tmp.path(), "server.crt");
    let ours = cert.fingerprint().to_string();
    assert_eq!(ours.len(), 95);
    assert!(ours
        .chars()
        .all(|c| c == ':' || c.is_ascii_digit() || c.is_ascii_uppercase()));
    // A missing openssl fails the test rather than passing it unchecked: the comparison with
    // openssl is the point of it (CI installs openssl; `apt-get install openssl` here).
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&path)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run openssl ({err}); install it: apt-get install openssl")
        });
    assert!(
        out.status.success(),
        "openssl x509 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("openssl prints ASCII");
    let (_, theirs) = line.trim().split_once('=').expect("openssl format");
    assert_eq!(theirs, ours);
    assert_eq!(
        Fingerprint::parse(&line).expect("parses openssl's line"),
        cert.fingerprint()
    );
}
