//! SCRAM-SHA-256 for accounts: the credential each account keeps (derived from a password the
//! server was given: at registration, at a password change, or at the first PLAIN/PASS login of
//! an account made before SCRAM), and the server's side of a SASL SCRAM login with the same
//! lockout, throttle and failure delays as PLAIN. The exchange itself is `parley_proto::scram`.
//!
//! A name without a usable credential (unknown, or not upgraded yet) is answered with a fake one
//! whose salt comes from a server secret and the name, so it is stable like a real salt and the
//! first message does not tell which names exist. The secret lives in `<data_dir>/scram-secret`
//! so that stays true across restarts; nodes sharing one database should share that file too.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use parley_proto::casefold;
use parley_proto::scram::{
    nonce_from_random, ClientFirst, ServerExchange, StoredCredential, KEY_LEN,
};
use sha2::Sha256;

use super::{AccountError, Accounts, LoginError};
use crate::store::{AccountRecord, AccountStore};

/// Bytes of salt in a credential, real or fake (RFC 5802 leaves it open; PostgreSQL uses 16).
const SALT_LEN: usize = 16;
/// Random bytes in the server's half of the nonce.
const NONCE_BYTES: usize = 18;
/// The secret's file name in `server.data_dir`.
pub const SECRET_FILE: &str = "scram-secret";
/// What the shared secret signs a cluster session handoff under (never a SCRAM key's label).
const HANDOFF_LABEL: &[u8] = b"cluster session handoff";

/// `n` bytes from the operating system's random source.
fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// The key fake credentials are derived from. Secret: whoever knows it can tell fake salts from
/// real ones, and so which account names exist.
pub struct ScramSecret([u8; KEY_LEN]);

impl fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ScramSecret(<redacted>)")
    }
}

