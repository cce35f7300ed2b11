//! Parley's server as a library: `parleyd` is a thin binary over [`start`], and the integration
//! tests start the very same server on loopback ports.
//!
//! # Layers
//!
//! The top-level modules form a stack: each uses only modules of its own layer or below, and
//! none use each other in a circle (`tests/layering.rs` checks both, with this same table).
//! Bottom to top:
//!
//! | layer | modules | what they hold |
//! |---|---|---|
//! | facts and persistence | `clock`, `config`, `data_dir`, `flood`, `isupport`, `metrics`, `store`, `tls` | time, settings, the databases, counters; no client in sight |
//! | bytes and the world | `multiline`, `outbound`, `relay`, `state` | a `draft/multiline` message serialized once, a client's bounded send buffer, a line serialized once per wire variant, the in-memory users and channels |
//! | durable things | `history`, `accounts`, `webpush` | storing messages before delivery (the writer), logins, push notifications (queued, sent in the background) |
//! | the shared state | `server` | `Shared`: config, world lock, accounts, history, bans, counts |
//! | delivery | `fanout` | the one place lines go out to many buffers |
//! | the cluster | `cluster` | the bus: publishes this node's events, applies everyone's with `fanout` |
//! | what a handler gets | `context` | `Ctx`: the session, replies, and the way out for events |
//! | handlers | `command` | one file per command family, registration and SASL included |
//! | sockets and tasks | `connection`, `listener`, `web`, `metrics_http`, `acme`, `admin`, `inspect` | a client's life, accept loops, the web client, /metrics, certificates, the CLI's tools |
//!
//! `lib.rs` (this file) wires them: it opens the stores, makes the shared state and the
//! cluster, and starts the tasks.
//!
//! # A channel PRIVMSG, from socket to sockets
//!
//! 1. `listener.rs` `accept_loop` admits the TCP (or TLS) connection and hands it to
//!    `connection.rs` `serve`, one task per client.
//! 2. `connection.rs` `read_loop` frames lines (the length limit holds before anything is
//!    allocated) and `handle_line` parses each into a `parley_proto::Message` and builds the
//!    `Ctx` (`context.rs`).
//! 3. `command/mod.rs` `dispatch` matches the verb: `PRIVMSG` goes to `command/message.rs`.
//! 4. `command/message.rs` `privmsg` -> `to_channel` checks the channel's modes under the world
//!    lock, takes its member snapshot, and leaves a `fanout::Delivery` (the message serialized
//!    lazily, once per variant, by `relay.rs`) as a follow-up for the connection.
//! 5. `connection.rs` `run_followups` hands it to `history/writer.rs` (`History::enqueue`); the
//!    history writer commits a batch of messages in one transaction and then hands each on.
//! 6. `fanout.rs` `Delivery::deliver` appends the bytes to every member's buffer (in a cluster
//!    the message is published instead, and `cluster/apply.rs` delivers it on every node with the
//!    same `fanout` functions).
//! 7. `outbound.rs`: each append wakes the member's writer only when its buffer was empty, and
//!    `run_writer` sends whatever piled up in one write.
//!
//! Events that are not stored (JOIN, PART, KICK, MODE, NICK, QUIT ...) take the same road from
//! step 4 on, without the history: the handler calls `Ctx::announce` (`context.rs`
//! `Announcer`), which queues the line through `fanout` at once or, in a cluster, publishes the
//! event for every node to deliver from the stream. No handler asks which.
//!
//! A handler that must wait (a store lookup, a history read, a cluster nick claim) does not
//! block: it leaves a step with `Ctx::then_async` or `Ctx::then_blocking` and the second half as
//! a continuation; `run_followups` runs the steps in order, after the client's messages still in
//! flight, without knowing what they do. A handler's refusal is a `Reply` (`context.rs`) that
//! `dispatch` sends once, after the handler's locks are gone.

pub mod accounts;
mod acme;
pub mod admin;
mod clock;
mod cluster;
mod command;
pub mod config;
mod connection;
mod context;
pub mod data_dir;
mod fanout;
mod flood;
mod history;
pub mod inspect;
mod isupport;
mod listener;
mod metrics;
mod metrics_http;
mod multiline;
mod outbound;
mod relay;
mod server;
mod state;
pub mod store;
pub mod tls;
mod web;
mod webpush;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

