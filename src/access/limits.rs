//! A user's limits, as RabbitMQ's user limits: `max-connections` and `max-channels`,
//! kept in the user's `limits` object in the definitions file.
//!
//! Used by the user store: `set` and `clear` change the stored object with
//! rabbitmqctl's checks and messages, `effective` reads what the connection checks
//! enforce. RabbitMQ keeps what it was given (a negative value stays negative in the
//! export) and treats a negative value as no limit and 0 as "none at all"; so does this.
//! Never touches connections: enforcement is in `sessions`.

use super::UserError;
use serde_json::{Map, Value};

pub const MAX_CONNECTIONS: &str = "max-connections";
pub const MAX_CHANNELS: &str = "max-channels";

/// The limits a user's connections are held to; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserLimits {
    pub max_connections: Option<u64>,
    pub max_channels: Option<u64>,
}

impl UserLimits {
    /// What `limits` (a user's stored object) enforces: integers of 0 or more; anything
    /// else (absent, negative, not an integer) is no limit.
    pub fn effective(limits: &Value) -> UserLimits {
        let limit = |key: &str| {
            limits
                .get(key)
                .and_then(Value::as_i64)
                .map(u64::try_from)?
                .ok()
        };
        UserLimits {
            max_connections: limit(MAX_CONNECTIONS),
            max_channels: limit(MAX_CHANNELS),
        }
    }
}

/// `rabbitmqctl set_user_limits`: merges `update` (a JSON object of known limits with
/// integer values) into `limits`, or says why not, as rabbitmqctl does.
pub fn set(limits: &mut Map<String, Value>, update: &Value) -> Result<(), UserError> {
    let Value::Object(update) = update else {
        return Err(UserError::InvalidLimits(format!(
            "Unrecognised terms {update} in user-limits"
        )));
    };
    let unknown: Vec<String> = update
        .iter()
        .filter(|(k, _)| k.as_str() != MAX_CONNECTIONS && k.as_str() != MAX_CHANNELS)
        .map(|(k, v)| format!("{{{k},{v}}}"))
        .collect();
    if !unknown.is_empty() {
        return Err(UserError::InvalidLimits(format!(
            "Unrecognised terms [{}] in user-limits",
            unknown.join(",")
        )));
    }
    for (key, value) in update {
        if value.as_i64().is_none() {
            return Err(UserError::InvalidLimits(format!(
                "{key} should be a number, actually was {value}"
            )));
        }
    }
    for (key, value) in update {
        limits.insert(key.clone(), value.clone());
    }
    Ok(())
}

/// `rabbitmqctl clear_user_limits USER NAME`: removes one limit, or every limit for
/// "all". Clearing a limit that is not set is not an error (as in RabbitMQ).
pub fn clear(limits: &mut Map<String, Value>, name: &str) {
    if name == "all" {
        limits.clear();
    } else {
        limits.remove(name);
    }
}

/// The stored limits as an object to change (a file may hold something else there).
pub fn stored(limits: &Value) -> Map<String, Value> {
    limits.as_object().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negative_is_no_limit_and_zero_is_a_limit() {
        let l = UserLimits::effective(&json!({"max-connections": -5, "max-channels": 0}));
        assert_eq!(l.max_connections, None);
        assert_eq!(l.max_channels, Some(0));
        assert_eq!(UserLimits::effective(&json!({})), UserLimits::default());
        assert_eq!(UserLimits::effective(&json!([])), UserLimits::default());
    }

    /// As rabbitmqctl set_user_limits / clear_user_limits answered on RabbitMQ 3.10.8.
    #[test]
    fn set_merges_and_clear_removes_with_rabbitmqctl_checks() {
        let mut limits = Map::new();
        set(&mut limits, &json!({"max-channels": 2})).expect("set");
        set(&mut limits, &json!({"max-connections": -5})).expect("merged");
        assert_eq!(
            Value::Object(limits.clone()),
            json!({"max-channels": 2, "max-connections": -5})
        );
        let err = |update: Value| set(&mut Map::new(), &update).unwrap_err().to_string();
        assert_eq!(
            err(json!({"max-connections": "x"})),
            r#"max-connections should be a number, actually was "x""#
        );
        assert_eq!(
            err(json!({"max-connections": 1.5})),
            "max-connections should be a number, actually was 1.5"
        );
        assert_eq!(
            err(json!({"max-foo": 1})),
            "Unrecognised terms [{max-foo,1}] in user-limits"
        );
        assert_eq!(err(json!([1])), "Unrecognised terms [1] in user-limits");
        clear(&mut limits, "max-foo");
        clear(&mut limits, MAX_CHANNELS);
        assert_eq!(
            Value::Object(limits.clone()),
            json!({"max-connections": -5})
        );
        clear(&mut limits, "all");
        assert!(limits.is_empty());
    }
}
