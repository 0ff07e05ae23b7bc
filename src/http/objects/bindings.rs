//! `/api/bindings...`: every binding, a vhost's, those between one source and one
//! destination (GET, POST to bind), and one binding by its `properties_key` (GET,
//! DELETE to unbind).
//!
//! Called by the router. Binds and unbinds go through the vhost's functions after the
//! checks a channel makes (write on the destination, read on the source). Bindings
//! have no name in AMQP; RabbitMQ names one by its routing key and a hash of its
//! arguments, the `properties_key`, computed here and nowhere else.

use super::{acting_vhost, list_in_vhosts, object_body, permit_change, refused, segments};
use crate::access::permissions::{Permission, Resource};
use crate::broker::vhost::{canonical_exchange, BindingInfo, VHost};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::list::ListQuery;
use crate::http::Api;
use crate::store::fieldvalue::{json_to_table, table_to_json};
use amq_protocol::types::FieldTable;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/bindings", get(list_all))
        .route("/api/bindings/{vhost}", get(list_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(list_between).post(bind),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(get_one).delete(unbind),
        )
}

/// One binding as the API shows it. The one place a binding's JSON is built.
pub fn binding_json(vhost: &str, b: &BindingInfo) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("source".into(), json!(b.source));
    m.insert("vhost".into(), json!(vhost));
    m.insert("destination".into(), json!(b.destination));
    let kind = if b.to_queue { "queue" } else { "exchange" };
    m.insert("destination_type".into(), json!(kind));
    m.insert("routing_key".into(), json!(b.routing_key));
    m.insert("arguments".into(), table_to_json(&b.arguments));
    m.insert(
        "properties_key".into(),
        json!(properties_key(&b.routing_key, &b.arguments)),
    );
    m
}

/// RabbitMQ's name for a binding: `~` for an empty key without arguments, the key
/// (form-encoded, `~` escaped) without arguments, else `key~hash` of the arguments.
/// The hash is warren's own (RabbitMQ hashes the Erlang term): a key from a listing
/// finds its binding, but hashes differ from RabbitMQ's.
pub fn properties_key(key: &str, arguments: &FieldTable) -> String {
    let quoted = quote_plus(key);
    if arguments.inner().is_empty() {
        return if key.is_empty() {
            "~".to_owned()
        } else {
            quoted
        };
    }
    let text = table_to_json(arguments).to_string();
    // FNV-1a, 32 bits: stable across runs and builds, as a URL needs.
    let hash = text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.to_be_bytes());
    format!("{quoted}~{encoded}")
}

/// Form encoding as RabbitMQ's `quote_plus`: letters, digits, `-_.` stay, a space is
/// `+`, every other byte `%XX`.
fn quote_plus(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A path segment percent-encoded (for the Location header).
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

async fn list_all(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&api, &caller, None, &q, |_| true)
}

async fn list_vhost(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let vhost = segments(path)?;
    list(&api, &caller, Some(&vhost), &q, |_| true)
}

fn list(
    api: &Api,
    caller: &Caller,
    vhost: Option<&str>,
    q: &ListQuery,
    keep: impl Fn(&BindingInfo) -> bool,
) -> ApiResult<Json<Value>> {
    list_in_vhosts(api, caller, vhost, q, |v| {
        v.binding_infos()
            .iter()
            .filter(|b| keep(b))
            .map(|b| Value::Object(binding_json(&v.name, b)))
            .collect()
    })
}

/// `/e/{source}/q/{queue}` or `/e/{source}/e/{exchange}`, read from a path.
struct Ends {
    vhost: String,
    source: String,
    to_queue: bool,
    destination: String,
}

impl Ends {
    fn read(vhost: String, source: String, kind: &str, destination: String) -> ApiResult<Ends> {
        let to_queue = match kind {
            "q" => true,
            "e" => false,
            _ => return Err(ApiError::not_found()),
        };
        Ok(Ends {
            vhost,
            source: canonical_exchange(&source).to_owned(),
            to_queue,
            destination,
        })
    }

    fn matches(&self, b: &BindingInfo) -> bool {
        b.source == self.source && b.to_queue == self.to_queue && b.destination == self.destination
    }
}

type FourSegments = (String, String, String, String);

async fn list_between(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<FourSegments>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (vhost, source, kind, destination) = segments(path)?;
    let ends = Ends::read(vhost, source, &kind, destination)?;
    list(&api, &caller, Some(&ends.vhost), &q, |b| ends.matches(b))
}

