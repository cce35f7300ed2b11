//! Cluster mode: several parleyd nodes that users see as one network.
//!
//! Nothing here is a protocol of our own. Live state crosses a NATS server:
//! - one JetStream stream (`<prefix>_EVENTS`) carries every change and message, and every node
//!   reads all of it in the stream's one order, so a channel's lines reach every member on every
//!   node in the same order and each message crosses the bus once per node;
//! - a JetStream key-value bucket (`<prefix>_nicks`) holds nick claims, so a nick is held once
//!   in the whole cluster: creating a key either succeeds or finds it taken;
//! - plain NATS subjects carry heartbeats (a node's lease), the snapshots a starting node
//!   asks its peers for, and sessions whose socket is on one node and user on another
//!   ([`bridge`], `<prefix>.sess.<to>.<from>`).
//!
//! Every subject a node publishes on ends in its own name (`<prefix>.ev.<node>`,
//! `<prefix>.hb.<node>`, `<prefix>.snap.<asker>.<node>`, `<prefix>.sess.<to>.<node>`), so nats-server permissions can let each
//! node speak only as itself; what arrives is checked against its subject and the configured
//! `nodes`, and a user-level event must be about a user of the node that sent it.
//!
//! Stored things (accounts, history, bans, registered channels) live in the one PostgreSQL
//! database every node uses; a message is committed there before it is published, so what was
//! accepted survives any node. docs/cluster.md has the guarantees and the failure modes.

pub mod adopt;
pub mod apply;
pub mod bridge;
mod claims;
mod compat;
mod diagnose;
pub mod event;
pub mod identity;
mod lease;
mod leave;
mod login;
pub mod observe;
mod seen;
mod trust;
pub mod undelivered;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::ClusterConfig;
use crate::fanout::Local;
use crate::outbound::{HeldWakes, Outbound};
use crate::server::Shared;
use crate::state::ClientId;
use event::{Envelope, Event, Snapshot, Uid};
use trust::{actor, last_token, uid_node};

/// Events waiting to be published, and so (the bus being down) waiting to be delivered at all:
/// a node delivers its own users' events only once they come back from the stream, so every
/// node delivers them in the stream's one order. Past this, a node whose bus is down delivers
/// further events to its own users only, and the rest of the cluster misses them
/// (docs/cluster.md, "bus down").
const OUTBOX: usize = 65_536;
/// Most events published before waiting for their acknowledgements.
const PUBLISH_BATCH: usize = 512;
/// Most stream entries applied before the writers they fed are woken.
const FOLLOW_BATCH: usize = 256;
/// Where versions before the SCRAM secret moved to PostgreSQL kept it in the nick bucket.
const OLD_SCRAM_SECRET_KEY: &str = "cfg.scram-secret";
/// Most sender names remembered (and logged) for sending what they may not.
const REFUSED_NAMES: usize = 64;
/// How long a starting node collects its peers' snapshots.
const SYNC_WINDOW: Duration = Duration::from_millis(750);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "cannot connect to the NATS server at {url}: {reason} (is nats-server running and \
         listening there? check cluster.nats_url)"
    )]
    Connect { url: String, reason: String },
    #[error("TLS to the NATS server at {url} failed: {reason}; {hint}")]
    Tls {
        url: String,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "the NATS server at {url} runs without JetStream, which a cluster needs for its event \
         stream and nick bucket: start nats-server with -js (or a jetstream block in its config)"
    )]
    NoJetStream { url: String },
    #[error("cannot use the NATS settings: {0}")]
    Settings(String),
    #[error(
        "the NATS server at {url} refused this node's login ({reason}): check the node's NATS \
             credentials in [cluster] (nats_user and nats_password, nats_token, \
             nats_nkey_seed_file, nats_creds_file) against nats-server's users (docs/cluster.md)"
    )]
    Login { url: String, reason: String },
    #[error(
        "another node is running as cluster node {node:?} (its server name: {server}): \
         cluster.node_name must differ on every node; a node that crashed is free to restart \
         under its name one lease (cluster.lease_secs) after its last renewal"
    )]
    NameTaken { node: String, server: String },
    #[error(
        "server.name {server:?} is the server name of live cluster node {node:?}: give each node \
         its own server.name, or leave it out and each node takes <node_name>.parley.local"
    )]
    ServerNameTaken { server: String, node: String },
    #[error(
        "JetStream at {url} refused {what}: {reason} (do this node's NATS permissions allow \
         the JetStream API for prefix cluster.prefix, and has its account JetStream? see \
         docs/cluster.md)"
    )]
    JetStream {
        url: String,
        what: String,
        reason: String,
    },
}

/// Why a nick could not be claimed.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimError {
    Taken,
    /// The bus did not answer: nobody can know whether the nick is free.
    Unavailable,
}

struct Outgoing {
    eid: u64,
    payload: Bytes,
}

