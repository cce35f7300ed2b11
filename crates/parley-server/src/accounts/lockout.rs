//! The memory of failed logins behind the lockout: per casefolded account name, and per address.
//! An account is locked after `max_failures` failures; an address only when its failures name
//! `address_max_accounts` different accounts (a spray), so one user's typos never lock out their
//! neighbours. Loopback is never locked as an address: every local user, and every client of a
//! reverse proxy on this machine, shares it. An IPv6 address counts as its whole /64, the block
//! one subscriber gets. Guesses in flight count as failures until they end, so no burst of
//! connections gets more checked than the limits allow. A lock remembers the wall-clock time it
//! began, so an admin's later "unlocked at" stamp in the store can lift it (see `Accounts`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Expired throttle entries are swept after this many recorded failures.
const PRUNE_EVERY: u32 = 256;

#[derive(Debug, Clone, Copy)]
pub(super) struct LockoutPolicy {
    pub max_failures: u32,
    /// Different account names an address's failures must name before it is locked.
    pub address_max_accounts: u32,
    pub window: Duration,
    pub lockout: Duration,
}

/// What an address's failed logins are counted under: an IPv4 address itself, or an IPv6
/// address's /64. Its text form (`203.0.113.9`, `2001:db8:1:2::/64`) is what `parleyd users
/// unlock --address` records in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The key `ip`'s failures count under; `None` for loopback (127.0.0.0/8, ::1, and both as
    /// IPv4-mapped or compatible IPv6), which is never locked out as an address.
    pub fn of(ip: IpAddr) -> Option<Self> {
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            return None;
        }
        Some(Self(match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !(u128::from(u64::MAX));
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        }))
    }

    /// Whether the key is an IPv6 /64 rather than one address.
    pub fn is_network(&self) -> bool {
        self.0.is_ipv6()
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// A lockout in force: until when (for the wait) and since when on the wall clock (compared with
/// an admin's unlock stamp, which another process wrote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lock {
    until: Instant,
    since_ms: i64,
}

impl Lock {
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.until
            .checked_duration_since(now)
            .filter(|wait| !wait.is_zero())
    }
}

/// Why a guess may not be taken up now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    Locked(Locked),
    /// The failures and guesses in flight already reach a limit: wait for one to end.
    Full,
}

/// The lockouts in force for a name and an address, and since when (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Locked {
    /// The longer of the two waits.
    pub wait: Duration,
    pub account_since_ms: Option<i64>,
    pub address: Option<(AddressKey, i64)>,
}

/// The outcome of recording one failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FailureOutcome {
    /// The larger of the account's failures and the address's failed names, within the window:
    /// what the delay before the answer grows with.
    pub failures: u32,
    pub account_locked: bool,
    /// The address (its /64 for IPv6) locked by this failure.
    pub address_locked: Option<AddressKey>,
}

/// How a guess that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    Succeeded,
    /// Never checked to the end (the client went away, the store failed): not a guess after all.
    Cancelled,
}

/// What the bounded maps need of an entry to choose one to forget.
trait Tracked: Default {
    fn expired(&self, now: Instant, policy: &LockoutPolicy) -> bool;
    fn last_seen(&self) -> Option<Instant>;
}

/// Recent failures of one account, and its guesses in flight.
#[derive(Debug, Default)]
struct AccountFailures {
    /// Failure times within the window, oldest first; never more than `max_failures`.
    recent: VecDeque<Instant>,
    /// Guesses taken up and not yet ended.
    pending: u32,
    lock: Option<Lock>,
    last_seen: Option<Instant>,
}

impl AccountFailures {
    fn recent_count(&self, now: Instant, policy: &LockoutPolicy) -> u32 {
        let recent = self
            .recent
            .iter()
            .filter(|&&at| now.saturating_duration_since(at) < policy.window)
            .count();
        u32::try_from(recent).unwrap_or(u32::MAX)
    }

    /// Failures within the window plus guesses in flight: what the next guess would make.
    fn full(&self, now: Instant, policy: &LockoutPolicy) -> bool {
        self.recent_count(now, policy).saturating_add(self.pending) >= policy.max_failures
    }

