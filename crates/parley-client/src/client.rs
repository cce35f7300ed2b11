//! The async side: one tokio task owns the socket, feeds every line to the shared [`State`],
//! writes what the state answers, sends PINGs when the line is idle, and reconnects with
//! exponential backoff (the state then rejoins its channels). The UI holds a [`Client`] handle
//! and an event receiver; every channel between them is bounded.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use parley_proto::MAX_LINE_LEN;
use parley_trust::{Fingerprint, TrustError, TrustPolicy};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::input::{self, Action, InputError};
use crate::state::{Auth, ConnectionState, State};

/// Events buffered for the UI; past this, "something changed" notices are dropped (the state
/// itself holds everything, so one pending notice is as good as many).
const EVENT_QUEUE: usize = 256;
/// Commands from the UI waiting for the connection task.
const COMMAND_QUEUE: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often time-driven lines (typing `paused`, read markers) are looked for.
const TICK: Duration = Duration::from_secs(1);

/// The trust the clients build from their flags: pinned fingerprints alone when any are given
/// (a pin is the whole point), otherwise the system roots; plus CA files and `known_servers`.
pub fn trust_policy(
    pins: &[Fingerprint],
    ca_files: &[std::path::PathBuf],
    known_servers: Option<std::path::PathBuf>,
) -> Result<TrustPolicy, TrustError> {
    let mut policy = if pins.is_empty() {
        TrustPolicy::system_roots()
    } else {
        TrustPolicy::empty()
    };
    for pin in pins {
        policy = policy.with_pin(*pin);
    }
    for ca in ca_files {
        policy = policy.with_ca_file(ca)?;
    }
    if let Some(path) = known_servers {
        policy = policy.with_known_servers(path);
    }
    Ok(policy)
}

/// How to reach the server.
#[derive(Clone, Debug)]
pub enum Transport {
    /// Plain TCP: only to loopback addresses unless `allow_remote_plain` is set.
    Plain,
    /// TLS verified by the shared trust rules.
    Tls(TrustPolicy),
}

/// Exponential backoff between reconnect attempts.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Delay before attempt `attempt` (1-based): initial, 2x, 4x... capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Everything needed to connect and log in.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub allow_remote_plain: bool,
    pub nick: String,
    pub realname: String,
    pub auth: Auth,
    /// Channels joined after every (re)connect, besides the ones the user was in.
    pub autojoin: Vec<String>,
    pub reconnect: Backoff,
    /// Send a PING after this long without a line from the server...
    pub ping_after: Duration,
    /// ...and give the connection up if nothing arrives this long after it.
    pub ping_timeout: Duration,
    /// Record every new line for `State::take_new_lines` from the start (the line mode), so
    /// not even a line from the first moments of the connection is missed.
    pub record_new_lines: bool,
    /// Where this server's E2E device files live (`paths::e2e_dir`); `None`: no E2E.
    pub e2e_dir: Option<std::path::PathBuf>,
}

impl ClientConfig {
    /// A config with the usual defaults: guest login, 1s-60s backoff, PING after 90s idle.
    pub fn new(host: &str, port: u16, transport: Transport, nick: &str) -> ClientConfig {
        ClientConfig {
            host: host.to_string(),
            port,
            transport,
            allow_remote_plain: false,
            nick: nick.to_string(),
            realname: nick.to_string(),
            auth: Auth::Guest,
            autojoin: Vec::new(),
            reconnect: Backoff::default(),
            ping_after: Duration::from_secs(90),
            ping_timeout: Duration::from_secs(60),
            record_new_lines: false,
            e2e_dir: None,
        }
    }
}

/// What the connection task tells the UI.
#[derive(Clone, Debug)]
pub enum Event {
    /// The state changed: redraw (and, in line mode, print `State::take_new_lines`).
    Changed,
    /// The certificate is not trusted by anything configured. The user may accept it with
    /// `TrustPolicy::remember(server, fingerprint)` and start a new client.
    UntrustedCertificate {
        server: String,
        fingerprint: Fingerprint,
        message: String,
    },
    /// The connection task has ended for good: a quit, or a reason not to retry.
    Closed { reason: Option<String> },
}

