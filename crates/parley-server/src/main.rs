//! `parleyd`: load the config, then either serve (stopping cleanly on SIGINT or SIGTERM and
//! reloading the TLS certificate on SIGHUP) or run one of the admin subcommands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use parley_server::admin::{run_users_command, UsersCommand};
use parley_server::config::StoreKind;
use parley_server::data_dir;
use parley_server::inspect::{self, ExportFormat};
use parley_server::tls::{CertPaths, CertResolver};
use parley_server::Config;
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// How long connections get to say goodbye after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(name = "parleyd", version, about = "Parley chat server (IRC protocol)")]
struct Args {
    /// TOML config file; without one the embedded defaults are used.
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Where persistent data lives (overrides server.data_dir; default: $STATE_DIRECTORY under
    /// systemd, else ~/.local/share/parley). Every command prints the one it uses.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Print the effective config, with comments, and exit.
    #[arg(long)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a config file (and PARLEY_SECTION__KEY overrides) and exit non-zero if it is bad.
    CheckConfig {
        /// The file to check; defaults to --config.
        file: Option<PathBuf>,
    },
    /// Manage accounts: add, passwd, remove, list, lock, unlock, admin, import.
    Users {
        #[command(subcommand)]
        action: UsersCommand,
    },
    /// Copy the database (accounts, channels, history, audit) to FILE while the server runs.
    Backup { file: PathBuf },
    /// Print the audit trail: logins, registrations, kicks, bans, reloads, admin actions.
    Audit {
        /// Only events since this long ago (2h, 7d) or this time (2026-11-25T13:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Only events by this account or nick.
        #[arg(long)]
        actor: Option<String>,
        /// Only this kind of event (login, login_failed, register, kick, ban, ...).
        #[arg(long)]
        action: Option<String>,
    },
    /// Stored conversations.
    History {
        #[command(subcommand)]
        action: HistoryAction,
    },
    /// The TLS certificate the server presents.
    Cert {
        #[command(subcommand)]
        action: CertAction,
    },
    /// Operator blocks ([[operators.opers]]) for OPER <name> <password>.
    Oper {
        #[command(subcommand)]
        action: OperAction,
    },
}

#[derive(Subcommand, Debug)]
enum OperAction {
    /// Read a password from standard input (asked twice, without echo, on a terminal; one line
    /// otherwise) and print its Argon2id hash for an operator block's password_hash. The
    /// password is never an argument, so it stays out of shell history and process lists.
    Hash,
}

#[derive(Subcommand, Debug)]
enum HistoryAction {
    /// Write a conversation's log: a channel (#lobby) or two accounts (alice,bob).
    Export {
        target: String,
        #[arg(long, value_enum, default_value = "text")]
        format: ExportFormat,
    },
}

#[derive(Subcommand, Debug)]
enum CertAction {
    /// Print the certificate's path and SHA-256 fingerprint (generating it first if the data
    /// directory has none yet; a missing data directory is an error, not a new certificate).
    Show,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Command::CheckConfig { file }) = &args.command {
        let path = file.as_ref().or(args.config.as_ref());
        let config = Config::effective(path.map(PathBuf::as_path), args.data_dir.as_deref())?;
        // A configured certificate is checked as a start would; a generated one is made at start.
        let certs = parley_server::tls::CertPaths::from_config(&config);
        if !config.tls.acme_domain.is_empty() {
            println!(
                "tls.acme_domain: {} (certificate from {})",
                config.tls.acme_domain, config.tls.acme_directory
            );
        } else if !certs.generated {
            let fingerprint = parley_server::tls::check(&certs)
                .with_context(|| "tls.cert / tls.key cannot be used".to_owned())?;
            println!("tls.cert: ok, SHA-256 {fingerprint}");
        }
        println!(
            "{}: ok",
            path.map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults".into())
        );
        let dir = &config.server.data_dir;
        if dir.is_dir() {
            println!("data directory: {}", dir.display());
        } else {
            println!(
                "data directory: {} (not there yet; parleyd creates it at start)",
                dir.display()
            );
        }
        return Ok(());
    }
    let config = Config::effective(args.config.as_deref(), args.data_dir.as_deref())?;
    if args.print_config {
        print!("{}", config.to_commented_toml());
        return Ok(());
    }
    if let Some(Command::Oper {
        action: OperAction::Hash,
    }) = &args.command
    {
        return oper_hash(&config);
    }
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .context("log.level is not a valid log filter")?;
    // rustls warns about what clients do wrong (irssi sends an IP address as the TLS server
    // name on every connection by address), which the operator can neither fix nor use; its
    // errors stay, and a filter that names rustls itself (or RUST_LOG) decides for itself.
    if std::env::var_os("RUST_LOG").is_none() && !config.log.level.contains("rustls") {
        filter = filter.add_directive(
            "rustls=error"
                .parse()
                .context("the built-in rustls log filter")?,
        );
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    if let Some(command) = &args.command {
        announce_data_dir(&config, command)?;
    }
    match args.command {
        Some(Command::Cert {
            action: CertAction::Show,
        }) => cert_show(&config),
        Some(Command::Users { action }) => Ok(run_users_command(action, &config)?),
        Some(Command::Backup { file }) => {
            parley_server::store::backup(&config, &file)?;
            println!("backed up to {}", file.display());
            Ok(())
        }
        Some(Command::Audit {
            since,
            actor,
            action,
        }) => {
            let mut out = std::io::stdout().lock();
            inspect::audit(
                &config,
                since.as_deref(),
                actor.as_deref(),
                action.as_deref(),
                &mut out,
            )?;
            Ok(())
        }
        Some(Command::History {
            action: HistoryAction::Export { target, format },
        }) => {
            let mut out = std::io::stdout().lock();
            inspect::export(&config, &target, format, &mut out)?;
            Ok(())
        }
        Some(Command::CheckConfig { .. } | Command::Oper { .. }) => Ok(()),
        None => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the tokio runtime")?;
            runtime.block_on(serve(config, args.config, args.data_dir))
        }
    }
}

