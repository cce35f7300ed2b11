//! Parley's client library, shared by the terminal client (`parley-tui`) and the desktop client
//! (`parley-gui`), and free of any UI. Only [`Client`] does I/O, so the rest is tested without a
//! socket. The pieces, from what a person types to the wire and back:
//!
//! - [`input`]: typed text -> an [`Action`], a pure parser, so every front end accepts the same
//!   commands and gives the same messages for mistakes.
//! - [`State`] (`state/`): the chat as a UI renders it, pure and synchronous. It applies the
//!   server's lines and the user's actions and answers with the lines to send: `state/mod.rs`
//!   holds the model (buffers, lines, members), `state/negotiation.rs` CAP and the login until
//!   the welcome (SASL SCRAM-SHA-256, else PLAIN, else PASS; or REGISTER),
//!   `state/incoming.rs` what the server sends, `state/actions.rs` what the user does.
//! - [`Client`] (`client.rs`): one tokio task owns the socket (TLS through `parley-trust`),
//!   feeds each line to the shared `State`, writes its answers, PINGs an idle line and
//!   reconnects with backoff (the state then rejoins); the UI holds the handle and receives
//!   [`Event`]s.
//! - [`paths`]: where the clients keep their settings and the shared `known_servers` file.
//!
//! The IRC line itself (parsing, SASL chunking, SCRAM) comes from `parley-proto`.

mod client;
pub mod e2e;
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
    BufferKind, ConnectionState, E2eStatus, Line, LineKind, Member, State, ACCOUNT_REQUIRED,
    HISTORY_BATCH, LOGIN_REFUSED, MAX_LINES_PER_BUFFER, SERVER_BUFFER, WANTED_CAPS,
};
pub use state::{
    SearchHit, SearchQuery, SearchResults, SearchStatus, MAX_SEARCH_HITS, MAX_SEARCH_TEXT,
    SEARCH_CAPS, SEARCH_PAGE,
};
