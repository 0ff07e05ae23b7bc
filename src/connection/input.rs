//! Input: the protocol header, frames decoded from the read buffer, and each frame sent
//! where it belongs (the handshake, channel 0, a channel, or held behind a waiting one).
//!
//! Called by the connection task's loop after every read and when held frames are
//! released. Stops at the write buffer's high-water mark so that replies cannot pile up;
//! never blocks, never awaits.

use super::{handshake, mechanism, Connection, Phase, HIGH_WATER};
use crate::channel::Held;
use crate::codec::{self, Frame, Method, PROTOCOL_HEADER};
use crate::error::{ConnectionError, Exception};
use amq_protocol::protocol::{connection as amqp_connection, AMQPClass};
use bytes::{Buf, BytesMut};
use tracing::{debug, info};

impl Connection {
    /// Parses and handles the complete frames in the read buffer, until the write buffer
    /// reaches the high-water mark: replies (basic.get-ok with its message, say) to
    /// frames a client pipelines without reading wait in the read buffer instead
    /// (`input_pending`), and the socket is not read meanwhile.
    pub(super) fn process_input(&mut self, inbuf: &mut BytesMut) -> Result<(), ConnectionError> {
        self.input_pending = false;
        if self.phase == Phase::ProtocolHeader {
            if inbuf.len() < PROTOCOL_HEADER.len() {
                return if b"AMQP".starts_with(&inbuf[..inbuf.len().min(4)]) {
                    Ok(())
                } else {
                    self.refuse_header()
                };
            }
            // RabbitMQ also accepts the legacy 0-9 header `AMQP 1 1 0 9`.
            if &inbuf[..8] != PROTOCOL_HEADER && &inbuf[..8] != b"AMQP\x01\x01\x00\x09" {
                return self.refuse_header();
            }
            let _ = inbuf.split_to(8);
            let mechanisms = mechanism::offered(&self.broker.auth_mechanisms, self.tls.is_some());
            let start = handshake::start(
                &mechanisms,
                &self.broker.server_properties,
                &self.broker.cluster_name(),
            );
            codec::encode_method(&mut self.out, 0, &start);
            self.phase = Phase::StartOk;
        }
        // The whole frames of this read, split off the buffer at once: each frame takes
        // slices of this one shared buffer instead of a split of its own.
        let whole = codec::whole_frames(inbuf, self.frame_max);
        let mut chunk = inbuf.split_to(whole).freeze();
        while !matches!(self.phase, Phase::Done) {
            if self.out.len() >= HIGH_WATER {
                self.input_pending = !chunk.is_empty() || !inbuf.is_empty();
                break;
            }
            // After the whole frames, the rest of the buffer: a frame still cut short, or
            // one too large (refused here before its payload arrives).
            let decoded = if chunk.is_empty() {
                let before = inbuf.len();
                codec::decode(inbuf, self.frame_max).map(|f| f.map(|f| (f, before - inbuf.len())))
            } else {
                codec::decode_first(&chunk, self.frame_max).inspect(|decoded| {
                    if let Some((_, size)) = decoded {
                        chunk.advance(*size);
                    }
                })
            };
            let (frame, size) = match decoded {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                // decode() answers COMMAND_INVALID only for unknown class/method ids, which
                // RabbitMQ answers by dropping the connection.
                Err(e) if e.code == crate::error::ReplyCode::CommandInvalid => {
                    debug!(text = %e.text, "unknown method");
                    return Err(ConnectionError::UnknownMethod);
                }
                Err(e) => {
                    // The stream cannot be resynchronised after a framing error.
                    inbuf.clear();
                    chunk.clear();
                    if matches!(self.phase, Phase::StartOk | Phase::TuneOk | Phase::Open) {
                        // As RabbitMQ: no close method before the connection is open.
                        info!(text = %e.text, "bad frame during the handshake");
                        self.silent_close();
                    } else {
                        self.close_connection(e);
                    }
                    break;
                }
            };
            self.frame(frame, size);
        }
        if !chunk.is_empty() {
            // Frames left for later (the write buffer is full, or the connection is done):
            // back in front of the rest, a copy only on this rare path.
            let mut rest = BytesMut::with_capacity(chunk.len() + inbuf.len());
            rest.extend_from_slice(&chunk);
            rest.extend_from_slice(inbuf);
            *inbuf = rest;
        }
        self.flush_channels();
        Ok(())
    }

