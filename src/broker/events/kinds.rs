//! The event kinds and their headers, named and typed as RabbitMQ 3.10.8's event
//! exchange writes them (checked against the reference broker, header by header).
//!
//! Each builder is called by one hook where the thing happens and only builds the
//! headers; `Events::emit` queues them. Identifiers RabbitMQ takes from Erlang processes
//! (`pid`, `connection`, `channel`, `owner_pid`) are written in the same pid form,
//! `<node.connection.channel>`, so that an event's `channel` matches the `pid` of that
//! channel's channel.created and its `connection` the connection's pid.

use super::terms::table_entries;
use super::{text, Events, Headers};
use crate::broker::exchange::Exchange;
use crate::broker::policy::{Policy, PolicyKind};
use crate::broker::queue::Queue;
use crate::stats::ConnInfo;
use crate::store::fieldvalue::json_to_value;
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};
use std::net::{IpAddr, SocketAddr};

/// What RabbitMQ tells about a connection in connection.created: what the registry
/// knows, and the client's properties with their AMQP types (the registry keeps JSON).
#[derive(Debug, Clone)]
pub struct ConnectionFacts {
    pub id: u64,
    pub info: ConnInfo,
    pub client_properties: FieldTable,
}

/// A channel, as consumer events name it.
#[derive(Debug, Clone, Copy)]
pub struct ChannelRef {
    pub connection: u64,
    pub number: u16,
}

/// What user.authentication.success and .failure tell.
#[derive(Debug, Clone, Copy)]
pub struct LoginFacts<'a> {
    pub user: &'a str,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// "peer -> local", the connection's name.
    pub connection_name: &'a str,
    pub ssl: bool,
    pub mechanism: &'a str,
}

/// Erlang's tuple form of an address: `{127,0,0,1}`.
fn erlang_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{{{},{},{},{}}}", o[0], o[1], o[2], o[3])
        }
        IpAddr::V6(v6) => {
            let parts: Vec<String> = v6.segments().iter().map(|s| s.to_string()).collect();
            format!("{{{}}}", parts.join(","))
        }
    }
}

fn strings(items: &[String]) -> AMQPValue {
    AMQPValue::FieldArray(FieldArray::from(
        items.iter().map(|s| text(s)).collect::<Vec<_>>(),
    ))
}

impl Events {
    fn pid(&self, connection: u64, channel: u16) -> String {
        format!("<{}.{connection}.{channel}>", self.node)
    }

    pub fn queue_created(&self, vhost: &str, q: &Queue) {
        let owner = q
            .exclusive_owner
            .map(|c| self.pid(c, 0))
            .unwrap_or_default();
        let h = Headers::new()
            .acted()
            .bool("exclusive", q.exclusive_owner.is_some())
            .str("owner_pid", &owner)
            .value("arguments", table_entries(&q.arguments))
            .bool("auto_delete", q.auto_delete)
            .bool("durable", q.durable)
            .str("name", q.name.as_str())
            .str("vhost", vhost);
        self.emit("queue.created", h.0);
    }

    /// `internal`: the broker deleted it by itself (auto-delete, exclusive owner gone,
    /// expiry), which RabbitMQ reports as done by `rmq-internal`.
    pub fn queue_deleted(&self, vhost: &str, name: &str, internal: bool) {
        let h = if internal {
            Headers::new().str("user_who_performed_action", super::INTERNAL_ACTOR)
        } else {
            Headers::new().acted()
        };
        self.emit("queue.deleted", h.str("name", name).str("vhost", vhost).0);
    }

    pub fn exchange_created(&self, vhost: &str, x: &Exchange) {
        let h = Headers::new()
            .acted()
            .str("policy", x.policy.as_deref().unwrap_or(""))
            .value("arguments", table_entries(&x.arguments))
            .bool("internal", x.internal)
            .bool("auto_delete", x.auto_delete)
            .bool("durable", x.durable)
            .str("type", x.kind.name())
            .str("name", &x.name)
            .str("vhost", vhost);
        self.emit("exchange.created", h.0);
    }

