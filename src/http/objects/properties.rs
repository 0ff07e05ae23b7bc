//! Message properties between JSON and AMQP, as the management API writes them in
//! `properties`: the names of AMQP 0-9-1's basic properties, `headers` as a table,
//! numbers for `delivery_mode`, `priority` and `timestamp`, strings for the rest.
//!
//! Called by `messages` (publish reads them, get writes them). Pure functions; a wrong
//! type is RabbitMQ's 400 `["not_int", name]` / `["not_string", name]`, never a panic.

use crate::http::error::{ApiError, ApiResult};
use crate::store::fieldvalue::{json_to_table, table_to_json};
use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, AMQPProperties};
use amq_protocol::types::ShortString;
use serde_json::{json, Map, Value};

/// The encoded property bytes of a `properties` object. Unknown names are ignored, as
/// RabbitMQ ignores them.
pub(super) fn encode(props: &Map<String, Value>) -> ApiResult<Vec<u8>> {
    let mut p = AMQPProperties::default();
    let text = |name: &str| -> ApiResult<Option<ShortString>> {
        match props.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => ShortString::try_new(s.as_str())
                .map(Some)
                .map_err(|_| ApiError::bad_request_term("too_long", json!(name))),
            Some(_) => Err(ApiError::bad_request_term("not_string", json!(name))),
        }
    };
    let int = |name: &str| -> ApiResult<Option<u64>> {
        match props.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(_) => Err(ApiError::bad_request_term("not_int", json!(name))),
        }
    };
    if let Some(v) = text("content_type")? {
        p = p.with_content_type(v);
    }
    if let Some(v) = text("content_encoding")? {
        p = p.with_content_encoding(v);
    }
    match props.get("headers") {
        None | Some(Value::Null) => {}
        Some(h @ Value::Object(_)) => p = p.with_headers(json_to_table(h)),
        Some(_) => return Err(ApiError::bad_request_term("not_table", json!("headers"))),
    }
    if let Some(v) = int("delivery_mode")? {
        // RabbitMQ keeps the low byte of an out-of-range value.
        p = p.with_delivery_mode(v as u8);
    }
    if let Some(v) = int("priority")? {
        p = p.with_priority(v as u8);
    }
    if let Some(v) = text("correlation_id")? {
        p = p.with_correlation_id(v);
    }
    if let Some(v) = text("reply_to")? {
        p = p.with_reply_to(v);
    }
    if let Some(v) = text("expiration")? {
        p = p.with_expiration(v);
    }
    if let Some(v) = text("message_id")? {
        p = p.with_message_id(v);
    }
    if let Some(v) = int("timestamp")? {
        p = p.with_timestamp(v);
    }
    if let Some(v) = text("type")? {
        p = p.with_type(v);
    }
    if let Some(v) = text("user_id")? {
        p = p.with_user_id(v);
    }
    if let Some(v) = text("app_id")? {
        p = p.with_app_id(v);
    }
    if let Some(v) = text("cluster_id")? {
        p = p.with_cluster_id(v);
    }
    let written = gen_properties(&p)(WriteContext::from(Vec::new())).map(|c| c.write);
    written.map_err(|_| ApiError::bad_request("properties do not encode"))
}

/// The properties a message carries, as `get` answers them (only those set).
pub(crate) fn decode(p: &AMQPProperties) -> Value {
    let mut m = Map::new();
    let mut text = |name: &str, v: &Option<ShortString>| {
        if let Some(s) = v {
            m.insert(name.to_owned(), json!(s.as_str()));
        }
    };
    text("content_type", p.content_type());
    text("content_encoding", p.content_encoding());
    text("correlation_id", p.correlation_id());
    text("reply_to", p.reply_to());
    text("expiration", p.expiration());
    text("message_id", p.message_id());
    text("type", p.kind());
    text("user_id", p.user_id());
    text("app_id", p.app_id());
    text("cluster_id", p.cluster_id());
    if let Some(h) = p.headers() {
        m.insert("headers".into(), table_to_json(h));
    }
    if let Some(v) = p.delivery_mode() {
        m.insert("delivery_mode".into(), json!(v));
    }
    if let Some(v) = p.priority() {
        m.insert("priority".into(), json!(v));
    }
    if let Some(v) = p.timestamp() {
        m.insert("timestamp".into(), json!(v));
    }
    Value::Object(m)
}
