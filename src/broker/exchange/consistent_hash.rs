//! The `x-consistent-hash` exchange (RabbitMQ's consistent-hash plugin): each binding's
//! key is its weight, a number of points on a ring; a message goes to the one binding
//! whose points hold the hash of its routing key, of the header named by the exchange's
//! `hash-header` argument, or of the property named by `hash-property`.
//!
//! Called by `Exchange` (mod.rs): `validate` when the exchange is created, `weight` when a
//! binding is added, `HashRing::rebuild` after any binding change, `HashRing::route` per
//! message under the topology read lock. Routing allocates nothing for a routing-key
//! hash and never takes a lock.
//!
//! Keys land where they land on RabbitMQ 3.10: the value is hashed with
//! `erlang:phash2` and placed with the plugin's jump consistent hash (`erlang_hash`), and
//! bindings take their points in the order they were made, as the plugin numbers its
//! buckets. A header of a type other than a string, an integer or a boolean still goes
//! to one binding per value, but not necessarily RabbitMQ's.

use super::erlang_hash::{self, Term};
use super::headers::{term_text, type_atom, write_binary};
use super::{Binding, Destination};
use crate::broker::arguments::as_int;
use crate::broker::message::Message;
use crate::codec::properties as props;
use crate::error::Exception;
use amq_protocol::types::{AMQPValue, FieldTable};

/// What a message's hash is taken of.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HashOn {
    RoutingKey,
    Header(String),
    MessageId,
    CorrelationId,
    Timestamp,
}

/// The largest weight one binding may have. The plugin has none, but it stores one row
/// per point (a weight of a billion would exhaust its node); here points cost nothing,
/// and the bound keeps the ring's total far inside jump hashing's exact range.
pub const MAX_WEIGHT: u32 = u32::MAX;

/// The bindings' shares of the ring: binding i owns points [ends[i-1], ends[i]).
#[derive(Debug)]
pub struct HashRing {
    on: HashOn,
    owners: Vec<(u64, Destination)>,
    total: u64,
}

/// The text of a string argument; `Err` holds the refusal when it is of another type.
fn string_arg(args: &FieldTable, name: &str) -> Result<Option<Vec<u8>>, Exception> {
    match args.inner().get(name) {
        None => Ok(None),
        Some(AMQPValue::LongString(s)) => Ok(Some(s.as_bytes().to_vec())),
        Some(AMQPValue::ShortString(s)) => Ok(Some(s.as_str().as_bytes().to_vec())),
        // RabbitMQ 3.10 crashes on these (541 INTERNAL_ERROR, connection closed); a
        // channel error that names the problem serves clients better.
        Some(other) => Err(Exception::precondition_failed(format!(
            "Invalid argument {}, '{name}' must be a string",
            term_text(other)
        ))),
    }
}

/// The exchange's arguments as the plugin checks them when the exchange is created.
pub fn validate(args: &FieldTable) -> Result<(), Exception> {
    let header = string_arg(args, "hash-header")?;
    let property = string_arg(args, "hash-property")?;
    match (header, property) {
        (Some(_), Some(_)) => Err(Exception::precondition_failed(
            "hash-header and hash-property are mutually exclusive",
        )),
        (None, Some(p)) if property_of(&p).is_none() => Err(Exception::precondition_failed(
            format!("Unsupported property: {}", String::from_utf8_lossy(&p)),
        )),
        _ => Ok(()),
    }
}

fn property_of(name: &[u8]) -> Option<HashOn> {
    match name {
        b"message_id" => Some(HashOn::MessageId),
        b"correlation_id" => Some(HashOn::CorrelationId),
        b"timestamp" => Some(HashOn::Timestamp),
        _ => None,
    }
}

/// A binding key's weight, refused as the plugin refuses it: an integer (optionally
/// signed, as Erlang's `list_to_integer` reads it) greater than 0.
pub fn weight(key: &str) -> Result<u32, Exception> {
    let digits = key.strip_prefix(['+', '-']).unwrap_or(key);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        let mut shown = Vec::new();
        write_binary(&mut shown, key.as_bytes());
        return Err(Exception::precondition_failed(format!(
            "The binding key must be an integer: {}",
            String::from_utf8_lossy(&shown)
        )));
    }
    let significant = digits.trim_start_matches('0');
    if key.starts_with('-') || significant.is_empty() {
        return Err(Exception::precondition_failed(
            "The binding key must be greater than 0",
        ));
    }
    significant.parse::<u32>().map_err(|_| {
        Exception::precondition_failed(format!("The binding key must be at most {MAX_WEIGHT}"))
    })
}

impl HashRing {
    /// An empty ring hashing what `args` names (arguments already validated; anything
    /// else falls back to the routing key).
    pub fn new(args: &FieldTable) -> Self {
        let header = string_arg(args, "hash-header").ok().flatten();
        let property = string_arg(args, "hash-property").ok().flatten();
        let on = match (header, property) {
            (Some(h), None) => HashOn::Header(String::from_utf8_lossy(&h).into_owned()),
            (None, Some(p)) => property_of(&p).unwrap_or(HashOn::RoutingKey),
            _ => HashOn::RoutingKey,
        };
        HashRing {
            on,
            owners: Vec::new(),
            total: 0,
        }
    }

