//! A policy as given (an HTTP body, a definitions file entry) checked as RabbitMQ 3.10
//! checks it, into a `Policy`, or the refusal with RabbitMQ's texts.
//!
//! Called by the management API and by restore from the definitions file. Pure
//! functions. The texts print values as Erlang's `~p` does (`<<"a">>` for a string), as
//! the reference's messages show them; the HTML escaping the management API adds to
//! them is the API's business (`Invalid::reason`).

use super::{ApplyTo, Policy, PolicyKind};
use crate::access::pattern::Pattern;
use serde_json::{Map, Value};

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// A mandatory field is absent: RabbitMQ's `[{key_missing,pattern}]`.
    Missing(&'static str),
    /// The validation errors, one line each, in RabbitMQ's order.
    Failed(Vec<String>),
}

impl Invalid {
    /// The reason the management API gives; `escape` turns `<` and `>` into HTML
    /// entities, as RabbitMQ 3.10 does for policies (not for operator policies).
    pub fn reason(&self, escape: bool) -> String {
        match self {
            Invalid::Missing(key) => format!("[{{key_missing,{key}}}]"),
            Invalid::Failed(lines) => {
                let mut text = String::from("Validation failed\n\n");
                for line in lines {
                    text.push_str(line);
                    text.push('\n');
                }
                if escape {
                    text.replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                } else {
                    text
                }
            }
        }
    }
}

