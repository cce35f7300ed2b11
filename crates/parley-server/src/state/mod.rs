//! The in-memory world: connected users, the nick index, channels and the WHOWAS log.
//!
//! All of it sits behind one short-held lock in the server's shared state; handlers take it, decide,
//! serialize once, and push bytes to recipients' outbound buffers without ever awaiting under it.
//! Channel messages walk a member snapshot taken under the lock, so fan-out runs without it.

mod channel;
mod host_change;
mod monitor;
mod sessions;
mod world;

pub use channel::{
    is_restricted_ctcp, mask_matches, Ban, Channel, ChannelModes, Invite, MemberList, MemberStatus,
    Topic, LIST_MODES, MUTE_PREFIX,
};
pub use host_change::{valid_host, valid_username, HOSTLEN};
pub use monitor::{chunked, Monitors};
pub use world::{ClientId, OperClass, User, WhowasEntry, World};
