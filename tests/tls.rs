//! The amqps listener: TLS 1.2 and 1.3 beside the plain port, peer verification,
//! fail-if-no-peer-cert, SASL EXTERNAL with client certificates, handshakes that fail or
//! stall, the connection limit over both listeners, and reloading the certificate.
//! Certificates are made at test time; lapin and the raw client reach the listener
//! through a TLS-terminating proxy (tls_support).

mod common;
mod tls_support;

use common::raw::{plain, Next, Raw, PROTOCOL_HEADER};
use common::{declare_queue, get_eventually, publish, within, TestBroker};
use lapin::{Connection, ConnectionProperties};
use std::time::Duration;
use tls_support::{client_config, tls_connect, Ca, Leaf, ServerFiles, TlsProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, ProtocolVersion};
use warren::{Mechanism, TlsVerify};

/// A CA, the server's files, and a broker with a TLS listener configured by `adjust`.
struct Setup {
    ca: Ca,
    files: ServerFiles,
    broker: TestBroker,
}

impl Setup {
    async fn start(adjust: impl FnOnce(warren::Config) -> warren::Config) -> Setup {
        let ca = Ca::new("warren test CA");
        let files = ServerFiles::write(&ca, &ca.server());
        let broker = TestBroker::start_with(|c| adjust(files.configure(c))).await;
        Setup { ca, files, broker }
    }

    fn tls_addr(&self) -> std::net::SocketAddr {
        self.broker.server.tls_addr().expect("a TLS listener")
    }

    async fn proxy(&self, client: Option<&Leaf>) -> TlsProxy {
        TlsProxy::start(self.tls_addr(), client_config(&self.ca, client, &[])).await
    }

    async fn stop(self) {
        self.broker.stop().await;
        let _ = std::fs::remove_dir_all(&self.files.dir);
    }
}

fn verify_peer(fail_if_no_peer_cert: bool) -> impl FnOnce(warren::Config) -> warren::Config {
    move |c| warren::Config {
        tls_verify: TlsVerify::Peer,
        tls_fail_if_no_peer_cert: fail_if_no_peer_cert,
        ..c
    }
}

fn with_external(c: warren::Config) -> warren::Config {
    warren::Config {
        auth_mechanisms: vec![Mechanism::Plain, Mechanism::Amqplain, Mechanism::External],
        ..c
    }
}

async fn lapin(url: &str) -> Connection {
    within(Connection::connect(url, ConnectionProperties::default()))
        .await
        .expect("connect over TLS")
}

/// A TLS handshake with the broker must fail (the server refused the client).
async fn handshake_refused(setup: &Setup, client: Option<&Leaf>) {
    let config = client_config(&setup.ca, client, &[]);
    // With TLS 1.3 the client finishes before the server checks its certificate: the
    // refusal arrives as an alert on the first read.
    let outcome = within(async {
        let mut tls = tls_connect(setup.tls_addr(), config).await?;
        tls.write_all(PROTOCOL_HEADER).await?;
        let mut buf = [0u8; 64];
        tls.read(&mut buf).await
    })
    .await;
    assert!(
        outcome.is_err(),
        "the handshake went through: read {outcome:?}"
    );
}

const REFUSED_EXTERNAL: &str =
    "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile.";

#[tokio::test]
async fn lapin_over_tls_declares_publishes_and_gets() {
    let setup = Setup::start(|c| c).await;
    let proxy = setup.proxy(None).await;
    let conn = lapin(&proxy.url()).await;
    let ch = within(conn.create_channel()).await.unwrap();
    declare_queue(&ch, "tls.q").await;
    let body = vec![7u8; 300_000]; // several frames and TLS records
    publish(&ch, "", "tls.q", &body).await;
    assert_eq!(get_eventually(&ch, "tls.q").await.delivery.data, body);
    within(conn.close(200, "bye".into())).await.unwrap();
    setup.stop().await;
}

