//! RabbitMQ's JSON for counters: each counter X as `X` and `X_details: {"rate": r}`,
//! `message_stats` for every object kind, and the public hooks that fill a queue's, an
//! exchange's and a vhost's stats into the maps other endpoints build.
//!
//! Pure functions over snapshots and the collector's rates; no lock held while JSON is
//! built beyond the clone of one rates entry.

use super::collector::key;
use super::counters::{Counts, NAMES};
use super::Stats;
use crate::broker::queue::Queue;
use serde_json::{json, Map, Value};

/// Puts each of `names` with its value and `_details.rate` (0.0 without a rate yet).
pub fn fill(map: &mut Map<String, Value>, names: &[&str], values: &[u64], rates: Option<&[f64]>) {
    for (i, name) in names.iter().enumerate() {
        let value = values.get(i).copied().unwrap_or(0);
        let rate = rates.and_then(|r| r.get(i)).copied().unwrap_or(0.0);
        map.insert((*name).to_owned(), json!(value));
        map.insert(format!("{name}_details"), json!({ "rate": rate }));
    }
}

/// Counters followed by `deliver_get`, as the collector samples them.
fn values_of(c: &Counts) -> Vec<u64> {
    let mut v = c.0.to_vec();
    v.push(c.deliver_get());
    v
}

/// `message_stats` of a channel, vhost or the overview: every counter of `c` with
/// `deliver_get`, rates from the collector's entry `rate_key`.
pub fn message_stats(stats: &Stats, c: &Counts, rate_key: &str) -> Value {
    let mut names: Vec<&str> = NAMES.to_vec();
    names.push("deliver_get");
    let mut m = Map::new();
    fill(
        &mut m,
        &names,
        &values_of(c),
        stats.rates(rate_key).as_deref(),
    );
    Value::Object(m)
}

/// The counters a queue shows (RabbitMQ's queue message_stats has no confirm or
/// unroutable counts).
const QUEUE_KEYS: [&str; 8] = [
    "publish",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "ack",
    "redeliver",
];

/// For the queue endpoints: `message_stats` (counts and rates) into `map`, a
/// queue's JSON object.
pub fn fill_queue(stats: &Stats, queue: &Queue, map: &mut Map<String, Value>) {
    let all = message_stats(
        stats,
        &queue.stats.snapshot(),
        &key::queue(&queue.vhost, &queue.name),
    );
    // As RabbitMQ: only the counters that moved, and no message_stats before any did.
    let mut ms = Map::new();
    if let Value::Object(all) = all {
        for name in QUEUE_KEYS.iter().chain(["deliver_get"].iter()) {
            if all.get(*name).and_then(Value::as_u64).unwrap_or(0) == 0 {
                continue;
            }
            for k in [name.to_string(), format!("{name}_details")] {
                if let Some(v) = all.get(&k) {
                    ms.insert(k, v.clone());
                }
            }
        }
    }
    if !ms.is_empty() {
        map.insert("message_stats".into(), Value::Object(ms));
    }
}

/// One value of a queue's `message_stats` (the path below it: `["publish"]` or
/// `["publish_details", "rate"]`), as `fill_queue` would put it there, without building
/// the rest: lists sort on it. Null where `fill_queue` puts nothing.
pub fn queue_stat(stats: &Stats, queue: &Queue, path: &[&str]) -> Value {
    let (name, rate) = match path {
        [name] => (*name, false),
        [details, "rate"] => match details.strip_suffix("_details") {
            Some(name) => (name, true),
            None => return Value::Null,
        },
        _ => return Value::Null,
    };
    // Only the counters a queue shows; their values in the order `values_of` gives.
    if !QUEUE_KEYS.contains(&name) && name != "deliver_get" {
        return Value::Null;
    }
    let Some(index) = NAMES
        .iter()
        .chain(["deliver_get"].iter())
        .position(|k| *k == name)
    else {
        return Value::Null;
    };
    let counts = values_of(&queue.stats.snapshot());
    let Some(&count) = counts.get(index).filter(|&&c| c > 0) else {
        return Value::Null;
    };
    if !rate {
        return json!(count);
    }
    let rates = stats.rates(&key::queue(&queue.vhost, &queue.name));
    json!(rates.and_then(|r| r.get(index).copied()).unwrap_or(0.0))
}

