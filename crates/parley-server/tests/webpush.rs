//! IRCv3 `draft/webpush` against the real server and a push service of our own on loopback:
//! the test plays the browser (it holds the subscription's private key and auth secret, so it
//! decrypts what arrives) and checks the VAPID token against the key the capability advertised.
//! Nothing leaves the machine: the one endpoint host allowed without TLS is 127.0.0.1, and
//! only through `webpush.allow_insecure_endpoints`, whose absence the refusals test shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{command_of, sasl_plain, Client, TestServer};
use parley_server::config::PushWhen;
use tokio::sync::mpsc;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;
use web_push_native::p256::SecretKey;
use web_push_native::Auth;

/// One POST the push service received.
struct Received {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A push service on loopback: every POST is reported; paths under `/gone` answer 410 Gone
/// (the subscription expired), the rest 201 Created as RFC 8030 says.
async fn push_service() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let tx = tx.clone();
        async move {
            let gone = uri.path().starts_with("/gone");
            let _ = tx.send(Received {
                path: uri.path().to_owned(),
                headers,
                body: body.to_vec(),
            });
            if gone {
                StatusCode::GONE
            } else {
                StatusCode::CREATED
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, rx)
}

/// The next push, within the harness's timeout.
async fn next_push(pushes: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(common::TIMEOUT, pushes.recv())
        .await
        .expect("a push within the timeout")
        .expect("the push service is up")
}

/// A browser's side of a subscription: its ECDH key pair and auth secret.
struct Browser {
    secret: SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        let secret = loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).expect("random");
            if let Ok(secret) = SecretKey::from_slice(&bytes) {
                break secret;
            }
        };
        let mut auth = [0u8; 16];
        getrandom::fill(&mut auth).expect("random");
        Browser { secret, auth }
    }

    /// `<keys>` for WEBPUSH REGISTER, as a browser's PushSubscription gives them.
    fn keys(&self) -> String {
        let public = self.secret.public_key().to_encoded_point(false);
        format!(
            "p256dh={};auth={}",
            URL_SAFE_NO_PAD.encode(public.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.auth)
        )
    }

    /// The IRC line in a push, decrypted as the browser does (RFC 8291).
    fn read(&self, push: &Received) -> String {
        assert_eq!(
            push.headers
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            Some("aes128gcm")
        );
        assert!(push.headers.contains_key("ttl"), "RFC 8030 needs a TTL");
        let plain = web_push_native::decrypt(
            push.body.clone(),
            &self.secret,
            &Auth::clone_from_slice(&self.auth),
        )
        .expect("the push decrypts with the subscription's keys");
        String::from_utf8(plain).expect("an IRC line")
    }
}

