//! What every connection shares: the config, the world under its lock, counters and the shutdown
//! signal. One `Arc<Shared>` is handed to each connection task.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;
use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::config::{parse_room_modes, Config, ConfigError, RoomModes};
use crate::history::History;
use crate::isupport;
use crate::state::{Channel, ChannelModes, ClientId, MemberStatus, OperClass, Topic, World};
use crate::store::ServerBan;
use crate::tls::CertResolver;

pub const VERSION: &str = concat!("parley-", env!("CARGO_PKG_VERSION"));

/// The capability that comes and goes with `accounts.registration` (offered while it is
/// `open`), so a reload that changes it sends `CAP NEW`/`CAP DEL` (cap-notify).
pub const ACCOUNT_REGISTRATION_CAP: &str = "draft/account-registration";

/// What plain-text connections need to know about TLS (for the `sts` policy) and what reloads.
pub struct TlsInfo {
    pub resolver: Arc<CertResolver>,
    /// The port of the first TLS listener, advertised in `sts=port=...`.
    pub port: u16,
}

pub struct Shared {
    pub config: Config,
    pub tls: Option<TlsInfo>,
    pub accounts: Accounts,
    /// Always-on accounts: who asked for it, who is present with no session connected.
    pub always_on: crate::accounts::always_on::AlwaysOn,
    pub history: History,
    /// `accounts.plaintext_login_from`, parsed once.
    pub plaintext_login_from: Vec<IpNet>,
    pub world: Mutex<World>,
    pub created: SystemTime,
    /// The `005` lines' tokens, computed once from the config.
    pub isupport: Vec<String>,
    /// `server.default_channel`, casefolded (empty when there is none).
    default_channel: String,
    pub shutdown: CancellationToken,
    /// The reloadable part of the config (see [`crate::config::RELOADABLE`]): read through
    /// [`Shared::live`], replaced whole on reload. `config` keeps what was started with.
    live: RwLock<Arc<Config>>,
    /// Where the config came from, so a reload reads the same file and overrides.
    config_source: Mutex<Option<ConfigSource>>,
    /// Active server bans (KLINE/DLINE), loaded at start and kept in step with the database.
    pub server_bans: Mutex<Vec<ServerBan>>,
    /// This node's part in a cluster, when `[cluster]` is on. Held without its type because the
    /// cluster is built on this shared state (it applies other nodes' events to the world), so
    /// this layer cannot name it; `cluster::of` gives it back typed.
    pub cluster: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// Web push (`draft/webpush`), when `webpush.enabled`.
    pub webpush: Option<Arc<crate::webpush::WebPush>>,
    /// The end-to-end key directory (`KEYS`, `parley.chat/e2e`); set at start with its own
    /// store connection.
    pub e2e_keys: Option<Arc<crate::accounts::key_directory::KeyDirectory>>,
    next_id: AtomicU64,
    connections: Mutex<ConnectionCounts>,
}

/// Why a new connection was turned away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A D-line covers the address; its reason.
    Banned(String),
    ServerFull,
    TooManyFromAddress,
    TooManyFromNetwork,
}

impl Admission {
    /// The reason given in the closing `ERROR` line.
    pub fn reason(&self) -> String {
        match self {
            Admission::Banned(reason) => format!("Banned: {reason}"),
            Admission::ServerFull => "Server is full, try again later".to_owned(),
            Admission::TooManyFromAddress => "Too many connections from your address".to_owned(),
            Admission::TooManyFromNetwork => "Too many connections from your network".to_owned(),
        }
    }
}

/// A connection's place in the admission counts (see [`Shared::admit`]), taken at accept and
/// given back when this is dropped, however the connection ends: a failed or timed-out TLS
/// handshake, an HTTP connection that never upgrades, or the client's goodbye.
pub struct Admitted {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.shared.release(self.ip);
    }
}

impl Shared {
    pub fn new(
        config: Config,
        tls: Option<TlsInfo>,
        accounts: Accounts,
        history: History,
        shutdown: CancellationToken,
    ) -> Self {
        let isupport = isupport::tokens(&config);
        // Validated with the config; an entry that still fails to parse is dropped, never widened.
        let plaintext_login_from = config
            .accounts
            .plaintext_login_from
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect();
        let default_channel = parley_proto::casefold(&config.server.default_channel);
        Shared {
            default_channel,
            live: RwLock::new(Arc::new(config.clone())),
            tls,
            accounts,
            always_on: Default::default(),
            history,
            plaintext_login_from,
            config,
            world: Mutex::new(World::default()),
            created: SystemTime::now(),
            isupport,
            shutdown,
            config_source: Mutex::new(None),
            server_bans: Mutex::new(Vec::new()),
            cluster: None,
            webpush: None,
            e2e_keys: None,
            next_id: AtomicU64::new(1),
            connections: Mutex::new(ConnectionCounts::default()),
        }
    }

    /// The settings in force now (reloadable ones may have changed since start).
    pub fn live(&self) -> Arc<Config> {
        self.live.read().clone()
    }

