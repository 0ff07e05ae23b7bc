//! The two roles every scenario is made of: a pipelined publisher and a counting consumer,
//! plus an admin connection for declaring and deleting the scenario's queues.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, confirm, exchange, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, Notify};

use crate::amqp::*;

/// Queue arguments given on the command line (`--queue-type`, `--queue-arg KEY=VALUE`):
/// every queue.declare a scenario sends carries them.
#[derive(Clone, Debug, Default)]
pub struct QueueArgs {
    /// (key, value) in command-line order; a later key replaces an earlier one.
    pub entries: Vec<(String, QueueArgValue)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum QueueArgValue {
    /// A long string (`S`), e.g. `x-queue-type=quorum`.
    Str(String),
    /// A signed 64-bit integer (`l`), e.g. `x-max-length=1000` (values that parse as one).
    Int(i64),
}

impl QueueArgs {
    /// Parses `KEY=VALUE`: a value that parses as an integer is sent as one (RabbitMQ wants
    /// `x-max-length` and friends as numbers), anything else as a long string.
    pub fn push(&mut self, arg: &str) -> Result<(), String> {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("--queue-arg {arg:?}: expected KEY=VALUE"))?;
        if k.is_empty() || k.len() > 255 {
            return Err(format!("--queue-arg {arg:?}: the key must be 1-255 bytes"));
        }
        let v = match v.parse::<i64>() {
            Ok(n) => QueueArgValue::Int(n),
            Err(_) => QueueArgValue::Str(v.to_string()),
        };
        self.set(k, v);
        Ok(())
    }

    /// Sets `key` (replacing an earlier value).
    pub fn set(&mut self, key: &str, v: QueueArgValue) {
        self.entries.retain(|(k, _)| k != key);
        self.entries.push((key.to_string(), v));
    }

    /// `x-queue-type`, when given.
    pub fn queue_type(&self) -> Option<&str> {
        self.entries.iter().find_map(|(k, v)| match v {
            QueueArgValue::Str(s) if k == "x-queue-type" => Some(s.as_str()),
            _ => None,
        })
    }

    /// Quorum queues and streams must be durable (RabbitMQ refuses a transient one with
    /// 406), so their declares are durable whatever the scenario asks.
    pub fn forces_durable(&self) -> bool {
        matches!(self.queue_type(), Some("quorum") | Some("stream"))
    }

    pub fn table(&self) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in &self.entries {
            let v = match v {
                QueueArgValue::Str(s) => AMQPValue::LongString(s.as_str().into()),
                QueueArgValue::Int(n) => AMQPValue::LongLongInt(*n),
            };
            t.insert(k.as_str().into(), v);
        }
        t
    }
}

/// Declares and deletes queues/exchanges on its own connection.
pub struct Admin {
    conn: Conn,
    args: QueueArgs,
}

impl Admin {
    /// An admin with no queue arguments (warren-faults' entry; warren-bench's scenarios
    /// go through `open_with`).
    #[allow(dead_code)]
    pub async fn open(t: &Target) -> Res<Admin> {
        Admin::open_with(t, QueueArgs::default()).await
    }

    /// An admin whose (non-passive) queue declares carry `args`.
    pub async fn open_with(t: &Target, args: QueueArgs) -> Res<Admin> {
        let mut conn = Conn::open(t, 64 * 1024).await?;
        conn.open_channel(1).await?;
        Ok(Admin { conn, args })
    }

    pub async fn declare_queue(&mut self, name: &str, durable: bool) -> Res<()> {
        self.queue_declare(name, durable, false).await.map(|_| ())
    }

    /// Declare (not passive) and return the messages it already holds.
    pub async fn declare_queue_count(&mut self, name: &str, durable: bool) -> Res<u32> {
        self.queue_declare(name, durable, false).await
    }

    /// Messages ready in `name` (passive declare).
    pub async fn queue_count(&mut self, name: &str) -> Res<u32> {
        self.queue_declare(name, false, true).await
    }

