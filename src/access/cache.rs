//! A channel's permission cache: the one access check every channel handler calls, with
//! (resource kind, name, permission), and its topic counterpart.
//!
//! Owned by each channel (no lock), as RabbitMQ keeps a permission cache per channel
//! process. It holds the user's compiled grant and topic grants for the channel's vhost,
//! taken from the broker's `Permissions` table, and the last few names it allowed; the
//! publish path then costs one atomic load and one string comparison. When permissions
//! change, the table's generation moves and the next check reloads, so a change reaches
//! open connections at their next operation (RabbitMQ's cache also empties within a
//! second, when the channel goes idle). Only allowed answers are kept: a refusal is
//! looked at again each time.

use super::permissions::{Grant, Permission, Permissions, Resource, TopicGrants};
use crate::error::Exception;
use std::sync::Arc;

/// RabbitMQ's MAX_PERMISSION_CACHE_SIZE.
const CACHED: usize = 12;

/// Whose access is checked: the table, the connection's user and vhost.
#[derive(Clone, Copy)]
pub(crate) struct Who<'a> {
    pub(crate) permissions: &'a Permissions,
    pub(crate) user: &'a str,
    pub(crate) vhost: &'a str,
}

#[derive(Debug)]
pub(crate) struct AccessCache {
    /// The table's generation when `grant` and `topics` were taken; `u64::MAX`: never.
    generation: u64,
    grant: Option<Arc<Grant>>,
    topics: Option<Arc<TopicGrants>>,
    /// Recently allowed checks, newest last.
    allowed: Vec<(Resource, Permission, Box<str>)>,
    /// The exchange, as the client named it, of the last publish allowed without a topic
    /// check: the next publish to it costs one comparison and one atomic load.
    last_publish: Option<Vec<u8>>,
}

impl Default for AccessCache {
    fn default() -> Self {
        AccessCache {
            generation: u64::MAX,
            grant: None,
            topics: None,
            allowed: Vec::new(),
            last_publish: None,
        }
    }
}

/// The name RabbitMQ checks for the default exchange.
fn resource_name(resource: Resource, name: &str) -> &str {
    match (resource, name) {
        (Resource::Exchange, "") => "amq.default",
        _ => name,
    }
}

impl AccessCache {
    fn refresh(&mut self, who: &Who) {
        let generation = who.permissions.generation();
        if generation != self.generation {
            // Read after the generation: a change made meanwhile moves it again, and the
            // next check reloads.
            self.grant = who.permissions.grant_of(who.user, who.vhost);
            self.topics = who.permissions.topics_of(who.user, who.vhost);
            self.allowed.clear();
            self.last_publish = None;
            self.generation = generation;
        }
    }

    /// May the user do `permission` on the queue or exchange `name`? Refused with
    /// RabbitMQ's 403 text.
    pub(crate) fn check(
        &mut self,
        who: &Who,
        resource: Resource,
        name: &str,
        permission: Permission,
    ) -> Result<(), Exception> {
        self.refresh(who);
        let name = resource_name(resource, name);
        if self
            .allowed
            .iter()
            .rev()
            .any(|(r, p, n)| *r == resource && *p == permission && **n == *name)
        {
            return Ok(());
        }
        if !self
            .grant
            .as_ref()
            .is_some_and(|g| g.allows(permission, name))
        {
            return Err(Exception::access_refused(format!(
                "access to {} '{name}' in vhost '{}' refused for user '{}'",
                resource.name(),
                who.vhost,
                who.user
            )));
        }
        if self.allowed.len() == CACHED {
            self.allowed.remove(0);
        }
        self.allowed.push((resource, permission, name.into()));
        Ok(())
    }

    /// Whether a publish to `exchange` (the name as the client sent it) is allowed as the
    /// last one to it was, permissions unchanged since.
    pub(crate) fn publish_allowed(&self, permissions: &Permissions, exchange: &[u8]) -> bool {
        self.last_publish
            .as_deref()
            .is_some_and(|last| crate::codec::same_name(last, exchange))
            && self.generation == permissions.generation()
    }