pub use config::{Config, ConfigError};
pub use server::VERSION;

/// How often the certificate file is checked for a renewal (a reload also happens on SIGHUP).
const CERT_WATCH_INTERVAL: Duration = Duration::from_secs(30);

/// How often the account names behind nick reservation are re-read from the store.
const ACCOUNT_NAMES_REFRESH: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid listen address `{0}` (expected an address like 127.0.0.1:6667)")]
    BadAddress(String),
    #[error("{0}")]
    Bind(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("database: {0}")]
    Store(#[from] store::StoreError),
    #[error("accounts: {0}")]
    Accounts(#[from] accounts::AccountError),
    #[error("{0}")]
    Metrics(#[from] metrics::MetricsError),
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error("web push: {0}")]
    WebPush(#[from] webpush::WebPushError),
}

/// A started server. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    shared: Arc<server::Shared>,
    plain_addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    metrics_addrs: Vec<SocketAddr>,
    web_addrs: Vec<SocketAddr>,
    tasks: TaskTracker,
}

fn parse_addrs(texts: &[String]) -> Result<Vec<SocketAddr>, StartError> {
    texts
        .iter()
        .map(|t| {
            t.parse::<SocketAddr>()
                .map_err(|_| StartError::BadAddress(t.clone()))
        })
        .collect()
}

/// The SCRAM secret of a cluster: every node must answer an unknown name alike, or comparing
/// nodes would tell it apart. It lives in the database the nodes share, never on the bus; the
/// first node's proposal is kept. The proposal is fresh rather than the node's own file, which
/// earlier versions published on the bus where anyone could read it.
fn shared_scram_secret(config: &Config) -> Result<accounts::ScramSecret, StartError> {
    let fail = |reason: String| StartError::Store(store::StoreError::Backend(reason));
    let mut proposal = [0u8; parley_proto::scram::KEY_LEN];
    getrandom::fill(&mut proposal).map_err(|e| {
        fail(format!(
            "no OS random source for the shared SCRAM secret: {e}"
        ))
    })?;
    let database = store::postgres::PostgresStore::open(&config.accounts.postgres_url)?;
    let agreed = database.shared_secret(accounts::SECRET_FILE, &proposal)?;
    accounts::ScramSecret::from_bytes(&agreed).ok_or_else(|| {
        fail(format!(
            "the shared {} in table shared_secrets is not {} bytes; delete that row and \
             restart every node",
            accounts::SECRET_FILE,
            parley_proto::scram::KEY_LEN
        ))
    })
}

/// Bind the configured listeners and start serving on the current tokio runtime.
pub async fn start(mut config: Config) -> Result<Running, StartError> {
    config.derive_node_server_name();
    let plain = listener::bind_all(&parse_addrs(&config.listen.plain)?).await?;
    let tls_listeners = listener::bind_all(&parse_addrs(&config.listen.tls)?).await?;
    let metrics_listeners = listener::bind_all(&parse_addrs(&config.metrics.listen)?).await?;
    let metrics_addrs = metrics_listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()?;
    let web_listeners = listener::bind_all(&parse_addrs(&config.web.listen)?).await?;
    let web_addrs = web_listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()?;
    // The HTTP-01 listeners exist only with ACME; bound now, so a taken port 80 fails the start.
    let acme_http_listeners = if config.tls.acme_domain.is_empty() {
        Vec::new()
    } else {
        listener::bind_all(&parse_addrs(&config.tls.acme_http_listen)?).await?
    };
    let resolver = if tls_listeners.is_empty() && web_listeners.is_empty() {
        None
    } else {
        let paths = tls::CertPaths::from_config(&config);
        Some(Arc::new(tls::CertResolver::open(
            paths,
            &config.server.name,
        )?))
    };
    let tls_addrs = tls_listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<Vec<_>, _>>()?;
    // The web listener alone shares the certificate but is no IRC TLS port to advertise (STS).
    let tls_info = resolver
        .as_ref()
        .filter(|_| !tls_addrs.is_empty())
        .map(|resolver| server::TlsInfo {
            resolver: resolver.clone(),
            port: tls_addrs.first().map(|a| a.port()).unwrap_or(6697),
        });
    let cluster = if config.cluster.enabled {
        Some(cluster::Cluster::connect(&config.cluster).await?)
    } else {
        None
    };
    let scram_secret = if cluster.is_some() {
        shared_scram_secret(&config)?
    } else {
        accounts::ScramSecret::load_or_create(&config.server.data_dir)?
    };
    let accounts = accounts::Accounts::new(store::open_default(&config)?, &config)
        .with_scram_secret(scram_secret);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let history_store = store::open_history(&config)?;
    history_store.defer_checkpoints()?;
    let (history, history_writer) = history::History::new(
        config.history.clone(),
        history_store,
        store::open_history(&config)?,
        shutdown.clone(),
    );
    // PostgreSQL checkpoints by itself; SQLite's are moved off the writer's path (see below).
    let checkpointer = match config.accounts.store {
        config::StoreKind::Sqlite => Some(store::open_history(&config)?),
        config::StoreKind::Postgres => None,
    };
    if !config.cluster.enabled {
        // The only writer of its database: whether messages wait for someone is known here.
        history.track_offline()?;
    }
    let account_names = accounts.load_names()?;
    tracing::debug!(count = account_names, "account names loaded");
    let state = store::open_state(&config)?;
    let channels = state.channels()?;
    let server_bans = state.server_bans(clock::now_ms())?;
    let webpush = webpush::WebPush::open(&config)?;
    let mut shared = server::Shared::new(config, tls_info, accounts, history, shutdown);
    shared.cluster = cluster.map(|c| Box::new(c) as Box<dyn std::any::Any + Send + Sync>);
    shared.webpush = webpush.as_ref().map(|(service, _)| service.clone());
    shared.e2e_keys = Some(Arc::new(accounts::key_directory::KeyDirectory::new(
        store::open_e2e_keys(&shared.config)?,
    )));
    let shared = Arc::new(shared);
    // A cluster node adopts the always-on presences of nodes that end (`cluster/adopt.rs`):
    // the handlers' layer does it, handed down here.
    if let Some(cluster) = cluster::of(&shared) {
        cluster.set_adopter(Arc::new(|shared, ended, seen| {
            Box::pin(command::always_on::adopt(shared, ended, seen))
        }));
    }
    {
        let mut world = shared.world.lock();
        for record in &channels {
            let key = parley_proto::casefold(&record.name);
            let mut channel = state::Channel::from_record(record);
            // The default room registered before it became the server's: the config decides
            // its modes, not what was stored.
            if shared.is_default_channel(&key) {
                shared.set_default_room(&mut channel);
            }
            world.channels.insert(key, channel);
        }
    }
    *shared.server_bans.lock() = server_bans;
    if !channels.is_empty() {
        tracing::info!(count = channels.len(), "registered channels loaded");
    }
    // Always-on presences are back in their channels before anyone can connect.
    shared
        .always_on
        .open(store::open_always_on(&shared.config)?)?;
    let restored = command::always_on::restore(&shared)?;
    if restored > 0 {
        tracing::info!(count = restored, "always-on presences restored");
    }
    let tasks = TaskTracker::new();
    tasks.spawn(history::run_on_own_thread(history_writer));
    tasks.spawn(prune_history(shared.clone()));
    if let Some(checkpointer) = checkpointer {
        tasks.spawn(checkpoint_history(checkpointer, shared.shutdown.clone()));
    }
    tasks.spawn(refresh_account_names(shared.clone()));
    tasks.spawn(notify_operators(shared.clone()));
    if let Some((service, jobs)) = webpush {
        let shutdown = shared.shutdown.clone();
        tasks.spawn(async move {
            if let Err(error) = webpush::run(service, jobs, shutdown).await {
                tracing::error!(%error, "web push stopped: no pushes will be sent");
            }
        });
    }
    metrics_http::serve(shared.clone(), metrics_listeners, &tasks)?;
    // A cluster node learns the network before it lets anyone in.
    cluster::join(shared.clone(), &tasks).await?;
    let mut plain_addrs = Vec::new();
    for l in plain {
        plain_addrs.push(l.local_addr()?);
        tasks.spawn(listener::accept_loop(
            shared.clone(),
            l,
            listener::Transport::Plain,
            tasks.clone(),
        ));
    }
    if let Some(resolver) = resolver {
        let acceptor = tokio_rustls::TlsAcceptor::from(resolver.server_config()?);
        tracing::info!(
            fingerprint = %resolver.fingerprint(),
            cert = %resolver.paths().current().cert.display(),
            "TLS certificate SHA-256 fingerprint"
        );
        for l in tls_listeners {
            tasks.spawn(listener::accept_loop(
                shared.clone(),
                l,
                listener::Transport::Tls(acceptor.clone()),
                tasks.clone(),
            ));
        }
        for l in web_listeners {
            tasks.spawn(web::accept_loop(
                shared.clone(),
                l,
                acceptor.clone(),
                tasks.clone(),
            ));
        }
        if !shared.config.tls.acme_domain.is_empty() {
            acme::start(
                shared.clone(),
                resolver.clone(),
                acme_http_listeners,
                web_addrs.first().map(|a| a.port()),
                &tasks,
            );
        }
        tasks.spawn(watch_certificate(shared.clone(), resolver));
    }
    Ok(Running {
        shared,
        plain_addrs,
        tls_addrs,
        metrics_addrs,
        web_addrs,
        tasks,
    })
}

/// Apply the history retention limits at start and then every `prune_interval_secs`.
async fn prune_history(shared: Arc<server::Shared>) {
    let interval = Duration::from_secs(shared.config.history.prune_interval_secs.max(1));
    loop {
        match shared.history.prune().await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "pruned old history"),
            Err(err) => tracing::error!(%err, "pruning history failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// How often the history's write-ahead log is moved into the database (see
/// [`store::HistoryStore::defer_checkpoints`]). SQLite's own default is every 1000 pages; at a
/// busy server's few thousand messages a second that is about as often.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Checkpoint the history on a connection of its own, off the writer's path, until shutdown
/// (when closing the last connection checkpoints once more).
async fn checkpoint_history(
    store: Arc<dyn store::HistoryStore>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    // Said once per run of failures (a full disk would otherwise log every second).
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.checkpoint()).await {
            Ok(Ok(())) => failing = false,
            Ok(Err(err)) if !failing => {
                failing = true;
                tracing::warn!(%err, "history checkpoint failed; retrying every second");
            }
            Ok(Err(_)) => {}
            Err(err) => tracing::error!(%err, "the history checkpoint task stopped unexpectedly"),
        }
    }
}

/// Re-read the account names every [`ACCOUNT_NAMES_REFRESH`], so accounts the admin CLI adds
/// or removes from another process reserve (or free) their nicks without a restart.
async fn refresh_account_names(shared: Arc<server::Shared>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ACCOUNT_NAMES_REFRESH) => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let accounts = shared.accounts.clone();
        match tokio::task::spawn_blocking(move || accounts.load_names()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::error!(%err, "re-reading the account names failed"),
            Err(err) => tracing::error!(%err, "the account names task stopped unexpectedly"),
        }
    }
}

