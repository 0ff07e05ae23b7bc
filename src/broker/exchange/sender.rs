//! Sender-selected distribution: RabbitMQ's `CC` and `BCC` headers, arrays of long
//! strings that add routing keys to a publish. The message is routed once with its
//! routing key and every CC and BCC key (a queue matched by several keys gets it once);
//! `BCC` is removed from the headers before the message is stored or delivered, `CC`
//! stays (and dead-lettering reads it again for x-death's `routing-keys`).
//!
//! Called by the publishing channel when a content header has the headers flag (a
//! publish without headers never gets here), by the management API's publish, and by
//! `VHost::route` for messages the broker itself routes again (dead letters). Works on
//! the raw property bytes the codec already checked: it walks the top-level keys of the
//! headers table without decoding it, and cuts `BCC` out by splicing bytes, so the rest
//! of the properties stay byte for byte as the publisher sent them. It never decodes a
//! whole table except to name the wrong type in a refusal, and never panics on bytes
//! that do not parse (they carry no extra keys).

use crate::codec::fieldscan::value_end;
use crate::codec::properties;
use crate::error::Exception;
use bytes::Bytes;

/// The extra keys of one publish, and its properties without `BCC` if it had one.
#[derive(Debug, Default, PartialEq)]
pub struct SenderRoutes {
    /// The CC keys, then the BCC keys, in header order.
    pub keys: Vec<String>,
    /// The properties with the `BCC` entry cut out; `None` when there was none.
    pub stripped: Option<Bytes>,
}

/// One entry of the headers table: where it starts, where its value (type byte first)
/// starts and where it ends.
#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    value: usize,
    end: usize,
}

/// Finds the first `CC` and the first `BCC` entries (RabbitMQ looks up the first one of
/// each name). `None` when the properties have no headers or do not parse.
fn find(props: &[u8]) -> Option<(usize, Option<Entry>, Option<Entry>)> {
    let (start, end) = properties::headers_span(props)?;
    let (mut cc, mut bcc) = (None, None);
    let mut at = start + 4;
    while at < end {
        let key_len = *props.get(at)? as usize;
        let key = props.get(at + 1..at + 1 + key_len)?;
        let value = at + 1 + key_len;
        let entry = Entry {
            start: at,
            value,
            end: value_end(props, value, end).ok()?,
        };
        match key {
            b"CC" if cc.is_none() => cc = Some(entry),
            b"BCC" if bcc.is_none() => bcc = Some(entry),
            _ => {}
        }
        at = entry.end;
    }
    Some((start, cc, bcc))
}

/// The extra keys of a publish, checked as RabbitMQ checks them: a `CC` or `BCC` that is
/// not an array refuses the message (precondition_failed, the channel closes); members
/// of the array that are not long strings are ignored. `Ok(None)` when neither is there.
pub fn scan(props: &[u8]) -> Result<Option<SenderRoutes>, Exception> {
    if properties::flags(props) & properties::HEADERS == 0 {
        return Ok(None);
    }
    let Some((table, cc, bcc)) = find(props) else {
        return Ok(None);
    };
    if cc.is_none() && bcc.is_none() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for (name, entry) in [("CC", cc), ("BCC", bcc)] {
        if let Some(e) = entry {
            if props.get(e.value) != Some(&b'A') {
                return Err(wrong_type(props, name));
            }
            push_strings(props, e, &mut keys);
        }
    }
    let stripped = bcc.map(|e| cut(props, table, e));
    Ok(Some(SenderRoutes { keys, stripped }))
}

/// The extra keys a message's headers give (no refusal: for messages already accepted).
pub fn routes(props: &[u8]) -> Vec<String> {
    scan(props)
        .ok()
        .flatten()
        .map(|r| r.keys)
        .unwrap_or_default()
}

/// The `CC` keys alone (x-death's `routing-keys` lists the routing key, then these).
pub fn cc_keys(props: &[u8]) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some((_, Some(e), _)) = find(props) {
        if props.get(e.value) == Some(&b'A') {
            push_strings(props, e, &mut keys);
        }
    }
    keys
}

/// Appends the long strings of the array `e` holds (its type byte checked by the caller).
/// A key that is not UTF-8 could match no binding and is skipped.
fn push_strings(props: &[u8], e: Entry, keys: &mut Vec<String>) {
    let mut at = e.value + 5;
    while at < e.end {
        let Ok(end) = value_end(props, at, e.end) else {
            return;
        };
        if props[at] == b'S' {
            if let Ok(key) = std::str::from_utf8(&props[at + 5..end]) {
                keys.push(key.to_owned());
            }
        }
        at = end;
    }
}

/// The properties with entry `e` of the headers table at `table` cut out.
fn cut(props: &[u8], table: usize, e: Entry) -> Bytes {
    let mut out = Vec::with_capacity(props.len() - (e.end - e.start));
    out.extend_from_slice(&props[..e.start]);
    out.extend_from_slice(&props[e.end..]);
    let len = u32::from_be_bytes([
        props[table],
        props[table + 1],
        props[table + 2],
        props[table + 3],
    ]) as usize;
    let len = (len - (e.end - e.start)) as u32;
    out[table..table + 4].copy_from_slice(&len.to_be_bytes());
    Bytes::from(out)
}

