//! `parley-gui`, Parley's desktop client, as a library so its tests can drive the window
//! without a display: `app` draws (egui), `model` computes what is shown from
//! `parley_client::State`, `composer` is the input's Tab completion and history, `connection`
//! links the two to a live client or an offline stand-in, `e2e` what a private
//! conversation shows about end-to-end encryption, `settings` and `notify` are the user's
//! preferences and desktop notifications, `theme` the two looks and their contrast. All chat
//! logic stays in `parley-client`.

pub mod app;
pub mod composer;
pub mod connection;
pub mod e2e;
pub mod model;
pub mod notify;
pub mod search;
pub mod settings;
pub mod theme;

pub use app::{App, LoginForm, Options, Phase, ReplyTo};