    /// Count a failure; returns the failures within the window and whether this one locked.
    fn record(&mut self, now: Instant, now_ms: i64, policy: &LockoutPolicy) -> (u32, bool) {
        self.last_seen = Some(now);
        while self
            .recent
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= policy.window)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let count = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        if count >= policy.max_failures {
            self.recent.clear();
            self.lock = Some(Lock {
                until: now + policy.lockout,
                since_ms: now_ms,
            });
            return (count, true);
        }
        (count, false)
    }
}

impl Tracked for AccountFailures {
    fn expired(&self, now: Instant, policy: &LockoutPolicy) -> bool {
        self.pending == 0
            && self.lock.and_then(|lock| lock.wait(now)).is_none()
            && self
                .recent
                .back()
                .is_none_or(|&at| now.saturating_duration_since(at) >= policy.window)
    }

    fn last_seen(&self) -> Option<Instant> {
        self.last_seen
    }
}

/// Recent failures from one address, by the (casefolded) name they were for, and its guesses in
/// flight by name. Both hold fewer than `address_max_accounts` names: a guess for a further name
/// waits, and the failure that reaches the limit locks the address and clears them.
#[derive(Debug, Default)]
struct AddressFailures {
    /// The last failure for each name within the window.
    names: HashMap<String, Instant>,
    pending: HashMap<String, u32>,
    lock: Option<Lock>,
    last_seen: Option<Instant>,
}

impl AddressFailures {
    fn forget_old(&mut self, now: Instant, policy: &LockoutPolicy) {
        self.names
            .retain(|_, &mut at| now.saturating_duration_since(at) < policy.window);
    }

    /// Different names failed within the window or in flight, the name of the next guess aside:
    /// a guess for a name already counted adds nothing (its account's own limit holds it).
    fn full_for(&self, folded: &str, now: Instant, policy: &LockoutPolicy) -> bool {
        let counted = |name: &str| {
            self.pending.contains_key(name)
                || self
                    .names
                    .get(name)
                    .is_some_and(|&at| now.saturating_duration_since(at) < policy.window)
        };
        if counted(folded) {
            return false;
        }
        let failed = self
            .names
            .iter()
            .filter(|(name, &at)| {
                now.saturating_duration_since(at) < policy.window
                    && !self.pending.contains_key(name.as_str())
            })
            .count();
        let distinct = u32::try_from(failed + self.pending.len()).unwrap_or(u32::MAX);
        distinct >= policy.address_max_accounts
    }

    fn record(
        &mut self,
        folded: &str,
        now: Instant,
        now_ms: i64,
        policy: &LockoutPolicy,
    ) -> (u32, bool) {
        self.last_seen = Some(now);
        self.forget_old(now, policy);
        self.names.insert(folded.to_owned(), now);
        let count = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        if count >= policy.address_max_accounts {
            self.names.clear();
            self.lock = Some(Lock {
                until: now + policy.lockout,
                since_ms: now_ms,
            });
            return (count, true);
        }
        (count, false)
    }

    fn end_pending(&mut self, folded: &str) {
        if let Some(count) = self.pending.get_mut(folded) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.pending.remove(folded);
            }
        }
    }
}

impl Tracked for AddressFailures {
    fn expired(&self, now: Instant, policy: &LockoutPolicy) -> bool {
        self.pending.is_empty()
            && self.lock.and_then(|lock| lock.wait(now)).is_none()
            && self
                .names
                .values()
                .all(|&at| now.saturating_duration_since(at) >= policy.window)
    }

    fn last_seen(&self) -> Option<Instant> {
        self.last_seen
    }
}

/// Failed-login memory, per casefolded account name and per address. Bounded: expired entries are
/// swept regularly, and when a map is full the entry seen longest ago makes room.
#[derive(Debug)]
pub(super) struct Throttle {
    policy: LockoutPolicy,
    capacity: usize,
    accounts: HashMap<String, AccountFailures>,
    addresses: HashMap<AddressKey, AddressFailures>,
    failures_since_prune: u32,
}

