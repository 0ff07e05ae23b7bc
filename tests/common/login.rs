//! Logging in over the raw client as any user, and what a refusal looks like: for the
//! user and access tests.

use super::raw::{plain, Raw};
use amq_protocol::protocol::{channel, connection, AMQPClass};
use std::net::SocketAddr;

/// The parts of a connection.close: code, text, class, method.
pub type Close = (u16, String, u16, u16);

pub fn parts(c: &connection::Close) -> Close {
    (
        c.reply_code,
        c.reply_text.as_str().to_owned(),
        c.class_id,
        c.method_id,
    )
}

/// AMQPLAIN: a field table without its length prefix, LOGIN and PASSWORD as long strings.
pub fn amqplain(user: &str, password: &str) -> Vec<u8> {
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

/// Logs in with `mechanism` (PLAIN or AMQPLAIN, announcing authentication_failure_close)
/// and opens `vhost`: the open connection, or the connection.close the broker sent.
pub async fn login_as(
    addr: SocketAddr,
    mechanism: &str,
    user: &str,
    password: &str,
    vhost: &str,
) -> Result<Raw, Close> {
    let (mut raw, _) = Raw::start(addr).await;
    let response = match mechanism {
        "PLAIN" => plain(user, password),
        _ => amqplain(user, password),
    };
    raw.start_ok(mechanism, response, true).await;
    match raw.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Tune(_))) => {}
        (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => return Err(parts(&c)),
        other => panic!("expected tune or close, got {other:?}"),
    }
    raw.tune_ok(2047, 131_072, 0).await;
    raw.open_vhost(vhost).await;
    match raw.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => Ok(raw),
        (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => Err(parts(&c)),
        other => panic!("expected open-ok or close, got {other:?}"),
    }
}

/// `login_as` with PLAIN on vhost "/".
pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Result<Raw, Close> {
    login_as(addr, "PLAIN", user, password, "/").await
}

/// Logs in as guest and sends connection.open for `vhost`; the reply is the caller's to
/// read.
pub async fn open_on(addr: SocketAddr, vhost: &str) -> Raw {
    let (mut raw, _) = Raw::start(addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    raw.expect_tune().await;
    raw.tune_ok(2047, 131_072, 0).await;
    raw.open_vhost(vhost).await;
    raw
}

/// RabbitMQ's close for every refused login, to clients that announce
/// authentication_failure_close.
pub fn refused(mechanism: &str) -> Close {
    (
        403,
        format!("ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
        0,
        0,
    )
}

/// A client's connection.close (200).
pub fn connection_close() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

/// A client's channel.close (200).
pub fn channel_close() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}
