//! The scenarios of issue 5. Each is bounded in messages and in seconds, uses queue names
//! unique to the run, and deletes what it declared.
//!
//! Exceptions, for the large-backlog check of issue 6 (benches/backlog.sh), which spans a
//! broker restart and so several warren-bench runs: `fill` leaves a durable queue with a
//! fixed name (`<prefix>backlog-durable`) behind, `recover` waits until a restarted broker
//! reports it full again, and `drain` empties and deletes it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::amqp::*;
use crate::client::*;
use crate::sink::{self, SinkMode};

mod pairs;

pub struct Opts {
    /// Where publishers connect (and everything else unless named below).
    pub target: Target,
    /// Where the admin connection declares and deletes the scenario's queues (a quorum
    /// queue's leader is usually the declaring node).
    pub declare_target: Target,
    /// Where consumers connect.
    pub consumer_target: Target,
    /// Arguments of every queue.declare (`--queue-type`, `--queue-arg`).
    pub queue_args: QueueArgs,
    /// noack, ack: the publisher uses confirms with `window` unconfirmed messages.
    pub confirm: bool,
    pub messages: Option<u64>,
    pub seconds: Option<f64>,
    pub persistent: bool,
    pub prefetch: u16,
    pub ack_every: u64,
    pub window: u64,
    /// confirm: publishers at once, one queue each or all into one, and a consumer.
    pub publishers: usize,
    pub queue_each: bool,
    pub consume: bool,
    pub rate: f64,
    pub connections: usize,
    pub queues: usize,
    pub broker_pid: Option<u32>,
    pub run_id: String,
    /// Name prefix of the backlog queue shared by fill, recover and drain.
    pub prefix: String,
    /// drain: consume with no_ack instead of manual acks.
    pub no_ack: bool,
    /// noack and ack: independent publisher -> queue -> consumer pairs run at once.
    pub pairs: usize,
}

pub struct Record {
    pub scenario: String,
    pub size: usize,
    pub msgs: u64,
    pub secs: f64,
    pub rate: f64,
    pub extra: Vec<(&'static str, f64)>,
    /// Set when the figures are in but a check failed (lost or reordered messages, ...):
    /// printed, and the exit status becomes 1.
    pub problem: Option<String>,
}

pub const ALL: &[&str] = &[
    "publish",
    "noack",
    "ack",
    "confirm",
    "fanout",
    "latency",
    "connections",
    "backlog",
];

/// VmRSS of a process in KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS:")
}

/// VmHWM (peak resident set since the process started) in KiB.
pub fn hwm_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM:")
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn secs_between(a: Instant, b: Option<Instant>) -> f64 {
    b.map(|b| b.saturating_duration_since(a).as_secs_f64())
        .unwrap_or(0.0)
        .max(1e-9)
}

impl Opts {
    fn secs(&self, default: f64) -> f64 {
        self.seconds.unwrap_or(default)
    }
    fn msgs(&self, default: u64) -> u64 {
        self.messages.unwrap_or(default)
    }
    fn name(&self, what: &str) -> String {
        format!("warren-bench.{}.{}", self.run_id, what)
    }
    /// The admin connection: on the declare target, its declares carrying the queue args.
    async fn admin(&self) -> Res<Admin> {
        Admin::open_with(&self.declare_target, self.queue_args.clone()).await
    }
}

pub async fn run(o: &Opts, scenario: &str, size: usize) -> Res<Vec<Record>> {
    match scenario {
        "publish" => publish_only(o, size).await,
        "noack" => one_to_one(o, size, true).await,
        "ack" => one_to_one(o, size, false).await,
        "confirm" => confirms(o, size).await,
        "fanout" => fanout(o, size).await,
        "latency" => latency(o, size).await,
        "connections" => connections(o).await,
        "backlog" => backlog(o, size).await,
        "sink" => sink_ceiling(o, size).await,
        "fill" => fill(o, size).await,
        "recover" => recover(o).await,
        "drain" => drain(o, size).await,
        s => Err(err(format!(
            "unknown scenario {s:?}; known: {}, sink, fill, recover, drain, all",
            ALL.join(", ")
        ))),
    }
}

