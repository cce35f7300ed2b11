//! `parleyd users ...`: the operator's account commands, working on the same database file as a
//! running server (SQLite in WAL mode lets both in). Passwords come from a no-echo prompt asked
//! twice, or as one line on standard input for scripts; they are never echoed or printed. Bulk
//! `import` reports every bad line by number and never overwrites an existing account.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use parley_proto::casefold;

use crate::accounts::{hash_password, AccountError, AccountRules, Accounts, AddressKey};
use crate::config::Config;
use crate::store::{self, LockoutTarget, StoreError};

/// The `parleyd users` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum UsersCommand {
    /// Create an account; asks for its password twice (or reads one line with --password-stdin).
    Add {
        name: String,
        /// Read the password as one line from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// Make the account a server admin: when it logs in it gets every operator permission
        /// ([operators] admins would give), with no config entry: /broadcast, KILL, K-lines and
        /// D-lines, SUSPEND, WALLOPS, moderating the default channel. Undo with `users admin NAME off`.
        #[arg(long)]
        admin: bool,
    },
    /// Make an account a server admin (on) or no longer one (off), as `users add --admin` does.
    /// Takes effect at its next login (or OPER); an operator already logged in keeps the status
    /// until they disconnect.
    Admin {
        name: String,
        #[arg(value_enum)]
        state: Switch,
    },
    /// Set a new password for an account (this also ends its login sessions).
    Passwd {
        name: String,
        /// Read the password as one line from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account (and its login sessions).
    Remove { name: String },
    /// List every account with its creation time and whether it is disabled (`users lock`).
    List,
    /// Disable an account: every login to it is refused, right password or not, on every
    /// running server, until `users unlock` (this also ends its login sessions).
    Lock { name: String },
    /// Let an account log in again, at once, on every running server: enable it if it was
    /// disabled (`users lock`) and lift its lockout after failed logins. With --address, lift
    /// an address's lockout instead.
    #[command(
        after_help = "A lockout after failed logins lives in the running server's memory and \
                      ends by itself after accounts.lockout_secs; this stamps the database, and \
                      every server using it drops the lockout at the next login attempt. An \
                      IPv6 address is locked out with its whole /64, and so is unlocked."
    )]
    Unlock {
        /// The account to let in again.
        #[arg(required_unless_present = "address", conflicts_with = "address")]
        name: Option<String>,
        /// Lift the lockout of this address (an IPv6 address: its /64) instead of an account's.
        #[arg(long, value_name = "IP")]
        address: Option<IpAddr>,
    },
    /// Add accounts from a file of `name:password` (or `name,password`) lines. The password is
    /// everything after the first separator, spaces included; blank lines and lines starting with
    /// `#` are skipped. Existing accounts are never overwritten.
    Import { file: PathBuf },
    /// List an account's login sessions (browsers that stay logged in), most recently used first.
    Sessions { name: String },
    /// End every login session of an account: its browsers must log in with the password again.
    Logout { name: String },
}

/// `on` or `off`, for `users admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// Why a `parleyd users` command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("cannot read {}: {source}", .path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error(
        "cannot read a password from the terminal ({0}); pipe it in with --password-stdin instead"
    )]
    Prompt(io::Error),
    #[error("cannot read the password from standard input: {0}")]
    Stdin(io::Error),
    #[error("no password on standard input; send the password as one line")]
    NoPassword,
    #[error("the two passwords differ; nothing was changed")]
    PasswordMismatch,
    #[error(
        "added account {name}, but could not make it an admin ({error}); run \
         `parleyd users admin {name} on`"
    )]
    AdminNotSet { name: String, error: AccountError },
    #[error("cannot write output: {0}")]
    Output(io::Error),
    #[error(
        "{file}: {count} bad {}; fix {} and import again (accounts already added are skipped \
         next time)",
        plural(*.count, "line", "lines"), plural(*.count, "it", "them")
    )]
    BadLines { file: String, count: usize },
}

fn plural(count: usize, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 {
        one
    } else {
        many
    }
}

