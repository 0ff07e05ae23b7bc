//! A message as it travels from a publisher through exchanges and queues to consumers.
//!
//! Built once by the publishing channel's content assembler and shared (a cheap clone)
//! by every queue it is routed to; never mutated after it is built. Exchange, routing
//! key and the publisher's raw property bytes (written back verbatim to consumers) sit
//! back to back in ONE reference-counted allocation, the "head". A small body (below
//! `SHARED_BODY_MIN`) follows them in it: a queued small message costs its bytes plus a
//! small header, and frees the read buffer it arrived in. A larger body is kept apart as
//! shared `Bytes`: the very slice of the read buffer it arrived in when one frame held
//! it (never copied in the broker: consumers' writes send that slice), or one buffer of
//! the announced size filled once from its frames. Properties are decoded only when
//! routing needs them (headers exchange).

use amq_protocol::protocol::basic::{parse_properties, AMQPProperties};
use amq_protocol::types::FieldTable;
use bytes::{Bytes, BytesMut};
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

/// Per-message memory beyond its bytes (see `Message::share_cost`).
const PER_MESSAGE_OVERHEAD: usize = 96;

/// Bodies of this many bytes or more are kept apart from the head, as shared `Bytes`.
///
/// Why 16 KiB: below it, copying costs less than what sharing costs. Sharing costs a
/// second allocation (the body's `Arc`), one more slice per write, and above all the
/// read buffer: a held slice keeps its block from being reused, so the connection reads
/// into a new block (`connection::READ_BLOCK`, 256 KiB) whenever one fills. Measured
/// (1 -> 1 no-ack, this machine): at 4 KiB shared bodies were slower than copies (a new
/// block every ~60 messages, each block's pages faulted in afresh), at 64 KiB the copies
/// cost far more (broker CPU per message down by a third without them). The bound also
/// bounds what a held body can pin: a block holds at most 16 shared bodies, so one
/// waiting message whose neighbours left pins at most 16 times its size.
pub const SHARED_BODY_MIN: usize = 16 * 1024;

/// Head layout: [exchange len: u8][exchange][routing key len: u8][routing key]
///              [properties len: u32 BE][properties]
/// followed, for a small body, by [body] in the same allocation.
#[derive(Clone)]
pub struct Message {
    data: Arc<[u8]>,
    /// The body when it is kept apart (`SHARED_BODY_MIN` or more); `data` is then the
    /// head only. Behind its own `Arc` so that a message stays 24 bytes in every queue
    /// entry; clones of a large message cost one reference count.
    shared: Option<Arc<Bytes>>,
}

impl Message {
    /// A whole message at once (tests, recovery, small bodies).
    pub fn new(exchange: &str, routing_key: &str, properties: &[u8], body: &[u8]) -> Message {
        let mut b = MessageBuilder::new(exchange, routing_key, properties, body.len());
        b.push_slice(body);
        b.finish()
    }

    /// A whole message around a body already held as `Bytes`: shared, not copied, when
    /// it is large.
    pub fn with_body(exchange: &str, routing_key: &str, properties: &[u8], body: Bytes) -> Message {
        let mut b = MessageBuilder::new(exchange, routing_key, properties, body.len());
        b.push_body(body);
        b.finish()
    }

    fn exchange_end(&self) -> usize {
        1 + self.data[0] as usize
    }

    fn routing_key_end(&self) -> usize {
        let at = self.exchange_end();
        at + 1 + self.data[at] as usize
    }

    fn properties_range(&self) -> (usize, usize) {
        let at = self.routing_key_end();
        let len = u32::from_be_bytes([
            self.data[at],
            self.data[at + 1],
            self.data[at + 2],
            self.data[at + 3],
        ]);
        (at + 4, at + 4 + len as usize)
    }

    pub fn exchange(&self) -> &str {
        name_str(&self.data[1..self.exchange_end()])
    }

    pub fn routing_key(&self) -> &str {
        let start = self.exchange_end() + 1;
        name_str(&self.data[start..self.routing_key_end()])
    }

    /// Property flags and property list, exactly as the publisher sent them.
    pub fn properties(&self) -> &[u8] {
        let (start, end) = self.properties_range();
        &self.data[start..end]
    }

