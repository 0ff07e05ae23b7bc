//! What a browse's `search=` matches: a case-insensitive substring of a message's
//! payload, routing key, message id, correlation id or any header value (nested tables
//! and arrays included; numbers as their decimal text).
//!
//! Called by `browse` on its blocking thread, once per message scanned. Pure; bounded
//! by the needle's length (`MAX_NEEDLE`) and the message's own size.

use crate::broker::queue::Queued;
use crate::http::error::ApiError;
use crate::store::fieldvalue::table_to_json;
use serde_json::Value;

/// The longest search text taken, in bytes.
pub const MAX_NEEDLE: usize = 256;

/// A search text, lowercased, ready to match.
pub struct Needle(String);

impl Needle {
    /// The text as a literal, matched ignoring case. (Not a `regex`: the crate is built
    /// without its Unicode tables, so its case-insensitive mode refuses to build.)
    pub fn new(text: &str) -> Result<Needle, ApiError> {
        if text.len() > MAX_NEEDLE {
            return Err(ApiError::bad_request(format!(
                "search must be at most {MAX_NEEDLE} bytes"
            )));
        }
        Ok(Needle(text.to_lowercase()))
    }

    /// Whether `text` holds the needle, ignoring case: byte by byte for an ASCII
    /// needle (no copy of a large payload), else on a lowercased copy.
    fn hit(&self, text: &[u8]) -> bool {
        let needle = self.0.as_bytes();
        let Some((&first, rest)) = needle.split_first() else {
            return true;
        };
        if !self.0.is_ascii() {
            return String::from_utf8_lossy(text)
                .to_lowercase()
                .contains(&self.0);
        }
        let last = text.len().saturating_sub(rest.len());
        (0..last).any(|i| {
            text[i].to_ascii_lowercase() == first
                && text[i + 1..i + needle.len()].eq_ignore_ascii_case(rest)
        })
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

#[cfg(test)]
mod tests {
    use super::Needle;

    fn hit(needle: &str, text: &str) -> bool {
        Needle::new(needle).unwrap().hit(text.as_bytes())
    }

    #[test]
    fn matches_ignore_case_ascii_and_beyond() {
        assert!(hit("CRIMSON", "a crimson tide"));
        assert!(hit("tide", "a crimson TIDE"));
        assert!(!hit("tides", "a crimson tide"));
        assert!(hit("", "anything"));
        assert!(!hit("x", ""));
        assert!(hit("ÉTÉ", "un été chaud"));
        assert!(!hit("hiver", "un été chaud"));
        // Payload bytes that are not UTF-8 do not stop an ASCII search.
        assert!(Needle::new("ok")
            .unwrap()
            .hit(&[0xff, 0xfe, b'O', b'K', 0x80]));
    }
}
