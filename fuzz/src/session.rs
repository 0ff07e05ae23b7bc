//! One fuzzed client session, as structure: a handshake (usually valid, so that the
//! session gets past login) and then operations that are mostly well-formed methods with
//! fuzzed arguments, publishes with fuzzed properties and bodies, and some raw frames
//! and bytes. `bytes()` turns it into the stream a client would write.

use crate::encode::{self, Args, PROTOCOL_HEADER};
use crate::values::{Name, Props, Table, Text};
use arbitrary::Arbitrary;

#[derive(Arbitrary, Debug)]
pub struct Session {
    pub handshake: Handshake,
    pub ops: Vec<Op>,
}

/// Usually a login (header, start-ok, tune-ok and open, pipelined as fast clients do);
/// sometimes only the protocol header (every later frame then arrives before start-ok),
/// or raw bytes in place of the whole handshake. Rare on purpose: most sessions should
/// get past login.
#[derive(Arbitrary, Debug)]
pub struct Handshake {
    pub login: Login,
    pub odd: u8,
    pub raw: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
pub struct Login {
    pub client_properties: Table,
    /// 0: PLAIN, 1: AMQPLAIN, 2: EXTERNAL, else free text.
    pub mechanism: u8,
    /// None: guest's valid PLAIN response; Some: whatever bytes.
    pub response: Option<Vec<u8>>,
    pub locale: Option<Text>,
    pub channel_max: u8,
    pub frame_max: u8,
    pub heartbeat: u8,
    /// None: vhost "/".
    pub vhost: Option<Name>,
    /// Skip tune-ok (the broker then sees open before tune-ok).
    pub skip_tune_ok: bool,
}

/// A channel number: mostly 1 and 2, sometimes 0 (the connection's) or unopened ones.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Ch(u8);

impl Ch {
    fn n(self) -> u16 {
        [1, 1, 1, 1, 1, 2, 2, 0, 3, 65535][self.0 as usize % 10]
    }
}

/// A delivery tag: small ones that match real deliveries, sometimes 0 or huge.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Tag(u8);

impl Tag {
    fn n(self) -> u64 {
        match self.0 {
            255 => u64::MAX,
            254 => 1 << 40,
            t => u64::from(t % 16),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    ChannelOpen(Ch),
    ChannelClose(Ch, u16, Text),
    ChannelCloseOk(Ch),
    Flow(Ch, bool),
    ExchangeDeclare { ch: Ch, name: Name, kind: Name, flags: u8, args: Table },
    ExchangeDelete { ch: Ch, name: Name, flags: u8 },
    ExchangeBind { ch: Ch, unbind: bool, dest: Name, src: Name, key: Name, nowait: bool, args: Table },
    QueueDeclare { ch: Ch, name: Name, flags: u8, args: Table },
    QueueBind { ch: Ch, queue: Name, exchange: Name, key: Name, nowait: bool, args: Table },
    QueueUnbind { ch: Ch, queue: Name, exchange: Name, key: Name, args: Table },
    QueuePurge { ch: Ch, queue: Name, nowait: bool },
    QueueDelete { ch: Ch, queue: Name, flags: u8 },
    Qos { ch: Ch, size: u8, count: u16, global: bool },
    Consume { ch: Ch, queue: Name, tag: Name, flags: u8, args: Table },
    Cancel { ch: Ch, tag: Name, nowait: bool },
    Publish(Publish),
    Get { ch: Ch, queue: Name, no_ack: bool },
    Ack { ch: Ch, tag: Tag, multiple: bool },
    Nack { ch: Ch, tag: Tag, flags: u8 },
    Reject { ch: Ch, tag: Tag, requeue: bool },
    Recover { ch: Ch, requeue: bool, is_async: bool },
    Tx(Ch, u8),
    ConfirmSelect(Ch, bool),
    ConnectionClose(u16, Text),
    ConnectionCloseOk,
    Heartbeat(u16),
    /// Any class and method ids with any argument bytes.
    RawMethod { ch: Ch, class: u16, method: u16, args: Vec<u8> },
    /// A content header built by hand: any class, size and property bytes.
    RawHeader { ch: Ch, class: u16, body_size: u64, props: Vec<u8> },
    RawBody { ch: Ch, payload: Vec<u8> },
    /// A frame whose type, declared size and end byte may all be wrong.
    RawFrame { kind: u8, channel: u16, size_delta: i8, payload: Vec<u8>, end: u8 },
    Bytes(Vec<u8>),
}

/// basic.publish, its content header and body frames: consistent by default, with the
/// declared body size and the split into frames under the fuzzer's control.
#[derive(Arbitrary, Debug)]
pub struct Publish {
    pub ch: Ch,
    pub exchange: Name,
    pub key: Name,
    pub flags: u8,
    pub props: Props,
    pub body: Vec<u8>,
    /// Body frame size: 0 sends the body in one frame.
    pub split: u8,
    /// Added to the declared body size (0 keeps it exact).
    pub size_delta: i8,
    /// Stop after the publish method, or after the header (content left incomplete).
    pub truncate: u8,
}

fn bits(flags: u8, n: usize) -> Vec<bool> {
    (0..n).map(|i| flags & (1 << i) != 0).collect()
}

impl Session {
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let handshake = &self.handshake;
        match handshake.odd {
            0..=239 => handshake.login.write(&mut out),
            240..=247 => out.extend_from_slice(PROTOCOL_HEADER),
            _ => out.extend_from_slice(&handshake.raw),
        }
        for op in &self.ops {
            op.write(&mut out);
        }
        out
    }
}

impl Login {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(PROTOCOL_HEADER);
        let mechanism: &[u8] = match self.mechanism {
            0..=200 => b"PLAIN",
            201..=230 => b"AMQPLAIN",
            231..=240 => b"EXTERNAL",
            _ => b"plain",
        };
        let response = match &self.response {
            Some(r) => r.clone(),
            None => b"\0guest\0guest".to_vec(),
        };
        let locale = self.locale.as_ref().map_or(b"en_US".to_vec(), Text::bytes);
        let start_ok = Args(self.client_properties.encode())
            .short(mechanism)
            .long(&response)
            .short(&locale);
        encode::method(out, 0, 10, 11, &start_ok.0);
        if !self.skip_tune_ok {
            let channel_max = [0u16, 2047, 1, 2, 65535][self.channel_max as usize % 5];
            let frame_max =
                [131072u32, 0, 4096, 8192, 4095, 1 << 20, u32::MAX, 100][self.frame_max as usize % 8];
            // Heartbeats only rarely: a short one makes the broker time the session out,
            // which is slow and covered by the tests.
            let heartbeat = if self.heartbeat > 250 { 600 } else { 0 };
            let tune_ok = Args::default().u16(channel_max).u32(frame_max).u16(heartbeat);
            encode::method(out, 0, 10, 31, &tune_ok.0);
        }
        let vhost = self.vhost.as_ref().map_or(b"/".to_vec(), Name::bytes);
        let open = Args::default().short(&vhost).short(b"").u8(0);
        encode::method(out, 0, 10, 40, &open.0);
        // Most sessions work on channel 1: open it here so that ops need not.
        encode::method(out, 1, 20, 10, &Args::default().short(b"").0);
    }
}

impl Op {
    fn write(&self, out: &mut Vec<u8>) {
        let m = |out: &mut Vec<u8>, ch: &Ch, class: u16, method: u16, a: Args| {
            encode::method(out, ch.n(), class, method, &a.0)
        };
        let a = Args::default;
        match self {
            Op::ChannelOpen(ch) => m(out, ch, 20, 10, a().short(b"")),
            Op::ChannelClose(ch, code, text) => {
                m(out, ch, 20, 40, a().u16(*code).short(&text.bytes()).u16(0).u16(0))
            }
            Op::ChannelCloseOk(ch) => m(out, ch, 20, 41, a()),
            Op::Flow(ch, active) => m(out, ch, 20, 20, a().bits(&[*active])),
            Op::ExchangeDeclare { ch, name, kind, flags, args } => {
                let a = a().u16(0).short(&name.bytes()).short(&kind.bytes());
                m(out, ch, 40, 10, a.bits(&bits(*flags, 5)).raw(&args.encode()))
            }
            Op::ExchangeDelete { ch, name, flags } => {
                m(out, ch, 40, 20, a().u16(0).short(&name.bytes()).bits(&bits(*flags, 2)))
            }
            Op::ExchangeBind { ch, unbind, dest, src, key, nowait, args } => {
                let a = a().u16(0).short(&dest.bytes()).short(&src.bytes());
                let a = a.short(&key.bytes()).bits(&[*nowait]).raw(&args.encode());
                m(out, ch, 40, if *unbind { 40 } else { 30 }, a)
            }
            Op::QueueDeclare { ch, name, flags, args } => {
                let mut flags = bits(*flags, 5);
                // A server-named queue that outlives its connection would pile up across
                // sessions (the harness cannot name it to delete it): keep those exclusive.
                if name.is_empty() {
                    flags[2] = true;
                }
                let a = a().u16(0).short(&name.bytes()).bits(&flags);
                m(out, ch, 50, 10, a.raw(&args.encode()))
            }
            Op::QueueBind { ch, queue, exchange, key, nowait, args } => {
                let a = a().u16(0).short(&queue.bytes()).short(&exchange.bytes());
                let a = a.short(&key.bytes()).bits(&[*nowait]).raw(&args.encode());
                m(out, ch, 50, 20, a)
            }
            Op::QueueUnbind { ch, queue, exchange, key, args } => {
                let a = a().u16(0).short(&queue.bytes()).short(&exchange.bytes());
                m(out, ch, 50, 50, a.short(&key.bytes()).raw(&args.encode()))
            }
            Op::QueuePurge { ch, queue, nowait } => {
                m(out, ch, 50, 30, a().u16(0).short(&queue.bytes()).bits(&[*nowait]))
            }
            Op::QueueDelete { ch, queue, flags } => {
                m(out, ch, 50, 40, a().u16(0).short(&queue.bytes()).bits(&bits(*flags, 3)))
            }
            Op::Qos { ch, size, count, global } => {
                let size = if *size > 250 { u32::from(*size) } else { 0 };
                m(out, ch, 60, 10, a().u32(size).u16(*count).bits(&[*global]))
            }
            Op::Consume { ch, queue, tag, flags, args } => {
                let a = a().u16(0).short(&queue.bytes()).short(&tag.bytes());
                m(out, ch, 60, 20, a.bits(&bits(*flags, 4)).raw(&args.encode()))
            }
            Op::Cancel { ch, tag, nowait } => {
                m(out, ch, 60, 30, a().short(&tag.bytes()).bits(&[*nowait]))
            }
            Op::Publish(p) => p.write(out),
            Op::Get { ch, queue, no_ack } => {
                m(out, ch, 60, 70, a().u16(0).short(&queue.bytes()).bits(&[*no_ack]))
            }
            Op::Ack { ch, tag, multiple } => {
                m(out, ch, 60, 80, a().u64(tag.n()).bits(&[*multiple]))
            }
            Op::Nack { ch, tag, flags } => {
                m(out, ch, 60, 120, a().u64(tag.n()).bits(&bits(*flags, 2)))
            }
            Op::Reject { ch, tag, requeue } => {
                m(out, ch, 60, 90, a().u64(tag.n()).bits(&[*requeue]))
            }
            Op::Recover { ch, requeue, is_async } => {
                m(out, ch, 60, if *is_async { 100 } else { 110 }, a().bits(&[*requeue]))
            }
            Op::Tx(ch, which) => m(out, ch, 90, [10, 20, 30][*which as usize % 3], a()),
            Op::ConfirmSelect(ch, nowait) => m(out, ch, 85, 10, a().bits(&[*nowait])),
            Op::ConnectionClose(code, text) => {
                let args = a().u16(*code).short(&text.bytes()).u16(0).u16(0);
                encode::method(out, 0, 10, 50, &args.0)
            }
            Op::ConnectionCloseOk => encode::method(out, 0, 10, 51, &[]),
            Op::Heartbeat(ch) => encode::frame(out, 8, if *ch > 65000 { *ch } else { 0 }, &[]),
            Op::RawMethod { ch, class, method, args } => {
                encode::method(out, ch.n(), *class, *method, args)
            }
            Op::RawHeader { ch, class, body_size, props } => {
                let a = a().u16(*class).u16(0).u64(*body_size).raw(props);
                encode::frame(out, 2, ch.n(), &a.0)
            }
            Op::RawBody { ch, payload } => encode::frame(out, 3, ch.n(), payload),
            Op::RawFrame { kind, channel, size_delta, payload, end } => {
                let size = (payload.len() as i64 + i64::from(*size_delta)).max(0) as u32;
                out.push(*kind);
                out.extend_from_slice(&channel.to_be_bytes());
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(payload);
                out.push(*end);
            }
            Op::Bytes(bytes) => out.extend_from_slice(bytes),
        }
    }
}

impl Publish {
    fn write(&self, out: &mut Vec<u8>) {
        let ch = self.ch.n();
        let a = Args::default().u16(0).short(&self.exchange.bytes()).short(&self.key.bytes());
        encode::method(out, ch, 60, 40, &a.bits(&bits(self.flags, 2)).0);
        if self.truncate == 255 {
            return;
        }
        let size = (self.body.len() as i64 + i64::from(self.size_delta)).max(0) as u64;
        let header = Args::default().u16(60).u16(0).u64(size).raw(&self.props.encode());
        encode::frame(out, 2, ch, &header.0);
        if self.truncate == 254 {
            return;
        }
        let split = if self.split == 0 { usize::MAX } else { self.split as usize };
        for piece in self.body.chunks(split) {
            encode::frame(out, 3, ch, piece);
        }
    }
}
