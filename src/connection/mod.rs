//! The connection task: one per client socket. It owns both socket halves, the read and
//! write buffers, the channels, the outbox and the heartbeat timer.
//!
//! Spawned by the server's accept loop. One `select!` serves the socket, the outbox
//! (deliveries and cancels from queues), writes, heartbeats and shutdown; every arm is
//! cancel-safe. Reading and draining the outbox pause while the write buffer is above the
//! high-water mark: that is the backpressure. The task never blocks and never holds a
//! lock across an `.await`; on every exit path it gives back what it holds, through a
//! drop guard (`Drop for Connection`), so also when the task panics.
//!
//! This file holds the task's state and its loop (`serve`, `run`, `pump`); beside it:
//! `input` (frames in, to where they belong), `control` (channel 0 once open, closing,
//! the tick), `handshake`, `channels`, `outbox`, `flow`, `events`.

mod channels;
mod control;
mod events;
mod flow;
mod handshake;
mod heartbeat;
mod input;
mod mechanism;
mod name;
pub mod out;
mod outbox;
mod registry;
pub mod server_properties;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
mod transport;

pub use mechanism::Mechanism;
pub use name::ConnectionName;
pub use transport::Accepted;
use transport::{Stream, TlsPeer};

use crate::access::sessions::UserSlot;
use crate::broker::consumer::{ConnectionHandle, Outgoing};
use crate::broker::memory::ClientMemory;
use crate::broker::queue::Queue;
use crate::broker::vhost::{CloseListener, CloseSignal, ConnectionSlot, VHost};
use crate::broker::Broker;
use crate::channel::{Channel, Ctx};
use crate::error::{ConnectionError, Exception};
use crate::hash::{IdMap, NameMap};
use crate::stats::registry::Bytes as StatBytes;
use crate::stats::Registration;
use bytes::BytesMut;
use futures::FutureExt;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, Instrument};

/// Above this many unwritten bytes the connection stops reading and stops taking
/// deliveries until the socket drains.
const HIGH_WATER: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer block taken when the last one cannot be reused because a large body
/// received in it is still alive (a message body is a slice of the block it arrived in,
/// `Message::shared_body`). Larger than `READ_CHUNK` so that fewer frames straddle two
/// blocks (the part of a frame already read is copied to the new block, up to one frame
/// per block) and one read takes more; not so large that one waiting message pins much.
pub const READ_BLOCK: usize = 256 * 1024;
/// The write buffer a connection starts with.
const OUT_INITIAL: usize = 16 * 1024;
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
    name: Arc<ConnectionName>,
    broker: Arc<Broker>,
    phase: Phase,
    vhost: Option<Arc<VHost>>,
    /// This connection's place in its vhost's registry (and max-connections).
    vhost_slot: Option<ConnectionSlot>,
    /// How the vhost makes this connection close (its deletion); registered with the
    /// vhost at connection.open.
    close_signal: Arc<CloseSignal>,
    /// This connection and its channels among its user's (max-connections,
    /// max-channels; closing them when the user is deleted).
    user_slot: Option<UserSlot>,
    user: String,
    /// Set on a TLS connection: the client's certificate, for SASL EXTERNAL.
    tls: Option<TlsPeer>,
    consumer_cancel_notify: bool,
    /// The client asked to hear connection.blocked / unblocked.
    blocked_notify: bool,
    /// This connection has published: the memory alarm stops reading from it.
    publisher: bool,
    /// This connection created a record (queue, exchange, binding) while memory was
    /// crowded: it is not read until memory is no longer crowded (see `memory`).
    creator_held: bool,
    /// We told the client it is blocked and owe it an unblocked.
    blocked_sent: bool,
    channel_max: u16,
    frame_max: u32,
    heartbeat: u16,
    channels: IdMap<Channel>,
    /// End with a TCP reset instead of an orderly shutdown, as RabbitMQ does after a
    /// refusal it does not explain.
    reset: bool,
    /// The read buffer may hold frames not handled yet: the write buffer was full.
    input_pending: bool,
    /// Taken from the outbox, not handled yet: the write buffer was full.
    pending: VecDeque<Outgoing>,
    out: out::Out,
    /// The most the write buffer held since it was last replaced: its allocation, as far
    /// as `BytesMut` lets us see it.
    out_allocated: usize,
    /// This connection's buffers and unacked tables in the broker's accounting.
    client_memory: ClientMemory,
    /// The channels' unacked tables, in bytes, as last measured (on the tick).
    unacked_bytes: usize,
    handle: ConnectionHandle,
    /// What other tasks send this connection (the receiving end of `handle`).
    outbox: mpsc::UnboundedReceiver<Outgoing>,
    exclusive_queues: NameMap<Arc<Queue>>,
    /// Wire bytes of the frames channels hold behind a pending tx.commit; past
    /// `HIGH_WATER` the socket is not read until commits are answered.
    held_bytes: usize,
    /// When it was accepted and when it last wrote, on the broker clock's `now_ms`
    /// (the handshake timeout and heartbeats follow that clock, manual or real).
    started: u64,
    last_write: u64,
    /// Whether the client went silent for too long (heartbeats).
    monitor: heartbeat::Monitor,
    /// `release` ran: what the connection held is given back.
    released: bool,
    /// This connection in the management API's registry, from connection.open.
    registration: Option<Registration>,
    /// Our end of the socket (the connection's name, "peer -> local").
    local: Option<SocketAddr>,
    /// What start-ok said, kept for the registry.
    client_properties: serde_json::Value,
    auth_mechanism: String,
    /// start-ok's client properties, kept only with the event exchange on.
    client_table: amq_protocol::types::FieldTable,
    /// What connection.created told, with the event exchange on (see `events`).
    event_facts: Option<Box<crate::broker::events::ConnectionFacts>>,
}

