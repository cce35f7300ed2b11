//! Cluster mode for tests: a private `nats-server` with JetStream, and parleyd nodes on it that
//! share one PostgreSQL database. Nodes run in-process (a `TestServer` each) or as the real
//! `parleyd` binary, which a test can SIGKILL. Without nats-server or PostgreSQL a cluster test
//! skips with a line on stderr, unless `PARLEY_REQUIRE_CLUSTER=1` (CI sets it): then it fails.
//! Lines cross nodes asynchronously, so the helpers here wait with bounds instead of `sync`.
//! nats-server runs with the config docs/cluster.md gives operators (one user per node, each
//! allowed to publish only as itself), so every cluster test exercises those permissions.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parley_server::config::StoreKind;
use parley_server::Config;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{command_of, free_port, postgres, Client, TestServer, TIMEOUT};

/// How long state may take to reach every node (a NAMES or WHOIS that polls gives up after this).
pub const CONVERGE: Duration = Duration::from_secs(10);

/// Whether a missing nats-server or PostgreSQL fails the cluster tests instead of skipping them.
pub fn cluster_required() -> bool {
    std::env::var("PARLEY_REQUIRE_CLUSTER").is_ok_and(|v| v == "1")
}

/// `None` after saying why the test skips, or a panic under `PARLEY_REQUIRE_CLUSTER=1`.
fn skip<T>(why: &str, fix: &str) -> Option<T> {
    assert!(
        !cluster_required(),
        "PARLEY_REQUIRE_CLUSTER=1 but {why}; {fix}"
    );
    eprintln!("skipping the cluster test: {why}");
    None
}

/// `nats-server` on PATH, or in the sbin directories Debian installs it to (often not on a
/// user's PATH).
fn nats_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

/// The NATS password of node `name` in the tests (nats-server reads it from `N1_PASSWORD`...).
pub fn node_password(name: &str) -> String {
    format!("test-{name}-secret-{}", std::process::id())
}

/// The nodes the documented nats-server config has a user for.
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// A user with every permission, for tests that poke at the bus themselves.
pub const ADMIN: (&str, &str) = ("harness", "harness-admin-password");

/// The text of the ```conf block of docs/cluster.md whose first line starts with `heading`
/// (found by its heading, not its place, so sections can move without the tests losing it).
fn documented_block(heading: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/cluster.md"
    ))
    .expect("read docs/cluster.md");
    let opening = format!("```conf\n{heading}");
    let start = doc
        .find(&opening)
        .unwrap_or_else(|| panic!("docs/cluster.md has a ```conf block starting {heading:?}"))
        + "```conf\n".len();
    let end = start + doc[start..].find("```").expect("the ```conf block ends");
    doc[start..end].to_owned()
}

/// The nats-server config of docs/cluster.md, for the cluster named by `prefix` instead of
/// `parley`, its JetStream data in `store`, with the test's admin user added.
fn documented_config(prefix: &str, store: &Path) -> String {
    let config = documented_block("# nats-server config for a Parley cluster")
        .replace("parley.", &format!("{prefix}."))
        .replace("parley_", &format!("{prefix}_"))
        .replace("/var/tmp/parley-nats", &store.display().to_string());
    let users = "  users = [\n";
    assert!(config.contains(users), "the documented config lists users");
    config.replacen(
        users,
        &format!(
            "{users}    {{ user: {}, password: {} }}\n",
            ADMIN.0, ADMIN.1
        ),
        1,
    )
}

/// Each node's NATS user nkey, for a cluster whose nodes log in with nkeys instead of passwords:
/// the seeds in files only their owner may read, as an operator would keep them.
pub struct NodeKeys {
    /// (node name, public key `U...`, seed file, or `.creds` file in operator mode).
    pub keys: Vec<(String, String, PathBuf)>,
    /// In operator mode: the nats-server config lines that trust the operator and preload the
    /// account; the files above are then `.creds` files.
    operator: Option<String>,
    _dir: tempfile::TempDir,
}

/// A NATS JWT: `claims` signed by `issuer` (the format nsc writes; nats-server checks the
/// signature and the issuer chain).
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{name}-{}", std::process::id()),
        "iat": 1_700_000_000u64,
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let body = format!("{header}.{}", b64.encode(claims.to_string()));
    let signature = issuer.sign(body.as_bytes()).expect("sign a JWT");
    format!("{body}.{}", b64.encode(signature))
}

