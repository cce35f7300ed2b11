//! A private PostgreSQL server for one test, which the test may stop and start (a restart of
//! the database under a running parleyd). The shared server of `PARLEY_TEST_POSTGRES_URL` is
//! used by every other test at once, so it is never the one restarted.
//!
//! `initdb` and `pg_ctl` from the newest `/usr/lib/postgresql/<version>/bin` make a cluster in a
//! temp dir, listening on a free loopback port only (and a socket in that dir), with password
//! logins for TCP; as root they run as the `postgres` user, which PostgreSQL requires. Without
//! those tools the test skips with a line on stderr, unless `PARLEY_REQUIRE_CLUSTER=1` or
//! `PARLEY_REQUIRE_POSTGRES=1` (CI): then it fails.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use tokio::process::Command;

use super::free_port;

/// A PostgreSQL server of the test's own; stopped (immediately) on drop.
pub struct PgInstance {
    bin: PathBuf,
    /// Holds the data directory, the socket, the log and the password file.
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    running: bool,
}

/// Whether a missing PostgreSQL installation must fail the test instead of skipping it.
fn required() -> bool {
    ["PARLEY_REQUIRE_CLUSTER", "PARLEY_REQUIRE_POSTGRES"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| v == "1"))
}

/// The newest installed `/usr/lib/postgresql/<version>/bin` that has `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether this process runs as root (PostgreSQL refuses to run as root).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

impl PgInstance {
    /// A new, started server, or `None` (after saying why) when PostgreSQL is not installed.
    pub async fn start() -> Option<PgInstance> {
        let Some(bin) = postgres_bin() else {
            assert!(
                !required(),
                "a private PostgreSQL is needed but no /usr/lib/postgresql/<version>/bin has \
                 initdb and pg_ctl; install postgresql"
            );
            eprintln!("skipping: no PostgreSQL installation for a private server");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir for PostgreSQL");
        // A password no other test (or local user) can guess, for the superuser on TCP.
        let password = format!("pg-{}-{}", std::process::id(), free_port());
        let instance = PgInstance {
            bin,
            dir,
            port: free_port(),
            password,
            running: false,
        };
        let pwfile = instance.dir.path().join("pwfile");
        std::fs::write(&pwfile, &instance.password).expect("write the password file");
        if running_as_root() {
            let owner = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(instance.dir.path())
                .status()
                .await
                .expect("run chown");
            assert!(owner.success(), "chown the PostgreSQL dir to postgres");
        }
        let initdb = instance
            .command("initdb")
            .arg("-D")
            .arg(instance.data())
            .args(["-U", "postgres", "--auth-local=trust"])
            .args([
                "--auth-host=scram-sha-256",
                "--no-sync",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .await
            .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let mut instance = instance;
        instance.start_server().await;
        Some(instance)
    }

    /// `postgres://` URL of the `postgres` database as the superuser, over loopback TCP.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `name` on this server.
    pub fn url_for(&self, name: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{name}",
            self.password, self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Run SQL statements as the superuser on database `name` (a thread of its own: the
    /// blocking client must not start its runtime on a tokio worker).
    pub async fn execute(&self, name: &str, sql: &str) {
        let (url, sql) = (self.url_for(name), sql.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("connect to the private PostgreSQL: {e}"));
            client
                .batch_execute(&sql)
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
        .await
        .expect("the SQL task");
    }

    /// The single number `sql` selects on database `name`, e.g. a `count(*)`.
    pub async fn number(&self, name: &str, sql: &str) -> i64 {
        let (url, sql) = (self.url_for(name), sql.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("connect to the private PostgreSQL: {e}"));
            client
                .query_one(&sql, &[])
                .and_then(|row| row.try_get::<_, i64>(0))
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
        .await
        .expect("the SQL task")
    }

    /// Poll `sql` (a number, as [`Self::number`]) until it is `expected`, for at most 30 s.
    pub async fn await_number(&self, name: &str, sql: &str, expected: i64) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let now = self.number(name, sql).await;
            if now == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{sql} stayed {now}, never {expected}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A fast shutdown, as an operator's `systemctl restart postgresql` begins: every session is
    /// ended (each gets a FATAL), open transactions roll back. Returns once it is down.
    pub async fn stop(&mut self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]).await;
        self.running = false;
    }

    /// Start again on the same port with the same data. Returns once it takes connections.
    pub async fn start_server(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let args = [
            "-o".to_owned(),
            options,
            "-l".to_owned(),
            log.display().to_string(),
            "-w".to_owned(),
            "-t".to_owned(),
            "30".to_owned(),
            "start".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.pg_ctl(&args).await;
        self.running = true;
    }

    /// What the server logged, for a failing test.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `pg_ctl -D <data> <args>`, which must succeed.
    async fn pg_ctl(&self, args: &[&str]) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(args)
            .output()
            .await
            .expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}{}\nits log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// One of PostgreSQL's programs, as the `postgres` user when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        command.kill_on_drop(true).current_dir(self.dir.path());
        command
    }
}

impl Drop for PgInstance {
    /// An immediate stop (no checkpoint: the data dir goes with the temp dir), bounded by
    /// pg_ctl's own wait.
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        if std::thread::panicking() {
            eprintln!("private PostgreSQL's log:\n{}", self.log());
        }
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = if running_as_root() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            std::process::Command::new(&path)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "-t", "10", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
