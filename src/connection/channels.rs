//! Channels as the connection sees them: opening and closing, the closing state, and
//! where an error on a channel goes (channel.close or connection.close).
//! Part of the connection task; moved out of `mod.rs` to keep it under ~600 lines.

use super::Connection;
use crate::channel::{channel_open_ok, Channel, ChannelState, Ctx};
use crate::codec::{self, Method};
use crate::error::Exception;
use amq_protocol::protocol::{channel as amqp_channel, AMQPClass};
use tracing::debug;

impl Connection {
    /// Routes an exception to channel.close (soft, on a channel) or connection.close.
    pub(super) fn fail(&mut self, channel: u16, e: Exception) {
        if e.closes_connection(channel) || !self.channels.contains_key(&channel) {
            self.close_connection(e);
            return;
        }
        debug!(channel, code = e.code as u16, text = %e.text, "closing channel");
        self.with_channel(channel, |ch, ctx| {
            ch.release(ctx);
            ch.state = ChannelState::Closing;
            ctx.send(
                ch.id,
                AMQPClass::Channel(amqp_channel::AMQPMethod::Close(amqp_channel::Close {
                    reply_code: e.code as u16,
                    reply_text: e.text.as_str().into(),
                    class_id: e.class_id,
                    method_id: e.method_id,
                })),
            );
        });
    }

    /// A content frame for a channel: discarded while it closes, an error if it is unknown.
    pub(super) fn open_channel_frame(
        &mut self,
        channel: u16,
        f: impl FnOnce(&mut Channel, &mut Ctx) -> Result<(), Exception>,
    ) -> Result<(), Exception> {
        match self.channels.get(&channel).map(|c| &c.state) {
            None => Err(Exception::unexpected_frame(
                "expected method frame, got non method frame instead",
            )),
            Some(ChannelState::Closing) => Ok(()),
            Some(ChannelState::Open) => self.with_channel(channel, f).unwrap_or(Ok(())),
        }
    }

    pub(super) fn channel_method(&mut self, channel: u16, method: Method) -> Result<(), Exception> {
        use amqp_channel::AMQPMethod as Ch;
        let (class_id, method_id) = method.ids();
        let state = self.channels.get(&channel).map(|c| &c.state);
        let class = match (state, method) {
            (None, Method::Other(class)) => *class,
            (None, _) => {
                return Err(
                    Exception::channel_error("expected 'channel.open'").on(class_id, method_id)
                )
            }
            (Some(ChannelState::Closing), Method::Other(class)) => {
                match *class {
                    AMQPClass::Channel(Ch::CloseOk(_)) => {
                        self.channels.remove(&channel);
                    }
                    AMQPClass::Channel(Ch::Close(_)) => {
                        self.send_channel_close_ok(channel);
                        self.channels.remove(&channel);
                    }
                    _ => {}
                }
                return Ok(());
            }
            (Some(ChannelState::Closing), _) => return Ok(()),
            (
                Some(ChannelState::Open),
                method @ (Method::Publish(_) | Method::Ack { .. } | Method::Qos { .. }),
            ) => {
                return self
                    .with_channel(channel, |ch, ctx| ch.handle_method(ctx, method))
                    .unwrap_or(Ok(()));
            }
            (Some(ChannelState::Open), Method::Other(class)) => *class,
        };
        match class {
            AMQPClass::Channel(Ch::Open(_)) if !self.channels.contains_key(&channel) => {
                // RabbitMQ limits how many channels are open, not their numbers.
                if self.channels.len() >= self.channel_max as usize {
                    return Err(Exception::not_allowed(format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({})",
                        self.channels.len(),
                        self.channel_max
                    )));
                }
                self.channels.insert(channel, Channel::new(channel));
                self.with_channel(channel, |_, ctx| channel_open_ok(ctx, channel));
                Ok(())
            }
            _ if !self.channels.contains_key(&channel) => {
                Err(Exception::channel_error("expected 'channel.open'").on(class_id, method_id))
            }
            AMQPClass::Channel(Ch::Close(_)) => {
                self.with_channel(channel, |ch, ctx| ch.release(ctx));
                self.channels.remove(&channel);
                self.send_channel_close_ok(channel);
                Ok(())
            }
            AMQPClass::Channel(Ch::CloseOk(_)) => Ok(()),
            other => self
                .with_channel(channel, |ch, ctx| {
                    ch.handle_method(ctx, Method::Other(Box::new(other)))
                })
                .unwrap_or(Ok(())),
        }
    }

    pub(super) fn send_channel_close_ok(&mut self, channel: u16) {
        codec::encode_method(
            &mut self.out,
            channel,
            &AMQPClass::Channel(amqp_channel::AMQPMethod::CloseOk(amqp_channel::CloseOk {})),
        );
    }
}