impl NodeKeys {
    /// A fresh user nkey for each of `NODES`.
    pub fn generate() -> NodeKeys {
        let dir = tempfile::tempdir().expect("temp dir for seeds");
        let keys = NODES
            .iter()
            .map(|name| {
                let pair = nkeys::KeyPair::new_user();
                let path = dir.path().join(format!("{name}.nk"));
                write_secret(&path, &pair.seed().expect("a new key has a seed"));
                (name.to_string(), pair.public_key(), path)
            })
            .collect();
        NodeKeys {
            keys,
            operator: None,
            _dir: dir,
        }
    }

    /// nats-server in operator mode: an operator, one account with JetStream, and a user per
    /// node whose `.creds` file (user JWT and seed) the node logs in with. The users may
    /// publish and subscribe anywhere: the per-node permissions are those of the documented
    /// config, which nats-server enforces the same way for every kind of user.
    pub fn generate_creds() -> NodeKeys {
        let dir = tempfile::tempdir().expect("temp dir for creds");
        let operator = nkeys::KeyPair::new(nkeys::KeyPairType::Operator);
        let account = nkeys::KeyPair::new_account();
        // JetStream needs a system account in operator mode.
        let system = nkeys::KeyPair::new_account();
        let system_jwt = jwt(
            &operator,
            &system.public_key(),
            "SYS",
            serde_json::json!({"type": "account", "version": 2}),
        );
        let operator_jwt = jwt(
            &operator,
            &operator.public_key(),
            "test-operator",
            serde_json::json!({"type": "operator", "version": 2}),
        );
        let account_jwt = jwt(
            &operator,
            &account.public_key(),
            "parley",
            serde_json::json!({"type": "account", "version": 2, "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}}),
        );
        let keys = NODES
            .iter()
            .map(|name| {
                let user = nkeys::KeyPair::new_user();
                let user_jwt = jwt(
                    &account,
                    &user.public_key(),
                    name,
                    serde_json::json!({"type": "user", "version": 2,
                        "subs": -1, "data": -1, "payload": -1}),
                );
                let path = dir.path().join(format!("{name}.creds"));
                write_secret(
                    &path,
                    &format!(
                        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
                         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
                        user.seed().expect("a new key has a seed")
                    ),
                );
                (name.to_string(), user.public_key(), path)
            })
            .collect();
        let operator = format!(
            "operator: {operator_jwt}\nsystem_account: {system}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {account}: {account_jwt}\n  {system}: {system_jwt}\n}}\n",
            account = account.public_key(),
            system = system.public_key(),
        );
        NodeKeys {
            keys,
            operator: Some(operator),
            _dir: dir,
        }
    }

    /// Whether the files are `.creds` files (operator mode), not seeds.
    pub fn creds(&self) -> bool {
        self.operator.is_some()
    }

    /// Node `name`'s seed file.
    pub fn seed_file(&self, name: &str) -> &Path {
        &self
            .keys
            .iter()
            .find(|(n, _, _)| n == name)
            .expect("a node of NODES")
            .2
    }

    /// The documented nats-server config with each node's password user turned into its nkey
    /// user, permissions unchanged (docs/cluster.md says to do just that).
    fn apply(&self, config: &str) -> String {
        if let Some(operator) = &self.operator {
            // Operator mode has no config users: only the bus and its store from the doc.
            let store = config
                .lines()
                .find(|l| l.starts_with("jetstream"))
                .expect("the documented config enables JetStream");
            return format!("{store}\n{operator}");
        }
        let mut config = config.to_owned();
        for (name, public, _) in &self.keys {
            let password_user =
                format!("user: {name}, password: ${}_PASSWORD,", name.to_uppercase());
            assert!(
                config.contains(&password_user),
                "the documented config has {password_user:?}"
            );
            config = config.replace(&password_user, &format!("nkey: {public},"));
        }
        config
    }
}

/// A file only its owner may read, holding `secret`.
pub fn write_secret(path: &Path, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, secret).expect("write a secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 600 a secret file");
}

/// A private nats-server with JetStream on a loopback port; SIGKILLed on drop. Its store dir
/// and log live in a temp dir that outlives `stop`, so `restart` finds the JetStream data again.
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Start one for the cluster prefix `parley`, or `None` (the test skips) when nats-server
    /// is not installed.
    pub async fn start() -> Option<NatsServer> {
        Self::start_for("parley", None).await
    }

