//! Starting the servers that `compare` measures, each as a child process on a free loopback port
//! with a benchmark config written into a temp dir: parleyd from the built binary, ngIRCd and
//! InspIRCd from Debian's packages (installed with apt-get when missing), and the ceiling relay
//! (this same binary). Every config turns off flood control, fake lag, per-address limits,
//! connection throttling and ident/DNS lookups, and makes send queues large; BENCHMARKS.md lists
//! each change. A [`ServerProcess`] kills its child when dropped. `cluster` starts its parleyd
//! nodes here too, with the same config plus the shared store and `[cluster]` (see cluster.rs).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use tempfile::TempDir;

/// The servers `compare` knows how to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Kind {
    Ceiling,
    Parleyd,
    Ngircd,
    Inspircd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ceiling => "ceiling",
            Kind::Parleyd => "parleyd",
            Kind::Ngircd => "ngircd",
            Kind::Inspircd => "inspircd",
        }
    }
}

/// A running server under test.
pub struct ServerProcess {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// parleyd only, when TLS was asked for: the TLS port and the certificate's fingerprint.
    pub tls: Option<(SocketAddr, String)>,
    pub pid: u32,
    /// `account:password` pairs created for SASL runs (parleyd only).
    pub accounts: Vec<(String, String)>,
    child: Child,
    _dir: TempDir,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What to start and with what.
pub struct Options {
    pub parleyd: PathBuf,
    pub tls: bool,
    /// SASL accounts to create in parleyd before it starts.
    pub accounts: usize,
    /// Keep the servers' own logs (in the temp dir's `log` file) quiet unless asked.
    pub verbose: bool,
    /// parleyd's data dir instead of one in the temp dir, kept after the run (reused history).
    pub data_dir: Option<PathBuf>,
    /// parleyd as one node of a cluster.
    pub cluster: Option<ClusterNode>,
}

/// The environment variable that gives parleyd its `accounts.postgres_url`.
pub const POSTGRES_URL_VAR: &str = "PARLEY_ACCOUNTS__POSTGRES_URL";

/// The environment a parleyd started here gets beyond ours: a cluster node's database URL.
fn parleyd_env(options: &Options) -> Vec<(&'static str, String)> {
    match &options.cluster {
        Some(node) => vec![(POSTGRES_URL_VAR, node.postgres_url.clone())],
        None => Vec::new(),
    }
}

/// What a parleyd cluster node adds to the benchmark config: the shared PostgreSQL store and the
/// `[cluster]` section.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub node_name: String,
    pub nats_url: String,
    /// Prefix of the JetStream stream and buckets, fresh for each run.
    pub prefix: String,
    /// The database every node shares (with its schema chosen in the URL's `options`).
    pub postgres_url: String,
}

/// A port nobody listens on right now (bound and released; fine on a quiet loopback).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener
        .local_addr()
        .context("reading the free port")?
        .port())
}

pub(crate) fn log_file(dir: &Path) -> Result<Stdio> {
    let file = std::fs::File::create(dir.join("server.log")).context("creating the server log")?;
    Ok(Stdio::from(file))
}

