//! A hand-driven AMQP client on a raw socket, frames encoded and parsed by amq-protocol:
//! for what lapin cannot send or show (handshake steps, broken frames, exact replies).

use super::within;
use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PROTOCOL_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";

/// What the server did next on a raw socket.
// A test helper read once per frame: boxing the frame would only add noise to matches.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    Frame(AMQPFrame),
    /// EOF or reset.
    Closed,
}

pub struct Raw {
    sock: TcpStream,
    buf: Vec<u8>,
}

pub fn encode(frame: &AMQPFrame) -> Vec<u8> {
    gen_frame(frame)(WriteContext::from(Vec::new()))
        .expect("encode frame")
        .into_inner()
        .0
}

/// A frame of any type with any payload, written by hand.
pub fn raw_frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(0xCE);
    f
}

pub fn method_frame(channel: u16, method: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, method))
}

/// A basic content header without properties.
pub fn header_frame(channel: u16, body_size: u64) -> Vec<u8> {
    let header = AMQPContentHeader {
        class_id: 60,
        body_size,
        properties: BasicProperties::default(),
    };
    encode(&AMQPFrame::Header(channel, header))
}

pub fn body_frame(channel: u16, body: &[u8]) -> Vec<u8> {
    encode(&AMQPFrame::Body(channel, body.to_vec()))
}