/// Run one `parleyd users` command against the configured database, talking on stdin/stdout.
pub fn run_users_command(command: UsersCommand, config: &Config) -> Result<(), AdminError> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    run_users_command_with(command, config, &mut stdin.lock(), &mut stdout.lock())
}

/// [`run_users_command`] with its input (for `--password-stdin`) and output given.
pub fn run_users_command_with(
    command: UsersCommand,
    config: &Config,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    let accounts = Accounts::new(store::open_default(config)?, config);
    // What changes accounts goes to the audit trail as the admin's own action.
    let audited = match &command {
        UsersCommand::Add {
            name, admin: true, ..
        } => Some(("account_add_admin", name.clone())),
        UsersCommand::Add { name, .. } => Some(("account_add", name.clone())),
        UsersCommand::Admin {
            name,
            state: Switch::On,
        } => Some(("account_admin_on", name.clone())),
        UsersCommand::Admin {
            name,
            state: Switch::Off,
        } => Some(("account_admin_off", name.clone())),
        UsersCommand::Passwd { name, .. } => Some(("password_change", name.clone())),
        UsersCommand::Remove { name } => Some(("account_remove", name.clone())),
        UsersCommand::Lock { name } => Some(("account_lock", name.clone())),
        UsersCommand::Unlock {
            name: Some(name), ..
        } => Some(("account_unlock", name.clone())),
        UsersCommand::Unlock {
            address: Some(ip), ..
        } => Some(("address_unlock", ip.to_string())),
        UsersCommand::Unlock { .. } => None,
        UsersCommand::Import { file } => Some(("account_import", file.display().to_string())),
        UsersCommand::Logout { name } => Some(("sessions_revoke", name.clone())),
        UsersCommand::List | UsersCommand::Sessions { .. } => None,
    };
    let result = run(command, &accounts, input, out);
    if let (Some((action, target)), Ok(())) = (audited, &result) {
        record_admin_action(config, action, &target);
    }
    result
}

/// Append an admin action to the audit trail; failing to is reported, not fatal.
fn record_admin_action(config: &Config, action: &str, target: &str) {
    let event = store::AuditEvent {
        time_ms: crate::clock::now_ms(),
        action: action.to_string(),
        actor: Some("admin-cli".to_string()),
        account: None,
        target: Some(target.to_string()),
        ip: None,
        detail: None,
    };
    let batch = store::WriteBatch {
        audit: vec![event],
        ..Default::default()
    };
    if let Err(err) = store::open_history(config).and_then(|history| history.write(&batch)) {
        eprintln!("warning: could not record this in the audit trail: {err}");
    }
}

