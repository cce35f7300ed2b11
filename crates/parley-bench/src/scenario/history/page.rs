//! The checks the `history` scenario applies to every page it reads: is it a well-formed
//! `chathistory` batch, and does it fit the pages read before it in the same walk back through
//! the channel. Kept apart from the networking so every rule can be tested on made-up pages.
//!
//! The fill writes lines `b<sender> <seq> ...` where each sender's lines are stored in the order
//! sent, so a walk back through history must see every sender's sequence numbers count down by
//! exactly one across pages and up by one inside a page: that catches lost, repeated and
//! reordered lines, not only pages that are out of order by time.

use std::collections::{HashMap, HashSet};

use crate::client::strip_tags_and_source;
use crate::payload::{self, Stamp};

/// What the fill's last line says, so a later run knows the channel already holds its lines.
pub const MARKER_PREFIX: &str = "parley-bench history fill: ";

/// A rule a history answer broke. Any of these fails the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("the answer is not a well-formed chathistory batch: {0}")]
    Malformed(String),
    #[error("the server refused the request: {0}")]
    Refused(String),
    #[error("no end of batch within {0} s")]
    Timeout(u64),
    #[error("the server closed the connection")]
    Closed,
    #[error("{got} lines where at most {requested} were asked for")]
    TooMany { got: usize, requested: usize },
    #[error("{got} of {requested} lines, but the page does not reach the start of history")]
    Short { got: usize, requested: usize },
    #[error("line {msgid} is older than the line before it in the page")]
    OutOfOrder { msgid: String },
    #[error("line {msgid} is not older than the cursor")]
    NotOlder { msgid: String },
    #[error("line {msgid} came twice (in this page or the one before)")]
    Repeated { msgid: String },
    #[error(
        "sender {sender}: line {got} where {expected} should come (lost, repeated or reordered)"
    )]
    Gap {
        sender: u32,
        expected: u64,
        got: u64,
    },
}

/// One line of a page: the tags and text the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub msgid: String,
    pub time_ms: i64,
    /// Who of the fill wrote it and its number; `None` for other lines (such as the marker).
    pub stamp: Option<Stamp>,
    /// The line count a fill marker states.
    pub marker: Option<u64>,
}

/// Where a request starts counting back from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// `LATEST * n`.
    Latest,
    /// `BEFORE timestamp=...`: strictly before this millisecond.
    Time(i64),
    /// `BEFORE msgid=...`: strictly before this line (the oldest of the previous page).
    MsgId { msgid: String, time_ms: i64 },
}

impl Cursor {
    /// The CHATHISTORY command for `count` lines of `channel` from this cursor.
    pub fn request(&self, channel: &str, count: usize) -> String {
        match self {
            Cursor::Latest => format!("CHATHISTORY LATEST {channel} * {count}\r\n"),
            Cursor::Time(ms) => format!(
                "CHATHISTORY BEFORE {channel} timestamp={} {count}\r\n",
                format_time(*ms)
            ),
            Cursor::MsgId { msgid, .. } => {
                format!("CHATHISTORY BEFORE {channel} msgid={msgid} {count}\r\n")
            }
        }
    }
}

/// The oldest line of the channel: a page may be short only when it reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oldest {
    pub msgid: String,
    pub time_ms: i64,
}

/// One walk back through history: what the pages read so far allow the next one to contain.
#[derive(Debug, Default)]
pub struct Walk {
    /// The msgids of the page before (the next page must not repeat any).
    previous: HashSet<String>,
    /// Per fill sender, the lowest sequence number seen so far in this walk.
    lowest: HashMap<u32, u64>,
}

