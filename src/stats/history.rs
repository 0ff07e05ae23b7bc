//! The recent past of the collector's samples, so a chart can show the last minutes the
//! moment it opens: RabbitMQ's `samples` arrays (`?msg_rates_age=&msg_rates_incr=`,
//! `lengths_…`, `data_rates_…`) on `/api/overview` and `/api/vhosts/{name}`.
//!
//! A ring of at most `HISTORY_LEN` entries, one per collector sample (121: ten minutes at
//! the default 5-second interval; a shorter `--stats-interval` covers less time, never
//! more memory). An entry keeps only what those endpoints chart: the churn counters and,
//! per vhost that ever had traffic or messages, its message counters, its queued-message
//! totals and its bytes; an idle vhost costs nothing. The collector records (one push
//! under the ring's lock, the evicted entry freed after it); readers compute their sums
//! under the lock from at most `HISTORY_LEN` entries, memory work only. Never reads a
//! broker lock.

use super::collector::key;
use super::counters::NAMES;
use super::registry::lock;
use super::CHURN_NAMES;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Entries kept: ten minutes of samples at the default 5-second interval, plus one.
pub const HISTORY_LEN: usize = 121;

/// The most samples one answer may ask for (RabbitMQ refuses more: age / incr > 500).
pub const MAX_SAMPLES: u64 = 500;

/// One asked-for window: samples every `incr` seconds over the last `age` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub age: u64,
    pub incr: u64,
}

#[derive(Debug)]
struct Entry {
    at_ms: u64,
    values: HashMap<String, Vec<u64>>,
}

/// The ring of recent samples.
#[derive(Debug, Default)]
pub struct History {
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Entry>,
    /// Whether an entry was ever dropped: until then, a time before the oldest entry is
    /// before the broker counted anything (zeros); after, it is unknown.
    evicted: bool,
}

/// Whether a sampled key is one the history keeps (churn, and the per-vhost keys).
fn kept(k: &str) -> bool {
    k == key::CHURN || k.starts_with("v\0") || k.starts_with("vt\0") || k.starts_with("vb\0")
}