impl ScramSecret {
    /// The secret's bytes, for nodes of a cluster to agree on one (the `shared_secrets` table).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; KEY_LEN]>::try_from(bytes).ok().map(ScramSecret)
    }

    /// A secret for this process only: enough for the admin CLI and unit tests, which answer no
    /// logins across restarts. Should the random source fail, std's randomly keyed hasher (also
    /// seeded by the OS) still gives an unpredictable key.
    pub(super) fn ephemeral() -> Self {
        random().map(ScramSecret).unwrap_or_else(|error| {
            tracing::warn!(%error, "no OS random source; deriving the SCRAM secret from std's hasher keys");
            use std::hash::{BuildHasher, Hasher};
            let mut key = [0; KEY_LEN];
            for chunk in key.chunks_mut(8) {
                let word = std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish();
                chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
            }
            ScramSecret(key)
        })
    }

    /// Read `<data_dir>/scram-secret`, or make it on first start: 32 random bytes, owner-only,
    /// written to a temporary file and linked into place, so a crash or a second process
    /// starting at the same moment never leaves a partial or a second secret.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, AccountError> {
        let path = data_dir.join(SECRET_FILE);
        let fail = |reason: String| AccountError::Secret {
            path: path.clone(),
            reason,
        };
        let read = |path: &Path| -> Result<Option<Self>, AccountError> {
            match std::fs::read(path) {
                Ok(bytes) => <[u8; KEY_LEN]>::try_from(bytes)
                    .map(|key| Some(ScramSecret(key)))
                    .map_err(|_| {
                        fail(format!(
                            "it is not {KEY_LEN} bytes; move it aside and restart to make a new one"
                        ))
                    }),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(fail(format!("{error}; check its permissions"))),
            }
        };
        if let Some(secret) = read(&path)? {
            return Ok(secret);
        }
        std::fs::create_dir_all(data_dir)
            .map_err(|error| fail(format!("cannot create its directory: {error}")))?;
        let key: [u8; KEY_LEN] =
            random().map_err(|error| fail(format!("no OS random source: {error}")))?;
        let temporary = data_dir.join(format!("{SECRET_FILE}.{}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temporary).and_then(|mut file| {
            file.write_all(&key)?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, &path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => Ok(ScramSecret(key)),
            // Another process made it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                read(&path)?.ok_or_else(|| fail("it vanished while being created".to_owned()))
            }
            Err(error) => Err(fail(format!("cannot write it: {error}"))),
        }
    }

    /// Whether `tag` is [`ScramSecret::derive`] of `label` and `text`, compared in constant time.
    fn verify(&self, label: &[u8], text: &str, tag: &[u8]) -> bool {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) else {
            return false;
        };
        mac.update(label);
        mac.update(b"\0");
        mac.update(text.as_bytes());
        mac.verify_slice(tag).is_ok()
    }

    fn derive(&self, label: &[u8], folded: &str) -> [u8; KEY_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC accepts a key of any length");
        mac.update(label);
        mac.update(b"\0");
        mac.update(folded.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A new credential for `password` with a fresh salt, in RFC 5803 form (slow: PBKDF2; call it
/// off the async runtime). `Ok(None)` when SASLprep refuses the password: that account logs in
/// with PLAIN only.
pub fn scram_credential(password: &str, iterations: u32) -> Result<Option<String>, AccountError> {
    let salt: [u8; SALT_LEN] =
        random().map_err(|error| AccountError::Hash(format!("no OS random source: {error}")))?;
    match StoredCredential::new(password, &salt, iterations) {
        Ok(credential) => Ok(Some(credential.to_string())),
        Err(parley_proto::scram::ScramError::Password) => Ok(None),
        Err(error) => Err(AccountError::Hash(error.to_string())),
    }
}

/// Whether a login that just proved `record`'s password should (re)make its credential: it has
/// none, an unreadable one, or one with fewer rounds than now configured.
pub(super) fn needs_credential(record: &AccountRecord, iterations: u32) -> bool {
    record
        .scram
        .as_deref()
        .and_then(|text| StoredCredential::parse(text).ok())
        .is_none_or(|credential| credential.iterations() < iterations)
}

/// Store a credential for the password a PLAIN login just proved (blocking). If the password
/// changed meanwhile, the credential would answer for the old one, so it is cleared again: a
/// later PLAIN login makes the right one. Failures are logged, never fatal to the login.
pub(super) fn upgrade(
    store: &dyn AccountStore,
    record: &AccountRecord,
    password: &str,
    iterations: u32,
) {
    let credential = match scram_credential(password, iterations) {
        Ok(Some(credential)) => credential,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(account = %record.name, %error, "SCRAM credential not made");
            return;
        }
    };
    let stored = store
        .set_scram(&record.name, Some(&credential))
        .and_then(|()| {
            let now = store.account(&record.name)?;
            if now.is_some_and(|now| now.password_hash != record.password_hash) {
                store.set_scram(&record.name, None)?;
            }
            Ok(())
        });
    match stored {
        Ok(()) => tracing::info!(account = %record.name, "SCRAM-SHA-256 credential stored"),
        Err(error) => tracing::warn!(account = %record.name, %error, "SCRAM credential not stored"),
    }
}

/// One SCRAM login between the server's first message and the client's proof.
pub struct ScramLogin {
    exchange: ServerExchange,
    /// The name as the client sent it, for the throttle and the logs.
    requested: String,
    folded: String,
    /// The account as registered, when it exists and has a credential.
    account: Option<String>,
    locked: bool,
}

impl fmt::Debug for ScramLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramLogin")
            .field("requested", &self.requested)
            .finish_non_exhaustive()
    }
}

impl ScramLogin {
    /// The server's first message, to send.
    pub fn server_first(&self) -> &str {
        self.exchange.server_first()
    }
}

impl Accounts {
    /// Use a secret that outlives this process for fake credentials (the server's, from
    /// [`ScramSecret::load_or_create`]).
    /// A node's word that it logged a connection in to the account a cluster session handoff
    /// names (`cluster::bridge`): a MAC under the cluster's shared secret, which the nodes read
    /// from PostgreSQL, so a NATS login alone (a node's, leaked) cannot hand over a session.
    pub fn handoff_mac(&self, text: &str) -> [u8; KEY_LEN] {
        self.scram_secret.derive(HANDOFF_LABEL, text)
    }

