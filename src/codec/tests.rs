//! Byte-for-byte checks of the hand-written paths against amq-protocol's generator and
//! parser, and the framing errors.

use super::*;
use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};

fn generated(frame: &AMQPFrame) -> Vec<u8> {
    gen_frame(frame)(WriteContext::from(Vec::new()))
        .map(|c| c.write)
        .expect("generate")
}

fn props() -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ShortString::from("zeta"), AMQPValue::LongInt(-7));
    headers.insert(ShortString::from("alpha"), AMQPValue::Boolean(true));
    BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(3)
        .with_correlation_id("c-1".into())
        .with_timestamp(1_700_000_000)
}

#[test]
fn publish_is_parsed_like_amq_protocol_generates_it() {
    for (mandatory, immediate) in [(false, false), (true, false), (false, true), (true, true)] {
        let method = basic::Publish {
            exchange: "amq.topic".into(),
            routing_key: "a.b.c".into(),
            mandatory,
            immediate,
        };
        let bytes = generated(&AMQPFrame::Method(
            3,
            AMQPClass::Basic(basic::AMQPMethod::Publish(method)),
        ));
        let mut buf = BytesMut::from(&bytes[..]);
        match decode(&mut buf, 131072) {
            Ok(Some(Frame::Method {
                channel: 3,
                method: Method::Publish(p),
            })) => {
                assert_eq!(p.exchange.as_str(), "amq.topic");
                assert_eq!(p.routing_key.as_str(), "a.b.c");
                assert_eq!((p.mandatory, p.immediate), (mandatory, immediate));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(buf.is_empty());
    }
}

#[test]
fn ack_is_parsed_like_amq_protocol_generates_it() {
    let method = basic::Ack {
        delivery_tag: 0x0102_0304_0506_0708,
        multiple: true,
    };
    let bytes = generated(&AMQPFrame::Method(
        9,
        AMQPClass::Basic(basic::AMQPMethod::Ack(method)),
    ));
    let mut buf = BytesMut::from(&bytes[..]);
    match decode(&mut buf, 131072) {
        Ok(Some(Frame::Method {
            channel: 9,
            method:
                Method::Ack {
                    delivery_tag,
                    multiple,
                },
        })) => {
            assert_eq!(delivery_tag, 0x0102_0304_0506_0708);
            assert!(multiple);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn deliver_matches_amq_protocol_byte_for_byte() {
    let mut buf = BytesMut::new();
    encode_deliver(&mut buf, 5, "amq.ctag-x", 42, true, "ex", "rk");
    let expected = generated(&AMQPFrame::Method(
        5,
        AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "amq.ctag-x".into(),
            delivery_tag: 42,
            redelivered: true,
            exchange: "ex".into(),
            routing_key: "rk".into(),
        })),
    ));
    assert_eq!(&buf[..], &expected[..]);
}

#[test]
fn get_ok_return_ack_nack_match_amq_protocol() {
    let mut buf = BytesMut::new();
    encode_get_ok(&mut buf, 1, 7, false, "", "q", 99);
    let expected = generated(&AMQPFrame::Method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: 7,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
            message_count: 99,
        })),
    ));
    assert_eq!(&buf[..], &expected[..]);

    let mut buf = BytesMut::new();
    encode_return(&mut buf, 2, 312, "NO_ROUTE", "x", "k");
    let expected = generated(&AMQPFrame::Method(
        2,
        AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "x".into(),
            routing_key: "k".into(),
        })),
    ));
    assert_eq!(&buf[..], &expected[..]);

    let mut buf = BytesMut::new();
    encode_ack(&mut buf, 4, 1000, true);
    let expected = generated(&AMQPFrame::Method(
        4,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 1000,
            multiple: true,
        })),
    ));
    assert_eq!(&buf[..], &expected[..]);

    let mut buf = BytesMut::new();
    encode_nack(&mut buf, 4, 10, false);
    let expected = generated(&AMQPFrame::Method(
        4,
        AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: 10,
            multiple: false,
            requeue: false,
        })),
    ));
    assert_eq!(&buf[..], &expected[..]);
}