impl History {
    /// Keeps the charted part of one collector sample taken at `at_ms` (epoch ms).
    pub fn record(&self, at_ms: u64, sample: &HashMap<String, Vec<u64>>) {
        let values: HashMap<String, Vec<u64>> = sample
            .iter()
            .filter(|(k, v)| kept(k) && (k.as_str() == key::CHURN || v.iter().any(|&n| n != 0)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut ring = lock(&self.ring);
        // A clock stepped back: the ring stays ordered by dropping what is now "later".
        while ring.entries.back().is_some_and(|e| e.at_ms > at_ms) {
            ring.entries.pop_back();
        }
        ring.entries.push_back(Entry { at_ms, values });
        let evicted = if ring.entries.len() > HISTORY_LEN {
            ring.evicted = true;
            ring.entries.pop_front()
        } else {
            None
        };
        drop(ring);
        drop(evicted);
    }

    /// Entries held now (at most `HISTORY_LEN`).
    pub fn len(&self) -> usize {
        lock(&self.ring).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sum of `keys`' values (each `width` long) at each timestamp of `range` ending
    /// at `now_ms`, newest first: at `now_ms` rounded down to `incr`, then every `incr`
    /// seconds back over `age` seconds. A timestamp's value is the newest entry at or
    /// before it; a timestamp older than the oldest entry is zeros while the ring holds
    /// everything since the broker started, and left out once older entries were
    /// dropped (nothing knows them any more).
    pub fn series(
        &self,
        keys: &[String],
        width: usize,
        range: Range,
        now_ms: u64,
    ) -> Vec<(u64, Vec<u64>)> {
        let step = range.incr.saturating_mul(1000).max(1);
        let last = now_ms - now_ms % step;
        let first = last.saturating_sub(range.age.saturating_mul(1000));
        let ring = lock(&self.ring);
        let mut sums: HashMap<usize, Vec<u64>> = HashMap::new();
        let mut out = Vec::new();
        let times = (0..=range.age / range.incr.max(1)).map_while(|k| {
            last.checked_sub(k.saturating_mul(step))
                .filter(|t| *t >= first)
        });
        for t in times {
            // The newest entry at or before t.
            let after = ring.entries.partition_point(|e| e.at_ms <= t);
            let Some(i) = after.checked_sub(1) else {
                if ring.evicted {
                    break;
                }
                out.push((t, vec![0u64; width]));
                continue;
            };
            let sum = sums.entry(i).or_insert_with(|| {
                let mut s = vec![0u64; width];
                for k in keys {
                    if let Some(v) = ring.entries[i].values.get(k) {
                        for (a, b) in s.iter_mut().zip(v) {
                            *a = a.saturating_add(*b);
                        }
                    }
                }
                s
            });
            out.push((t, sum.clone()));
        }
        out
    }
}

/// Adds RabbitMQ's `samples`, `avg_rate` and `avg` to the `{name}_details` object of each
/// of `names` in `map`, column `i` of `series` for `names[i]` (a name without a column
/// gets zeros).
pub fn fill_samples(map: &mut Map<String, Value>, names: &[&str], series: &[(u64, Vec<u64>)]) {
    for (i, name) in names.iter().enumerate() {
        let points: Vec<(u64, u64)> = series
            .iter()
            .map(|(t, v)| (*t, v.get(i).copied().unwrap_or(0)))
            .collect();
        let details = map
            .entry(format!("{name}_details"))
            .or_insert_with(|| json!({"rate": 0.0}));
        if let Value::Object(d) = details {
            details_samples(d, &points);
        }
    }
}

/// `samples` (newest first), and with two or more of them `avg_rate` (the change per
/// second between the oldest and the newest) and `avg` (their mean), as RabbitMQ adds.
fn details_samples(d: &mut Map<String, Value>, points: &[(u64, u64)]) {
    let samples: Vec<Value> = points
        .iter()
        .map(|(t, v)| json!({"sample": v, "timestamp": t}))
        .collect();
    d.insert("samples".into(), Value::Array(samples));
    if let (Some(&(t1, newest)), Some(&(t0, oldest))) = (points.first(), points.last()) {
        if points.len() > 1 && t1 > t0 {
            let secs = (t1 - t0) as f64 / 1000.0;
            let avg_rate = (newest as f64 - oldest as f64) / secs;
            let avg = points.iter().map(|(_, v)| *v as f64).sum::<f64>() / points.len() as f64;
            d.insert("avg_rate".into(), json!(avg_rate));
            d.insert("avg".into(), json!(avg));
        }
    }
}

/// The charts of a set of vhosts (the overview sums the caller's; a vhost page its own).
pub struct VhostCharts<'a> {
    pub history: &'a History,
    pub vhosts: &'a [&'a str],
    pub now_ms: u64,
}

impl VhostCharts<'_> {
    fn series(
        &self,
        key_of: fn(&str) -> String,
        width: usize,
        range: Range,
    ) -> Vec<(u64, Vec<u64>)> {
        let keys: Vec<String> = self.vhosts.iter().map(|v| key_of(v)).collect();
        self.history.series(&keys, width, range, self.now_ms)
    }

    /// Samples for every `X_details` of a `message_stats` map: the counters the
    /// collector keeps, zeros for any other key it holds (disk_reads, disk_writes).
    pub fn message_stats(&self, ms: &mut Map<String, Value>, range: Range) {
        let mut names: Vec<&str> = NAMES.to_vec();
        names.push("deliver_get");
        let width = names.len();
        let others: Vec<String> = ms
            .keys()
            .filter_map(|k| k.strip_suffix("_details"))
            .filter(|k| !names.contains(k))
            .map(str::to_owned)
            .collect();
        names.extend(others.iter().map(String::as_str));
        fill_samples(ms, &names, &self.series(key::vhost, width, range));
    }

