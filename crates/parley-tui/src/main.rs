//! `parley`: the terminal chat client. It parses the command line, builds a `ClientConfig` (TLS
//! trust from --ca, --fingerprint and the known_servers file) and runs either the full-screen
//! client (`tui`) or the line mode for scripts (`plain`). All chat logic is in `parley-client`.

mod plain;
mod search_view;
mod settings;
mod theme;
mod tui;
mod ui;
mod view;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use parley_client::{input, Auth, ClientConfig, Fingerprint, Transport, TrustPolicy};

use crate::settings::{config_dir, known_servers_path, Settings};
use crate::theme::{Theme, ThemeName};

/// Parley terminal client: chat on a Parley (or any IRC) server.
///
/// Without --plain it opens a full-screen client with a start form (server, log in or register,
/// username, password). The server and username are remembered in the config directory
/// (never the password); accepted certificates go to the known_servers file beside it.
#[derive(Parser, Debug)]
#[command(name = "parley", version, after_help = AFTER_HELP)]
struct Args {
    /// Server to connect to, as host:port (port defaults to 6697 with TLS, 6667 without).
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<String>,
    /// Use TLS (the default).
    #[arg(long, conflicts_with = "no_tls")]
    tls: bool,
    /// Plain-text connection; allowed only to loopback addresses (for development).
    #[arg(long = "no-tls")]
    no_tls: bool,
    /// Trust the server certificate (or its CA) in this PEM file; may be repeated.
    #[arg(long, value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// Accept only a certificate with this SHA-256 fingerprint (AB:CD:...); may be repeated.
    #[arg(long, value_name = "FP")]
    fingerprint: Vec<String>,
    /// In --plain mode: accept an unknown certificate after printing its fingerprint and store
    /// it in known_servers. (The full-screen client always asks.)
    #[arg(long)]
    trust: bool,
    /// Your username (account name and nick).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Create the account (IRCv3 REGISTER) instead of logging in.
    #[arg(long)]
    register: bool,
    /// Read the password from the first line of standard input (for scripts; implies --plain).
    #[arg(long)]
    password_stdin: bool,
    /// Line mode: read input lines from standard input, print received lines to standard output.
    #[arg(long)]
    plain: bool,
    /// Join this channel after connecting; may be repeated.
    #[arg(long, value_name = "CHANNEL")]
    join: Vec<String>,
    /// Colours of the full-screen client for a dark or a light terminal; remembered.
    #[arg(long, value_enum, value_name = "THEME")]
    theme: Option<ThemeName>,
}

const AFTER_HELP: &str = "\
Examples:
  parley --server chat.example.org:6697 --user alice
  parley --server 127.0.0.1:6667 --no-tls --user alice
  parley --server chat.example.org --ca server-cert.pem --user alice
  echo \"$PASSWORD\" | parley --plain --password-stdin --server chat.example.org --user bot --join '#ops'

Commands in the client: /join /part /msg /query /me /nick /topic /kick /ban /invite /whois /away
/quit /help, and /broadcast <text>, /create_group <name>, /join_group <name>,
/group_msg <name> <text>, /leave_group <name>, /history, /exit.
Keys: Enter send, Tab complete, Up/Down input history, PageUp/PageDown scroll (PageUp at the top
loads older history), Ctrl-N/Ctrl-P or Alt-Left/Right or Alt-1..9 switch buffers, Ctrl-C quit.";

/// What the user chose (on the command line or in the start form).
#[derive(Clone, Debug)]
pub struct Choice {
    pub server: String,
    pub user: String,
    pub password: String,
    pub register: bool,
    pub tls: bool,
}

/// Options that stay the same across connection attempts.
#[derive(Clone, Debug)]
pub struct Common {
    pub ca: Vec<PathBuf>,
    pub fingerprint: Vec<String>,
    pub trust: bool,
    pub join: Vec<String>,
}

/// "host:port", "host", "[v6]:port" -> host and port.
pub fn split_server(server: &str, tls: bool) -> anyhow::Result<(String, u16)> {
    let default_port = if tls { 6697 } else { 6667 };
    let server = server.trim();
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => (host.to_string(), None),
            Some((host, port)) => (host.to_string(), Some(port.trim_start_matches(':'))),
            None => bail!("{server:?}: missing ']' after the IPv6 address"),
        }
    } else {
        match server.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host.to_string(), Some(port)),
            _ => (server.to_string(), None),
        }
    };
    if host.is_empty() {
        bail!("{server:?}: the server needs a host name, like chat.example.org:6697");
    }
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .with_context(|| format!("{server:?}: {port:?} is not a port number"))?,
        None => default_port,
    };
    Ok((host, port))
}