    /// Whether `mac` is [`Accounts::handoff_mac`] of `text`.
    pub fn handoff_mac_ok(&self, text: &str, mac: &[u8]) -> bool {
        self.scram_secret.verify(HANDOFF_LABEL, text, mac)
    }

    pub fn with_scram_secret(mut self, secret: ScramSecret) -> Self {
        self.scram_secret = Arc::new(secret);
        self
    }

    /// A credential for the current password, as [`scram_credential`] with the configured rounds.
    pub fn scram_credential(&self, password: &str) -> Result<Option<String>, AccountError> {
        scram_credential(password, self.scram_iterations)
    }

    /// Answer a client's first message: the account's credential, or a fake one that looks the
    /// same. A name or address locked out is refused before any lookup, as for PLAIN.
    pub async fn scram_start(
        &self,
        first: &ClientFirst,
        ip: IpAddr,
    ) -> Result<ScramLogin, LoginError> {
        let requested = first.username().to_owned();
        let folded = casefold(&requested);
        self.refuse_if_locked(&requested, &folded, ip).await?;
        let record = match self.store.account_now(&requested) {
            Some(record) => record?,
            None => {
                let store = Arc::clone(&self.store);
                let lookup = requested.clone();
                tokio::task::spawn_blocking(move || store.account(&lookup))
                    .await
                    .map_err(|error| LoginError::Task(error.to_string()))??
            }
        };
        let real = record.and_then(|record| {
            let text = record.scram.as_deref()?;
            match StoredCredential::parse(text) {
                Ok(credential) => Some((record.name, record.locked, credential)),
                Err(error) => {
                    tracing::error!(account = %record.name, %error, "stored SCRAM credential cannot be read");
                    None
                }
            }
        });
        let (account, locked, credential) = match real {
            Some((name, locked, credential)) => (Some(name), locked, credential),
            None => (None, false, self.fake_credential(&folded)),
        };
        let nonce = random::<NONCE_BYTES>()
            .map_err(|error| LoginError::Task(format!("no OS random source: {error}")))?;
        let exchange = ServerExchange::new(first, &nonce_from_random(&nonce), credential)
            .map_err(|error| LoginError::Task(error.to_string()))?;
        Ok(ScramLogin {
            exchange,
            requested,
            folded,
            account,
            locked,
        })
    }

    /// Check the client's proof. Returns the account as registered and the server's final
    /// message. A wrong proof, a replayed or forged message, and an unknown name all fail alike,
    /// counted and delayed as a wrong PLAIN password is; the lockout is checked again here, so
    /// exchanges held open meanwhile cannot add guesses past it.
    pub async fn scram_finish(
        &self,
        login: ScramLogin,
        client_final: &str,
        ip: IpAddr,
    ) -> Result<(String, String), LoginError> {
        let ScramLogin {
            exchange,
            requested,
            folded,
            account,
            locked,
        } = login;
        let guess = self.begin_guess(&requested, &folded, ip).await?;
        match (exchange.finish(client_final), account) {
            // Suspended: every proof, right or wrong, is the same counted failure.
            (_, Some(account)) if locked => {
                tracing::warn!(account = %account, %ip, "login refused: account suspended");
                Err(self
                    .failed_login(guess, &requested, ip, LoginError::Disabled)
                    .await)
            }
            (Ok(server_final), Some(account)) => {
                self.succeeded(guess, &requested, ip).await?;
                tracing::info!(account = %account, %ip, mechanism = "SCRAM-SHA-256", "login succeeded");
                Ok((account, server_final))
            }
            (result, _) => {
                if let Err(error) = result {
                    tracing::debug!(account = %self.loggable(&requested), %ip, %error, "SCRAM proof refused");
                }
                Err(self
                    .failed_login(guess, &requested, ip, LoginError::Invalid)
                    .await)
            }
        }
    }