    /// Start one whose users are the nodes of the cluster with `prefix`; with `tls`, it takes
    /// only TLS connections with a client certificate from that CA.
    pub async fn start_for(prefix: &str, tls: Option<&NatsTls>) -> Option<NatsServer> {
        Self::start_login(prefix, tls, None).await
    }

    /// Like [`NatsServer::start_for`], the nodes' users identified by `nkeys` if given.
    pub async fn start_login(
        prefix: &str,
        tls: Option<&NatsTls>,
        nkeys: Option<&NodeKeys>,
    ) -> Option<NatsServer> {
        let Some(binary) = nats_server_binary() else {
            return skip(
                "nats-server is not installed",
                "install it (apt-get install nats-server)",
            );
        };
        let nats = NatsServer {
            binary,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir for nats-server"),
            child: None,
        };
        let mut config = documented_config(prefix, &nats.dir.path().join("jetstream"));
        if let Some(nkeys) = nkeys {
            config = nkeys.apply(&config);
        }
        if let Some(tls) = tls {
            config.push_str(&tls.server_block());
        }
        nats.start_with(config).await
    }

    /// Start one with this config text (the command line sets the port and the store dir).
    async fn start_with(mut self, config: String) -> Option<NatsServer> {
        std::fs::write(self.config_path(), config).expect("write the nats-server config");
        self.spawn().await;
        Some(self)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nats.conf")
    }

    /// A client with every permission on this server.
    pub async fn admin(&self) -> async_nats::Client {
        async_nats::ConnectOptions::with_user_and_password(ADMIN.0.into(), ADMIN.1.into())
            .connect(self.url())
            .await
            .expect("the admin user connects")
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything nats-server logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// SIGKILL, and wait until the process is gone (its port is closed then).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port with the same store dir, so JetStream data survives.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .expect("open the nats-server log");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .envs(NODES.map(|n| (format!("{}_PASSWORD", n.to_uppercase()), node_password(n))))
            .arg("-js")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "nats-server on port {} exited with {status}; its log:\n{}",
                    self.port,
                    self.log()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server never listened on port {}; its log:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let log = self.log();
        if std::thread::panicking() {
            eprintln!("nats-server's log:\n{}", tail(&log));
        }
        // A call the documented permissions forgot shows here (run with --nocapture).
        for line in log.lines().filter(|l| l.contains("Violation")) {
            eprintln!("nats-server refused: {line}");
        }
    }
}

/// The last lines of a log, enough to see why a test failed.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A prefix no other cluster of any test process uses.
fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Several parleyd nodes as one network: `nodes[i]` runs in-process and is named `n{i+1}`.
pub struct Cluster {
    pub nodes: Vec<TestServer>,
    /// The bus this cluster started (an Option so a test can take it).
    pub nats: Option<NatsServer>,
    pub nats_url: String,
    pub postgres_url: String,
    pub prefix: String,
    /// The certificates, when the nodes reach the bus over TLS.
    pub tls: Option<NatsTls>,
    /// The nodes' nkeys, when they log in with those instead of passwords.
    pub nkeys: Option<NodeKeys>,
}

/// A test CA and the certificates it signed for TLS to nats-server, as PEM files in a temp dir.
pub struct NatsTls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsTls {
    /// A CA, nats-server's certificate for 127.0.0.1 and one client certificate the nodes share.
    pub fn generate() -> NatsTls {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "parley test CA");
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write a PEM file");
            path
        };
        let leaf = |cert_name: &str, key_name: &str, names: &[&str]| {
            let key = rcgen::KeyPair::generate().expect("leaf key");
            let params = rcgen::CertificateParams::new(
                names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            )
            .expect("leaf params");
            let cert = params.signed_by(&key, &ca).expect("sign a leaf");
            (
                write(cert_name, cert.pem()),
                write(key_name, key.serialize_pem()),
            )
        };
        let (server_cert, server_key) =
            leaf("server.pem", "server-key.pem", &["127.0.0.1", "localhost"]);
        let (client_cert, client_key) = leaf("client.pem", "client-key.pem", &["parley-node"]);
        let ca_path = write("ca.pem", ca.as_ref().pem());
        NatsTls {
            ca: ca_path,
            server_cert,
            server_key,
            client_cert,
            client_key,
            _dir: dir,
        }
    }

    /// The nats-server `tls` block docs/cluster.md gives operators (TLS only, and a client
    /// certificate from this CA), with this CA's files in place of the documented paths.
    fn server_block(&self) -> String {
        let mut block = documented_block("# TLS for nats-server");
        for (documented, ours) in [
            ("/etc/nats/tls/bus.internal.pem", &self.server_cert),
            ("/etc/nats/tls/bus.internal-key.pem", &self.server_key),
            ("/etc/nats/tls/ca.pem", &self.ca),
        ] {
            let quoted = format!("\"{documented}\"");
            assert!(
                block.contains(&quoted),
                "the documented tls block names {quoted}"
            );
            block = block.replace(&quoted, &format!("{:?}", ours.display().to_string()));
        }
        format!("\n{block}")
    }
}

