//! warren-bench: an AMQP 0-9-1 load generator built so that the client is never the
//! bottleneck (pipelined publishing from pre-encoded batches, allocation-free delivery
//! parsing). See benches/README.md for the scenarios and how to compare brokers, and
//! benches/backlog.sh for the large-backlog check (fill, restart, recover, drain).

mod amqp;
mod client;
mod scenarios;
mod sink;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;

use scenarios::{Opts, Record, ALL};

#[derive(Parser, Debug)]
#[command(name = "warren-bench", about = "AMQP 0-9-1 load generator (issue 5)")]
struct Cli {
    /// Broker URL: amqp://, or amqps:// (TLS; give --tls-ca).
    #[arg(
        long,
        env = "WARREN_BENCH_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    url: String,
    /// Scenario(s), comma separated: publish, noack, ack, confirm, fanout, latency,
    /// connections, backlog, sink (the generator's own ceiling), all (everything but sink and
    /// the following). Large backlog across a restart: fill (persistent + confirms into the
    /// durable queue `<prefix>backlog-durable`, kept), recover (wait until that queue reports
    /// --messages again), drain (consume it all, check count and order, delete it).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    scenario: Vec<String>,
    /// Body size(s) in bytes, comma separated (e.g. 16,4096,65536).
    #[arg(long, value_delimiter = ',', default_value = "16")]
    size: Vec<usize>,
    /// Message bound per scenario (defaults: 50M, latency rate*seconds, backlog and fill 1M;
    /// recover: the count to wait for).
    #[arg(long)]
    messages: Option<u64>,
    /// Time bound per scenario in seconds (defaults: 10; backlog 120 per phase; connections
    /// hold time 5; sink 5; fill, recover, drain 600).
    #[arg(long)]
    seconds: Option<f64>,
    /// One JSON object per result line instead of a table.
    #[arg(long)]
    json: bool,
    /// confirm, noack, ack: delivery mode 2 into a durable queue.
    #[arg(long)]
    persistent: bool,
    /// noack, ack: the publisher uses confirms with --window messages in flight.
    #[arg(long)]
    confirm: bool,
    /// Queue type of every queue the scenarios declare: `x-queue-type` (a long string) in
    /// queue.declare's arguments. quorum and stream queues are declared durable.
    #[arg(long)]
    queue_type: Option<String>,
    /// A queue.declare argument KEY=VALUE (repeatable); a VALUE that parses as an integer
    /// is sent as a signed 64-bit one, anything else as a long string.
    #[arg(long = "queue-arg", value_name = "KEY=VALUE")]
    queue_arg: Vec<String>,
    /// Broker the admin connection declares and deletes the queues on (default: --url).
    /// A quorum queue's leader is normally the node that declared it.
    #[arg(long)]
    declare_url: Option<String>,
    /// Broker the consumers connect to (default: --url; publishers always use --url).
    #[arg(long)]
    consumer_url: Option<String>,
    /// ack, drain: basic.qos prefetch count.
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// ack, drain: one basic.ack (multiple) every N deliveries.
    #[arg(long, default_value_t = 100)]
    ack_every: u64,
    /// confirm, fill: unconfirmed messages allowed in flight.
    #[arg(long, default_value_t = 1000)]
    window: u64,
    /// confirm: publisher connections publishing at once (each with its own window).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// confirm: one queue per publisher instead of one queue for all.
    #[arg(long)]
    queue_each: bool,
    /// confirm: a no-ack consumer on each queue while publishing.
    #[arg(long)]
    consume: bool,
    /// latency: fixed publish rate in messages per second.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// connections: how many idle connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// fanout: number of queues (each with its own consumer).
    #[arg(long, default_value_t = 10)]
    queues: usize,
    /// Broker process id: sample its VmRSS in the connections and backlog scenarios (and
    /// VmHWM, the peak, in fill, recover and drain).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Free-form label added to every JSON line (e.g. the broker's name).
    #[arg(long)]
    label: Option<String>,
    /// Name prefix of the durable queue used by fill, recover and drain.
    #[arg(long, default_value = "warren-bench.")]
    prefix: String,
    /// drain: consume with no_ack (default: manual acks, see --prefetch and --ack-every).
    #[arg(long)]
    no_ack: bool,
    /// amqps: the CA certificate (PEM) that signed the broker's certificate.
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
    /// noack, ack: run K independent publisher -> queue -> consumer pairs at once and
    /// report their total deliveries per second.
    #[arg(long, default_value_t = 1)]
    pairs: usize,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn json_line(r: &Record, label: Option<&str>) -> String {
    let mut s = String::from("{");
    if let Some(l) = label {
        s.push_str(&format!(
            "\"label\":\"{}\",",
            l.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    s.push_str(&format!(
        "\"scenario\":\"{}\",\"size\":{},\"msgs\":{},\"secs\":{:.4},\"rate\":{:.1}",
        r.scenario, r.size, r.msgs, r.secs, r.rate
    ));
    for (k, v) in &r.extra {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            s.push_str(&format!(",\"{k}\":{}", *v as i64));
        } else {
            s.push_str(&format!(",\"{k}\":{v:.1}"));
        }
    }
    if let Some(p) = &r.problem {
        s.push_str(&format!(
            ",\"problem\":\"{}\"",
            p.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    s.push('}');
    s
}

fn table_line(r: &Record) -> String {
    let extra: Vec<String> = r
        .extra
        .iter()
        .map(|(k, v)| {
            if v.fract() == 0.0 {
                format!("{k}={}", *v as i64)
            } else {
                format!("{k}={v:.1}")
            }
        })
        .collect();
    format!(
        "{:<20} {:>6} {:>11} {:>8.3} {:>13.0}  {}",
        r.scenario,
        r.size,
        r.msgs,
        r.secs,
        r.rate,
        extra.join(" ")
    )
}

fn main() {
    let cli = Cli::parse();
    let target = match amqp::Target::parse_with_ca(&cli.url, cli.tls_ca.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("warren-bench: {e}");
            std::process::exit(2);
        }
    };
    let other = |url: &Option<String>| match url {
        None => Ok(target.clone()),
        Some(u) => amqp::Target::parse_with_ca(u, cli.tls_ca.as_deref()),
    };
    let (declare_target, consumer_target) =
        match (other(&cli.declare_url), other(&cli.consumer_url)) {
            (Ok(d), Ok(c)) => (d, c),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("warren-bench: {e}");
                std::process::exit(2);
            }
        };
    let mut queue_args = client::QueueArgs::default();
    for a in &cli.queue_arg {
        if let Err(e) = queue_args.push(a) {
            eprintln!("warren-bench: {e}");
            std::process::exit(2);
        }
    }
    if let Some(t) = &cli.queue_type {
        queue_args.set("x-queue-type", client::QueueArgValue::Str(t.clone()));
    }
    let mut list: Vec<String> = Vec::new();
    for s in &cli.scenario {
        if s == "all" {
            list.extend(ALL.iter().map(|s| s.to_string()));
        } else {
            list.push(s.clone());
        }
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let opts = Opts {
        target,
        declare_target,
        consumer_target,
        queue_args,
        confirm: cli.confirm,
        messages: cli.messages,
        seconds: cli.seconds,
        persistent: cli.persistent,
        prefetch: cli.prefetch,
        ack_every: cli.ack_every.max(1),
        window: cli.window.max(1),
        publishers: cli.publishers.clamp(1, 1024),
        queue_each: cli.queue_each,
        consume: cli.consume,
        rate: cli.rate,
        connections: cli.connections,
        queues: cli.queues.max(1),
        broker_pid: cli.broker_pid,
        prefix: cli.prefix.clone(),
        no_ack: cli.no_ack,
        pairs: cli.pairs.max(1),
        run_id: format!("{}.{:x}", std::process::id(), nanos % 0xffff_ffff),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    if !cli.json {
        println!(
            "{:<20} {:>6} {:>11} {:>8} {:>13}  extra",
            "scenario", "size", "msgs", "secs", "rate/s"
        );
    }
    let mut failed = false;
    for sc in &list {
        // connections and recover ignore the body size; run them once
        let sizes: Vec<usize> = if sc == "connections" || sc == "recover" {
            vec![0]
        } else {
            cli.size.clone()
        };
        for &size in &sizes {
            // a scenario never runs unbounded: its own limits plus a generous hard stop
            let long = matches!(sc.as_str(), "fill" | "recover" | "drain");
            let default_secs = if long { 600.0 } else { 120.0 };
            let hard = Duration::from_secs_f64(cli.seconds.unwrap_or(default_secs) * 3.0 + 120.0);
            let res = rt.block_on(async {
                tokio::time::timeout(hard, scenarios::run(&opts, sc, size)).await
            });
            match res {
                Ok(Ok(records)) => {
                    for r in &records {
                        if let Some(p) = &r.problem {
                            failed = true;
                            eprintln!("warren-bench: {} (size {size}): {p}", r.scenario);
                        }
                        if cli.json {
                            println!("{}", json_line(r, cli.label.as_deref()));
                        } else {
                            println!("{}", table_line(r));
                        }
                    }
                }
                Ok(Err(e)) => {
                    failed = true;
                    eprintln!("warren-bench: {sc} (size {size}) failed: {e}");
                    if cli.json {
                        println!(
                            "{{{}\"scenario\":\"{sc}\",\"size\":{size},\"error\":\"{}\"}}",
                            cli.label
                                .as_deref()
                                .map(|l| format!("\"label\":\"{l}\","))
                                .unwrap_or_default(),
                            e.to_string().replace('\\', "\\\\").replace('"', "'")
                        );
                    }
                }
                Err(_) => {
                    failed = true;
                    eprintln!("warren-bench: {sc} (size {size}) exceeded its hard time limit");
                }
            }
        }
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(if failed { 1 } else { 0 });
}
