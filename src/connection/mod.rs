//! The connection task: one per client socket. It owns both socket halves, the read and
//! write buffers, the channels, the outbox and the heartbeat timer.
//!
//! Spawned by the server's accept loop. One `select!` serves the socket, the outbox
//! (deliveries and cancels from queues), writes, heartbeats and shutdown; every arm is
//! cancel-safe. Reading and draining the outbox pause while the write buffer is above the
//! high-water mark: that is the backpressure. The task never blocks and never holds a
//! lock across an `.await`; on every exit path it gives back what it holds.

mod handshake;
mod outbox;

use crate::broker::consumer::{ConnectionHandle, Outgoing};
use crate::broker::queue::Queue;
use crate::broker::vhost::VHost;
use crate::broker::Broker;
use crate::channel::{channel_open_ok, Channel, ChannelState, Ctx};
use crate::codec::{self, Frame, Method, PROTOCOL_HEADER};
use crate::error::{ConnectionError, Exception};
use crate::hash::IdMap;
use amq_protocol::protocol::{channel as amqp_channel, connection as amqp_connection, AMQPClass};
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, Instrument};

/// Above this many unwritten bytes the connection stops reading and stops taking
/// deliveries until the socket drains.
const HIGH_WATER: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for close-ok after sending connection.close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// RabbitMQ waits this long before dropping a client whose login or tuning it refused
/// without a close method (it slows down password guessing).
const SILENT_CLOSE_DELAY: Duration = Duration::from_secs(3);
/// How long a client may keep its socket open after our close-ok (RabbitMQ: 30 s).
const CLOSE_OK_LINGER: Duration = Duration::from_secs(30);
/// Deliveries taken from the outbox per wake-up.
const OUTBOX_BATCH: usize = 256;
/// Past this many persistent bytes waiting for the disk, publishers are read no faster
/// than the store writes (checked every `THROTTLE_RECHECK`).
const STORE_BACKLOG_HIGH: u64 = 32 << 20;
const THROTTLE_RECHECK: Duration = Duration::from_millis(2);

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    ProtocolHeader,
    StartOk,
    TuneOk,
    Open,
    Running,
    /// We sent connection.close; only close-ok (or close) is read until the deadline.
    Closing(Instant),
    /// We answered the client's connection.close; like RabbitMQ we leave closing the
    /// socket to the client, and reset it if it has not by the deadline.
    CloseOkSent(Instant),
    /// Done: flush what is written and end.
    Done,
}

struct Connection {
    id: u64,
    peer: SocketAddr,
    broker: Arc<Broker>,
    phase: Phase,
    vhost: Option<Arc<VHost>>,
    user: String,
    consumer_cancel_notify: bool,
    /// The client asked to hear connection.blocked / unblocked.
    blocked_notify: bool,
    /// This connection has published: the memory alarm stops reading from it.
    publisher: bool,
    /// We told the client it is blocked and owe it an unblocked.
    blocked_sent: bool,
    channel_max: u16,
    frame_max: u32,
    heartbeat: u16,
    channels: IdMap<Channel>,
    /// End with a TCP reset instead of an orderly shutdown, as RabbitMQ does after a
    /// refusal it does not explain.
    reset: bool,
    out: BytesMut,
    handle: ConnectionHandle,
    exclusive_queues: Vec<Arc<Queue>>,
    started: Instant,
    last_read: Instant,
    last_write: Instant,
}

/// Serves one client until it leaves, fails, or the broker shuts down.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let id = broker.next_connection_id();
    let span = tracing::info_span!("connection", id, %peer, user = tracing::field::Empty, vhost = tracing::field::Empty);
    async move {
        let (tx, rx) = mpsc::unbounded_channel();
        let now = Instant::now();
        let mut conn = Connection {
            id,
            peer,
            broker,
            phase: Phase::ProtocolHeader,
            vhost: None,
            user: String::new(),
            consumer_cancel_notify: false,
            blocked_notify: false,
            publisher: false,
            blocked_sent: false,
            channel_max: handshake::CHANNEL_MAX,
            // Until tune-ok, frames are capped at the protocol's minimum frame size, as
            // RabbitMQ does: a client that has not logged in cannot make us buffer more.
            frame_max: handshake::FRAME_MIN,
            heartbeat: 0,
            channels: IdMap::default(),
            reset: false,
            out: BytesMut::with_capacity(16 * 1024),
            handle: ConnectionHandle { id, outbox: tx },
            exclusive_queues: Vec::new(),
            started: now,
            last_read: now,
            last_write: now,
        };
        debug!("accepted");
        match conn.run(stream, rx, shutdown).await {
            Ok(()) => debug!("closed"),
            Err(e) => info!(error = %e, "connection ended"),
        }
    }
    .instrument(span)
    .await
}

