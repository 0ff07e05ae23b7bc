//! Malformed input on a raw socket: bad protocol headers, broken frames, content out of
//! order, undecodable methods, silent and vanishing clients. Each case checks the exact
//! reply RabbitMQ 3.10 gives, that the server then closes the socket, that the broker still
//! serves a new lapin connection, and that no broker code panicked.
mod common;

use amq_protocol::protocol::{basic, channel, connection, exchange, queue, AMQPClass};
use common::raw::{body_frame, header_frame, method_frame, raw_frame, Raw, PROTOCOL_HEADER};
use common::{within, TestBroker};
use lapin::options::QueueDeclareOptions;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Panic watch: the broker runs in this process, so a panic in its code (a connection task
// that died) is seen by the panic hook with a location under src/.

static BROKER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn watch_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info
                .location()
                .is_some_and(|l| l.file().starts_with("src/"))
            {
                BROKER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

async fn start() -> TestBroker {
    watch_panics();
    TestBroker::start().await
}

/// The broker still takes a new lapin connection and answers on it, and nothing panicked.
async fn assert_healthy(broker: &TestBroker) {
    let (conn, ch) = within(broker.channel()).await;
    within(ch.queue_declare(
        "malformed.alive".into(),
        QueueDeclareOptions::default(),
        Default::default(),
    ))
    .await
    .expect("queue.declare on a fresh connection");
    within(conn.close(200, "bye".into())).await.expect("close");
    assert_eq!(
        BROKER_PANICS.load(Ordering::SeqCst),
        0,
        "broker code panicked"
    );
}

fn publish(routing_key: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "amq.direct".into(),
        routing_key: routing_key.into(),
        ..Default::default()
    }))
}

fn passive_declare_amq_direct() -> AMQPClass {
    AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
        exchange: "amq.direct".into(),
        kind: "direct".into(),
        passive: true,
        ..Default::default()
    }))
}

fn queue_declare(name: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        ..Default::default()
    }))
}

/// Erlang's rendering of a binary: `<<0,60,0,10>>`.
fn erlang_binary(bytes: &[u8]) -> String {
    let items: Vec<String> = bytes.iter().map(u8::to_string).collect();
    format!("<<{}>>", items.join(","))
}

impl Raw {
    /// Asserts the next method is this connection.close, answers close-ok and checks that
    /// the server then closes the socket.
    async fn expect_close(&mut self, code: u16, text: &str, class_id: u16, method_id: u16) {
        match self.only_method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => assert_eq!(
                (c.reply_code, c.reply_text.as_str(), c.class_id, c.method_id),
                (code, text, class_id, method_id)
            ),
            other => panic!("expected connection.close {code}, got {other:?}"),
        }
        self.close_ok().await;
        self.expect_silent_close_within(Duration::from_secs(2))
            .await;
    }

    /// The channel still answers: a passive declare of amq.direct gets declare-ok.
    async fn expect_channel_alive(&mut self, channel: u16) {
        self.send(channel, passive_declare_amq_direct()).await;
        match self.only_method().await {
            (ch, AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(_))) if ch == channel => {}
            other => panic!("expected exchange.declare-ok, got {other:?}"),
        }
    }
}

/// Opens a connection with channel 1, sends `bytes`, and expects this connection.close.
async fn case(bytes: &[u8], code: u16, text: &str, class_id: u16, method_id: u16) {
    let broker = start().await;
    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    raw.bytes(bytes).await;
    raw.expect_close(code, text, class_id, method_id).await;
    assert_healthy(&broker).await;
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// protocol header

#[tokio::test]
async fn bad_protocol_headers_are_answered_with_0_9_1_and_closed() {
    let broker = start().await;
    for header in [
        &b"AMQP\x00\x00\x09\x02"[..],         // AMQP 0-9-2
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", // HTTP
        b"AMQP\x00\x01\x00\x00",              // AMQP 1.0
        b"AMQP\x03\x01\x00\x00",              // AMQP 1.0 SASL
        b"XXXXXXXXXX",
    ] {
        let mut raw = Raw::connect(broker.addr).await;
        raw.bytes(header).await;
        let got = raw.all_bytes_until_closed(Duration::from_secs(2)).await;
        assert_eq!(
            got,
            PROTOCOL_HEADER,
            "reply to {:?}",
            String::from_utf8_lossy(header)
        );
    }
    assert_healthy(&broker).await;
    broker.stop().await;
}

/// RabbitMQ still accepts the pre-0-9-1 header `AMQP 1 1 0 9` and answers connection.start 0-9.
#[tokio::test]
async fn legacy_amqp_0_9_header_is_accepted() {
    let broker = start().await;
    let mut raw = Raw::connect(broker.addr).await;
    raw.bytes(b"AMQP\x01\x01\x00\x09").await;
    match raw.only_method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Start(s))) => {
            assert_eq!((s.version_major, s.version_minor), (0, 9))
        }
        other => panic!("expected connection.start, got {other:?}"),
    }
    broker.stop().await;
}