/// Serves one client until it leaves, fails, or the broker shuts down; on the TLS
/// listener, after the TLS handshake. `name` is the accept loop's handle on the
/// connection's identity, for logging a panic.
pub async fn serve(
    accepted: Accepted,
    name: Arc<ConnectionName>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (id, peer) = (name.id, name.peer);
    let span = tracing::info_span!("connection", id, %peer, user = tracing::field::Empty, vhost = tracing::field::Empty);
    async move {
        let (stream, tls) = match accepted {
            Accepted::Plain(tcp) => (Stream::Plain(tcp), None),
            Accepted::Tls(tcp, acceptor) => {
                match transport::tls_handshake(tcp, acceptor, &mut shutdown).await {
                    Ok((stream, peer)) => (stream, Some(peer)),
                    Err(e) => {
                        info!(error = %e, "TLS handshake failed; socket closed");
                        return;
                    }
                }
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (close_signal, close_requests) = CloseSignal::new();
        let now = broker.clock.now_ms();
        let client_memory = ClientMemory::new(broker.memory.clone());
        let mut conn = Connection {
            id,
            peer,
            name,
            broker,
            phase: Phase::ProtocolHeader,
            vhost: None,
            vhost_slot: None,
            close_signal,
            user_slot: None,
            user: String::new(),
            tls,
            consumer_cancel_notify: false,
            blocked_notify: false,
            publisher: false,
            creator_held: false,
            blocked_sent: false,
            channel_max: handshake::CHANNEL_MAX,
            // Until tune-ok, frames are capped at the protocol's minimum frame size, as
            // RabbitMQ does: a client that has not logged in cannot make us buffer more.
            frame_max: handshake::FRAME_MIN,
            heartbeat: 0,
            channels: IdMap::default(),
            reset: false,
            input_pending: false,
            pending: VecDeque::new(),
            out: out::Out::with_capacity(OUT_INITIAL),
            out_allocated: 0,
            client_memory,
            unacked_bytes: 0,
            handle: ConnectionHandle::new(id, tx),
            outbox: rx,
            exclusive_queues: NameMap::default(),
            held_bytes: 0,
            started: now,
            last_write: now,
            monitor: Default::default(),
            released: false,
            registration: None,
            local: None,
            client_properties: serde_json::Value::Null,
            auth_mechanism: String::new(),
            client_table: Default::default(),
            event_facts: None,
        };
        debug!("accepted");
        match conn.run(stream, shutdown, close_requests).await {
            Ok(()) => debug!("closed"),
            Err(e) => info!(error = %e, "connection ended"),
        }
    }
    .instrument(span)
    .await
}

impl Connection {
    /// Serves the stream until the connection ends, then closes it: with a reset after
    /// a refusal RabbitMQ does not explain, with an orderly shutdown (TLS close_notify
    /// first) otherwise. Plain sockets are split into borrowed halves at no cost; a TLS
    /// stream, which cannot be, through tokio's split.
    async fn run(
        &mut self,
        stream: Stream,
        shutdown: watch::Receiver<bool>,
        close_requests: CloseListener,
    ) -> Result<(), ConnectionError> {
        match stream {
            Stream::Plain(mut tcp) => {
                let _ = tcp.set_nodelay(true);
                self.local = tcp.local_addr().ok().map(crate::listen::canonical);
                let (mut reader, mut writer) = tcp.split();
                let result = self
                    .pump(&mut reader, &mut writer, shutdown, close_requests, false)
                    .await;
                if self.ends_with_reset(&result) {
                    let _ = tcp.set_zero_linger();
                } else if result.is_ok() {
                    let _ = writer.shutdown().await;
                }
                result
            }
            Stream::Tls(tls) => {
                self.local = tls
                    .get_ref()
                    .0
                    .local_addr()
                    .ok()
                    .map(crate::listen::canonical);
                let (mut reader, mut writer) = tokio::io::split(*tls);
                let result = self
                    .pump(&mut reader, &mut writer, shutdown, close_requests, true)
                    .await;
                if self.ends_with_reset(&result) {
                    let _ = reader.unsplit(writer).get_ref().0.set_zero_linger();
                } else if result.is_ok() {
                    let _ = writer.shutdown().await;
                }
                result
            }
        }
    }

    /// Releases what the connection held; true when the socket should end with a reset.
    fn ends_with_reset(&mut self, result: &Result<(), ConnectionError>) -> bool {
        self.release();
        // RabbitMQ also resets the socket of a client that missed its heartbeats.
        self.reset
            || matches!(
                result,
                Err(ConnectionError::UnknownMethod | ConnectionError::MissedHeartbeats)
            )
    }

    /// The connection loop over a stream's two halves. With `flushes` (TLS), a write that
    /// emptied the write buffer is followed by a flush: rustls takes bytes it cannot send
    /// yet when the socket is full, and only a later write or a flush sends them.
    async fn pump<R, W>(
        &mut self,
        reader: &mut R,
        writer: &mut W,
        mut shutdown: watch::Receiver<bool>,
        mut close_requests: CloseListener,
        flushes: bool,
    ) -> Result<(), ConnectionError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut batch = Vec::with_capacity(OUTBOX_BATCH);
        let mut alarm = self.broker.memory.subscribe();
        let mut tick_period = Duration::from_secs(1);
        let mut tick = tokio::time::interval(tick_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unflushed = false;
        // A manual clock wakes the connection after each move (None: the real clock).
        let mut moves = self.broker.clock.moves();
        loop {
            // Heartbeats are checked twice per interval once negotiated; the handshake
            // timeout and the close deadline need only a coarse tick.
            let period = match self.heartbeat {
                0 => Duration::from_secs(1),
                hb => Duration::from_millis(hb as u64 * 500),
            };
            if self.heartbeat > 0 && !self.monitor.is_on() {
                // Heartbeats were just negotiated (tune-ok).
                let interval_ms = u64::from(self.heartbeat) * 1000;
                self.monitor.start(self.broker.clock.now_ms(), interval_ms);
            }
            if period != tick_period {
                tick_period = period;
                tick = tokio::time::interval_at(Instant::now() + period, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            if self.phase == Phase::Done && self.out.is_empty() && !unflushed {
                break Ok(());
            }
            self.count_memory(&inbuf);
            let backlogged = self.out.len() >= HIGH_WATER;
            let flow_blocked = self.flow_blocked();
            self.announce_flow(flow_blocked);
            let throttled = self.throttled();
            let reading = !backlogged
                && !flow_blocked
                && !throttled
                && !self.holding_too_much()
                && self.phase != Phase::Done;
            if !backlogged && !self.pending.is_empty() {
                // What the outbox gave before the write buffer filled up.
                self.process_outbox();
                continue;
            }
            if reading && self.input_pending {
                // Frames left in the read buffer when the write buffer filled up: handle
                // them now that it drained, without waiting for the socket.
                if let Err(e) = self.process_input(&mut inbuf) {
                    break Err(e);
                }
                self.after_input();
                continue;
            }
            // Reuse the block when nothing received in it is still held (the common case:
            // small bodies are copied out of it), else take a new, larger one.
            // A new block is always READ_BLOCK bytes: one size, which the allocator
            // learns to recycle rather than map and unmap each time.
            if inbuf.capacity() - inbuf.len() < 4096 && !inbuf.try_reclaim(4096) {
                inbuf.reserve(READ_BLOCK.saturating_sub(inbuf.len()).max(4096));
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
                // Never an error: `self.close_signal` keeps the sender alive.
                Ok(()) = close_requests.changed() => {
                    let reason = close_requests.borrow_and_update().clone();
                    if let (Some(e), Phase::Running) = (reason, &self.phase) {
                        self.close_connection(e);
                    }
                }
                written = write_or_flush(writer, &mut self.out), if !self.out.is_empty() || unflushed => {
                    if let Err(e) = self.wrote(written, flushes, &mut unflushed) {
                        break Err(e);
                    }
                }
                read = reader.read_buf(&mut inbuf), if reading => {
                    // Most TLS clients close the socket without a close_notify, which
                    // rustls reports as UnexpectedEof: the same end as a plain EOF.
                    let read = match read {
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                        other => other,
                    };
                    match read {
                        Ok(0) if matches!(self.phase, Phase::CloseOkSent(_)) => break Ok(()),
                        Ok(0) => break Err(ConnectionError::PeerClosed),
                        Ok(n) => {
                            if let Some(r) = &self.registration {
                                r.conn.count(StatBytes::RecvOct, n);
                            }
                            self.monitor.heard();
                            if let Err(e) = self.process_input(&mut inbuf) {
                                break Err(e);
                            }
                            self.after_input();
                            if let Err(e) = self.write_now(writer, flushes, &mut unflushed) {
                                break Err(e);
                            }
                        }
                        Err(e) => break Err(e.into()),
                    }
                }
                // Not once released: a closed outbox would answer at once, forever.
                n = self.outbox.recv_many(&mut batch, OUTBOX_BATCH), if !backlogged && self.vhost.is_some() && self.pending.is_empty() && !self.released => {
                    if n > 0 {
                        self.pending.extend(batch.drain(..));
                        self.process_outbox();
                        if let Err(e) = self.write_now(writer, flushes, &mut unflushed) {
                            break Err(e);
                        }
                    }
                }
                _ = alarm.changed() => {}
                // In an async block so the timer is made only when throttled: the arm's
                // expression is evaluated on every turn, also when disabled.
                _ = async { tokio::time::sleep(THROTTLE_RECHECK).await }, if throttled => {}
                _ = tick.tick() => {
                    if let Err(e) = self.on_tick() {
                        break Err(e);
                    }
                }
                Some(()) = clock_moved(&mut moves) => {
                    if let Err(e) = self.on_tick() {
                        break Err(e);
                    }
                }
            }
        }
    }

    /// Counts a write (or flush) that returned; an error ends the connection.
    fn wrote(
        &mut self,
        written: std::io::Result<Option<usize>>,
        flushes: bool,
        unflushed: &mut bool,
    ) -> Result<(), ConnectionError> {
        match written? {
            Some(0) => return Err(ConnectionError::PeerClosed),
            Some(n) => {
                if let Some(r) = &self.registration {
                    r.conn.count(StatBytes::SendOct, n);
                }
                self.last_write = self.broker.clock.now_ms();
                *unflushed = flushes;
            }
            None => *unflushed = false,
        }
        Ok(())
    }

    /// Writes what this wake-up produced at once when the socket takes it, instead of on
    /// the loop's next turn: a delivery leaves in the wake-up that made it, without the
    /// turn that rebuilds every arm of the select first (latency). When the socket is
    /// full nothing is written and the loop's write arm waits for it as before.
    fn write_now<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        flushes: bool,
        unflushed: &mut bool,
    ) -> Result<(), ConnectionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        match write_or_flush(writer, &mut self.out).now_or_never() {
            Some(written) => self.wrote(written, flushes, unflushed),
            None => Ok(()),
        }
    }

    fn after_input(&mut self) {
        if matches!(self.phase, Phase::CloseOkSent(_)) {
            // The connection is over for the client: give back what it held now, not
            // when it gets round to closing the socket.
            self.release();
        }
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
            max_message_size: self.broker.max_message_size,
            permissions: self.broker.permissions(),
            handle: &self.handle,
            exclusive_queues: &mut self.exclusive_queues,
        };
        Some((&mut self.channels, ctx))
    }
}

/// Writes what the buffer holds (Some(bytes written)), or flushes when it is empty (None).
async fn write_or_flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut out::Out,
) -> std::io::Result<Option<usize>> {
    if out.is_empty() {
        writer.flush().await.map(|()| None)
    } else {
        out.write_to(writer).await.map(Some)
    }
}

/// The next move of a manual clock (never, on the real clock). Cancel-safe.
async fn clock_moved(moves: &mut Option<watch::Receiver<u64>>) -> Option<()> {
    match moves {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}