impl Throttle {
    pub fn new(policy: LockoutPolicy, capacity: usize) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            accounts: HashMap::new(),
            addresses: HashMap::new(),
            failures_since_prune: 0,
        }
    }

    /// The lockouts in force for the account or the address, if any.
    pub fn locked(&self, folded: &str, ip: IpAddr, now: Instant) -> Option<Locked> {
        let account = self
            .accounts
            .get(folded)
            .and_then(|f| f.lock)
            .filter(|lock| lock.wait(now).is_some());
        let address = AddressKey::of(ip).and_then(|key| {
            let lock = self.addresses.get(&key)?.lock?;
            lock.wait(now).is_some().then_some((key, lock))
        });
        let wait = account
            .and_then(|lock| lock.wait(now))
            .max(address.and_then(|(_, lock)| lock.wait(now)))?;
        Some(Locked {
            wait,
            account_since_ms: account.map(|lock| lock.since_ms),
            address: address.map(|(key, lock)| (key, lock.since_ms)),
        })
    }

    /// Lift the account's and the address's lockouts that began at or before the admin's unlock
    /// stamps (ms since the Unix epoch). Returns whether any was lifted.
    pub fn lift(
        &mut self,
        folded: &str,
        account_unlocked_ms: Option<i64>,
        address: Option<(AddressKey, i64)>,
    ) -> bool {
        let mut lifted = false;
        if let (Some(stamp), Some(failures)) = (account_unlocked_ms, self.accounts.get_mut(folded))
        {
            if failures.lock.is_some_and(|lock| lock.since_ms <= stamp) {
                failures.lock = None;
                failures.recent.clear();
                lifted = true;
            }
        }
        if let Some((key, stamp)) = address {
            if let Some(failures) = self.addresses.get_mut(&key) {
                if failures.lock.is_some_and(|lock| lock.since_ms <= stamp) {
                    failures.lock = None;
                    failures.names.clear();
                    lifted = true;
                }
            }
        }
        lifted
    }

    /// Take up a guess for the account and the address: refused while either is locked out, and
    /// [`Refusal::Full`] while the account's failures and guesses in flight already make
    /// `max_failures`, or the address's already name `address_max_accounts` other accounts.
    pub fn begin(&mut self, folded: &str, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if let Some(locked) = self.locked(folded, ip, now) {
            return Err(Refusal::Locked(locked));
        }
        let policy = self.policy;
        let key = AddressKey::of(ip);
        let account_full = self
            .accounts
            .get(folded)
            .is_some_and(|f| f.full(now, &policy));
        let address_full = key
            .and_then(|key| self.addresses.get(&key))
            .is_some_and(|f| f.full_for(folded, now, &policy));
        if account_full || address_full {
            return Err(Refusal::Full);
        }
        let capacity = self.capacity;
        let account = entry(
            &mut self.accounts,
            folded.to_owned(),
            now,
            &policy,
            capacity,
        );
        account.pending += 1;
        account.last_seen = Some(now);
        if let Some(key) = key {
            let address = entry(&mut self.addresses, key, now, &policy, capacity);
            *address.pending.entry(folded.to_owned()).or_default() += 1;
            address.last_seen = Some(now);
        }
        Ok(())
    }

    /// End a guess that did not fail. A success forgets the account's failures, and the
    /// address's failures for that name (a typo put right is no spray), unless the name or the
    /// address was locked out meanwhile: then it returns the lockouts.
    pub fn end(&mut self, folded: &str, ip: IpAddr, now: Instant, how: Ending) -> Option<Locked> {
        self.end_pending(folded, ip);
        if how == Ending::Cancelled {
            return None;
        }
        let locked = self.locked(folded, ip, now);
        if locked.is_none() {
            self.forget(folded, ip);
        }
        locked
    }

    /// Forget the failures of `folded`, for the account and from the address.
    pub fn forget(&mut self, folded: &str, ip: IpAddr) {
        if let Some(failures) = self.accounts.get_mut(folded) {
            failures.recent.clear();
            if failures.pending == 0 && failures.lock.is_none() {
                self.accounts.remove(folded);
            }
        }
        if let Some(failures) = AddressKey::of(ip).and_then(|key| self.addresses.get_mut(&key)) {
            failures.names.remove(folded);
        }
    }

    fn end_pending(&mut self, folded: &str, ip: IpAddr) {
        // An entry evicted meanwhile (the maps are bounded) comes back with nothing pending.
        if let Some(failures) = self.accounts.get_mut(folded) {
            failures.pending = failures.pending.saturating_sub(1);
        }
        if let Some(failures) = AddressKey::of(ip).and_then(|key| self.addresses.get_mut(&key)) {
            failures.end_pending(folded);
        }
    }

    /// End a guess as a failure, and count it; `now_ms` is the wall clock, for a lock it begins.
    pub fn failed(
        &mut self,
        folded: &str,
        ip: IpAddr,
        now: Instant,
        now_ms: i64,
    ) -> FailureOutcome {
        self.end_pending(folded, ip);
        self.failures_since_prune += 1;
        if self.failures_since_prune >= PRUNE_EVERY {
            self.failures_since_prune = 0;
            self.prune(now);
        }
        let policy = self.policy;
        let capacity = self.capacity;
        let (account_failures, account_locked) = entry(
            &mut self.accounts,
            folded.to_owned(),
            now,
            &policy,
            capacity,
        )
        .record(now, now_ms, &policy);
        let (address_failures, address_locked) = match AddressKey::of(ip) {
            Some(key) => {
                let (count, locked) = entry(&mut self.addresses, key, now, &policy, capacity)
                    .record(folded, now, now_ms, &policy);
                (count, locked.then_some(key))
            }
            None => (0, None),
        };
        FailureOutcome {
            failures: account_failures.max(address_failures),
            account_locked,
            address_locked,
        }
    }

    pub fn prune(&mut self, now: Instant) {
        let policy = self.policy;
        self.accounts.retain(|_, f| !f.expired(now, &policy));
        self.addresses.retain(|_, f| !f.expired(now, &policy));
    }
}

