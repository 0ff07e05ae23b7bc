//! The generator's AMQP 0-9-1 client: a frame reader that never allocates on the hot path,
//! a connection with just the synchronous calls the scenarios need, and pre-encoded message
//! templates. Control frames go through amq-protocol's generator and parser; the hot frames
//! (basic.publish / basic.deliver / content header / body / basic.ack) are encoded once with
//! amq-protocol and then copied, or read field by field from the raw bytes.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use amq_protocol::frame::{
    gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, ProtocolVersion, WriteContext,
};
use amq_protocol::protocol::{basic, channel, connection, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use amq_protocol::uri::{AMQPScheme, AMQPUri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// A submodule by path, so that warren-faults, which includes this file, gets it too.
#[path = "transport.rs"]
mod transport;
use transport::{ReadSide, WriteSide};

pub type Res<T> = Result<T, io::Error>;

pub fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_END: u8 = 0xCE;
/// Largest frame we ask for; RabbitMQ's default is the same.
pub const OUR_FRAME_MAX: u32 = 131_072;

/// Where to connect and as whom.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub pass: String,
    pub vhost: String,
    /// Set for amqps:// URLs.
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
}

impl Target {
    /// The broker an amqp:// URL names (warren-faults' entry; warren-bench takes --tls-ca).
    #[allow(dead_code)]
    pub fn parse(url: &str) -> Res<Target> {
        Self::parse_with_ca(url, None)
    }

    /// The broker an amqp:// or amqps:// URL names; amqps needs the CA to trust.
    pub fn parse_with_ca(url: &str, tls_ca: Option<&std::path::Path>) -> Res<Target> {
        let uri = AMQPUri::from_str(url).map_err(|e| err(format!("bad --url {url}: {e}")))?;
        let tls = match (uri.scheme, tls_ca) {
            (AMQPScheme::AMQP, _) => None,
            (AMQPScheme::AMQPS, Some(ca)) => Some(transport::client_config(ca)?),
            (AMQPScheme::AMQPS, None) => {
                return Err(err(format!(
                    "{url}: amqps needs --tls-ca (the CA that signed the broker's certificate)"
                )))
            }
        };
        Ok(Target {
            tls,
            host: uri.authority.host,
            port: uri.authority.port,
            user: uri.authority.userinfo.username,
            pass: uri.authority.userinfo.password,
            vhost: uri.vhost,
        })
    }
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Serialise one frame with amq-protocol, appending to `out`.
pub fn encode(frame: &AMQPFrame, out: &mut Vec<u8>) {
    let buf = std::mem::take(out);
    let ctx =
        gen_frame(frame)(WriteContext::from(buf)).expect("frame generation cannot fail on a Vec");
    *out = ctx.into_inner().0;
}

pub fn method(ch: u16, class: AMQPClass) -> AMQPFrame {
    AMQPFrame::Method(ch, class)
}

/// Parse a complete frame (header + payload + end octet) with amq-protocol.
pub fn parse_full(full: &[u8]) -> Res<AMQPFrame> {
    match parse_frame(full) {
        Ok((_, f)) => Ok(f),
        Err(e) => Err(err(format!("cannot parse frame: {e:?}"))),
    }
}

/// One raw frame, borrowed from the reader's buffer until the next call.
pub struct RawFrame<'a> {
    pub typ: u8,
    pub ch: u16,
    pub payload: &'a [u8],
    pub full: &'a [u8],
}

impl RawFrame<'_> {
    /// (class id, method id) of a method frame.
    pub fn class_method(&self) -> (u16, u16) {
        if self.payload.len() < 4 {
            return (0, 0);
        }
        (
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            u16::from_be_bytes([self.payload[2], self.payload[3]]),
        )
    }
}

/// Reads frames out of a large buffer; one read syscall typically yields thousands of frames.
pub struct FrameReader {
    rd: ReadSide,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    pub fn new(rd: ReadSide, cap: usize) -> Self {
        FrameReader {
            rd,
            buf: vec![0; cap],
            start: 0,
            end: 0,
        }
    }

