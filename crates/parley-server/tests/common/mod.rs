//! Test harness: the real server on a loopback port, and a client that speaks raw IRC over a real
//! socket. `sync` makes tests deterministic without sleeps: the server answers a PING only after
//! everything sent before it has been handled, so the lines before the PONG are all there is.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod pg_instance;
pub mod postgres;
pub mod proxy;
pub mod stock_clients;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parley_server::{Config, Running};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;

/// Any byte stream a client can speak IRC over: plain TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// How long any single expected line may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub running: Running,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// A config for tests: an ephemeral loopback port, a temp data dir, no flood delays.
pub fn test_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config::default();
    config.listen.plain = vec!["127.0.0.1:0".into()];
    // TLS tests turn it on with `enable_tls`; the rest stay on plain text.
    config.listen.tls = Vec::new();
    config.web.listen = Vec::new();
    // Metrics are off by default; tests/metrics.rs turns them on (their recorder is process-wide).
    config.metrics.listen = Vec::new();
    config.server.data_dir = dir.path().to_path_buf();
    config.flood.enabled = false;
    // Most tests chat as guests; the account tests turn logins back on.
    config.accounts.require_login = false;
    // SCRAM credentials at the RFC minimum of rounds: every REGISTER derives one.
    config.accounts.scram_iterations = 4096;
    // Web push is on by default; its `vapid=` key makes CAP LS 302 two lines, which tests that
    // read the capability list as one line do not expect. tests/webpush.rs turns it on.
    config.webpush.enabled = false;
    // `PARLEY_TEST_STORE=postgres`: the same tests on the PostgreSQL store (CI runs both).
    if postgres::server_suite_on_postgres() {
        if let Some(url) = postgres::database_for(&dir.path().display().to_string()) {
            config.accounts.store = parley_server::config::StoreKind::Postgres;
            config.accounts.postgres_url = url;
        }
    }
    config
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(&dir);
        change(&mut config);
        let running = parley_server::start(config).await.expect("server starts");
        let addr = running.plain_addrs()[0];
        TestServer { running, addr, dir }
    }

    /// A raw, unregistered connection.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A registered client, past the welcome burst and its default-channel join.
    pub async fn client(&self, nick: &str) -> Client {
        let mut client = self.connect().await;
        client.register(nick).await;
        client
    }
}

pub struct Client {
    reader: BufReader<ReadHalf<Box<dyn Stream>>>,
    writer: WriteHalf<Box<dyn Stream>>,
    pub nick: String,
}

