//! One connection's flow control and memory accounting: when it stops being read (an
//! alarm is on and it publishes, memory is crowded and it created a record, the store is behind its persistent messages, or its
//! channels hold too much behind tx.commit), how it tells the client (connection.blocked
//! / unblocked), and its share of the broker's memory budget.
//!
//! Part of the connection task; nothing here blocks or takes a lock.

use super::{Connection, Phase, HIGH_WATER, OUT_INITIAL};
use crate::codec;
use amq_protocol::protocol::{connection as amqp_connection, AMQPClass};
use bytes::BytesMut;

/// Past this many bytes waiting for the disk (persistent messages and page files),
/// publishers are read no faster than the store writes (checked every
/// `THROTTLE_RECHECK`).
const STORE_BACKLOG_HIGH: u64 = 32 << 20;
/// An empty write buffer that grew past this (a large message went out, or the socket
/// fell behind) is replaced by a small one: a burst must not leave the connection holding
/// its size for good.
const OUT_KEEP: usize = HIGH_WATER / 4;
/// An open channel: its struct, maps and map entry (a client may open channel_max).
const CHANNEL_BYTES: usize = 1024;

impl Connection {
    /// Brings this connection's share of the broker's memory accounting up to date: its
    /// buffers, unacked tables, channels and the frames held behind commits (and
    /// gives back a write buffer that a large message left oversized).
    pub(super) fn count_memory(&mut self, inbuf: &BytesMut) {
        if self.out.is_empty() && self.out_allocated > OUT_KEEP {
            self.out = super::out::Out::with_capacity(OUT_INITIAL);
            self.out_allocated = 0;
        }
        self.out_allocated = self.out_allocated.max(self.out.capacity());
        let bytes = self.out_allocated
            + self.out.shared_len()
            + inbuf.capacity()
            + self.unacked_bytes
            + self.held_bytes
            + self.channels.len() * CHANNEL_BYTES;
        self.client_memory.set(bytes as u64);
    }

    /// An alarm (memory or disk) is on and this connection publishes, or memory is
    /// crowded and this connection created a record then: stop reading it. A held
    /// creator is let go once memory is no longer crowded.
    pub(super) fn flow_blocked(&mut self) -> bool {
        let memory = &self.broker.memory;
        self.creator_held &= memory.crowded();
        self.phase == Phase::Running && ((self.publisher && memory.alarmed()) || self.creator_held)
    }

    /// The disk is behind the persistent messages published: read this publisher only
    /// once the store's backlog is back under the mark (RabbitMQ's silent "flow" state,
    /// not an alarm: no connection.blocked).
    pub(super) fn throttled(&self) -> bool {
        self.publisher
            && self.phase == Phase::Running
            && self.broker.store_backlog() > STORE_BACKLOG_HIGH
    }

    /// Tells clients that asked (capability connection.blocked) when they are blocked
    /// and unblocked, as RabbitMQ does.
    pub(super) fn announce_flow(&mut self, blocked: bool) {
        use amqp_connection::AMQPMethod as C;
        if blocked && self.blocked_notify && !self.blocked_sent {
            self.blocked_sent = true;
            let m = C::Blocked(amqp_connection::Blocked {
                reason: self.broker.memory.alarm_reason().into(),
            });
            codec::encode_method(&mut self.out, 0, &AMQPClass::Connection(m));
        } else if !blocked && self.blocked_sent {
            self.blocked_sent = false;
            codec::encode_method(
                &mut self.out,
                0,
                &AMQPClass::Connection(C::Unblocked(amqp_connection::Unblocked {})),
            );
        }
    }

    /// Channels hold so much behind their commits that reading must wait.
    pub(super) fn holding_too_much(&self) -> bool {
        self.held_bytes >= HIGH_WATER
    }
}
