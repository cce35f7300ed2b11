//! SASL payloads on IRC's `AUTHENTICATE` line (IRCv3 `sasl-3.1`): a payload travels base64
//! encoded in parameters of at most 400 bytes, and a shorter one ends it, so a payload whose
//! encoding is a multiple of 400 bytes long (the empty one included) ends with `+`. The server,
//! the client library and the bench tool split and reassemble here, so all of them agree on
//! those edges, and the receiving side caps what it buffers, since the peer chooses how much.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// Length of a full `AUTHENTICATE` chunk; a shorter chunk (or `+`) is the payload's last.
pub const CHUNK_LEN: usize = 400;

/// The parameter that stands for "no more data": the empty payload, or the end after a full
/// last chunk.
pub const EMPTY: &str = "+";

/// A reassembled payload would pass the receiver's limit.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("SASL payload is over {limit} bytes of base64")]
pub struct TooLong {
    /// The limit that was crossed, in bytes of base64.
    pub limit: usize,
}

/// What one received chunk did to the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A full chunk: more follow.
    Partial,
    /// The last chunk: the buffer holds the whole payload (base64; empty for the empty payload).
    Complete,
}

/// The `AUTHENTICATE` parameters that carry `payload`: its base64 encoding in chunks of
/// [`CHUNK_LEN`], then [`EMPTY`] if the last chunk was full (or there was nothing to send).
pub fn encode(payload: &[u8]) -> Vec<String> {
    chunks(&BASE64.encode(payload)).map(str::to_owned).collect()
}

/// The `AUTHENTICATE` parameters that carry an already base64-encoded payload (see [`encode`]).
pub fn chunks(encoded: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(encoded);
    std::iter::from_fn(move || {
        let current = rest?;
        let (chunk, tail) = current.split_at(current.len().min(CHUNK_LEN));
        rest = (chunk.len() == CHUNK_LEN).then_some(tail);
        Some(if chunk.is_empty() { EMPTY } else { chunk })
    })
}

/// Add one received `AUTHENTICATE` parameter to `buffer` (the payload's base64 so far), and say
/// whether the payload is complete. A parameter that would take the buffer past `limit` bytes is
/// refused with [`TooLong`] and leaves the buffer as it was: the caller drops the exchange.
pub fn push_chunk(buffer: &mut String, param: &str, limit: usize) -> Result<Progress, TooLong> {
    if param != EMPTY {
        if buffer.len() + param.len() > limit {
            return Err(TooLong { limit });
        }
        buffer.push_str(param);
    }
    Ok(if param.len() == CHUNK_LEN {
        Progress::Partial
    } else {
        Progress::Complete
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(encoded: &str) -> Vec<usize> {
        chunks(encoded).map(str::len).collect()
    }

    #[test]
    fn the_empty_payload_is_a_plus() {
        assert_eq!(encode(b""), ["+"]);
        assert_eq!(chunks("").collect::<Vec<_>>(), ["+"]);
    }

    #[test]
    fn a_short_payload_is_one_chunk() {
        assert_eq!(encode(b"\0alice\0secret"), ["AGFsaWNlAHNlY3JldA=="]);
    }

    #[test]
    fn a_full_last_chunk_is_followed_by_a_plus() {
        // 300 bytes are 400 characters of base64.
        let params = encode(&[b'x'; 300]);
        assert_eq!(params.len(), 2);
        assert_eq!(params[0].len(), CHUNK_LEN);
        assert_eq!(params[1], "+");
        assert_eq!(lengths(&"A".repeat(400)), [400, 1]);
        assert_eq!(chunks(&"A".repeat(400)).last(), Some("+"));
    }

    #[test]
    fn longer_payloads_are_split_at_400() {
        assert_eq!(lengths(&"A".repeat(401)), [400, 1]);
        assert_eq!(chunks(&"A".repeat(401)).last(), Some("A"));
        assert_eq!(lengths(&"A".repeat(800)), [400, 400, 1]);
        assert_eq!(chunks(&"A".repeat(800)).last(), Some("+"));
        assert_eq!(lengths(&"A".repeat(1000)), [400, 400, 200]);
    }

    #[test]
    fn chunks_reassemble_into_the_payload() {
        for len in [0, 1, 299, 300, 301, 600, 1000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut buffer = String::new();
            let params = encode(&payload);
            for (i, param) in params.iter().enumerate() {
                let progress = push_chunk(&mut buffer, param, 8192).expect("under the limit");
                let last = i + 1 == params.len();
                assert_eq!(
                    progress == Progress::Complete,
                    last,
                    "{len} bytes, chunk {i}"
                );
            }
            assert_eq!(BASE64.decode(&buffer).expect("base64"), payload);
        }
    }

    #[test]
    fn a_plus_alone_is_the_empty_payload() {
        let mut buffer = String::new();
        assert_eq!(push_chunk(&mut buffer, "+", 10), Ok(Progress::Complete));
        assert_eq!(buffer, "");
    }

    #[test]
    fn a_chunk_that_is_not_full_ends_the_payload() {
        let mut buffer = String::new();
        assert_eq!(
            push_chunk(&mut buffer, &"A".repeat(400), 2048),
            Ok(Progress::Partial)
        );
        assert_eq!(
            push_chunk(&mut buffer, &"A".repeat(401), 2048),
            Ok(Progress::Complete),
            "an over-long chunk is a last one, not a promise of more"
        );
        assert_eq!(buffer.len(), 801);
    }

    #[test]
    fn reassembly_stops_at_the_limit() {
        let chunk = "A".repeat(CHUNK_LEN);
        let mut buffer = String::new();
        for _ in 0..5 {
            assert_eq!(push_chunk(&mut buffer, &chunk, 2048), Ok(Progress::Partial));
        }
        // 2000 bytes so far: 48 more fit, 49 do not.
        let mut at_limit = buffer.clone();
        assert_eq!(
            push_chunk(&mut at_limit, &"A".repeat(48), 2048),
            Ok(Progress::Complete)
        );
        assert_eq!(at_limit.len(), 2048);
        assert_eq!(
            push_chunk(&mut buffer, &"A".repeat(49), 2048),
            Err(TooLong { limit: 2048 })
        );
        assert_eq!(
            push_chunk(&mut buffer, &chunk, 2048),
            Err(TooLong { limit: 2048 })
        );
        assert_eq!(buffer.len(), 2000, "a refused chunk is not kept");
        assert_eq!(
            TooLong { limit: 2048 }.to_string(),
            "SASL payload is over 2048 bytes of base64"
        );
    }
}
