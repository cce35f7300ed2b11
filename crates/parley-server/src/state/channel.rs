//! A channel (a "group"): members with their status, topic, modes, bans and pending invites.
//!
//! `snapshot` is the list of members' outbound buffers, changed on every join and part, so a
//! message can be fanned out by cloning one `Arc` under the world lock and walking it outside.
//! The NAMES list members see is kept too, grown by joins, so a join storm does not rebuild it
//! (a lookup and a format per member) for every joiner.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::clock::{millis, system_time};

use super::world::{ClientId, User};
use crate::outbound::Outbound;
use crate::store::{ChannelRecord, ListEntry, StoredTopic};

/// The members' outbound buffers, in join order. Changed in place (`Arc::make_mut`) on join and
/// part, unless a delivery still walks an older copy: a join then costs O(1), not a copy (and a
/// reference-count change) per member.
pub type MemberList = Arc<Vec<Arc<Outbound>>>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberStatus {
    pub op: bool,
    pub voice: bool,
}

impl MemberStatus {
    /// Prefix characters for NAMES/WHO: all of them with multi-prefix, else the highest.
    pub fn prefixes(&self, multi_prefix: bool) -> &'static str {
        match (self.op, self.voice, multi_prefix) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            (false, false, _) => "",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelModes {
    pub moderated: bool,
    pub no_external: bool,
    pub topic_ops_only: bool,
    pub invite_only: bool,
    /// `+s`: hidden from LIST, NAMES, WHOIS and WHO for non-members (see [`Channel::hidden_from`]).
    pub secret: bool,
    /// `+C`: no CTCP other than ACTION (see [`is_restricted_ctcp`]).
    pub no_ctcp: bool,
    pub key: Option<String>,
    pub limit: Option<usize>,
}

impl ChannelModes {
    /// The `+flags params` form used by RPL_CHANNELMODEIS. The key is shown only to members.
    pub fn describe(&self, show_key: bool) -> Vec<String> {
        let mut flags = String::from("+");
        let mut params = Vec::new();
        for (on, c) in [
            (self.no_ctcp, 'C'),
            (self.invite_only, 'i'),
            (self.moderated, 'm'),
            (self.no_external, 'n'),
            (self.secret, 's'),
            (self.topic_ops_only, 't'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if let Some(key) = &self.key {
            flags.push('k');
            params.push(if show_key { key.clone() } else { "*".into() });
        }
        if let Some(limit) = self.limit {
            flags.push('l');
            params.push(limit.to_string());
        }
        let mut out = vec![flags];
        out.extend(params);
        out
    }
}

#[derive(Debug, Clone)]
pub struct Topic {
    pub text: String,
    pub set_by: String,
    pub set_at: SystemTime,
}

#[derive(Debug, Clone)]
pub struct Ban {
    pub mask: String,
    pub set_by: String,
    pub set_at: SystemTime,
}

/// A pending INVITE: who sent it, and whether they were a channel operator when they did. Any
/// invite opens a `+i` channel, but only an operator's lets its holder past a ban (as `+I` and
/// `+e` are the operators' to set), so a member cannot bring back someone the operators banned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub by: String,
    pub by_operator: bool,
}

/// Pending invites below this many are never swept for users who left (see [`Channel::invite`]).
const STALE_INVITE_SWEEP_FROM: usize = 64;

/// The list modes a channel keeps, in CHANMODES order.
pub const LIST_MODES: [char; 4] = ['b', 'e', 'I', 'q'];

pub struct Channel {
    pub name: String,
    pub created: SystemTime,
    pub topic: Option<Topic>,
    pub modes: ChannelModes,
    pub bans: Vec<Ban>,
    /// `+e`: masks a ban does not apply to.
    pub excepts: Vec<Ban>,
    /// `+I`: masks that may join a `+i` channel without an invite.
    pub invite_exceptions: Vec<Ban>,
    /// `+q`: masks that may stay but not speak (unless voiced).
    pub quiets: Vec<Ban>,
    /// The owning account of a registered channel; registered channels persist and outlive
    /// their last member.
    pub owner: Option<String>,
    /// Casefolded accounts that get `+o` on join (kept for registered channels).
    pub op_accounts: Vec<String>,
    /// Member statuses. Whoever changes one calls [`Channel::names_changed`].
    pub members: HashMap<ClientId, MemberStatus>,
    /// Join order, so NAMES lists members the same way every time.
    pub order: Vec<ClientId>,
    /// Pending invites, used up by the join they let in.
    pub invited: HashMap<ClientId, Invite>,
    /// When this channel last got a new name (not only new case), for
    /// `limits.channel_rename_interval_secs`.
    pub renamed_at: Option<std::time::Instant>,
    /// Every member's session buffers (a user logged in from several devices has one per
    /// session, see `command::multiclient`), so a delivery reaches each device once.
    pub snapshot: MemberList,
    /// Who each entry of `snapshot` belongs to, in step with it: a member leaving takes all
    /// its sessions' entries, one session leaving only its own.
    owners: Vec<ClientId>,
    /// The NAMES list as members see it (`@op +voiced plain`, join order, space-separated),
    /// without and with `multi-prefix`: built on first use, appended to by joins, dropped by
    /// anything else that changes it (a part, a status or nick change).
    names: [Option<String>; 2],
}

impl Channel {
    pub fn new(name: &str) -> Self {
        Channel {
            name: name.to_string(),
            created: SystemTime::now(),
            topic: None,
            modes: ChannelModes {
                no_external: true,
                topic_ops_only: true,
                ..ChannelModes::default()
            },
            bans: Vec::new(),
            excepts: Vec::new(),
            invite_exceptions: Vec::new(),
            quiets: Vec::new(),
            owner: None,
            op_accounts: Vec::new(),
            members: HashMap::new(),
            order: Vec::new(),
            invited: HashMap::new(),
            renamed_at: None,
            snapshot: MemberList::default(),
            owners: Vec::new(),
            names: [None, None],
        }
    }

