//! Parley's client library, shared by the terminal client, the GUI and the bench tool, and free
//! of any UI: [`Client`] runs one connection on tokio (TLS through `parley-trust`, CAP, SASL
//! PLAIN or REGISTER, PING, reconnect with backoff and rejoin) and reports [`Event`]s; the chat
//! itself lives in [`State`], a synchronous model a UI renders; [`input::parse`] turns typed
//! text into [`Action`]s. Only the connection task does I/O, so the logic is tested without one.

mod client;
pub mod input;
pub mod paths;
mod state;

pub use client::{
    is_loopback, trust_policy, Backoff, Client, ClientConfig, ClientError, Event, Transport,
};
pub use input::{Action, InputError};
pub use parley_proto::casefold;
pub use parley_trust::{Fingerprint, TrustError, TrustPolicy};
pub use state::{
    colour_hash, colour_index, is_login_refusal, iso_time, login_refusal, mentions, Auth, Buffer,
    BufferKind, ConnectionState, Line, LineKind, Member, State, ACCOUNT_REQUIRED, HISTORY_BATCH,
    LOGIN_REFUSED, MAX_LINES_PER_BUFFER, SERVER_BUFFER, WANTED_CAPS,
};