    /// Bytes the message holds.
    pub fn size(&self) -> usize {
        self.data.len() + self.shared.as_ref().map_or(0, |b| b.len())
    }

    /// What holding it in memory costs, as memory accounting counts it, when `sharers`
    /// queues hold it at once: each counts its share of the bytes (so a message fanned out
    /// to ten queues is counted once, not ten times) and its own entry: the allocation
    /// header, the queue entry and allocator rounding (measured: 1M queued 16-byte
    /// messages take about 135 MB).
    pub fn share_cost(&self, sharers: usize) -> usize {
        self.size() / sharers.max(1) + PER_MESSAGE_OVERHEAD
    }

    /// The whole layout in two slices, for page files: written one after the other they
    /// are what `from_raw` reads back (the second is empty for a small body).
    pub fn raw_parts(&self) -> (&[u8], &[u8]) {
        match &self.shared {
            Some(body) => (&self.data, body),
            None => (&self.data, &[]),
        }
    }

    /// The layout `raw_parts` gives, as shared `Bytes` (a stream's writer thread
    /// appends it to the log after the publisher moved on): without a copy for a small
    /// body; a large one is joined to its head here, once, for the log.
    pub fn to_bytes(&self) -> Bytes {
        match &self.shared {
            None => Bytes::from_owner(self.data.clone()),
            Some(body) => {
                let mut joined = BytesMut::with_capacity(self.size());
                joined.extend_from_slice(&self.data);
                joined.extend_from_slice(body);
                joined.freeze()
            }
        }
    }

    /// A message from bytes `raw_parts` gave, checked so that a damaged page file yields
    /// `None` rather than a message whose accessors would read out of bounds.
    pub fn from_raw(raw: &[u8]) -> Option<Message> {
        let ex_len = *raw.first()? as usize;
        let exchange = raw.get(1..1 + ex_len)?;
        let rk_len = *raw.get(1 + ex_len)? as usize;
        let rk_start = 2 + ex_len;
        let routing_key = raw.get(rk_start..rk_start + rk_len)?;
        let at = rk_start + rk_len;
        let props_len = u32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?) as usize;
        let props_end = (at + 4).checked_add(props_len)?;
        if props_end > raw.len()
            || std::str::from_utf8(exchange).is_err()
            || std::str::from_utf8(routing_key).is_err()
        {
            return None;
        }
        Some(Message {
            data: Arc::from(raw),
            shared: None,
        })
    }

    pub fn body(&self) -> &[u8] {
        match &self.shared {
            Some(body) => body,
            None => &self.data[self.properties_range().1..],
        }
    }

    /// The body when it is kept apart as shared `Bytes` (large bodies): a consumer's
    /// write buffer sends slices of it rather than a copy.
    pub fn shared_body(&self) -> Option<&Bytes> {
        self.shared.as_deref()
    }

    /// The properties and the body as `Bytes` that share the message's allocations, with
    /// no copy: the store's writer thread encodes them after the publisher moved on.
    pub fn shared_parts(&self) -> (Bytes, Bytes) {
        let head = Bytes::from_owner(self.data.clone());
        let (start, end) = self.properties_range();
        let body = match &self.shared {
            Some(body) => Bytes::clone(body),
            None => head.slice(end..),
        };
        (head.slice(start..end), body)
    }

    /// Decodes the properties; `None` when the publisher sent bytes that do not decode.
    pub fn decode_properties(&self) -> Option<AMQPProperties> {
        // The codec walked these bytes when they arrived; walking them again (no
        // allocation, no recursion) keeps the recursive parser safe for bytes read back
        // from disk as well.
        crate::codec::fieldscan::check_properties(self.properties()).ok()?;
        parse_properties(self.properties()).ok().map(|(_, p)| p)
    }

    /// The same message with header `name` set to `value`, or removed for `None`
    /// (properties re-encoded, body copied): for what the broker adds on delivery, such as
    /// a quorum queue's x-delivery-count. Properties that do not decode are left as they
    /// are.
    pub fn with_header(
        &self,
        name: &str,
        value: Option<amq_protocol::types::AMQPValue>,
    ) -> Message {
        use amq_protocol::frame::WriteContext;
        use amq_protocol::protocol::basic::gen_properties;
        let Some(props) = self.decode_properties() else {
            return self.clone();
        };
        let mut headers = props.headers().clone().unwrap_or_default();
        match value {
            Some(v) => {
                headers.insert(name.into(), v);
            }
            None if headers.contains_key(name) => headers = without_header(&headers, name),
            None => return self.clone(),
        }
        let props = props.with_headers(headers);
        let written = gen_properties(&props)(WriteContext::from(Vec::new())).map(|c| c.write);
        match written {
            Ok(raw) => self.reheaded(self.exchange(), self.routing_key(), &raw),
            Err(_) => self.clone(),
        }
    }

    /// This message's body under a new exchange, routing key and properties (a
    /// dead-lettered or re-headed copy): a large body is shared, not copied.
    pub fn reheaded(&self, exchange: &str, routing_key: &str, properties: &[u8]) -> Message {
        match &self.shared {
            Some(body) => Message::with_body(exchange, routing_key, properties, Bytes::clone(body)),
            None => Message::new(exchange, routing_key, properties, self.body()),
        }
    }

    /// The headers table, decoded on demand for headers-exchange routing.
    pub fn headers(&self) -> Option<FieldTable> {
        self.decode_properties().and_then(|p| p.headers().clone())
    }
}

