//! The `list_*` commands: which API list each reads, rabbitmqctl's info keys (columns)
//! each accepts, its default columns, and where in the API's JSON each key's value is.
//!
//! Called by `ctl::run`. A column rabbitmqctl does not know for that list is refused with
//! its text and exit 64 before any request; a key the API leaves out prints empty.

use super::args::Args;
use super::client::{seg, Client};
use super::output::{Cell, Out};
use super::{CtlError, EX_DATAERR, EX_USAGE};
use serde_json::Value;

/// One list: its endpoint, its keys and their places in the API's objects.
struct List {
    /// "queues" in "Listing queues for vhost / ...".
    what: &'static str,
    /// The path, with `{vhost}` replaced by the vhost when the list is per vhost.
    path: &'static str,
    /// rabbitmqctl's info keys: (key, dotted path in the API object, rendering).
    keys: &'static [(&'static str, &'static str, Cell)],
    defaults: &'static [&'static str],
    /// The header line, given the vhost.
    header: fn(&str) -> String,
}

use Cell::{Arguments as A, Plain as P, Words as W};

const QUEUES: List = List {
    what: "queues",
    path: "/api/queues/{vhost}",
    keys: &[
        ("name", "name", P),
        ("vhost", "vhost", P),
        ("durable", "durable", P),
        ("auto_delete", "auto_delete", P),
        ("arguments", "arguments", A),
        ("policy", "policy", P),
        ("operator_policy", "operator_policy", P),
        (
            "effective_policy_definition",
            "effective_policy_definition",
            P,
        ),
        ("pid", "name", P),
        ("owner_pid", "owner_pid_details.name", P),
        ("exclusive", "exclusive", P),
        ("exclusive_consumer_tag", "exclusive_consumer_tag", P),
        ("messages_ready", "messages_ready", P),
        ("messages_unacknowledged", "messages_unacknowledged", P),
        ("messages", "messages", P),
        ("messages_ready_ram", "messages_ready_ram", P),
        (
            "messages_unacknowledged_ram",
            "messages_unacknowledged_ram",
            P,
        ),
        ("messages_ram", "messages_ram", P),
        ("messages_persistent", "messages_persistent", P),
        ("message_bytes", "message_bytes", P),
        ("message_bytes_ready", "message_bytes_ready", P),
        (
            "message_bytes_unacknowledged",
            "message_bytes_unacknowledged",
            P,
        ),
        ("message_bytes_ram", "message_bytes_ram", P),
        ("message_bytes_persistent", "message_bytes_persistent", P),
        ("head_message_timestamp", "head_message_timestamp", P),
        ("disk_reads", "disk_reads", P),
        ("disk_writes", "disk_writes", P),
        ("consumers", "consumers", P),
        ("consumer_utilisation", "consumer_utilisation", P),
        ("consumer_capacity", "consumer_capacity", P),
        ("memory", "memory", P),
        ("state", "state", P),
        ("type", "type", P),
    ],
    defaults: &["name", "messages"],
    header: |vhost| format!("Listing queues for vhost {vhost} ..."),
};

const EXCHANGES: List = List {
    what: "exchanges",
    path: "/api/exchanges/{vhost}",
    keys: &[
        ("name", "name", P),
        ("vhost", "vhost", P),
        ("type", "type", P),
        ("durable", "durable", P),
        ("auto_delete", "auto_delete", P),
        ("internal", "internal", P),
        ("arguments", "arguments", A),
        ("policy", "policy", P),
    ],
    defaults: &["name", "type"],
    header: |vhost| format!("Listing exchanges for vhost {vhost} ..."),
};

const BINDINGS: List = List {
    what: "bindings",
    path: "/api/bindings/{vhost}",
    keys: &[
        ("source_name", "source", P),
        // Every binding's source is an exchange; the API leaves the kind out.
        ("source_kind", "=exchange", P),
        ("destination_name", "destination", P),
        ("destination_kind", "destination_type", P),
        ("routing_key", "routing_key", P),
        ("arguments", "arguments", A),
        ("vhost", "vhost", P),
    ],
    defaults: &[
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ],
    // rabbitmqctl writes no space before the dots on this one.
    header: |vhost| format!("Listing bindings for vhost {vhost}..."),
};