impl Walk {
    /// Check `page`, the answer to `cursor` asking for `requested` lines. `Ok(true)` when the
    /// page reached the start of history (the walk cannot go further back).
    pub fn check(
        &mut self,
        cursor: &Cursor,
        page: &[Entry],
        requested: usize,
        oldest: &Oldest,
    ) -> Result<bool, PageError> {
        if page.len() > requested {
            return Err(PageError::TooMany {
                got: page.len(),
                requested,
            });
        }
        let mut ids = HashSet::with_capacity(page.len());
        let mut prev_time = i64::MIN;
        // Per sender: (first, last) sequence number in this page.
        let mut senders: HashMap<u32, (u64, u64)> = HashMap::new();
        for entry in page {
            if entry.time_ms < prev_time {
                return Err(PageError::OutOfOrder {
                    msgid: entry.msgid.clone(),
                });
            }
            prev_time = entry.time_ms;
            if !ids.insert(entry.msgid.as_str()) || self.previous.contains(&entry.msgid) {
                return Err(PageError::Repeated {
                    msgid: entry.msgid.clone(),
                });
            }
            let older = match cursor {
                Cursor::Latest => true,
                Cursor::Time(ms) => entry.time_ms < *ms,
                Cursor::MsgId { msgid, time_ms } => {
                    entry.time_ms <= *time_ms && entry.msgid != *msgid
                }
            };
            if !older {
                return Err(PageError::NotOlder {
                    msgid: entry.msgid.clone(),
                });
            }
            if let Some(stamp) = entry.stamp {
                match senders.get_mut(&stamp.sender) {
                    Some((_, last)) => {
                        if stamp.seq != *last + 1 {
                            return Err(PageError::Gap {
                                sender: stamp.sender,
                                expected: *last + 1,
                                got: stamp.seq,
                            });
                        }
                        *last = stamp.seq;
                    }
                    None => {
                        senders.insert(stamp.sender, (stamp.seq, stamp.seq));
                    }
                }
            }
        }
        for (sender, (first, last)) in &senders {
            if let Some(lowest) = self.lowest.get(sender) {
                if last + 1 != *lowest {
                    return Err(PageError::Gap {
                        sender: *sender,
                        expected: lowest.wrapping_sub(1),
                        got: *last,
                    });
                }
            }
            self.lowest.insert(*sender, *first);
        }
        let at_start = match page.first() {
            Some(first) => first.msgid == oldest.msgid,
            None => match cursor {
                Cursor::Latest => true,
                Cursor::Time(ms) => *ms <= oldest.time_ms,
                Cursor::MsgId { msgid, .. } => *msgid == oldest.msgid,
            },
        };
        if page.len() < requested && !at_start {
            return Err(PageError::Short {
                got: page.len(),
                requested,
            });
        }
        self.previous = page.iter().map(|e| e.msgid.clone()).collect();
        Ok(at_start)
    }
}

/// What one line of an answer is, as far as the batch structure goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// `BATCH +id type params...`
    Open {
        id: &'a [u8],
        kind: &'a [u8],
        target: &'a [u8],
    },
    /// `BATCH -id`
    Close {
        id: &'a [u8],
    },
    /// A line tagged `batch=id`.
    InBatch {
        id: &'a [u8],
    },
    /// `FAIL ...`, `ERROR ...` or an error numeric (400-599).
    Error,
    Ping,
    /// Anything else (joins, live messages): not part of an answer.
    Other,
}

/// Classify one received line.
pub fn classify(line: &[u8]) -> Line<'_> {
    if let Some(id) = tag(line, b"batch") {
        return Line::InBatch { id };
    }
    let rest = strip_tags_and_source(line);
    let mut words = rest.split(|b| *b == b' ');
    let command = words.next().unwrap_or_default();
    match command {
        b"BATCH" => {
            let reference = words.next().unwrap_or_default();
            if let Some(id) = reference.strip_prefix(b"+") {
                Line::Open {
                    id,
                    kind: words.next().unwrap_or_default(),
                    target: words.next().unwrap_or_default(),
                }
            } else if let Some(id) = reference.strip_prefix(b"-") {
                Line::Close { id }
            } else {
                Line::Other
            }
        }
        b"FAIL" | b"ERROR" => Line::Error,
        b"PING" => Line::Ping,
        code if code.len() == 3
            && code.iter().all(u8::is_ascii_digit)
            && matches!(code[0], b'4' | b'5') =>
        {
            Line::Error
        }
        _ => Line::Other,
    }
}

/// The history line inside a batch, or why it is not one.
pub fn entry(line: &[u8]) -> Result<Entry, PageError> {
    let text = String::from_utf8_lossy(line);
    let msgid = tag(line, b"msgid")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| PageError::Malformed(format!("no msgid tag: {text}")))?;
    let time_ms = tag(line, b"time")
        .and_then(parse_time)
        .ok_or_else(|| PageError::Malformed(format!("no valid time tag: {text}")))?;
    let stamp = payload::parse(line);
    let marker = if stamp.is_none() {
        trailing(line)
            .and_then(|t| t.strip_prefix(MARKER_PREFIX.as_bytes()))
            .and_then(|t| t.split(|b| *b == b' ').next())
            .and_then(|digits| std::str::from_utf8(digits).ok()?.parse().ok())
    } else {
        None
    };
    Ok(Entry {
        msgid: String::from_utf8_lossy(msgid).into_owned(),
        time_ms,
        stamp,
        marker,
    })
}

