//! Accounts as the server and the admin CLI see them: name and password rules, Argon2id hashing,
//! and logins slowed and locked out against guessing. Hashing is deliberately expensive, so every
//! hash or verify runs in the [`hasher`] pool, never on a runtime worker; an unknown name costs
//! the same verify as a known one, so timing does not tell which names exist.
//!
//! A guess counts against the lockout from the moment it is taken up, not when its hash is done:
//! at most `max_failures` guesses per account, and guesses naming at most `address_max_accounts`
//! accounts per address, are in flight or failed within the window, however many connections
//! send them at once, and the lock is checked again after the hash (see [`lockout`]: one user's
//! typos never lock out the address, and loopback never is). Lockouts live in memory; an admin
//! lifts one by stamping the store, which a server consults when it meets a lockout. A name a
//! client sent is logged only when it is an account's: anything else may be a password typed in
//! the wrong place (`PASS secret:tail` makes `secret` the account name).
//!
//! Hashes use the `argon2` crate's defaults: Argon2id, m = 19 MiB, t = 2, p = 1, the parameters
//! OWASP's password storage cheat sheet recommends, with a fresh 16-byte random salt per hash,
//! stored as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`). Verification reads the
//! parameters from the stored string, so raising them later keeps old hashes working.
//!
//! Each account also keeps a SCRAM-SHA-256 credential for SASL SCRAM logins, which never send the
//! password: see [`scram`]. Login sessions (tokens that stand in for the password) are in
//! [`sessions`].

pub mod always_on;
mod hasher;
pub mod key_directory;
mod lockout;
mod oper_check;
mod scram;
mod sessions;

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use parley_proto::{casefold, validate};
use tokio::sync::Notify;

use crate::config::Config;
use crate::store::{AccountRecord, AccountStore, LockoutTarget, StoreError};

use lockout::{Ending, Locked, LockoutPolicy, Refusal, Throttle};

pub use hasher::{HashMemory, HashPool, PoolError};
pub use lockout::AddressKey;
pub use oper_check::OperCheck;
pub use scram::{scram_credential, ScramLogin, ScramSecret, SECRET_FILE};
pub use sessions::{token_hash, IssuedSession, TOKEN_TYPE};

/// First delay after a failed login; it doubles with each further failure up to
/// [`MAX_DELAY_FACTOR`] times this.
const DEFAULT_FAILURE_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY_FACTOR: u32 = 16;
/// Most accounts and, separately, most addresses whose failures are remembered at once.
const MAX_TRACKED: usize = 50_000;
/// How long a guess waits, at most, before it looks again whether a place against the lockout
/// has come free. Every guess that ends wakes the waiting ones; this only bounds a missed wake.
const RECHECK_PENDING: Duration = Duration::from_secs(1);

/// A hash of a password nobody knows, with the default parameters, verified against when the
/// account does not exist so that the answer takes as long as for a real account.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$pHhSU8GHLMoxRx5j2InAyw$CPSrjQWKx/bo7+m3kFmNAG62jHS1Hofos19KhhUylLY";

/// Why an account could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "`{}` cannot be an account name: use 1 to {max_len} letters, digits or []\\`_^{{|}}-, \
         starting with a letter or one of []\\`_^{{|}}",
        .name.escape_debug()
    )]
    InvalidName { name: String, max_len: usize },
    #[error("that password is too short: use at least {min} characters")]
    PasswordTooShort { min: usize },
    #[error("that password is too long: use at most {max} bytes")]
    PasswordTooLong { max: usize },
    #[error("the account name `{0}` is already taken")]
    AlreadyExists(String),
    #[error("there is no account named `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the account task stopped unexpectedly: {0}")]
    Task(String),
    #[error("cannot use the SCRAM secret {}: {reason}", .path.display())]
    Secret {
        path: std::path::PathBuf,
        reason: String,
    },
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::AlreadyExists(name) => Self::AlreadyExists(name),
            StoreError::NotFound(name) => Self::NotFound(name),
            other => Self::Store(other),
        }
    }
}

/// Why a login was refused. `Invalid` covers both an unknown name and a wrong password, so a
/// guesser learns nothing about which names exist.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid account name or password")]
    Invalid,
    #[error("too many failed logins; try again in {retry_after_secs} seconds")]
    Locked { retry_after_secs: u64 },
    #[error("this account is disabled; ask a server operator")]
    Disabled,
    #[error("your session ended (logged out, expired or revoked); log in with your password")]
    SessionEnded,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the login task stopped unexpectedly: {0}")]
    Task(String),
}

/// What makes a name or password acceptable, from `[limits]` and `[accounts]`. Pure, so the import
/// parser can check lines without a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRules {
    /// Longest name in bytes (`limits.nick_len`: an account name must also work as a nick).
    pub name_len: usize,
    /// Shortest password, in characters.
    pub min_password_len: usize,
    /// Longest password, in bytes.
    pub max_password_len: usize,
}

impl AccountRules {
    pub fn from_config(config: &Config) -> Self {
        Self {
            name_len: config.limits.nick_len,
            min_password_len: config.accounts.min_password_len,
            max_password_len: config.accounts.max_password_len,
        }
    }

    /// Account names follow the nick rules, so whoever logs in can use their account name as nick.
    pub fn check_name(&self, name: &str) -> Result<(), AccountError> {
        if validate::nick(name, self.name_len) {
            Ok(())
        } else {
            Err(AccountError::InvalidName {
                name: name.to_owned(),
                max_len: self.name_len,
            })
        }
    }