impl Connection {
    async fn run(
        &mut self,
        stream: TcpStream,
        mut outbox: mpsc::UnboundedReceiver<Outgoing>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), ConnectionError> {
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        let (mut reader, mut writer) = stream.split();
        let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut batch = Vec::with_capacity(OUTBOX_BATCH);
        let mut alarm = self.broker.memory.subscribe();
        let mut tick_period = Duration::from_secs(1);
        let mut tick = tokio::time::interval(tick_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = loop {
            // Heartbeats are checked twice per interval once negotiated; the handshake
            // timeout and the close deadline need only a coarse tick.
            let period = match self.heartbeat {
                0 => Duration::from_secs(1),
                hb => Duration::from_millis(hb as u64 * 500),
            };
            if period != tick_period {
                tick_period = period;
                tick = tokio::time::interval_at(Instant::now() + period, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            if self.phase == Phase::Done && self.out.is_empty() {
                break Ok(());
            }
            let backlogged = self.out.len() >= HIGH_WATER;
            let flow_blocked = self.flow_blocked();
            self.announce_flow(flow_blocked);
            let throttled = self.throttled();
            let reading = !backlogged && !flow_blocked && !throttled && self.phase != Phase::Done;
            if inbuf.capacity() - inbuf.len() < 4096 {
                inbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if self.phase == Phase::Running || self.phase == Phase::Open {
                        let e = Exception::new(crate::error::ReplyCode::ConnectionForced, "broker forced connection closure with reason 'shutdown'");
                        self.close_connection(e);
                    } else if !matches!(self.phase, Phase::Closing(_)) {
                        self.phase = Phase::Done;
                    }
                }
                written = writer.write_buf(&mut self.out), if !self.out.is_empty() => {
                    match written {
                        Ok(0) => break Err(ConnectionError::PeerClosed),
                        Ok(_) => self.last_write = Instant::now(),
                        Err(e) => break Err(e.into()),
                    }
                }
                read = reader.read_buf(&mut inbuf), if reading => {
                    match read {
                        Ok(0) if matches!(self.phase, Phase::CloseOkSent(_)) => break Ok(()),
                        Ok(0) => break Err(ConnectionError::PeerClosed),
                        Ok(_) => {
                            self.last_read = Instant::now();
                            if let Err(e) = self.process_input(&mut inbuf) {
                                break Err(e);
                            }
                            if matches!(self.phase, Phase::CloseOkSent(_)) {
                                // The connection is over for the client: give back what it
                                // held now, not when it gets round to closing the socket.
                                self.release(&mut outbox);
                            }
                        }
                        Err(e) => break Err(e.into()),
                    }
                }
                n = outbox.recv_many(&mut batch, OUTBOX_BATCH), if !backlogged && self.vhost.is_some() => {
                    if n > 0 {
                        self.process_outbox(&mut batch);
                    }
                }
                _ = alarm.changed() => {}
                _ = tokio::time::sleep(THROTTLE_RECHECK), if throttled => {}
                _ = tick.tick() => {
                    if let Err(e) = self.on_tick() {
                        break Err(e);
                    }
                }
            }
        };
        self.release(&mut outbox);
        if self.reset || matches!(result, Err(ConnectionError::UnknownMethod)) {
            let _ = stream.set_zero_linger();
        } else if result.is_ok() {
            let _ = writer.shutdown().await;
        }
        result
    }

    /// An alarm (memory or disk) is on and this connection publishes: stop reading it.
    fn flow_blocked(&self) -> bool {
        self.publisher && self.phase == Phase::Running && self.broker.memory.alarmed()
    }

    /// The disk is behind the persistent messages published: read this publisher only
    /// once the store's backlog is back under the mark (RabbitMQ's silent "flow" state,
    /// not an alarm: no connection.blocked).
    fn throttled(&self) -> bool {
        self.publisher
            && self.phase == Phase::Running
            && self.broker.store_backlog() > STORE_BACKLOG_HIGH
    }

    /// Tells clients that asked (capability connection.blocked) when they are blocked
    /// and unblocked, as RabbitMQ does.
    fn announce_flow(&mut self, blocked: bool) {
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

    fn on_tick(&mut self) -> Result<(), ConnectionError> {
        let now = Instant::now();
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
                if self.flow_blocked() || self.throttled() {
                    self.last_read = now;
                }
                if now - self.last_read > interval * 2 {
                    return Err(ConnectionError::MissedHeartbeats);
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

    /// Parses and handles every complete frame in the read buffer.
    fn process_input(&mut self, inbuf: &mut BytesMut) -> Result<(), ConnectionError> {
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
            codec::encode_method(&mut self.out, 0, &handshake::start());
            self.phase = Phase::StartOk;
        }
        while !matches!(self.phase, Phase::Done) {
            let frame = match codec::decode(inbuf, self.frame_max) {
                Ok(Some(frame)) => frame,
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
            let channel = frame_channel(&frame);
            if let Err(e) = self.handle_frame(frame) {
                self.fail(channel, e);
            }
        }
        self.flush_channels();
        Ok(())
    }

    fn refuse_header(&mut self) -> Result<(), ConnectionError> {
        self.out.extend_from_slice(PROTOCOL_HEADER);
        self.phase = Phase::Done;
        debug!("refused protocol header");
        Ok(())
    }

    /// Routes an exception to channel.close (soft, on a channel) or connection.close.
    fn fail(&mut self, channel: u16, e: Exception) {
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

    fn close_connection(&mut self, e: Exception) {
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

    /// Runs `f` on one channel with a context borrowed from the connection's other fields.
    fn with_channel<R>(
        &mut self,
        id: u16,
        f: impl FnOnce(&mut Channel, &mut Ctx) -> R,
    ) -> Option<R> {
        let (channels, mut ctx) = self.split()?;
        let ch = channels.get_mut(&id)?;
        Some(f(ch, &mut ctx))
    }

    /// The channels and, beside them, a context borrowed from the connection's other
    /// fields (none before the vhost is open).
    fn split(&mut self) -> Option<(&mut IdMap<Channel>, Ctx<'_>)> {
        let vhost = self.vhost.as_ref()?;
        let ctx = Ctx {
            connection: self.id,
            user: &self.user,
            vhost,
            out: &mut self.out,
            frame_max: self.frame_max,
            handle: &self.handle,
            exclusive_queues: &mut self.exclusive_queues,
        };
        Some((&mut self.channels, ctx))
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
            Phase::StartOk | Phase::TuneOk | Phase::Open => return self.handshake_frame(frame),
        }
        match frame {
            Frame::Heartbeat { .. } => Ok(()),
            Frame::Method { channel: 0, method } => self.connection_method(method),
            Frame::Method { channel, method } => {
                self.publisher |= matches!(method, Method::Publish(_));
                self.channel_method(channel, method)
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

    /// A content frame for a channel: discarded while it closes, an error if it is unknown.
    fn open_channel_frame(
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

    /// Drops the client after RabbitMQ's delay, with no close method.
    fn silent_close(&mut self) {
        self.reset = true;
        self.phase = Phase::Closing(Instant::now() + SILENT_CLOSE_DELAY);
    }

    fn send_close_ok(&mut self) {
        codec::encode_method(
            &mut self.out,
            0,
            &AMQPClass::Connection(amqp_connection::AMQPMethod::CloseOk(
                amqp_connection::CloseOk {},
            )),
        );
        self.phase = Phase::CloseOkSent(Instant::now() + CLOSE_OK_LINGER);
    }

    fn connection_method(&mut self, method: Method) -> Result<(), Exception> {
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

    fn channel_method(&mut self, channel: u16, method: Method) -> Result<(), Exception> {
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

    fn send_channel_close_ok(&mut self, channel: u16) {
        codec::encode_method(
            &mut self.out,
            channel,
            &AMQPClass::Channel(amqp_channel::AMQPMethod::CloseOk(amqp_channel::CloseOk {})),
        );
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
