//! A loopback TCP forwarder a test puts between a node and a server (nats-server, PostgreSQL)
//! to break the link the ways networks do: a black hole (connections stay open, every byte is
//! silently dropped both ways, as on a dead route where nobody sends a reset) and a refusal
//! (every connection is closed, new ones too). Switching back to forwarding mends the link for
//! the connections that are still open and for new ones.
//!
//! It is a plain task per connection on the test's runtime; dropping the [`Proxy`] stops it
//! and closes every connection through it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the bytes and connections through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass every byte on, both ways.
    Forward,
    /// Keep every connection open (and accept new ones) but drop every byte, both ways.
    BlackHole,
    /// Close every connection, and each new one as soon as it is accepted.
    Refuse,
}

/// A TCP forwarder on `127.0.0.1:<port>` to one upstream address.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    counts: Arc<Counts>,
    accept: tokio::task::JoinHandle<()>,
}

/// Bytes passed on and dropped, across all connections: a test can tell that its fault really
/// hit traffic (a black hole nobody sent anything into proves nothing).
#[derive(Default)]
struct Counts {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    connections: AtomicU64,
}

/// How much one read takes before it is passed on or dropped.
const CHUNK: usize = 16 * 1024;

impl Proxy {
    /// Listen on a free loopback port and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the proxy on loopback");
        let addr = listener.local_addr().expect("the proxy's address");
        let (mode, _) = watch::channel(Mode::Forward);
        let counts = Arc::new(Counts::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            counts.clone(),
        ));
        Proxy {
            addr,
            mode,
            counts,
            accept,
        }
    }

    /// Where clients connect instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://127.0.0.1:<port>` for a node that should reach NATS through this proxy.
    pub fn nats_url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Switch every connection, open or new, to `mode`.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn black_hole(&self) {
        self.set(Mode::BlackHole);
    }

    pub fn forward(&self) {
        self.set(Mode::Forward);
    }

    pub fn refuse(&self) {
        self.set(Mode::Refuse);
    }

    /// Bytes passed on so far, both ways.
    pub fn forwarded(&self) -> u64 {
        self.counts.forwarded.load(Ordering::Relaxed)
    }

    /// Bytes dropped in black-hole mode so far, both ways.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Connections accepted so far (a reconnect shows as one more).
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    /// Stop accepting; the connection tasks see the mode sender gone and close.
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    counts: Arc<Counts>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        counts.connections.fetch_add(1, Ordering::Relaxed);
        if *mode.borrow() == Mode::Refuse {
            drop(client);
            continue;
        }
        let watch = mode.subscribe();
        let counts = counts.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            // Either direction ending ends both: the halves drop and both sockets close.
            tokio::select! {
                _ = pump(client_read, server_write, watch.clone(), &counts) => {}
                _ = pump(server_read, client_write, watch, &counts) => {}
            }
        });
    }
}

/// Copy one direction chunk by chunk, each one passed on or dropped by the mode at the moment it
/// was read; returns on end of stream, an error, or a switch to [`Mode::Refuse`].
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    counts: &Counts,
) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        tokio::select! {
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let current = *mode.borrow();
                match current {
                    Mode::Forward => {
                        if to.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        counts.forwarded.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Mode::BlackHole => {
                        counts.dropped.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Mode::Refuse => return,
                }
            }
            changed = mode.changed() => {
                if changed.is_err() || *mode.borrow() == Mode::Refuse {
                    return;
                }
            }
        }
    }
}
