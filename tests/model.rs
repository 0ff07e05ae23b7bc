//! Property test: random sequences of publish / get / consume / ack / nack / reject / cancel /
//! channel close on one queue, checked against a model of RabbitMQ's queue (order, redelivered
//! flags, delivery tags, counts). Set MODEL_AMQP_URL to run it against another broker (e.g. the
//! reference RabbitMQ: amqp://guest:guest@127.0.0.1:5682/%2f) instead of an in-process warren.
mod common;

use common::TestBroker;
use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Publish(u8),
    Get {
        no_ack: bool,
    },
    /// prefetch 0 means unlimited; ignored when a consumer already exists
    Consume {
        prefetch: u16,
        no_ack: bool,
    },
    /// `pick` chooses one of the channel's unacked deliveries (modulo their number)
    Ack {
        pick: usize,
        multiple: bool,
    },
    Nack {
        pick: usize,
        multiple: bool,
        requeue: bool,
    },
    Reject {
        pick: usize,
        requeue: bool,
    },
    Cancel,
    CloseChannel,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..=3).prop_map(Op::Publish),
        2 => any::<bool>().prop_map(|no_ack| Op::Get { no_ack }),
        2 => (0u16..=3, prop::bool::weighted(0.2))
            .prop_map(|(prefetch, no_ack)| Op::Consume { prefetch, no_ack }),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, multiple)| Op::Ack { pick, multiple }),
        2 => (any::<usize>(), any::<bool>(), any::<bool>())
            .prop_map(|(pick, multiple, requeue)| Op::Nack { pick, multiple, requeue }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, requeue)| Op::Reject { pick, requeue }),
        1 => Just(Op::Cancel),
        1 => Just(Op::CloseChannel),
    ]
}

// ---- the model ----

/// A delivery as observed: (message id, redelivered, delivery tag).
type Seen = (u64, bool, u64);

struct Unacked {
    tag: u64,
    id: u64,
    /// the consumer generation it was delivered to (None: basic.get)
    consumer: Option<u64>,
}

struct ModelConsumer {
    generation: u64,
    prefetch: u16,
    no_ack: bool,
    outstanding: usize,
}

#[derive(Default)]
struct Model {
    next_id: u64,
    /// ready messages by id (publish order): RabbitMQ puts requeued messages back in place
    ready: BTreeMap<u64, bool>,
    /// the channel's unacknowledged deliveries, in tag order
    unacked: Vec<Unacked>,
    last_tag: u64,
    consumer: Option<ModelConsumer>,
    generations: u64,
}

impl Model {
    fn publish(&mut self) -> u64 {
        self.next_id += 1;
        self.ready.insert(self.next_id, false);
        self.next_id
    }

    fn take_head(&mut self) -> Option<(u64, bool)> {
        self.ready.pop_first()
    }

    fn get(&mut self, no_ack: bool) -> Option<Seen> {
        let (id, redelivered) = self.take_head()?;
        self.last_tag += 1;
        if !no_ack {
            self.unacked.push(Unacked {
                tag: self.last_tag,
                id,
                consumer: None,
            });
        }
        Some((id, redelivered, self.last_tag))
    }

    fn consume(&mut self, prefetch: u16, no_ack: bool) {
        self.generations += 1;
        self.consumer = Some(ModelConsumer {
            generation: self.generations,
            prefetch,
            no_ack,
            outstanding: 0,
        });
    }

    /// What the queue hands to the consumer now, while it has credit.
    fn dispatch(&mut self) -> Vec<Seen> {
        let mut out = Vec::new();
        while let Some(c) = &self.consumer {
            let has_credit = c.no_ack || c.prefetch == 0 || c.outstanding < c.prefetch as usize;
            if !has_credit || self.ready.is_empty() {
                break;
            }
            let (id, redelivered) = self.take_head().unwrap();
            self.last_tag += 1;
            let c = self.consumer.as_mut().unwrap();
            if !c.no_ack {
                c.outstanding += 1;
                self.unacked.push(Unacked {
                    tag: self.last_tag,
                    id,
                    consumer: Some(c.generation),
                });
            }
            out.push((id, redelivered, self.last_tag));
        }
        out
    }

    /// The tag `pick` designates, if anything is unacked.
    fn pick(&self, pick: usize) -> Option<u64> {
        (!self.unacked.is_empty()).then(|| self.unacked[pick % self.unacked.len()].tag)
    }

