//! `parley-bench cluster`: the fanout scenario against parleyd clusters of 1, 2, 3... nodes, to
//! price a message that crosses nodes. Each cluster gets its own NATS server (JetStream, a temp
//! store, a free loopback port), its own schema in the shared PostgreSQL database (dropped
//! afterwards) and its own stream prefix, so no run sees another's state. Clients are spread over
//! the nodes round-robin; the fanout tells deliveries on the sender's node from those that crossed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tempfile::TempDir;

use crate::scenario::fanout::{self, FanoutParams, FanoutResult};
use crate::scenario::Target;
use crate::servers::{self, ClusterNode, Kind, ServerProcess};

/// One cluster size's run.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterResult {
    /// `1 node`, `2 nodes`, ...: the column in the table.
    pub target: String,
    pub nodes: usize,
    /// The JetStream stream and bucket prefix this run used.
    pub prefix: String,
    /// The PostgreSQL schema this run used (dropped after it).
    pub schema: String,
    /// CPU the NATS server used during the fanout, as a share of one core (already counted in
    /// the fanout's `server_cpu_cores`, which adds up the nodes and NATS).
    pub nats_cpu_cores: Option<f64>,
    pub fanout: FanoutResult,
    pub ok: bool,
}

/// What `cluster` starts, and with what.
#[derive(Debug, Clone)]
pub struct Options {
    pub parleyd: PathBuf,
    pub nats_server: PathBuf,
    /// The database all nodes share (`postgres://` URL); each run makes its own schema in it.
    pub postgres_url: String,
    /// Let the nodes log at `info` instead of `warn`.
    pub verbose: bool,
}

/// A running cluster. Dropping it stops the nodes, then NATS, then drops the schema (fields drop
/// in declaration order).
pub struct Cluster {
    pub nodes: Vec<ServerProcess>,
    pub nats: Nats,
    pub schema: Schema,
    pub prefix: String,
}

impl Cluster {
    /// The nodes' client addresses, node 1 first.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|node| node.addr).collect()
    }

    /// Every process of the cluster: the nodes in order, then NATS.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.nodes.iter().map(|node| node.pid).collect();
        pids.push(self.nats.pid);
        pids
    }
}

/// Start a fresh cluster of `nodes` parleyd nodes; `run` tells apart the clusters of one
/// invocation in the schema and prefix names.
pub fn start(nodes: usize, run: usize, options: &Options) -> Result<Cluster> {
    let tag = format!("{}_{run}", std::process::id());
    let schema = Schema::create(&options.postgres_url, format!("parley_bench_{tag}"))?;
    let nats = Nats::start(&options.nats_server)?;
    let prefix = format!("bench_{tag}");
    let mut started = Vec::with_capacity(nodes);
    for number in 1..=nodes {
        let node_name = format!("n{number}");
        let server_options = servers::Options {
            parleyd: options.parleyd.clone(),
            tls: false,
            accounts: 0,
            verbose: options.verbose,
            data_dir: None,
            cluster: Some(ClusterNode {
                node_name: node_name.clone(),
                nats_url: format!("nats://{}", nats.addr),
                prefix: prefix.clone(),
                postgres_url: schema.node_url.clone(),
            }),
        };
        let node = servers::start(Kind::Parleyd, &server_options).with_context(|| {
            format!(
                "starting cluster node {node_name} of {nodes} ({}); a parleyd without cluster \
                 mode refuses `[cluster] enabled = true` or exits here",
                options.parleyd.display()
            )
        })?;
        started.push(node);
    }
    Ok(Cluster {
        nodes: started,
        nats,
        schema,
        prefix,
    })
}

/// Start a cluster of `nodes`, run the fanout against it with `template`'s client settings
/// (sources, progress, setup concurrency), stop it.
pub async fn run(
    template: &Target,
    nodes: usize,
    run: usize,
    options: &Options,
    params: &FanoutParams,
) -> Result<ClusterResult> {
    let cluster = start(nodes, run, options)?;
    let mut target = template.clone();
    target.name = if nodes == 1 {
        "1 node".to_string()
    } else {
        format!("{nodes} nodes")
    };
    target.endpoint.addrs = cluster.addrs();
    target.server_pids = cluster.pids();
    eprintln!(
        "cluster: fanout over {} (NATS on {}, prefix {}, schema {})",
        target.name, cluster.nats.addr, cluster.prefix, cluster.schema.name
    );
    let outcome = fanout::run(&target, params).await;
    let (prefix, schema) = (cluster.prefix.clone(), cluster.schema.name.clone());
    drop(cluster);
    let fanout = outcome?;
    let nats_cpu_cores = fanout.server_cpu_cores_each.last().copied();
    Ok(ClusterResult {
        target: target.name,
        nodes,
        prefix,
        schema,
        nats_cpu_cores,
        ok: fanout.ok,
        fanout,
    })
}

/// The nats-server binary: `given`, else the first on PATH, else Debian's /usr/sbin one.
pub fn find_nats_server(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"));
    let debian = std::iter::once(PathBuf::from("/usr/sbin/nats-server"));
    on_path.chain(debian).find(|path| path.is_file()).context(
        "nats-server is not on PATH or in /usr/sbin; install it (`apt-get install nats-server`, \
         2.9 or newer: it needs JetStream) or pass --nats-server",
    )
}

