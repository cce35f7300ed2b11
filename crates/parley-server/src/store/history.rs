//! What history, offline delivery and the audit trail need from a database, backend-agnostic like
//! [`super::AccountStore`]. Every call blocks; the server calls these from its history writer task
//! and from `spawn_blocking`, the CLI directly.

use super::StoreError;

/// One stored channel or private message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Server-assigned, unique, sent to clients as the `msgid` tag.
    pub msgid: String,
    /// Milliseconds since the Unix epoch, sent as the `time` tag.
    pub time_ms: i64,
    /// The history key: a casefolded channel name, or `dm:<a>|<b>` for a private conversation
    /// between two parties (casefolded account names, or `~nick` for guests), sorted.
    pub target: String,
    /// `PRIVMSG` or `NOTICE`.
    pub kind: String,
    /// `nick!user@host` of the sender.
    pub source: String,
    /// The sender's account, if logged in.
    pub account: Option<String>,
    /// The target as it went over the wire: the channel name or the recipient's nick.
    pub to: String,
    pub text: String,
}

/// A point in a conversation, as CHATHISTORY names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Time(i64),
    MsgId(String),
}

/// Which slice of a conversation to fetch; results are always returned oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryQuery {
    /// The newest messages, optionally only those after a bound.
    Latest(Option<Bound>),
    Before(Bound),
    After(Bound),
    Around(Bound),
    Between(Bound, Bound),
}

/// One row of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub time_ms: i64,
    /// What happened: `login`, `login_failed`, `register`, `password_change`, `kick`, `ban`, ...
    pub action: String,
    /// Who did it (an account or nick), if anyone.
    pub actor: Option<String>,
    /// Whom or what it was done to.
    pub target: Option<String>,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since_ms: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub limit: usize,
}

/// A conversation with recent activity, for CHATHISTORY TARGETS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetActivity {
    pub target: String,
    pub latest_ms: i64,
}

/// Everything one group commit writes: messages, offline-delivery marks, audit rows.
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub messages: Vec<StoredMessage>,
    /// (casefolded account, msgid) of private messages to deliver at that account's next login.
    pub offline: Vec<(String, String)>,
    pub audit: Vec<AuditEvent>,
    pub state: Vec<super::state::StateChange>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.offline.is_empty()
            && self.audit.is_empty()
            && self.state.is_empty()
    }
}

pub trait HistoryStore: Send + Sync {
    /// Write a batch in one transaction: all of it is stored, or none of it.
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError>;
    /// Up to `limit` messages of one conversation, oldest first.
    fn query(
        &self,
        target: &str,
        query: &HistoryQuery,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// Conversations among `targets` (history keys) with messages between two times, newest first.
    fn targets(
        &self,
        targets: &[String],
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<TargetActivity>, StoreError>;
    /// Private-message history keys that involve `party` (see [`StoredMessage::target`]).
    fn conversations_of(&self, party: &str) -> Result<Vec<String>, StoreError>;
    /// Remove and return up to `limit` messages waiting for `account` (casefolded), oldest first.
    fn take_offline(&self, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError>;
    /// Delete messages older than `older_than_ms` and beyond `max_rows` per conversation.
    fn prune(
        &self,
        older_than_ms: Option<i64>,
        max_rows: Option<usize>,
    ) -> Result<usize, StoreError>;
    fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}