fn pub_spec(_o: &Opts, exchange: &str, key: &str, size: usize, max: u64, secs: f64) -> PubSpec {
    PubSpec {
        exchange: exchange.into(),
        routing_key: key.into(),
        size,
        persistent: false,
        max_msgs: max,
        seconds: secs,
        window: None,
        rate: None,
        stamp: None,
        sync_queue: None,
        done: None,
        seq_from: None,
        confirm_latency: false,
    }
}

async fn publish_only(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let q = o.name("publish");
    let mut admin = o.admin().await?;
    admin.declare_queue(&q, false).await?;
    let mut spec = pub_spec(o, "", &q, size, o.msgs(50_000_000), o.secs(10.0));
    spec.sync_queue = Some(q.clone());
    let r = run_publisher(&o.target, spec).await;
    admin.delete_queue(&q).await?;
    admin.close().await;
    let r = r?;
    Ok(vec![Record {
        scenario: "publish".into(),
        size,
        msgs: r.sent,
        secs: r.secs,
        rate: r.sent as f64 / r.secs,
        extra: vec![("queued", r.queued.unwrap_or(0) as f64)],
        problem: None,
    }])
}

/// Consumers already subscribed; publish and count until every delivery arrived.
async fn pub_and_consume(
    o: &Opts,
    spec: PubSpec,
    consumers: Vec<(Conn, ConsSpec)>,
    secs: f64,
) -> Res<(PubOut, Vec<ConsOut>)> {
    let done = Arc::new(AtomicU64::new(u64::MAX));
    let hard = Instant::now() + Duration::from_secs_f64(secs + secs.max(10.0) + 5.0);
    let mut tasks = Vec::new();
    for (c, cs) in consumers {
        tasks.push(tokio::spawn(consume(c, cs, done.clone(), hard)));
    }
    let spec = PubSpec {
        done: Some(done.clone()),
        ..spec
    };
    let t = o.target.clone();
    let p = tokio::spawn(async move { run_publisher(&t, spec).await });
    let pr = p.await.map_err(|e| err(e.to_string()))?;
    if pr.is_err() {
        done.store(0, Relaxed);
    }
    let mut outs = Vec::new();
    for t in tasks {
        outs.push(t.await.map_err(|e| err(e.to_string()))??);
    }
    Ok((pr?, outs))
}

/// The publisher of `noack` and `ack` (one per pair): `--persistent` makes its messages
/// persistent (into a durable queue), `--confirm` gives it confirms with `--window`.
fn one_to_one_publisher(o: &Opts, queue: &str, size: usize, secs: f64) -> PubSpec {
    let mut spec = pub_spec(o, "", queue, size, o.msgs(50_000_000), secs);
    spec.persistent = o.persistent;
    if o.confirm {
        spec.window = Some(o.window);
    }
    spec
}

