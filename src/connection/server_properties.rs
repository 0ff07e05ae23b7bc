//! What connection.start advertises about the server (`server_properties`): warren's
//! product, version and platform by default, or what the operator configured, as
//! RabbitMQ's `server_properties` setting allows (some client test suites only run, or
//! only pass, when `product` is "RabbitMQ").
//!
//! Built once from the command line (`--server-product`, `--server-version`,
//! `--server-platform`, `--server-property KEY=VALUE`), kept on the broker and turned
//! into a field table at every connection.start. Never holds the capabilities: those say
//! what warren does, and are not the operator's to change.

use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};

/// Most extra properties (`--server-property`) accepted.
pub const MAX_EXTRA: usize = 16;
/// Longest key (a field table key is a short string) and value accepted.
pub const MAX_KEY: usize = 128;
pub const MAX_VALUE: usize = 1024;
/// connection.start goes out before tune, so it must fit RabbitMQ's smallest frame
/// (4096 bytes) with the capabilities and mechanisms beside it: the configurable part
/// is kept under this many bytes on the wire.
pub const MAX_TOTAL: usize = 3072;

/// The advertised properties, in order; `cluster_name` is added at each start from the
/// cluster name parameter unless one is configured here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerProperties {
    entries: Vec<(String, String)>,
}

impl Default for ServerProperties {
    fn default() -> Self {
        let entries = [
            ("copyright", "Copyright (c) the warren authors"),
            ("information", "Licensed under the Apache License 2.0"),
            ("platform", "Rust"),
            ("product", "warren"),
            ("version", env!("CARGO_PKG_VERSION")),
        ];
        ServerProperties {
            entries: entries
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl ServerProperties {
    /// warren's defaults with `product`, `version` and `platform` replaced where given,
    /// then each `KEY=VALUE` of `extra` set (replacing a default of the same key).
    pub fn configured(
        product: Option<&str>,
        version: Option<&str>,
        platform: Option<&str>,
        extra: &[String],
    ) -> Result<Self, String> {
        let mut props = ServerProperties::default();
        for (key, value) in [
            ("product", product),
            ("version", version),
            ("platform", platform),
        ] {
            if let Some(value) = value {
                props.set(key, value)?;
            }
        }
        if extra.len() > MAX_EXTRA {
            return Err(format!(
                "at most {MAX_EXTRA} --server-property values, got {}",
                extra.len()
            ));
        }
        for item in extra {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("--server-property '{item}' is not KEY=VALUE"))?;
            props.set(key.trim(), value)?;
        }
        let size: usize = props
            .entries
            .iter()
            .map(|(k, v)| 1 + k.len() + 5 + v.len())
            .sum();
        if size > MAX_TOTAL {
            return Err(format!(
                "server properties take {size} bytes; connection.start must fit \
                 the smallest frame, so they may take at most {MAX_TOTAL}"
            ));
        }
        Ok(props)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(format!(
                "server property name '{key}' must be 1 to {MAX_KEY} bytes"
            ));
        }
        if key == "capabilities" {
            return Err("the capabilities server property is not configurable".into());
        }
        if value.len() > MAX_VALUE {
            return Err(format!(
                "server property '{key}' is longer than {MAX_VALUE} bytes"
            ));
        }
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_owned(),
            None => self.entries.push((key.to_owned(), value.to_owned())),
        }
        Ok(())
    }

    /// The advertised value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The field table for connection.start: these properties, `cluster_name` (unless
    /// configured) and the capabilities.
    pub fn table(&self, cluster_name: &str, capabilities: FieldTable) -> FieldTable {
        let mut table = FieldTable::default();
        table.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
        if self.get("cluster_name").is_none() {
            table.insert("cluster_name".into(), text(cluster_name));
        }
        for (key, value) in &self.entries {
            table.insert(ShortString::from(key.as_str()), text(value));
        }
        table
    }
}

fn text(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_warrens_and_flags_replace_them() {
        let d = ServerProperties::default();
        assert_eq!(d.get("product"), Some("warren"));
        let p = ServerProperties::configured(
            Some("RabbitMQ"),
            Some("3.10.8"),
            None,
            &["information=hello=world".into(), "cluster_name=c1".into()],
        )
        .expect("valid");
        assert_eq!(p.get("product"), Some("RabbitMQ"));
        assert_eq!(p.get("version"), Some("3.10.8"));
        assert_eq!(p.get("platform"), Some("Rust"));
        assert_eq!(p.get("information"), Some("hello=world"));
        let table = p.table("ignored", FieldTable::default());
        assert_eq!(
            table.inner().get("cluster_name"),
            Some(&text("c1")),
            "a configured cluster_name wins over the parameter"
        );
    }

    #[test]
    fn bad_and_oversized_properties_are_refused() {
        let extra = |items: &[&str]| {
            let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            ServerProperties::configured(None, None, None, &items)
        };
        assert!(extra(&["no-equals-sign"]).is_err());
        assert!(extra(&["=value"]).is_err());
        assert!(extra(&["capabilities=x"]).is_err());
        assert!(extra(&[&format!("{}=v", "k".repeat(MAX_KEY + 1))]).is_err());
        assert!(extra(&[&format!("k={}", "v".repeat(MAX_VALUE + 1))]).is_err());
        let many: Vec<String> = (0..=MAX_EXTRA).map(|i| format!("k{i}=v")).collect();
        assert!(ServerProperties::configured(None, None, None, &many).is_err());
        let big: Vec<String> = (0..4)
            .map(|i| format!("k{i}={}", "v".repeat(MAX_VALUE)))
            .collect();
        assert!(ServerProperties::configured(None, None, None, &big).is_err());
        assert!(extra(&[&format!("k={}", "v".repeat(MAX_VALUE))]).is_ok());
    }
}