    /// Add `id` (shown as `nick`) with `status`, each of its `sessions` (a user logged in from
    /// several devices has several) getting the channel's lines; a member already in only has
    /// its status set.
    pub fn add_member(
        &mut self,
        id: ClientId,
        nick: &str,
        status: MemberStatus,
        sessions: &[Arc<Outbound>],
    ) {
        if self.members.insert(id, status).is_none() {
            self.order.push(id);
            let snapshot = Arc::make_mut(&mut self.snapshot);
            for outbound in sessions {
                snapshot.push(outbound.clone());
                self.owners.push(id);
            }
            for (names, multi_prefix) in self.names.iter_mut().zip([false, true]) {
                if let Some(names) = names {
                    if !names.is_empty() {
                        names.push(' ');
                    }
                    names.push_str(status.prefixes(multi_prefix));
                    names.push_str(nick);
                }
            }
        } else {
            self.names_changed();
        }
        self.invited.remove(&id);
    }

    pub fn remove_member(&mut self, id: ClientId) {
        if self.members.remove(&id).is_some() {
            if let Some(pos) = self.order.iter().position(|m| *m == id) {
                self.order.remove(pos);
            }
            let owners = &mut self.owners;
            let snapshot = Arc::make_mut(&mut self.snapshot);
            let mut keep = owners.iter().map(|owner| *owner != id);
            snapshot.retain(|_| keep.next().unwrap_or(true));
            owners.retain(|owner| *owner != id);
            self.names_changed();
        }
    }

    /// Another session of member `id` (a second device logging in): it gets the channel's
    /// lines from now on. Nothing if `id` is no member or the session is there already.
    pub fn add_session(&mut self, id: ClientId, outbound: &Arc<Outbound>) {
        if self.members.contains_key(&id) && !self.snapshot.iter().any(|o| Arc::ptr_eq(o, outbound))
        {
            Arc::make_mut(&mut self.snapshot).push(outbound.clone());
            self.owners.push(id);
        }
    }

    /// One session of a member went away; the member (and its other sessions) stay.
    pub fn remove_session(&mut self, outbound: &Arc<Outbound>) {
        if let Some(pos) = self.snapshot.iter().position(|o| Arc::ptr_eq(o, outbound)) {
            Arc::make_mut(&mut self.snapshot).remove(pos);
            self.owners.remove(pos);
        }
    }

    /// Forget the NAMES list; the next NAMES builds it again.
    pub fn names_changed(&mut self) {
        self.names = [None, None];
    }

