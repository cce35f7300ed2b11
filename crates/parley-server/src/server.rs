//! What every connection shares: the config, the world under its lock, counters and the shutdown
//! signal. One `Arc<Shared>` is handed to each connection task.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use ipnet::IpNet;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::history::History;
use crate::isupport;
use crate::state::{ClientId, World};
use crate::store::ServerBan;
use crate::tls::CertResolver;

pub const VERSION: &str = concat!("parley-", env!("CARGO_PKG_VERSION"));

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
    pub history: History,
    /// `accounts.plaintext_login_from`, parsed once.
    pub plaintext_login_from: Vec<IpNet>,
    pub world: Mutex<World>,
    pub created: SystemTime,
    /// The `005` lines' tokens, computed once from the config.
    pub isupport: Vec<String>,
    pub shutdown: CancellationToken,
    /// Active server bans (KLINE/DLINE), loaded at start and kept in step with the database.
    pub server_bans: Mutex<Vec<ServerBan>>,
    next_id: AtomicU64,
    connections_per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// A server operator's class: admins may do everything, moderators what the config allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperClass {
    Admin,
    Moderator,
}

impl OperClass {
    pub fn name(self) -> &'static str {
        match self {
            OperClass::Admin => "admin",
            OperClass::Moderator => "moderator",
        }
    }
}

/// Why a new connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    ServerFull,
    TooManyFromAddress,
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
        Shared {
            tls,
            accounts,
            history,
            plaintext_login_from,
            config,
            world: Mutex::new(World::default()),
            created: SystemTime::now(),
            isupport,
            shutdown,
            server_bans: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            connections_per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// The operator class configured for this account, if any.
    pub fn oper_class(&self, account: &str) -> Option<OperClass> {
        let folded = parley_proto::casefold(account);
        let listed = |names: &[String]| names.iter().any(|n| parley_proto::casefold(n) == folded);
        let opers = &self.config.operators;
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
                .config
                .operators
                .moderator_permissions
                .iter()
                .any(|p| p == permission),
            None => false,
        }
    }

    /// The reason of an active D-line covering `ip`.
    pub fn dline_for(&self, ip: IpAddr) -> Option<String> {
        let now = crate::relay::now_ms();
        self.server_bans
            .lock()
            .iter()
            .filter(|b| b.kind == "dline" && b.expires_ms.is_none_or(|e| e > now))
            .find(|b| dline_covers(&b.mask, ip))
            .map(|b| b.reason.clone())
    }

    /// The reason of an active K-line matching this user.
    pub fn kline_for(&self, source: &str, account: Option<&str>) -> Option<String> {
        let now = crate::relay::now_ms();
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

    /// Count a new connection from `ip` against the limits; release it with [`Shared::release`].
    pub fn admit(&self, ip: IpAddr) -> Result<(), Admission> {
        let mut per_ip = self.connections_per_ip.lock();
        let total: usize = per_ip.values().sum();
        if total >= self.config.limits.max_clients {
            return Err(Admission::ServerFull);
        }
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.config.limits.max_clients_per_ip {
            return Err(Admission::TooManyFromAddress);
        }
        *count += 1;
        Ok(())
    }

    pub fn release(&self, ip: IpAddr) {
        let mut per_ip = self.connections_per_ip.lock();
        if let Some(count) = per_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    pub fn connection_count(&self) -> usize {
        self.connections_per_ip.lock().values().sum()
    }
}

/// Whether a D-line mask (an address or a CIDR network) covers `ip`.
pub fn dline_covers(mask: &str, ip: IpAddr) -> bool {
    if let Ok(net) = mask.parse::<IpNet>() {
        return net.contains(&ip);
    }
    mask.parse::<IpAddr>().is_ok_and(|m| m == ip)
}
