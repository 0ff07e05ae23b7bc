//! Channels closed by both sides, and frames that reach a channel while it closes, as
//! RabbitMQ 3.10 answers them (each case was asked of the reference broker on a raw
//! socket): a channel we closed is kept until the client's close-ok; meanwhile a close is
//! answered with close-ok, content is still framed, channel.open is an error, and
//! everything else is ignored. The connection and its other channels live on.
mod common;

use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use common::raw::{body_frame, header_frame, method_frame, Raw};
use common::TestBroker;

fn publish_to(exchange: &str) -> Vec<u8> {
    let publish = basic::Publish {
        exchange: exchange.into(),
        routing_key: "k".into(),
        ..Default::default()
    };
    let mut bytes = method_frame(1, AMQPClass::Basic(basic::AMQPMethod::Publish(publish)));
    bytes.extend(header_frame(1, 1));
    bytes.extend(body_frame(1, b"x"));
    bytes
}

fn close(id: u16) -> Vec<u8> {
    let close = channel::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    };
    method_frame(id, AMQPClass::Channel(channel::AMQPMethod::Close(close)))
}

fn close_ok(id: u16) -> Vec<u8> {
    method_frame(
        id,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    )
}

fn declare(id: u16) -> Vec<u8> {
    method_frame(
        id,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare::default())),
    )
}

impl Raw {
    /// A fresh connection with channel 1 that the server has just closed with 404 (a
    /// publish to a missing exchange): the channel is closing on our side.
    async fn with_closing_channel(broker: &TestBroker) -> Raw {
        let mut raw = Raw::open(broker.addr).await;
        raw.open_channel(1).await;
        raw.bytes(&publish_to("missing")).await;
        raw.expect_channel_close(1, 404).await;
        raw
    }

    async fn expect_channel_close(&mut self, id: u16, code: u16) {
        match self.only_method().await {
            (ch, AMQPClass::Channel(channel::AMQPMethod::Close(c))) if ch == id => {
                assert_eq!(c.reply_code, code, "{c:?}")
            }
            other => panic!("expected channel.close {code} on {id}, got {other:?}"),
        }
    }

    async fn expect_channel_close_ok(&mut self, id: u16) {
        match self.only_method().await {
            (ch, AMQPClass::Channel(channel::AMQPMethod::CloseOk(_))) if ch == id => {}
            other => panic!("expected channel.close-ok on {id}, got {other:?}"),
        }
    }

    /// queue.declare on `id` is answered: the connection and that channel are alive.
    async fn expect_alive(&mut self, id: u16) {
        self.bytes(&declare(id)).await;
        match self.only_method().await {
            (ch, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))) if ch == id => {}
            other => panic!("expected queue.declare-ok on {id}, got {other:?}"),
        }
    }

    async fn expect_connection_closed_with(&mut self, code: u16, text: &str, ids: (u16, u16)) {
        match self.only_method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => assert_eq!(
                (
                    c.reply_code,
                    c.reply_text.as_str(),
                    (c.class_id, c.method_id)
                ),
                (code, text, ids)
            ),
            other => panic!("expected connection.close {code}, got {other:?}"),
        }
        self.close_ok_then_closed().await;
    }
}

/// The Go client's TestChannelExceptionWithCloseIssue43: a publish to a missing exchange
/// and channel.close in the same breath. Our 404 close crosses the client's close; the
/// client's close-ok for ours must not reach an unknown channel.
#[tokio::test]
async fn channel_closed_by_both_sides_at_once_keeps_the_connection() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    let mut both = publish_to("missing");
    both.extend(close(1));
    raw.bytes(&both).await;
    raw.expect_channel_close(1, 404).await;
    raw.expect_channel_close_ok(1).await;
    raw.bytes(&close_ok(1)).await;
    raw.expect_alive(2).await;
    // The id is free again once both sides are done.
    raw.open_channel(1).await;
    raw.expect_alive(1).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_closing_channel_ignores_methods_and_whole_messages() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::with_closing_channel(&broker).await;
    let mut ignored = declare(1);
    ignored.extend(publish_to(""));
    ignored.extend(method_frame(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 99,
            multiple: false,
        })),
    ));
    // A close from the client while we wait for its close-ok is answered, and the channel
    // still waits for the close-ok.
    ignored.extend(close(1));
    raw.bytes(&ignored).await;
    raw.expect_channel_close_ok(1).await;
    raw.bytes(&close_ok(1)).await;
    raw.open_channel(1).await;
    raw.expect_alive(1).await;
    broker.stop().await;
}

#[tokio::test]
async fn content_on_a_closing_channel_is_still_framed() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::with_closing_channel(&broker).await;
    raw.bytes(&header_frame(1, 3)).await;
    raw.expect_connection_closed_with(
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        (0, 0),
    )
    .await;

    let mut raw = Raw::with_closing_channel(&broker).await;
    let publish = method_frame(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish::default())),
    );
    raw.bytes(&[publish, declare(1)].concat()).await;
    raw.expect_connection_closed_with(
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header \
         frame instead",
        (60, 40),
    )
    .await;
    broker.stop().await;
}

/// The client's own channel.close may not cut a message short either.
#[tokio::test]
async fn channel_close_in_the_middle_of_a_message_is_a_connection_error() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    let publish = method_frame(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish::default())),
    );
    raw.bytes(&[publish, header_frame(1, 10), close(1)].concat())
        .await;
    raw.expect_connection_closed_with(
        505,
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        (60, 40),
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn channel_open_on_a_closing_channel_is_a_connection_error() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::with_closing_channel(&broker).await;
    raw.bytes(&close(1)).await;
    raw.expect_channel_close_ok(1).await;
    raw.channel_open(1).await;
    raw.expect_connection_closed_with(504, "CHANNEL_ERROR - second 'channel.open' seen", (20, 10))
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn close_ok_nobody_asked_for_is_a_connection_error() {
    let broker = TestBroker::start().await;
    // On an open channel: RabbitMQ has no handler for it there.
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.bytes(&close_ok(1)).await;
    raw.expect_connection_closed_with(503, "COMMAND_INVALID - unimplemented method", (20, 41))
        .await;
    // After a close the client started and we answered, the channel is gone.
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.bytes(&close(1)).await;
    raw.expect_channel_close_ok(1).await;
    raw.bytes(&close_ok(1)).await;
    raw.expect_connection_closed_with(504, "CHANNEL_ERROR - expected 'channel.open'", (20, 41))
        .await;
    broker.stop().await;
}

/// connection.close from the client after ours: answered with close-ok, as RabbitMQ does.
#[tokio::test]
async fn connection_close_crossing_ours_is_answered() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.bytes(&declare(7)).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 504);
    let client_close = connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    };
    raw.send(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(client_close)),
    )
    .await;
    match raw.only_method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }
    broker.stop().await;
}