    /// RabbitMQ requeues a nack-multiple in one batch per consumer tag (basic.get deliveries
    /// being one more group), dispatching after each batch, in an order that depends on the
    /// server-generated tags. When such a requeue spans several groups and the consumer can
    /// take some of it at once, the delivery order is not determined: the test nacks one
    /// delivery instead.
    fn ambiguous_requeue(&self, tag: u64, requeue: bool) -> bool {
        let covered: Vec<&Unacked> = self.unacked.iter().filter(|u| u.tag <= tag).collect();
        let mut groups: Vec<Option<u64>> = covered.iter().map(|u| u.consumer).collect();
        groups.sort();
        groups.dedup();
        let consumer_takes_some = self.consumer.as_ref().is_some_and(|c| {
            let freed = covered
                .iter()
                .filter(|u| u.consumer == Some(c.generation))
                .count();
            c.no_ack || c.prefetch == 0 || c.outstanding - freed < c.prefetch as usize
        });
        requeue && groups.len() > 1 && consumer_takes_some
    }

    fn settle(&mut self, tag: u64, multiple: bool, requeue: bool) {
        let (taken, kept): (Vec<Unacked>, Vec<Unacked>) = std::mem::take(&mut self.unacked)
            .into_iter()
            .partition(|u| u.tag == tag || (multiple && u.tag < tag));
        self.unacked = kept;
        for u in taken {
            if let Some(c) = self.consumer.as_mut() {
                if u.consumer == Some(c.generation) {
                    c.outstanding -= 1;
                }
            }
            if requeue {
                self.ready.insert(u.id, true);
            }
        }
    }

    fn describe(&self) -> String {
        let ready: Vec<String> = self
            .ready
            .iter()
            .map(|(id, r)| format!("{id}{}", if *r { "r" } else { "" }))
            .collect();
        let unacked: Vec<String> = self
            .unacked
            .iter()
            .map(|u| {
                let by = u.consumer.map_or("get".to_owned(), |g| format!("c{g}"));
                format!("tag{}=m{}({by})", u.tag, u.id)
            })
            .collect();
        let consumer = self.consumer.as_ref().map(|c| {
            format!(
                "c{} prefetch {} no_ack {} outstanding {}",
                c.generation, c.prefetch, c.no_ack, c.outstanding
            )
        });
        format!(
            "ready [{}] unacked [{}] consumer {consumer:?}",
            ready.join(" "),
            unacked.join(" ")
        )
    }

    fn close_channel(&mut self) {
        self.consumer = None;
        for u in std::mem::take(&mut self.unacked) {
            self.ready.insert(u.id, true);
        }
        self.last_tag = 0;
    }
}

// ---- the broker side ----

const WAIT: Duration = Duration::from_secs(3);

async fn bounded<T>(what: &str, fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(WAIT, fut)
        .await
        .map_err(|_| format!("timed out: {what}"))
}

fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: broker {got:?}, model {want:?}"))
    }
}

struct Real {
    conn: Connection,
    ch: Channel,
    consumer: Option<Consumer>,
    queue: String,
}

impl Real {
    async fn open_channel(&mut self) -> Result<(), String> {
        self.ch = bounded("channel.open", self.conn.create_channel())
            .await?
            .map_err(|e| format!("channel.open: {e}"))?;
        Ok(())
    }

