//! What clients without `chghost` see when a user's username or host changes
//! (ircv3.net/specs/extensions/chghost, "Fallback when the chghost capability has not been
//! negotiated"): the user seems to reconnect, a QUIT from the old mask, then in every shared
//! channel a JOIN from the new mask and a MODE giving back its prefixes, so their member lists
//! keep the right mask and status. It lives with the world because it reads channels, members
//! and capabilities all under the one lock. The checks of a new username and host are here too,
//! so the CHGHOST handler and a node applying another's request check alike.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::world::{ClientId, World};
use crate::outbound::Outbound;
use crate::relay::{line, notify, wire};

/// ISUPPORT `HOSTLEN`: the longest host CHGHOST may give.
pub const HOSTLEN: usize = 64;

/// USER's username characters (`~` only in front, where ircds mark an unverified ident).
pub fn valid_username(username: &str, max: usize) -> bool {
    let rest = username.strip_prefix('~').unwrap_or(username);
    !rest.is_empty()
        && username.len() <= max
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Hostname characters (with `:` for IPv6 and `/` for cloaks such as `user/name`); a leading
/// letter or digit, so the host can never start a trailing parameter or look like an option.
pub fn valid_host(host: &str) -> bool {
    host.len() <= HOSTLEN
        && host
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '/'))
}

/// A username and host change made to a user of this node, what is left to deliver.
pub struct HostChanged {
    pub nick: String,
    pub old_source: String,
    pub new_source: String,
    /// `:old CHGHOST user host`, for [`HostChanged::recipients`] with `chghost`.
    pub line: Vec<u8>,
    /// The user itself, its neighbours and its `extended-monitor` watchers.
    pub recipients: super::MemberList,
}

impl World {
    /// Give user `id` (of this node) a new username and host: the fallback lines and, for a
    /// user without `chghost`, the 396 telling it its new host, are pushed at once (through
    /// `push`); the CHGHOST line is left to the caller, who announces it. None when there is no
    /// such user or nothing changes.
    pub fn change_host(
        &mut self,
        id: ClientId,
        username: &str,
        host: &str,
        server: &str,
        mut push: impl FnMut(&Arc<Outbound>, &[u8]),
    ) -> Option<HostChanged> {
        let user = self.users.get_mut(&id)?;
        if user.username == username && user.host == host {
            return None;
        }
        let old_source = user.source();
        if user.real_mask.is_none() {
            user.real_mask = Some(format!("{}@{}", user.username, user.host));
        }
        user.username = username.to_string();
        user.host = host.to_string();
        let nick = user.nick.clone();
        let new_source = user.source();
        let own = user.outbound.clone();
        // "servers MUST send the CHGHOST message to other clients who share channels with the
        // target client and who have enabled the chghost capability. Servers SHOULD also send
        // the CHGHOST message to the client whose own username or host changed, if that client
        // also supports the chghost capability."
        let line = line(Some(&old_source), "CHGHOST", &[username, host], None);
        let mut recipients = self.notify_recipients(id, notify::CHGHOST);
        Arc::make_mut(&mut recipients).push(own.clone());
        // "When the capability is not enabled for other clients who share channels with the
        // changed client, servers SHOULD send fallback messages to simulate the client
        // reconnecting": QUIT, JOIN and MODE, for this node's clients (the other nodes send
        // theirs when the event reaches them).
        for (outbound, lines) in self.host_change_fallback(id, &old_source, server) {
            push(&outbound, &lines);
        }
        if own.notify_caps() & notify::CHGHOST == 0 {
            // Without the cap the user still learns its new mask, as ircds tell it (396).
            let told = crate::relay::line(
                Some(server),
                "396",
                &[&nick, host],
                Some("is now your displayed host"),
            );
            push(&own, &told);
        }
        Some(HostChanged {
            nick,
            old_source,
            new_source,
            line,
            recipients,
        })
    }

    /// The fallback lines for this node's own clients that share a channel with user `id`
    /// (whose username and host are already the new ones) and lack `chghost`: one QUIT from
    /// `old_source`, then per shared channel a JOIN (extended for `extended-join` clients) and
    /// the MODE for its prefixes from `server`, and its AWAY for `away-notify` clients. Each recipient's lines come as one buffer, so
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
        // As after a real JOIN, away-notify clients learn the "new" user is away.
        if let Some(away) = &user.away {
            let away = line(Some(&new_source), "AWAY", &[], Some(away));
            for (outbound, bytes) in out.values_mut() {
                if outbound.notify_caps() & notify::AWAY_NOTIFY != 0 {
                    bytes.extend_from_slice(&away);
                }
            }
        }
        out.into_values().collect()
    }
}