    /// What a name without a credential is answered with: the configured rounds, a salt and keys
    /// from the secret and the name. Nobody can prove it: that would take a SHA-256 preimage.
    fn fake_credential(&self, folded: &str) -> StoredCredential {
        let salt = self.scram_secret.derive(b"salt", folded)[..SALT_LEN].to_vec();
        StoredCredential::from_parts(
            self.scram_iterations,
            salt,
            self.scram_secret.derive(b"stored key", folded),
            self.scram_secret.derive(b"server key", folded),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::SqliteStore;
    use parley_proto::scram::{ClientExchange, SaltedPassword, MAX_ITERATIONS, MIN_ITERATIONS};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn accounts(dir: &tempfile::TempDir, max_failures: u32) -> Accounts {
        let mut config = Config::default();
        config.accounts.max_failures = max_failures;
        config.accounts.scram_iterations = MIN_ITERATIONS;
        let store = SqliteStore::open(&dir.path().join("accounts.db")).expect("open store");
        Accounts::new(Arc::new(store), &config).with_failure_delay(Duration::from_millis(1))
    }

    /// The client's side of a login, run against `accounts`.
    async fn log_in(
        accounts: &Accounts,
        name: &str,
        password: &str,
    ) -> Result<(String, String), LoginError> {
        let client = ClientExchange::new(name, "client-nonce").expect("client");
        let first = ClientFirst::parse(&client.client_first()).expect("client-first");
        let login = accounts.scram_start(&first, HOME).await?;
        let challenge = client
            .server_first(login.server_first(), MAX_ITERATIONS)
            .expect("server-first");
        let salted = SaltedPassword::derive(password, challenge.salt(), challenge.iterations())
            .expect("derive");
        let response = challenge.respond(&salted);
        let (account, server_final) = accounts
            .scram_finish(login, response.message(), HOME)
            .await?;
        response
            .verify_server_final(&server_final)
            .expect("the server proves itself");
        Ok((account, server_final))
    }

    async fn server_first(accounts: &Accounts, name: &str) -> String {
        let client = ClientExchange::new(name, "client-nonce").expect("client");
        let first = ClientFirst::parse(&client.client_first()).expect("client-first");
        let login = accounts.scram_start(&first, HOME).await.expect("start");
        // Drop the random half of the nonce: what is left must not depend on the account.
        let text = login.server_first();
        text[text.find(",s=").expect("salt")..].to_owned()
    }

    #[tokio::test]
    async fn registered_accounts_log_in_with_scram() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 5);
        accounts
            .register("Alice", "hunter2hunter2")
            .await
            .expect("register");
        let stored = accounts.account("alice").expect("lookup").expect("found");
        let credential = stored.scram.expect("registration stores a credential");
        assert!(
            credential.starts_with("SCRAM-SHA-256$4096:"),
            "{credential}"
        );
        assert!(!credential.contains("hunter2"));
        let (account, _) = log_in(&accounts, "ALICE", "hunter2hunter2")
            .await
            .expect("login");
        assert_eq!(account, "Alice");
        assert!(matches!(
            log_in(&accounts, "alice", "hunter3hunter3").await,
            Err(LoginError::Invalid)
        ));
    }

