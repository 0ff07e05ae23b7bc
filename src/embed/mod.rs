//! warren inside another program's process, usually its test suite: the [`Builder`]
//! that starts a broker with a test's defaults, what the handle ([`crate::Server`])
//! offers beyond its addresses (URLs, the clock, counters), and the counters themselves.
//!
//! Called by applications through the crate's public API; the broker itself never calls
//! in here. Nothing here is on the message path: counters are read from the statistics
//! the broker keeps anyway, when asked. Nothing here may reach for process-wide state
//! (a global subscriber is installed only when the application asked for a log level
//! and has none): several brokers in one process must stay apart.

mod builder;
mod counters;
mod handle;

pub use builder::Builder;
pub use counters::{Counters, QueueCounters};
pub(crate) use handle::Login;