    async fn queue_declare(&mut self, name: &str, durable: bool, passive: bool) -> Res<u32> {
        // A passive declare only checks the queue exists: no arguments, as clients send it.
        let (durable, arguments) = if passive {
            (durable, FieldTable::default())
        } else {
            (durable || self.args.forces_durable(), self.args.table())
        };
        let m = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: name.into(),
            passive,
            durable,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments,
        }));
        match self.conn.rpc(1, m).await? {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Ok(ok.message_count),
            m => Err(err(format!("expected queue.declare-ok, got {m:?}"))),
        }
    }

    pub async fn declare_exchange(&mut self, name: &str, kind: &str) -> Res<()> {
        let m = AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: name.into(),
            kind: kind.into(),
            passive: false,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: FieldTable::default(),
        }));
        match self.conn.rpc(1, m).await? {
            AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_)) => Ok(()),
            m => Err(err(format!("expected exchange.declare-ok, got {m:?}"))),
        }
    }

    pub async fn bind(&mut self, q: &str, x: &str, key: &str) -> Res<()> {
        let m = AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: q.into(),
            exchange: x.into(),
            routing_key: key.into(),
            nowait: false,
            arguments: FieldTable::default(),
        }));
        match self.conn.rpc(1, m).await? {
            AMQPClass::Queue(queue::AMQPMethod::BindOk(_)) => Ok(()),
            m => Err(err(format!("expected queue.bind-ok, got {m:?}"))),
        }
    }

    pub async fn delete_queue(&mut self, name: &str) -> Res<()> {
        let m = AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: name.into(),
            if_unused: false,
            if_empty: false,
            nowait: false,
        }));
        match self.conn.rpc(1, m).await? {
            AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)) => Ok(()),
            m => Err(err(format!("expected queue.delete-ok, got {m:?}"))),
        }
    }

    pub async fn delete_exchange(&mut self, name: &str) -> Res<()> {
        let m = AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: name.into(),
            if_unused: false,
            nowait: false,
        }));
        match self.conn.rpc(1, m).await? {
            AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(_)) => Ok(()),
            m => Err(err(format!("expected exchange.delete-ok, got {m:?}"))),
        }
    }

    pub async fn close(self) {
        self.conn.close().await
    }
}

pub struct PubSpec {
    pub exchange: String,
    pub routing_key: String,
    pub size: usize,
    pub persistent: bool,
    pub max_msgs: u64,
    pub seconds: f64,
    /// Publisher confirms with at most this many unconfirmed messages.
    pub window: Option<u64>,
    /// Fixed rate in messages per second (unpaced when None).
    pub rate: Option<f64>,
    /// Write a timestamp (ns since `epoch`) into the first 8 body bytes.
    pub stamp: Option<Instant>,
    /// After publishing, a passive declare of this queue marks the point where the broker has
    /// taken everything in (and reports how many messages it holds).
    pub sync_queue: Option<String>,
    /// Set to the number of messages sent once publishing stops (consumers wait for it).
    pub done: Option<Arc<AtomicU64>>,
    /// Number the messages: the first 8 body bytes carry this value plus the message's index
    /// (big endian), so a consumer with `check_seq` can tell loss and reordering apart.
    pub seq_from: Option<u64>,
    /// With a window: measure publish-to-confirm latency (`PubOut::confirm_lat`).
    pub confirm_latency: bool,
}

pub struct PubOut {
    pub sent: u64,
    pub start: Instant,
    /// Start until the broker acknowledged having processed everything (sync reply / last confirm).
    pub secs: f64,
    pub nacked: u64,
    pub queued: Option<u32>,
    /// (microseconds from the write of a batch of publishes to the confirm of its last
    /// message, messages in the batch), with `confirm_latency`.
    pub confirm_lat: Vec<(u64, u64)>,
}

struct Confirms {
    confirmed: AtomicU64,
    nacked: AtomicU64,
    dead: AtomicBool,
    notify: Notify,
    /// With `confirm_latency`: (last sequence number of a written batch, when, how many),
    /// oldest first; the reader turns them into samples once confirmed.
    sent_at: Option<std::sync::Mutex<std::collections::VecDeque<(u64, Instant, u64)>>>,
    samples: std::sync::Mutex<Vec<(u64, u64)>>,
}

impl Confirms {
    /// Every sequence number up to `floor` is confirmed: batches sent up to there are
    /// samples now.
    fn confirmed_up_to(&self, floor: u64) {
        let Some(sent) = &self.sent_at else { return };
        let now = Instant::now();
        let mut sent = sent.lock().unwrap_or_else(|e| e.into_inner());
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(last, at, n)) = sent.front() {
            if last > floor {
                break;
            }
            sent.pop_front();
            samples.push((now.saturating_duration_since(at).as_micros() as u64, n));
        }
    }
}