fn run(
    command: UsersCommand,
    accounts: &Accounts,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    match command {
        UsersCommand::Add {
            name,
            password_stdin,
            admin,
        } => {
            accounts.check_name(&name)?;
            if accounts.account(&name)?.is_some() {
                return Err(AccountError::AlreadyExists(name).into());
            }
            let password = read_password(accounts, &name, password_stdin, input)?;
            let name = accounts.add_account(&name, &password)?;
            if !admin {
                return say(out, format_args!("added account {name}"));
            }
            accounts
                .set_admin(&name, true)
                .map_err(|error| AdminError::AdminNotSet {
                    name: name.clone(),
                    error,
                })?;
            say(
                out,
                format_args!(
                    "added account {name}, a server admin: it gets every operator permission \
                     when it logs in"
                ),
            )
        }
        UsersCommand::Admin { name, state } => {
            let record = accounts
                .account(&name)?
                .ok_or_else(|| AccountError::NotFound(name.clone()))?;
            let on = state == Switch::On;
            accounts.set_admin(&record.name, on)?;
            if on {
                say(
                    out,
                    format_args!(
                        "{} is a server admin: it gets every operator permission at its next \
                         login",
                        record.name
                    ),
                )
            } else {
                say(
                    out,
                    format_args!(
                        "{} is no longer a server admin by the database (an [operators] entry \
                         in the config still counts); a session logged in now keeps its status \
                         until it disconnects",
                        record.name
                    ),
                )
            }
        }
        UsersCommand::Passwd {
            name,
            password_stdin,
        } => {
            let Some(record) = accounts.account(&name)? else {
                return Err(AccountError::NotFound(name).into());
            };
            let password = read_password(accounts, &record.name, password_stdin, input)?;
            accounts.set_password(&record.name, &password)?;
            say(out, format_args!("changed the password of {}", record.name))
        }
        UsersCommand::Remove { name } => {
            let record = accounts
                .account(&name)?
                .ok_or_else(|| AccountError::NotFound(name.clone()))?;
            accounts.remove_account(&record.name)?;
            say(out, format_args!("removed account {}", record.name))
        }
        UsersCommand::List => list(accounts, out),
        UsersCommand::Lock { name } => {
            let record = accounts
                .account(&name)?
                .ok_or_else(|| AccountError::NotFound(name.clone()))?;
            accounts.set_locked(&record.name, true)?;
            say(
                out,
                format_args!(
                    "locked account {0}: it is disabled, and every login to it is refused, right \
                     password or not, until `parleyd users unlock {0}`",
                    record.name
                ),
            )
        }
        UsersCommand::Unlock {
            name: Some(name), ..
        } => unlock_account(accounts, &name, out),
        UsersCommand::Unlock {
            address: Some(ip), ..
        } => unlock_address(accounts, ip, out),
        // clap requires one of the two.
        UsersCommand::Unlock { .. } => Ok(()),
        UsersCommand::Sessions { name } => sessions(accounts, &name, out),
        UsersCommand::Logout { name } => {
            let record = accounts
                .account(&name)?
                .ok_or_else(|| AccountError::NotFound(name.clone()))?;
            let ended = accounts.store().revoke_sessions(&record.name)?;
            say(
                out,
                format_args!(
                    "ended {ended} login {} of {}; its browsers must log in with the password again",
                    plural(ended, "session", "sessions"),
                    record.name
                ),
            )
        }
        UsersCommand::Import { file } => {
            let text = std::fs::read_to_string(&file).map_err(|source| AdminError::ReadFile {
                path: file.clone(),
                source,
            })?;
            let source = file.display().to_string();
            let summary = import_users(accounts, &source, &text, out)?;
            if summary.bad > 0 {
                return Err(AdminError::BadLines {
                    file: source,
                    count: summary.bad,
                });
            }
            Ok(())
        }
    }
}

/// Enable the account if it was disabled, and stamp its failed-login lockout as lifted, which
/// every running server honours at the account's next login.
fn unlock_account(accounts: &Accounts, name: &str, out: &mut dyn Write) -> Result<(), AdminError> {
    let record = accounts
        .account(name)?
        .ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
    if record.locked {
        accounts.set_locked(&record.name, false)?;
    }
    accounts.lift_lockout(&LockoutTarget::Account(casefold(&record.name)))?;
    let name = &record.name;
    if record.locked {
        say(
            out,
            format_args!(
                "unlocked {name}: the account was disabled (`parleyd users lock`) and is enabled \
                 again, and any lockout after failed logins is lifted; the running server lets \
                 {name} log in again"
            ),
        )
    } else {
        say(
            out,
            format_args!(
                "unlocked {name}: the account was not disabled; any lockout after failed logins \
                 is lifted, so the running server lets {name} log in again"
            ),
        )
    }
}

/// Stamp an address's failed-login lockout as lifted (an IPv6 address's /64, as it is locked).
fn unlock_address(accounts: &Accounts, ip: IpAddr, out: &mut dyn Write) -> Result<(), AdminError> {
    let Some(key) = AddressKey::of(ip) else {
        return say(
            out,
            format_args!(
                "{ip} is a loopback address, which is never locked out as an address (only the \
                 accounts tried from it are, each on its own); nothing to do"
            ),
        );
    };
    accounts.lift_lockout(&LockoutTarget::Address(key.to_string()))?;
    if key.is_network() {
        say(
            out,
            format_args!(
                "unlocked {key} (an IPv6 address is locked out with its whole /64): any lockout \
                 after failed logins is lifted, so the running server accepts logins from {ip} \
                 again"
            ),
        )
    } else {
        say(
            out,
            format_args!(
                "unlocked {key}: any lockout after failed logins is lifted, so the running \
                 server accepts logins from it again"
            ),
        )
    }
}