pub fn start(kind: Kind, options: &Options) -> Result<ServerProcess> {
    let dir = tempfile::tempdir().context("creating a temp dir for the server")?;
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut tls = None;
    let mut accounts = Vec::new();
    let child = match kind {
        Kind::Ceiling => {
            let exe =
                std::env::current_exe().context("finding this binary to run the ceiling relay")?;
            Command::new(exe)
                .args(["ceiling", "--listen", &addr.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(dir.path())?)
                .spawn()
                .context("starting the ceiling relay")?
        }
        Kind::Parleyd => {
            let tls_port = if options.tls {
                Some(free_port()?)
            } else {
                None
            };
            let config = parleyd_config(dir.path(), addr, tls_port, options.cluster.as_ref());
            let config_path = dir.path().join("parley.toml");
            std::fs::write(&config_path, config).context("writing parley.toml")?;
            if options.accounts > 0 {
                accounts = (0..options.accounts)
                    .map(|i| (format!("acct{i}"), format!("bench-password-{i}")))
                    .collect();
                let list: String = accounts.iter().map(|(a, p)| format!("{a}:{p}\n")).collect();
                let file = dir.path().join("accounts.txt");
                std::fs::write(&file, list).context("writing the accounts file")?;
                let status = Command::new(&options.parleyd)
                    .arg("--config")
                    .arg(&config_path)
                    .args(data_dir_args(options))
                    .envs(parleyd_env(options))
                    .args(["users", "import"])
                    .arg(&file)
                    .stdout(Stdio::null())
                    .status()
                    .with_context(|| {
                        format!("running {} users import", options.parleyd.display())
                    })?;
                if !status.success() {
                    bail!("`parleyd users import` failed ({status})");
                }
            }
            let child = Command::new(&options.parleyd)
                .arg("--config")
                .arg(&config_path)
                .args(data_dir_args(options))
                .envs(parleyd_env(options))
                .env("RUST_LOG", if options.verbose { "info" } else { "warn" })
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(dir.path())?)
                .spawn()
                .with_context(|| {
                    format!(
                        "starting {} (build it with `cargo build --release --bin parleyd`, or pass --parleyd)",
                        options.parleyd.display()
                    )
                })?;
            if let Some(tls_port) = tls_port {
                tls = Some((SocketAddr::from(([127, 0, 0, 1], tls_port)), String::new()));
            }
            child
        }
        Kind::Ngircd => {
            ensure_installed("ngircd", "ngircd")?;
            let conf = dir.path().join("ngircd.conf");
            std::fs::write(&conf, ngircd_config(dir.path(), port))
                .context("writing ngircd.conf")?;
            Command::new("ngircd")
                .arg("--nodaemon")
                .arg("--config")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log_file(dir.path())?)
                .stderr(Stdio::null())
                .spawn()
                .context("starting ngircd")?
        }
        Kind::Inspircd => {
            ensure_installed("inspircd", "inspircd")?;
            let conf = dir.path().join("inspircd.conf");
            std::fs::write(&conf, inspircd_config(dir.path(), port))
                .context("writing inspircd.conf")?;
            std::fs::write(dir.path().join("motd.txt"), "bench\n").context("writing the MOTD")?;
            Command::new("inspircd")
                .arg("--nofork")
                .arg("--runasroot")
                .arg("--config")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(log_file(dir.path())?)
                .stderr(Stdio::null())
                .spawn()
                .context("starting inspircd")?
        }
    };
    let pid = child.id();
    let mut server = ServerProcess {
        kind,
        addr,
        tls,
        pid,
        accounts,
        child,
        _dir: dir,
    };
    // A cluster node joins the bus and the database before it listens: give it longer.
    let (name, limit) = match &options.cluster {
        Some(node) if kind == Kind::Parleyd => (
            format!("parleyd node {}", node.node_name),
            Duration::from_secs(30),
        ),
        _ => (kind.name().to_string(), Duration::from_secs(20)),
    };
    let log = server._dir.path().join("server.log");
    wait_listening(&mut server.child, &name, &log, addr, limit)?;
    if let Some((tls_addr, _)) = server.tls {
        wait_listening(&mut server.child, &name, &log, tls_addr, limit)?;
        let data = match &options.data_dir {
            Some(dir) => dir.clone(),
            None => server._dir.path().join("data"),
        };
        let cert = std::fs::read(data.join("tls").join("cert.pem"))
            .context("reading parleyd's generated certificate")?;
        server.tls = Some((tls_addr, fingerprint_of_pem(&cert)?));
    }
    Ok(server)
}