static SYNC: AtomicU64 = AtomicU64::new(0);

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to server");
        Client::over(Box::new(stream))
    }

    /// A client over an already-connected stream (a TLS session, say).
    pub fn over(stream: Box<dyn Stream>) -> Client {
        let (read, write) = tokio::io::split(stream);
        Client {
            reader: BufReader::new(read),
            writer: write,
            nick: String::new(),
        }
    }

    /// NICK + USER, then wait for the end of the MOTD and (when the server has one) the lobby join.
    pub async fn register(&mut self, nick: &str) {
        self.nick = nick.to_string();
        self.send(&format!("NICK {nick}")).await;
        self.send(&format!("USER {nick} 0 * :Test {nick}")).await;
        self.expect_numeric("001").await;
        // 422 (no MOTD) is the other way a welcome ends; the matcher names it, so it is no error.
        self.expect(|l| matches!(command_of(l), "376" | "422"))
            .await;
        self.sync().await;
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write to server");
    }

    /// The next line, without its line ending; `None` when the server closed the connection.
    pub async fn try_recv(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut line))
            .await
            .unwrap_or_else(|_| panic!("{}: no line from the server within {TIMEOUT:?}", self.nick))
            .expect("read from server");
        if n == 0 {
            return None;
        }
        Some(line.trim_end_matches(['\r', '\n']).to_string())
    }

    pub async fn recv(&mut self) -> String {
        match self.try_recv().await {
            Some(line) => line,
            None => panic!("{}: server closed the connection", self.nick),
        }
    }

    /// Read until a line matches, returning it. Fails with every line seen on timeout, on close,
    /// or when an [error reply](is_error_reply) comes first that the matcher does not match: a
    /// test waiting for a success must not walk past the error that says it failed.
    pub async fn expect(&mut self, matches: impl Fn(&str) -> bool) -> String {
        self.read_until(matches, true).await
    }

    /// Like [`Client::expect`], but walks past error replies too. Only for a test whose error
    /// lines on the way are expected and asserted elsewhere (say why at the call).
    pub async fn expect_skipping_errors(&mut self, matches: impl Fn(&str) -> bool) -> String {
        self.read_until(matches, false).await
    }

    async fn read_until(&mut self, matches: impl Fn(&str) -> bool, strict: bool) -> String {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line)).await;
            match read {
                Err(_) => panic!("{}: expected line never came; saw {seen:#?}", self.nick),
                Ok(Ok(0)) => panic!("{}: connection closed; saw {seen:#?}", self.nick),
                Ok(Err(e)) => panic!("{}: read error {e}; saw {seen:#?}", self.nick),
                Ok(Ok(_)) => {}
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if matches(&line) {
                return line;
            }
            seen.push(line);
            if strict && seen.last().is_some_and(|l| is_error_reply(l)) {
                panic!(
                    "{}: an error reply came before the expected line; saw {seen:#?}",
                    self.nick
                );
            }
        }
    }

    /// Read until a numeric reply with this code: a line whose command is `code` (not a line
    /// that merely contains it, such as a PRIVMSG saying " 403 "). Strict as [`Client::expect`].
    pub async fn expect_numeric(&mut self, code: &str) -> String {
        self.expect(|l| command_of(l) == code).await
    }

    /// Everything the server sends before answering a fresh PING: all replies to what was sent
    /// before, and everything others had caused by then.
    pub async fn sync(&mut self) -> Vec<String> {
        let token = format!("sync-{}", SYNC.fetch_add(1, Ordering::Relaxed));
        self.send(&format!("PING {token}")).await;
        let mut lines = Vec::new();
        loop {
            let line = self.recv().await;
            if line.contains(" PONG ") && line.ends_with(&token) {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Read until the server closes the connection; returns the lines seen on the way.
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.try_recv().await {
            lines.push(line);
        }
        lines
    }
}

/// The command of a wire line: its first word after the optional `@tags` and `:source`
/// (a numeric's three digits, or `PRIVMSG`, `FAIL` ...); "" for a line with none.
pub fn command_of(line: &str) -> &str {
    let mut words = line.split(' ').filter(|w| !w.is_empty());
    let mut word = words.next();
    if word.is_some_and(|w| w.starts_with('@')) {
        word = words.next();
    }
    if word.is_some_and(|w| w.starts_with(':')) {
        word = words.next();
    }
    word.unwrap_or("")
}

/// Whether a line is an error reply: a numeric from 400 to 599 (the error numerics of
/// modern.ircdocs.horse, all sent to the client they answer), a standard reply `FAIL`
/// (ircv3.net/specs/extensions/standard-replies), or `ERROR` (the server closing the link).
/// `WARN` and `NOTE` are not errors.
pub fn is_error_reply(line: &str) -> bool {
    let command = command_of(line);
    match command {
        "FAIL" | "ERROR" => true,
        _ => {
            command.len() == 3
                && command
                    .parse::<u16>()
                    .is_ok_and(|code| (400..=599).contains(&code))
        }
    }
}

/// Lines whose command (after any tags and source) is `command`.
pub fn with_command<'a>(lines: &'a [String], command: &str) -> Vec<&'a String> {
    lines.iter().filter(|l| command_of(l) == command).collect()
}

impl TestServer {
    /// Several registered clients, each already past the lobby joins of the ones after it, so
    /// every `sync` starts from a quiet connection.
    pub async fn clients<const N: usize>(&self, nicks: [&str; N]) -> [Client; N] {
        let mut clients = Vec::with_capacity(N);
        for nick in nicks {
            clients.push(self.client(nick).await);
        }
        for client in &mut clients {
            client.sync().await;
        }
        match clients.try_into() {
            Ok(clients) => clients,
            Err(_) => unreachable!("exactly N clients were made"),
        }
    }
}

