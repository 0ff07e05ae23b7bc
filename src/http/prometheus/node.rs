//! The node's families: process facts (memory, file descriptors, start time), the
//! limits that raise alarms, the alarms themselves, and who this node is.

use super::text::{Exposition, Kind};
use crate::access::attempts::Protocol;
use crate::http::Api;
use crate::store::iostats::IoFigures;
use std::time::UNIX_EPOCH;

/// The RabbitMQ release whose behaviour and metric names warren follows.
pub const RABBITMQ_VERSION: &str = "3.10.8";

pub fn write(api: &Api, out: &mut Exposition) {
    let memory = &api.broker.memory;
    let started = api
        .node
        .started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    out.family(
        "process_start_time_seconds",
        Kind::Gauge,
        "When the broker process started, in seconds since the Unix epoch",
    )
    .value("process_start_time_seconds", started as f64);
    let alarms = [
        (
            "rabbitmq_alarms_file_descriptor_limit",
            "1 while the file descriptor alarm is on (warren has none: always 0)",
            false,
        ),
        (
            "rabbitmq_alarms_free_disk_space_watermark",
            "1 while the disk alarm is on (free space under the limit, or a failed write)",
            memory.disk_alarm(),
        ),
        (
            "rabbitmq_alarms_memory_used_watermark",
            "1 while the memory alarm is on (publishers blocked)",
            memory.memory_alarm(),
        ),
    ];
    for (name, help, on) in alarms {
        out.family(name, Kind::Untyped, help)
            .value(name, u8::from(on));
    }
    let (open_fds, max_fds) = file_descriptors();
    let max_sockets = api
        .node
        .config
        .max_connections
        .map_or(max_fds, |m| m as u64);
    let gauges: [(&str, &str, f64); 7] = [
        (
            "rabbitmq_process_open_fds",
            "File descriptors the process has open",
            open_fds as f64,
        ),
        (
            "rabbitmq_process_max_fds",
            "The most file descriptors the process may open (soft limit)",
            max_fds as f64,
        ),
        (
            "rabbitmq_process_max_tcp_sockets",
            "The most client connections served at once (--max-connections, else the fd limit)",
            max_sockets as f64,
        ),
        (
            "rabbitmq_process_resident_memory_bytes",
            "Resident memory of the process, bytes",
            crate::broker::memory::resident_bytes().unwrap_or(0) as f64,
        ),
        (
            "rabbitmq_resident_memory_limit_bytes",
            "Memory limit above which publishers are blocked, bytes",
            memory.limit() as f64,
        ),
        (
            "rabbitmq_disk_space_available_bytes",
            "Free space on the data directory's file system, bytes",
            api.broker.disk_free().unwrap_or(0) as f64,
        ),
        (
            "rabbitmq_disk_space_available_limit_bytes",
            "Free space under which publishers are blocked, bytes",
            api.node.config.disk_free_limit_in_use() as f64,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, Kind::Gauge, help).value(name, value);
    }
    write_auth_attempts(api, out);
    write_io(&api.broker.io_figures(), out);
    let version = env!("CARGO_PKG_VERSION");
    out.family(
        "rabbitmq_build_info",
        Kind::Untyped,
        "Versions: the RabbitMQ release followed, and warren's own",
    )
    .sample(
        "rabbitmq_build_info",
        &[
            ("rabbitmq_version", RABBITMQ_VERSION),
            ("prometheus_plugin_version", version),
            ("prometheus_client_version", version),
            ("erlang_version", "none"),
            ("product_name", "warren"),
            ("product_version", version),
        ],
        1u8,
    );
    out.family(
        "rabbitmq_identity_info",
        Kind::Untyped,
        "This node's name and its cluster's",
    )
    .sample(
        "rabbitmq_identity_info",
        &[
            ("rabbitmq_node", &api.node.name),
            ("rabbitmq_cluster", &api.node.name),
            ("rabbitmq_cluster_permanent_id", &api.node.name),
        ],
        1u8,
    );
}

/// Open file descriptors (entries of /proc/self/fd) and the soft limit.
fn file_descriptors() -> (u64, u64) {
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        0
    };
    (open, max)
}

/// The message store's and page files' file I/O, under RabbitMQ's names. Seeks and
/// reopens are 0 (positioned reads and writes; files stay open), and so are RabbitMQ's
/// queue index operations (its page files count as reads and writes).
fn write_io(io: &IoFigures, out: &mut Exposition) {
    let counters: [(&str, &str, f64); 15] = [
        (
            "rabbitmq_io_read_ops_total",
            "File reads",
            io.read.count as f64,
        ),
        (
            "rabbitmq_io_read_bytes_total",
            "Bytes read from files",
            io.read.bytes as f64,
        ),
        (
            "rabbitmq_io_write_ops_total",
            "File writes",
            io.write.count as f64,
        ),
        (
            "rabbitmq_io_write_bytes_total",
            "Bytes written to files",
            io.write.bytes as f64,
        ),
        (
            "rabbitmq_io_sync_ops_total",
            "fsyncs and fdatasyncs",
            io.sync.count as f64,
        ),
        (
            "rabbitmq_io_seek_ops_total",
            "File seeks (not counted: reads and writes are positioned or sequential)",
            0.0,
        ),
        (
            "rabbitmq_io_reopen_ops_total",
            "Files reopened (none: files stay open)",
            0.0,
        ),
        (
            "rabbitmq_msg_store_read_total",
            "Messages read back from the message store",
            io.msg_store_read as f64,
        ),
        (
            "rabbitmq_msg_store_write_total",
            "Messages written to the message store",
            io.msg_store_write as f64,
        ),
        (
            "rabbitmq_queue_index_read_ops_total",
            "Queue index reads (warren has no queue index: 0)",
            0.0,
        ),
        (
            "rabbitmq_queue_index_write_ops_total",
            "Queue index writes (warren has no queue index: 0)",
            0.0,
        ),
        (
            "rabbitmq_io_read_time_seconds_total",
            "Time spent in file reads, seconds",
            io.read.seconds,
        ),
        (
            "rabbitmq_io_write_time_seconds_total",
            "Time spent in file writes, seconds",
            io.write.seconds,
        ),
        (
            "rabbitmq_io_sync_time_seconds_total",
            "Time spent in fsyncs, seconds",
            io.sync.seconds,
        ),
        (
            "rabbitmq_io_seek_time_seconds_total",
            "Time spent in file seeks, seconds",
            0.0,
        ),
    ];
    for (name, help, value) in counters {
        out.family(name, Kind::Counter, help).value(name, value);
    }
}

/// Logins per protocol: attempted, succeeded, failed.
fn write_auth_attempts(api: &Api, out: &mut Exposition) {
    let families = [
        ("rabbitmq_auth_attempts_total", "Logins attempted"),
        (
            "rabbitmq_auth_attempts_succeeded_total",
            "Logins that succeeded",
        ),
        ("rabbitmq_auth_attempts_failed_total", "Logins refused"),
    ];
    for (i, (name, help)) in families.into_iter().enumerate() {
        out.family(name, Kind::Counter, help);
        for protocol in [Protocol::Http, Protocol::Amqp] {
            let (ok, failed) = api.broker.auth_attempts.get(protocol);
            let value = [ok + failed, ok, failed][i];
            out.sample(name, &[("protocol", protocol.label())], value as f64);
        }
    }
}
