//! One hostile client beside a well-behaved one. The well-behaved client publishes small
//! messages with confirms to its own queue (as fast as it can, or at `good_rate`) and
//! consumes them (no-ack); its delivery rate is sampled every half second, before the
//! hostile client starts and while it runs, as is the broker's resident memory. Passes when the median rate during the attack keeps
//! `min_ratio` of the median before, the broker's peak RSS stays under `rss_limit_mb`,
//! and the broker is still up and takes a new connection at the end.
//!
//! The hostile clients (`--kind`):
//! - `never-reading-noack`, `never-reading-prefetch0`: a consumer (no-ack, or manual ack
//!   with prefetch 0) on a queue pre-filled with `backlog` messages that never reads its
//!   socket;
//! - `endless-body`: a publisher announcing a body of 2^62 bytes and sending body frames
//!   as fast as it can;
//! - `channels-queues`: opens `channels` channels, then declares queues round-robin on
//!   them (pipelined, nowait) for as long as it runs;
//! - `slowloris`: `sockets` connections sending the protocol header and then a valid
//!   start-ok one byte every `drip_ms`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, queue, AMQPClass, BasicProperties};
use amq_protocol::types::FieldTable;
use clap::{Args, ValueEnum};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::amqp::*;
use crate::broker::{status_kb, BrokerCmd};
use crate::client::Admin;
use crate::publisher::{due, Books, Publisher};
use crate::wire::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    NeverReadingNoack,
    NeverReadingPrefetch0,
    EndlessBody,
    ChannelsQueues,
    Slowloris,
}

#[derive(Args, Debug)]
pub struct Opts {
    #[arg(long, value_enum)]
    pub kind: Kind,
    #[arg(long, default_value_t = 5.0)]
    pub before_secs: f64,
    #[arg(long, default_value_t = 10.0)]
    pub during_secs: f64,
    /// never-reading: messages queued for the hostile consumer, and their size.
    #[arg(long, default_value_t = 100_000)]
    pub backlog: u64,
    #[arg(long, default_value_t = 1024)]
    pub backlog_size: usize,
    /// channels-queues: channels to open.
    #[arg(long, default_value_t = 2047)]
    pub channels: u16,
    /// slowloris: sockets, and the pause between two bytes.
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    #[arg(long, default_value_t = 1000)]
    pub drip_ms: u64,
    /// The good client's offered rate in messages per second (0: as fast as it can, the
    /// most sensitive to a broker that gives the attacker its CPU, and the noisiest).
    #[arg(long, default_value_t = 0.0)]
    pub good_rate: f64,
    /// Fail when the broker's RSS goes above this (MiB).
    #[arg(long, default_value_t = 512)]
    pub rss_limit_mb: u64,
    /// Fail when the median rate during the attack is below this share of the one before.
    #[arg(long, default_value_t = 0.5)]
    pub min_ratio: f64,
}

type Outcome = Result<(bool, String, Vec<String>), String>;

const GOOD: &str = "faults.good";
const VICTIM: &str = "faults.hostile";

/// Counts what a publisher sent and what the broker settled.
#[derive(Default)]
struct Count {
    sent: u64,
    settled: u64,
}

impl Books for Count {
    fn sent(&mut self, _id: u64) {
        self.sent += 1;
    }
    fn settled(&mut self, _id: u64, _ok: bool, _at: Instant) {
        self.settled += 1;
    }
}

/// What the hostile client saw, for the report.
#[derive(Default)]
struct Seen {
    /// endless-body: bytes written; channels-queues: queues declared; slowloris: sockets
    /// the broker closed.
    amount: AtomicU64,
    /// Milliseconds from start to the broker's close (slowloris: the latest).
    closed_after_ms: AtomicU64,
    closed: AtomicBool,
    note: std::sync::Mutex<Option<String>>,
}

impl Seen {
    fn closed(&self, since: Instant, why: String) {
        self.closed.store(true, Relaxed);
        self.closed_after_ms
            .fetch_max(since.elapsed().as_millis() as u64, Relaxed);
        let mut n = self.note.lock().unwrap_or_else(|p| p.into_inner());
        n.get_or_insert(why);
    }
}

