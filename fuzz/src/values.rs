//! Structured argument values for the fuzz session: names drawn mostly from a small pool
//! (so that declares, binds, publishes and deletes meet the same objects), texts that may
//! be long or not UTF-8, field tables with the keys the broker interprets, and basic
//! properties. Each type knows how to encode itself.

use crate::encode::Args;
use arbitrary::Arbitrary;

/// Names the broker gives meaning to, and a few plain ones that sessions share.
pub const NAMES: &[&str] = &[
    "q0",
    "q1",
    "q2",
    "",
    "x0",
    "x1",
    "amq.direct",
    "amq.fanout",
    "amq.topic",
    "amq.headers",
    "amq.match",
    "amq.rabbitmq.reply-to",
    "amq.gen-abc",
    "amq.x",
    "#",
    "*.a",
    "a.#",
    "direct",
    "fanout",
    "topic",
    "headers",
    "x-delayed-message",
    "x-consistent-hash",
    "dlx",
    "/",
    "guest",
];

/// Queues and exchanges the harness deletes between sessions so that state stays small.
pub const CLEANUP_QUEUES: &[&str] = &["q0", "q1", "q2", "dlx", "x0", "x1", "amq.x", "guest", "/"];
pub const CLEANUP_EXCHANGES: &[&str] = &["x0", "x1", "dlx", "amq.x", "q0", "q1", "q2", "guest"];

/// Keys of queue, exchange, consume and message arguments that the broker reads.
const KEYS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-queue-type",
    "x-queue-mode",
    "x-single-active-consumer",
    "alternate-exchange",
    "x-match",
    "x-priority",
    "x-delivery-limit",
    "x-consumer-timeout",
    "x-delayed-type",
    "x-delay",
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "CC",
    "BCC",
    "capabilities",
    "publisher_confirms",
    "consumer_cancel_notify",
    "connection.blocked",
    "connection_name",
    "x-cancel-on-ha-failover",
    "x-stream-offset",
];

/// Text values the broker parses (queue types, overflow modes, expirations, x-match).
const TEXTS: &[&str] = &[
    "classic",
    "quorum",
    "stream",
    "lazy",
    "default",
    "drop-head",
    "reject-publish",
    "reject-publish-dlx",
    "all",
    "any",
    "all-with-x",
    "any-with-x",
    "0",
    "1",
    "100",
    "-1",
    "1.5",
    "99999999999999999999",
    "expired",
    "rejected",
    "maxlen",
    "PLAIN",
    "AMQPLAIN",
];

/// A string value: from a pool, free, raw bytes (maybe not UTF-8), or one character
/// repeated to a length around the 255-byte limit of short strings.
#[derive(Arbitrary, Debug)]
pub enum Text {
    Pool(u8),
    Name(u8),
    Free(String),
    Bytes(Vec<u8>),
    Repeat { len: u16, ch: char },
}

impl Text {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Text::Pool(i) => TEXTS[*i as usize % TEXTS.len()].as_bytes().to_vec(),
            Text::Name(i) => NAMES[*i as usize % NAMES.len()].as_bytes().to_vec(),
            Text::Free(s) => s.as_bytes().to_vec(),
            Text::Bytes(b) => b.clone(),
            Text::Repeat { len, ch } => {
                let s: String = std::iter::repeat_n(*ch, (*len % 300) as usize).collect();
                s.into_bytes()
            }
        }
    }
}

/// An object name or routing key: mostly from the shared pool.
#[derive(Arbitrary, Debug)]
pub enum Name {
    Pool(u8),
    Text(Text),
}

impl Name {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Name::Pool(i) => NAMES[*i as usize % NAMES.len()].as_bytes().to_vec(),
            Name::Text(t) => t.bytes(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
}

/// A field-table key: one the broker reads, or free text.
#[derive(Arbitrary, Debug)]
pub enum Key {
    Known(u8),
    Other(Text),
}

/// A field value with its type tag (RabbitMQ's tags), or an arbitrary tag and bytes.
#[derive(Arbitrary, Debug)]
pub enum Value {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal(u8, u32),
    ShortStr(Text),
    LongStr(Text),
    Bytes(Vec<u8>),
    Timestamp(u64),
    Void,
    Array(Vec<Value>),
    Table(Table),
    Raw(u8, Vec<u8>),
    /// Arrays (or single-entry tables) nested `depth` deep around a value: the shape of a
    /// stack-exhaustion attack, cheap for the fuzzer to say.
    Deep { depth: u16, tables: bool, inner: Box<Value> },
}

#[derive(Arbitrary, Debug, Default)]
pub struct Table(pub Vec<(Key, Value)>);

impl Table {
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        for (key, value) in &self.0 {
            let key = match key {
                Key::Known(i) => KEYS[*i as usize % KEYS.len()].as_bytes().to_vec(),
                Key::Other(t) => t.bytes(),
            };
            body = Args(body).short(&key).0;
            value.encode(&mut body);
        }
        Args::default().long(&body).0
    }
}

