//! `parleyd`: load the config, start the server, and stop it cleanly on SIGINT or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use parley_server::Config;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// How long connections get to say goodbye after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(name = "parleyd", version, about = "Parley chat server (IRC protocol)")]
struct Args {
    /// TOML config file; without one the embedded defaults are used.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective config, with comments, and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if args.print_config {
        print!("{}", config.to_commented_toml());
        return Ok(());
    }
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .context("log.level is not a valid log filter")?;
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let name = config.server.name.clone();
    let running = parley_server::start(config).await?;
    for addr in running.plain_addrs() {
        info!(%addr, server = %name, version = parley_server::VERSION, "listening (plain TCP)");
    }
    wait_for_signal().await?;
    info!("shutting down");
    running.shutdown();
    if !running.wait(SHUTDOWN_GRACE).await {
        info!("some connections did not close in time");
    }
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn wait_for_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")
}
