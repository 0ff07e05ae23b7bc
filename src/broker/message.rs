//! A message as it travels from a publisher through exchanges and queues to consumers.
//!
//! Built once by the publishing channel's content assembler and shared as `Arc<Message>`
//! by every queue it is routed to. It holds the publisher's raw property bytes, which are
//! written back verbatim to consumers; they are decoded only when routing needs them
//! (the headers exchange). Never mutated after it is built.

use crate::codec::ShortStr;
use amq_protocol::protocol::basic::{parse_properties, AMQPProperties};
use amq_protocol::types::FieldTable;
use bytes::Bytes;

#[derive(Debug)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// Property flags and property list, exactly as the publisher sent them.
    pub properties: Bytes,
    pub body: Bytes,
}

impl Message {
    /// Decodes the properties; `None` when the publisher sent bytes that do not decode.
    pub fn decode_properties(&self) -> Option<AMQPProperties> {
        parse_properties(&self.properties[..]).ok().map(|(_, p)| p)
    }

    /// The headers table, decoded on demand for headers-exchange routing.
    pub fn headers(&self) -> Option<FieldTable> {
        self.decode_properties().and_then(|p| p.headers().clone())
    }
}
