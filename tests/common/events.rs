//! The event exchange's test support: a broker with `--event-exchange`, a listener bound
//! to `amq.rabbitmq.event`, and the events it hears with typed header accessors.

use super::{refusal, within, TestBroker};
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, Consumer, ExchangeKind};

pub const EXCHANGE: &str = "amq.rabbitmq.event";

pub async fn with_events() -> TestBroker {
    TestBroker::start_with(|c| warren::Config {
        event_exchange: true,
        management_port: warren::ListenerPort::On(0),
        ..c
    })
    .await
}

/// A consumer of every event matching `pattern` (on its own connection).
pub async fn listen(broker: &TestBroker, pattern: &str) -> (Connection, Channel, Consumer) {
    let (conn, ch) = broker.channel().await;
    let q = within(ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let name = q.name().as_str().to_owned();
    within(ch.queue_bind(
        name.as_str().into(),
        EXCHANGE.into(),
        pattern.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let consumer = super::consume(
        &ch,
        &name,
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    (conn, ch, consumer)
}

pub struct Ev {
    pub key: String,
    pub headers: FieldTable,
    pub props: BasicProperties,
    pub body: Vec<u8>,
}

impl Ev {
    pub fn get(&self, k: &str) -> &AMQPValue {
        self.headers
            .inner()
            .get(k)
            .unwrap_or_else(|| panic!("{} has no header {k}: {:?}", self.key, self.headers))
    }
    pub fn text(&self, k: &str) -> String {
        match self.get(k) {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => panic!("{k} is not a longstr: {other:?}"),
        }
    }
    pub fn flag(&self, k: &str) -> bool {
        match self.get(k) {
            AMQPValue::Boolean(b) => *b,
            other => panic!("{k} is not a bool: {other:?}"),
        }
    }
    pub fn long(&self, k: &str) -> i64 {
        match self.get(k) {
            AMQPValue::LongLongInt(n) => *n,
            other => panic!("{k} is not a long: {other:?}"),
        }
    }
    pub fn strings(&self, k: &str) -> Vec<String> {
        match self.get(k) {
            AMQPValue::FieldArray(a) => a
                .as_slice()
                .iter()
                .map(|v| match v {
                    AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                    other => panic!("{k} holds {other:?}"),
                })
                .collect(),
            other => panic!("{k} is not an array: {other:?}"),
        }
    }
    pub fn keys(&self) -> Vec<&str> {
        self.headers.inner().keys().map(|k| k.as_str()).collect()
    }
}

/// The next event.
pub async fn next(consumer: &mut Consumer) -> Ev {
    let d = within(consumer.next())
        .await
        .expect("consumer open")
        .expect("delivery");
    Ev {
        key: d.routing_key.as_str().to_owned(),
        headers: d.properties.headers().clone().unwrap_or_default(),
        props: d.properties.clone(),
        body: d.data.clone(),
    }
}

/// The next event with routing key `key` (others are skipped).
pub async fn next_of(consumer: &mut Consumer, key: &str) -> Ev {
    loop {
        let e = next(consumer).await;
        if e.key == key {
            return e;
        }
    }
}

pub fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

/// A passive exchange.declare of the event exchange: its refusal.
pub async fn passive_event_exchange(ch: &Channel) -> (u16, String) {
    let declared = ch
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    refusal(declared)
}