    pub fn check_password(&self, password: &str) -> Result<(), AccountError> {
        if password.chars().count() < self.min_password_len {
            return Err(AccountError::PasswordTooShort {
                min: self.min_password_len,
            });
        }
        if password.len() > self.max_password_len {
            return Err(AccountError::PasswordTooLong {
                max: self.max_password_len,
            });
        }
        Ok(())
    }
}

/// Hash a password for storage: Argon2id with the crate's (OWASP-recommended) defaults and a fresh
/// random salt, as a PHC string. Takes tens of milliseconds and allocates its own memory: for the
/// admin CLI; the server hashes in its [`HashPool`].
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    HashMemory::default()
        .hash(password)
        .map_err(AccountError::Hash)
}

/// Whether `password` matches the PHC string `hash`, in `memory`; the comparison of the outputs
/// is constant time. An unparseable hash matches nothing.
fn verify_password(memory: &mut HashMemory, password: &str, hash: &str) -> bool {
    match memory.verify(password, hash) {
        Ok(matches) => matches,
        Err(error) => {
            tracing::error!(%error, "stored password hash cannot be checked");
            false
        }
    }
}

/// The account layer: cheap to clone, shared by every connection and by the admin CLI.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    rules: AccountRules,
    throttle: Arc<Mutex<Throttle>>,
    failure_delay: Duration,
    lockout_secs: u64,
    /// Every hash and verify runs here: a fixed set of workers, each with one reused Argon2
    /// memory block, and a bounded queue a flood of logins waits in.
    hashing: Arc<HashPool>,
    /// Woken whenever a guess in flight ends, for the guesses waiting for a place (see
    /// [`Accounts::begin_guess`]).
    guess_ended: Arc<Notify>,
    /// PBKDF2 rounds for new SCRAM credentials (`accounts.scram_iterations`).
    scram_iterations: u32,
    /// Key for the fake SCRAM credentials of names that have none.
    scram_secret: Arc<ScramSecret>,
    /// Every account's name, once [`Accounts::load_names`] has run (see there).
    names: Arc<RwLock<AccountNames>>,
    /// How long a login session lasts unused (`web.session_days`), in seconds.
    session_secs: i64,
    /// Most sessions an account keeps (`web.max_sessions`).
    max_sessions: usize,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts")
            .field("rules", &self.rules)
            .field("failure_delay", &self.failure_delay)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    pub fn new(store: Arc<dyn AccountStore>, config: &Config) -> Self {
        let policy = LockoutPolicy {
            max_failures: config.accounts.max_failures.max(1),
            address_max_accounts: config.accounts.address_max_accounts.max(2),
            window: Duration::from_secs(config.accounts.failure_window_secs),
            lockout: Duration::from_secs(config.accounts.lockout_secs),
        };
        Self {
            store,
            rules: AccountRules::from_config(config),
            throttle: Arc::new(Mutex::new(Throttle::new(policy, MAX_TRACKED))),
            failure_delay: DEFAULT_FAILURE_DELAY,
            lockout_secs: config.accounts.lockout_secs,
            hashing: Arc::new(HashPool::per_core()),
            guess_ended: Arc::new(Notify::new()),
            scram_iterations: config.accounts.scram_iterations,
            scram_secret: Arc::new(ScramSecret::ephemeral()),
            names: Arc::default(),
            session_secs: i64::try_from(config.web.session_days.saturating_mul(86_400))
                .unwrap_or(i64::MAX),
            max_sessions: config.web.max_sessions.max(1),
        }
    }

    /// Set the delay after a first failed login (250 ms by default); it doubles per further
    /// failure, up to 16 times this. Tests use a tiny one.
    pub fn with_failure_delay(mut self, base: Duration) -> Self {
        self.failure_delay = base;
        self
    }

    pub fn rules(&self) -> &AccountRules {
        &self.rules
    }

    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    pub fn check_name(&self, name: &str) -> Result<(), AccountError> {
        self.rules.check_name(name)
    }

    pub fn check_password(&self, password: &str) -> Result<(), AccountError> {
        self.rules.check_password(password)
    }

    /// Create an account (as `REGISTER` does): check the name and password, hash on the blocking
    /// pool, store. Returns the account name as registered.
    pub async fn register(&self, name: &str, password: &str) -> Result<String, AccountError> {
        self.check_name(name)?;
        self.check_password(password)?;
        let this = self.clone();
        let (name, password) = (name.to_owned(), password.to_owned());
        let name = self
            .hashing
            .run(move |memory| this.add_account_in(memory, &name, &password))
            .await
            .map_err(|error| AccountError::Task(error.to_string()))??;
        tracing::info!(account = %name, "account registered");
        Ok(name)
    }

    /// Check a login. Returns the account name as registered.
    ///
    /// A name or address locked out after too many failures is refused before any work. Every
    /// failure is counted for the account and the address and answered only after a delay that
    /// doubles with each failure, which makes online guessing slow even before the lockout.
    /// A suspended account answers every password alike, as a failure: it is no password oracle.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        ip: IpAddr,
    ) -> Result<String, LoginError> {
        let folded = casefold(name);
        let guess = self.begin_guess(name, &folded, ip).await?;

        let store = Arc::clone(&self.store);
        let (lookup_name, password) = (name.to_owned(), password.to_owned());
        let scram_iterations = self.scram_iterations;
        let checked = self
            .hashing
            .run(move |memory| -> Result<_, StoreError> {
                let record = store.account(&lookup_name)?;
                let hash = record
                    .as_ref()
                    .map_or(DUMMY_HASH, |record| record.password_hash.as_str());
                let matches = verify_password(memory, &password, hash);
                // The password is known right now, and only now: make the account's SCRAM
                // credential if it has none (an account from before SCRAM) or a weaker one than
                // configured.
                if let Some(record) = record.as_ref().filter(|_| matches) {
                    if !record.locked && scram::needs_credential(record, scram_iterations) {
                        scram::upgrade(&*store, record, &password, scram_iterations);
                    }
                }
                Ok((record, matches))
            })
            .await
            .map_err(|error| LoginError::Task(error.to_string()))?;
        let (record, matches) = match checked {
            Ok(checked) => checked,
            Err(error) => {
                drop(guess); // not a guess: it was never checked
                return Err(error.into());
            }
        };

        match record {
            Some(record) if record.locked => {
                tracing::warn!(account = %record.name, %ip, "login refused: account suspended");
                Err(self
                    .failed_login(guess, name, ip, LoginError::Disabled)
                    .await)
            }
            Some(record) if matches => {
                self.succeeded(guess, name, ip).await?;
                self.remember_name(&record.name);
                tracing::info!(account = %record.name, %ip, "login succeeded");
                Ok(record.name)
            }
            _ => Err(self
                .failed_login(guess, name, ip, LoginError::Invalid)
                .await),
        }
    }

    /// Take up a guess against the lockout: refused if the name or the address is locked out
    /// (and no admin has lifted it since), and made to wait while the account's failures and
    /// guesses in flight already reach `max_failures`, or the address's name
    /// `address_max_accounts` other accounts, until one of those guesses ends. The guess counts
    /// until it ends, so a burst of connections cannot have more checked than the lockout allows.
    async fn begin_guess(
        &self,
        name: &str,
        folded: &str,
        ip: IpAddr,
    ) -> Result<PendingGuess, LoginError> {
        let mut asked_store = false;
        loop {
            // Made before looking, so an end between the look and the wait still wakes it.
            let ended = self.guess_ended.notified();
            let begun = self.throttle.lock().begin(folded, ip, Instant::now());
            match begun {
                Ok(()) => {
                    return Ok(PendingGuess {
                        throttle: Arc::clone(&self.throttle),
                        ended: Arc::clone(&self.guess_ended),
                        folded: folded.to_owned(),
                        ip,
                        open: true,
                    })
                }
                Err(Refusal::Locked(locked)) => {
                    if !asked_store && self.lift_if_unlocked(folded, ip, &locked).await {
                        asked_store = true;
                        continue;
                    }
                    return Err(self.locked_out(name, ip, locked.wait));
                }
                Err(Refusal::Full) => {
                    let _ = tokio::time::timeout(RECHECK_PENDING, ended).await;
                }
            }
        }
    }

    /// End a guess whose password was right. The lock is checked once more: the name or the
    /// address may have been locked out while it was hashed (by SCRAM failures, say), and then
    /// even the right password is refused.
    async fn succeeded(
        &self,
        mut guess: PendingGuess,
        name: &str,
        ip: IpAddr,
    ) -> Result<(), LoginError> {
        let locked = self
            .throttle
            .lock()
            .end(&guess.folded, ip, Instant::now(), Ending::Succeeded);
        guess.open = false;
        self.guess_ended.notify_waiters();
        let Some(locked) = locked else {
            return Ok(());
        };
        if self.lift_if_unlocked(&guess.folded, ip, &locked).await {
            let mut throttle = self.throttle.lock();
            if throttle.locked(&guess.folded, ip, Instant::now()).is_none() {
                throttle.forget(&guess.folded, ip);
                return Ok(());
            }
        }
        Err(self.locked_out(name, ip, locked.wait))
    }

    /// Refuse a login for a name or an address locked out after too many failures (and not
    /// lifted by an admin since), before any work is spent on it.
    async fn refuse_if_locked(
        &self,
        name: &str,
        folded: &str,
        ip: IpAddr,
    ) -> Result<(), LoginError> {
        let locked = self.throttle.lock().locked(folded, ip, Instant::now());
        let Some(locked) = locked else {
            return Ok(());
        };
        if self.lift_if_unlocked(folded, ip, &locked).await {
            let still = self.throttle.lock().locked(folded, ip, Instant::now());
            match still {
                Some(locked) => return Err(self.locked_out(name, ip, locked.wait)),
                None => return Ok(()),
            }
        }
        Err(self.locked_out(name, ip, locked.wait))
    }

    /// Ask the store whether an admin lifted these lockouts since they began (`parleyd users
    /// unlock`, run in another process, maybe for another node), and drop those lifted. Only a
    /// refused login comes here, and a point lookup costs far less than the hash every login
    /// that is not refused pays. A store that cannot answer leaves the lock in place. Returns
    /// whether any was lifted.
    async fn lift_if_unlocked(&self, folded: &str, ip: IpAddr, locked: &Locked) -> bool {
        let account = locked
            .account_since_ms
            .map(|_| LockoutTarget::Account(folded.to_owned()));
        let address = locked
            .address
            .map(|(key, _)| (key, LockoutTarget::Address(key.to_string())));
        let store = Arc::clone(&self.store);
        let stamps = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            let account = match account {
                Some(target) => store.lockout_lifted_at(&target)?,
                None => None,
            };
            let address = match address {
                Some((key, target)) => store.lockout_lifted_at(&target)?.map(|at| (key, at)),
                None => None,
            };
            Ok((account, address))
        })
        .await;
        let (account, address) = match stamps {
            Ok(Ok(stamps)) => stamps,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot ask the store whether a lockout was lifted; it stays");
                return false;
            }
            Err(error) => {
                tracing::warn!(%error, "the lockout lookup task failed; the lockout stays");
                return false;
            }
        };
        let lifted = self.throttle.lock().lift(folded, account, address);
        if lifted {
            tracing::info!(account = %self.loggable(folded), %ip, "lockout lifted by an admin");
        }
        lifted
    }

    fn locked_out(&self, name: &str, ip: IpAddr, wait: Duration) -> LoginError {
        let retry_after_secs = whole_seconds(wait);
        tracing::warn!(account = %self.loggable(name), %ip, retry_after_secs, "login refused: locked out after failed logins");
        LoginError::Locked { retry_after_secs }
    }

    /// Count a failed login for the name and the address, then wait the growing delay: the same
    /// for every mechanism, so none is a faster way to guess. Returns `error` after the delay.
    async fn failed_login(
        &self,
        mut guess: PendingGuess,
        name: &str,
        ip: IpAddr,
        error: LoginError,
    ) -> LoginError {
        let failure =
            self.throttle
                .lock()
                .failed(&guess.folded, ip, Instant::now(), crate::clock::now_ms());
        guess.open = false;
        self.guess_ended.notify_waiters();
        let account = self.loggable(name);
        tracing::warn!(%account, %ip, failures = failure.failures, "login failed");
        let lockout_secs = self.lockout_secs;
        if failure.account_locked {
            tracing::warn!(%account, %ip, lockout_secs, "account locked out after repeated failed logins");
        }
        if let Some(address) = failure.address_locked {
            tracing::warn!(%ip, %address, lockout_secs, "address locked out after failed logins naming several accounts");
        }
        tokio::time::sleep(self.delay_after(failure.failures)).await;
        error
    }

    /// `name` for a log line, if it is an account's (answered from memory); a placeholder if
    /// not, since a name that is no account's may be (half) a password.
    fn loggable<'a>(&self, name: &'a str) -> &'a str {
        let known = self
            .names
            .read()
            .set
            .as_ref()
            .is_some_and(|names| names.contains(&casefold(name)));
        if known {
            name
        } else {
            "(not an account)"
        }
    }

    /// Whether an account with this name (compared case-insensitively) exists.
    pub async fn exists(&self, name: &str) -> Result<bool, StoreError> {
        let store = Arc::clone(&self.store);
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || store.account(&name).map(|record| record.is_some()))
            .await
            .map_err(|error| StoreError::Backend(format!("lookup task failed: {error}")))?
    }

    /// Whether the database makes this account a server admin ([`AccountRecord::admin`]); false
    /// for an account that does not exist (any more). Asked at every login, so answered on this
    /// thread when the store can do that without waiting, as a SCRAM login's lookup is.
    pub async fn is_admin(&self, name: &str) -> Result<bool, StoreError> {
        let record = match self.store.account_now(name) {
            Some(record) => record?,
            None => {
                let store = Arc::clone(&self.store);
                let name = name.to_owned();
                tokio::task::spawn_blocking(move || store.account(&name))
                    .await
                    .map_err(|error| {
                        StoreError::Backend(format!("lookup task failed: {error}"))
                    })??
            }
        };
        Ok(record.is_some_and(|record| record.admin))
    }

    fn delay_after(&self, failures: u32) -> Duration {
        let doublings = failures
            .saturating_sub(1)
            .min(MAX_DELAY_FACTOR.trailing_zeros());
        self.failure_delay.saturating_mul(1 << doublings)
    }

    // The operations below block (they hash and touch the store): they are for the admin CLI,
    // or for async code through the hashing pool.

    /// Check, hash and create an account, with its SCRAM credential. Returns the name as
    /// registered.
    pub fn add_account(&self, name: &str, password: &str) -> Result<String, AccountError> {
        self.add_account_in(&mut HashMemory::default(), name, password)
    }

    /// [`Accounts::add_account`], hashing in `memory`.
    fn add_account_in(
        &self,
        memory: &mut HashMemory,
        name: &str,
        password: &str,
    ) -> Result<String, AccountError> {
        self.check_name(name)?;
        self.check_password(password)?;
        // A taken name is refused before spending a hash on it; the UNIQUE constraint still
        // decides a race.
        if self.store.account(name)?.is_some() {
            return Err(AccountError::AlreadyExists(name.to_owned()));
        }
        let hash = memory.hash(password).map_err(AccountError::Hash)?;
        let scram = self.scram_credential(password)?;
        self.store.create_account(name, &hash)?;
        self.remember_name(name);
        self.store_scram(name, scram.as_deref());
        Ok(name.to_owned())
    }

    /// Create an account from a hash made by [`hash_password`] and a credential made by
    /// [`scram_credential`] (the import makes both in parallel).
    pub fn add_hashed_account(
        &self,
        name: &str,
        password_hash: &str,
        scram: Option<&str>,
    ) -> Result<(), AccountError> {
        self.check_name(name)?;
        self.store.create_account(name, password_hash)?;
        self.remember_name(name);
        self.store_scram(name, scram);
        Ok(())
    }

    /// Give an existing account a new password, and the SCRAM credential that goes with it.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AccountError> {
        self.check_password(password)?;
        if self.store.account(name)?.is_none() {
            return Err(AccountError::NotFound(name.to_owned()));
        }
        let hash = hash_password(password)?;
        let scram = self.scram_credential(password)?;
        self.store.set_password(name, &hash)?;
        self.store_scram(name, scram.as_deref());
        Ok(())
    }

    /// Store a new account's SCRAM credential. The account exists by now, so a failure is only
    /// logged: SCRAM logins fail until the next PLAIN login makes the credential again.
    fn store_scram(&self, name: &str, scram: Option<&str>) {
        if let Some(scram) = scram {
            if let Err(error) = self.store.set_scram(name, Some(scram)) {
                tracing::warn!(account = %name, %error, "SCRAM credential not stored");
            }
        }
    }

    pub fn remove_account(&self, name: &str) -> Result<(), AccountError> {
        self.store.remove_account(name)?;
        self.names.write().change(casefold(name), false);
        Ok(())
    }

    /// Disable (refuse every login, right password or not) or enable an account.
    pub fn set_locked(&self, name: &str, locked: bool) -> Result<(), AccountError> {
        Ok(self.store.set_locked(name, locked)?)
    }

    /// Lift `target`'s lockout after failed logins, as of now, for every server using this store
    /// (they keep lockouts in memory and consult the stamp when they meet one).
    pub fn lift_lockout(&self, target: &LockoutTarget) -> Result<(), AccountError> {
        Ok(self.store.lift_lockout(target, crate::clock::now_ms())?)
    }

    /// Make an account a server admin, or no longer one (see [`AccountRecord::admin`]).
    pub fn set_admin(&self, name: &str, admin: bool) -> Result<(), AccountError> {
        Ok(self.store.set_admin(name, admin)?)
    }

    pub fn account(&self, name: &str) -> Result<Option<AccountRecord>, AccountError> {
        Ok(self.store.account(name)?)
    }

    pub fn list_accounts(&self) -> Result<Vec<AccountRecord>, AccountError> {
        Ok(self.store.list_accounts()?)
    }
}