impl Cluster {
    /// `n` in-process nodes on a nats-server of their own; `change(i, config)` adjusts node i's
    /// config last. `None` (after saying why) when nats-server or PostgreSQL is missing.
    pub async fn start(n: usize, change: impl Fn(usize, &mut Config)) -> Option<Cluster> {
        Self::start_maybe_tls(n, None, None, change).await
    }

    /// Like [`Cluster::start`], with each node logging in with its own nkey (a seed file).
    pub async fn start_nkeys(n: usize) -> Option<Cluster> {
        Self::start_maybe_tls(n, None, Some(NodeKeys::generate()), |_, _| {}).await
    }

    /// Like [`Cluster::start`], with nats-server in operator (JWT) mode and each node logging in
    /// with its own `.creds` file.
    pub async fn start_creds(n: usize) -> Option<Cluster> {
        Self::start_maybe_tls(n, None, Some(NodeKeys::generate_creds()), |_, _| {}).await
    }

    /// Like [`Cluster::start`], with the nodes reaching nats-server over TLS, each presenting
    /// a client certificate nats-server verifies.
    pub async fn start_tls(n: usize) -> Option<Cluster> {
        Self::start_maybe_tls(n, Some(NatsTls::generate()), None, |_, _| {}).await
    }

    /// The several-machines recipe of docs/cluster.md: each node logs in with its own nkey,
    /// over TLS, presenting a client certificate nats-server verifies.
    pub async fn start_nkeys_tls(n: usize) -> Option<Cluster> {
        let (tls, nkeys) = (NatsTls::generate(), NodeKeys::generate());
        Self::start_maybe_tls(n, Some(tls), Some(nkeys), |_, _| {}).await
    }