    /// Lays the bindings out on the ring again, in binding order (so a binding added last
    /// takes points at the end and moves only the keys that jump to them).
    pub fn rebuild(&mut self, bindings: &[Binding]) {
        self.owners.clear();
        self.total = 0;
        for b in bindings {
            let w = weight(&b.routing_key).unwrap_or(0);
            if w > 0 {
                self.total += u64::from(w);
                self.owners.push((self.total, b.destination.clone()));
            }
        }
    }

    pub fn route(&self, msg: &Message, out: &mut dyn FnMut(&Destination)) {
        if self.total == 0 {
            return;
        }
        let point = erlang_hash::jump(self.hash(msg), self.total);
        let at = self.owners.partition_point(|(end, _)| *end <= point);
        if let Some((_, d)) = self.owners.get(at) {
            out(d);
        }
    }

    /// `erlang:phash2` of what the plugin hashes: the routing key, the header as
    /// `{Type, Value}`, or the property; `undefined` when the message lacks it, so all
    /// such messages go to one binding, as with the plugin.
    fn hash(&self, msg: &Message) -> u32 {
        let p = msg.properties();
        let undefined = Term::Atom("undefined");
        match &self.on {
            HashOn::RoutingKey => erlang_hash::phash2(&Term::Binary(msg.routing_key().as_bytes())),
            HashOn::MessageId => short(props::short_bytes(p, props::MESSAGE_ID)),
            HashOn::CorrelationId => short(props::short_bytes(p, props::CORRELATION_ID)),
            // The plugin hashes the timestamp's decimal text.
            HashOn::Timestamp => match props::timestamp(p) {
                Some(t) => erlang_hash::phash2(&Term::Binary(t.to_string().as_bytes())),
                None => erlang_hash::phash2(&undefined),
            },
            HashOn::Header(name) => {
                let headers = msg.headers();
                let Some(value) = headers.as_ref().and_then(|h| h.inner().get(name.as_str()))
                else {
                    return erlang_hash::phash2(&undefined);
                };
                let text;
                let inner = match value {
                    AMQPValue::LongString(s) => Term::Binary(s.as_bytes()),
                    AMQPValue::ShortString(s) => Term::Binary(s.as_str().as_bytes()),
                    AMQPValue::Boolean(b) => Term::Atom(if *b { "true" } else { "false" }),
                    AMQPValue::Timestamp(t) => Term::Int(i64::try_from(*t).unwrap_or(i64::MAX)),
                    other => match as_int(other) {
                        Some(i) => Term::Int(i64::try_from(i).unwrap_or(i64::MAX)),
                        // Floats, decimals, tables, arrays, byte arrays: by their printed
                        // term, stable but not RabbitMQ's placement.
                        None => {
                            text = term_text(other);
                            Term::Binary(text.as_bytes())
                        }
                    },
                };
                erlang_hash::phash2(&Term::Pair(type_atom(value), &inner))
            }
        }
    }
}

fn short(bytes: Option<&[u8]>) -> u32 {
    erlang_hash::phash2(&bytes.map_or(Term::Atom("undefined"), Term::Binary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_stays_in_range_and_moves_few_keys_when_growing() {
        let mut moved = 0;
        for k in 0..10_000u32 {
            let key = erlang_hash::phash2(&Term::Binary(&k.to_be_bytes()));
            let (a, b) = (erlang_hash::jump(key, 10), erlang_hash::jump(key, 11));
            assert!(a < 10 && b < 11);
            if a != b {
                assert_eq!(b, 10, "a key only moves to the new point");
                moved += 1;
            }
        }
        // About 1/11 of the keys move; far from all of them.
        assert!((500..1500).contains(&moved), "{moved}");
        assert_eq!(erlang_hash::jump(42, 1), 0);
    }

    #[test]
    fn weights_parse_as_erlang_reads_integers() {
        assert_eq!(weight("+3").ok(), Some(3));
        assert_eq!(weight("007").ok(), Some(7));
        assert_eq!(weight("4294967295").ok(), Some(u32::MAX));
        let text = |k: &str| weight(k).err().map(|e| e.text);
        assert_eq!(
            text("abc").as_deref(),
            Some("PRECONDITION_FAILED - The binding key must be an integer: <<\"abc\">>")
        );
        assert_eq!(
            text("").as_deref(),
            Some("PRECONDITION_FAILED - The binding key must be an integer: <<>>")
        );
        for k in ["0", "-0", "-2", "000"] {
            assert_eq!(
                text(k).as_deref(),
                Some("PRECONDITION_FAILED - The binding key must be greater than 0")
            );
        }
        for k in ["4294967296", &"9".repeat(250)] {
            assert_eq!(
                text(k).as_deref(),
                Some("PRECONDITION_FAILED - The binding key must be at most 4294967295")
            );
        }
        // Printable latin-1 bytes are echoed in the quotes, as Erlang's ~tp does.
        assert_eq!(
            text("é").as_deref(),
            Some("PRECONDITION_FAILED - The binding key must be an integer: <<\"é\">>")
        );
    }
}