/// The entry for `key`, making room first when the map is full.
fn entry<'a, K: Hash + Eq + Clone, V: Tracked>(
    map: &'a mut HashMap<K, V>,
    key: K,
    now: Instant,
    policy: &LockoutPolicy,
    capacity: usize,
) -> &'a mut V {
    if !map.contains_key(&key) && map.len() >= capacity {
        map.retain(|_, f| !f.expired(now, policy));
        if map.len() >= capacity {
            let oldest = map
                .iter()
                .min_by_key(|(_, f)| f.last_seen())
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                map.remove(&oldest);
            }
        }
    }
    map.entry(key).or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const AWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const MS: i64 = 1_000_000;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            max_failures: 3,
            address_max_accounts: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
        }
    }

    fn v6(text: &str) -> IpAddr {
        text.parse().expect("an IPv6 address")
    }

    #[test]
    fn loopback_has_no_address_key_and_ipv6_counts_by_64() {
        for loopback in [
            "127.0.0.1",
            "127.9.8.7",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:127.1.2.3",
        ] {
            let ip: IpAddr = loopback.parse().expect("address");
            assert_eq!(AddressKey::of(ip), None, "{loopback}");
        }
        let key = AddressKey::of(v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd")).expect("key");
        assert_eq!(key, AddressKey::of(v6("2001:db8:1:2::ffff")).expect("key"));
        assert_ne!(key, AddressKey::of(v6("2001:db8:1:3::1")).expect("key"));
        assert_eq!(key.to_string(), "2001:db8:1:2::/64");
        assert!(key.is_network());
        let mapped = AddressKey::of(v6("::ffff:203.0.113.9")).expect("key");
        assert_eq!(mapped.to_string(), "203.0.113.9");
        assert!(!mapped.is_network());
    }

    #[test]
    fn one_accounts_failures_never_lock_its_address() {
        let mut throttle = Throttle::new(policy(), 100);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.begin("alice", HOME, now), Ok(()));
            throttle.failed("alice", HOME, now, MS);
        }
        assert!(matches!(
            throttle.begin("alice", AWAY, now),
            Err(Refusal::Locked(Locked { address: None, .. }))
        ));
        assert_eq!(
            throttle.begin("bob", HOME, now),
            Ok(()),
            "the address is free"
        );
    }

    #[test]
    fn failures_naming_several_accounts_lock_the_address() {
        let mut throttle = Throttle::new(policy(), 100);
        let now = Instant::now();
        for name in ["xavier", "yolanda"] {
            assert_eq!(throttle.begin(name, HOME, now), Ok(()));
            let outcome = throttle.failed(name, HOME, now, MS);
            assert_eq!(outcome.address_locked, None);
        }
        assert_eq!(throttle.begin("zed", HOME, now), Ok(()));
        let outcome = throttle.failed("zed", HOME, now, MS);
        assert_eq!(outcome.address_locked, AddressKey::of(HOME));
        let locked = match throttle.begin("alice", HOME, now) {
            Err(Refusal::Locked(locked)) => locked,
            other => panic!("expected the address locked, got {other:?}"),
        };
        assert_eq!(locked.account_since_ms, None);
        assert_eq!(locked.address, AddressKey::of(HOME).map(|key| (key, MS)));
        assert_eq!(throttle.begin("alice", AWAY, now), Ok(()));
    }

    #[test]
    fn an_ipv6_spray_across_its_64_locks_the_whole_64() {
        let mut throttle = Throttle::new(policy(), 100);
        let now = Instant::now();
        for (i, name) in ["xavier", "yolanda", "zed"].into_iter().enumerate() {
            let ip = v6(&format!("2001:db8:1:2::{}", i + 1));
            assert_eq!(throttle.begin(name, ip, now), Ok(()));
            throttle.failed(name, ip, now, MS);
        }
        assert!(matches!(
            throttle.begin("alice", v6("2001:db8:1:2:ffff::9"), now),
            Err(Refusal::Locked(_))
        ));
        assert_eq!(throttle.begin("alice", v6("2001:db8:1:3::1"), now), Ok(()));
    }

    #[test]
    fn loopback_sprays_lock_only_the_accounts() {
        let mut throttle = Throttle::new(policy(), 100);
        let now = Instant::now();
        for name in ["a", "b", "c", "d", "e", "f"] {
            assert_eq!(throttle.begin(name, LOOPBACK, now), Ok(()));
            let outcome = throttle.failed(name, LOOPBACK, now, MS);
            assert_eq!((outcome.failures, outcome.address_locked), (1, None));
        }
        for _ in 0..2 {
            assert_eq!(throttle.begin("a", LOOPBACK, now), Ok(()));
            throttle.failed("a", LOOPBACK, now, MS);
        }
        assert!(matches!(
            throttle.begin("a", LOOPBACK, now),
            Err(Refusal::Locked(_))
        ));
        assert_eq!(throttle.begin("g", LOOPBACK, now), Ok(()));
        assert!(throttle.addresses.is_empty());
    }

    #[test]
    fn a_success_takes_its_name_off_the_address() {
        let mut throttle = Throttle::new(policy(), 100);
        let now = Instant::now();
        for round in 0..5 {
            // A different user's typo each round, each put right: no spray.
            let name = format!("user{round}");
            assert_eq!(throttle.begin(&name, HOME, now), Ok(()));
            throttle.failed(&name, HOME, now, MS);
            assert_eq!(throttle.begin(&name, HOME, now), Ok(()));
            assert_eq!(throttle.end(&name, HOME, now, Ending::Succeeded), None);
        }
        assert_eq!(throttle.begin("zoe", HOME, now), Ok(()));
    }

    #[test]
    fn guesses_in_flight_count_for_the_account_and_the_address() {
        let mut throttle = Throttle::new(policy(), 100);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.begin("alice", HOME, now), Ok(()));
        }
        assert_eq!(
            throttle.begin("alice", AWAY, now),
            Err(Refusal::Full),
            "the account is full"
        );
        // Three guesses for one name take one of the address's three names.
        assert_eq!(throttle.begin("bob", HOME, now), Ok(()));
        assert_eq!(throttle.begin("carol", HOME, now), Ok(()));
        assert_eq!(
            throttle.begin("dave", HOME, now),
            Err(Refusal::Full),
            "the address names three accounts"
        );
        assert_eq!(throttle.begin("bob", HOME, now), Ok(()), "bob is counted");
        throttle.end("carol", HOME, now, Ending::Cancelled);
        assert_eq!(throttle.begin("dave", HOME, now), Ok(()));

        throttle.end("alice", HOME, now, Ending::Cancelled);
        assert_eq!(throttle.begin("alice", AWAY, now), Ok(()));
        assert!(!throttle.failed("alice", HOME, now, MS).account_locked);
        assert!(!throttle.failed("alice", HOME, now, MS).account_locked);
        assert!(throttle.failed("alice", AWAY, now, MS).account_locked);
        assert!(matches!(
            throttle.begin("alice", AWAY, now),
            Err(Refusal::Locked(_))
        ));
        assert_eq!(throttle.accounts["alice"].pending, 0);
    }

    #[test]
    fn an_unlock_stamp_lifts_only_a_lock_it_postdates() {
        let mut throttle = Throttle::new(policy(), 100);
        let now = Instant::now();
        for _ in 0..3 {
            throttle.failed("alice", HOME, now, MS);
        }
        for name in ["x", "y"] {
            throttle.failed(name, HOME, now, MS);
        }
        let home = AddressKey::of(HOME).expect("key");
        let locked = throttle.locked("alice", HOME, now).expect("locked");
        assert_eq!(locked.account_since_ms, Some(MS));
        assert_eq!(locked.address, Some((home, MS)));

        // Stamps older than the locks: an unlock before this lockout began.
        assert!(!throttle.lift("alice", Some(MS - 1), Some((home, MS - 1))));
        assert!(throttle.lift("alice", Some(MS), None));
        let locked = throttle.locked("alice", HOME, now).expect("the address");
        assert_eq!(locked.account_since_ms, None);
        assert!(throttle.lift("alice", None, Some((home, MS + 5))));
        assert_eq!(throttle.locked("alice", HOME, now), None);
        assert_eq!(throttle.begin("alice", HOME, now), Ok(()));
    }

    #[test]
    fn throttle_window_slides_and_lockout_expires() {
        let mut throttle = Throttle::new(policy(), 100);
        let start = Instant::now();
        throttle.failed("alice", HOME, start, MS);
        throttle.failed("alice", AWAY, start + Duration::from_secs(30), MS);
        // The first failure has left the window: two recent, no lockout.
        let outcome = throttle.failed("alice", HOME, start + Duration::from_secs(61), MS);
        assert_eq!(outcome.failures, 2);
        assert!(!outcome.account_locked);
        assert!(throttle
            .locked("alice", HOME, start + Duration::from_secs(61))
            .is_none());

        let at = start + Duration::from_secs(62);
        let outcome = throttle.failed("alice", AWAY, at, MS);
        assert!(
            outcome.account_locked && outcome.address_locked.is_none(),
            "{outcome:?}"
        );
        assert_eq!(
            throttle
                .locked("alice", HOME, at + Duration::from_secs(100))
                .map(|locked| locked.wait),
            Some(Duration::from_secs(200))
        );
        assert!(throttle
            .locked("alice", HOME, at + Duration::from_secs(300))
            .is_none());
    }

    #[test]
    fn throttle_forgets_expired_entries_and_stays_bounded() {
        let mut throttle = Throttle::new(policy(), 10);
        let start = Instant::now();
        for i in 0..25u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i));
            throttle.failed(
                &format!("user{i}"),
                ip,
                start + Duration::from_millis(u64::from(i)),
                MS,
            );
        }
        let (accounts, addresses) = (throttle.accounts.len(), throttle.addresses.len());
        assert!(accounts <= 10 && addresses <= 10, "{accounts} {addresses}");
        // The newest entries survive eviction.
        assert!(throttle.accounts.contains_key("user24"));
        assert!(!throttle.accounts.contains_key("user0"));

        throttle.prune(start + Duration::from_secs(120));
        assert!(throttle.accounts.is_empty() && throttle.addresses.is_empty());
    }
}