    /// Read exactly `n` raw bytes (used for the protocol header a server receives).
    pub async fn read_raw(&mut self, n: usize) -> Res<Vec<u8>> {
        while self.end - self.start < n {
            self.fill(n).await?;
        }
        let v = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        Ok(v)
    }

    async fn fill(&mut self, need: usize) -> Res<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if need > self.buf.len() {
            let mut nb = vec![0; need.next_power_of_two()];
            nb[..self.end - self.start].copy_from_slice(&self.buf[self.start..self.end]);
            self.end -= self.start;
            self.start = 0;
            self.buf = nb;
        } else if self.start + need > self.buf.len()
            || self.buf.len() - self.end < self.buf.len() / 4
        {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.rd.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// Whether a complete frame is already buffered (next() will not touch the socket).
    pub fn has_frame(&self) -> bool {
        let avail = self.end - self.start;
        if avail < 7 {
            return false;
        }
        let b = &self.buf[self.start..];
        avail >= u32::from_be_bytes([b[3], b[4], b[5], b[6]]) as usize + 8
    }

    /// The next frame. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn next(&mut self) -> Res<RawFrame<'_>> {
        loop {
            let avail = self.end - self.start;
            let mut need = 7;
            if avail >= 7 {
                let b = &self.buf[self.start..];
                let size = u32::from_be_bytes([b[3], b[4], b[5], b[6]]) as usize;
                need = size + 8;
                if avail >= need {
                    if b[size + 7] != FRAME_END {
                        return Err(err(format!(
                            "frame end octet missing (type {}, size {size})",
                            b[0]
                        )));
                    }
                    let s = self.start;
                    self.start += need;
                    let typ = self.buf[s];
                    let ch = u16::from_be_bytes([self.buf[s + 1], self.buf[s + 2]]);
                    return Ok(RawFrame {
                        typ,
                        ch,
                        payload: &self.buf[s + 7..s + 7 + size],
                        full: &self.buf[s..s + need],
                    });
                }
            }
            self.fill(need).await?;
        }
    }
}

fn close_text(class: &AMQPClass) -> Option<String> {
    match class {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => Some(format!(
            "connection.close {} {} (class {} method {})",
            c.reply_code,
            c.reply_text.as_str(),
            c.class_id,
            c.method_id
        )),
        AMQPClass::Channel(channel::AMQPMethod::Close(c)) => Some(format!(
            "channel.close {} {} (class {} method {})",
            c.reply_code,
            c.reply_text.as_str(),
            c.class_id,
            c.method_id
        )),
        _ => None,
    }
}

/// An error for an unexpected close from the broker, if `class` is one.
pub fn close_error(class: &AMQPClass) -> Option<io::Error> {
    close_text(class).map(|t| err(format!("broker closed: {t}")))
}

/// An open AMQP connection.
pub struct Conn {
    pub rd: FrameReader,
    pub wr: WriteSide,
    pub frame_max: u32,
}