/// Errors from the client handle.
#[derive(thiserror::Error, Debug)]
pub enum ClientError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("the connection has been closed; start a new client to connect again")]
    Closed,
    #[error(
        "refusing plain-text IRC to {host}: passwords and messages would cross the network \
         unencrypted. Use TLS (the default), or connect to a loopback address"
    )]
    PlainToRemote { host: String },
    #[error("invalid server address: {0}")]
    BadServer(String),
}

enum Command {
    Send(Vec<String>),
    Quit(Vec<String>),
}

/// A handle to a running connection; cheap to clone.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    state: Arc<Mutex<State>>,
}

impl Client {
    /// Starts the connection task on the current tokio runtime.
    pub fn start(config: ClientConfig) -> Result<(Client, mpsc::Receiver<Event>), ClientError> {
        if config.host.is_empty() || config.host.contains(char::is_whitespace) {
            return Err(ClientError::BadServer(config.host));
        }
        if matches!(config.transport, Transport::Plain)
            && !config.allow_remote_plain
            && !is_loopback(&config.host)
        {
            return Err(ClientError::PlainToRemote { host: config.host });
        }
        let mut state = State::new(&config.nick, &config.realname);
        state.record_new_lines(config.record_new_lines);
        state.set_e2e_dir(config.e2e_dir.clone());
        for channel in &config.autojoin {
            state.want_channel(channel);
        }
        if let Some(last) = config.autojoin.last() {
            state.focus_when_joined(last);
        }
        let state = Arc::new(Mutex::new(state));
        let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
        tokio::spawn(run(config, state.clone(), command_rx, event_tx));
        Ok((
            Client {
                commands: command_tx,
                state,
            },
            event_rx,
        ))
    }

    /// The chat state; hold the guard briefly (the connection task waits for it).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Parses typed input and acts on it (see [`input::parse`]).
    pub async fn input(&self, text: &str) -> Result<(), ClientError> {
        let action = input::parse(text)?;
        self.act(action).await
    }