/// Tell the server operators online when the database starts refusing history writes and when
/// it takes them again: chat carries on as if nothing happened, so an error log nobody reads
/// would let an outage (and the memory it holds) go unnoticed until the backlog overflows.
async fn notify_operators(shared: Arc<server::Shared>) {
    let mut health = shared.history.health();
    let mut was_failing = false;
    loop {
        tokio::select! {
            changed = health.changed() => if changed.is_err() { return },
            _ = shared.shutdown.cancelled() => return,
        }
        let now = health.borrow_and_update().clone();
        let text = match (&now.failing, was_failing) {
            (Some(err), false) => format!(
                "*** History database refuses writes ({}); chat goes on and messages are held \
                 in memory ({} so far) until it recovers",
                err.replace(['\r', '\n'], " "),
                now.held
            ),
            (None, true) => {
                "*** History database writes again; every held message is stored".to_owned()
            }
            _ => continue,
        };
        was_failing = now.failing.is_some();
        let operators: Vec<(String, Arc<outbound::Outbound>)> = shared
            .world
            .lock()
            .users
            .values()
            .filter(|u| u.registered && u.oper.is_some())
            .map(|u| (u.nick.clone(), u.outbound.clone()))
            .collect();
        for (nick, outbound) in operators {
            let notice =
                crate::relay::line(Some(shared.server_name()), "NOTICE", &[&nick], Some(&text));
            let _ = outbound.push(&notice);
        }
    }
}