impl TestServer {
    /// Register `account` with REGISTER before connection registration (CAP LS holds
    /// registration until CAP END, so REGISTER lands first even where guests are refused), then
    /// finish registration: the client is logged in.
    pub async fn register_new(&self, account: &str, password: &str) -> Client {
        let mut c = self.register_only(account, password).await;
        c.send("CAP END").await;
        c.expect_numeric("001").await;
        c.sync().await;
        c
    }

    /// Register `account` with REGISTER before connection registration, then leave.
    pub async fn create_account(&self, account: &str, password: &str) {
        let mut c = self.register_only(account, password).await;
        c.send("QUIT").await;
        c.expect_closed().await;
    }

    async fn register_only(&self, account: &str, password: &str) -> Client {
        let mut c = self.connect().await;
        c.nick = account.to_string();
        c.send("CAP LS 302").await;
        c.send(&format!("NICK {account}")).await;
        c.send(&format!("USER {account} 0 * :{account}")).await;
        c.send(&format!("REGISTER * * {password}")).await;
        c.expect(|l| l.contains("REGISTER SUCCESS")).await;
        c
    }
}

/// Register (or log in to) `nick` as an account of the same name with the password
/// `<nick>-password`, holding registration with CAP until then; returns the registered client.
pub async fn account(addr: SocketAddr, nick: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.nick = nick.to_string();
    c.send("CAP LS 302").await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send(&format!("REGISTER * * {nick}-password")).await;
    let reply = c.expect(|l| l.contains("REGISTER ")).await;
    if reply.contains("ACCOUNT_EXISTS") {
        // Registration is held by CAP LS, so no CAP END here (see `Client::req_sasl`).
        c.send("CAP REQ :sasl").await;
        c.expect(|l| command_of(l) == "CAP" && l.ends_with(" ACK :sasl"))
            .await;
        c.send("AUTHENTICATE PLAIN").await;
        c.expect(|l| l == "AUTHENTICATE +").await;
        c.send(&format!(
            "AUTHENTICATE {}",
            sasl_plain(nick, &format!("{nick}-password"))
        ))
        .await;
        c.expect_numeric("903").await;
    }
    c.send("CAP END").await;
    c.expect_numeric("001").await;
    c.sync().await;
    c
}

/// Turn on a TLS listener on an ephemeral loopback port (the certificate is generated into the
/// server's temp data dir on start).
pub fn enable_tls(config: &mut Config) {
    config.listen.tls = vec!["127.0.0.1:0".into()];
}

/// A rustls client config that trusts exactly the PEM certificate(s) in `cert_pem`.
pub fn client_config_trusting(cert_pem: &[u8]) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("usable root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

impl TestServer {
    pub fn tls_addr(&self) -> SocketAddr {
        self.running.tls_addrs()[0]
    }

    /// The generated certificate, as the server wrote it into its data dir.
    pub fn generated_cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("tls").join("cert.pem")).expect("generated cert")
    }

    /// A TLS connection that trusts the server's generated certificate, for `localhost`.
    pub async fn connect_tls(&self) -> Client {
        let config = client_config_trusting(&self.generated_cert_pem());
        let tls = tls_connect(self.tls_addr(), config)
            .await
            .expect("TLS handshake");
        Client::over(Box::new(tls))
    }
}

/// A TLS handshake to `addr` as `localhost`; returns the stream or the handshake error.
pub async fn tls_connect(
    addr: SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("valid name");
    tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// SHA-256 fingerprint of the leaf certificate a TLS stream was given.
pub fn peer_fingerprint(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let (_, session) = tls.get_ref();
    let certs = session
        .peer_certificates()
        .expect("server sent certificates");
    parley_server::tls::fingerprint(&certs[0])
}

/// A plain connection to `addr` made from the local address `from` (such as 127.0.0.2), to test
/// policies that depend on where a client comes from.
pub async fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind the local address");
    let stream = socket.connect(addr).await.expect("connect to server");
    Client::over(Box::new(stream))
}

