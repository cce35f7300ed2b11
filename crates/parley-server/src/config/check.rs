//! The rules types alone cannot express: names, addresses, ranges, and keys that go together or
//! exclude each other. [`Config::validate`] runs them on a config built in code; loading runs them
//! after the environment, so a failure is reported at its key's line or by its variable. The check
//! stops at the first failure, so their order decides which key an error names.

use std::net::SocketAddr;
use std::path::Path;

use super::postgres_url::parse_url;
use super::{
    argon2id_problem, parse_room_modes, ClusterConfig, Config, ConfigError, RegistrationPolicy,
    StoreKind, LETS_ENCRYPT_DIRECTORY, OPERATOR_PERMISSIONS,
};

/// A validation failure before it is given a file and line: the dotted key, which element of a list
/// (if the key is a list), and what is wrong.
pub(super) struct Invalid {
    pub(super) key: &'static str,
    pub(super) item: Option<usize>,
    pub(super) message: String,
}

impl Invalid {
    pub(super) fn new(key: &'static str, message: String) -> Self {
        Self {
            key,
            item: None,
            message,
        }
    }
}

impl Config {
    /// Checks the rules that types alone cannot express, for a `Config` built in code. Errors carry no
    /// path and line 0; [`Config::from_toml_str`] and [`Config::load`] already run this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(|invalid| ConfigError::InvalidValue {
            path: None,
            key: invalid.key.to_owned(),
            line: 0,
            message: invalid.message,
        })
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        let server = &self.server;
        if server.name.is_empty()
            || !server
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(Invalid::new(
                "server.name",
                format!(
                    "{:?} is not a server name; use letters, digits, '.', '-' and '_' only, like \"irc.example.org\"",
                    server.name
                ),
            ));
        }
        if server.network.is_empty()
            || server
                .network
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Invalid::new(
                "server.network",
                format!(
                    "{:?} is not a network name; use one word without spaces, like \"Parley\"",
                    server.network
                ),
            ));
        }
        for (key, text) in [
            ("server.admin_location", &server.admin_location),
            ("server.admin_email", &server.admin_email),
        ] {
            // Sent as one reply line: a line break would end it and start a forged one.
            if text.chars().any(char::is_control) || text.len() > 200 {
                return Err(Invalid::new(
                    key,
                    "use one line of at most 200 characters, without control characters".to_owned(),
                ));
            }
        }
        let channel = &server.default_channel;
        if !channel.is_empty() {
            let well_formed = channel.len() >= 2
                && channel.starts_with('#')
                && !channel
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',');
            if !well_formed {
                return Err(Invalid::new(
                    "server.default_channel",
                    format!(
                        "{channel:?} is not a channel name; use '#' and a name without spaces or commas, like \"#lobby\", or \"\" for none"
                    ),
                ));
            }
        }
        if let Err(message) = parse_room_modes(&server.default_channel_modes) {
            return Err(Invalid::new("server.default_channel_modes", message));
        }
        if let Some(c) = server
            .default_channel_topic
            .chars()
            .find(|c| c.is_control())
        {
            return Err(Invalid::new(
                "server.default_channel_topic",
                format!("it contains the control character {c:?}; a topic is one line of text"),
            ));
        }
        if server.data_dir.as_os_str().is_empty() {
            return Err(Invalid::new(
                "server.data_dir",
                "the path is empty; name a directory, like \"parley\"".to_owned(),
            ));
        }

        if self.listen.plain.is_empty() && self.listen.tls.is_empty() && self.web.listen.is_empty()
        {
            return Err(Invalid::new(
                "listen.plain",
                "listen.plain, listen.tls and web.listen are all empty, so no one could connect; add an address like \"127.0.0.1:6667\""
                    .to_owned(),
            ));
        }
        for (key, addresses) in [
            ("listen.plain", &self.listen.plain),
            ("listen.tls", &self.listen.tls),
        ] {
            for (index, address) in addresses.iter().enumerate() {
                if address.parse::<SocketAddr>().is_err() {
                    return Err(Invalid {
                        key,
                        item: Some(index),
                        message: format!(
                            "{address:?} is not an address like 127.0.0.1:6667 or [::1]:6667 (an IP and a port, no host names)"
                        ),
                    });
                }
            }
        }
        for (index, address) in self.web.listen.iter().enumerate() {
            if address.parse::<SocketAddr>().is_err() {
                return Err(Invalid {
                    key: "web.listen",
                    item: Some(index),
                    message: format!(
                        "{address:?} is not an address like 0.0.0.0:8443 or [::]:8443 (an IP and a port, no host names)"
                    ),
                });
            }
        }
        for (index, origin) in self.web.allowed_origins.iter().enumerate() {
            if !is_web_origin(origin) {
                return Err(Invalid {
                    key: "web.allowed_origins",
                    item: Some(index),
                    message: format!(
                        "{origin:?} is not an origin; use a scheme and host (and port), like \"https://chat.example.org\", or \"*\""
                    ),
                });
            }
        }
        let contact = &self.webpush.contact;
        if !contact.is_empty()
            && !contact.starts_with("mailto:")
            && !contact.starts_with("https://")
        {
            return Err(Invalid::new(
                "webpush.contact",
                format!(
                    "{contact:?} is not a mailto: or https: URL; use one like \"mailto:admin@example.org\", or \"\""
                ),
            ));
        }
        for (index, host) in self.webpush.allow_insecure_endpoints.iter().enumerate() {
            if host.is_empty() || host.contains(['/', ' ', '@']) {
                return Err(Invalid {
                    key: "webpush.allow_insecure_endpoints",
                    item: Some(index),
                    message: format!(
                        "{host:?} is not a host; write it as in the endpoint URL, like \"127.0.0.1\""
                    ),
                });
            }
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            let key = if self.tls.cert.is_empty() {
                "tls.key"
            } else {
                "tls.cert"
            };
            return Err(Invalid::new(
                key,
                "tls.cert and tls.key go together; set both, or leave both empty for a generated certificate".to_owned(),
            ));
        }
        check_acme(self)?;
        let accounts = &self.accounts;
        if accounts.database.is_empty() {
            return Err(Invalid::new(
                "accounts.database",
                "the path is empty; name a file, like \"parley.db\"".to_owned(),
            ));
        }
        if accounts.store == StoreKind::Postgres {
            if accounts.postgres_url.is_empty() {
                return Err(Invalid::new(
                    "accounts.postgres_url",
                    "store = \"postgres\" needs a URL, like \"postgres://parley@127.0.0.1/parley\""
                        .to_owned(),
                ));
            }
            if let Err(error) = parse_url(&accounts.postgres_url) {
                return Err(Invalid::new(
                    "accounts.postgres_url",
                    format!("not a PostgreSQL URL: {error}"),
                ));
            }
        }
        if accounts.postgres_client_cert.is_empty() != accounts.postgres_client_key.is_empty() {
            return Err(Invalid::new(
                "accounts.postgres_client_cert",
                "postgres_client_cert and postgres_client_key go together; set both or neither"
                    .to_owned(),
            ));
        }
        let cluster = &self.cluster;
        if cluster.enabled {
            if accounts.store != StoreKind::Postgres {
                return Err(Invalid::new(
                    "cluster.enabled",
                    "a cluster keeps accounts and history in one shared database; set \
                     accounts.store = \"postgres\""
                        .to_owned(),
                ));
            }
            let name_ok = |name: &str| {
                !name.is_empty()
                    && name.len() <= 32
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            if !name_ok(&cluster.node_name) {
                return Err(Invalid::new(
                    "cluster.node_name",
                    "give each node a unique name of 1 to 32 letters, digits, - or _".to_owned(),
                ));
            }
            if !name_ok(&cluster.prefix) {
                return Err(Invalid::new(
                    "cluster.prefix",
                    "use 1 to 32 letters, digits, - or _".to_owned(),
                ));
            }
            if !cluster.nats_url.starts_with("nats://") && !cluster.nats_url.starts_with("tls://") {
                return Err(Invalid::new(
                    "cluster.nats_url",
                    "expected a URL like \"nats://127.0.0.1:4222\"".to_owned(),
                ));
            }
            if !(2..=3600).contains(&cluster.lease_secs) {
                return Err(Invalid::new(
                    "cluster.lease_secs",
                    format!("{} is out of range; use 2 to 3600", cluster.lease_secs),
                ));
            }
            check_nats_access(cluster, name_ok)?;
        }
        if accounts.min_password_len == 0 || accounts.min_password_len > accounts.max_password_len {
            return Err(Invalid::new(
                "accounts.min_password_len",
                format!(
                    "{} must be at least 1 and no more than accounts.max_password_len ({})",
                    accounts.min_password_len, accounts.max_password_len
                ),
            ));
        }
        for (index, network) in accounts.plaintext_login_from.iter().enumerate() {
            if network.parse::<ipnet::IpNet>().is_err() {
                return Err(Invalid {
                    key: "accounts.plaintext_login_from",
                    item: Some(index),
                    message: format!(
                        "{network:?} is not a network like 127.0.0.0/8 or ::1/128 (an address, '/', a prefix length)"
                    ),
                });
            }
        }
        for (index, permission) in self.operators.moderator_permissions.iter().enumerate() {
            if !OPERATOR_PERMISSIONS.contains(&permission.as_str()) {
                return Err(Invalid {
                    key: "operators.moderator_permissions",
                    item: Some(index),
                    message: format!(
                        "{permission:?} is not a permission; use some of: {}",
                        OPERATOR_PERMISSIONS.join(", ")
                    ),
                });
            }
        }
        self.check_oper_blocks()?;
        self.search.check()?;
        if self.history.max_request == 0 {
            return Err(Invalid::new(
                "history.max_request",
                "0 would answer every CHATHISTORY with nothing; use at least 1".to_owned(),
            ));
        }
        if self.history.prune_interval_secs == 0 {
            return Err(Invalid::new(
                "history.prune_interval_secs",
                "use at least 1 second".to_owned(),
            ));
        }
        if !accounts.register_before_connect
            && accounts.require_login
            && accounts.registration == RegistrationPolicy::Open
        {
            return Err(Invalid::new(
                "accounts.register_before_connect",
                "false with require_login = true leaves no way to REGISTER: a connection must \
                 log in before it is registered. Set register_before_connect = true, \
                 require_login = false, or registration = \"closed\""
                    .to_owned(),
            ));
        }
        if accounts.max_failures == 0 {
            return Err(Invalid::new(
                "accounts.max_failures",
                "0 would lock everyone out; use at least 1".to_owned(),
            ));
        }
        if accounts.address_max_accounts < 2 {
            return Err(Invalid::new(
                "accounts.address_max_accounts",
                format!(
                    "{} would lock an address out for one account's typos; use at least 2",
                    accounts.address_max_accounts
                ),
            ));
        }

        let limits = &self.limits;
        let ranges: [(&'static str, u64, u64, u64); 23] = [
            (
                "limits.max_clients_per_cidr",
                as_u64(limits.max_clients_per_cidr),
                1,
                u64::MAX,
            ),
            (
                "limits.members_per_channel",
                as_u64(limits.members_per_channel),
                1,
                u64::MAX,
            ),
            (
                "limits.max_clients",
                as_u64(limits.max_clients),
                1,
                u64::MAX,
            ),
            (
                "limits.max_clients_per_ip",
                as_u64(limits.max_clients_per_ip),
                1,
                u64::MAX,
            ),
            ("limits.nick_len", as_u64(limits.nick_len), 1, 64),
            ("limits.user_len", as_u64(limits.user_len), 1, u64::MAX),
            ("limits.channel_len", as_u64(limits.channel_len), 2, 200),
            ("limits.topic_len", as_u64(limits.topic_len), 1, u64::MAX),
            ("limits.away_len", as_u64(limits.away_len), 1, u64::MAX),
            ("limits.kick_len", as_u64(limits.kick_len), 1, u64::MAX),
            (
                "limits.channels_per_user",
                as_u64(limits.channels_per_user),
                1,
                u64::MAX,
            ),
            (
                "limits.targets_per_message",
                as_u64(limits.targets_per_message),
                1,
                u64::MAX,
            ),
            (
                "limits.send_queue_bytes",
                as_u64(limits.send_queue_bytes),
                4096,
                u64::MAX,
            ),
            (
                "limits.registration_timeout_secs",
                limits.registration_timeout_secs,
                1,
                u64::MAX,
            ),
            (
                "limits.handshake_timeout_secs",
                limits.handshake_timeout_secs,
                1,
                u64::MAX,
            ),
            (
                "limits.ping_interval_secs",
                limits.ping_interval_secs,
                1,
                u64::MAX,
            ),
            (
                "limits.ping_timeout_secs",
                limits.ping_timeout_secs,
                1,
                u64::MAX,
            ),
            (
                "limits.whowas_entries",
                as_u64(limits.whowas_entries),
                0,
                u64::MAX,
            ),
            ("limits.monitor", as_u64(limits.monitor), 0, 100_000),
            ("limits.realname_len", as_u64(limits.realname_len), 1, 390),
            (
                "limits.read_markers_per_account",
                as_u64(limits.read_markers_per_account),
                1,
                u64::MAX,
            ),
            (
                "limits.multiline_max_bytes",
                as_u64(limits.multiline_max_bytes),
                512,
                65_536,
            ),
            (
                "limits.multiline_max_lines",
                as_u64(limits.multiline_max_lines),
                1,
                1000,
            ),
        ];
        // Durations are capped at ten years and counts at what TOML can write back (i64), so
        // every accepted config can be printed and no deadline computation can overflow.
        let others: [(&'static str, u64, u64, u64); 19] = [
            ("history.max_age_days", self.history.max_age_days, 0, 3650),
            (
                "history.prune_interval_secs",
                self.history.prune_interval_secs,
                1,
                TEN_YEARS_SECS,
            ),
            (
                "history.max_request",
                as_u64(self.history.max_request),
                1,
                100_000,
            ),
            (
                "history.replay_on_join",
                as_u64(self.history.replay_on_join),
                0,
                10_000,
            ),
            (
                "history.max_rows_per_target",
                as_u64(self.history.max_rows_per_target),
                0,
                MAX_COUNT,
            ),
            (
                "accounts.failure_window_secs",
                self.accounts.failure_window_secs,
                1,
                TEN_YEARS_SECS,
            ),
            (
                "accounts.lockout_secs",
                self.accounts.lockout_secs,
                0,
                TEN_YEARS_SECS,
            ),
            (
                "accounts.always_on_limit",
                as_u64(self.accounts.always_on_limit),
                0,
                1_000_000,
            ),
            (
                "accounts.replay_limit",
                as_u64(self.accounts.replay_limit),
                0,
                10_000,
            ),
            ("web.session_days", self.web.session_days, 1, 3650),
            ("web.max_sessions", as_u64(self.web.max_sessions), 1, 1000),
            (
                "accounts.max_sessions",
                as_u64(self.accounts.max_sessions),
                1,
                1000,
            ),
            (
                "webpush.max_subscriptions",
                as_u64(self.webpush.max_subscriptions),
                1,
                1000,
            ),
            ("webpush.queue", as_u64(self.webpush.queue), 1, 1_000_000),
            (
                "webpush.concurrency",
                as_u64(self.webpush.concurrency),
                1,
                256,
            ),
            ("webpush.timeout_secs", self.webpush.timeout_secs, 1, 300),
            (
                "accounts.scram_iterations",
                u64::from(self.accounts.scram_iterations),
                u64::from(parley_proto::scram::MIN_ITERATIONS),
                u64::from(parley_proto::scram::MAX_ITERATIONS),
            ),
            (
                "tls.sts_duration_secs",
                self.tls.sts_duration_secs,
                0,
                TEN_YEARS_SECS,
            ),
            ("tls.acme_renew_days", self.tls.acme_renew_days, 1, 365),
        ];
        let broadcast = [(
            "operators.broadcast_interval_secs",
            self.operators.broadcast_interval_secs,
            0,
            TEN_YEARS_SECS,
        )];
        let passwords = [
            (
                "accounts.max_password_len",
                as_u64(self.accounts.max_password_len),
                1,
                4096,
            ),
            (
                "accounts.min_password_len",
                as_u64(self.accounts.min_password_len),
                1,
                4096,
            ),
        ];
        for (key, value, min, max) in ranges
            .into_iter()
            .chain(others)
            .chain(broadcast)
            .chain(passwords)
        {
            let max = if key.ends_with("_secs") {
                max.min(TEN_YEARS_SECS)
            } else {
                max.min(MAX_COUNT)
            };
            if value < min || value > max {
                return Err(Invalid::new(
                    key,
                    format!("{value} is out of range; use a number from {min} to {max}"),
                ));
            }
        }
        // Sent as an AWAY parameter and 301 text: one line, and some of it to say.
        let away = &self.accounts.always_on_away;
        if away.trim().is_empty() || away.chars().any(char::is_control) || away.len() > 200 {
            return Err(Invalid::new(
                "accounts.always_on_away",
                "use one line of 1 to 200 characters, without control characters".to_owned(),
            ));
        }

        if server.default_channel_topic.len() > limits.topic_len {
            return Err(Invalid::new(
                "server.default_channel_topic",
                format!(
                    "it is {} bytes, longer than limits.topic_len ({}); shorten it or raise the limit",
                    server.default_channel_topic.len(),
                    limits.topic_len
                ),
            ));
        }
        // Checked after the limits so that a bad channel_len is reported as itself.
        if server.default_channel.len() > limits.channel_len {
            return Err(Invalid::new(
                "server.default_channel",
                format!(
                    "{:?} is {} bytes, longer than limits.channel_len ({}); shorten it or raise the limit",
                    server.default_channel,
                    server.default_channel.len(),
                    limits.channel_len
                ),
            ));
        }

        if self.flood.burst == 0 {
            return Err(Invalid::new(
                "flood.burst",
                "0 would refuse every line; use at least 1, or set flood.enabled = false"
                    .to_owned(),
            ));
        }
        let rate = self.flood.lines_per_second;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Invalid::new(
                "flood.lines_per_second",
                format!("{rate} is not a rate; use a number above 0, like 2.0, or set flood.enabled = false"),
            ));
        }

        for (index, address) in self.metrics.listen.iter().enumerate() {
            if address.parse::<SocketAddr>().is_err() {
                return Err(Invalid {
                    key: "metrics.listen",
                    item: Some(index),
                    message: format!(
                        "{address:?} is not an address like 127.0.0.1:9100 (an IP and a port, no host names)"
                    ),
                });
            }
        }

        if !is_log_filter(&self.log.level) {
            return Err(Invalid::new(
                "log.level",
                format!(
                    "{:?} is not a log level; use trace, debug, info, warn, error or off, or directives like \"info,parley_server=debug\"",
                    self.log.level
                ),
            ));
        }
        Ok(())
    }
}