/// `parleyd oper hash`: the password from standard input (a no-echo prompt, asked twice, on a
/// terminal), checked against the account password rules, printed as an Argon2id PHC string.
fn oper_hash(config: &Config) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    let rules = parley_server::accounts::AccountRules::from_config(config);
    let password = if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("Operator password: ")
            .context("cannot read the password from the terminal")?;
        let again = rpassword::prompt_password("Same password again: ")
            .context("cannot read the password from the terminal")?;
        anyhow::ensure!(
            again == password,
            "the two passwords differ; nothing was printed"
        );
        password
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(
            !password.is_empty(),
            "no password on standard input; type it at the prompt or pipe one line in"
        );
        password
    };
    rules.check_password(&password)?;
    let hash = parley_server::accounts::hash_password(&password)?;
    println!("{hash}");
    Ok(())
}

/// Whether the certificate is parleyd's own, kept in the data directory: the generated one, or
/// the ACME one (with its generated stand-in).
fn certificate_in_data_dir(config: &Config) -> bool {
    let paths = CertPaths::from_config(config);
    paths.generated || paths.interim.is_some()
}

fn cert_show(config: &Config) -> anyhow::Result<()> {
    let paths = CertPaths::from_config(config);
    let generating = {
        let current = paths.current();
        current.generated && !current.cert.exists()
    };
    let resolver = CertResolver::open(paths.clone(), &config.server.name)?;
    let fingerprint = resolver.fingerprint();
    if generating {
        println!(
            "generated a new self-signed certificate; the server presents it from its next start"
        );
    }
    println!("certificate: {}", paths.current().cert.display());
    if !config.tls.acme_domain.is_empty() {
        if paths.cert.exists() {
            println!("issued by the ACME CA for {}", config.tls.acme_domain);
        } else {
            println!(
                "self-signed stand-in, served until the ACME certificate for {} arrives",
                config.tls.acme_domain
            );
        }
    }
    // Firefox's certificate viewer (and openssl, and the Parley clients) show the first form,
    // Chromium's the second: same digest, so a user can compare either with the browser.
    println!("SHA-256 fingerprint: {fingerprint}");
    println!(
        "  as Chromium shows it: {}",
        parley_server::tls::fingerprint_spaced(&fingerprint)
    );
    Ok(())
}

