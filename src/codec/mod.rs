//! The frame codec: AMQP 0-9-1 bytes in, typed frames out, and back.
//!
//! Called by the connection task only. Frames are split by hand: the 7-byte header is
//! checked against the negotiated frame_max before the payload is awaited, and the 0xCE
//! end byte is checked before anything is parsed. The messaging hot path (basic.publish,
//! basic.ack, content header and body in; basic.deliver / get-ok / return, confirms and
//! content out) is parsed and written by hand in `hot`; every other method goes through
//! amq-protocol. Payloads come out as `Bytes` slices of the read buffer (no copy here;
//! the channel copies a body once, into its message). This module
//! never touches broker state and never panics on input.

pub mod fieldscan;
mod hot;
pub mod properties;
mod shortstr;

pub use hot::{
    encode_ack, encode_content, encode_content_with, encode_deliver, encode_get_ok,
    encode_heartbeat, encode_method, encode_nack, encode_return, Publish,
};
pub use shortstr::{truncate, ShortStr};

use crate::error::{Exception, ReplyCode};
use amq_protocol::protocol::{parse_class, AMQPClass};
use bytes::{Buf, Bytes, BytesMut};

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
    if buf.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    // RabbitMQ accepts a payload of up to frame_max bytes (it allows the 8 bytes of
    // framing as slack); anything above is refused before we wait for it.
    // RabbitMQ accepts a payload of frame_max bytes (it allows the framing as slack) but
    // names frame_max - 8 as the limit when it refuses one.
    let max_payload = (frame_max as usize).saturating_sub(FRAME_OVERHEAD);
    if frame_max != 0 && size > frame_max as usize {
        return Err(Exception::frame_error(format!(
            "type {kind}, all octets = <<>>: {{frame_too_large,{size},{max_payload}}}"
        )));
    }
    let total = size + FRAME_OVERHEAD;
    if buf.len() < total {
        let more = total - buf.len();
        // A frame that does not fit what its block has left, when the block cannot be
        // reused (a large body cut from it is still held) or is too small: take a block
        // for several frames of its size, so that the frames after it (large ones come in
        // runs) arrive whole in the same block; a frame split across two blocks costs a
        // copy of its first part. (BytesMut cannot tell held from too small; a
        // connection that sent a large frame may keep up to LARGE_FRAME_BLOCK, which
        // memory accounting counts.)
        if !buf.try_reclaim(more) {
            let block = (4 * total).min(LARGE_FRAME_BLOCK);
            buf.reserve(more.max(block.saturating_sub(buf.len())));
        }
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(Exception::frame_error(format!(
            "type {kind}, all octets = {}: {{invalid_frame_end_marker,{}}}",
            erlang_binary(&buf[FRAME_HEADER_SIZE..total - 1]),
            buf[total - 1]
        )));
    }
    buf.advance(FRAME_HEADER_SIZE);
    let payload = buf.split_to(size).freeze();
    buf.advance(1);
    let frame = match kind {
        FRAME_METHOD => Frame::Method {
            channel,
            method: parse_method(payload)?,
        },
        FRAME_HEADER => parse_header(channel, payload)?,
        FRAME_BODY => Frame::Body { channel, payload },
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
    Ok(Some(frame))
}

/// Bytes as Erlang prints a binary, as RabbitMQ's frame errors show them.
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

fn parse_method(payload: Bytes) -> Result<Method, Exception> {
    if payload.len() < 4 {
        return Err(Exception::frame_error(format!(
            "type 1, all octets = {}: unknown_frame",
            erlang_binary(&payload)
        )));
    }
    let class_id = u16::from_be_bytes([payload[0], payload[1]]);
    let method_id = u16::from_be_bytes([payload[2], payload[3]]);
    let parsed = match (class_id, method_id) {
        (60, 40) => hot::parse_publish(&payload).map(Method::Publish),
        (60, 80) => hot::parse_ack(&payload[4..]),
        (60, 10) => hot::parse_qos(&payload[4..]),
        // The depth walk first: amq-protocol's parser recurses once per nested table.
        _ if fieldscan::check_method(&payload).is_err() => None,
        _ => match parse_class(&payload[..]) {
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

fn parse_header(channel: u16, payload: Bytes) -> Result<Frame, Exception> {
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
    let properties = payload.slice(12..);
    // Properties travel verbatim and are decoded later (headers exchange, dead-lettering):
    // refuse here what could not be decoded then. RabbitMQ fails to decode such a header
    // and closes the connection with a bare INTERNAL_ERROR.
    if class_id == 60 && fieldscan::check_properties(&properties).is_err() {
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
        properties,
    })
}

#[cfg(test)]
mod tests;
