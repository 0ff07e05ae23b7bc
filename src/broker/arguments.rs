//! Queue and exchange arguments: RabbitMQ's validation of the ones it knows, its
//! equivalence check on redeclare, and how it prints values in those errors; and the
//! per-message expiration property.
//!
//! Pure functions, called by the vhost (declare) and channels (publish).

use crate::error::Exception;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::time::Duration;

/// Queue arguments RabbitMQ compares when a queue is declared again.
pub const COMPARED_QUEUE_ARGS: [&str; 18] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-queue-master-locator",
    "x-queue-leader-locator",
    "x-max-age",
];

/// What RabbitMQ requires of each argument it knows.
#[derive(Clone, Copy)]
enum Rule {
    /// An integer above zero.
    Positive,
    /// An integer, zero or more.
    NonNegative,
    /// An integer from 0 to 255.
    Priority,
    /// Milliseconds, above zero and at most `MAX_TIMER`.
    PositiveTimer,
    /// Milliseconds, zero or more and at most `MAX_TIMER`.
    NonNegativeTimer,
}

/// The longest TTL or expiry RabbitMQ 3.10.8 accepts: ten years, in milliseconds
/// (observed: one more is `{value_too_large,315360000001}`).
pub const MAX_TIMER: i128 = 315_360_000_000;

const VALIDATED_QUEUE_ARGS: [(&str, Rule); 7] = [
    ("x-expires", Rule::PositiveTimer),
    ("x-initial-cluster-size", Rule::Positive),
    ("x-stream-max-segment-size-bytes", Rule::NonNegative),
    ("x-message-ttl", Rule::NonNegativeTimer),
    ("x-max-length", Rule::NonNegative),
    ("x-max-length-bytes", Rule::NonNegative),
    ("x-max-priority", Rule::Priority),
];

/// PRECONDITION_FAILED for a known argument of the wrong type or out of range, with
/// RabbitMQ's wording (`{value_negative,-1}`, `"expected integer, got longstr"`).
pub fn validate_queue_args(args: &FieldTable, describe: &str) -> Result<(), Exception> {
    for (key, rule) in VALIDATED_QUEUE_ARGS {
        let Some(value) = args.inner().get(key) else {
            continue;
        };
        let problem = match (as_int(value), rule) {
            (None, _) => format!("\"expected integer, got {}\"", type_name(value)),
            (Some(n), _) if n < 0 => format!("{{value_negative,{n}}}"),
            (Some(0), Rule::Positive | Rule::PositiveTimer) => "{value_zero,0}".to_owned(),
            (Some(n), Rule::PositiveTimer | Rule::NonNegativeTimer) if n > MAX_TIMER => {
                format!("{{value_too_large,{n}}}")
            }
            (Some(n), Rule::Priority) if n > 255 => format!("{{max_value_exceeded,{n}}}"),
            _ => continue,
        };
        return Err(Exception::precondition_failed(format!(
            "invalid arg '{key}' for {describe}: {problem}"
        )));
    }
    validate_text_args(args, describe)
}

/// The flags a queue was declared with, for the checks that depend on its type.
pub struct DeclaredFlags {
    pub server_named: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
}

/// The queue types, as x-queue-type names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueType {
    Classic,
    Quorum,
    Stream,
}

impl QueueType {
    pub fn of(args: &FieldTable) -> QueueType {
        match text_arg(args, "x-queue-type").unwrap_or_default() {
            b"quorum" => QueueType::Quorum,
            b"stream" => QueueType::Stream,
            _ => QueueType::Classic,
        }
    }

    /// RabbitMQ's module name for the type, as its error texts say it.
    fn module(self) -> &'static str {
        match self {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
            QueueType::Stream => "rabbit_stream_queue",
        }
    }
}

/// Arguments one queue type or another refuses (RabbitMQ 3.10.8, each checked on it);
/// arguments nobody knows are accepted by all.
const REFUSED_BY_TYPE: [(&str, &[QueueType]); 19] = {
    use QueueType::*;
    [
        ("x-dead-letter-exchange", &[Stream]),
        ("x-dead-letter-routing-key", &[Stream]),
        ("x-dead-letter-strategy", &[Classic]),
        ("x-delivery-limit", &[Classic, Stream]),
        ("x-expires", &[Stream]),
        ("x-initial-cluster-size", &[Classic]),
        ("x-max-age", &[Classic, Quorum]),
        ("x-max-in-memory-bytes", &[Classic]),
        ("x-max-in-memory-length", &[Classic]),
        ("x-max-length", &[Stream]),
        ("x-max-priority", &[Quorum, Stream]),
        ("x-message-ttl", &[Stream]),
        ("x-overflow", &[Stream]),
        ("x-queue-leader-locator", &[Classic]),
        ("x-queue-master-locator", &[Quorum]),
        ("x-queue-mode", &[Quorum, Stream]),
        ("x-quorum-initial-group-size", &[Classic]),
        ("x-single-active-consumer", &[Stream]),
        ("x-stream-max-segment-size-bytes", &[Classic]),
    ]
};

