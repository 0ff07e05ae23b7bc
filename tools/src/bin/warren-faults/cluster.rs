//! The cluster failure script (issue 17, docs/clustering.md 5.3): three warren nodes on
//! 127.0.0.1-3 as child processes, a TCP proxy on every directed pair of nodes (so a node
//! can be cut off without root), confirmed persistent load on two quorum queues from
//! clients that move to the next node when their connection closes, then:
//!
//! 1. `--cycles` times: find the leader of queue 1 in the management API, kill -9 it,
//!    measure the time to the first confirm of a message published after the kill and to
//!    the first delivery of one, restart it on its data directory, wait until `online`
//!    lists every member again;
//! 2. `--partitions` (0-2) times: cut one node off (a follower of queue 1, then its
//!    leader) for `--cut-secs` while a publisher pinned to it publishes with confirms and
//!    a declare is tried on it; heal; the cut node must have confirmed nothing written to
//!    it during the cut, and the declare must not have succeeded;
//! 3. stop publishing, drain, and judge every message id with the ledger: 0 confirmed
//!    messages lost, no delivery of an id never published, no damaged body.
//!
//! One JSON line of figures; exit 1 when a guarantee is broken or the run could not
//! finish (a step's timeout, the `--budget`), 2 on bad setup. `--nodes 1` runs the same
//! load and kill loop against one node without cluster flags: a self-test of the tool.

mod http;
mod load;
mod nodes;
mod proxy;
mod raftlog;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;

use crate::amqp::Target;
use crate::broker::{BrokerCmd, Rng};
use crate::ledger::Ledger;
use http::Json;
use load::{CutWatch, Shared, Side, NONE, PINNED};
use nodes::{Node, NodeSpec};
use proxy::{Proxies, Proxy};

#[derive(Args, Debug)]
pub struct Opts {
    /// kill -9 cycles of queue 1's leader.
    #[arg(long, default_value_t = 20)]
    pub cycles: u32,
    /// Partitions: 0, 1 (a follower of queue 1 cut off) or 2 (then its leader).
    #[arg(long, default_value_t = 2)]
    pub partitions: u32,
    /// Seconds a node stays cut off.
    #[arg(long, default_value_t = 8.0)]
    pub cut_secs: f64,
    /// 3, or 1 for a self-test of the tool against one node without cluster flags.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Ports: node k (1-3) listens on BASE+100k+1 (cluster), +72 (AMQP), +73 (HTTP);
    /// the proxy from node i to node j on 127.0.0.i:BASE+100i+50+j.
    #[arg(long, default_value_t = 26000)]
    pub port_base: u16,
    #[arg(long, default_value_t = 2)]
    pub publishers: usize,
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Unconfirmed messages per publisher.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    #[arg(long, default_value_t = 50)]
    pub prefetch: u16,
    /// Body size in bytes (at least 16: the id and its check).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Messages per second, the regular publishers together (0: unpaced).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Messages per second of the publisher pinned to a cut node.
    #[arg(long, default_value_t = 200.0)]
    pub pinned_rate: f64,
    /// Load runs between these many milliseconds before each kill.
    #[arg(long, default_value_t = 500)]
    pub min_ms: u64,
    #[arg(long, default_value_t = 2000)]
    pub max_ms: u64,
    /// Seconds without any confirm or nack after which a publisher leaves its node.
    #[arg(long, default_value_t = 15.0)]
    pub stall_secs: f64,
    /// Seconds to wait for the confirm and the delivery after a kill.
    #[arg(long, default_value_t = 30.0)]
    pub recover_secs: f64,
    /// The whole run's time limit in seconds (the script's `timeout` adds a margin).
    #[arg(long, default_value_t = 600.0)]
    pub budget: f64,
    /// Directory for the nodes' data directories, cookie and pid file (default: a new
    /// one under $TMPDIR, removed after a run that passed).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the work directory even after a run that passed.
    #[arg(long)]
    pub keep: bool,
}

type Outcome = Result<(bool, String, Vec<String>), String>;

/// A queue's leader as the management API shows it.
enum Leader {
    Node(usize),
    /// No answer, or no leader at the moment.
    Unknown,
    /// The API has no `leader` field: taken from the nodes' logs (raftlog).
    FromLog(usize),
    /// Neither shows one: the script picks a node itself.
    NotShown,
}

/// Leader changes of the test's queues, as the management API shows them.
#[derive(Default)]
struct Elections {
    last: Vec<Option<String>>,
    /// (when, queue index, new leader)
    changes: Vec<(Instant, usize, String)>,
    /// `raft_term`, when the API shows one (the first and the latest seen per queue).
    first_term: Vec<Option<f64>>,
    term: Vec<Option<f64>>,
}

impl Elections {
    fn count(&self, from: Instant, to: Instant) -> usize {
        self.changes
            .iter()
            .filter(|(t, _, _)| *t >= from && *t < to)
            .count()
    }
}

struct Figures {
    confirm_ms: Vec<f64>,
    delivery_ms: Vec<f64>,
    restart_ms: Vec<f64>,
    online_ms: Vec<f64>,
    recover_timeouts: u32,
    /// Kills and cuts whose target was picked without the API's `leader`.
    leader_not_shown: u32,
    /// ... and those whose leader came from the nodes' logs.
    leader_from_log: u32,
    last_kill: String,
    /// Nodes that did not know the queues right after declare-ok on node 1.
    declare_not_everywhere: u32,
    /// What started each epoch (a kill, a cut, a heal) and when.
    epochs: Vec<String>,
    /// Log stamps: load started, first kill, kill loop over.
    stamps: [String; 3],
    cycles_done: u32,
    partitions: Vec<String>,
    partition_failures: Vec<String>,
    /// Findings that are not failures.
    notes: Vec<String>,
}

