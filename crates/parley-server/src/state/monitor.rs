//! MONITOR's index (ircv3.net/specs/extensions/monitor): who watches which nick, kept both ways
//! so that a nick coming online, leaving or changing costs O(its watchers) and a watcher leaving
//! costs O(its list), never a walk over all users. Only this node's users watch; users of other
//! nodes are watched through the replica, whose arrivals and departures come through the same
//! [`World`] calls as local ones.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parley_proto::{casefold, numeric};

use super::world::{ClientId, World};
use crate::outbound::Outbound;
use crate::relay::{line, notify};

/// Room left for a list of targets in one numeric: the 512-byte line minus the source, the
/// numeric, the client's nick and the line end, with a margin.
const LIST_BYTES: usize = 400;

#[derive(Default)]
pub struct Monitors {
    /// Casefolded nick -> the users watching it.
    watchers: HashMap<String, HashSet<ClientId>>,
    /// A watcher's targets as it first wrote them, in the order added (with the casefolded
    /// form beside each).
    lists: HashMap<ClientId, Vec<(String, String)>>,
}

impl Monitors {
    /// Add `target` to `id`'s list; false if it is there already (the spec: "Targets already
    /// in the list MUST NOT be added again").
    pub fn add(&mut self, id: ClientId, target: &str) -> bool {
        let folded = casefold(target);
        let list = self.lists.entry(id).or_default();
        if list.iter().any(|(f, _)| *f == folded) {
            return false;
        }
        list.push((folded.clone(), target.to_string()));
        self.watchers.entry(folded).or_default().insert(id);
        true
    }

    /// Take `target` off `id`'s list (nothing if it was not on it).
    pub fn remove(&mut self, id: ClientId, target: &str) {
        let folded = casefold(target);
        if let Some(list) = self.lists.get_mut(&id) {
            list.retain(|(f, _)| *f != folded);
            if list.is_empty() {
                self.lists.remove(&id);
            }
        }
        self.unwatch(id, &folded);
    }

    /// Empty `id`'s list (MONITOR C, or the watcher leaving).
    pub fn clear(&mut self, id: ClientId) {
        for (folded, _) in self.lists.remove(&id).unwrap_or_default() {
            self.unwatch(id, &folded);
        }
    }

    fn unwatch(&mut self, id: ClientId, folded: &str) {
        if let Some(set) = self.watchers.get_mut(folded) {
            set.remove(&id);
            if set.is_empty() {
                self.watchers.remove(folded);
            }
        }
    }

    /// `id`'s targets as it wrote them, in the order added.
    pub fn list(&self, id: ClientId) -> impl Iterator<Item = &str> {
        self.lists
            .get(&id)
            .into_iter()
            .flatten()
            .map(|(_, shown)| shown.as_str())
    }

    /// Whether `target` (any case) is on `id`'s list.
    pub fn contains(&self, id: ClientId, target: &str) -> bool {
        self.watchers
            .get(&casefold(target))
            .is_some_and(|set| set.contains(&id))
    }

    pub fn count(&self, id: ClientId) -> usize {
        self.lists.get(&id).map_or(0, Vec::len)
    }

    /// Who watches the nick (casefolded).
    pub fn watchers_of(&self, folded: &str) -> impl Iterator<Item = ClientId> + '_ {
        self.watchers.get(folded).into_iter().flatten().copied()
    }
}

