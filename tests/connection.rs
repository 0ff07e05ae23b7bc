//! Connection lifecycle as RabbitMQ 3.10 does it: connection.start, SASL (PLAIN, AMQPLAIN),
//! tune / tune-ok, connection.open, close, heartbeats, channel ids, closing channels and
//! broker shutdown. lapin where it can say it, a raw socket (amq-protocol frames) elsewhere.
mod common;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use common::{within, TestBroker};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROTOCOL_HEADER: &[u8] = b"AMQP\x00\x00\x09\x01";

// ---------------------------------------------------------------------------------------
// A hand-driven AMQP client on a raw socket.

/// What the server did next on a raw socket.
#[derive(Debug)]
enum Next {
    Frame(AMQPFrame),
    /// EOF or reset.
    Closed,
}

struct Raw {
    sock: TcpStream,
    buf: Vec<u8>,
}

fn encode(frame: &AMQPFrame) -> Vec<u8> {
    gen_frame(frame)(WriteContext::from(Vec::new()))
        .expect("encode frame")
        .into_inner()
        .0
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let sock = within(TcpStream::connect(addr)).await.expect("tcp connect");
        sock.set_nodelay(true).unwrap();
        Raw {
            sock,
            buf: Vec::new(),
        }
    }

    async fn bytes(&mut self, data: &[u8]) {
        // The server may already have closed: what it sent is checked by the caller.
        let _ = self.sock.write_all(data).await;
    }

    async fn send(&mut self, channel: u16, method: AMQPClass) {
        self.bytes(&encode(&AMQPFrame::Method(channel, method)))
            .await;
    }

    /// basic.publish, its content header and one body frame.
    async fn publish(&mut self, channel: u16, routing_key: &str, body: &[u8]) {
        let publish = basic::Publish {
            routing_key: routing_key.into(),
            ..Default::default()
        };
        self.send(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
        )
        .await;
        let header = AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: BasicProperties::default(),
        };
        self.bytes(&encode(&AMQPFrame::Header(channel, header)))
            .await;
        self.bytes(&encode(&AMQPFrame::Body(channel, body.to_vec())))
            .await;
    }

    /// The next frame (heartbeats included), or Closed. Cancel-safe.
    async fn next(&mut self) -> Next {
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

    /// The next frame that is not a heartbeat (bounded by 10 s).
    async fn recv(&mut self) -> Next {
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

    /// The next method; panics on anything else.
    async fn method(&mut self) -> (u16, AMQPClass) {
        match self.recv().await {
            Next::Frame(AMQPFrame::Method(channel, class)) => (channel, class),
            other => panic!("expected a method, got {other:?}"),
        }
    }

    async fn expect_connection_close(&mut self) -> connection::Close {
        match self.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Close(close))) => close,
            other => panic!("expected connection.close, got {other:?}"),
        }
    }

    /// Answers a connection.close with close-ok, after which the server must close the socket.
    async fn close_ok_then_closed(&mut self) {
        self.send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        )
        .await;
        self.expect_closed_within(Duration::from_secs(2)).await;
    }

    /// Asserts the server closes the socket within `bound` sending nothing but heartbeats;
    /// returns how long that took.
    async fn expect_closed_within(&mut self, bound: Duration) -> Duration {
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

    /// Protocol header sent and connection.start read.
    async fn start(addr: SocketAddr) -> (Raw, connection::Start) {
        let mut raw = Raw::connect(addr).await;
        raw.bytes(PROTOCOL_HEADER).await;
        match raw.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Start(start))) => (raw, start),
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    async fn start_ok(
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
            AMQPValue::LongString("warren tests/connection.rs".into()),
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

    async fn expect_tune(&mut self) -> connection::Tune {
        match self.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::Tune(tune))) => tune,
            other => panic!("expected connection.tune, got {other:?}"),
        }
    }

    async fn tune_ok(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
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

    async fn open_vhost(&mut self, vhost: &str) {
        let open = connection::Open {
            virtual_host: vhost.into(),
            ..Default::default()
        };
        self.send(0, AMQPClass::Connection(connection::AMQPMethod::Open(open)))
            .await;
    }

    /// A full handshake as guest on vhost "/" with the given tune-ok values.
    async fn open_tuned(addr: SocketAddr, channel_max: u16, frame_max: u32, heartbeat: u16) -> Raw {
        let (mut raw, _) = Raw::start(addr).await;
        raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
        raw.expect_tune().await;
        raw.tune_ok(channel_max, frame_max, heartbeat).await;
        raw.open_vhost("/").await;
        raw.expect_open_ok().await;
        raw
    }

    async fn open(addr: SocketAddr) -> Raw {
        Raw::open_tuned(addr, 2047, 131_072, 0).await
    }

    async fn expect_open_ok(&mut self) {
        match self.method().await {
            (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    async fn channel_open(&mut self, id: u16) {
        self.send(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open::default())),
        )
        .await;
    }

    async fn open_channel(&mut self, id: u16) {
        self.channel_open(id).await;
        match self.method().await {
            (ch, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) if ch == id => {}
            other => panic!("expected channel.open-ok on {id}, got {other:?}"),
        }
    }

    async fn queue_declare(&mut self, channel: u16, name: &str, passive: bool) {
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

fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// AMQPLAIN: a field table without its length prefix, LOGIN and PASSWORD as long strings.
fn amqplain(user: &str, password: &str) -> Vec<u8> {
    let mut table = Vec::new();
    for (key, value) in [("LOGIN", user), ("PASSWORD", password)] {
        table.push(key.len() as u8);
        table.extend_from_slice(key.as_bytes());
        table.push(b'S');
        table.extend_from_slice(&(value.len() as u32).to_be_bytes());
        table.extend_from_slice(value.as_bytes());
    }
    table
}

/// (reply code, reply text, class id, method id) of a close method, for one assert_eq.
fn close_parts(close: &connection::Close) -> (u16, &str, u16, u16) {
    (
        close.reply_code,
        close.reply_text.as_str(),
        close.class_id,
        close.method_id,
    )
}

/// (reply code, reply text) of the AMQP error a lapin call failed with.
fn amqp_error(e: &lapin::Error) -> (u16, String) {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(err) => {
            (err.get_id(), err.get_message().as_str().to_owned())
        }
        other => panic!("expected an AMQP error from the broker, got {other:?}"),
    }
}

/// The broker still takes a new lapin connection and answers on it.
async fn assert_serves(broker: &TestBroker) {
    let (conn, ch) = within(broker.channel()).await;
    within(ch.queue_declare(
        "connection.alive".into(),
        QueueDeclareOptions::default(),
        Default::default(),
    ))
    .await
    .expect("queue.declare on a fresh connection");
    within(conn.close(200, "bye".into())).await.expect("close");
}

fn long_str(v: Option<&AMQPValue>) -> String {
    match v {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("expected a long string, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// connection.start and SASL

#[tokio::test]
async fn lapin_connects_as_guest_and_gets_the_offered_tune_values() {
    let broker = TestBroker::start().await;
    let conn = within(broker.connect()).await;
    assert!(conn.status().connected());
    assert_eq!(conn.status().username(), "guest");
    let config = conn.configuration();
    assert_eq!(
        (config.channel_max(), config.frame_max(), config.heartbeat()),
        (2047, 131_072, 60)
    );
    within(conn.close(200, "bye".into())).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn connection_start_carries_rabbitmq_like_server_properties() {
    let broker = TestBroker::start().await;
    let (_raw, start) = Raw::start(broker.addr).await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let props = start.server_properties.inner();
    for key in ["product", "version", "platform", "copyright", "information"] {
        assert!(
            !long_str(props.get(key)).is_empty(),
            "server property {key} is empty"
        );
    }
    let Some(AMQPValue::FieldTable(caps)) = props.get("capabilities") else {
        panic!("no capabilities table in {props:?}")
    };
    for cap in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(
            caps.inner().get(cap),
            Some(&AMQPValue::Boolean(true)),
            "capability {cap}"
        );
    }
    // Everything advertised is a capability RabbitMQ 3.10 advertises too, and is true.
    const RABBITMQ_CAPABILITIES: [&str; 9] = [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ];
    for (name, value) in caps.inner() {
        assert!(
            RABBITMQ_CAPABILITIES.contains(&name.as_str()),
            "unknown capability {name}"
        );
        assert_eq!(value, &AMQPValue::Boolean(true), "capability {name}");
    }
    // RabbitMQ sends "AMQPLAIN PLAIN"; clients only look for their mechanism in the list.
    let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
    let mut mechanisms: Vec<&str> = mechanisms.split(' ').collect();
    mechanisms.sort();
    assert_eq!(mechanisms, ["AMQPLAIN", "PLAIN"]);
    assert_eq!(start.locales.as_bytes(), b"en_US");
    broker.stop().await;
}

#[tokio::test]
async fn wrong_password_is_refused_with_access_refused() {
    let broker = TestBroker::start().await;
    let url = format!("amqp://guest:wrong@{}/%2f", broker.addr);
    let err = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect_err("login must fail");
    assert_eq!(
        amqp_error(&err),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
                .to_owned()
        )
    );
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn wrong_password_with_authentication_failure_close_gets_close_0_0() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "wrong"), true).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
            0,
            0
        )
    );
    raw.close_ok_then_closed().await;
    broker.stop().await;
}