/// Check the VAPID `Authorization` (RFC 8292): `k` is the advertised key, the JWT verifies with
/// it, names the push service's origin as `aud` and expires within a day.
fn check_vapid(push: &Received, vapid: &str, service: SocketAddr) {
    let header = push
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .expect("an Authorization header");
    let rest = header.strip_prefix("vapid t=").expect("the vapid scheme");
    let (token, key) = rest.split_once(", k=").expect("t and k");
    assert_eq!(key, vapid, "signed with the advertised key");
    let (input, signature) = token.rsplit_once('.').expect("a JWS");
    let public = URL_SAFE_NO_PAD.decode(vapid).expect("base64url key");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, public)
        .verify(
            input.as_bytes(),
            &URL_SAFE_NO_PAD
                .decode(signature)
                .expect("base64url signature"),
        )
        .expect("the token's ES256 signature verifies with the advertised key");
    let decode = |part: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    let mut parts = input.split('.');
    let header = decode(parts.next().expect("header"));
    assert_eq!(header["alg"], "ES256");
    let claims = decode(parts.next().expect("claims"));
    assert_eq!(claims["aud"], format!("http://{service}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp > now && exp <= now + 24 * 3600, "exp {exp}, now {now}");
}

/// A server whose push endpoints may be http://127.0.0.1 (the test's push service).
async fn server(change: impl FnOnce(&mut parley_server::Config)) -> TestServer {
    TestServer::start_with(|config| {
        config.webpush.enabled = true;
        config.webpush.allow_insecure_endpoints = vec!["127.0.0.1".to_owned()];
        // One push at a time: pushes arrive in the order they were caused, so "the next push
        // is this one" also says no push came for what was sent before it.
        config.webpush.concurrency = 1;
        change(config);
    })
    .await
}

/// Log in to `account` (password `<account>-password`) as `nick` with SASL and `draft/webpush`;
/// returns the client and the capability's VAPID key.
async fn session(server: &TestServer, nick: &str, account: &str) -> (Client, String) {
    let mut c = server.connect().await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    let ls = cap_ls(&mut c).await;
    let vapid = vapid_in(&ls).expect("draft/webpush=vapid=... in CAP LS");
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("CAP REQ :sasl draft/webpush").await;
    c.expect(|l| l.contains(" CAP ") && l.contains(" ACK "))
        .await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect(|l| l == "AUTHENTICATE +").await;
    c.send(&format!(
        "AUTHENTICATE {}",
        sasl_plain(account, &format!("{account}-password"))
    ))
    .await;
    c.expect_numeric("903").await;
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    (c, vapid)
}

/// Every line of a `CAP LS` reply, joined (302 may split it: `CAP * LS * :...`).
async fn cap_ls(c: &mut Client) -> String {
    let mut all = String::new();
    loop {
        let line = c.expect(|l| l.contains(" CAP * LS ")).await;
        all.push_str(&line);
        all.push(' ');
        if !line.contains(" CAP * LS * ") {
            return all;
        }
    }
}

fn vapid_in(cap_ls: &str) -> Option<String> {
    cap_ls
        .split([' ', ':'])
        .find_map(|cap| cap.strip_prefix("draft/webpush=vapid="))
        .map(str::to_owned)
}

/// `WEBPUSH REGISTER` and its answer.
async fn register(c: &mut Client, endpoint: &str, keys: &str) -> String {
    c.send(&format!("WEBPUSH REGISTER {endpoint} {keys}")).await;
    c.expect(|l| matches!(command_of(l), "WEBPUSH" | "FAIL"))
        .await
}

async fn quit(mut c: Client) {
    c.send("QUIT").await;
    c.expect_closed().await;
}

#[tokio::test]
async fn the_capability_carries_the_vapid_key_made_on_first_start() {
    let server = server(|_| {}).await;
    let mut c = server.connect().await;
    c.send("CAP LS 302").await;
    let ls = cap_ls(&mut c).await;
    let vapid = vapid_in(&ls).expect("draft/webpush=vapid=...");
    let point = URL_SAFE_NO_PAD.decode(&vapid).expect("URL-safe base64");
    assert_eq!(
        (point.len(), point[0]),
        (65, 4),
        "an uncompressed P-256 key"
    );
    let file = server.dir.path().join("webpush_vapid.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is the owner's alone");
    }
    // Without values (CAP LS 301) the name alone.
    let mut old = server.connect().await;
    old.send("CAP LS").await;
    let ls = cap_ls(&mut old).await;
    assert!(
        ls.split([' ', ':']).any(|cap| cap == "draft/webpush"),
        "{ls}"
    );
    // Off: not offered, and the command is unknown.
    let off = TestServer::start_with(|config| config.webpush.enabled = false).await;
    let mut c = off.connect().await;
    c.send("CAP LS 302").await;
    let ls = cap_ls(&mut c).await;
    assert!(!ls.contains("webpush"), "{ls}");
}

#[tokio::test]
async fn a_private_message_to_an_offline_account_is_pushed_encrypted_and_signed() {
    let (service, mut pushes) = push_service().await;
    let server = server(|_| {}).await;
    server.create_account("bob", "bob-password").await;
    let (mut bob, vapid) = session(&server, "bob", "bob").await;
    let browser = Browser::new();
    let endpoint = format!("http://{service}/bob");
    let answer = register(&mut bob, &endpoint, &browser.keys()).await;
    assert!(
        answer.ends_with(&format!(" WEBPUSH REGISTER {endpoint}")),
        "{answer}"
    );
    quit(bob).await;

    let mut alice = server.client("alice").await;
    alice
        .send("PRIVMSG bob :are you there? the build is red")
        .await;
    alice.expect(|l| l.contains("is not online")).await;

    let push = next_push(&mut pushes).await;
    assert_eq!(push.path, "/bob");
    check_vapid(&push, &vapid, service);
    let line = browser.read(&push);
    assert!(
        line.ends_with(" PRIVMSG bob :are you there? the build is red"),
        "{line}"
    );
    assert!(line.starts_with('@') && line.contains("msgid="), "{line}");
    assert!(line.contains(" :alice!"), "{line}");
    assert!(!line.ends_with('\n'), "one line without CRLF");
}

#[tokio::test]
async fn mentions_are_pushed_and_other_channel_messages_are_not() {
    let (service, mut pushes) = push_service().await;
    let server = server(|config| config.webpush.push_when = PushWhen::Always).await;
    server.create_account("bob", "bob-password").await;
    let (mut bob, _) = session(&server, "bob", "bob").await;
    let browser = Browser::new();
    let endpoint = format!("http://{service}/bob");
    register(&mut bob, &endpoint, &browser.keys()).await;
    bob.send("JOIN #ops").await;
    bob.sync().await;
    let mut alice = server.client("alice").await;
    alice.send("JOIN #ops").await;
    alice.sync().await;

    alice
        .send("PRIVMSG #ops :the deploy is done, nobody needed")
        .await;
    alice
        .send("PRIVMSG #ops :bobby and bob_ are other people")
        .await;
    alice
        .send("PRIVMSG #ops :@Bob: can you look at the alerts?")
        .await;
    let line = browser.read(&next_push(&mut pushes).await);
    assert!(
        line.ends_with(" PRIVMSG #ops :@Bob: can you look at the alerts?"),
        "the first push is the mention: {line}"
    );
    // Bob's own line naming himself is no mention; alice's private message is (always).
    bob.send("PRIVMSG #ops :bob here").await;
    alice.send("PRIVMSG bob :and one for you").await;
    let line = browser.read(&next_push(&mut pushes).await);
    assert!(line.ends_with(" PRIVMSG bob :and one for you"), "{line}");
}