/// SASL PLAIN's payload: `\0account\0password`, base64-encoded.
pub fn sasl_plain(account: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"))
}

/// Log in to `account` with SASL PLAIN before `CAP END`, sending NICK `nick` first, as a
/// bouncer-like client does, and asking for `caps` too. The client's nick is the one the
/// welcome names (a session of a present user gets its nick). Returns the client and every
/// line of its welcome and what follows at once.
pub async fn sasl_session(
    addr: SocketAddr,
    nick: &str,
    account: &str,
    password: &str,
    caps: &str,
) -> (Client, Vec<String>) {
    let mut c = Client::connect(addr).await;
    c.send("CAP LS 302").await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send(format!("CAP REQ :sasl {caps}").trim_end()).await;
    // A session asking for the nick its user holds gets a 433 first: walked past.
    c.expect_skipping_errors(|l| l.contains(" CAP ") && l.contains(" ACK "))
        .await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect_skipping_errors(|l| l == "AUTHENTICATE +").await;
    c.send(&format!("AUTHENTICATE {}", sasl_plain(account, password)))
        .await;
    c.expect_numeric("903").await;
    c.send("CAP END").await;
    let welcome = c.expect_skipping_errors(|l| command_of(l) == "001").await;
    c.nick = welcome.split(' ').nth(2).unwrap_or("").to_string();
    let mut seen = vec![welcome];
    seen.extend(c.sync().await);
    (c, seen)
}

/// Start a login the way irssi does: SASL, then `CAP END`, and only then NICK and USER; returns
/// once those are sent, before any answer to them.
pub async fn sasl_then_nick(addr: SocketAddr, nick: &str, account: &str, password: &str) -> Client {
    let mut c = Client::connect(addr).await;
    c.send("CAP LS 302").await;
    c.send("CAP REQ :sasl").await;
    c.expect(|l| l.contains(" CAP ") && l.contains(" ACK "))
        .await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect(|l| l == "AUTHENTICATE +").await;
    c.send(&format!("AUTHENTICATE {}", sasl_plain(account, password)))
        .await;
    c.expect_numeric("903").await;
    c.send("CAP END").await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c
}

/// Log in the way irssi does ([`sasl_then_nick`]). Returns the client and every line up to the
/// welcome and what follows at once.
pub async fn sasl_before_nick(
    addr: SocketAddr,
    nick: &str,
    account: &str,
    password: &str,
) -> (Client, Vec<String>) {
    let mut c = sasl_then_nick(addr, nick, account, password).await;
    let mut seen = Vec::new();
    loop {
        let line = c.recv().await;
        let done = command_of(&line) == "001";
        seen.push(line);
        if done {
            break;
        }
    }
    c.nick = nick.to_string();
    seen.extend(c.sync().await);
    (c, seen)
}

impl Client {
    /// Enable the `sasl` capability, which AUTHENTICATE requires ("The client MUST enable the
    /// sasl capability before using the AUTHENTICATE command", SASL 3.1), then end capability
    /// negotiation again so registration is not held for a CAP END.
    pub async fn req_sasl(&mut self) {
        self.send("CAP REQ :sasl").await;
        self.expect(|l| command_of(l) == "CAP" && l.ends_with(" ACK :sasl"))
            .await;
        self.send("CAP END").await;
    }

    /// Full registration with a SASL PLAIN login, as a SASL-capable client does it; returns
    /// everything up to the end of the welcome.
    pub async fn login_sasl(&mut self, nick: &str, account: &str, password: &str) -> Vec<String> {
        self.nick = nick.to_string();
        self.send("CAP LS 302").await;
        self.expect(|l| l.contains(" CAP * LS ")).await;
        self.send(&format!("NICK {nick}")).await;
        self.send(&format!("USER {nick} 0 * :Test {nick}")).await;
        self.send("CAP REQ :sasl").await;
        self.expect(|l| l.contains(" CAP ") && l.contains(" ACK "))
            .await;
        self.send("AUTHENTICATE PLAIN").await;
        assert_eq!(self.recv().await, "AUTHENTICATE +");
        self.send(&format!("AUTHENTICATE {}", sasl_plain(account, password)))
            .await;
        let mut seen = vec![self.expect(|l| command_of(l) == "900").await];
        seen.push(self.expect_numeric("903").await);
        self.send("CAP END").await;
        seen.push(self.expect_numeric("001").await);
        seen.extend(self.sync().await);
        seen
    }
}

