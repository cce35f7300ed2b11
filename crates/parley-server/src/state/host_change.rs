//! What clients without `chghost` see when a user's username or host changes
//! (ircv3.net/specs/extensions/chghost, "Fallback when the chghost capability has not been
//! negotiated"): the user seems to reconnect, a QUIT from the old mask, then in every shared
//! channel a JOIN from the new mask and a MODE giving back its prefixes, so their member lists
//! keep the right mask and status. It lives with the world because it reads channels, members
//! and capabilities all under the one lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::world::{ClientId, World};
use crate::outbound::Outbound;
use crate::relay::{line, notify, wire};

impl World {
    /// The fallback lines for this node's own clients that share a channel with user `id`
    /// (whose username and host are already the new ones) and lack `chghost`: one QUIT from
    /// `old_source`, then per shared channel a JOIN (extended for `extended-join` clients) and
    /// the MODE for its prefixes from `server`. Each recipient's lines come as one buffer, so
    /// they arrive together.
    pub fn host_change_fallback(
        &self,
        id: ClientId,
        old_source: &str,
        server: &str,
    ) -> Vec<(Arc<Outbound>, Vec<u8>)> {
        let Some(user) = self.users.get(&id) else {
            return Vec::new();
        };
        let new_source = user.source();
        let quit = line(Some(old_source), "QUIT", &[], Some("Changing host"));
        let mut channels: Vec<&String> = user.channels.iter().collect();
        channels.sort();
        let mut out: BTreeMap<ClientId, (Arc<Outbound>, Vec<u8>)> = BTreeMap::new();
        for key in channels {
            let Some(channel) = self.channels.get(key) else {
                continue;
            };
            let status = channel.members.get(&id).copied().unwrap_or_default();
            let mode = match (status.op, status.voice) {
                (true, true) => Some(("+ov", vec![user.nick.as_str(), user.nick.as_str()])),
                (true, false) => Some(("+o", vec![user.nick.as_str()])),
                (false, true) => Some(("+v", vec![user.nick.as_str()])),
                (false, false) => None,
            };
            for member in channel.members.keys() {
                if *member == id {
                    continue;
                }
                // Users of other nodes hear of it from their own node.
                let Some(other) = self.users.get(member).filter(|u| u.remote.is_none()) else {
                    continue;
                };
                if other.outbound.notify_caps() & notify::CHGHOST != 0 {
                    continue;
                }
                let (_, bytes) = out
                    .entry(*member)
                    .or_insert_with(|| (other.outbound.clone(), quit.clone()));
                let join = if other.outbound.wire_caps() & wire::EXTENDED_JOIN != 0 {
                    let account = user.account.as_deref().unwrap_or("*");
                    line(
                        Some(&new_source),
                        "JOIN",
                        &[&channel.name, account],
                        Some(&user.realname),
                    )
                } else {
                    line(Some(&new_source), "JOIN", &[&channel.name], None)
                };
                bytes.extend_from_slice(&join);
                if let Some((modes, nicks)) = &mode {
                    let mut middle = vec![channel.name.as_str(), *modes];
                    middle.extend(nicks.iter().copied());
                    bytes.extend_from_slice(&line(Some(server), "MODE", &middle, None));
                }
            }
        }
        out.into_values().collect()
    }
}
