use proptest::prelude::*;

use super::*;

const LIMIT: u32 = 1 << 20;

fn sample() -> Vec<Wire> {
    let body = Payload(Bytes::from_static(b"entries"));
    vec![
        Wire::Ping,
        Wire::Pong,
        Wire::Welcome { boot: 7 },
        Wire::Refused(Refusal::ClusterId([3; 16])),
        Wire::Send(Frame::MetaApplied { index: 42 }),
        Wire::Request {
            id: 1,
            frame: Frame::AppendEntries {
                group: META,
                rpc: body.clone(),
            },
        },
        Wire::Response {
            id: 1,
            frame: Frame::AppendEntriesReply {
                group: 9,
                rpc: body,
            },
        },
        Wire::Hello(Hello {
            version: 1,
            from: "rabbit@n1".into(),
            to: "rabbit@n2".into(),
            boot: 3,
            nonce_d: [1; 32],
            peers_digest: [2; 32],
            cluster_id: None,
        }),
    ]
}

async fn read_all(mut bytes: &[u8]) -> Vec<Result<Wire, String>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match read(&mut bytes, LIMIT).await {
            Ok(w) => out.push(Ok(w)),
            Err(e) => {
                out.push(Err(e.to_string()));
                break;
            }
        }
    }
    out
}

#[tokio::test]
async fn frames_round_trip_back_to_back() {
    let mut stream = Vec::new();
    for w in sample() {
        stream.extend(encode(&w, LIMIT).unwrap());
    }
    let back: Vec<Wire> = read_all(&stream)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(back, sample());
}

#[test]
fn the_kind_byte_follows_the_length() {
    // Wire's variant index is its kind; postcard writes it as one byte below 128 variants.
    let bytes = encode(&Wire::Send(Frame::NodeInfo), LIMIT).unwrap();
    assert_eq!(bytes[..4], 2u32.to_be_bytes());
    assert_eq!(bytes[4], 7, "Wire::Send is the 8th kind");
    assert_eq!(bytes[5], 22, "Frame::NodeInfo is the 23rd frame kind");
    assert_eq!(encode(&Wire::Ping, LIMIT).unwrap(), PING);
    assert_eq!(encode(&Wire::Pong, LIMIT).unwrap(), PONG);
}

#[test]
fn bodies_are_copied_whole_not_element_by_element() {
    let body = Payload(Bytes::from(vec![0xAB; 1000]));
    let bytes = encode(&Wire::Send(Frame::RemotePublish { body }), LIMIT).unwrap();
    // length, kind, frame kind, varint 1000 (2 bytes), the bytes.
    assert_eq!(bytes.len(), 4 + 1 + 1 + 2 + 1000);
}

#[tokio::test]
async fn a_length_above_the_limit_is_refused_before_the_payload() {
    // Only the length arrives: the read fails without waiting for 2 MiB.
    let head = (LIMIT + 1).to_be_bytes();
    let err = read(&mut &head[..], LIMIT).await.unwrap_err();
    assert!(
        matches!(err, FrameError::TooLong { len, limit } if len == LIMIT + 1 && limit == LIMIT)
    );
    let big = Wire::Send(Frame::RemotePublish {
        body: Payload(Bytes::from(vec![0; LIMIT as usize])),
    });
    assert!(matches!(
        encode(&big, LIMIT),
        Err(FrameError::TooLong { .. })
    ));
}

#[tokio::test]
async fn empty_truncated_unknown_and_padded_frames_are_errors() {
    let cases: [&[u8]; 5] = [
        &[0, 0, 0, 0],              // no kind byte
        &[0, 0, 0, 1, 99],          // no such kind
        &[0, 0, 0, 2, 6, 0],        // a pong with a byte too many
        &[0, 0, 0, 9, 7, 19],       // the payload never comes
        &[0, 0, 0, 3, 7, 19, 0x80], // a varint cut short
    ];
    for bytes in cases {
        let got = read_all(bytes).await;
        assert!(matches!(got.last(), Some(Err(_))), "{bytes:?} gave {got:?}");
    }
}

#[test]
fn frame_limit_leaves_room_above_the_largest_message() {
    assert_eq!(frame_limit(0), 64 << 20);
    assert_eq!(frame_limit(128 << 20), 192 << 20);
    assert_eq!(frame_limit(u64::MAX), u32::MAX);
}

#[test]
fn payloads_round_trip() {
    let p = Payload::encode(&("q1", 5u64, vec![1u8, 2])).unwrap();
    assert_eq!(
        p.decode::<(String, u64, Vec<u8>)>().unwrap(),
        ("q1".into(), 5, vec![1, 2])
    );
    assert!(p.decode::<(String, u64, Vec<u8>, u8)>().is_err());
}

proptest! {
    /// Random bytes never panic the decoder, and whatever it accepts encodes back to the
    /// same bytes or at least decodes again to the same value.
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(wire) = decode(&body) {
            let again = encode(&wire, LIMIT).unwrap();
            prop_assert_eq!(decode(&again[4..]).unwrap(), wire);
        }
    }

    /// A valid frame with one byte changed never panics either.
    #[test]
    fn mutated_frames_never_panic(which in 0usize..8, at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&sample()[which], LIMIT).unwrap();
        let i = 4 + at.index(bytes.len() - 4);
        bytes[i] = byte;
        let _ = decode(&bytes[4..]);
    }
}