/// Whether a name is an account's, answered from memory: NICK asks it for every connection, and
/// must neither wait for the database (whose lock a login may hold) nor block a worker thread.
/// [`Accounts::load_names`] fills the set at start and again every few minutes, for accounts the
/// admin CLI added or removed from another process; this process's own creates, removes and
/// logins keep it in step at once.
impl Accounts {
    /// Read every account name from the store (blocks: call at start or on the blocking pool).
    /// Creates and removes that happen meanwhile are replayed on top, so none is lost.
    pub fn load_names(&self) -> Result<usize, StoreError> {
        self.names.write().begin_refresh();
        let listed = self.store.list_accounts();
        let mut names = self.names.write();
        let listed = match listed {
            Ok(records) => records
                .iter()
                .map(|record| casefold(&record.name))
                .collect(),
            Err(error) => {
                names.refreshing = false;
                names.journal.clear();
                return Err(error);
            }
        };
        Ok(names.finish_refresh(listed))
    }

    /// Whether `name` (compared case-insensitively) is an account's. Until the names are loaded
    /// this asks the store, so nothing is ever missed.
    pub fn is_account_name(&self, name: &str) -> Result<bool, StoreError> {
        if let Some(names) = self.names.read().set.as_ref() {
            return Ok(names.contains(&casefold(name)));
        }
        Ok(self.store.account(name)?.is_some())
    }