/// `[tls] acme_*`: a name a CA will sign, a CA to ask over HTTPS, and a way for it to reach us.
fn check_acme(config: &Config) -> Result<(), Invalid> {
    let tls = &config.tls;
    if tls.acme_domain.is_empty() {
        return Ok(());
    }
    if !tls.cert.is_empty() || !tls.key.is_empty() {
        return Err(Invalid::new(
            "tls.acme_domain",
            "tls.acme_domain gets a certificate automatically, so it conflicts with tls.cert and tls.key; \
             set either acme_domain or cert and key, not both"
                .to_owned(),
        ));
    }
    let domain = &tls.acme_domain;
    let is_ip = domain.parse::<std::net::IpAddr>().is_ok();
    if is_ip
        || domain.contains('*')
        || rustls::pki_types::DnsName::try_from(domain.as_str()).is_err()
    {
        return Err(Invalid::new(
            "tls.acme_domain",
            format!(
                "{domain:?} is not a DNS name a CA can check over HTTP-01; use a host name like \"chat.example.org\" (no IP address, no wildcard)"
            ),
        ));
    }
    if !tls.acme_directory.starts_with("https://") || tls.acme_directory.len() <= "https://".len() {
        return Err(Invalid::new(
            "tls.acme_directory",
            format!(
                "{:?} is not an https:// URL; ACME servers are reached over HTTPS, like \"{LETS_ENCRYPT_DIRECTORY}\"",
                tls.acme_directory
            ),
        ));
    }
    let email = &tls.acme_email;
    if !email.is_empty() {
        let well_formed = email.split('@').count() == 2
            && !email.starts_with('@')
            && !email.ends_with('@')
            && !email
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '>'));
        if !well_formed {
            return Err(Invalid::new(
                "tls.acme_email",
                format!("{email:?} is not an email address; use one like \"admin@example.org\", or \"\" for none"),
            ));
        }
    }
    if !tls.acme_ca.is_empty() && !Path::new(&tls.acme_ca).is_file() {
        return Err(Invalid::new(
            "tls.acme_ca",
            format!(
                "{:?} is not a readable file; give the path of a PEM file of CA certificates, or \"\"",
                tls.acme_ca
            ),
        ));
    }
    if tls.acme_http_listen.is_empty() {
        return Err(Invalid::new(
            "tls.acme_http_listen",
            "ACME needs a plain-HTTP listener for the HTTP-01 challenge; add \"0.0.0.0:80\""
                .to_owned(),
        ));
    }
    for (index, address) in tls.acme_http_listen.iter().enumerate() {
        if address.parse::<SocketAddr>().is_err() {
            return Err(Invalid {
                key: "tls.acme_http_listen",
                item: Some(index),
                message: format!(
                    "{address:?} is not an address like 0.0.0.0:80 or [::]:80 (an IP and a port, no host names)"
                ),
            });
        }
    }
    if config.listen.tls.is_empty() && config.web.listen.is_empty() {
        return Err(Invalid::new(
            "tls.acme_domain",
            "listen.tls and web.listen are both empty, so no listener would use the certificate; add a TLS or web listener, or set acme_domain = \"\"".to_owned(),
        ));
    }
    Ok(())
}

