//! Test builds only (cargo feature `test-hooks`, which the integration tests turn on and
//! no release build has): ways to make a connection task panic on purpose, to prove a
//! panic is contained. Nothing here exists for clients of a real broker.

use crate::codec::Method;
use amq_protocol::protocol::{queue, AMQPClass};

/// queue.declare of this name panics the connection task that reads it.
pub const PANIC_QUEUE: &str = "warren.test-hooks.panic";

/// Releasing a channel that consumes from a queue of this name panics too (a second
/// panic, during unwinding, in the drop guard).
pub const PANIC_IN_RELEASE_QUEUE: &str = "warren.test-hooks.panic-in-release";

pub(super) fn on_method(method: &Method) {
    if let Method::Other(class) = method {
        if let AMQPClass::Queue(queue::AMQPMethod::Declare(d)) = &**class {
            if d.queue.as_str() == PANIC_QUEUE {
                panic!("test hook: a connection task panics on purpose");
            }
        }
    }
}