/// `--data-dir DIR` when a kept data dir was asked for (it overrides the config's temp one).
fn data_dir_args(options: &Options) -> Vec<std::ffi::OsString> {
    match &options.data_dir {
        Some(dir) => vec!["--data-dir".into(), dir.clone().into_os_string()],
        None => Vec::new(),
    }
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, as parley-trust writes it.
pub fn fingerprint_of_pem(pem: &[u8]) -> Result<String> {
    use rustls_pki_types::pem::PemObject;
    let cert = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .context("no certificate in the PEM file")?
        .context("a malformed certificate in the PEM file")?;
    Ok(parley_trust::Fingerprint::of(&cert).to_string())
}

/// Wait (at most `limit`) until `child` accepts connections on `addr`; when it exits or the time
/// runs out, fail with the end of its log.
pub(crate) fn wait_listening(
    child: &mut Child,
    name: &str,
    log: &Path,
    addr: SocketAddr,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "{name} exited at start ({status}); the end of its log:\n{}",
                log_tail(log)
            );
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not listen on {addr} within {} s; the end of its log:\n{}",
                limit.as_secs(),
                log_tail(log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last 40 lines of a log file, or a note that there is nothing to show.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "(empty)".to_string();
    }
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn ensure_installed(binary: &str, package: &str) -> Result<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if found {
        return Ok(());
    }
    eprintln!("{binary} is missing; installing Debian's {package} package");
    let status = Command::new("apt-get")
        .args(["install", "-y", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get install")?;
    if !status.success() {
        bail!("apt-get install -y {package} failed ({status}); try `apt-get update` first");
    }
    // Debian starts the packaged service; the benchmark runs its own instance instead.
    let _ = Command::new("sh")
        .args(["-c", &format!("service {package} stop >/dev/null 2>&1")])
        .status();
    Ok(())
}

/// parleyd: flood control off, logins not required, no per-address limit, large client limit,
/// no default channel (so joins are only the scenario's), no web listener, a temp data dir. As a
/// cluster node it also gets its own server name, accounts and history in the shared PostgreSQL
/// database, and `[cluster]` pointing at the run's NATS server. The database URL, which may hold a
/// password, stays out of the file: [`POSTGRES_URL_VAR`] carries it to the node.
pub fn parleyd_config(
    dir: &Path,
    addr: SocketAddr,
    tls_port: Option<u16>,
    cluster: Option<&ClusterNode>,
) -> String {
    let tls = match tls_port {
        Some(port) => format!("[\"127.0.0.1:{port}\"]"),
        None => "[]".to_string(),
    };
    let (name, store, cluster) = match cluster {
        None => (
            "bench.parley.test".to_string(),
            String::new(),
            String::new(),
        ),
        // The bench's own nats-server listens on loopback for one run and has no users, so
        // the nodes say `insecure` (docs/cluster.md has the secured setup).
        Some(node) => (
            format!("{}.bench.parley.test", node.node_name),
            "store = \"postgres\"\n".to_string(),
            format!(
                "\n[cluster]\nenabled = true\ninsecure = true\nnats_url = {}\nnode_name = {}\nlease_secs = 10\nprefix = {}\n",
                toml_string(&node.nats_url),
                toml_string(&node.node_name),
                toml_string(&node.prefix),
            ),
        ),
    };
    format!(
        r#"[server]
name = {name}
default_channel = ""
data_dir = {data}

[listen]
plain = ["{addr}"]
tls = {tls}

[limits]
max_clients = 100000
max_clients_per_ip = 100000
max_clients_per_cidr = 100000
send_queue_bytes = 16777216
channels_per_user = 100

[flood]
enabled = false

[web]
listen = []

[accounts]
require_login = false
{store}
[log]
level = "warn"
{cluster}"#,
        name = toml_string(&name),
        data = toml_string(&dir.join("data").to_string_lossy()),
    )
}

/// A TOML basic string holding `text` (quotes, backslashes and control characters escaped).
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// ngIRCd: penalties (its flood control) off, no per-address or total connection limits, no
/// ident/DNS/PAM, long ping timeouts. Its per-client write buffer is a compile-time constant.
pub fn ngircd_config(dir: &Path, port: u16) -> String {
    format!(
        r#"[Global]
Name = bench.ngircd.test
Info = parley-bench
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = bench
PidFile = {pid}

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
IdleTimeout = 0
ConnectRetry = 60

[Options]
DNS = no
Ident = no
PAM = no
ConnectIPv6 = no
ScrubCTCP = no
"#,
        pid = dir.join("ngircd.pid").display(),
    )
}

/// InspIRCd: no fake lag (threshold/commandrate huge, fakelag off), huge send queues, no
/// per-address limits, no DNS lookups, long ping frequency; no extra modules loaded.
pub fn inspircd_config(dir: &Path, port: u16) -> String {
    format!(
        r#"<server name="bench.inspircd.test" description="parley-bench" network="bench">
<admin name="bench" nick="bench" email="bench@bench.test">
<bind address="127.0.0.1" port="{port}" type="clients">
<connect name="bench" allow="*" maxchans="100" timeout="60" pingfreq="600"
  hardsendq="1073741824" softsendq="1073741824" recvq="1048576" threshold="1000000000"
  commandrate="1000000000" fakelag="off" localmax="1000000" globalmax="1000000"
  maxconnwarn="off" limit="1000000" resolvehostnames="no" useident="no">
<performance netbuffersize="65536" somaxconn="4096" softlimit="100000" clonesonconnect="no"
  quietbursts="yes" timeskipwarn="0">
<security hideserver="" announceinvites="dynamic" hidemodes="" maxtargets="20"
  runasuser="" runasgroup="">
<limits maxnick="30" maxchan="64" maxmodes="20" maxident="11" maxhost="64" maxquit="255"
  maxtopic="307" maxkick="255" maxreal="128" maxgecos="128" maxaway="200" maxline="512">
<options prefixquit="" suffixquit="" syntaxhints="no" cyclehostsfromuser="no"
  announcets="yes" allowmismatched="no" defaultbind="auto" pingwarning="15"
  splitwhois="no" defaultmodes="nt" xlinemessage="banned" exemptchanops=""
  invitebypassmodes="yes" nosnoticestack="no">
<files motd="{motd}">
<pid file="{pid}">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="sparse" target="{log}">
"#,
        motd = dir.join("motd.txt").display(),
        pid = dir.join("inspircd.pid").display(),
        log = dir.join("inspircd-file.log").display(),
    )
}
