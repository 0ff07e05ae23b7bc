//! Benchmarks run by hand (ignored by `cargo test`): a request's round trip over loopback
//! and one-way frames per second on one link.
//! `cargo test --release --lib -- --ignored --nocapture bench_transport`

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;

use super::*;

/// Two linked transports on 127.0.0.1; node 2 answers every request with an empty reply.
async fn pair() -> (Transport, Transport, tokio::sync::mpsc::Receiver<Incoming>) {
    let (l1, l2) = (bind().await, bind().await);
    let peers = [("rabbit@n1", &l1), ("rabbit@n2", &l2)].map(|(name, l)| PeerAddr {
        name: name.into(),
        addr: l.local_addr().unwrap().to_string(),
    });
    let config = |node: &str| TransportConfig {
        node: node.into(),
        peers: peers.to_vec(),
        cookie: b"bench".to_vec(),
        cluster_id: None,
        max_message_size: 1 << 20,
        timers: Timers::default(),
    };
    let (n1, inbox1) = Transport::start(config("rabbit@n1"), l1).unwrap();
    let (n2, mut inbox2) = Transport::start(config("rabbit@n2"), l2).unwrap();
    let (seen_tx, seen) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        while let Some(incoming) = inbox2.recv().await {
            match incoming.reply {
                Some(r) => r.send(Frame::NodeInfoReply {
                    info: Payload::default(),
                }),
                None => {
                    let _ = seen_tx.send(incoming).await;
                }
            }
        }
    });
    drop(inbox1);
    n1.watch().wait_for(|s| s[&2].is_up()).await.unwrap();
    (n1, n2, seen)
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

#[test]
#[ignore]
fn bench_transport() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (n1, n2, mut seen) = pair().await;
        let wait = Duration::from_secs(10);
        let mut lat = Vec::new();
        for _ in 0..20_000 {
            let t = Instant::now();
            n1.request(2, Frame::NodeInfo, wait).await.unwrap();
            lat.push(t.elapsed().as_micros() as u64);
        }
        lat.sort_unstable();
        println!(
            "request round trip (one at a time): p50 {} us, p90 {} us, p99 {} us",
            lat[lat.len() / 2],
            lat[lat.len() * 9 / 10],
            lat[lat.len() * 99 / 100]
        );
        for size in [0usize, 1024, 64 << 10] {
            let body = Payload(Bytes::from(vec![7u8; size]));
            let n = if size > 4096 { 20_000 } else { 500_000 };
            let t = Instant::now();
            // Received as they come: a receiver that stops reading stops its links (no
            // pongs read), as a node whose inbox stays full would.
            let counted = async {
                for _ in 0..n {
                    seen.recv().await.unwrap();
                }
            };
            let sent = async {
                for _ in 0..n {
                    let body = body.clone();
                    n1.send(2, Frame::Deliver { group: 1, body });
                    // Lets the link's task write, so the sender's queue stays short.
                    tokio::task::yield_now().await;
                }
            };
            tokio::join!(counted, sent);
            let secs = t.elapsed().as_secs_f64();
            println!(
                "one-way frames with a {size} B payload: {:.0} frames/s, {:.0} MB/s",
                n as f64 / secs,
                (n * size) as f64 / secs / 1e6
            );
        }
        n1.shutdown().await;
        n2.shutdown().await;
    });
}
