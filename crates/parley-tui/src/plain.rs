//! Line mode (`--plain`), like the classic terminal chat clients: every input line from standard
//! input is typed input, every received line is printed as `HH:MM [buffer] <nick> text`. Input
//! waits for the connection, and after a /join for the channel, so a piped script just works.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Local;
use parley_client::{
    casefold, Action, Client, ClientError, ConnectionState, Event, Line, LineKind,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{client_config, remember, Choice, Common};

/// How long input waits for a join (or the connection) before it goes on anyway.
const WAIT_FOR_JOIN: Duration = Duration::from_secs(10);

pub fn format_line(buffer: &str, line: &Line) -> String {
    let time = line.time.with_timezone(&Local).format("%H:%M");
    let from = line.from.as_deref().unwrap_or("");
    match line.kind {
        LineKind::Message => format!("{time} [{buffer}] <{from}> {}", line.text),
        LineKind::Action => format!("{time} [{buffer}] * {from} {}", line.text),
        LineKind::Notice => format!("{time} [{buffer}] -{from}- {}", line.text),
        LineKind::Error => format!("{time} [{buffer}] !! {}", line.text),
        LineKind::Info => format!("{time} [{buffer}] {}", line.text),
        _ => format!("{time} [{buffer}] -- {}", line.text),
    }
}

pub async fn run(
    mut choice: Choice,
    common: Common,
    password_stdin: bool,
    dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    if choice.server.is_empty() || choice.user.is_empty() {
        bail!("--plain needs --server HOST:PORT and --user NAME (or a saved config from an earlier run)");
    }
    let stdin = std::io::stdin();
    if password_stdin {
        let mut password = String::new();
        stdin
            .lock()
            .read_line(&mut password)
            .context("cannot read the password from standard input")?;
        choice.password = password.trim_end_matches(['\r', '\n']).to_string();
    } else if stdin.is_terminal() {
        choice.password =
            rpassword::prompt_password(format!("password for {} (empty for guest): ", choice.user))
                .context("cannot read the password")?;
    }
    remember(dir.as_deref(), &choice);

    let (lines_tx, mut lines_rx) = mpsc::channel::<String>(64);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });

    let mut stdin_open = true;
    loop {
        let config = client_config(&choice, &common)?;
        let policy = match &config.transport {
            parley_client::Transport::Tls(policy) => Some(policy.clone()),
            parley_client::Transport::Plain => None,
        };
        let (client, mut events) = Client::start(config)?;
        client.state().record_new_lines(true);
        let mut pending: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut waiting: Option<(String, Instant)> = None;
        let mut quitting: Option<Instant> = None;
        let mut retry = false;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(Event::Changed) => {}
                    Some(Event::UntrustedCertificate { server, fingerprint, message }) => {
                        eprintln!("parley: {message}");
                        if !common.trust {
                            bail!("not connected: the certificate is not trusted (use --trust to accept it, --fingerprint or --ca)");
                        }
                        let policy = policy.clone().context("a certificate question without TLS")?;
                        policy.remember(&server, fingerprint)?;
                        eprintln!("parley: trusting {fingerprint} for {server} (stored in known_servers)");
                        retry = true;
                    }
                    Some(Event::Closed { reason }) => {
                        print_new(&client);
                        if let Some(reason) = reason {
                            if retry {
                                break;
                            }
                            bail!("{reason}");
                        }
                        return Ok(());
                    }
                    None => return Ok(()),
                },
                line = lines_rx.recv(), if stdin_open => match line {
                    Some(line) => pending.push_back(line),
                    None => stdin_open = false,
                },
                _ = tick.tick() => {}
            }
            print_new(&client);
            // Feed input once connected, pausing after a join until the channel is there.
            let connected = *client.state().connection() == ConnectionState::Connected;
            if let Some((name, deadline)) = &waiting {
                let active = casefold(&client.state().active().name);
                if active == casefold(name) || Instant::now() > *deadline {
                    waiting = None;
                }
            }
            while connected && waiting.is_none() && quitting.is_none() {
                let Some(line) = pending.pop_front() else {
                    break;
                };
                match parley_client::input::parse(&line) {
                    Ok(action) => {
                        let wait_for = match &action {
                            Action::Join { channel, .. }
                            | Action::JoinGroup(channel)
                            | Action::CreateGroup(channel) => Some(channel.clone()),
                            _ => None,
                        };
                        let quit = matches!(action, Action::Quit(_));
                        match client.act(action).await {
                            Ok(()) => {}
                            Err(ClientError::Closed) => return Ok(()),
                            Err(error) => eprintln!("parley: {error}"),
                        }
                        if quit {
                            quitting = Some(Instant::now() + Duration::from_secs(5));
                        }
                        if let Some(name) = wait_for {
                            waiting = Some((name, Instant::now() + WAIT_FOR_JOIN));
                        }
                    }
                    Err(parley_client::InputError::Empty) => {}
                    Err(error) => eprintln!("parley: {error}"),
                }
            }
            print_new(&client);
            if !stdin_open
                && pending.is_empty()
                && waiting.is_none()
                && quitting.is_none()
                && connected
            {
                // End of input: give replies a moment, then say goodbye.
                tokio::time::sleep(Duration::from_millis(300)).await;
                print_new(&client);
                client.quit(None).await;
                quitting = Some(Instant::now() + Duration::from_secs(5));
            }
            if quitting.is_some_and(|deadline| Instant::now() > deadline) {
                return Ok(());
            }
        }
        stdin_open = stdin_open || !pending.is_empty();
    }
}

fn print_new(client: &Client) {
    let lines = client.state().take_new_lines();
    if lines.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    for (buffer, line) in lines {
        let _ = writeln!(out, "{}", format_line(&buffer, &line));
    }
    let _ = out.flush();
}
