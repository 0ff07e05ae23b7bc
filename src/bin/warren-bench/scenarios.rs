//! The scenarios of issue 5. Each is bounded in messages and in seconds, uses queue names
//! unique to the run, and deletes what it declared.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use crate::amqp::*;
use crate::client::*;
use crate::sink::{self, SinkMode};

pub struct Opts {
    pub target: Target,
    pub messages: Option<u64>,
    pub seconds: Option<f64>,
    pub persistent: bool,
    pub prefetch: u16,
    pub ack_every: u64,
    pub window: u64,
    pub rate: f64,
    pub connections: usize,
    pub queues: usize,
    pub broker_pid: Option<u32>,
    pub run_id: String,
}

pub struct Record {
    pub scenario: String,
    pub size: usize,
    pub msgs: u64,
    pub secs: f64,
    pub rate: f64,
    pub extra: Vec<(&'static str, f64)>,
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
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
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
        s => Err(err(format!(
            "unknown scenario {s:?}; known: {}, sink, all",
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
    }
}

async fn publish_only(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let q = o.name("publish");
    let mut admin = Admin::open(&o.target).await?;
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

async fn one_to_one(o: &Opts, size: usize, no_ack: bool) -> Res<Vec<Record>> {
    let name = if no_ack { "noack" } else { "ack" };
    let q = o.name(name);
    let secs = o.secs(10.0);
    let mut admin = Admin::open(&o.target).await?;
    admin.declare_queue(&q, false).await?;
    let res = async {
        let cs = ConsSpec {
            queue: q.clone(),
            no_ack,
            prefetch: o.prefetch,
            ack_every: o.ack_every,
            latency: None,
        };
        let c = start_consumer(&o.target, &cs).await?;
        let spec = pub_spec(o, "", &q, size, o.msgs(50_000_000), secs);
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
    Ok(vec![Record {
        scenario: name.into(),
        size,
        msgs: c.received,
        secs: s,
        rate: c.received as f64 / s,
        extra,
    }])
}

async fn confirms(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let name = if o.persistent {
        "confirm-persistent"
    } else {
        "confirm"
    };
    let q = o.name(name);
    let mut admin = Admin::open(&o.target).await?;
    admin.declare_queue(&q, o.persistent).await?;
    let mut spec = pub_spec(o, "", &q, size, o.msgs(50_000_000), o.secs(10.0));
    spec.window = Some(o.window);
    spec.persistent = o.persistent;
    spec.sync_queue = Some(q.clone());
    let r = run_publisher(&o.target, spec).await;
    admin.delete_queue(&q).await?;
    admin.close().await;
    let r = r?;
    Ok(vec![Record {
        scenario: name.into(),
        size,
        msgs: r.sent,
        secs: r.secs,
        rate: r.sent as f64 / r.secs,
        extra: vec![("window", o.window as f64), ("nacked", r.nacked as f64)],
    }])
}

async fn fanout(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let x = o.name("fanout");
    let secs = o.secs(10.0);
    let qs: Vec<String> = (0..o.queues)
        .map(|i| o.name(&format!("fanout.{i}")))
        .collect();
    let mut admin = Admin::open(&o.target).await?;
    admin.declare_exchange(&x, "fanout").await?;
    let res = async {
        let mut consumers = Vec::new();
        for q in &qs {
            admin.declare_queue(q, false).await?;
            admin.bind(q, &x, "").await?;
            let cs = ConsSpec {
                queue: q.clone(),
                no_ack: true,
                prefetch: 0,
                ack_every: 1,
                latency: None,
            };
            consumers.push((start_consumer(&o.target, &cs).await?, cs));
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
    let mut admin = Admin::open(&o.target).await?;
    admin.declare_queue(&q, false).await?;
    let res = async {
        let cs = ConsSpec {
            queue: q.clone(),
            no_ack: true,
            prefetch: 0,
            ack_every: 1,
            latency: Some(epoch),
        };
        let c = start_consumer(&o.target, &cs).await?;
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
    }])
}

async fn backlog(o: &Opts, size: usize) -> Res<Vec<Record>> {
    let q = o.name("backlog");
    let secs = o.secs(120.0);
    let rss0 = o.broker_pid.and_then(rss_kb);
    let mut admin = Admin::open(&o.target).await?;
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
        let cs = ConsSpec {
            queue: q.clone(),
            no_ack: true,
            prefetch: 0,
            ack_every: 1,
            latency: None,
        };
        let drain_start = Instant::now();
        let c = start_consumer(&o.target, &cs).await?;
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
        },
        Record {
            scenario: "backlog-drain".into(),
            size,
            msgs: d.received,
            secs: ds,
            rate: d.received as f64 / ds,
            extra: vec![],
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
    };
    let port = sink::start(SinkMode::Discard).await?;
    let mut spec = pub_spec(o, "", "sink", size, o.msgs(500_000_000), secs);
    spec.sync_queue = Some("sink".into());
    let p = run_publisher(&sink_target(port), spec).await?;

    let total = o.msgs(500_000_000);
    let port = sink::start(SinkMode::Stream { msgs: total, size }).await?;
    let t = sink_target(port);
    let cs = ConsSpec {
        queue: "sink".into(),
        no_ack: true,
        prefetch: 0,
        ack_every: 1,
        latency: None,
    };
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
        },
        Record {
            scenario: "sink-consume".into(),
            size,
            msgs: d.received,
            secs: ds,
            rate: d.received as f64 / ds,
            extra: vec![("mb_per_s", d.received as f64 * size as f64 / ds / 1e6)],
        },
    ])
}