    fn remember_name(&self, name: &str) {
        self.names.write().change(casefold(name), true);
    }
}

/// Casefolded account names, and the changes made while a refresh reads the store.
#[derive(Debug, Default)]
struct AccountNames {
    /// `None` until first loaded.
    set: Option<HashSet<String>>,
    refreshing: bool,
    /// Names added (`true`) or removed during a refresh, replayed on the list it read. Bounded
    /// by the creates and removes of one refresh, which password hashing keeps slow.
    journal: Vec<(String, bool)>,
}

impl AccountNames {
    fn change(&mut self, folded: String, present: bool) {
        if let Some(set) = self.set.as_mut() {
            if present {
                set.insert(folded.clone());
            } else {
                set.remove(&folded);
            }
        }
        if self.refreshing {
            self.journal.push((folded, present));
        }
    }

    fn begin_refresh(&mut self) {
        self.refreshing = true;
        self.journal.clear();
    }

    fn finish_refresh(&mut self, mut listed: HashSet<String>) -> usize {
        for (folded, present) in self.journal.drain(..) {
            if present {
                listed.insert(folded);
            } else {
                listed.remove(&folded);
            }
        }
        self.refreshing = false;
        let count = listed.len();
        self.set = Some(listed);
        count
    }
}

/// Seconds to wait, rounded up so "try again in 0 seconds" never happens.
fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A guess taken up against the lockout ([`Accounts::begin_guess`]). Ended as a success or a
/// failure by the login; dropped unended (a connection closed mid-hash, an error), it gives its
/// place back, so no path leaks one.
struct PendingGuess {
    throttle: Arc<Mutex<Throttle>>,
    ended: Arc<Notify>,
    folded: String,
    ip: IpAddr,
    /// Still counted as in flight.
    open: bool,
}

