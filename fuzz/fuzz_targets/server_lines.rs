//! The real server, fed arbitrary bytes by a registered client. One server per process (started
//! on the first input, on 127.0.0.1:0 with a temp data dir and flood control off) and one client
//! connection reused across inputs, so state piles up the way it does in production. Each input
//! is written raw (the framed reader is part of the target), then a `PING` whose `PONG` proves
//! everything before it was handled. A panic in any server task aborts the process (libFuzzer's
//! panic hook); a connection the server closed is replaced by a new one, which must register.
#![no_main]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

/// Longer than any legitimate wait: the slowest reply is a failed login, delayed at most 4 s.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

struct Harness {
    addr: SocketAddr,
    connection: Option<Connection>,
    next_nick: u64,
    next_sync: u64,
}

struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// The runtime, the running server and its data dir live as long as the process.
fn harness() -> &'static Mutex<Harness> {
    static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::Builder::new()
            .prefix("parley-fuzz-")
            .tempdir()
            .expect("temp dir");
        let mut config = parley_server::Config::default();
        config.listen.plain = vec!["127.0.0.1:0".into()];
        config.listen.tls = Vec::new();
        config.web.listen = Vec::new();
        config.metrics.listen = Vec::new();
        config.server.data_dir = dir.path().to_path_buf();
        config.flood.enabled = false;
        config.accounts.require_login = false;
        let running = runtime
            .block_on(parley_server::start(config))
            .expect("server starts");
        let addr = running.plain_addrs()[0];
        // Never dropped: the server must outlive every input.
        std::mem::forget(running);
        std::mem::forget(dir);
        std::mem::forget(runtime);
        Mutex::new(Harness {
            addr,
            connection: None,
            next_nick: 0,
            next_sync: 0,
        })
    })
}

impl Harness {
    /// A registered connection, opening a new one when the last was closed.
    fn connection(&mut self) -> &mut Connection {
        if self.connection.is_none() {
            let stream = TcpStream::connect(self.addr).expect("the server accepts a new client");
            stream
                .set_read_timeout(Some(ANSWER_TIMEOUT))
                .expect("set a read timeout");
            let mut connection = Connection {
                reader: BufReader::new(stream.try_clone().expect("clone the socket")),
                writer: stream,
            };
            // A fresh nick each time: a nick from an earlier input may now name an account.
            let nick = format!("fuzz{}", self.next_nick);
            self.next_nick += 1;
            connection
                .writer
                .write_all(format!("NICK {nick}\r\nUSER {nick} 0 * :fuzz\r\n").as_bytes())
                .expect("write registration");
            connection.read_until(|line| line.contains(" 376 ") || line.contains(" 422 "));
            self.connection = Some(connection);
        }
        self.connection.as_mut().expect("just opened")
    }

    fn feed(&mut self, data: &[u8]) {
        let token = format!("fuzz-sync-{}", self.next_sync);
        self.next_sync += 1;
        let mut bytes = data.to_vec();
        bytes.extend_from_slice(format!("\r\nPING :{token}\r\n").as_bytes());
        let connection = self.connection();
        let answered = connection.writer.write_all(&bytes).is_ok()
            && connection.try_read_until(|line| line.contains(" PONG ") && line.ends_with(&token));
        if !answered {
            // The input made the server close this client (QUIT, an overlong line, ...). That
            // is fine as long as the server itself is alive: a new client must get registered.
            self.connection = None;
            self.connection();
        }
    }
}

impl Connection {
    /// Read until `done` matches a line; false when the server closed the connection first.
    fn try_read_until(&mut self, done: impl Fn(&str) -> bool) -> bool {
        // Bounded: every line costs the server a read of ours, and the timeout ends a silence.
        loop {
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(error)
                    if error.kind() == std::io::ErrorKind::WouldBlock
                        || error.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!("the server did not answer within {ANSWER_TIMEOUT:?}")
                }
                Err(_) => return false,
            }
            let line = String::from_utf8_lossy(&line);
            if done(line.trim_end_matches(['\r', '\n'])) {
                return true;
            }
        }
    }

    fn read_until(&mut self, done: impl Fn(&str) -> bool) {
        assert!(
            self.try_read_until(done),
            "the server closed a fresh client"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut harness = harness()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    harness.feed(data);
});