    /// The NAMES list a member sees (with every prefix under `multi-prefix`), built from
    /// `users` if a join, part or change since the last NAMES dropped it.
    pub fn member_names(
        &mut self,
        users: &HashMap<ClientId, Box<User>>,
        multi_prefix: bool,
    ) -> &str {
        let Channel {
            names,
            order,
            members,
            ..
        } = self;
        names[usize::from(multi_prefix)].get_or_insert_with(|| {
            let mut list = String::new();
            for id in order.iter() {
                let (Some(user), Some(status)) = (users.get(id), members.get(id)) else {
                    continue;
                };
                if !list.is_empty() {
                    list.push(' ');
                }
                list.push_str(status.prefixes(multi_prefix));
                list.push_str(&user.nick);
            }
            list
        })
    }

    /// Record an invite for `id`. A member's invite never weakens an operator's that is
    /// already pending. Invites of users who left unused would pile up in a registered channel
    /// that never empties, so whenever the table reaches a power of two (from 64 on) the ones
    /// for users no longer `connected` are dropped: the cost is amortized, and the table stays
    /// no larger than twice the number of users invited who are still here.
    pub fn invite(&mut self, id: ClientId, invite: Invite, connected: impl Fn(ClientId) -> bool) {
        let len = self.invited.len();
        if len >= STALE_INVITE_SWEEP_FROM && len.is_power_of_two() {
            self.invited.retain(|id, _| connected(*id));
        }
        let pending = self.invited.entry(id).or_insert_with(|| invite.clone());
        if invite.by_operator && !pending.by_operator {
            *pending = invite;
        }
    }

    /// The buffers of the members a STATUSMSG `prefix` reaches: `@` operators, `+` voiced
    /// members and operators (`owners` and `snapshot` run in step).
    pub fn status_members(&self, prefix: char) -> MemberList {
        let reached = |s: &MemberStatus| match prefix {
            '@' => s.op,
            _ => s.op || s.voice,
        };
        let members = self
            .owners
            .iter()
            .zip(self.snapshot.iter())
            .filter(|(id, _)| self.members.get(id).is_some_and(reached))
            .map(|(_, out)| out.clone())
            .collect();
        Arc::new(members)
    }

    pub fn status(&self, id: ClientId) -> Option<MemberStatus> {
        self.members.get(&id).copied()
    }

    /// Whether LIST, NAMES, WHOIS and WHO act for `id` as if this channel were not there: it is
    /// secret (`+s`) and `id` not a member. `sees_secret` is for those allowed to look anyway
    /// (operators with the `channels` permission, see `Ctx::sees_secret_channels`).
    pub fn hidden_from(&self, id: ClientId, sees_secret: bool) -> bool {
        self.modes.secret && !sees_secret && !self.members.contains_key(&id)
    }

    /// The RPL_NAMREPLY symbol: `@` for a secret channel, `=` for a public one.
    pub fn names_symbol(&self) -> &'static str {
        if self.modes.secret {
            "@"
        } else {
            "="
        }
    }

    /// Whether `source` (`nick!user@host`, logged in as `account`) is banned: a ban matches and
    /// no exception does.
    pub fn is_banned(&self, source: &str, account: Option<&str>) -> bool {
        any_matches(&self.bans, source, account) && !any_matches(&self.excepts, source, account)
    }

    pub fn is_quieted(&self, source: &str, account: Option<&str>) -> bool {
        any_matches(&self.quiets, source, account)
    }

    /// Whether a mute extban (`+b $m:<mask>`) silences `source`: one matches and no exception
    /// does (plain or `$m:`), as ergo's `m:` bans.
    pub fn is_muted(&self, source: &str, account: Option<&str>) -> bool {
        let muted_by = |list: &[Ban]| {
            list.iter()
                .filter_map(|b| b.mask.strip_prefix(MUTE_PREFIX))
                .any(|inner| mask_matches(inner, source, account))
        };
        muted_by(&self.bans)
            && !muted_by(&self.excepts)
            && !any_matches(&self.excepts, source, account)
    }

    pub fn is_invite_exempt(&self, source: &str, account: Option<&str>) -> bool {
        any_matches(&self.invite_exceptions, source, account)
    }

    pub fn list(&self, mode: char) -> Option<&Vec<Ban>> {
        match mode {
            'b' => Some(&self.bans),
            'e' => Some(&self.excepts),
            'I' => Some(&self.invite_exceptions),
            'q' => Some(&self.quiets),
            _ => None,
        }
    }

