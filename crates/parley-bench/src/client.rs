//! One benchmark client: a plain or TLS connection (optionally from a chosen loopback source
//! address, so tens of thousands of connections do not run out of ports), a line reader that
//! hands out borrowed lines without allocating, and registration as a guest or with SASL PLAIN or
//! SCRAM-SHA-256.
//!
//! Readers answer the server's PING themselves only where a scenario asks them to; the hot loops
//! stay in the scenarios, which know what they are looking for.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use base64::Engine;
use parley_proto::sasl;
use parley_proto::scram::{self, ClientExchange, SaltedPassword};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// Longest line (or NAMES burst fragment) the reader accepts before calling the server broken.
const MAX_LINE: usize = 1 << 20;
/// Initial read buffer; small so tens of thousands of idle clients stay cheap.
const READ_BUFFER: usize = 2048;
/// How long registration may take before the client gives up.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how clients connect.
#[derive(Clone)]
pub struct Endpoint {
    /// The server's addresses, one per node of a cluster (or the same one repeated); client
    /// `index` uses `addrs[index % addrs.len()]`, so clients are spread over them round-robin.
    pub addrs: Vec<SocketAddr>,
    /// When set, connections use TLS with this config (which pins the server's certificate).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Local source addresses to spread connections over; empty means "let the kernel choose".
    pub sources: Vec<IpAddr>,
}

impl Endpoint {
    pub fn plain(addr: SocketAddr) -> Self {
        Endpoint::spread(vec![addr])
    }

    /// Clients spread round-robin over several addresses (a cluster's nodes).
    pub fn spread(addrs: Vec<SocketAddr>) -> Self {
        Endpoint {
            addrs,
            tls: None,
            sources: Vec::new(),
        }
    }

    /// How many addresses the clients are spread over.
    pub fn nodes(&self) -> usize {
        self.addrs.len().max(1)
    }

    /// Which of [`Endpoint::addrs`] client number `index` connects to.
    pub fn node_of(&self, index: usize) -> usize {
        index % self.nodes()
    }

    /// Connect client number `index` (which picks its server address and its source address
    /// round-robin).
    pub async fn connect(&self, index: usize) -> Result<Conn> {
        let addr = *self
            .addrs
            .get(self.node_of(index))
            .context("no server address to connect to")?;
        let tcp = match self.sources.get(index % self.sources.len().max(1)) {
            Some(source) => {
                let socket = TcpSocket::new_v4().context("creating a socket")?;
                socket
                    .bind(SocketAddr::new(*source, 0))
                    .with_context(|| format!("binding the source address {source}"))?;
                socket
                    .connect(addr)
                    .await
                    .with_context(|| format!("connecting to {addr} from {source}"))?
            }
            None => TcpStream::connect(addr)
                .await
                .with_context(|| format!("connecting to {addr}"))?,
        };
        tcp.set_nodelay(true).ok();
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let name = rustls_pki_types::ServerName::try_from("localhost")
                    .context("the fixed server name `localhost` is valid")?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {addr}"))?;
                Stream::Tls(Box::new(tls))
            }
        };
        Ok(Conn::new(stream))
    }
}

/// A rustls client config that accepts exactly the certificate with this SHA-256 fingerprint.
pub fn pinned_tls_config(fingerprint: &str, addr: SocketAddr) -> Result<Arc<rustls::ClientConfig>> {
    let pin = parley_trust::Fingerprint::parse(fingerprint)
        .with_context(|| format!("parsing the fingerprint `{fingerprint}`"))?;
    let policy = parley_trust::TrustPolicy::empty().with_pin(pin);
    let verification = policy
        .client_config("localhost", addr.port())
        .context("building the TLS client config")?;
    Ok(verification.config)
}

/// Plain TCP or TLS, as one type so the scenarios do not care.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Reads CRLF- (or LF-) terminated lines, lending each one out of its own buffer.
pub struct LineReader {
    inner: ReadHalf<Stream>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes received so far, for scenarios that report traffic.
    pub bytes: u64,
}