/// RabbitMQ sends no close method to a client that did not announce
/// authentication_failure_close: it waits ~3 s and drops the socket.
#[tokio::test]
async fn wrong_password_without_the_capability_is_dropped_silently() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "wrong"), false).await;
    raw.expect_closed_within(Duration::from_secs(5)).await;
    broker.stop().await;
}

/// RabbitMQ: no close method, the socket is dropped after ~3 s.
#[tokio::test]
async fn unknown_sasl_mechanism_is_dropped_silently() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("FOO", plain("guest", "guest"), true).await;
    raw.expect_closed_within(Duration::from_secs(5)).await;
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn amqplain_login_works() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("AMQPLAIN", amqplain("guest", "guest"), true)
        .await;
    let tune = raw.expect_tune().await;
    raw.tune_ok(tune.channel_max, tune.frame_max, 0).await;
    raw.open_vhost("/").await;
    raw.expect_open_ok().await;
    raw.open_channel(1).await;

    // lapin speaks it too when asked.
    let url = format!("{}?auth_mechanism=amqplain", broker.url());
    let conn = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("AMQPLAIN login");
    within(conn.create_channel()).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn amqplain_with_a_wrong_password_is_refused() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("AMQPLAIN", amqplain("guest", "wrong"), true)
        .await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. For details see the broker logfile.",
            0,
            0
        )
    );
    broker.stop().await;
}

