//! Conversions between AMQP field tables (queue, exchange and binding arguments) and the
//! JSON values of the definitions file.
//!
//! Called by whoever turns broker objects into `definitions` entries and back. Pure
//! functions; never fail, never panic: what JSON cannot say is mapped as RabbitMQ maps it
//! when it exports and imports definitions, and that mapping is lossy:
//!
//! - every integer type (b B s u I i l, timestamp T) comes back as a signed 64-bit 'l'
//!   (RabbitMQ's `long`); integers above i64::MAX come back as a double;
//! - float 'f' comes back as double 'd'; NaN and infinities are written as null;
//! - decimal 'D' is written as its numeric value and comes back as a double (RabbitMQ
//!   3.10 writes decimals wrongly, e.g. scale 1 value 15 as 1.15; we write 1.5);
//! - short strings come back as long strings 'S'; byte arrays 'x' as long strings;
//! - strings and byte arrays that are not UTF-8 are written as RabbitMQ writes them,
//!   `"Not UTF-8, base64 is: <base64>"`, and come back as that text;
//! - void 'V' is null and comes back as void; table keys longer than 255 bytes (not
//!   valid AMQP) are skipped on the way in.
//!
//! The conversions recurse once per nested table or array, and are bounded both ways:
//! tables come from the wire through `codec::fieldscan` (at most `MAX_DEPTH` levels, chosen
//! so the file stays readable), and JSON comes from serde_json, which refuses documents
//! nested more than 128 levels deep.
//!
//! RabbitMQ compares redeclared arguments by type class (all integer widths alike), so
//! the integer and float widening does not change declare equivalence.

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::{Map, Number, Value};

/// A field table as a JSON object.
pub fn table_to_json(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), value_to_json(v)))
            .collect(),
    )
}

pub fn value_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(f) => float(f64::from(*f)),
        AMQPValue::Double(f) => float(*f),
        AMQPValue::DecimalValue(d) => float(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_owned()),
        AMQPValue::LongString(s) => text(s.as_bytes()),
        AMQPValue::ByteArray(b) => text(b.as_slice()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::Void => Value::Null,
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn text(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => Value::String(format!("Not UTF-8, base64 is: {}", base64(b))),
    }
}

/// A JSON object as a field table; anything else gives an empty table.
pub fn json_to_table(v: &Value) -> FieldTable {
    let mut t = FieldTable::default();
    if let Value::Object(m) = v {
        insert_all(&mut t, m);
    }
    t
}

fn insert_all(t: &mut FieldTable, m: &Map<String, Value>) {
    for (k, v) in m {
        if let Ok(key) = ShortString::try_new(k.as_str()) {
            t.insert(key, json_to_value(v));
        }
    }
}

pub fn json_to_value(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(json_to_value).collect::<Vec<_>>(),
        )),
        Value::Object(m) => {
            let mut t = FieldTable::default();
            insert_all(&mut t, m);
            AMQPValue::FieldTable(t)
        }
    }
}

