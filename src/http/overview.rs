//! `/api/overview` and `/api/nodes`: the broker as a whole, in RabbitMQ 3.10's shapes.
//!
//! The overview's versions say "3.10.8" where tools gate features on RabbitMQ's version
//! (`rabbitmq_version`, `management_version`, `product_version` stays warren's own,
//! `product_name` "warren"); the Erlang version keys are kept (tools read them) and say
//! there is no Erlang VM. Node figures are real where the system has them: resident
//! memory, the memory and disk alarms and limits, free disk space on the data
//! directory, open file descriptors, processors, uptime. Reads snapshots only.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::list::ListQuery;
use super::ranges::Ranges;
use super::Api;
use crate::stats::collector::key;
use crate::stats::history::VhostCharts;
use crate::stats::{json as sj, Counts, Stats, CHURN_NAMES};
use crate::store::iostats::IoFigures;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

/// The RabbitMQ version warren answers as (what its API and protocol follow).
pub const RABBITMQ_VERSION: &str = "3.10.8";

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/overview", get(overview))
        .route("/api/nodes", get(nodes))
        .route("/api/nodes/{name}", get(node))
}

fn exchange_types() -> Value {
    let t = |name: &str| json!({"name": name, "description": "AMQP ".to_owned() + name + " exchange, as per the AMQP specification", "enabled": true});
    // The plugin kinds, with the descriptions RabbitMQ's plugins give them.
    let plugin = |name: &str, description: &str| json!({"name": name, "description": description, "enabled": true});
    json!([
        t("direct"),
        t("fanout"),
        t("headers"),
        t("topic"),
        plugin("x-consistent-hash", "Consistent Hashing Exchange"),
        plugin(
            "x-random",
            "Randomly picks a binding (queue) to route via (to)."
        ),
        plugin("x-recent-history", "Recent History Exchange."),
        plugin("x-delayed-message", "Delayed Message Exchange."),
    ])
}

async fn overview(
    caller: Caller,
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let ranges = Ranges::parse(&pairs)?;
    let stats = &api.broker.stats;
    let monitor = caller.is_monitoring();
    let mut m = json!({
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400],
            "basic": [600, 3600],
            "detailed": [600],
        },
        "exchange_types": exchange_types(),
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "warren",
        "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": "warren",
        "erlang_version": "none",
        "erlang_full_version": "none (warren is written in Rust)",
        "release_series_support_status": "supported",
        "disable_stats": false,
        "enable_queue_totals": false,
        "statistics_db_event_queue": 0,
    });
    let Value::Object(map) = &mut m else {
        return Err(ApiError::internal("overview"));
    };
    // Message stats and totals over the vhosts the caller sees.
    let vhosts: Vec<_> = api
        .broker
        .vhost_list()
        .into_iter()
        .filter(|v| caller.sees_vhost(&api, &v.name))
        .collect();
    let counts = stats.vhost_counts();
    let mut total = Counts::default();
    for v in &vhosts {
        if let Some(c) = counts.get(&v.name) {
            total.add(c);
        }
    }
    let mut ms = sj::message_stats(stats, &total, key::OVERALL);
    if let Value::Object(ms) = &mut ms {
        // The message store's reads and writes are not counted yet: RabbitMQ's keys, 0.
        sj::fill(ms, &["disk_reads", "disk_writes"], &[0, 0], None);
    }
    map.insert("message_stats".into(), ms);
    let mut churn = Map::new();
    sj::fill(
        &mut churn,
        &CHURN_NAMES,
        &stats.churn_counts(),
        stats.rates(key::CHURN).as_deref(),
    );
    map.insert("churn_rates".into(), Value::Object(churn));
    let mut totals = Map::new();
    let names = ["messages", "messages_ready", "messages_unacknowledged"];
    let sums = vhosts.iter().fold([0u64; 3], |mut acc, v| {
        let t = stats
            .sampled(&key::vhost_totals(&v.name))
            .unwrap_or_default();
        for (a, b) in acc.iter_mut().zip(t) {
            *a += b;
        }
        acc
    });
    sj::fill(
        &mut totals,
        &names,
        &sums,
        stats.rates(key::QUEUE_TOTALS).as_deref(),
    );
    map.insert("queue_totals".into(), Value::Object(totals));
    let conns: Vec<_> = stats
        .connections()
        .into_iter()
        .filter(|c| monitor || c.info.user == caller.name)
        .collect();
    let channels: Vec<_> = conns.iter().flat_map(|c| c.channels()).collect();
    let mut objects = json!({
        "channels": channels.len(),
        "connections": conns.len(),
        "exchanges": vhosts.iter().map(|v| v.exchange_count()).sum::<usize>(),
        "queues": vhosts.iter().map(|v| v.queue_list().len()).sum::<usize>(),
    });
    if monitor {
        objects["consumers"] = json!(channels
            .iter()
            .map(|ch| ch.consumers().len())
            .sum::<usize>());
        let node = &api.node;
        map.insert("node".into(), json!(node.name));
        let listeners: Vec<Value> = node
            .listeners
            .iter()
            .map(|l| json!({"node": node.name, "protocol": l.protocol, "ip_address": l.ip.to_string(), "port": l.port, "socket_opts": {}}))
            .collect();
        map.insert("listeners".into(), Value::Array(listeners));
        map.insert("contexts".into(), contexts(&api));
    }
    map.insert("object_totals".into(), objects);
    let names: Vec<&str> = vhosts.iter().map(|v| v.name.as_str()).collect();
    add_history(map, &names, stats, ranges);
    Ok(Json(q.cut_one(m)))
}