/// The exchange or routing key bytes of a message as `str`, unchecked: routing reads the
/// key of every message (and deliveries both names), and checking UTF-8 again each time
/// cost a tenth of a publish's instructions.
fn name_str(bytes: &[u8]) -> &str {
    // SAFETY: the bytes are valid UTF-8. `data` is never mutated after it is built, and
    // it is built only by `MessageBuilder::new` (which copies both names from `&str`s cut
    // on character boundaries by `truncate`) or by `from_raw` (which checks both names
    // with `from_utf8` before it accepts the bytes); `exchange_end`/`routing_key_end`
    // give back exactly the ranges those names were written to.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// A headers table without its entry `name`, the others in their order.
pub fn without_header(headers: &FieldTable, name: &str) -> FieldTable {
    let mut kept = FieldTable::default();
    for (k, v) in headers.inner() {
        if k.as_str() != name {
            kept.insert(k.clone(), v.clone());
        }
    }
    kept
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("exchange", &self.exchange())
            .field("routing_key", &self.routing_key())
            .field("body_len", &self.body().len())
            .finish()
    }
}

/// Fills a message's allocation as its body frames arrive.
#[derive(Debug)]
pub struct MessageBuilder {
    data: Arc<[MaybeUninit<u8>]>,
    filled: usize,
    body: Body,
}

/// Where the body goes while it arrives.
#[derive(Debug)]
enum Body {
    /// Into `data`, behind the head (small bodies).
    Inline,
    /// Kept apart: `whole` when one part brought all of it (not copied), else `parts`,
    /// allocated at the full announced size on the first part (never grown).
    Apart {
        size: usize,
        whole: Option<Bytes>,
        parts: BytesMut,
    },
}

impl MessageBuilder {
    /// Allocates room for the head (and a small body, whose size the content header
    /// announced) and copies the head in. Names are at most 255 bytes (short strings).
    pub fn new(
        exchange: &str,
        routing_key: &str,
        properties: &[u8],
        body_size: usize,
    ) -> MessageBuilder {
        // Cut on a character boundary: the accessors hand these bytes back as `str`.
        let exchange = crate::codec::truncate(exchange, 255).as_bytes();
        let routing_key = crate::codec::truncate(routing_key, 255).as_bytes();
        let (inline, body) = if body_size >= SHARED_BODY_MIN {
            let body = Body::Apart {
                size: body_size,
                whole: None,
                parts: BytesMut::new(),
            };
            (0, body)
        } else {
            (body_size, Body::Inline)
        };
        let len = 2 + exchange.len() + routing_key.len() + 4 + properties.len() + inline;
        let mut b = MessageBuilder {
            data: Arc::new_uninit_slice(len),
            filled: 0,
            body,
        };
        b.put(&[exchange.len() as u8]);
        b.put(exchange);
        b.put(&[routing_key.len() as u8]);
        b.put(routing_key);
        b.put(&(properties.len() as u32).to_be_bytes());
        b.put(properties);
        b
    }