async fn serve(
    config: Config,
    path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let name = config.server.name.clone();
    let dir = config.server.data_dir.clone();
    let created = data_dir::create(&dir).with_context(|| {
        format!(
            "cannot create the data directory {}; choose another with server.data_dir or --data-dir",
            dir.display()
        )
    })?;
    if created {
        info!(data_dir = %dir.display(), "created new data directory");
    } else {
        info!(data_dir = %dir.display(), "data directory");
    }
    let running = parley_server::start(config).await?;
    running.set_config_source(path, data_dir);
    for addr in running.plain_addrs() {
        info!(%addr, server = %name, version = parley_server::VERSION, "listening (plain text)");
    }
    for addr in running.tls_addrs() {
        info!(%addr, server = %name, "listening (TLS)");
    }
    for addr in running.web_addrs() {
        info!(%addr, "web client and WebSocket (HTTPS): https://{addr}/");
    }
    wait_for_shutdown(&running).await?;
    info!("shutting down");
    running.shutdown();
    if !running.wait(SHUTDOWN_GRACE).await {
        info!("some connections did not close in time");
    }
    Ok(())
}

/// What an admin command does with a data directory that is not there.
enum Missing {
    /// Make it, and say so: a command that starts a new install (`users add`).
    Create,
    /// Refuse, saying what there is nothing of and how a new one is made: the command only
    /// reads or changes what exists.
    Refuse(&'static str, &'static str),
    /// The command does not use it (PostgreSQL accounts, a configured certificate).
    Unused,
}

/// Say which data directory an admin command works on, and never let one appear unannounced:
/// per [`Missing`], make it and say so, or refuse naming the path and how to choose another.
/// Commands whose output is data to redirect (`history export`, `audit`) say it on stderr.
fn announce_data_dir(config: &Config, command: &Command) -> anyhow::Result<()> {
    let dir = &config.server.data_dir;
    let database_inside = config.accounts.store == StoreKind::Sqlite
        && std::path::Path::new(&config.accounts.database).is_relative();
    let store = |what: &'static str| {
        if database_inside {
            Missing::Refuse(what, "`parleyd users add NAME` starts a new one there")
        } else {
            Missing::Unused
        }
    };
    let (missing, to_stderr) = match command {
        Command::Users { action } => match action {
            UsersCommand::Add { .. } | UsersCommand::Import { .. } if database_inside => {
                (Missing::Create, false)
            }
            UsersCommand::Add { .. } | UsersCommand::Import { .. } => (Missing::Unused, false),
            _ => (store("no accounts database"), false),
        },
        Command::Cert { .. } if certificate_in_data_dir(config) => {
            let start = "start parleyd once to make a new one there";
            (Missing::Refuse("no certificate yet", start), false)
        }
        Command::Cert { .. } => (Missing::Unused, false),
        Command::Backup { .. } => (store("no database to back up"), false),
        Command::Audit { .. } => (store("no audit trail"), true),
        Command::History { .. } => (store("no stored history"), true),
        Command::CheckConfig { .. } | Command::Oper { .. } => return Ok(()),
    };
    let say = |line: String| {
        if to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!("data directory: {}", dir.display()));
    if dir.is_dir() {
        return Ok(());
    }
    match missing {
        Missing::Create => {
            data_dir::create(dir).with_context(|| {
                format!(
                    "cannot create the data directory {}; choose another with server.data_dir \
                     in the --config file, or --data-dir DIR",
                    dir.display()
                )
            })?;
            say(format!("created new data directory {}", dir.display()));
            Ok(())
        }
        Missing::Refuse(nothing, start) => anyhow::bail!(
            "no data directory at {}, so {nothing}. If the server keeps its data elsewhere, point \
             at it with --config FILE (its server.data_dir) or --data-dir DIR; {start}.",
            dir.display()
        ),
        Missing::Unused => Ok(()),
    }
}

/// Serve signals until one asks us to stop: SIGHUP reloads the certificate, SIGINT/SIGTERM stop.
#[cfg(unix)]
async fn wait_for_shutdown(running: &parley_server::Running) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => return r.context("cannot listen for SIGINT"),
            _ = term.recv() => return Ok(()),
            why = running.stopped_itself() => anyhow::bail!(why),
            _ = hangup.recv() => match running.reload() {
                Ok(_) => info!("SIGHUP: configuration reloaded"),
                Err(err) => error!(%err, "SIGHUP: configuration NOT reloaded; the old one stays in force"),
            },
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_shutdown(_running: &parley_server::Running) -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")
}
