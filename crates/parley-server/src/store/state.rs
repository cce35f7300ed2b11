//! Server state that outlives a restart besides accounts and history: registered channels (with
//! their topic, modes, lists and operators) and server bans. Read once at start; changes are
//! written by the history writer in its next batch, like everything else.

use serde::{Deserialize, Serialize};

use super::StoreError;

/// One entry of a channel list mode (`b` bans, `e` ban exceptions, `I` invite exceptions, `q` quiets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub mode: char,
    pub mask: String,
    pub set_by: String,
    pub set_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTopic {
    pub text: String,
    pub set_by: String,
    pub set_at_ms: i64,
}

/// A registered channel as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    pub name: String,
    /// The owning account.
    pub owner: String,
    pub created_ms: i64,
    pub topic: Option<StoredTopic>,
    /// Flag modes, e.g. `"int"`.
    pub flags: String,
    pub key: Option<String>,
    pub limit: Option<usize>,
    pub lists: Vec<ListEntry>,
    /// Accounts that get `+o` when they join.
    pub operators: Vec<String>,
}

/// A server-wide ban: `kline` on a `nick!user@host` mask or `$a:account`, `dline` on an IP or CIDR.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServerBan {
    pub kind: String,
    pub mask: String,
    pub reason: String,
    pub set_by: String,
    pub set_at_ms: i64,
    /// `None` never expires.
    pub expires_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum StateChange {
    SaveChannel(Box<ChannelRecord>),
    /// Unregister: the casefolded name.
    DropChannel(String),
    /// A channel renamed (draft/channel-rename): its stored messages move from the old
    /// casefolded name to the new one, shown under the new name, and the old registration row
    /// goes (a `SaveChannel` under the new name follows for a registered channel).
    RenameChannel {
        old_key: String,
        new_key: String,
        new_name: String,
    },
    AddServerBan(ServerBan),
    /// Lift: kind and mask.
    RemoveServerBan(String, String),
}

pub trait StateStore: Send + Sync {
    fn channels(&self) -> Result<Vec<ChannelRecord>, StoreError>;
    /// Server bans that have not expired at `now_ms`.
    fn server_bans(&self, now_ms: i64) -> Result<Vec<ServerBan>, StoreError>;
}

/// A channel record as stored: one JSON text, the same in every backend.
pub(super) fn encode_channel(record: &ChannelRecord) -> Result<String, StoreError> {
    serde_json::to_string(record)
        .map_err(|e| StoreError::Backend(format!("cannot encode channel: {e}")))
}

/// Stored `(casefolded name, JSON)` rows as records. One damaged row should not cost every other
/// channel, so it is logged by name and skipped.
pub(super) fn decode_channels(
    rows: impl IntoIterator<Item = (String, String)>,
) -> Vec<ChannelRecord> {
    rows.into_iter()
        .filter_map(|(name, json)| match serde_json::from_str(&json) {
            Ok(record) => Some(record),
            Err(err) => {
                tracing::error!(channel = %name, %err, "skipping an unreadable registered channel");
                None
            }
        })
        .collect()
}
