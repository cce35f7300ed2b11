//! TLS against the real server: real handshakes with a generated certificate, chat between TLS and
//! plain-text clients, the `sts` policy, certificate reload without dropping anyone, configured
//! certificate files, and garbage on the TLS port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    client_config_trusting, enable_tls, peer_fingerprint, tls_connect, Client, TestServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fresh self-signed certificate and key for `localhost` as PEM.
fn self_signed() -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn tls_client_chats_with_plain_client() {
    let server = TestServer::start_with(enable_tls).await;
    let mut secure = server.connect_tls().await;
    secure.register("secure").await;
    let mut plain = server.client("plain").await;
    secure.sync().await;
    plain.send("PRIVMSG secure :over loopback").await;
    plain.sync().await;
    let got = secure.sync().await;
    assert!(
        got.contains(&":plain!~plain@127.0.0.1 PRIVMSG secure :over loopback".to_string()),
        "{got:?}"
    );
    secure.send("PRIVMSG #lobby :encrypted hello").await;
    secure.sync().await;
    plain
        .expect(|l| l == ":secure!~secure@127.0.0.1 PRIVMSG #lobby :encrypted hello")
        .await;
    plain.send("WHOIS secure").await;
    let whois = plain.sync().await;
    assert!(
        whois.contains(&":parley.local 671 plain secure :is using a secure connection".to_string()),
        "{whois:?}"
    );
    secure.send("WHOIS plain").await;
    let whois = secure.sync().await;
    assert!(!whois.iter().any(|l| l.contains(" 671 ")), "{whois:?}");
}

#[tokio::test]
async fn fingerprint_matches_the_generated_file_and_is_reused_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = || {
        let mut config = common::test_config(&dir);
        enable_tls(&mut config);
        config
    };
    let first = parley_server::start(config()).await.expect("start");
    let fp = first.tls_fingerprint().expect("TLS on");
    let pem = std::fs::read(dir.path().join("tls/cert.pem")).expect("cert written");
    let tls = tls_connect(first.tls_addrs()[0], client_config_trusting(&pem))
        .await
        .expect("handshake trusting the generated cert");
    assert_eq!(peer_fingerprint(&tls), fp);
    first.shutdown();
    assert!(first.wait(Duration::from_secs(5)).await);
    drop(tls);
    let second = parley_server::start(config()).await.expect("restart");
    assert_eq!(
        second.tls_fingerprint().expect("TLS on"),
        fp,
        "same cert after restart"
    );
    second.shutdown();
}

#[tokio::test]
async fn sts_is_advertised_per_transport() {
    let server = TestServer::start_with(enable_tls).await;
    let port = server.tls_addr().port();
    let mut plain = server.connect().await;
    plain.send("CAP LS 302").await;
    let ls = plain.recv().await;
    assert!(ls.contains(&format!("sts=port={port}")), "{ls}");
    assert!(!ls.contains("duration"), "{ls}");
    let mut secure = server.connect_tls().await;
    secure.send("CAP LS 302").await;
    let ls = secure.recv().await;
    assert!(ls.contains("sts=duration=2592000"), "{ls}");
    assert!(!ls.contains("sts=port"), "{ls}");
    // Without 302 there are no values, and sts cannot be requested.
    let mut old = server.connect().await;
    old.send("CAP LS").await;
    let ls = old.recv().await;
    assert!(ls.split(' ').any(|w| w == "sts" || w == ":sts"), "{ls}");
    old.send("CAP REQ :sts").await;
    assert_eq!(old.recv().await, ":parley.local CAP * NAK :sts");
}

#[tokio::test]
async fn sts_can_be_turned_off() {
    let server = TestServer::start_with(|c| {
        enable_tls(c);
        c.tls.sts = false;
    })
    .await;
    let mut plain = server.connect().await;
    plain.send("CAP LS 302").await;
    let ls = plain.recv().await;
    assert!(!ls.contains("sts"), "{ls}");
}

