//! Parley's server as a library: `parleyd` is a thin binary over [`start`], and the integration
//! tests start the very same server on loopback ports.
//!
//! Layout: `listener` accepts, `connection` frames and times a client's life, `command/` holds
//! one file per command family, `state/` the in-memory world, `outbound` the bounded send buffers.

mod command;
pub mod config;
mod connection;
mod context;
mod flood;
mod isupport;
mod listener;
mod outbound;
mod registration;
mod server;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use config::{Config, ConfigError};
pub use server::VERSION;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "invalid listen address `{0}` in listen.plain (expected an address like 127.0.0.1:6667)"
    )]
    BadAddress(String),
    #[error("{0}")]
    Bind(#[from] std::io::Error),
}

/// A started server. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    shared: Arc<server::Shared>,
    plain_addrs: Vec<SocketAddr>,
    tasks: TaskTracker,
}

/// Bind the configured listeners and start serving on the current tokio runtime.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let mut addrs = Vec::new();
    for text in &config.listen.plain {
        addrs.push(
            text.parse::<SocketAddr>()
                .map_err(|_| StartError::BadAddress(text.clone()))?,
        );
    }
    let listeners = listener::bind_all(&addrs).await?;
    let shared = Arc::new(server::Shared::new(config));
    let tasks = TaskTracker::new();
    let mut plain_addrs = Vec::new();
    for l in listeners {
        plain_addrs.push(l.local_addr()?);
        tasks.spawn(listener::accept_loop(shared.clone(), l, tasks.clone()));
    }
    Ok(Running {
        shared,
        plain_addrs,
        tasks,
    })
}

impl Running {
    /// The addresses actually bound (useful with port 0).
    pub fn plain_addrs(&self) -> &[SocketAddr] {
        &self.plain_addrs
    }

    /// Number of open client connections.
    pub fn connection_count(&self) -> usize {
        self.shared.connection_count()
    }

    /// Ask every listener and connection to stop; clients get `ERROR :Server shutting down`.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Wait until every listener and connection has finished, or `grace` has passed.
    pub async fn wait(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}
