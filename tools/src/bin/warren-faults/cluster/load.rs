//! The load on the cluster: confirmed publishers and acking consumers that each walk a
//! list of nodes (the next one when a connection closes), all writing to the one ledger
//! (`crate::ledger`), plus the side books the cluster test adds: the time to the first
//! confirm and the first delivery after a kill, and what a node that is cut off confirms.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use amq_protocol::protocol::{queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use tokio::io::AsyncWriteExt;

use crate::amqp::*;
use crate::ledger::Ledger;
use crate::publisher::{due, read_stamp, Books, Publisher};
use crate::wire::*;

/// Publisher numbers of the clients pinned to a cut node start here (ids keep them apart).
pub const PINNED: u32 = 100;
pub const NONE: usize = usize::MAX;

pub struct Shared {
    /// One AMQP target per node.
    pub targets: Vec<Target>,
    pub queues: Vec<String>,
    pub size: usize,
    pub window: usize,
    pub prefetch: u16,
    /// Messages per second, all regular publishers together (0: unpaced).
    pub rate: f64,
    pub publishers: usize,
    /// A publisher whose messages wait this long without any confirm or nack gives up
    /// its connection and goes to the next node.
    pub stall: Duration,
    pub began: Instant,
    pub epoch: AtomicU32,
    pub stop_publishing: AtomicBool,
    pub stop_consuming: AtomicBool,
    /// Deliveries whose ack has not been proven handled yet.
    pub outstanding: AtomicU64,
    /// Per regular publisher: messages sent so far (its next sequence number).
    pub next_seq: Vec<AtomicU64>,
    /// Per regular publisher and consumer: the node it is connected to (NONE between).
    pub pub_node: Vec<AtomicUsize>,
    pub cons_node: Vec<AtomicUsize>,
    pub reconnects: AtomicU64,
    pub ledger: Mutex<Ledger>,
    pub side: Mutex<Side>,
    pub notes: Mutex<Vec<String>>,
}

/// After a kill: when, and the first sequence number of publisher 0 sent after it.
#[derive(Clone, Debug)]
pub struct KillWatch {
    pub at: Instant,
    pub seq_floor: u64,
    pub confirm: Option<Duration>,
    pub delivery: Option<Duration>,
}

/// A node cut off: what was published through it and what it confirmed.
#[derive(Clone, Debug, Default)]
pub struct CutWatch {
    pub node: usize,
    pub at: Option<Instant>,
    pub healed: Option<Instant>,
    /// Messages written to the cut node's connections while it was cut.
    pub sent_during: u64,
    /// ... of which confirmed before the heal (must be 0), nacked, confirmed after it.
    pub confirmed_during: u64,
    pub nacked: u64,
    pub confirmed_after_heal: u64,
    /// The majority side: first confirm of a message sent after the cut by a publisher
    /// on another node.
    pub majority_confirm: Option<Duration>,
    pub examples: Vec<String>,
}

#[derive(Default)]
pub struct Side {
    pub kill: Option<KillWatch>,
    pub cut: Option<CutWatch>,
    /// Ids written to a cut node during a cut, with the partition round; and how many
    /// of them were delivered (first deliveries), per round.
    pub cut_ids: std::collections::HashMap<u64, usize>,
    pub cut_delivered: [u64; 2],
    pub round: usize,
    /// Every confirmed id with the epoch it was confirmed in, and every id delivered:
    /// to describe lost messages (ranges, epochs) beyond the ledger's count.
    pub confirmed: std::collections::HashMap<u64, u32>,
    pub delivered: std::collections::HashSet<u64>,
}

impl Shared {
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn side(&self) -> MutexGuard<'_, Side> {
        self.side.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn note(&self, s: String) {
        let mut n = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if n.len() < 30 {
            n.push(s);
        }
    }
    /// Start measuring the recovery from a kill at `at`.
    pub fn watch_kill(&self, at: Instant) {
        let seq_floor = self.next_seq[0].load(SeqCst);
        self.side().kill = Some(KillWatch {
            at,
            seq_floor,
            confirm: None,
            delivery: None,
        });
    }
}

/// Declare the test's quorum queues (durable, `x-queue-type = quorum`) on one node.
pub async fn declare_quorum(t: &Target, names: &[String]) -> Res<()> {
    let mut c = Conn::open(t, 1 << 16).await?;
    c.open_channel(1).await?;
    for q in names {
        match c.rpc(1, quorum_declare(q)).await? {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)) => {}
            m => return Err(err(format!("expected queue.declare-ok, got {m:?}"))),
        }
    }
    c.close().await;
    Ok(())
}

