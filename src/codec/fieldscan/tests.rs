//! The scanner against amq-protocol's own parser and generator: it accepts what they
//! accept up to `MAX_DEPTH`, refuses what they refuse, and never panics.

use super::*;
use amq_protocol::frame::WriteContext;
use amq_protocol::types::generation::gen_field_table;
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use proptest::prelude::*;

/// `levels` nested arrays under key "a" of one table: `levels + 1` containers in all.
fn nested(levels: usize) -> Vec<u8> {
    // Written front to back: level i holds the 5 * (levels - i - 1) + 1 bytes inside it.
    let mut v = Vec::with_capacity(5 * levels + 1);
    for i in 0..levels {
        v.push(b'A');
        v.extend_from_slice(&((5 * (levels - i - 1) + 1) as u32).to_be_bytes());
    }
    v.push(b'V');
    let mut body = vec![1, b'a'];
    body.extend_from_slice(&v);
    let mut t = (body.len() as u32).to_be_bytes().to_vec();
    t.extend_from_slice(&body);
    t
}

fn encode(t: &FieldTable) -> Vec<u8> {
    gen_field_table(t)(WriteContext::from(Vec::new()))
        .map(|c| c.write)
        .unwrap_or_default()
}

#[test]
fn depth_limit_counts_the_outer_table() {
    assert_eq!(check_table(&nested(MAX_DEPTH - 1)), Ok(()));
    assert_eq!(check_table(&nested(MAX_DEPTH)), Err(Invalid::TooDeep));
    assert_eq!(check_table(&nested(3000)), Err(Invalid::TooDeep));
    assert_eq!(
        check_table(&nested(100)),
        Ok(()),
        "RabbitMQ users send 100 levels"
    );
}

#[test]
fn a_million_levels_are_refused_without_recursion() {
    // Only the length prefixes need to be right for the walk to reach the bound.
    assert_eq!(check_table(&nested(1_000_000)), Err(Invalid::TooDeep));
}

#[test]
fn lengths_and_types_are_checked() {
    assert_eq!(check_table(&[]), Err(Invalid::Truncated));
    assert_eq!(check_table(&[0, 0, 0, 9, 1, b'k']), Err(Invalid::Truncated));
    assert_eq!(
        check_table(&[0, 0, 0, 3, 1, b'k', b'Z']),
        Err(Invalid::UnknownType(b'Z'))
    );
    assert_eq!(
        check_table(&[0, 0, 0, 3, 1, b'k', b'I']),
        Err(Invalid::Truncated)
    );
    // A string longer than its table.
    assert_eq!(
        check_table(&[0, 0, 0, 7, 1, b'k', b'S', 0, 0, 0, 9]),
        Err(Invalid::Truncated)
    );
    // An inner array that claims more than the outer table holds.
    assert_eq!(
        check_table(&[0, 0, 0, 7, 1, b'k', b'A', 0, 0, 0, 1]),
        Err(Invalid::Truncated)
    );
    // A key with no value after it.
    assert_eq!(check_table(&[0, 0, 0, 2, 1, b'k']), Err(Invalid::Truncated));
    assert_eq!(check_table(&[0, 0, 0, 0, 1]), Err(Invalid::Trailing));
    assert_eq!(
        check_table(&u32::MAX.to_be_bytes()),
        Err(Invalid::Truncated)
    );
}

#[test]
fn properties_are_walked_field_by_field() {
    assert_eq!(check_properties(&[0, 0]), Ok(()));
    assert_eq!(check_properties(&[0]), Err(Invalid::Truncated));
    assert_eq!(
        check_properties(&[0x80, 0]),
        Err(Invalid::Truncated),
        "flag without field"
    );
    assert_eq!(check_properties(&[0, 0, 1]), Err(Invalid::Trailing));
    let mut deep = vec![0x20, 0];
    deep.extend_from_slice(&nested(MAX_DEPTH));
    assert_eq!(check_properties(&deep), Err(Invalid::TooDeep));
    let mut ok = vec![0xB0, 0, 1, b'x'];
    ok.extend_from_slice(&nested(10));
    ok.push(2);
    assert_eq!(check_properties(&ok), Ok(()));
}

#[test]
fn methods_are_walked_to_their_tables() {
    let mut declare = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
    declare.extend_from_slice(&nested(MAX_DEPTH));
    assert_eq!(check_method(&declare), Err(Invalid::TooDeep));
    let mut start_ok = vec![0, 10, 0, 11];
    start_ok.extend_from_slice(&nested(3000));
    assert_eq!(check_method(&start_ok), Err(Invalid::TooDeep));
    assert_eq!(check_method(&[0, 50, 0, 10, 0]), Err(Invalid::Truncated));
    assert_eq!(
        check_method(&[0, 20, 0, 10]),
        Ok(()),
        "no table: left to the parser"
    );
}

fn value() -> impl Strategy<Value = AMQPValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        any::<f64>().prop_map(AMQPValue::Double),
        proptest::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| AMQPValue::LongString(LongString::from(b))),
        Just(AMQPValue::Void),
    ];
    leaf.prop_recursive(12, 64, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            proptest::collection::vec(("[a-z]{0,3}", inner), 0..4).prop_map(|kv| {
                let mut t = FieldTable::default();
                for (k, v) in kv {
                    t.insert(k.as_str().into(), v);
                }
                AMQPValue::FieldTable(t)
            }),
        ]
    })
}

proptest! {
    /// Every table amq-protocol writes (shallower than the bound) passes, to the byte.
    #[test]
    fn generated_tables_pass(entries in proptest::collection::vec(("[a-z]{1,4}", value()), 0..6)) {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert(k.as_str().into(), v);
        }
        let bytes = encode(&t);
        prop_assert_eq!(table_end(&bytes, 0), Ok(bytes.len()));
    }

    /// On any bytes the scanner ends without panicking, and agrees with amq-protocol's
    /// parser: what it refuses (short of depth) the parser refuses, and what the parser
    /// reads the scanner walks to the same end.
    #[test]
    fn agrees_with_amq_protocol_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let scanned = table_end(&bytes, 0);
        let parsed = parse_field_table(&bytes[..]);
        match (scanned, parsed) {
            (Ok(end), Ok((rest, _))) => prop_assert_eq!(end, bytes.len() - rest.len()),
            // The scanner does not check UTF-8 of keys; the parser does.
            (Ok(_), Err(_)) => {}
            (Err(Invalid::TooDeep), _) => {}
            (Err(e), Ok(_)) => prop_assert!(false, "scanner refused ({:?}) what the parser read", e),
            (Err(_), Err(_)) => {}
        }
    }

    /// Mutating one byte of a valid table never makes the walk panic or loop.
    #[test]
    fn mutated_tables_never_panic(entries in proptest::collection::vec(("[a-z]{1,4}", value()), 1..4),
                                  at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert(k.as_str().into(), v);
        }
        let mut bytes = encode(&t);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let _ = check_table(&bytes);
        let mut props = vec![0x20, 0];
        props.extend_from_slice(&bytes);
        let _ = check_properties(&props);
    }
}
