//! warren: an AMQP 0-9-1 message broker that speaks the protocol exactly as RabbitMQ 3.x
//! does (same reply codes and texts), so existing RabbitMQ clients work against it
//! unchanged. It runs as a program (`warren`), or inside another program's process: the
//! usual case being an application's test suite, which gets a real broker in a
//! millisecond, without a container, a disk, or waiting for time to pass.
//!
//! # Use it in your tests
//!
//! [`Server::builder`] starts a broker on the caller's tokio runtime and returns its
//! handle, a [`Server`]. The defaults are a test's: 127.0.0.1 on a free port, everything
//! in memory, the management API off, the real clock, no log output, and RabbitMQ's
//! `guest`/`guest` user on vhost `/`. [`Server::amqp_url`] is the URL to give a client;
//! [`Server::counters`] and [`Server::queue_counters`] tell what the broker did.
//!
//! ```
//! use futures::StreamExt;
//! use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions};
//! use lapin::{options::QueueDeclareOptions, types::FieldTable, BasicProperties};
//! use lapin::{Connection, ConnectionProperties};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = warren::Server::builder().start().await?;
//! let conn = Connection::connect(&broker.amqp_url(), ConnectionProperties::default()).await?;
//! let ch = conn.create_channel().await?;
//! ch.queue_declare("jobs".into(), QueueDeclareOptions::default(), FieldTable::default())
//!     .await?;
//! let props = BasicProperties::default();
//! ch.basic_publish("".into(), "jobs".into(), BasicPublishOptions::default(), b"hi", props)
//!     .await?;
//! let options = BasicConsumeOptions::default();
//! let mut jobs = ch
//!     .basic_consume("jobs".into(), "worker".into(), options, FieldTable::default())
//!     .await?;
//! let job = jobs.next().await.expect("a delivery")?;
//! assert_eq!(job.data, b"hi");
//! job.ack(BasicAckOptions::default()).await?;
//! // channel.close-ok follows everything the broker did for the channel before it.
//! ch.close(200, "done".into()).await?;
//!
//! let counts = broker.queue_counters("/", "jobs").expect("the queue exists");
//! assert_eq!((counts.published, counts.delivered, counts.acked), (1, 1, 1));
//! broker.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Time is an input: with [`Clock::manual`] (see [`Builder::clock`]) time stands still
//! until the test moves it with [`Server::clock`]`().advance(..)`, which fires every
//! message TTL, queue expiry and delayed message that falls due on the way, in due order,
//! before it returns; a retry-after-an-hour flow is tested in milliseconds
//! (`examples/retry_with_manual_clock.rs`).
//!
//! Several brokers can run in one process; each has its own ports, users, vhosts,
//! queues, statistics, memory accounting and clock. [`Server::shutdown`] stops one
//! gracefully; dropping the handle stops it too (see [`Server`]).
//!
//! Logging goes through `tracing`. The library installs no subscriber unless asked
//! ([`Builder::log`]), and then only if the application has none.
//!
//! [`start`] with a [`Config`] (every setting of the command line) is the older entry
//! point; the builder fills a `Config` too ([`Builder::config`] reaches all of it).
//!
//! # How a message flows
//!
//! ```text
//! socket -> read buffer -> codec::decode (frames split by hand; publish/ack parsed by hand)
//!   connection task: channel 0 -> connection methods; channel n -> &mut Channel
//!   channel: basic.publish + header -> Message allocated at full size; body frames
//!     copied into it (one allocation per message, shared by every queue it reaches)
//!     -> VHost::route (topology read lock; the exchange kind decides)
//!     -> Queue::publish (queue lock; push; hand to a consumer with credit)
//!     -> the consumer connection's outbox (the only hop between tasks)
//!   consumer's connection: delivery tag, unacked entry, basic.deliver written by hand with
//!     the publisher's raw property bytes -> write buffer -> socket
//!   basic.ack -> unacked settled -> credit back -> queue dispatches more
//! ```
//!
//! Blocking work never runs on a runtime worker nor under the topology or a queue lock;
//! it has threads of its own: `warren-store` (message segments, group commit),
//! `warren-definitions` (definitions.json, rewrites coalesced; a publisher confirm waits
//! for the definitions generation current when its message was routed, as it waits for
//! the fdatasync), `warren-pages` (page-file writes, read-aheads, deletes, settling purged
//! paged messages) and `warren-trim` (giving freed memory back, one trim at a time).

#![warn(missing_docs)]
// Without the management API nothing reads some of what the broker keeps for it
// (statistics as JSON, diagnostics reports, certificate validity, trace snapshots):
// still built and kept current, so the default build, where all of it is read, is the
// one that reports dead code.
#![cfg_attr(not(feature = "management"), allow(dead_code, unused_imports))]