    async fn start_maybe_tls(
        n: usize,
        tls: Option<NatsTls>,
        nkeys: Option<NodeKeys>,
        change: impl Fn(usize, &mut Config),
    ) -> Option<Cluster> {
        if postgres::server_suite_on_postgres() {
            // CI's second pass runs every server test again on PostgreSQL; a cluster is on
            // PostgreSQL already, so running it twice would prove nothing new.
            eprintln!(
                "cluster test skipped in the PARLEY_TEST_STORE=postgres pass (it ran in the first)"
            );
            return None;
        }
        let prefix = unique_prefix();
        let Some(postgres_url) = postgres::database_for(&format!("cluster-{prefix}")) else {
            return skip(
                "PARLEY_TEST_POSTGRES_URL is not set",
                "run `export PARLEY_TEST_POSTGRES_URL=$(bash scripts/postgres-test-setup.sh)`",
            );
        };
        let nats = NatsServer::start_login(&prefix, tls.as_ref(), nkeys.as_ref()).await?;
        let nats_url = match tls {
            Some(_) => nats.url().replace("nats://", "tls://"),
            None => nats.url(),
        };
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(n),
            nats_url,
            nats: Some(nats),
            postgres_url,
            prefix,
            tls,
            nkeys,
        };
        for i in 0..n {
            let node = TestServer::start_with(|config| {
                cluster.configure(config, &format!("n{}", i + 1));
                change(i, config);
            })
            .await;
            cluster.nodes.push(node);
        }
        Some(cluster)
    }

    /// Start the next in-process node (`n{k}` for the k-th), for a test that prepares the bus
    /// before any node is there.
    pub async fn add_node(&mut self) {
        let name = format!("n{}", self.nodes.len() + 1);
        let node = TestServer::start_with(|config| self.configure(config, &name)).await;
        self.nodes.push(node);
    }

    /// The bus this cluster started.
    pub fn nats_mut(&mut self) -> &mut NatsServer {
        self.nats
            .as_mut()
            .expect("Cluster::start made the nats-server")
    }

    /// A client logged in to the bus as node `name` (with that node's permissions).
    pub async fn nats_as(
        &self,
        name: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        async_nats::ConnectOptions::with_user_and_password(name.into(), node_password(name))
            .connect(self.nats_url.as_str())
            .await
    }

    /// What every node of this cluster has in common: the bus, the prefix, the database; and no
    /// default channel, so that joins on one node do not show up everywhere unasked.
    fn configure(&self, config: &mut Config, node_name: &str) {
        config.server.default_channel = String::new();
        config.accounts.store = StoreKind::Postgres;
        config.accounts.postgres_url = self.postgres_url.clone();
        config.cluster.enabled = true;
        config.cluster.nats_url = self.nats_url.clone();
        config.cluster.node_name = node_name.to_owned();
        config.cluster.prefix = self.prefix.clone();
        config.cluster.nodes = NODES.map(str::to_owned).to_vec();
        match &self.nkeys {
            Some(nkeys) if nkeys.creds() => {
                config.cluster.nats_creds_file = nkeys.seed_file(node_name).display().to_string();
            }
            Some(nkeys) => {
                config.cluster.nats_nkey_seed_file =
                    nkeys.seed_file(node_name).display().to_string();
            }
            None => {
                config.cluster.nats_user = node_name.to_owned();
                config.cluster.nats_password = node_password(node_name);
            }
        }
        if let Some(tls) = &self.tls {
            config.cluster.nats_tls_ca = tls.ca.display().to_string();
            config.cluster.nats_tls_cert = tls.client_cert.display().to_string();
            config.cluster.nats_tls_key = tls.client_key.display().to_string();
        }
    }

    /// A registered client on node `i`.
    pub async fn client(&self, i: usize, nick: &str) -> Client {
        self.nodes[i].client(nick).await
    }

    /// alice on the first node and bob on the second, each known on the other's node (both
    /// ways: until alice's node knows bob, her PRIVMSG to him gets 401), and `text` sent from
    /// alice to bob across the bus and seen arriving.
    pub async fn alice_and_bob_talk(&self, text: &str) -> (Client, Client) {
        let mut alice = self.client(0, "alice").await;
        let mut bob = self.client(1, "bob").await;
        bob.await_whois("alice").await;
        alice.await_whois("bob").await;
        alice.send(&format!("PRIVMSG bob :{text}")).await;
        bob.expect_next(&format!(":alice!~alice@127.0.0.1 PRIVMSG bob :{text}"))
            .await;
        (alice, bob)
    }

    /// The node `name` as the real `parleyd` binary (a child process a test can SIGKILL), with
    /// `PARLEY_SECTION__KEY` overrides in `envs` (e.g. `PARLEY_CLUSTER__LEASE_SECS`).
    pub async fn spawn_binary(&self, name: &str, envs: &[(&str, &str)]) -> BinaryNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = self.write_binary_config(dir.path(), port, name);
        let log = std::fs::File::create(dir.path().join("parleyd.log")).expect("create the log");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
            .arg("--config")
            .arg(&config)
            .env("PARLEY_CLUSTER__NATS_PASSWORD", node_password(name))
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start parleyd");
        let mut node = BinaryNode {
            name: name.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            child: Some(child),
        };
        node.wait_listening().await;
        node
    }

    /// The whole config of a binary node in the file: `Config::load` checks the file on its own,
    /// before environment overrides, and rejects `[cluster] enabled` or `store = "postgres"`
    /// without the database's URL beside them.
    pub fn write_binary_config(&self, dir: &Path, port: u16, name: &str) -> PathBuf {
        let path = dir.join("parley.toml");
        let text = format!(
            "[server]\ndata_dir = {data_dir:?}\ndefault_channel = \"\"\n\
             [listen]\nplain = [\"127.0.0.1:{port}\"]\ntls = []\n\
             [web]\nlisten = []\n\
             [accounts]\nrequire_login = false\nstore = \"postgres\"\npostgres_url = {db:?}\n\
             [flood]\nenabled = false\n\
             [cluster]\nenabled = true\nnats_url = {nats:?}\nnode_name = {name:?}\nprefix = {prefix:?}\n\
             nats_user = {name:?}\nnodes = {nodes:?}\n",
            nodes = NODES,
            data_dir = dir.display().to_string(),
            db = self.postgres_url,
            nats = self.nats_url,
            prefix = self.prefix,
        );
        std::fs::write(&path, text).expect("write the node's config");
        path
    }
}