/// For the exchange endpoints: `message_stats` with `publish_in` / `publish_out`
/// (as of the collector's last sample, as RabbitMQ shows them) into `map`.
pub fn fill_exchange(stats: &Stats, vhost: &str, name: &str, map: &mut Map<String, Value>) {
    let k = key::exchange(vhost, name);
    let Some(values) = stats.sampled(&k) else {
        // Never published to: RabbitMQ shows no message_stats at all.
        return;
    };
    let mut ms = Map::new();
    fill(
        &mut ms,
        &["publish_in", "publish_out"],
        &values,
        stats.rates(&k).as_deref(),
    );
    map.insert("message_stats".into(), Value::Object(ms));
}

/// For the vhost endpoints: `message_stats`, `recv_oct`/`send_oct` and the
/// `messages`, `messages_ready`, `messages_unacknowledged` totals (as of the last
/// sample), with rates, into `map`.
pub fn fill_vhost(stats: &Stats, vhost: &str, map: &mut Map<String, Value>) {
    let counts = stats.vhost_counts().remove(vhost).unwrap_or_default();
    map.insert(
        "message_stats".into(),
        message_stats(stats, &counts, &key::vhost(vhost)),
    );
    let bytes = stats.vhost_bytes().remove(vhost).unwrap_or_default();
    let kb = key::vhost_bytes(vhost);
    fill(
        map,
        &["recv_oct", "send_oct"],
        &bytes,
        stats.rates(&kb).as_deref(),
    );
    let kt = key::vhost_totals(vhost);
    let totals = stats.sampled(&kt).unwrap_or_else(|| vec![0; 3]);
    fill(
        map,
        &["messages", "messages_ready", "messages_unacknowledged"],
        &totals,
        stats.rates(&kt).as_deref(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::counters::Key;
    use std::collections::HashMap;

    #[test]
    fn message_stats_has_every_counter_with_details_and_rates() {
        let stats = Stats::default();
        let mut c = Counts::default();
        c.0[Key::Publish as usize] = 10;
        c.0[Key::Get as usize] = 2;
        let k = key::vhost("/");
        let t0 = 1_000;
        let mut before = HashMap::new();
        before.insert(k.clone(), vec![0u64; 12]);
        stats.rates.record(t0, before);
        let mut after = HashMap::new();
        after.insert(k.clone(), values_of(&c));
        stats.rates.record(t0 + 2_000, after);
        let v = message_stats(&stats, &c, &k);
        assert_eq!(v["publish"], 10);
        assert_eq!(v["publish_details"]["rate"], 5.0);
        assert_eq!(v["deliver_get"], 2);
        assert_eq!(v["deliver_get_details"]["rate"], 1.0);
        assert_eq!(v["ack_details"]["rate"], 0.0);
        assert_eq!(stats.samples(), 2);
    }

    #[test]
    fn vhost_and_exchange_hooks_fill_their_keys() {
        let stats = Stats::default();
        let mut m = Map::new();
        fill_vhost(&stats, "/", &mut m);
        for k in [
            "message_stats",
            "recv_oct_details",
            "send_oct",
            "messages",
            "messages_ready_details",
            "messages_unacknowledged",
        ] {
            assert!(m.contains_key(k), "{k} missing");
        }
        let mut x = Map::new();
        fill_exchange(&stats, "/", "amq.direct", &mut x);
        assert!(x.is_empty(), "no stats for an exchange never published to");
        let mut sample = HashMap::new();
        sample.insert(key::exchange("/", "amq.direct"), vec![3, 2]);
        stats.rates.record(1, sample);
        fill_exchange(&stats, "/", "amq.direct", &mut x);
        assert_eq!(x["message_stats"]["publish_in"], 3);
        assert_eq!(x["message_stats"]["publish_out_details"]["rate"], 0.0);
    }
}
