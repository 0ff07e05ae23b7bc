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

    /// Stops every node and starts them again on their data directories.
    async fn restart_all(&mut self) {
        for node in self.nodes.iter_mut() {
            if let Some(n) = node.take() {
                n.shutdown().await;
            }
        }
        let (a, b, c) = tokio::join!(
            warren::start(self.configs[0].clone()),
            warren::start(self.configs[1].clone()),
            warren::start(self.configs[2].clone()),
        );
        self.nodes = vec![Some(a.unwrap()), Some(b.unwrap()), Some(c.unwrap())];
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
    // warren ctl cluster_status, as rabbitmqctl's: every node, every one running.
    let api = format!("http://{}", cluster.node(1).management_addr().unwrap());
    let run = within(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .args(["ctl", "--url", &api, "cluster_status"])
            .output(),
    )
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{text}");
    assert!(
        text.contains("Cluster status of node rabbit@n2 ..."),
        "{text}"
    );
    let running = text.split("Running Nodes").nth(1).unwrap_or_default();
    for n in ["rabbit@n1", "rabbit@n2", "rabbit@n3"] {
        assert!(running.contains(n), "{n} running: {text}");
    }
    let run = within(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .args([
                "ctl",
                "--url",
                &api,
                "cluster_status",
                "--formatter",
                "json",
            ])
            .output(),
    )
    .await
    .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        status["disk_nodes"],
        json!(["rabbit@n1", "rabbit@n2", "rabbit@n3"])
    );
    assert_eq!(status["running_nodes"].as_array().map(Vec::len), Some(3));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_comes_back_from_its_snapshots() {
    let mut cluster = Cluster::start("cluster-snapshot").await;
    let (c1, ch1) = cluster.channel(0).await;
    within(ch1.queue_declare("sq".into(), durable(), quorum()))
        .await
        .unwrap();
    let bodies: Vec<Vec<u8>> = (0..300).map(|i| format!("s{i}").into_bytes()).collect();
    publish_confirmed(&ch1, "", "sq", &bodies).await;
    let (c2, ch2) = cluster.channel(1).await;
    let first = consume_n(&ch2, "sq", 100).await;
    // The acks are settled in the log: every node counts the other 200.
    for i in 0..3 {
        let http = cluster.http(i);
        let settled = common::poll_within(Duration::from_secs(10), || async {
            (http.get("/api/queues/%2F/sq").await.json()["messages"] == 200).then_some(())
        })
        .await;
        assert!(settled.is_some(), "the acks are settled on node {i}");
    }
    // Every node snapshots and purges its log: what is left is in the snapshots.
    for i in 0..3 {
        let raft = cluster.node(i).cluster().unwrap().raft().clone();
        raft.trigger().snapshot().await.unwrap();
        let mut metrics = raft.metrics();
        let index = metrics.borrow().last_applied.map(|l| l.index).unwrap();
        within(metrics.wait_for(|m| m.snapshot.is_some_and(|s| s.index >= index)))
            .await
            .unwrap();
        raft.trigger().purge_log(index).await.unwrap();
        within(metrics.wait_for(|m| m.purged.is_some_and(|p| p.index >= index)))
            .await
            .unwrap();
    }
    drop((c1, c2));
    cluster.restart_all().await;
    let (_c3, ch3) = cluster.channel(2).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let ok = within(ch3.queue_declare("sq".into(), passive, FieldTable::default()))
        .await
        .expect("the quorum queue came back from the snapshot");
    let _ = ok;
    let rest = consume_n(&ch3, "sq", bodies.len() - first.len()).await;
    let mut all = first;
    all.extend(rest);
    all.sort();
    let mut want = bodies;
    want.sort();
    assert_eq!(
        all, want,
        "every confirmed message, once, after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_on_a_node_that_does_not_lead_reads_the_leaders_queue() {
    let cluster = Cluster::start("cluster-get").await;
    let leader = cluster.leader(0);
    let follower = (leader + 1) % 3;
    let (_c1, ch1) = cluster.channel(leader).await;
    within(ch1.queue_declare("gq".into(), durable(), quorum()))
        .await
        .unwrap();
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| format!("g{i}").into_bytes()).collect();
    publish_confirmed(&ch1, "", "gq", &bodies).await;
    let (_c2, ch2) = cluster.channel(follower).await;
    let get = |ch: Channel| async move {
        within(ch.basic_get("gq".into(), BasicGetOptions::default()))
            .await
            .unwrap()
    };
    // The first one back, unacked: it comes again, redelivered.
    let first = get(ch2.clone()).await.expect("a message");
    assert_eq!(first.delivery.data, b"g0");
    assert_eq!(first.message_count, 2);
    first
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let Some(m) = get(ch2.clone()).await else {
            break;
        };
        if m.delivery.data == b"g0" {
            assert!(m.delivery.redelivered, "requeued through the leader");
        }
        seen.push(m.delivery.data.clone());
        m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    seen.sort();
    assert_eq!(seen, bodies, "every message once, then get-empty");
    // Acked through the leader: nothing left anywhere.
    for i in 0..3 {
        let http = cluster.http(i);
        let empty = common::poll_within(Duration::from_secs(10), || async {
            (http.get("/api/queues/%2F/gq").await.json()["messages"] == 0).then_some(())
        })
        .await;
        assert!(empty.is_some(), "node {i} counts no message");
    }
}