pub struct Cluster {
    pub node: String,
    /// Random per start, so this life's users differ from those of the node's last one.
    pub incarnation: u64,
    prefix: String,
    lease: Duration,
    url: String,
    client: async_nats::Client,
    js: jetstream::Context,
    nicks: kv::Store,
    /// The one outbound buffer every remote user has here: it accepts nothing, since their own
    /// node delivers to them.
    pub sink: Arc<Outbound>,
    outbox: mpsc::Sender<Outgoing>,
    outbox_rx: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    next_eid: AtomicU64,
    /// Set while events are being dropped for a full outbox, so that is logged once per run.
    dropping: std::sync::atomic::AtomicBool,
    /// Own events on their way through the stream, with the echo label a sender waits for
    /// (`Some("")`: echo without a label). Gone from here once delivered, so an event that
    /// comes back twice (a retried publish) is delivered once.
    pending: Mutex<HashMap<u64, Local>>,
    /// Other nodes' events already applied and users gone for good, so a repeated or late
    /// event is skipped (see [`seen`]).
    seen: Mutex<seen::Seen>,
    /// When each other node (and incarnation) was last heard from.
    peers: Mutex<HashMap<(String, u64), Instant>>,
    /// The configured node names; empty only in insecure mode, where any name is taken.
    nodes: HashSet<String>,
    /// Names already warned about for sending what they may not, so a flood logs once each.
    refused: Mutex<HashSet<String>>,
    /// Since when the bus connection is up (None while it is down).
    connected_since: Arc<Mutex<Option<Instant>>>,
    /// When this node last was (or stopped being) cut off from the others: its bus connection
    /// dropped, or its own heartbeats stopped coming back for a lease. Only then may another
    /// node's word that this node is down be true.
    outage: Arc<Mutex<Option<Instant>>>,
    /// When this node last heard its own heartbeat come back from the bus.
    own_beat: Mutex<Option<Instant>>,
    /// Since when the lease loop sleeps (None while it works): if it is overdue now, this
    /// process was paused a moment ago and the loop has not noticed yet (see
    /// [`Cluster::paused_just_now`]).
    lease_asleep: Mutex<Option<Instant>>,
    /// Set while this node does not hear its own heartbeat, so that is logged once per change.
    deaf: std::sync::atomic::AtomicBool,
    /// The stream sequence of the last entry the follower read (see [`lease`]).
    applied: AtomicU64,
    /// The stream sequence of the last event from each node life: what fences a stale NodeDown.
    last_from: Mutex<HashMap<(String, u64), u64>>,
    /// The server this node serves, set by [`join`]: a stored message is published from the
    /// history writer, which holds no reference to it.
    server: std::sync::OnceLock<std::sync::Weak<Shared>>,
    /// Private messages to other nodes' users not yet known to have arrived (`undelivered.rs`).
    pub undelivered: undelivered::Undelivered,
    /// This node's name claim and the other nodes' server names ([`identity`]).
    identity: identity::Identity,
    /// The clean stop: when the bus tasks end, and which other nodes' lives left.
    leave: leave::Leave,
    /// Kinds of events this version could not read, logged once each.
    unreadable: compat::Unreadable,
    /// What adopts a dead node life's always-on presences (the handlers' layer, passed in at
    /// start: see [`adopt`]).
    adopter: std::sync::OnceLock<adopt::Adopter>,
    /// Sessions whose socket and user are on different nodes ([`bridge`]).
    bridges: bridge::Bridges,
}

/// This node's cluster, when `[cluster]` is on. The shared state holds it without naming its
/// type (the cluster sits above the shared state, applying events to its world); this gives it
/// back typed.
pub fn of(shared: &Shared) -> Option<&Arc<Cluster>> {
    shared.cluster.as_ref()?.downcast_ref::<Arc<Cluster>>()
}

fn subject(prefix: &str, what: &str) -> String {
    format!("{prefix}.{what}")
}

/// The client options for the bus: credentials and TLS from `[cluster]`.
fn connect_options(config: &ClusterConfig) -> Result<async_nats::ConnectOptions, ClusterError> {
    let mut options = async_nats::ConnectOptions::new();
    if !config.nats_user.is_empty() {
        options = options.user_and_password(config.nats_user.clone(), config.nats_password.clone());
    }
    if !config.nats_token.is_empty() {
        options = options.token(config.nats_token.clone());
    }
    options = login::apply(config, options)?;
    let readable = |key: &str, path: &str| {
        if std::path::Path::new(path).is_file() {
            Ok(std::path::PathBuf::from(path))
        } else {
            Err(ClusterError::Settings(format!(
                "cluster.{key}: {path:?} is not a readable file"
            )))
        }
    };
    if !config.nats_tls_ca.is_empty() {
        options = options
            .add_root_certificates(readable("nats_tls_ca", &config.nats_tls_ca)?)
            .require_tls(true);
    }
    if !config.nats_tls_cert.is_empty() {
        options = options
            .add_client_certificate(
                readable("nats_tls_cert", &config.nats_tls_cert)?,
                readable("nats_tls_key", &config.nats_tls_key)?,
            )
            .require_tls(true);
    }
    if config.nats_url.starts_with("tls://") {
        options = options.require_tls(true);
    }
    Ok(options)
}

/// Longest a starting node waits for the release of its earlier lives' nick claims.
const RELEASE_WAIT: Duration = Duration::from_secs(3);

