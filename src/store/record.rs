//! The byte layout of segment files: the segment header and the four record kinds.
//!
//! Called by the writer (encode into its write buffer) and by recovery (decode what a
//! segment holds). Pure functions over byte slices: no I/O, no state. Decoding never
//! trusts the input: every length is checked, and anything that does not parse is
//! reported as `Bad`, never a panic.
//!
//! ```text
//! segment   = header record*
//! header    = magic "WRNSEG\0\x01" (8) | first_id u64 | crc32c(magic, first_id) u32   (20 bytes)
//! record    = len u32 | crc u32 | kind u8 | payload       len = 1 + payload length
//!             crc = crc32c(len bytes, kind, payload)
//! Message   kind 1: id u64 | exchange (u16 len + bytes) | routing key (u16 len + bytes)
//!                   | queue count u16 | (u16 len + queue key)* | properties (u32 len + bytes)
//!                   | body (the rest)
//! Ack       kind 2: id u64 | queue key (the rest)
//! Delivered kind 3: id u64 | queue key (the rest)           handed out once
//! Deliveries kind 5: id u64 | times u16 | queue key (the rest)   handed out `times` times
//! Drop      kind 4: up_to u64 | queue key (the rest)   settles every message id <= up_to
//! ```
//! All integers little-endian. `first_id` in the header is no larger than any message id
//! in the segment and larger than every id in earlier segments, so ids map to segments
//! by range, and the id counter survives even when every older segment is deleted.

use super::StoredMessage;
use crc32c::{crc32c, crc32c_append};

pub(crate) const MAGIC: [u8; 8] = *b"WRNSEG\x00\x01";
pub(crate) const HEADER_LEN: usize = 20;
/// Length and checksum in front of every record.
pub(crate) const RECORD_HEAD: usize = 8;
/// Larger records are taken as a corrupt length field.
pub(crate) const MAX_RECORD: usize = 1 << 30;

const KIND_MESSAGE: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_DELIVERED: u8 = 3;
const KIND_DROP: u8 = 4;
const KIND_DELIVERIES: u8 = 5;

/// A decoded record, borrowing from the segment bytes.
#[derive(Debug, PartialEq)]
pub(crate) enum Record<'a> {
    Message {
        id: u64,
        exchange: &'a str,
        routing_key: &'a str,
        queues: Vec<&'a str>,
        properties: &'a [u8],
        body: &'a [u8],
    },
    Ack {
        queue: &'a str,
        id: u64,
    },
    /// Handed to a client `times` times so far (quorum queues count redeliveries; kind 3
    /// records mean once).
    Delivered {
        queue: &'a str,
        id: u64,
        times: u16,
    },
    Drop {
        queue: &'a str,
        up_to: u64,
    },
}

pub(crate) fn encode_header(out: &mut Vec<u8>, first_id: u64) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&first_id.to_le_bytes());
    let crc = crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The header's `first_id`, or `None` if the header is short or damaged.