#[tokio::test]
async fn reload_swaps_the_certificate_without_dropping_clients() {
    let server = TestServer::start_with(enable_tls).await;
    let mut before = server.connect_tls().await;
    before.register("early").await;
    let old_fp = server.running.tls_fingerprint().expect("TLS on");

    let (cert, key) = self_signed();
    let tls_dir = server.dir.path().join("tls");
    std::fs::write(tls_dir.join("cert.pem"), &cert).expect("write cert");
    std::fs::write(tls_dir.join("key.pem"), &key).expect("write key");
    let new_fp = server
        .running
        .reload_tls()
        .expect("TLS on")
        .expect("reload accepts a good pair");
    assert_ne!(new_fp, old_fp);

    let tls = tls_connect(server.tls_addr(), client_config_trusting(cert.as_bytes()))
        .await
        .expect("new handshakes get the new certificate");
    assert_eq!(peer_fingerprint(&tls), new_fp);
    // The connection made before the reload is still there.
    before.send("PING still-here").await;
    assert_eq!(
        before.recv().await,
        ":parley.local PONG parley.local :still-here"
    );

    // A broken file is refused, and the good certificate stays in force.
    std::fs::write(
        tls_dir.join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .expect("write garbage");
    assert!(server.running.reload_tls().expect("TLS on").is_err());
    assert_eq!(server.running.tls_fingerprint().expect("TLS on"), new_fp);
    let again = tls_connect(server.tls_addr(), client_config_trusting(cert.as_bytes()))
        .await
        .expect("still served");
    assert_eq!(peer_fingerprint(&again), new_fp);
}

#[tokio::test]
async fn configured_certificate_files_are_used() {
    let files = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed();
    let cert_path = files.path().join("server.crt");
    let key_path = files.path().join("server.key");
    std::fs::write(&cert_path, &cert).expect("write cert");
    std::fs::write(&key_path, &key).expect("write key");
    let server = TestServer::start_with(|c| {
        enable_tls(c);
        c.tls.cert = cert_path.display().to_string();
        c.tls.key = key_path.display().to_string();
    })
    .await;
    let tls = tls_connect(server.tls_addr(), client_config_trusting(cert.as_bytes()))
        .await
        .expect("handshake with the configured cert");
    let mut client = Client::over(Box::new(tls));
    client.register("configured").await;
    assert!(
        !server.dir.path().join("tls").exists(),
        "nothing is generated when files are configured"
    );
}

#[tokio::test]
async fn a_missing_configured_certificate_fails_the_start_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = common::test_config(&dir);
    enable_tls(&mut config);
    config.tls.cert = dir.path().join("nope.crt").display().to_string();
    config.tls.key = dir.path().join("nope.key").display().to_string();
    let err = match parley_server::start(config).await {
        Ok(_) => panic!("start must fail without the certificate"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("cannot read certificate"), "{err}");
    assert!(err.contains("nope.crt"), "{err}");
}

#[tokio::test]
async fn untrusted_certificate_is_refused_by_a_verifying_client() {
    let server = TestServer::start_with(enable_tls).await;
    let (other, _) = self_signed();
    let result = tls_connect(server.tls_addr(), client_config_trusting(other.as_bytes())).await;
    assert!(
        result.is_err(),
        "a client trusting another cert must refuse"
    );
}

#[tokio::test]
async fn garbage_on_either_port_harms_no_one() {
    let server = TestServer::start_with(enable_tls).await;
    let mut bystander = server.client("bystander").await;

    // Plain bytes to the TLS port: the handshake fails and the socket is closed.
    let mut raw = tokio::net::TcpStream::connect(server.tls_addr())
        .await
        .expect("connect");
    raw.write_all(b"NICK x\r\nUSER x 0 * :x\r\n\x00\x01\x02garbage")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf))
        .await
        .expect("server answers or closes in time");
    let n = read.unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains(" 001 "),
        "no IRC session over a failed handshake"
    );

    // A TLS ClientHello to the plain port is just a bad line there; nothing breaks.
    let mut hello = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    hello
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, b'\n',
        ])
        .await
        .expect("write");
    drop(hello);

    bystander.send("PING alive").await;
    assert_eq!(
        bystander.recv().await,
        ":parley.local PONG parley.local :alive"
    );
    let mut late = server.connect_tls().await;
    late.register("late").await;
}

