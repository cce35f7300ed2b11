//! Line mode (`--plain`), like the classic terminal chat clients: every input line from standard
//! input is typed input, every received line is printed as `HH:MM [buffer] <nick> text`. Input
//! waits for the connection, and after a /join for the channel, so a piped script just works.
//!
//! Text goes to the last target the user named (the channel of the last /join or --join, the
//! nick of the last /msg or /query), never to whatever the server happened to join last; when
//! that target changes, or was never named, a `-> target` line says where text now goes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Local;
use parley_client::{
    casefold, input, Action, Client, ClientError, ConnectionState, Event, Line, LineKind,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::{client_config, remember, Choice, Common};

/// How long input waits for a join (or the connection) before it goes on anyway.
const WAIT_FOR_JOIN: Duration = Duration::from_secs(10);

/// Where typed text goes in line mode (see the module docs).
#[derive(Debug, Default)]
pub struct Target {
    /// Named by the user: a channel joined or asked for, a nick written to.
    named: Option<String>,
    /// The target the last `-> target` line announced.
    announced: Option<String>,
}

impl Target {
    pub fn new(join: &[String]) -> Target {
        Target {
            named: join.last().cloned(),
            announced: None,
        }
    }

    /// Notes the target an action names, and points text actions (and /part, /topic... without
    /// a channel) at the current target. Returns the action to send, and a `-> target` line to
    /// print when text now goes somewhere new.
    pub fn route(&mut self, action: Action, shown: &str) -> (Action, Option<String>) {
        let action = match action {
            Action::Join { ref channel, .. }
            | Action::JoinGroup(ref channel)
            | Action::CreateGroup(ref channel) => {
                self.named = Some(channel.clone());
                return (action, None);
            }
            Action::Msg { ref target, .. }
            | Action::GroupMsg {
                group: ref target, ..
            } => {
                self.named = Some(target.clone());
                return (action, None);
            }
            Action::Query { ref nick, .. } => {
                self.named = Some(nick.clone());
                return (action, None);
            }
            Action::Part {
                channel: Some(ref channel),
                ..
            }
            | Action::LeaveGroup(ref channel) => {
                if self
                    .named
                    .as_deref()
                    .is_some_and(|n| casefold(n) == casefold(channel))
                {
                    self.named = None;
                }
                return (action, None);
            }
            Action::Part {
                channel: None,
                reason,
            } => {
                let channel = self.current(shown).filter(|t| input::is_channel(t));
                if channel.is_some() {
                    self.named = None;
                }
                Action::Part { channel, reason }
            }
            Action::Say(text) => match self.current(shown) {
                Some(target) => Action::Msg { target, text },
                None => Action::Say(text),
            },
            other => return (other, None),
        };
        let target = match &action {
            Action::Msg { target, .. } => Some(target.clone()),
            _ => None,
        };
        let note = match target {
            Some(target) if self.announced.as_deref() != Some(target.as_str()) => {
                self.announced = Some(target.clone());
                Some(format!("-> {target}"))
            }
            _ => None,
        };
        (action, note)
    }

    /// The named target, else the conversation on screen (not the server buffer).
    fn current(&self, shown: &str) -> Option<String> {
        self.named
            .clone()
            .or_else(|| (shown != parley_client::SERVER_BUFFER).then(|| shown.to_string()))
    }
}

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
    let mut target = Target::new(&common.join);
    // Outlives one client: lines piped before a certificate was trusted go to the next one.
    let mut pending: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    loop {
        let mut config = client_config(&choice, &common)?;
        config.record_new_lines = true;
        let policy = match &config.transport {
            parley_client::Transport::Tls(policy) => Some(policy.clone()),
            parley_client::Transport::Plain => None,
        };
        let (client, mut events) = Client::start(config)?;
        // The channel input waits for, until when, and whether the join was sent (a
        // /create_group sends it only after its LIST check).
        let mut waiting: Option<(String, Instant, bool)> = None;
        let mut quitting: Option<Instant> = None;
        let mut retry = false;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(Event::Changed) => {}
                    Some(Event::UntrustedCertificate { server, fingerprint, .. }) => {
                        // The refusal, fingerprint included, is a line of the server buffer: print
                        // it there once (it may be out already), not again on standard error.
                        print_new(&client);
                        if !common.trust {
                            bail!("not connected: the certificate is not trusted (use --trust to accept it, --fingerprint or --ca)");
                        }
                        let policy = policy.clone().context("a certificate question without TLS")?;
                        policy.remember(&server, fingerprint)?;
                        eprintln!("parley: trusting this certificate for {server} (stored in known_servers)");
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
            if let Some((name, deadline, sent)) = &waiting {
                let state = client.state();
                // Joined, or refused (the state stopped waiting for it): go on either way.
                let settled = state.buffer(name).is_some_and(|b| b.joined)
                    || (*sent
                        && state
                            .awaiting_join()
                            .is_none_or(|c| casefold(c) != casefold(name)));
                drop(state);
                if settled || Instant::now() > *deadline {
                    waiting = None;
                }
            }
            while connected && waiting.is_none() && quitting.is_none() {
                let Some(line) = pending.pop_front() else {
                    break;
                };
                match parley_client::input::parse(&line) {
                    Ok(action) => {
                        let shown = client.state().active().name.clone();
                        let (action, note) = target.route(action, &shown);
                        if let Some(note) = note {
                            // What came before the note is printed before it.
                            print_new(&client);
                            println!("{note}");
                        }
                        let wait_for = match &action {
                            Action::Join { channel, .. } | Action::JoinGroup(channel) => {
                                Some((channel.clone(), true))
                            }
                            Action::CreateGroup(channel) => Some((channel.clone(), false)),
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
                        if let Some((name, sent)) = wait_for {
                            waiting = Some((name, Instant::now() + WAIT_FOR_JOIN, sent));
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
    let mut out = std::io::stdout().lock();
    for (buffer, line) in lines {
        let _ = writeln!(out, "{}", format_line(&buffer, &line));
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(text: &str) -> Action {
        Action::Say(text.into())
    }

    #[test]
    fn text_follows_the_last_named_target_and_says_so_once() {
        let mut target = Target::new(&[]);
        // Nothing named yet: the conversation on screen, announced.
        let (action, note) = target.route(say("hi"), "#lobby");
        assert!(matches!(action, Action::Msg { ref target, .. } if target == "#lobby"));
        assert_eq!(note.as_deref(), Some("-> #lobby"));
        let (_, note) = target.route(say("again"), "#lobby");
        assert_eq!(note, None, "said once per change");

        let join = Action::Join {
            channel: "#club".into(),
            key: None,
        };
        target.route(join, "#lobby");
        // The server focused something else meanwhile: text still goes to #club.
        let (action, note) = target.route(say("hello club"), "#lobby");
        assert!(matches!(action, Action::Msg { ref target, .. } if target == "#club"));
        assert_eq!(note.as_deref(), Some("-> #club"));

        target.route(
            Action::Query {
                nick: "bob".into(),
                text: None,
            },
            "#club",
        );
        let (action, _) = target.route(say("psst"), "#club");
        assert!(matches!(action, Action::Msg { ref target, .. } if target == "bob"));

        // /part without a channel parts the target, not what happens to be on screen.
        target.route(Action::JoinGroup("#team".into()), "bob");
        let (action, _) = target.route(
            Action::Part {
                channel: None,
                reason: None,
            },
            "#lobby",
        );
        assert!(matches!(action, Action::Part { channel: Some(ref c), .. } if c == "#team"));
        let (action, _) = target.route(say("back"), "#lobby");
        assert!(matches!(action, Action::Msg { ref target, .. } if target == "#lobby"));
    }

    #[test]
    fn join_on_the_command_line_is_the_first_target() {
        let mut target = Target::new(&["#a".into(), "#club".into()]);
        let (action, note) = target.route(say("hi"), "server");
        assert!(matches!(action, Action::Msg { ref target, .. } if target == "#club"));
        assert_eq!(note.as_deref(), Some("-> #club"));
        let mut target = Target::new(&[]);
        let (action, note) = target.route(say("hi"), parley_client::SERVER_BUFFER);
        assert!(
            matches!(action, Action::Say(_)),
            "the state explains there is no target"
        );
        assert_eq!(note, None);
    }
}
