//! Accept loops: one per configured address, each connection served by its own task. Plain and TLS
//! listeners feed the same [`connection::serve`]. A connection is admitted (D-lines, then the
//! per-address and per-network limits) as it is accepted, before a TLS handshake costs anything,
//! and a TLS connection is handed over only after its handshake completes, bounded by
//! `limits.handshake_timeout_secs`, so silent or garbage-speaking peers hold few slots, briefly.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Timeout;
use tokio_rustls::{Accept, TlsAcceptor};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::connection;
use crate::server::{Admitted, Shared};

/// After an accept error (such as running out of file descriptors) wait before trying again,
/// rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How a listener's connections are carried.
#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(TlsAcceptor),
}

pub async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    transport: Transport,
    tasks: TaskTracker,
) {
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let peer = canonical_peer(peer);
                let admitted = match shared.admit(peer.ip()) {
                    Ok(admitted) => admitted,
                    Err(refusal) => {
                        match &transport {
                            Transport::Plain => {
                                tasks.spawn(connection::refuse(stream, peer, refusal));
                            }
                            Transport::Tls(_) => {
                                connection::log_refusal(peer, &refusal);
                                drop(stream);
                            }
                        }
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match &transport {
                    Transport::Plain => {
                        let serve =
                            connection::serve(shared.clone(), admitted, stream, peer, false);
                        tasks.spawn(serve);
                    }
                    Transport::Tls(acceptor) => {
                        let handshake = Box::pin(tokio::time::timeout(
                            handshake_timeout(&shared),
                            acceptor.accept(stream),
                        ));
                        tasks.spawn(serve_tls(shared.clone(), admitted, handshake, peer));
                    }
                }
            }
            Err(err) => {
                warn!(listener = ?local, %err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    info!(listener = ?local, "listener closed");
}

/// `limits.handshake_timeout_secs`: how long a TLS (or HTTPS) handshake may take.
pub fn handshake_timeout(shared: &Shared) -> Duration {
    Duration::from_secs(shared.config.limits.handshake_timeout_secs)
}

/// The peer as the address it really is: an IPv4 client of a dual-stack (`[::]`) listener
/// arrives as `::ffff:a.b.c.d`, and would otherwise escape D-lines on its IPv4 address, be
/// counted apart from its own connections over IPv4, and share one /64 with every IPv4 client.
/// Done once, at accept, so everything after (limits, bans, WHOIS, logs) sees one address.
pub fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// Finish a TLS handshake (bounded in time), then serve the connection.
///
/// This task lives as long as the connection, and an async fn keeps room for every value it
/// holds across a wait, moved out or not. So the handshake comes in boxed (a pointer, freed
/// when it ends) and the stream it yields lives only inside the block that hands it on:
/// otherwise the handshake state and a moved-out copy of the stream, over 2 KiB together,
/// would be carried by every idle TLS connection.
async fn serve_tls(
    shared: Arc<Shared>,
    admitted: Admitted,
    handshake: Pin<Box<Timeout<Accept<TcpStream>>>>,
    peer: SocketAddr,
) {
    let connection = {
        let tls = match handshake.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => return debug!(%peer, %err, "TLS handshake failed"),
            Err(_) => return debug!(%peer, "TLS handshake timed out"),
        };
        connection::serve(shared, admitted, tls, peer, true)
    };
    connection.await
}

/// Bind every address before serving any, so a bad address fails the start cleanly.
pub async fn bind_all(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = TcpListener::bind(addr).await.map_err(|err| {
            std::io::Error::new(err.kind(), format!("cannot listen on {addr}: {err}"))
        })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_peers_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:6697".parse().expect("address");
        assert_eq!(
            canonical_peer(mapped),
            "192.0.2.7:6697".parse().expect("address")
        );
        let v6: SocketAddr = "[2001:db8::1]:6697".parse().expect("address");
        assert_eq!(canonical_peer(v6), v6);
    }
}
