//! `[operators]`: server operators by account, in two classes (admins and moderators), the
//! permissions a moderator may be given, who may broadcast to everyone, and the operator blocks
//! of `OPER <name> <password>` (`[[operators.opers]]`), whose passwords are kept only as
//! Argon2id hashes: the config file is read by more people than the password should be.

use serde::{Deserialize, Serialize};

/// Who may send `/broadcast` (`PRIVMSG $*`) to everyone connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BroadcastPolicy {
    Everyone,
    Operators,
}

/// The operator class an operator block gives: the same two classes as accounts get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperBlockClass {
    Admin,
    Moderator,
}

fn moderator() -> OperBlockClass {
    OperBlockClass::Moderator
}

/// One `[[operators.opers]]` block: who may `OPER <name> <password>`, from where, and as what.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperBlock {
    /// The name given to OPER.
    pub name: String,
    /// The password's Argon2id PHC string, as `parleyd oper hash` prints it.
    pub password_hash: String,
    /// The class it gives; moderator unless said otherwise, so a block is least power by default.
    #[serde(default = "moderator")]
    pub class: OperBlockClass,
    /// Only over TLS (or the web client, which is TLS).
    #[serde(default)]
    pub require_tls: bool,
    /// `user@host` masks (`*` and `?`) or networks (`10.0.0.0/8`) one of which the client must
    /// match; empty for anywhere.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The account the client must be logged in to; empty for none.
    #[serde(default)]
    pub account: String,
}

/// By hand, so a debug print never shows the hash (it can be attacked offline).
impl std::fmt::Debug for OperBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperBlock")
            .field("name", &self.name)
            .field("password_hash", &super::HIDDEN)
            .field("class", &self.class)
            .field("require_tls", &self.require_tls)
            .field("hosts", &self.hosts)
            .field("account", &self.account)
            .finish()
    }
}

/// `[operators]`: server operators, by account, in two classes, and by operator block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorsConfig {
    /// Accounts with every operator permission.
    pub admins: Vec<String>,
    /// Accounts with the permissions in `moderator_permissions`.
    pub moderators: Vec<String>,
    /// What moderators may do: kill, kline, dline, suspend, wallops, notice, broadcast, channels,
    /// chghost.
    pub moderator_permissions: Vec<String>,
    /// Operators get their status when they log in, without OPER.
    pub auto_oper: bool,
    /// Who may broadcast to everyone.
    pub broadcast: BroadcastPolicy,
    /// With `broadcast = "everyone"`, seconds a non-operator must wait between broadcasts.
    pub broadcast_interval_secs: u64,
    /// Operator blocks for `OPER <name> <password>`.
    pub opers: Vec<OperBlock>,
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
    "chghost",
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
            opers: Vec::new(),
        }
    }
}

/// Why `hash` is not an Argon2id PHC string this server can check, or `None` if it is one.
/// Never quotes the value: a clear password put there by mistake must not reach a log.
pub fn argon2id_problem(hash: &str) -> Option<&'static str> {
    use argon2::password_hash::phc::PasswordHash;
    if !hash.starts_with("$argon2id$") {
        return Some(
            "it is not an Argon2id hash (a PHC string starting with $argon2id$); never put a \
             clear password here: run `parleyd oper hash`, type the password, and paste what it \
             prints",
        );
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return Some(
            "it starts like an Argon2id hash but does not parse as one; paste the whole line \
             `parleyd oper hash` printed",
        );
    };
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Some(
            "the hash has no salt or no output; paste the whole line `parleyd oper hash` printed",
        );
    }
    if argon2::Params::try_from(&parsed).is_err() {
        return Some("its Argon2 parameters (m, t, p) are out of range; make a new one with `parleyd oper hash`");
    }
    None
}
