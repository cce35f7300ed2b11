//! The GUI's link to a chat: a [`Connection`] gives the state to draw, takes actions in order,
//! and hands over the client's events. [`Live`] wraps `parley_client::Client` on a tokio runtime
//! (egui's thread never awaits); [`Offline`] runs the same `State` without a socket, so the
//! whole window is tested by clicking and typing without a server.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use parley_client::{Action, Client, ClientConfig, ClientError, Event, LineKind, State};
use tokio::sync::mpsc;

/// A running chat as the UI sees it.
pub trait Connection {
    /// The chat state; hold the guard only while drawing one frame.
    fn state(&self) -> MutexGuard<'_, State>;
    /// Queues an action; it is applied after those queued before it. A refusal (not connected,
    /// no such buffer) shows up as an error line in the active buffer.
    fn send(&self, action: Action);
    /// The next event from the connection, if one is waiting.
    fn poll_event(&mut self) -> Option<Event>;
}

/// Starts connections: the real one, or a stand-in in tests.
pub trait Connector {
    fn connect(&self, config: ClientConfig) -> Result<Box<dyn Connection>, ClientError>;
}

/// A `parley_client::Client` driven from the UI thread.
pub struct Live {
    client: Client,
    actions: mpsc::UnboundedSender<Action>,
    events: std::sync::mpsc::Receiver<Event>,
}

impl Live {
    /// Starts the client on `runtime`; `wake` is called whenever there is something new to draw.
    pub fn start(
        config: ClientConfig,
        runtime: &tokio::runtime::Handle,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Live, ClientError> {
        let _entered = runtime.enter();
        let (client, mut client_events) = Client::start(config)?;
        client.state().record_new_lines(true);
        let (event_tx, events) = std::sync::mpsc::channel();
        let wake_events = wake.clone();
        runtime.spawn(async move {
            while let Some(event) = client_events.recv().await {
                if event_tx.send(event).is_err() {
                    break;
                }
                wake_events();
            }
        });
        // One task applies actions in the order they were typed.
        let (actions, mut queue) = mpsc::unbounded_channel::<Action>();
        let sender = client.clone();
        runtime.spawn(async move {
            while let Some(action) = queue.recv().await {
                match sender.act(action).await {
                    Ok(()) => {}
                    Err(ClientError::Closed) => break,
                    Err(error) => sender.state().add_local(LineKind::Error, error.to_string()),
                }
                wake();
            }
        });
        Ok(Live {
            client,
            actions,
            events,
        })
    }
}

impl Connection for Live {
    fn state(&self) -> MutexGuard<'_, State> {
        self.client.state()
    }

    fn send(&self, action: Action) {
        if self.actions.send(action).is_err() {
            self.client
                .state()
                .add_local(LineKind::Error, ClientError::Closed.to_string());
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }
}

/// Connects for real on a tokio runtime.
pub struct LiveConnector {
    pub runtime: tokio::runtime::Handle,
    pub wake: Arc<dyn Fn() + Send + Sync>,
}

impl Connector for LiveConnector {
    fn connect(&self, config: ClientConfig) -> Result<Box<dyn Connection>, ClientError> {
        Ok(Box::new(Live::start(
            config,
            &self.runtime,
            self.wake.clone(),
        )?))
    }
}

/// A chat without a socket: actions go through `State::act` and the lines it would send are
/// kept in `sent`; tests feed server lines with [`Offline::receive`].
pub struct Offline {
    state: Arc<Mutex<State>>,
    sent: Arc<Mutex<Vec<String>>>,
    events: Arc<Mutex<VecDeque<Event>>>,
}

/// The test's side of an [`Offline`] connection, kept after the UI has taken the connection.
#[derive(Clone)]
pub struct OfflineHandle {
    pub state: Arc<Mutex<State>>,
    pub sent: Arc<Mutex<Vec<String>>>,
    pub events: Arc<Mutex<VecDeque<Event>>>,
}

impl OfflineHandle {
    /// Applies lines as if the server had sent them, and queues a `Changed` event.
    pub fn receive(&self, lines: &[&str]) {
        let mut state = self.state.lock();
        for line in lines {
            let answer = state.handle_line(line);
            self.sent.lock().extend(answer);
        }
        self.events.lock().push_back(Event::Changed);
    }

    /// Takes the lines sent so far.
    pub fn take_sent(&self) -> Vec<String> {
        std::mem::take(&mut *self.sent.lock())
    }
}

impl Offline {
    pub fn new(state: State) -> (Offline, OfflineHandle) {
        let mut state = state;
        state.record_new_lines(true);
        let handle = OfflineHandle {
            state: Arc::new(Mutex::new(state)),
            sent: Arc::new(Mutex::new(Vec::new())),
            events: Arc::new(Mutex::new(VecDeque::new())),
        };
        (
            Offline {
                state: handle.state.clone(),
                sent: handle.sent.clone(),
                events: handle.events.clone(),
            },
            handle,
        )
    }
}

impl Connection for Offline {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    fn send(&self, action: Action) {
        let quit = matches!(action, Action::Quit(_));
        let mut state = self.state.lock();
        match state.act(action) {
            Ok(lines) => self.sent.lock().extend(lines),
            Err(error) => state.add_local(LineKind::Error, error.to_string()),
        }
        if quit {
            self.events.lock().push_back(Event::Closed { reason: None });
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.lock().pop_front()
    }
}

/// Hands out prepared [`Offline`] connections and records the configs asked for.
#[derive(Default)]
pub struct OfflineConnector {
    pub prepared: Mutex<VecDeque<Offline>>,
    pub configs: Arc<Mutex<Vec<ClientConfig>>>,
}

impl Connector for OfflineConnector {
    fn connect(&self, config: ClientConfig) -> Result<Box<dyn Connection>, ClientError> {
        self.configs.lock().push(config);
        match self.prepared.lock().pop_front() {
            Some(offline) => Ok(Box::new(offline)),
            None => Err(ClientError::Closed),
        }
    }
}