impl Conn {
    /// TCP (or TLS) connect and full handshake (start/start-ok, tune/tune-ok,
    /// open/open-ok), heartbeats off.
    pub async fn open(t: &Target, read_buf: usize) -> Res<Conn> {
        let (rd, wr) = transport::connect(t).await?;
        let mut c = Conn {
            rd: FrameReader::new(rd, read_buf),
            wr,
            frame_max: OUR_FRAME_MAX,
        };
        let mut out = Vec::new();
        encode(
            &AMQPFrame::ProtocolHeader(ProtocolVersion::amqp_0_9_1()),
            &mut out,
        );
        c.wr.write_all(&out).await?;
        match c.recv_method().await? {
            (0, AMQPClass::Connection(connection::AMQPMethod::Start(s))) => {
                if !String::from_utf8_lossy(s.mechanisms.as_bytes())
                    .split(' ')
                    .any(|m| m == "PLAIN")
                {
                    return Err(err("server does not offer PLAIN"));
                }
            }
            (_, m) => return Err(err(format!("expected connection.start, got {m:?}"))),
        }
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            AMQPValue::LongString(LongString::from("warren-bench")),
        );
        let mut caps = FieldTable::default();
        caps.insert("publisher_confirms".into(), AMQPValue::Boolean(true));
        caps.insert("consumer_cancel_notify".into(), AMQPValue::Boolean(true));
        // Alarms are then announced (connection.blocked), as RabbitMQ does for clients
        // that say they understand it; the fault scripts count them.
        caps.insert("connection.blocked".into(), AMQPValue::Boolean(true));
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        let response = format!("\0{}\0{}", t.user, t.pass);
        c.send(method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: props,
                mechanism: "PLAIN".into(),
                response: LongString::from(response.into_bytes()),
                locale: "en_US".into(),
            })),
        ))
        .await?;
        let tune = match c.recv_method().await? {
            (0, AMQPClass::Connection(connection::AMQPMethod::Tune(t))) => t,
            (_, m) => return Err(err(format!("expected connection.tune, got {m:?}"))),
        };
        c.frame_max = if tune.frame_max == 0 {
            OUR_FRAME_MAX
        } else {
            tune.frame_max.min(OUR_FRAME_MAX)
        };
        let channel_max = if tune.channel_max == 0 {
            2047
        } else {
            tune.channel_max
        };
        c.send(method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max: c.frame_max,
                heartbeat: 0,
            })),
        ))
        .await?;
        c.send(method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: ShortString::from(t.vhost.as_str()),
            })),
        ))
        .await?;
        match c.recv_method().await? {
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            (_, m) => return Err(err(format!("expected connection.open-ok, got {m:?}"))),
        }
        Ok(c)
    }

    pub async fn send(&mut self, f: AMQPFrame) -> Res<()> {
        let mut out = Vec::with_capacity(64);
        encode(&f, &mut out);
        self.wr.write_all(&out).await
    }

    /// Next method frame, skipping heartbeats and any content. A close from the broker is an
    /// error (answered with close-ok first).
    pub async fn recv_method(&mut self) -> Res<(u16, AMQPClass)> {
        loop {
            let f = self.rd.next().await?;
            if f.typ != FRAME_METHOD {
                continue;
            }
            let ch = f.ch;
            let parsed = parse_full(f.full)?;
            if let AMQPFrame::Method(_, class) = parsed {
                if let Some(text) = close_text(&class) {
                    let ok = match class {
                        AMQPClass::Connection(_) => AMQPClass::Connection(
                            connection::AMQPMethod::CloseOk(connection::CloseOk {}),
                        ),
                        _ => AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
                    };
                    let _ = self.send(method(ch, ok)).await;
                    return Err(err(format!("broker closed: {text}")));
                }
                return Ok((ch, class));
            }
        }
    }

    /// Send a synchronous method and wait for its reply on the same channel.
    pub async fn rpc(&mut self, ch: u16, class: AMQPClass) -> Res<AMQPClass> {
        let what = format!(
            "{}.{}",
            class.get_amqp_class_id(),
            class.get_amqp_method_id()
        );
        self.send(method(ch, class)).await?;
        let fut = async {
            loop {
                let (c, m) = self.recv_method().await?;
                if c == ch {
                    return Ok::<_, io::Error>(m);
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(30), fut).await {
            Ok(r) => r,
            Err(_) => Err(err(format!("no reply to method {what} within 30 s"))),
        }
    }

    pub async fn open_channel(&mut self, ch: u16) -> Res<()> {
        match self
            .rpc(
                ch,
                AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
            )
            .await?
        {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => Ok(()),
            m => Err(err(format!("expected channel.open-ok, got {m:?}"))),
        }
    }

    /// Polite close: connection.close, wait briefly for close-ok, drop.
    pub async fn close(mut self) {
        let _ = self
            .send(method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                    reply_code: 200,
                    reply_text: "bye".into(),
                    class_id: 0,
                    method_id: 0,
                })),
            ))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match self.rd.next().await {
                    Ok(f) if f.typ == FRAME_METHOD && f.class_method() == (10, 51) => break,
                    Ok(_) => continue,
                    Err(_) => break,
                }
            }
        })
        .await;
    }
}