/// Passive declares of `names` on one node (an error: the first that failed).
pub async fn passive_all(t: &Target, names: &[String]) -> Res<()> {
    let mut c = Conn::open(t, 1 << 16).await?;
    c.open_channel(1).await?;
    for q in names {
        let m = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: q.as_str().into(),
            passive: true,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        }));
        match c.rpc(1, m).await {
            Ok(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))) => {}
            Ok(m) => return Err(err(format!("{q}: expected queue.declare-ok, got {m:?}"))),
            Err(e) => return Err(err(format!("{q}: {e}"))),
        }
    }
    c.close().await;
    Ok(())
}

pub fn quorum_declare(name: &str) -> AMQPClass {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: args,
    }))
}

/// The node list a client walks: its home first, then the others in order.
fn order(home: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| (home + i) % n).collect()
}

/// The ledger and side books seen by one publisher's session on one node.
struct ClusterBooks<'a> {
    sh: &'a Shared,
    p: u32,
    node: usize,
    epoch: u32,
    last_progress: Instant,
    /// Messages sent in this session.
    sent: u64,
}

impl Books for ClusterBooks<'_> {
    fn sent(&mut self, id: u64) {
        self.sent += 1;
        self.sh.ledger().sent(id);
        if let Some(n) = self.sh.next_seq.get(self.p as usize) {
            n.fetch_add(1, SeqCst);
        }
        let mut guard = self.sh.side();
        let side = &mut *guard;
        if let Some(c) = side.cut.as_mut() {
            if c.node == self.node && c.at.is_some() && c.healed.is_none() {
                c.sent_during += 1;
                let round = side.round;
                side.cut_ids.insert(id, round);
            }
        }
    }

    fn settled(&mut self, id: u64, ok: bool, sent_at: Instant) {
        self.last_progress = Instant::now();
        self.sh.ledger().settled(id, ok, self.epoch, sent_at);
        let now = Instant::now();
        let mut side = self.sh.side();
        if ok {
            side.confirmed.insert(id, self.sh.epoch.load(SeqCst));
        }
        if ok && self.p == 0 {
            if let Some(k) = side.kill.as_mut() {
                if k.confirm.is_none() && sent_at > k.at {
                    k.confirm = Some(now - k.at);
                }
            }
        }
        if let Some(c) = side.cut.as_mut() {
            let Some(cut_at) = c.at else { return };
            if c.node == self.node && sent_at > cut_at && c.healed.is_none_or(|h| sent_at < h) {
                // Written to the cut node while it was cut off.
                match (ok, c.healed) {
                    (false, _) => c.nacked += 1,
                    (true, None) => {
                        c.confirmed_during += 1;
                        if c.examples.len() < 5 {
                            c.examples.push(format!(
                                "id {id:#x} written to the cut node {:.0} ms after the cut, confirmed {:.0} ms after the cut, before the heal",
                                (sent_at - cut_at).as_secs_f64() * 1000.0,
                                (now - cut_at).as_secs_f64() * 1000.0
                            ));
                        }
                    }
                    (true, Some(_)) => c.confirmed_after_heal += 1,
                }
            }
            if ok && c.node != self.node && sent_at > cut_at && c.majority_confirm.is_none() {
                c.majority_confirm = Some(now - cut_at);
            }
        }
    }

    fn blocked(&mut self, blocked: bool) {
        if blocked {
            self.sh.ledger().blocked += 1;
        }
    }
}

