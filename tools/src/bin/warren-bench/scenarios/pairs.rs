//! `--pairs K` for `noack` and `ack`: K independent publisher -> queue -> consumer pairs at
//! once (each its own two connections and its own queue), reported as one line with the
//! total deliveries per second. It shows whether the broker's throughput grows with
//! independent work (cores) and whether one pair slows down as others are added.

use super::*;

/// Runs `o.pairs` copies of the 1 -> 1 scenario side by side. The rate counts every
/// delivery between the earliest publisher start and the latest last delivery; the
/// slowest pair's own rate is reported beside it (`min_pair_rate`).
pub(super) async fn many_pairs(o: &Opts, size: usize, no_ack: bool) -> Res<Vec<Record>> {
    let name = if no_ack { "noack" } else { "ack" };
    let secs = o.secs(10.0);
    let queues: Vec<String> = (0..o.pairs)
        .map(|i| o.name(&format!("{name}.{i}")))
        .collect();
    let mut admin = o.admin().await?;
    for q in &queues {
        admin.declare_queue(q, o.persistent).await?;
    }
    let res = async {
        // Every consumer subscribes before any publisher starts.
        let mut subscribed = Vec::new();
        for q in &queues {
            let cs = one_to_one_consumer(o, q, no_ack);
            let c = start_consumer(&o.consumer_target, &cs).await?;
            subscribed.push((q.clone(), c, cs));
        }
        let runs = subscribed.into_iter().map(|(q, c, cs)| {
            let spec = one_to_one_publisher(o, &q, size, secs);
            pub_and_consume(o, spec, vec![(c, cs)], secs)
        });
        Ok::<_, std::io::Error>(futures::future::join_all(runs).await)
    }
    .await;
    for q in &queues {
        admin.delete_queue(q).await?;
    }
    admin.close().await;
    let (mut received, mut published) = (0u64, 0u64);
    let mut start: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut min_pair_rate = f64::INFINITY;
    for r in res? {
        let (p, cs) = r?;
        let c = &cs[0];
        received += c.received;
        published += p.sent;
        min_pair_rate = min_pair_rate.min(c.received as f64 / secs_between(p.start, c.last));
        start = Some(start.map_or(p.start, |s| s.min(p.start)));
        last = last.max(c.last);
    }
    let s = start.map_or(1e-9, |st| secs_between(st, last));
    Ok(vec![Record {
        scenario: format!("{name}-pairs"),
        size,
        msgs: received,
        secs: s,
        rate: received as f64 / s,
        extra: vec![
            ("pairs", o.pairs as f64),
            ("published", published as f64),
            ("min_pair_rate", min_pair_rate),
        ],
        problem: None,
    }])
}