// Everything is crate-internal but what an embedding application, the tests and the
// fuzz targets use: so the compiler reports code nothing reaches.
#[allow(missing_docs)] // reached from outside only through the hidden `testing`
pub(crate) mod access;
#[allow(missing_docs)] // reached from outside only through the hidden `testing`
pub(crate) mod broker;
pub(crate) mod channel;
pub(crate) mod clock;
// Issue 17's building blocks (docs/clustering.md), public until the broker uses them so
// that the compiler does not call them dead; not an API yet, so kept out of the docs.
#[cfg(feature = "cluster")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod cluster;
#[allow(missing_docs)] // reached from outside only through the hidden `testing`
pub(crate) mod codec;
pub(crate) mod config;
pub(crate) mod connection;
#[cfg(feature = "cli")]
pub(crate) mod ctl;
pub(crate) mod embed;
pub(crate) mod error;
pub(crate) mod hash;
#[cfg(feature = "management")]
pub(crate) mod http;
pub(crate) mod listen;
pub(crate) mod node;
pub(crate) mod server;
pub(crate) mod shards;
#[allow(missing_docs)] // reached from outside only through the hidden `testing`
pub(crate) mod stats;
pub(crate) mod store;
pub(crate) mod tls;

pub use clock::{Clock, ClockError};
pub use config::{Config, ListenerPort};
pub use connection::Mechanism;
#[cfg(feature = "cli")]
pub use ctl::run_ctl;
pub use embed::{Builder, Counters, QueueCounters};
pub use listen::url_host;
pub use server::{start, Server};
pub use tls::Verify as TlsVerify;

/// What the integration tests look at inside a running broker (memory accounting,
/// definitions writes, page I/O) and the hooks that make a connection panic on purpose.
/// Not an API: kept out of the docs.
#[doc(hidden)]
pub mod testing {
    pub use crate::access::grants::PermissionError;
    pub use crate::access::permissions::{PermissionEntry, TopicPermissionEntry};
    pub use crate::access::{LoginRefused, UserError, Users};
    pub use crate::broker::memory::Memory;
    /// The stream log, driven directly by the kill -9 tests.
    pub use crate::broker::stream;
    pub use crate::broker::vhost::{VhostLimits, VhostMetadata};
    pub use crate::broker::vhosts::{VhostError, VhostInfo};
    pub use crate::broker::Broker;
    pub use crate::codec::fieldscan::MAX_DEPTH;
    #[cfg(feature = "test-hooks")]
    pub use crate::connection::test_hooks::{PANIC_IN_RELEASE_QUEUE, PANIC_QUEUE};
    pub use crate::stats::history::HISTORY_LEN;
    pub use crate::stats::Stats;
}

/// Entry points for the fuzz targets: each runs one parser of client bytes on arbitrary
/// input and returns nothing. Thin wrappers, kept stable for `fuzz/`; every one must end
/// without panicking, whatever the bytes.
#[doc(hidden)]
pub mod fuzzing {
    use crate::codec;
    use amq_protocol::types::parsing::parse_field_table;
    use bytes::BytesMut;

    /// Splits and parses frames as a connection does (methods, content headers, bodies),
    /// at the largest frame_max a client can negotiate, until the bytes run out or a
    /// frame is refused.
    pub fn decode_frames(data: &[u8]) {
        // The frame_max warren offers in connection.tune (128 KiB).
        decode_frames_in_chunks(data, 131_072, data.len());
    }

    /// The same, with the bytes arriving `chunk` at a time (so frames split across reads
    /// are exercised) and a given frame_max; content headers' properties are then read
    /// as the channel reads them.
    pub fn decode_frames_in_chunks(data: &[u8], frame_max: u32, chunk: usize) {
        let mut buf = BytesMut::new();
        for piece in data.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match codec::decode(&mut buf, frame_max) {
                    Ok(Some(codec::Frame::Header { properties, .. })) => {
                        parse_properties(&properties)
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }

    /// A content header's property flags and list, as the broker reads them: checked,
    /// then decoded, then each single field it looks up.
    pub fn parse_properties(data: &[u8]) {
        use codec::properties as p;
        let message = crate::broker::message::Message::new("", "", data, b"");
        let _ = message.decode_properties();
        let _ = message.headers();
        let _ = (p::priority(data), p::delivery_mode(data));
        for bit in [p::REPLY_TO, p::USER_ID, p::EXPIRATION] {
            let _ = p::short_str(data, bit);
            let _ = p::replace_short_str(data, bit, "amq.rabbitmq.reply-to.x");
        }
    }

    /// What the management listener parses itself (hyper parses HTTP, serde the JSON):
    /// the first line of `data` as an `Authorization` value and as a content type, the
    /// rest as a form upload's body (the content type's boundary, or `XyZ`).
    #[cfg(feature = "management")]
    pub fn parse_http(data: &[u8]) {
        let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let (head, body) = (
            String::from_utf8_lossy(&data[..split]),
            data.get(split + 1..).unwrap_or(&[]),
        );
        let _ = crate::http::auth::basic(&head);
        let boundary =
            crate::http::admin::definitions::boundary(&head).unwrap_or_else(|| "XyZ".into());
        let _ = crate::http::admin::definitions::form_parts(body, &boundary);
    }

    /// A field table (4-byte length first) as arguments and headers are read: the depth
    /// walk, then amq-protocol's parser when the walk passes.
    pub fn parse_table(data: &[u8]) {
        if codec::fieldscan::check_table(data).is_ok() {
            let _ = parse_field_table(data);
        }
    }
}