impl LineReader {
    /// A reader over the read half of any [`Stream`] (the ceiling relay reads its clients so).
    pub fn from_read_half(inner: ReadHalf<Stream>) -> Self {
        Self::new(inner)
    }

    fn new(inner: ReadHalf<Stream>) -> Self {
        LineReader {
            inner,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            bytes: 0,
        }
    }

    /// True when every received byte has been handed out as a line (the next call will read).
    pub fn drained(&self) -> bool {
        self.start == self.end
    }

    /// The next line without its line ending; `None` when the server closed the connection.
    pub async fn next_line(&mut self) -> io::Result<Option<&[u8]>> {
        loop {
            if let Some(pos) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line_start = self.start;
                let mut line_end = self.start + pos;
                self.start = line_end + 1;
                if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                return Ok(Some(&self.buf[line_start..line_end]));
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                if self.buf.len() >= MAX_LINE {
                    return Err(io::Error::other("the server sent a line longer than 1 MiB"));
                }
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
            let n = self.inner.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
            self.bytes += n as u64;
        }
    }
}

/// A connected client: its line reader and its write half.
pub struct Conn {
    pub reader: LineReader,
    pub writer: WriteHalf<Stream>,
}

/// How a client logs in.
#[derive(Clone, Debug)]
pub enum Login {
    Guest,
    SaslPlain {
        account: String,
        password: String,
        pipelined: bool,
    },
    /// SASL SCRAM-SHA-256, with the run's shared [`SaltedCache`].
    SaslScram {
        account: String,
        password: String,
        cache: SaltedCache,
        pipelined: bool,
    },
}

/// What a client sends first when it logs in with SASL: CAP negotiation and registration, then
/// the mechanism. A pipelining client (gamja and goguma do this) also sends its first SASL
/// message without waiting for the CAP ACK or the server's `AUTHENTICATE +`: the server handles
/// lines in order, so by then `sasl` is acknowledged and the mechanism chosen.
fn sasl_opening(nick: &str, mechanism: &str, first: Option<&str>) -> String {
    let mut text =
        format!("CAP LS 302\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nCAP REQ :sasl\r\n");
    if let Some(first) = first {
        text.push_str(&format!("AUTHENTICATE {mechanism}\r\n"));
        text.push_str(&sasl_lines(first));
    }
    text
}

/// SCRAM salted passwords by account, salt and rounds, shared by every client of a run. PBKDF2 is
/// the client's cost (real clients cache it the same way), so with it cached the connect scenario
/// measures the server's side of SCRAM: a lookup and a few hashes per login.
pub type SaltedCache = Arc<parking_lot::Mutex<HashMap<(String, Vec<u8>, u32), SaltedPassword>>>;

/// Numbers SCRAM client nonces, which need only be unique here (the server adds its own random
/// half).
static NONCES: AtomicU64 = AtomicU64::new(0);

/// `text` as SASL sends it: base64 `AUTHENTICATE` lines of 400 characters, `+` after a full one.
fn sasl_lines(text: &str) -> String {
    sasl::encode(text.as_bytes())
        .iter()
        .map(|chunk| format!("AUTHENTICATE {chunk}\r\n"))
        .collect()
}

impl Conn {
    fn new(stream: Stream) -> Self {
        let (read, write) = tokio::io::split(stream);
        Conn {
            reader: LineReader::new(read),
            writer: write,
        }
    }

    pub async fn send(&mut self, text: &str) -> Result<()> {
        self.writer
            .write_all(text.as_bytes())
            .await
            .context("writing to the server")
    }

    /// Read until a line satisfies `done`, answering PINGs; fails on close, ERROR or timeout.
    pub async fn expect(&mut self, what: &str, done: impl Fn(&[u8]) -> bool) -> Result<()> {
        self.expect_line(what, done).await.map(drop)
    }