/// A node run as the real `parleyd` binary; SIGKILLed on drop. Its log is `parleyd.log` in its dir.
pub struct BinaryNode {
    pub name: String,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl BinaryNode {
    /// A registered client on this node.
    pub async fn client(&self, nick: &str) -> Client {
        let mut client = Client::connect(self.addr).await;
        client.register(nick).await;
        client
    }

    /// The node's log so far (RUST_LOG=info).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("parleyd.log")).unwrap_or_default()
    }

    /// kill -9, and reap it: no clean shutdown, no goodbye on the bus.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("kill -9 parleyd");
            child.wait().await.expect("reap parleyd");
        }
    }

    /// A clean stop: send `signal` ("TERM", "INT") and reap the process, which must exit within
    /// `within` (else the test fails, showing the log). Its exit status and how long it took.
    pub async fn stop(
        &mut self,
        signal: &str,
        within: Duration,
    ) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("the node is running");
        let pid = child.id().expect("a running child has a pid");
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {pid}: {status}");
        match tokio::time::timeout(within, child.wait()).await {
            Ok(status) => (status.expect("reap parleyd"), sent.elapsed()),
            Err(_) => {
                let _ = child.start_kill();
                panic!(
                    "parleyd node {} did not exit within {within:?} of SIG{signal}; its log:\n{}",
                    self.name,
                    tail(&self.log())
                );
            }
        }
    }

    /// Bounded: joining the bus and the database comes before listening, so allow more than
    /// `wait_listening` does; a node that exits shows its log.
    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "parleyd node {} exited with {status}; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
            // The port takes connections once bound, before the node serves them (it joins
            // the cluster first): its log says when it does.
            if TcpStream::connect(self.addr).await.is_ok()
                && self.log().contains("listening (plain text)")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "parleyd node {} never listened on {}; its log:\n{}",
                self.name,
                self.addr,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for BinaryNode {
    /// A failed test shows what the node logged (the temp dir goes with it).
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            eprintln!("parleyd node {}'s log:\n{}", self.name, tail(&self.log()));
        }
    }
}

/// A registered client on `addr` that negotiated `caps` (space-separated) first.
pub async fn client_with_caps(addr: SocketAddr, nick: &str, caps: &str) -> Client {
    let mut client = Client::connect(addr).await;
    client.nick = nick.to_owned();
    client.send("CAP LS 302").await;
    client.send(&format!("CAP REQ :{caps}")).await;
    let ack = client
        .expect(|l| l.contains(" CAP ") && (l.contains(" ACK ") || l.contains(" NAK ")))
        .await;
    assert!(ack.contains(" ACK "), "{nick}: CAP REQ :{caps} -> {ack}");
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :Test {nick}")).await;
    client.send("CAP END").await;
    client.expect_numeric("001").await;
    client.sync().await;
    client
}

