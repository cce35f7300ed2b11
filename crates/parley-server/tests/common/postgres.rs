//! PostgreSQL for tests: a database of its own per test, on the server that
//! `PARLEY_TEST_POSTGRES_URL` names (`scripts/postgres-test-setup.sh` starts one and prints it).
//!
//! Without that variable the PostgreSQL half of a test is skipped with a line on stderr, unless
//! `PARLEY_REQUIRE_POSTGRES=1` (CI sets it), which turns a missing server into a failure so CI can
//! never pass by skipping.

use std::hash::{Hash, Hasher};

/// Whether the server test suite runs against PostgreSQL (`PARLEY_TEST_STORE=postgres`).
pub fn server_suite_on_postgres() -> bool {
    std::env::var("PARLEY_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// The admin URL, or `None` (after saying so) when PostgreSQL tests are to be skipped.
pub fn admin_url() -> Option<String> {
    match std::env::var("PARLEY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("PARLEY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => panic!(
            "PARLEY_REQUIRE_POSTGRES=1 but PARLEY_TEST_POSTGRES_URL is not set; \
             run `export PARLEY_TEST_POSTGRES_URL=$(bash scripts/postgres-test-setup.sh)`"
        ),
        _ => {
            eprintln!("skipping the PostgreSQL backend: PARLEY_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A URL for a database named after `key` (created when missing, so a test that restarts its
/// server with the same key finds its data again).
pub fn database_for(key: &str) -> Option<String> {
    let admin = admin_url()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    let name = format!("parley_t_{:016x}", hasher.finish());
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("PARLEY_TEST_POSTGRES_URL {admin:?} has no /database part"),
    };
    // The blocking client runs its own runtime, which must not start on a tokio worker: give it a
    // thread of its own.
    let create = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"));
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .expect("look up the test database")
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create the test database");
        }
    });
    create.join().expect("create the test database");
    Some(url)
}
