//! `[cluster]`: several nodes as one network over NATS and one PostgreSQL database. Its `Debug` is
//! written by hand in `secrets.rs`, so the NATS password, token and seed are never printed.

use serde::{Deserialize, Serialize};

/// `[cluster]`: several parleyd nodes seen by users as one network, sharing live state through
/// a NATS server (JetStream) and everything stored through one PostgreSQL database.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Off by default: one node on its own, as before.
    pub enabled: bool,
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub nats_url: String,
    /// This node's name, unique in the cluster; it names the node's users' origin.
    pub node_name: String,
    /// A node not heard from for this long is taken for dead: its users quit everywhere and
    /// their nicks are released.
    pub lease_secs: u64,
    /// Prefix of the JetStream stream and key-value buckets, so several clusters can share
    /// one NATS server.
    pub prefix: String,
    /// Every node's name: events, heartbeats and snapshots from any other name are dropped.
    pub nodes: Vec<String>,
    /// This node's NATS user (with `nats_password`); each node should have its own, whose
    /// permissions let it publish only as itself (docs/cluster.md).
    pub nats_user: String,
    /// Secret: never printed or logged. Best kept in `PARLEY_CLUSTER__NATS_PASSWORD`.
    pub nats_password: String,
    /// A NATS token instead of a user and password. Secret, like `nats_password`.
    pub nats_token: String,
    /// A file holding this node's NATS user nkey seed (`SU...`), for nats-server's
    /// `{ nkey: U... }` users: the node proves it holds the seed by signing a nonce, and the
    /// seed stays out of this config.
    pub nats_nkey_seed_file: String,
    /// The seed itself, for `PARLEY_CLUSTER__NATS_NKEY_SEED`. Secret, like `nats_password`.
    pub nats_nkey_seed: String,
    /// A NATS `.creds` file (user JWT and nkey seed), for nats-server in operator mode.
    pub nats_creds_file: String,
    /// PEM CA file that signs the NATS server's certificate; setting it requires TLS to NATS.
    pub nats_tls_ca: String,
    /// PEM client certificate (with `nats_tls_key`) this node presents to NATS.
    pub nats_tls_cert: String,
    pub nats_tls_key: String,
    /// Run without NATS credentials or a list of nodes: anyone who reaches NATS can read and
    /// forge every event. Only for a private test network.
    pub insecure: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            node_name: String::new(),
            lease_secs: 10,
            prefix: "parley".to_owned(),
            nodes: Vec::new(),
            nats_user: String::new(),
            nats_password: String::new(),
            nats_token: String::new(),
            nats_nkey_seed_file: String::new(),
            nats_nkey_seed: String::new(),
            nats_creds_file: String::new(),
            nats_tls_ca: String::new(),
            nats_tls_cert: String::new(),
            nats_tls_key: String::new(),
            insecure: false,
        }
    }
}

impl super::Config {
    /// In a cluster every node needs a server name of its own: users see it as the source of
    /// the node's replies, and LINKS, MAP and WHOIS tell the nodes apart by it. A name left at
    /// the default becomes `<node_name>.parley.local`, unique because node names are; a name
    /// set by hand is kept (the node refuses to start if a live node already uses it). Applied
    /// at start and on every reload alike, so a reload sees no change to restart for.
    pub fn derive_node_server_name(&mut self) {
        let default = super::ServerConfig::default().name;
        if self.cluster.enabled && !self.cluster.node_name.is_empty() && self.server.name == default
        {
            self.server.name = format!("{}.{default}", self.cluster.node_name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn a_cluster_node_left_at_the_default_name_gets_its_own() {
        let mut config = Config::default();
        config.derive_node_server_name();
        assert_eq!(
            config.server.name, "parley.local",
            "a single server keeps it"
        );
        config.cluster.enabled = true;
        config.cluster.node_name = "n2".into();
        config.derive_node_server_name();
        assert_eq!(config.server.name, "n2.parley.local");
        config.derive_node_server_name();
        assert_eq!(
            config.server.name, "n2.parley.local",
            "applied twice, the same"
        );
        config.server.name = "irc.example.org".into();
        config.derive_node_server_name();
        assert_eq!(
            config.server.name, "irc.example.org",
            "a name set by hand stays"
        );
    }
}
