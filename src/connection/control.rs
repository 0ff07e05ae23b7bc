//! Connection control once it is open: channel 0's methods (close, close-ok,
//! update-secret), closing the connection with RabbitMQ's close or silently, and the
//! tick that enforces the handshake timeout, heartbeats and the closing deadlines.
//!
//! Called by the connection task (its input and its timer). Writes only into the
//! connection's own write buffer; never blocks, never awaits.

use super::{
    Connection, Phase, CLOSE_OK_LINGER, CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT, SILENT_CLOSE_DELAY,
};
use crate::channel::Channel;
use crate::codec::{self, Method};
use crate::error::{ConnectionError, Exception};
use amq_protocol::protocol::{connection as amqp_connection, AMQPClass};
use std::time::Duration;
use tokio::time::Instant;
use tracing::info;

impl Connection {
    pub(super) fn on_tick(&mut self) -> Result<(), ConnectionError> {
        let now = Instant::now();
        // Summed on the tick, not per delivery: a walk over the channels.
        self.unacked_bytes = self.channels.values().map(Channel::unacked_bytes).sum();
        self.channels.values_mut().for_each(Channel::tick);
        match self.phase {
            Phase::Closing(deadline) if now >= deadline => {
                self.phase = Phase::Done;
                self.out.clear();
            }
            Phase::CloseOkSent(deadline) if now >= deadline => {
                self.reset = true;
                self.phase = Phase::Done;
            }
            Phase::ProtocolHeader | Phase::StartOk | Phase::TuneOk | Phase::Open
                if now - self.started >= HANDSHAKE_TIMEOUT =>
            {
                return Err(ConnectionError::HandshakeTimeout);
            }
            Phase::Running if self.heartbeat > 0 => {
                let interval = Duration::from_secs(self.heartbeat as u64);
                // A blocked connection is not read, so its heartbeats go unseen.
                if self.flow_blocked() || self.throttled() || self.holding_too_much() {
                    self.last_read = now;
                }
                // As RabbitMQ's heartbeat monitor: every interval (every second tick) it
                // looks whether anything arrived since its last look, and gives up after
                // two silent looks in a row; a client that goes quiet right after
                // connection.open is dropped 3 intervals after tune-ok, not 2.
                self.heartbeat_ticks = self.heartbeat_ticks.wrapping_add(1);
                if self.heartbeat_ticks.is_multiple_of(2) {
                    let heard = self.last_read > self.last_check;
                    self.last_check = now;
                    self.silent_checks = if heard { 0 } else { self.silent_checks + 1 };
                    if self.silent_checks >= 2 {
                        return Err(ConnectionError::MissedHeartbeats);
                    }
                }
                // Send when nothing else went out for about half the interval.
                if self.out.is_empty() && now - self.last_write >= interval / 2 - interval / 10 {
                    codec::encode_heartbeat(&mut self.out);
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn close_connection(&mut self, e: Exception) {
        if matches!(
            self.phase,
            Phase::Closing(_) | Phase::Done | Phase::CloseOkSent(_)
        ) {
            return;
        }
        info!(code = e.code as u16, text = %e.text, "closing connection");
        codec::encode_method(
            &mut self.out,
            0,
            &AMQPClass::Connection(amqp_connection::AMQPMethod::Close(amqp_connection::Close {
                reply_code: e.code as u16,
                reply_text: e.text.as_str().into(),
                class_id: e.class_id,
                method_id: e.method_id,
            })),
        );
        self.phase = Phase::Closing(Instant::now() + CLOSE_TIMEOUT);
    }

    /// Drops the client after RabbitMQ's delay, with no close method.
    pub(super) fn silent_close(&mut self) {
        self.reset = true;
        self.phase = Phase::Closing(Instant::now() + SILENT_CLOSE_DELAY);
    }

    pub(super) fn send_close_ok(&mut self) {
        codec::encode_method(
            &mut self.out,
            0,
            &AMQPClass::Connection(amqp_connection::AMQPMethod::CloseOk(
                amqp_connection::CloseOk {},
            )),
        );
        self.phase = Phase::CloseOkSent(Instant::now() + CLOSE_OK_LINGER);
    }

    pub(super) fn connection_method(&mut self, method: Method) -> Result<(), Exception> {
        use amqp_connection::AMQPMethod as C;
        let (class_id, method_id) = method.ids();
        let Method::Other(class) = method else {
            return Err(
                Exception::channel_error("unexpected method in connection state running")
                    .on(class_id, method_id),
            );
        };
        match *class {
            AMQPClass::Connection(C::Close(_)) => {
                self.send_close_ok();
                Ok(())
            }
            AMQPClass::Connection(C::CloseOk(_)) => Ok(()),
            // RabbitMQ 3.10 with its internal user database accepts any new secret (the
            // internal backend keeps no expiring credential to refresh); so do we.
            AMQPClass::Connection(C::UpdateSecret(m)) => {
                info!(reason = %m.reason, "secret updated");
                codec::encode_method(
                    &mut self.out,
                    0,
                    &AMQPClass::Connection(C::UpdateSecretOk(amqp_connection::UpdateSecretOk {})),
                );
                Ok(())
            }
            _ => Err(
                Exception::channel_error("unexpected method in connection state running")
                    .on(class_id, method_id),
            ),
        }
    }
}
