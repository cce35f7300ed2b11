//! parley-bench: a load generator for IRC servers, built to measure Parley against other servers
//! and against a bare relay (the `ceiling`) on the same machine with the same client code.
//!
//! Every scenario checks correctness as it measures (each message reaches each intended recipient
//! exactly once, in order per sender), because a fast server that drops lines is not fast. Every
//! run is bounded in time and count, and talks only to loopback addresses.

pub mod ceiling;
pub mod client;
pub mod cluster;
pub mod payload;
pub mod report;
pub mod scenario;
pub mod servers;
