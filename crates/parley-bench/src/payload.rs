//! The text of every benchmark message carries who sent it, its sequence number and when it was
//! sent (`b<sender> <seq> <nanos> pad...`), so each receiver can check exactly-once, in-order
//! delivery per sender and measure end-to-end latency without any side channel.

use std::time::Instant;

/// Build one PRIVMSG line to `target` into `out`, padded so the line is about `line_len` bytes.
pub fn write_privmsg(
    out: &mut Vec<u8>,
    target: &str,
    sender: u32,
    seq: u64,
    origin: Instant,
    line_len: usize,
) {
    let nanos = origin.elapsed().as_nanos() as u64;
    let start = out.len();
    out.extend_from_slice(b"PRIVMSG ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" :b");
    push_u64(out, u64::from(sender));
    out.push(b' ');
    push_u64(out, seq);
    out.push(b' ');
    push_u64(out, nanos);
    out.push(b' ');
    let written = out.len() - start + 2;
    let pad = line_len.saturating_sub(written).max(1);
    out.extend(std::iter::repeat_n(b'x', pad));
    out.extend_from_slice(b"\r\n");
}

fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// What a received benchmark line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub seq: u64,
    /// Nanoseconds after the run's origin when it was sent.
    pub sent_at: u64,
}

/// Parse a received `:src PRIVMSG target :b<sender> <seq> <nanos> ...` line; `None` for any
/// other line (joins, numerics, pings).
pub fn parse(line: &[u8]) -> Option<Stamp> {
    let at = memchr::memmem::find(line, b" PRIVMSG ")?;
    let rest = &line[at + 9..];
    let colon = memchr::memmem::find(rest, b" :b")?;
    let mut fields = rest[colon + 3..].split(|b| *b == b' ');
    let sender = parse_u64(fields.next()?)?;
    let seq = parse_u64(fields.next()?)?;
    let sent_at = parse_u64(fields.next()?)?;
    Some(Stamp {
        sender: u32::try_from(sender).ok()?,
        seq,
        sent_at,
    })
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// Per-receiver bookkeeping: the next sequence number expected from each sender.
#[derive(Debug, Clone)]
pub struct OrderCheck {
    next: Vec<u64>,
    /// Lines that skipped ahead (some earlier line never came).
    pub gaps: u64,
    /// Lines that came again or out of order.
    pub repeats: u64,
    /// Lines from a sender this receiver should not hear from.
    pub strangers: u64,
}

impl OrderCheck {
    pub fn new(senders: usize) -> Self {
        OrderCheck {
            next: vec![0; senders],
            gaps: 0,
            repeats: 0,
            strangers: 0,
        }
    }

    /// Record one delivery; returns whether it was the expected next one.
    pub fn record(&mut self, stamp: Stamp) -> bool {
        let Some(next) = self.next.get_mut(stamp.sender as usize) else {
            self.strangers += 1;
            return false;
        };
        if stamp.seq == *next {
            *next += 1;
            true
        } else if stamp.seq > *next {
            self.gaps += 1;
            *next = stamp.seq + 1;
            false
        } else {
            self.repeats += 1;
            false
        }
    }

    /// How many lines from `sender` arrived in order.
    pub fn received_from(&self, sender: usize) -> u64 {
        self.next.get(sender).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_through_a_server_prefix() {
        let origin = Instant::now();
        let mut out = Vec::new();
        write_privmsg(&mut out, "#c0", 7, 42, origin, 100);
        assert_eq!(out.len(), 100);
        let sent = std::str::from_utf8(&out).expect("ascii");
        let received = format!(":nick!user@host {}", sent.trim_end());
        let stamp = parse(received.as_bytes()).expect("a bench line");
        assert_eq!((stamp.sender, stamp.seq), (7, 42));
    }

    #[test]
    fn gaps_and_repeats_are_counted() {
        let mut check = OrderCheck::new(2);
        let s = |seq| Stamp {
            sender: 1,
            seq,
            sent_at: 0,
        };
        assert!(check.record(s(0)));
        assert!(!check.record(s(2)));
        assert!(!check.record(s(1)));
        assert_eq!((check.gaps, check.repeats), (1, 1));
        assert!(!check.record(Stamp {
            sender: 9,
            seq: 0,
            sent_at: 0
        }));
        assert_eq!(check.strangers, 1);
        assert!(parse(b":srv 366 a #c :End").is_none());
    }
}
