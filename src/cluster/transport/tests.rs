//! The transport over real sockets on 127.0.0.1, and MemLinks. No test waits for a timer:
//! each waits for the event (a watch change, an answer).

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::mem::MemLinks;
use super::*;

/// Requests in tests: long enough never to fire on a busy machine.
const WAIT: Duration = Duration::from_secs(30);

/// Short backoff so a returning peer is seen at once; doc timers otherwise.
fn timers() -> Timers {
    Timers {
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        ..Timers::default()
    }
}

/// `n` listeners on 127.0.0.1 port 0, and the peer list naming them.
async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<PeerAddr>) {
    let mut ls = Vec::new();
    let mut peers = Vec::new();
    for i in 1..=n {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        peers.push(PeerAddr {
            name: format!("rabbit@n{i}"),
            addr: l.local_addr().unwrap().to_string(),
        });
        ls.push(l);
    }
    (ls, peers)
}

fn config(i: usize, peers: &[PeerAddr], cookie: &[u8]) -> TransportConfig {
    TransportConfig {
        node: format!("rabbit@n{i}"),
        peers: peers.to_vec(),
        cookie: cookie.to_vec(),
        cluster_id: None,
        max_message_size: 1 << 20,
        timers: timers(),
    }
}

/// Answers every `NodeInfo` request with the node's name, and reports one-way frames.
fn serve(
    name: String,
    mut inbox: tokio::sync::mpsc::Receiver<Incoming>,
) -> tokio::sync::mpsc::UnboundedReceiver<(NodeId, Frame)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Incoming { from, frame, reply }) = inbox.recv().await {
            match reply {
                Some(reply) => {
                    let info = Payload(Bytes::from(format!("{name} for {from}")));
                    reply.send(Frame::NodeInfoReply { info });
                }
                None => {
                    let _ = tx.send((from, frame));
                }
            }
        }
    });
    rx
}

async fn start(
    i: usize,
    l: TcpListener,
    peers: &[PeerAddr],
) -> (
    Transport,
    tokio::sync::mpsc::UnboundedReceiver<(NodeId, Frame)>,
) {
    let (t, inbox) = Transport::start(config(i, peers, b"cookie"), l).unwrap();
    let sent = serve(format!("rabbit@n{i}"), inbox);
    (t, sent)
}

/// Waits until `t` sees `peer` up (or down).
async fn wait_for(t: &impl Links, peer: NodeId, up: bool) {
    let mut w = t.watch();
    w.wait_for(|s| s.get(&peer).is_some_and(|p| p.is_up() == up))
        .await
        .unwrap();
}

async fn ask(t: &impl Links, to: NodeId) -> String {
    match t.request(to, Frame::NodeInfo, WAIT).await.unwrap() {
        Frame::NodeInfoReply { info } => String::from_utf8(info.0.to_vec()).unwrap(),
        other => panic!("unexpected answer {other:?}"),
    }
}

#[tokio::test]
async fn three_transports_exchange_requests_and_frames() {
    let (ls, peers) = listeners(3).await;
    let mut nodes = Vec::new();
    for (i, l) in (1..).zip(ls) {
        nodes.push(start(i, l, &peers).await);
    }
    for (t, _) in &nodes {
        for peer in (1..=3).filter(|&p| p != t.id()) {
            wait_for(t, peer, true).await;
            assert!(t.is_up(peer));
        }
    }
    for (t, _) in &nodes {
        for peer in (1..=3).filter(|&p| p != t.id()) {
            assert_eq!(ask(t, peer).await, format!("rabbit@n{peer} for {}", t.id()));
        }
    }
    // One-way frames arrive in order, from the right sender.
    for index in 0..100 {
        nodes[0].0.send(3, Frame::MetaApplied { index });
    }
    for index in 0..100 {
        assert_eq!(
            nodes[2].1.recv().await.unwrap(),
            (1, Frame::MetaApplied { index })
        );
    }
    // Many requests in flight at once on one link each get their own answer.
    let t = &nodes[1].0;
    let answers = futures::future::join_all((0..50).map(|_| ask(t, 1))).await;
    assert!(answers.iter().all(|a| a == "rabbit@n1 for 2"));
    assert_eq!(
        t.request(9, Frame::NodeInfo, WAIT).await,
        Err(LinkError::Unknown(9))
    );
    for (t, _) in nodes {
        t.shutdown().await;
    }
}