impl Drop for PendingGuess {
    fn drop(&mut self) {
        if self.open {
            self.throttle
                .lock()
                .end(&self.folded, self.ip, Instant::now(), Ending::Cancelled);
            self.ended.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use std::net::Ipv4Addr;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const AWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    fn config(max_failures: u32) -> Config {
        let mut config = Config::default();
        config.accounts.max_failures = max_failures;
        config.accounts.address_max_accounts = 3;
        config.accounts.min_password_len = 8;
        config.accounts.max_password_len = 32;
        config.limits.nick_len = 12;
        config
    }

    fn accounts(dir: &tempfile::TempDir, max_failures: u32) -> Accounts {
        let store = SqliteStore::open(&dir.path().join("accounts.db")).expect("open store");
        Accounts::new(Arc::new(store), &config(max_failures))
            .with_failure_delay(Duration::from_millis(1))
    }

    #[test]
    fn names_follow_the_nick_rules_and_length_limit() {
        let rules = AccountRules::from_config(&config(5));
        for good in ["alice", "Bob_2", "[x]", "a-b", "abcdefghijkl"] {
            assert!(rules.check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "-a", "a b", "a:b", "a,b", "né", "abcdefghijklm"] {
            assert!(
                matches!(rules.check_name(bad), Err(AccountError::InvalidName { .. })),
                "{bad}"
            );
        }
        let message = rules.check_name("a b").expect_err("space").to_string();
        assert!(message.contains("use 1 to 12"), "{message}");
    }

    #[test]
    fn password_bounds_are_chars_then_bytes() {
        let rules = AccountRules::from_config(&config(5));
        assert!(matches!(
            rules.check_password("short"),
            Err(AccountError::PasswordTooShort { min: 8 })
        ));
        // Eight characters, sixteen bytes: long enough by characters.
        assert!(rules.check_password("éééééééé").is_ok());
        assert!(rules.check_password(&"x".repeat(32)).is_ok());
        assert!(matches!(
            rules.check_password(&"x".repeat(33)),
            Err(AccountError::PasswordTooLong { max: 32 })
        ));
        // 17 characters but 34 bytes: too long in bytes.
        assert!(rules.check_password(&"é".repeat(17)).is_err());
        let message = rules.check_password("x").expect_err("short").to_string();
        assert!(message.contains("at least 8 characters"), "{message}");
    }

    #[test]
    fn hashes_are_salted_argon2id_phc_strings() {
        let password = "correct horse";
        let first = hash_password(password).expect("hash");
        let second = hash_password(password).expect("hash");
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, password);
        assert!(!first.contains(password));
        assert_ne!(first, second, "each hash gets its own salt");
        assert!(verify_password(
            &mut HashMemory::default(),
            password,
            &first
        ));
        assert!(verify_password(
            &mut HashMemory::default(),
            password,
            &second
        ));
        assert!(!verify_password(
            &mut HashMemory::default(),
            "correct horsE",
            &first
        ));
        assert!(!verify_password(
            &mut HashMemory::default(),
            password,
            "not a phc string"
        ));
    }

    #[test]
    fn dummy_hash_costs_what_a_real_one_does() {
        let real = hash_password("whatever1").expect("hash");
        let params = |hash: &str| hash.split('$').nth(3).map(str::to_owned);
        assert_eq!(params(DUMMY_HASH), params(&real));
        assert!(argon2::password_hash::phc::PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify_password(&mut HashMemory::default(), "", DUMMY_HASH));
    }

    #[tokio::test]
    async fn register_then_login() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 5);
        let name = accounts
            .register("Alice", "hunter2hunter2")
            .await
            .expect("register");
        assert_eq!(name, "Alice");
        let stored = accounts.account("alice").expect("lookup").expect("stored");
        assert!(stored.password_hash.starts_with("$argon2id$"));
        assert_ne!(stored.password_hash, "hunter2hunter2");

        let logged_in = accounts
            .login("ALICE", "hunter2hunter2", HOME)
            .await
            .expect("login");
        assert_eq!(logged_in, "Alice", "the canonical spelling comes back");
        assert!(accounts.exists("aLiCe").await.expect("exists"));
        assert!(!accounts.exists("bob").await.expect("exists"));
    }