#[test]
fn content_matches_amq_protocol_and_splits_at_frame_max() {
    let properties = props();
    let header = AMQPFrame::Header(
        7,
        AMQPContentHeader {
            class_id: 60,
            body_size: 10_000,
            properties: properties.clone(),
        },
    );
    let header_bytes = generated(&header);
    // the raw property bytes are what follows class, weight and body size in the payload
    let raw_props = &header_bytes[7 + 12..header_bytes.len() - 1];
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let mut buf = BytesMut::new();
    encode_content(&mut buf, 7, raw_props, &body, 4096);
    let mut expected = header_bytes.clone();
    for part in body.chunks(4096 - 8) {
        expected.extend(generated(&AMQPFrame::Body(7, part.to_vec())));
    }
    assert_eq!(&buf[..], &expected[..]);

    // and amq-protocol reads our frames back to the same values
    let mut rest: &[u8] = &buf;
    let mut bodies = Vec::new();
    while !rest.is_empty() {
        let (r, frame) = parse_frame(rest).expect("parse");
        rest = r;
        match frame {
            AMQPFrame::Header(7, h) => assert_eq!(h.properties, properties),
            AMQPFrame::Body(7, b) => bodies.extend(b),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(bodies, body);
}

#[test]
fn empty_body_sends_no_body_frame() {
    let mut buf = BytesMut::new();
    encode_content(&mut buf, 1, &[0, 0], &[], 131072);
    assert_eq!(buf.len(), 8 + 14);
}

#[test]
fn header_frame_keeps_raw_properties() {
    let header = AMQPFrame::Header(
        1,
        AMQPContentHeader {
            class_id: 60,
            body_size: 3,
            properties: props(),
        },
    );
    let bytes = generated(&header);
    let mut buf = BytesMut::from(&bytes[..]);
    match decode(&mut buf, 131072) {
        Ok(Some(Frame::Header {
            channel: 1,
            class_id: 60,
            body_size: 3,
            properties,
        })) => {
            assert_eq!(&properties[..], &bytes[7 + 12..bytes.len() - 1]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn partial_frames_wait_for_more_bytes() {
    let bytes = generated(&AMQPFrame::Body(1, vec![1, 2, 3]));
    for cut in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..cut]);
        assert!(matches!(decode(&mut buf, 131072), Ok(None)), "cut at {cut}");
    }
}

#[test]
fn oversized_frame_is_refused_before_its_payload_arrives() {
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0x10, 0, 0][..]);
    let err = decode(&mut buf, 4096).expect_err("too large");
    assert_eq!(err.code, crate::error::ReplyCode::FrameError);
}

#[test]
fn bad_frame_end_is_a_frame_error() {
    let mut bytes = generated(&AMQPFrame::Body(1, vec![1, 2, 3]));
    let last = bytes.len() - 1;
    bytes[last] = 0;
    let mut buf = BytesMut::from(&bytes[..]);
    let err = decode(&mut buf, 131072).expect_err("bad end");
    assert_eq!(err.code, crate::error::ReplyCode::FrameError);
}

#[test]
fn truncated_method_is_a_frame_error_and_unknown_method_command_invalid() {
    // basic.publish with a routing key longer than the payload
    let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 0, 0, 8, 0, 60, 0, 40, 0, 0, 0, 9, 0xCE][..]);
    assert_eq!(
        decode(&mut buf, 131072).expect_err("short").code,
        crate::error::ReplyCode::FrameError
    );
    let mut buf = BytesMut::from(&[1u8, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE][..]);
    assert_eq!(
        decode(&mut buf, 131072).expect_err("unknown").code,
        crate::error::ReplyCode::CommandInvalid
    );
}

#[test]
fn whole_frames_is_the_prefix_of_complete_frames_and_decodes_alike() {
    let mut stream = Vec::new();
    let mut ends = vec![0];
    let publish = basic::Publish {
        exchange: "x".into(),
        routing_key: "é.key".into(),
        mandatory: true,
        immediate: false,
    };
    for frame in [
        AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Publish(publish))),
        AMQPFrame::Header(
            1,
            AMQPContentHeader {
                class_id: 60,
                body_size: 3,
                properties: props(),
            },
        ),
        AMQPFrame::Body(1, vec![1, 2, 3]),
        AMQPFrame::Body(1, Vec::new()),
        AMQPFrame::Heartbeat,
    ] {
        stream.extend(generated(&frame));
        ends.push(stream.len());
    }
    for cut in 0..=stream.len() {
        let whole = whole_frames(&stream[..cut], 131072);
        let expected = ends.iter().copied().filter(|&e| e <= cut).max().unwrap();
        assert_eq!(whole, expected, "cut at {cut}");
    }
    // The frames sliced from one shared buffer are the frames decoded one at a time.
    let mut chunk = Bytes::from(stream.clone());
    let mut one_by_one = BytesMut::from(&stream[..]);
    while !chunk.is_empty() {
        let (frame, size) = decode_first(&chunk, 131072).unwrap().unwrap();
        bytes::Buf::advance(&mut chunk, size);
        let alone = decode(&mut one_by_one, 131072).unwrap().unwrap();
        assert_eq!(format!("{frame:?}"), format!("{alone:?}"));
    }
    assert!(one_by_one.is_empty());
}

#[test]
fn whole_frames_stops_before_a_frame_over_frame_max() {
    let small = generated(&AMQPFrame::Body(1, vec![7; 10]));
    let large = generated(&AMQPFrame::Body(1, vec![7; 100]));
    let mut stream = small.clone();
    stream.extend(&large);
    stream.extend(&small);
    // 100 bytes are over a frame_max of 50: only the first frame is whole and allowed,
    assert_eq!(whole_frames(&stream, 50), small.len());
    // and decode refuses the next one, as before.
    let mut rest = BytesMut::from(&stream[small.len()..]);
    assert_eq!(
        decode(&mut rest, 50).expect_err("too large").code,
        crate::error::ReplyCode::FrameError
    );
    // frame_max 0: no limit.
    assert_eq!(whole_frames(&stream, 0), stream.len());
    // A header announcing 4 GiB waits (or is refused), never overflows.
    let huge = [3u8, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2];
    assert_eq!(whole_frames(&huge, 0), 0);
    assert_eq!(whole_frames(&huge, 131072), 0);
}

#[test]
fn a_bad_end_byte_in_a_shared_buffer_is_a_frame_error() {
    let mut bytes = generated(&AMQPFrame::Body(1, vec![1, 2, 3]));
    let last = bytes.len() - 1;
    bytes[last] = 0;
    assert_eq!(whole_frames(&bytes, 131072), bytes.len());
    let err = decode_first(&Bytes::from(bytes), 131072).expect_err("bad end");
    assert_eq!(err.code, crate::error::ReplyCode::FrameError);
}