/// Nothing sent, or only part of the header: no reply, the socket is closed after the
/// 10 s handshake timeout (of the broker's manual clock).
#[tokio::test]
async fn handshake_times_out_after_10_seconds() {
    watch_panics();
    let broker = TestBroker::start_manual(|c| c).await;
    let mut silent = Raw::connect(broker.addr).await;
    let mut partial = Raw::connect(broker.addr).await;
    partial.bytes(b"AMQ").await;
    // A connection accepted after those two has done its handshake: theirs have begun
    // (the accept loop takes them in order and their tasks start in that order), so
    // their 10 s count from the clock's time now.
    assert_healthy(&broker).await;
    broker.advance(9_900).await;
    let mut early = Box::pin(async {
        tokio::join!(
            silent.all_bytes_until_closed(Duration::from_secs(10)),
            partial.all_bytes_until_closed(Duration::from_secs(10))
        )
    });
    common::assert_still_pending(&mut early, "closed before the 10 s handshake timeout").await;
    broker.advance(100).await;
    let (silent, partial) = within(early).await;
    assert!(
        silent.is_empty() && partial.is_empty(),
        "no reply: {silent:?} {partial:?}"
    );
    assert_healthy(&broker).await;
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// framing

#[tokio::test]
async fn bad_frame_end_is_a_frame_error() {
    // basic.qos prefetch_count=1 on channel 1, with 0x00 where 0xCE belongs.
    let mut frame = method_frame(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count: 1,
            ..Default::default()
        })),
    );
    *frame.last_mut().unwrap() = 0;
    case(&frame, 501, "FRAME_ERROR - type 1, all octets = <<0,60,0,10,0,0,0,0,0,1,0>>: {invalid_frame_end_marker,0}", 0, 0).await;
}

/// Only the 7-byte header of an oversized frame is sent: the broker must refuse it from
/// the size field, without waiting for the payload.
#[tokio::test]
async fn oversized_frame_is_refused_before_its_payload() {
    let broker = start().await;
    let mut raw = Raw::open_with_channel(broker.addr, 4096).await;
    raw.send(1, publish("nokey")).await;
    raw.bytes(&header_frame(1, 5000)).await;
    raw.bytes(b"\x03\x00\x01\x00\x00\x13\x88").await; // body frame, size 5000
    raw.expect_close(
        501,
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}",
        0,
        0,
    )
    .await;

    // With the default frame_max 131072, a method frame announcing 200000 bytes.
    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    raw.bytes(b"\x01\x00\x01\x00\x03\x0d\x40").await;
    raw.expect_close(
        501,
        "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,200000,131064}",
        0,
        0,
    )
    .await;
    assert_healthy(&broker).await;
    broker.stop().await;
}

