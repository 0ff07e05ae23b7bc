//! What a browse's `search=` matches: a case-insensitive substring of a message's
//! payload, routing key, message id, correlation id or any header value (nested tables
//! and arrays included; numbers as their decimal text).
//!
//! Called by `browse` on its blocking thread, once per message scanned. Pure; bounded
//! by the needle's length (`MAX_NEEDLE`) and the message's own size.

use crate::broker::queue::Queued;
use crate::http::error::ApiError;
use crate::store::fieldvalue::table_to_json;
use regex::bytes::{Regex, RegexBuilder};
use serde_json::Value;

/// The longest search text taken, in bytes.
pub const MAX_NEEDLE: usize = 256;

/// A search text, ready to match.
pub struct Needle(Regex);

impl Needle {
    /// The text as a literal (no pattern syntax), matched ignoring case.
    pub fn new(text: &str) -> Result<Needle, ApiError> {
        if text.len() > MAX_NEEDLE {
            return Err(ApiError::bad_request(format!(
                "search must be at most {MAX_NEEDLE} bytes"
            )));
        }
        RegexBuilder::new(&regex::escape(text))
            .case_insensitive(true)
            .build()
            .map(Needle)
            .map_err(|_| ApiError::bad_request("search text cannot be matched"))
    }

    fn hit(&self, text: &[u8]) -> bool {
        self.0.is_match(text)
    }

    /// Whether the message holds the text where a search looks.
    pub fn matches(&self, item: &Queued) -> bool {
        let msg = &item.msg;
        if self.hit(msg.body()) || self.hit(msg.routing_key().as_bytes()) {
            return true;
        }
        let Some(p) = msg.decode_properties() else {
            return false;
        };
        let ids = [p.message_id(), p.correlation_id()];
        if ids
            .into_iter()
            .flatten()
            .any(|s| self.hit(s.as_str().as_bytes()))
        {
            return true;
        }
        p.headers()
            .as_ref()
            .is_some_and(|h| self.in_value(&table_to_json(h)))
    }

    fn in_value(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.hit(s.as_bytes()),
            Value::Number(n) => self.hit(n.to_string().as_bytes()),
            Value::Bool(b) => self.hit(if *b { b"true" } else { b"false" }),
            Value::Array(a) => a.iter().any(|x| self.in_value(x)),
            Value::Object(m) => m.values().any(|x| self.in_value(x)),
            Value::Null => false,
        }
    }
}