/// A NATS server with JetStream on a free loopback port, its store in a temp dir; killed when
/// dropped.
pub struct Nats {
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    _dir: TempDir,
}

impl Nats {
    fn start(binary: &Path) -> Result<Nats> {
        let dir = tempfile::tempdir().context("creating a temp dir for nats-server")?;
        let port = servers::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.path().join("server.log");
        let child = Command::new(binary)
            .arg("-js")
            .arg("-sd")
            .arg(dir.path().join("jetstream"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(servers::log_file(dir.path())?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut nats = Nats {
            addr,
            pid: child.id(),
            child,
            _dir: dir,
        };
        servers::wait_listening(
            &mut nats.child,
            "nats-server",
            &log,
            addr,
            Duration::from_secs(20),
        )?;
        Ok(nats)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A schema of its own in the shared database, so each cluster starts from empty tables; dropped
/// (with everything in it) when this is dropped.
pub struct Schema {
    pub name: String,
    /// The URL the nodes get: the given one with this schema first on the search path.
    pub node_url: String,
    admin_url: String,
}

impl Schema {
    fn create(url: &str, name: String) -> Result<Schema> {
        let node_url = node_url(url, &name)?;
        on_own_thread(|| {
            admin(url)?
                .batch_execute(&format!("CREATE SCHEMA {name}"))
                .with_context(|| {
                    format!(
                        "creating the schema {name} in {} (the role needs CREATE on the database)",
                        redact(url)
                    )
                })
        })?;
        Ok(Schema {
            name,
            node_url,
            admin_url: url.to_string(),
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        // The nodes are gone, but their sessions may still be ending: wait for locks, briefly.
        let sql = format!(
            "SET lock_timeout = '20s'; DROP SCHEMA {} CASCADE",
            self.name
        );
        let url = self.admin_url.clone();
        let dropped = on_own_thread(|| {
            admin(&url)?
                .batch_execute(&sql)
                .map_err(anyhow::Error::from)
        });
        if let Err(e) = dropped {
            eprintln!(
                "could not drop the schema {} ({e:#}); drop it yourself: DROP SCHEMA {} CASCADE",
                self.name, self.name
            );
        }
    }
}

/// `url` with `schema` first on the search path (through the startup `options`), so the nodes'
/// unqualified tables land in it.
fn node_url(url: &str, schema: &str) -> Result<String> {
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        bail!(
            "the PostgreSQL database must be given as a postgres:// URL, like \
             postgres://parley_test:parley_test@127.0.0.1:5432/postgres"
        );
    }
    if url.contains("options=") {
        bail!(
            "{}: drop its `options=` parameter; the benchmark sets the search path there",
            redact(url)
        );
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let node_url = format!("{url}{separator}options=-csearch_path%3D{schema}");
    node_url
        .parse::<postgres::Config>()
        .with_context(|| format!("{} is not a PostgreSQL URL", redact(url)))?;
    Ok(node_url)
}

/// A connection for creating and dropping schemas.
fn admin(url: &str) -> Result<postgres::Client> {
    let mut config: postgres::Config = url
        .parse()
        .with_context(|| format!("{} is not a PostgreSQL URL", redact(url)))?;
    config.connect_timeout(Duration::from_secs(10));
    config.connect(postgres::NoTls).with_context(|| {
        format!(
            "connecting to {} (is PostgreSQL running? locally: `pg_ctlcluster 15 main start`, \
             and scripts/postgres-test-setup.sh makes the parley_test role)",
            redact(url)
        )
    })
}

/// Run `work` on a thread of its own: the blocking PostgreSQL client starts a runtime of its
/// own, which tokio refuses on a thread that is already running one.
fn on_own_thread<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "the PostgreSQL URL".to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_never_show_the_password() {
        assert_eq!(
            redact("postgres://parley_test:secret@127.0.0.1:5432/postgres"),
            "postgres://parley_test@127.0.0.1:5432/postgres"
        );
        assert_eq!(redact("postgres://127.0.0.1/db"), "postgres://127.0.0.1/db");
    }

    #[test]
    fn the_node_url_puts_the_schema_first_on_the_search_path() {
        let options = |url: &str| {
            let url = node_url(url, "parley_bench_1_0").expect("a valid URL");
            let config: postgres::Config = url.parse().expect("the node URL parses");
            (
                config.get_options().map(str::to_owned),
                config.get_dbname().map(str::to_owned),
            )
        };
        let expected = Some("-csearch_path=parley_bench_1_0".to_owned());
        assert_eq!(
            options("postgres://u:p@127.0.0.1:5432/postgres"),
            (expected.clone(), Some("postgres".to_owned()))
        );
        assert_eq!(
            options("postgresql://u@127.0.0.1/db?connect_timeout=5"),
            (expected, Some("db".to_owned()))
        );
        assert!(node_url("postgres://u@h/db?options=-cfoo%3Dbar", "s").is_err());
        assert!(node_url("host=127.0.0.1 user=u", "s").is_err());
    }
}