#[tokio::test]
async fn tls_connections_move_to_connection_threads_after_accept() {
    let setup = Setup::start(|c| warren::Config {
        connection_threads: 2,
        ..c
    })
    .await;
    let proxy = setup.proxy(None).await;
    let (publisher, consumer) = (lapin(&proxy.url()).await, lapin(&proxy.url()).await);
    let (pch, cch) = (
        within(publisher.create_channel()).await.unwrap(),
        within(consumer.create_channel()).await.unwrap(),
    );
    declare_queue(&pch, "tls.threads").await;
    let body = vec![9u8; 200_000];
    publish(&pch, "", "tls.threads", &body).await;
    assert_eq!(
        get_eventually(&cch, "tls.threads").await.delivery.data,
        body
    );
    setup.stop().await;
}

#[tokio::test]
async fn plain_and_tls_listeners_serve_the_same_broker() {
    let setup = Setup::start(|c| c).await;
    assert_ne!(setup.tls_addr().port(), setup.broker.addr.port());
    let (_plain_conn, plain_ch) = setup.broker.channel().await;
    declare_queue(&plain_ch, "both").await;
    publish(&plain_ch, "", "both", b"sent in the clear").await;
    let proxy = setup.proxy(None).await;
    let conn = lapin(&proxy.url()).await;
    let ch = within(conn.create_channel()).await.unwrap();
    let got = get_eventually(&ch, "both").await;
    assert_eq!(got.delivery.data, b"sent in the clear");
    setup.stop().await;
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_served() {
    let setup = Setup::start(|c| c).await;
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let config = client_config(&setup.ca, None, &[version]);
        let mut tls = within(tls_connect(setup.tls_addr(), config))
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
        tls.write_all(PROTOCOL_HEADER).await.unwrap();
        let mut head = [0u8; 8];
        within(tls.read_exact(&mut head)).await.unwrap();
        assert_eq!(head[0], 1, "connection.start is a method frame");
    }
    setup.stop().await;
}

#[tokio::test]
async fn verify_peer_takes_ca_signed_clients_and_clients_without_certificates() {
    let setup = Setup::start(verify_peer(false)).await;
    let alice = setup.ca.client("guest");
    let with_cert = setup.proxy(Some(&alice)).await;
    lapin(&with_cert.url()).await;
    // fail_if_no_peer_cert off (RabbitMQ's default): no certificate is let in.
    let without = setup.proxy(None).await;
    lapin(&without.url()).await;
    // A certificate from a CA the broker does not trust is refused.
    let rogue = Ca::new("rogue CA").client("guest");
    handshake_refused(&setup, Some(&rogue)).await;
    setup.stop().await;
}

#[tokio::test]
async fn fail_if_no_peer_cert_refuses_clients_without_certificates() {
    let setup = Setup::start(verify_peer(true)).await;
    handshake_refused(&setup, None).await;
    let alice = setup.ca.client("guest");
    lapin(&setup.proxy(Some(&alice)).await.url()).await;
    setup.stop().await;
}

#[tokio::test]
async fn external_is_offered_on_tls_connections_only_when_configured() {
    let setup = Setup::start(|c| with_external(verify_peer(false)(c))).await;
    let proxy = setup.proxy(None).await;
    let (_raw, start) = Raw::start(proxy.addr).await;
    // RabbitMQ's order (its registry's), not the configured one.
    assert_eq!(start.mechanisms.to_string(), "AMQPLAIN PLAIN EXTERNAL");
    let (_raw, start) = Raw::start(setup.broker.addr).await;
    assert_eq!(start.mechanisms.to_string(), "AMQPLAIN PLAIN");
    setup.stop().await;

    // Not configured (RabbitMQ's default auth_mechanisms): not offered over TLS either.
    let setup = Setup::start(verify_peer(false)).await;
    let proxy = setup.proxy(None).await;
    let (_raw, start) = Raw::start(proxy.addr).await;
    assert_eq!(start.mechanisms.to_string(), "AMQPLAIN PLAIN");
    setup.stop().await;
}