pub fn run(o: Opts, cmd: BrokerCmd, rt: &tokio::runtime::Runtime) -> Outcome {
    let mut b = cmd
        .start(Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let pid = b.pid;
    let t = Target::parse(&format!("amqp://guest:guest@127.0.0.1:{}/%2f", cmd.port))
        .map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let out = rt.block_on(async {
        let mut a = Admin::open(&t).await?;
        a.declare_queue(GOOD, false).await?;
        a.declare_queue(VICTIM, false).await?;
        a.close().await;
        if matches!(
            o.kind,
            Kind::NeverReadingNoack | Kind::NeverReadingPrefetch0
        ) {
            prefill(&t, o.backlog, o.backlog_size).await?;
        }
        let delivered = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let good_pub = tokio::spawn(good_publisher(t.clone(), stop.clone(), o.good_rate));
        let good_con = tokio::spawn(good_consumer(t.clone(), delivered.clone(), stop.clone()));
        // Warm up one second, then sample.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = sample(&delivered, pid, o.before_secs).await;
        let seen = Arc::new(Seen::default());
        let hostile_stop = Arc::new(AtomicBool::new(false));
        let hostile = tokio::spawn(attack(
            o.kind,
            t.clone(),
            hostile_stop.clone(),
            seen.clone(),
            ProtoOpts {
                channels: o.channels,
                sockets: o.sockets,
                drip: Duration::from_millis(o.drip_ms.max(1)),
            },
        ));
        let during = sample(&delivered, pid, o.during_secs).await;
        hostile_stop.store(true, Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(10), hostile).await;
        stop.store(true, Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(5), good_pub).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), good_con).await;
        let probe = Instant::now();
        let answers = tokio::time::timeout(Duration::from_secs(10), async {
            let a = Admin::open(&t).await?;
            a.close().await;
            Ok::<_, std::io::Error>(())
        })
        .await
        .is_ok_and(|r| r.is_ok());
        Ok::<_, std::io::Error>((before, during, seen, answers, probe.elapsed()))
    });
    let (before, during, seen, answers, probe) = out.map_err(|e| e.to_string())?;
    let alive = b.alive();
    let rss_end = b.rss_kb().unwrap_or(0);
    let hwm = status_kb(pid, "VmHWM:").unwrap_or(0);
    b.stop(Duration::from_secs(15));
    let (m_before, m_during) = (median(&before.rates), median(&during.rates));
    let ratio = if m_before > 0.0 {
        m_during / m_before
    } else {
        0.0
    };
    let peak = before.peak_rss_kb.max(during.peak_rss_kb);
    let limit_kb = o.rss_limit_mb * 1024;
    if ratio < o.min_ratio {
        notes.push(format!(
            "the good client's rate fell to {:.0}% of its rate before (limit {:.0}%)",
            ratio * 100.0,
            o.min_ratio * 100.0
        ));
    }
    if peak > limit_kb {
        notes.push(format!(
            "broker RSS peaked at {} MiB (limit {} MiB)",
            peak / 1024,
            o.rss_limit_mb
        ));
    }
    if !alive || !answers {
        notes.push("the broker was not up and answering after the attack".into());
    }
    if let Some(n) = seen.note.lock().unwrap_or_else(|p| p.into_inner()).take() {
        notes.push(format!("hostile client: {n}"));
    }
    let ok = ratio >= o.min_ratio && peak <= limit_kb && alive && answers;
    let line = format!(
        "{{\"test\":\"hostile\",\"kind\":\"{:?}\",\"good_rate\":{:.0},\"rate_before\":{m_before:.0},\"rate_during\":{m_during:.0},\"ratio\":{ratio:.2},\"rss_before_kb\":{},\"rss_peak_during_kb\":{},\"rss_end_kb\":{rss_end},\"vm_hwm_kb\":{hwm},\"hostile_amount\":{},\"hostile_closed\":{},\"hostile_closed_after_ms\":{},\"probe_ms\":{:.1}}}",
        o.kind,
        o.good_rate,
        before.peak_rss_kb,
        during.peak_rss_kb,
        seen.amount.load(Relaxed),
        seen.closed.load(Relaxed),
        seen.closed_after_ms.load(Relaxed),
        probe.as_secs_f64() * 1000.0
    );
    Ok((ok, line, notes))
}