/// The prefixed nicks (`@alice`, `bob`) of the 353 replies for `channel` among `lines`.
pub fn names_in(lines: &[String], channel: &str) -> BTreeSet<String> {
    let list = format!(" {channel} :");
    lines
        .iter()
        .filter(|l| l.split(' ').nth(1) == Some("353"))
        .filter_map(|l| l.split_once(&list))
        .flat_map(|(_, names)| names.split(' '))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `nick!~nick@127.0.0.1`: how a test client registered as `nick` appears on every node.
pub fn source(nick: &str) -> String {
    format!("{nick}!~{nick}@127.0.0.1")
}

impl Client {
    /// The next line within `within`, `None` when none came; panics if the connection closed.
    pub async fn recv_within(&mut self, within: Duration) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(within, self.reader.read_line(&mut line)).await {
            Err(_) => None,
            Ok(Ok(0)) => panic!("{}: server closed the connection", self.nick),
            Ok(Err(e)) => panic!("{}: read error {e}", self.nick),
            Ok(Ok(_)) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
        }
    }

    /// Read until a line matches, for at most `within`; returns it and the lines before it.
    /// Fails with every line seen on timeout, on close, or on an error reply before the match
    /// (as [`Client::expect`]).
    pub async fn expect_within(
        &mut self,
        within: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> (String, Vec<String>) {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(line) = self.recv_within(left).await else {
                panic!(
                    "{}: expected line never came within {within:?}; saw {seen:#?}",
                    self.nick
                );
            };
            if matches(&line) {
                return (line, seen);
            }
            seen.push(line);
            if seen.last().is_some_and(|l| super::is_error_reply(l)) {
                panic!(
                    "{}: an error reply came before the expected line; saw {seen:#?}",
                    self.nick
                );
            }
        }
    }

    /// The next line must be `expected` (it may come from another node: waits up to `TIMEOUT`).
    pub async fn expect_next(&mut self, expected: &str) {
        let Some(line) = self.recv_within(TIMEOUT).await else {
            panic!(
                "{}: expected {expected:?}, got nothing in {TIMEOUT:?}",
                self.nick
            );
        };
        assert_eq!(line, expected, "{}: the next line", self.nick);
    }

    /// NAMES `channel` on this client's node, as a set of prefixed nicks (`@alice`, `bob`).
    pub async fn names(&mut self, channel: &str) -> BTreeSet<String> {
        self.send(&format!("NAMES {channel}")).await;
        let lines = self.sync().await;
        names_in(&lines, channel)
    }

    /// Poll NAMES until this node lists exactly `expected` in `channel` (bounded by `CONVERGE`).
    /// Only for a client with nothing else pending: the lines in between are dropped.
    pub async fn await_names(&mut self, channel: &str, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|n| n.to_string()).collect();
        let deadline = Instant::now() + CONVERGE;
        loop {
            let names = self.names(channel).await;
            if names == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: NAMES {channel} on this node never became {expected:?}; last {names:?}",
                self.nick
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Poll WHOIS until this node knows `nick` (bounded by `CONVERGE`); returns the 311 line.
    /// Only for a client with nothing else pending: the lines in between are dropped.
    pub async fn await_whois(&mut self, nick: &str) -> String {
        self.await_reply(&format!("WHOIS {nick}"), |l| command_of(l) == "311")
            .await
    }

    /// Send `command` until a reply line matches (bounded by `CONVERGE`); returns that line.
    /// Only for a client with nothing else pending: the lines in between are dropped.
    pub async fn await_reply(&mut self, command: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + CONVERGE;
        loop {
            self.send(command).await;
            let lines = self.sync().await;
            if let Some(found) = lines.iter().find(|l| matches(l)) {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no reply to {command} on this node matched; last {lines:?}",
                self.nick
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// JOIN `channel` once this node lists `before` in it (so the join comes after theirs
    /// everywhere); checks the JOIN and returns the join burst (NAMES, topic).
    pub async fn join_after(&mut self, channel: &str, before: &[&str]) -> Vec<String> {
        self.await_names(channel, before).await;
        self.send(&format!("JOIN {channel}")).await;
        let own = format!(":{} JOIN {channel}", source(&self.nick));
        let (_, mut burst) = self.expect_within(TIMEOUT, |l| l == own).await;
        let (end, rest) = self
            .expect_within(TIMEOUT, |l| command_of(l) == "366")
            .await;
        burst.extend(rest);
        burst.push(end);
        burst
    }
}

/// Stopping and resuming a binary node, for the fault tests: SIGSTOP freezes the whole process
/// (its sockets stay open, nothing is read or sent), as a paused VM or a stalled host would.
impl BinaryNode {
    /// Send `signal` (a name `kill` knows: STOP, CONT, ...) to the node's process.
    pub fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(|child| child.id())
            .expect("the node is running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// SIGSTOP: the node stops dead, connections open.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`BinaryNode::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }
}

/// `nats-server`'s path, or `None` (after saying why; a failure with `PARLEY_REQUIRE_CLUSTER=1`)
/// when it is not installed: for a test that runs it with a config of its own (no JetStream,
/// say), which [`NatsServer`] does not make.
pub fn nats_server_path() -> Option<PathBuf> {
    match nats_server_binary() {
        Some(path) => Some(path),
        None => skip(
            "nats-server is not installed",
            "install it (apt-get install nats-server)",
        ),
    }
}