/// Regular publisher `p`: publishes to queue p % queues, starting on node `home`, until
/// told to stop; the next node of its list after every closed connection.
pub async fn publisher(sh: Arc<Shared>, p: u32, home: usize) {
    let nodes = order(home, sh.targets.len());
    let mut i = 0;
    let mut seq = 0u64;
    let q = sh.queues[p as usize % sh.queues.len()].clone();
    let rate = if sh.rate > 0.0 {
        sh.rate / sh.publishers.max(1) as f64
    } else {
        0.0
    };
    while !sh.stop_publishing.load(SeqCst) {
        let node = nodes[i % nodes.len()];
        sh.pub_node[p as usize].store(node, SeqCst);
        let r = publish_session(&sh, p, node, &q, &mut seq, rate, sh.stall, || {
            sh.stop_publishing.load(SeqCst)
        })
        .await;
        sh.pub_node[p as usize].store(NONE, SeqCst);
        match r {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => sh.note(format!("publisher {p} on node {}: {e}", node + 1)),
        }
        if sh.stop_publishing.load(SeqCst) {
            return;
        }
        sh.reconnects.fetch_add(1, SeqCst);
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A publisher pinned to `node` (the one being cut off), publishing to queue 0 at `rate`
/// until `stop` is set; it never moves to another node.
pub async fn pinned_publisher(
    sh: Arc<Shared>,
    p: u32,
    node: usize,
    rate: f64,
    stall: Duration,
    stop: Arc<AtomicBool>,
) {
    let mut seq = 0u64;
    let q = sh.queues[0].clone();
    while !stop.load(SeqCst) {
        let r = publish_session(&sh, p, node, &q, &mut seq, rate, stall, || {
            stop.load(SeqCst)
        })
        .await;
        match r {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => sh.note(format!("pinned publisher on node {}: {e}", node + 1)),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection's worth of publishing. Ok(true) when told to stop and everything was
/// settled, Ok(false) when it gave up (nothing settled for `stall` while messages waited).
#[allow(clippy::too_many_arguments)]
async fn publish_session(
    sh: &Shared,
    p: u32,
    node: usize,
    q: &str,
    seq: &mut u64,
    rate: f64,
    stall: Duration,
    stopping: impl Fn() -> bool,
) -> Res<bool> {
    let first = crate::ledger::message_id(p, *seq);
    let t = &sh.targets[node];
    let mut pubr = tokio::time::timeout(
        Duration::from_secs(10),
        Publisher::open(t, q, sh.size, true, sh.window, first),
    )
    .await
    .map_err(|_| err("connect: no answer within 10 s"))??;
    let mut books = ClusterBooks {
        sh,
        p,
        node,
        epoch: sh.epoch.load(SeqCst),
        last_progress: Instant::now(),
        sent: 0,
    };
    let began = Instant::now();
    let mut gave_up = false;
    let r = pubr
        .pump(
            &mut books,
            |b| !stopping() && paced(sh, p, rate, b.sent, began),
            |pb, b| {
                if pb.unconfirmed() > 0 && b.last_progress.elapsed() > stall {
                    gave_up = true;
                    return true;
                }
                stopping() && pb.unconfirmed() == 0
            },
        )
        .await;
    *seq += pubr.next_id - first;
    r?;
    pubr.close().await;
    Ok(!gave_up)
}

/// Whether publisher `p` may send another message at `rate` messages per second: a
/// regular publisher counts over the whole run, a pinned one over its session.
fn paced(sh: &Shared, p: u32, rate: f64, session_sent: u64, session_began: Instant) -> bool {
    if rate <= 0.0 {
        return true;
    }
    match sh.next_seq.get(p as usize) {
        Some(n) => due(n.load(SeqCst), rate, sh.began),
        None => due(session_sent, rate, session_began),
    }
}

/// Consumer `c`: one channel per queue (manual acks, prefetch), starting on node `home`.
pub async fn consumer(sh: Arc<Shared>, c: usize, home: usize) {
    let nodes = order(home, sh.targets.len());
    let mut i = 0;
    while !sh.stop_consuming.load(SeqCst) {
        let node = nodes[i % nodes.len()];
        sh.cons_node[c].store(node, SeqCst);
        let epoch = sh.epoch.load(SeqCst);
        let mut outstanding = 0;
        let r = consume_session(&sh, node, epoch, &mut outstanding).await;
        sh.outstanding.fetch_sub(outstanding, SeqCst);
        sh.cons_node[c].store(NONE, SeqCst);
        match r {
            Ok(()) => return,
            Err(e) => sh.note(format!("consumer {c} on node {}: {e}", node + 1)),
        }
        sh.reconnects.fetch_add(1, SeqCst);
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
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

async fn consume_session(sh: &Shared, node: usize, epoch: u32, outstanding: &mut u64) -> Res<()> {
    let t = &sh.targets[node];
    let mut c = tokio::time::timeout(Duration::from_secs(10), Conn::open(t, 1 << 20))
        .await
        .map_err(|_| err("connect: no answer within 10 s"))??;
    let mut chans: Vec<ChanState> = Vec::new();
    for i in 0..sh.queues.len() {
        let ch = i as u16 + 1;
        c.open_channel(ch).await?;
        set_qos(&mut c, ch, sh.prefetch).await?;
        chans.push(ChanState::default());
    }
    for (i, q) in sh.queues.iter().enumerate() {
        c.send(method(i as u16 + 1, consume_method(q, false)))
            .await?;
    }
    let mut cur: Option<Incoming> = None;
    let mut out = Vec::new();
    loop {
        let idle = chans
            .iter()
            .all(|s| s.pending.is_empty() && s.batches.is_empty());
        if sh.stop_consuming.load(SeqCst) && idle {
            c.close().await;
            return Ok(());
        }
        let first =
            match tokio::time::timeout(Duration::from_millis(200), Frame::read(&mut c)).await {
                Ok(f) => Some(f?),
                Err(_) => None,
            };
        let mut next = first;
        while let Some(f) = next.take() {
            handle(sh, epoch, &f, &mut chans, &mut cur, outstanding)?;
            if c.rd.has_frame() {
                next = Some(Frame::read(&mut c).await?);
            }
        }
        out.clear();
        for (i, s) in chans.iter_mut().enumerate() {
            let Some(&(tag, _)) = s.pending.last() else {
                continue;
            };
            let ids: Vec<u64> = s.pending.drain(..).map(|(_, id)| id).collect();
            let ch = i as u16 + 1;
            ack_frame(ch, tag, &mut out);
            // AMQP never answers an ack: the qos-ok after it proves it was handled.
            encode(&method(ch, qos(sh.prefetch)), &mut out);
            let b = sh.ledger().ack_sent(&ids, epoch);
            s.batches.push_back((b, ids.len() as u64));
        }
        if !out.is_empty() {
            c.wr.write_all(&out).await?;
        }
    }
}

fn handle(
    sh: &Shared,
    epoch: u32,
    f: &Frame,
    chans: &mut [ChanState],
    cur: &mut Option<Incoming>,
    outstanding: &mut u64,
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
            sh.outstanding.fetch_add(1, SeqCst);
            *outstanding += 1;
        }
        (FRAME_METHOD, QOS_OK) if slot < chans.len() => {
            if let Some((b, n)) = chans[slot].batches.pop_front() {
                sh.ledger().ack_processed(b, Instant::now());
                sh.outstanding.fetch_sub(n, SeqCst);
                *outstanding -= n;
            }
        }
        (FRAME_METHOD, (60, 30)) => return Err(err("basic.cancel from the broker")),
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
        match read_stamp(&m.body) {
            Some(id) => {
                sh.ledger().delivered(id, epoch, m.redelivered);
                chans[m.ch].pending.push((m.tag, id));
                sh.side().delivered.insert(id);
                if m.ch == 0 {
                    let mut side = sh.side();
                    if let Some(round) = side.cut_ids.remove(&id) {
                        side.cut_delivered[round.min(1)] += 1;
                    }
                }
                if m.ch == 0 && id >> 48 == 0 {
                    let mut side = sh.side();
                    if let Some(k) = side.kill.as_mut() {
                        if k.delivery.is_none() && (id & ((1 << 48) - 1)) >= k.seq_floor {
                            k.delivery = Some(k.at.elapsed());
                        }
                    }
                }
            }
            None => {
                sh.ledger().corrupt += 1;
                // Acked anyway so it does not block the queue; counted as a failure.
                chans[m.ch].pending.push((m.tag, u64::MAX));
            }
        }
    }
    Ok(())
}

/// Confirmed ids never delivered, as runs of consecutive sequence numbers per publisher:
/// "publisher P seq A-B (n, confirmed in epochs E..F)".
pub fn lost_ranges(side: &Side) -> Vec<String> {
    let mut lost: Vec<(u64, u32)> = side
        .confirmed
        .iter()
        .filter(|(id, _)| !side.delivered.contains(id))
        .map(|(id, e)| (*id, *e))
        .collect();
    lost.sort_unstable();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lost.len() {
        let (first, e0) = lost[i];
        let (mut last, mut e1) = (first, e0);
        let mut j = i + 1;
        while j < lost.len() && lost[j].0 == last + 1 {
            last = lost[j].0;
            e1 = e1.max(lost[j].1);
            j += 1;
        }
        let mask = (1u64 << 48) - 1;
        out.push(format!(
            "lost: publisher {} seq {}-{} ({} messages, confirmed in epochs {e0}..{e1})",
            first >> 48,
            first & mask,
            last & mask,
            j - i
        ));
        i = j;
    }
    out
}
