//! When a certificate stops being valid: the `notAfter` of each certificate in a PEM
//! file, for the management API's certificate-expiration health check (as RabbitMQ's
//! reads its listeners' certfile and cacertfile).
//!
//! Called off the runtime's workers (the caller reads the file in `spawn_blocking`).
//! The same small DER walk as `subject`: lengths are checked before use, anything
//! unexpected gives `None`, never a panic.

use super::subject::{any, element};
use crate::clock::calendar::{civil, days_from_civil};
use std::io;
use std::path::Path;

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xA0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The `notAfter` of every certificate in the PEM file at `path`, in seconds since the
/// Unix epoch; `None` for a certificate whose validity cannot be read.
pub fn expiries(path: &Path) -> io::Result<Vec<Option<i64>>> {
    Ok(super::certificates(path)?
        .iter()
        .map(|c| not_after(c.as_ref()))
        .collect())
}

/// A DER certificate's `notAfter`, in seconds since the Unix epoch.
pub fn not_after(certificate: &[u8]) -> Option<i64> {
    let (_, cert, _) = element(certificate, SEQUENCE)?;
    let (_, mut tbs, _) = element(cert, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs, VERSION)?.2;
    }
    // serialNumber, signature, issuer; then the validity.
    for _ in 0..3 {
        tbs = any(tbs)?.2;
    }
    let (_, validity, _) = element(tbs, SEQUENCE)?;
    let (_, _, rest) = any(validity)?;
    let (tag, text, _) = any(rest)?;
    time(tag, std::str::from_utf8(text).ok()?)
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950-2049) or GeneralizedTime `YYYYMMDDHHMMSSZ`.
fn time(tag: u8, text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<i64>().ok();
    let (month, day, hour, minute, second) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// `seconds` since the epoch as RabbitMQ prints an expiry: `2027-03-01 9:05:00` (UTC).
pub fn format(seconds: i64) -> String {
    let c = civil(seconds);
    format!(
        "{}-{:02}-{:02} {}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    #[test]
    fn not_after_is_read_from_a_real_certificate() {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 15);
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let at = not_after(&der).expect("validity");
        assert_eq!(format(at), "2031-07-15 0:00:00");
        // Every cut is read without a panic.
        for n in 0..der.len() {
            let _ = not_after(&der[..n]);
        }
    }

    #[test]
    fn times_convert_both_ways() {
        assert_eq!(time(UTC_TIME, "700101000000Z"), Some(0));
        assert_eq!(
            time(GENERALIZED_TIME, "20500101120000Z")
                .map(format)
                .as_deref(),
            Some("2050-01-01 12:00:00")
        );
        assert_eq!(
            time(UTC_TIME, "491231235959Z").map(format).as_deref(),
            Some("2049-12-31 23:59:59")
        );
        assert_eq!(time(UTC_TIME, "70010100000Z"), None);
        assert_eq!(time(UTC_TIME, "701301000000Z"), None);
    }
}
