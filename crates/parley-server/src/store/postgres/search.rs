//! `SEARCH` in PostgreSQL: a `tsvector` of each message's text (the generated column `search`,
//! schema step 15, with the `simple` configuration: lower-cased words, no stemming, no stop
//! words, so every word said can be found) under a GIN index. The query is built from words
//! already cut and quoted ([`tsquery`]) and runs with a `statement_timeout`, so a search that
//! would scan too much is stopped by the database itself.

use postgres::error::SqlState;
use postgres::Client;

use super::{backend, message_from_row, PostgresStore, MESSAGE_COLUMNS};
use crate::store::history::StoredMessage;
use crate::store::search::{tsquery, SearchError, SearchQuery};
use crate::store::StoreError;

/// One search inside its own transaction, so the timeout (`SET LOCAL`) ends with it. `None`
/// when the database stopped it for taking too long.
fn run(client: &mut Client, query: &SearchQuery) -> Result<Option<Vec<StoredMessage>>, StoreError> {
    let words = (!query.words.is_empty()).then(|| tsquery(&query.words));
    let party = query.party.clone();
    let from = query.from_pattern();
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let timeout_ms = query.timeout.as_millis().max(1).to_string();
    let direction = if query.forwards() { "ASC" } else { "DESC" };
    // One conversation (`in=`) as an equality, so the planner can walk its (target, time_ms, id)
    // index newest first and stop at `limit`: for a common word that is a few hundred rows
    // instead of every match in the GIN index, sorted (0.3 ms instead of 400 ms on a million
    // lines, 10 % of them matching).
    let single = match (query.targets.as_slice(), &party) {
        ([only], None) => Some(only.clone()),
        _ => None,
    };
    let scope = if single.is_some() {
        "(m.target = $2::text AND $3::text IS NULL)"
    } else {
        "(m.target = ANY($2::text[]) OR m.party_a = $3::text OR m.party_b = $3::text)"
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m \
         WHERE ($1::text IS NULL OR m.search @@ to_tsquery('simple', $1::text)) \
         AND m.kind IN ('PRIVMSG', 'NOTICE') \
         AND {scope} \
         AND ($4::bigint IS NULL OR m.time_ms >= $4::bigint) \
         AND ($5::bigint IS NULL OR m.time_ms <= $5::bigint) \
         AND ($6::text IS NULL OR m.source ILIKE $6::text ESCAPE '\\') \
         ORDER BY m.time_ms {direction}, m.id {direction} LIMIT $7"
    );
    let mut tx = client.transaction().map_err(backend)?;
    tx.execute(
        "SELECT set_config('statement_timeout', $1, true)",
        &[&timeout_ms],
    )
    .map_err(backend)?;
    let targets: &(dyn postgres::types::ToSql + Sync) = match &single {
        Some(only) => only,
        None => &query.targets,
    };
    let rows = match tx.query(
        &sql,
        &[
            &words,
            targets,
            &party,
            &query.after,
            &query.before,
            &from,
            &limit,
        ],
    ) {
        Ok(rows) => rows,
        Err(error) if error.code() == Some(&SqlState::QUERY_CANCELED) => return Ok(None),
        Err(error) => return Err(backend(error)),
    };
    let mut messages = rows
        .iter()
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().map_err(backend)?;
    if !query.forwards() {
        messages.reverse();
    }
    Ok(Some(messages))
}

pub(super) fn search(
    store: &PostgresStore,
    query: &SearchQuery,
) -> Result<Vec<StoredMessage>, SearchError> {
    if query.is_empty_scope() || query.limit == 0 {
        return Ok(Vec::new());
    }
    let timeout = query.timeout;
    let owned = query.clone();
    store
        .call_idempotent(move |client| run(client, &owned))?
        .ok_or(SearchError::TimedOut(timeout))
}