#[tokio::test]
async fn external_logs_in_as_the_certificates_common_name() {
    let setup = Setup::start(|c| with_external(verify_peer(true)(c))).await;
    let guest = setup.ca.client("guest");
    let proxy = setup.proxy(Some(&guest)).await;
    // No password in the URL: the certificate says who the client is.
    let url = format!("amqp://{}/%2f?auth_mechanism=external", proxy.addr);
    let conn = lapin(&url).await;
    let ch = within(conn.create_channel()).await.unwrap();
    declare_queue(&ch, "external.q").await;
    within(conn.close(200, "bye".into())).await.unwrap();
    setup.stop().await;
}

#[tokio::test]
async fn external_logs_in_a_passwordless_user_of_the_store() {
    let setup = Setup::start(|c| with_external(verify_peer(true)(c))).await;
    // rabbitmqctl add_user without a password, then set_permissions: EXTERNAL needs none.
    let b = setup.broker.server.broker();
    b.users().add("svc-orders", None).expect("add user");
    b.set_permissions("svc-orders", "/", ".*", ".*", ".*")
        .expect("set permissions");
    let cert = setup.ca.client("svc-orders");
    let proxy = setup.proxy(Some(&cert)).await;
    let url = format!("amqp://{}/%2f?auth_mechanism=external", proxy.addr);
    let conn = lapin(&url).await;
    let ch = within(conn.create_channel()).await.unwrap();
    declare_queue(&ch, "svc-orders.q").await;
    within(conn.close(200, "bye".into())).await.unwrap();
    setup.stop().await;
}

/// EXTERNAL through `proxy` with authentication_failure_close: the exact refusal.
async fn expect_external_refused(proxy: &TlsProxy) {
    let (mut raw, _) = Raw::start(proxy.addr).await;
    raw.start_ok("EXTERNAL", Vec::new(), true).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        (
            close.reply_code,
            close.reply_text.as_str(),
            close.class_id,
            close.method_id
        ),
        (403, REFUSED_EXTERNAL, 0, 0)
    );
}

#[tokio::test]
async fn external_refuses_unknown_users_and_missing_certificates() {
    let setup = Setup::start(|c| with_external(verify_peer(false)(c))).await;
    // A verified certificate naming a user that does not exist.
    let mallory = setup.ca.client("mallory");
    expect_external_refused(&setup.proxy(Some(&mallory)).await).await;
    // No certificate at all (let in by fail_if_no_peer_cert = false).
    expect_external_refused(&setup.proxy(None).await).await;
    // A certificate without a CN.
    let nameless = setup.ca.client_without_cn();
    expect_external_refused(&setup.proxy(Some(&nameless)).await).await;

    // Without authentication_failure_close, RabbitMQ just closes the socket.
    let (mut raw, _) = Raw::start(setup.proxy(Some(&mallory)).await.addr).await;
    raw.start_ok("EXTERNAL", Vec::new(), false).await;
    raw.expect_silent_close_within(Duration::from_secs(10))
        .await;
    setup.stop().await;
}

