//! `parley-gui`: the desktop chat client. It reads the command line and the saved settings,
//! starts a tokio runtime for the client library and opens the egui window (OpenGL through
//! glow, which also runs on software rendering). With `--user` and `--password-file` it logs in
//! at once (for scripts and screenshots); otherwise the login dialog asks.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use eframe::egui;
use parley_client::paths::{config_dir, known_servers_path};
use parley_client::Fingerprint;
use parley_gui::connection::LiveConnector;
use parley_gui::notify::Desktop;
use parley_gui::settings::{Settings, Theme};
use parley_gui::{App, Options};

/// Parley desktop client: chat on a Parley (or any IRC) server.
///
/// Settings (last server and username, theme, font size, notifications) are kept in gui.toml in
/// the config directory, never the password; accepted certificates go to known_servers beside it.
#[derive(Parser, Debug)]
#[command(name = "parley-gui", version)]
struct Args {
    /// Server name or address to fill in.
    #[arg(long, value_name = "HOST")]
    server: Option<String>,
    /// Port to fill in (6697 is usual with TLS, 6667 without).
    #[arg(long)]
    port: Option<u16>,
    /// Plain-text connection; the client allows it only to this computer (for development).
    #[arg(long = "no-tls")]
    no_tls: bool,
    /// Trust the server certificate (or its CA) in this PEM file; may be repeated.
    #[arg(long, value_name = "FILE")]
    ca: Vec<PathBuf>,
    /// Accept only a certificate with this SHA-256 fingerprint (AB:CD:...); may be repeated.
    #[arg(long, value_name = "FP")]
    fingerprint: Vec<String>,
    /// Username to fill in.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Log in at once with the password on the first line of this file (for scripts).
    #[arg(long, value_name = "FILE", requires = "user")]
    password_file: Option<PathBuf>,
    /// With --password-file: create the account instead of logging in.
    #[arg(long, requires = "password_file")]
    register: bool,
    /// Join this channel after logging in; may be repeated.
    #[arg(long, value_name = "CHANNEL")]
    join: Vec<String>,
    /// Theme for this run: system, light or dark.
    #[arg(long, value_name = "THEME")]
    theme: Option<String>,
    /// Window size in points, as WIDTHxHEIGHT.
    #[arg(long, value_name = "WxH", default_value = "1100x700")]
    size: String,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let dir = config_dir();
    let mut settings = match &dir {
        Some(dir) => Settings::load(dir)?,
        None => Settings::default(),
    };
    if let Some(server) = &args.server {
        settings.server = server.clone();
    }
    if args.no_tls {
        settings.tls = false;
    }
    if let Some(port) = args.port {
        settings.port = port;
    } else if args.no_tls && args.server.is_some() {
        settings.port = 6667;
    }
    if let Some(user) = &args.user {
        settings.user = user.clone();
    }
    if let Some(theme) = &args.theme {
        settings.theme = match theme.to_ascii_lowercase().as_str() {
            "system" => Theme::System,
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            other => anyhow::bail!("--theme {other:?}: use system, light or dark"),
        };
    }
    let mut options = Options {
        known_servers: known_servers_path(),
        e2e_root: dir
            .as_ref()
            .map(|dir| dir.join(parley_gui::e2e::E2E_FOLDER)),
        ca_files: args.ca.clone(),
        ..Options::default()
    };
    for fp in &args.fingerprint {
        options
            .pins
            .push(Fingerprint::parse(fp).with_context(|| format!("--fingerprint {fp}"))?);
    }
    options.autojoin = args
        .join
        .iter()
        .map(|c| parley_client::input::channel_name(c).with_context(|| format!("--join {c}")))
        .collect::<anyhow::Result<_>>()?;
    let password = match &args.password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the password file {}", path.display()))?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        None => None,
    };
    let size = parse_size(&args.size)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let handle = runtime.handle().clone();
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Parley")
            .with_inner_size(size)
            .with_min_inner_size([480.0, 320.0]),
        ..Default::default()
    };
    let register = args.register;
    eframe::run_native(
        "Parley",
        native,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let connector = LiveConnector {
                runtime: handle,
                wake: Arc::new(move || ctx.request_repaint()),
            };
            let mut app = App::new(
                settings,
                dir,
                Box::new(connector),
                Box::new(Desktop),
                options,
            );
            if let Some(password) = password {
                app.form.password = password;
                app.submit_login(register);
            }
            Ok(Box::new(Window(app)))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// eframe's face of the app.
struct Window(App);

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.0.ui(ui);
    }
}

fn parse_size(text: &str) -> anyhow::Result<[f32; 2]> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some([w.trim().parse::<f32>().ok()?, h.trim().parse::<f32>().ok()?]));
    match parsed {
        Some([w, h]) if w >= 320.0 && h >= 240.0 => Ok([w, h]),
        _ => anyhow::bail!("--size {text:?}: use WIDTHxHEIGHT, at least 320x240, like 1100x700"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("800x600").expect("ok"), [800.0, 600.0]);
        assert!(parse_size("10x10").is_err());
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn help_documents_the_flags() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for flag in [
            "--server",
            "--port",
            "--no-tls",
            "--user",
            "--password-file",
            "--register",
            "--fingerprint",
            "--theme",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
    }
}
