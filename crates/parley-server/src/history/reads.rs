//! Reads: what a connection asks of history ([`HistoryRequest`]: a CHATHISTORY query, the
//! conversations active in a window, the replay a client without chathistory gets on join) and
//! the answer it gets back ([`HistoryAnswer`]).
//!
//! Reads go to the reading store on the blocking pool, never through the writer, so a long
//! query delays nobody's messages; the request travels back with its answer, so the connection
//! knows what it asked for without keeping state of its own.

use super::{blocking, History};
use crate::store::{HistoryQuery, StoreError, StoredMessage, TargetActivity};

/// What a connection asked to read.
pub enum HistoryRequest {
    /// A CHATHISTORY query about one conversation.
    Query {
        subcommand: String,
        key: String,
        shown: String,
        query: HistoryQuery,
        limit: usize,
        /// Stored TAGMSGs too (`history::events::played_back`).
        events: bool,
    },
    /// CHATHISTORY TARGETS: which of these conversations (key, shown) had messages in a window.
    Targets {
        keys: Vec<(String, String)>,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    },
    /// The last lines of a channel, for a client without chathistory that just joined.
    Replay {
        key: String,
        shown: String,
        limit: usize,
        /// When the user joined: only what was said before then, since what came after was
        /// delivered live (the read may run well after the join on a busy server).
        before_ms: i64,
        /// Stored TAGMSGs too (`history::events::played_back`).
        events: bool,
    },
}

pub enum HistoryAnswer {
    Messages {
        request: HistoryRequest,
        result: Result<Vec<StoredMessage>, StoreError>,
    },
    Targets {
        keys: Vec<(String, String)>,
        result: Result<Vec<TargetActivity>, StoreError>,
    },
}

impl History {
    /// Run a read on the blocking pool.
    pub async fn fetch(&self, request: HistoryRequest) -> HistoryAnswer {
        let reader = self.reader.clone();
        match request {
            HistoryRequest::Targets {
                keys,
                from_ms,
                to_ms,
                limit,
            } => {
                let wanted: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
                let result = blocking(move || {
                    // `@dm:<party>` stands for all of that party's private conversations.
                    let mut lookup = Vec::new();
                    for key in wanted {
                        match key.strip_prefix("@dm:") {
                            Some(party) => lookup.extend(reader.conversations_of(party)?),
                            None => lookup.push(key),
                        }
                    }
                    reader.targets(&lookup, from_ms, to_ms, limit)
                })
                .await;
                HistoryAnswer::Targets { keys, result }
            }
            request => {
                let (key, query, limit, events) = match &request {
                    HistoryRequest::Query {
                        key,
                        query,
                        limit,
                        events,
                        ..
                    } => (key.clone(), query.clone(), *limit, *events),
                    HistoryRequest::Replay {
                        key,
                        limit,
                        before_ms,
                        events,
                        ..
                    } => (
                        key.clone(),
                        HistoryQuery::Before(crate::store::Bound::Time(*before_ms)),
                        *limit,
                        *events,
                    ),
                    HistoryRequest::Targets { .. } => unreachable!("handled above"),
                };
                let result = blocking(move || reader.query_for(&key, &query, limit, events)).await;
                HistoryAnswer::Messages { request, result }
            }
        }
    }
}
