//! The full-screen client's main loop: the start form, then the chat screen redrawn on every
//! client event, key and second. Keys come from a blocking reader thread through a bounded
//! channel, so the loop is one `select!` over client events, keys and a tick.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyEventKind};
use parley_client::{Action, Client, ClientError, Event, Fingerprint, LineKind, Transport};
use ratatui::DefaultTerminal;
use tokio::sync::mpsc;

use crate::theme::Theme;
use crate::ui::{draw_main, draw_start, draw_trust, StatusInfo};
use crate::view::{FormRequest, Request, StartForm, View};
use crate::{client_config, remember, Choice, Common};

pub async fn run(
    choice: Choice,
    common: Common,
    dir: Option<PathBuf>,
    theme: Theme,
) -> anyhow::Result<()> {
    let (keys_tx, keys) = mpsc::channel(64);
    std::thread::spawn(move || loop {
        match crossterm::event::read() {
            Ok(TermEvent::Key(key)) if key.kind != KeyEventKind::Release => {
                if keys_tx.blocking_send(Some(key)).is_err() {
                    break;
                }
            }
            Ok(TermEvent::Resize(..)) => {
                if keys_tx.blocking_send(None).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    });
    let mut terminal = ratatui::init();
    let result = main_loop(&mut terminal, keys, choice, common, dir, &theme).await;
    ratatui::restore();
    match result {
        Ok(Some(goodbye)) => {
            eprintln!("parley: {goodbye}");
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(error) => Err(error),
    }
}

enum Outcome {
    Exit(Option<String>),
    /// Connect again (a certificate was just trusted).
    Reconnect,
    /// Back to the start form with an error.
    Form(String),
}

async fn main_loop(
    terminal: &mut DefaultTerminal,
    mut keys: mpsc::Receiver<Option<KeyEvent>>,
    choice: Choice,
    common: Common,
    dir: Option<PathBuf>,
    theme: &Theme,
) -> anyhow::Result<Option<String>> {
    let mut form = StartForm::new(choice.server.clone(), choice.user.clone(), choice.register);
    'form: loop {
        loop {
            terminal
                .draw(|f| draw_start(f, &form, theme))
                .context("cannot draw")?;
            match keys.recv().await {
                None => return Ok(None),
                Some(None) => {}
                Some(Some(key)) => match form.handle_key(key) {
                    FormRequest::Quit => return Ok(None),
                    FormRequest::Submit => break,
                    FormRequest::None => {}
                },
            }
        }
        let chosen = Choice {
            server: form.server.trim().to_string(),
            user: form.user.trim().to_string(),
            password: form.password.clone(),
            register: form.register,
            tls: choice.tls,
        };
        remember(dir.as_deref(), &chosen);
        loop {
            let config = match client_config(&chosen, &common) {
                Ok(config) => config,
                Err(error) => {
                    form.error = Some(format!("{error:#}"));
                    continue 'form;
                }
            };
            match chat(terminal, &mut keys, config, &chosen, theme).await? {
                Outcome::Exit(message) => return Ok(message),
                Outcome::Reconnect => {}
                Outcome::Form(error) => {
                    if error.starts_with(parley_client::ACCOUNT_REQUIRED) {
                        form.guests_refused_by = Some(chosen.server.clone());
                    }
                    form.error = Some(error);
                    continue 'form;
                }
            }
        }
    }
}

async fn chat(
    terminal: &mut DefaultTerminal,
    keys: &mut mpsc::Receiver<Option<KeyEvent>>,
    config: parley_client::ClientConfig,
    choice: &Choice,
    theme: &Theme,
) -> anyhow::Result<Outcome> {
    let policy = match &config.transport {
        Transport::Tls(policy) => Some(policy.clone()),
        Transport::Plain => None,
    };
    let (client, mut events) = match Client::start(config) {
        Ok(started) => started,
        Err(error) => return Ok(Outcome::Form(error.to_string())),
    };
    let info_server = choice.server.clone();
    let mut view = View::default();
    let mut question: Option<(String, Fingerprint, String)> = None;
    let mut closed = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        terminal
            .draw(|frame| match &question {
                Some((_, _, message)) => draw_trust(frame, message, theme),
                None => {
                    let state = client.state();
                    let info = StatusInfo {
                        server: &info_server,
                        tls: choice.tls,
                        theme,
                    };
                    draw_main(frame, &state, &mut view, &info);
                }
            })
            .context("cannot draw")?;
        tokio::select! {
            event = events.recv(), if !closed => match event {
                Some(Event::Changed) => {}
                Some(Event::UntrustedCertificate { server, fingerprint, message }) => {
                    question = Some((server, fingerprint, message));
                }
                Some(Event::Closed { reason: None }) | None => return Ok(Outcome::Exit(None)),
                Some(Event::Closed { reason: Some(reason) }) => {
                    // A refused login goes back to the form; other failures stay on screen.
                    closed = true;
                    if question.is_none() && client.state().account().is_none() && parley_client::is_login_refusal(&reason) {
                        return Ok(Outcome::Form(reason));
                    }
                }
            },
            key = keys.recv() => {
                let Some(key) = key else { return Ok(Outcome::Exit(None)) };
                let Some(key) = key else { continue };
                if let Some((server, fingerprint, _)) = &question {
                    match key.code {
                        KeyCode::Char('y') | KeyCode::Char('Y') => {
                            let policy = policy.clone().context("a certificate question without TLS")?;
                            policy.remember(server, *fingerprint)?;
                            return Ok(Outcome::Reconnect);
                        }
                        KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                            return Ok(Outcome::Exit(Some("not connected: the certificate was not trusted".into())));
                        }
                        _ => {}
                    }
                    continue;
                }
                let before = view.input.clone();
                let request = view.handle_key(key, &mut client.state());
                let result = match request {
                    // An edit of the input: others may see that we type (`+typing`).
                    Request::None if view.input != before => {
                        client.act(Action::Typing(view.input.clone())).await
                    }
                    Request::None => Ok(()),
                    Request::Submit(text) => client.input(&text).await,
                    Request::LoadOlder => client.act(Action::History).await,
                    Request::Quit => {
                        if closed {
                            return Ok(Outcome::Exit(None));
                        }
                        client.quit(None).await;
                        Ok(())
                    }
                };
                match result {
                    Ok(()) => {}
                    Err(ClientError::Closed) => return Ok(Outcome::Exit(None)),
                    Err(error) => client.state().add_local(LineKind::Error, error.to_string()),
                }
            },
            _ = tick.tick() => {}
        }
    }
}
