//! The hand-written hot path: basic.publish and basic.ack in; basic.deliver, get-ok,
//! return, confirms and content frames out.
//!
//! Every message crosses these functions, so they work on byte slices directly, allocate
//! nothing (the caller's write buffer grows), and write the publisher's property bytes back
//! verbatim. Unit tests in `codec::tests` check every byte against amq-protocol's generator.

use super::{
    ShortStr, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, FRAME_OVERHEAD,
};
use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::{gen_class, AMQPClass};
use bytes::{BufMut, Bytes, BytesMut};

/// basic.publish, parsed by hand; the strings are slices of the frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Publish {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub mandatory: bool,
    pub immediate: bool,
}

fn short_str(data: &Bytes, pos: &mut usize, end: usize) -> Option<ShortStr> {
    let len = *data[..end].get(*pos)? as usize;
    let start = *pos + 1;
    let stop = start + len;
    if stop > end {
        return None;
    }
    *pos = stop;
    ShortStr::from_bytes(data.slice(start..stop))
}

/// The method payload is `data[range]`, class and method ids included; the names are
/// slices of `data`.
pub(super) fn parse_publish(data: &Bytes, range: std::ops::Range<usize>) -> Option<Publish> {
    let end = range.end;
    let mut pos = range.start + 6; // class, method, reserved ticket
    let exchange = short_str(data, &mut pos, end)?;
    let routing_key = short_str(data, &mut pos, end)?;
    let flags = *data[..end].get(pos)?;
    if pos + 1 != end {
        return None;
    }
    Some(Publish {
        exchange,
        routing_key,
        mandatory: flags & 1 != 0,
        immediate: flags & 2 != 0,
    })
}

/// `args` is the method payload after the class and method ids.
pub(super) fn parse_ack(args: &[u8]) -> Option<super::Method> {
    if args.len() != 9 {
        return None;
    }
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&args[..8]);
    Some(super::Method::Ack {
        delivery_tag: u64::from_be_bytes(tag),
        multiple: args[8] & 1 != 0,
    })
}

/// `args` is the method payload after the class and method ids.
pub(super) fn parse_qos(args: &[u8]) -> Option<super::Method> {
    if args.len() != 7 {
        return None;
    }
    Some(super::Method::Qos {
        prefetch_size: u32::from_be_bytes([args[0], args[1], args[2], args[3]]),
        prefetch_count: u16::from_be_bytes([args[4], args[5]]),
        global: args[6] & 1 != 0,
    })
}

/// Starts a frame and returns where its size field is, for `end_frame`.
fn begin_frame(buf: &mut BytesMut, kind: u8, channel: u16) -> usize {
    buf.put_u8(kind);
    buf.put_u16(channel);
    let at = buf.len();
    buf.put_u32(0);
    at
}