/// The caller's checks for a bind or unbind, as a channel makes them.
fn permit_binding(api: &Api, v: &VHost, caller: &Caller, ends: &Ends, key: &str) -> ApiResult<()> {
    let kind = if ends.to_queue {
        Resource::Queue
    } else {
        Resource::Exchange
    };
    let destination = match ends.to_queue {
        true => ends.destination.as_str(),
        false => canonical_exchange(&ends.destination),
    };
    permit_change(
        api,
        caller,
        &ends.vhost,
        kind,
        destination,
        Permission::Write,
    )?;
    if ends.source.is_empty() || destination.is_empty() {
        return Err(ApiError::not_authorised("Access refused."));
    }
    permit_change(
        api,
        caller,
        &ends.vhost,
        Resource::Exchange,
        &ends.source,
        Permission::Read,
    )?;
    super::permit_topic(api, caller, v, &ends.source, key, Permission::Read)
        .map_err(|_| ApiError::not_authorised("Access refused."))
}

async fn bind(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<FourSegments>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (vhost, source, kind, destination) = segments(path)?;
    let ends = Ends::read(vhost, source, &kind, destination)?;
    let v = acting_vhost(&api, &caller, &ends.vhost)?;
    let body = object_body(body)?;
    let key = match body.get("routing_key") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(ApiError::bad_request_term("not_string", other.clone())),
    };
    let args = json_to_table(&super::arguments(&body)?);
    permit_binding(&api, &v, &caller, &ends, &key)?;
    let acting = caller.acting(&api.broker);
    if ends.to_queue {
        v.bind_queue(
            &ends.destination,
            &ends.source,
            &key,
            &args,
            super::API_CONNECTION,
        )
    } else {
        v.bind_exchange(&ends.destination, &ends.source, &key, &args)
    }
    .map_err(refused)?;
    drop(acting);
    let location = format!(
        "../../../../{}/e/{}/{}/{}/{}",
        encode_segment(&ends.vhost),
        encode_segment(&ends.source),
        kind,
        encode_segment(&ends.destination),
        encode_segment(&properties_key(&key, &args)),
    );
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

/// The binding a `properties_key` names, if it exists. The path segment arrives decoded
/// once: a client that escaped the listed key again (`a.%252A`) sends the key itself, one
/// that escaped the routing key only (rabbitmqadmin: `a.%2A`) sends it unquoted (`a.*`),
/// so the key part is quoted again and both forms match, as on RabbitMQ.
fn find(v: &Arc<VHost>, ends: &Ends, props: &str) -> ApiResult<BindingInfo> {
    let mut forms = vec![props.to_owned(), quote_plus(props)];
    if let Some((key, hash)) = props.rsplit_once('~').filter(|(k, _)| !k.is_empty()) {
        forms.push(format!("{}~{hash}", quote_plus(key)));
    }
    v.binding_infos()
        .into_iter()
        .find(|b| ends.matches(b) && forms.contains(&properties_key(&b.routing_key, &b.arguments)))
        .ok_or_else(ApiError::not_found)
}

type FiveSegments = (String, String, String, String, String);

async fn get_one(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<FiveSegments>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (vhost, source, kind, destination, props) = segments(path)?;
    let ends = Ends::read(vhost, source, &kind, destination)?;
    let v = super::visible_vhost(&api, &caller, &ends.vhost)?;
    let b = find(&v, &ends, &props)?;
    Ok(Json(q.cut_one(Value::Object(binding_json(&v.name, &b)))))
}

async fn unbind(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<FiveSegments>, PathRejection>,
) -> ApiResult<Response> {
    let (vhost, source, kind, destination, props) = segments(path)?;
    let ends = Ends::read(vhost, source, &kind, destination)?;
    let v = acting_vhost(&api, &caller, &ends.vhost)?;
    let b = find(&v, &ends, &props)?;
    permit_binding(&api, &v, &caller, &ends, &b.routing_key)?;
    let _acting = caller.acting(&api.broker);
    if ends.to_queue {
        v.unbind_queue(&b.destination, &b.source, &b.routing_key, &b.arguments)
    } else {
        v.unbind_exchange(&b.destination, &b.source, &b.routing_key, &b.arguments)
    }
    .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

    #[test]
    fn properties_keys_as_rabbitmq_forms_them() {
        let none = FieldTable::default();
        assert_eq!(properties_key("", &none), "~");
        assert_eq!(properties_key("a.b", &none), "a.b");
        assert_eq!(properties_key("a b/c~d%e+f", &none), "a+b%2Fc%7Ed%25e%2Bf");
        let mut args = FieldTable::default();
        args.insert("k".into(), AMQPValue::LongLongInt(1));
        let key = properties_key("a.b", &args);
        assert!(
            key.starts_with("a.b~") && key.len() == "a.b~".len() + 6,
            "{key}"
        );
        assert_eq!(key, properties_key("a.b", &args));
    }
}
