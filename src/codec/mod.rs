//! The frame codec: AMQP 0-9-1 bytes in, typed frames out, and back.
//!
//! Called by the connection task only. Frames are split by hand: the 7-byte header is
//! checked against the negotiated frame_max before the payload is awaited, and the 0xCE
//! end byte is checked before anything is parsed. The messaging hot path (basic.publish,
//! basic.ack, content header and body in; basic.deliver / get-ok / return, confirms and
//! content out) is parsed and written by hand in `hot`; every other method goes through
//! amq-protocol. Payloads come out as `Bytes` slices of the read buffer (no copy here;
//! the channel copies a body once, into its message): the connection splits all the
//! whole frames of a read off its buffer at once (`whole_frames`) and `decode_first`
//! slices each frame's parts out of that one shared buffer. This module
//! never touches broker state and never panics on input.

pub mod fieldscan;
mod hot;
pub mod properties;
mod shortstr;

pub use hot::{
    encode_ack, encode_content, encode_content_with, encode_deliver, encode_get_ok,
    encode_heartbeat, encode_method, encode_nack, encode_return, Publish,
};
pub use shortstr::{same_name, truncate, ShortStr};

use crate::error::{Exception, ReplyCode};
use amq_protocol::protocol::{parse_class, AMQPClass};
use bytes::{Bytes, BytesMut};
use std::ops::Range;

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// Frame type, channel and size before the payload.
pub const FRAME_HEADER_SIZE: usize = 7;
/// Header plus end byte: what a frame costs beyond its payload.
pub const FRAME_OVERHEAD: usize = 8;
/// The protocol header of AMQP 0-9-1.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// One frame, parsed as far as the connection needs.
#[derive(Debug)]
pub enum Frame {
    Method {
        channel: u16,
        method: Method,
    },
    /// A content header; `properties` is the raw property flags and list, kept verbatim so
    /// that consumers get exactly the bytes the publisher sent.
    Header {
        channel: u16,
        class_id: u16,
        body_size: u64,
        properties: Bytes,
    },
    Body {
        channel: u16,
        payload: Bytes,
    },
    Heartbeat {
        channel: u16,
    },
}

/// A method: the hot ones parsed by hand, the rest by amq-protocol.
#[derive(Debug)]
pub enum Method {
    Publish(Publish),
    Ack {
        delivery_tag: u64,
        multiple: bool,
    },
    /// basic.qos by hand: amq-protocol drops prefetch_size, which RabbitMQ refuses if set.
    Qos {
        prefetch_size: u32,
        prefetch_count: u16,
        global: bool,
    },
    Other(Box<AMQPClass>),
}

impl Method {
    /// (class id, method id) for error reports.
    pub fn ids(&self) -> (u16, u16) {
        match self {
            Method::Publish(_) => (60, 40),
            Method::Ack { .. } => (60, 80),
            Method::Qos { .. } => (60, 10),
            Method::Other(class) => (class.get_amqp_class_id(), class.get_amqp_method_id()),
        }
    }
}

/// The most a read buffer block grows to for large frames (see `decode`).
const LARGE_FRAME_BLOCK: usize = 512 * 1024;