/// Standard base64 with padding (RFC 4648), for the non-UTF-8 marker text.
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (u32::from(ch[0]) << 16)
            | (u32::from(ch.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(ch.get(2).copied().unwrap_or(0));
        let idx = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, &x) in idx.iter().enumerate() {
            if i <= ch.len() {
                out.push(char::from(A[x as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The field types JSON loses, per top-level key: integers of each width, timestamps,
/// floats and byte arrays, named as RabbitMQ names them ("signedint", "long", ...).
/// Saved beside the arguments so a restart gives back the types the client declared.
pub fn table_types(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in t.inner() {
        let name = match v {
            AMQPValue::ShortShortInt(_) => "byte",
            AMQPValue::ShortShortUInt(_) => "unsignedbyte",
            AMQPValue::ShortInt(_) => "short",
            AMQPValue::ShortUInt(_) => "unsignedshort",
            AMQPValue::LongInt(_) => "signedint",
            AMQPValue::LongUInt(_) => "unsignedint",
            AMQPValue::Timestamp(_) => "timestamp",
            AMQPValue::Float(_) => "float",
            AMQPValue::ByteArray(_) => "binary",
            AMQPValue::ShortString(_) => "shortstr",
            _ => continue,
        };
        m.insert(k.as_str().to_owned(), Value::String(name.to_owned()));
    }
    Value::Object(m)
}

/// Gives values read back from JSON the types `table_types` recorded.
pub fn retype_table(t: &mut FieldTable, types: Option<&Value>) {
    let Some(Value::Object(types)) = types else {
        return;
    };
    let mut fixed = Vec::new();
    for (k, v) in t.inner() {
        let Some(Value::String(name)) = types.get(k.as_str()) else {
            continue;
        };
        let int = match v {
            AMQPValue::LongLongInt(i) => Some(*i),
            _ => None,
        };
        let value = match (name.as_str(), int, v) {
            ("byte", Some(i), _) => i8::try_from(i).ok().map(AMQPValue::ShortShortInt),
            ("unsignedbyte", Some(i), _) => u8::try_from(i).ok().map(AMQPValue::ShortShortUInt),
            ("short", Some(i), _) => i16::try_from(i).ok().map(AMQPValue::ShortInt),
            ("unsignedshort", Some(i), _) => u16::try_from(i).ok().map(AMQPValue::ShortUInt),
            ("signedint", Some(i), _) => i32::try_from(i).ok().map(AMQPValue::LongInt),
            ("unsignedint", Some(i), _) => u32::try_from(i).ok().map(AMQPValue::LongUInt),
            ("timestamp", Some(i), _) => u64::try_from(i).ok().map(AMQPValue::Timestamp),
            ("float", _, AMQPValue::Double(f)) => Some(AMQPValue::Float(*f as f32)),
            ("binary", _, AMQPValue::LongString(s)) => {
                Some(AMQPValue::ByteArray(s.as_bytes().to_vec().into()))
            }
            ("shortstr", _, AMQPValue::LongString(s)) => std::str::from_utf8(s.as_bytes())
                .ok()
                .and_then(|s| ShortString::try_new(s).ok())
                .map(AMQPValue::ShortString),
            _ => None,
        };
        if let Some(value) = value {
            fixed.push((k.clone(), value));
        }
    }
    for (k, v) in fixed {
        t.insert(k, v);
    }
}

/// The key under which `table_types` is saved beside an entry's arguments.
pub const TYPES_KEY: &str = "warren_argument_types";

/// The extra keys to save beside arguments: their types, when JSON would lose them.
pub fn typed_extra(t: &FieldTable) -> Map<String, Value> {
    let mut extra = Map::new();
    match table_types(t) {
        Value::Object(m) if m.is_empty() => {}
        types => {
            extra.insert(TYPES_KEY.to_owned(), types);
        }
    }
    extra
}

/// Arguments read back from an entry: the JSON values with the types saved beside them.
pub fn typed_table(arguments: &Value, extra: &Map<String, Value>) -> FieldTable {
    let mut t = json_to_table(arguments);
    retype_table(&mut t, extra.get(TYPES_KEY));
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{ByteArray, DecimalValue};
    use serde_json::json;

    #[test]
    fn table_round_trip_and_lossy_parts() {
        let mut inner = FieldTable::default();
        inner.insert("k".into(), AMQPValue::LongString("v".into()));
        let mut t = FieldTable::default();
        t.insert("x-max-length".into(), AMQPValue::LongInt(1000));
        t.insert("x-bool".into(), AMQPValue::Boolean(true));
        t.insert("x-str".into(), AMQPValue::LongString("amq.fanout".into()));
        t.insert("x-short".into(), AMQPValue::ShortString("s".into()));
        t.insert("x-dbl".into(), AMQPValue::Double(2.25));
        t.insert(
            "x-dec".into(),
            AMQPValue::DecimalValue(DecimalValue {
                scale: 1,
                value: 15,
            }),
        );
        t.insert(
            "x-bytes".into(),
            AMQPValue::ByteArray(ByteArray::from(vec![1u8, 0xff])),
        );
        t.insert(
            "x-list".into(),
            AMQPValue::FieldArray(vec![AMQPValue::LongLongInt(1), AMQPValue::Void].into()),
        );
        t.insert("x-tab".into(), AMQPValue::FieldTable(inner.clone()));
        let j = table_to_json(&t);
        assert_eq!(
            j,
            json!({
                "x-max-length": 1000, "x-bool": true, "x-str": "amq.fanout", "x-short": "s",
                "x-dbl": 2.25, "x-dec": 1.5, "x-bytes": "Not UTF-8, base64 is: Af8=",
                "x-list": [1, null], "x-tab": {"k": "v"}
            })
        );
        let back = json_to_table(&j);
        let get = |k: &str| back.inner().get(k).cloned();
        assert_eq!(get("x-max-length"), Some(AMQPValue::LongLongInt(1000)));
        assert_eq!(get("x-short"), Some(AMQPValue::LongString("s".into())));
        assert_eq!(get("x-dec"), Some(AMQPValue::Double(1.5)));
        assert_eq!(get("x-tab"), Some(AMQPValue::FieldTable(inner)));
        assert_eq!(table_to_json(&back), j, "JSON -> table -> JSON is exact");
    }

    #[test]
    fn base64_matches_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(json_to_table(&json!([1, 2])), FieldTable::default());
        assert_eq!(
            json_to_value(&json!(u64::MAX)),
            AMQPValue::Double(u64::MAX as f64)
        );
    }
}
