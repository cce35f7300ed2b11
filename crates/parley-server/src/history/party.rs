//! Who a private conversation is between: each side's [`party`] (an account, or `~nick` for a
//! guest) and the conversation's key made of both ([`dm_key`]), so both sides read and write
//! the same history, and a guest's messages never land in an account's.

/// The key of a private conversation: its format belongs to the store (see
/// `store::history::dm_key`), and handlers reach it here with the rest of history.
pub use crate::store::history::dm_key;

/// Who someone is in private history: their account, or `~nick` for a guest.
pub fn party(account: Option<&str>, nick: &str) -> String {
    match account {
        Some(account) => parley_proto::casefold(account),
        None => format!("~{}", parley_proto::casefold(nick)),
    }
}