/// Takes one complete frame off the front of `buf`, or returns `Ok(None)` when more bytes
/// are needed (having reserved room for the rest of the frame).
pub fn decode(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, Exception> {
    let Some(total) = frame_len(buf, frame_max)? else {
        if let Some(total) = announced_len(buf) {
            reserve_for(buf, total);
        }
        return Ok(None);
    };
    let one = buf.split_to(total).freeze();
    decode_first(&one, frame_max).map(|decoded| decoded.map(|(frame, _)| frame))
}

/// Room in `buf` for the rest of a frame of `total` bytes whose start it holds. When the
/// block cannot be reused (a large body cut from it is still held) or is too small, the
/// new block takes several frames of its size, so that the frames after it (large ones
/// come in runs) arrive whole in the same block: a frame split across two blocks costs a
/// copy of its first part. (BytesMut cannot tell held from too small; a connection that
/// sent a large frame may keep up to LARGE_FRAME_BLOCK, which memory accounting counts.)
fn reserve_for(buf: &mut BytesMut, total: usize) {
    let more = total.saturating_sub(buf.len());
    if more > 0 && !buf.try_reclaim(more) {
        let block = (4 * total).min(LARGE_FRAME_BLOCK);
        buf.reserve(more.max(block.saturating_sub(buf.len())));
    }
}

/// How many bytes at the front of `buf` are whole frames, judged by their headers alone
/// (size within `frame_max`, all bytes there): the connection splits them off the read
/// buffer at once and decodes them with `decode_first`, one shared buffer for a whole
/// read instead of a split per frame. Stops before a frame that is cut short or too
/// large (`decode` reports the latter).
pub fn whole_frames(buf: &[u8], frame_max: u32) -> usize {
    let mut at = 0;
    while let Some(total) = buf.get(at..).and_then(announced_len) {
        if (frame_max != 0 && total - FRAME_OVERHEAD > frame_max as usize) || at + total > buf.len()
        {
            break;
        }
        at += total;
    }
    at
}

/// The frame size a header announces, framing included, if the header is all there.
fn announced_len(buf: &[u8]) -> Option<usize> {
    let size = buf.get(3..FRAME_HEADER_SIZE)?;
    Some(u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize + FRAME_OVERHEAD)
}

/// The length of the first frame of `buf`, framing included, once it is all there;
/// `Ok(None)` while bytes are missing. A size over `frame_max` is refused before the
/// payload is awaited, a bad end byte before anything is parsed.
fn frame_len(buf: &[u8], frame_max: u32) -> Result<Option<usize>, Exception> {
    let Some(total) = announced_len(buf) else {
        return Ok(None);
    };
    let (kind, size) = (buf[0], total - FRAME_OVERHEAD);
    // RabbitMQ accepts a payload of frame_max bytes (it allows the framing as slack) but
    // names frame_max - 8 as the limit when it refuses one.
    let max_payload = (frame_max as usize).saturating_sub(FRAME_OVERHEAD);
    if frame_max != 0 && size > frame_max as usize {
        return Err(Exception::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{max_payload}}}"
        )));
    }
    if buf.len() < total {
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(Exception::frame_error(format!(
            "type {kind}, all octets = {}: {{invalid_frame_end_marker,{}}}",
            erlang_binary(&buf[FRAME_HEADER_SIZE..total - 1]),
            buf[total - 1]
        )));
    }
    Ok(Some(total))
}

/// The first frame of `data` and its length on the wire (framing included), or
/// `Ok(None)` when it is not all there. Nothing is split or copied: a frame keeps what it
/// needs of `data` as slices (a publish's names, a header's properties, a body), so a
/// frame costs one reference count per slice it keeps and nothing else.
pub fn decode_first(data: &Bytes, frame_max: u32) -> Result<Option<(Frame, usize)>, Exception> {
    let Some(total) = frame_len(data, frame_max)? else {
        return Ok(None);
    };
    let kind = data[0];
    let channel = u16::from_be_bytes([data[1], data[2]]);
    let payload = FRAME_HEADER_SIZE..total - 1;
    let frame = match kind {
        FRAME_METHOD => Frame::Method {
            channel,
            method: parse_method(data, payload)?,
        },
        FRAME_HEADER => parse_header(channel, data, payload)?,
        FRAME_BODY => Frame::Body {
            channel,
            payload: data.slice(payload),
        },
        FRAME_HEARTBEAT if channel == 0 => Frame::Heartbeat { channel },
        FRAME_HEARTBEAT => {
            return Err(Exception::unexpected_frame(format!(
                "type {kind}, all octets = <<>>"
            )))
        }
        other => {
            return Err(Exception::frame_error(format!(
                "type {other}, all octets = <<>>: unknown_frame"
            )))
        }
    };
    Ok(Some((frame, total)))
}

/// Bytes as Erlang prints a binary, as RabbitMQ's frame errors show them.
#[cfg(feature = "cluster")]
/// A method's payload (class id, method id, arguments) as the wire carries it: how the
/// cluster's log carries an exchange or queue method between nodes. `None` only for a
/// value that cannot be represented (an over-long short string).
pub fn method_bytes(method: &AMQPClass) -> Option<Vec<u8>> {
    let ctx = amq_protocol::protocol::gen_class(method)(amq_protocol::frame::WriteContext::from(
        Vec::with_capacity(64),
    ))
    .ok()?;
    Some(ctx.write)
}