#[tokio::test]
async fn an_always_on_account_with_no_session_is_pushed_its_mentions() {
    // The default ("offline"): a connected user's sessions show its mentions, but an always-on
    // user kept present with none connected is still in #ops, and only a push can tell it.
    let (service, mut pushes) = push_service().await;
    let server = server(|_| {}).await;
    server.create_account("bob", "bob-password").await;
    let (mut bob, _) = session(&server, "bob", "bob").await;
    bob.send("ALWAYSON ON").await;
    let on = bob
        .expect(|l| matches!(command_of(l), "ALWAYSON" | "FAIL"))
        .await;
    assert!(on.contains("ALWAYSON ON"), "{on}");
    let browser = Browser::new();
    register(&mut bob, &format!("http://{service}/bob"), &browser.keys()).await;
    bob.send("JOIN #ops").await;
    bob.sync().await;
    let mut alice = server.client("alice").await;
    alice.send("JOIN #ops").await;
    alice.sync().await;
    alice.send("PRIVMSG #ops :bob: while you are here").await;
    alice.sync().await;
    quit(bob).await;

    alice.send("PRIVMSG #ops :the deploy is done").await;
    alice
        .send("PRIVMSG #ops :bob: the alerts, when you are back")
        .await;
    let line = browser.read(&next_push(&mut pushes).await);
    assert!(
        line.ends_with(" PRIVMSG #ops :bob: the alerts, when you are back"),
        "only the mention made while bob had no session is pushed: {line}"
    );
}

#[tokio::test]
async fn a_gone_subscription_is_removed_and_the_cap_on_subscriptions_holds() {
    let (service, mut pushes) = push_service().await;
    let server = server(|config| config.webpush.max_subscriptions = 1).await;
    server.create_account("bob", "bob-password").await;
    let (mut bob, _) = session(&server, "bob", "bob").await;
    let browser = Browser::new();
    let gone = format!("http://{service}/gone/bob");
    register(&mut bob, &gone, &browser.keys()).await;
    // The same endpoint again replaces it; another is one too many.
    let again = register(&mut bob, &gone, &browser.keys()).await;
    assert!(
        again.ends_with(&format!("WEBPUSH REGISTER {gone}")),
        "{again}"
    );
    let other = format!("http://{service}/bob");
    let refused = register(&mut bob, &other, &browser.keys()).await;
    assert!(
        refused.contains(&format!(
            "FAIL WEBPUSH MAX_REGISTRATIONS REGISTER {other} :"
        )),
        "{refused}"
    );
    quit(bob).await;

    let mut alice = server.client("alice").await;
    alice.send("PRIVMSG bob :first").await;
    let push = next_push(&mut pushes).await;
    assert_eq!(push.path, "/gone/bob");

    // The 410 removed it: a new subscription fits again (asked until the removal is done).
    let (mut bob, _) = session(&server, "bob", "bob").await;
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let answer = register(&mut bob, &other, &browser.keys()).await;
        if command_of(&answer) == "WEBPUSH" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never removed: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    quit(bob).await;
    alice.send("PRIVMSG bob :second").await;
    let push = next_push(&mut pushes).await;
    assert_eq!(push.path, "/bob", "nothing more to the gone endpoint");
    assert!(browser.read(&push).ends_with(" PRIVMSG bob :second"));
}