    pub fn list_mut(&mut self, mode: char) -> Option<&mut Vec<Ban>> {
        match mode {
            'b' => Some(&mut self.bans),
            'e' => Some(&mut self.excepts),
            'I' => Some(&mut self.invite_exceptions),
            'q' => Some(&mut self.quiets),
            _ => None,
        }
    }

    pub fn is_registered(&self) -> bool {
        self.owner.is_some()
    }

    /// Whether this account gets `+o` when it joins.
    pub fn auto_op(&self, account: Option<&str>) -> bool {
        let Some(account) = account.map(parley_proto::casefold) else {
            return false;
        };
        self.owner.as_deref().map(parley_proto::casefold).as_deref() == Some(account.as_str())
            || self.op_accounts.contains(&account)
    }

    /// The stored form of a registered channel.
    pub fn record(&self) -> Option<ChannelRecord> {
        let owner = self.owner.clone()?;
        let mut flags = String::new();
        for (on, c) in [
            (self.modes.no_ctcp, 'C'),
            (self.modes.invite_only, 'i'),
            (self.modes.moderated, 'm'),
            (self.modes.no_external, 'n'),
            (self.modes.secret, 's'),
            (self.modes.topic_ops_only, 't'),
        ] {
            if on {
                flags.push(c);
            }
        }
        let mut lists = Vec::new();
        for mode in LIST_MODES {
            for entry in self.list(mode).into_iter().flatten() {
                lists.push(ListEntry {
                    mode,
                    mask: entry.mask.clone(),
                    set_by: entry.set_by.clone(),
                    set_at_ms: millis(entry.set_at),
                });
            }
        }
        Some(ChannelRecord {
            name: self.name.clone(),
            owner,
            created_ms: millis(self.created),
            topic: self.topic.as_ref().map(|t| StoredTopic {
                text: t.text.clone(),
                set_by: t.set_by.clone(),
                set_at_ms: millis(t.set_at),
            }),
            flags,
            key: self.modes.key.clone(),
            limit: self.modes.limit,
            lists,
            operators: self.op_accounts.clone(),
        })
    }