fn audit_reload(shared: &server::Shared, why: &str, result: &Result<String, tls::TlsError>) {
    let (action, detail) = match result {
        Ok(fingerprint) => ("cert_reload", format!("{why}: {fingerprint}")),
        Err(err) => ("cert_reload_failed", format!("{why}: {err}")),
    };
    shared
        .history
        .audit(action, None, None, None, None, Some(&detail));
}

/// Pick up renewed certificate files (for example from an ACME client) without a signal.
async fn watch_certificate(shared: Arc<server::Shared>, resolver: Arc<tls::CertResolver>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CERT_WATCH_INTERVAL) => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let result = resolver.reload_if_changed();
        if let Some(result) = &result {
            audit_reload(&shared, "file change", result);
        }
        match result {
            Some(Ok(fingerprint)) => {
                tracing::info!(%fingerprint, "TLS certificate file changed; reloaded")
            }
            Some(Err(err)) => {
                tracing::error!(%err, "TLS certificate file changed but cannot be loaded; keeping the old one")
            }
            None => {}
        }
    }
}

impl Running {
    /// The plain-text addresses actually bound (useful with port 0).
    pub fn plain_addrs(&self) -> &[SocketAddr] {
        &self.plain_addrs
    }

    /// The TLS addresses actually bound.
    pub fn tls_addrs(&self) -> &[SocketAddr] {
        &self.tls_addrs
    }