/// How a definition key's value is checked.
#[derive(Clone, Copy)]
enum Check {
    /// A string; else "<value> <text>".
    Text(&'static str),
    /// An integer at least this; else "<value> <text>".
    Int(i64, &'static str),
    /// One of these strings.
    OneOf(&'static [&'static str], &'static str),
    /// A key RabbitMQ 3.10 knows that has no effect in warren: accepted as it is.
    Any,
}

const NOT_VALID: &str = "is not a valid";

/// The keys of a policy definition RabbitMQ 3.10's core accepts, with its checks.
const POLICY_KEYS: [(&str, Check); 23] = [
    ("alternate-exchange", Check::Text("alternate exchange name")),
    (
        "dead-letter-exchange",
        Check::Text("dead letter exchange name"),
    ),
    (
        "dead-letter-routing-key",
        Check::Text("dead letter routing key"),
    ),
    ("dead-letter-strategy", Check::Any),
    ("delivery-limit", Check::Int(0, "delivery limit")),
    ("expires", Check::Int(1, "queue expiry")),
    ("ha-mode", Check::Any),
    ("ha-params", Check::Any),
    ("ha-promote-on-failure", Check::Any),
    ("ha-promote-on-shutdown", Check::Any),
    ("ha-sync-batch-size", Check::Any),
    ("ha-sync-mode", Check::Any),
    ("initial-cluster-size", Check::Any),
    ("max-age", Check::Any),
    (
        "max-in-memory-bytes",
        Check::Int(0, "maximum memory in bytes"),
    ),
    // RabbitMQ 3.10 words this one as the bytes one.
    (
        "max-in-memory-length",
        Check::Int(0, "maximum memory in bytes"),
    ),
    ("max-length", Check::Int(0, "maximum length")),
    ("max-length-bytes", Check::Int(0, "maximum length in bytes")),
    ("message-ttl", Check::Int(0, "message TTL")),
    (
        "overflow",
        Check::OneOf(
            &["drop-head", "reject-publish", "reject-publish-dlx"],
            "overflow value",
        ),
    ),
    ("queue-leader-locator", Check::Any),
    ("queue-master-locator", Check::Any),
    (
        "queue-mode",
        Check::OneOf(&["default", "lazy"], "queue-mode value"),
    ),
];

/// The keys an operator policy may set: limits only.
const OPERATOR_KEYS: [&str; 7] = [
    "delivery-limit",
    "expires",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
];

/// Checks a policy body (`pattern`, `definition`, optional `priority` and `apply-to`).
pub fn parse(kind: PolicyKind, name: &str, body: &Value) -> Result<Policy, Invalid> {
    let field = |key: &str| body.get(key).filter(|v| !v.is_null());
    let pattern = field("pattern").ok_or(Invalid::Missing("pattern"))?;
    let definition = field("definition").ok_or(Invalid::Missing("definition"))?;
    let mut errors = Vec::new();
    let definition = match definition {
        Value::Object(map) => {
            if let Some(e) = check_definition(kind, map) {
                errors.push(e);
            }
            map.clone()
        }
        other => {
            errors.push(format!("{} is not a valid policy definition", term(other)));
            Map::new()
        }
    };
    let apply_to = match field("apply-to") {
        None => Some(ApplyTo::All),
        Some(v) => {
            let text = v.as_str().map_or_else(|| term(v), str::to_owned);
            let parsed = ApplyTo::parse(&text);
            if parsed.is_none() {
                errors.push(format!(
                    "apply-to '{text}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                ));
            }
            parsed
        }
    };
    let source = match pattern {
        Value::String(s) => Some(s.clone()),
        other => {
            errors.push(format!(
                "pattern should be a binary but was {}",
                term(other)
            ));
            None
        }
    };
    // An empty pattern matches every name here (`re:run` with ""), unlike a permission's.
    let matcher = source.as_deref().and_then(|s| {
        let compiled = Pattern::compile(if s.is_empty() { ".*" } else { s });
        if compiled.is_err() {
            errors.push(format!(
                "pattern should be regular expression but is invalid: {}",
                term(pattern)
            ));
        }
        compiled.ok()
    });
    let priority = match field("priority") {
        None => Some(serde_json::Number::from(0)),
        Some(Value::Number(n)) => Some(n.clone()),
        Some(other) => {
            errors.push(format!(
                "priority should be a number, actually was {}",
                term(other)
            ));
            None
        }
    };
    match (source, matcher, apply_to, priority) {
        (Some(pattern), Some(matcher), Some(apply_to), Some(priority)) if errors.is_empty() => {
            Ok(Policy {
                name: name.to_owned(),
                pattern,
                matcher,
                apply_to,
                priority,
                definition,
            })
        }
        _ => Err(Invalid::Failed(errors)),
    }
}

/// The first problem of a definition: empty, unknown keys (all of them), then the
/// first key (in name order) whose value is refused.
fn check_definition(kind: PolicyKind, map: &Map<String, Value>) -> Option<String> {
    if map.is_empty() {
        return Some("no policy provided".to_owned());
    }
    let known = |key: &str| match kind {
        PolicyKind::Policy => POLICY_KEYS.iter().any(|(k, _)| *k == key),
        PolicyKind::Operator => OPERATOR_KEYS.contains(&key),
    };
    let unknown: Vec<String> = map
        .iter()
        .filter(|(k, _)| !known(k))
        .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", term(v)))
        .collect();
    if !unknown.is_empty() {
        return Some(format!(
            "[{}] are not recognised policy settings",
            unknown.join(",")
        ));
    }
    map.iter().find_map(|(key, value)| {
        let (_, check) = POLICY_KEYS.iter().find(|(k, _)| k == key)?;
        let refused = |what: &str| Some(format!("{} {NOT_VALID} {what}", term(value)));
        match *check {
            Check::Text(what) if !value.is_string() => refused(what),
            Check::Int(min, what) if value.as_i64().is_none_or(|n| n < min) => refused(what),
            Check::OneOf(allowed, what)
                if !value.as_str().is_some_and(|s| allowed.contains(&s)) =>
            {
                refused(what)
            }
            _ => None,
        }
    })
}

/// A JSON value as Erlang's `~p` prints what RabbitMQ decoded it into.
pub fn term(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("<<\"{}\">>", s.replace('\\', "\\\\").replace('"', "\\\"")),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(term).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("<<\"{k}\">> => {}", term(v)))
                .collect();
            format!("#{{{}}}", inner.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(kind: PolicyKind, body: Value) -> String {
        parse(kind, "p", &body)
            .map(|_| ())
            .expect_err("refused")
            .reason(false)
    }

    #[test]
    fn refusals_read_as_rabbitmqs() {
        let p = PolicyKind::Policy;
        let failed = |line: &str| format!("Validation failed\n\n{line}\n");
        assert_eq!(
            refusal(
                p,
                json!({"pattern": "^x", "definition": {"max-length": -1}})
            ),
            failed("-1 is not a valid maximum length")
        );
        assert_eq!(
            refusal(
                p,
                json!({"pattern": "^x", "definition": {"max-length": "a"}})
            ),
            failed("<<\"a\">> is not a valid maximum length")
        );
        assert_eq!(
            refusal(
                p,
                json!({"pattern": "^x", "definition": {"message-ttl": 1.5}})
            ),
            failed("1.5 is not a valid message TTL")
        );
        assert_eq!(
            refusal(p, json!({"pattern": "^x", "definition": {}})),
            failed("no policy provided")
        );
        assert_eq!(
            refusal(p, json!({"definition": {"max-length": 1}})),
            "[{key_missing,pattern}]"
        );
        assert_eq!(
            refusal(
                p,
                json!({"pattern": "^x", "definition": {"max-length": 1, "bad": 2, "alsobad": "x"}})
            ),
            failed(
                "[{<<\"alsobad\">>,<<\"x\">>},{<<\"bad\">>,2}] are not recognised policy settings"
            )
        );
        assert_eq!(
            refusal(
                PolicyKind::Operator,
                json!({"pattern": "^x", "definition": {"overflow": "drop-head"}})
            ),
            failed("[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings")
        );
        let many = parse(
            p,
            "p",
            &json!({"pattern": "(", "definition": {"foo": 1}, "priority": "a", "apply-to": "x"}),
        )
        .map(|_| ())
        .expect_err("refused");
        let Invalid::Failed(lines) = many else {
            panic!("not a validation failure")
        };
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("apply-to 'x' unrecognised"));
        assert!(lines[2].starts_with("pattern should be regular expression"));
        assert_eq!(
            lines[3],
            "priority should be a number, actually was <<\"a\">>"
        );
    }

    #[test]
    fn accepted_policies_keep_what_was_given() {
        let body = json!({"pattern": "", "definition": {"max-length": 1}, "priority": 1.5,
                          "apply-to": "queues"});
        let policy = parse(PolicyKind::Policy, "p", &body).expect("valid");
        assert_eq!(policy.apply_to, ApplyTo::Queues);
        assert!(policy.applies(super::super::Target::Queue, "anything"));
        assert!(!policy.applies(super::super::Target::Exchange, "anything"));
        assert_eq!(policy.to_json("/")["priority"], json!(1.5));
    }
}