fn say(out: &mut dyn Write, line: fmt::Arguments<'_>) -> Result<(), AdminError> {
    writeln!(out, "{line}").map_err(AdminError::Output)
}

/// The new password: one line of `input`, or typed twice at a no-echo prompt. Checked against
/// the rules before it is asked again.
fn read_password(
    accounts: &Accounts,
    name: &str,
    from_input: bool,
    input: &mut dyn BufRead,
) -> Result<String, AdminError> {
    if from_input {
        let mut line = String::new();
        if input.read_line(&mut line).map_err(AdminError::Stdin)? == 0 {
            return Err(AdminError::NoPassword);
        }
        let password = line
            .strip_suffix('\n')
            .map(|rest| rest.strip_suffix('\r').unwrap_or(rest))
            .unwrap_or(&line)
            .to_owned();
        accounts.check_password(&password)?;
        return Ok(password);
    }
    let password =
        rpassword::prompt_password(format!("Password for {name}: ")).map_err(AdminError::Prompt)?;
    accounts.check_password(&password)?;
    let again = rpassword::prompt_password("Same password again: ").map_err(AdminError::Prompt)?;
    if again != password {
        return Err(AdminError::PasswordMismatch);
    }
    Ok(password)
}

/// `users sessions NAME`: when each session began, was last used and ends, and its label.
fn sessions(accounts: &Accounts, name: &str, out: &mut dyn Write) -> Result<(), AdminError> {
    let record = accounts
        .account(name)?
        .ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
    let sessions = accounts.store().sessions(&record.name)?;
    if sessions.is_empty() {
        return say(out, format_args!("{} has no login sessions", record.name));
    }
    let time = |secs: i64| {
        let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        humantime::format_rfc3339_seconds(at).to_string()
    };
    say(
        out,
        format_args!(
            "{:<20}  {:<20}  {:<20}  LABEL",
            "CREATED", "LAST USED", "EXPIRES"
        ),
    )?;
    for session in &sessions {
        say(
            out,
            format_args!(
                "{:<20}  {:<20}  {:<20}  {}",
                time(session.created_at),
                time(session.last_used_at),
                time(session.expires_at),
                session.label
            ),
        )?;
    }
    say(
        out,
        format_args!(
            "{} login {} of {}; `parleyd users logout {}` ends them all",
            sessions.len(),
            plural(sessions.len(), "session", "sessions"),
            record.name,
            record.name
        ),
    )
}

fn list(accounts: &Accounts, out: &mut dyn Write) -> Result<(), AdminError> {
    let records = accounts.list_accounts()?;
    if records.is_empty() {
        return say(out, format_args!("no accounts"));
    }
    let width = records
        .iter()
        .map(|record| record.name.len())
        .max()
        .unwrap_or(0)
        .max("NAME".len());
    say(
        out,
        format_args!("{:<width$}  {:<20}  DISABLED  ADMIN", "NAME", "CREATED"),
    )?;
    for record in &records {
        let created =
            UNIX_EPOCH + Duration::from_secs(u64::try_from(record.created_at).unwrap_or(0));
        let disabled = if record.locked { "yes" } else { "no" };
        let admin = if record.admin { "yes" } else { "no" };
        say(
            out,
            format_args!(
                "{:<width$}  {:<20}  {disabled:<8}  {admin}",
                record.name,
                humantime::format_rfc3339_seconds(created).to_string()
            ),
        )?;
    }
    say(
        out,
        format_args!(
            "{} {}",
            records.len(),
            plural(records.len(), "account", "accounts")
        ),
    )
}

/// One usable line of a users file.
#[derive(Clone, PartialEq, Eq)]
pub struct UserLine {
    /// 1-based line number.
    pub line: usize,
    pub name: String,
    pub password: String,
}

