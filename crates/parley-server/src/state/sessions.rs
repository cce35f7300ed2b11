//! Several connections, one user: a connection that logs in to an account whose user is
//! already here becomes another session of that user (`accounts.multiclient`). The user keeps
//! one id, nick and set of channels; each session adds its buffer to the user's and to the
//! member snapshot of each of its channels, so fan-out reaches every device with the bytes
//! its own capabilities ask for, and leaving takes only that session's buffer away.

use std::sync::Arc;

use parley_proto::casefold;

use super::world::{ClientId, World};
use crate::outbound::Outbound;

impl World {
    /// This node's registered user logged in to `account`, if one is present: the user a new
    /// login of that account joins as another session. Asked once per login, never per
    /// message, so a walk over the users is fine.
    pub fn present_user_of(&self, account: &str) -> Option<ClientId> {
        let account = casefold(account);
        self.users
            .values()
            .filter(|u| u.registered && u.remote.is_none())
            .find(|u| u.account.as_deref().is_some_and(|a| casefold(a) == account))
            .map(|u| u.id)
    }

    /// The cluster-wide id of a registered user of another node logged in to `account`: where
    /// a login of that account on this node goes as another session (`connection::bridged`).
    pub fn remote_user_of(&self, account: &str) -> Option<String> {
        let account = casefold(account);
        self.users
            .values()
            .filter(|u| u.registered && u.remote.is_some())
            .find(|u| u.account.as_deref().is_some_and(|a| casefold(a) == account))
            .and_then(|u| u.remote.clone())
    }

    /// How many live sessions user `id` has on this node.
    pub fn session_count(&self, id: ClientId) -> usize {
        self.users.get(&id).map_or(0, |u| u.sessions.len())
    }

    /// Make connection `conn` (still registering, with `outbound`) another session of the
    /// present user `user`: the connection's own placeholder user and whatever nick it had
    /// reserved go away, and `outbound` gets every line meant for the user from now on (its
    /// channels' included). Returns the nick reserved by `conn` that was released (to give
    /// back to the cluster), or `None` if `user` is gone (then nothing changed).
    pub fn attach_session(
        &mut self,
        user: ClientId,
        conn: ClientId,
        outbound: &Arc<Outbound>,
    ) -> Option<Option<String>> {
        if conn == user || !self.users.contains_key(&user) {
            return None;
        }
        let mut released = None;
        if let Some(placeholder) = self.remove_user(conn) {
            let folded = casefold(&placeholder.nick);
            if !placeholder.nick.is_empty() && self.nicks.get(&folded) == Some(&conn) {
                self.nicks.remove(&folded);
                released = Some(folded);
            }
        }
        self.monitors.clear(conn);
        let target = self.users.get_mut(&user)?;
        if !target.sessions.iter().any(|s| Arc::ptr_eq(s, outbound)) {
            target.sessions.push(outbound.clone());
        }
        if target.sessions.len() == 1 {
            // A user kept present without a connection gets one again: lines about it go here.
            target.outbound = outbound.clone();
        }
        let channels: Vec<String> = target.channels.iter().cloned().collect();
        for key in channels {
            if let Some(channel) = self.channels.get_mut(&key) {
                channel.add_session(user, outbound);
            }
        }
        Some(released)
    }

    /// Take one session (`outbound`) away from user `id`, which stays with its other sessions;
    /// returns how many remain. With none left the caller decides: the usual QUIT, or (for an
    /// account kept present) nothing.
    pub fn detach_session(&mut self, id: ClientId, outbound: &Arc<Outbound>) -> usize {
        let Some(user) = self.users.get_mut(&id) else {
            return 0;
        };
        user.sessions.retain(|s| !Arc::ptr_eq(s, outbound));
        if Arc::ptr_eq(&user.outbound, outbound) {
            if let Some(next) = user.sessions.first() {
                user.outbound = next.clone();
            }
        }
        let remaining = user.sessions.len();
        // Even the last: a user kept present without a connection has no buffer in its
        // channels until a session attaches again.
        let channels: Vec<String> = user.channels.iter().cloned().collect();
        for key in channels {
            if let Some(channel) = self.channels.get_mut(&key) {
                channel.remove_session(outbound);
            }
        }
        remaining
    }
}
