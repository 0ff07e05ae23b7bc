//! Three warren nodes in one process, clustered on 127.0.0.1 (issue 17, phase 1): a
//! quorum queue and an exchange declared on one node are there on the others when
//! declare-ok arrives; messages published with confirms on one node are consumed and
//! acked on another; the leader stops and a new one goes on with every confirmed message.
#![cfg(feature = "cluster")]
mod common;

use common::{scratch_dir, table, within};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// A free port on 127.0.0.1 (bound, read and released: the node binds it again).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn cookie(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("cookie");
    std::fs::write(&path, "warren-cluster-test\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

struct Cluster {
    nodes: Vec<Option<warren::Server>>,
    configs: Vec<warren::Config>,
}

impl Cluster {
    async fn start(name: &str) -> Cluster {
        let dir = scratch_dir(name);
        let cookie = cookie(&dir);
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("rabbit@n{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let configs: Vec<warren::Config> = (0..3)
            .map(|i| {
                let mut c = warren::Config::local(dir.join(format!("n{}", i + 1)));
                c.node_name = Some(format!("rabbit@n{}", i + 1));
                c.peers = Some(peers.clone());
                c.cluster_cookie_file = Some(cookie.clone());
                c.cluster_heartbeat_ms = 100;
                c
            })
            .collect();
        let (a, b, c) = tokio::join!(
            warren::start(configs[0].clone()),
            warren::start(configs[1].clone()),
            warren::start(configs[2].clone()),
        );
        Cluster {
            nodes: vec![Some(a.unwrap()), Some(b.unwrap()), Some(c.unwrap())],
            configs,
        }
    }

    fn node(&self, i: usize) -> &warren::Server {
        self.nodes[i].as_ref().expect("a running node")
    }

    async fn channel(&self, i: usize) -> (Connection, Channel) {
        let url = format!("amqp://guest:guest@{}/%2f", self.node(i).local_addr());
        let conn = within(Connection::connect(&url, ConnectionProperties::default()))
            .await
            .unwrap();
        let ch = within(conn.create_channel()).await.unwrap();
        (conn, ch)
    }

    /// The index of the node the log's leader is, as node `i` sees it.
    fn leader(&self, i: usize) -> usize {
        let name = self
            .node(i)
            .cluster()
            .and_then(|n| n.shared.leader_name())
            .expect("a leader");
        name.trim_start_matches("rabbit@n")
            .parse::<usize>()
            .unwrap()
            - 1
    }
}

fn quorum() -> FieldTable {
    table(&[("x-queue-type", AMQPValue::LongString("quorum".into()))])
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn publish_confirmed(ch: &Channel, exchange: &str, key: &str, bodies: &[Vec<u8>]) {
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .unwrap();
    let mut confirms = Vec::new();
    for body in bodies {
        let c = ch
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        confirms.push(c);
    }
    for c in confirms {
        let confirmation = within(c).await.unwrap();
        assert!(confirmation.is_ack(), "every message confirmed");
    }
}

async fn consume_n(ch: &Channel, queue: &str, n: usize) -> Vec<Vec<u8>> {
    within(ch.basic_qos(50, BasicQosOptions::default()))
        .await
        .unwrap();
    let mut consumer = within(ch.basic_consume(
        queue.into(),
        "c".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next()).await;
        let Ok(d) = d else {
            panic!("{} of {n} delivered", got.len());
        };
        let d = d.expect("a delivery").unwrap();
        got.push(d.data.clone());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    within(ch.basic_cancel("c".into(), BasicCancelOptions::default()))
        .await
        .unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_and_quorum_queues_are_shared_by_every_node() {
    let cluster = Cluster::start("cluster-basic").await;
    let (_c1, ch1) = cluster.channel(0).await;
    let (_c2, ch2) = cluster.channel(1).await;
    let (_c3, ch3) = cluster.channel(2).await;

    // Declared on n1: there on n2 and n3 as soon as declare-ok came.
    within(ch1.queue_declare("q1".into(), durable(), quorum()))
        .await
        .unwrap();
    within(ch1.exchange_declare(
        "x".into(),
        lapin::ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    for ch in [&ch2, &ch3] {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        within(ch.queue_declare("q1".into(), passive, FieldTable::default()))
            .await
            .expect("the quorum queue is on every node");
    }
    // Bound on n3, published on n2, consumed on n3 and n1.
    within(ch3.queue_bind(
        "q1".into(),
        "x".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let bodies: Vec<Vec<u8>> = (0..200).map(|i| format!("m{i}").into_bytes()).collect();
    publish_confirmed(&ch2, "x", "k", &bodies).await;
    eprintln!("leader: n{}", cluster.leader(2) + 1);
    let got = consume_n(&ch3, "q1", bodies.len()).await;
    let mut sorted = got.clone();
    sorted.sort();
    let mut want = bodies.clone();
    want.sort();
    assert_eq!(sorted, want, "every confirmed message delivered once");

    // An inequivalent declare is refused the same on another node.
    let other = table(&[("x-queue-type", AMQPValue::LongString("classic".into()))]);
    let err = within(ch2.queue_declare("q1".into(), durable(), other))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PRECONDITION_FAILED"), "{err}");

    // The leader stops: the others elect a new one, and what was confirmed is there.
    let (_c4, ch4) = cluster.channel(0).await;
    let more: Vec<Vec<u8>> = (0..50).map(|i| format!("n{i}").into_bytes()).collect();
    publish_confirmed(&ch4, "", "q1", &more).await;
    let leader = cluster.leader(0);
    let mut cluster = cluster;
    let server = cluster.nodes[leader].take().unwrap();
    server.shutdown().await;
    let survivor = (leader + 1) % 3;
    let (_c5, ch5) = cluster.channel(survivor).await;
    let got = consume_n(&ch5, "q1", more.len()).await;
    let mut sorted = got;
    sorted.sort();
    let mut want = more.clone();
    want.sort();
    assert_eq!(sorted, want, "confirmed messages survive the leader");
    let after: Vec<Vec<u8>> = vec![b"after".to_vec()];
    publish_confirmed(&ch5, "", "q1", &after).await;
    let _ = cluster.configs.len();
    tokio::time::sleep(Duration::from_millis(1)).await;
}
