//! `parley-bench`: run one scenario against one IRC server or a cluster's nodes (`run`), the same
//! scenario against several servers in turn (`compare`: parleyd, ngIRCd, InspIRCd and the ceiling
//! relay, each started here with a benchmark config), fanout against parleyd clusters of several
//! sizes (`cluster`), or serve the ceiling relay (`ceiling`). Exits non-zero when any run lost,
//! repeated or reordered a message, so a fast but wrong server never passes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use parley_bench::client::{pinned_tls_config, raise_fd_limit, Endpoint};
use parley_bench::cluster;
use parley_bench::report::{self, Outcome};
use parley_bench::scenario::connect::ConnectParams;
use parley_bench::scenario::dm::DmParams;
use parley_bench::scenario::fanout::FanoutParams;
use parley_bench::scenario::history::HistoryParams;
use parley_bench::scenario::idle::IdleParams;
use parley_bench::scenario::joinstorm::JoinstormParams;
use parley_bench::scenario::{self, Target};
use parley_bench::servers::{self, Kind};

#[derive(Parser)]
#[command(
    name = "parley-bench",
    about = "Load generator for IRC servers (loopback only)"
)]
struct Cli {
    /// Worker threads for the clients (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Where the JSON results and SVG chart go.
    #[arg(long, global = true, default_value = "target/bench-results")]
    out: PathBuf,
    /// File name (without extension) for the results; default: the scenario's name.
    #[arg(long, global = true)]
    label: Option<String>,
    /// Spread connections over this many source addresses 127.0.0.2, 127.0.0.3, ... (0: kernel's choice).
    #[arg(long, global = true, default_value_t = 4)]
    sources: u8,
    /// Connections set up at once while preparing a scenario (compare uses at most 8 for ngIRCd,
    /// whose listen backlog is 10).
    #[arg(long, global = true, default_value_t = 64)]
    setup_concurrency: usize,
    /// No progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario against a server that is already running.
    Run {
        /// The server's plain-text address (loopback only). Repeat it, or give several separated
        /// by commas, to spread the clients over a cluster's nodes round-robin.
        #[arg(
            long = "addr",
            visible_alias = "addrs",
            value_delimiter = ',',
            default_value = "127.0.0.1:6667"
        )]
        addrs: Vec<SocketAddr>,
        /// Connect over TLS to this address instead, pinning --fingerprint (one address only).
        #[arg(long, requires = "fingerprint")]
        tls_addr: Option<SocketAddr>,
        /// The server certificate's SHA-256 fingerprint (`parleyd cert show`).
        #[arg(long)]
        fingerprint: Option<String>,
        /// The server's process id, to read its CPU and memory use (repeat it for a cluster's
        /// nodes: the figures add them up).
        #[arg(long = "server-pid")]
        server_pids: Vec<u32>,
        /// An account for SASL PLAIN logins, as NAME:PASSWORD (repeat for more).
        #[arg(long = "account")]
        accounts: Vec<String>,
        #[command(subcommand)]
        scenario: Scenario,
    },
    /// Start each server in turn, run the same scenario against each, print a table.
    Compare {
        /// Which servers, in order.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "ceiling,parleyd,ngircd,inspircd"
        )]
        servers: Vec<Kind>,
        /// The parleyd binary (default: next to this one).
        #[arg(long)]
        parleyd: Option<PathBuf>,
        /// Use TLS (parleyd only; other servers are skipped).
        #[arg(long)]
        tls: bool,
        /// Keep going when a server cannot be started.
        #[arg(long)]
        keep_going: bool,
        /// parleyd's data dir, kept after the run (default: a temp dir), so a history run reuses the
        /// lines an earlier run stored instead of filling again.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        scenario: Scenario,
    },
    /// Start parleyd clusters of each size in turn (a NATS server and N nodes sharing one
    /// PostgreSQL database), run fanout with the clients spread over the nodes, print a table.
    Cluster {
        /// The parleyd binary (default: next to this one).
        #[arg(long)]
        parleyd: Option<PathBuf>,
        /// The PostgreSQL database the nodes share, as a postgres:// URL (default:
        /// $PARLEY_BENCH_POSTGRES_URL). Each cluster gets a fresh schema in it, dropped after.
        #[arg(long)]
        postgres_url: Option<String>,
        /// Cluster sizes, in order.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        nodes: Vec<usize>,
        /// The nats-server binary, 2.9 or newer (default: on PATH, else /usr/sbin/nats-server).
        #[arg(long)]
        nats_server: Option<PathBuf>,
        /// Let the nodes log at `info` (their logs are in their temp dirs, shown when one fails
        /// to start).
        #[arg(long)]
        verbose: bool,
        /// Keep going when a cluster cannot be started or its run fails.
        #[arg(long)]
        keep_going: bool,
        #[command(flatten)]
        fanout: FanoutArgs,
    },
    /// Serve the bare ceiling relay until killed.
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:6668")]
        listen: SocketAddr,
    },
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// C channels x M members, S senders; deliveries/s and end-to-end latency.
    Fanout(FanoutArgs),
    /// Private-message ping-pong latency between pairs, with a fanout running meanwhile.
    Dm {
        #[arg(long, default_value_t = 10)]
        pairs: usize,
        /// Milliseconds between a pong and the next ping.
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// No background fanout.
        #[arg(long)]
        quiet_server: bool,
        #[command(flatten)]
        fanout: FanoutArgs,
    },
    /// N registered idle connections; time to establish and server memory per connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 2)]
        hold_secs: u64,
    },
    /// Connection + registration rate, as guests or with SASL PLAIN or SCRAM-SHA-256.
    Connect {
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Clients connecting at once (keep it under ngIRCd's listen backlog of 10 to compare).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Log in with SASL PLAIN.
        #[arg(long)]
        sasl: bool,
        /// Log in with SASL SCRAM-SHA-256 instead (each account's salted password is derived in
        /// an untimed warm-up login and cached, as clients do, so this measures the server).
        #[arg(long, conflicts_with = "sasl")]
        scram: bool,
        /// Send the login's steps without waiting where the protocol lets a client (as gamja and
        /// goguma do): CAP, NICK, USER, `AUTHENTICATE` and the first SASL message in one write,
        /// and for SCRAM the final `AUTHENTICATE +` with `CAP END`. Without it each step waits
        /// for the server's answer, as irssi and WeeChat do.
        #[arg(long)]
        pipeline: bool,
        /// Accounts to create for --sasl or --scram when the bench starts parleyd itself.
        #[arg(long, default_value_t = 20)]
        sasl_accounts: usize,
    },
    /// N clients join one channel in a burst; time until the last sees its 366.
    Joinstorm {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// CHATHISTORY LATEST/BEFORE throughput on a channel holding --lines stored lines (parleyd only;
    /// the fill is skipped when the channel already holds them, e.g. with `compare --data-dir`).
    History(HistoryArgs),
}

#[derive(Args, Clone)]
struct HistoryArgs {
    /// Lines the channel's history must hold; filled through the server when it has fewer. The
    /// fill needs flood control off (`[flood] enabled = false`; compare does that).
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    #[arg(long, default_value = "#history")]
    channel: String,
    /// Clients writing the fill at once (each waits for its line to be stored before the next).
    #[arg(long, default_value_t = 16)]
    fill_senders: usize,
    /// Lines a fill sender may be ahead of what the channel received.
    #[arg(long, default_value_t = 256)]
    fill_window: u64,
    #[arg(long, default_value_t = 100)]
    line_len: usize,
    #[arg(long, default_value_t = 1800)]
    fill_timeout_secs: u64,
    /// Clients querying at once, one request in flight each.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Lines per request (capped by the server's CHATHISTORY limit).
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// BEFORE pages a walk reads back before starting again from the newest line or a random time.
    #[arg(long, default_value_t = 10)]
    walk_pages: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
}

impl HistoryArgs {
    fn params(&self) -> HistoryParams {
        HistoryParams {
            channel: self.channel.clone(),
            lines: self.lines.max(1),
            fill_senders: self.fill_senders,
            fill_window: self.fill_window.max(1),
            line_len: self.line_len.clamp(40, 510),
            fill_timeout: Duration::from_secs(self.fill_timeout_secs.clamp(1, 7200)),
            clients: self.clients,
            page: self.page,
            walk_pages: self.walk_pages.min(100_000),
            duration: Duration::from_secs(self.duration_secs.clamp(1, 600)),
        }
    }
}

#[derive(Args, Clone)]
struct FanoutArgs {
    #[arg(long, default_value_t = 1)]
    channels: usize,
    #[arg(long, default_value_t = 200)]
    members: usize,
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Total messages per second over all senders (default: flat out).
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Flat out: lines a sender may be ahead of its channel's probe member.
    #[arg(long, default_value_t = 16)]
    window: u64,
    #[arg(long, default_value_t = 100)]
    line_len: usize,
}

impl FanoutArgs {
    fn params(&self) -> FanoutParams {
        FanoutParams {
            channels: self.channels,
            members: self.members,
            senders: self.senders,
            rate: self.rate,
            duration: Duration::from_secs(self.duration_secs.clamp(1, 600)),
            window: self.window.max(1),
            line_len: self.line_len.clamp(40, 510),
            drain: Duration::from_secs(10),
        }
    }
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Fanout(_) => "fanout",
            Scenario::Dm { .. } => "dm",
            Scenario::Idle { .. } => "idle",
            Scenario::Connect { .. } => "connect",
            Scenario::Joinstorm { .. } => "joinstorm",
            Scenario::History(_) => "history",
        }
    }

    fn sasl_accounts(&self) -> usize {
        match self {
            Scenario::Connect {
                sasl,
                scram,
                sasl_accounts,
                ..
            } if *sasl || *scram => *sasl_accounts,
            _ => 0,
        }
    }

    async fn run(&self, target: &Target) -> Result<Outcome> {
        Ok(match self {
            Scenario::Fanout(args) => {
                Outcome::Fanout(scenario::fanout::run(target, &args.params()).await?)
            }
            Scenario::Dm {
                pairs,
                interval_ms,
                quiet_server,
                fanout,
            } => {
                let params = DmParams {
                    pairs: *pairs,
                    interval: Duration::from_millis(*interval_ms),
                    duration: Duration::from_secs(fanout.duration_secs.clamp(1, 600)),
                    background: (!quiet_server).then(|| fanout.params()),
                };
                Outcome::Dm(scenario::dm::run(target, &params).await?)
            }
            Scenario::Idle { count, hold_secs } => Outcome::Idle(
                scenario::idle::run(
                    target,
                    &IdleParams {
                        count: *count,
                        hold: Duration::from_secs((*hold_secs).min(600)),
                    },
                )
                .await?,
            ),
            Scenario::Connect {
                count,
                concurrency,
                sasl,
                scram,
                pipeline,
                ..
            } => {
                let mut target = target.clone();
                target.scram = *scram;
                target.pipeline = *pipeline;
                Outcome::Connect(
                    scenario::connect::run(
                        &target,
                        &ConnectParams {
                            count: *count,
                            concurrency: *concurrency,
                            sasl: *sasl || *scram,
                        },
                    )
                    .await?,
                )
            }
            Scenario::Joinstorm {
                count,
                timeout_secs,
            } => Outcome::Joinstorm(
                scenario::joinstorm::run(
                    target,
                    &JoinstormParams {
                        count: *count,
                        timeout: Duration::from_secs((*timeout_secs).clamp(1, 600)),
                    },
                )
                .await?,
            ),
            Scenario::History(args) => {
                Outcome::History(scenario::history::run(target, &args.params()).await?)
            }
        })
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Ceiling { listen } = &cli.command {
        ensure_loopback(listen.ip())?;
        return parley_bench::ceiling::run_blocking(*listen);
    }
    let limit = raise_fd_limit();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = cli.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("starting the tokio runtime")?;
    let outcomes = runtime.block_on(run(&cli, limit))?;
    let label = cli.label.clone().unwrap_or_else(|| {
        match &cli.command {
            Command::Cluster { .. } => "cluster",
            command => scenario_of(command).map_or("results", Scenario::name),
        }
        .to_string()
    });
    println!("{}", report::table(&outcomes));
    report::save(&cli.out, &label, &outcomes)?;
    eprintln!("results: {}/{label}.json and .svg", cli.out.display());
    if outcomes.iter().any(|o| !o.ok()) {
        bail!("at least one run was not correct (lost, repeated or reordered messages, or failures): see the table");
    }
    Ok(())
}