    pub fn set_config_source(&self, source: ConfigSource) {
        *self.config_source.lock() = Some(source);
    }

    /// Re-read the config from where it came from and put the reloadable keys in force, and
    /// re-read the TLS certificate. A bad file changes nothing. Returns the changed keys that
    /// need a restart (they keep their old values until then).
    pub fn reload(&self) -> Result<Vec<String>, ConfigError> {
        let source = self.config_source.lock().clone().unwrap_or_default();
        let new = Config::effective(source.path.as_deref(), source.data_dir.as_deref())?;
        let restart = self.config.restart_needed(&new);
        let open = |config: &Config| {
            config.accounts.registration == crate::config::RegistrationPolicy::Open
        };
        let registration_change = match (open(&self.live()), open(&new)) {
            (false, true) => Some("NEW"),
            (true, false) => Some("DEL"),
            _ => None,
        };
        *self.live.write() = Arc::new(new);
        if let Some(change) = registration_change {
            self.tell_cap_change(change, ACCOUNT_REGISTRATION_CAP);
        }
        if let Some(tls) = &self.tls {
            match tls.resolver.reload() {
                Ok(fingerprint) => tracing::info!(%fingerprint, "TLS certificate reloaded"),
                Err(err) => {
                    tracing::error!(%err, "TLS certificate not reloaded; keeping the old one")
                }
            }
        }
        if !restart.is_empty() {
            tracing::warn!(keys = %restart.join(", "), "config reloaded; these changes need a restart");
        }
        self.history.audit(
            "config_reload",
            None,
            None,
            None,
            None,
            Some(&restart.join(", ")),
        );
        Ok(restart)
    }

    /// cap-notify: "the server MUST notify clients about all new capabilities and about
    /// existing capabilities that are no longer available": `CAP <nick> NEW|DEL :<cap>` to this
    /// node's clients that have it on.
    fn tell_cap_change(&self, change: &str, cap: &str) {
        let world = self.world.lock();
        let told = world.users.values().filter(|u| u.remote.is_none());
        for user in told {
            let nick = if user.nick.is_empty() {
                "*"
            } else {
                &user.nick
            };
            let bytes =
                crate::relay::line(Some(self.server_name()), "CAP", &[nick, change], Some(cap));
            // Each session of the user asked for cap-notify or not on its own.
            for session in &user.sessions {
                if session.notify_caps() & crate::relay::notify::CAP_NOTIFY != 0 {
                    let _ = session.push(&bytes);
                }
            }
        }
    }

    /// The operator class configured for this account, if any.
    pub fn oper_class(&self, account: &str) -> Option<OperClass> {
        let folded = parley_proto::casefold(account);
        let listed = |names: &[String]| names.iter().any(|n| parley_proto::casefold(n) == folded);
        let live = self.live();
        let opers = &live.operators;
        if listed(&opers.admins) {
            Some(OperClass::Admin)
        } else if listed(&opers.moderators) {
            Some(OperClass::Moderator)
        } else {
            None
        }
    }

    /// Whether an operator of this class holds `permission`.
    pub fn oper_can(&self, class: Option<OperClass>, permission: &str) -> bool {
        match class {
            Some(OperClass::Admin) => true,
            Some(OperClass::Moderator) => self
                .live()
                .operators
                .moderator_permissions
                .iter()
                .any(|p| p == permission),
            None => false,
        }
    }

    /// A channel about to be made by a first join. The default room gets the config's modes
    /// and topic (`server.default_channel_modes`, `server.default_channel_topic`) each time it
    /// is made, so neither a restart nor its emptying loses them; others get the usual `+nt`.
    pub fn new_channel(&self, name: &str) -> Channel {
        let mut channel = Channel::new(name);
        if self.is_default_channel(&parley_proto::casefold(name)) {
            self.set_default_room(&mut channel);
        }
        channel
    }

    /// Give `channel` (the default room) the config's modes and, if one is set, its topic.
    pub fn set_default_room(&self, channel: &mut Channel) {
        let server = &self.config.server;
        // Validated with the config; should it still not parse, the room gets the usual +nt.
        let modes = parse_room_modes(&server.default_channel_modes).unwrap_or(RoomModes {
            no_external: true,
            topic_ops_only: true,
            ..RoomModes::default()
        });
        channel.modes = ChannelModes {
            moderated: modes.moderated,
            no_external: modes.no_external,
            topic_ops_only: modes.topic_ops_only,
            invite_only: false,
            // The room everyone is put in is public by nature; the config cannot make it secret.
            secret: false,
            no_ctcp: false,
            key: None,
            limit: modes.limit,
        };
        if !server.default_channel_topic.is_empty() {
            channel.topic = Some(Topic {
                text: server.default_channel_topic.clone(),
                set_by: server.name.clone(),
                set_at: channel.created,
            });
        }
    }

    /// Whether `key` (a casefolded channel name) is the default room every user is put in. It
    /// belongs to the server: nobody can own it, and joining it first makes nobody its operator.
    pub fn is_default_channel(&self, key: &str) -> bool {
        !self.default_channel.is_empty() && self.default_channel == key
    }