struct Samples {
    rates: Vec<f64>,
    peak_rss_kb: u64,
}

async fn sample(delivered: &AtomicU64, pid: u32, secs: f64) -> Samples {
    let mut s = Samples {
        rates: Vec::new(),
        peak_rss_kb: 0,
    };
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut last = (Instant::now(), delivered.load(Relaxed));
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (Instant::now(), delivered.load(Relaxed));
        let dt = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
        s.rates.push((now.1 - last.1) as f64 / dt);
        s.peak_rss_kb = s.peak_rss_kb.max(status_kb(pid, "VmRSS:").unwrap_or(0));
        last = now;
    }
    s
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Fill the victim queue with `n` confirmed transient messages.
async fn prefill(t: &Target, n: u64, size: usize) -> Res<()> {
    let mut p = Publisher::open(t, VICTIM, size, false, 2000, 0).await?;
    let mut c = Count::default();
    p.pump(
        &mut c,
        |_| true,
        |p, c| c.settled + p.unconfirmed() as u64 >= n,
    )
    .await?;
    p.pump(&mut c, |_| false, |p, _| p.unconfirmed() == 0)
        .await?;
    p.close().await;
    Ok(())
}

async fn good_publisher(t: Target, stop: Arc<AtomicBool>, rate: f64) -> Res<()> {
    let mut p = Publisher::open(&t, GOOD, 256, false, 100, 0).await?;
    let mut c = Count::default();
    let began = Instant::now();
    let r = p
        .pump(
            &mut c,
            |c| !stop.load(Relaxed) && due(c.sent, rate, began),
            |p, _| stop.load(Relaxed) && p.unconfirmed() == 0,
        )
        .await;
    p.close().await;
    r
}

async fn good_consumer(t: Target, delivered: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> Res<()> {
    let mut c = Conn::open(&t, 1 << 20).await?;
    c.open_channel(1).await?;
    consume(&mut c, 1, GOOD, 0, true).await?;
    while !stop.load(Relaxed) {
        if let Ok(f) = tokio::time::timeout(Duration::from_millis(100), Frame::read(&mut c)).await {
            if f?.class_method == DELIVER {
                delivered.fetch_add(1, Relaxed);
            }
        }
    }
    c.close().await;
    Ok(())
}

struct ProtoOpts {
    channels: u16,
    sockets: usize,
    drip: Duration,
}

async fn attack(kind: Kind, t: Target, stop: Arc<AtomicBool>, seen: Arc<Seen>, p: ProtoOpts) {
    let start = Instant::now();
    let r = match kind {
        Kind::NeverReadingNoack => never_reading(&t, true, &stop).await,
        Kind::NeverReadingPrefetch0 => never_reading(&t, false, &stop).await,
        Kind::EndlessBody => endless_body(&t, &stop, &seen).await,
        Kind::ChannelsQueues => channels_queues(&t, p.channels, &stop, &seen).await,
        Kind::Slowloris => slowloris(&t, p.sockets, p.drip, &stop, &seen).await,
    };
    if let Err(e) = r {
        seen.closed(start, e.to_string());
    }
}

async fn never_reading(t: &Target, no_ack: bool, stop: &AtomicBool) -> Res<()> {
    let mut c = Conn::open(t, 4096).await?;
    c.open_channel(1).await?;
    consume(&mut c, 1, VICTIM, 0, no_ack).await?;
    // From here on the socket is never read.
    while !stop.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn endless_body(t: &Target, stop: &AtomicBool, seen: &Seen) -> Res<()> {
    let mut c = Conn::open(t, 4096).await?;
    c.open_channel(1).await?;
    let mut out = Vec::new();
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: VICTIM.into(),
        mandatory: false,
        immediate: false,
    }));
    encode(&method(1, publish), &mut out);
    let header = AMQPContentHeader {
        class_id: 60,
        body_size: 1 << 62,
        properties: BasicProperties::default(),
    };
    encode(&AMQPFrame::Header(1, header), &mut out);
    c.wr.write_all(&out).await?;
    out.clear();
    let chunk = vec![b'x'; c.frame_max as usize - 8];
    for _ in 0..16 {
        encode(&AMQPFrame::Body(1, chunk.clone()), &mut out);
    }
    // `out` holds whole frames; writing it round and round from an offset keeps the
    // stream valid whatever a single write takes (write_all under a timeout would not).
    let mut off = 0;
    while !stop.load(Relaxed) {
        let w = tokio::time::timeout(Duration::from_millis(200), c.wr.write(&out[off..])).await;
        // A timeout is the broker's backpressure: fine, keep trying.
        if let Ok(n) = w {
            let n = n?;
            if n == 0 {
                return Err(err("the broker stopped taking bytes"));
            }
            off = (off + n) % out.len();
            seen.amount.fetch_add(n as u64, Relaxed);
        }
    }
    // Whether the broker refused the message (a close) while we were not reading.
    let said = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            Frame::read(&mut c).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    })
    .await;
    if let Ok(Err(e)) = said {
        return Err(e);
    }
    Ok(())
}

