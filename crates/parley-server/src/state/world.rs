//! Users and the nick index. A user exists from the moment a connection is accepted (so its nick
//! can be reserved before registration completes); `registered` says when it is visible to others.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use parley_proto::casefold;
use tokio::time::Instant;

use super::channel::Channel;
use crate::outbound::Outbound;

/// A connection's identity for its whole life; nicks change, this does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

pub struct User {
    pub id: ClientId,
    /// The buffer of the connection this user registered with, or after it left, of one of
    /// its other sessions: where a line about the user goes when one session is enough.
    pub outbound: Arc<Outbound>,
    /// Every live session's buffer on this node, `outbound` included: one account logged in
    /// from several devices is one user with several sessions (`command::multiclient`), and
    /// what is meant for the user goes to each. May be empty for a user kept present without
    /// a connection (always-on); a remote user's holds its one sink.
    pub sessions: Vec<Arc<Outbound>>,
    /// Empty until the client sends a valid NICK.
    pub nick: String,
    pub username: String,
    pub realname: String,
    pub host: String,
    pub registered: bool,
    /// The account this user is logged in to.
    pub account: Option<String>,
    /// Connected over TLS.
    pub secure: bool,
    pub ip: std::net::IpAddr,
    /// Server operator status (user mode `+o`).
    pub oper: Option<OperClass>,
    /// Receives WALLOPS (user mode `+w`).
    pub wallops: bool,
    pub invisible: bool,
    /// Marked a bot (user mode `+B`, IRCv3 bot-mode): WHOIS 335, WHO flag `B`, the `bot` tag.
    pub bot: bool,
    pub away: Option<String>,
    /// Casefolded names of the channels this user is in.
    pub channels: HashSet<String>,
    pub signon: SystemTime,
    pub last_spoke: Instant,
    /// For a user on another node of the cluster: its cluster-wide id. Such a user's outbound
    /// buffer accepts nothing; its own node delivers to it.
    pub remote: Option<String>,
    /// `user@host` as registered, once CHGHOST gave the user another mask: bans and K-lines
    /// set on the real mask still match it.
    pub real_mask: Option<String>,
}

impl User {
    /// `nick!user@host`, the source of everything this user does.
    pub fn source(&self) -> String {
        format!("{}!{}@{}", self.nick, self.username, self.host)
    }

    /// `nick!user@host` as registered, when CHGHOST changed the shown one.
    pub fn real_source(&self) -> Option<String> {
        self.real_mask
            .as_ref()
            .map(|mask| format!("{}!{mask}", self.nick))
    }

    /// Whether a ban `mask` covers this user, by its shown mask or the real one under a
    /// CHGHOST (a new host must not be a way around a ban).
    pub fn matches_mask(&self, mask: &str) -> bool {
        let account = self.account.as_deref();
        super::mask_matches(mask, &self.source(), account)
            || self
                .real_source()
                .is_some_and(|real| super::mask_matches(mask, &real, account))
    }
}

pub struct WhowasEntry {
    pub nick: String,
    pub username: String,
    pub host: String,
    pub realname: String,
    pub when: SystemTime,
}

impl WhowasEntry {
    pub fn of(user: &User) -> Self {
        WhowasEntry {
            nick: user.nick.clone(),
            username: user.username.clone(),
            host: user.host.clone(),
            realname: user.realname.clone(),
            when: SystemTime::now(),
        }
    }
}

/// How many users are registered, invisible (`+i`) and operators. LUSERS reports these on every
/// registration, and counting them over all users made each registration cost O(users) under the
/// world lock; so they are kept in step where the flags change and by [`World::remove_user`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UserCounts {
    pub registered: usize,
    pub invisible: usize,
    pub opers: usize,
}

