//! A vhost's metadata as RabbitMQ 3.10 keeps it: a description, tags and the default
//! queue type, shown by `list_vhosts` and exported as the vhost's `metadata` object in
//! the definitions file.
//!
//! Set by `Broker::add_vhost` (the runtime API) or read back from the definitions file at
//! start; read by the definitions writer's snapshot. Plain data behind the vhost's own
//! small lock; it never changes how the vhost routes (the default queue type is kept and
//! shown, not applied to declares).

use serde_json::{Map, Value};

/// Queue types RabbitMQ 3.10 accepts as a vhost's default.
const QUEUE_TYPES: [&str; 3] = ["classic", "quorum", "stream"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VhostMetadata {
    pub description: String,
    pub tags: Vec<String>,
    /// `classic`, `quorum` or `stream`; `None` is RabbitMQ's `undefined`.
    pub default_queue_type: Option<String>,
}

impl VhostMetadata {
    /// Refuses a default queue type RabbitMQ does not know, with its error.
    pub fn check(&self) -> Result<(), &'static str> {
        match &self.default_queue_type {
            Some(t) if !QUEUE_TYPES.contains(&t.as_str()) => Err("invalid_queue_type"),
            _ => Ok(()),
        }
    }

    /// From a definitions file's `metadata`. Tags may be an array or, as `rabbitmqctl
    /// add_vhost` without `--tags` leaves them, a comma-separated string.
    pub fn from_json(value: &Value) -> VhostMetadata {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let tags = match value.get("tags") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        VhostMetadata {
            description: text("description").unwrap_or_default(),
            tags,
            default_queue_type: text("default_queue_type"),
        }
    }

    /// The `metadata` object, as RabbitMQ 3.10.8 exports it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(t) = &self.default_queue_type {
            m.insert("default_queue_type".into(), t.as_str().into());
        }
        m.insert("description".into(), self.description.as_str().into());
        m.insert(
            "tags".into(),
            Value::Array(self.tags.iter().map(|t| t.as_str().into()).collect()),
        );
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_reads_and_writes_as_rabbitmq_exports_it() {
        let exported = json!({"default_queue_type": "classic", "description": "first one", "tags": ["a", "b"]});
        let m = VhostMetadata::from_json(&exported);
        assert_eq!(m.tags, ["a", "b"]);
        assert_eq!(m.to_json(), exported);
        // rabbitmqctl add_vhost without --tags exports tags as "".
        let bare = VhostMetadata::from_json(&json!({"description": "", "tags": ""}));
        assert_eq!(bare, VhostMetadata::default());
        assert_eq!(bare.to_json(), json!({"description": "", "tags": []}));
        let odd = VhostMetadata {
            default_queue_type: Some("foo".into()),
            ..VhostMetadata::default()
        };
        assert_eq!(odd.check(), Err("invalid_queue_type"));
    }
}