#[cfg(feature = "cluster")]
/// The method `method_bytes` encoded; `None` for bytes that are not one whole method
/// (nested tables are checked for depth first, as for a client's frames).
pub fn method_from_bytes(payload: &[u8]) -> Option<AMQPClass> {
    fieldscan::check_method(payload).ok()?;
    match parse_class(payload) {
        Ok((&[], class)) => Some(class),
        _ => None,
    }
}

pub fn erlang_binary(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(32)];
    let list: Vec<String> = shown.iter().map(|b| b.to_string()).collect();
    let more = if bytes.len() > shown.len() {
        ",..."
    } else {
        ""
    };
    format!("<<{}{more}>>", list.join(","))
}

/// The method frame payload `data[range]`.
fn parse_method(data: &Bytes, range: Range<usize>) -> Result<Method, Exception> {
    let payload = &data[range.clone()];
    if payload.len() < 4 {
        return Err(Exception::frame_error(format!(
            "type 1, all octets = {}: unknown_frame",
            erlang_binary(payload)
        )));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    let parsed = match (class_id, method_id) {
        (60, 40) => hot::parse_publish(data, range).map(Method::Publish),
        (60, 80) => hot::parse_ack(&payload[4..]),
        (60, 10) => hot::parse_qos(&payload[4..]),
        // The depth walk first: amq-protocol's parser recurses once per nested table.
        _ if fieldscan::check_method(payload).is_err() => None,
        _ => match parse_class(payload) {
            Ok((&[], class)) => Some(Method::Other(Box::new(class))),
            Ok(_) => None,
            Err(_) if !is_known_method(class_id, method_id) => {
                return Err(Exception::command_invalid(format!(
                    "unknown method {{{class_id},{method_id}}}"
                ))
                .on(class_id, method_id))
            }
            Err(_) => None,
        },
    };
    parsed.ok_or_else(|| {
        Exception::frame_error(format!("cannot decode {}", erlang_binary(&payload[4..])))
            .on(class_id, method_id)
    })
}

fn is_known_method(class_id: u16, method_id: u16) -> bool {
    match class_id {
        10 => matches!(
            method_id,
            10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51 | 60 | 61 | 70 | 71
        ),
        20 => matches!(method_id, 10 | 11 | 20 | 21 | 40 | 41),
        30 => matches!(method_id, 10 | 11),
        40 => matches!(method_id, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 51),
        50 => matches!(method_id, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51),
        60 => matches!(
            method_id,
            10 | 11
                | 20
                | 21
                | 30
                | 31
                | 40
                | 50
                | 60
                | 70
                | 71
                | 72
                | 80
                | 90
                | 100
                | 110
                | 111
                | 120
        ),
        85 => matches!(method_id, 10 | 11),
        90 => matches!(method_id, 10 | 11 | 20 | 21 | 30 | 31),
        _ => false,
    }
}

/// The content header frame payload `data[range]`.
fn parse_header(channel: u16, data: &Bytes, range: Range<usize>) -> Result<Frame, Exception> {
    let payload = &data[range.clone()];
    // class id, weight, body size, property flags
    if payload.len() < 14 {
        return Err(Exception::frame_error("content header frame too short"));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let body_size = u64::from_be_bytes([
        payload[4],
        payload[5],
        payload[6],
        payload[7],
        payload[8],
        payload[9],
        payload[10],
        payload[11],
    ]);
    // Properties travel verbatim and are decoded later (headers exchange, dead-lettering):
    // refuse here what could not be decoded then. RabbitMQ fails to decode such a header
    // and closes the connection with a bare INTERNAL_ERROR.
    if class_id == 60 && fieldscan::check_properties(&payload[12..]).is_err() {
        return Err(Exception {
            code: ReplyCode::InternalError,
            text: ReplyCode::InternalError.name().to_owned(),
            class_id: 0,
            method_id: 0,
        });
    }
    Ok(Frame::Header {
        channel,
        class_id,
        body_size,
        properties: data.slice(range.start + 12..range.end),
    })
}

#[cfg(test)]
mod tests;