/// The guest user may only log in over loopback (RabbitMQ's loopback_users). Needs a
/// non-loopback address on this machine; without one only the unit check runs.
#[tokio::test]
async fn guest_is_refused_from_a_non_loopback_address() {
    let broker = warren::broker::Broker::new();
    let remote: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(
        broker.authenticate("guest", "guest", remote),
        Err(warren::broker::LoginRefused::LoopbackOnly)
    );
    assert_eq!(
        broker.authenticate("guest", "guest", "127.0.0.1".parse().unwrap()),
        Ok(())
    );
    assert_eq!(
        broker.authenticate("guest", "guest", "::1".parse().unwrap()),
        Ok(())
    );

    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("no non-loopback IPv4 address here: end-to-end part skipped");
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "warren-test-connection-remote-{}",
        std::process::id()
    ));
    let config = warren::Config {
        bind: "0.0.0.0".parse().unwrap(),
        ..warren::Config::local(&dir)
    };
    let server = warren::start(config)
        .await
        .expect("start broker on 0.0.0.0");
    let url = format!("amqp://guest:guest@{ip}:{}/%2f", server.local_addr().port());
    let err = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect_err("guest from afar");
    let (code, text) = amqp_error(&err);
    assert_eq!(code, 403, "{text}");
    // RabbitMQ gives clients with authentication_failure_close (lapin is one) the same
    // "safe" text for every refused login.
    assert_eq!(text, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The address this machine would use to reach the outside (no packet is sent).
fn non_loopback_ipv4() -> Option<IpAddr> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("192.0.2.1:9")
        .or_else(|_| sock.connect("8.8.8.8:53"))
        .ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

// ---------------------------------------------------------------------------------------
// tune, open, close

#[tokio::test]
async fn tune_offers_rabbitmq_defaults() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    let tune = raw.expect_tune().await;
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (2047, 131_072, 60)
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_clients_smaller_tune_values_win() {
    let broker = TestBroker::start().await;
    let url = format!("{}?frame_max=8192&heartbeat=5&channel_max=10", broker.url());
    let conn = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("connect");
    let config = conn.configuration();
    assert_eq!(
        (config.channel_max(), config.frame_max(), config.heartbeat()),
        (10, 8192, 5)
    );

    // The negotiated frame_max holds both ways: a body larger than a frame is split by
    // lapin and accepted, and comes back split by the broker.
    let ch = within(conn.create_channel()).await.unwrap();
    ch.queue_declare(
        "connection.tune".into(),
        QueueDeclareOptions::default(),
        Default::default(),
    )
    .await
    .unwrap();
    let body: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    within(ch.basic_publish(
        "".into(),
        "connection.tune".into(),
        BasicPublishOptions::default(),
        &body,
        BasicProperties::default(),
    ))
    .await
    .unwrap();
    let got = within(ch.basic_get("connection.tune".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("the message");
    assert_eq!(got.delivery.data, body);
    broker.stop().await;
}

/// RabbitMQ 3.10 checks tune-ok's frame_max against 4096 and, in the tuning state, drops
/// the socket after ~3 s without a close method (with or without connection.open).
#[tokio::test]
async fn tune_ok_frame_max_below_4096_is_refused() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    raw.expect_tune().await;
    raw.tune_ok(2047, 1024, 0).await;
    raw.open_vhost("/").await;
    raw.expect_closed_within(Duration::from_secs(5)).await;
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn open_of_an_unknown_vhost_is_not_allowed() {
    let broker = TestBroker::start().await;
    let url = format!("amqp://guest:guest@{}/nope", broker.addr);
    let err = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect_err("no such vhost");
    assert_eq!(
        amqp_error(&err),
        (530, "NOT_ALLOWED - vhost nope not found".to_owned())
    );

    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    raw.expect_tune().await;
    raw.tune_ok(2047, 131_072, 0).await;
    raw.open_vhost("nope").await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (530, "NOT_ALLOWED - vhost nope not found", 10, 40)
    );
    raw.close_ok_then_closed().await;
    broker.stop().await;
}

#[tokio::test]
async fn client_close_is_answered_with_close_ok() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    let close = connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    };
    raw.send(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
    )
    .await;
    match raw.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }

    let conn = within(broker.connect()).await;
    // lapin's close returns once close-ok arrived; its status may still say "closing"
    // for a moment, so only the exchange itself is checked.
    within(conn.close(200, "bye".into()))
        .await
        .expect("lapin close");
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// heartbeats