/// A nick as a key-value key: the bucket allows only a few characters, so hex.
fn nick_key(folded: &str) -> String {
    let mut out = String::with_capacity(2 + folded.len() * 2);
    out.push_str("n.");
    for b in folded.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl Cluster {
    /// Connect to NATS and make sure the stream and bucket exist. Fails (naming the URL) when
    /// NATS or JetStream is not there; a node must not start alone thinking it is a cluster.
    pub async fn connect(config: &ClusterConfig) -> Result<Arc<Cluster>, ClusterError> {
        // Shown in errors and logs without a password.
        let url = crate::store::postgres::redact_url(&config.nats_url);
        let connected_since = Arc::new(Mutex::new(None));
        let flag = connected_since.clone();
        let outage: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let cut_off = outage.clone();
        // Why the bus turned the node away, while it is still trying its first connection: with
        // retry_on_initial_connect, a refused login shows only here, not as an error.
        let login_refused: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let refusal = login_refused.clone();
        let node = config.node_name.clone();
        // Connect, login, TLS and JetStream each fail here with their own error.
        diagnose::probe(config, &url).await?;
        if config.insecure {
            tracing::warn!(
                "cluster.insecure is set: whoever reaches the NATS server reads every private \
                 message and can forge any event; use it only on a private test network"
            );
        }
        let client = connect_options(config)?
            .name(format!("parleyd {node}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |event| {
                let flag = flag.clone();
                let cut_off = cut_off.clone();
                let refusal = refusal.clone();
                async move {
                    match event {
                        async_nats::Event::ClientError(async_nats::ClientError::Other(why))
                            if why.contains("authorization") || why.contains("signing") =>
                        {
                            // Once, not at every retry of the client.
                            let mut refusal = refusal.lock();
                            if refusal.is_none() {
                                tracing::warn!(reason = %why, "the cluster bus refused this node's login");
                            }
                            *refusal = Some(why);
                        }
                        async_nats::Event::Connected => {
                            tracing::info!("cluster bus connected");
                            *refusal.lock() = None;
                            *flag.lock() = Some(Instant::now());
                            let mut outage = cut_off.lock();
                            if outage.is_some() {
                                *outage = Some(Instant::now());
                            }
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("cluster bus disconnected; reconnecting");
                            *flag.lock() = None;
                            *cut_off.lock() = Some(Instant::now());
                        }
                        other => tracing::debug!(%other, "cluster bus event"),
                    }
                }
            })
            .connect(config.nats_url.as_str());
        let client = tokio::time::timeout(Duration::from_secs(10), client)
            .await
            .map_err(|_| ClusterError::Connect {
                url: url.clone(),
                reason: "no answer in 10 s".into(),
            })?
            .map_err(|e| ClusterError::Connect {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        *connected_since.lock() = Some(Instant::now());
        let js = jetstream::new(client.clone());
        let refused = |what: &str, reason: String| match login_refused.lock().clone() {
            // Not connected yet because the login failed: say that, not what it prevented.
            Some(why) if client.connection_state() != async_nats::connection::State::Connected => {
                ClusterError::Login {
                    url: url.clone(),
                    reason: why,
                }
            }
            _ => ClusterError::JetStream {
                url: url.clone(),
                what: what.to_string(),
                reason,
            },
        };
        let prefix = config.prefix.clone();
        js.get_or_create_stream(stream::Config {
            name: format!("{prefix}_EVENTS"),
            subjects: vec![subject(&prefix, "ev.*")],
            storage: stream::StorageType::File,
            // The stream is a log of live traffic, not the history (PostgreSQL has that): an hour
            // covers any node's catch-up after a bus restart.
            max_age: Duration::from_secs(3600),
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| refused("the event stream", e.to_string()))?;
        upgrade_event_subjects(&js, &prefix)
            .await
            .map_err(|e| refused("the event stream's new subjects", e))?;
        // The bucket's stream is made by hand, as a key-value bucket's is: the client's own
        // `create_key_value` first reads the account's limits, in a form nats-server 2.9 (Debian
        // 12's) does not answer in.
        let bucket = format!("{prefix}_nicks");
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| refused("the nick bucket", e.to_string()))?;
        let nicks = js
            .get_key_value(bucket)
            .await
            .map_err(|e| refused("the nick bucket", e.to_string()))?;
        // Earlier versions kept the SCRAM secret here, readable by anyone on the bus: gone.
        if let Ok(Some(_)) = nicks.get(OLD_SCRAM_SECRET_KEY).await {
            match nicks.purge(OLD_SCRAM_SECRET_KEY).await {
                Ok(()) => tracing::info!("removed the old SCRAM secret from the nick bucket"),
                Err(err) => {
                    tracing::warn!(%err, "could not remove the old SCRAM secret from the nick bucket; delete key cfg.scram-secret by hand")
                }
            }
        }
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| ClusterError::Connect {
            url: url.clone(),
            reason: format!("no randomness for the incarnation: {e}"),
        })?;
        let incarnation = u64::from_le_bytes(bytes) | 1;
        let sink = Arc::new(Outbound::new(0));
        sink.kill();
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        Ok(Arc::new(Cluster {
            node,
            incarnation,
            prefix,
            lease: Duration::from_secs(config.lease_secs),
            url,
            client,
            js,
            nicks,
            sink,
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            next_eid: AtomicU64::new(1),
            dropping: std::sync::atomic::AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            seen: Mutex::new(seen::Seen::default()),
            peers: Mutex::new(HashMap::new()),
            nodes: config.nodes.iter().cloned().collect(),
            refused: Mutex::new(HashSet::new()),
            connected_since,
            outage,
            own_beat: Mutex::new(None),
            lease_asleep: Mutex::new(None),
            deaf: std::sync::atomic::AtomicBool::new(false),
            applied: AtomicU64::new(0),
            last_from: Mutex::new(HashMap::new()),
            server: std::sync::OnceLock::new(),
            undelivered: undelivered::Undelivered::default(),
            identity: identity::Identity::default(),
            leave: leave::Leave::default(),
            unreadable: compat::Unreadable::default(),
            adopter: std::sync::OnceLock::new(),
            bridges: bridge::Bridges::default(),
        }))
    }

    pub fn uid_of(&self, id: ClientId) -> Uid {
        event::uid(&self.node, self.incarnation, id.0)
    }

    /// The local id behind a uid of this node's current life.
    pub fn local_id(&self, uid: &str) -> Option<ClientId> {
        let mut parts = uid.rsplitn(2, '~');
        let id = parts.next()?.parse().ok()?;
        let (node, incarnation) = event::uid_origin(uid)?;
        (node == self.node && incarnation == self.incarnation).then_some(ClientId(id))
    }

    /// Send an event to every node, this one included. Never waits: the handler has applied the
    /// change to this node's world already; the stream decides when its lines are delivered,
    /// here as everywhere. While the bus is down the event waits in the outbox, so a line sent
    /// meanwhile reaches this node's users, like everyone else's, once the bus is back and in
    /// the stream's order. Only when the outbox is full does this node deliver at once, to its
    /// own users (the others never get it live).
    pub fn publish(&self, shared: &Shared, event: Event, echo: Option<String>) {
        self.publish_to(
            shared,
            event,
            Local {
                echo,
                recipients: None,
                echo_into: None,
                sender: None,
            },
        );
    }

    /// How to publish a stored message once the history writer has committed it (see
    /// [`crate::fanout::Delivery::publish`]).
    pub fn publisher(self: &Arc<Self>, event: Event) -> crate::fanout::Publish {
        let cluster = self.clone();
        Box::new(move |local| {
            if let Some(shared) = cluster.server.get().and_then(std::sync::Weak::upgrade) {
                cluster.publish_to(&shared, event, local);
            }
        })
    }

    /// [`Cluster::publish`], with this node's recipients fixed now.
    pub fn publish_to(&self, shared: &Shared, event: Event, local: Local) {
        let envelope = self.envelope(event);
        let eid = envelope.eid;
        let payload = match serde_json::to_vec(&envelope) {
            Ok(bytes) => Bytes::from(bytes),
            Err(err) => {
                tracing::error!(%err, "cluster event not serializable; delivering locally only");
                apply::apply(
                    shared,
                    self,
                    envelope,
                    Some(local),
                    &mut HeldWakes::default(),
                );
                return;
            }
        };
        self.pending.lock().insert(eid, local);
        if !self.queue(Outgoing { eid, payload }) {
            if let Some(local) = self.pending.lock().remove(&eid) {
                apply::apply(
                    shared,
                    self,
                    envelope,
                    Some(local),
                    &mut HeldWakes::default(),
                );
            }
        }
    }

    /// `event` from this node's current life, with the next event id.
    fn envelope(&self, event: Event) -> Envelope {
        Envelope {
            node: self.node.clone(),
            incarnation: self.incarnation,
            eid: self.next_eid.fetch_add(1, Ordering::Relaxed),
            event,
        }
    }

    /// Queue `event` for the stream without applying it here first, even with the bus down:
    /// for a judgement that another node is dead (every node, this one included, applies it
    /// when it reads it back and finds it still true, since a node that cannot reach the bus is
    /// the one most likely wrong) and for this life's own leave (applied here it would
    /// disconnect users as if the others had given this node up). False if it was not queued.
    fn publish_unapplied(&self, event: Event) -> bool {
        let envelope = self.envelope(event);
        match serde_json::to_vec(&envelope) {
            Ok(bytes) => self.queue(Outgoing {
                eid: envelope.eid,
                payload: Bytes::from(bytes),
            }),
            Err(err) => {
                tracing::error!(%err, "cluster event not serializable; not published");
                false
            }
        }
    }

    /// Hand an event to the publisher; false when the outbox is full (a long bus outage). The
    /// drop is counted every time but logged once per run of drops, so an outage cannot fill
    /// the log one line per event.
    fn queue(&self, outgoing: Outgoing) -> bool {
        match self.outbox.try_send(outgoing) {
            Ok(()) => {
                self.dropping.store(false, Ordering::Relaxed);
                return true;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // This node has left the cluster (the leave logged what it could not publish):
                // not a full outbox, so nothing to warn about.
                crate::metrics::record_cluster_dropped();
                return false;
            }
            Err(mpsc::error::TrySendError::Full(_)) => {}
        }
        crate::metrics::record_cluster_dropped();
        if !self.dropping.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "cluster outbox full; events reach local users only until the bus takes them again \
                 (counted in parley_cluster_events_dropped_total)"
            );
        }
        false
    }

    /// Claim a nick for `uid` across the cluster. A claim whose answer does not come (a timeout,
    /// or this future dropped because its connection ended) is undone, so it cannot outlive
    /// the connection (`claims.rs`).
    pub async fn claim(self: &Arc<Self>, folded: &str, uid: &str) -> Result<(), ClaimError> {
        let key = nick_key(folded);
        let value = Bytes::from(uid.to_string());
        let guard = claims::ClaimGuard::new(self, &key, &value);
        let attempt = tokio::time::timeout(
            Duration::from_secs(5),
            self.nicks.create(&key, value.clone()),
        )
        .await;
        let result = match attempt {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) if err.kind() == kv::CreateErrorKind::AlreadyExists => {
                match self.nicks.get(&key).await {
                    Ok(Some(holder)) if holder.as_ref() == uid.as_bytes() => Ok(()),
                    Ok(_) => Err(ClaimError::Taken),
                    Err(_) => Err(ClaimError::Unavailable),
                }
            }
            Ok(Err(err)) => {
                tracing::warn!(%err, "nick claim failed");
                self.undo_claim(&key, &value).await;
                Err(ClaimError::Unavailable)
            }
            Err(_) => {
                self.undo_claim(&key, &value).await;
                Err(ClaimError::Unavailable)
            }
        };
        guard.settle();
        result
    }

    /// Give a nick back, if `uid` still holds it. Runs in the background.
    pub fn release(self: &Arc<Self>, folded: &str, uid: &str) {
        if folded.is_empty() {
            return;
        }
        let this = self.clone();
        let key = nick_key(folded);
        let uid = uid.to_string();
        tokio::spawn(async move {
            this.release_if_held(&key, |holder| holder == uid.as_bytes())
                .await;
        });
    }

    async fn release_if_held(&self, key: &str, held: impl Fn(&[u8]) -> bool) {
        let entry = match self.nicks.entry(key).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(%err, "nick release: bucket unreachable; the claim stays");
                return;
            }
        };
        if entry.operation == kv::Operation::Put && held(&entry.value) {
            if let Err(err) = self
                .nicks
                .delete_expect_revision(key, Some(entry.revision))
                .await
            {
                tracing::debug!(%err, "nick release raced a new claim");
            }
        }
    }

    /// Release every nick held by users of `node` (all its lives when `incarnation` is None,
    /// or all but `except`).
    async fn release_node(&self, node: &str, incarnation: Option<u64>, except: Option<u64>) {
        let Ok(mut keys) = self.nicks.keys().await else {
            return;
        };
        let mut all = Vec::new();
        while let Some(Ok(key)) = keys.next().await {
            all.push(key);
        }
        for key in all {
            self.release_if_held(&key, |holder| {
                let Ok(uid) = std::str::from_utf8(holder) else {
                    return false;
                };
                event::uid_origin(uid).is_some_and(|(n, inc)| {
                    n == node
                        && incarnation.is_none_or(|i| i == inc)
                        && except.is_none_or(|e| e != inc)
                })
            })
            .await;
        }
    }

    /// Whether `node` may be heard at all: one of the configured nodes (any name when insecure).
    fn known(&self, node: &str) -> bool {
        self.nodes.is_empty() || self.nodes.contains(node)
    }

    /// Drop what `node` sent and may not have, counted, and logged once per sending name.
    fn refuse(&self, node: &str, what: &str) {
        crate::metrics::record_cluster_refused();
        let first = {
            let mut refused = self.refused.lock();
            // The name comes from the sender: past a few, stop remembering (and logging) them,
            // so made-up names cannot grow memory or the log.
            refused.len() < REFUSED_NAMES && refused.insert(node.to_string())
        };
        if first {
            tracing::warn!(
                node = %node.escape_debug(),
                what,
                "cluster: dropped what a sender may not send (logged once per sender; counted in \
                 parley_cluster_events_refused_total); check cluster.nodes and the NATS permissions"
            );
        }
    }

    /// The names of the other nodes heard from within a lease, sorted (for LINKS).
    pub fn nodes_heard(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .peers
            .lock()
            .iter()
            .filter(|(_, seen)| seen.elapsed() <= self.lease)
            .map(|((node, _), _)| node.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn heard(&self, node: &str, incarnation: u64) {
        if node == self.node && incarnation == self.incarnation {
            return;
        }
        if self.leave.has_left(node, incarnation) {
            // A heartbeat sent just before its leave: the leave stands.
            return;
        }
        let new = self
            .peers
            .lock()
            .insert((node.to_string(), incarnation), Instant::now())
            .is_none();
        if new {
            self.identity.new_peer.notify_one();
        }
    }
}

/// A stream made by an older parleyd took every event on `<prefix>.ev`; events now go to
/// `<prefix>.ev.<node>`, so the stream is widened to those (nodes of one cluster upgrade
/// together: an old node's events would no longer be taken).
async fn upgrade_event_subjects(js: &jetstream::Context, prefix: &str) -> Result<(), String> {
    let wanted = vec![subject(prefix, "ev.*")];
    let mut stream = js
        .get_stream(format!("{prefix}_EVENTS"))
        .await
        .map_err(|e| e.to_string())?;
    let mut config = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .config
        .clone();
    if config.subjects == wanted {
        return Ok(());
    }
    config.subjects = wanted;
    js.update_stream(config).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Join the cluster: learn the network from the other nodes, then follow the stream. Returns
/// once this node's world holds everyone, so the listeners can open.
pub async fn join(
    shared: Arc<Shared>,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<(), ClusterError> {
    let Some(cluster) = of(&shared).cloned() else {
        return Ok(());
    };
    let _ = cluster.server.set(Arc::downgrade(&shared));
    // Before a word on the bus: a second process under a running node's name must not start.
    cluster
        .claim_name(shared.server_name(), identity::admin_lines(&shared))
        .await?;
    let url = cluster.url.clone();
    let refused = |what: &str, reason: String| ClusterError::JetStream {
        url: url.clone(),
        what: what.to_string(),
        reason,
    };
    // Answer other nodes' snapshot requests from now on.
    let requests = cluster
        .client
        .subscribe(subject(&cluster.prefix, "sync.*"))
        .await
        .map_err(|e| refused("a subscription", e.to_string()))?;
    tasks.spawn(answer_sync(shared.clone(), requests));
    let heartbeats = cluster
        .client
        .subscribe(subject(&cluster.prefix, "hb.*"))
        .await
        .map_err(|e| refused("a subscription", e.to_string()))?;
    tasks.spawn(hear_heartbeats(cluster.clone(), heartbeats));
    let sessions = bridge::subscribe(&cluster)
        .await
        .map_err(|e| refused("a subscription", e.to_string()))?;
    tasks.spawn(bridge::listen(shared.clone(), cluster.clone(), sessions));

    // Where the stream is now: everything after it is applied on top of the snapshots.
    let mut events = cluster
        .js
        .get_stream(format!("{}_EVENTS", cluster.prefix))
        .await
        .map_err(|e| refused("the event stream", e.to_string()))?;
    let start = events
        .info()
        .await
        .map_err(|e| refused("the stream's state", e.to_string()))?
        .state
        .last_sequence
        + 1;

    // Ask the running nodes for their users and channels. Each answers on a subject that ends
    // in its own name, which its NATS permissions let only it publish on.
    let mut replies = cluster
        .client
        .subscribe(subject(
            &cluster.prefix,
            &format!("snap.{}.*", cluster.node),
        ))
        .await
        .map_err(|e| refused("a subscription", e.to_string()))?;
    cluster
        .client
        .publish(
            subject(&cluster.prefix, &format!("sync.{}", cluster.node)),
            Bytes::new(),
        )
        .await
        .map_err(|e| refused("a snapshot request", e.to_string()))?;
    let deadline = Instant::now() + SYNC_WINDOW;
    let mut nodes = 0;
    while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, replies.next()).await {
        match serde_json::from_slice::<Snapshot>(&reply.payload) {
            Ok(snapshot)
                if snapshot.node == cluster.node && snapshot.incarnation == cluster.incarnation => {
            }
            Ok(snapshot)
                if snapshot.node != last_token(&reply.subject)
                    || !cluster.known(&snapshot.node) =>
            {
                cluster.refuse(last_token(&reply.subject), "a snapshot in another's name");
            }
            Ok(mut snapshot) => {
                // A node tells only of its own users.
                let own = |uid: &str| uid_node(uid) == Some(snapshot.node.as_str());
                let node = snapshot.node.clone();
                snapshot
                    .users
                    .retain(|user| uid_node(&user.uid) == Some(node.as_str()));
                for channel in &mut snapshot.channels {
                    channel.members.retain(|member| own(&member.uid));
                }
                cluster.heard(&snapshot.node, snapshot.incarnation);
                apply::merge_snapshot(&shared, &cluster, &snapshot);
                nodes += 1;
            }
            Err(err) => tracing::warn!(%err, "unreadable snapshot from a peer; skipped"),
        }
    }
    drop(replies);
    tracing::info!(
        node = %cluster.node,
        peers = nodes,
        users = shared.world.lock().remote.len(),
        "joined the cluster"
    );

    // A previous life of this node may have left users and claims behind (a crash): gone now.
    cluster.publish(
        &shared,
        Event::NodeDown {
            node: cluster.node.clone(),
            incarnation: 0,
            seen: 0,
        },
        None,
    );
    // Bounded: the node lets nobody in until this returns (CI saw a client wait here past its
    // 10 s once). A stalled release is logged; what it left is released at the next start.
    let release = cluster.release_node(&cluster.node, None, Some(cluster.incarnation));
    if tokio::time::timeout(RELEASE_WAIT, release).await.is_err() {
        tracing::warn!(
            node = %cluster.node,
            "releasing the nick claims of this node's earlier lives took too long; going on"
        );
    }

    let Some(outbox) = cluster.outbox_rx.lock().take() else {
        return Ok(());
    };
    tasks.spawn(publish_loop(shared.clone(), outbox));
    tasks.spawn(leave::on_shutdown(shared.clone()));
    tasks.spawn(follow(shared.clone(), events, start));
    tasks.spawn(keep_lease(shared.clone()));
    tasks.spawn(identity::keep_claim(shared.clone()));
    Ok(())
}

async fn answer_sync(shared: Arc<Shared>, mut requests: async_nats::Subscriber) {
    let Some(cluster) = of(&shared).cloned() else {
        return;
    };
    loop {
        let request = tokio::select! {
            request = requests.next() => request,
            _ = shared.shutdown.cancelled() => return,
        };
        let Some(request) = request else { return };
        let asker = last_token(&request.subject);
        if asker == cluster.node || !cluster.known(asker) {
            continue;
        }
        let reply = subject(&cluster.prefix, &format!("snap.{asker}.{}", cluster.node));
        let snapshot = apply::snapshot(&cluster, &shared.world.lock());
        match serde_json::to_vec(&snapshot) {
            Ok(bytes) => {
                if let Err(err) = cluster.client.publish(reply, Bytes::from(bytes)).await {
                    tracing::warn!(%err, "could not answer a snapshot request");
                }
            }
            Err(err) => tracing::error!(%err, "snapshot not serializable"),
        }
    }
}

async fn hear_heartbeats(cluster: Arc<Cluster>, mut beats: async_nats::Subscriber) {
    loop {
        let beat = tokio::select! {
            beat = beats.next() => beat,
            _ = cluster.leave.stopped() => return,
        };
        let Some(beat) = beat else { return };
        let Ok(text) = std::str::from_utf8(&beat.payload) else {
            continue;
        };
        if let Some((node, incarnation)) = event::uid_origin(&format!("{text}~0")) {
            // A heartbeat keeps alive only the node whose subject it came on.
            if node != last_token(&beat.subject) || !cluster.known(node) {
                cluster.refuse(last_token(&beat.subject), "a heartbeat in another's name");
                continue;
            }
            if node == cluster.node && incarnation == cluster.incarnation {
                let now = Instant::now();
                let last = cluster.own_beat.lock().replace(now);
                if last.is_some_and(|last| now - last > cluster.lease) {
                    // This node fell silent for a lease: the others may have given it up.
                    *cluster.outage.lock() = Some(now);
                }
            }
            cluster.heard(node, incarnation);
            cluster.undelivered.heard(node, incarnation);
        }
    }
}

/// Publish the outbox in order. A failed publish is retried (the stream drops a duplicate by
/// its id within its window, and [`seen`] after that) until the bus takes it; the events wait
/// meanwhile, undelivered here too, so that every node delivers them in the stream's order.
/// At a clean stop it empties the outbox and ends (see `leave`), saying how many events it
/// still held.
async fn publish_loop(shared: Arc<Shared>, mut outbox: mpsc::Receiver<Outgoing>) {
    let Some(cluster) = of(&shared).cloned() else {
        return;
    };
    let mut retry: VecDeque<Outgoing> = VecDeque::new();
    tokio::select! {
        _ = publish_all(&cluster, &mut outbox, &mut retry) => {}
        _ = cluster.leave.stopped() => {}
    }
    cluster.leave.publisher_ended(retry.len() + outbox.len());
}

async fn publish_all(
    cluster: &Arc<Cluster>,
    outbox: &mut mpsc::Receiver<Outgoing>,
    retry: &mut VecDeque<Outgoing>,
) {
    let subject = subject(&cluster.prefix, &format!("ev.{}", cluster.node));
    loop {
        if retry.is_empty() {
            let next = tokio::select! {
                next = outbox.recv() => next,
                // Leaving: whatever is queued still goes, then the publisher ends.
                _ = cluster.leave.draining() => outbox.try_recv().ok(),
            };
            let Some(next) = next else { return };
            retry.push_back(next);
        }
        while retry.len() < PUBLISH_BATCH {
            match outbox.try_recv() {
                Ok(next) => retry.push_back(next),
                Err(_) => break,
            }
        }
        let mut acks = Vec::with_capacity(retry.len());
        let mut failed = false;
        for item in retry.iter() {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                "Nats-Msg-Id",
                format!("{}~{:x}~{}", cluster.node, cluster.incarnation, item.eid).as_str(),
            );
            match cluster
                .js
                .publish_with_headers(subject.clone(), headers, item.payload.clone())
                .await
            {
                Ok(ack) => acks.push(ack),
                Err(err) => {
                    tracing::warn!(%err, "publishing to the cluster failed; retrying");
                    failed = true;
                    break;
                }
            }
        }
        let mut done = 0;
        for ack in acks {
            match ack.await {
                Ok(_) => done += 1,
                Err(err) => {
                    tracing::warn!(%err, "the cluster did not acknowledge an event; retrying");
                    failed = true;
                    break;
                }
            }
        }
        retry.drain(..done);
        if failed {
            // Also while leaving: the leave's own deadline ends this (through `stopped`).
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Read the stream in order from `start`, applying every event. The ordered consumer re-creates
/// itself after a bus outage from where it stopped, so nothing is skipped.
async fn follow(shared: Arc<Shared>, events: stream::Stream, start: u64) {
    let Some(cluster) = of(&shared).cloned() else {
        return;
    };
    let mut next = start;
    cluster
        .applied
        .fetch_max(start.saturating_sub(1), Ordering::AcqRel);
    loop {
        let consumer = events
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: cluster.client.new_inbox(),
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: next,
                },
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(consumer) => consumer.messages().await,
            Err(err) => {
                tracing::warn!(%err, "cannot follow the cluster stream yet; retrying");
                if wait_or_stop(&shared, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(err) => {
                tracing::warn!(%err, "cannot follow the cluster stream yet; retrying");
                if wait_or_stop(&shared, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        'stream: loop {
            let first = tokio::select! {
                message = messages.next() => message,
                _ = cluster.leave.stopped() => return,
            };
            // Everything already here is applied as one batch, and each local recipient's
            // writer is woken once for it: one write carries many lines.
            let mut held = HeldWakes::default();
            let mut message = first;
            for _ in 0..FOLLOW_BATCH {
                let current = match message {
                    Some(Ok(current)) => current,
                    Some(Err(err)) => {
                        tracing::warn!(%err, "cluster stream interrupted; resuming");
                        break 'stream;
                    }
                    None => break 'stream,
                };
                if let Ok(info) = current.info() {
                    next = info.stream_sequence + 1;
                    cluster
                        .applied
                        .fetch_max(info.stream_sequence, Ordering::AcqRel);
                }
                match serde_json::from_slice::<Envelope>(&current.payload) {
                    Ok(envelope) if envelope.node != last_token(&current.subject) => {
                        cluster.refuse(last_token(&current.subject), "an event in another's name")
                    }
                    Ok(envelope) => receive(&shared, &cluster, envelope, &mut held),
                    Err(err) => cluster.unreadable.skip(&current.payload, &err),
                }
                match messages.next().now_or_never() {
                    Some(more) => message = more,
                    None => break,
                }
            }
        }
        if wait_or_stop(&shared, Duration::from_millis(200)).await {
            return;
        }
    }
}

fn receive(shared: &Shared, cluster: &Arc<Cluster>, envelope: Envelope, held: &mut HeldWakes) {
    crate::metrics::record_cluster_event();
    let own = envelope.node == cluster.node && envelope.incarnation == cluster.incarnation;
    // This node's judgement that another is dead is checked on its way back like anyone's: it
    // may be stale by now (see [`lease`]).
    let judgement = own
        && matches!(&envelope.event, Event::NodeDown { node, incarnation, .. }
            if *node != cluster.node && *incarnation != 0);
    if own || cluster.known(&envelope.node) {
        let at = cluster.applied.load(Ordering::Acquire);
        cluster.note_sequence(&envelope.node, envelope.incarnation, at);
    }
    if own && !judgement {
        // Delivered already (the bus was down when it was sent)? Then nothing is left to do.
        let local = cluster.pending.lock().remove(&envelope.eid);
        if let Some(local) = local {
            apply::apply(shared, cluster, envelope, Some(local), held);
        }
        return;
    }
    if !cluster.known(&envelope.node) {
        cluster.refuse(&envelope.node, "an event from a node not in cluster.nodes");
        return;
    }
    if actor(&envelope.event).is_some_and(|uid| uid_node(uid) != Some(envelope.node.as_str())) {
        cluster.refuse(&envelope.node, "an event about another node's user");
        return;
    }
    if let Event::NodeDown {
        node,
        incarnation,
        seen,
    } = &envelope.event
    {
        if *node != envelope.node && cluster.stale_judgement(node, *incarnation, *seen) {
            cluster.refuse(
                &envelope.node,
                "a stale NodeDown (the accused spoke after it)",
            );
            return;
        }
    }
    if !cluster
        .seen
        .lock()
        .first_time(&envelope.node, envelope.incarnation, envelope.eid)
    {
        // Published twice (a retry after the stream's duplicate window): applied already.
        crate::metrics::record_cluster_stale();
        return;
    }
    if let Some(uid) = actor(&envelope.event) {
        if !about_a_present_user(shared, cluster, &envelope.event, uid) {
            crate::metrics::record_cluster_stale();
            tracing::debug!(node = %envelope.node, "cluster event about a user who is gone; skipped");
            return;
        }
    }
    if let Event::NodeDown {
        node, incarnation, ..
    } = &envelope.event
    {
        // A node may say that it restarted (all its earlier lives are gone); another node's
        // word that it died is taken only once this node has stopped hearing its heartbeats
        // too (or, said of this node, once it was cut off), so nobody can disconnect a live
        // node's users by saying it is down.
        let alive = if *node == envelope.node {
            false
        } else if *incarnation == 0 {
            true
        } else if *node == cluster.node {
            // Said of this node: true only if it was cut off lately (its events of the outage
            // are read just after it), as a partition's other side decides, or still is: its
            // own heartbeat has not come back for a lease (a paused node reads this before its
            // lease loop has even noticed the pause).
            // The lease loop being overdue right now means the same, noticed before the loop
            // does (the follower and the loop wake together after a pause).
            let cut_off = cluster.paused_just_now()
                || cluster
                    .outage
                    .lock()
                    .is_some_and(|at| at.elapsed() <= cluster.lease * 2 + Duration::from_secs(10));
            // (Before its first heartbeat came back nobody can have judged this life.)
            let unheard = cluster
                .own_beat
                .lock()
                .is_some_and(|at| at.elapsed() > cluster.lease);
            !(cut_off || unheard)
        } else {
            cluster
                .peers
                .lock()
                .get(&(node.clone(), *incarnation))
                .is_some_and(|seen| seen.elapsed() <= cluster.lease)
        };
        if alive {
            cluster.refuse(&envelope.node, "a NodeDown for a node still heard from");
            return;
        }
    }
    cluster.heard(&envelope.node, envelope.incarnation);
    if let Event::NodeDown {
        node, incarnation, ..
    } = &envelope.event
    {
        cluster
            .peers
            .lock()
            .retain(|(n, inc), _| !(n == node && (*incarnation == 0 || inc == incarnation)));
        cluster.forget_sequences(node, *incarnation, envelope.incarnation);
        if judgement {
            // Released only now that the stream took the judgement and it still held: a node
            // cut off from the bus never frees a live node's nicks.
            let (cluster, node, incarnation) = (cluster.clone(), node.clone(), *incarnation);
            tokio::spawn(async move {
                cluster.release_node(&node, Some(incarnation), None).await;
            });
        }
    }
    if leave::is_leave(&envelope) {
        cluster.leave.departed(&envelope.node, envelope.incarnation);
    }
    if let Event::UserUp { user } = &envelope.event {
        if let Some((node, inc)) = event::uid_origin(&user.uid) {
            cluster.heard(node, inc);
        }
    }
    apply::apply(shared, cluster, envelope, None, held);
}

/// Whether `uid`, whom another node's event is about, is someone this node knows: events are
/// applied by uid, never by nick, so one about a user who quit or whose node's life ended (a
/// late line, a second QUIT) is skipped rather than shown as from whoever has the nick now. A
/// `UserUp` brings a user in, unless that uid left already.
fn about_a_present_user(shared: &Shared, cluster: &Cluster, event: &Event, uid: &str) -> bool {
    match event {
        Event::UserUp { .. } => !cluster.seen.lock().departed(uid),
        _ => apply::resolve(cluster, &shared.world.lock(), uid).is_some(),
    }
}

/// Remember that `uid` left for good (see [`seen`]); its late events are skipped from now on.
pub(crate) fn departed(cluster: &Cluster, uid: &str) {
    cluster.seen.lock().depart(uid);
}

/// Sleep for `pause`; true if the node's bus tasks must end meanwhile (which is only once a
/// clean stop has said goodbye, not at the shutdown signal: see `leave`).
async fn wait_or_stop(shared: &Shared, pause: Duration) -> bool {
    let Some(cluster) = of(shared) else {
        return true;
    };
    tokio::select! {
        _ = tokio::time::sleep(pause) => false,
        _ = cluster.leave.stopped() => true,
    }
}

/// Renew this node's lease (a heartbeat) and take nodes whose lease ran out for dead: their users
/// quit on every node and their nicks are released. Judged only once the bus has been up for a
/// whole lease, so a bus restart does not make every node look dead to the first one back; and
/// only from a view this node knows is fresh ([`lease`]): a node that was paused or cut off
/// judges nobody, since it is the one the others are giving up.
async fn keep_lease(shared: Arc<Shared>) {
    let Some(cluster) = of(&shared).cloned() else {
        return;
    };
    let beat = subject(&cluster.prefix, &format!("hb.{}", cluster.node));
    let me = format!("{}~{:x}", cluster.node, cluster.incarnation);
    let every = lease::every(cluster.lease);
    let mut last_tick = Instant::now();
    loop {
        *cluster.lease_asleep.lock() = Some(Instant::now());
        if wait_or_stop(&shared, every).await {
            return;
        }
        let gap = last_tick.elapsed();
        last_tick = Instant::now();
        let stalled = lease::stalled(gap, every, cluster.lease);
        if stalled {
            cluster.lost_time(gap);
        }
        // Awake only once `lost_time` marked the outage: whoever no longer sees the loop
        // overdue sees that mark.
        *cluster.lease_asleep.lock() = None;
        if let Err(err) = cluster
            .client
            .publish(beat.clone(), Bytes::from(me.clone()))
            .await
        {
            tracing::debug!(%err, "heartbeat not sent");
            continue;
        }
        if shared.shutdown.is_cancelled() {
            // Leaving: beat on until the leave is out, but judge nobody any more.
            continue;
        }
        let stable = cluster
            .connected_since
            .lock()
            .is_some_and(|since| since.elapsed() >= cluster.lease);
        if !stable {
            // Nobody can be judged from a fresh connection: refresh everyone's clock.
            let now = Instant::now();
            for seen in cluster.peers.lock().values_mut() {
                *seen = (*seen).max(now - cluster.lease / 2);
            }
            continue;
        }
        if stalled {
            continue;
        }
        if !cluster.hears_itself() {
            // Cut off: the silence is this node's, and so is the next lease once it is back.
            cluster.forgive_peers(Instant::now());
            continue;
        }
        let expired = |peers: &HashMap<(String, u64), Instant>| -> Vec<(String, u64)> {
            peers
                .iter()
                .filter(|(_, seen)| seen.elapsed() > cluster.lease)
                .map(|(peer, _)| peer.clone())
                .collect()
        };
        if expired(&cluster.peers.lock()).is_empty() {
            continue;
        }
        let asked = Instant::now();
        let Some(seen) = cluster.caught_up().await else {
            continue;
        };
        // Still judged from a fresh view once the follower caught up (not paused meanwhile)?
        if asked.elapsed() > cluster.lease + every || !cluster.hears_itself() {
            continue;
        }
        let dead: Vec<(String, u64)> = {
            let mut peers = cluster.peers.lock();
            let dead = expired(&peers);
            for peer in &dead {
                peers.remove(peer);
            }
            dead
        };
        for (node, incarnation) in dead {
            tracing::warn!(%node, seen, "cluster node's lease ran out; its users quit and their nicks are released");
            cluster.publish_unapplied(Event::NodeDown {
                node,
                incarnation,
                seen,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_keys_use_only_what_a_bucket_allows() {
        let key = nick_key("[bob]^{}|");
        assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
        assert_ne!(nick_key("a"), nick_key("b"));
    }
}
