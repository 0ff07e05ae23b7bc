//! The definitions file: vhosts, users, permissions, durable queues, exchanges and bindings
//! in RabbitMQ's definitions JSON format (what `rabbitmqctl export_definitions` writes and
//! `import_definitions` reads), so the same file can move between warren and RabbitMQ.
//!
//! Called by the broker at start (`load`) and by the definitions writer thread whenever
//! durable topology or users change (`save`, from `defwriter`: it fsyncs twice). It only converts and stores; which
//! objects belong in the file (durable ones, never exclusive queues) is the caller's
//! choice. It never leaves a half-written file behind: `save` writes a temporary file,
//! fsyncs it, renames it over the old one and fsyncs the directory. Keys it does not know
//! (policies, parameters, vhost limits and metadata, future fields) are kept as they were
//! read and written back unchanged.
//!
//! Shape notes from RabbitMQ 3.10.8's own export: queues carry `"type": "classic"`;
//! exchanges are written without `internal` (read here as false when absent); user `tags`
//! is an array (older versions wrote a comma-separated string, also accepted); vhosts
//! carry `limits` and `metadata`; non-UTF-8 argument strings are written as
//! `"Not UTF-8, base64 is: ..."` (see `fieldvalue` for every argument conversion).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The RabbitMQ version warren's files claim to come from (the one it emulates).
pub const RABBIT_VERSION: &str = "3.10.8";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Definitions {
    pub rabbit_version: String,
    pub rabbitmq_version: String,
    pub users: Vec<UserDef>,
    pub vhosts: Vec<VhostDef>,
    pub permissions: Vec<PermissionDef>,
    pub topic_permissions: Vec<TopicPermissionDef>,
    pub parameters: Vec<Value>,
    pub global_parameters: Vec<Value>,
    pub policies: Vec<Value>,
    pub queues: Vec<QueueDef>,
    pub exchanges: Vec<ExchangeDef>,
    pub bindings: Vec<BindingDef>,
    /// Top-level keys not listed above, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Definitions {
    fn default() -> Self {
        Definitions {
            rabbit_version: RABBIT_VERSION.to_owned(),
            rabbitmq_version: RABBIT_VERSION.to_owned(),
            users: Vec::new(),
            vhosts: Vec::new(),
            permissions: Vec::new(),
            topic_permissions: Vec::new(),
            parameters: Vec::new(),
            global_parameters: Vec::new(),
            policies: Vec::new(),
            queues: Vec::new(),
            exchanges: Vec::new(),
            bindings: Vec::new(),
            extra: Map::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserDef {
    pub name: String,
    #[serde(default)]
    pub password_hash: String,
    #[serde(default)]
    pub hashing_algorithm: String,
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
    #[serde(default = "empty_object")]
    pub limits: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostDef {
    pub name: String,
    /// `limits`, `metadata` and anything else, as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A topic permission: write and read patterns on routing keys of one exchange.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicPermissionDef {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueDef {
    pub name: String,
    pub vhost: String,
    /// Absent in a hand-written file: durable, as the definitions file was read before
    /// transient objects could be imported.
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    /// A JSON object; see `fieldvalue` to convert from and to a `FieldTable`.
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// RabbitMQ 3.10 writes "classic"; absent in older files.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub queue_type: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl QueueDef {
    /// A classic queue entry, as RabbitMQ 3.10 writes one.
    pub fn new(
        vhost: &str,
        name: &str,
        durable: bool,
        auto_delete: bool,
        arguments: Value,
    ) -> Self {
        QueueDef {
            name: name.to_owned(),
            vhost: vhost.to_owned(),
            durable,
            auto_delete,
            arguments,
            queue_type: Some("classic".to_owned()),
            extra: Map::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExchangeDef {
    pub name: String,
    pub vhost: String,
    /// direct, fanout, topic, headers, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Absent in a hand-written file: durable, as the definitions file was read before
    /// transient objects could be imported.
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default = "empty_object")]
    pub arguments: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationType {
    Queue,
    Exchange,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BindingDef {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: DestinationType,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default = "empty_object")]
    pub arguments: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The runtime parameter component under which RabbitMQ keeps a vhost's limits (in a
/// parameter named "limits").
pub const VHOST_LIMITS: &str = "vhost-limits";
const VHOST_LIMITS_NAME: &str = "limits";

impl Definitions {
    /// The value of `vhost`'s limits parameter, e.g. `{"max-queues": 10}`, if it has one.
    pub fn vhost_limits(&self, vhost: &str) -> Option<&Value> {
        self.parameters.iter().find_map(|p| {
            let field = |key: &str| p.get(key).and_then(Value::as_str);
            (field("component") == Some(VHOST_LIMITS)
                && field("name") == Some(VHOST_LIMITS_NAME)
                && field("vhost") == Some(vhost))
            .then(|| p.get("value"))
            .flatten()
        })
    }

    /// Adds `vhost`'s limits parameter, as RabbitMQ exports it.
    pub fn push_vhost_limits(&mut self, vhost: &str, value: Value) {
        let mut p = Map::new();
        p.insert("value".into(), value);
        p.insert("vhost".into(), vhost.into());
        p.insert("component".into(), VHOST_LIMITS.into());
        p.insert("name".into(), VHOST_LIMITS_NAME.into());
        self.parameters.push(Value::Object(p));
    }
}

fn yes() -> bool {
    true
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Tags as an array, or as RabbitMQ before 3.9 wrote them: "administrator,monitoring".
fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Tags>::deserialize(d)? {
        None => Vec::new(),
        Some(Tags::List(v)) => v,
        Some(Tags::Text(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Reads a definitions file. A missing file gives empty definitions (first start); a file
/// that is not valid definitions JSON is an `InvalidData` error naming the file and the
/// line and column.
pub fn load(path: &Path) -> io::Result<Definitions> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Definitions::default()),
        Err(e) => return Err(e),
    };
    parse(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Parses definitions JSON (e.g. an uploaded export).
pub fn parse(text: &[u8]) -> Result<Definitions, serde_json::Error> {
    serde_json::from_slice(text)
}

/// Writes `defs` to `path` atomically: a reader (or a crash) sees the old file or the new
/// one, never a mix. Blocking; call it from `spawn_blocking` or a thread of its own.
pub fn save(path: &Path, defs: &Definitions) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(defs).map_err(io::Error::other)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape `rabbitmqctl export_definitions` produced on RabbitMQ 3.10.8 for a
    /// durable topic exchange with arguments, a durable queue with arguments, a
    /// queue binding with arguments and an exchange-to-exchange binding (names and
    /// values are our own).
    const RABBIT_3_10_EXPORT: &str = r#"{
      "bindings": [
        {"arguments": {}, "destination": "store.t.ex", "destination_type": "exchange",
         "routing_key": "rk", "source": "amq.direct", "vhost": "/"},
        {"arguments": {"n": 3, "x-match": "all"}, "destination": "store.t.q",
         "destination_type": "queue", "routing_key": "a.#", "source": "store.t.ex", "vhost": "/"}
      ],
      "exchanges": [
        {"arguments": {"alternate-exchange": "amq.fanout", "x-bytes": "Not UTF-8, base64 is: Af8=",
                       "x-list": [1, "a"], "x-tab": {"k": "v"}},
         "auto_delete": false, "durable": true, "name": "store.t.ex", "type": "topic", "vhost": "/"}
      ],
      "global_parameters": [{"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-abc"}],
      "parameters": [],
      "permissions": [{"configure": ".*", "read": ".*", "user": "guest", "vhost": "/", "write": ".*"}],
      "policies": [],
      "queues": [
        {"arguments": {"x-dead-letter-exchange": "store.t.ex", "x-max-length": 1000},
         "auto_delete": false, "durable": true, "name": "store.t.q", "type": "classic", "vhost": "/"}
      ],
      "rabbit_version": "3.10.8",
      "rabbitmq_version": "3.10.8",
      "topic_permissions": [],
      "users": [
        {"hashing_algorithm": "rabbit_password_hashing_sha256", "limits": {}, "name": "guest",
         "password_hash": "c2FsdHNhbHRoYXNoaGFzaGhhc2g=", "tags": ["administrator"]}
      ],
      "vhosts": [{"limits": [], "metadata": {"description": "Default virtual host", "tags": []}, "name": "/"}]
    }"#;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("warren-defs-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn reads_rabbitmq_3_10_export() {
        let d = parse(RABBIT_3_10_EXPORT.as_bytes()).expect("parses");
        assert_eq!(d.rabbit_version, "3.10.8");
        assert_eq!(d.users[0].tags, vec!["administrator"]);
        assert_eq!(d.vhosts[0].name, "/");
        assert_eq!(
            d.vhosts[0].extra["metadata"]["description"],
            "Default virtual host"
        );
        assert_eq!(d.permissions[0].configure, ".*");
        let q = &d.queues[0];
        assert_eq!(
            (q.name.as_str(), q.durable, q.auto_delete),
            ("store.t.q", true, false)
        );
        assert_eq!(q.queue_type.as_deref(), Some("classic"));
        let args = crate::store::fieldvalue::json_to_table(&q.arguments);
        assert_eq!(
            args.inner().get("x-max-length"),
            Some(&amq_protocol::types::AMQPValue::LongLongInt(1000))
        );
        let e = &d.exchanges[0];
        assert_eq!(
            (e.kind.as_str(), e.durable, e.internal),
            ("topic", true, false)
        );
        assert_eq!(d.bindings[0].destination_type, DestinationType::Exchange);
        assert_eq!(d.bindings[1].destination_type, DestinationType::Queue);
        assert_eq!(d.bindings[1].arguments, json!({"n": 3, "x-match": "all"}));
        assert_eq!(d.global_parameters.len(), 1);
        // Everything read is written back: parse(serialize(d)) == d.
        let again = parse(&serde_json::to_vec(&d).expect("serializes")).expect("reparses");
        assert_eq!(again, d);
    }

    #[test]
    fn old_style_tags_and_missing_keys() {
        let d = parse(
            br#"{"users":[{"name":"u","password_hash":"x","tags":"administrator, monitoring"}],
                          "exchanges":[{"name":"e","vhost":"/","type":"direct"}]}"#,
        )
        .expect("parses");
        assert_eq!(d.users[0].tags, vec!["administrator", "monitoring"]);
        assert_eq!(d.exchanges[0].arguments, json!({}));
        assert!(d.queues.is_empty());
        assert!(parse(br#"{"bindings":[{"source":"a","vhost":"/","destination":"b","destination_type":"topic"}]}"#).is_err());
    }

    #[test]
    fn save_load_round_trip() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("definitions.json");
        assert_eq!(
            load(&path).expect("missing file is fine"),
            Definitions::default()
        );
        let mut d = Definitions::default();
        d.vhosts.push(VhostDef {
            name: "/".into(),
            extra: Map::new(),
        });
        d.users.push(UserDef {
            name: "guest".into(),
            password_hash: "h".into(),
            hashing_algorithm: "rabbit_password_hashing_sha256".into(),
            tags: vec!["administrator".into()],
            limits: json!({}),
            extra: Map::new(),
        });
        d.queues.push(QueueDef::new(
            "/",
            "q1",
            true,
            false,
            json!({"x-max-length": 5}),
        ));
        d.exchanges.push(ExchangeDef {
            name: "e1".into(),
            vhost: "/".into(),
            kind: "fanout".into(),
            durable: true,
            auto_delete: false,
            internal: true,
            arguments: json!({}),
            extra: Map::new(),
        });
        d.bindings.push(BindingDef {
            source: "e1".into(),
            vhost: "/".into(),
            destination: "q1".into(),
            destination_type: DestinationType::Queue,
            routing_key: "".into(),
            arguments: json!({}),
            extra: Map::new(),
        });
        save(&path, &d).expect("save");
        assert_eq!(load(&path).expect("load"), d);
        d.queues.clear();
        save(&path, &d).expect("save over");
        assert_eq!(load(&path).expect("load"), d);
        assert!(!dir.join("definitions.json.tmp").exists());
        fs::write(&path, b"{ not json").expect("write");
        let err = load(&path).expect_err("bad file");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let _ = fs::remove_dir_all(&dir);
    }
}