impl Client {
    /// The next line, or `None` at EOF or on a read error (a connection that died under us).
    pub async fn try_recv_lossy(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
        }
    }
}

/// A free loopback port, found by binding port 0 and letting go of it.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A config file for the real `parleyd` binary: plain text on `port`, no TLS, web or metrics
/// listener, guests allowed, no flood delays, data in `dir`.
pub fn write_binary_config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("parley.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\ndata_dir = {:?}\n[listen]\nplain = [\"127.0.0.1:{port}\"]\ntls = []\n\
             [web]\nlisten = []\n[accounts]\nrequire_login = false\n{}[flood]\nenabled = false\n",
            dir.display().to_string(),
            binary_store_lines(dir),
        ),
    )
    .expect("write config");
    path
}

/// Environment overrides that put a `parleyd` command (the admin CLI) for `dir` on the same
/// PostgreSQL database as the test's server, when the suite runs there; none otherwise.
pub fn store_env(dir: &std::path::Path) -> Vec<(String, String)> {
    if !postgres::server_suite_on_postgres() {
        return Vec::new();
    }
    match postgres::database_for(&dir.display().to_string()) {
        Some(url) => vec![
            ("PARLEY_ACCOUNTS__STORE".to_owned(), "postgres".to_owned()),
            ("PARLEY_ACCOUNTS__POSTGRES_URL".to_owned(), url),
        ],
        None => Vec::new(),
    }
}

/// The `[accounts]` lines that put the binary on PostgreSQL when the suite runs there.
fn binary_store_lines(dir: &std::path::Path) -> String {
    if !postgres::server_suite_on_postgres() {
        return String::new();
    }
    match postgres::database_for(&dir.display().to_string()) {
        Some(url) => format!("store = \"postgres\"\npostgres_url = {url:?}\n"),
        None => String::new(),
    }
}

/// Start the real `parleyd` with `config` (and `PARLEY_SECTION__KEY` overrides); killed on drop.
pub fn spawn_parleyd(config: &std::path::Path, envs: &[(&str, &str)]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(config)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start parleyd")
}

/// Wait (bounded) until something accepts connections on the loopback `port`.
pub async fn wait_listening(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listening on {addr}");
}

/// A raw HTTP/1.1 request; returns the status code and the body.
pub async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to metrics");
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read response");
        response
    };
    let response = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .expect("metrics answered in time");
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse().ok())
        .expect("a Content-Length");
    if method != "HEAD" {
        assert_eq!(length, body.len(), "Content-Length matches the body");
    }
    (status, body.to_string())
}

/// The value of an unlabelled sample in Prometheus text, 0 when absent (not yet recorded).
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// `/metrics`, which must answer 200.
pub async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// An admin command's output after its first line, which names the data directory it used
/// (every admin command prints one), when that is `dir`.
pub fn after_data_dir_line<'a>(out: &'a str, dir: &std::path::Path) -> &'a str {
    out.strip_prefix(&format!("data directory: {}\n", dir.display()))
        .unwrap_or(out)
}

/// Run the admin CLI (`parleyd ARGS`) with a config file pointing at `dir` and the test store,
/// feeding `stdin`; returns (success, stdout, stderr).
pub async fn admin_cli(
    dir: &std::path::Path,
    args: &[&str],
    stdin: &str,
) -> (bool, String, String) {
    let config = dir.join("parley.toml");
    std::fs::write(
        &config,
        format!("[server]\ndata_dir = {:?}\n", dir.display().to_string()),
    )
    .expect("write config");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("--config")
        .arg(&config)
        .args(args)
        .envs(store_env(dir))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run parleyd");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("parleyd finishes")
        .expect("parleyd output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