    /// One frame from the client, `size` bytes on the wire: handled now, or held by its
    /// channel behind a tx.commit that waits for the store (or a basic.get that waits
    /// for a page file).
    fn frame(&mut self, frame: Frame, size: usize) {
        let channel = frame_channel(&frame);
        if self.phase == Phase::Running && !matches!(frame, Frame::Heartbeat { .. }) {
            if let Some(ch) = self.channels.get_mut(&channel).filter(|c| c.is_waiting()) {
                ch.hold(frame, size);
                self.held_bytes += size;
                return;
            }
        }
        if let Err(e) = self.handle_frame(frame) {
            self.fail(channel, e);
        }
    }

    /// Frames held behind a commit that has now been answered, handled in order (a
    /// later commit among them holds the rest again).
    pub(super) fn release_held(&mut self, held: Held) {
        for (frame, size) in held {
            self.held_bytes = self.held_bytes.saturating_sub(size);
            self.frame(frame, size);
        }
    }

    fn refuse_header(&mut self) -> Result<(), ConnectionError> {
        self.out.extend_from_slice(PROTOCOL_HEADER);
        self.phase = Phase::Done;
        debug!("refused protocol header");
        Ok(())
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), Exception> {
        match self.phase {
            Phase::Running => {}
            Phase::Closing(_) => {
                if let Frame::Method {
                    channel: 0,
                    method: Method::Other(class),
                } = frame
                {
                    match *class {
                        AMQPClass::Connection(amqp_connection::AMQPMethod::CloseOk(_)) => {
                            self.phase = Phase::Done
                        }
                        AMQPClass::Connection(amqp_connection::AMQPMethod::Close(_)) => {
                            self.send_close_ok();
                        }
                        _ => {}
                    }
                }
                return Ok(());
            }
            Phase::Done | Phase::ProtocolHeader | Phase::CloseOkSent(_) => return Ok(()),
            Phase::StartOk | Phase::TuneOk | Phase::Open => {
                let result = self.handshake_frame(frame);
                if let (Phase::Running, Some(vhost)) = (&self.phase, &self.vhost) {
                    self.name.logged_in(&self.user, &vhost.name);
                }
                return result;
            }
        }
        if self.publisher
            && matches!(&frame, Frame::Method { method, .. } if !matches!(method, Method::Publish(_)))
        {
            // Whatever a method does may observe a queue (a get, a declare's count, a
            // purge): the publishes before it are in their queues first.
            for ch in self.channels.values_mut() {
                ch.push_batch();
            }
        }
        match frame {
            Frame::Heartbeat { .. } => Ok(()),
            Frame::Method { channel: 0, method } => self.connection_method(method),
            Frame::Method { channel, method } => {
                self.publisher |= matches!(method, Method::Publish(_));
                let created = crate::broker::records::created_here();
                let result = self.channel_method(channel, method);
                if crate::broker::records::created_here() != created {
                    self.creator_held |= self.broker.memory.crowded();
                }
                result
            }
            Frame::Header {
                channel: 0,
                class_id,
                body_size,
                properties,
            } => {
                let mut octets = Vec::with_capacity(12 + properties.len());
                octets.extend_from_slice(&class_id.to_be_bytes());
                octets.extend_from_slice(&[0, 0]);
                octets.extend_from_slice(&body_size.to_be_bytes());
                octets.extend_from_slice(&properties);
                Err(Exception::unexpected_frame(format!(
                    "type 2, all octets = {}",
                    codec::erlang_binary(&octets)
                )))
            }
            Frame::Body {
                channel: 0,
                payload,
            } => Err(Exception::unexpected_frame(format!(
                "type 3, all octets = {}",
                codec::erlang_binary(&payload)
            ))),
            Frame::Header {
                channel,
                class_id,
                body_size,
                properties,
            } => self.open_channel_frame(channel, |ch, ctx| {
                ch.handle_header(ctx, class_id, body_size, properties)
            }),
            Frame::Body { channel, payload } => {
                self.open_channel_frame(channel, |ch, ctx| ch.handle_body(ctx, payload))
            }
        }
    }
}

fn frame_channel(frame: &Frame) -> u16 {
    match frame {
        Frame::Method { channel, .. }
        | Frame::Header { channel, .. }
        | Frame::Body { channel, .. }
        | Frame::Heartbeat { channel } => *channel,
    }
}