/// What a queue type does not allow, with RabbitMQ's texts: quorum and stream queues
/// must be durable, named, not exclusive and not auto-delete; each type refuses the
/// arguments of the others. (warren serves quorum queues as classic queues with their
/// delivery count, and stream queues as logs, `stream_queue`; a declaration RabbitMQ
/// refuses is refused here too.)
pub fn validate_queue_type(
    args: &FieldTable,
    flags: &DeclaredFlags,
    describe: &str,
) -> Result<(), Exception> {
    let kind = QueueType::of(args);
    let type_name = kind.module();
    // The table is sorted by key, as RabbitMQ reports the first refused one.
    let refused = args.inner().keys().find(|k| {
        REFUSED_BY_TYPE
            .iter()
            .any(|(arg, types)| *arg == k.as_str() && types.contains(&kind))
    });
    if kind == QueueType::Classic {
        return match refused {
            Some(key) => Err(Exception::precondition_failed(format!(
                "invalid arg '{}' for {describe} of queue type {type_name}",
                key.as_str()
            ))),
            None => Ok(()),
        };
    }
    if flags.server_named {
        return Err(Exception::precondition_failed(format!(
            "Cannot declare a server-named queue for type {type_name}"
        )));
    }
    let property = if flags.auto_delete {
        Some("auto-delete")
    } else if flags.exclusive {
        Some("exclusive-owner")
    } else if !flags.durable {
        Some("non-durable")
    } else {
        None
    };
    if let Some(p) = property {
        return Err(Exception::precondition_failed(format!(
            "invalid property '{p}' for {describe}"
        )));
    }
    if let Some(key) = refused {
        return Err(Exception::precondition_failed(format!(
            "invalid arg '{}' for {describe} of queue type {type_name}",
            key.as_str()
        )));
    }
    Ok(())
}

/// The string and boolean arguments, with RabbitMQ 3.10's wording for each refusal.
fn validate_text_args(args: &FieldTable, describe: &str) -> Result<(), Exception> {
    let get = |key: &str| args.inner().get(key);
    let invalid = |key: &str, problem: String| {
        Exception::precondition_failed(format!("invalid arg '{key}' for {describe}: {problem}"))
    };
    let unacceptable =
        |key: &str, v: &AMQPValue| invalid(key, format!("{{unacceptable_type,{}}}", type_name(v)));
    // A string argument's text, or the refusal for another type.
    let text = |key: &str| -> Result<Option<String>, Exception> {
        match (get(key), text_arg(args, key)) {
            (None, _) => Ok(None),
            (Some(_), Some(t)) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
            (Some(v), None) => Err(unacceptable(key, v)),
        }
    };
    if let Some(v) = get("x-dead-letter-exchange") {
        if !matches!(v, AMQPValue::LongString(_) | AMQPValue::ShortString(_)) {
            return Err(Exception::precondition_failed(format!(
                "invalid type '{}' for arg 'x-dead-letter-exchange' in {describe}",
                type_name(v)
            )));
        }
    }
    if text("x-dead-letter-routing-key")?.is_some() {
        if get("x-dead-letter-exchange").is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined".into(),
            ));
        }
        // A routing key is a short string: a longer one could never be delivered (RabbitMQ
        // 3.10 accepts it here and then fails the connection that gets the dead letter
        // with INTERNAL_ERROR). Refused where it enters, in RabbitMQ's words for a value
        // out of range.
        let len = text_arg(args, "x-dead-letter-routing-key").map_or(0, <[u8]>::len);
        if len > 255 {
            return Err(invalid(
                "x-dead-letter-routing-key",
                format!("{{max_length_exceeded,{len}}}"),
            ));
        }
    }
    if let Some(mode) = text("x-overflow")? {
        if !matches!(
            mode.as_str(),
            "drop-head" | "reject-publish" | "reject-publish-dlx"
        ) {
            return Err(invalid("x-overflow", "invalid_overflow".into()));
        }
    }
    if let Some(mode) = text("x-queue-mode")? {
        if !matches!(mode.as_str(), "default" | "lazy") {
            return Err(invalid(
                "x-queue-mode",
                format!("\"unsupported queue mode '{mode}'\""),
            ));
        }
    }
    if let Some(kind) = text("x-queue-type")? {
        if !matches!(kind.as_str(), "classic" | "quorum" | "stream") {
            return Err(invalid(
                "x-queue-type",
                format!("\"unsupported queue type '{kind}'\""),
            ));
        }
    }
    if let Some(age) = text("x-max-age")? {
        if parse_interval(&age).is_none() {
            return Err(invalid("x-max-age", "invalid_max_age".into()));
        }
    }
    if let Some(locator) = text("x-queue-leader-locator")? {
        if !matches!(
            locator.as_str(),
            "client-local" | "balanced" | "random" | "least-leaders"
        ) {
            return Err(invalid(
                "x-queue-leader-locator",
                "invalid_queue_locator_arg".into(),
            ));
        }
    }
    match get("x-single-active-consumer") {
        None | Some(AMQPValue::Boolean(_)) => Ok(()),
        Some(v) => Err(unacceptable("x-single-active-consumer", v)),
    }
}