fn scenario_of(command: &Command) -> Option<&Scenario> {
    match command {
        Command::Run { scenario, .. } | Command::Compare { scenario, .. } => Some(scenario),
        Command::Ceiling { .. } | Command::Cluster { .. } => None,
    }
}

fn ensure_loopback(ip: IpAddr) -> Result<()> {
    if !ip.is_loopback() {
        bail!("{ip} is not a loopback address; parley-bench only loads servers on this machine (127.0.0.0/8)");
    }
    Ok(())
}

fn sources(count: u8) -> Vec<IpAddr> {
    (0..count)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i.min(250))))
        .collect()
}

async fn run(cli: &Cli, fd_limit: u64) -> Result<Vec<Outcome>> {
    let progress = !cli.quiet;
    match &cli.command {
        Command::Ceiling { .. } => Ok(Vec::new()),
        Command::Run {
            addrs,
            tls_addr,
            fingerprint,
            server_pids,
            accounts,
            scenario,
        } => {
            for addr in addrs {
                ensure_loopback(addr.ip())?;
            }
            let mut endpoint = Endpoint::spread(addrs.clone());
            if let (Some(tls_addr), Some(fingerprint)) = (tls_addr, fingerprint) {
                ensure_loopback(tls_addr.ip())?;
                if addrs.len() > 1 {
                    bail!("--tls-addr takes one server; several --addr are for plain-text runs");
                }
                endpoint.addrs = vec![*tls_addr];
                endpoint.tls = Some(pinned_tls_config(fingerprint, *tls_addr)?);
            }
            endpoint.sources = sources(cli.sources);
            let mut target = Target::new("server", endpoint);
            target.server_pids = server_pids.clone();
            target.progress = progress;
            target.setup_concurrency = cli.setup_concurrency;
            for pair in accounts {
                let (name, password) = pair
                    .split_once(':')
                    .with_context(|| format!("--account `{pair}` is not NAME:PASSWORD"))?;
                target.accounts.push((name.into(), password.into()));
            }
            check_fds(scenario, fd_limit)?;
            Ok(vec![scenario.run(&target).await?])
        }
        Command::Compare {
            servers: kinds,
            parleyd,
            tls,
            keep_going,
            data_dir,
            scenario,
        } => {
            check_fds(scenario, fd_limit)?;
            let parleyd = parleyd_path(parleyd.as_ref())?;
            let mut outcomes = Vec::new();
            for kind in kinds {
                if *tls && *kind != Kind::Parleyd {
                    eprintln!("skipping {}: TLS runs start only parleyd", kind.name());
                    continue;
                }
                if scenario.sasl_accounts() > 0 && *kind != Kind::Parleyd {
                    eprintln!(
                        "skipping {}: SASL needs services this benchmark does not set up",
                        kind.name()
                    );
                    continue;
                }
                if matches!(scenario, Scenario::History(_)) && *kind != Kind::Parleyd {
                    eprintln!(
                        "skipping {}: history not supported (it has no draft/chathistory)",
                        kind.name()
                    );
                    continue;
                }
                let options = servers::Options {
                    parleyd: parleyd.clone(),
                    tls: *tls,
                    accounts: scenario.sasl_accounts(),
                    verbose: false,
                    data_dir: data_dir.clone(),
                    cluster: None,
                };
                let server = match servers::start(*kind, &options) {
                    Ok(server) => server,
                    Err(e) if *keep_going => {
                        eprintln!("skipping {}: {e:#}", kind.name());
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let mut endpoint = Endpoint::plain(server.addr);
                if let Some((tls_addr, fingerprint)) = &server.tls {
                    endpoint.addrs = vec![*tls_addr];
                    endpoint.tls = Some(pinned_tls_config(fingerprint, *tls_addr)?);
                }
                endpoint.sources = sources(cli.sources);
                let mut target = Target::new(kind.name(), endpoint);
                target.server_pids = vec![server.pid];
                target.accounts = server.accounts.clone();
                target.progress = progress;
                target.setup_concurrency = if *kind == Kind::Ngircd {
                    cli.setup_concurrency.min(8)
                } else {
                    cli.setup_concurrency
                };
                eprintln!("{}: {} on {}", scenario.name(), kind.name(), server.addr);
                let outcome = scenario.run(&target).await;
                drop(server);
                match outcome {
                    Ok(outcome) => outcomes.push(outcome),
                    Err(e) if *keep_going => eprintln!("{} failed: {e:#}", kind.name()),
                    Err(e) => {
                        return Err(e.context(format!(
                            "running {} against {}",
                            scenario.name(),
                            kind.name()
                        )))
                    }
                }
                // Let sockets in TIME_WAIT and the last process exit settle between servers.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(outcomes)
        }
        Command::Cluster {
            parleyd,
            postgres_url,
            nodes,
            nats_server,
            verbose,
            keep_going,
            fanout,
        } => {
            check_fds(&Scenario::Fanout(fanout.clone()), fd_limit)?;
            if let Some(bad) = nodes
                .iter()
                .find(|&&n| !(1..=MAX_CLUSTER_NODES).contains(&n))
            {
                bail!("--nodes {bad}: a cluster here has 1 to {MAX_CLUSTER_NODES} nodes");
            }
            let postgres_url = match postgres_url {
                Some(url) => url.clone(),
                None => std::env::var(POSTGRES_URL_VAR).map_err(|_| {
                    anyhow::anyhow!(
                        "cluster nodes share a PostgreSQL database: pass --postgres-url or set \
                         {POSTGRES_URL_VAR} (locally: `pg_ctlcluster 15 main start`, then \
                         postgres://parley_test:parley_test@127.0.0.1:5432/postgres with the role \
                         scripts/postgres-test-setup.sh makes)"
                    )
                })?,
            };
            let options = cluster::Options {
                parleyd: parleyd_path(parleyd.as_ref())?,
                nats_server: cluster::find_nats_server(nats_server.as_deref())?,
                postgres_url,
                verbose: *verbose,
            };
            let mut endpoint = Endpoint::spread(Vec::new());
            endpoint.sources = sources(cli.sources);
            let mut template = Target::new("cluster", endpoint);
            template.progress = progress;
            template.setup_concurrency = cli.setup_concurrency;
            let params = fanout.params();
            let mut outcomes = Vec::new();
            for (run, &count) in nodes.iter().enumerate() {
                eprintln!("cluster: starting NATS and {count} parleyd node(s)");
                match cluster::run(&template, count, run, &options, &params).await {
                    Ok(result) => outcomes.push(Outcome::Cluster(result)),
                    Err(e) if *keep_going => eprintln!("cluster of {count} failed: {e:#}"),
                    Err(e) => return Err(e.context(format!("cluster of {count} node(s)"))),
                }
                // Let sockets in TIME_WAIT and the last processes exit settle between clusters.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(outcomes)
        }
    }
}

/// The largest cluster `cluster` starts (each node is a process on this machine).
const MAX_CLUSTER_NODES: usize = 16;

/// Where `cluster` finds the nodes' shared database when --postgres-url is not given.
const POSTGRES_URL_VAR: &str = "PARLEY_BENCH_POSTGRES_URL";

/// The parleyd binary: the given one, or the one built next to this binary.
fn parleyd_path(given: Option<&PathBuf>) -> Result<PathBuf> {
    match given {
        Some(path) => Ok(path.clone()),
        None => Ok(std::env::current_exe()
            .context("finding this binary")?
            .with_file_name("parleyd")),
    }
}

/// Refuse runs that cannot fit in this process's open-file limit, with the fix.
fn check_fds(scenario: &Scenario, limit: u64) -> Result<()> {
    let needed = match scenario {
        Scenario::Fanout(a) => a.channels * a.members,
        Scenario::Dm { pairs, fanout, .. } => pairs * 2 + fanout.channels * fanout.members,
        Scenario::Idle { count, .. } => *count,
        Scenario::Connect { concurrency, .. } => *concurrency,
        Scenario::Joinstorm { count, .. } => *count,
        Scenario::History(a) => a.clients + a.fill_senders + 1,
    } as u64
        + 64;
    if needed > limit {
        bail!("this run needs about {needed} open files but the limit is {limit}; raise it with `ulimit -Hn`");
    }
    Ok(())
}