/// Reads everything the broker sends a publisher: confirms are counted, other methods are
/// forwarded (replies to the final synchronous call), a close is fatal.
async fn publisher_reader(
    mut rd: FrameReader,
    sh: Arc<Confirms>,
    tx: mpsc::UnboundedSender<Result<AMQPClass, String>>,
) {
    let mut floor = 0u64;
    let mut singles = BTreeSet::new();
    loop {
        let f = match rd.next().await {
            Ok(f) => f,
            Err(e) => {
                sh.dead.store(true, Relaxed);
                sh.notify.notify_one();
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        if f.typ != FRAME_METHOD {
            continue;
        }
        match f.class_method() {
            (60, cm @ (80 | 120)) if f.payload.len() >= 13 => {
                let tag = u64::from_be_bytes(f.payload[4..12].try_into().unwrap());
                let multiple = f.payload[12] & 1 != 0;
                let newly = if multiple {
                    if tag > floor {
                        let removed = singles.range(..=tag).count() as u64;
                        singles = singles.split_off(&(tag + 1));
                        let n = tag - floor - removed;
                        floor = tag;
                        n
                    } else {
                        0
                    }
                } else if tag > floor && singles.insert(tag) {
                    1
                } else {
                    0
                };
                while singles.remove(&(floor + 1)) {
                    floor += 1;
                }
                sh.confirmed_up_to(floor);
                if cm == 120 {
                    sh.nacked.fetch_add(newly, Relaxed);
                }
                sh.confirmed.fetch_add(newly, Relaxed);
                sh.notify.notify_one();
            }
            _ => {
                let class = match parse_full(f.full) {
                    Ok(amq_protocol::frame::AMQPFrame::Method(_, c)) => c,
                    Ok(_) => continue,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        continue;
                    }
                };
                if let Some(e) = close_error(&class) {
                    sh.dead.store(true, Relaxed);
                    sh.notify.notify_one();
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
                let _ = tx.send(Ok(class));
            }
        }
    }
}

async fn reply(
    rx: &mut mpsc::UnboundedReceiver<Result<AMQPClass, String>>,
    what: &str,
) -> Res<AMQPClass> {
    match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
        Ok(Some(Ok(c))) => Ok(c),
        Ok(Some(Err(e))) => Err(err(e)),
        Ok(None) => Err(err(format!("connection lost waiting for {what}"))),
        Err(_) => Err(err(format!("no {what} within 60 s"))),
    }
}

pub async fn run_publisher(t: &Target, spec: PubSpec) -> Res<PubOut> {
    let mut c = Conn::open(t, 256 * 1024).await?;
    c.open_channel(1).await?;
    if spec.window.is_some() {
        match c
            .rpc(
                1,
                AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
                    nowait: false,
                })),
            )
            .await?
        {
            AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)) => {}
            m => return Err(err(format!("expected confirm.select-ok, got {m:?}"))),
        }
    }
    let (one, body_off) = publish_message(
        1,
        &spec.exchange,
        &spec.routing_key,
        spec.size,
        spec.persistent,
        c.frame_max,
    );
    let mut batch = Batch::new(one, body_off, 512 * 1024);
    let stamp = spec.stamp.filter(|_| spec.size >= 8);
    let seq_from = spec.seq_from.filter(|_| spec.size >= 8);
    let Conn { rd, mut wr, .. } = c;
    let sh = Arc::new(Confirms {
        confirmed: AtomicU64::new(0),
        nacked: AtomicU64::new(0),
        dead: AtomicBool::new(false),
        notify: Notify::new(),
        sent_at: (spec.confirm_latency && spec.window.is_some())
            .then(|| std::sync::Mutex::new(std::collections::VecDeque::new())),
        samples: std::sync::Mutex::new(Vec::new()),
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(publisher_reader(rd, sh.clone(), tx));

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(spec.seconds);
    let mut sent = 0u64;
    'outer: while sent < spec.max_msgs {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if sh.dead.load(Relaxed) {
            break;
        }
        let mut n = (batch.count as u64).min(spec.max_msgs - sent);
        if let Some(w) = spec.window {
            loop {
                let inflight = sent - sh.confirmed.load(Relaxed);
                if inflight < w {
                    n = n.min(w - inflight);
                    break;
                }
                if sh.dead.load(Relaxed) {
                    break 'outer;
                }
                if tokio::time::timeout_at(deadline.into(), sh.notify.notified())
                    .await
                    .is_err()
                {
                    break 'outer;
                }
            }
        }
        if let Some(rate) = spec.rate {
            let due = ((now - start).as_secs_f64() * rate) as u64 + 1;
            if due <= sent {
                let next = start + Duration::from_secs_f64(sent as f64 / rate);
                tokio::time::sleep_until(next.min(deadline).into()).await;
                continue;
            }
            n = n.min(due - sent);
        }
        if let Some(epoch) = stamp {
            let ts = epoch.elapsed().as_nanos() as u64;
            for i in 0..n as usize {
                batch.stamp(i, ts);
            }
        } else if let Some(base) = seq_from {
            for i in 0..n {
                batch.stamp(i as usize, base + sent + i);
            }
        }
        if let Some(q) = &sh.sent_at {
            let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
            q.push_back((sent + n, Instant::now(), n));
        }
        wr.write_all(batch.bytes(n as usize)).await?;
        sent += n;
    }
    if let Some(d) = &spec.done {
        d.store(sent, Relaxed);
    }
    if spec.window.is_some() {
        let until = Instant::now() + Duration::from_secs(60);
        while sh.confirmed.load(Relaxed) < sent && !sh.dead.load(Relaxed) {
            if tokio::time::timeout_at(until.into(), sh.notify.notified())
                .await
                .is_err()
            {
                return Err(err(format!(
                    "only {} of {sent} confirms within 60 s",
                    sh.confirmed.load(Relaxed)
                )));
            }
        }
    }
    // Synchronous round trip: every publish before it has been taken in by the broker.
    let mut out = Vec::new();
    let queued = if let Some(q) = &spec.sync_queue {
        encode(
            &method(
                1,
                AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
                    queue: q.as_str().into(),
                    passive: true,
                    durable: false,
                    exclusive: false,
                    auto_delete: false,
                    nowait: false,
                    arguments: FieldTable::default(),
                })),
            ),
            &mut out,
        );
        wr.write_all(&out).await?;
        match reply(&mut rx, "queue.declare-ok").await? {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => Some(ok.message_count),
            m => return Err(err(format!("expected queue.declare-ok, got {m:?}"))),
        }
    } else {
        encode(
            &method(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count: 0,
                    global: false,
                })),
            ),
            &mut out,
        );
        wr.write_all(&out).await?;
        reply(&mut rx, "basic.qos-ok").await?;
        None
    };
    let secs = start.elapsed().as_secs_f64();
    let nacked = sh.nacked.load(Relaxed);
    // close
    out.clear();
    encode(
        &method(
            0,
            AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::Close(
                amq_protocol::protocol::connection::Close {
                    reply_code: 200,
                    reply_text: "bye".into(),
                    class_id: 0,
                    method_id: 0,
                },
            )),
        ),
        &mut out,
    );
    let _ = wr.write_all(&out).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
    reader.abort();
    let confirm_lat = std::mem::take(&mut *sh.samples.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(PubOut {
        sent,
        start,
        secs,
        nacked,
        queued,
        confirm_lat,
    })
}

