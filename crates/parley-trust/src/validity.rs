//! Reads a certificate's validity period (notBefore, notAfter) straight from its DER.
//! WebPKI checks dates only on the CA path; a certificate trusted by its fingerprint (a pin or a
//! known_servers entry) skips that path, so this small reader lets us refuse an expired pinned
//! certificate too, with its dates in the message. It walks only the few fields before `validity`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validity period of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const EXPLICIT_VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Parses the validity of a DER certificate; `None` if it is not a well-formed certificate.
pub(crate) fn validity(cert_der: &[u8]) -> Option<Validity> {
    let (certificate, _) = expect_tag(cert_der, SEQUENCE)?;
    let (tbs, _) = expect_tag(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&EXPLICIT_VERSION) {
        rest = read_tlv(rest)?.2;
    }
    rest = expect_tag(rest, INTEGER)?.1; // serialNumber
    rest = expect_tag(rest, SEQUENCE)?.1; // signature algorithm
    rest = expect_tag(rest, SEQUENCE)?.1; // issuer
    let (validity, _) = expect_tag(rest, SEQUENCE)?;
    let (tag, not_before, rest) = read_tlv(validity)?;
    let not_before = parse_time(tag, not_before)?;
    let (tag, not_after, _) = read_tlv(rest)?;
    let not_after = parse_time(tag, not_after)?;
    Some(Validity {
        not_before,
        not_after,
    })
}

/// Formats a time as `YYYY-MM-DD HH:MM:SS UTC` for error messages.
pub(crate) fn format_utc(time: SystemTime) -> String {
    let (secs, sign) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, 1),
        Err(e) => (e.duration().as_secs() as i64, -1),
    };
    let secs = secs * sign;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Returns (tag, contents, rest) of the first DER element; only definite lengths exist in DER.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, after) = input.split_at(count);
        input = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    if input.len() < len {
        return None;
    }
    let (contents, rest) = input.split_at(len);
    Some((tag, contents, rest))
}

fn expect_tag(input: &[u8], expected: u8) -> Option<(&[u8], &[u8])> {
    let (tag, contents, rest) = read_tlv(input)?;
    (tag == expected).then_some((contents, rest))
}

fn parse_time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    // RFC 5280 4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY < 50 means 20YY), GeneralizedTime YYYYMMDDHHMMSSZ.
    let (year, at) = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (GENERALIZED_TIME, 15) => (digits(0..4)?, 4),
        _ => return None,
    };
    if text.last() != Some(&b'Z') {
        return None;
    }
    let month = digits(at..at + 2)?;
    let day = digits(at + 2..at + 4)?;
    let hour = digits(at + 4..at + 6)?;
    let minute = digits(at + 6..at + 8)?;
    let second = digits(at + 8..at + 10)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    })
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_time_forms() {
        let utc = parse_time(UTC_TIME, b"200229123456Z").expect("valid UTCTime");
        assert_eq!(format_utc(utc), "2020-02-29 12:34:56 UTC");
        let old = parse_time(UTC_TIME, b"750101000000Z").expect("valid UTCTime");
        assert_eq!(format_utc(old), "1975-01-01 00:00:00 UTC");
        let far = parse_time(GENERALIZED_TIME, b"40960101000000Z").expect("valid GeneralizedTime");
        assert_eq!(format_utc(far), "4096-01-01 00:00:00 UTC");
        let before_epoch = parse_time(GENERALIZED_TIME, b"19600301000000Z").expect("valid");
        assert_eq!(format_utc(before_epoch), "1960-03-01 00:00:00 UTC");
    }

    #[test]
    fn reads_the_dates_of_a_real_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(2099, 12, 31);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("certificate");
        let period = validity(cert.der()).expect("well-formed certificate");
        assert_eq!(format_utc(period.not_before), "2001-02-03 00:00:00 UTC");
        assert_eq!(format_utc(period.not_after), "2099-12-31 00:00:00 UTC");
        assert_eq!(validity(&cert.der()[..cert.der().len() / 2]), None);
    }

    #[test]
    fn rejects_malformed_times_and_certificates() {
        assert_eq!(parse_time(UTC_TIME, b"201329123456Z"), None);
        assert_eq!(parse_time(UTC_TIME, b"2002291234Z"), None);
        assert_eq!(parse_time(GENERALIZED_TIME, b"200229123456Z"), None);
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x82, 0xFF]), None);
    }
}
