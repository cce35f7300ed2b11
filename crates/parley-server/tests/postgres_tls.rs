//! TLS to PostgreSQL, against a real server: parleyd's store must encrypt when the URL asks for
//! it (`sslmode=require`, `verify-ca`, `verify-full`), verify the server's certificate against
//! `accounts.postgres_ca`, and refuse (sending nothing, least of all the password) a server whose
//! certificate does not verify or that does not offer TLS at all.
//!
//! Each run starts its own throwaway PostgreSQL cluster (initdb in a temp dir, TLS on, TCP only
//! through `hostssl`) with a CA and certificate made here. Without PostgreSQL's binaries the test
//! is skipped, unless `PARLEY_REQUIRE_POSTGRES=1` (CI) makes that a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

const PASSWORD: &str = "Tls-Only-Pa55word";

/// A CA, as the PEM file parleyd is pointed at, and the issuer that signs server certificates.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.issuer.pem()).expect("write CA");
        path.to_path_buf()
    }

    /// A server certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
    fn server_cert(&self) -> (String, String) {
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        (cert.pem(), key.serialize_pem())
    }

    /// A client certificate for PostgreSQL's `cert` authentication as `user`: (cert, key) PEM.
    fn client_cert(&self, user: &str) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, user);
        let key = KeyPair::generate().expect("client key");
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        (cert.pem(), key.serialize_pem())
    }
}

/// A PostgreSQL cluster of its own, with TLS on and plain TCP refused; stopped on drop.
struct TlsPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    ca: TestCa,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// PostgreSQL's binaries (initdb, pg_ctl), the newest installed.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Some(bin),
        None if std::env::var("PARLEY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("PARLEY_REQUIRE_POSTGRES=1 but PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); run scripts/postgres-test-setup.sh")
        }
        None => {
            eprintln!("skipping PostgreSQL TLS: PostgreSQL is not installed");
            None
        }
    }
}

/// PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user.
fn as_postgres(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command) {
    let out = command.output().expect("run a PostgreSQL tool");
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsPostgres {
    fn start() -> Option<Self> {
        let bin = postgres_bin()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new("Parley test PostgreSQL CA");
        let (cert, key) = ca.server_cert();
        let data = dir.path().join("data");
        std::fs::write(dir.path().join("server.crt"), cert).expect("write cert");
        std::fs::write(dir.path().join("server.key"), key).expect("write key");
        ca.write(&dir.path().join("ca.crt"));
        std::fs::set_permissions(
            dir.path().join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("key mode");
        if Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
        {
            for path in [dir.path(), &dir.path().join("server.key")] {
                run({
                    let mut chown = Command::new("chown");
                    chown.arg("postgres:").arg(path);
                    chown
                });
            }
        }
        run({
            let mut initdb = as_postgres(&bin.join("initdb"));
            initdb.args(["--no-sync", "-U", "postgres", "-A", "trust", "-D"]);
            initdb.arg(&data);
            initdb
        });
        // The superuser comes in over the socket; TCP only with TLS and a password.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all certified 127.0.0.1/32 cert\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        let port = free_port();
        let options = format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c ssl=on \
             -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key \
             -c ssl_ca_file={dir}/ca.crt -c fsync=off",
            dir = dir.path().display()
        );
        run({
            let mut pg_ctl = as_postgres(&bin.join("pg_ctl"));
            pg_ctl.args(["-w", "-t", "30", "-D"]).arg(&data);
            pg_ctl.arg("-l").arg(dir.path().join("log"));
            pg_ctl.args(["-o", &options, "start"]);
            pg_ctl
        });
        let cluster = TlsPostgres { bin, dir, port, ca };
        cluster.admin(&format!("CREATE ROLE parley LOGIN PASSWORD '{PASSWORD}'"));
        cluster.admin("CREATE DATABASE parley OWNER parley");
        cluster.admin("CREATE ROLE certified LOGIN; GRANT parley TO certified");
        Some(cluster)
    }

    /// Run `sql` as the superuser over the Unix socket, on a thread of its own (the blocking
    /// client starts a runtime, which must not nest in a test's).
    fn admin_query(&self, sql: &str) -> Vec<postgres::Row> {
        let (socket, port, sql) = (self.dir.path().to_path_buf(), self.port, sql.to_owned());
        std::thread::spawn(move || {
            let mut client = postgres::Config::new()
                .host_path(&socket)
                .port(port)
                .user("postgres")
                .dbname("parley")
                .connect(postgres::NoTls)
                .expect("superuser over the socket");
            client.query(&sql, &[]).expect("admin query")
        })
        .join()
        .expect("admin thread")
    }

    fn admin(&self, sql: &str) {
        let (socket, port, sql) = (self.dir.path().to_path_buf(), self.port, sql.to_owned());
        std::thread::spawn(move || {
            let mut client = postgres::Config::new()
                .host_path(&socket)
                .port(port)
                .user("postgres")
                .dbname("postgres")
                .connect(postgres::NoTls)
                .expect("superuser over the socket");
            client.batch_execute(&sql).expect("admin statement");
        })
        .join()
        .expect("admin thread");
    }

    fn url(&self, host: &str, sslmode: &str) -> String {
        format!(
            "postgres://parley:{PASSWORD}@{host}:{}/parley?sslmode={sslmode}",
            self.port
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let mut pg_ctl = as_postgres(&self.bin.join("pg_ctl"));
        pg_ctl
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop");
        let _ = pg_ctl.output();
    }
}

/// A parleyd config on the PostgreSQL store at `url`, trusting the CA in `ca` (if any).
fn config(url: &str, ca: Option<&Path>, data_dir: &Path) -> parley_server::Config {
    config_with(url, ca, data_dir, "")
}

/// [`config`] plus more `[accounts]` lines.
fn config_with(
    url: &str,
    ca: Option<&Path>,
    data_dir: &Path,
    accounts: &str,
) -> parley_server::Config {
    let mut text = format!(
        "[server]\ndata_dir = {data_dir:?}\n\n[listen]\nplain = [\"127.0.0.1:0\"]\ntls = []\n\n\
         [web]\nlisten = []\n\n[metrics]\nlisten = []\n\n[flood]\nenabled = false\n\n\
         [accounts]\nrequire_login = false\nstore = \"postgres\"\npostgres_url = {url:?}\n",
        data_dir = data_dir.display().to_string()
    );
    if let Some(ca) = ca {
        text.push_str(&format!("postgres_ca = {:?}\n", ca.display().to_string()));
    }
    text.push_str(accounts);
    parley_server::Config::from_toml_str(&text).expect("valid config")
}

/// The store's error for `url` with `ca`, on a thread of its own.
fn open_error(url: &str, ca: Option<&Path>) -> String {
    let config = config(url, ca, Path::new("/nonexistent"));
    std::thread::spawn(move || match parley_server::store::open_default(&config) {
        Ok(_) => panic!("the store opened, but it must refuse"),
        Err(error) => error.to_string(),
    })
    .join()
    .expect("open thread")
}

#[tokio::test]
async fn the_store_speaks_tls_to_postgres_and_verifies_its_certificate() {
    let Some(cluster) = TlsPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = cluster.ca.write(&dir.path().join("ca.pem"));

    // verify-full with the right CA: the whole server runs on it, every connection encrypted.
    let running = parley_server::start(config(
        &cluster.url("localhost", "verify-full"),
        Some(&ca),
        dir.path(),
    ))
    .await
    .expect("parleyd starts on PostgreSQL over TLS");
    let rows = cluster.admin_query(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'parleyd'",
    );
    let encrypted: Vec<bool> = rows.iter().map(|row| row.get(0)).collect();
    assert!(
        encrypted.len() >= 3 && encrypted.iter().all(|ssl| *ssl),
        "the account, history and state connections all use TLS: {encrypted:?}"
    );
    running.shutdown();
    assert!(running.wait(Duration::from_secs(10)).await);

    // verify-ca checks the chain only: a name the certificate does not hold still passes
    // (hostaddr makes the connection while `host` names the certificate to check)...
    let by_address = |mode: &str| {
        format!(
            "host=other.example hostaddr=127.0.0.1 port={} user=parley password={PASSWORD} \
             dbname=parley sslmode={mode}",
            cluster.port
        )
    };
    let store = {
        let config = config(&by_address("verify-ca"), Some(&ca), dir.path());
        std::thread::spawn(move || parley_server::store::open_default(&config).map(|_| ()))
            .join()
            .expect("open thread")
    };
    assert!(store.is_ok(), "verify-ca: {store:?}");
    // ... and verify-full refuses it.
    let error = open_error(&by_address("verify-full"), Some(&ca));
    assert!(error.contains("certificate"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");

    // Another CA's certificate: refused, with a clear error that names the setting to check.
    let wrong = TestCa::new("Some other CA").write(&dir.path().join("wrong-ca.pem"));
    for mode in ["require", "verify-ca", "verify-full"] {
        let error = open_error(&cluster.url("localhost", mode), Some(&wrong));
        assert!(
            error.contains("certificate") && error.contains("accounts.postgres_ca"),
            "{mode}: {error}"
        );
        assert!(!error.contains(PASSWORD), "{error}");
    }
    // A client certificate logs in without a password (`cert` authentication); without the
    // certificate, that role cannot log in at all.
    let (cert, key) = cluster.ca.client_cert("certified");
    let (cert_path, key_path) = (dir.path().join("client.crt"), dir.path().join("client.key"));
    std::fs::write(&cert_path, cert).expect("write client cert");
    std::fs::write(&key_path, key).expect("write client key");
    let by_cert = format!(
        "postgres://certified@localhost:{}/parley?sslmode=verify-full",
        cluster.port
    );
    let store = {
        let config = config_with(
            &by_cert,
            Some(&ca),
            dir.path(),
            &format!("postgres_client_cert = {cert_path:?}\npostgres_client_key = {key_path:?}\n"),
        );
        std::thread::spawn(move || parley_server::store::open_default(&config).map(|_| ()))
            .join()
            .expect("open thread")
    };
    assert!(store.is_ok(), "client certificate: {store:?}");
    let error = open_error(&by_cert, Some(&ca));
    assert!(error.contains("certificate"), "{error}");

    // A CA file that is not one is a configuration error naming the key.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write junk");
    let error = open_error(&cluster.url("localhost", "verify-full"), Some(&junk));
    assert!(error.contains("accounts.postgres_ca"), "{error}");
}

/// A server (or someone in the middle) that answers the TLS request with "no": with
/// `sslmode=require` and stronger, parleyd must hang up before its startup message, so neither
/// the user name nor the password ever crosses in clear.
#[test]
fn the_store_refuses_a_server_without_tls_and_sends_it_nothing() {
    for mode in ["require", "verify-ca", "verify-full"] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let fake = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut request = [0u8; 8];
            socket.read_exact(&mut request).expect("SSLRequest");
            socket.write_all(b"N").expect("refuse TLS");
            let mut rest = Vec::new();
            let _ = socket.read_to_end(&mut rest);
            (request, rest)
        });
        let url = format!(
            "postgres://parley:{PASSWORD}@127.0.0.1:{port}/parley?sslmode={mode}&connect_timeout=5"
        );
        let error = open_error(&url, None);
        assert!(error.contains("TLS"), "{mode}: {error}");
        assert!(!error.contains(PASSWORD), "{error}");
        let (request, rest) = fake.join().expect("fake server");
        // 80877103: PostgreSQL's SSLRequest code.
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47], "{mode}");
        assert!(
            rest.is_empty(),
            "{mode}: parleyd went on in clear: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
}