pub struct ConsSpec {
    pub queue: String,
    pub no_ack: bool,
    pub prefetch: u16,
    pub ack_every: u64,
    /// Record latency from the timestamp in the body (ns since this epoch).
    pub latency: Option<Instant>,
    /// Check the sequence numbers written by a publisher with `seq_from`: each body's number
    /// must be the previous one plus one.
    pub check_seq: bool,
}

impl ConsSpec {
    /// A no-ack consumer on `queue` without prefetch, latency or sequence checks.
    pub fn no_ack(queue: &str) -> ConsSpec {
        ConsSpec {
            queue: queue.into(),
            no_ack: true,
            prefetch: 0,
            ack_every: 1,
            latency: None,
            check_seq: false,
        }
    }
}

pub struct ConsOut {
    pub received: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
    pub lat_ns: Vec<u64>,
    pub cancelled: bool,
    /// With `check_seq`: first and last sequence number seen, how many deliveries did not
    /// follow their predecessor, and the first such (expected, got).
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub seq_breaks: u64,
    pub first_break: Option<(u64, u64)>,
    /// Deliveries flagged redelivered.
    pub redelivered: u64,
}

/// Open a connection and subscribe; returns once consume-ok arrived.
pub async fn start_consumer(t: &Target, spec: &ConsSpec) -> Res<Conn> {
    let mut c = Conn::open(t, 1024 * 1024).await?;
    c.open_channel(1).await?;
    if !spec.no_ack {
        match c
            .rpc(
                1,
                AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                    prefetch_count: spec.prefetch,
                    global: false,
                })),
            )
            .await?
        {
            AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => {}
            m => return Err(err(format!("expected basic.qos-ok, got {m:?}"))),
        }
    }
    let m = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
        queue: spec.queue.as_str().into(),
        consumer_tag: "".into(),
        no_local: false,
        no_ack: spec.no_ack,
        exclusive: false,
        nowait: false,
        arguments: FieldTable::default(),
    }));
    match c.rpc(1, m).await? {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => Ok(c),
        m => Err(err(format!("expected basic.consume-ok, got {m:?}"))),
    }
}