pub(crate) fn decode_header(data: &[u8]) -> Option<u64> {
    let head = data.get(..HEADER_LEN)?;
    if head[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes([head[16], head[17], head[18], head[19]]);
    if crc32c(&head[..16]) != crc {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&head[8..16]);
    Some(u64::from_le_bytes(id))
}

/// Appends one record: reserves the head, lets `payload` write kind and payload, then
/// fills in length and checksum.
fn encode_with(out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEAD]);
    payload(out);
    let len = (out.len() - start - RECORD_HEAD) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32c_append(crc32c(&len.to_le_bytes()), &out[start + RECORD_HEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Names longer than 65535 bytes cannot come from AMQP (short strings); cut rather
    // than write a length that lies.
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// Bytes a message record takes, so the writer can decide to roll first.
pub(crate) fn message_len(msg: &StoredMessage, queues: &[std::sync::Arc<str>]) -> usize {
    RECORD_HEAD
        + 1
        + 8
        + 2
        + msg.exchange.len()
        + 2
        + msg.routing_key.len()
        + 2
        + queues.iter().map(|q| 2 + q.len()).sum::<usize>()
        + 4
        + msg.properties.len()
        + msg.body.len()
}

pub(crate) fn encode_message(
    out: &mut Vec<u8>,
    id: u64,
    msg: &StoredMessage,
    queues: &[std::sync::Arc<str>],
) {
    encode_with(out, |out| {
        out.push(KIND_MESSAGE);
        out.extend_from_slice(&id.to_le_bytes());
        put_str16(out, &msg.exchange);
        put_str16(out, &msg.routing_key);
        let n = queues.len().min(u16::MAX as usize);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for q in &queues[..n] {
            put_str16(out, q);
        }
        out.extend_from_slice(&(msg.properties.len() as u32).to_le_bytes());
        out.extend_from_slice(&msg.properties);
        // The one copy of the body on its way to disk: into the batch's write buffer, so
        // a whole batch goes out in one write call.
        out.extend_from_slice(&msg.body);
    });
}

fn encode_queue_op(out: &mut Vec<u8>, kind: u8, queue: &str, n: u64) {
    encode_with(out, |out| {
        out.push(kind);
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(queue.as_bytes());
    });
}

pub(crate) fn encode_ack(out: &mut Vec<u8>, queue: &str, id: u64) {
    encode_queue_op(out, KIND_ACK, queue, id);
}

/// A delivered mark: the short kind 3 record for a first delivery, kind 5 with the
/// count for later ones.
pub(crate) fn encode_delivered(out: &mut Vec<u8>, queue: &str, id: u64, times: u16) {
    if times <= 1 {
        return encode_queue_op(out, KIND_DELIVERED, queue, id);
    }
    encode_with(out, |out| {
        out.push(KIND_DELIVERIES);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&times.to_le_bytes());
        out.extend_from_slice(queue.as_bytes());
    });
}

pub(crate) fn encode_drop(out: &mut Vec<u8>, queue: &str, up_to: u64) {
    encode_queue_op(out, KIND_DROP, queue, up_to);
}

/// What is found at an offset of a segment.
#[derive(Debug, PartialEq)]
pub(crate) enum Next<'a> {
    /// A good record and the offset just after it.
    Record(Record<'a>, usize),
    /// Clean end of data.
    End,
    /// The record there is cut short: a write that did not finish.
    Torn(&'static str),
    /// The record there is complete but damaged.
    Bad(&'static str),
}

/// Decodes the record at `pos`.
pub(crate) fn next(data: &[u8], pos: usize) -> Next<'_> {
    let Some(rest) = data.get(pos..) else {
        return Next::Torn("offset past the end");
    };
    if rest.is_empty() {
        return Next::End;
    }
    if rest.len() < RECORD_HEAD {
        return Next::Torn("partial record header");
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len == 0 || len > MAX_RECORD {
        return Next::Bad("impossible record length");
    }
    let Some(body) = rest.get(RECORD_HEAD..RECORD_HEAD + len) else {
        return Next::Torn("record cut short");
    };
    if crc32c_append(crc32c(&rest[..4]), body) != crc {
        return Next::Bad("checksum mismatch");
    }
    match decode_payload(body) {
        Some(rec) => Next::Record(rec, pos + RECORD_HEAD + len),
        None => Next::Bad("malformed payload"),
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn str16(&mut self) -> Option<&'a str> {
        let n = self.u16()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    fn rest_str(&mut self) -> Option<&'a str> {
        let s = std::str::from_utf8(self.0).ok()?;
        self.0 = &[];
        Some(s)
    }
}

fn decode_payload(body: &[u8]) -> Option<Record<'_>> {
    let (&kind, payload) = body.split_first()?;
    let mut c = Cursor(payload);
    match kind {
        KIND_MESSAGE => {
            let id = c.u64()?;
            let exchange = c.str16()?;
            let routing_key = c.str16()?;
            let n = c.u16()? as usize;
            let mut queues = Vec::with_capacity(n);
            for _ in 0..n {
                queues.push(c.str16()?);
            }
            let plen = c.u32()? as usize;
            let properties = c.take(plen)?;
            let body = c.0;
            Some(Record::Message {
                id,
                exchange,
                routing_key,
                queues,
                properties,
                body,
            })
        }
        KIND_ACK | KIND_DELIVERED | KIND_DROP => {
            let n = c.u64()?;
            let queue = c.rest_str()?;
            Some(match kind {
                KIND_ACK => Record::Ack { queue, id: n },
                KIND_DELIVERED => Record::Delivered {
                    queue,
                    id: n,
                    times: 1,
                },
                _ => Record::Drop { queue, up_to: n },
            })
        }
        KIND_DELIVERIES => {
            let id = c.u64()?;
            let times = c.u16()?;
            let queue = c.rest_str()?;
            Some(Record::Delivered { queue, id, times })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn sample() -> StoredMessage {
        StoredMessage {
            exchange: "ex".into(),
            routing_key: "rk.1".into(),
            properties: Bytes::from_static(&[0x80, 0, 1, 2]),
            body: Bytes::from_static(b"hello body"),
        }
    }

    #[test]
    fn checksums_are_the_crc32c_segments_were_written_with() {
        // The crc32c crate replaced a hand-written CRC-32C: same polynomial, same values,
        // so segments written before still recover; a record's checksum is taken in two
        // pieces (length, payload).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 + 7) as u8).collect();
        for split in [0, 4, 7, 8, 9, 4999, 5000] {
            let pieces = crc32c_append(crc32c(&data[..split]), &data[split..]);
            assert_eq!(pieces, crc32c(&data), "split at {split}");
        }
    }

    #[test]
    fn round_trip_every_kind() {
        let mut buf = Vec::new();
        encode_header(&mut buf, 42);
        let queues: Vec<std::sync::Arc<str>> = vec!["3:/vhq1".into(), "q2".into()];
        encode_message(&mut buf, 42, &sample(), &queues);
        assert_eq!(buf.len() - HEADER_LEN, message_len(&sample(), &queues));
        encode_ack(&mut buf, "q2", 42);
        encode_delivered(&mut buf, "3:/vhq1", 42, 1);
        encode_delivered(&mut buf, "q2", 42, 7);
        encode_drop(&mut buf, "q2", 99);
        assert_eq!(decode_header(&buf), Some(42));
        let mut pos = HEADER_LEN;
        let mut got = Vec::new();
        loop {
            match next(&buf, pos) {
                Next::Record(r, p) => {
                    got.push(r);
                    pos = p;
                }
                Next::End => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            got,
            vec![
                Record::Message {
                    id: 42,
                    exchange: "ex",
                    routing_key: "rk.1",
                    queues: vec!["3:/vhq1", "q2"],
                    properties: &[0x80, 0, 1, 2],
                    body: b"hello body",
                },
                Record::Ack {
                    queue: "q2",
                    id: 42
                },
                Record::Delivered {
                    queue: "3:/vhq1",
                    id: 42,
                    times: 1
                },
                Record::Delivered {
                    queue: "q2",
                    id: 42,
                    times: 7
                },
                Record::Drop {
                    queue: "q2",
                    up_to: 99
                },
            ]
        );
    }

    #[test]
    fn damage_is_reported_not_panicked() {
        let mut buf = Vec::new();
        encode_message(&mut buf, 7, &sample(), &["q".into()]);
        for cut in 0..buf.len() {
            let r = next(&buf[..cut], 0);
            assert!(
                matches!(r, Next::Torn(_) | Next::End | Next::Bad(_)),
                "cut {cut}: {r:?}"
            );
        }
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            assert!(
                !matches!(next(&b, 0), Next::Record(..)),
                "flip at {i} went unnoticed"
            );
        }
        let mut zeros = vec![0u8; 64];
        assert_eq!(next(&zeros, 0), Next::Bad("impossible record length"));
        zeros.truncate(3);
        assert_eq!(next(&zeros, 0), Next::Torn("partial record header"));
        let mut h = Vec::new();
        encode_header(&mut h, 5);
        h[9] ^= 1;
        assert_eq!(decode_header(&h), None);
    }
}
