//! AMQP field values written as RabbitMQ writes them in event headers: the plugin puts a
//! table (queue or binding arguments, client properties) into a header as an array of
//! strings, each entry printed as an Erlang term, `{<<"x-max-length">>,signedint,10}`.
//!
//! Called by `kinds` only; pure formatting. Bounded: a client's table can be as large as
//! a frame (and nested 120 deep), but one table's entries in an event take at most
//! `MAX_TABLE_TEXT` bytes; the entries past it are left out, so an event's header frame
//! stays small whatever a client declared.

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};
use std::fmt::Write;

/// The most text one table's entries take in an event.
pub const MAX_TABLE_TEXT: usize = 8192;

/// A table as the header value the plugin writes: one string per entry, as many as fit
/// `MAX_TABLE_TEXT`.
pub fn table_entries(table: &FieldTable) -> AMQPValue {
    let mut entries = Vec::new();
    let mut used = 0;
    for (k, v) in table.inner() {
        let mut s = String::new();
        entry(&mut s, k.as_str().as_bytes(), v);
        used += s.len();
        if used > MAX_TABLE_TEXT {
            break;
        }
        entries.push(super::text(&s));
    }
    AMQPValue::FieldArray(FieldArray::from(entries))
}

/// `{<<"key">>,type,value}`
fn entry(out: &mut String, key: &[u8], v: &AMQPValue) {
    out.push('{');
    binary(out, key);
    out.push(',');
    typed(out, v);
    out.push('}');
}

/// `type,value`, RabbitMQ's type names (rabbit_binary_parser).
fn typed(out: &mut String, v: &AMQPValue) {
    out.push_str(crate::broker::arguments::type_name(v));
    out.push(',');
    value(out, v);
}

fn value(out: &mut String, v: &AMQPValue) {
    let _ = match v {
        AMQPValue::Boolean(b) => write!(out, "{b}"),
        AMQPValue::ShortShortInt(n) => write!(out, "{n}"),
        AMQPValue::ShortShortUInt(n) => write!(out, "{n}"),
        AMQPValue::ShortInt(n) => write!(out, "{n}"),
        AMQPValue::ShortUInt(n) => write!(out, "{n}"),
        AMQPValue::LongInt(n) => write!(out, "{n}"),
        AMQPValue::LongUInt(n) => write!(out, "{n}"),
        AMQPValue::LongLongInt(n) => write!(out, "{n}"),
        AMQPValue::Timestamp(n) => write!(out, "{n}"),
        AMQPValue::Float(f) => write!(out, "{}", float(f64::from(*f))),
        AMQPValue::Double(f) => write!(out, "{}", float(*f)),
        AMQPValue::DecimalValue(d) => write!(out, "{{{},{}}}", d.scale, d.value),
        AMQPValue::ShortString(s) => {
            binary(out, s.as_str().as_bytes());
            Ok(())
        }
        AMQPValue::LongString(s) => {
            binary(out, s.as_bytes());
            Ok(())
        }
        AMQPValue::ByteArray(b) => {
            binary(out, b.as_slice());
            Ok(())
        }
        AMQPValue::Void => write!(out, "undefined"),
        AMQPValue::FieldTable(t) => {
            out.push('[');
            for (i, (k, v)) in t.inner().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                entry(out, k.as_str().as_bytes(), v);
            }
            out.push(']');
            Ok(())
        }
        AMQPValue::FieldArray(a) => {
            out.push('[');
            for (i, v) in a.as_slice().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                typed(out, v);
                out.push('}');
            }
            out.push(']');
            Ok(())
        }
    };
}

/// Erlang prints floats with at least one decimal ("1.0", "2.5e-7" as "2.5e-7").
fn float(f: f64) -> String {
    let s = format!("{f:?}");
    if s.contains('.') || s.contains('e') || !f.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

/// `<<"text">>` when printable, `<<1,2,3>>` otherwise, as Erlang's `~p` prints binaries.
fn binary(out: &mut String, bytes: &[u8]) {
    out.push_str("<<");
    let printable = bytes.iter().all(|b| (0x20..0x7f).contains(b));
    if printable {
        out.push('"');
        for &b in bytes {
            if b == b'"' || b == b'\\' {
                out.push('\\');
            }
            out.push(b as char);
        }
        out.push('"');
    } else {
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{b}");
        }
    }
    out.push_str(">>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::LongString;

    fn one(k: &str, v: AMQPValue) -> String {
        let mut s = String::new();
        entry(&mut s, k.as_bytes(), &v);
        s
    }

    #[test]
    fn entries_print_as_rabbitmq_prints_them() {
        assert_eq!(
            one("x-max-length", AMQPValue::LongInt(10)),
            r#"{<<"x-max-length">>,signedint,10}"#
        );
        assert_eq!(
            one("ae", AMQPValue::LongString(LongString::from("foo"))),
            r#"{<<"ae">>,longstr,<<"foo">>}"#
        );
        let mut caps = FieldTable::default();
        caps.insert("basic.nack".into(), AMQPValue::Boolean(true));
        caps.insert("publisher_confirms".into(), AMQPValue::Boolean(true));
        assert_eq!(
            one("capabilities", AMQPValue::FieldTable(caps)),
            r#"{<<"capabilities">>,table,[{<<"basic.nack">>,bool,true},{<<"publisher_confirms">>,bool,true}]}"#
        );
        let arr = FieldArray::from(vec![AMQPValue::LongLongInt(1), AMQPValue::Void]);
        assert_eq!(
            one("a", AMQPValue::FieldArray(arr)),
            r#"{<<"a">>,array,[{long,1},{void,undefined}]}"#
        );
        assert_eq!(one("d", AMQPValue::Double(2.0)), r#"{<<"d">>,double,2.0}"#);
        assert_eq!(
            one("q", AMQPValue::LongString(LongString::from("a\"b"))),
            r#"{<<"q">>,longstr,<<"a\"b">>}"#
        );
        assert_eq!(
            one("b", AMQPValue::LongString(LongString::from(vec![0u8, 255]))),
            r#"{<<"b">>,longstr,<<0,255>>}"#
        );
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use amq_protocol::types::LongString;

    #[test]
    fn a_huge_table_is_cut_to_the_bound() {
        let mut t = FieldTable::default();
        t.insert("a-small".into(), AMQPValue::LongInt(1));
        t.insert(
            "b-huge".into(),
            AMQPValue::LongString(LongString::from(vec![b'x'; 100_000])),
        );
        t.insert("c-small".into(), AMQPValue::LongInt(2));
        let AMQPValue::FieldArray(a) = table_entries(&t) else {
            panic!("not an array");
        };
        // The huge entry would pass the bound: it and what follows are left out.
        assert_eq!(a.as_slice().len(), 1);
        let mut nested = AMQPValue::Void;
        for _ in 0..120 {
            let mut t = FieldTable::default();
            t.insert("n".into(), nested);
            nested = AMQPValue::FieldTable(t);
        }
        let mut deep = FieldTable::default();
        deep.insert("deep".into(), nested);
        let AMQPValue::FieldArray(a) = table_entries(&deep) else {
            panic!("not an array");
        };
        assert_eq!(a.as_slice().len(), 1);
    }
}
