//! RabbitMQ's history parameters: `lengths_age`/`lengths_incr`, `msg_rates_age`/
//! `msg_rates_incr`, `data_rates_age`/`data_rates_incr` and `node_stats_age`/
//! `node_stats_incr` (seconds), read as RabbitMQ 3.10 reads them: a pair is a range only
//! when both are integers (anything else, "abc" or "60.5", is as if absent); an integer
//! pair with age or incr not above 0, or asking more than 500 samples, is a 400
//! "Invalid range parameters: age A, incr I".
//!
//! Called by the handlers that answer with `samples` (`/api/overview`, `/api/vhosts/{name}`);
//! parses only, never touches the broker.

use super::error::{ApiError, ApiResult};
use crate::stats::history::{Range, MAX_SAMPLES};

/// The ranges a request asked for.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ranges {
    pub lengths: Option<Range>,
    pub msg_rates: Option<Range>,
    pub data_rates: Option<Range>,
}

/// An Erlang `list_to_integer`: an optional sign and digits; the normalised text (as
/// RabbitMQ prints it back) and its value when it fits.
fn integer(text: &str) -> Option<(String, Option<i128>)> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' => ("-", &text[1..]),
        b'+' => ("", &text[1..]),
        _ => ("", text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() { "0" } else { trimmed };
    let sign = if trimmed == "0" { "" } else { sign };
    let shown = format!("{sign}{trimmed}");
    Some((shown.clone(), shown.parse().ok()))
}

impl Ranges {
    /// The ranges in a request's query pairs (the first of a repeated key counts).
    pub fn parse(pairs: &[(String, String)]) -> ApiResult<Ranges> {
        let first = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let range = |prefix: &str| -> ApiResult<Option<Range>> {
            let age = first(&format!("{prefix}_age")).and_then(integer);
            let incr = first(&format!("{prefix}_incr")).and_then(integer);
            let (Some((age_text, age)), Some((incr_text, incr))) = (age, incr) else {
                return Ok(None);
            };
            let invalid = || {
                ApiError::bad_request(format!(
                    "Invalid range parameters: age {age_text}, incr {incr_text}"
                ))
            };
            let (Some(age), Some(incr)) = (age, incr) else {
                return Err(invalid());
            };
            if age <= 0 || incr <= 0 || age / incr > i128::from(MAX_SAMPLES) {
                return Err(invalid());
            }
            let (Ok(age), Ok(incr)) = (u64::try_from(age), u64::try_from(incr)) else {
                return Err(invalid());
            };
            Ok(Some(Range { age, incr }))
        };
        // node_stats is checked as RabbitMQ checks it, though no answer here charts it.
        range("node_stats")?;
        Ok(Ranges {
            lengths: range("lengths")?,
            msg_rates: range("msg_rates")?,
            data_rates: range("data_rates")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn integers_as_erlang_reads_them() {
        assert_eq!(integer("+60"), Some(("60".into(), Some(60))));
        assert_eq!(integer("007"), Some(("7".into(), Some(7))));
        assert_eq!(integer("-5"), Some(("-5".into(), Some(-5))));
        assert_eq!(integer("60.5"), None);
        assert_eq!(integer(" 60"), None);
        assert_eq!(integer(""), None);
        let big = "9".repeat(60);
        assert_eq!(integer(&big), Some((big.clone(), None)));
    }

    #[test]
    fn ranges_and_refusals() {
        let r =
            Ranges::parse(&pairs(&[("msg_rates_age", "60"), ("msg_rates_incr", "5")])).expect("ok");
        assert_eq!(r.msg_rates, Some(Range { age: 60, incr: 5 }));
        assert_eq!(r.lengths, None);
        let r =
            Ranges::parse(&pairs(&[("lengths_age", "abc"), ("lengths_incr", "5")])).expect("ok");
        assert_eq!(r.lengths, None);
        let e = Ranges::parse(&pairs(&[("lengths_age", "1002"), ("lengths_incr", "2")]))
            .expect_err("too many");
        assert_eq!(e.reason, "Invalid range parameters: age 1002, incr 2");
        assert!(Ranges::parse(&pairs(&[("lengths_age", "1001"), ("lengths_incr", "2")])).is_ok());
    }
}
