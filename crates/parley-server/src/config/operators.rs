//! `[operators]`: server operators by account, in two classes (admins and moderators), the
//! permissions a moderator may be given, and who may broadcast to everyone.

use serde::{Deserialize, Serialize};

/// Who may send `/broadcast` (`PRIVMSG $*`) to everyone connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BroadcastPolicy {
    Everyone,
    Operators,
}

/// `[operators]`: server operators, by account, in two classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorsConfig {
    /// Accounts with every operator permission.
    pub admins: Vec<String>,
    /// Accounts with the permissions in `moderator_permissions`.
    pub moderators: Vec<String>,
    /// What moderators may do: kill, kline, dline, suspend, wallops, notice, broadcast, channels.
    pub moderator_permissions: Vec<String>,
    /// Operators get their status when they log in, without OPER.
    pub auto_oper: bool,
    /// Who may broadcast to everyone.
    pub broadcast: BroadcastPolicy,
    /// With `broadcast = "everyone"`, seconds a non-operator must wait between broadcasts.
    pub broadcast_interval_secs: u64,
}

/// Every operator permission, for validation and for admins.
pub const OPERATOR_PERMISSIONS: &[&str] = &[
    "kill",
    "kline",
    "dline",
    "rehash",
    "suspend",
    "wallops",
    "notice",
    "broadcast",
    "channels",
];

impl Default for OperatorsConfig {
    fn default() -> Self {
        Self {
            admins: Vec::new(),
            moderators: Vec::new(),
            moderator_permissions: ["kill", "kline", "wallops", "notice", "broadcast"]
                .map(str::to_owned)
                .to_vec(),
            auto_oper: true,
            broadcast: BroadcastPolicy::Operators,
            broadcast_interval_secs: 60,
        }
    }
}