    /// Whether someone with `status` in channel `key` (and operator class `oper`) may do what
    /// channel operators do there. In the default room server operators with the `channels`
    /// permission may too, channel status or not: they are the ones who moderate it.
    pub fn may_moderate(
        &self,
        key: &str,
        status: Option<MemberStatus>,
        oper: Option<OperClass>,
    ) -> bool {
        status.is_some_and(|s| s.op)
            || (self.is_default_channel(key) && self.oper_can(oper, "channels"))
    }

    /// The reason of an active D-line covering `ip`.
    pub fn dline_for(&self, ip: IpAddr) -> Option<String> {
        let now = crate::clock::now_ms();
        self.server_bans
            .lock()
            .iter()
            .filter(|b| b.kind == "dline" && b.expires_ms.is_none_or(|e| e > now))
            .find(|b| dline_covers(&b.mask, ip))
            .map(|b| b.reason.clone())
    }

    /// The reason of an active K-line matching this user.
    pub fn kline_for(&self, source: &str, account: Option<&str>) -> Option<String> {
        let now = crate::clock::now_ms();
        self.server_bans
            .lock()
            .iter()
            .filter(|b| b.kind == "kline" && b.expires_ms.is_none_or(|e| e > now))
            .find(|b| crate::state::mask_matches(&b.mask, source, account))
            .map(|b| b.reason.clone())
    }

    pub fn next_client_id(&self) -> ClientId {
        ClientId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    pub fn server_name(&self) -> &str {
        &self.config.server.name
    }

    /// Admit a new connection from `ip`, at accept and before anything is spent on it (a TLS
    /// handshake above all): a D-lined address is refused, and the rest are counted against
    /// the per-server, per-address and per-network limits until the [`Admitted`] is dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Admission> {
        // The accept loops pass canonical addresses already; one mapped form must never
        // slip past the counts as a second address.
        let ip = ip.to_canonical();
        if let Some(reason) = self.dline_for(ip) {
            return Err(Admission::Banned(reason));
        }
        self.count(ip)?;
        Ok(Admitted {
            shared: self.clone(),
            ip,
        })
    }

    fn count(&self, ip: IpAddr) -> Result<(), Admission> {
        let limits = &self.config.limits;
        let mut counts = self.connections.lock();
        if counts.total >= limits.max_clients {
            return Err(Admission::ServerFull);
        }
        if counts.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_clients_per_ip {
            return Err(Admission::TooManyFromAddress);
        }
        let net = network_of(ip);
        if counts.per_net.get(&net).copied().unwrap_or(0) >= limits.max_clients_per_cidr {
            return Err(Admission::TooManyFromNetwork);
        }
        counts.total += 1;
        *counts.per_ip.entry(ip).or_insert(0) += 1;
        *counts.per_net.entry(net).or_insert(0) += 1;
        Ok(())
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.connections.lock();
        counts.total = counts.total.saturating_sub(1);
        decrement(&mut counts.per_ip, ip);
        decrement(&mut counts.per_net, network_of(ip));
    }

    pub fn connection_count(&self) -> usize {
        self.connections.lock().total
    }
}

/// Whether a D-line mask (an address or a CIDR network) covers `ip`. An IPv4 address is
/// covered by a mask written in either form (`192.0.2.7` or `::ffff:192.0.2.7`).
pub fn dline_covers(mask: &str, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let mapped = match ip {
        IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        IpAddr::V6(_) => None,
    };
    if let Ok(net) = mask.parse::<IpNet>() {
        return net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m));
    }
    mask.parse::<IpAddr>().is_ok_and(|m| m.to_canonical() == ip)
}

/// Open connections, in total, per address and per network, for the admission limits.
#[derive(Default)]
struct ConnectionCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_net: HashMap<IpNet, usize>,
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    if let Some(count) = map.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            map.remove(&key);
        }
    }
}

/// The network an address is counted in for `max_clients_per_cidr`: its /24 or /64.
fn network_of(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { 24 } else { 64 };
    IpNet::new(ip, prefix)
        .map(|net| net.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

/// The file and command-line overrides a config was loaded from (environment variables are read
/// again on each load).
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    pub path: Option<std::path::PathBuf>,
    pub data_dir: Option<std::path::PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn dlines_cover_ipv4_in_either_form() {
        for peer in ["192.0.2.7", "::ffff:192.0.2.7"] {
            for mask in [
                "192.0.2.7",
                "192.0.2.0/24",
                "::ffff:192.0.2.7",
                "::ffff:192.0.2.0/120",
            ] {
                assert!(dline_covers(mask, ip(peer)), "{mask} covers {peer}");
            }
            assert!(!dline_covers("192.0.3.0/24", ip(peer)));
        }
        assert!(dline_covers("2001:db8::/32", ip("2001:db8::1")));
        assert!(!dline_covers("192.0.2.0/24", ip("2001:db8::1")));
    }
}
