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
use serde_json::json;
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
                common::with_management(c)
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

    fn http(&self, i: usize) -> common::http::Http {
        common::http::Http::new(self.node(i).management_addr().expect("management on"))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_writes_are_replayed_on_every_node() {
    let cluster = Cluster::start("cluster-http").await;
    // A user, a vhost and a permission made on three different nodes.
    let put = cluster
        .http(0)
        .put(
            "/api/users/bob",
            &json!({"password": "secret", "tags": "administrator"}),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    let put = cluster.http(1).put("/api/vhosts/v2", &json!({})).await;
    assert_eq!(put.status, 201, "{}", put.text());
    let perm = json!({"configure": ".*", "write": ".*", "read": ".*"});
    let put = cluster.http(2).put("/api/permissions/v2/bob", &perm).await;
    assert_eq!(put.status, 201, "{}", put.text());
    for i in 0..3 {
        let http = cluster.http(i);
        assert_eq!(http.get("/api/users/bob").await.status, 200, "node {i}");
        assert_eq!(http.get("/api/vhosts/v2").await.status, 200, "node {i}");
        assert_eq!(
            http.get("/api/permissions/v2/bob").await.status,
            200,
            "node {i}"
        );
    }
    // The same refusal everywhere: a second PUT of a vhost is 204, a bad body 400.
    let bad = cluster
        .http(2)
        .put("/api/users/eve", &json!({"tags": 7}))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    // bob logs in on every node, into v2: the password hash was made on each node.
    for i in 0..3 {
        let url = format!("amqp://bob:secret@{}/v2", cluster.node(i).local_addr());
        let conn = within(Connection::connect(&url, ConnectionProperties::default()))
            .await
            .unwrap_or_else(|e| panic!("bob on node {i}: {e}"));
        drop(conn);
    }
    // A quorum queue declared through the API on n2 is a replicated queue everywhere,
    // with its leader and members.
    let q = json!({"durable": true, "arguments": {"x-queue-type": "quorum"}});
    let put = cluster.http(1).put("/api/queues/v2/hq", &q).await;
    assert_eq!(put.status, 201, "{}", put.text());
    let leader = format!("rabbit@n{}", cluster.leader(0) + 1);
    for i in 0..3 {
        let got = cluster.http(i).get("/api/queues/v2/hq").await.json();
        assert_eq!(got["type"], "quorum", "node {i}");
        assert_eq!(got["leader"], json!(leader), "node {i}");
        assert_eq!(
            got["members"],
            json!(["rabbit@n1", "rabbit@n2", "rabbit@n3"]),
            "node {i}"
        );
    }
    let nodes = cluster.http(2).get("/api/nodes").await.json();
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{nodes}");
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["running"] == true),
        "{nodes}"
    );
    // Deleted on one node: gone from all.
    let del = cluster.http(0).delete("/api/users/bob").await;
    assert_eq!(del.status, 204, "{}", del.text());
    for i in 0..3 {
        assert_eq!(
            cluster.http(i).get("/api/users/bob").await.status,
            404,
            "node {i}"
        );
    }
}
