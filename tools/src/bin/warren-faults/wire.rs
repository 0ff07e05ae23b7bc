//! Small pieces of the wire the fault clients share on top of warren-bench's client:
//! reading a frame into owned values (so the reader can be used again while handling
//! it), the few methods they send, and a readable error for a broker's close.

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, confirm, AMQPClass};
use amq_protocol::types::FieldTable;

use crate::amqp::*;

/// One frame, copied out of the reader's buffer.
pub struct Frame {
    pub typ: u8,
    pub ch: u16,
    pub class_method: (u16, u16),
    pub payload: Vec<u8>,
}

pub const ACK: (u16, u16) = (60, 80);
pub const NACK: (u16, u16) = (60, 120);
pub const DELIVER: (u16, u16) = (60, 60);
pub const QOS_OK: (u16, u16) = (60, 11);
pub const BLOCKED: (u16, u16) = (10, 60);
pub const UNBLOCKED: (u16, u16) = (10, 61);

impl Frame {
    /// The next frame; a connection.close or channel.close from the broker becomes an
    /// error carrying its code and text.
    pub async fn read(c: &mut Conn) -> Res<Frame> {
        let f = c.rd.next().await?;
        let cm = if f.typ == FRAME_METHOD {
            f.class_method()
        } else {
            (0, 0)
        };
        if matches!(cm, (10, 50) | (20, 40)) {
            if let AMQPFrame::Method(_, class) = parse_full(f.full)? {
                if let Some(e) = close_error(&class) {
                    return Err(e);
                }
            }
        }
        Ok(Frame {
            typ: f.typ,
            ch: f.ch,
            class_method: cm,
            payload: f.payload.to_vec(),
        })
    }

    /// (delivery tag, multiple) of a basic.ack or basic.nack.
    pub fn tag_multiple(&self) -> Option<(u64, bool)> {
        let tag = u64::from_be_bytes(self.payload.get(4..12)?.try_into().ok()?);
        Some((tag, self.payload.get(12)? & 1 != 0))
    }
}

pub fn qos(prefetch: u16) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count: prefetch,
        global: false,
    }))
}

pub async fn confirm_select(c: &mut Conn, ch: u16) -> Res<()> {
    let sel = AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
        nowait: false,
    }));
    match c.rpc(ch, sel).await? {
        AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => Ok(()),
        m => Err(err(format!("expected confirm.select-ok, got {m:?}"))),
    }
}

/// basic.qos on `ch`, waiting for qos-ok.
pub async fn set_qos(c: &mut Conn, ch: u16, prefetch: u16) -> Res<()> {
    match c.rpc(ch, qos(prefetch)).await? {
        AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => Ok(()),
        m => Err(err(format!("expected basic.qos-ok, got {m:?}"))),
    }
}

/// basic.consume on `ch`; its consume-ok is left for the caller's read loop (waiting
/// for it with `rpc` would skip deliveries already arriving on other channels).
pub fn consume_method(queue: &str, no_ack: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: queue.into(),
        consumer_tag: "".into(),
        no_local: false,
        no_ack,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

/// basic.qos then basic.consume on `ch`, for a connection with just this consumer.
pub async fn consume(c: &mut Conn, ch: u16, queue: &str, prefetch: u16, no_ack: bool) -> Res<()> {
    set_qos(c, ch, prefetch).await?;
    match c.rpc(ch, consume_method(queue, no_ack)).await? {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => Ok(()),
        m => Err(err(format!("expected basic.consume-ok, got {m:?}"))),
    }
}