/// RabbitMQ's refusal of a `CC` or `BCC` that is not an array, naming the type it got.
fn wrong_type(props: &[u8], name: &str) -> Exception {
    let message = crate::broker::message::Message::new("", "", props, b"");
    let atom = message
        .headers()
        .and_then(|h| h.inner().get(name).map(super::headers::type_atom))
        .unwrap_or("void");
    Exception::precondition_failed(format!(
        "invalid message: {{unacceptable_type_in_header,\"{name}\",{atom}}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::WriteContext;
    use amq_protocol::protocol::basic::{gen_properties, parse_properties};
    use amq_protocol::protocol::BasicProperties;
    use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};

    fn encode(headers: Vec<(&str, AMQPValue)>) -> Vec<u8> {
        let mut table = FieldTable::default();
        for (k, v) in headers {
            table.insert(k.into(), v);
        }
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(table)
            .with_delivery_mode(2);
        let written = gen_properties(&props)(WriteContext::from(Vec::new()));
        written.map(|c| c.write).unwrap_or_default()
    }

    fn strs(keys: &[&str]) -> AMQPValue {
        let items = keys
            .iter()
            .map(|k| AMQPValue::LongString(LongString::from(*k)))
            .collect::<Vec<_>>();
        AMQPValue::FieldArray(FieldArray::from(items))
    }

    #[test]
    fn no_headers_or_no_cc_means_nothing() {
        assert_eq!(scan(&[0, 0]), Ok(None));
        let props = encode(vec![("x", AMQPValue::LongInt(1))]);
        assert_eq!(scan(&props), Ok(None));
        assert_eq!(
            scan(&[0x20, 0, 0, 0]),
            Ok(None),
            "a truncated table is no route"
        );
    }

    #[test]
    fn finds_cc_and_bcc_and_cuts_bcc_only() {
        let props = encode(vec![
            ("a", AMQPValue::LongInt(1)),
            ("CC", strs(&["k2", "k4"])),
            ("BCC", strs(&["k3"])),
            ("z", AMQPValue::Boolean(true)),
        ]);
        let found = scan(&props).expect("accepted").expect("routes");
        assert_eq!(found.keys, ["k2", "k4", "k3"]);
        let stripped = found.stripped.expect("BCC cut");
        let (_, parsed) = parse_properties(&stripped[..]).expect("still parses");
        let headers = parsed.headers().clone().unwrap_or_default();
        let names: Vec<&str> = headers.inner().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["CC", "a", "z"]);
        assert_eq!(parsed.delivery_mode(), &Some(2));
        assert_eq!(cc_keys(&stripped), ["k2", "k4"]);
        assert_eq!(routes(&stripped), ["k2", "k4"]);
    }

    #[test]
    fn damaged_bytes_never_panic() {
        let props = encode(vec![
            ("CC", strs(&["k2", "k4"])),
            ("BCC", strs(&["k3"])),
            ("z", AMQPValue::Boolean(true)),
        ]);
        for cut in 0..props.len() {
            let _ = scan(&props[..cut]);
            let _ = cc_keys(&props[..cut]);
        }
        // Every byte changed in turn, to each value that a length or type could take.
        for at in 2..props.len() {
            for b in [0u8, 1, 0x7f, 0xff, b'A', b'S', b'F'] {
                let mut bad = props.clone();
                bad[at] = b;
                let _ = scan(&bad);
                let _ = cc_keys(&bad);
            }
        }
    }

    #[test]
    fn members_that_are_not_long_strings_are_ignored() {
        let mixed = AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::LongString(LongString::from("k2")),
            strs(&["k3"]),
        ]));
        let props = encode(vec![("CC", mixed)]);
        let routes = scan(&props).expect("accepted").expect("routes");
        assert_eq!(routes.keys, ["k2"]);
        assert_eq!(routes.stripped, None);
    }

    #[test]
    fn wrong_types_are_refused_naming_the_type() {
        let cases = [
            (
                "CC",
                AMQPValue::LongString(LongString::from("k2")),
                "longstr",
            ),
            ("BCC", AMQPValue::LongInt(5), "signedint"),
            ("CC", AMQPValue::FieldTable(FieldTable::default()), "table"),
            ("BCC", AMQPValue::Void, "void"),
            ("CC", AMQPValue::Boolean(true), "bool"),
        ];
        for (name, value, atom) in cases {
            let err = scan(&encode(vec![(name, value)])).expect_err("refused");
            assert_eq!(
                err.text,
                format!(
                    "PRECONDITION_FAILED - invalid message: {{unacceptable_type_in_header,\"{name}\",{atom}}}"
                )
            );
        }
    }
}