/// Append content header + body frames (split at frame_max) for a message.
pub fn encode_content(
    ch: u16,
    props: BasicProperties,
    body: &[u8],
    frame_max: u32,
    out: &mut Vec<u8>,
) {
    encode(
        &AMQPFrame::Header(
            ch,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties: props,
            },
        ),
        out,
    );
    let max = (frame_max as usize).saturating_sub(8).max(1);
    for chunk in body.chunks(max) {
        encode(&AMQPFrame::Body(ch, chunk.to_vec()), out);
    }
}

/// A batch of identical pre-encoded messages laid out back to back, written with one syscall.
/// `stamp_at` is the offset of the first body byte inside each message (for timestamps).
pub struct Batch {
    pub buf: Vec<u8>,
    pub msg_len: usize,
    pub count: usize,
    pub stamp_at: usize,
}

impl Batch {
    pub fn new(one: Vec<u8>, body_offset: usize, target_bytes: usize) -> Batch {
        let msg_len = one.len();
        let count = (target_bytes / msg_len).clamp(1, 8192);
        let mut buf = Vec::with_capacity(msg_len * count);
        for _ in 0..count {
            buf.extend_from_slice(&one);
        }
        Batch {
            buf,
            msg_len,
            count,
            stamp_at: body_offset,
        }
    }

    /// Write a u64 (a timestamp or a sequence number) into the first 8 body bytes of message `i`.
    pub fn stamp(&mut self, i: usize, v: u64) {
        let o = i * self.msg_len + self.stamp_at;
        self.buf[o..o + 8].copy_from_slice(&v.to_be_bytes());
    }

    pub fn bytes(&self, n: usize) -> &[u8] {
        &self.buf[..n * self.msg_len]
    }
}

/// Encode one basic.publish + header + body; returns (bytes, offset of the first body byte).
pub fn publish_message(
    ch: u16,
    exchange: &str,
    routing_key: &str,
    size: usize,
    persistent: bool,
    frame_max: u32,
) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    encode(
        &method(
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
                mandatory: false,
                immediate: false,
            })),
        ),
        &mut out,
    );
    let props = if persistent {
        BasicProperties::default().with_delivery_mode(2)
    } else {
        BasicProperties::default()
    };
    let body = vec![b'x'; size];
    let start = out.len();
    encode_content(ch, props, &body, frame_max, &mut out);
    // first body frame follows the header frame; find it by walking frame sizes
    let hdr_size = u32::from_be_bytes([
        out[start + 3],
        out[start + 4],
        out[start + 5],
        out[start + 6],
    ]) as usize;
    let body_off = start + 8 + hdr_size + 7;
    (out, body_off)
}

/// basic.ack encoded by hand (21 bytes), multiple flag set.
pub fn ack_frame(ch: u16, tag: u64, out: &mut Vec<u8>) {
    out.push(FRAME_METHOD);
    out.extend_from_slice(&ch.to_be_bytes());
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&60u16.to_be_bytes());
    out.extend_from_slice(&80u16.to_be_bytes());
    out.extend_from_slice(&tag.to_be_bytes());
    out.push(1);
    out.push(FRAME_END);
}

/// Delivery tag of a basic.deliver payload (class 60, method 60), read in place.
pub fn deliver_tag(payload: &[u8]) -> Option<u64> {
    let ctag_len = *payload.get(4)? as usize;
    let o = 5 + ctag_len;
    let b = payload.get(o..o + 8)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

/// Redelivered flag of a basic.deliver payload (the bit after the delivery tag).
pub fn deliver_redelivered(payload: &[u8]) -> bool {
    let Some(&ctag_len) = payload.get(4) else {
        return false;
    };
    payload
        .get(5 + ctag_len as usize + 8)
        .is_some_and(|b| b & 1 != 0)
}

/// Body size of a content header payload, read in place.
pub fn header_body_size(payload: &[u8]) -> Option<u64> {
    let b = payload.get(4..12)?;
    Some(u64::from_be_bytes(b.try_into().ok()?))
}