/// Count deliveries until `target` (set by the publisher when it stops) is reached or the hard
/// deadline passes. Acks (multiple) every `ack_every` deliveries in manual-ack mode.
pub async fn consume(
    mut c: Conn,
    spec: ConsSpec,
    target: Arc<AtomicU64>,
    hard_deadline: Instant,
) -> Res<ConsOut> {
    let mut o = ConsOut {
        received: 0,
        first: None,
        last: None,
        lat_ns: Vec::new(),
        cancelled: false,
        first_seq: None,
        last_seq: None,
        seq_breaks: 0,
        first_break: None,
        redelivered: 0,
    };
    let mut ackbuf = Vec::with_capacity(32);
    let mut tag = 0u64;
    let mut remaining = 0u64;
    let mut first_body = false;
    let mut unacked = 0u64;
    loop {
        if o.received >= target.load(Relaxed) {
            break;
        }
        let f = if c.rd.has_frame() {
            c.rd.next().await?
        } else {
            match tokio::time::timeout(Duration::from_millis(50), c.rd.next()).await {
                Ok(r) => r?,
                Err(_) => {
                    if Instant::now() >= hard_deadline {
                        break;
                    }
                    continue;
                }
            }
        };
        let mut complete = false;
        match f.typ {
            FRAME_METHOD => match f.class_method() {
                (60, 60) => {
                    tag = deliver_tag(f.payload).ok_or_else(|| err("short basic.deliver"))?;
                    if deliver_redelivered(f.payload) {
                        o.redelivered += 1;
                    }
                }
                (60, 30) => {
                    o.cancelled = true;
                    break;
                }
                _ => {
                    if let amq_protocol::frame::AMQPFrame::Method(_, class) = parse_full(f.full)? {
                        if let Some(e) = close_error(&class) {
                            return Err(e);
                        }
                    }
                }
            },
            FRAME_HEADER => {
                remaining =
                    header_body_size(f.payload).ok_or_else(|| err("short content header"))?;
                first_body = true;
                complete = remaining == 0;
            }
            FRAME_BODY => {
                if first_body {
                    first_body = false;
                    if let Some(epoch) = spec.latency {
                        if f.payload.len() >= 8 {
                            let ts = u64::from_be_bytes(f.payload[..8].try_into().unwrap());
                            let now = epoch.elapsed().as_nanos() as u64;
                            o.lat_ns.push(now.saturating_sub(ts));
                        }
                    } else if spec.check_seq && f.payload.len() >= 8 {
                        let seq = u64::from_be_bytes(f.payload[..8].try_into().unwrap());
                        match o.last_seq {
                            None => o.first_seq = Some(seq),
                            Some(prev) if seq != prev.wrapping_add(1) => {
                                o.seq_breaks += 1;
                                o.first_break.get_or_insert((prev.wrapping_add(1), seq));
                            }
                            Some(_) => {}
                        }
                        o.last_seq = Some(seq);
                    }
                }
                remaining = remaining.saturating_sub(f.payload.len() as u64);
                complete = remaining == 0;
            }
            _ => {}
        }
        if complete {
            let now = Instant::now();
            if o.first.is_none() {
                o.first = Some(now);
            }
            o.last = Some(now);
            o.received += 1;
            if now >= hard_deadline {
                break;
            }
            if !spec.no_ack {
                unacked += 1;
                if unacked >= spec.ack_every {
                    unacked = 0;
                    ackbuf.clear();
                    ack_frame(1, tag, &mut ackbuf);
                    c.wr.write_all(&ackbuf).await?;
                }
            }
        }
    }
    if !spec.no_ack && unacked > 0 {
        ackbuf.clear();
        ack_frame(1, tag, &mut ackbuf);
        let _ = c.wr.write_all(&ackbuf).await;
    }
    c.close().await;
    Ok(o)
}