/// Read until the server closes the connection (EOF or reset), failing if it is still open
/// after `within`; returns how many bytes came first.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 1024];
    let mut total = 0;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open after {within:?}"),
            Ok(Ok(0) | Err(_)) => return total,
            Ok(Ok(n)) => total += n,
        }
    }
}

/// Wait (bounded) until the server counts `n` connections.
async fn await_connection_count(server: &TestServer, n: usize) {
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    while server.running.connection_count() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server counts {} connections, not {n}",
            server.running.connection_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection to the TLS port counts against the per-address limit from its accept, not
/// from the end of its handshake: silent half-open connections past the limit are closed at
/// once, without a handshake, and cannot starve the address's plain-text slot either.
#[tokio::test]
async fn half_open_tls_connections_count_against_the_address_limit() {
    let server = TestServer::start_with(|c| {
        enable_tls(c);
        c.limits.max_clients_per_ip = 3;
        c.limits.handshake_timeout_secs = 60;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(
            tokio::net::TcpStream::connect(server.tls_addr())
                .await
                .expect("connect"),
        );
    }
    await_connection_count(&server, 3).await;
    for _ in 0..3 {
        let mut extra = tokio::net::TcpStream::connect(server.tls_addr())
            .await
            .expect("connect");
        assert_eq!(closed_within(&mut extra, Duration::from_secs(5)).await, 0);
    }
    let mut plain = server.connect().await;
    assert_eq!(
        plain.expect_closed().await,
        vec!["ERROR :Closing Link: 127.0.0.1 (Too many connections from your address)"]
    );
    // Giving up a half-open connection frees its slot for a real client.
    drop(silent.pop());
    await_connection_count(&server, 2).await;
    let mut real = server.connect_tls().await;
    real.register("real").await;
}

/// A handshake that never finishes is dropped after `limits.handshake_timeout_secs`, on the
/// TLS port and on the web (HTTPS) port, and its slot is freed.
#[tokio::test]
async fn a_handshake_that_never_finishes_is_dropped_in_time() {
    let server = TestServer::start_with(|c| {
        enable_tls(c);
        c.web.listen = vec!["127.0.0.1:0".into()];
        c.limits.handshake_timeout_secs = 1;
    })
    .await;
    for addr in [server.tls_addr(), server.running.web_addrs()[0]] {
        let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
        assert_eq!(closed_within(&mut silent, Duration::from_secs(5)).await, 0);
    }
    await_connection_count(&server, 0).await;
}

/// `parleyd cert show` prints the fingerprint in both forms browsers show: colon-separated
/// uppercase (Firefox, openssl, the Parley clients) and space-separated (Chromium), both the
/// SHA-256 of the certificate file's DER, so a user can compare it with the browser's viewer.
#[tokio::test]
async fn cert_show_prints_the_fingerprint_as_browsers_show_it() {
    use rustls::pki_types::pem::PemObject;
    use sha2::Digest;
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, stdout, stderr) = common::admin_cli(dir.path(), &["cert", "show"], "").await;
    assert!(ok, "{stdout}\n{stderr}");
    let pem = std::fs::read(dir.path().join("tls/cert.pem")).expect("the generated certificate");
    let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).expect("PEM");
    let digest = sha2::Sha256::digest(&der);
    let firefox: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    let chromium = firefox.join(" ");
    assert!(
        stdout.contains(&format!("SHA-256 fingerprint: {}\n", firefox.join(":"))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("as Chromium shows it: {chromium}\n")),
        "{stdout}"
    );
}
