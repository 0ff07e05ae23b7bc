//! Content assembly on a channel: the header and body frames that follow a
//! basic.publish, checked against the announced size and the message size limit, or
//! read and dropped after a refusal (and on a closing channel).
//!
//! Called by the connection for each content frame and for methods on a closing channel;
//! hands a finished message to the publish path. Never blocks, never awaits.

use super::{Channel, ChannelState, Content, Ctx};
use crate::broker::message::MessageBuilder;
use crate::codec::Method;
use crate::error::Exception;
use amq_protocol::protocol::AMQPClass;
use bytes::Bytes;

impl Channel {
    /// A content header frame.
    pub fn handle_header(
        &mut self,
        ctx: &mut Ctx,
        class_id: u16,
        size: u64,
        properties: Bytes,
    ) -> Result<(), Exception> {
        let publish = match std::mem::take(&mut self.content) {
            Content::Header(publish) => publish,
            Content::Idle => {
                return Err(Exception::unexpected_frame(
                    "expected method frame, got non method frame instead",
                ))
            }
            other => {
                self.content = other;
                return Err(self.content_expected().on(60, 40));
            }
        };
        if class_id != 60 {
            return Err(Exception::unexpected_frame(format!(
                "expected content header for class 60, got one for class {class_id} instead"
            )));
        }
        if self.state == ChannelState::Closing {
            // Framed, then dropped: nothing is published on a closing channel.
            return self.discard(size, None);
        }
        if size > ctx.max_message_size {
            // RabbitMQ 3.10 reads the whole body before refusing it; we drop it as it
            // comes, so it costs no memory.
            let error = Exception::precondition_failed(format!(
                "message size {size} is larger than configured max size {}",
                ctx.max_message_size
            ))
            .on(60, 40);
            return self.discard(size, Some(error));
        }
        // RabbitMQ checks the write permission after the size, before the properties.
        if let Err(e) = self.authorize_publish(ctx, &publish) {
            return self.discard(size, Some(e.on(60, 40)));
        }
        let properties = match self.check_properties(ctx, &publish.exchange, properties) {
            Ok(properties) => properties,
            // Refused once the whole message is in, as RabbitMQ does: the channel closes
            // at a frame boundary, with no body frames left to arrive on it.
            Err(e) => return self.discard(size, Some(e.on(60, 40))),
        };
        let message = MessageBuilder::new(
            publish.exchange.as_str(),
            publish.routing_key.as_str(),
            &properties,
            size as usize,
        );
        if size == 0 {
            return self.publish(ctx, publish, message.finish());
        }
        self.content = Content::Body { publish, message };
        Ok(())
    }

    /// Reads and drops the `size` body bytes to come, then raises `error` (if any).
    fn discard(&mut self, size: u64, error: Option<Exception>) -> Result<(), Exception> {
        if size == 0 {
            return error.map_or(Ok(()), Err);
        }
        self.content = Content::Discard {
            remaining: size,
            error,
        };
        Ok(())
    }

    /// A method frame on a closing channel. RabbitMQ's frame assembler runs whatever the
    /// channel's state: a publish must still be followed by its content, which is then
    /// dropped. Returns the other methods for the
    /// connection to look at (close, close-ok, open); they do nothing here.
    pub fn skip_method(&mut self, method: Method) -> Result<Option<AMQPClass>, Exception> {
        self.expect_method()?;
        match method {
            Method::Publish(publish) => self.content = Content::Header(publish),
            Method::Other(class) => return Ok(Some(*class)),
            Method::Ack { .. } | Method::Qos { .. } => {}
        }
        Ok(None)
    }

    /// A content body frame.
    pub fn handle_body(&mut self, ctx: &mut Ctx, payload: Bytes) -> Result<(), Exception> {
        match &mut self.content {
            Content::Body { .. } => {}
            Content::Discard { remaining, error } => {
                *remaining = remaining.saturating_sub(payload.len() as u64);
                if *remaining == 0 {
                    let error = error.take();
                    self.content = Content::Idle;
                    return error.map_or(Ok(()), Err);
                }
                return Ok(());
            }
            Content::Idle => {
                return Err(Exception::unexpected_frame(
                    "expected method frame, got non method frame instead",
                ))
            }
            Content::Header(_) => return Err(self.content_expected().on(60, 40)),
        }
        let Content::Body {
            publish,
            mut message,
        } = std::mem::take(&mut self.content)
        else {
            return Ok(());
        };
        if payload.len() > message.remaining() {
            // Not an error by itself in RabbitMQ: the message never completes and the next
            // method frame is refused.
            self.content = Content::Discard {
                remaining: u64::MAX,
                error: None,
            };
            return Ok(());
        }
        message.push_body(payload);
        if message.remaining() > 0 {
            self.content = Content::Body { publish, message };
            return Ok(());
        }
        self.publish(ctx, publish, message.finish())
    }
}