// Hand-written so a password never shows up in a debug print or a failed assertion.
impl fmt::Debug for UserLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserLine")
            .field("line", &self.line)
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A line of a users file that cannot be imported, and why (never quoting the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// Parse a users file: one `name:password` or `name,password` per line (names cannot contain
/// either separator, so the first one splits), blank lines and `#` comments skipped. Every other
/// line comes back in order, usable or with the reason it is not; a name seen on an earlier usable
/// line (compared casefolded) is reported, so nothing is added twice.
pub fn parse_users_file(text: &str, rules: &AccountRules) -> Vec<Result<UserLine, BadLine>> {
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    let mut parsed = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let entry = raw.trim_start();
        if entry.trim_end().is_empty() || entry.starts_with('#') {
            continue;
        }
        let bad = |reason: String| Err(BadLine { line, reason });
        let Some(split) = entry.find([':', ',']) else {
            parsed.push(bad(
                "no `:` or `,` between the account name and the password".to_owned(),
            ));
            continue;
        };
        let name = entry[..split].trim_end();
        let password = &entry[split + 1..];
        if name.is_empty() {
            parsed.push(bad("the account name is empty".to_owned()));
            continue;
        }
        if let Err(error) = rules.check_name(name) {
            parsed.push(bad(error.to_string()));
            continue;
        }
        if let Err(error) = rules.check_password(password) {
            parsed.push(bad(format!("account {name}: {error}")));
            continue;
        }
        if let Some(first) = first_seen.get(&casefold(name)) {
            parsed.push(bad(format!(
                "account {name} already appears on line {first}; only that one is imported"
            )));
            continue;
        }
        first_seen.insert(casefold(name), line);
        parsed.push(Ok(UserLine {
            line,
            name: name.to_owned(),
            password: password.to_owned(),
        }));
    }
    parsed
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    pub added: usize,
    /// Usable lines naming an account that already exists (left as it was).
    pub existing: usize,
    /// Lines that could not be imported, each reported with its number.
    pub bad: usize,
}

/// Import the users file `text` (read from `source`, used in messages): report each bad or existing
/// line as `source:line: why`, add the rest, and end with a summary line. Hashing is spread over
/// the machine's cores, since each hash takes tens of milliseconds.
pub fn import_users(
    accounts: &Accounts,
    source: &str,
    text: &str,
    out: &mut dyn Write,
) -> Result<ImportSummary, AdminError> {
    let mut summary = ImportSummary::default();
    let mut to_add = Vec::new();
    for parsed in parse_users_file(text, accounts.rules()) {
        match parsed {
            Err(BadLine { line, reason }) => {
                summary.bad += 1;
                say(out, format_args!("{source}:{line}: {reason}"))?;
            }
            Ok(user) if accounts.account(&user.name)?.is_some() => {
                summary.existing += 1;
                say(
                    out,
                    format_args!("{source}:{}: {}", user.line, exists(&user.name)),
                )?;
            }
            Ok(user) => to_add.push(user),
        }
    }

    let passwords: Vec<&str> = to_add.iter().map(|user| user.password.as_str()).collect();
    for (user, hashed) in to_add.iter().zip(hash_all(accounts, &passwords)) {
        let (hash, scram) = hashed?;
        match accounts.add_hashed_account(&user.name, &hash, scram.as_deref()) {
            Ok(()) => summary.added += 1,
            // Created meanwhile, by a registration on a running server.
            Err(AccountError::AlreadyExists(_)) => {
                summary.existing += 1;
                say(
                    out,
                    format_args!("{source}:{}: {}", user.line, exists(&user.name)),
                )?;
            }
            Err(error) => return Err(error.into()),
        }
    }

    say(
        out,
        format_args!(
            "added {}, skipped {} existing, {} bad {}",
            summary.added,
            summary.existing,
            summary.bad,
            plural(summary.bad, "line", "lines")
        ),
    )?;
    Ok(summary)
}

fn exists(name: &str) -> String {
    format!("account {name} already exists; skipped, not overwritten")
}

/// A password's Argon2id hash and SCRAM credential (none when SASLprep refuses the password).
type Hashed = (String, Option<String>);

