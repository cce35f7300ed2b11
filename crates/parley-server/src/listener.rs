//! Accept loops: one per configured address, each connection served by its own task.
//! TLS and WebSocket listeners will join the plain TCP one here, all feeding [`connection::serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::connection;
use crate::server::Shared;

/// After an accept error (such as running out of file descriptors) wait before trying again,
/// rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tasks: TaskTracker) {
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tasks.spawn(connection::serve(shared.clone(), stream, peer));
            }
            Err(err) => {
                warn!(listener = ?local, %err, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    info!(listener = ?local, "listener closed");
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