    /// Acts on an action: sends its lines, or quits for `Action::Quit`.
    pub async fn act(&self, action: Action) -> Result<(), ClientError> {
        if matches!(action, Action::Quit(_)) {
            let lines = self.state.lock().act(action).unwrap_or_default();
            return self
                .commands
                .send(Command::Quit(lines))
                .await
                .map_err(|_| ClientError::Closed);
        }
        let lines = self.state.lock().act(action)?;
        if lines.is_empty() {
            return Ok(());
        }
        self.commands
            .send(Command::Send(lines))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Sends one raw protocol line.
    pub async fn send_raw(&self, line: &str) -> Result<(), ClientError> {
        if line.contains(['\r', '\n', '\0']) {
            return Err(InputError::ControlCharacter.into());
        }
        self.commands
            .send(Command::Send(vec![line.to_string()]))
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Says goodbye and ends the connection task.
    pub async fn quit(&self, reason: Option<&str>) {
        let _ = self.act(Action::Quit(reason.map(str::to_string))).await;
    }
}

/// `localhost` or a loopback IP, where plain text never leaves the machine.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

enum OpenError {
    /// Worth retrying later.
    Transient(String),
    /// Retrying would not help.
    Fatal(String),
    Untrusted {
        server: String,
        fingerprint: Fingerprint,
        message: String,
    },
}

async fn open(config: &ClientConfig) -> Result<(Box<dyn Stream>, bool), OpenError> {
    let connect = async {
        match &config.transport {
            Transport::Plain => TcpStream::connect((config.host.as_str(), config.port))
                .await
                .map(|tcp| (Box::new(tcp) as Box<dyn Stream>, false))
                .map_err(|e| {
                    OpenError::Transient(format!(
                        "cannot connect to {}:{}: {e}",
                        config.host, config.port
                    ))
                }),
            Transport::Tls(policy) => {
                match parley_trust::connect(&config.host, config.port, policy).await {
                    Ok(tls) => Ok((Box::new(tls) as Box<dyn Stream>, true)),
                    Err(error @ TrustError::UnknownCertificate { .. }) => {
                        let message = error.to_string();
                        match error {
                            TrustError::UnknownCertificate {
                                server,
                                fingerprint,
                                ..
                            } => Err(OpenError::Untrusted {
                                server,
                                fingerprint,
                                message,
                            }),
                            _ => Err(OpenError::Fatal(message)),
                        }
                    }
                    Err(error @ (TrustError::Connect { .. } | TrustError::Handshake { .. })) => {
                        Err(OpenError::Transient(error.to_string()))
                    }
                    Err(error) => Err(OpenError::Fatal(error.to_string())),
                }
            }
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(result) => result,
        Err(_) => Err(OpenError::Transient(format!(
            "connecting to {}:{} timed out",
            config.host, config.port
        ))),
    }
}

enum Ended {
    Quit,
    Fatal(String),
    Lost { reason: String, registered: bool },
}

fn notify(events: &mpsc::Sender<Event>) {
    // A full queue already holds a Changed the UI will see; dropping this one loses nothing.
    let _ = events.try_send(Event::Changed);
}

fn set_connection(state: &Mutex<State>, events: &mpsc::Sender<Event>, connection: ConnectionState) {
    state.lock().set_connection(connection);
    notify(events);
}

async fn run(
    config: ClientConfig,
    state: Arc<Mutex<State>>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) {
    let mut attempt = 0u32;
    loop {
        set_connection(&state, &events, ConnectionState::Connecting);
        let reason = match open(&config).await {
            Ok((stream, secure)) => {
                match session(stream, secure, &config, &state, &mut commands, &events).await {
                    Ended::Quit => {
                        state.lock().on_disconnected("you quit");
                        let _ = events.send(Event::Closed { reason: None }).await;
                        return;
                    }
                    Ended::Fatal(reason) => {
                        state.lock().on_disconnected(&reason);
                        set_connection(&state, &events, ConnectionState::Failed(reason.clone()));
                        let _ = events
                            .send(Event::Closed {
                                reason: Some(reason),
                            })
                            .await;
                        return;
                    }
                    Ended::Lost { reason, registered } => {
                        if registered {
                            attempt = 0;
                        }
                        state.lock().on_disconnected(&reason);
                        reason
                    }
                }
            }
            Err(OpenError::Transient(reason)) => {
                state.lock().on_connect_failed(&reason);
                reason
            }
            Err(OpenError::Fatal(reason)) => {
                set_connection(&state, &events, ConnectionState::Failed(reason.clone()));
                let _ = events
                    .send(Event::Closed {
                        reason: Some(reason),
                    })
                    .await;
                return;
            }
            Err(OpenError::Untrusted {
                server,
                fingerprint,
                message,
            }) => {
                set_connection(&state, &events, ConnectionState::Failed(message.clone()));
                let _ = events
                    .send(Event::UntrustedCertificate {
                        server,
                        fingerprint,
                        message: message.clone(),
                    })
                    .await;
                let _ = events
                    .send(Event::Closed {
                        reason: Some(message),
                    })
                    .await;
                return;
            }
        };
        attempt = attempt.saturating_add(1);
        let delay = config.reconnect.delay(attempt);
        tracing::info!(%reason, attempt, ?delay, "connection lost; reconnecting");
        set_connection(
            &state,
            &events,
            ConnectionState::Reconnecting { attempt, delay },
        );
        let wake = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                command = commands.recv() => match command {
                    None | Some(Command::Quit(_)) => {
                        let _ = events.send(Event::Closed { reason: None }).await;
                        return;
                    }
                    // `State::act` refuses to send while disconnected; raw lines are dropped.
                    Some(Command::Send(_)) => {}
                }
            }
        }
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(
    writer: &mut W,
    lines: &[String],
) -> std::io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
    for line in lines {
        tracing::trace!(line = %redact(line), "send");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    writer.write_all(&out).await?;
    writer.flush().await
}

/// Lines as they may be logged: passwords cut out.
fn redact(line: &str) -> &str {
    let upper = line.get(..12).unwrap_or(line).to_ascii_uppercase();
    if upper.starts_with("AUTHENTICATE")
        || upper.starts_with("PASS")
        || upper.starts_with("REGISTER")
    {
        line.split(' ').next().unwrap_or("")
    } else {
        line
    }
}

async fn session(
    stream: Box<dyn Stream>,
    secure: bool,
    config: &ClientConfig,
    state: &Mutex<State>,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<Event>,
) -> Ended {
    let (reader, mut writer) = tokio::io::split(stream);
    let mut reader = LineReader::new(reader);
    let first = state.lock().on_connected(secure, config.auth.clone());
    notify(events);
    let lost = |reason: String, state: &Mutex<State>| Ended::Lost {
        reason,
        registered: *state.lock().connection() == ConnectionState::Connected,
    };
    if let Err(e) = write_lines(&mut writer, &first).await {
        return lost(e.to_string(), state);
    }
    let mut last_heard = Instant::now();
    let mut ping_sent = false;
    let mut registered = false;
    // Typing `paused`, throttled typing notices and read markers wait for time to pass.
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = if ping_sent {
            last_heard + config.ping_after + config.ping_timeout
        } else {
            last_heard + config.ping_after
        };
        tokio::select! {
            line = reader.next_line() => {
                let line = match line {
                    Ok(Some(line)) => line,
                    Ok(None) => return Ended::Lost { reason: "the server closed the connection".into(), registered },
                    Err(e) => return Ended::Lost { reason: e.to_string(), registered },
                };
                last_heard = Instant::now();
                ping_sent = false;
                let (out, fatal) = {
                    let mut state = state.lock();
                    let out = state.handle_line(&line);
                    registered |= *state.connection() == ConnectionState::Connected;
                    (out, state.take_fatal())
                };
                notify(events);
                let written = write_lines(&mut writer, &out).await;
                if let Some(reason) = fatal {
                    let _ = writer.shutdown().await;
                    return Ended::Fatal(reason);
                }
                if let Err(e) = written {
                    return Ended::Lost { reason: e.to_string(), registered };
                }
            }
            command = commands.recv() => match command {
                Some(Command::Send(lines)) => {
                    notify(events);
                    if let Err(e) = write_lines(&mut writer, &lines).await {
                        return Ended::Lost { reason: e.to_string(), registered };
                    }
                }
                other => {
                    let lines = match other { Some(Command::Quit(lines)) => lines, _ => Vec::new() };
                    let _ = write_lines(&mut writer, &lines).await;
                    // Give the server a moment to answer the QUIT and close first.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Ok(Some(line)) = reader.next_line().await {
                            state.lock().handle_line(&line);
                        }
                    }).await;
                    let _ = writer.shutdown().await;
                    return Ended::Quit;
                }
            },
            _ = ticks.tick() => {
                let out = state.lock().tick(chrono::Utc::now());
                if !out.is_empty() {
                    if let Err(e) = write_lines(&mut writer, &out).await {
                        return Ended::Lost { reason: e.to_string(), registered };
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if ping_sent {
                    return Ended::Lost { reason: format!("no answer from the server for {}s", (config.ping_after + config.ping_timeout).as_secs()), registered };
                }
                ping_sent = true;
                if let Err(e) = write_lines(&mut writer, &["PING :parley".to_string()]).await {
                    return Ended::Lost { reason: e.to_string(), registered };
                }
            }
        }
    }
}

/// Splits the byte stream into lines, refusing one longer than the protocol allows before
/// buffering more. `next_line` is cancel-safe: partial data stays in the buffer.
struct LineReader<R> {
    inner: R,
    buffer: Vec<u8>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(inner: R) -> Self {
        LineReader {
            inner,
            buffer: Vec::new(),
        }
    }

    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buffer.drain(..=end).collect();
                let line = String::from_utf8_lossy(&raw);
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(line.to_string()));
            }
            if self.buffer.len() > MAX_LINE_LEN {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the server sent a line longer than the IRC limit",
                ));
            }
            let mut chunk = [0u8; 4096];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let delays: Vec<u64> = (1..=6).map(|a| backoff.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("irc.example.org"));
        assert!(!is_loopback("10.0.0.1"));
    }

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(redact("AUTHENTICATE c2VjcmV0"), "AUTHENTICATE");
        assert_eq!(redact("PASS a:b"), "PASS");
        assert_eq!(redact("PRIVMSG #a :hi"), "PRIVMSG #a :hi");
    }

    #[tokio::test]
    async fn line_reader_splits_and_limits() {
        let data: &[u8] = b"PING a\r\n\r\nPONG b\nrest";
        let mut reader = LineReader::new(data);
        assert_eq!(
            reader.next_line().await.ok().flatten().as_deref(),
            Some("PING a")
        );
        assert_eq!(
            reader.next_line().await.ok().flatten().as_deref(),
            Some("PONG b")
        );
        assert_eq!(reader.next_line().await.ok().flatten(), None);
        let long = vec![b'x'; MAX_LINE_LEN + 5000];
        let mut reader = LineReader::new(long.as_slice());
        assert!(reader.next_line().await.is_err());
    }
}