#[tokio::test]
async fn a_stopped_peer_reads_as_down_then_up_when_it_returns() {
    let (ls, peers) = listeners(3).await;
    let mut ls = ls.into_iter();
    let (n1, _) = start(1, ls.next().unwrap(), &peers).await;
    let (n2, _) = start(2, ls.next().unwrap(), &peers).await;
    let (n3, _) = start(3, ls.next().unwrap(), &peers).await;
    wait_for(&n1, 3, true).await;
    let first_boot = match n1.watch().borrow()[&3] {
        PeerState::Up { boot, .. } => boot,
        down => panic!("{down:?}"),
    };
    assert_eq!(first_boot, n3.boot());

    n3.shutdown().await;
    wait_for(&n1, 3, false).await;
    wait_for(&n2, 3, false).await;
    assert_eq!(
        n1.request(3, Frame::NodeInfo, WAIT).await,
        Err(LinkError::Unreachable)
    );
    assert!(n1.is_up(2), "the other peer stays up");

    let again = TcpListener::bind(&peers[2].addr).await.unwrap();
    let (n3, _) = start(3, again, &peers).await;
    wait_for(&n1, 3, true).await;
    wait_for(&n2, 3, true).await;
    assert_eq!(ask(&n1, 3).await, "rabbit@n3 for 1");
    match n1.watch().borrow()[&3] {
        PeerState::Up { boot, .. } => assert_eq!(boot, n3.boot(), "a new run, a new boot"),
        down => panic!("{down:?}"),
    }
    for t in [n1, n2, n3] {
        t.shutdown().await;
    }
}

#[tokio::test]
async fn a_peer_with_another_cookie_never_links() {
    let (ls, peers) = listeners(2).await;
    let mut ls = ls.into_iter();
    let (n1, _) = Transport::start(config(1, &peers, b"cookie"), ls.next().unwrap()).unwrap();
    let (n2, _) = Transport::start(config(2, &peers, b"biscuit"), ls.next().unwrap()).unwrap();
    // Dialled over TCP with "cookie" as node 2 would be, n1 opens and n2 refuses.
    let good = config(2, &peers, b"cookie");
    let local = handshake::Local::new(
        &good.node,
        good.peers,
        b"cookie",
        None,
        1,
        1 << 20,
        timers(),
    );
    let local = local.unwrap();
    let mut s = TcpStream::connect(&peers[0].addr).await.unwrap();
    assert!(handshake::dial(&mut s, &local, &peers[0]).await.is_ok());
    let mut s = TcpStream::connect(&peers[1].addr).await.unwrap();
    match handshake::dial(&mut s, &local, &peers[1]).await {
        Err(handshake::HandshakeError::Refused(reason)) => assert_eq!(reason, "cookie mismatch"),
        other => panic!("{other:?}"),
    }
    assert!(!n1.is_up(2) && !n2.is_up(1));
    n1.shutdown().await;
    n2.shutdown().await;
}

#[tokio::test]
async fn a_bad_frame_closes_the_connection() {
    let (mut ls, peers) = listeners(2).await;
    let (n1, _) = Transport::start(config(1, &peers, b"cookie"), ls.remove(0)).unwrap();
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0xff, 0xff, 0xff, 0xff],
        &[0, 0, 0, 1, 99],
    ] {
        let mut s = TcpStream::connect(n1.local_addr()).await.unwrap();
        s.write_all(garbage).await.unwrap();
        let mut buf = [0u8; 64];
        // The listener closes without answering (or resets).
        assert!(matches!(s.read(&mut buf).await, Ok(0) | Err(_)));
    }
    n1.shutdown().await;
}