/// The text after ` :` of a line's command part.
fn trailing(line: &[u8]) -> Option<&[u8]> {
    let rest = strip_tags_and_source(line);
    let at = memchr::memmem::find(rest, b" :")?;
    Some(&rest[at + 2..])
}

/// The value of tag `key` (the tags this scenario reads, msgid, time and batch, carry no escapes).
pub fn tag<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let tags = line.strip_prefix(b"@")?;
    let end = memchr::memchr(b' ', tags).unwrap_or(tags.len());
    tags[..end].split(|b| *b == b';').find_map(|t| {
        let (k, v) = match memchr::memchr(b'=', t) {
            Some(eq) => (&t[..eq], &t[eq + 1..]),
            None => (t, &t[t.len()..]),
        };
        (k == key).then_some(v)
    })
}

/// Milliseconds since the Unix epoch of an IRCv3 `time` tag, `YYYY-MM-DDThh:mm:ss[.sss]Z`.
pub fn parse_time(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.strip_suffix('Z')?;
    let (date, clock) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut clock = clock.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let millis = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// The `time` tag form of milliseconds since the Unix epoch.
pub fn format_time(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(msgid: &str, time_ms: i64, sender: u32, seq: u64) -> Entry {
        Entry {
            msgid: msgid.to_string(),
            time_ms,
            stamp: Some(Stamp {
                sender,
                seq,
                sent_at: 0,
            }),
            marker: None,
        }
    }

    /// Lines `from..to` of one sender, msgids `m<seq>`, one per millisecond.
    fn run(sender: u32, from: u64, to: u64) -> Vec<Entry> {
        (from..to)
            .map(|s| line(&format!("m{sender}-{s}"), 1000 + s as i64, sender, s))
            .collect()
    }

    fn oldest() -> Oldest {
        Oldest {
            msgid: "m1-0".into(),
            time_ms: 1000,
        }
    }

    fn cursor_of(page: &[Entry]) -> Cursor {
        Cursor::MsgId {
            msgid: page[0].msgid.clone(),
            time_ms: page[0].time_ms,
        }
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(
            parse_time(b"2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_time(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_time(b"2024-02-29T23:59:59.5Z"),
            Some(1_709_251_199_500)
        );
        for ms in [0, 951_782_400_000, 1_709_251_199_999, 4_102_444_800_001] {
            assert_eq!(parse_time(format_time(ms).as_bytes()), Some(ms));
        }
        assert_eq!(parse_time(b"2023-13-14T22:13:20.123Z"), None);
        assert_eq!(parse_time(b"2023-11-14 22:13:20Z"), None);
        assert_eq!(parse_time(b"yesterday"), None);
    }

    #[test]
    fn lines_are_classified_and_read() {
        assert_eq!(
            classify(b":srv BATCH +h7 chathistory #hist"),
            Line::Open {
                id: b"h7",
                kind: b"chathistory",
                target: b"#hist"
            }
        );
        assert_eq!(classify(b":srv BATCH -h7"), Line::Close { id: b"h7" });
        assert_eq!(
            classify(b":srv FAIL CHATHISTORY INVALID_TARGET BEFORE #x :no"),
            Line::Error
        );
        assert_eq!(classify(b":srv 403 me #x :No such channel"), Line::Error);
        assert_eq!(classify(b"PING :srv"), Line::Ping);
        assert_eq!(classify(b":a!b@c JOIN #hist"), Line::Other);
        let history = b"@batch=h7;msgid=ab01;time=2023-11-14T22:13:20.123Z :f!f@h PRIVMSG #hist :b3 17 99 xxxx";
        assert_eq!(classify(history), Line::InBatch { id: b"h7" });
        let e = entry(history).expect("a well-formed history line");
        assert_eq!(e.msgid, "ab01");
        assert_eq!(e.time_ms, 1_700_000_000_123);
        assert_eq!(e.stamp.map(|s| (s.sender, s.seq)), Some((3, 17)));
        let marker = b"@batch=h7;msgid=ab02;time=2023-11-14T22:13:20.123Z :k!k@h PRIVMSG #hist :parley-bench history fill: 500 lines";
        assert_eq!(entry(marker).map(|e| e.marker), Ok(Some(500)));
        assert!(matches!(
            entry(b"@batch=h7;time=2023-11-14T22:13:20.123Z :f!f@h PRIVMSG #hist :hi"),
            Err(PageError::Malformed(_))
        ));
    }

    #[test]
    fn a_clean_walk_passes_and_ends_at_the_start() {
        let all = run(1, 0, 250);
        let mut walk = Walk::default();
        let requested = 100;
        assert_eq!(
            walk.check(&Cursor::Latest, &all[150..], requested, &oldest()),
            Ok(false)
        );
        let cursor = cursor_of(&all[150..]);
        assert_eq!(
            walk.check(&cursor, &all[50..150], requested, &oldest()),
            Ok(false)
        );
        let cursor = cursor_of(&all[50..150]);
        // The last page is short because it reaches the oldest line: allowed.
        assert_eq!(
            walk.check(&cursor, &all[..50], requested, &oldest()),
            Ok(true)
        );
        let cursor = cursor_of(&all[..50]);
        assert_eq!(walk.check(&cursor, &[], requested, &oldest()), Ok(true));
    }

    #[test]
    fn interleaved_senders_pass() {
        let mut all: Vec<Entry> = (0..200u64)
            .map(|i| line(&format!("m{i}"), 1000 + i as i64 / 3, (i % 2) as u32, i / 2))
            .collect();
        all.push(Entry {
            msgid: "marker".into(),
            time_ms: 2000,
            stamp: None,
            marker: Some(200),
        });
        let oldest = Oldest {
            msgid: "m0".into(),
            time_ms: 1000,
        };
        let mut walk = Walk::default();
        walk.check(&Cursor::Latest, &all[101..], 100, &oldest)
            .expect("newest page");
        walk.check(&cursor_of(&all[101..]), &all[1..101], 100, &oldest)
            .expect("older page");
        assert_eq!(
            walk.check(&cursor_of(&all[1..101]), &all[..1], 100, &oldest),
            Ok(true)
        );
    }

    #[test]
    fn every_kind_of_wrong_page_is_caught() {
        let all = run(1, 0, 300);
        let page = &all[200..];
        let requested = 100;
        let check_second = |second: &[Entry]| {
            let mut walk = Walk::default();
            walk.check(&Cursor::Latest, page, requested, &oldest())
                .expect("the first page is fine");
            walk.check(&cursor_of(page), second, requested, &oldest())
        };
        // A line lost between pages.
        assert!(matches!(
            check_second(&all[99..199]),
            Err(PageError::Gap { .. })
        ));
        // The same line in both pages.
        assert!(matches!(
            check_second(&all[101..201]),
            Err(PageError::Repeated { .. })
        ));
        // A line lost inside a page (still 100 lines: one more from further back).
        let mut holed = all[99..200].to_vec();
        holed.remove(50);
        assert!(matches!(check_second(&holed), Err(PageError::Gap { .. })));
        // Two lines swapped (times kept in order, sequence numbers not).
        let mut swapped = all[100..200].to_vec();
        let (a, b) = (swapped[10].stamp, swapped[11].stamp);
        swapped[10].stamp = b;
        swapped[11].stamp = a;
        assert!(matches!(check_second(&swapped), Err(PageError::Gap { .. })));
        // Out of order by time.
        let mut late = all[100..200].to_vec();
        late[5].time_ms = late[4].time_ms - 10;
        assert!(matches!(
            check_second(&late),
            Err(PageError::OutOfOrder { .. })
        ));
        // Short without reaching the start.
        assert!(matches!(
            check_second(&all[150..200]),
            Err(PageError::Short { .. })
        ));
        // Too long.
        assert!(matches!(
            check_second(&all[99..200]),
            Err(PageError::TooMany { .. })
        ));
        // Newer than the cursor (the server ignored it).
        let mut walk = Walk::default();
        assert!(matches!(
            walk.check(&Cursor::Time(1100), &all[100..200], requested, &oldest()),
            Err(PageError::NotOlder { .. })
        ));
        // An empty answer that is not at the start.
        let mut walk = Walk::default();
        assert!(matches!(
            walk.check(&Cursor::Time(1200), &[], requested, &oldest()),
            Err(PageError::Short { .. })
        ));
    }

    #[test]
    fn requests_name_the_cursor() {
        assert_eq!(
            Cursor::Latest.request("#h", 100),
            "CHATHISTORY LATEST #h * 100\r\n"
        );
        assert_eq!(
            Cursor::Time(1_700_000_000_123).request("#h", 5),
            "CHATHISTORY BEFORE #h timestamp=2023-11-14T22:13:20.123Z 5\r\n"
        );
        let cursor = Cursor::MsgId {
            msgid: "ab".into(),
            time_ms: 0,
        };
        assert_eq!(
            cursor.request("#h", 5),
            "CHATHISTORY BEFORE #h msgid=ab 5\r\n"
        );
    }
}