const CONNECTIONS: List = List {
    what: "connections",
    path: "/api/connections",
    keys: &[
        // A connection's Erlang pid has no counterpart: its name identifies it.
        ("pid", "name", P),
        ("name", "name", P),
        ("port", "port", P),
        ("host", "host", P),
        ("peer_port", "peer_port", P),
        ("peer_host", "peer_host", P),
        ("ssl", "ssl", P),
        ("ssl_protocol", "ssl_protocol", P),
        ("ssl_key_exchange", "ssl_key_exchange", P),
        ("ssl_cipher", "ssl_cipher", P),
        ("ssl_hash", "ssl_hash", P),
        ("peer_cert_subject", "peer_cert_subject", P),
        ("peer_cert_issuer", "peer_cert_issuer", P),
        ("peer_cert_validity", "peer_cert_validity", P),
        ("state", "state", P),
        ("channels", "channels", P),
        ("protocol", "protocol", P),
        ("auth_mechanism", "auth_mechanism", P),
        ("user", "user", P),
        ("vhost", "vhost", P),
        ("timeout", "timeout", P),
        ("frame_max", "frame_max", P),
        ("channel_max", "channel_max", P),
        ("client_properties", "client_properties", P),
        ("recv_oct", "recv_oct", P),
        ("recv_cnt", "recv_cnt", P),
        ("send_oct", "send_oct", P),
        ("send_cnt", "send_cnt", P),
        ("send_pend", "send_pend", P),
        ("connected_at", "connected_at", P),
    ],
    defaults: &["user", "peer_host", "peer_port", "state"],
    header: |_| "Listing connections ...".to_owned(),
};

const CHANNELS: List = List {
    what: "channels",
    path: "/api/channels",
    keys: &[
        ("pid", "name", P),
        ("connection", "connection_details.name", P),
        ("name", "name", P),
        ("number", "number", P),
        ("user", "user", P),
        ("vhost", "vhost", P),
        ("transactional", "transactional", P),
        ("confirm", "confirm", P),
        ("consumer_count", "consumer_count", P),
        ("messages_unacknowledged", "messages_unacknowledged", P),
        ("messages_uncommitted", "messages_uncommitted", P),
        ("acks_uncommitted", "acks_uncommitted", P),
        ("messages_unconfirmed", "messages_unconfirmed", P),
        ("prefetch_count", "prefetch_count", P),
        ("global_prefetch_count", "global_prefetch_count", P),
    ],
    defaults: &["pid", "user", "consumer_count", "messages_unacknowledged"],
    header: |_| "Listing channels ...".to_owned(),
};

const CONSUMERS: List = List {
    what: "consumers",
    path: "/api/consumers/{vhost}",
    keys: &[
        ("queue_name", "queue.name", P),
        ("channel_pid", "channel_details.name", P),
        ("consumer_tag", "consumer_tag", P),
        ("ack_required", "ack_required", P),
        ("prefetch_count", "prefetch_count", P),
        ("active", "active", P),
        ("activity_status", "activity_status", P),
        ("arguments", "arguments", A),
        ("exclusive", "exclusive", P),
    ],
    defaults: &[
        "queue_name",
        "channel_pid",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "active",
        "arguments",
    ],
    header: |vhost| format!("Listing consumers in vhost {vhost} ..."),
};

const USERS: List = List {
    what: "users",
    path: "/api/users",
    keys: &[("user", "name", P), ("tags", "tags", W)],
    defaults: &["user", "tags"],
    header: |_| "Listing users ...".to_owned(),
};

const VHOSTS: List = List {
    what: "vhosts",
    path: "/api/vhosts",
    keys: &[
        ("name", "name", P),
        ("description", "description", P),
        ("tags", "tags", W),
        ("tracing", "tracing", P),
        ("cluster_state", "cluster_state", P),
        ("default_queue_type", "default_queue_type", P),
    ],
    defaults: &["name"],
    header: |_| "Listing vhosts ...".to_owned(),
};

const PERMISSIONS: List = List {
    what: "permissions",
    path: "/api/vhosts/{vhost}/permissions",
    keys: &[
        ("user", "user", P),
        ("configure", "configure", P),
        ("write", "write", P),
        ("read", "read", P),
    ],
    defaults: &["user", "configure", "write", "read"],
    header: |vhost| format!("Listing permissions for vhost \"{vhost}\" ..."),
};

const POLICIES: List = List {
    what: "policies",
    path: "/api/policies/{vhost}",
    keys: &[
        ("vhost", "vhost", P),
        ("name", "name", P),
        ("pattern", "pattern", P),
        ("apply-to", "apply-to", P),
        // rabbitmqctl prints the definition as JSON text in both formatters.
        ("definition", "definition", P),
        ("priority", "priority", P),
    ],
    defaults: &[
        "vhost",
        "name",
        "pattern",
        "apply-to",
        "definition",
        "priority",
    ],
    header: |vhost| format!("Listing policies for vhost \"{vhost}\" ..."),
};