    /// The web client's HTTPS addresses actually bound (`/` and the WebSocket `/ws`); empty when off.
    pub fn web_addrs(&self) -> &[SocketAddr] {
        &self.web_addrs
    }

    /// The metrics HTTP addresses actually bound (`/metrics`, `/healthz`); empty when off.
    pub fn metrics_addrs(&self) -> &[SocketAddr] {
        &self.metrics_addrs
    }

    /// SHA-256 fingerprint of the certificate in use, when TLS is on.
    pub fn tls_fingerprint(&self) -> Option<String> {
        self.shared.tls.as_ref().map(|t| t.resolver.fingerprint())
    }

    /// Re-read the TLS certificate and key (what SIGHUP does). On error the old pair stays in use.
    pub fn reload_tls(&self) -> Option<Result<String, tls::TlsError>> {
        let result = self.shared.tls.as_ref().map(|t| t.resolver.reload())?;
        audit_reload(&self.shared, "signal", &result);
        Some(result)
    }

    /// Remember where the config came from, so SIGHUP and REHASH can read it again.
    pub fn set_config_source(
        &self,
        path: Option<std::path::PathBuf>,
        data_dir: Option<std::path::PathBuf>,
    ) {
        self.shared
            .set_config_source(server::ConfigSource { path, data_dir });
    }

    /// Re-read the config and certificate (what SIGHUP does). A bad config is refused and the old
    /// one stays in force; otherwise returns the changed keys that need a restart.
    pub fn reload(&self) -> Result<Vec<String>, ConfigError> {
        self.shared.reload()
    }

    /// Number of open client connections.
    pub fn connection_count(&self) -> usize {
        self.shared.connection_count()
    }

    /// Ask every listener and connection to stop; clients get `ERROR :Server shutting down`.
    /// A cluster node then leaves the cluster (its QUITs and a last word on the bus) before its
    /// tasks end, so [`Running::wait`] covers the leave too.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Resolves when the server stopped itself (a cluster node whose name another process took
    /// over), with the reason; the binary exits with it as an error.
    pub async fn stopped_itself(&self) -> String {
        self.shared.shutdown.cancelled().await;
        cluster::of(&self.shared)
            .and_then(|cluster| cluster.deposed())
            .unwrap_or_else(|| "the server stopped".to_owned())
    }

    /// Wait until every listener and connection has finished, or `grace` has passed.
    pub async fn wait(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}