    /// Bytes of body still expected.
    pub fn remaining(&self) -> usize {
        match &self.body {
            Body::Inline => self.data.len() - self.filled,
            Body::Apart { size, whole, parts } => {
                size - whole.as_ref().map_or(parts.len(), Bytes::len)
            }
        }
    }

    /// Appends a body frame's payload; anything beyond the announced size is ignored (the
    /// caller checks sizes against `remaining` first). A large body that arrives whole
    /// in one part is kept as that part: a slice of the read buffer, not a copy.
    pub fn push_body(&mut self, part: Bytes) {
        if let Body::Apart { size, whole, parts } = &mut self.body {
            if whole.is_none() && parts.is_empty() && part.len() == *size {
                *whole = Some(part);
                return;
            }
        }
        self.push_slice(&part);
    }

    /// Copies body bytes in (see `push_body`).
    fn push_slice(&mut self, part: &[u8]) {
        let part = &part[..part.len().min(self.remaining())];
        match &mut self.body {
            Body::Inline => self.put(part),
            Body::Apart { size, parts, .. } => {
                if parts.capacity() == 0 {
                    parts.reserve(*size);
                }
                parts.extend_from_slice(part);
            }
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        let Some(slots) = Arc::get_mut(&mut self.data) else {
            return;
        };
        let Some(dst) = slots.get_mut(self.filled..self.filled + bytes.len()) else {
            return;
        };
        for (d, s) in dst.iter_mut().zip(bytes) {
            d.write(*s);
        }
        self.filled += bytes.len();
    }

    /// The finished message. The assembler finishes only complete bodies; a short one
    /// would be padded with zeros rather than expose uninitialised memory.
    pub fn finish(mut self) -> Message {
        if self.remaining() != 0 {
            let missing = vec![0u8; self.remaining()];
            self.push_slice(&missing);
        }
        let shared = match std::mem::replace(&mut self.body, Body::Inline) {
            Body::Inline => None,
            Body::Apart { whole, parts, .. } => Some(Arc::new(whole.unwrap_or(parts.freeze()))),
        };
        // Why uninitialised memory and not a zeroed allocation: zeroing is one more pass
        // over every body. Measured (rustc -O, this machine, Arc of 4 KiB / 1 MiB filled
        // from a slice): 100 ns / 38 us uninitialised against 240 ns / 53 us zeroed first.
        // SAFETY: every byte is written. `filled` counts the bytes written from the start
        // (`put` writes a whole part or nothing and advances `filled` only when it wrote);
        // the head is written in `new` and fits by construction (`data` was sized for
        // it); for an inline body the padding above is exactly `remaining()` bytes, so it
        // fits and brings `filled` to the full length. `put` writes nothing only when the
        // Arc is shared or the part does not fit; the Arc is private to this builder and
        // never cloned.
        debug_assert_eq!(self.filled, self.data.len());
        let data = unsafe { self.data.assume_init() };
        Message { data, shared }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_back_from_one_allocation() {
        let m = Message::new("amq.topic", "a.b", &[0x10, 0], b"hello");
        assert_eq!(m.exchange(), "amq.topic");
        assert_eq!(m.routing_key(), "a.b");
        assert_eq!(m.properties(), &[0x10, 0]);
        assert_eq!(m.body(), b"hello");
        let empty = Message::new("", "", &[], b"");
        assert_eq!(
            (empty.exchange(), empty.routing_key(), empty.body()),
            ("", "", &b""[..])
        );
    }

    fn joined(m: &Message) -> Vec<u8> {
        let (head, body) = m.raw_parts();
        [head, body].concat()
    }

    #[test]
    fn raw_round_trips_and_damage_is_refused() {
        let m = Message::new("x", "rk", &[0x10, 0], b"body");
        let back = Message::from_raw(&joined(&m)).unwrap();
        assert_eq!((back.exchange(), back.routing_key()), ("x", "rk"));
        assert_eq!(
            (back.properties(), back.body()),
            (&[0x10, 0][..], &b"body"[..])
        );
        let raw = joined(&m);
        for cut in 0..raw.len() - 4 {
            assert!(Message::from_raw(&raw[..cut]).is_none(), "cut at {cut}");
        }
        let mut bad = raw;
        bad[1] = 0xff;
        assert!(Message::from_raw(&bad).is_none(), "exchange name not UTF-8");
    }

    #[test]
    fn builder_fills_the_body_in_parts() {
        let mut b = MessageBuilder::new("", "q", &[0, 0], 6);
        b.push_body(Bytes::from_static(b"abc"));
        assert_eq!(b.remaining(), 3);
        b.push_body(Bytes::from_static(b"defgh"));
        assert_eq!(b.remaining(), 0);
        assert_eq!(b.finish().body(), b"abcdef");
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let key = format!("{}é", "a".repeat(254));
        let m = Message::new(&key, &key, &[0, 0], b"");
        assert_eq!(m.routing_key(), "a".repeat(254));
        assert_eq!(m.exchange(), "a".repeat(254));
        assert!(Message::from_raw(&joined(&m)).is_some());
    }

    #[test]
    fn a_large_body_in_one_part_is_that_part_not_a_copy() {
        let part = Bytes::from(vec![7u8; SHARED_BODY_MIN]);
        let mut b = MessageBuilder::new("x", "rk", &[0x10, 0], part.len());
        b.push_body(part.clone());
        let m = b.finish();
        assert_eq!(
            m.body().as_ptr(),
            part.as_ptr(),
            "the body is the received slice"
        );
        assert_eq!(m.shared_body().map(|b| b.as_ptr()), Some(part.as_ptr()));
        assert_eq!(m.size(), joined(&m).len());
        // Page files read it back whole, as one small-or-large-agnostic layout.
        let back = Message::from_raw(&joined(&m)).unwrap();
        assert_eq!((back.routing_key(), back.body()), ("rk", &part[..]));
        assert_eq!(&m.to_bytes()[..], &joined(&m)[..]);
        // A header added on delivery keeps the body shared.
        let h = m.with_header(
            "x-delivery-count",
            Some(amq_protocol::types::AMQPValue::LongInt(1)),
        );
        assert_eq!(h.body().as_ptr(), part.as_ptr());
        // So does a dead-lettered copy under new names, and the store's record of it.
        let d = m.reheaded("dlx", "dead", &[0x10, 0]);
        assert_eq!((d.exchange(), d.routing_key()), ("dlx", "dead"));
        assert_eq!(d.body().as_ptr(), part.as_ptr());
        assert_eq!(d.shared_parts().1.as_ptr(), part.as_ptr());
        // A small body is copied with its head (one allocation for both).
        let small = Message::new("x", "rk", &[0x10, 0], b"tiny").reheaded("dlx", "dead", &[0, 0]);
        assert_eq!((small.routing_key(), small.body()), ("dead", &b"tiny"[..]));
    }

    #[test]
    fn a_large_body_in_parts_is_assembled_once_at_its_size() {
        let size = SHARED_BODY_MIN * 3 + 5;
        let mut b = MessageBuilder::new("", "q", &[0, 0], size);
        let whole: Vec<u8> = (0..size).map(|i| i as u8).collect();
        for part in whole.chunks(SHARED_BODY_MIN) {
            b.push_body(Bytes::copy_from_slice(part));
        }
        assert_eq!(b.remaining(), 0);
        let m = b.finish();
        assert_eq!(m.body(), &whole[..]);
        assert!(m.shared_body().is_some());
        // Short: padded, never uninitialised.
        let mut b = MessageBuilder::new("", "q", &[0, 0], size);
        b.push_body(Bytes::from_static(b"ab"));
        let m = b.finish();
        assert_eq!(m.body().len(), size);
        assert_eq!(&m.body()[..3], b"ab\0");
        // Below the threshold the body stays inline.
        assert!(Message::new("", "q", &[], &[1; SHARED_BODY_MIN - 1])
            .shared_body()
            .is_none());
    }
}