/// How a node proves itself to NATS, and whom it listens to: credentials and the node list are
/// required unless `insecure` says the bus is a private test network.
fn check_nats_access(
    cluster: &ClusterConfig,
    name_ok: impl Fn(&str) -> bool,
) -> Result<(), Invalid> {
    let authority = cluster
        .nats_url
        .split_once("://")
        .map_or("", |(_, rest)| rest.split('/').next().unwrap_or_default());
    if authority.contains('@') {
        return Err(Invalid::new(
            "cluster.nats_url",
            "the NATS client does not use credentials written in the URL; remove them and set \
             cluster.nats_user with PARLEY_CLUSTER__NATS_PASSWORD (or PARLEY_CLUSTER__NATS_TOKEN)"
                .to_owned(),
        ));
    }
    if cluster.nats_user.is_empty() != cluster.nats_password.is_empty() {
        let missing = if cluster.nats_user.is_empty() {
            "cluster.nats_user"
        } else {
            "cluster.nats_password"
        };
        return Err(Invalid::new(
            missing,
            "set both cluster.nats_user and cluster.nats_password (or neither)".to_owned(),
        ));
    }
    if !cluster.nats_nkey_seed.is_empty() && !cluster.nats_nkey_seed_file.is_empty() {
        return Err(Invalid::new(
            "cluster.nats_nkey_seed",
            "set the nkey seed either in a file (cluster.nats_nkey_seed_file) or in \
             PARLEY_CLUSTER__NATS_NKEY_SEED, not both"
                .to_owned(),
        ));
    }
    // One login: nats-server would take only one of them, and which one is not obvious.
    let logins: Vec<&str> = [
        ("cluster.nats_user", !cluster.nats_user.is_empty()),
        ("cluster.nats_token", !cluster.nats_token.is_empty()),
        (
            "cluster.nats_nkey_seed_file",
            !cluster.nats_nkey_seed_file.is_empty() || !cluster.nats_nkey_seed.is_empty(),
        ),
        (
            "cluster.nats_creds_file",
            !cluster.nats_creds_file.is_empty(),
        ),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    if let [_, second, ..] = logins[..] {
        return Err(Invalid::new(
            second,
            format!(
                "set one NATS login, not several: {} are all set; keep one (user and \
                 password, token, nkey seed, or .creds file)",
                logins.join(", ")
            ),
        ));
    }
    if cluster.nats_tls_cert.is_empty() != cluster.nats_tls_key.is_empty() {
        let missing = if cluster.nats_tls_cert.is_empty() {
            "cluster.nats_tls_cert"
        } else {
            "cluster.nats_tls_key"
        };
        return Err(Invalid::new(
            missing,
            "a client certificate needs both cluster.nats_tls_cert and cluster.nats_tls_key"
                .to_owned(),
        ));
    }
    for (key, path) in [
        ("cluster.nats_tls_ca", &cluster.nats_tls_ca),
        ("cluster.nats_tls_cert", &cluster.nats_tls_cert),
        ("cluster.nats_tls_key", &cluster.nats_tls_key),
    ] {
        if !path.is_empty() && !Path::new(path).is_file() {
            return Err(Invalid::new(
                key,
                format!("{path:?} is not a readable file; give the path of a PEM file"),
            ));
        }
    }
    for (key, path, what) in [
        (
            "cluster.nats_nkey_seed_file",
            &cluster.nats_nkey_seed_file,
            "a file holding the node's nkey seed (SU...)",
        ),
        (
            "cluster.nats_creds_file",
            &cluster.nats_creds_file,
            "a NATS .creds file",
        ),
    ] {
        if !path.is_empty() && !Path::new(path).is_file() {
            return Err(Invalid::new(
                key,
                format!("{path:?} is not a readable file; give the path of {what}"),
            ));
        }
    }
    if let Some(at) = cluster.nodes.iter().position(|n| !name_ok(n)) {
        return Err(Invalid {
            key: "cluster.nodes",
            item: Some(at),
            message: "a node name is 1 to 32 letters, digits, - or _".to_owned(),
        });
    }
    if cluster.insecure {
        return Ok(());
    }
    let authenticated = !logins.is_empty() || !cluster.nats_tls_cert.is_empty();
    if !authenticated {
        return Err(Invalid::new(
            "cluster.nats_user",
            "a cluster node must log in to NATS, or anyone who reaches it reads every private \
             message and forges any event: set cluster.nats_user and \
             PARLEY_CLUSTER__NATS_PASSWORD (or nats_token, nats_nkey_seed_file, \
             nats_creds_file, or nats_tls_cert and nats_tls_key), or cluster.insecure = true on a private test network (docs/cluster.md)"
                .to_owned(),
        ));
    }
    if cluster.nodes.is_empty() {
        return Err(Invalid::new(
            "cluster.nodes",
            "list every node's name, e.g. [\"n1\", \"n2\"], so events from no other name are \
             accepted (or set cluster.insecure = true on a private test network)"
                .to_owned(),
        ));
    }
    if !cluster.nodes.contains(&cluster.node_name) {
        return Err(Invalid::new(
            "cluster.nodes",
            format!(
                "it does not name this node ({:?}); list every node, this one included",
                cluster.node_name
            ),
        ));
    }
    Ok(())
}

/// `*`, or `scheme://host[:port]` without a path, as browsers send in `Origin`.
fn is_web_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        return false;
    };
    let host = host.strip_suffix('/').unwrap_or(host);
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !host.is_empty()
        && !host.contains(['/', '?', '#', ' ', '@'])
}

