//! A full disk: with the broker's data directory on a small file system (the script
//! mounts it) and a filler file taking part of it, publish persistent messages with
//! confirms into a durable queue until nothing more is confirmed. Then check that the
//! broker is up and answering, remove the filler and check that publishing resumes, stop
//! the broker (SIGTERM), start it again and read the queue back: every confirmed id must
//! be there, once, undamaged.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use crate::amqp::*;
use crate::broker::BrokerCmd;
use crate::client::Admin;
use crate::publisher::{due, read_stamp, Books, Publisher};
use crate::wire::*;

#[derive(Args, Debug)]
pub struct Opts {
    /// The file that holds space back; removed to give space back.
    #[arg(long)]
    pub filler: PathBuf,
    /// Body size in bytes.
    #[arg(long, default_value_t = 4096)]
    pub size: usize,
    #[arg(long, default_value_t = 200)]
    pub window: usize,
    /// The disk counts as full when nothing was confirmed for this long.
    #[arg(long, default_value_t = 3.0)]
    pub stall_secs: f64,
    /// Longest fill.
    #[arg(long, default_value_t = 60.0)]
    pub fill_secs: f64,
    /// After the filler is gone, this many more confirms must come within resume-secs.
    #[arg(long, default_value_t = 200)]
    pub resume_msgs: u64,
    #[arg(long, default_value_t = 20.0)]
    pub resume_secs: f64,
    /// Publish at most this many messages per second (0: as fast as confirms allow).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

type Outcome = Result<(bool, String, Vec<String>), String>;

const QUEUE: &str = "faults.disk";

#[derive(Default)]
struct Tally {
    confirmed: Vec<u64>,
    nacked: u64,
    sent: u64,
    blocked: u64,
    unblocked: u64,
    last_progress: Option<Instant>,
}

impl Books for Tally {
    fn sent(&mut self, _id: u64) {
        self.sent += 1;
    }
    fn settled(&mut self, id: u64, ok: bool, _sent_at: Instant) {
        // Only a confirm is progress: a broker that nacks everything is full too.
        if ok {
            self.confirmed.push(id);
            self.last_progress = Some(Instant::now());
        } else {
            self.nacked += 1;
        }
    }
    fn blocked(&mut self, blocked: bool) {
        if blocked {
            self.blocked += 1;
        } else {
            self.unblocked += 1;
        }
    }
}

pub fn run(o: Opts, cmd: BrokerCmd, rt: &tokio::runtime::Runtime) -> Outcome {
    let patience = Duration::from_secs(60);
    let t = Target::parse(&format!("amqp://guest:guest@127.0.0.1:{}/%2f", cmd.port))
        .map_err(|e| e.to_string())?;
    let mut b = cmd.start(patience).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let mut tally = Tally::default();
    let free_start = free_kb(&cmd.data_dir);

    // 1. Fill until nothing more is confirmed for stall-secs.
    let stall = Duration::from_secs_f64(o.stall_secs);
    let begun = Instant::now();
    let fill_limit = Duration::from_secs_f64(o.fill_secs);
    let publisher = rt.block_on(async {
        let mut a = Admin::open(&t).await?;
        a.declare_queue(QUEUE, true).await?;
        a.close().await;
        let mut p = Publisher::open(&t, QUEUE, o.size, true, o.window, 0).await?;
        let r = p
            .pump(
                &mut tally,
                |t| due(t.sent, o.rate, begun),
                |_, t| {
                    let since = t.last_progress.unwrap_or(begun);
                    since.elapsed() > stall || begun.elapsed() > fill_limit
                },
            )
            .await;
        Ok::<_, std::io::Error>((p, r))
    });
    let mut publisher = match publisher {
        Ok((p, Ok(()))) => Some(p),
        Ok((_, Err(e))) | Err(e) => {
            notes.push(format!("fill: the publisher's connection ended: {e}"));
            None
        }
    };
    let filled_for = begun.elapsed().as_secs_f64();
    let full_confirmed = tally.confirmed.len();
    let full_nacked = tally.nacked;
    let full_unconfirmed = publisher.as_ref().map_or(0, |p| p.unconfirmed());
    let free_full = free_kb(&cmd.data_dir);
    let rss_full = b.rss_kb().unwrap_or(0);

    // 2. Still up and answering while the disk is full.
    let up_full = b.alive() && rt.block_on(answers(&t));

    // 3. Space comes back: publishing must resume (on the same connection if it lived).
    let _ = std::fs::remove_file(&o.filler);
    let resume_begun = Instant::now();
    let resume_limit = Duration::from_secs_f64(o.resume_secs);
    // New messages, beyond those still in flight when the disk filled.
    let want = full_confirmed + full_unconfirmed + o.resume_msgs as usize;
    let resumed = rt.block_on(async {
        let mut p = match publisher.take() {
            Some(p) => p,
            None => Publisher::open(&t, QUEUE, o.size, true, o.window, 1 << 40).await?,
        };
        let publishing = std::cell::Cell::new(true);
        let r = p
            .pump(
                &mut tally,
                |_| publishing.get(),
                |p, t| {
                    if t.confirmed.len() >= want {
                        publishing.set(false);
                    }
                    (!publishing.get() && p.unconfirmed() == 0)
                        || resume_begun.elapsed() > resume_limit
                },
            )
            .await;
        p.close().await;
        r
    });
    if let Err(e) = &resumed {
        notes.push(format!("resume: {e}"));
    }
    let resumed_ok = tally.confirmed.len() >= want;
    let resume_secs = resume_begun.elapsed().as_secs_f64();

    // 4. Restart on the same data directory and read everything back.
    let (graceful, status) = b.stop(Duration::from_secs(15));
    if !graceful {
        notes.push(format!("stop after the test: {status}"));
    }
    drop(b);
    let recovered = cmd
        .start(patience)
        .map_err(|e| format!("restart after the disk filled: {e}"));
    let (mut lost, mut dup, mut bad, mut got) = (0u64, 0u64, 0u64, 0usize);
    let mut restarted = false;
    match recovered {
        Ok(mut b2) => {
            restarted = true;
            match rt.block_on(read_back(&t)) {
                Ok((ids, damaged)) => {
                    got = ids.len();
                    bad = damaged;
                    let mut seen = HashSet::new();
                    for id in &ids {
                        if !seen.insert(*id) {
                            dup += 1;
                        }
                    }
                    lost = tally
                        .confirmed
                        .iter()
                        .filter(|id| !seen.contains(id))
                        .count() as u64;
                }
                Err(e) => notes.push(format!("reading back: {e}")),
            }
            b2.stop(Duration::from_secs(15));
        }
        Err(e) => notes.push(e),
    }
    let ok = up_full
        && resumed_ok
        && restarted
        && lost == 0
        && dup == 0
        && bad == 0
        && got >= tally.confirmed.len();
    if !up_full {
        notes.push("the broker was not up and answering once the disk was full".into());
    }
    if !resumed_ok {
        notes.push(format!(
            "publishing did not resume within {} s of the filler's removal ({} of {} more confirms)",
            o.resume_secs,
            tally.confirmed.len().saturating_sub(full_confirmed + full_unconfirmed),
            o.resume_msgs
        ));
    }
    let line = format!(
        "{{\"test\":\"diskfull\",\"rate\":{:.0},\"free_start_kb\":{free_start},\"free_full_kb\":{free_full},\"fill_secs\":{filled_for:.1},\"sent\":{},\"confirmed_full\":{full_confirmed},\"nacked_full\":{full_nacked},\"unconfirmed_full\":{full_unconfirmed},\"blocked\":{},\"unblocked\":{},\"rss_full_kb\":{rss_full},\"up_when_full\":{up_full},\"resumed\":{resumed_ok},\"resume_secs\":{resume_secs:.1},\"confirmed\":{},\"nacked\":{},\"graceful_stop\":{graceful},\"restarted\":{restarted},\"recovered\":{got},\"lost\":{lost},\"duplicated\":{dup},\"damaged\":{bad}}}",
        o.rate,
        tally.sent,
        tally.blocked,
        tally.unblocked,
        tally.confirmed.len(),
        tally.nacked
    );
    Ok((ok, line, notes))
}

/// Consume the queue to its end (manual acks), returning the ids read and how many
/// bodies were damaged.
async fn read_back(t: &Target) -> Res<(Vec<u64>, u64)> {
    let mut a = Admin::open(t).await?;
    let mut c = Conn::open(t, 1 << 20).await?;
    c.open_channel(1).await?;
    consume(&mut c, 1, QUEUE, 500, false).await?;
    let (mut ids, mut damaged) = (Vec::new(), 0u64);
    let (mut tag, mut size, mut body) = (0u64, None::<u64>, Vec::new());
    let mut quiet = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let f = match tokio::time::timeout(Duration::from_millis(300), Frame::read(&mut c)).await {
            Ok(f) => f?,
            Err(_) => {
                if quiet.elapsed() > Duration::from_secs(1) && a.queue_count(QUEUE).await? == 0 {
                    break;
                }
                continue;
            }
        };
        quiet = Instant::now();
        match (f.typ, f.class_method) {
            (FRAME_METHOD, DELIVER) => {
                tag = deliver_tag(&f.payload).unwrap_or(0);
                size = None;
                body.clear();
            }
            (FRAME_HEADER, _) => size = header_body_size(&f.payload),
            (FRAME_BODY, _) => body.extend_from_slice(&f.payload),
            _ => {}
        }
        if size.is_some_and(|s| body.len() as u64 >= s) {
            size = None;
            match read_stamp(&body) {
                Some(id) => ids.push(id),
                None => damaged += 1,
            }
            out.clear();
            ack_frame(1, tag, &mut out);
            use tokio::io::AsyncWriteExt;
            c.wr.write_all(&out).await?;
        }
    }
    c.close().await;
    a.close().await;
    Ok((ids, damaged))
}

/// A new connection, a channel and a passive declare, within 10 seconds.
async fn answers(t: &Target) -> bool {
    let probe = async {
        let mut a = Admin::open(t).await?;
        a.queue_count(QUEUE).await?;
        a.close().await;
        Ok::<_, std::io::Error>(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), probe).await,
        Ok(Ok(()))
    )
}

/// Free space on the file system holding `dir`, in KiB, as df(1) reports it (0 if it
/// cannot tell).
fn free_kb(dir: &std::path::Path) -> u64 {
    std::process::Command::new("df")
        .args(["--output=avail", "-k"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse().ok())
        })
        .unwrap_or(0)
}
