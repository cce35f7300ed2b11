//! Why a line could not be parsed. One enum for the whole crate, so a connection can turn any
//! rejection into the matching reply (ERR_INPUTTOOLONG, ERR_UNKNOWNCOMMAND, ...) with one `match`,
//! and the texts name the limit that was crossed.

use crate::{MAX_BODY_LEN, MAX_CLIENT_TAGS_LEN, MAX_TAGS_LEN};

/// A line that is not a well-formed IRC message.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("empty line: there is no message to parse")]
    Empty,
    #[error("message body is {len} bytes including CRLF; the limit is {MAX_BODY_LEN}")]
    BodyTooLong { len: usize },
    #[error("tag section is {len} bytes including '@' and the space; the limit is {MAX_TAGS_LEN}")]
    TagsTooLong { len: usize },
    #[error("client-only tags are {len} bytes; the limit is {MAX_CLIENT_TAGS_LEN}")]
    ClientTagsTooLong { len: usize },
    #[error("line has no command")]
    MissingCommand,
    #[error("command must be letters only or exactly three digits")]
    InvalidCommand,
    #[error("line contains NUL, CR or LF before its end")]
    ContainsNulOrNewline,
    #[error("tag section contains a space; a space in a value must be escaped as \\s")]
    TagContainsSpace,
    #[error("line starts with ':' but the source after it is empty")]
    EmptySource,
}