async fn channels_queues(t: &Target, channels: u16, stop: &AtomicBool, seen: &Seen) -> Res<()> {
    let mut c = Conn::open(t, 1 << 16).await?;
    for ch in 1..=channels {
        c.open_channel(ch).await?;
    }
    let mut n = 0u64;
    let mut out = Vec::new();
    while !stop.load(Relaxed) {
        out.clear();
        for _ in 0..999 {
            let ch = (n % channels as u64) as u16 + 1;
            encode(&method(ch, declare(n, true)), &mut out);
            n += 1;
        }
        c.wr.write_all(&out).await?;
        let ch = (n % channels as u64) as u16 + 1;
        c.rpc(ch, declare(n, false)).await?;
        n += 1;
        seen.amount.store(n, Relaxed);
    }
    Ok(())
}

fn declare(n: u64, nowait: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: format!("faults.hostile.{n}").into(),
        passive: false,
        durable: false,
        exclusive: true,
        auto_delete: false,
        nowait,
        arguments: FieldTable::default(),
    }))
}

async fn slowloris(
    t: &Target,
    sockets: usize,
    drip: Duration,
    stop: &AtomicBool,
    seen: &Seen,
) -> Res<()> {
    let start = Instant::now();
    let mut script = b"AMQP\x00\x00\x09\x01".to_vec();
    // A valid start-ok, so every byte is one the broker has to wait for.
    let response = format!("\0{}\0{}", t.user, t.pass);
    let start_ok = AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::StartOk(
        amq_protocol::protocol::connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "PLAIN".into(),
            response: response.into_bytes().into(),
            locale: "en_US".into(),
        },
    ));
    encode(&method(0, start_ok), &mut script);
    let mut conns = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        match TcpStream::connect(t.addr()).await {
            Ok(s) => conns.push(Some(s)),
            Err(e) => return Err(err(format!("slowloris connect #{}: {e}", conns.len()))),
        }
    }
    let mut sink = [0u8; 4096];
    let mut at = 0;
    while !stop.load(Relaxed) && at < script.len() {
        for slot in conns.iter_mut() {
            let Some(s) = slot else { continue };
            let mut gone = s.write_all(&script[at..at + 1]).await.is_err();
            // Read whatever the broker sent (connection.start, a close) without waiting.
            while !gone {
                match s.try_read(&mut sink) {
                    Ok(0) => gone = true,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => gone = true,
                }
            }
            if gone {
                *slot = None;
                seen.amount.fetch_add(1, Relaxed);
                seen.closed(start, "the broker closed slow handshakes".into());
            }
        }
        at += 1;
        tokio::time::sleep(drip).await;
    }
    Ok(())
}
