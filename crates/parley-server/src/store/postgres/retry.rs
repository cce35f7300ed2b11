//! What the PostgreSQL store does when its connection dies under it (the database restarted, an
//! admin ended the session, a failover): run the call once more on a new connection, a write
//! only when that cannot apply it twice.
//!
//! The blocking client reads its socket only while a call runs, so a session PostgreSQL ended
//! while it sat idle looks alive until the next statement fails on it: after a restart, the
//! first call on every connection fails, and it must not be the caller's problem. Reads are
//! always safe to repeat ([`super::PostgresStore::call_idempotent`]). A write runs in an
//! explicit transaction that learns its own id first ([`super::PostgresStore::call_transaction`]):
//! if the connection is lost before COMMIT was sent, nothing was committed and the whole
//! transaction runs again; if it is lost during COMMIT, a new connection asks PostgreSQL
//! (`txid_status`) whether that transaction committed, and the answer decides, so a lost reply
//! never turns into a second copy or a silent loss.

use std::time::Duration;

use postgres::{Client, SimpleQueryMessage};

use super::{backend, Connection, PostgresStore};
use crate::store::StoreError;

/// How many times a transaction is run at most: the first try and one on a new connection.
const ATTEMPTS: u32 = 2;

/// How often, and how far apart, a transaction PostgreSQL still reports "in progress" after its
/// connection died is asked about again (its backend is being ended; a second at most).
const STATUS_POLLS: u32 = 10;
const STATUS_POLL_EVERY: Duration = Duration::from_millis(100);

/// How one run of a transaction failed.
enum Failed<T> {
    /// PostgreSQL answered, or could not be reached at all: the error is the answer, and another
    /// run would get the same.
    Refused(StoreError),
    /// The connection died before COMMIT was sent: nothing was committed.
    Unsent(StoreError),
    /// The connection died while COMMIT was on its way: `value` is what the transaction read and
    /// did, valid if transaction `xid` committed.
    CommitUnknown {
        error: StoreError,
        xid: Option<i64>,
        value: T,
    },
}

/// What PostgreSQL says became of a transaction whose COMMIT got no answer.
enum Outcome {
    Committed,
    Aborted,
    Unknown(String),
}

impl PostgresStore {
    /// Run `job` in one transaction on the connection's thread. When the connection turns out to
    /// have died under it, the transaction runs once more on a new connection if nothing was
    /// committed (the connection died before COMMIT, or PostgreSQL says the transaction
    /// aborted); if PostgreSQL says it committed, its result stands. Only when nobody can tell
    /// (the database is still down) is the error returned, saying so. `job` must not commit or
    /// roll back itself.
    pub(super) fn call_transaction<T: Send + 'static>(
        &self,
        job: impl Fn(&mut Client) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call_prepared(move |connection| {
            let mut attempt = 1;
            loop {
                let again = attempt < ATTEMPTS;
                attempt += 1;
                match run_once(connection, &job) {
                    Ok(value) => return Ok(value),
                    Err(Failed::Refused(error)) => return Err(error),
                    Err(Failed::Unsent(error)) if again => {
                        tracing::warn!(%error, "PostgreSQL connection lost before COMMIT; nothing was committed, running the transaction again on a new connection");
                    }
                    Err(Failed::Unsent(error)) => return Err(error),
                    Err(Failed::CommitUnknown { error, xid, value }) => {
                        match outcome(connection, xid) {
                            Outcome::Committed => {
                                tracing::warn!(%error, "PostgreSQL connection lost during COMMIT; the transaction had committed");
                                return Ok(value);
                            }
                            Outcome::Aborted if again => {
                                tracing::warn!(%error, "PostgreSQL connection lost during COMMIT; the transaction had not committed, running it again on a new connection");
                            }
                            Outcome::Aborted => return Err(error),
                            Outcome::Unknown(why) => {
                                return Err(StoreError::Backend(format!(
                                    "{error}; the connection was lost during COMMIT and whether \
                                     the write took effect is unknown ({why})"
                                )))
                            }
                        }
                    }
                }
            }
        })
    }
}

/// One run: BEGIN (and the transaction's id, in the same round trip), the job, COMMIT.
fn run_once<T>(
    connection: &mut Connection,
    job: &impl Fn(&mut Client) -> Result<T, StoreError>,
) -> Result<T, Failed<T>> {
    // No connection at all (the database is down): another try now would fail alike.
    let client = connection.client().map_err(Failed::Refused)?;
    let begun = begin(client);
    let done = match begun {
        Ok(xid) => job(client).map(|value| (xid, value)),
        Err(error) => Err(error),
    };
    let (xid, value) = match done {
        Ok(done) => done,
        Err(error) => {
            // COMMIT was never sent, so nothing was committed whatever happened. A live
            // connection rolls back and the error is the answer; a dead one is dropped.
            if client.batch_execute("ROLLBACK").is_ok() {
                return Err(Failed::Refused(error));
            }
            connection.forget();
            return Err(Failed::Unsent(error));
        }
    };
    match client.batch_execute("COMMIT") {
        Ok(()) => Ok(value),
        // An answer from a live session (a serialization failure, a deferred constraint): the
        // transaction rolled back.
        Err(error) if !connection.lost() => Err(Failed::Refused(backend(error))),
        Err(error) => Err(Failed::CommitUnknown {
            error: backend(error),
            xid,
            value,
        }),
    }
}

/// Open a transaction and learn its id. The id is `None` if PostgreSQL's answer did not carry
/// one; the transaction still runs, and a COMMIT without an answer is then reported unknown.
fn begin(client: &mut Client) -> Result<Option<i64>, StoreError> {
    let answers = client
        .simple_query("BEGIN; SELECT txid_current()")
        .map_err(backend)?;
    Ok(answers.iter().find_map(|answer| match answer {
        SimpleQueryMessage::Row(row) => row.get(0).and_then(|xid| xid.parse().ok()),
        _ => None,
    }))
}

/// Ask PostgreSQL, on a new connection, what became of transaction `xid`.
fn outcome(connection: &mut Connection, xid: Option<i64>) -> Outcome {
    let Some(xid) = xid else {
        return Outcome::Unknown("its transaction id was not known".to_owned());
    };
    for _ in 0..STATUS_POLLS {
        let status = connection.client().and_then(|client| {
            client
                .query_one("SELECT txid_status($1)", &[&xid])
                .and_then(|row| row.try_get::<_, Option<String>>(0))
                .map_err(backend)
        });
        match status {
            Ok(Some(status)) if status == "committed" => return Outcome::Committed,
            Ok(Some(status)) if status == "aborted" => return Outcome::Aborted,
            // Its backend is still being ended: ask again shortly.
            Ok(Some(status)) if status == "in progress" => std::thread::sleep(STATUS_POLL_EVERY),
            Ok(other) => {
                return Outcome::Unknown(format!("PostgreSQL reports its status as {other:?}"))
            }
            Err(error) => return Outcome::Unknown(error.to_string()),
        }
    }
    Outcome::Unknown("it was still in progress after a second".to_owned())
}