/// basic.consume's arguments RabbitMQ type-checks before the consumer is added:
/// `x-priority` an integer, `x-cancel-on-ha-failover` a boolean. `describe` names the
/// queue ("queue 'q' in vhost '/'").
pub fn validate_consumer_args(args: &FieldTable, describe: &str) -> Result<(), Exception> {
    let invalid = |key: &str, problem: String| {
        Exception::precondition_failed(format!("invalid arg '{key}' for {describe}: {problem}"))
    };
    if let Some(v) = args.inner().get("x-priority") {
        if as_int(v).is_none() {
            return Err(invalid(
                "x-priority",
                format!("\"expected integer, got {}\"", type_name(v)),
            ));
        }
    }
    match args.inner().get("x-cancel-on-ha-failover") {
        None | Some(AMQPValue::Boolean(_)) => Ok(()),
        Some(v) => Err(invalid(
            "x-cancel-on-ha-failover",
            format!("{{unacceptable_type,{}}}", type_name(v)),
        )),
    }
}

/// A new exchange's `alternate-exchange` must be a string (RabbitMQ checks it only when
/// the exchange is created). `describe` names the exchange.
pub fn validate_alternate_exchange(args: &FieldTable, describe: &str) -> Result<(), Exception> {
    match args.inner().get("alternate-exchange") {
        None | Some(AMQPValue::LongString(_) | AMQPValue::ShortString(_)) => Ok(()),
        Some(v) => Err(Exception::precondition_failed(format!(
            "invalid type '{}' for arg 'alternate-exchange' in {describe}",
            type_name(v)
        ))),
    }
}

/// An interval as x-max-age writes it: a positive number and one unit (Y = 365 days,
/// M = 30 days, D, h, m, s, as RabbitMQ counts them). `None` for anything else.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let seconds = match unit {
        'Y' => 365 * 24 * 3600,
        'M' => 30 * 24 * 3600,
        'D' => 24 * 3600,
        'h' => 3600,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    let total = n.checked_mul(seconds)?;
    (total > 0).then(|| Duration::from_secs(total))
}

/// The expiration property: milliseconds as a decimal string, as RabbitMQ accepts it.
pub fn parse_expiration(text: &str) -> Result<u64, Exception> {
    let invalid =
        |why: String| Exception::precondition_failed(format!("invalid expiration '{text}': {why}"));
    let n: i64 = text.parse().map_err(|_| invalid("no_integer".to_owned()))?;
    if n < 0 {
        return Err(invalid(format!("{{value_negative,{n}}}")));
    }
    Ok(n as u64)
}

/// RabbitMQ's argument equivalence: only `keys` are compared; integers of any width are
/// alike when their values are.
pub fn assert_args_equivalent(
    current: &FieldTable,
    received: &FieldTable,
    keys: &[&str],
    describe: &str,
) -> Result<(), Exception> {
    for key in keys {
        let (cur, new) = (current.inner().get(*key), received.inner().get(*key));
        let same = match (cur, new) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a == b || matches!((as_int(a), as_int(b)), (Some(x), Some(y)) if x == y)
            }
            _ => false,
        };
        if !same {
            // RabbitMQ prints bare values when both sides have the same type.
            let (received, current) = match (new, cur) {
                (Some(a), Some(b)) if type_name(a) == type_name(b) => (
                    format!("'{}'", value_text(a)),
                    format!("'{}'", value_text(b)),
                ),
                _ => (describe_value(new), describe_value(cur)),
            };
            return Err(Exception::precondition_failed(format!(
                "inequivalent arg '{key}' for {describe}: received {received} but current is {current}"
            )));
        }
    }
    Ok(())
}

/// The text of a string argument (long or short string); `None` when absent or of
/// another type.
pub fn text_arg<'a>(args: &'a FieldTable, key: &str) -> Option<&'a [u8]> {
    match args.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        _ => None,
    }
}

pub fn as_int(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(i) => *i as i128,
        AMQPValue::ShortShortUInt(i) => *i as i128,
        AMQPValue::ShortInt(i) => *i as i128,
        AMQPValue::ShortUInt(i) => *i as i128,
        AMQPValue::LongInt(i) => *i as i128,
        AMQPValue::LongUInt(i) => *i as i128,
        AMQPValue::LongLongInt(i) => *i as i128,
        _ => return None,
    })
}