fn end_frame(buf: &mut BytesMut, size_at: usize) {
    let size = (buf.len() - size_at - 4) as u32;
    buf[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
    buf.put_u8(FRAME_END);
}

fn put_short_str(buf: &mut BytesMut, s: &str) {
    // Names are validated to 255 bytes where they enter; cut defensively all the same.
    let bytes = super::truncate(s, 255).as_bytes();
    buf.put_u8(bytes.len() as u8);
    buf.put_slice(bytes);
}

/// basic.deliver (method frame only; follow it with `encode_content`).
pub fn encode_deliver(
    buf: &mut BytesMut,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    let at = begin_frame(buf, FRAME_METHOD, channel);
    buf.put_u16(60);
    buf.put_u16(60);
    put_short_str(buf, consumer_tag);
    buf.put_u64(delivery_tag);
    buf.put_u8(redelivered as u8);
    put_short_str(buf, exchange);
    put_short_str(buf, routing_key);
    end_frame(buf, at);
}

/// basic.get-ok (method frame only; follow it with `encode_content`).
pub fn encode_get_ok(
    buf: &mut BytesMut,
    channel: u16,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
    message_count: u32,
) {
    let at = begin_frame(buf, FRAME_METHOD, channel);
    buf.put_u16(60);
    buf.put_u16(71);
    buf.put_u64(delivery_tag);
    buf.put_u8(redelivered as u8);
    put_short_str(buf, exchange);
    put_short_str(buf, routing_key);
    buf.put_u32(message_count);
    end_frame(buf, at);
}

/// basic.return (method frame only; follow it with `encode_content`).
pub fn encode_return(
    buf: &mut BytesMut,
    channel: u16,
    reply_code: u16,
    reply_text: &str,
    exchange: &str,
    routing_key: &str,
) {
    let at = begin_frame(buf, FRAME_METHOD, channel);
    buf.put_u16(60);
    buf.put_u16(50);
    buf.put_u16(reply_code);
    put_short_str(buf, reply_text);
    put_short_str(buf, exchange);
    put_short_str(buf, routing_key);
    end_frame(buf, at);
}

/// basic.ack from the server: a publisher confirm.
pub fn encode_ack(buf: &mut BytesMut, channel: u16, delivery_tag: u64, multiple: bool) {
    let at = begin_frame(buf, FRAME_METHOD, channel);
    buf.put_u16(60);
    buf.put_u16(80);
    buf.put_u64(delivery_tag);
    buf.put_u8(multiple as u8);
    end_frame(buf, at);
}

/// basic.nack from the server: a negative publisher confirm (never asks for requeue).
pub fn encode_nack(buf: &mut BytesMut, channel: u16, delivery_tag: u64, multiple: bool) {
    let at = begin_frame(buf, FRAME_METHOD, channel);
    buf.put_u16(60);
    buf.put_u16(120);
    buf.put_u64(delivery_tag);
    buf.put_u8(multiple as u8);
    end_frame(buf, at);
}

/// The content header (with the publisher's raw property bytes) and the body, split into
/// body frames that fit `frame_max`.
pub fn encode_content(
    buf: &mut BytesMut,
    channel: u16,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    buf.reserve(body.len());
    encode_content_with(
        buf,
        channel,
        properties,
        body.len(),
        frame_max,
        |buf, part| {
            // The one copy of a small body on its way out: into the consumer's write buffer.
            buf.put_slice(&body[part]);
        },
    );
}

/// The content header and the framing of a body of `body_len` bytes in body frames that
/// fit `frame_max`; each frame's part of the body (a range of it) is put by `put_body`,
/// between the frame's header and its end byte, which this writes. Large bodies go out
/// as shared slices between these bytes (`connection::out`) rather than copied.
pub fn encode_content_with(
    buf: &mut BytesMut,
    channel: u16,
    properties: &[u8],
    body_len: usize,
    frame_max: u32,
    mut put_body: impl FnMut(&mut BytesMut, std::ops::Range<usize>),
) {
    let chunk = if frame_max == 0 {
        usize::MAX
    } else {
        frame_max as usize - FRAME_OVERHEAD
    }
    .max(1);
    let frames = body_len.div_ceil(chunk);
    buf.reserve(FRAME_OVERHEAD + 12 + properties.len() + frames * FRAME_OVERHEAD);
    let at = begin_frame(buf, FRAME_HEADER, channel);
    buf.put_u16(60);
    buf.put_u16(0);
    buf.put_u64(body_len as u64);
    buf.put_slice(properties);
    end_frame(buf, at);
    let mut start = 0;
    while start < body_len {
        let end = body_len.min(start.saturating_add(chunk));
        buf.put_u8(FRAME_BODY);
        buf.put_u16(channel);
        buf.put_u32((end - start) as u32);
        put_body(buf, start..end);
        buf.put_u8(FRAME_END);
        start = end;
    }
}

pub fn encode_heartbeat(buf: &mut BytesMut) {
    buf.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Any other method, through amq-protocol's generator.
pub fn encode_method(buf: &mut BytesMut, channel: u16, method: &AMQPClass) {
    // The generator needs a seekable writer; a small Vec, then one copy into the write
    // buffer. Only control methods take this path.
    let scratch = Vec::with_capacity(64);
    match gen_class(method)(WriteContext::from(scratch)) {
        Ok(ctx) => {
            let payload = ctx.write;
            let at = begin_frame(buf, FRAME_METHOD, channel);
            buf.put_slice(&payload);
            end_frame(buf, at);
        }
        // Generation fails only for values that cannot be represented (an over-long
        // short string); those are built by us and bounded, so log and drop.
        Err(e) => tracing::error!(error = %e, ?method, "cannot encode method"),
    }
}