/// The `samples` asked for: message rates and queued messages over the vhosts the
/// caller sees; churn (the broker's) only when both are asked, as RabbitMQ answers.
fn add_history(map: &mut Map<String, Value>, vhosts: &[&str], stats: &Stats, ranges: Ranges) {
    let charts = VhostCharts {
        history: stats.history(),
        vhosts,
        now_ms: stats.now_ms(),
    };
    if let (Some(r), Some(Value::Object(ms))) = (ranges.msg_rates, map.get_mut("message_stats")) {
        charts.message_stats(ms, r);
    }
    if let (Some(r), Some(Value::Object(t))) = (ranges.lengths, map.get_mut("queue_totals")) {
        charts.totals(t, r);
    }
    if let (Some(_), Some(r), Some(Value::Object(c))) =
        (ranges.msg_rates, ranges.lengths, map.get_mut("churn_rates"))
    {
        charts.churn(c, r);
    }
}

/// The HTTP listeners, as `contexts` lists them.
fn contexts(api: &Api) -> Value {
    let node = &api.node;
    Value::Array(
        node.listeners
            .iter()
            .filter(|l| l.protocol.starts_with("http"))
            .map(|l| {
                let description = match l.protocol {
                    "http" => "RabbitMQ Management",
                    _ => "RabbitMQ Prometheus",
                };
                json!({"ssl_opts": [], "node": node.name, "description": description, "path": "/", "ip": l.ip.to_string(), "port": l.port.to_string()})
            })
            .collect(),
    )
}