    /// Samples of `messages`, `messages_ready`, `messages_unacknowledged` in `m`.
    pub fn totals(&self, m: &mut Map<String, Value>, range: Range) {
        let names = ["messages", "messages_ready", "messages_unacknowledged"];
        fill_samples(
            m,
            &names,
            &self.series(key::vhost_totals, names.len(), range),
        );
    }

    /// Samples of `recv_oct` and `send_oct` in `m`.
    pub fn bytes(&self, m: &mut Map<String, Value>, range: Range) {
        let names = ["recv_oct", "send_oct"];
        fill_samples(
            m,
            &names,
            &self.series(key::vhost_bytes, names.len(), range),
        );
    }

    /// Samples in a vhost object (`/api/vhosts/{name}`): `message_stats` for the message
    /// rates range, the queued-message totals for lengths, the bytes for data rates.
    pub fn vhost(
        &self,
        m: &mut Map<String, Value>,
        msg: Option<Range>,
        lengths: Option<Range>,
        data: Option<Range>,
    ) {
        if let (Some(r), Some(Value::Object(ms))) = (msg, m.get_mut("message_stats")) {
            self.message_stats(ms, r);
        }
        if let Some(r) = lengths {
            self.totals(m, r);
        }
        if let Some(r) = data {
            self.bytes(m, r);
        }
    }

    /// Samples of the churn counters (the whole broker's) in `m`.
    pub fn churn(&self, m: &mut Map<String, Value>, range: Range) {
        let series = self.history.series(
            &[key::CHURN.to_owned()],
            CHURN_NAMES.len(),
            range,
            self.now_ms,
        );
        fill_samples(m, &CHURN_NAMES, &series);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(publish: u64) -> HashMap<String, Vec<u64>> {
        let mut m = HashMap::new();
        m.insert(key::vhost("/"), vec![publish, 0]);
        m.insert(key::vhost("idle"), vec![0, 0]);
        m.insert(key::queue("/", "q"), vec![publish]);
        m.insert(key::CHURN.to_owned(), vec![0; 7]);
        m
    }

    #[test]
    fn the_ring_is_bounded_and_keeps_only_charted_active_keys() {
        let h = History::default();
        for i in 0..(HISTORY_LEN as u64 + 30) {
            h.record(1_000_000 + i * 5000, &sample(i + 1));
        }
        assert_eq!(h.len(), HISTORY_LEN);
        let ring = lock(&h.ring);
        let e = ring.entries.back().expect("an entry");
        assert!(e.values.contains_key(&key::vhost("/")));
        assert!(e.values.contains_key(key::CHURN));
        assert!(
            !e.values.contains_key(&key::vhost("idle")),
            "idle vhosts cost nothing"
        );
        assert!(
            !e.values.contains_key(&key::queue("/", "q")),
            "queues are not kept"
        );
    }

    #[test]
    fn series_steps_back_from_now_and_stops_at_the_oldest_entry() {
        let h = History::default();
        for i in 0..10u64 {
            h.record(100_000 + i * 1000, &sample(i * 2));
        }
        // now 109.5 s: timestamps 105, 100, then 95..50 from before the first entry:
        // zeros (nothing was counted before it, and nothing was dropped yet).
        let s = h.series(&[key::vhost("/")], 2, Range { age: 60, incr: 5 }, 109_500);
        assert_eq!(s.len(), 13);
        assert_eq!(
            s[..3],
            [
                (105_000, vec![10, 0]),
                (100_000, vec![0, 0]),
                (95_000, vec![0, 0])
            ]
        );
        let mut m = Map::new();
        fill_samples(&mut m, &["publish", "other"], &s[..2]);
        assert_eq!(
            m["publish_details"]["samples"][0],
            json!({"sample": 10, "timestamp": 105_000})
        );
        assert_eq!(m["publish_details"]["avg_rate"], json!(2.0));
        assert_eq!(m["publish_details"]["avg"], json!(5.0));
        assert_eq!(m["other_details"]["samples"][1]["sample"], json!(0));
    }
}