    pub fn exchange_deleted(&self, vhost: &str, name: &str) {
        let h = Headers::new().acted().str("name", name).str("vhost", vhost);
        self.emit("exchange.deleted", h.0);
    }

    /// binding.created or binding.deleted; `to_queue` says what `destination` names.
    pub fn binding(
        &self,
        created: bool,
        vhost: &str,
        source: &str,
        (destination, to_queue): (&str, bool),
        routing_key: &str,
        arguments: &FieldTable,
    ) {
        let h = Headers::new()
            .acted()
            .str("vhost", vhost)
            .value("arguments", table_entries(arguments))
            .str("routing_key", routing_key)
            .str(
                "destination_kind",
                if to_queue { "queue" } else { "exchange" },
            )
            .str("destination_name", destination)
            .str("source_kind", "exchange")
            .str("source_name", source);
        let key = if created {
            "binding.created"
        } else {
            "binding.deleted"
        };
        self.emit(key, h.0);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn consumer_created(
        &self,
        vhost: &str,
        queue: &str,
        channel: ChannelRef,
        tag: &str,
        (ack_required, exclusive): (bool, bool),
        prefetch_count: u16,
        arguments: &FieldTable,
    ) {
        let h = Headers::new()
            .acted()
            .value("arguments", table_entries(arguments))
            .long("prefetch_count", i64::from(prefetch_count))
            .str("queue", queue)
            .str("vhost", vhost)
            .str("channel", &self.pid(channel.connection, channel.number))
            .bool("ack_required", ack_required)
            .bool("exclusive", exclusive)
            .str("consumer_tag", tag);
        self.emit("consumer.created", h.0);
    }

    /// consumer.deleted; `acted`: with `user_who_performed_action` (RabbitMQ leaves it
    /// out when the channel hears that the queue of its consumer was deleted).
    pub fn consumer_deleted(
        &self,
        vhost: &str,
        queue: &str,
        channel: ChannelRef,
        tag: &str,
        acted: bool,
    ) {
        let h = if acted {
            Headers::new().acted()
        } else {
            Headers::new()
        };
        let h = h
            .str("queue", queue)
            .str("vhost", vhost)
            .str("channel", &self.pid(channel.connection, channel.number))
            .str("consumer_tag", tag);
        self.emit("consumer.deleted", h.0);
    }

    /// connection.created, as the reader of RabbitMQ's connection sees it once open.
    pub fn connection_created(&self, facts: &ConnectionFacts) {
        let c = &facts.info;
        let mut h = Headers::new()
            .str("user_who_performed_action", &c.user)
            .str("node", &self.node)
            .long("connected_at", c.connected_at as i64)
            .value("client_properties", table_entries(&facts.client_properties))
            .long("channel_max", i64::from(c.channel_max))
            .long("frame_max", i64::from(c.frame_max))
            .long("timeout", i64::from(c.timeout))
            .str("vhost", &c.vhost)
            .str("user", &c.user)
            .str("protocol", "{0,9,1}");
        for empty in [
            "ssl_hash",
            "ssl_cipher",
            "ssl_key_exchange",
            "ssl_protocol",
            "peer_cert_validity",
            "peer_cert_issuer",
            "peer_cert_subject",
        ] {
            h = h.str(empty, "");
        }
        h = h
            .str("auth_mechanism", &c.auth_mechanism)
            .bool("ssl", c.ssl)
            .str("peer_host", &erlang_ip(c.peer.ip()))
            .str("host", &erlang_ip(c.local.ip()))
            .long("peer_port", i64::from(c.peer.port()))
            .long("port", i64::from(c.local.port()))
            .str("name", &c.name)
            .str("pid", &self.pid(facts.id, 0))
            .str("type", "network");
        if let Some(n) = user_provided_name(&facts.client_properties) {
            h = h.str("user_provided_name", &n);
        }
        self.emit("connection.created", h.0);
    }

    pub fn connection_closed(&self, c: &ConnectionFacts) {
        let mut h = Headers::new()
            .value("client_properties", table_entries(&c.client_properties))
            .str("node", &self.node)
            .str("pid", &self.pid(c.id, 0))
            .str("name", &c.info.name);
        if let Some(n) = user_provided_name(&c.client_properties) {
            h = h.str("user_provided_name", &n);
        }
        self.emit("connection.closed", h.0);
    }

    pub fn channel_created(&self, c: &ConnectionFacts, number: u16) {
        let h = Headers::new()
            .str("user_who_performed_action", &c.info.user)
            .str("vhost", &c.info.vhost)
            .str("user", &c.info.user)
            .long("number", i64::from(number))
            .str("connection", &self.pid(c.id, 0))
            .str("name", &format!("{} ({number})", c.info.name))
            .str("pid", &self.pid(c.id, number));
        self.emit("channel.created", h.0);
    }

    pub fn channel_closed(&self, c: &ConnectionFacts, number: u16) {
        let h = Headers::new()
            .str("user_who_performed_action", &c.info.user)
            .str("pid", &self.pid(c.id, number));
        self.emit("channel.closed", h.0);
    }

    /// user.authentication.success, or .failure with RabbitMQ's reason.
    pub fn login(&self, l: LoginFacts, failure: Option<&str>) {
        let mut h = Headers::new();
        if let Some(reason) = failure {
            // RabbitMQ's reason is an Erlang string: a list of character codes.
            let codes = reason
                .bytes()
                .map(|b| AMQPValue::LongLongInt(i64::from(b)))
                .collect::<Vec<_>>();
            h = h.value("error", AMQPValue::FieldArray(FieldArray::from(codes)));
        }
        let h = h
            .bool("ssl", l.ssl)
            .str("auth_mechanism", l.mechanism)
            .str("protocol", "{0,9,1}")
            .long("peer_port", i64::from(l.peer.port()))
            .str("peer_host", &erlang_ip(l.peer.ip()))
            .str("connection_name", l.connection_name)
            .str("host", &erlang_ip(l.local.ip()))
            .str("name", l.user)
            .str("connection_type", "network");
        let key = if failure.is_some() {
            "user.authentication.failure"
        } else {
            "user.authentication.success"
        };
        self.emit(key, h.0);
    }

    /// user.created, user.deleted, user.password.changed, user.password.cleared.
    pub fn user(&self, key: &'static str, name: &str) {
        self.emit(key, Headers::new().acted().str("name", name).0);
    }

    pub fn user_tags_set(&self, name: &str, tags: &[String]) {
        let h = Headers::new()
            .acted()
            .value("tags", strings(tags))
            .str("name", name);
        self.emit("user.tags.set", h.0);
    }

    pub fn vhost_created(&self, name: &str, description: &str, tags: &[String]) {
        let mut state = FieldTable::default();
        state.insert(self.node.as_str().into(), text("running"));
        // Erlang's map as RabbitMQ prints it: tags are atoms, the description a binary.
        let description_term = if description.is_empty() {
            "<<>>".to_owned()
        } else {
            format!("<<\"{description}\">>")
        };
        let metadata = format!(
            "#{{description => {description_term},tags => [{}]}}",
            tags.join(",")
        );
        let h = Headers::new()
            .value("tags", strings(tags))
            .str("description", description)
            .acted()
            .value("cluster_state", AMQPValue::FieldTable(state))
            .bool("tracing", false)
            .str("metadata", &metadata)
            .str("default_queue_type", "undefined")
            .str("name", name);
        self.emit("vhost.created", h.0);
    }

    /// vhost.deleted, then (as RabbitMQ) its limits' parameter.cleared if it had any,
    /// and vhost.down from the node.
    pub fn vhost_deleted(&self, name: &str, had_limits: bool) {
        self.emit("vhost.deleted", Headers::new().acted().str("name", name).0);
        if had_limits {
            self.vhost_limits(name, None);
        }
        let h = Headers::new()
            .str("user_who_performed_action", super::INTERNAL_ACTOR)
            .str("node", &self.node)
            .str("name", name);
        self.emit("vhost.down", h.0);
    }

    /// permission.created (`scope` is `("configure", pattern)`) or
    /// topic.permission.created (`scope` is `("exchange", name)`).
    pub fn permission_created(
        &self,
        user: &str,
        vhost: &str,
        scope: (&str, &str),
        (w, r): (&str, &str),
    ) {
        let h = Headers::new()
            .acted()
            .str("read", r)
            .str("write", w)
            .str(scope.0, scope.1)
            .str("vhost", vhost)
            .str("user", user);
        let key = if scope.0 == "exchange" {
            "topic.permission.created"
        } else {
            "permission.created"
        };
        self.emit(key, h.0);
    }

    /// permission.deleted or topic.permission.deleted.
    pub fn permission_deleted(&self, topic: bool, user: &str, vhost: &str) {
        let h = Headers::new().acted().str("vhost", vhost).str("user", user);
        let key = if topic {
            "topic.permission.deleted"
        } else {
            "permission.deleted"
        };
        self.emit(key, h.0);
    }

    /// policy.set; an operator policy is first a parameter.set, as in RabbitMQ.
    pub fn policy_set(&self, vhost: &str, kind: PolicyKind, p: &Policy) {
        let definition = AMQPValue::FieldTable(match json_to_value(&p.definition.clone().into()) {
            AMQPValue::FieldTable(t) => t,
            _ => FieldTable::default(),
        });
        let priority = p.priority.as_i64().map_or_else(
            || AMQPValue::Double(p.priority.as_f64().unwrap_or(0.0)),
            AMQPValue::LongLongInt,
        );
        let fields = |h: Headers| {
            h.str("apply-to", p.apply_to.name())
                .value("priority", priority.clone())
                .value("definition", definition.clone())
                .str("pattern", &p.pattern)
        };
        if kind == PolicyKind::Operator {
            let value = fields(Headers::new()).0;
            let h = Headers::new()
                .acted()
                .value("value", AMQPValue::FieldTable(value))
                .str("name", &p.name)
                .str("component", "operator_policy")
                .str("vhost", vhost);
            self.emit("parameter.set", h.0);
        }
        let h = fields(Headers::new())
            .acted()
            .str("vhost", vhost)
            .str("name", &p.name);
        self.emit("policy.set", h.0);
    }

    /// policy.cleared, or for an operator policy parameter.cleared then
    /// operator.policy.cleared, as in RabbitMQ.
    pub fn policy_cleared(&self, vhost: &str, kind: PolicyKind, name: &str) {
        if kind == PolicyKind::Operator {
            let h = Headers::new()
                .acted()
                .str("name", name)
                .str("component", "operator_policy")
                .str("vhost", vhost);
            self.emit("parameter.cleared", h.0);
        }
        let key = match kind {
            PolicyKind::Policy => "policy.cleared",
            PolicyKind::Operator => "operator.policy.cleared",
        };
        let h = Headers::new().acted().str("vhost", vhost).str("name", name);
        self.emit(key, h.0);
    }

    /// A global parameter set, or cleared (`None`): RabbitMQ 3.10.8 reports both as
    /// parameter.set, the clearing one without a value.
    pub fn global_parameter(&self, name: &str, value: Option<&serde_json::Value>) {
        let mut h = Headers::new().acted();
        if let Some(v) = value {
            h = h.value("value", json_to_value(v));
        }
        let h = h.str("name", name).str("component", "global");
        self.emit("parameter.set", h.0);
    }

    /// A vhost's limits set (parameter.set of component vhost-limits; `None` when they
    /// were removed, which RabbitMQ reports as parameter.cleared).
    pub fn vhost_limits(&self, vhost: &str, limits: Option<&serde_json::Value>) {
        let h = Headers::new().acted();
        let (key, h) = match limits {
            // An emptied limits object is an empty Erlang list: an array.
            Some(serde_json::Value::Object(m)) if m.is_empty() => (
                "parameter.set",
                h.value("value", AMQPValue::FieldArray(FieldArray::default())),
            ),
            Some(v) => ("parameter.set", h.value("value", json_to_value(v))),
            None => ("parameter.cleared", h),
        };
        let h = h
            .str("name", "limits")
            .str("component", "vhost-limits")
            .str("vhost", vhost);
        self.emit(key, h.0);
    }
}

/// The `connection_name` client property, which RabbitMQ shows as user_provided_name.
fn user_provided_name(props: &FieldTable) -> Option<String> {
    match props.inner().get("connection_name")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}
