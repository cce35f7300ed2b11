//! A channel (a "group"): members with their status, topic, modes, bans and pending invites.
//!
//! `snapshot` is the list of members' outbound buffers, rebuilt on every join and part, so a
//! message can be fanned out by cloning one `Arc` under the world lock and walking it outside.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use super::world::ClientId;
use crate::outbound::Outbound;

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
    pub key: Option<String>,
    pub limit: Option<usize>,
}

impl ChannelModes {
    /// The `+flags params` form used by RPL_CHANNELMODEIS. The key is shown only to members.
    pub fn describe(&self, show_key: bool) -> Vec<String> {
        let mut flags = String::from("+");
        let mut params = Vec::new();
        for (on, c) in [
            (self.invite_only, 'i'),
            (self.moderated, 'm'),
            (self.no_external, 'n'),
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

pub struct Channel {
    pub name: String,
    pub created: SystemTime,
    pub topic: Option<Topic>,
    pub modes: ChannelModes,
    pub bans: Vec<Ban>,
    pub members: HashMap<ClientId, MemberStatus>,
    /// Join order, so NAMES lists members the same way every time.
    pub order: Vec<ClientId>,
    pub invited: HashSet<ClientId>,
    pub snapshot: Arc<[Arc<Outbound>]>,
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
            members: HashMap::new(),
            order: Vec::new(),
            invited: HashSet::new(),
            snapshot: Arc::from(Vec::new()),
        }
    }

    pub fn add_member(&mut self, id: ClientId, status: MemberStatus, outbound: Arc<Outbound>) {
        if self.members.insert(id, status).is_none() {
            self.order.push(id);
            let mut members: Vec<Arc<Outbound>> = self.snapshot.iter().cloned().collect();
            members.push(outbound);
            self.snapshot = Arc::from(members);
        }
        self.invited.remove(&id);
    }

    pub fn remove_member(&mut self, id: ClientId) {
        if self.members.remove(&id).is_some() {
            if let Some(pos) = self.order.iter().position(|m| *m == id) {
                self.order.remove(pos);
                let mut members: Vec<Arc<Outbound>> = self.snapshot.iter().cloned().collect();
                members.remove(pos);
                self.snapshot = Arc::from(members);
            }
        }
    }

    pub fn status(&self, id: ClientId) -> Option<MemberStatus> {
        self.members.get(&id).copied()
    }

    /// Whether `source` (`nick!user@host`) matches any ban mask.
    pub fn is_banned(&self, source: &str) -> bool {
        self.bans
            .iter()
            .any(|b| parley_proto::wildcard_match(&b.mask, source))
    }
}
