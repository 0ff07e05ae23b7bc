//! Many queues held: declare N queues on one connection of an already running broker
//! (pipelined, nowait, with a synchronous declare closing every thousand so the broker
//! never holds more than a thousand unanswered), then report the broker's resident memory
//! before and after and its delta per queue, and check it still answers. The queues are
//! exclusive (closing the connection deletes them again) unless `--shared`.

use std::time::{Duration, Instant};

use amq_protocol::protocol::{queue, AMQPClass};
use amq_protocol::types::FieldTable;
use clap::Args;
use tokio::io::AsyncWriteExt;

use crate::amqp::*;
use crate::broker::{status_kb, BrokerCmd};

#[derive(Args, Debug)]
pub struct Opts {
    /// The running broker to use.
    #[arg(long)]
    pub url: String,
    /// Its pid, for VmRSS.
    #[arg(long)]
    pub broker_pid: u32,
    #[arg(long, default_value_t = 100_000)]
    pub queues: u64,
    /// Seconds to hold them before measuring again and closing.
    #[arg(long, default_value_t = 3.0)]
    pub hold: f64,
    /// Declare shared (non-exclusive) queues instead; they outlive the connection, so
    /// use a broker that is thrown away afterwards.
    #[arg(long)]
    pub shared: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub seconds: f64,
}

type Outcome = Result<(bool, String, Vec<String>), String>;

pub fn run(o: Opts, _cmd: BrokerCmd, rt: &tokio::runtime::Runtime) -> Outcome {
    let limit = Duration::from_secs_f64(o.seconds);
    match rt.block_on(async { tokio::time::timeout(limit, declare_all(&o)).await }) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("queues: not done within {} s", o.seconds)),
    }
}

fn declare(name: &str, nowait: bool, exclusive: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive,
        auto_delete: false,
        nowait,
        arguments: FieldTable::default(),
    }))
}

async fn declare_all(o: &Opts) -> Res<(bool, String, Vec<String>)> {
    let t = Target::parse(&o.url)?;
    let mut c = Conn::open(&t, 1 << 16).await?;
    c.open_channel(1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = status_kb(o.broker_pid, "VmRSS:").unwrap_or(0);
    let start = Instant::now();
    let mut out = Vec::new();
    let mut i = 0u64;
    while i < o.queues {
        out.clear();
        let end = (i + 1000).min(o.queues);
        for k in i..end - 1 {
            encode(
                &method(1, declare(&format!("faults.scale.{k}"), true, !o.shared)),
                &mut out,
            );
        }
        c.wr.write_all(&out).await?;
        match c
            .rpc(
                1,
                declare(&format!("faults.scale.{}", end - 1), false, !o.shared),
            )
            .await?
        {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)) => {}
            m => return Err(err(format!("expected queue.declare-ok, got {m:?}"))),
        }
        i = end;
        if i.is_multiple_of(10_000) {
            // The rate per ten thousand shows whether a declare costs more as queues grow.
            eprintln!(
                "queues: {i} declared after {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(o.hold)).await;
    let rss1 = status_kb(o.broker_pid, "VmRSS:").unwrap_or(0);
    // Still answering, on a second connection, while the queues are held.
    let probe = Instant::now();
    let mut p = Conn::open(&t, 1 << 16).await?;
    p.open_channel(1).await?;
    p.close().await;
    let probe_ms = probe.elapsed().as_secs_f64() * 1000.0;
    let closed = Instant::now();
    c.close().await;
    let per_queue = (rss1 as f64 - rss0 as f64) * 1024.0 / o.queues.max(1) as f64;
    let line = format!(
        "{{\"test\":\"queues\",\"exclusive\":{},\"queues\":{},\"declare_secs\":{secs:.2},\"rate\":{:.0},\"rss_before_kb\":{rss0},\"rss_after_kb\":{rss1},\"bytes_per_queue\":{per_queue:.0},\"probe_connect_ms\":{probe_ms:.1},\"close_secs\":{:.2}}}",
        !o.shared,
        o.queues,
        o.queues as f64 / secs.max(1e-9),
        closed.elapsed().as_secs_f64()
    );
    Ok((true, line, Vec::new()))
}
