//! Settings and their defaults, from the command line or `WARREN_*` environment variables.
//!
//! Read once by `main`; the library takes a `Config` so tests can build one in code.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;

/// warren: an AMQP 0-9-1 message broker that speaks the protocol as RabbitMQ does.
#[derive(Clone, Debug, Parser)]
#[command(name = "warren", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on (0.0.0.0 for every IPv4 interface, 127.0.0.1 for local only).
    #[arg(long, env = "WARREN_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// AMQP port; 0 picks a free port (the ready line says which).
    #[arg(long, env = "WARREN_PORT", default_value_t = 5672)]
    pub port: u16,

    /// Directory for durable state; created if missing.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "warren-data")]
    pub data_dir: PathBuf,

    /// Memory high watermark in bytes: above it, publishers are blocked until consumers
    /// catch up (RabbitMQ's vm_memory_high_watermark). Default: 40% of the machine's memory.
    #[arg(long, env = "WARREN_MEMORY_LIMIT")]
    pub memory_limit: Option<u64>,

    /// Log level or filter (error, warn, info, debug, trace, or e.g. "warren=debug").
    #[arg(long, env = "WARREN_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    /// Listen on 127.0.0.1 on a free port, with a data directory of the caller's choice:
    /// what tests and embedders usually want.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            data_dir: data_dir.into(),
            memory_limit: None,
            log: "warn".into(),
        }
    }
}