/// The trust policy for TLS: pins if given, else the system roots, plus --ca files, plus the
/// known_servers file.
pub fn trust_policy(common: &Common) -> anyhow::Result<TrustPolicy> {
    let pins = common
        .fingerprint
        .iter()
        .map(|fp| Fingerprint::parse(fp).with_context(|| format!("--fingerprint {fp}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(parley_client::trust_policy(
        &pins,
        &common.ca,
        known_servers_path(),
    )?)
}

pub fn client_config(choice: &Choice, common: &Common) -> anyhow::Result<ClientConfig> {
    let (host, port) = split_server(&choice.server, choice.tls)?;
    let transport = if choice.tls {
        Transport::Tls(trust_policy(common)?)
    } else {
        Transport::Plain
    };
    let mut config = ClientConfig::new(&host, port, transport, &choice.user);
    // This install is an E2E device per (server, account), kept beside the settings.
    config.e2e_dir = parley_client::paths::e2e_dir(&host, port);
    config.auth = match (choice.password.is_empty(), choice.register) {
        (true, true) => bail!("registering an account needs a password"),
        (true, false) => Auth::Guest,
        (false, true) => Auth::Register {
            account: choice.user.clone(),
            password: choice.password.clone(),
        },
        (false, false) => Auth::Login {
            account: choice.user.clone(),
            password: choice.password.clone(),
        },
    };
    config.autojoin = common
        .join
        .iter()
        .map(|c| input::channel_name(c).with_context(|| format!("--join {c}")))
        .collect::<anyhow::Result<_>>()?;
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = config_dir();
    let mut settings = match &dir {
        Some(dir) => Settings::load(dir)?,
        None => Settings::default(),
    };
    if let (Some(theme), Some(dir)) = (args.theme, &dir) {
        if settings.theme != Some(theme) {
            settings.theme = Some(theme);
            settings.save(dir)?;
        }
    }
    let theme = Theme::new(args.theme.or(settings.theme).unwrap_or_default());
    let tls = if args.no_tls {
        false
    } else if args.tls {
        true
    } else {
        settings.tls.unwrap_or(true)
    };
    let common = Common {
        ca: args.ca.clone(),
        fingerprint: args.fingerprint.clone(),
        trust: args.trust,
        join: args.join.clone(),
    };
    let server = args
        .server
        .clone()
        .or(settings.server.clone())
        .unwrap_or_default();
    let user = args
        .user
        .clone()
        .or(settings.user.clone())
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.plain || args.password_stdin {
        let choice = Choice {
            server,
            user,
            password: String::new(),
            register: args.register,
            tls,
        };
        runtime.block_on(plain::run(choice, common, args.password_stdin, dir))
    } else {
        let choice = Choice {
            server,
            user,
            password: String::new(),
            register: args.register,
            tls,
        };
        runtime.block_on(tui::run(choice, common, dir, theme))
    }
}

/// Remembers the server and username (never the password).
pub fn remember(dir: Option<&std::path::Path>, choice: &Choice) {
    if let Some(dir) = dir {
        // The theme is kept as it is; a broken file is replaced (the start said so already).
        let theme = Settings::load(dir).ok().and_then(|s| s.theme);
        let settings = Settings {
            server: Some(choice.server.clone()),
            user: Some(choice.user.clone()),
            tls: Some(choice.tls),
            theme,
        };
        if let Err(error) = settings.save(dir) {
            eprintln!("parley: could not save settings: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(split_server("h:1", true).expect("ok"), ("h".into(), 1));
        assert_eq!(split_server("h", true).expect("ok"), ("h".into(), 6697));
        assert_eq!(split_server("h", false).expect("ok"), ("h".into(), 6667));
        assert_eq!(
            split_server("[::1]:7", true).expect("ok"),
            ("::1".into(), 7)
        );
        assert!(split_server("h:x", true).is_err());
        assert!(split_server(":1", true).is_err());
    }

    #[test]
    fn help_documents_the_flags() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for flag in [
            "--server",
            "--tls",
            "--no-tls",
            "--ca",
            "--fingerprint",
            "--trust",
            "--user",
            "--register",
            "--password-stdin",
            "--plain",
            "--theme",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }
}