/// Runs `list_<what>`; false when the command is not a list.
pub(crate) async fn run(args: &Args, client: &Client) -> Result<bool, CtlError> {
    let list = match args.command.as_str() {
        "list_queues" => QUEUES,
        "list_exchanges" => EXCHANGES,
        "list_bindings" => BINDINGS,
        "list_connections" => CONNECTIONS,
        "list_channels" => CHANNELS,
        "list_consumers" => CONSUMERS,
        "list_users" => USERS,
        "list_vhosts" => VHOSTS,
        "list_permissions" => PERMISSIONS,
        "list_policies" => POLICIES,
        _ => return Ok(false),
    };
    let columns = columns(&list, &args.positional)?;
    let out = Out::new(args);
    if list.what == "queues" {
        let secs = client.timeout.as_secs_f64();
        out.info(&format!("Timeout: {secs:.1} seconds ..."));
    }
    out.info(&(list.header)(&args.vhost));
    let path = list.path.replace("{vhost}", &seg(&args.vhost));
    let response = client.get(&path).await?;
    let items = match response.status {
        200 => response.json(),
        // rabbitmqctl lists nothing for a missing vhost, but says so (65) for the lists
        // that name the vhost in quotes. A 404 for a vhost that exists is an API
        // without this list: say so rather than print an empty one.
        404 if list.path.contains("{vhost}") => {
            let vhost = client
                .get(&format!("/api/vhosts/{}", seg(&args.vhost)))
                .await?;
            if vhost.ok() {
                return Err(client.unexpected(&response));
            }
            if matches!(list.what, "permissions" | "policies") {
                return Err(CtlError::bare(
                    EX_DATAERR,
                    format!("Virtual host '{}' does not exist", args.vhost),
                ));
            }
            Value::Array(Vec::new())
        }
        _ => return Err(client.unexpected(&response)),
    };
    let items = match items {
        Value::Array(items) => items,
        // A paged answer if a proxy added paging parameters.
        Value::Object(mut page) => match page.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let rows: Vec<Vec<Value>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|(_, path, _)| lookup(item, path))
                .collect()
        })
        .collect();
    let header: Vec<(String, Cell)> = columns
        .iter()
        .map(|(key, _, cell)| (key.to_string(), *cell))
        .collect();
    out.table(&header, &rows);
    Ok(true)
}

/// The requested keys (or the defaults), each with its place and rendering.
fn columns(
    list: &List,
    requested: &[String],
) -> Result<Vec<(&'static str, &'static str, Cell)>, CtlError> {
    let wanted: Vec<&str> = if requested.is_empty() {
        list.defaults.to_vec()
    } else {
        // rabbitmqctl also takes "name,messages" as one word.
        requested
            .iter()
            .flat_map(|w| w.split(','))
            .filter(|w| !w.is_empty())
            .collect()
    };
    let unknown: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !list.keys.iter().any(|(k, _, _)| k == w))
        .collect();
    if !unknown.is_empty() {
        return Err(CtlError::bare(
            EX_USAGE,
            format!(
                "Error (argument validation): Info key(s) {} are not supported",
                unknown.join(",")
            ),
        ));
    }
    Ok(wanted
        .iter()
        .filter_map(|w| list.keys.iter().find(|(k, _, _)| k == w).copied())
        .collect())
}

/// The value at a dotted path ("queue.name"), or a constant written "=value".
fn lookup(item: &Value, path: &str) -> Value {
    if let Some(constant) = path.strip_prefix('=') {
        return Value::from(constant);
    }
    let mut value = item;
    for part in path.split('.') {
        match value.get(part) {
            Some(v) => value = v,
            None => return Value::Null,
        }
    }
    match value {
        // Policies' definitions print as JSON text, as rabbitmqctl prints them.
        Value::Object(_) if path == "definition" => Value::from(value.to_string()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_and_chosen_columns() {
        let names = |list: &List, words: &[&str]| -> Vec<&'static str> {
            let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            columns(list, &words)
                .expect("known keys")
                .into_iter()
                .map(|(k, _, _)| k)
                .collect()
        };
        assert_eq!(names(&QUEUES, &[]), ["name", "messages"]);
        assert_eq!(
            names(&QUEUES, &["name", "messages", "consumers"]),
            ["name", "messages", "consumers"]
        );
        assert_eq!(names(&QUEUES, &["name,durable"]), ["name", "durable"]);
        let e = columns(&QUEUES, &["nosuchcol".to_owned()]).expect_err("unknown key");
        assert_eq!(e.code, EX_USAGE);
        assert!(e
            .message
            .starts_with("Error (argument validation): Info key(s) nosuchcol are not supported"));
    }

    #[test]
    fn values_by_dotted_path() {
        let consumer = json!({"queue": {"name": "q1"}, "consumer_tag": "c"});
        assert_eq!(lookup(&consumer, "queue.name"), json!("q1"));
        assert_eq!(lookup(&consumer, "channel_details.name"), Value::Null);
        assert_eq!(lookup(&consumer, "=exchange"), json!("exchange"));
        let policy = json!({"definition": {"max-length": 5}});
        assert_eq!(lookup(&policy, "definition"), json!("{\"max-length\":5}"));
    }
}
