use super::*;
use crate::cluster::identity::parse_peers;

const PEERS: &str = "rabbit@n1=127.0.0.1:1,rabbit@n2=127.0.0.2:1,rabbit@n3=127.0.0.3:1";

/// Node `name` of `peers` with `cookie`, in cluster `cluster_id`.
fn node(name: &str, peers: &str, cookie: &[u8], cluster_id: Option<[u8; 16]>) -> Local {
    let peers = parse_peers(peers).unwrap();
    Local::new(
        name,
        peers,
        cookie,
        cluster_id,
        77,
        1 << 20,
        Timers::default(),
    )
    .unwrap()
}

/// Runs both sides on an in-memory pipe: the dialer's and the listener's outcomes.
async fn shake(
    dialer: &Local,
    to: &str,
    listener: &Local,
) -> (
    Result<u64, HandshakeError>,
    Result<(NodeId, u64), HandshakeError>,
) {
    let (mut d, mut l) = tokio::io::duplex(4096);
    let to = PeerAddr {
        name: to.into(),
        addr: "unused".into(),
    };
    tokio::join!(dial(&mut d, dialer, &to), accept(&mut l, listener))
}

fn refusal<T: std::fmt::Debug>(r: Result<T, HandshakeError>) -> String {
    match r {
        Err(HandshakeError::Refused(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_same_cookie_opens_the_link() {
    let n1 = node("rabbit@n1", PEERS, b"cookie", Some([5; 16]));
    let n2 = node("rabbit@n2", PEERS, b"cookie", None);
    let (d, l) = shake(&n2, "rabbit@n1", &n1).await;
    assert_eq!(d.unwrap(), 77);
    assert_eq!(l.unwrap(), (2, 77));
}

#[tokio::test]
async fn another_cookie_is_refused_on_both_sides() {
    let n1 = node("rabbit@n1", PEERS, b"cookie", None);
    let n2 = node("rabbit@n2", PEERS, b"biscuit", None);
    let (d, l) = shake(&n2, "rabbit@n1", &n1).await;
    assert_eq!(refusal(d), "cookie mismatch");
    assert_eq!(refusal(l), "cookie mismatch");
}

#[tokio::test]
async fn another_cluster_id_is_refused() {
    let n1 = node("rabbit@n1", PEERS, b"cookie", Some([0x5f; 16]));
    let n2 = node("rabbit@n2", PEERS, b"cookie", Some([0x1c; 16]));
    let (d, l) = shake(&n2, "rabbit@n1", &n1).await;
    let (ours, theirs) = ("1c".repeat(16), "5f".repeat(16));
    assert_eq!(
        refusal(d),
        format!("it belongs to cluster {theirs} (ours {ours})")
    );
    assert_eq!(
        refusal(l),
        format!("rabbit@n2 belongs to cluster {ours} (ours {theirs})")
    );
}

#[tokio::test]
async fn another_peer_list_is_refused() {
    let n1 = node("rabbit@n1", PEERS, b"cookie", None);
    let other = "rabbit@n1=h:1,rabbit@n2=h:1,rabbit@x=h:1";
    let n2 = node("rabbit@n2", other, b"cookie", None);
    let (d, l) = shake(&n2, "rabbit@n1", &n1).await;
    assert_eq!(refusal(d), "it was started with other --peers");
    assert_eq!(refusal(l), "rabbit@n2 was started with other --peers");
    // Other addresses for the same names are the same cluster.
    let moved = node(
        "rabbit@n2",
        "rabbit@n1=h:1,rabbit@n2=h:2,rabbit@n3=h:3",
        b"cookie",
        None,
    );
    assert!(shake(&moved, "rabbit@n1", &n1).await.0.is_ok());
}

#[tokio::test]
async fn a_node_answering_to_another_name_is_refused() {
    // n2's peer list says rabbit@n3 is at this address, but rabbit@n1 answers.
    let n1 = node("rabbit@n1", PEERS, b"cookie", None);
    let n2 = node("rabbit@n2", PEERS, b"cookie", None);
    let (d, l) = shake(&n2, "rabbit@n3", &n1).await;
    assert_eq!(refusal(d), "it answers as rabbit@n1");
    assert_eq!(
        refusal(l),
        "rabbit@n2 dialled rabbit@n3, this node is rabbit@n1"
    );
}

#[tokio::test]
async fn a_node_dialling_itself_is_refused() {
    let n1 = node("rabbit@n1", PEERS, b"cookie", None);
    let (d, _) = shake(&n1, "rabbit@n1", &n1).await;
    assert_eq!(refusal(d), "it was started with other --peers");
}

#[tokio::test]
async fn a_listener_proof_replayed_for_another_dialer_fails() {
    // The proofs cover both names: the listener's proof for n2 does not verify for n3.
    let n1 = node("rabbit@n1", PEERS, b"cookie", None);
    let hello = |from: &str| Hello {
        version: VERSION,
        from: from.into(),
        to: "rabbit@n1".into(),
        boot: 1,
        nonce_d: [9; 32],
        peers_digest: n1.digest,
        cluster_id: None,
    };
    let nonce_l = [4; 32];
    let proof = n1.sign(Role::Listener, &hello("rabbit@n2"), &nonce_l);
    assert!(n1.verify(
        Role::Listener,
        &hello("rabbit@n2"),
        &nonce_l,
        proof.as_ref()
    ));
    assert!(!n1.verify(
        Role::Listener,
        &hello("rabbit@n3"),
        &nonce_l,
        proof.as_ref()
    ));
    assert!(!n1.verify(Role::Dialer, &hello("rabbit@n2"), &nonce_l, proof.as_ref()));
}

#[tokio::test]
async fn a_frame_out_of_turn_ends_the_handshake() {
    let n1 = node("rabbit@n1", PEERS, b"cookie", None);
    let (mut d, mut l) = tokio::io::duplex(4096);
    let send = frame::write(&mut d, &Wire::Ping, 1 << 20);
    let (_, got) = tokio::join!(send, accept(&mut l, &n1));
    assert!(matches!(got, Err(HandshakeError::Frame(_))));
}

#[tokio::test]
async fn a_member_that_lost_its_data_is_refused() {
    let n1 = node("rabbit@n1", PEERS, b"cookie", Some([0x5f; 16]));
    let n2 = node("rabbit@n2", PEERS, b"cookie", None);
    // Not recorded as joined yet (the very first start): it links and catches up.
    assert!(shake(&n2, "rabbit@n1", &n1).await.0.is_ok());
    n1.joined.lock().unwrap().insert(2);
    let (d, l) = shake(&n2, "rabbit@n1", &n1).await;
    assert!(matches!(d, Err(HandshakeError::LostData(id)) if id == [0x5f; 16]));
    assert_eq!(
        refusal(l),
        format!(
            "rabbit@n2 lost its data directory but is a member of cluster {}: it cannot \
             rejoin in phase 1",
            "5f".repeat(16)
        )
    );
    // With its data (its cluster id), the same member links.
    *n2.cluster_id.lock().unwrap() = Some([0x5f; 16]);
    assert!(shake(&n2, "rabbit@n1", &n1).await.0.is_ok());
}
