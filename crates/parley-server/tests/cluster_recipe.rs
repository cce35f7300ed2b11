//! The several-machines recipe of docs/cluster.md, as far as one machine can run it: the two
//! PostgreSQL roles, made with the SQL the page gives (read from the page, names made unique):
//! a schema owner that `parleyd users list` creates the tables as, and a node role the nodes
//! serve as, which can read and write rows and nothing else. (The nkeys-over-TLS half of the
//! recipe is in `cluster_bus.rs`.)
//!
//! Needs nats-server and `PARLEY_TEST_POSTGRES_URL` (a superuser, as `scripts/postgres-test-setup.sh`
//! makes) like `cluster.rs`; skips without them unless `PARLEY_REQUIRE_CLUSTER=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cluster::Cluster;
use common::postgres;

/// The text of every ```sql block of docs/cluster.md, in order.
fn documented_sql() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/cluster.md"
    ))
    .expect("read docs/cluster.md");
    doc.split("\n```sql\n")
        .skip(1)
        .map(|rest| {
            let end = rest.find("\n```\n").expect("the ```sql block ends");
            rest[..end].to_owned()
        })
        .collect()
}

/// `text` with every whole word `from` (letters, digits and `_` around it end a word) made `to`.
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + from.len()..].chars().next();
        out.push_str(&rest[..at]);
        if before.is_some_and(word) || after.is_some_and(word) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// `url` (a `postgres://` URL) with its database, user and password replaced.
fn url_for(admin: &str, user: &str, password: &str, database: &str) -> String {
    let host = admin
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host, _)| host)
        .expect("PARLEY_TEST_POSTGRES_URL looks like postgres://user:pw@host:port/db");
    format!("postgres://{user}:{password}@{host}/{database}")
}

/// Run `sql` as psql would, for the little psql the page uses: statements, and `\c DB` to go on
/// in another database (as the admin user). On a thread: the blocking client starts a runtime.
fn run_psql(admin: &str, sql: &str) {
    let admin = admin.to_owned();
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let (mut database, mut batch) = ("postgres".to_owned(), String::new());
        let run = |database: &str, batch: &str| {
            if batch.trim().is_empty() {
                return;
            }
            let (user, password) = admin
                .strip_prefix("postgres://")
                .and_then(|rest| rest.split_once('@'))
                .and_then(|(credentials, _)| credentials.split_once(':'))
                .expect("the admin URL has a user and password");
            let url = url_for(&admin, user, password, database);
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls)
                .unwrap_or_else(|e| panic!("connect to {database}: {e}"));
            // One statement at a time, as psql sends them: CREATE DATABASE cannot share the
            // implicit transaction of a multi-statement query.
            for statement in batch.split_inclusive(";\n") {
                if statement
                    .lines()
                    .all(|l| l.trim().is_empty() || l.starts_with("--"))
                {
                    continue;
                }
                client
                    .batch_execute(statement)
                    .unwrap_or_else(|e| panic!("the documented SQL failed: {e}\n{statement}"));
            }
        };
        for line in sql.lines() {
            if let Some(next) = line.strip_prefix("\\c ") {
                run(&database, &batch);
                batch.clear();
                database = next.trim().to_owned();
            } else {
                batch.push_str(line);
                batch.push('\n');
            }
        }
        run(&database, &batch);
    })
    .join()
    .expect("the psql thread");
}

/// The error `sql` gets when run as the node role, or `None` if it worked.
fn as_node(url: &str, sql: &str) -> Option<::postgres::Error> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
        client.batch_execute(&sql).err()
    })
    .join()
    .expect("the node-role thread")
}

/// Drops the database and both roles when the test ends, however it ends.
struct Roles {
    admin: String,
    name: String,
}

impl Drop for Roles {
    fn drop(&mut self) {
        let name = &self.name;
        run_psql(
            &self.admin,
            &format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE);\n\
                 DROP ROLE IF EXISTS {name};\nDROP ROLE IF EXISTS {name}_owner;\n"
            ),
        );
    }
}

/// The documented roles: the owner makes the schema with `parleyd users list`, the nodes serve
/// as the node role (accounts made, messages stored and delivered across two nodes), and that
/// role cannot create tables, change the schema version, or change or delete the audit trail:
/// refused for want of privilege (SQLSTATE 42501), not only by the audit's trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_serve_as_the_documented_least_privilege_role() {
    if postgres::server_suite_on_postgres() {
        return; // as every cluster test: it ran in the first pass
    }
    let Some(admin) = postgres::admin_url() else {
        return;
    };
    let sql = documented_sql();
    assert_eq!(
        sql.len(),
        2,
        "docs/cluster.md has the roles' SQL in two ```sql blocks"
    );
    // Role and database share one unique name here, as `parley` names both in the page.
    let name = format!("recipe_{}", std::process::id());
    let unique = |text: &str| {
        replace_word(
            &replace_word(text, "parley_owner", &format!("{name}_owner")),
            "parley",
            &name,
        )
    };
    let roles = Roles {
        admin: admin.clone(),
        name: name.clone(),
    };
    run_psql(&admin, &roles_drop_first(&name));
    run_psql(&admin, &unique(&sql[0]));
    let owner_url = url_for(&admin, &format!("{name}_owner"), "OWNER-PASSWORD", &name);
    let node_url = url_for(&admin, &name, "NODE-PASSWORD", &name);

    // The schema, made as the owner with the documented command.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("parley.toml");
    std::fs::write(&config, "[accounts]\nstore = \"postgres\"\n").unwrap();
    let listed = tokio::process::Command::new(env!("CARGO_BIN_EXE_parleyd"))
        .arg("-c")
        .arg(&config)
        .args(["users", "list"])
        .env("PARLEY_ACCOUNTS__POSTGRES_URL", &owner_url)
        .output()
        .await
        .unwrap();
    assert!(
        listed.status.success(),
        "parleyd users list as the owner failed: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        as_node(&node_url, "CREATE TABLE before_the_revokes (i INTEGER)").is_some(),
        "the node role may create tables"
    );
    run_psql(&admin, &unique(&sql[1]));

    let Some(cluster) = Cluster::start(2, |_, config| {
        config.accounts.postgres_url = node_url.clone();
    })
    .await
    else {
        return;
    };
    let _alice_and_bob = cluster.alice_and_bob_talk("as the node role").await;
    let _carol = cluster.nodes[0]
        .register_new("carol", "carol-recipe-pw")
        .await;

    for (what, sql) in [
        ("create a table", "CREATE TABLE mine (i INTEGER)"),
        (
            "change the schema version",
            "UPDATE parley_schema SET version = 1",
        ),
        ("delete the audit trail", "DELETE FROM audit"),
        (
            "rewrite the audit trail",
            "UPDATE audit SET actor = 'nobody'",
        ),
        ("drop a table", "DROP TABLE messages"),
    ] {
        let error = as_node(&node_url, sql).unwrap_or_else(|| panic!("the node role could {what}"));
        assert_eq!(
            error.code(),
            Some(&::postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "the node role trying to {what} got {:?}, not a privilege error",
            error.as_db_error().map(|e| e.message())
        );
    }
    drop(cluster);
    drop(roles);
}

/// Leftovers of an earlier run of this process id, removed before the documented SQL runs.
fn roles_drop_first(name: &str) -> String {
    format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE);\n\
         DROP ROLE IF EXISTS {name};\nDROP ROLE IF EXISTS {name}_owner;\n"
    )
}