/// The largest duration any key accepts.
const TEN_YEARS_SECS: u64 = 10 * 365 * 24 * 3600;
/// The largest count any key accepts: what a TOML integer can hold.
const MAX_COUNT: u64 = i64::MAX as u64;

fn as_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// A level name, or comma-separated `tracing` directives each of which is a level name or `target=level`.
fn is_log_filter(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |word: &str| LEVELS.iter().any(|level| level.eq_ignore_ascii_case(word));
    !filter.trim().is_empty()
        && filter.split(',').all(|directive| {
            let directive = directive.trim();
            is_level(directive)
                || (directive.contains('=') && !directive.contains(char::is_whitespace))
        })
}

impl Config {
    /// `[[operators.opers]]`: names unique and one word, a real Argon2id hash (never a clear
    /// password), well-formed host masks. An error names the block by its position, since the
    /// value itself may be a password typed in the wrong place.
    fn check_oper_blocks(&self) -> Result<(), Invalid> {
        let blocks = &self.operators.opers;
        for (index, block) in blocks.iter().enumerate() {
            let number = index + 1;
            let one_word = |text: &str| {
                !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
            };
            if !one_word(&block.name) {
                return Err(Invalid {
                    key: "operators.opers.name",
                    item: Some(index),
                    message: format!(
                        "operator block {number} needs a name of one word (what OPER is given), like \"alice\""
                    ),
                });
            }
            let folded = parley_proto::casefold(&block.name);
            if blocks[..index]
                .iter()
                .any(|other| parley_proto::casefold(&other.name) == folded)
            {
                return Err(Invalid {
                    key: "operators.opers.name",
                    item: Some(index),
                    message: format!(
                        "operator block {number}: another block is already named {:?}; give each its own name",
                        block.name
                    ),
                });
            }
            if let Some(problem) = argon2id_problem(&block.password_hash) {
                return Err(Invalid {
                    key: "operators.opers.password_hash",
                    item: Some(index),
                    message: format!("operator block {:?}: {problem}", block.name),
                });
            }
            for host in &block.hosts {
                if !one_word(host) {
                    return Err(Invalid {
                        key: "operators.opers.hosts",
                        item: Some(index),
                        message: format!(
                            "operator block {:?}: {host:?} is not a mask; use user@host with * and ? (like \"*@10.0.0.*\") or a network (like \"10.0.0.0/8\")",
                            block.name
                        ),
                    });
                }
            }
            if !block.account.is_empty() && !one_word(&block.account) {
                return Err(Invalid {
                    key: "operators.opers.account",
                    item: Some(index),
                    message: format!(
                        "operator block {:?}: {:?} is not an account name; use one word, or \"\" for none",
                        block.name, block.account
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::docs::one_line_value;
    use crate::config::testing::{invalid, CLUSTER};
    use crate::config::RegistrationPolicy;

    #[test]
    fn web_section_is_checked() {
        let config = Config::from_toml_str(
            "[web]\nlisten = [\"127.0.0.1:9443\"]\nallowed_origins = [\"https://chat.example.org\", \"*\"]\n",
        )
        .expect("valid web section");
        assert_eq!(config.web.listen, ["127.0.0.1:9443"]);
        assert_eq!(Config::default().web.listen, ["0.0.0.0:8443"]);
        assert!(Config::from_toml_str("[web]\nlisten = []\n")
            .expect("off")
            .web
            .listen
            .is_empty());
        let (key, line, _) =
            invalid("[web]\nlisten = [\n  \"0.0.0.0:8443\",\n  \"web:8443\",\n]\n");
        assert_eq!((key.as_str(), line), ("web.listen", 4));
        let (key, line, message) = invalid("\n[web]\nallowed_origins = [\"chat.example.org\"]\n");
        assert_eq!((key.as_str(), line), ("web.allowed_origins", 3));
        assert!(message.contains("https://chat.example.org"), "{message}");
        let (key, _, _) = invalid("[web]\nallowed_origins = [\"https://a.example/path\"]\n");
        assert_eq!(key, "web.allowed_origins");
    }

    #[test]
    fn web_sessions_have_sane_bounds() {
        let config =
            Config::from_toml_str("[web]\nsession_days = 7\nmax_sessions = 3\n").expect("valid");
        assert_eq!((config.web.session_days, config.web.max_sessions), (7, 3));
        assert_eq!(Config::default().web.session_days, 30);
        for (text, wanted) in [
            ("[web]\nsession_days = 0\n", "web.session_days"),
            ("[web]\nsession_days = 100000\n", "web.session_days"),
            ("[web]\nmax_sessions = 0\n", "web.max_sessions"),
        ] {
            let (key, line, _) = invalid(text);
            assert_eq!((key.as_str(), line), (wanted, 2), "{text}");
        }
    }

    #[test]
    fn integers_toml_cannot_print_are_refused() {
        // Found by the config fuzzer: accepted, then --print-config panicked.
        let (key, line, _) = invalid("[history]\nmax_age_days = 18446744073709551615\n");
        assert_eq!((key.as_str(), line), ("history.max_age_days", 2));
        let (key, _, _) = invalid("[limits]\nregistration_timeout_secs = 9223372036854775807\n");
        assert_eq!(key, "limits.registration_timeout_secs");
        let (key, _, _) = invalid("[limits]\nmax_clients = 18446744073709551615\n");
        assert_eq!(key, "limits.max_clients");
    }

    #[test]
    fn acme_settings_are_checked() {
        let config = Config::from_toml_str("[tls]\nacme_domain = \"chat.example.org\"\n")
            .expect("a domain alone is enough");
        assert_eq!(config.tls.acme_directory, LETS_ENCRYPT_DIRECTORY);
        assert_eq!(config.tls.acme_http_listen, ["0.0.0.0:80"]);
        let (key, line, message) = invalid(
            "[tls]\ncert = \"a.pem\"\nkey = \"a.key\"\nacme_domain = \"chat.example.org\"\n",
        );
        assert_eq!((key.as_str(), line), ("tls.acme_domain", 4));
        assert!(
            message.contains("tls.cert") && message.contains("tls.key"),
            "{message}"
        );
        for bad in ["*.example.org", "10.0.0.1", "chat example.org", "-"] {
            let (key, _, message) = invalid(&format!("[tls]\nacme_domain = {bad:?}\n"));
            assert_eq!(key, "tls.acme_domain", "{bad}: {message}");
        }
        let acme = "[tls]\nacme_domain = \"chat.example.org\"\n";
        let (key, line, _) = invalid(&format!("{acme}acme_directory = \"http://ca/dir\"\n"));
        assert_eq!((key.as_str(), line), ("tls.acme_directory", 3));
        let (key, _, _) = invalid(&format!("{acme}acme_email = \"not an email\"\n"));
        assert_eq!(key, "tls.acme_email");
        let (key, _, message) = invalid(&format!("{acme}acme_ca = \"/no/such/ca.pem\"\n"));
        assert_eq!(key, "tls.acme_ca", "{message}");
        let (key, _, _) = invalid(&format!("{acme}acme_http_listen = []\n"));
        assert_eq!(key, "tls.acme_http_listen");
        let (key, line, _) = invalid(&format!("{acme}acme_http_listen = [\"localhost:80\"]\n"));
        assert_eq!((key.as_str(), line), ("tls.acme_http_listen", 3));
        let (key, _, _) = invalid(&format!("{acme}acme_renew_days = 0\n"));
        assert_eq!(key, "tls.acme_renew_days");
        let (key, _, _) = invalid(&format!("[listen]\ntls = []\n[web]\nlisten = []\n{acme}"));
        assert_eq!(key, "tls.acme_domain");
        // Off, the other keys are not looked at.
        Config::from_toml_str("[tls]\nacme_directory = \"nonsense\"\n").expect("unused");
    }

    #[test]
    fn tls_and_accounts_are_checked() {
        let (key, line, _) = invalid("[tls]\ncert = \"server.crt\"\n");
        assert_eq!((key.as_str(), line), ("tls.cert", 2));
        let (key, line, _) = invalid("[accounts]\nmin_password_len = 0\n");
        assert_eq!((key.as_str(), line), ("accounts.min_password_len", 2));
        let (key, line, _) = invalid("[accounts]\nplaintext_login_from = [\"10.0.0.0\"]\n");
        assert_eq!((key.as_str(), line), ("accounts.plaintext_login_from", 2));
        let (key, line, _) = invalid("[accounts]\nmax_failures = 0\n");
        assert_eq!((key.as_str(), line), ("accounts.max_failures", 2));
        let (key, line, message) = invalid("[accounts]\naddress_max_accounts = 1\n");
        assert_eq!((key.as_str(), line), ("accounts.address_max_accounts", 2));
        assert!(message.contains("one account's typos"), "{message}");
        let (key, line, message) = invalid("\n[accounts]\nregistration = \"maybe\"\n");
        assert_eq!((key.as_str(), line), ("accounts.registration", 3));
        assert!(message.contains("maybe"), "{message}");
        let config = Config::from_toml_str("[accounts]\nregistration = \"closed\"\n")
            .expect("closed is a policy");
        assert_eq!(config.accounts.registration, RegistrationPolicy::Closed);
        let (key, line, message) = invalid("[accounts]\nregister_before_connect = false\n");
        assert_eq!(
            (key.as_str(), line),
            ("accounts.register_before_connect", 2)
        );
        assert!(message.contains("require_login"), "{message}");
        let config = Config::from_toml_str(
            "[accounts]\nregister_before_connect = false\nrequire_login = false\n",
        )
        .expect("REGISTER after the welcome works for guests");
        assert!(!config.accounts.register_before_connect);
        assert!(Config::default().accounts.register_before_connect);
    }

    #[test]
    fn limit_ranges_are_enforced() {
        let cases = [
            ("nick_len = 0", "limits.nick_len"),
            ("nick_len = 65", "limits.nick_len"),
            ("channel_len = 1", "limits.channel_len"),
            ("channel_len = 201", "limits.channel_len"),
            ("send_queue_bytes = 4095", "limits.send_queue_bytes"),
            ("max_clients = 0", "limits.max_clients"),
            ("ping_timeout_secs = 0", "limits.ping_timeout_secs"),
        ];
        for (line_text, expected_key) in cases {
            let (key, line, message) = invalid(&format!("# limits\n[limits]\n{line_text}\n"));
            assert_eq!(key, expected_key, "{line_text}");
            assert_eq!(line, 3, "{line_text}");
            assert!(message.contains("out of range"), "{message}");
        }
        let config = Config::from_toml_str(
            "[limits]\nnick_len = 64\nchannel_len = 2\nsend_queue_bytes = 4096\nwhowas_entries = 0\n",
        );
        // channel_len = 2 is below the default channel's length, so turn that off to test the bounds.
        assert!(config.is_err());
        let config = Config::from_toml_str(
            "[server]\ndefault_channel = \"\"\n[limits]\nnick_len = 64\nchannel_len = 2\nsend_queue_bytes = 4096\nwhowas_entries = 0\n",
        )
        .expect("boundary values are valid");
        assert_eq!(config.limits.send_queue_bytes, 4096);
    }

    #[test]
    fn flood_rate_must_be_positive() {
        for value in ["0.0", "-1.5", "nan", "inf"] {
            let (key, line, _) = invalid(&format!(
                "[flood]\nenabled = true\nlines_per_second = {value}\n"
            ));
            assert_eq!(
                (key.as_str(), line),
                ("flood.lines_per_second", 3),
                "{value}"
            );
        }
        let (key, line, _) = invalid("[flood]\nburst = 0\n");
        assert_eq!((key.as_str(), line), ("flood.burst", 2));
    }

    #[test]
    fn default_channel_rules() {
        for bad in ["lobby", "#", "#a b", "#a,b", "#a\u{7}"] {
            let text = format!(
                "[server]\ndefault_channel = {}\n",
                one_line_value(&toml::Value::String(bad.to_owned()))
            );
            let (key, line, _) = invalid(&text);
            assert_eq!(
                (key.as_str(), line),
                ("server.default_channel", 2),
                "{bad:?}"
            );
        }
        let config = Config::from_toml_str("[server]\ndefault_channel = \"\"\n")
            .expect("empty default channel turns it off");
        assert_eq!(config.server.default_channel, "");
        // Too long for the configured channel_len, which is on another line.
        let (key, line, message) =
            invalid("[server]\ndefault_channel = \"#lobby\"\n[limits]\nchannel_len = 4\n");
        assert_eq!((key.as_str(), line), ("server.default_channel", 2));
        assert!(message.contains("limits.channel_len"), "{message}");
    }

    #[test]
    fn server_name_and_network_rules() {
        for bad in ["", "irc example", "irc:6667"] {
            let (key, line, _) = invalid(&format!("\n[server]\nname = {bad:?}\n"));
            assert_eq!((key.as_str(), line), ("server.name", 3), "{bad:?}");
        }
        let (key, line, _) = invalid("[server]\nnetwork = \"My Net\"\n");
        assert_eq!((key.as_str(), line), ("server.network", 2));
        let (key, line, _) = invalid("[server]\ndata_dir = \"\"\n");
        assert_eq!((key.as_str(), line), ("server.data_dir", 2));
    }

    #[test]
    fn metrics_listen_is_off_by_default_and_checked() {
        assert!(Config::default().metrics.listen.is_empty());
        let config = Config::from_toml_str("[metrics]\nlisten = [\"127.0.0.1:9100\"]\n")
            .expect("a loopback metrics address is valid");
        assert_eq!(config.metrics.listen, ["127.0.0.1:9100"]);
        let (key, line, message) =
            invalid("[metrics]\nlisten = [\n  \"127.0.0.1:9100\",\n  \"localhost:9100\",\n]\n");
        assert_eq!((key.as_str(), line), ("metrics.listen", 4));
        assert!(message.contains("localhost:9100"), "{message}");
    }

    #[test]
    fn log_level_rules() {
        for good in [
            "trace",
            "DEBUG",
            "warn",
            "off",
            "info,parley_server=debug",
            "parley=trace",
        ] {
            let config = Config::from_toml_str(&format!("[log]\nlevel = {good:?}\n"))
                .expect("valid log level");
            assert_eq!(config.log.level, good);
        }
        for bad in ["verbose", "", "info,loud"] {
            let (key, line, _) = invalid(&format!("[log]\n\nlevel = {bad:?}\n"));
            assert_eq!((key.as_str(), line), ("log.level", 3), "{bad:?}");
        }
    }

    #[test]
    fn postgres_store_needs_a_url_and_never_prints_its_password() {
        let (key, line, _) = invalid("[accounts]\nstore = \"postgres\"\n");
        assert_eq!((key.as_str(), line), ("accounts.postgres_url", 0));
        let config = Config::from_toml_str(
            "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://parley:hunter22@127.0.0.1/parley\"\n",
        )
        .expect("valid");
        assert_eq!(config.accounts.store, StoreKind::Postgres);
        let printed = config.to_commented_toml();
        assert!(!printed.contains("hunter22"), "{printed}");
        assert!(
            printed.contains("postgres_url = \"postgres://parley@127.0.0.1/parley\""),
            "{printed}"
        );
    }

    #[test]
    fn postgres_tls_settings_are_checked() {
        let with_url =
            |url: &str| format!("[accounts]\nstore = \"postgres\"\npostgres_url = \"{url}\"\n");
        Config::from_toml_str(&with_url("postgres://p@db.example/d?sslmode=verify-full"))
            .expect("verify-full is a valid sslmode");
        Config::from_toml_str(&with_url("host=db.example user=p sslmode=verify-ca"))
            .expect("so is verify-ca, in key=value form");
        let (key, line, message) = invalid(&with_url("postgres://p@h/d?sslmode=strict"));
        assert_eq!((key.as_str(), line), ("accounts.postgres_url", 3));
        assert!(message.contains("verify-full"), "{message}");
        let (key, _, _) = invalid("[accounts]\npostgres_client_cert = \"/etc/parley/pg.crt\"\n");
        assert_eq!(key, "accounts.postgres_client_cert");
    }

    #[test]
    fn a_cluster_needs_the_shared_store_and_a_node_name() {
        let (key, _, _) = invalid("[cluster]\nenabled = true\nnode_name = \"n1\"\n");
        assert_eq!(key, "cluster.enabled");
        let (key, line, _) = invalid(
            "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://p@h/d\"\n[cluster]\nenabled = true\n",
        );
        assert_eq!((key.as_str(), line), ("cluster.node_name", 0));
        let (key, line, _) = invalid(
            "[accounts]\nstore = \"postgres\"\npostgres_url = \"postgres://p@h/d\"\n[cluster]\nenabled = true\nnode_name = \"n1\"\nlease_secs = 1\n",
        );
        assert_eq!((key.as_str(), line), ("cluster.lease_secs", 7));
    }

    #[test]
    fn a_cluster_needs_nats_credentials_and_its_nodes_unless_insecure() {
        let (key, _, message) = invalid(CLUSTER);
        assert_eq!(key, "cluster.nats_user");
        assert!(message.contains("cluster.insecure"), "{message}");
        let (key, _, _) = invalid(&format!("{CLUSTER}nats_token = \"t\"\n"));
        assert_eq!(key, "cluster.nodes");
        let (key, _, message) =
            invalid(&format!("{CLUSTER}nats_token = \"t\"\nnodes = [\"n2\"]\n"));
        assert_eq!(key, "cluster.nodes");
        assert!(message.contains("\"n1\""), "{message}");
        let (key, _, _) = invalid(&format!("{CLUSTER}nats_user = \"n1\"\nnodes = [\"n1\"]\n"));
        assert_eq!(key, "cluster.nats_password");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}nats_user = \"n1\"\nnats_password = \"p\"\nnats_token = \"t\"\nnodes = [\"n1\"]\n"
        ));
        assert_eq!(key, "cluster.nats_token");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}nats_token = \"t\"\nnodes = [\"n1\"]\nnats_tls_cert = \"/etc/hostname\"\n"
        ));
        assert_eq!(key, "cluster.nats_tls_key");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}nats_token = \"t\"\nnodes = [\"n1\"]\nnats_tls_ca = \"/no/such/ca.pem\"\n"
        ));
        assert_eq!(key, "cluster.nats_tls_ca");
        let (key, _, message) = invalid(&format!(
            "{CLUSTER}insecure = true\nnats_url = \"nats://u:pw@127.0.0.1:4222\"\n"
        ));
        assert_eq!(key, "cluster.nats_url");
        assert!(
            message.contains("PARLEY_CLUSTER__NATS_PASSWORD"),
            "{message}"
        );
        Config::from_toml_str(&format!("{CLUSTER}insecure = true\n"))
            .expect("insecure is explicit");
        Config::from_toml_str(&format!(
            "{CLUSTER}nats_token = \"t\"\nnodes = [\"n1\", \"n2\"]\n"
        ))
        .expect("a token and the nodes");
    }

    #[test]
    fn an_nkey_or_creds_file_is_one_login_among_the_others() {
        // /etc/hostname stands for a readable seed or .creds file; parleyd reads it at start.
        let seed = "nats_nkey_seed_file = \"/etc/hostname\"\n";
        let creds = "nats_creds_file = \"/etc/hostname\"\n";
        for login in [seed, creds, "nats_nkey_seed = \"SU\"\n"] {
            Config::from_toml_str(&format!("{CLUSTER}{login}nodes = [\"n1\"]\n"))
                .expect("an nkey or .creds login counts as credentials");
        }
        let (key, _, message) = invalid(&format!("{CLUSTER}{seed}{creds}nodes = [\"n1\"]\n"));
        assert_eq!(key, "cluster.nats_creds_file");
        assert!(message.contains("cluster.nats_nkey_seed_file"), "{message}");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}nats_token = \"t\"\n{seed}nodes = [\"n1\"]\n"
        ));
        assert_eq!(key, "cluster.nats_nkey_seed_file");
        let (key, _, _) = invalid(&format!(
            "{CLUSTER}{seed}nats_nkey_seed = \"SU\"\nnodes = [\"n1\"]\n"
        ));
        assert_eq!(key, "cluster.nats_nkey_seed");
        let (key, _, message) = invalid(&format!(
            "{CLUSTER}nats_creds_file = \"/no/such/node.creds\"\nnodes = [\"n1\"]\n"
        ));
        assert_eq!(key, "cluster.nats_creds_file");
        assert!(message.contains("/no/such/node.creds"), "{message}");
        // Debug never shows the seed.
        let config = ClusterConfig {
            nats_nkey_seed: "SUsecret-seed".to_owned(),
            ..ClusterConfig::default()
        };
        assert!(!format!("{config:?}").contains("SUsecret"));
    }
}