/// Everything the run holds; dropping it kills every node still running.
struct Run {
    o: Opts,
    rt_handle: tokio::runtime::Handle,
    nodes: Vec<Node>,
    names: Vec<String>,
    proxies: Option<Proxies>,
    sh: Arc<Shared>,
    /// Nodes the API poller must not ask (dead or cut off).
    excluded: Arc<Vec<AtomicBool>>,
    elections: Arc<Mutex<Elections>>,
    pid_file: PathBuf,
    /// The nodes' log files (elections and leaders when the API shows none).
    logs: Vec<PathBuf>,
    /// Leader look-ups where live nodes named different leaders, and a few of them.
    disagreements: AtomicU64,
    disagree_examples: Mutex<Vec<String>>,
    deadline: Instant,
    interrupted: Arc<AtomicBool>,
}

pub fn run(o: Opts, cmd: BrokerCmd, seed: u64, rt: &tokio::runtime::Runtime) -> Outcome {
    if o.nodes != 1 && o.nodes != 3 {
        return Err("--nodes is 3 (or 1 for the self-test)".into());
    }
    let work = match &o.work_dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("warren-cluster.{}.{seed:x}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let cookie = work.join("cookie");
    write_cookie(&cookie, seed).map_err(|e| format!("cookie {}: {e}", cookie.display()))?;
    let interrupted = Arc::new(AtomicBool::new(false));
    rt.spawn(on_signal(interrupted.clone()));

    let n = o.nodes;
    let names: Vec<String> = (1..=n).map(|k| format!("rabbit@n{k}")).collect();
    let host = |i: usize| Ipv4Addr::new(127, 0, 0, i as u8 + 1);
    let port = |i: usize, off: u16| o.port_base + 100 * (i as u16 + 1) + off;
    // Proxies first: every node's --peers names them.
    let proxies = if n > 1 {
        let mut all = Vec::new();
        for i in 0..n {
            for j in 0..n {
                if i == j {
                    continue;
                }
                let listen = SocketAddr::from((host(i), port(i, 50 + j as u16 + 1)));
                let target = SocketAddr::from((host(j), port(j, 1)));
                let p = rt
                    .block_on(Proxy::start(i, j, listen, target))
                    .map_err(|e| format!("proxy {listen} -> {target}: {e}"))?;
                all.push(p);
            }
        }
        Some(Proxies { all })
    } else {
        None
    };
    let log_base = cmd.log.with_extension("");
    let mut nodes = Vec::new();
    for i in 0..n {
        let peers = proxies.as_ref().map(|ps| {
            (0..n)
                .map(|j| {
                    let addr = if i == j {
                        SocketAddr::from((host(j), port(j, 1)))
                    } else {
                        ps.addr(i, j).expect("a proxy for every pair")
                    };
                    format!("{}={addr}", names[j])
                })
                .collect::<Vec<_>>()
                .join(",")
        });
        nodes.push(Node::new(NodeSpec {
            name: names[i].clone(),
            host: host(i),
            amqp_port: port(i, 72),
            mgmt_port: port(i, 73),
            data: work.join(format!("n{}", i + 1)),
            log: PathBuf::from(format!("{}.n{}.log", log_base.display(), i + 1)),
            peers,
            cookie: cookie.clone(),
            bin: cmd.bin.clone(),
            extra: cmd.extra.clone(),
        }));
    }
    let targets: Vec<Target> = nodes
        .iter()
        .map(|nd| Target::parse(&format!("amqp://guest:guest@{}/%2f", nd.spec.amqp())))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let sh = Arc::new(Shared {
        targets,
        queues: vec!["faults.cluster.q1".into(), "faults.cluster.q2".into()],
        size: o.size.max(16),
        window: o.window,
        prefetch: o.prefetch,
        rate: o.rate,
        publishers: o.publishers,
        stall: Duration::from_secs_f64(o.stall_secs),
        began: Instant::now(),
        epoch: AtomicU32::new(0),
        stop_publishing: AtomicBool::new(false),
        stop_consuming: AtomicBool::new(false),
        outstanding: AtomicU64::new(0),
        next_seq: (0..o.publishers).map(|_| AtomicU64::new(0)).collect(),
        pub_node: (0..o.publishers).map(|_| AtomicUsize::new(NONE)).collect(),
        cons_node: (0..o.consumers).map(|_| AtomicUsize::new(NONE)).collect(),
        reconnects: AtomicU64::new(0),
        ledger: Mutex::new(Ledger::default()),
        side: Mutex::new(Side::default()),
        notes: Mutex::new(Vec::new()),
    });
    let deadline = Instant::now() + Duration::from_secs_f64(o.budget);
    let mut r = Run {
        rt_handle: rt.handle().clone(),
        excluded: Arc::new((0..n).map(|_| AtomicBool::new(false)).collect()),
        elections: Arc::new(Mutex::new(Elections {
            last: vec![None; 2],
            first_term: vec![None; 2],
            term: vec![None; 2],
            ..Elections::default()
        })),
        pid_file: work.join("pids"),
        logs: nodes.iter().map(|nd| nd.spec.log.clone()).collect(),
        disagreements: AtomicU64::new(0),
        disagree_examples: Mutex::new(Vec::new()),
        nodes,
        names,
        proxies,
        sh,
        deadline,
        interrupted,
        o,
    };
    eprintln!(
        "cluster: seed {seed}, {} node(s), work dir {}, logs {}.n*.log",
        n,
        work.display(),
        log_base.display()
    );
    let mut fig = Figures {
        confirm_ms: Vec::new(),
        delivery_ms: Vec::new(),
        restart_ms: Vec::new(),
        online_ms: Vec::new(),
        recover_timeouts: 0,
        leader_not_shown: 0,
        leader_from_log: 0,
        last_kill: String::new(),
        epochs: Vec::new(),
        declare_not_everywhere: 0,
        stamps: Default::default(),
        cycles_done: 0,
        partitions: Vec::new(),
        partition_failures: Vec::new(),
        notes: Vec::new(),
    };
    let started = Instant::now();
    let result = r.scenario(seed, &mut fig);
    // Whatever happened: stop the load, then every node.
    r.sh.stop_publishing.store(true, SeqCst);
    r.sh.stop_consuming.store(true, SeqCst);
    if let Some(p) = &r.proxies {
        p.heal_all();
    }
    let mut graceful = true;
    for nd in r.nodes.iter_mut() {
        if nd.alive() && !nd.stop(Duration::from_secs(20)) {
            graceful = false;
        }
    }
    nodes::write_pids(&r.pid_file, &mut r.nodes);
    let v = r.sh.ledger().verdict();
    let mut notes: Vec<String> = load::lost_ranges(&r.sh.side());
    if !fig.epochs.is_empty() {
        notes.push(format!("epochs: {}", fig.epochs.join("; ")));
    }
    notes.extend(v.examples.iter().cloned());
    notes.extend(fig.partition_failures.iter().cloned());
    notes.extend(fig.notes.iter().cloned());
    notes.extend(
        r.disagree_examples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned(),
    );
    let mut ok = v.lost == 0
        && v.corrupt == 0
        && v.unknown_ids == 0
        && v.confirmed > 0
        && fig.recover_timeouts == 0
        && fig.partition_failures.is_empty();
    let error = match &result {
        Ok(()) => String::new(),
        Err(e) => {
            ok = false;
            notes.push(format!("run stopped: {e}"));
            e.clone()
        }
    };
    if !graceful {
        notes.push("a node did not stop within 20 s of SIGTERM (killed)".into());
    }
    let redelivered = v.redelivered_unacked
        + v.redelivered_ack_in_flight
        + v.redelivered_ack_unsynced
        + v.duplicated;
    let log_terms = raftlog::committed_terms(&r.logs);
    let log_el = |from: &str, to: &str| {
        if to.is_empty() {
            "null".to_string()
        } else {
            raftlog::elections(&log_terms, from, to).to_string()
        }
    };
    let cut_delivered = r.sh.side().cut_delivered;
    let el = r.elections.lock().unwrap_or_else(|p| p.into_inner());
    let terms: Vec<String> = (0..2)
        .map(|q| match (el.first_term[q], el.term[q]) {
            (Some(a), Some(b)) => format!("{}", b - a),
            _ => "null".into(),
        })
        .collect();
    let line = format!(
        concat!(
            "{{\"test\":\"cluster\",\"nodes\":{},\"cycles\":{},\"cycles_done\":{},\"secs\":{:.0},",
            "\"sent\":{},\"confirmed\":{},\"nacked\":{},\"unconfirmed\":{},\"deliveries\":{},",
            "\"lost\":{},\"redelivered\":{},\"redelivered_unacked\":{},\"redelivered_after_ack\":{},",
            "\"unknown\":{},\"corrupt\":{},\"reconnects\":{},",
            "\"recover_confirm_ms\":{},\"recover_delivery_ms\":{},\"recover_timeouts\":{},",
            "\"restart_ms\":{},\"online_ms\":{},",
            "\"declare_not_everywhere\":{},\"leader_not_shown\":{},\"leader_from_log\":{},\"leader_disagreements\":{},\"leader_changes\":{},\"elections\":{{\"setup\":{},\"kills\":{},\"partitions\":{}}},\"minority_delivered\":[{},{}],\"term_delta\":[{}],\"proxy_connections\":{},\"proxy_refused\":{},",
            "\"partitions\":[{}],\"graceful_stop\":{},\"error\":{:?}}}"
        ),
        r.o.nodes,
        r.o.cycles,
        fig.cycles_done,
        started.elapsed().as_secs_f64(),
        v.sent,
        v.confirmed,
        v.nacked,
        v.unconfirmed,
        v.deliveries,
        v.lost,
        redelivered,
        v.redelivered_unacked,
        redelivered - v.redelivered_unacked,
        v.unknown_ids,
        v.corrupt,
        r.sh.reconnects.load(SeqCst),
        stats(&fig.confirm_ms),
        stats(&fig.delivery_ms),
        fig.recover_timeouts,
        stats(&fig.restart_ms),
        stats(&fig.online_ms),
        fig.declare_not_everywhere,
        fig.leader_not_shown,
        fig.leader_from_log,
        r.disagreements.load(SeqCst),
        el.changes.len(),
        log_el("", &fig.stamps[1]),
        log_el(&fig.stamps[1], &fig.stamps[2]),
        log_el(&fig.stamps[2], "9"),
        cut_delivered[0],
        cut_delivered[1],
        terms.join(","),
        r.proxies.as_ref().map(|p| p.accepted()).unwrap_or(0),
        r.proxies.as_ref().map(|p| p.refused()).unwrap_or(0),
        fig.partitions.join(","),
        graceful,
        error
    );
    drop(el);
    notes.extend(
        r.sh.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .take(10)
            .cloned(),
    );
    if r.o.work_dir.is_none() {
        if ok && !r.o.keep {
            let _ = std::fs::remove_dir_all(&work);
        } else {
            notes.push(format!("work directory kept: {}", work.display()));
        }
    }
    Ok((ok, line, notes))
}

/// The leader most of the answering nodes name (`answers[i]`: node i's `leader`); on a
/// tie, the one named by a node other than itself (a restarted node may name itself from
/// its persisted vote until it hears from the real leader). Also whether they disagreed.
fn agreed_leader(names: &[String], answers: &[Option<String>]) -> (Option<String>, bool) {
    let named: Vec<(usize, &String)> = answers
        .iter()
        .enumerate()
        .filter_map(|(i, a)| a.as_ref().map(|a| (i, a)))
        .collect();
    let disagree = named.windows(2).any(|w| w[0].1 != w[1].1);
    let score = |l: &String| {
        let votes = named.iter().filter(|(_, a)| *a == l).count();
        let by_others = named
            .iter()
            .filter(|(i, a)| *a == l && names.get(*i) != Some(l))
            .count();
        (votes, by_others)
    };
    let best = named
        .iter()
        .map(|(_, l)| *l)
        .max_by_key(|l| score(l))
        .cloned();
    (best, disagree)
}

/// The time of day (UTC, HH:MM:SS.mmm), to find a moment in the nodes' logs.
fn utc_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = t.as_millis() % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// {"median":..,"max":..,"n":..} of a list of milliseconds (nulls when empty).
fn stats(v: &[f64]) -> String {
    if v.is_empty() {
        return "{\"median\":null,\"max\":null,\"n\":0}".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "{{\"median\":{:.0},\"max\":{:.0},\"n\":{}}}",
        s[s.len() / 2],
        s[s.len() - 1],
        s.len()
    )
}

fn write_cookie(path: &std::path::Path, seed: u64) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut rng = Rng::new(seed ^ 0x5eed_c00c_1e00);
    let secret: String = (0..4).map(|_| format!("{:016x}", rng.next())).collect();
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, secret.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// SIGINT or SIGTERM: kill every node we started (by pid), then exit.
async fn on_signal(flag: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    flag.store(true, SeqCst);
    let pids = nodes::LIVE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for pid in pids {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    eprintln!("warren-faults cluster: interrupted; nodes killed");
    std::process::exit(130);
}

impl Run {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt_handle.block_on(f)
    }

    /// Ok while the budget lasts and nobody interrupted us.
    fn check(&self) -> Result<(), String> {
        if self.interrupted.load(SeqCst) {
            return Err("interrupted".into());
        }
        if Instant::now() > self.deadline {
            return Err(format!("budget of {} s spent", self.o.budget));
        }
        Ok(())
    }

    fn sleep(&self, d: Duration) -> Result<(), String> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.check()?;
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
        }
        Ok(())
    }

    fn pids(&mut self) {
        nodes::write_pids(&self.pid_file, &mut self.nodes);
    }

    /// A queue's management record from the first node that answers (not `excluded`).
    fn queue_info(&self, q: usize, skip: Option<usize>) -> Option<(usize, Json)> {
        let path = format!("/api/queues/%2F/{}", self.sh.queues[q]);
        for (i, nd) in self.nodes.iter().enumerate() {
            if Some(i) == skip || self.excluded[i].load(SeqCst) {
                continue;
            }
            if let Ok((200, body)) =
                self.block_on(http::get(nd.mgmt, &path, Duration::from_secs(2)))
            {
                if let Ok(j) = Json::parse(&body) {
                    return Some((i, j));
                }
            }
        }
        None
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The leader of queue `q` as a node index (one node: that node).
    fn leader(&self, q: usize) -> Leader {
        let Some((_, j)) = self.queue_info(q, None) else {
            return Leader::Unknown;
        };
        match j.get("leader") {
            Some(_) => {
                // Every live node's view; the one most of them share.
                let path = format!("/api/queues/%2F/{}", self.sh.queues[q]);
                let answers: Vec<Option<String>> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, nd)| {
                        if self.excluded[i].load(SeqCst) {
                            return None;
                        }
                        match self.block_on(http::get(nd.mgmt, &path, Duration::from_secs(2))) {
                            Ok((200, body)) => Json::parse(&body).ok().and_then(|j| {
                                j.get("leader").and_then(Json::str).map(str::to_string)
                            }),
                            _ => None,
                        }
                    })
                    .collect();
                let (best, disagree) = agreed_leader(&self.names, &answers);
                if disagree {
                    self.disagreements.fetch_add(1, SeqCst);
                    let mut ex = self
                        .disagree_examples
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if ex.len() < 3 {
                        ex.push(format!(
                            "{} leader per node: {answers:?}",
                            raftlog::stamp_now()
                        ));
                    }
                }
                best.and_then(|n| self.node_index(&n))
                    .map_or(Leader::Unknown, Leader::Node)
            }
            None if self.nodes.len() == 1 => Leader::Node(0),
            None => match raftlog::leader(&self.logs) {
                Some(id) if (1..=self.nodes.len() as u64).contains(&id) => {
                    Leader::FromLog(id as usize - 1)
                }
                _ => Leader::NotShown,
            },
        }
    }

    /// Whether every queue lists all nodes in `online` (always, with one node). When the
    /// API shows no `online` for a quorum queue: every node running and answering for it.
    fn all_online(&self) -> bool {
        let n = self.nodes.len();
        (0..self.sh.queues.len()).all(|q| match self.queue_info(q, None) {
            Some((_, j)) => match j.get("online") {
                Some(on) => {
                    on.strings().len() == n && j.get("leader").and_then(Json::str).is_some()
                }
                None if n == 1 => true,
                None => {
                    let path = format!("/api/queues/%2F/{}", self.sh.queues[q]);
                    self.nodes.iter().all(|nd| {
                        matches!(
                            self.block_on(http::get(nd.mgmt, &path, Duration::from_secs(2))),
                            Ok((200, _))
                        )
                    })
                }
            },
            None => false,
        })
    }

    fn wait_for(
        &self,
        what: &str,
        patience: Duration,
        mut cond: impl FnMut(&Self) -> bool,
    ) -> Result<Duration, String> {
        let t = Instant::now();
        loop {
            self.check()?;
            if cond(self) {
                return Ok(t.elapsed());
            }
            if t.elapsed() > patience {
                return Err(format!("{what}: not within {patience:?}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn scenario(&mut self, seed: u64, fig: &mut Figures) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        // Start every node at once: each waits for a majority before it serves.
        for i in 0..self.nodes.len() {
            self.nodes[i].spawn()?;
        }
        self.pids();
        for i in 0..self.nodes.len() {
            self.check()?;
            let took = self.nodes[i].wait_ready(Duration::from_secs(120))?;
            eprintln!(
                "cluster: {} ready after {:.1} s",
                self.names[i],
                took.as_secs_f64()
            );
        }
        // The queues, declared on node 1 (retried while the cluster settles).
        let t = Instant::now();
        loop {
            self.check()?;
            match self.block_on(load::declare_quorum(&self.sh.targets[0], &self.sh.queues)) {
                Ok(()) => break,
                Err(e) if t.elapsed() > Duration::from_secs(60) => {
                    return Err(format!("declaring the quorum queues: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
        // Right after declare-ok, the other nodes must know the queues: a publish routed
        // there before they applied the declare would be unroutable (confirmed, dropped).
        let probes: Vec<_> = (1..self.nodes.len())
            .map(|i| {
                let t = self.sh.targets[i].clone();
                let qs = self.sh.queues.clone();
                self.rt_handle
                    .spawn(async move { (i, load::passive_all(&t, &qs).await) })
            })
            .collect();
        for p in probes {
            if let Ok((i, Err(e))) = self.block_on(p) {
                fig.notes.push(format!(
                    "passive queue.declare on {} right after declare-ok on rabbit@n1: {e}",
                    self.names[i]
                ));
                fig.declare_not_everywhere += 1;
            }
        }
        let took = self.wait_for(
            "queues with a leader and every member online",
            Duration::from_secs(60),
            |r| r.all_online(),
        )?;
        eprintln!(
            "cluster: queues declared, all members online after {:.1} s",
            took.as_secs_f64()
        );
        if let Some((_, j)) = self.queue_info(0, None) {
            eprintln!(
                "cluster: q1 leader {:?}, members {:?}",
                j.get("leader").and_then(Json::str),
                j.get("members").map(Json::strings)
            );
        }
        self.spawn_poller();
        // Load: publishers on nodes 1 and 2, consumers on 3 and 1 (with 3 nodes).
        let n = self.nodes.len();
        let mut pubs = Vec::new();
        for p in 0..self.o.publishers {
            pubs.push(
                self.rt_handle
                    .spawn(load::publisher(self.sh.clone(), p as u32, p % n)),
            );
        }
        let mut cons = Vec::new();
        for c in 0..self.o.consumers {
            let home = if c % 2 == 0 { n - 1 } else { 0 };
            cons.push(
                self.rt_handle
                    .spawn(load::consumer(self.sh.clone(), c, home)),
            );
        }
        self.wait_for(
            "a first confirm and delivery",
            Duration::from_secs(30),
            |r| {
                let l = r.sh.ledger();
                l.confirmed() > 0 && l.deliveries > 0
            },
        )?;
        let run_start = Instant::now();
        fig.stamps[0] = raftlog::stamp_now();
        for cycle in 1..=self.o.cycles {
            self.kill_cycle(cycle, &mut rng, fig)?;
            fig.cycles_done = cycle;
            let l = self.sh.ledger();
            eprintln!(
                "cluster: cycle {cycle}/{} after {:.0} s ({}): {} sent, {} confirmed, {} deliveries; recover {:?} / {:?} ms",
                self.o.cycles,
                run_start.elapsed().as_secs_f64(),
                fig.last_kill,
                l.sent,
                l.confirmed(),
                l.deliveries,
                fig.confirm_ms.last().map(|x| *x as u64),
                fig.delivery_ms.last().map(|x| *x as u64),
            );
        }
        fig.stamps[2] = raftlog::stamp_now();
        if n == 3 {
            for round in 0..self.o.partitions.min(2) {
                self.partition(round, fig)?;
            }
        }
        // The end: stop publishing, drain, stop consuming.
        self.sh.stop_publishing.store(true, SeqCst);
        let stall = self.sh.stall + Duration::from_secs(10);
        self.block_on(async {
            for p in pubs {
                let _ = tokio::time::timeout(stall, p).await;
            }
        });
        self.drain()?;
        self.sh.stop_consuming.store(true, SeqCst);
        self.block_on(async {
            for c in cons {
                let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
            }
        });
        Ok(())
    }

    fn kill_cycle(&mut self, cycle: u32, rng: &mut Rng, fig: &mut Figures) -> Result<(), String> {
        self.sleep(Duration::from_millis(
            rng.range(self.o.min_ms, self.o.max_ms),
        ))?;
        let t = Instant::now();
        let leader = loop {
            self.check()?;
            match self.leader(0) {
                Leader::Node(l) => break l,
                Leader::FromLog(l) => {
                    fig.leader_from_log += 1;
                    break l;
                }
                Leader::NotShown => {
                    // Not the leader on purpose, then: every node in turn.
                    fig.leader_not_shown += 1;
                    break (cycle as usize - 1) % self.nodes.len();
                }
                Leader::Unknown => {}
            }
            if t.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "cycle {cycle}: no leader of queue 1 in the API for 30 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        if !self.nodes[leader].alive() {
            return Err(format!(
                "cycle {cycle}: {} died on its own (see its log)",
                self.names[leader]
            ));
        }
        self.excluded[leader].store(true, SeqCst);
        let at = Instant::now();
        fig.last_kill = format!("{} killed at {}", self.names[leader], utc_now());
        if fig.stamps[1].is_empty() {
            fig.stamps[1] = raftlog::stamp_now();
        }
        self.nodes[leader].kill9();
        let e = self.sh.epoch.fetch_add(1, SeqCst) + 1;
        fig.epochs.push(format!("{e}: {}", fig.last_kill));
        self.sh.watch_kill(at);
        self.pids();
        // Recovery: a confirm and a delivery of messages published after the kill.
        let patience = Duration::from_secs_f64(self.o.recover_secs);
        let single = self.nodes.len() == 1;
        if single {
            // One node: nothing can recover before it is back.
            self.restart(leader, fig)?;
        }
        let got = self.wait_for("recovery", patience, |r| {
            let s = r.sh.side();
            s.kill
                .as_ref()
                .is_some_and(|k| k.confirm.is_some() && k.delivery.is_some())
        });
        let k = self.sh.side().kill.take();
        if let Some(k) = k {
            match (k.confirm, k.delivery) {
                (Some(c), Some(d)) => {
                    fig.confirm_ms.push(c.as_secs_f64() * 1000.0);
                    fig.delivery_ms.push(d.as_secs_f64() * 1000.0);
                }
                (c, d) => {
                    fig.recover_timeouts += 1;
                    let e = got.err().unwrap_or_default();
                    fig.partition_failures.push(format!(
                        "cycle {cycle}: after killing leader {} no recovery within {patience:?} (confirm {c:?}, delivery {d:?}; {e})",
                        self.names[leader]
                    ));
                    self.check()?;
                }
            }
        }
        if !single {
            self.restart(leader, fig)?;
        }
        let took = self.wait_for(
            &format!("cycle {cycle}: all members online"),
            Duration::from_secs(60),
            |r| r.all_online(),
        )?;
        fig.online_ms.push(took.as_secs_f64() * 1000.0);
        Ok(())
    }

    fn restart(&mut self, i: usize, fig: &mut Figures) -> Result<(), String> {
        self.nodes[i].spawn()?;
        self.pids();
        let took = self.nodes[i].wait_ready(Duration::from_secs(60))?;
        self.excluded[i].store(false, SeqCst);
        fig.restart_ms.push(took.as_secs_f64() * 1000.0);
        Ok(())
    }

    /// Cut a node off (round 0: a follower of queue 1, round 1: its leader), publish to it,
    /// try a declare on it, heal, and check what it confirmed.
    fn partition(&mut self, round: u32, fig: &mut Figures) -> Result<(), String> {
        let kind = if round == 0 { "follower" } else { "leader" };
        let t = Instant::now();
        let mut leader_known = true;
        let leader = loop {
            self.check()?;
            match self.leader(0) {
                Leader::Node(l) => break l,
                Leader::FromLog(l) => {
                    fig.leader_from_log += 1;
                    break l;
                }
                Leader::NotShown => {
                    fig.leader_not_shown += 1;
                    leader_known = false;
                    break 0;
                }
                Leader::Unknown if t.elapsed() > Duration::from_secs(30) => {
                    return Err(format!("partition {kind}: no leader of queue 1 for 30 s"))
                }
                Leader::Unknown => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        let k = if round == 0 {
            (leader + 1) % self.nodes.len()
        } else {
            leader
        };
        let name = self.names[k].clone();
        eprintln!("cluster: partition at {}", utc_now());
        eprintln!(
            "cluster: partition: cutting off {name} ({kind} of q1) for {} s",
            self.o.cut_secs
        );
        // A publisher pinned to that node, publishing before, during and after the cut.
        let stop = Arc::new(AtomicBool::new(false));
        let pinned = self.rt_handle.spawn(load::pinned_publisher(
            self.sh.clone(),
            PINNED + round,
            k,
            self.o.pinned_rate,
            // It stays on the cut node through the cut and well after the heal, to see
            // every confirm or nack the node still sends.
            self.sh.stall + Duration::from_secs_f64(self.o.cut_secs),
            stop.clone(),
        ));
        // And one on a node of the majority side, for its first confirm after the cut.
        let majority = self.rt_handle.spawn(load::pinned_publisher(
            self.sh.clone(),
            PINNED + 10 + round,
            (k + 1) % self.nodes.len(),
            self.o.pinned_rate,
            self.sh.stall,
            stop.clone(),
        ));
        self.sleep(Duration::from_millis(1500))?;
        self.sh.side().round = round as usize;
        self.sh.side().cut = Some(CutWatch {
            node: k,
            ..CutWatch::default()
        });
        let proxies = self.proxies.as_ref().ok_or("no proxies")?;
        proxies.isolate(k, true);
        // The cut counts from the moment every connection of the cut pairs is gone.
        let t = Instant::now();
        while !proxies.idle(k) && t.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !proxies.idle(k) {
            return Err(format!(
                "partition {kind}: the proxies of {name} still forward 2 s after the cut"
            ));
        }
        let cut_at = Instant::now();
        let cut_stamp = raftlog::stamp_now();
        if let Some(c) = self.sh.side().cut.as_mut() {
            c.at = Some(cut_at);
        }
        self.excluded[k].store(true, SeqCst);
        let e = self.sh.epoch.fetch_add(1, SeqCst) + 1;
        fig.epochs.push(format!("{e}: {name} cut at {cut_stamp}"));
        // A declare on the cut node must not succeed while it is cut off.
        let cut = Duration::from_secs_f64(self.o.cut_secs);
        let target = self.sh.targets[k].clone();
        let qname = format!("faults.cluster.minority.{round}");
        let declare = self.rt_handle.spawn(async move {
            let t = Instant::now();
            let r = tokio::time::timeout(cut.saturating_sub(Duration::from_millis(500)), async {
                let mut c = crate::amqp::Conn::open(&target, 1 << 16).await?;
                c.open_channel(1).await?;
                c.rpc(1, load::quorum_declare(&qname)).await
            })
            .await;
            (t.elapsed(), r)
        });
        self.sleep(cut)?;
        proxies.isolate(k, false);
        let healed = Instant::now();
        let heal_stamp = raftlog::stamp_now();
        if let Some(c) = self.sh.side().cut.as_mut() {
            c.healed = Some(healed);
        }
        self.excluded[k].store(false, SeqCst);
        let e = self.sh.epoch.fetch_add(1, SeqCst) + 1;
        fig.epochs
            .push(format!("{e}: {name} healed at {heal_stamp}"));
        let declare = match self.block_on(declare) {
            Ok((t, Ok(Ok(m)))) => {
                let accepted = matches!(
                    m,
                    amq_protocol::protocol::AMQPClass::Queue(
                        amq_protocol::protocol::queue::AMQPMethod::DeclareOk(_)
                    )
                );
                if accepted {
                    fig.partition_failures.push(format!(
                        "partition {kind}: queue.declare on the cut node {name} succeeded during the cut ({} ms after it)",
                        t.as_millis()
                    ));
                }
                format!(
                    "{}: {} ms",
                    if accepted { "accepted" } else { "other reply" },
                    t.as_millis()
                )
            }
            Ok((t, Ok(Err(e)))) => format!("refused after {} ms: {e}", t.as_millis()),
            Ok((_, Err(_))) => "no answer during the cut".to_string(),
            Err(e) => format!("task failed: {e}"),
        };
        // The pinned publisher goes on 3 s after the heal (resent messages may be
        // confirmed then: that is allowed), then stops.
        self.sleep(Duration::from_secs(3))?;
        stop.store(true, SeqCst);
        let stall = self.sh.stall + Duration::from_secs_f64(self.o.cut_secs + 5.0);
        self.block_on(async {
            let _ = tokio::time::timeout(stall, pinned).await;
            let _ = tokio::time::timeout(stall, majority).await;
        });
        let online = self.wait_for(
            &format!("partition {kind}: all members online after the heal"),
            Duration::from_secs(60),
            |r| r.all_online(),
        )?;
        // Leader changes (API) and elections (logs): during the cut, and in the 10 s
        // after the heal (a node back from a cut calls elections at a higher term).
        self.sleep(Duration::from_secs(10).saturating_sub(healed.elapsed()))?;
        let (during, after) = {
            let el = self.elections.lock().unwrap_or_else(|p| p.into_inner());
            (
                el.count(cut_at, healed),
                el.count(healed, healed + Duration::from_secs(10)),
            )
        };
        // A declare the cut node refused (541 after its deadline) must not be applied
        // later: does the queue exist now?
        let minority_q = format!("faults.cluster.minority.{round}");
        let exists_after = self.queue_exists(&minority_q);
        if declare.starts_with("refused") && exists_after {
            fig.notes.push(format!(
                "partition {kind}: the declare of {minority_q} on the cut node was refused ({declare}) but the queue exists after the heal"
            ));
        }
        let terms = raftlog::committed_terms(&self.logs);
        let end_stamp = raftlog::stamp_now();
        let (el_during, el_after) = (
            raftlog::elections(&terms, &cut_stamp, &heal_stamp),
            raftlog::elections(&terms, &heal_stamp, &end_stamp),
        );
        let c = self.sh.side().cut.take().unwrap_or_default();
        if c.confirmed_during > 0 {
            fig.partition_failures.push(format!(
                "partition {kind}: the cut node {name} confirmed {} message(s) written to it during the cut: {}",
                c.confirmed_during,
                c.examples.join("; ")
            ));
        }
        let ms = |d: Option<Duration>| {
            d.map_or("null".to_string(), |d| {
                format!("{:.0}", d.as_secs_f64() * 1000.0)
            })
        };
        fig.partitions.push(format!(
            concat!(
                "{{\"cut\":\"{}\",\"leader_known\":{},\"node\":\"{}\",\"secs\":{},\"sent_to_cut_node\":{},\"confirmed_during_cut\":{},",
                "\"nacked\":{},\"confirmed_after_heal\":{},\"majority_confirm_ms\":{},\"declare\":{:?},\"declared_queue_exists_after_heal\":{},",
                "\"leader_changes_during\":{},\"leader_changes_after_heal\":{},\"elections_during\":{},\"elections_after_heal\":{},\"online_after_heal_ms\":{}}}"
            ),
            kind,
            leader_known,
            name,
            self.o.cut_secs,
            c.sent_during,
            c.confirmed_during,
            c.nacked,
            c.confirmed_after_heal,
            ms(c.majority_confirm),
            declare,
            exists_after,
            during,
            after,
            el_during,
            el_after,
            online.as_millis()
        ));
        eprintln!(
            "cluster: partition {kind}: {}",
            fig.partitions.last().map(String::as_str).unwrap_or("")
        );
        Ok(())
    }

    /// Whether any node's API answers 200 for queue `name`.
    fn queue_exists(&self, name: &str) -> bool {
        let path = format!("/api/queues/%2F/{name}");
        self.nodes.iter().any(|nd| {
            matches!(
                self.block_on(http::get(nd.mgmt, &path, Duration::from_secs(2))),
                Ok((200, _))
            )
        })
    }

    /// `messages` of queue `q` on every node (None: no answer).
    fn messages(&self, q: usize) -> Vec<Option<f64>> {
        let path = format!("/api/queues/%2F/{}", self.sh.queues[q]);
        self.nodes
            .iter()
            .map(
                |nd| match self.block_on(http::get(nd.mgmt, &path, Duration::from_secs(2))) {
                    Ok((200, body)) => Json::parse(&body)
                        .ok()
                        .and_then(|j| j.get("messages").and_then(Json::num)),
                    _ => None,
                },
            )
            .collect()
    }

    /// Wait until the queues are empty, every delivery's ack was handled and nothing new
    /// arrived for 2 s.
    fn drain(&self) -> Result<(), String> {
        let t = Instant::now();
        let mut quiet: Option<(Instant, u64)> = None;
        loop {
            self.check()?;
            if t.elapsed() > Duration::from_secs(120) {
                let left: Vec<String> = (0..self.sh.queues.len())
                    .map(|q| format!("q{}: {:?} (per node)", q + 1, self.messages(q)))
                    .collect();
                return Err(format!(
                    "queues not drained within 120 s (messages {})",
                    left.join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
            // Every node's copy: a node that does not serve may show an empty one.
            let empty =
                (0..self.sh.queues.len()).all(|q| self.messages(q).iter().all(|m| *m == Some(0.0)));
            let seen = self.sh.ledger().deliveries;
            let idle = empty && self.sh.outstanding.load(SeqCst) == 0;
            quiet = match quiet {
                Some((since, s)) if idle && s == seen => {
                    if since.elapsed() > Duration::from_secs(2) {
                        return Ok(());
                    }
                    Some((since, s))
                }
                _ if idle => Some((Instant::now(), seen)),
                _ => None,
            };
        }
    }

    /// Polls the leader (and term, when shown) of each queue every 300 ms from a node that
    /// is neither dead nor cut off, and records every change.
    fn spawn_poller(&self) {
        let mgmt: Vec<SocketAddr> = self.nodes.iter().map(|n| n.mgmt).collect();
        let queues = self.sh.queues.clone();
        let excluded = self.excluded.clone();
        let el = self.elections.clone();
        let sh = self.sh.clone();
        let names = self.names.clone();
        self.rt_handle.spawn(async move {
            while !sh.stop_consuming.load(SeqCst) {
                for (q, name) in queues.iter().enumerate() {
                    let path = format!("/api/queues/%2F/{name}");
                    let mut answers = vec![None; mgmt.len()];
                    let mut term = None;
                    for (i, a) in mgmt.iter().enumerate() {
                        if excluded[i].load(SeqCst) {
                            continue;
                        }
                        let Ok((200, body)) =
                            http::get(*a, &path, Duration::from_millis(800)).await
                        else {
                            continue;
                        };
                        let Ok(j) = Json::parse(&body) else { continue };
                        answers[i] = j.get("leader").and_then(Json::str).map(str::to_string);
                        term = term.or(j.find_num("raft_term"));
                    }
                    let (leader, _) = agreed_leader(&names, &answers);
                    let mut e = el.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(t) = term {
                        if e.first_term[q].is_none() {
                            e.first_term[q] = Some(t);
                        }
                        e.term[q] = Some(t);
                    }
                    if let Some(l) = leader {
                        if e.last[q].as_ref().is_some_and(|p| *p != l) {
                            e.changes.push((Instant::now(), q, l.clone()));
                        }
                        e.last[q] = Some(l);
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::agreed_leader;

    #[test]
    fn the_leader_most_nodes_name() {
        let names: Vec<String> = (1..=3).map(|k| format!("rabbit@n{k}")).collect();
        let s = |x: &str| Some(x.to_string());
        // n1 restarted and names itself; n2 and n3 agree on n3.
        assert_eq!(
            agreed_leader(&names, &[s("rabbit@n1"), s("rabbit@n3"), s("rabbit@n3")]),
            (s("rabbit@n3"), true)
        );
        // One each: the one named by another node wins over a node naming itself.
        assert_eq!(
            agreed_leader(&names, &[s("rabbit@n1"), s("rabbit@n3"), None]).0,
            s("rabbit@n3")
        );
        assert_eq!(
            agreed_leader(&names, &[s("rabbit@n2"), s("rabbit@n2"), None]),
            (s("rabbit@n2"), false)
        );
        assert_eq!(agreed_leader(&names, &[None, None, None]), (None, false));
    }
}