/// Hash every password and derive its SCRAM credential, in order, on as many threads as there
/// are cores.
fn hash_all(accounts: &Accounts, passwords: &[&str]) -> Vec<Result<Hashed, AccountError>> {
    if passwords.is_empty() {
        return Vec::new();
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(passwords.len());
    let chunk_len = passwords.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = passwords
            .chunks(chunk_len)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|password| {
                            Ok((
                                hash_password(password)?,
                                accounts.scram_credential(password)?,
                            ))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AccountRules {
        AccountRules {
            name_len: 12,
            min_password_len: 8,
            max_password_len: 64,
        }
    }

    fn config_in(dir: &tempfile::TempDir) -> Config {
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        config.limits.nick_len = 12;
        config.accounts.scram_iterations = parley_proto::scram::MIN_ITERATIONS;
        config
    }

    fn run(
        config: &Config,
        command: UsersCommand,
        input: &str,
    ) -> (Result<(), AdminError>, String) {
        let mut out = Vec::new();
        let result = run_users_command_with(command, config, &mut io::Cursor::new(input), &mut out);
        (result, String::from_utf8(out).expect("utf-8 output"))
    }

    #[test]
    fn parser_takes_both_separators_and_skips_blanks_and_comments() {
        let text = "# accounts for the team\n\
                    alice:correct horse\n\
                    \n\
                    \x20  \n\
                    bob,pass:word,with,separators\r\n\
                    \x20 # indented comment\n\
                    Carol : spaced password \n";
        let parsed = parse_users_file(text, &rules());
        let users: Vec<(usize, &str, &str)> = parsed
            .iter()
            .map(|entry| {
                let user = entry.as_ref().expect("all lines good");
                (user.line, user.name.as_str(), user.password.as_str())
            })
            .collect();
        assert_eq!(
            users,
            [
                (2, "alice", "correct horse"),
                (5, "bob", "pass:word,with,separators"),
                (7, "Carol", " spaced password "),
            ]
        );
    }

    #[test]
    fn parser_reports_bad_lines_with_their_numbers() {
        let text = "good:password1\n\
                    no separator here\n\
                    :password1\n\
                    9lives:password1\n\
                    shorty:abc\n\
                    GOOD:password2\n\
                    fine,password3\n";
        let parsed = parse_users_file(text, &rules());
        let bad: Vec<(usize, &str)> = parsed
            .iter()
            .filter_map(|entry| entry.as_ref().err())
            .map(|bad| (bad.line, bad.reason.as_str()))
            .collect();
        let lines: Vec<usize> = bad.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6]);
        assert!(bad[0].1.contains("no `:` or `,`"), "{}", bad[0].1);
        assert!(bad[1].1.contains("empty"), "{}", bad[1].1);
        assert!(
            bad[2].1.contains("cannot be an account name"),
            "{}",
            bad[2].1
        );
        assert!(bad[3].1.contains("too short"), "{}", bad[3].1);
        assert!(
            !bad[3].1.contains("abc"),
            "never quote the password: {}",
            bad[3].1
        );
        assert!(
            bad[4].1.contains("already appears on line 1"),
            "{}",
            bad[4].1
        );
        let good: Vec<usize> = parsed
            .iter()
            .filter_map(|entry| entry.as_ref().ok())
            .map(|user| user.line)
            .collect();
        assert_eq!(good, [1, 7]);
    }

    #[test]
    fn user_line_debug_hides_the_password() {
        let user = UserLine {
            line: 1,
            name: "alice".to_owned(),
            password: "s3cret-words".to_owned(),
        };
        assert!(!format!("{user:?}").contains("s3cret"));
    }

    #[test]
    fn import_adds_nothing_twice() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config_in(&dir);
        let accounts = Accounts::new(store::open_default(&config).expect("store"), &config);
        accounts.add_account("Alice", "original-pass").expect("add");
        let before = accounts.account("alice").expect("lookup").expect("found");

        let text = "alice:replacement\nbob:bob-password\ncarol,carol-password\nBOB:again-password\nbad line\n";
        let mut out = Vec::new();
        let summary = import_users(&accounts, "users.txt", text, &mut out).expect("import");
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            summary,
            ImportSummary {
                added: 2,
                existing: 1,
                bad: 2
            }
        );
        assert!(
            out.contains("users.txt:1: account alice already exists"),
            "{out}"
        );
        assert!(out.contains("users.txt:4: "), "{out}");
        assert!(out.contains("users.txt:5: "), "{out}");
        assert!(
            out.ends_with("added 2, skipped 1 existing, 2 bad lines\n"),
            "{out}"
        );
        for password in [
            "replacement",
            "bob-password",
            "carol-password",
            "again-password",
        ] {
            assert!(!out.contains(password), "no password in the output: {out}");
        }

        let after = accounts.account("alice").expect("lookup").expect("found");
        assert_eq!(before, after, "the existing account is untouched");
        assert_eq!(accounts.list_accounts().expect("list").len(), 3);

        // Importing again adds nothing.
        let mut out = Vec::new();
        let again = import_users(&accounts, "users.txt", "bob:bob-password\n", &mut out)
            .expect("import again");
        assert_eq!((again.added, again.existing), (0, 1));
        assert_eq!(accounts.list_accounts().expect("list").len(), 3);
    }

    #[test]
    fn import_command_fails_when_a_line_is_bad() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config_in(&dir);
        let file = dir.path().join("users.txt");
        std::fs::write(&file, "dave:dave-password\nnope\n").expect("write users file");
        let (result, out) = run(&config, UsersCommand::Import { file: file.clone() }, "");
        match result {
            Err(AdminError::BadLines { count: 1, .. }) => {}
            other => panic!("expected BadLines, got {other:?}"),
        }
        assert!(out.contains(":2: no `:` or `,`"), "{out}");
        assert!(
            out.contains("added 1, skipped 0 existing, 1 bad line\n"),
            "{out}"
        );

        std::fs::write(&file, "# nothing bad\nerin:erin-password\n").expect("write");
        let (result, out) = run(&config, UsersCommand::Import { file }, "");
        result.expect("a clean file imports without error");
        assert!(
            out.contains("added 1, skipped 0 existing, 0 bad lines"),
            "{out}"
        );

        let missing = dir.path().join("missing.txt");
        let (result, _) = run(&config, UsersCommand::Import { file: missing }, "");
        assert!(
            matches!(result, Err(AdminError::ReadFile { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn commands_manage_accounts_end_to_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config_in(&dir);
        let add = |name: &str| UsersCommand::Add {
            name: name.to_owned(),
            password_stdin: true,
            admin: false,
        };

        let (result, out) = run(&config, add("Alice"), "first-password\n");
        result.expect("add");
        assert_eq!(out, "added account Alice\n");
        assert!(!out.contains("first-password"));

        let (result, _) = run(&config, add("alice"), "other-password\n");
        assert!(
            matches!(
                result,
                Err(AdminError::Account(AccountError::AlreadyExists(_)))
            ),
            "{result:?}"
        );
        let (result, _) = run(&config, add("bob"), "short\n");
        assert!(
            matches!(
                result,
                Err(AdminError::Account(AccountError::PasswordTooShort { .. }))
            ),
            "{result:?}"
        );
        let (result, _) = run(&config, add("bob"), "");
        assert!(matches!(result, Err(AdminError::NoPassword)), "{result:?}");

        let passwd = UsersCommand::Passwd {
            name: "ALICE".to_owned(),
            password_stdin: true,
        };
        let (result, out) = run(&config, passwd, "second-password\r\n");
        result.expect("passwd");
        assert_eq!(out, "changed the password of Alice\n");

        let (result, out) = run(
            &config,
            UsersCommand::Lock {
                name: "alice".to_owned(),
            },
            "",
        );
        result.expect("lock");
        assert!(
            out.starts_with("locked account Alice: it is disabled"),
            "{out}"
        );

        let (result, out) = run(&config, UsersCommand::List, "");
        result.expect("list");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(
            lines[0].starts_with("NAME") && lines[0].ends_with("DISABLED  ADMIN"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("Alice ") && lines[1].ends_with("  yes       no"),
            "{out}"
        );
        assert!(
            lines[1].contains("T") && lines[1].contains("Z"),
            "a date: {out}"
        );
        assert_eq!(lines[2], "1 account");

        let accounts = Accounts::new(store::open_default(&config).expect("store"), &config);
        let record = accounts.account("alice").expect("lookup").expect("found");
        assert!(record.locked);
        assert!(record.password_hash.starts_with("$argon2id$"));

        let unlock = |name: &str| UsersCommand::Unlock {
            name: Some(name.to_owned()),
            address: None,
        };
        let (result, out) = run(&config, unlock("alice"), "");
        result.expect("unlock");
        assert!(
            out.starts_with("unlocked Alice: the account was disabled")
                && out.ends_with("the running server lets Alice log in again\n"),
            "{out}"
        );
        assert!(
            !accounts
                .account("alice")
                .expect("lookup")
                .expect("found")
                .locked
        );
        let target = LockoutTarget::Account("alice".to_owned());
        let first = accounts
            .store()
            .lockout_lifted_at(&target)
            .expect("lookup")
            .expect("a lift stamp for the running server");
        let (result, out) = run(&config, unlock("ALICE"), "");
        result.expect("unlock again");
        assert!(
            out.starts_with("unlocked Alice: the account was not disabled; any lockout"),
            "{out}"
        );
        let second = accounts.store().lockout_lifted_at(&target).expect("lookup");
        assert!(second >= Some(first), "{second:?} {first}");
        let (result, _) = run(&config, unlock("nobody"), "");
        assert!(
            matches!(result, Err(AdminError::Account(AccountError::NotFound(_)))),
            "{result:?}"
        );

        let address = |ip: &str| UsersCommand::Unlock {
            name: None,
            address: Some(ip.parse().expect("an address")),
        };
        let (result, out) = run(&config, address("203.0.113.9"), "");
        result.expect("unlock an address");
        assert!(out.starts_with("unlocked 203.0.113.9: "), "{out}");
        let (result, out) = run(&config, address("2001:db8:1:2::77"), "");
        result.expect("unlock an IPv6 address");
        assert!(
            out.starts_with("unlocked 2001:db8:1:2::/64 (an IPv6"),
            "{out}"
        );
        for stored in ["203.0.113.9", "2001:db8:1:2::/64"] {
            let target = LockoutTarget::Address(stored.to_owned());
            let stamp = accounts.store().lockout_lifted_at(&target).expect("lookup");
            assert!(stamp.is_some(), "{stored}");
        }
        let (result, out) = run(&config, address("::ffff:127.0.0.1"), "");
        result.expect("loopback");
        assert!(out.contains("never locked out"), "{out}");

        let (result, out) = run(
            &config,
            UsersCommand::Remove {
                name: "ALICE".to_owned(),
            },
            "",
        );
        result.expect("remove");
        assert_eq!(out, "removed account Alice\n");
        let (result, out) = run(&config, UsersCommand::List, "");
        result.expect("list");
        assert_eq!(out, "no accounts\n");
        let (result, _) = run(
            &config,
            UsersCommand::Remove {
                name: "alice".to_owned(),
            },
            "",
        );
        assert!(
            matches!(result, Err(AdminError::Account(AccountError::NotFound(_)))),
            "{result:?}"
        );
    }

    #[test]
    fn hash_all_keeps_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = config_in(&dir);
        let accounts = Accounts::new(store::open_default(&config).expect("store"), &config);
        let hashed = hash_all(
            &accounts,
            &["one-password", "two-password", "three-password"],
        );
        let (hashes, credentials): (Vec<String>, Vec<Option<String>>) =
            hashed.into_iter().map(|h| h.expect("hash")).unzip();
        assert_eq!(hashes.len(), 3);
        assert!(
            credentials.iter().all(|c| c
                .as_deref()
                .is_some_and(|c| c.starts_with("SCRAM-SHA-256$4096:"))),
            "{credentials:?}"
        );
        let verifier = argon2::Argon2::default();
        use argon2::password_hash::PasswordVerifier;
        for (password, hash) in ["one-password", "two-password", "three-password"]
            .iter()
            .zip(&hashes)
        {
            assert!(verifier
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok());
        }
    }
}