    /// (ready, consumers) by a passive declare: a round trip on the channel.
    async fn counts(&self) -> Result<(u32, u32), String> {
        let q = bounded(
            "passive declare",
            self.ch.queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await?
        .map_err(|e| format!("passive declare: {e}"))?;
        Ok((q.message_count(), q.consumer_count()))
    }

    /// Checks (ready, consumers) against the model. A passive declare is not ordered after
    /// asynchronous methods everywhere (RabbitMQ answers it with priority, and requeues after a
    /// channel close land a moment later), so the counts are polled until they match, bounded.
    async fn settled_counts(&self, want: (u32, u32)) -> Result<(), String> {
        let last = std::cell::RefCell::new(Err("no look".to_string()));
        common::poll_within(WAIT, || async {
            let got = self.counts().await;
            let done = got.as_ref().map_or(true, |got| *got == want);
            *last.borrow_mut() = got;
            done.then_some(())
        })
        .await;
        check("(ready, consumers)", last.into_inner()?, want)
    }

    /// Receives exactly `expected.len()` deliveries on the consumer and compares them.
    async fn receive(&mut self, expected: &[Seen]) -> Result<(), String> {
        for want in expected {
            let consumer = self
                .consumer
                .as_mut()
                .ok_or("the model expects deliveries but there is no consumer")?;
            let d = bounded(&format!("delivery {want:?}"), consumer.next())
                .await?
                .ok_or("consumer stream ended")?
                .map_err(|e| format!("consumer: {e}"))?;
            check(
                "delivery",
                seen(&d.data, d.redelivered, d.delivery_tag),
                *want,
            )?;
        }
        Ok(())
    }

    /// The consumer's stream must end without any further delivery.
    async fn consumer_ends(&mut self) -> Result<(), String> {
        if let Some(mut consumer) = self.consumer.take() {
            while let Some(d) = bounded("consumer stream end", consumer.next()).await? {
                if let Ok(d) = d {
                    return Err(format!(
                        "unexpected delivery {:?} to a finished consumer",
                        seen(&d.data, d.redelivered, d.delivery_tag)
                    ));
                }
            }
        }
        Ok(())
    }
}

fn seen(body: &[u8], redelivered: bool, tag: u64) -> Seen {
    let id = std::str::from_utf8(body).unwrap().parse().unwrap();
    (id, redelivered, tag)
}

async fn apply(real: &mut Real, model: &mut Model, op: &Op) -> Result<(), String> {
    let ch = real.ch.clone();
    match *op {
        Op::Publish(n) => {
            for _ in 0..n {
                let id = model.publish();
                bounded(
                    "publish",
                    ch.basic_publish(
                        "".into(),
                        real.queue.as_str().into(),
                        BasicPublishOptions::default(),
                        id.to_string().as_bytes(),
                        BasicProperties::default(),
                    ),
                )
                .await?
                .map_err(|e| format!("publish: {e}"))?;
            }
        }
        Op::Get { no_ack } => {
            let got = bounded(
                "basic.get",
                ch.basic_get(real.queue.as_str().into(), BasicGetOptions { no_ack }),
            )
            .await?
            .map_err(|e| format!("basic.get: {e}"))?;
            let want = model.get(no_ack);
            match got {
                Some(m) => {
                    let d = &m.delivery;
                    check(
                        "get-ok",
                        Some(seen(&d.data, d.redelivered, d.delivery_tag)),
                        want,
                    )?;
                    check(
                        "get-ok message_count",
                        m.message_count as usize,
                        model.ready.len(),
                    )?;
                }
                None => check("get-empty", None, want)?,
            }
        }
        Op::Consume { prefetch, no_ack } => {
            if model.consumer.is_some() {
                return Ok(());
            }
            bounded(
                "basic.qos",
                ch.basic_qos(prefetch, BasicQosOptions::default()),
            )
            .await?
            .map_err(|e| format!("basic.qos: {e}"))?;
            let consumer = bounded(
                "basic.consume",
                ch.basic_consume(
                    real.queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack,
                        ..Default::default()
                    },
                    FieldTable::default(),
                ),
            )
            .await?
            .map_err(|e| format!("basic.consume: {e}"))?;
            real.consumer = Some(consumer);
            model.consume(prefetch, no_ack);
        }
        Op::Ack { pick, multiple } => {
            let Some(tag) = model.pick(pick) else {
                return Ok(());
            };
            model.settle(tag, multiple, false);
            bounded("basic.ack", ch.basic_ack(tag, BasicAckOptions { multiple }))
                .await?
                .map_err(|e| format!("basic.ack: {e}"))?;
        }
        Op::Nack {
            pick,
            multiple,
            requeue,
        } => {
            let Some(tag) = model.pick(pick) else {
                return Ok(());
            };
            let multiple = multiple && !model.ambiguous_requeue(tag, requeue);
            model.settle(tag, multiple, requeue);
            bounded(
                "basic.nack",
                ch.basic_nack(tag, BasicNackOptions { multiple, requeue }),
            )
            .await?
            .map_err(|e| format!("basic.nack: {e}"))?;
        }
        Op::Reject { pick, requeue } => {
            let Some(tag) = model.pick(pick) else {
                return Ok(());
            };
            model.settle(tag, false, requeue);
            bounded(
                "basic.reject",
                ch.basic_reject(tag, BasicRejectOptions { requeue }),
            )
            .await?
            .map_err(|e| format!("basic.reject: {e}"))?;
        }
        Op::Cancel => {
            let Some(consumer) = &real.consumer else {
                return Ok(());
            };
            let tag = consumer.tag();
            bounded(
                "basic.cancel",
                ch.basic_cancel(tag, BasicCancelOptions::default()),
            )
            .await?
            .map_err(|e| format!("basic.cancel: {e}"))?;
            real.consumer_ends().await?;
            model.consumer = None;
        }
        Op::CloseChannel => {
            bounded("channel.close", ch.close(200, "bye".into()))
                .await?
                .map_err(|e| format!("channel.close: {e}"))?;
            real.consumer_ends().await?;
            model.close_channel();
            real.open_channel().await?;
        }
    }
    // Whatever the queue can hand to the consumer now arrives, exactly.
    let expected = model.dispatch();
    real.receive(&expected).await?;
    let want = (model.ready.len() as u32, model.consumer.is_some() as u32);
    real.settled_counts(want).await
}