#[tokio::test]
async fn frames_above_the_limit_are_refused_to_their_sender() {
    let (ls, peers) = listeners(2).await;
    let mut ls = ls.into_iter();
    let (n1, _) = start(1, ls.next().unwrap(), &peers).await;
    let (n2, _) = start(2, ls.next().unwrap(), &peers).await;
    wait_for(&n1, 2, true).await;
    let huge = Payload(Bytes::from(vec![0; (65 << 20) + (1 << 20)]));
    let f = Frame::RemotePublish { body: huge };
    assert_eq!(n1.request(2, f, WAIT).await, Err(LinkError::TooLarge));
    // The link is still up and usable.
    assert_eq!(ask(&n1, 2).await, "rabbit@n2 for 1");
    n1.shutdown().await;
    n2.shutdown().await;
}

#[tokio::test]
async fn mem_links_deliver_answer_cut_and_heal() {
    let mut nodes = MemLinks::new(3);
    let (n3, inbox3) = nodes.pop().unwrap();
    let (n2, inbox2) = nodes.pop().unwrap();
    let (n1, _inbox1) = nodes.pop().unwrap();
    let mut sent3 = serve("rabbit@n3".into(), inbox3);
    let _sent2 = serve("rabbit@n2".into(), inbox2);
    assert_eq!(ask(&n1, 3).await, "rabbit@n3 for 1");
    n1.send(3, Frame::MetaApplied { index: 1 });
    assert_eq!(
        sent3.recv().await.unwrap(),
        (1, Frame::MetaApplied { index: 1 })
    );

    n1.cut(1, 3);
    assert!(!n1.is_up(3) && !n3.is_up(1) && n1.is_up(2) && n2.is_up(3));
    wait_for(&n3, 1, false).await;
    assert_eq!(
        n1.request(3, Frame::NodeInfo, WAIT).await,
        Err(LinkError::Unreachable)
    );
    n1.send(3, Frame::MetaApplied { index: 2 });
    n2.send(3, Frame::MetaApplied { index: 3 });
    assert_eq!(
        sent3.recv().await.unwrap(),
        (2, Frame::MetaApplied { index: 3 }),
        "n1's frame was lost"
    );

    n3.heal(3, 1);
    wait_for(&n1, 3, true).await;
    assert_eq!(ask(&n1, 3).await, "rabbit@n3 for 1");
    assert_eq!(
        n1.request(1, Frame::NodeInfo, WAIT).await,
        Err(LinkError::Unknown(1))
    );
}

#[tokio::test]
async fn bind_listens_on_this_nodes_own_address() {
    let peers =
        crate::cluster::identity::parse_peers("rabbit@n1=127.0.0.1:0,rabbit@n2=127.0.0.2:1")
            .unwrap();
    let (t, _) = Transport::bind(config(1, &peers, b"cookie")).await.unwrap();
    assert_eq!(t.local_addr().ip().to_string(), "127.0.0.1");
    assert_ne!(t.local_addr().port(), 0);
    t.shutdown().await;
    let stranger = TransportConfig {
        node: "rabbit@n9".into(),
        ..config(1, &peers, b"cookie")
    };
    let err = Transport::bind(stranger).await.err().unwrap();
    assert_eq!(err.to_string(), "node 'rabbit@n9' is not one of its peers");
}

#[tokio::test]
async fn a_joined_member_without_data_learns_it_must_stop() {
    let (ls, peers) = listeners(2).await;
    let mut ls = ls.into_iter();
    let id = [0x5f; 16];
    let n1 = TransportConfig {
        cluster_id: Some(id),
        ..config(1, &peers, b"cookie")
    };
    let (n1, _) = Transport::start(n1, ls.next().unwrap()).unwrap();
    n1.set_joined(2);
    let (n2, _) = Transport::start(config(2, &peers, b"cookie"), ls.next().unwrap()).unwrap();
    let mut lost = n2.lost_data();
    assert_eq!(*lost.wait_for(Option::is_some).await.unwrap(), Some(id));
    assert!(!n2.is_up(1));
    n1.shutdown().await;
    n2.shutdown().await;
}