/// How RabbitMQ prints an argument in an inequivalence error.
fn describe_value(v: Option<&AMQPValue>) -> String {
    match v {
        None => "none".to_owned(),
        Some(v) => format!("the value '{}' of type '{}'", value_text(v), type_name(v)),
    }
}

/// RabbitMQ's name for a field type.
pub(crate) fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

fn value_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(i) => i.to_string(),
        AMQPValue::ShortShortUInt(i) => i.to_string(),
        AMQPValue::ShortInt(i) => i.to_string(),
        AMQPValue::ShortUInt(i) => i.to_string(),
        AMQPValue::LongInt(i) => i.to_string(),
        AMQPValue::LongUInt(i) => i.to_string(),
        AMQPValue::LongLongInt(i) => i.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::Timestamp(t) => t.to_string(),
        AMQPValue::DecimalValue(d) => format!("{d:?}"),
        AMQPValue::Void => "undefined".to_owned(),
        AMQPValue::FieldTable(_) | AMQPValue::FieldArray(_) | AMQPValue::ByteArray(_) => {
            "...".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_arguments_are_validated_like_rabbitmq() {
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(-1));
        let e = validate_queue_args(&args, "queue 'q' in vhost '/'").expect_err("negative");
        assert_eq!(e.text, "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': {value_negative,-1}");
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongString("10".into()));
        let e = validate_queue_args(&args, "queue 'q' in vhost '/'").expect_err("string");
        assert!(
            e.text.ends_with(": \"expected integer, got longstr\""),
            "{}",
            e.text
        );
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(0));
        assert!(validate_queue_args(&args, "q").is_err());
        args.insert("x-expires".into(), AMQPValue::LongLongInt(1000));
        assert!(validate_queue_args(&args, "q").is_ok());
    }

    #[test]
    fn text_arguments_are_validated_like_rabbitmq() {
        let refusal = |key: &str, value: AMQPValue| {
            let mut args = FieldTable::default();
            args.insert(key.into(), value);
            validate_queue_args(&args, "queue 'a' in vhost '/'")
                .err()
                .map(|e| e.text)
        };
        let long = |s: &str| AMQPValue::LongString(s.into());
        let prefix = "PRECONDITION_FAILED - invalid arg";
        assert_eq!(
            refusal("x-overflow", long("bogus")).as_deref(),
            Some(&*format!(
                "{prefix} 'x-overflow' for queue 'a' in vhost '/': invalid_overflow"
            ))
        );
        assert_eq!(
            refusal("x-overflow", AMQPValue::LongInt(5)).as_deref(),
            Some(&*format!(
                "{prefix} 'x-overflow' for queue 'a' in vhost '/': {{unacceptable_type,signedint}}"
            ))
        );
        assert_eq!(
            refusal("x-queue-mode", long("bogus")).as_deref(),
            Some(&*format!(
                "{prefix} 'x-queue-mode' for queue 'a' in vhost '/': \"unsupported queue mode 'bogus'\""
            ))
        );
        assert_eq!(
            refusal("x-queue-type", long("bogus")).as_deref(),
            Some(&*format!(
                "{prefix} 'x-queue-type' for queue 'a' in vhost '/': \"unsupported queue type 'bogus'\""
            ))
        );
        assert_eq!(
            refusal("x-dead-letter-exchange", AMQPValue::LongInt(5)).as_deref(),
            Some("PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'a' in vhost '/'")
        );
        assert_eq!(
            refusal("x-dead-letter-routing-key", long("x")).as_deref(),
            Some(&*format!(
                "{prefix} 'x-dead-letter-routing-key' for queue 'a' in vhost '/': routing_key_but_no_dlx_defined"
            ))
        );
        assert_eq!(
            refusal("x-single-active-consumer", long("yes")).as_deref(),
            Some(&*format!(
                "{prefix} 'x-single-active-consumer' for queue 'a' in vhost '/': {{unacceptable_type,longstr}}"
            ))
        );
        for (key, ok) in [
            ("x-overflow", long("reject-publish-dlx")),
            ("x-queue-mode", long("lazy")),
            ("x-queue-type", long("classic")),
            ("x-single-active-consumer", AMQPValue::Boolean(true)),
        ] {
            assert_eq!(refusal(key, ok), None, "{key}");
        }
    }

    #[test]
    fn expiration_is_a_non_negative_integer() {
        assert_eq!(parse_expiration("60000").ok(), Some(60000));
        assert_eq!(
            parse_expiration("abc").map_err(|e| e.text).err().as_deref(),
            Some("PRECONDITION_FAILED - invalid expiration 'abc': no_integer")
        );
        assert_eq!(
            parse_expiration("-1").map_err(|e| e.text).err().as_deref(),
            Some("PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}")
        );
    }
}
