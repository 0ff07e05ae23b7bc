//! A trivial in-process AMQP server used to measure the generator's own ceiling: it answers
//! the handshake and every synchronous method minimally, discards publishes (scanning only
//! frame boundaries), and in consume mode streams pre-encoded deliveries as fast as the
//! socket takes them.

use std::time::Duration;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{
    basic, channel, confirm, connection, exchange, queue, AMQPClass, BasicProperties,
};
use amq_protocol::types::{FieldTable, LongString};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::amqp::*;

#[derive(Clone, Copy)]
pub enum SinkMode {
    Discard,
    /// Stream this many deliveries of this body size after basic.consume.
    Stream {
        msgs: u64,
        size: usize,
    },
}

/// Bind 127.0.0.1:0 and serve in the background; returns the port.
pub async fn start(mode: SinkMode) -> Res<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(600), serve(s, mode)).await;
            });
        }
    });
    Ok(port)
}

async fn serve(s: tokio::net::TcpStream, mode: SinkMode) -> Res<()> {
    let (rd, mut wr) = s.into_split();
    let mut rd = FrameReader::new(Box::new(rd), 1024 * 1024);
    let hdr = rd.read_raw(8).await?;
    if &hdr[..4] != b"AMQP" {
        return Err(err("not AMQP"));
    }
    let mut out = Vec::new();
    encode(
        &method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
                version_major: 0,
                version_minor: 9,
                server_properties: FieldTable::default(),
                mechanisms: LongString::from("PLAIN AMQPLAIN"),
                locales: LongString::from("en_US"),
            })),
        ),
        &mut out,
    );
    wr.write_all(&out).await?;
    loop {
        let (reply, ch, consume) = {
            let f = rd.next().await?;
            if f.typ != FRAME_METHOD || f.class_method() == (60, 40) {
                continue; // publishes, headers, bodies, heartbeats: discarded
            }
            let ch = f.ch;
            let class = match parse_full(f.full)? {
                AMQPFrame::Method(_, c) => c,
                _ => continue,
            };
            use AMQPClass as C;
            let mut consume = None;
            let reply = match class {
                C::Connection(connection::AMQPMethod::StartOk(_)) => Some(C::Connection(
                    connection::AMQPMethod::Tune(connection::Tune {
                        channel_max: 2047,
                        frame_max: OUR_FRAME_MAX,
                        heartbeat: 0,
                    }),
                )),
                C::Connection(connection::AMQPMethod::Open(_)) => Some(C::Connection(
                    connection::AMQPMethod::OpenOk(connection::OpenOk {}),
                )),
                C::Connection(connection::AMQPMethod::Close(_)) => {
                    out.clear();
                    encode(
                        &method(
                            0,
                            C::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
                        ),
                        &mut out,
                    );
                    let _ = wr.write_all(&out).await;
                    return Ok(());
                }
                C::Channel(channel::AMQPMethod::Open(_)) => {
                    Some(C::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})))
                }
                C::Channel(channel::AMQPMethod::Close(_)) => Some(C::Channel(
                    channel::AMQPMethod::CloseOk(channel::CloseOk {}),
                )),
                C::Queue(queue::AMQPMethod::Declare(d)) => {
                    Some(C::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                        queue: d.queue,
                        message_count: 0,
                        consumer_count: 0,
                    })))
                }
                C::Queue(queue::AMQPMethod::Bind(_)) => {
                    Some(C::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})))
                }
                C::Queue(queue::AMQPMethod::Delete(_)) => {
                    Some(C::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                        message_count: 0,
                    })))
                }
                C::Exchange(exchange::AMQPMethod::Declare(_)) => Some(C::Exchange(
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                )),
                C::Exchange(exchange::AMQPMethod::Delete(_)) => Some(C::Exchange(
                    exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                )),
                C::Basic(basic::AMQPMethod::Qos(_)) => {
                    Some(C::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})))
                }
                C::Confirm(confirm::AMQPMethod::Select(_)) => Some(C::Confirm(
                    confirm::AMQPMethod::SelectOk(confirm::SelectOk {}),
                )),
                C::Basic(basic::AMQPMethod::Consume(_)) => {
                    consume = Some(());
                    Some(C::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                        consumer_tag: "sink-ctag".into(),
                    })))
                }
                _ => None,
            };
            (reply, ch, consume)
        };
        if let Some(r) = reply {
            out.clear();
            encode(&method(ch, r), &mut out);
            wr.write_all(&out).await?;
        }
        if let (Some(()), SinkMode::Stream { msgs, size }) = (consume, mode) {
            stream(&mut wr, ch, msgs, size).await?;
        }
    }
}

async fn stream(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    ch: u16,
    msgs: u64,
    size: usize,
) -> Res<()> {
    let mut one = Vec::new();
    encode(
        &method(
            ch,
            AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: "sink-ctag".into(),
                delivery_tag: 1,
                redelivered: false,
                exchange: "".into(),
                routing_key: "sink".into(),
            })),
        ),
        &mut one,
    );
    encode_content(
        ch,
        BasicProperties::default(),
        &vec![b'x'; size],
        OUR_FRAME_MAX,
        &mut one,
    );
    let batch = Batch::new(one, 0, 512 * 1024);
    let mut sent = 0u64;
    while sent < msgs {
        let n = (batch.count as u64).min(msgs - sent);
        if wr.write_all(batch.bytes(n as usize)).await.is_err() {
            break; // the consumer stopped at its deadline
        }
        sent += n;
    }
    Ok(())
}
