//! The IRC line protocol: one `Message` borrowed from one line, and the writers that build lines.
//! This crate knows nothing of sockets or tasks, so the server, the clients and the fuzz targets
//! share one parser and one serializer. Limits are constants here so every framed reader and
//! every check agrees on them.

mod casemap;
mod error;
mod message;
pub mod numeric;
pub mod sasl;
pub mod scram;
mod tags;
mod userhost;
pub mod validate;

pub use casemap::{casefold, wildcard_match};
pub use error::ParseError;
pub use message::{write_line, Message};
pub use tags::{escape_tag_value, unescape_tag_value, Tag, Tags};
pub use userhost::UserHost;

/// Longest message body in bytes, counting the source, command, params and the closing CRLF.
pub const MAX_BODY_LEN: usize = 512;
/// Longest tag section in bytes, counting the leading '@' and the space that ends it.
pub const MAX_TAGS_LEN: usize = 8191;
/// Most bytes of client-only (`+`-prefixed) tag data, counting each `+key=value` and the ';' between them.
pub const MAX_CLIENT_TAGS_LEN: usize = 4094;
/// Longest line a framed reader may buffer before it can be sure the line is too long.
pub const MAX_LINE_LEN: usize = MAX_TAGS_LEN + MAX_BODY_LEN;
