//! Reading single basic properties out of the raw property bytes, and replacing one.
//!
//! The broker keeps the publisher's property bytes verbatim; when it needs one field
//! (user_id to check, reply_to to rewrite for direct reply-to) it walks the property
//! list to that field instead of decoding and re-encoding everything, which would also
//! reorder header tables.

use bytes::{BufMut, Bytes, BytesMut};

pub const HEADERS: u16 = 1 << 13;
pub const DELIVERY_MODE: u16 = 1 << 12;
pub const PRIORITY: u16 = 1 << 11;
pub const CORRELATION_ID: u16 = 1 << 10;
pub const REPLY_TO: u16 = 1 << 9;
pub const EXPIRATION: u16 = 1 << 8;
pub const MESSAGE_ID: u16 = 1 << 7;
pub const TIMESTAMP: u16 = 1 << 6;
pub const USER_ID: u16 = 1 << 4;

/// Property flag bits in list order, with the encoded size rule of each field.
const FIELDS: [(u16, Kind); 14] = [
    (1 << 15, Kind::Short),
    (1 << 14, Kind::Short),
    (1 << 13, Kind::Table),
    (1 << 12, Kind::Octet),
    (1 << 11, Kind::Octet),
    (1 << 10, Kind::Short),
    (1 << 9, Kind::Short),
    (1 << 8, Kind::Short),
    (1 << 7, Kind::Short),
    (1 << 6, Kind::Timestamp),
    (1 << 5, Kind::Short),
    (1 << 4, Kind::Short),
    (1 << 3, Kind::Short),
    (1 << 2, Kind::Short),
];

#[derive(Clone, Copy)]
enum Kind {
    Short,
    Table,
    Octet,
    Timestamp,
}

pub fn flags(props: &[u8]) -> u16 {
    match props {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// The byte range of the field for `bit` (whole encoding, length prefix included).
fn span(props: &[u8], bit: u16) -> Option<(usize, usize)> {
    let flags = flags(props);
    if flags & bit == 0 {
        return None;
    }
    let mut pos = 2;
    for (b, kind) in FIELDS {
        if flags & b == 0 {
            continue;
        }
        let len = match kind {
            Kind::Short => 1 + *props.get(pos)? as usize,
            Kind::Table => {
                let n = props.get(pos..pos + 4)?;
                4 + u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize
            }
            Kind::Octet => 1,
            Kind::Timestamp => 8,
        };
        if pos + len > props.len() {
            return None;
        }
        if b == bit {
            return Some((pos, pos + len));
        }
        pos += len;
    }
    None
}

/// The byte range of the headers table (its 4-byte length first), if set.
pub fn headers_span(props: &[u8]) -> Option<(usize, usize)> {
    span(props, HEADERS)
}

/// The priority property, if set.
pub fn priority(props: &[u8]) -> Option<u8> {
    let (start, _) = span(props, PRIORITY)?;
    props.get(start).copied()
}

/// The delivery-mode property (2 = persistent), if set.
pub fn delivery_mode(props: &[u8]) -> Option<u8> {
    let (start, _) = span(props, DELIVERY_MODE)?;
    props.get(start).copied()
}

/// A short-string property (`REPLY_TO`, `USER_ID`, `EXPIRATION`), if set and UTF-8.
pub fn short_str(props: &[u8], bit: u16) -> Option<&str> {
    let (start, end) = span(props, bit)?;
    std::str::from_utf8(&props[start + 1..end]).ok()
}

/// A short-string property's raw bytes (UTF-8 or not), if set.
pub fn short_bytes(props: &[u8], bit: u16) -> Option<&[u8]> {
    let (start, end) = span(props, bit)?;
    props.get(start + 1..end)
}

/// The timestamp property, if set.
pub fn timestamp(props: &[u8]) -> Option<u64> {
    let (start, end) = span(props, TIMESTAMP)?;
    Some(u64::from_be_bytes(props.get(start..end)?.try_into().ok()?))
}

/// The same properties with a short-string field replaced; everything else verbatim.
pub fn replace_short_str(props: &[u8], bit: u16, value: &str) -> Option<Bytes> {
    let (start, end) = span(props, bit)?;
    let value = super::truncate(value, 255).as_bytes();
    let mut out = BytesMut::with_capacity(props.len() + value.len());
    out.put_slice(&props[..start]);
    out.put_u8(value.len() as u8);
    out.put_slice(value);
    out.put_slice(&props[end..]);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::WriteContext;
    use amq_protocol::protocol::basic::{gen_properties, parse_properties};
    use amq_protocol::protocol::BasicProperties;
    use amq_protocol::types::{AMQPValue, FieldTable};

    #[test]
    fn finds_and_replaces_reply_to_leaving_the_rest_intact() {
        let mut headers = FieldTable::default();
        headers.insert("k".into(), AMQPValue::LongInt(1));
        let props = BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(headers)
            .with_priority(1)
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_timestamp(5)
            .with_user_id("guest".into())
            .with_cluster_id("c".into());
        let raw = gen_properties(&props)(WriteContext::from(Vec::new()))
            .map(|c| c.write)
            .unwrap_or_default();
        assert_eq!(short_str(&raw, REPLY_TO), Some("amq.rabbitmq.reply-to"));
        assert_eq!(short_str(&raw, USER_ID), Some("guest"));
        assert_eq!(short_str(&raw, EXPIRATION), None);
        let replaced =
            replace_short_str(&raw, REPLY_TO, "amq.rabbitmq.reply-to.abc").unwrap_or_default();
        let (_, parsed) = parse_properties(&replaced[..]).expect("parses");
        assert_eq!(
            parsed.reply_to().as_ref().map(|s| s.as_str()),
            Some("amq.rabbitmq.reply-to.abc")
        );
        assert_eq!(parsed.headers(), props.headers());
        assert_eq!(parsed.cluster_id(), props.cluster_id());
        assert!(
            short_str(&raw[..raw.len() - 3], 1 << 2).is_none(),
            "truncated input is refused"
        );
    }
}
