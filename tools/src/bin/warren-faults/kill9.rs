//! kill -9 under load: several publishers send persistent messages with confirms to
//! durable queues while a consumer acks; the broker is killed (SIGKILL) at a random
//! moment and started again on the same data directory, `cycles` times. Clients simply
//! reconnect. At the end publishing stops, the consumer drains both queues on a broker
//! that is then stopped gracefully and started once more (nothing may come back), and
//! the ledger judges every message id: 0 confirmed messages lost, none delivered again
//! unless the kill explains it (see `ledger`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::amqp::*;
use crate::broker::{BrokerCmd, Rng};
use crate::client::Admin;
use crate::ledger::{message_id, Ledger, Verdict};
use crate::publisher::{due, read_stamp, Books, Publisher};
use crate::wire::*;

pub struct Opts {
    pub cmd: BrokerCmd,
    pub cycles: u32,
    pub publishers: u32,
    pub queues: usize,
    pub window: usize,
    pub prefetch: u16,
    pub size: usize,
    pub min_ms: u64,
    pub max_ms: u64,
    pub seed: u64,
    /// Messages per second, all publishers together.
    pub rate: f64,
}

struct Ctx {
    target: Target,
    queues: Vec<String>,
    window: usize,
    prefetch: u16,
    size: usize,
    rate: f64,
    began: Instant,
    epoch: AtomicU32,
    stop_publishing: AtomicBool,
    stop_consuming: AtomicBool,
    /// Deliveries whose ack has not been proven handled yet.
    outstanding: AtomicU64,
    ledger: Mutex<Ledger>,
    problems: Mutex<Vec<String>>,
}

impl Ctx {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Errors that a kill explains (the socket went away) are expected; anything the
    /// broker said on purpose (a close with a code) is a problem.
    fn note(&self, e: &std::io::Error) {
        if e.to_string().contains("broker closed") {
            let mut p = self.problems.lock().unwrap_or_else(|p| p.into_inner());
            if p.len() < 20 {
                p.push(e.to_string());
            }
        }
    }
}

pub fn run(o: Opts, rt: &tokio::runtime::Runtime) -> Result<Verdict, String> {
    let target = Target::parse(&format!("amqp://guest:guest@127.0.0.1:{}/%2f", o.cmd.port))
        .map_err(|e| e.to_string())?;
    let ctx = Arc::new(Ctx {
        target,
        queues: (0..o.queues)
            .map(|i| format!("faults.kill9.q{i}"))
            .collect(),
        window: o.window,
        prefetch: o.prefetch,
        size: o.size.max(16),
        rate: o.rate,
        began: Instant::now(),
        epoch: AtomicU32::new(0),
        stop_publishing: AtomicBool::new(false),
        stop_consuming: AtomicBool::new(false),
        outstanding: AtomicU64::new(0),
        ledger: Mutex::new(Ledger::default()),
        problems: Mutex::new(Vec::new()),
    });
    let patience = Duration::from_secs(120);
    let mut rng = Rng::new(o.seed);
    // Durable queues first, on a broker nobody kills.
    let mut b = o.cmd.start(patience).map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut a = Admin::open(&ctx.target).await?;
        for q in &ctx.queues {
            a.declare_queue(q, true).await?;
        }
        a.close().await;
        Ok::<_, std::io::Error>(())
    })
    .map_err(|e| format!("declaring the queues: {e}"))?;
    b.stop(Duration::from_secs(10));
    drop(b);

    let pubs: Vec<_> = (0..o.publishers)
        .map(|p| rt.spawn(publisher(ctx.clone(), p)))
        .collect();
    let cons = rt.spawn(consumer(ctx.clone()));
    let started = Instant::now();
    for cycle in 1..=o.cycles {
        let mut b = o
            .cmd
            .start(patience)
            .map_err(|e| format!("cycle {cycle}: {e}"))?;
        std::thread::sleep(Duration::from_millis(rng.range(o.min_ms, o.max_ms)));
        if !b.alive() {
            return Err(format!(
                "cycle {cycle}: the broker died on its own (see its log)"
            ));
        }
        b.kill();
        ctx.epoch.fetch_add(1, SeqCst);
        if cycle % 10 == 0 || cycle == o.cycles {
            let l = ctx.ledger();
            eprintln!(
                "kill9: cycle {cycle}/{} after {:.0} s: {} sent, {} confirmed, {} deliveries",
                o.cycles,
                started.elapsed().as_secs_f64(),
                l.sent,
                l.confirmed(),
                l.deliveries
            );
        }
    }
    ctx.stop_publishing.store(true, SeqCst);
    let mut b = o
        .cmd
        .start(patience)
        .map_err(|e| format!("final start: {e}"))?;
    let drained = rt.block_on(drain(&ctx));
    ctx.stop_consuming.store(true, SeqCst);
    rt.block_on(async {
        for p in pubs {
            let _ = tokio::time::timeout(Duration::from_secs(10), p).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), cons).await;
    });
    let (graceful, status) = b.stop(Duration::from_secs(30));
    drop(b);
    let mut v = ctx.ledger().verdict();
    let mut problems = ctx
        .problems
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Err(e) = drained {
        problems.push(format!("final drain: {e}"));
    }
    if !graceful {
        problems.push(format!("graceful stop after the drain: {status}"));
    }
    // Everything was acked and the broker stopped cleanly: nothing may come back.
    let b = o
        .cmd
        .start(patience)
        .map_err(|e| format!("check start: {e}"))?;
    let left = rt.block_on(counts(&ctx));
    let mut b = b;
    b.stop(Duration::from_secs(30));
    match left {
        Ok(n) if n > 0 => {
            v.duplicated += n;
            problems.push(format!(
                "{n} acked messages came back after a clean restart"
            ));
        }
        Ok(_) => {}
        Err(e) => problems.push(format!("counting after the clean restart: {e}")),
    }
    v.examples.extend(problems);
    Ok(v)
}

