//! warren-faults: the clients of the fault scripts in benches/faults/ (see its README):
//! kill -9 under load, a full disk, hostile clients beside a well-behaved one, and many
//! queues held. Each subcommand starts and stops its own broker (a child process, only
//! ever signalled by its pid), is bounded in time, prints one JSON line of figures and
//! exits 1 when a guarantee is broken or the run could not finish (2: bad setup).

#[allow(dead_code)]
#[path = "../warren-bench/amqp.rs"]
mod amqp;
#[allow(dead_code)]
#[path = "../warren-bench/client.rs"]
mod client;

mod broker;
mod cluster;
mod diskfull;
mod hostile;
mod kill9;
mod ledger;
mod publisher;
mod queues;
mod wire;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use broker::{free_port, BrokerCmd};

#[derive(Parser)]
#[command(
    name = "warren-faults",
    about = "Fault scripts' clients (issues 10 and 17)"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    test: Test,
}

#[derive(Args)]
struct Common {
    /// The broker binary to start.
    #[arg(long, global = true, default_value = "target/release/warren")]
    broker: PathBuf,
    /// Its data directory (created if missing).
    #[arg(long, global = true, default_value = "warren-faults-data")]
    data_dir: PathBuf,
    /// File its log (stderr) is appended to.
    #[arg(long, global = true, default_value = "warren-faults.log")]
    log: PathBuf,
    /// Extra broker arguments, e.g. --broker-arg=--queue-memory=64MiB (repeatable).
    #[arg(long, global = true, allow_hyphen_values = true)]
    broker_arg: Vec<String>,
    /// Seed of the random choices (printed; default from the clock).
    #[arg(long, global = true)]
    seed: Option<u64>,
}

#[derive(Subcommand)]
enum Test {
    /// kill -9 the broker at random moments under confirmed persistent load.
    Kill9 {
        #[arg(long, default_value_t = 20)]
        cycles: u32,
        #[arg(long, default_value_t = 3)]
        publishers: u32,
        #[arg(long, default_value_t = 2)]
        queues: usize,
        /// Unconfirmed messages per publisher.
        #[arg(long, default_value_t = 64)]
        window: usize,
        #[arg(long, default_value_t = 50)]
        prefetch: u16,
        /// Body size in bytes (at least 16: the id and its check).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// The kill comes between these many milliseconds after the ready line.
        #[arg(long, default_value_t = 200)]
        min_ms: u64,
        #[arg(long, default_value_t = 1500)]
        max_ms: u64,
        /// Messages per second, all publishers together.
        #[arg(long, default_value_t = 3000.0)]
        rate: f64,
    },
    /// Fill a small file system with confirmed persistent messages.
    Diskfull(diskfull::Opts),
    /// A hostile client beside a well-behaved one that measures its throughput.
    Hostile(hostile::Opts),
    /// Declare many queues on one connection and report resident memory per queue.
    Queues(queues::Opts),
    /// Three nodes: kill -9 the leader of a quorum queue under load, cut nodes off
    /// through proxies; 0 confirmed messages lost, nothing confirmed by a minority.
    Cluster(cluster::Opts),
}

fn main() {
    let cli = Cli::parse();
    let c = cli.common;
    let seed = c.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ std::process::id() as u64
    });
    let port = match free_port(seed) {
        Ok(p) => p,
        Err(e) => fail_setup(&e.to_string()),
    };
    let _ = std::fs::create_dir_all(&c.data_dir);
    let cmd = BrokerCmd {
        bin: c.broker,
        data_dir: c.data_dir,
        port,
        extra: c.broker_arg,
        log: c.log,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail_setup(&format!("runtime: {e}")),
    };
    let outcome = match cli.test {
        Test::Kill9 {
            cycles,
            publishers,
            queues,
            window,
            prefetch,
            size,
            min_ms,
            max_ms,
            rate,
        } => {
            eprintln!("kill9: seed {seed}, port {port}");
            let o = kill9::Opts {
                cmd,
                cycles,
                publishers,
                queues,
                window,
                prefetch,
                size,
                min_ms,
                max_ms: max_ms.max(min_ms),
                seed,
                rate,
            };
            kill9::run(o, &rt).map(|v| {
                let ok = v.lost == 0 && v.duplicated == 0 && v.corrupt == 0 && v.unknown_ids == 0
                    && v.confirmed > 0 && v.examples.is_empty();
                let line = format!(
                    "{{\"test\":\"kill9\",\"cycles\":{cycles},\"sent\":{},\"confirmed\":{},\"nacked\":{},\"unconfirmed\":{},\"deliveries\":{},\"lost\":{},\"duplicated\":{},\"redelivered_unacked\":{},\"redelivered_ack_in_flight\":{},\"redelivered_ack_unsynced\":{},\"redelivery_flag_missing\":{},\"redelivery_flag_missing_synced\":{},\"corrupt\":{},\"unknown_ids\":{}}}",
                    v.sent, v.confirmed, v.nacked, v.unconfirmed, v.deliveries, v.lost,
                    v.duplicated, v.redelivered_unacked, v.redelivered_ack_in_flight,
                    v.redelivered_ack_unsynced, v.redelivery_flag_missing, v.redelivery_flag_missing_synced, v.corrupt,
                    v.unknown_ids
                );
                (ok, line, v.examples)
            })
        }
        Test::Diskfull(o) => diskfull::run(o, cmd, &rt),
        Test::Hostile(o) => hostile::run(o, cmd, &rt),
        Test::Queues(o) => queues::run(o, cmd, &rt),
        Test::Cluster(o) => cluster::run(o, cmd, seed, &rt),
    };
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok((ok, line, notes)) => {
            println!("{line}");
            for n in notes {
                eprintln!("  {n}");
            }
            if !ok {
                eprintln!("warren-faults: FAILED (a guarantee was broken; see above)");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("warren-faults: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

fn fail_setup(e: &str) -> ! {
    eprintln!("warren-faults: {e}");
    std::process::exit(2);
}