    /// [`Conn::expect`], returning the line that satisfied `done`.
    pub async fn expect_line(
        &mut self,
        what: &str,
        done: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.reader.next_line())
                .await
                .with_context(|| format!("waiting for {what}: timed out"))?
                .with_context(|| format!("waiting for {what}"))?;
            let Some(line) = line else {
                bail!("waiting for {what}: the server closed the connection");
            };
            if done(line) {
                return Ok(line.to_vec());
            }
            if let Some(token) = line.strip_prefix(b"PING ") {
                let reply = [b"PONG ", token, b"\r\n"].concat();
                self.writer
                    .write_all(&reply)
                    .await
                    .context("answering PING")?;
                continue;
            }
            if line.starts_with(b"ERROR") {
                bail!("waiting for {what}: {}", String::from_utf8_lossy(line));
            }
            if let Some(code) = numeric(line) {
                // Errors that mean this registration cannot finish.
                if matches!(
                    code,
                    b"432" | b"433" | b"436" | b"465" | b"904" | b"905" | b"906"
                ) {
                    bail!("waiting for {what}: {}", String::from_utf8_lossy(line));
                }
            }
        }
    }

    /// Register with `nick`, logging in as asked, and wait for the end of the MOTD.
    pub async fn register(&mut self, nick: &str, login: &Login) -> Result<()> {
        match login {
            Login::Guest => {
                self.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n"))
                    .await?;
            }
            Login::SaslScram {
                account,
                password,
                cache,
                pipelined,
            } => {
                self.scram_login(nick, account, password, cache, *pipelined)
                    .await?;
            }
            Login::SaslPlain {
                account,
                password,
                pipelined: true,
            } => {
                // One write: the whole login and `CAP END`.
                let mut text =
                    sasl_opening(nick, "PLAIN", Some(&format!("\0{account}\0{password}")));
                text.push_str("CAP END\r\n");
                self.send(&text).await?;
                self.expect("SASL success (903)", |l| numeric(l) == Some(b"903"))
                    .await?;
            }
            Login::SaslPlain {
                account,
                password,
                pipelined: false,
            } => {
                self.send(&sasl_opening(nick, "PLAIN", None)).await?;
                self.expect("CAP ACK sasl", |l| contains(l, b" ACK "))
                    .await?;
                self.send("AUTHENTICATE PLAIN\r\n").await?;
                self.expect("AUTHENTICATE +", |l| l.starts_with(b"AUTHENTICATE +"))
                    .await?;
                self.send(&sasl_lines(&format!("\0{account}\0{password}")))
                    .await?;
                self.expect("SASL success (903)", |l| numeric(l) == Some(b"903"))
                    .await?;
                self.send("CAP END\r\n").await?;
            }
        }
        self.expect("the welcome (001)", |l| numeric(l) == Some(b"001"))
            .await?;
        self.expect("the end of the MOTD (376/422)", |l| {
            matches!(numeric(l), Some(b"376" | b"422"))
        })
        .await
    }

    /// SASL SCRAM-SHA-256 up to 903 and `CAP END`, checking the server's signature. Waiting
    /// for every answer that takes six round trips; pipelined, three: the opening with the
    /// client's first message, its final message, and `AUTHENTICATE +` with `CAP END` once the
    /// server's signature checks out.
    async fn scram_login(
        &mut self,
        nick: &str,
        account: &str,
        password: &str,
        cache: &SaltedCache,
        pipelined: bool,
    ) -> Result<()> {
        let nonce = format!("bench{}", NONCES.fetch_add(1, Ordering::Relaxed));
        let exchange = ClientExchange::new(account, &nonce)?;
        if pipelined {
            self.send(&sasl_opening(
                nick,
                scram::MECHANISM,
                Some(&exchange.client_first()),
            ))
            .await?;
        } else {
            self.send(&sasl_opening(nick, scram::MECHANISM, None))
                .await?;
            self.expect("CAP ACK sasl", |l| contains(l, b" ACK "))
                .await?;
            self.send(&format!("AUTHENTICATE {}\r\n", scram::MECHANISM))
                .await?;
        }
        self.expect("AUTHENTICATE +", |l| l.starts_with(b"AUTHENTICATE +"))
            .await?;
        if !pipelined {
            self.send(&sasl_lines(&exchange.client_first())).await?;
        }
        let server_first = self.sasl_payload("the SCRAM challenge").await?;
        let challenge = exchange.server_first(&server_first, scram::MAX_ITERATIONS)?;
        let key = (
            account.to_owned(),
            challenge.salt().to_vec(),
            challenge.iterations(),
        );
        let cached = cache.lock().get(&key).cloned();
        let salted = match cached {
            Some(salted) => salted,
            None => {
                let (password, salt, iterations) = (password.to_owned(), key.1.clone(), key.2);
                let salted = tokio::task::spawn_blocking(move || {
                    SaltedPassword::derive(&password, &salt, iterations)
                })
                .await
                .context("the PBKDF2 task failed")??;
                cache.lock().insert(key, salted.clone());
                salted
            }
        };
        let response = challenge.respond(&salted);
        self.send(&sasl_lines(response.message())).await?;
        let server_final = self.sasl_payload("the SCRAM signature").await?;
        response.verify_server_final(&server_final)?;
        if pipelined {
            self.send("AUTHENTICATE +\r\nCAP END\r\n").await?;
            return self
                .expect("SASL success (903)", |l| numeric(l) == Some(b"903"))
                .await;
        }
        self.send("AUTHENTICATE +\r\n").await?;
        self.expect("SASL success (903)", |l| numeric(l) == Some(b"903"))
            .await?;
        self.send("CAP END\r\n").await
    }

    /// The server's next SASL payload (`AUTHENTICATE <base64>`, maybe in 400-character chunks),
    /// decoded.
    async fn sasl_payload(&mut self, what: &str) -> Result<String> {
        let mut encoded = String::new();
        loop {
            let line = self
                .expect_line(what, |l| l.starts_with(b"AUTHENTICATE "))
                .await?;
            let chunk = std::str::from_utf8(&line[b"AUTHENTICATE ".len()..])
                .with_context(|| format!("{what}: not base64"))?;
            match sasl::push_chunk(&mut encoded, chunk, 8192) {
                Err(sasl::TooLong { .. }) => {
                    bail!("{what}: the server's SASL payload is over 8 KiB")
                }
                Ok(sasl::Progress::Partial) => {}
                Ok(sasl::Progress::Complete) => break,
            }
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .with_context(|| format!("{what}: not base64"))?;
        String::from_utf8(bytes).with_context(|| format!("{what}: not UTF-8"))
    }

    /// Join `channel` and wait for its end of NAMES.
    pub async fn join(&mut self, channel: &str) -> Result<()> {
        self.send(&format!("JOIN {channel}\r\n")).await?;
        self.expect("the end of NAMES (366)", |l| {
            is_end_of_names(l, channel.as_bytes())
        })
        .await
    }

    /// Say goodbye and wait (briefly) for the server to close first, so the TIME_WAIT lands on
    /// the server's side and repeated runs do not run out of local ports.
    pub async fn quit(mut self) {
        if self.send("QUIT :bench done\r\n").await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(Some(_)) = self.reader.next_line().await {}
        })
        .await;
    }
}

/// The numeric code of a server reply (`:server 001 nick ...`), if it is one.
pub fn numeric(line: &[u8]) -> Option<&[u8]> {
    let rest = strip_tags_and_source(line);
    let code = rest.get(..3)?;
    if code.iter().all(u8::is_ascii_digit) && rest.get(3).is_none_or(|b| *b == b' ') {
        Some(code)
    } else {
        None
    }
}

/// The line after any `@tags` and `:source`.
pub fn strip_tags_and_source(mut line: &[u8]) -> &[u8] {
    for marker in [b'@', b':'] {
        if line.first() == Some(&marker) {
            line = match memchr::memchr(b' ', line) {
                Some(space) => &line[space + 1..],
                None => &[],
            };
        }
    }
    line
}

/// Is this `366 <nick> <channel> :End of /NAMES list` for `channel` (case-insensitively)?
pub fn is_end_of_names(line: &[u8], channel: &[u8]) -> bool {
    if numeric(line) != Some(b"366") {
        return false;
    }
    let rest = strip_tags_and_source(line);
    rest.split(|b| *b == b' ')
        .nth(2)
        .is_some_and(|c| c.eq_ignore_ascii_case(channel))
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// Raise this process's soft open-file limit to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
}