/// With heartbeat=1, RabbitMQ sends a heartbeat every ~0.5 s while idle and drops a silent
/// client after ~3 s (two to three intervals), without a close method.
#[tokio::test]
async fn idle_server_sends_heartbeats_and_drops_a_silent_client() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open_tuned(broker.addr, 2047, 131_072, 1).await;
    let t0 = Instant::now();
    let mut heartbeats = 0;
    let outcome = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match raw.next().await {
                Next::Frame(AMQPFrame::Heartbeat) => heartbeats += 1,
                Next::Frame(other) => panic!("expected only heartbeats, got {other:?}"),
                Next::Closed => return,
            }
        }
    })
    .await;
    let elapsed = t0.elapsed();
    assert!(
        outcome.is_ok(),
        "a silent client was not dropped within 5 s ({heartbeats} heartbeats seen)"
    );
    assert!(
        heartbeats >= 2,
        "only {heartbeats} heartbeats before the drop after {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(1900),
        "dropped too early, after {elapsed:?}"
    );
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_heartbeats_stays_connected() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open_tuned(broker.addr, 2047, 131_072, 1).await;
    let heartbeat = encode(&AMQPFrame::Heartbeat);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        raw.bytes(&heartbeat).await;
        // Read what comes for 400 ms: heartbeats only, and no close.
        if let Ok(next) = tokio::time::timeout(Duration::from_millis(400), raw.next()).await {
            assert!(
                matches!(next, Next::Frame(AMQPFrame::Heartbeat)),
                "got {next:?}"
            );
        }
    }
    raw.open_channel(1).await;
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// channel ids

