//! Access control: permissions and their checks (users and passwords live beside them).
//!
//! `permissions` is the broker's table, `pattern` its compiled regular expressions,
//! `cache` the per-channel check every handler calls, `grants` the broker's API to
//! set, clear and list them with rabbitmqctl's errors.

pub(crate) mod cache;
pub(crate) mod grants;
pub(crate) mod pattern;
pub(crate) mod permissions;