/// Comma-separated lists of `items`, each short enough for one numeric.
pub fn chunked<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for item in items {
        if !current.is_empty() && current.len() + 1 + item.len() > LIST_BYTES {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl World {
    /// The buffers of the users watching `nick`, this node's only (a remote user's buffer is
    /// the cluster's sink, which takes nothing).
    fn watcher_buffers(&self, nick: &str) -> Vec<Arc<Outbound>> {
        self.monitors
            .watchers_of(&casefold(nick))
            .filter_map(|id| self.users.get(&id))
            .filter(|u| u.remote.is_none())
            .flat_map(|u| u.sessions.iter().cloned())
            .collect()
    }

    /// Tell those who monitor `nick` that it came online as `source` (`nick!user@host`): one
    /// `730 *` line for all of them (the spec: the server "may send "*" instead of the nick ...
    /// This makes it possible to send the exact same message to all clients monitoring a
    /// certain target").
    pub fn monitor_online(&self, server: &str, nick: &str, source: &str) {
        let watchers = self.watcher_buffers(nick);
        if !watchers.is_empty() {
            let bytes = line(Some(server), numeric::RPL_MONONLINE, &["*"], Some(source));
            for watcher in watchers {
                let _ = watcher.push(&bytes);
            }
        }
    }

    /// Tell those who monitor `nick` that it left (`731 *`).
    pub fn monitor_offline(&self, server: &str, nick: &str) {
        let watchers = self.watcher_buffers(nick);
        if !watchers.is_empty() {
            let bytes = line(Some(server), numeric::RPL_MONOFFLINE, &["*"], Some(nick));
            for watcher in watchers {
                let _ = watcher.push(&bytes);
            }
        }
    }

    /// A nick change, as MONITOR sees it: the old nick went offline and the new one came
    /// online. A change of case only is the same nick, still online: nothing to tell.
    pub fn monitor_renamed(&self, server: &str, old: &str, new: &str, source: &str) {
        if casefold(old) != casefold(new) {
            self.monitor_offline(server, old);
            self.monitor_online(server, new, source);
        }
    }

    /// Who hears of a change to user `id` that only clients with the notification `cap` get
    /// (AWAY, SETNAME, ACCOUNT): its neighbours, and with `extended-monitor` those who monitor
    /// its nick. The line is filtered by `cap` as it is sent.
    pub fn notify_recipients(&self, id: ClientId, cap: u8) -> super::MemberList {
        let mut recipients = self.neighbours(id);
        let extras = self.monitor_extras(id, &recipients, cap);
        recipients.extend(extras);
        Arc::new(recipients)
    }

    /// `extended-monitor`: those who monitor user `id`'s nick, asked for `extended-monitor` and
    /// the notification `cap` ([`notify`] bit), and are not among `already` (its neighbours,
    /// who hear of it anyway) nor the user itself. Empty at once when nobody monitors the nick.
    pub fn monitor_extras(
        &self,
        id: ClientId,
        already: &[Arc<Outbound>],
        cap: u8,
    ) -> Vec<Arc<Outbound>> {
        let Some(user) = self.users.get(&id) else {
            return Vec::new();
        };
        let wanted = cap | notify::EXTENDED_MONITOR;
        let mut extras: Vec<Arc<Outbound>> = self
            .watcher_buffers(&user.nick)
            .into_iter()
            .filter(|w| w.notify_caps() & wanted == wanted)
            .filter(|w| !user.sessions.iter().any(|own| Arc::ptr_eq(w, own)))
            .collect();
        if !extras.is_empty() {
            let seen: HashSet<*const Outbound> = already.iter().map(Arc::as_ptr).collect();
            extras.retain(|w| !seen.contains(&Arc::as_ptr(w)));
        }
        extras
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_listed_once_whatever_its_case_and_the_index_follows() {
        let mut monitors = Monitors::default();
        let (a, b) = (ClientId(1), ClientId(2));
        assert!(monitors.add(a, "Bob"));
        assert!(!monitors.add(a, "BOB"), "already on the list");
        assert!(monitors.add(b, "bob"));
        assert_eq!(monitors.list(a).collect::<Vec<_>>(), ["Bob"]);
        let mut watching: Vec<_> = monitors.watchers_of("bob").collect();
        watching.sort();
        assert_eq!(watching, [a, b]);
        monitors.remove(a, "bOb");
        assert_eq!(monitors.watchers_of("bob").collect::<Vec<_>>(), [b]);
        monitors.clear(b);
        assert_eq!(monitors.watchers_of("bob").count(), 0);
        assert!(monitors.watchers.is_empty() && monitors.lists.is_empty());
    }

    #[test]
    fn long_lists_are_split_under_the_line_limit() {
        let names: Vec<String> = (0..100).map(|i| format!("nick{i:03}")).collect();
        let chunks = chunked(names.iter().map(String::as_str));
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.len() <= LIST_BYTES));
        assert_eq!(chunks.join(","), names.join(","));
    }
}