/// The configuration of a lone member of a three-node cluster on `dir` (nothing else
/// started: each refusal comes before any listener opens).
fn member(dir: &Path, node: &str, cookie: &Path) -> warren::Config {
    let mut c = warren::Config::local(dir.join("data"));
    c.node_name = Some(node.to_owned());
    let (a, b, d) = (free_port(), free_port(), free_port());
    c.peers = Some(format!(
        "rabbit@n1=127.0.0.1:{a},rabbit@n2=127.0.0.1:{b},rabbit@n3=127.0.0.1:{d}"
    ));
    c.cluster_cookie_file = Some(cookie.to_owned());
    c
}

async fn refusal(config: warren::Config) -> String {
    match warren::start(config).await {
        Ok(_) => panic!("the node started"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_node_refuses_to_start_with_a_wrong_identity() {
    let dir = scratch_dir("cluster-refusals");
    let good = cookie(&dir);
    let text = refusal(member(&dir, "rabbit@n4", &good)).await;
    assert_eq!(
        text,
        "--node-name 'rabbit@n4' is not one of --peers (rabbit@n1, rabbit@n2, rabbit@n3)"
    );
    let mut in_memory = member(&dir, "rabbit@n1", &good);
    in_memory.in_memory = true;
    let text = refusal(in_memory).await;
    assert_eq!(
        text,
        "--peers needs a data directory: a cluster node keeps its Raft log on disk"
    );
    let open = dir.join("open-cookie");
    std::fs::write(&open, "secret").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = refusal(member(&dir, "rabbit@n1", &open)).await;
    assert!(text.contains("readable by its owner only"), "{text}");
    let mut twice = member(&dir, "rabbit@n1", &good);
    twice.peers = Some("rabbit@n1=127.0.0.1:1,rabbit@n1=127.0.0.1:2".to_owned());
    assert_eq!(refusal(twice).await, "--peers: 'rabbit@n1' is listed twice");
    // A cluster node's data directory (written at its first start, which then waits
    // for its peers) is refused to a single node and to another node name.
    let first = tokio::time::timeout(
        Duration::from_millis(300),
        warren::start(member(&dir, "rabbit@n1", &good)),
    )
    .await;
    assert!(first.is_err(), "a lone member waits for a majority");
    let mut single = warren::Config::local(dir.join("data"));
    single.peers = None;
    let text = refusal(single).await;
    assert!(
        text.contains("belongs to cluster node 'rabbit@n1'"),
        "{text}"
    );
    let text = refusal(member(&dir, "rabbit@n2", &good)).await;
    assert!(text.contains("belongs to node 'rabbit@n1'"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_queue_is_reached_from_every_node() {
    let cluster = Cluster::start("cluster-classic").await;
    let (_c1, ch1) = cluster.channel(0).await;
    let (_c2, ch2) = cluster.channel(1).await;
    let (_c3, ch3) = cluster.channel(2).await;
    // Declared on n1: it lives there; the others reach it.
    within(ch1.queue_declare("cq".into(), durable(), FieldTable::default()))
        .await
        .unwrap();
    within(ch2.queue_bind(
        "cq".into(),
        "amq.direct".into(),
        "ck".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let bodies: Vec<Vec<u8>> = (0..100).map(|i| format!("c{i}").into_bytes()).collect();
    publish_confirmed(&ch2, "", "cq", &bodies[..50]).await;
    publish_confirmed(&ch3, "amq.direct", "ck", &bodies[50..]).await;
    for i in 0..3 {
        let q = cluster.http(i).get("/api/queues/%2F/cq").await.json();
        assert_eq!(q["node"], "rabbit@n1", "node {i}: {q}");
        assert_eq!(q["arguments"], json!({}), "node {i}: {q}");
    }
    let home = cluster.http(0);
    let held = common::poll_within(Duration::from_secs(10), || async {
        (home.get("/api/queues/%2F/cq").await.json()["messages"] == 100).then_some(())
    })
    .await;
    assert!(
        held.is_some(),
        "the home node holds every confirmed message"
    );
    // A get on n2, a consumer on n3: both through n1's queue.
    let got = within(ch2.basic_get("cq".into(), BasicGetOptions::default()))
        .await
        .unwrap()
        .expect("a message");
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    let mut all = vec![got.delivery.data.clone()];
    all.extend(consume_n(&ch3, "cq", 99).await);
    all.sort();
    let mut want = bodies;
    want.sort();
    assert_eq!(all, want, "every message once");
    let empty = common::poll_within(Duration::from_secs(10), || async {
        (home.get("/api/queues/%2F/cq").await.json()["messages"] == 0).then_some(())
    })
    .await;
    assert!(empty.is_some(), "acked on the home node");
    // Deleted from n3: gone everywhere.
    within(ch3.queue_delete("cq".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    for i in 0..3 {
        assert_eq!(
            cluster.http(i).get("/api/queues/%2F/cq").await.status,
            404,
            "node {i}"
        );
    }
}