#[tokio::test]
async fn external_on_the_plain_port_is_an_invalid_mechanism() {
    let setup = Setup::start(with_external).await;
    // RabbitMQ: "invalid authentication mechanism 'EXTERNAL'" (command_invalid), logged,
    // and the socket closed without a close method, whatever the client announced.
    let (mut raw, _) = Raw::start(setup.broker.addr).await;
    raw.start_ok("EXTERNAL", Vec::new(), true).await;
    raw.expect_silent_close_within(Duration::from_secs(10))
        .await;
    // Plain logins still work there.
    let (mut raw, _) = Raw::start(setup.broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    raw.expect_tune().await;
    setup.stop().await;
}

#[tokio::test]
async fn plain_amqp_on_the_tls_port_is_closed_and_nothing_else_is_affected() {
    let setup = Setup::start(|c| c).await;
    let mut raw = Raw::connect(setup.tls_addr()).await;
    raw.bytes(PROTOCOL_HEADER).await;
    // rustls answers a non-TLS record with a 7-byte alert, then resets the socket (as
    // RabbitMQ does); never an AMQP frame.
    match within(raw.next()).await {
        Next::Closed => {}
        Next::Frame(f) => panic!("an AMQP frame on the TLS port: {f:?}"),
    }
    let proxy = setup.proxy(None).await;
    lapin(&proxy.url()).await;
    lapin(&setup.broker.url()).await;
    setup.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed_while_others_are_served() {
    let setup = Setup::start(|c| c).await;
    // Half a ClientHello, then nothing.
    let mut stalled = TcpStream::connect(setup.tls_addr()).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let proxy = setup.proxy(None).await;
    let conn = lapin(&proxy.url()).await;
    // The broker gives up on the stalled client (RabbitMQ's 5 s handshake timeout).
    let mut buf = [0u8; 256];
    let n = within(async {
        let mut total = 0;
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break total,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(n < buf.len(), "the stalled client was sent {n} bytes");
    // The other TLS client was not disturbed.
    let ch = within(conn.create_channel()).await.unwrap();
    declare_queue(&ch, "after.stall").await;
    setup.stop().await;
}

#[tokio::test]
async fn max_connections_counts_both_listeners() {
    let setup = Setup::start(|c| warren::Config {
        max_connections: Some(1),
        ..c
    })
    .await;
    let first = setup.broker.connect().await;
    // The TLS client waits, unanswered, until the plain one leaves.
    let config = client_config(&setup.ca, None, &[]);
    let mut waiting = tokio::spawn(tls_connect(setup.tls_addr(), config));
    common::assert_still_pending(&mut waiting, "handshake served over the limit").await;
    within(first.close(200, "bye".into())).await.unwrap();
    let mut tls = within(waiting)
        .await
        .unwrap()
        .expect("handshake once a slot freed");
    tls.write_all(PROTOCOL_HEADER).await.unwrap();
    let mut head = [0u8; 1];
    within(tls.read_exact(&mut head)).await.unwrap();
    setup.stop().await;
}

#[tokio::test]
async fn reload_serves_new_connections_with_the_new_certificate() {
    let setup = Setup::start(|c| c).await;
    let open = setup.proxy(None).await;
    let conn = lapin(&open.url()).await;
    // A new CA and server certificate replace the files.
    let ca2 = Ca::new("warren test CA 2");
    setup.files.replace(&ca2, &ca2.server());
    within(setup.broker.server.reload_tls()).await.unwrap();
    // New connections get the new certificate: trusted by ca2 clients, not by the old.
    handshake_refused(&setup, None).await;
    let fresh = TlsProxy::start(setup.tls_addr(), client_config(&ca2, None, &[])).await;
    lapin(&fresh.url()).await;
    // The connection opened before the reload goes on.
    let ch = within(conn.create_channel()).await.unwrap();
    declare_queue(&ch, "before.reload").await;

    // A reload that fails keeps the working configuration.
    std::fs::write(&setup.files.key, "not a key").unwrap();
    assert!(within(setup.broker.server.reload_tls()).await.is_err());
    lapin(&fresh.url()).await;
    setup.stop().await;
}

#[tokio::test]
async fn bad_tls_settings_stop_the_start_with_a_reason() {
    let ca = Ca::new("warren test CA");
    let files = ServerFiles::write(&ca, &ca.server());
    let dir = files.dir.join("data");
    let start = |config: warren::Config| async { warren::start(config).await.err() };
    // verify peer without a CA to verify against.
    let config = warren::Config {
        tls_ca: None,
        tls_verify: TlsVerify::Peer,
        ..files.configure(warren::Config::local(&dir))
    };
    let e = start(config).await.expect("refused");
    assert!(
        e.to_string().contains("--tls-verify peer needs --tls-ca"),
        "{e}"
    );
    // A missing file is named.
    let config = warren::Config {
        tls_cert: Some(files.dir.join("missing.pem")),
        ..files.configure(warren::Config::local(&dir))
    };
    let e = start(config).await.expect("refused");
    assert!(e.to_string().contains("missing.pem"), "{e}");
    // A key that does not match the certificate.
    std::fs::write(&files.key, ca.server().key_pem).unwrap();
    let e = start(files.configure(warren::Config::local(&dir)))
        .await
        .expect("refused");
    assert!(
        e.to_string().contains("does not match the certificate"),
        "{e}"
    );
    // A TLS port without a certificate.
    let config = warren::Config {
        tls_port: Some(0),
        ..warren::Config::local(&dir)
    };
    let e = start(config).await.expect("refused");
    assert!(e.to_string().contains("--tls-port needs --tls-cert"), "{e}");
    // Each was refused before anything was created.
    assert!(!dir.exists(), "a refused start created the data directory");
    let _ = std::fs::remove_dir_all(&files.dir);
}

/// The binary: the ready line names the amqps port, and SIGHUP reloads the files
/// (the process goes on, new handshakes get the new certificate).
#[tokio::test]
async fn the_binary_reloads_its_certificate_on_sighup() {
    use tokio::io::AsyncBufReadExt;
    let ca = Ca::new("warren test CA");
    let files = ServerFiles::write(&ca, &ca.server());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--log",
            "warn",
            "--management-port",
            "0",
            "--prometheus-port",
            "0",
            "--tls-port",
            "0",
        ])
        .arg("--data-dir")
        .arg(files.dir.join("data"))
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .env_remove("WARREN_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn warren");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    within(stdout.read_line(&mut line)).await.unwrap();
    // "warren <version> ready on amqp://127.0.0.1:P and amqps://127.0.0.1:T"
    let tls_port: u16 = line
        .trim()
        .split(" and amqps://127.0.0.1:")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no amqps port in {line:?}"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], tls_port));
    within(tls_connect(addr, client_config(&ca, None, &[])))
        .await
        .expect("handshake with the first certificate");

    let ca2 = Ca::new("warren test CA 2");
    files.replace(&ca2, &ca2.server());
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    // The reload is asynchronous: wait for the first handshake that trusts only ca2.
    common::wait_until("a handshake trusting only ca2", || async {
        tls_connect(addr, client_config(&ca2, None, &[]))
            .await
            .is_ok()
    })
    .await;
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP ended warren");
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&files.dir);
}

/// A TLS client that reads slowly: the broker's socket fills, rustls keeps the records it
/// could not write, and they must still go out once the client reads again, with no
/// further write to push them (a flush), or the stream stalls short of the end.
#[tokio::test]
async fn deliveries_to_a_slow_tls_reader_all_arrive() {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{basic, AMQPClass};
    const MESSAGES: usize = 200;
    const SIZE: usize = 100_003;
    let setup = Setup::start(|c| c).await;
    let (_conn, ch) = setup.broker.channel().await;
    declare_queue(&ch, "slow.reader").await;
    let proxy = setup.proxy(None).await;
    let mut raw = Raw::open_with_channel(proxy.addr, 131_072).await;
    let consume = basic::Consume {
        queue: "slow.reader".into(),
        no_ack: true,
        ..Default::default()
    };
    raw.send(1, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))
        .await;
    // Not read while the broker pushes: its writes to the TLS socket block.
    for _ in 0..MESSAGES {
        publish(&ch, "", "slow.reader", &vec![1u8; SIZE]).await;
    }
    let mut bytes = 0;
    within(async {
        while bytes < MESSAGES * SIZE {
            match raw.next().await {
                Next::Frame(AMQPFrame::Body(_, body)) => bytes += body.len(),
                Next::Frame(_) => {}
                Next::Closed => panic!("closed after {bytes} body bytes"),
            }
        }
    })
    .await;
    setup.stop().await;
}