async fn run_case(url: &str, queue: &str, ops: &[Op]) -> Result<(), String> {
    let conn = bounded(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await?
    .map_err(|e| format!("connect: {e}"))?;
    let ch = bounded("channel.open", conn.create_channel())
        .await?
        .map_err(|e| format!("channel.open: {e}"))?;
    bounded(
        "queue.declare",
        ch.queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?
    .map_err(|e| format!("queue.declare: {e}"))?;
    let mut real = Real {
        conn,
        ch,
        consumer: None,
        queue: queue.to_owned(),
    };
    let mut model = Model::default();
    let mut result = Ok(());
    // A readable trace of the case goes with a failure: each op, then the model's state.
    let mut trace = String::new();
    for (i, op) in ops.iter().enumerate() {
        let outcome = apply(&mut real, &mut model, op).await;
        trace.push_str(&format!("  #{i} {op:?}\n      -> {}\n", model.describe()));
        if let Err(e) = outcome {
            result = Err(format!("op #{i} {op:?}: {e}\ntrace:\n{trace}"));
            break;
        }
    }
    if result.is_ok() {
        // Finally: close the channel (everything unacked comes back) and read the whole queue.
        result = async {
            apply(&mut real, &mut model, &Op::CloseChannel).await?;
            let mut got = Vec::new();
            while let Some(m) = bounded(
                "basic.get",
                real.ch
                    .basic_get(queue.into(), BasicGetOptions { no_ack: true }),
            )
            .await?
            .map_err(|e| format!("basic.get: {e}"))?
            {
                let (id, redelivered, _) = seen(&m.delivery.data, m.delivery.redelivered, 0);
                got.push((id, redelivered));
            }
            let want: Vec<(u64, bool)> = model.ready.iter().map(|(i, r)| (*i, *r)).collect();
            check("final queue contents", got, want)
        }
        .await
        .map_err(|e| format!("final check: {e}"));
    }
    // Clean up on a fresh connection whatever happened.
    if let Ok(Ok(conn)) = tokio::time::timeout(
        WAIT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    {
        if let Ok(Ok(ch)) = tokio::time::timeout(WAIT, conn.create_channel()).await {
            let _ = tokio::time::timeout(
                WAIT,
                ch.queue_delete(queue.into(), QueueDeleteOptions::default()),
            )
            .await;
        }
        let _ = tokio::time::timeout(WAIT, conn.close(200, "done".into())).await;
    }
    let _ = tokio::time::timeout(WAIT, real.conn.close(200, "done".into())).await;
    result
}

#[test]
fn one_queue_behaves_like_the_model() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let external = std::env::var("MODEL_AMQP_URL").ok();
    let broker = match external {
        Some(_) => None,
        None => Some(rt.block_on(TestBroker::start())),
    };
    let url = external.unwrap_or_else(|| broker.as_ref().unwrap().url());
    let cases = std::env::var("MODEL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    static CASE: AtomicU64 = AtomicU64::new(0);
    let result = runner.run(&vec(op(), 1..=40), |ops| {
        let queue = format!(
            "model.{}.{}",
            std::process::id(),
            CASE.fetch_add(1, Ordering::Relaxed)
        );
        rt.block_on(run_case(&url, &queue, &ops))
            .map_err(TestCaseError::fail)
    });
    if let Some(broker) = broker {
        rt.block_on(broker.stop());
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}
