//! What the delayed-message exchange reads from its clients: the `x-delayed-type`
//! argument of exchange.declare and the `x-delay` header of a published message.
//!
//! Called by the vhost (declare checks, routing) and by `Exchange::new`. Pure functions
//! over field tables: they never fail on a client's value with a panic; a value of a
//! type the plugin does not read means "no delay", as in the plugin.

use super::ExchangeKind;
use crate::error::Exception;
use amq_protocol::types::{AMQPValue, FieldTable};

/// The exchange type name clients declare.
pub const TYPE_NAME: &str = "x-delayed-message";

/// The type a delayed exchange routes with, from its `x-delayed-type` argument: any
/// exchange type but itself (the plugin kinds too, as the plugin allows).
pub fn routing_kind(arguments: &FieldTable) -> Option<ExchangeKind> {
    let t = text(arguments.inner().get("x-delayed-type")?)?;
    ExchangeKind::parse(&t).filter(|k| *k != ExchangeKind::Delayed)
}

/// The plugin's checks of `x-delayed-type` at exchange.declare, with its reply texts: a
/// string naming an existing exchange type other than `x-delayed-message`, whose own
/// checks of the arguments then apply.
pub fn check_type(arguments: &FieldTable) -> Result<(), Exception> {
    let Some(t) = arguments.inner().get("x-delayed-type").and_then(text) else {
        return Err(Exception::precondition_failed(
            "Invalid argument, 'x-delayed-type' must be an existing exchange type",
        ));
    };
    if t == TYPE_NAME {
        return Err(Exception::precondition_failed(
            "Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
        ));
    }
    match routing_kind(arguments) {
        Some(kind) => kind.validate(arguments),
        // RabbitMQ's own check of an exchange type (rabbit_exchange:check_type).
        None => Err(Exception::command_invalid(format!(
            "invalid exchange type '{t}'"
        ))),
    }
}

fn text(v: &AMQPValue) -> Option<String> {
    match v {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// The delay a message asks for, in milliseconds, if it asks for one (a positive
/// `x-delay`). Read as the plugin reads it: any integer type as it is, a string as a
/// decimal integer, a float or decimal truncated; anything else (or a string that is
/// not a number, which crashes the plugin's channel) means no delay. Not capped: a
/// delay the plugin refuses to hold (past 2^32-1 ms, about 49 days) is held here.
pub fn delay_of(headers: Option<&FieldTable>) -> Option<u64> {
    let ms = match headers?.inner().get("x-delay")? {
        AMQPValue::ShortShortInt(v) => i64::from(*v),
        AMQPValue::ShortShortUInt(v) => i64::from(*v),
        AMQPValue::ShortInt(v) => i64::from(*v),
        AMQPValue::ShortUInt(v) => i64::from(*v),
        AMQPValue::LongInt(v) => i64::from(*v),
        AMQPValue::LongUInt(v) => i64::from(*v),
        AMQPValue::LongLongInt(v) => *v,
        // `as` saturates, and NaN becomes 0 (no delay).
        AMQPValue::Float(v) => v.trunc() as i64,
        AMQPValue::Double(v) => v.trunc() as i64,
        AMQPValue::DecimalValue(d) => i64::from(d.value) / 10i64.saturating_pow(u32::from(d.scale)),
        AMQPValue::LongString(s) => parse_integer(&String::from_utf8_lossy(s.as_bytes()))?,
        AMQPValue::ShortString(s) => parse_integer(s.as_str())?,
        _ => return None,
    };
    u64::try_from(ms).ok().filter(|&ms| ms > 0)
}

/// A decimal integer as Erlang's binary_to_integer reads it (optional sign, digits
/// only); one too large for 64 bits is taken as the largest of its sign.
fn parse_integer(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<i64>().unwrap_or(if s.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// The `x-delay` a routed message carries on: minus its delay, as the plugin sets it,
/// so that passing through another delayed exchange does not delay it again and
/// consumers can tell it was delayed.
pub fn routed_header(delay: u64) -> AMQPValue {
    let negative = -(i64::try_from(delay).unwrap_or(i64::MAX));
    match i32::try_from(negative) {
        Ok(v) => AMQPValue::LongInt(v),
        Err(_) => AMQPValue::LongLongInt(negative),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{DecimalValue, LongString, ShortString};

    fn with(v: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert("x-delay".into(), v);
        t
    }

    #[test]
    fn reads_every_type_the_plugin_reads() {
        let d = |v| delay_of(Some(&with(v)));
        assert_eq!(d(AMQPValue::LongInt(300)), Some(300));
        assert_eq!(d(AMQPValue::ShortShortInt(5)), Some(5));
        assert_eq!(d(AMQPValue::ShortShortUInt(5)), Some(5));
        assert_eq!(d(AMQPValue::ShortInt(5)), Some(5));
        assert_eq!(d(AMQPValue::ShortUInt(5)), Some(5));
        assert_eq!(d(AMQPValue::LongUInt(5)), Some(5));
        assert_eq!(d(AMQPValue::LongLongInt(i64::MAX)), Some(i64::MAX as u64));
        assert_eq!(d(AMQPValue::Double(250.9)), Some(250));
        assert_eq!(d(AMQPValue::Float(0.5)), None);
        assert_eq!(d(AMQPValue::Double(f64::NAN)), None);
        assert_eq!(d(AMQPValue::Double(f64::INFINITY)), Some(i64::MAX as u64));
        assert_eq!(
            d(AMQPValue::DecimalValue(DecimalValue {
                scale: 1,
                value: 1234
            })),
            Some(123)
        );
        assert_eq!(
            d(AMQPValue::DecimalValue(DecimalValue {
                scale: 255,
                value: 1
            })),
            None
        );
        assert_eq!(d(AMQPValue::LongString(LongString::from("450"))), Some(450));
        assert_eq!(d(AMQPValue::ShortString(ShortString::from("+7"))), Some(7));
        assert_eq!(
            d(AMQPValue::LongString(LongString::from(
                "99999999999999999999999"
            ))),
            Some(i64::MAX as u64)
        );
        assert_eq!(d(AMQPValue::LongString(LongString::from("12a"))), None);
        assert_eq!(d(AMQPValue::LongString(LongString::from(""))), None);
        assert_eq!(d(AMQPValue::LongString(LongString::from("-"))), None);
        assert_eq!(d(AMQPValue::Boolean(true)), None);
        assert_eq!(d(AMQPValue::Timestamp(5)), None);
        assert_eq!(d(AMQPValue::LongInt(-5)), None);
        assert_eq!(d(AMQPValue::LongInt(0)), None);
        assert_eq!(delay_of(None), None);
    }

    #[test]
    fn routed_header_is_minus_the_delay() {
        assert_eq!(routed_header(300), AMQPValue::LongInt(-300));
        assert_eq!(routed_header(u64::MAX), AMQPValue::LongLongInt(-i64::MAX));
    }
}