    /// A publish to `exchange` (as sent; `canonical` is the name checked) was allowed:
    /// the next one to it skips the checks, unless its routing key is checked too.
    pub(crate) fn allowed_publish(&mut self, exchange: &[u8], canonical: &str) {
        if !self
            .topics
            .as_ref()
            .is_some_and(|t| t.contains_key(canonical))
        {
            let last = self.last_publish.get_or_insert_with(Vec::new);
            last.clear();
            last.extend_from_slice(exchange);
        }
    }

    /// Topic authorisation of `key` on `exchange`: allowed when the user has no topic
    /// permission for that exchange, or when the exchange is not a topic exchange
    /// (`is_topic` is asked only when a topic permission exists, so most checks never
    /// look the exchange up).
    pub(crate) fn check_topic(
        &mut self,
        who: &Who,
        exchange: &str,
        key: &str,
        permission: Permission,
        is_topic: impl FnOnce() -> bool,
    ) -> Result<(), Exception> {
        self.refresh(who);
        let Some(grant) = self.topics.as_ref().and_then(|t| t.get(exchange)) else {
            return Ok(());
        };
        if grant.allows(permission, key) || !is_topic() {
            return Ok(());
        }
        Err(Exception::access_refused(format!(
            "access to topic '{key}' in exchange '{exchange}' in vhost '{}' refused for user '{}'",
            who.vhost, who.user
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reaches_a_cache_that_allowed_before() {
        let p = Permissions::default();
        p.grant("u", "v", "^q", "", "").unwrap();
        let who = Who {
            permissions: &p,
            user: "u",
            vhost: "v",
        };
        let mut cache = AccessCache::default();
        assert!(cache
            .check(&who, Resource::Queue, "q1", Permission::Configure)
            .is_ok());
        let e = cache
            .check(&who, Resource::Exchange, "", Permission::Write)
            .unwrap_err();
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - access to exchange 'amq.default' in vhost 'v' refused for user 'u'"
        );
        p.grant("u", "v", "", "", "").unwrap();
        assert!(cache
            .check(&who, Resource::Queue, "q1", Permission::Configure)
            .is_err());
        p.revoke("u", "v");
        assert!(cache
            .check(&who, Resource::Queue, "q1", Permission::Configure)
            .is_err());
    }

    #[test]
    fn a_publish_is_remembered_until_permissions_change_unless_its_key_is_checked() {
        let p = Permissions::default();
        p.grant("u", "v", "", ".*", "").unwrap();
        p.grant_topic("u", "v", "t", ".*", ".*").unwrap();
        let who = Who {
            permissions: &p,
            user: "u",
            vhost: "v",
        };
        let mut cache = AccessCache::default();
        assert!(!cache.publish_allowed(&p, b"x"));
        cache
            .check(&who, Resource::Exchange, "x", Permission::Write)
            .unwrap();
        cache.allowed_publish(b"x", "x");
        assert!(cache.publish_allowed(&p, b"x") && !cache.publish_allowed(&p, b"y"));
        cache.allowed_publish(b"t", "t");
        assert!(
            cache.publish_allowed(&p, b"x"),
            "a topic exchange is not remembered"
        );
        p.grant("u", "v", "", "", "").unwrap();
        assert!(!cache.publish_allowed(&p, b"x"));
    }

    #[test]
    fn topic_checks_only_exchanges_with_a_topic_permission() {
        let p = Permissions::default();
        p.grant_topic("u", "v", "t", "^a", ".*").unwrap();
        let who = Who {
            permissions: &p,
            user: "u",
            vhost: "v",
        };
        let mut cache = AccessCache::default();
        let never = || -> bool { unreachable!("no topic permission on this exchange") };
        assert!(cache
            .check_topic(&who, "other", "b", Permission::Write, never)
            .is_ok());
        assert!(cache
            .check_topic(&who, "t", "a.b", Permission::Write, || true)
            .is_ok());
        assert!(cache
            .check_topic(&who, "t", "b", Permission::Write, || false)
            .is_ok());
        let e = cache
            .check_topic(&who, "t", "b", Permission::Write, || true)
            .unwrap_err();
        assert_eq!(
            e.text,
            "ACCESS_REFUSED - access to topic 'b' in exchange 't' in vhost 'v' refused for user 'u'"
        );
    }
}