#[derive(Default)]
pub struct World {
    pub users: HashMap<ClientId, Box<User>>,
    pub counts: UserCounts,
    /// Casefolded nick -> owner, including nicks reserved by clients still registering.
    pub nicks: HashMap<String, ClientId>,
    /// Casefolded channel name -> channel.
    pub channels: HashMap<String, Channel>,
    pub whowas: VecDeque<WhowasEntry>,
    /// The most users registered at once since start (LUSERS 265/266).
    pub max_registered: usize,
    /// The most of this server's own users registered at once since start (LUSERS 265); in a
    /// cluster, `max_registered` counts the whole network's.
    pub max_local: usize,
    /// Users on other cluster nodes: cluster-wide id -> local id.
    pub remote: HashMap<String, ClientId>,
    /// Who MONITORs which nick (see `monitor.rs`).
    pub monitors: super::Monitors,
}

impl World {
    /// The buffers of this node's own sessions logged in to `account` (casefolded) whose wire
    /// capabilities include `bit`, but `except`: where an account's own state (a read marker)
    /// goes when one of its sessions changes it.
    pub fn sessions_of(
        &self,
        account: &str,
        bit: u16,
        except: Option<ClientId>,
    ) -> Vec<Arc<Outbound>> {
        self.users
            .values()
            .filter(|u| u.registered && u.remote.is_none() && Some(u.id) != except)
            .filter(|u| u.account.as_deref().is_some_and(|a| casefold(a) == account))
            .flat_map(|u| u.sessions.iter())
            .filter(|o| o.wire_caps() & bit != 0)
            .cloned()
            .collect()
    }

