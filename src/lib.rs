//! warren: an AMQP 0-9-1 message broker that speaks the protocol exactly as RabbitMQ does.
//!
//! How a message flows:
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
//!
//! Embedding: `warren::start(Config::local(dir)).await?` returns a [`Server`] with the bound
//! address and a shutdown handle.

pub mod broker;
pub mod channel;
pub mod codec;
pub mod config;
pub mod connection;
pub mod error;
pub mod hash;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::{start, Server};