#[tokio::test]
async fn unregister_is_echoed_and_stops_the_pushes() {
    let (service, mut pushes) = push_service().await;
    let server = server(|_| {}).await;
    server.create_account("bob", "bob-password").await;
    server.create_account("carol", "carol-password").await;
    let (mut bob, _) = session(&server, "bob", "bob").await;
    let (mut carol, _) = session(&server, "carol", "carol").await;
    let (bob_browser, carol_browser) = (Browser::new(), Browser::new());
    let bob_endpoint = format!("http://{service}/bob");
    register(&mut bob, &bob_endpoint, &bob_browser.keys()).await;
    register(
        &mut carol,
        &format!("http://{service}/carol"),
        &carol_browser.keys(),
    )
    .await;
    bob.send(&format!("WEBPUSH UNREGISTER {bob_endpoint}"))
        .await;
    let echo = bob.expect(|l| command_of(l) == "WEBPUSH").await;
    assert!(
        echo.ends_with(&format!(" WEBPUSH UNREGISTER {bob_endpoint}")),
        "{echo}"
    );
    // Unknown endpoints are silently ignored: echoed too.
    bob.send("WEBPUSH UNREGISTER https://push.example.org/never")
        .await;
    let echo = bob.expect(|l| command_of(l) == "WEBPUSH").await;
    assert!(
        echo.ends_with(" WEBPUSH UNREGISTER https://push.example.org/never"),
        "{echo}"
    );
    quit(bob).await;
    quit(carol).await;

    let mut alice = server.client("alice").await;
    alice.send("PRIVMSG bob :unheard").await;
    alice.send("PRIVMSG carol :heard").await;
    let push = next_push(&mut pushes).await;
    assert_eq!(push.path, "/carol", "bob's subscription is gone");
    assert!(carol_browser.read(&push).ends_with(" PRIVMSG carol :heard"));
}

#[tokio::test]
async fn endpoints_the_server_may_not_call_and_bad_keys_are_refused() {
    // No allow_insecure_endpoints: the production rules.
    let server = TestServer::start_with(|config| config.webpush.enabled = true).await;
    server.create_account("bob", "bob-password").await;
    let (mut bob, _) = session(&server, "bob", "bob").await;
    let keys = Browser::new().keys();
    for endpoint in [
        "http://127.0.0.1:9/push",
        "https://127.0.0.1/push",
        "https://10.0.0.7/push",
        "https://[::1]/push",
        "https://169.254.169.254/latest/meta-data",
        "ftp://push.example.org/x",
        "not-a-url",
    ] {
        let answer = register(&mut bob, endpoint, &keys).await;
        assert!(
            answer.contains(" FAIL WEBPUSH INVALID_PARAMS REGISTER "),
            "{endpoint}: {answer}"
        );
    }
    for bad in [
        "p256dh=AAAA;auth=AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        keys.replace("auth=", "auth=AA"),
        "auth=AAAAAAAAAAAAAAAAAAAAAA".to_owned(),
    ] {
        let answer = register(&mut bob, "https://push.example.org/x", &bad).await;
        assert!(
            answer.contains(" FAIL WEBPUSH INVALID_PARAMS REGISTER https://push.example.org/x :"),
            "{bad}: {answer}"
        );
    }
    bob.send("WEBPUSH REGISTER https://push.example.org/x")
        .await;
    let answer = bob.expect(|l| command_of(l) == "FAIL").await;
    assert!(
        answer.contains(" FAIL WEBPUSH INVALID_PARAMS REGISTER "),
        "{answer}"
    );
    bob.send("WEBPUSH SUBSCRIBE x").await;
    let answer = bob.expect(|l| command_of(l) == "FAIL").await;
    assert!(
        answer.contains(" FAIL WEBPUSH INVALID_PARAMS SUBSCRIBE :"),
        "{answer}"
    );
}

#[tokio::test]
async fn guests_are_refused() {
    let server = server(|_| {}).await;
    let mut guest = server.client("guest").await;
    let answer = register(
        &mut guest,
        "http://127.0.0.1:9/push",
        &Browser::new().keys(),
    )
    .await;
    assert!(
        answer.contains(" FAIL WEBPUSH ACCOUNT_REQUIRED REGISTER http://127.0.0.1:9/push :"),
        "{answer}"
    );
    guest
        .send("WEBPUSH UNREGISTER http://127.0.0.1:9/push")
        .await;
    let answer = guest.expect(|l| command_of(l) == "FAIL").await;
    assert!(
        answer.contains(" FAIL WEBPUSH ACCOUNT_REQUIRED UNREGISTER "),
        "{answer}"
    );
}

/// The web client's service worker and push module, served from the root (so the worker's
/// scope is the whole client) as JavaScript, with the client's security headers.
#[tokio::test]
async fn the_service_worker_is_served_from_the_root() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server =
        TestServer::start_with(|config| config.web.listen = vec!["127.0.0.1:0".into()]).await;
    for (path, marker) in [
        ("/sw.js", "addEventListener('push'"),
        ("/push.js", "pushManager.subscribe"),
    ] {
        let mut stream = common::tls_connect(
            server.running.web_addrs()[0],
            common::client_config_trusting(&server.generated_cert_pem()),
        )
        .await
        .expect("TLS with the web listener");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut response))
            .await
            .expect("response in time")
            .ok();
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(
            head.contains("content-type: text/javascript; charset=utf-8"),
            "{path}: {head}"
        );
        assert!(head.contains("content-security-policy"), "{path}: {head}");
        assert!(body.contains(&marker.to_ascii_lowercase()), "{path}");
    }
}