/// Ready messages in all the test's queues (passive declare).
async fn counts(ctx: &Ctx) -> Res<u64> {
    let mut a = Admin::open(&ctx.target).await?;
    let mut n = 0;
    for q in &ctx.queues {
        n += a.queue_count(q).await? as u64;
    }
    a.close().await;
    Ok(n)
}

/// Wait until the queues are empty, every delivery's ack was handled, and nothing new
/// arrived for a second.
async fn drain(ctx: &Ctx) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since: Option<(Instant, u64)> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ready = match counts(ctx).await {
            Ok(n) => n,
            Err(_) => continue,
        };
        let seen = ctx.ledger().deliveries;
        let idle = ready == 0 && ctx.outstanding.load(SeqCst) == 0;
        quiet_since = match quiet_since {
            Some((t, s)) if idle && s == seen => {
                if t.elapsed() > Duration::from_secs(1) {
                    return Ok(());
                }
                Some((t, s))
            }
            _ if idle => Some((Instant::now(), seen)),
            _ => None,
        };
    }
    Err(err("queues not drained within 120 s"))
}

async fn publisher(ctx: Arc<Ctx>, p: u32) {
    let mut seq = 0u64;
    while !ctx.stop_publishing.load(SeqCst) {
        let epoch = ctx.epoch.load(SeqCst);
        if let Err(e) = publish_session(&ctx, p, &mut seq, epoch).await {
            ctx.note(&e);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The kill -9 ledger seen through a publisher of one epoch.
struct EpochBooks<'a> {
    ctx: &'a Ctx,
    epoch: u32,
}

impl Books for EpochBooks<'_> {
    fn sent(&mut self, id: u64) {
        self.ctx.ledger().sent(id);
    }
    fn settled(&mut self, id: u64, ok: bool, sent_at: Instant) {
        self.ctx.ledger().settled(id, ok, self.epoch, sent_at);
    }
    fn blocked(&mut self, blocked: bool) {
        if blocked {
            self.ctx.ledger().blocked += 1;
        }
    }
}

/// One connection's worth of publishing. Messages still unconfirmed when it ends stay
/// "sent" in the ledger: they may or may not have been stored.
async fn publish_session(ctx: &Ctx, p: u32, seq: &mut u64, epoch: u32) -> Res<()> {
    let q = &ctx.queues[p as usize % ctx.queues.len()];
    let first = message_id(p, *seq);
    let mut pubr = Publisher::open(&ctx.target, q, ctx.size, true, ctx.window, first).await?;
    let mut books = EpochBooks { ctx, epoch };
    let stopping = || ctx.stop_publishing.load(SeqCst);
    // Paced so the books stay small over a hundred cycles.
    let paced = || due(ctx.ledger().sent, ctx.rate, ctx.began);
    let r = pubr
        .pump(
            &mut books,
            |_| !stopping() && paced(),
            |p, _| stopping() && p.unconfirmed() == 0,
        )
        .await;
    *seq += pubr.next_id - first;
    r?;
    pubr.close().await;
    Ok(())
}

async fn consumer(ctx: Arc<Ctx>) {
    while !ctx.stop_consuming.load(SeqCst) {
        let epoch = ctx.epoch.load(SeqCst);
        let r = consume_session(&ctx, epoch).await;
        ctx.outstanding.store(0, SeqCst);
        if let Err(e) = r {
            ctx.note(&e);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[derive(Default)]
struct ChanState {
    /// Delivered, not yet acked: (tag, id).
    pending: Vec<(u64, u64)>,
    /// Ack batches waiting for their qos-ok: (batch, deliveries it covers).
    batches: VecDeque<(usize, u64)>,
}

/// A delivery being assembled: channel, tag, redelivered, body size, body so far.
struct Incoming {
    ch: usize,
    tag: u64,
    redelivered: bool,
    size: Option<u64>,
    body: Vec<u8>,
}

async fn consume_session(ctx: &Ctx, epoch: u32) -> Res<()> {
    let mut c = Conn::open(&ctx.target, 1 << 20).await?;
    let mut chans: Vec<ChanState> = Vec::new();
    for i in 0..ctx.queues.len() {
        let ch = i as u16 + 1;
        c.open_channel(ch).await?;
        set_qos(&mut c, ch, ctx.prefetch).await?;
        chans.push(ChanState::default());
    }
    for (i, q) in ctx.queues.iter().enumerate() {
        c.send(method(i as u16 + 1, consume_method(q, false)))
            .await?;
    }
    let mut cur: Option<Incoming> = None;
    let mut out = Vec::new();
    loop {
        let idle = chans
            .iter()
            .all(|s| s.pending.is_empty() && s.batches.is_empty());
        if ctx.stop_consuming.load(SeqCst) && idle {
            c.close().await;
            return Ok(());
        }
        let first =
            match tokio::time::timeout(Duration::from_millis(200), Frame::read(&mut c)).await {
                Ok(f) => Some(f?),
                Err(_) => None,
            };
        let quiet = first.is_none();
        let mut next = first;
        while let Some(f) = next.take() {
            handle(ctx, epoch, &f, &mut chans, &mut cur)?;
            if c.rd.has_frame() {
                next = Some(Frame::read(&mut c).await?);
            }
        }
        out.clear();
        for (i, s) in chans.iter_mut().enumerate() {
            // The latest delivery's ack waits for the next delivery (or a quiet moment),
            // so a kill usually finds a delivery not acked yet.
            let keep = usize::from(!quiet);
            if s.pending.len() <= keep {
                continue;
            }
            let acked: Vec<(u64, u64)> = s.pending.drain(..s.pending.len() - keep).collect();
            let Some(&(tag, _)) = acked.last() else {
                continue;
            };
            let ch = i as u16 + 1;
            ack_frame(ch, tag, &mut out);
            encode(&method(ch, qos(ctx.prefetch)), &mut out);
            let ids: Vec<u64> = acked.iter().map(|(_, id)| *id).collect();
            let b = ctx.ledger().ack_sent(&ids, epoch);
            s.batches.push_back((b, ids.len() as u64));
        }
        if !out.is_empty() {
            c.wr.write_all(&out).await?;
        }
    }
}

fn handle(
    ctx: &Ctx,
    epoch: u32,
    f: &Frame,
    chans: &mut [ChanState],
    cur: &mut Option<Incoming>,
) -> Res<()> {
    let slot = (f.ch as usize).wrapping_sub(1);
    match (f.typ, f.class_method) {
        (FRAME_METHOD, DELIVER) if slot < chans.len() => {
            *cur = Some(Incoming {
                ch: slot,
                tag: deliver_tag(&f.payload).ok_or_else(|| err("short basic.deliver"))?,
                redelivered: deliver_redelivered(&f.payload),
                size: None,
                body: Vec::new(),
            });
            ctx.outstanding.fetch_add(1, SeqCst);
        }
        (FRAME_METHOD, QOS_OK) if slot < chans.len() => {
            if let Some((b, n)) = chans[slot].batches.pop_front() {
                ctx.ledger().ack_processed(b, Instant::now());
                ctx.outstanding.fetch_sub(n, SeqCst);
            }
        }
        (FRAME_METHOD, (60, 30)) => return Err(err("broker closed: basic.cancel from the broker")),
        (FRAME_HEADER, _) => {
            if let Some(m) = cur.as_mut() {
                m.size = header_body_size(&f.payload);
            }
        }
        (FRAME_BODY, _) => {
            if let Some(m) = cur.as_mut() {
                m.body.extend_from_slice(&f.payload);
            }
        }
        _ => {}
    }
    if let Some(m) = cur.take_if(|m| m.size.is_some_and(|s| m.body.len() as u64 >= s)) {
        let mut l = ctx.ledger();
        match read_stamp(&m.body) {
            Some(id) => {
                l.delivered(id, epoch, m.redelivered);
                chans[m.ch].pending.push((m.tag, id));
            }
            None => {
                l.corrupt += 1;
                // Acked anyway so it does not block the queue; counted as a failure.
                chans[m.ch].pending.push((m.tag, u64::MAX));
            }
        }
    }
    Ok(())
}