/// RabbitMQ accepts a payload of exactly frame_max bytes (and refuses frame_max + 1).
#[tokio::test]
async fn a_payload_of_frame_max_bytes_is_accepted() {
    let broker = start().await;
    let mut raw = Raw::open_with_channel(broker.addr, 4096).await;
    raw.send(1, publish("nokey")).await;
    raw.bytes(&header_frame(1, 4096)).await;
    raw.bytes(&body_frame(1, &[7u8; 4096])).await;
    raw.expect_channel_alive(1).await;

    raw.send(1, publish("nokey")).await;
    raw.bytes(&header_frame(1, 4097)).await;
    raw.bytes(&body_frame(1, &[7u8; 4097])).await;
    raw.expect_close(
        501,
        "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}",
        0,
        0,
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn unknown_frame_type_is_a_frame_error() {
    case(
        &raw_frame(9, 1, b""),
        501,
        "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame",
        0,
        0,
    )
    .await;
}

#[tokio::test]
async fn heartbeat_on_a_channel_is_an_unexpected_frame() {
    case(
        &raw_frame(8, 1, b""),
        505,
        "UNEXPECTED_FRAME - type 8, all octets = <<>>",
        0,
        0,
    )
    .await;
}

#[tokio::test]
async fn content_header_on_channel_0_is_an_unexpected_frame() {
    let header = header_frame(0, 3);
    let payload = &header[7..header.len() - 1];
    let text = format!(
        "UNEXPECTED_FRAME - type 2, all octets = {}",
        erlang_binary(payload)
    );
    assert_eq!(
        text,
        "UNEXPECTED_FRAME - type 2, all octets = <<0,60,0,0,0,0,0,0,0,0,0,3,0,0>>"
    );
    case(&header, 505, &text, 0, 0).await;
}

// ---------------------------------------------------------------------------------------
// content out of order

#[tokio::test]
async fn body_without_publish_is_an_unexpected_frame() {
    case(
        &body_frame(1, b"abc"),
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        0,
        0,
    )
    .await;
}

#[tokio::test]
async fn content_header_without_publish_is_an_unexpected_frame() {
    case(
        &header_frame(1, 3),
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        0,
        0,
    )
    .await;
}

#[tokio::test]
async fn method_instead_of_the_content_header_is_an_unexpected_frame() {
    let mut bytes = method_frame(1, publish("nokey"));
    bytes.extend(method_frame(1, passive_declare_amq_direct()));
    let text = "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead";
    case(&bytes, 505, text, 60, 40).await;
}

#[tokio::test]
async fn method_in_the_middle_of_a_body_is_an_unexpected_frame() {
    let mut bytes = method_frame(1, publish("nokey"));
    bytes.extend(header_frame(1, 10));
    bytes.extend(body_frame(1, b"abc"));
    bytes.extend(method_frame(1, passive_declare_amq_direct()));
    case(
        &bytes,
        505,
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        60,
        40,
    )
    .await;
}

#[tokio::test]
async fn second_content_header_is_an_unexpected_frame() {
    let mut bytes = method_frame(1, publish("nokey"));
    bytes.extend(header_frame(1, 3));
    bytes.extend(header_frame(1, 3));
    case(
        &bytes,
        505,
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        60,
        40,
    )
    .await;
}

#[tokio::test]
async fn body_after_a_complete_content_is_an_unexpected_frame() {
    let mut bytes = method_frame(1, publish("nokey"));
    bytes.extend(header_frame(1, 3));
    bytes.extend(body_frame(1, b"abc"));
    bytes.extend(body_frame(1, b"abc"));
    case(
        &bytes,
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        0,
        0,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// channels

#[tokio::test]
async fn method_on_a_never_opened_channel_is_a_channel_error() {
    case(
        &method_frame(3, queue_declare("malformed.never")),
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
        50,
        10,
    )
    .await;
}

#[tokio::test]
async fn method_on_a_closed_channel_is_a_channel_error() {
    let broker = start().await;
    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    let close = channel::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    };
    raw.send(1, AMQPClass::Channel(channel::AMQPMethod::Close(close)))
        .await;
    match raw.only_method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected channel.close-ok, got {other:?}"),
    }
    raw.send(1, queue_declare("malformed.never")).await;
    raw.expect_close(504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)
        .await;
    assert_healthy(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn content_on_a_never_opened_channel_is_an_unexpected_frame() {
    case(
        &body_frame(5, b"abc"),
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        0,
        0,
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// undecodable methods

#[tokio::test]
async fn truncated_method_arguments_are_a_frame_error() {
    // queue.declare cut after the length byte of its queue name: ticket 0, then 11.
    let full = method_frame(1, queue_declare("malformed.x"));
    let cut = &full[7..14];
    case(
        &raw_frame(1, 1, cut),
        501,
        "FRAME_ERROR - cannot decode <<0,0,11>>",
        50,
        10,
    )
    .await;
}

#[tokio::test]
async fn channel_open_without_arguments_is_a_frame_error() {
    case(
        &raw_frame(1, 2, b"\x00\x14\x00\x0a"),
        501,
        "FRAME_ERROR - cannot decode <<>>",
        20,
        10,
    )
    .await;
}

#[tokio::test]
async fn trailing_bytes_after_the_arguments_are_a_frame_error() {
    let full = method_frame(1, passive_declare_amq_direct());
    let mut payload = full[7..full.len() - 1].to_vec();
    payload.extend_from_slice(&[0, 0, 0]);
    let text = format!(
        "FRAME_ERROR - cannot decode {}",
        erlang_binary(&payload[4..])
    );
    case(&raw_frame(1, 1, &payload), 501, &text, 40, 10).await;
}

#[tokio::test]
async fn method_payload_shorter_than_its_ids_is_a_frame_error() {
    case(
        &raw_frame(1, 1, b"\x00\x32"),
        501,
        "FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame",
        0,
        0,
    )
    .await;
}

/// RabbitMQ sends no close method for an unknown class or method id: it drops the socket.
#[tokio::test]
async fn unknown_class_or_method_drops_the_connection() {
    let broker = start().await;
    for (channel, payload) in [
        (1, &b"\x00\x63\x00\x0a"[..]), // class 99
        (0, b"\x00\x63\x00\x0a"),      // class 99 on channel 0
        (1, b"\x00\x3c\x00\x63"),      // basic.99
    ] {
        let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
        raw.bytes(&raw_frame(1, channel, payload)).await;
        raw.expect_silent_close_within(Duration::from_secs(2)).await;
    }
    assert_healthy(&broker).await;
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// after the error, and vanishing clients

/// A client that never answers the server's connection.close is dropped (RabbitMQ: ~3 s).
#[tokio::test]
async fn server_closes_the_socket_when_close_ok_never_comes() {
    let broker = start().await;
    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    raw.bytes(&raw_frame(9, 1, b"")).await;
    match raw.only_method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 501)
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
    raw.expect_silent_close_within(Duration::from_secs(5)).await;
    assert_healthy(&broker).await;
    broker.stop().await;
}

/// Clients that vanish in the middle of the header, the handshake, a frame or a content
/// leave the broker serving, and a half-published message is not enqueued.
#[tokio::test]
async fn clients_vanishing_mid_frame_leave_the_broker_healthy() {
    let broker = start().await;
    {
        let mut raw = Raw::connect(broker.addr).await;
        raw.bytes(b"AMQP\x00").await;
    }
    {
        let mut raw = Raw::connect(broker.addr).await;
        raw.bytes(PROTOCOL_HEADER).await;
        raw.bytes(&[1, 0, 0, 0, 0, 0, 40, 0, 10]).await; // start-ok announced, 2 bytes of it
    }
    {
        let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
        let frame = method_frame(1, queue_declare("malformed.half"));
        raw.bytes(&frame[..frame.len() / 2]).await;
    }
    let (conn, ch) = within(broker.channel()).await;
    ch.queue_declare(
        "malformed.partial".into(),
        QueueDeclareOptions::default(),
        Default::default(),
    )
    .await
    .unwrap();
    {
        let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
        let mut bytes = method_frame(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                routing_key: "malformed.partial".into(),
                ..Default::default()
            })),
        );
        bytes.extend(header_frame(1, 10));
        bytes.extend(body_frame(1, b"abcde"));
        let body = body_frame(1, b"fghij");
        bytes.extend_from_slice(&body[..9]);
        raw.bytes(&bytes).await;
    }
    assert_healthy(&broker).await;
    let q = within(ch.queue_declare(
        "malformed.partial".into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        Default::default(),
    ))
    .await
    .unwrap();
    assert_eq!(q.message_count(), 0, "a half-sent message was enqueued");
    within(conn.close(200, "bye".into())).await.unwrap();
    broker.stop().await;
}
