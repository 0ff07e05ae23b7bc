//! A stream's arguments as RabbitMQ 3.10 reads them: x-max-age and the interval form of
//! x-stream-offset ("7D", "30m": digits and one unit of Y M D h m s), the log's
//! configuration from the declared arguments, and where a consumer starts.
//!
//! Pure functions, called by the vhost (opening a stream) and channels (basic.consume);
//! the interval form itself is read by `arguments::parse_interval`, which declare-time
//! validation also uses. Never touch the log here.

use crate::broker::arguments::{as_int, parse_interval, text_arg};
use crate::broker::stream::{StartAt, StreamConfig};
use crate::error::{Exception, ReplyCode};
use amq_protocol::types::{AMQPValue, FieldTable};

/// The segment size when x-stream-max-segment-size-bytes is not given (RabbitMQ's).
pub const DEFAULT_SEGMENT_BYTES: u64 = 500_000_000;

/// The smallest segment warren accepts: RabbitMQ takes 0 and any tiny size; a segment
/// per entry would only cost file handles, so a smaller value is raised to this.
const MIN_SEGMENT_BYTES: u64 = 4096;

/// The log's configuration from a stream's declared arguments (already validated).
pub fn config(args: &FieldTable) -> StreamConfig {
    let int = |key: &str| {
        args.inner()
            .get(key)
            .and_then(as_int)
            .and_then(|n| u64::try_from(n).ok())
    };
    let max_age = text_arg(args, "x-max-age")
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(parse_interval);
    StreamConfig {
        max_age,
        max_length_bytes: int("x-max-length-bytes"),
        max_segment_size_bytes: int("x-stream-max-segment-size-bytes")
            .unwrap_or(DEFAULT_SEGMENT_BYTES)
            .max(MIN_SEGMENT_BYTES),
    }
}

/// Where a consumer starts, from its x-stream-offset argument (default: next). `now_ms`
/// is the wall clock, for the interval form. A value RabbitMQ 3.10 cannot read makes it
/// close the connection with a bare INTERNAL_ERROR (its channel process crashes); warren
/// closes it the same way, so clients see what they would see there.
pub fn start_at(args: &FieldTable, now_ms: i64) -> Result<StartAt, Exception> {
    let Some(value) = args.inner().get("x-stream-offset") else {
        return Ok(StartAt::Next);
    };
    let bad = || Exception {
        code: ReplyCode::InternalError,
        text: "INTERNAL_ERROR".to_owned(),
        class_id: 0,
        method_id: 0,
    };
    if let AMQPValue::Timestamp(seconds) = value {
        let ms = i64::try_from(*seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        return Ok(StartAt::Timestamp(ms));
    }
    if let Some(n) = as_int(value) {
        // Below the first retained offset means the first (RabbitMQ starts a negative
        // offset at the beginning too).
        return Ok(StartAt::Offset(u64::try_from(n.max(0)).unwrap_or(u64::MAX)));
    }
    let text = text_arg(args, "x-stream-offset").ok_or_else(bad)?;
    Ok(match text {
        b"first" => StartAt::First,
        b"last" => StartAt::Last,
        b"next" => StartAt::Next,
        other => {
            let interval = std::str::from_utf8(other)
                .ok()
                .and_then(parse_interval)
                .ok_or_else(bad)?;
            let ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
            StartAt::Timestamp(now_ms.saturating_sub(ms))
        }
    })
}

/// Milliseconds since the Unix epoch on the wall clock (entry timestamps, intervals).
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn intervals_read_like_rabbitmq() {
        assert_eq!(parse_interval("7D"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_interval("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_interval("1Y"), Some(Duration::from_secs(365 * 86400)));
        assert_eq!(parse_interval("2M"), Some(Duration::from_secs(60 * 86400)));
        assert_eq!(parse_interval("10s"), Some(Duration::from_secs(10)));
        for bad in [
            "",
            "10",
            "1d",
            "1H",
            "-1s",
            " 1h",
            "1.5h",
            "1hh",
            "0s",
            "h",
            "99999999999999999999s",
            "1é",
        ] {
            assert_eq!(parse_interval(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn offsets_read_like_rabbitmq() {
        let with = |v: AMQPValue| {
            let mut t = FieldTable::default();
            t.insert("x-stream-offset".into(), v);
            start_at(&t, 10_000_000)
        };
        assert!(matches!(
            start_at(&FieldTable::default(), 0),
            Ok(StartAt::Next)
        ));
        assert!(matches!(
            with(AMQPValue::LongString("first".into())),
            Ok(StartAt::First)
        ));
        assert!(matches!(
            with(AMQPValue::ShortString("last".into())),
            Ok(StartAt::Last)
        ));
        assert!(matches!(
            with(AMQPValue::LongLongInt(5)),
            Ok(StartAt::Offset(5))
        ));
        assert!(matches!(
            with(AMQPValue::ShortInt(-3)),
            Ok(StartAt::Offset(0))
        ));
        assert!(matches!(
            with(AMQPValue::Timestamp(7)),
            Ok(StartAt::Timestamp(7000))
        ));
        assert!(matches!(
            with(AMQPValue::LongString("1m".into())),
            Ok(StartAt::Timestamp(9_940_000))
        ));
        for bad in [
            AMQPValue::LongString("foo".into()),
            AMQPValue::Boolean(true),
            AMQPValue::Double(1.5),
            AMQPValue::FieldTable(FieldTable::default()),
        ] {
            let e = with(bad).expect_err("refused");
            assert_eq!(e.code, ReplyCode::InternalError);
        }
    }
}
