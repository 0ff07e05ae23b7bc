//! Channels as the connection sees them: opening and closing, the closing state, and
//! where an error on a channel goes (channel.close or connection.close).
//!
//! Part of the connection task. A channel we closed stays, in `ChannelState::Closing`,
//! until the client's close-ok, as RabbitMQ keeps it: a client may have sent its own
//! channel.close before it saw ours, and then answers ours with close-ok, which must not
//! find an unknown channel (that would close the whole connection).

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

    /// A content frame for a channel (framed, then dropped while it closes); an error if
    /// the channel is unknown.
    pub(super) fn open_channel_frame(
        &mut self,
        channel: u16,
        f: impl FnOnce(&mut Channel, &mut Ctx) -> Result<(), Exception>,
    ) -> Result<(), Exception> {
        self.with_channel(channel, f).unwrap_or_else(|| {
            Err(Exception::unexpected_frame(
                "expected method frame, got non method frame instead",
            ))
        })
    }

    pub(super) fn channel_method(&mut self, channel: u16, method: Method) -> Result<(), Exception> {
        use amqp_channel::AMQPMethod as Ch;
        #[cfg(feature = "test-hooks")]
        super::test_hooks::on_method(&method);
        let (class_id, method_id) = method.ids();
        let state = self.channels.get(&channel).map(|c| &c.state);
        let class = match (state, method) {
            (None, Method::Other(class)) => *class,
            (None, _) => {
                return Err(
                    Exception::channel_error("expected 'channel.open'").on(class_id, method_id)
                )
            }
            (Some(ChannelState::Closing), method) => return self.closing_method(channel, method),
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
                // Then the user's max-channels, over all their connections.
                let max = self.broker.users().max_channels(&self.user);
                if let Some(slot) = &mut self.user_slot {
                    slot.open_channel(max)?;
                }
                let stats = match &self.registration {
                    Some(r) => r.open_channel(channel),
                    None => crate::stats::ChannelStats::detached(channel),
                };
                self.channels.insert(channel, Channel::new(channel, stats));
                self.channel_event(channel, true);
                self.with_channel(channel, |_, ctx| channel_open_ok(ctx, channel));
                Ok(())
            }
            _ if !self.channels.contains_key(&channel) => {
                Err(Exception::channel_error("expected 'channel.open'").on(class_id, method_id))
            }
            AMQPClass::Channel(Ch::Close(_)) => {
                let _acting = self.acting();
                self.with_channel(channel, |ch, ctx| {
                    ch.expect_method()?;
                    ch.release(ctx);
                    Ok(())
                })
                .unwrap_or(Ok(()))?;
                self.forget_channel(channel);
                self.send_channel_close_ok(channel);
                Ok(())
            }
            // RabbitMQ has no handler for a close-ok it did not ask for.
            AMQPClass::Channel(Ch::CloseOk(_)) => {
                Err(Exception::command_invalid("unimplemented method").on(class_id, method_id))
            }
            other => {
                let _acting = self.acting();
                self.with_channel(channel, |ch, ctx| {
                    ch.handle_method(ctx, Method::Other(Box::new(other)))
                })
                .unwrap_or(Ok(()))
            }
        }
    }

    /// A method on a channel we closed. Like RabbitMQ, we keep the channel until the
    /// client's close-ok, however its close crossed ours: a close from the client is
    /// answered with close-ok and the channel still waits, a second open is an error, and
    /// the rest is ignored once framed.
    fn closing_method(&mut self, channel: u16, method: Method) -> Result<(), Exception> {
        use amqp_channel::AMQPMethod as Ch;
        let (class_id, method_id) = method.ids();
        let Some(ch) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        match ch.skip_method(method)? {
            Some(AMQPClass::Channel(Ch::CloseOk(_))) => self.forget_channel(channel),
            Some(AMQPClass::Channel(Ch::Close(_))) => self.send_channel_close_ok(channel),
            Some(AMQPClass::Channel(Ch::Open(_))) => {
                return Err(
                    Exception::channel_error("second 'channel.open' seen").on(class_id, method_id)
                )
            }
            _ => {}
        }
        Ok(())
    }

    /// A closed channel leaves the connection and its user's channel count.
    fn forget_channel(&mut self, channel: u16) {
        if self.channels.remove(&channel).is_some() {
            self.channel_event(channel, false);
            if let Some(slot) = &mut self.user_slot {
                slot.close_channel();
            }
            if let Some(r) = &self.registration {
                r.close_channel(channel);
            }
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