/// RabbitMQ's channel_max limits how many channels are open, not their numbers.
#[tokio::test]
async fn channel_ids_above_channel_max_are_accepted() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open_tuned(broker.addr, 10, 131_072, 0).await;
    raw.open_channel(11).await;
    raw.open_channel(65535).await;
    broker.stop().await;
}

#[tokio::test]
async fn opening_more_channels_than_channel_max_is_not_allowed() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open_tuned(broker.addr, 2, 131_072, 0).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.channel_open(3).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)", 0, 0)
    );
    raw.close_ok_then_closed().await;
    broker.stop().await;
}

#[tokio::test]
async fn reopening_an_open_channel_is_a_channel_error() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.channel_open(1).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)
    );
    raw.close_ok_then_closed().await;
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_method_on_a_never_opened_channel_is_a_channel_error() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.queue_declare(3, "connection.never", false).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)
    );
    raw.close_ok_then_closed().await;
    broker.stop().await;
}

/// After the server's channel.close, everything on that channel but close / close-ok is
/// dropped (a publish with its content, a declare); then the id can be reused.
#[tokio::test]
async fn frames_on_a_closing_channel_are_discarded_until_close_ok() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.queue_declare(1, "connection.closing", false).await;
    assert!(matches!(
        raw.method().await,
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));

    let ack = basic::Ack {
        delivery_tag: 99,
        multiple: false,
    };
    raw.send(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack)))
        .await;
    match raw.method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(close))) => assert_eq!(
            (
                close.reply_code,
                close.reply_text.as_str(),
                close.class_id,
                close.method_id
            ),
            (406, "PRECONDITION_FAILED - unknown delivery tag 99", 60, 80)
        ),
        other => panic!("expected channel.close, got {other:?}"),
    }
    raw.publish(1, "connection.closing", b"dropped").await;
    raw.queue_declare(1, "connection.closing.dropped", false)
        .await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), raw.recv()).await;
    assert!(
        quiet.is_err(),
        "the server answered on a closing channel: {quiet:?}"
    );

    raw.send(
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    )
    .await;
    raw.open_channel(1).await;
    raw.queue_declare(1, "connection.closing", true).await;
    match raw.method().await {
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => {
            assert_eq!(ok.message_count, 0, "the publish was kept")
        }
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
    raw.queue_declare(1, "connection.closing.dropped", true)
        .await;
    match raw.method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(close))) => assert_eq!(
            (close.reply_code, close.reply_text.as_str()),
            (
                404,
                "NOT_FOUND - no queue 'connection.closing.dropped' in vhost '/'"
            )
        ),
        other => panic!("expected the declare made while closing to be dropped, got {other:?}"),
    }
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// shutdown

#[tokio::test]
async fn shutdown_closes_connections_with_connection_forced() {
    let broker = TestBroker::start().await;
    let (conn, ch) = within(broker.channel()).await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;

    let stop = tokio::spawn(broker.stop());
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (
            320,
            "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
            0,
            0
        )
    );
    raw.close_ok_then_closed().await;
    within(stop).await.expect("shutdown");

    let declared = within(ch.queue_declare(
        "connection.after".into(),
        QueueDeclareOptions::default(),
        Default::default(),
    ))
    .await;
    assert!(
        declared.is_err(),
        "lapin's channel still works after shutdown"
    );
    assert!(
        !conn.status().connected(),
        "lapin still sees the connection as connected"
    );
}