/// What `noack`/`ack` add to their line with `--persistent` or `--confirm`.
fn one_to_one_extra(o: &Opts, p: &PubOut, extra: &mut Vec<(&'static str, f64)>) {
    if o.persistent {
        extra.push(("persistent", 1.0));
    }
    if o.confirm {
        extra.push(("window", o.window as f64));
        extra.push(("nacked", p.nacked as f64));
    }
}

/// The consumer of `noack` and `ack` (one per pair with `--pairs`), and of `confirm
/// --consume` (no-ack).
fn one_to_one_consumer(o: &Opts, queue: &str, no_ack: bool) -> ConsSpec {
    ConsSpec {
        queue: queue.into(),
        no_ack,
        prefetch: o.prefetch,
        ack_every: o.ack_every,
        latency: None,
        check_seq: false,
    }
}

async fn one_to_one(o: &Opts, size: usize, no_ack: bool) -> Res<Vec<Record>> {
    if o.pairs > 1 {
        return pairs::many_pairs(o, size, no_ack).await;
    }
    let name = if no_ack { "noack" } else { "ack" };
    let q = o.name(name);
    let secs = o.secs(10.0);
    let mut admin = o.admin().await?;
    admin.declare_queue(&q, o.persistent).await?;
    let res = async {
        let cs = one_to_one_consumer(o, &q, no_ack);
        let c = start_consumer(&o.consumer_target, &cs).await?;
        let spec = one_to_one_publisher(o, &q, size, secs);
        pub_and_consume(o, spec, vec![(c, cs)], secs).await
    }
    .await;
    admin.delete_queue(&q).await?;
    admin.close().await;
    let (p, cs) = res?;
    let c = &cs[0];
    let s = secs_between(p.start, c.last);
    let mut extra = vec![
        ("published", p.sent as f64),
        ("publish_rate", p.sent as f64 / p.secs),
    ];
    if !no_ack {
        extra.push(("prefetch", o.prefetch as f64));
        extra.push(("ack_every", o.ack_every as f64));
    }
    one_to_one_extra(o, &p, &mut extra);
    Ok(vec![Record {
        scenario: name.into(),
        size,
        msgs: c.received,
        secs: s,
        rate: c.received as f64 / s,
        extra,
        problem: None,
    }])
}

/// `--publishers` connections with confirms (each its own window) into one queue or one
/// each, with `--consume` a no-ack consumer per queue. Rate = messages confirmed / the
/// longest publisher's time; publish-to-confirm latency from every publisher's samples.
async fn confirms(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let name = if o.persistent {
        "confirm-persistent"
    } else {
        "confirm"
    };
    let n = o.publishers.max(1);
    let queues: Vec<String> = if o.queue_each {
        (0..n).map(|i| o.name(&format!("{name}.{i}"))).collect()
    } else {
        vec![o.name(name)]
    };
    let mut admin = o.admin().await?;
    for q in &queues {
        admin.declare_queue(q, o.persistent).await?;
    }
    let secs = o.secs(10.0);
    let res = async {
        let hard = Instant::now() + Duration::from_secs_f64(secs + secs.max(10.0) + 5.0);
        // One counter per queue: its consumer stops once it has everything sent to it.
        let targets: Vec<Arc<AtomicU64>> = queues
            .iter()
            .map(|_| Arc::new(AtomicU64::new(u64::MAX)))
            .collect();
        let mut consumers = Vec::new();
        if o.consume {
            for (q, target) in queues.iter().zip(&targets) {
                let cs = one_to_one_consumer(o, q, true);
                let c = start_consumer(&o.consumer_target, &cs).await?;
                consumers.push(tokio::spawn(consume(c, cs, target.clone(), hard)));
            }
        }
        let mut pubs = Vec::new();
        for i in 0..n {
            let q = queues[i % queues.len()].clone();
            let mut spec = pub_spec(o, "", &q, size, o.msgs(50_000_000) / n as u64, secs);
            spec.window = Some(o.window);
            spec.persistent = o.persistent;
            spec.sync_queue = Some(q);
            spec.confirm_latency = true;
            let t = o.target.clone();
            pubs.push(tokio::spawn(async move { run_publisher(&t, spec).await }));
        }
        let mut outs = Vec::new();
        let mut failed = None;
        for p in pubs {
            match p.await.map_err(|e| err(e.to_string())).and_then(|r| r) {
                Ok(r) => outs.push(r),
                Err(e) => failed = Some(e),
            }
        }
        // Tell each consumer how many its queue got (0 on failure: stop now).
        for (qi, target) in targets.iter().enumerate() {
            let sent: u64 = outs
                .iter()
                .enumerate()
                .filter(|(i, _)| failed.is_none() && i % queues.len() == qi)
                .map(|(_, r)| r.sent)
                .sum();
            target.store(sent, Relaxed);
        }
        let mut received = 0;
        for c in consumers {
            received += c.await.map_err(|e| err(e.to_string()))??.received;
        }
        match failed {
            Some(e) => Err(e),
            None => Ok((outs, received)),
        }
    }
    .await;
    for q in &queues {
        admin.delete_queue(q).await?;
    }
    admin.close().await;
    let (outs, received) = res?;
    let sent: u64 = outs.iter().map(|r| r.sent).sum();
    let nacked: u64 = outs.iter().map(|r| r.nacked).sum();
    let secs = outs.iter().map(|r| r.secs).fold(1e-9, f64::max);
    let mut lat: Vec<(u64, u64)> = outs
        .iter()
        .flat_map(|r| r.confirm_lat.iter().copied())
        .collect();
    lat.sort_unstable();
    let mut extra = vec![
        ("window", o.window as f64),
        ("nacked", nacked as f64),
        ("publishers", n as f64),
        ("queues", queues.len() as f64),
        ("confirm_p50_us", weighted_percentile(&lat, 0.50)),
        ("confirm_p99_us", weighted_percentile(&lat, 0.99)),
    ];
    if o.consume {
        extra.push(("consumed", received as f64));
    }
    Ok(vec![Record {
        scenario: name.into(),
        size,
        msgs: sent,
        secs,
        rate: sent as f64 / secs,
        extra,
        problem: None,
    }])
}

/// Percentile `p` of (microseconds, messages) samples sorted by microseconds.
fn weighted_percentile(sorted: &[(u64, u64)], p: f64) -> f64 {
    let total: u64 = sorted.iter().map(|&(_, n)| n).sum();
    let want = (total as f64 * p).ceil().max(1.0) as u64;
    let mut seen = 0;
    for &(us, n) in sorted {
        seen += n;
        if seen >= want {
            return us as f64;
        }
    }
    0.0
}

async fn fanout(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let x = o.name("fanout");
    let secs = o.secs(10.0);
    let qs: Vec<String> = (0..o.queues)
        .map(|i| o.name(&format!("fanout.{i}")))
        .collect();
    let mut admin = o.admin().await?;
    admin.declare_exchange(&x, "fanout").await?;
    let res = async {
        let mut consumers = Vec::new();
        for q in &qs {
            admin.declare_queue(q, false).await?;
            admin.bind(q, &x, "").await?;
            let cs = ConsSpec::no_ack(q);
            consumers.push((start_consumer(&o.consumer_target, &cs).await?, cs));
        }
        let spec = pub_spec(o, &x, "", size, o.msgs(50_000_000), secs);
        pub_and_consume(o, spec, consumers, secs).await
    }
    .await;
    for q in &qs {
        let _ = admin.delete_queue(q).await;
    }
    admin.delete_exchange(&x).await?;
    admin.close().await;
    let (p, cs) = res?;
    let total: u64 = cs.iter().map(|c| c.received).sum();
    let last = cs.iter().filter_map(|c| c.last).max();
    let s = secs_between(p.start, last);
    Ok(vec![Record {
        scenario: "fanout".into(),
        size,
        msgs: total,
        secs: s,
        rate: total as f64 / s,
        extra: vec![
            ("queues", qs.len() as f64),
            ("published", p.sent as f64),
            ("publish_rate", p.sent as f64 / p.secs),
        ],
        problem: None,
    }])
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

async fn latency(o: &Opts, size: usize) -> Res<Vec<Record>> {
    if size < 8 {
        return Err(err(
            "latency needs --size >= 8 (the timestamp lives in the body)",
        ));
    }
    let q = o.name("latency");
    let secs = o.secs(10.0);
    let epoch = Instant::now();
    let mut admin = o.admin().await?;
    admin.declare_queue(&q, false).await?;
    let res = async {
        let cs = ConsSpec {
            latency: Some(epoch),
            ..ConsSpec::no_ack(&q)
        };
        let c = start_consumer(&o.consumer_target, &cs).await?;
        let mut spec = pub_spec(o, "", &q, size, o.msgs((o.rate * secs) as u64), secs);
        spec.rate = Some(o.rate);
        spec.stamp = Some(epoch);
        pub_and_consume(o, spec, vec![(c, cs)], secs).await
    }
    .await;
    admin.delete_queue(&q).await?;
    admin.close().await;
    let (p, mut cs) = res?;
    let c = &mut cs[0];
    // the first tenth of a second (at most 1000 messages) is warm-up
    let warm = (c.lat_ns.len() / 10).min(1000);
    let mut l = c.lat_ns.split_off(warm);
    l.sort_unstable();
    let s = secs_between(p.start, c.last);
    Ok(vec![Record {
        scenario: "latency".into(),
        size,
        msgs: c.received,
        secs: s,
        rate: c.received as f64 / s,
        extra: vec![
            ("target_rate", o.rate),
            ("p50_us", percentile(&l, 0.50)),
            ("p99_us", percentile(&l, 0.99)),
            ("p999_us", percentile(&l, 0.999)),
            ("max_us", l.last().copied().unwrap_or(0) as f64 / 1000.0),
        ],
        problem: None,
    }])
}

async fn connections(o: &Opts) -> Res<Vec<Record>> {
    let n = o.connections;
    let hold = o.secs(5.0);
    let rss0 = o.broker_pid.and_then(rss_kb);
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut open = Vec::with_capacity(n);
    let mut launched = 0;
    let mut failure = None;
    while open.len() < n {
        while launched < n && pending.len() < 64 && failure.is_none() {
            let t = o.target.clone();
            pending.push(async move {
                let mut c = Conn::open(&t, 4096).await?;
                c.open_channel(1).await?;
                Ok::<_, std::io::Error>(c)
            });
            launched += 1;
        }
        match tokio::time::timeout(Duration::from_secs(10), pending.next()).await {
            Ok(Some(Ok(c))) => open.push(c),
            Ok(Some(Err(e))) => {
                failure = Some(err(format!("connection {} of {n}: {e}", open.len() + 1)));
            }
            Ok(None) => break,
            Err(_) => {
                failure = Some(err(format!(
                    "opening connections stalled at {} of {n}",
                    open.len()
                )));
                break;
            }
        }
    }
    let open_secs = start.elapsed().as_secs_f64();
    let opened = open.len();
    if let Some(e) = &failure {
        // e.g. RabbitMQ with a 1024 file descriptor limit accepts only 832 sockets
        eprintln!("warren-bench: connections: {e}; holding and measuring the {opened} that opened");
    }
    let mut extra = vec![("requested", n as f64), ("hold_secs", hold)];
    // let the broker settle, then sample its memory while everything is held open
    let settle = (hold / 2.0).min(2.0);
    tokio::time::sleep(Duration::from_secs_f64(settle)).await;
    let rss1 = o.broker_pid.and_then(rss_kb);
    if let (Some(a), Some(b)) = (rss0, rss1) {
        extra.push(("rss_idle_kb", a as f64));
        extra.push(("rss_kb", b as f64));
        extra.push(("rss_delta_kb", b as f64 - a as f64));
    }
    tokio::time::sleep(Duration::from_secs_f64(hold - settle)).await;
    drop(pending);
    let closing: FuturesUnordered<_> = open.into_iter().map(|c| c.close()).collect();
    let _ = tokio::time::timeout(Duration::from_secs(20), closing.collect::<Vec<()>>()).await;
    if opened == 0 {
        return Err(failure.unwrap_or_else(|| err("no connection opened")));
    }
    Ok(vec![Record {
        scenario: "connections".into(),
        size: 0,
        msgs: opened as u64,
        secs: open_secs,
        rate: opened as f64 / open_secs,
        extra,
        problem: None,
    }])
}

async fn backlog(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let q = o.name("backlog");
    let secs = o.secs(120.0);
    let rss0 = o.broker_pid.and_then(rss_kb);
    let mut admin = o.admin().await?;
    admin.declare_queue(&q, false).await?;
    let res = async {
        let mut spec = pub_spec(o, "", &q, size, o.msgs(1_000_000), secs);
        spec.sync_queue = Some(q.clone());
        let p = run_publisher(&o.target, spec).await?;
        // wait (bounded) until the queue holds everything
        let mut queued = admin.queue_count(&q).await? as u64;
        let until = Instant::now() + Duration::from_secs(30);
        while queued < p.sent && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            queued = admin.queue_count(&q).await? as u64;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss1 = o.broker_pid.and_then(rss_kb);
        let cs = ConsSpec::no_ack(&q);
        let drain_start = Instant::now();
        let c = start_consumer(&o.consumer_target, &cs).await?;
        let target = Arc::new(AtomicU64::new(queued));
        let hard = Instant::now() + Duration::from_secs_f64(secs);
        let d = consume(c, cs, target, hard).await?;
        Ok::<_, std::io::Error>((p, queued, rss1, drain_start, d))
    }
    .await;
    admin.delete_queue(&q).await?;
    admin.close().await;
    let (p, queued, rss1, drain_start, d) = res?;
    let mut extra = vec![("queued", queued as f64)];
    if let (Some(a), Some(b)) = (rss0, rss1) {
        extra.push(("rss_before_kb", a as f64));
        extra.push(("rss_kb", b as f64));
    }
    let ds = secs_between(drain_start, d.last);
    Ok(vec![
        Record {
            scenario: "backlog-publish".into(),
            size,
            msgs: p.sent,
            secs: p.secs,
            rate: p.sent as f64 / p.secs,
            extra,
            problem: None,
        },
        Record {
            scenario: "backlog-drain".into(),
            size,
            msgs: d.received,
            secs: ds,
            rate: d.received as f64 / ds,
            extra: vec![],
            problem: None,
        },
    ])
}

/// The generator's own ceiling against the in-process sink (publish and consume side).
async fn sink_ceiling(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let secs = o.secs(5.0);
    let sink_target = |port| Target {
        host: "127.0.0.1".into(),
        port,
        user: "guest".into(),
        pass: "guest".into(),
        vhost: "/".into(),
        tls: None,
    };
    let port = sink::start(SinkMode::Discard).await?;
    let mut spec = pub_spec(o, "", "sink", size, o.msgs(500_000_000), secs);
    spec.sync_queue = Some("sink".into());
    let p = run_publisher(&sink_target(port), spec).await?;

    let total = o.msgs(500_000_000);
    let port = sink::start(SinkMode::Stream { msgs: total, size }).await?;
    let t = sink_target(port);
    let cs = ConsSpec::no_ack("sink");
    let c = start_consumer(&t, &cs).await?;
    let start = Instant::now();
    let d = consume(
        c,
        cs,
        Arc::new(AtomicU64::new(total)),
        start + Duration::from_secs_f64(secs),
    )
    .await?;
    let ds = secs_between(start, d.last);
    Ok(vec![
        Record {
            scenario: "sink-publish".into(),
            size,
            msgs: p.sent,
            secs: p.secs,
            rate: p.sent as f64 / p.secs,
            extra: vec![("mb_per_s", p.sent as f64 * size as f64 / p.secs / 1e6)],
            problem: None,
        },
        Record {
            scenario: "sink-consume".into(),
            size,
            msgs: d.received,
            secs: ds,
            rate: d.received as f64 / ds,
            extra: vec![("mb_per_s", d.received as f64 * size as f64 / ds / 1e6)],
            problem: None,
        },
    ])
}

fn backlog_queue(o: &Opts) -> String {
    format!("{}backlog-durable", o.prefix)
}

/// Samples a process's VmRSS every 100 ms and keeps the highest value, until dropped. A cross
/// check for VmHWM, which covers the whole life of the process (a long-running broker's peak
/// may predate the run).
struct RssWatch {
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(kb) = rss_kb(pid) {
                    p.fetch_max(kb, Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssWatch { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.load(Relaxed)
    }
}

/// Memory extras for a broker process: VmRSS and VmHWM now, under the given names.
fn mem_extras(pid: Option<u32>, rss: &'static str, hwm: &'static str) -> Vec<(&'static str, f64)> {
    let mut v = Vec::new();
    if let Some(pid) = pid {
        if let Some(kb) = rss_kb(pid) {
            v.push((rss, kb as f64));
        }
        if let Some(kb) = hwm_kb(pid) {
            v.push((hwm, kb as f64));
        }
    }
    v
}

/// Fill the durable backlog queue: persistent messages (delivery mode 2) with publisher
/// confirms, numbered from what the queue already holds, until the last confirm. The queue is
/// kept. Extras: what the queue reports afterwards, nacks, the broker's memory.
async fn fill(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let q = backlog_queue(o);
    let mut admin = o.admin().await?;
    let before = admin.declare_queue_count(&q, true).await? as u64;
    let mut extra = mem_extras(o.broker_pid, "rss_before_kb", "hwm_before_kb");
    let watch = o.broker_pid.map(RssWatch::start);
    let mut spec = pub_spec(o, "", &q, size, o.msgs(1_000_000), o.secs(600.0));
    spec.persistent = true;
    spec.window = Some(o.window);
    spec.sync_queue = Some(q.clone());
    spec.seq_from = Some(before);
    let r = run_publisher(&o.target, spec).await;
    let peak = watch.map(RssWatch::stop);
    let queued = admin.queue_count(&q).await;
    admin.close().await;
    let r = r?;
    let queued = queued? as u64;
    extra.extend(mem_extras(o.broker_pid, "rss_kb", "hwm_kb"));
    if let Some(kb) = peak {
        extra.push(("rss_peak_sampled_kb", kb as f64));
    }
    extra.extend([
        ("window", o.window as f64),
        ("nacked", r.nacked as f64),
        ("held_before", before as f64),
        ("queued", queued as f64),
    ]);
    let problem = (queued != before + r.sent || r.nacked > 0).then(|| {
        format!(
            "queue holds {queued} messages, expected {} ({before} before + {} sent; {} nacked)",
            before + r.sent,
            r.sent,
            r.nacked
        )
    });
    Ok(vec![Record {
        scenario: "fill".into(),
        size,
        msgs: r.sent,
        secs: r.secs,
        rate: r.sent as f64 / r.secs,
        extra,
        problem,
    }])
}

/// After a broker (re)start: poll (connect + passive declare every 20 ms) until the backlog
/// queue reports at least `--messages` messages (any count if not given). `secs` is from the
/// first attempt; `ready_unix_ms` lets a script measure from the broker's own start instead.
async fn recover(o: &Opts) -> Res<Vec<Record>> {
    let q = backlog_queue(o);
    let want = o.messages.unwrap_or(0);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.secs(600.0));
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as f64)
            .unwrap_or(0.0)
    };
    let mut attempts = 0u64;
    let mut first_connect: Option<f64> = None;
    let mut admin: Option<Admin> = None;
    let mut last_seen: Option<u64> = None;
    let mut last_err = String::new();
    loop {
        attempts += 1;
        if admin.is_none() {
            match tokio::time::timeout(Duration::from_secs(5), o.admin()).await {
                Ok(Ok(a)) => {
                    first_connect.get_or_insert_with(unix_ms);
                    admin = Some(a);
                }
                Ok(Err(e)) => last_err = e.to_string(),
                Err(_) => last_err = "connection handshake took over 5 s".into(),
            }
        }
        if let Some(a) = admin.as_mut() {
            match a.queue_count(&q).await {
                Ok(n) => {
                    last_seen = Some(n as u64);
                    if n as u64 >= want {
                        let secs = start.elapsed().as_secs_f64();
                        let ready = unix_ms();
                        if let Some(a) = admin.take() {
                            a.close().await;
                        }
                        let mut extra = vec![
                            ("ready_unix_ms", ready),
                            ("attempts", attempts as f64),
                            ("expected", want as f64),
                        ];
                        if let Some(t) = first_connect {
                            extra.push(("first_connect_unix_ms", t));
                        }
                        extra.extend(mem_extras(o.broker_pid, "rss_kb", "hwm_kb"));
                        return Ok(vec![Record {
                            scenario: "recover".into(),
                            size: 0,
                            msgs: n as u64,
                            secs,
                            rate: n as f64 / secs.max(1e-9),
                            extra,
                            problem: None,
                        }]);
                    }
                }
                Err(e) => {
                    // e.g. 404 while the queue is not recovered yet: the channel is gone
                    last_err = e.to_string();
                    admin = None;
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(err(format!(
                "queue {q} not back with {want} messages within {:.0} s ({attempts} attempts, \
                 last count {last_seen:?}, last error: {last_err})",
                o.secs(600.0)
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Empty the backlog queue with one consumer (manual acks: prefetch `--prefetch`, one
/// multiple ack every `--ack-every`; or `--no-ack`), check that exactly the count the queue
/// reported arrived, in publish order, then delete the queue.
async fn drain(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let q = backlog_queue(o);
    let mut admin = o.admin().await?;
    let held = admin.queue_count(&q).await? as u64;
    let cs = ConsSpec {
        queue: q.clone(),
        no_ack: o.no_ack,
        prefetch: o.prefetch,
        ack_every: o.ack_every,
        latency: None,
        check_seq: true,
    };
    let res = async {
        let watch = o.broker_pid.map(RssWatch::start);
        let start = Instant::now();
        let c = start_consumer(&o.consumer_target, &cs).await?;
        let hard = start + Duration::from_secs_f64(o.secs(600.0));
        let d = consume(c, cs, Arc::new(AtomicU64::new(held)), hard).await?;
        Ok::<_, std::io::Error>((start, d, watch.map(RssWatch::stop)))
    }
    .await;
    // what is left once the consumer's connection (and its last ack) is gone
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left = admin.queue_count(&q).await.map(|n| n as u64);
    if res.is_ok() {
        admin.delete_queue(&q).await?;
    }
    admin.close().await;
    let (start, d, peak) = res?;
    let left = left?;
    let secs = secs_between(start, d.last);
    let mut extra = vec![
        ("held", held as f64),
        ("left", left as f64),
        ("no_ack", o.no_ack as u8 as f64),
        ("seq_breaks", d.seq_breaks as f64),
        ("redelivered", d.redelivered as f64),
    ];
    if !o.no_ack {
        extra.push(("prefetch", o.prefetch as f64));
        extra.push(("ack_every", o.ack_every as f64));
    }
    if let (Some(a), Some(b)) = (d.first_seq, d.last_seq) {
        extra.push(("first_seq", a as f64));
        extra.push(("last_seq", b as f64));
    }
    extra.extend(mem_extras(o.broker_pid, "rss_kb", "hwm_kb"));
    if let Some(kb) = peak {
        extra.push(("rss_peak_sampled_kb", kb as f64));
    }
    let mut problems = Vec::new();
    if d.received != held {
        problems.push(format!(
            "received {} of the {held} messages the queue held",
            d.received
        ));
    }
    if left != 0 {
        problems.push(format!("{left} messages still queued after the drain"));
    }
    if let Some((want, got)) = d.first_break {
        problems.push(format!(
            "{} deliveries out of sequence (first: expected {want}, got {got})",
            d.seq_breaks
        ));
    }
    if let (Some(a), Some(b)) = (d.first_seq, d.last_seq) {
        if d.seq_breaks == 0 && b - a + 1 != d.received {
            problems.push(format!("sequence {a}..={b} but {} deliveries", d.received));
        }
    }
    Ok(vec![Record {
        scenario: "drain".into(),
        size,
        msgs: d.received,
        secs,
        rate: d.received as f64 / secs,
        extra,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }])
}
