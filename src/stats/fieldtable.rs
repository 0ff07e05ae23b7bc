//! AMQP field tables (client properties, consumer arguments) as the management API
//! writes them in JSON: tables as objects, arrays as arrays, numbers as numbers, strings
//! as strings (bytes that are not UTF-8 replaced), void as null.
//!
//! Called once per connection.open and basic.consume, never per message.

use amq_protocol::types::{AMQPValue, FieldTable};
use serde_json::{json, Map, Value};

pub fn to_json(table: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in table.inner() {
        m.insert(k.as_str().to_owned(), value(v));
    }
    Value::Object(m)
}

fn value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::DecimalValue(d) => json!(d.value as f64 / 10f64.powi(d.scale as i32)),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value).collect()),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldTable(t) => to_json(t),
        AMQPValue::Void => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{FieldArray, LongString};

    #[test]
    fn nested_tables_and_arrays_become_json() {
        let mut caps = FieldTable::default();
        caps.insert("publisher_confirms".into(), AMQPValue::Boolean(true));
        let mut t = FieldTable::default();
        t.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        t.insert(
            "product".into(),
            AMQPValue::LongString(LongString::from("pika")),
        );
        t.insert("n".into(), AMQPValue::LongInt(-3));
        t.insert(
            "bad".into(),
            AMQPValue::LongString(LongString::from(&b"\xff"[..])),
        );
        t.insert(
            "list".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Void])),
        );
        let v = to_json(&t);
        assert_eq!(v["capabilities"]["publisher_confirms"], true);
        assert_eq!(v["product"], "pika");
        assert_eq!(v["n"], -3);
        assert_eq!(v["bad"], "\u{fffd}");
        assert_eq!(v["list"], json!([null]));
    }
}