async fn nodes(
    caller: Caller,
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_monitoring()?;
    let mut all = vec![node_json(&api)];
    if let Some((_, members, online)) = api.broker.cluster_placement() {
        // The other members of the cluster: their names and whether this node is
        // linked to them (their own figures stay on their own API in phase 1).
        for name in members.iter().filter(|n| **n != api.node.name) {
            all.push(serde_json::json!({
                "name": name,
                "running": online.contains(name),
                "type": "disc",
            }));
        }
        all.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    Ok(Json(q.respond(all)?))
}

async fn node(
    caller: Caller,
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_monitoring()?;
    // RabbitMQ 3.10 answers 500 for a node it does not know; 404 says what happened.
    if name != api.node.name {
        return Err(ApiError::not_found());
    }
    Ok(Json(q.cut_one(node_json(&api))))
}

/// This node's figures, as `/api/nodes` shows a node.
fn node_json(api: &Api) -> Value {
    let broker = &api.broker;
    let stats = &broker.stats;
    let node = &api.node;
    let memory = &broker.memory;
    let alarmed = memory.alarmed();
    let reason = memory.alarm_reason();
    let mem_alarm = alarmed && reason.contains("memory");
    let disk_alarm = alarmed && reason.contains("disk");
    // In memory there is no data directory to ask: no free space is reported, and no
    // limit, so the node reads as a RAM node with no disk alarm (RabbitMQ's type "ram").
    let data_dir = node.config.disk_data_dir();
    let disk_free = data_dir
        .and_then(crate::broker::disk::free_bytes)
        .unwrap_or(0);
    let fd_total = fd_limit();
    let connections = stats.connections().len();
    let (workers, tasks) = runtime_figures();
    let mut m = json!({
        "name": node.name,
        "type": if data_dir.is_some() { "disc" } else { "ram" },
        // warren's own: where durable state is kept, "disk" or "memory".
        "storage": if data_dir.is_some() { "disk" } else { "memory" },
        "running": true,
        "os_pid": std::process::id().to_string(),
        "mem_used": crate::broker::memory::resident_bytes().unwrap_or_else(|| memory.used()),
        "mem_limit": memory.limit(),
        "mem_alarm": mem_alarm,
        "mem_calculation_strategy": "rss",
        // warren's own: what queued messages hold against the --queue-memory budget,
        // past which queues page their tails to disk.
        "queue_memory_used": memory.used(),
        "queue_memory_limit": node.config.queue_memory,
        "disk_free": disk_free,
        "disk_free_limit": node.config.disk_free_limit_in_use(),
        "disk_free_alarm": disk_alarm,
        "fd_used": fd_used(),
        "fd_total": fd_total,
        "sockets_used": connections,
        "sockets_total": node.config.max_connections.map_or(fd_total, |m| m as u64),
        "proc_used": tasks,
        "proc_total": 1_048_576,
        "processors": workers,
        "run_queue": 0,
        "uptime": node.uptime_ms(),
        "rates_mode": "basic",
        "net_ticktime": 60,
        "partitions": [],
        "cluster_links": [],
        "db_dir": data_dir.map_or_else(
            || crate::config::IN_MEMORY_DATA_DIR.to_owned(),
            |d| d.display().to_string(),
        ),
        "config_files": [],
        "log_files": [],
        "enabled_plugins": ["rabbitmq_management"],
        "applications": [],
        "exchange_types": exchange_types(),
        "auth_mechanisms": broker.auth_mechanisms.iter().map(|m| json!({"name": m.name(), "enabled": true})).collect::<Vec<_>>(),
        "contexts": contexts(api),
    });
    if let Value::Object(map) = &mut m {
        sj::fill(
            map,
            &CHURN_NAMES,
            &stats.churn_counts(),
            stats.rates(key::CHURN).as_deref(),
        );
        // Gauges get RabbitMQ's `_details` (no history is kept for them: rate 0).
        for k in [
            "mem_used",
            "fd_used",
            "sockets_used",
            "proc_used",
            "disk_free",
        ] {
            map.insert(format!("{k}_details"), json!({"rate": 0.0}));
        }
        io_figures(map, &broker.io_figures());
        // Erlang VM and Mnesia figures warren has no equivalent of: RabbitMQ's keys, 0.
        sj::fill(map, &ERLANG_ONLY, &[0; ERLANG_ONLY.len()], None);
        map.insert("metrics_gc_queue_length".into(), json!({}));
        map.insert("ra_open_file_metrics".into(), json!({}));
    }
    m
}

/// Counters of RabbitMQ's node object with no warren equivalent (kept for shape).
const ERLANG_ONLY: [&str; 10] = [
    "context_switches",
    "gc_num",
    "gc_bytes_reclaimed",
    "io_seek_count",
    "io_seek_avg_time",
    "io_reopen_count",
    "mnesia_ram_tx_count",
    "mnesia_disk_tx_count",
    "queue_index_read_count",
    "queue_index_write_count",
];

/// The message store's and page files' I/O as RabbitMQ's node reports its file I/O:
/// counts, bytes, mean milliseconds per call, and messages written to and read back from
/// the message store.
fn io_figures(map: &mut Map<String, Value>, io: &IoFigures) {
    sj::fill(
        map,
        &[
            "io_read_count",
            "io_read_bytes",
            "io_write_count",
            "io_write_bytes",
            "io_sync_count",
            "msg_store_read_count",
            "msg_store_write_count",
        ],
        &[
            io.read.count,
            io.read.bytes,
            io.write.count,
            io.write.bytes,
            io.sync.count,
            io.msg_store_read,
            io.msg_store_write,
        ],
        None,
    );
    for (name, op) in [
        ("io_read_avg_time", io.read),
        ("io_write_avg_time", io.write),
        ("io_sync_avg_time", io.sync),
    ] {
        map.insert(name.to_owned(), json!(op.avg_ms()));
        map.insert(format!("{name}_details"), json!({ "rate": 0.0 }));
    }
}

/// Open file descriptors of this process (/proc/self/fd), 0 where unknown.
fn fd_used() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The soft limit on open files.
fn fd_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } {
        0 => l.rlim_cur,
        _ => 0,
    }
}

/// (worker threads, live tasks) of the runtime serving this request.
fn runtime_figures() -> (usize, usize) {
    let metrics = tokio::runtime::Handle::current().metrics();
    (metrics.num_workers(), metrics.num_alive_tasks())
}