    #[tokio::test]
    async fn unknown_names_look_like_real_ones_and_stay_the_same() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 50);
        accounts
            .register("alice", "hunter2hunter2")
            .await
            .expect("register");
        let real = server_first(&accounts, "alice").await;
        let fake = server_first(&accounts, "mallory").await;
        assert_eq!(real.len(), fake.len(), "{real} / {fake}");
        assert!(fake.ends_with(",i=4096"), "{fake}");
        assert_eq!(
            fake,
            server_first(&accounts, "Mallory").await,
            "stable per name"
        );
        assert_ne!(fake, server_first(&accounts, "trudy").await);
        assert!(matches!(
            log_in(&accounts, "mallory", "anything-at-all").await,
            Err(LoginError::Invalid)
        ));
    }

    #[tokio::test]
    async fn plain_login_upgrades_an_old_account_and_a_new_password_replaces_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 50);
        let hash = super::super::hash_password("old-password").expect("hash");
        accounts
            .add_hashed_account("bob", &hash, None)
            .expect("add");
        assert!(
            matches!(
                log_in(&accounts, "bob", "old-password").await,
                Err(LoginError::Invalid)
            ),
            "no credential yet"
        );
        accounts
            .login("bob", "old-password", HOME)
            .await
            .expect("plain login");
        log_in(&accounts, "bob", "old-password")
            .await
            .expect("scram after the upgrade");

        accounts
            .set_password("bob", "new-password")
            .expect("passwd");
        assert!(matches!(
            log_in(&accounts, "bob", "old-password").await,
            Err(LoginError::Invalid)
        ));
        log_in(&accounts, "bob", "new-password")
            .await
            .expect("the new password's credential");
    }

    #[tokio::test]
    async fn scram_failures_lock_out_like_plain_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 2);
        accounts
            .register("carol", "carol-password")
            .await
            .expect("register");
        for _ in 0..2 {
            assert!(matches!(
                log_in(&accounts, "carol", "guess-guess").await,
                Err(LoginError::Invalid)
            ));
        }
        assert!(matches!(
            log_in(&accounts, "carol", "carol-password").await,
            Err(LoginError::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn held_exchanges_cannot_guess_past_the_lockout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 2);
        accounts
            .register("dave", "dave-password")
            .await
            .expect("register");
        // Open three exchanges first, then answer them all.
        let mut held = Vec::new();
        for _ in 0..3 {
            let client = ClientExchange::new("dave", "nonce").expect("client");
            let first = ClientFirst::parse(&client.client_first()).expect("first");
            let login = accounts.scram_start(&first, HOME).await.expect("start");
            let challenge = client
                .server_first(login.server_first(), MAX_ITERATIONS)
                .expect("server-first");
            held.push((login, challenge));
        }
        let mut outcomes = Vec::new();
        for (login, challenge) in held {
            let salted = SaltedPassword::derive("guess", challenge.salt(), challenge.iterations())
                .expect("derive");
            let proof = challenge.respond(&salted);
            outcomes.push(accounts.scram_finish(login, proof.message(), HOME).await);
        }
        assert!(matches!(outcomes[0], Err(LoginError::Invalid)));
        assert!(matches!(outcomes[1], Err(LoginError::Invalid)));
        assert!(
            matches!(outcomes[2], Err(LoginError::Locked { .. })),
            "{:?}",
            outcomes[2]
        );
    }

    #[tokio::test]
    async fn a_locked_account_answers_every_proof_alike() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = accounts(&dir, 50);
        accounts
            .register("erin", "erin-password")
            .await
            .expect("register");
        accounts.set_locked("erin", true).expect("lock");
        assert!(matches!(
            log_in(&accounts, "erin", "erin-password").await,
            Err(LoginError::Disabled)
        ));
        assert!(matches!(
            log_in(&accounts, "erin", "not-erins").await,
            Err(LoginError::Disabled)
        ));
    }

    #[test]
    fn the_secret_file_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let first = ScramSecret::load_or_create(&data).expect("create");
        let second = ScramSecret::load_or_create(&data).expect("load");
        assert_eq!(first.0, second.0);
        let path = data.join(SECRET_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
        }
        assert_eq!(
            std::fs::read_dir(&data).expect("list").count(),
            1,
            "no temporary left"
        );
        std::fs::write(&path, b"short").expect("damage");
        let error = ScramSecret::load_or_create(&data).expect_err("refused");
        assert!(error.to_string().contains("move it aside"), "{error}");
        assert!(!format!("{first:?}").contains(&format!("{:?}", first.0)));
    }

    #[test]
    fn credentials_are_redone_only_when_missing_or_weaker() {
        let record = |scram: Option<String>| AccountRecord {
            name: "x".into(),
            password_hash: "h".into(),
            created_at: 0,
            locked: false,
            scram,
            admin: false,
        };
        let made = scram_credential("password", 5000)
            .expect("credential")
            .expect("saslprep accepts it");
        assert!(needs_credential(&record(None), 4096));
        assert!(needs_credential(&record(Some("garbage".into())), 4096));
        assert!(!needs_credential(&record(Some(made.clone())), 4096));
        assert!(!needs_credential(&record(Some(made.clone())), 5000));
        assert!(needs_credential(&record(Some(made)), 5001));
        assert_eq!(scram_credential("bell\u{7}", 4096).expect("no error"), None);
    }
}