impl Value {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut a = Args(std::mem::take(out));
        a = match self {
            Value::Bool(v) => a.u8(b't').u8(u8::from(*v)),
            Value::I8(v) => a.u8(b'b').u8(*v as u8),
            Value::U8(v) => a.u8(b'B').u8(*v),
            Value::I16(v) => a.u8(b's').u16(*v as u16),
            Value::U16(v) => a.u8(b'u').u16(*v),
            Value::I32(v) => a.u8(b'I').u32(*v as u32),
            Value::U32(v) => a.u8(b'i').u32(*v),
            Value::I64(v) => a.u8(b'l').u64(*v as u64),
            Value::F32(v) => a.u8(b'f').u32(v.to_bits()),
            Value::F64(v) => a.u8(b'd').u64(v.to_bits()),
            Value::Decimal(s, v) => a.u8(b'D').u8(*s).u32(*v),
            // Short strings in tables are what AMQP 0-9-1 defines and RabbitMQ refuses.
            Value::ShortStr(t) => a.u8(b's').short(&t.bytes()),
            Value::LongStr(t) => a.u8(b'S').long(&t.bytes()),
            Value::Bytes(b) => a.u8(b'x').long(b),
            Value::Timestamp(v) => a.u8(b'T').u64(*v),
            Value::Void => a.u8(b'V'),
            Value::Array(items) => {
                let mut body = Vec::new();
                for item in items {
                    item.encode(&mut body);
                }
                a.u8(b'A').long(&body)
            }
            Value::Table(t) => a.u8(b'F').raw(&t.encode()),
            Value::Raw(tag, bytes) => a.u8(*tag).raw(bytes),
            Value::Deep { depth, tables, inner } => {
                let mut leaf = Vec::new();
                inner.encode(&mut leaf);
                // Written outside in, each level's length known up front: linear in depth.
                let depth = u32::from(*depth) % 20_000;
                let per_level: u32 = if *tables { 7 } else { 5 };
                a.0.reserve((per_level * depth) as usize + leaf.len());
                for level in (0..depth).rev() {
                    let len = leaf.len() as u32 + per_level * level;
                    a = if *tables {
                        a.u8(b'F').u32(len + 2).short(b"k")
                    } else {
                        a.u8(b'A').u32(len)
                    };
                }
                a.raw(&leaf)
            }
        };
        *out = a.0;
    }
}

/// Expiration property values: the ones with meaning, and free text.
#[derive(Arbitrary, Debug)]
pub enum Expiration {
    Millis(u32),
    Text(Text),
}

/// Basic properties, each optional, encoded with their flags; `extra_flags` can set the
/// reserved low bits (continuation and unused) that a client must not set.
#[derive(Arbitrary, Debug, Default)]
pub struct Props {
    pub content_type: Option<Text>,
    pub content_encoding: Option<Text>,
    pub headers: Option<Table>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<Text>,
    pub reply_to: Option<Name>,
    pub expiration: Option<Expiration>,
    pub message_id: Option<Text>,
    pub timestamp: Option<u64>,
    pub kind: Option<Text>,
    pub user_id: Option<Name>,
    pub app_id: Option<Text>,
    pub cluster_id: Option<Text>,
    pub extra_flags: u8,
}

impl Props {
    pub fn encode(&self) -> Vec<u8> {
        let mut flags = 0u16;
        let mut a = Args::default();
        let short = |a: Args, bit: u16, v: Option<Vec<u8>>, flags: &mut u16| match v {
            Some(v) => {
                *flags |= 1 << bit;
                a.short(&v)
            }
            None => a,
        };
        a = short(a, 15, self.content_type.as_ref().map(Text::bytes), &mut flags);
        a = short(a, 14, self.content_encoding.as_ref().map(Text::bytes), &mut flags);
        if let Some(h) = &self.headers {
            flags |= 1 << 13;
            a = a.raw(&h.encode());
        }
        if let Some(v) = self.delivery_mode {
            flags |= 1 << 12;
            a = a.u8(v % 4);
        }
        if let Some(v) = self.priority {
            flags |= 1 << 11;
            a = a.u8(v);
        }
        a = short(a, 10, self.correlation_id.as_ref().map(Text::bytes), &mut flags);
        a = short(a, 9, self.reply_to.as_ref().map(Name::bytes), &mut flags);
        let expiration = self.expiration.as_ref().map(|e| match e {
            Expiration::Millis(ms) => ms.to_string().into_bytes(),
            Expiration::Text(t) => t.bytes(),
        });
        a = short(a, 8, expiration, &mut flags);
        a = short(a, 7, self.message_id.as_ref().map(Text::bytes), &mut flags);
        if let Some(v) = self.timestamp {
            flags |= 1 << 6;
            a = a.u64(v);
        }
        a = short(a, 5, self.kind.as_ref().map(Text::bytes), &mut flags);
        a = short(a, 4, self.user_id.as_ref().map(Name::bytes), &mut flags);
        a = short(a, 3, self.app_id.as_ref().map(Text::bytes), &mut flags);
        a = short(a, 2, self.cluster_id.as_ref().map(Text::bytes), &mut flags);
        // Reserved bits only rarely, so that most headers stay valid.
        if self.extra_flags > 250 {
            flags |= u16::from(self.extra_flags & 3);
        }
        let mut out = flags.to_be_bytes().to_vec();
        out.extend(a.0);
        out
    }
}