/// A SASL PLAIN response.
pub fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let sock = within(TcpStream::connect(addr)).await.expect("tcp connect");
        sock.set_nodelay(true).unwrap();
        Raw {
            sock,
            buf: Vec::new(),
        }
    }

    pub async fn bytes(&mut self, data: &[u8]) {
        // The server may already have closed: what it sent is checked by the caller.
        let _ = self.sock.write_all(data).await;
    }

    pub async fn send(&mut self, channel: u16, method: AMQPClass) {
        self.bytes(&method_frame(channel, method)).await;
    }

    /// basic.publish, its content header and one body frame.
    pub async fn publish(&mut self, channel: u16, routing_key: &str, body: &[u8]) {
        let publish = basic::Publish {
            routing_key: routing_key.into(),
            ..Default::default()
        };
        self.send(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
        )
        .await;
        self.bytes(&header_frame(channel, body.len() as u64)).await;
        self.bytes(&body_frame(channel, body)).await;
    }

    /// The next frame (heartbeats included), or Closed. Cancel-safe.
    pub async fn next(&mut self) -> Next {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if self.buf.len() >= 7 {
                let size = u32::from_be_bytes(self.buf[3..7].try_into().unwrap()) as usize;
                if self.buf.len() >= size + 8 {
                    let rest = self.buf.split_off(size + 8);
                    let bytes = std::mem::replace(&mut self.buf, rest);
                    let (_, frame) = parse_frame(&bytes[..])
                        .expect("the server sent a frame amq-protocol cannot parse");
                    return Next::Frame(frame);
                }
            }
            match self.sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Moves the broker's manual `clock` by `step`, `n` times, expecting a heartbeat from
    /// the server after each: its witness that it saw that time pass and still serves.
    pub async fn heartbeat_after_each_step(
        &mut self,
        clock: &warren::Clock,
        step: Duration,
        n: u32,
    ) {
        for i in 0..n {
            within(clock.advance(step)).await.expect("a manual clock");
            match within(self.next()).await {
                Next::Frame(AMQPFrame::Heartbeat) => {}
                other => panic!("expected a heartbeat after step {}, got {other:?}", i + 1),
            }
        }
    }

    /// The next frame that is not a heartbeat (bounded by 10 s).
    pub async fn recv(&mut self) -> Next {
        within(async {
            loop {
                match self.next().await {
                    Next::Frame(AMQPFrame::Heartbeat) => continue,
                    other => return other,
                }
            }
        })
        .await
    }

    /// The next method, heartbeats skipped; panics on anything else.
    pub async fn method(&mut self) -> (u16, AMQPClass) {
        match self.recv().await {
            Next::Frame(AMQPFrame::Method(channel, class)) => (channel, class),
            other => panic!("expected a method, got {other:?}"),
        }
    }

    /// The next frame must be a method (bounded by 10 s): a heartbeat panics too.
    pub async fn only_method(&mut self) -> (u16, AMQPClass) {
        match within(self.next()).await {
            Next::Frame(AMQPFrame::Method(channel, class)) => (channel, class),
            other => panic!("expected a method, got {other:?}"),
        }
    }

    pub async fn expect_connection_close(&mut self) -> connection::Close {
        match self.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Close(close))) => close,
            other => panic!("expected connection.close, got {other:?}"),
        }
    }

    pub async fn close_ok(&mut self) {
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        )
        .await;
    }

    /// Answers a connection.close with close-ok, after which the server must close the socket.
    pub async fn close_ok_then_closed(&mut self) {
        self.close_ok().await;
        self.expect_closed_within(Duration::from_secs(2)).await;
    }

    /// Asserts the server closes the socket within `bound` sending nothing but heartbeats;
    /// returns how long that took.
    pub async fn expect_closed_within(&mut self, bound: Duration) -> Duration {
        let t0 = Instant::now();
        let closed = tokio::time::timeout(bound, async {
            loop {
                match self.next().await {
                    Next::Frame(AMQPFrame::Heartbeat) => continue,
                    Next::Frame(other) => panic!("expected the socket to close, got {other:?}"),
                    Next::Closed => return,
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the server did not close the socket within {bound:?}"
        );
        t0.elapsed()
    }

    /// Reads (heartbeats and all) until the server ends the socket, within `bound`:
    /// true when it ended with a reset (ECONNRESET), false with an orderly EOF.
    pub async fn ended_by_reset(&mut self, bound: Duration) -> bool {
        let ended = tokio::time::timeout(bound, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.sock.read(&mut chunk).await {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
                }
            }
        })
        .await;
        ended.unwrap_or_else(|_| panic!("the server did not end the socket within {bound:?}"))
    }

    /// Every byte the server sends until it closes the socket, which must happen within `bound`.
    pub async fn all_bytes_until_closed(&mut self, bound: Duration) -> Vec<u8> {
        let mut got = std::mem::take(&mut self.buf);
        let read = tokio::time::timeout(bound, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "the server did not close the socket within {bound:?} (sent {got:?})"
        );
        got
    }

    /// Asserts the server closes the socket within `bound` without sending a byte (not even a
    /// heartbeat); returns how long that took.
    pub async fn expect_silent_close_within(&mut self, bound: Duration) -> Duration {
        let t0 = Instant::now();
        let got = self.all_bytes_until_closed(bound).await;
        assert!(
            got.is_empty(),
            "expected the socket to close with nothing sent, got {got:?}"
        );
        t0.elapsed()
    }

    /// Protocol header sent and connection.start read.
    pub async fn start(addr: SocketAddr) -> (Raw, connection::Start) {
        let mut raw = Raw::connect(addr).await;
        raw.bytes(PROTOCOL_HEADER).await;
        match raw.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Start(start))) => (raw, start),
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    pub async fn start_ok(
        &mut self,
        mechanism: &str,
        response: Vec<u8>,
        authentication_failure_close: bool,
    ) {
        let mut caps = FieldTable::default();
        if authentication_failure_close {
            caps.insert(
                "authentication_failure_close".into(),
                AMQPValue::Boolean(true),
            );
        }
        let mut props = FieldTable::default();
        props.insert(
            "product".into(),
            AMQPValue::LongString("warren tests (raw)".into()),
        );
        props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
        let start_ok = connection::StartOk {
            client_properties: props,
            mechanism: mechanism.into(),
            response: LongString::from(response),
            locale: "en_US".into(),
        };
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)),
        )
        .await;
    }

    pub async fn expect_tune(&mut self) -> connection::Tune {
        match self.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Tune(tune))) => tune,
            other => panic!("expected connection.tune, got {other:?}"),
        }
    }

    pub async fn tune_ok(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        let tune_ok = connection::TuneOk {
            channel_max,
            frame_max,
            heartbeat,
        };
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)),
        )
        .await;
    }

    pub async fn open_vhost(&mut self, vhost: &str) {
        let open = connection::Open {
            virtual_host: vhost.into(),
        };
        self.send(0, AMQPClass::Connection(connection::AMQPMethod::Open(open)))
            .await;
    }

    pub async fn expect_open_ok(&mut self) {
        match self.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    /// A full handshake as guest on vhost "/" with the given tune-ok values.
    pub async fn open_tuned(
        addr: SocketAddr,
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    ) -> Raw {
        let (mut raw, _) = Raw::start(addr).await;
        raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
        raw.expect_tune().await;
        raw.tune_ok(channel_max, frame_max, heartbeat).await;
        raw.open_vhost("/").await;
        raw.expect_open_ok().await;
        raw
    }

    /// A full handshake (no heartbeats, frame_max 128 KiB), no channel open.
    pub async fn open(addr: SocketAddr) -> Raw {
        Raw::open_tuned(addr, 2047, 131_072, 0).await
    }

    /// A full handshake without heartbeats with this frame_max, and channel 1 open.
    pub async fn open_with_channel(addr: SocketAddr, frame_max: u32) -> Raw {
        let mut raw = Raw::open_tuned(addr, 2047, frame_max, 0).await;
        raw.open_channel(1).await;
        raw
    }

    pub async fn channel_open(&mut self, id: u16) {
        self.send(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open::default())),
        )
        .await;
    }

    pub async fn open_channel(&mut self, id: u16) {
        self.channel_open(id).await;
        match self.method().await {
            (ch, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if ch == id => {}
            other => panic!("expected channel.open-ok on {id}, got {other:?}"),
        }
    }

    pub async fn queue_declare(&mut self, channel: u16, name: &str, passive: bool) {
        let declare = queue::Declare {
            queue: name.into(),
            passive,
            ..Default::default()
        };
        self.send(
            channel,
            AMQPClass::Queue(queue::AMQPMethod::Declare(declare)),
        )
        .await;
    }
}