    #[tokio::test]
    async fn register_refuses_bad_input_and_taken_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 5);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        assert!(matches!(
            accounts.register("ALICE", "another-password").await,
            Err(AccountError::AlreadyExists(name)) if name == "ALICE"
        ));
        assert!(matches!(
            accounts.register("bad name", "another-password").await,
            Err(AccountError::InvalidName { .. })
        ));
        assert!(matches!(
            accounts.register("bob", "short").await,
            Err(AccountError::PasswordTooShort { .. })
        ));
        assert!(!accounts.exists("bob").await.expect("exists"));
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_name_look_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 5);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        let wrong = accounts.login("alice", "hunter3hunter3", HOME).await;
        let unknown = accounts.login("mallory", "hunter2hunter2", HOME).await;
        assert!(matches!(wrong, Err(LoginError::Invalid)), "{wrong:?}");
        assert!(matches!(unknown, Err(LoginError::Invalid)), "{unknown:?}");
        assert_eq!(
            wrong.expect_err("wrong").to_string(),
            unknown.expect_err("unknown").to_string()
        );
    }

    #[tokio::test]
    async fn account_locks_out_after_max_failures() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 3);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        // Failures from different addresses, so only the account's count reaches the limit.
        let addresses = [HOME, AWAY, IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))];
        for ip in addresses {
            let result = accounts.login("alice", "wrong-password", ip).await;
            assert!(matches!(result, Err(LoginError::Invalid)), "{result:?}");
        }
        // Now even the right password from a fresh address is refused without a check.
        let fresh = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
        match accounts.login("ALICE", "hunter2hunter2", fresh).await {
            Err(LoginError::Locked { retry_after_secs }) => {
                assert!((1..=900).contains(&retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        accounts
            .register("bob", "bobbobbobbob")
            .await
            .expect("register");
        assert_eq!(
            accounts
                .login("bob", "bobbobbobbob", fresh)
                .await
                .expect("others unaffected"),
            "bob"
        );
    }

    #[tokio::test]
    async fn address_locks_out_across_account_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 3);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        for name in ["xavier", "yolanda", "zed"] {
            let result = accounts.login(name, "guess-guess", HOME).await;
            assert!(matches!(result, Err(LoginError::Invalid)), "{result:?}");
        }
        assert!(matches!(
            accounts.login("alice", "hunter2hunter2", HOME).await,
            Err(LoginError::Locked { .. })
        ));
        assert_eq!(
            accounts
                .login("alice", "hunter2hunter2", AWAY)
                .await
                .expect("other address"),
            "alice"
        );
    }

    #[tokio::test]
    async fn success_clears_the_account_failures() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 3);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        for round in 0..3 {
            // Two failures, then a success, from a new address each round: never three in a row.
            let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + round));
            for _ in 0..2 {
                assert!(accounts.login("alice", "wrong-password", ip).await.is_err());
            }
            accounts
                .login("alice", "hunter2hunter2", ip)
                .await
                .expect("success resets the count");
        }
    }

    #[tokio::test]
    async fn a_suspended_account_answers_every_password_alike() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 3);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        accounts.set_locked("Alice", true).expect("lock");
        for password in ["hunter2hunter2", "not-the-password"] {
            let result = accounts.login("alice", password, HOME).await;
            assert!(matches!(result, Err(LoginError::Disabled)), "{result:?}");
        }
        // Each counted as a failure, the right password too: the third locks the name out.
        accounts.login("alice", "hunter2hunter2", AWAY).await.ok();
        assert!(matches!(
            accounts.login("alice", "hunter2hunter2", AWAY).await,
            Err(LoginError::Locked { .. })
        ));
        accounts.set_locked("alice", false).expect("unlock");
        let fresh = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11));
        assert!(matches!(
            accounts.login("alice", "hunter2hunter2", fresh).await,
            Err(LoginError::Locked { .. })
        ));
    }

    /// `parleyd users unlock` (another process: here another handle on the same file) stamps the
    /// store; the running server's lockouts from before the stamp end at the next login, those
    /// after it stay.
    #[tokio::test]
    async fn an_unlock_in_the_store_lifts_the_running_lockouts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = accounts(&dir, 3);
        let admin = accounts(&dir, 3);
        server
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        for _ in 0..3 {
            server.login("alice", "wrong-password", HOME).await.ok();
        }
        for name in ["xavier", "yolanda", "zed"] {
            server.login(name, "guess-guess", AWAY).await.ok();
        }
        let fresh = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
        for ip in [fresh, AWAY] {
            assert!(matches!(
                server.login("alice", "hunter2hunter2", ip).await,
                Err(LoginError::Locked { .. })
            ));
        }

        admin
            .lift_lockout(&LockoutTarget::Account("alice".to_owned()))
            .expect("unlock alice");
        assert_eq!(
            server
                .login("Alice", "hunter2hunter2", fresh)
                .await
                .expect("the account's lockout is lifted"),
            "alice"
        );
        assert!(
            matches!(
                server.login("alice", "hunter2hunter2", AWAY).await,
                Err(LoginError::Locked { .. })
            ),
            "the address is still locked"
        );
        let away = AddressKey::of(AWAY).expect("not loopback").to_string();
        admin
            .lift_lockout(&LockoutTarget::Address(away))
            .expect("unlock the address");
        assert_eq!(
            server
                .login("alice", "hunter2hunter2", AWAY)
                .await
                .expect("the address's lockout is lifted"),
            "alice"
        );

        // A lockout that begins after the stamp is not lifted by it.
        tokio::time::sleep(Duration::from_millis(5)).await;
        for _ in 0..3 {
            server.login("alice", "wrong-password", HOME).await.ok();
        }
        assert!(matches!(
            server.login("alice", "hunter2hunter2", fresh).await,
            Err(LoginError::Locked { .. })
        ));
    }

    /// From loopback, however many accounts fail, only each account is locked out.
    #[tokio::test]
    async fn loopback_is_never_locked_as_an_address() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 3);
        accounts
            .register("bob", "bobbobbobbob")
            .await
            .expect("register");
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for name in [
            "alice", "alice", "alice", "xavier", "yolanda", "zed", "quinn",
        ] {
            accounts.login(name, "guess-guess", loopback).await.ok();
        }
        assert!(matches!(
            accounts.login("alice", "guess-guess", loopback).await,
            Err(LoginError::Locked { .. })
        ));
        assert_eq!(
            accounts
                .login("bob", "bobbobbobbob", loopback)
                .await
                .expect("loopback is not locked"),
            "bob"
        );
    }

    /// A login dropped while its hash runs (its connection killed) gives its place back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_login_gives_its_place_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 1);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        for _ in 0..3 {
            let login = accounts.login("alice", "hunter2hunter2", HOME);
            // Long enough to take up the guess, too short for the hash.
            let cut = tokio::time::timeout(Duration::from_micros(10), login).await;
            assert!(cut.is_err() || cut.is_ok_and(|r| r.is_ok()));
        }
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            accounts.login("alice", "hunter2hunter2", HOME),
        )
        .await
        .expect("no place was leaked: the login does not wait forever");
        assert_eq!(result.expect("login"), "alice");
    }

    /// max_failures guesses in flight at once fill the account's places: the next waits, and is
    /// refused when they have failed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn guesses_in_flight_count_against_the_lockout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 3);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        let guesses: Vec<_> = (0..10u8)
            .map(|i| {
                let accounts = accounts.clone();
                tokio::spawn(async move {
                    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i));
                    accounts.login("alice", &format!("wrong-{i}"), ip).await
                })
            })
            .collect();
        let mut invalid = 0;
        for guess in guesses {
            match guess.await.expect("task") {
                Err(LoginError::Invalid) => invalid += 1,
                Err(LoginError::Locked { .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(invalid, 3, "only max_failures guesses are checked");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_logins_all_get_answers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 100);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        let attempts: Vec<_> = (0..12u8)
            .map(|i| {
                let accounts = accounts.clone();
                let password = if i % 2 == 0 {
                    "hunter2hunter2"
                } else {
                    "wrong-password"
                };
                tokio::spawn(async move {
                    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, i));
                    accounts.login("alice", password, ip).await.is_ok()
                })
            })
            .collect();
        let mut successes = 0;
        for attempt in attempts {
            successes += usize::from(attempt.await.expect("login task"));
        }
        assert_eq!(successes, 6);
    }

    #[test]
    fn admin_operations_change_the_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 5);
        accounts
            .add_account("alice", "first-password")
            .expect("add");
        let before = accounts.account("alice").expect("lookup").expect("found");
        accounts
            .set_password("ALICE", "second-password")
            .expect("passwd");
        let after = accounts.account("alice").expect("lookup").expect("found");
        assert_ne!(before.password_hash, after.password_hash);
        assert!(verify_password(
            &mut HashMemory::default(),
            "second-password",
            &after.password_hash
        ));
        assert!(matches!(
            accounts.set_password("nobody", "second-password"),
            Err(AccountError::NotFound(_))
        ));
        assert!(matches!(
            accounts.set_password("alice", "short"),
            Err(AccountError::PasswordTooShort { .. })
        ));
        accounts.remove_account("alice").expect("remove");
        assert!(accounts.list_accounts().expect("list").is_empty());
        assert!(matches!(
            accounts.remove_account("alice"),
            Err(AccountError::NotFound(_))
        ));
    }

    #[test]
    fn failure_delay_doubles_and_is_capped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 5).with_failure_delay(Duration::from_millis(250));
        let delays: Vec<u128> = (1..=7)
            .map(|n| accounts.delay_after(n).as_millis())
            .collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn whole_seconds_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(900)), 900);
    }

    #[tokio::test]
    async fn account_names_follow_creates_removes_and_refreshes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 5);
        accounts
            .add_account("alice", "hunter2hunter2")
            .expect("add");
        assert!(
            accounts.is_account_name("ALICE").expect("lookup"),
            "the store answers before the names are loaded"
        );
        assert_eq!(accounts.load_names().expect("load"), 1);
        accounts
            .register("Bob", "bobbobbobbob")
            .await
            .expect("register");
        assert!(accounts.is_account_name("bob").expect("lookup"));
        accounts.remove_account("ALICE").expect("remove");
        assert!(!accounts.is_account_name("alice").expect("lookup"));

        // Another process (here another handle on the same file) adds an account: it shows
        // after the next refresh.
        let other = self::accounts(&dir, 5);
        other.add_account("carol", "carol-password").expect("add");
        assert!(!accounts.is_account_name("carol").expect("lookup"));
        assert_eq!(accounts.load_names().expect("refresh"), 2);
        assert!(accounts.is_account_name("Carol").expect("lookup"));
    }

    #[test]
    fn changes_during_a_refresh_are_replayed_on_what_it_read() {
        let mut names = AccountNames::default();
        names.begin_refresh();
        names.change("dave".to_owned(), true);
        names.change("erin".to_owned(), false);
        let read = HashSet::from(["erin".to_owned(), "fred".to_owned()]);
        assert_eq!(names.finish_refresh(read), 2);
        let set = names.set.as_ref().expect("loaded");
        assert!(set.contains("dave") && set.contains("fred") && !set.contains("erin"));
        assert!(names.journal.is_empty() && !names.refreshing);
        names.change("gail".to_owned(), true);
        assert!(names.journal.is_empty(), "no journal outside a refresh");
    }
}
