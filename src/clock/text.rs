//! Durations and dates as people write them to move a manual clock: `250ms`, `10s`,
//! `90m`, `1h30m`, `2d` for `advance`, and an RFC 3339 date
//! (`2027-01-01T00:00:00Z`, with fractions or an offset) or Unix milliseconds for `set`.
//!
//! Called by `warren ctl clock` (to check before sending) and by the management
//! endpoint (which decides). Pure functions over bounded text: anything else is an
//! error naming the text, never a panic.

use super::calendar::days_from_civil;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longer texts are refused before they are looked at.
const MAX_TEXT: usize = 64;
/// The longest move accepted at once: 100 years (a typo of a few more digits is
/// refused rather than sending the clock past any due time ever).
pub const MAX_MOVE: Duration = Duration::from_secs(100 * 366 * 86_400);

fn quoted(text: &str) -> String {
    let shown: String = text.chars().take(MAX_TEXT).collect();
    format!("'{}'", shown.escape_debug())
}

/// A duration: one or more of a whole number and a unit (ms, s, m, h, d), largest
/// first or not, e.g. `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{} is not a duration: write a number and a unit (ms, s, m, h, d), e.g. 250ms, \
             10s, 90m, 1h30m, 2d",
            quoted(text)
        )
    };
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(bad());
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = number.checked_mul(unit_ms).ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    let d = Duration::from_millis(total);
    if d > MAX_MOVE {
        return Err(format!(
            "{} is too long a move: at most 100 years at once",
            quoted(text)
        ));
    }
    Ok(d)
}

/// A date: RFC 3339 (`2027-01-01T00:00:00Z`, `2027-01-01T01:00:00.250+01:00`) or Unix
/// milliseconds (`1798761600000`).
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let bad = || {
        format!(
            "{} is not a date: write it as RFC 3339 (2027-01-01T00:00:00Z) or as Unix \
             milliseconds",
            quoted(text)
        )
    };
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = text.parse().map_err(|_| bad())?;
        return UNIX_EPOCH
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(bad);
    }
    let ms = rfc3339_ms(text).ok_or_else(bad)?;
    let ms = u64::try_from(ms).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Unix milliseconds of an RFC 3339 date-time, if it is one.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = text.get(from..from + len)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let sep = |at: usize, c: &[u8]| b.get(at).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, s) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if sep(at, b".") {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        // Milliseconds: the first three digits count, the rest are cut.
        let first = &text[at + 1..at + 1 + digits.min(3)];
        millis = first.parse::<i64>().ok()? * 10_i64.pow(3 - first.len() as u32);
        at += 1 + digits;
    }
    let offset_min = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && sep(at + 3, b":") => {
            let (oh, om) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s.min(59) - offset_min * 60;
    Some(secs * 1000 + millis)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_written() {
        let ms = |t: &str| parse_duration(t).map(|d| d.as_millis());
        assert_eq!(ms("250ms"), Ok(250));
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("90m"), Ok(5_400_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert_eq!(ms("1d2h3m4s5ms"), Ok(93_784_005));
        assert_eq!(ms("0s"), Ok(0));
    }

    #[test]
    fn bad_durations_are_refused_by_name() {
        for bad in [
            "",
            "90",
            "m",
            "10 s",
            "-5s",
            "1.5h",
            "5y",
            "10S",
            "1h30",
            "h1",
            "1hh",
            "99999999999999999999d",
            "18446744073709551615d",
        ] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.contains(&quoted(bad)), "{e}");
        }
        assert!(
            parse_duration(&"1s".repeat(40)).is_err(),
            "over the length bound"
        );
        assert_eq!(
            parse_duration("36700d").unwrap_err(),
            "'36700d' is too long a move: at most 100 years at once"
        );
        assert!(parse_duration("36600d").is_ok());
    }

    #[test]
    fn dates_as_written() {
        let ms = |t: &str| {
            parse_time(t).map(|d| d.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).ok())
        };
        assert_eq!(ms("2027-01-01T00:00:00Z"), Ok(Some(1_798_761_600_000)));
        assert_eq!(
            ms("2027-01-01T01:00:00.250+01:00"),
            Ok(Some(1_798_761_600_250))
        );
        assert_eq!(ms("2026-12-31T23:30:00-00:30"), Ok(Some(1_798_761_600_000)));
        assert_eq!(ms("2000-02-29T00:00:00.1234Z"), Ok(Some(951_782_400_123)));
        assert_eq!(ms("1798761600000"), Ok(Some(1_798_761_600_000)));
        for text in ["2027-01-01T00:00:00Z", "2000-02-29T12:34:56.789Z"] {
            let t = parse_time(text).expect(text);
            let unix = t
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_millis() as i64;
            assert_eq!(crate::clock::rfc3339(unix).replace(".000", ""), text);
        }
    }

    #[test]
    fn bad_dates_are_refused_by_name() {
        for bad in [
            "",
            "2027-01-01",
            "2027-13-01T00:00:00Z",
            "2027-02-29T00:00:00Z",
            "2027-01-01T24:00:00Z",
            "2027-01-01T00:00:00",
            "2027-01-01T00:00:00+1",
            "2027-01-01T00:00:00.Z",
            "tomorrow",
            "-5",
            "99999999999999999999999",
            "2027-01-01T00:00:00Zjunk",
            "1969-12-31T23:59:59Z",
        ] {
            let e = parse_time(bad).expect_err(bad);
            assert!(e.contains(&quoted(bad)), "{e}");
        }
    }

    proptest::proptest! {
        /// Whatever text a client sends (ctl, the HTTP endpoint), both parsers answer
        /// Ok or a refusal, never a panic: near-miss dates and durations included.
        #[test]
        fn any_text_is_answered_never_a_panic(
            text in "[0-9dhmsTZz:.+ -]{0,40}|\\PC{0,40}"
        ) {
            let _ = parse_duration(&text);
            let _ = parse_time(&text);
        }
    }
}