    /// A registered channel as it was stored, with no members yet.
    pub fn from_record(record: &ChannelRecord) -> Channel {
        let mut channel = Channel::new(&record.name);
        channel.created = system_time(record.created_ms);
        channel.owner = Some(record.owner.clone());
        channel.op_accounts = record.operators.clone();
        channel.topic = record.topic.as_ref().map(|t| Topic {
            text: t.text.clone(),
            set_by: t.set_by.clone(),
            set_at: system_time(t.set_at_ms),
        });
        channel.modes = ChannelModes {
            invite_only: record.flags.contains('i'),
            moderated: record.flags.contains('m'),
            no_external: record.flags.contains('n'),
            secret: record.flags.contains('s'),
            no_ctcp: record.flags.contains('C'),
            topic_ops_only: record.flags.contains('t'),
            key: record.key.clone(),
            limit: record.limit,
        };
        for entry in &record.lists {
            if let Some(list) = channel.list_mut(entry.mode) {
                list.push(Ban {
                    mask: entry.mask.clone(),
                    set_by: entry.set_by.clone(),
                    set_at: system_time(entry.set_at_ms),
                });
            }
        }
        channel
    }
}

/// The mute extban: `+b $m:<mask>` lets those it matches join and read, not speak.
pub const MUTE_PREFIX: &str = "$m:";

/// Whether a CTCP message is one `+C` refuses: any CTCP (a text starting with `\x01`) but ACTION,
/// which is how `/me` is sent.
pub fn is_restricted_ctcp(text: &str) -> bool {
    let Some(ctcp) = text.strip_prefix('\u{1}') else {
        return false;
    };
    let verb = ctcp.split([' ', '\u{1}']).next().unwrap_or("");
    !verb.eq_ignore_ascii_case("ACTION")
}

/// Whether a list entry matches: a `nick!user@host` glob, or `$a:account` (extban) for someone
/// logged in as that account (`$a` alone: anyone logged in). A mute (`$m:`) never matches here:
/// it is no ban on joining (see [`Channel::is_muted`]).
pub fn mask_matches(mask: &str, source: &str, account: Option<&str>) -> bool {
    if mask.starts_with("$m") {
        return false;
    }
    match mask.strip_prefix("$a") {
        Some("") => account.is_some(),
        Some(rest) => match (rest.strip_prefix(':'), account) {
            (Some(wanted), Some(account)) => parley_proto::wildcard_match(wanted, account),
            _ => false,
        },
        None => parley_proto::wildcard_match(mask, source),
    }
}

fn any_matches(list: &[Ban], source: &str, account: Option<&str>) -> bool {
    list.iter().any(|b| mask_matches(&b.mask, source, account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutes_silence_without_banning() {
        let mut channel = Channel::new("#room");
        let entry = |mask: &str| Ban {
            mask: mask.into(),
            set_by: "op".into(),
            set_at: SystemTime::UNIX_EPOCH,
        };
        channel.bans.push(entry("$m:troll!*@*"));
        channel.bans.push(entry("$m:$a:spammer"));
        assert!(channel.is_muted("troll!t@h", None));
        assert!(!channel.is_banned("troll!t@h", None), "a mute is no ban");
        assert!(channel.is_muted("x!y@z", Some("spammer")));
        assert!(!channel.is_muted("x!y@z", Some("other")));
        channel.excepts.push(entry("$a:spammer"));
        assert!(!channel.is_muted("x!y@z", Some("spammer")), "+e lifts it");
    }

    #[test]
    fn only_ctcp_other_than_action_is_restricted() {
        assert!(is_restricted_ctcp("\u{1}VERSION\u{1}"));
        assert!(is_restricted_ctcp("\u{1}PING 123\u{1}"));
        assert!(is_restricted_ctcp("\u{1}DCC SEND x"));
        assert!(!is_restricted_ctcp("\u{1}ACTION waves\u{1}"));
        assert!(!is_restricted_ctcp("\u{1}action\u{1}"));
        assert!(!is_restricted_ctcp("hello \u{1}VERSION\u{1}"));
    }

    #[test]
    fn extbans_match_accounts() {
        assert!(mask_matches("$a:alice", "x!y@z", Some("Alice")));
        assert!(!mask_matches("$a:alice", "alice!y@z", None));
        assert!(mask_matches("$a", "x!y@z", Some("bob")));
        assert!(!mask_matches("$a", "x!y@z", None));
        assert!(mask_matches("*!*@10.0.0.*", "x!y@10.0.0.7", None));
    }

    #[test]
    fn exceptions_override_bans_and_records_round_trip() {
        let mut channel = Channel::new("#Room");
        let entry = |mask: &str| Ban {
            mask: mask.into(),
            set_by: "op".into(),
            set_at: SystemTime::UNIX_EPOCH,
        };
        channel.bans.push(entry("*!*@10.0.0.*"));
        channel.excepts.push(entry("$a:trusted"));
        assert!(channel.is_banned("x!y@10.0.0.1", None));
        assert!(!channel.is_banned("x!y@10.0.0.1", Some("trusted")));
        assert!(
            channel.record().is_none(),
            "unregistered channels are not stored"
        );
        channel.owner = Some("Owner".into());
        channel.op_accounts.push("helper".into());
        channel.modes.invite_only = true;
        channel.modes.secret = true;
        channel.modes.no_ctcp = true;
        channel.modes.key = Some("k".into());
        let record = channel.record().expect("registered");
        assert_eq!(record.flags, "Cinst");
        let back = Channel::from_record(&record);
        assert!(back.modes.secret, "a registered channel stays secret");
        assert_eq!(back.record(), Some(record));
        assert!(back.auto_op(Some("owner")));
        assert!(back.auto_op(Some("HELPER")));
        assert!(!back.auto_op(None));
    }

    #[test]
    fn invites_of_users_who_left_are_swept() {
        let mut channel = Channel::new("#room");
        let invite = || Invite {
            by: "op!o@h".into(),
            by_operator: false,
        };
        // 10,000 guests invited one after another, each gone before the next arrives: the
        // table must not keep them all.
        for n in 0..10_000u64 {
            channel.invite(ClientId(n), invite(), |id| id == ClientId(n));
        }
        assert!(
            channel.invited.len() <= 2 * STALE_INVITE_SWEEP_FROM,
            "{} invites kept",
            channel.invited.len()
        );
        assert!(channel.invited.contains_key(&ClientId(9_999)));
        // Users still connected keep their invites through a sweep.
        let mut channel = Channel::new("#room");
        for n in 0..200u64 {
            channel.invite(ClientId(n), invite(), |_| true);
        }
        assert_eq!(channel.invited.len(), 200);
    }
}