    /// The other sessions of user `id` than `except` (the one acting): they see what it does
    /// to the user (a nick change, a join) as any member would.
    pub fn siblings(&self, id: ClientId, except: &Arc<Outbound>) -> Vec<Arc<Outbound>> {
        self.users
            .get(&id)
            .map(|u| {
                u.sessions
                    .iter()
                    .filter(|o| !Arc::ptr_eq(o, except))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every session buffer of user `id` on this node (a private message's recipients).
    pub fn buffers_of(&self, id: ClientId) -> Vec<Arc<Outbound>> {
        self.users
            .get(&id)
            .map(|u| u.sessions.clone())
            .unwrap_or_default()
    }

    /// The user with this id, if any (the table holds them boxed).
    pub fn user(&self, id: ClientId) -> Option<&User> {
        self.users.get(&id).map(|u| &**u)
    }

    pub fn user_by_nick(&self, nick: &str) -> Option<&User> {
        let id = self.nicks.get(&casefold(nick))?;
        self.user(*id).filter(|u| u.registered)
    }

    pub fn registered_count(&self) -> usize {
        self.counts.registered
    }

    /// Take a user out of the user table, keeping [`World::counts`] in step.
    pub fn remove_user(&mut self, id: ClientId) -> Option<Box<User>> {
        let user = self.users.remove(&id)?;
        self.counts.registered -= usize::from(user.registered);
        self.counts.invisible -= usize::from(user.invisible);
        self.counts.opers -= usize::from(user.oper.is_some());
        Some(user)
    }

    /// Every registered user who shares a channel with `id`, once each, excluding `id` itself.
    /// Walks the channels' member lists (no lookup per member), and only someone in several
    /// channels pays for removing duplicates: a QUIT from a big channel is O(members).
    pub fn neighbours(&self, id: ClientId) -> Vec<Arc<Outbound>> {
        let Some(user) = self.users.get(&id) else {
            return Vec::new();
        };
        // The user's own sessions are not its neighbours: a departing session's siblings
        // must not see its QUIT, and each handler tells them of its own events itself.
        let own = |other: &Arc<Outbound>| {
            Arc::ptr_eq(other, &user.outbound)
                || user.sessions.iter().any(|s| Arc::ptr_eq(s, other))
        };
        let mut lists = user
            .channels
            .iter()
            .filter_map(|key| self.channels.get(key))
            .map(|channel| channel.snapshot.as_slice());
        let (Some(first), second) = (lists.next(), lists.next()) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<Outbound>> =
            first.iter().filter(|other| !own(other)).cloned().collect();
        if let Some(second) = second {
            let mut seen: HashSet<*const Outbound> = out.iter().map(Arc::as_ptr).collect();
            for other in std::iter::once(second).chain(lists).flatten() {
                if !own(other) && seen.insert(Arc::as_ptr(other)) {
                    out.push(other.clone());
                }
            }
        }
        out
    }

    /// How many registered channels `account` owns (for
    /// `limits.registered_channels_per_account`). A walk over the channels: it is asked only
    /// when a channel is created or handed over, never per message.
    pub fn channels_owned_by(&self, account: &str) -> usize {
        let account = parley_proto::casefold(account);
        self.channels
            .values()
            .filter(|c| {
                c.owner
                    .as_deref()
                    .is_some_and(|o| parley_proto::casefold(o) == account)
            })
            .count()
    }

    /// True when `a` and `b` are on at least one common channel.
    pub fn share_channel(&self, a: ClientId, b: ClientId) -> bool {
        match (self.users.get(&a), self.users.get(&b)) {
            (Some(ua), Some(ub)) => ua.channels.iter().any(|c| ub.channels.contains(c)),
            _ => false,
        }
    }

    /// Remember a nick that is going away, for WHOWAS; the log is bounded by `limit`.
    pub fn push_whowas(&mut self, entry: WhowasEntry, limit: usize) {
        if limit == 0 {
            return;
        }
        while self.whowas.len() >= limit {
            self.whowas.pop_front();
        }
        self.whowas.push_back(entry);
    }

    /// The buffers of this node's operators of channel `key` who asked for `invite-notify`,
    /// but not `except` (the inviter and the invited, who hear of it anyway).
    pub fn invite_notified(&self, key: &str, except: &[ClientId]) -> Vec<Arc<Outbound>> {
        let Some(channel) = self.channels.get(key) else {
            return Vec::new();
        };
        channel
            .members
            .iter()
            .filter(|(id, status)| status.op && !except.contains(id))
            .filter_map(|(id, _)| self.users.get(id))
            .filter(|u| u.remote.is_none())
            .filter(|u| u.outbound.notify_caps() & crate::relay::notify::INVITE_NOTIFY != 0)
            .map(|u| u.outbound.clone())
            .collect()
    }

    /// Remove `id` from one channel, dropping the channel when it empties.
    /// Give the channel under `old_key` the name `new_name` (draft/channel-rename): it moves to
    /// the new name's key with all its state, and its members' channel sets follow. Returns the
    /// new key; `None` if there is no such channel or another already holds the new key.
    pub fn rename_channel(&mut self, old_key: &str, new_name: &str) -> Option<String> {
        let new_key = casefold(new_name);
        if new_key != old_key && self.channels.contains_key(&new_key) {
            return None;
        }
        let mut channel = self.channels.remove(old_key)?;
        channel.name = new_name.to_string();
        if new_key != old_key {
            channel.renamed_at = Some(std::time::Instant::now());
        }
        for id in &channel.order {
            if let Some(user) = self.users.get_mut(id) {
                user.channels.remove(old_key);
                user.channels.insert(new_key.clone());
            }
        }
        self.channels.insert(new_key.clone(), channel);
        Some(new_key)
    }

    pub fn leave_channel(&mut self, id: ClientId, key: &str) {
        if let Some(channel) = self.channels.get_mut(key) {
            channel.remove_member(id);
            if channel.members.is_empty() && !channel.is_registered() {
                self.channels.remove(key);
            }
        }
        if let Some(user) = self.users.get_mut(&id) {
            user.channels.remove(key);
        }
    }
}
/// A server operator's class: admins may do everything, moderators what the config allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperClass {
    Admin,
    Moderator,
}

impl OperClass {
    pub fn name(self) -> &'static str {
        match self {
            OperClass::Admin => "admin",
            OperClass::Moderator => "moderator",
        }
    }
}
