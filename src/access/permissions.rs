//! Who may do what where: each user's configure, write and read patterns per vhost, and
//! topic permissions (write and read patterns on routing keys) per user, vhost and
//! exchange, as RabbitMQ 3.10's internal authorisation backend keeps them.
//!
//! One `Permissions` table per broker, shared as `Arc`. Changed through the broker's API
//! (`grants`), read by connection.open (may this user enter this vhost?) and by every
//! channel through its `AccessCache` (`cache`), which holds the user's compiled grant
//! for its vhost and asks this table again only after a change (the generation moves).
//! Patterns are compiled here, once, when set; nothing here does I/O, and its lock is
//! held only to copy an `Arc` or to swap one in.

use super::pattern::{InvalidPattern, Pattern};
use crate::store::definitions::{Definitions, PermissionDef, TopicPermissionDef};
use serde_json::Map;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The three permissions RabbitMQ maps every AMQP operation to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permission {
    Configure,
    Write,
    Read,
}

/// What a regular permission applies to, named as RabbitMQ names it in its texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Queue,
    Exchange,
}

impl Resource {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Resource::Queue => "queue",
            Resource::Exchange => "exchange",
        }
    }
}

/// A user's permissions in one vhost, compiled.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) configure: Pattern,
    pub(crate) write: Pattern,
    pub(crate) read: Pattern,
}

impl Grant {
    fn new(configure: &str, write: &str, read: &str) -> Result<Grant, InvalidPattern> {
        Ok(Grant {
            configure: Pattern::compile(configure)?,
            write: Pattern::compile(write)?,
            read: Pattern::compile(read)?,
        })
    }

    pub(crate) fn allows(&self, permission: Permission, name: &str) -> bool {
        match permission {
            Permission::Configure => self.configure.matches(name),
            Permission::Write => self.write.matches(name),
            Permission::Read => self.read.matches(name),
        }
    }
}

/// A user's topic permission on one exchange: the patterns as set, and compiled with
/// `{username}` and `{vhost}` expanded (both are fixed for the entry).
#[derive(Clone, Debug)]
pub(crate) struct TopicGrant {
    write_source: String,
    read_source: String,
    write: Pattern,
    read: Pattern,
}

impl TopicGrant {
    /// Whether `key` may be published (write) or bound (read) on this exchange; the
    /// configure permission has no topic counterpart and is always allowed.
    pub(crate) fn allows(&self, permission: Permission, key: &str) -> bool {
        match permission {
            Permission::Write => self.write.matches(key),
            Permission::Read => self.read.matches(key),
            Permission::Configure => true,
        }
    }
}

/// A user's topic permissions in one vhost, by exchange. Replaced whole on a change, so
/// a channel holding the old one sees a consistent set.
pub(crate) type TopicGrants = BTreeMap<String, TopicGrant>;

/// One row of `list_permissions`, as rabbitmqctl lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionEntry {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// One row of `list_topic_permissions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPermissionEntry {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Default)]
struct Table {
    /// user -> vhost -> grant.
    grants: BTreeMap<String, BTreeMap<String, Arc<Grant>>>,
    /// user -> vhost -> exchange -> topic grant.
    topics: BTreeMap<String, BTreeMap<String, Arc<TopicGrants>>>,
}

#[derive(Debug, Default)]
pub struct Permissions {
    table: RwLock<Table>,
    /// Moves on every change; a channel whose cache saw an older value looks again.
    generation: AtomicU64,
}

impl Permissions {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        // A panic cannot leave the table half-changed: each change is one insert or
        // remove.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Bumped after the table changed (under its write lock, so a reader that sees the
    /// new generation also sees the change).
    fn changed(&self, _table: &mut Table) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Sets `user`'s permissions in `vhost`, replacing any; every pattern must compile.
    /// No check that the user or vhost exists (the broker's API does that): the default
    /// user's first grant and restored definitions come through here.
    pub fn grant(
        &self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), InvalidPattern> {
        let grant = Arc::new(Grant::new(configure, write, read)?);
        let mut t = self.write();
        t.grants
            .entry(user.to_owned())
            .or_default()
            .insert(vhost.to_owned(), grant);
        self.changed(&mut t);
        Ok(())
    }

    /// Removes `user`'s permissions in `vhost`; its topic permissions there stay, as in
    /// RabbitMQ (they are cleared on their own).
    pub fn revoke(&self, user: &str, vhost: &str) {
        let mut t = self.write();
        if let Some(by_vhost) = t.grants.get_mut(user) {
            by_vhost.remove(vhost);
            if by_vhost.is_empty() {
                t.grants.remove(user);
            }
        }
        self.changed(&mut t);
    }

    /// Checks both patterns before anything changes, as rabbitmqctl does.
    pub fn validate_topic(write: &str, read: &str) -> Result<(), InvalidPattern> {
        Pattern::compile(write)?;
        Pattern::compile(read)?;
        Ok(())
    }

    pub fn grant_topic(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<(), InvalidPattern> {
        Self::validate_topic(write, read)?;
        let grant = TopicGrant {
            write_source: write.to_owned(),
            read_source: read.to_owned(),
            write: Pattern::compile_expanded(write, user, vhost),
            read: Pattern::compile_expanded(read, user, vhost),
        };
        self.update_topics(user, vhost, |grants| {
            grants.insert(exchange.to_owned(), grant);
        });
        Ok(())
    }

    /// Removes `user`'s topic permission on `exchange` in `vhost`, or all of them there.
    pub fn revoke_topic(&self, user: &str, vhost: &str, exchange: Option<&str>) {
        self.update_topics(user, vhost, |grants| match exchange {
            Some(x) => {
                grants.remove(x);
            }
            None => grants.clear(),
        });
    }

    /// Copy, change, swap: channels holding the old map keep a consistent one.
    fn update_topics(&self, user: &str, vhost: &str, change: impl FnOnce(&mut TopicGrants)) {
        let mut t = self.write();
        let by_vhost = t.topics.entry(user.to_owned()).or_default();
        let mut grants: TopicGrants = by_vhost
            .get(vhost)
            .map(|old| (**old).clone())
            .unwrap_or_default();
        change(&mut grants);
        if grants.is_empty() {
            by_vhost.remove(vhost);
        } else {
            by_vhost.insert(vhost.to_owned(), Arc::new(grants));
        }
        if by_vhost.is_empty() {
            t.topics.remove(user);
        }
        self.changed(&mut t);
    }

    /// `user`'s grant in `vhost`, if it has one (then it may open connections there).
    pub(crate) fn grant_of(&self, user: &str, vhost: &str) -> Option<Arc<Grant>> {
        self.read().grants.get(user)?.get(vhost).cloned()
    }

    /// `user`'s topic permissions in `vhost`, if any.
    pub(crate) fn topics_of(&self, user: &str, vhost: &str) -> Option<Arc<TopicGrants>> {
        self.read().topics.get(user)?.get(vhost).cloned()
    }

    /// RabbitMQ's vhost access check at connection.open: any permissions there, even
    /// empty patterns, let the user in.
    pub fn may_enter(&self, user: &str, vhost: &str) -> bool {
        self.read()
            .grants
            .get(user)
            .is_some_and(|v| v.contains_key(vhost))
    }

    /// Every user's permissions, by user then vhost.
    pub fn list(&self) -> Vec<PermissionEntry> {
        let t = self.read();
        let mut out = Vec::new();
        for (user, by_vhost) in &t.grants {
            for (vhost, g) in by_vhost {
                out.push(PermissionEntry {
                    user: user.clone(),
                    vhost: vhost.clone(),
                    configure: g.configure.source().to_owned(),
                    write: g.write.source().to_owned(),
                    read: g.read.source().to_owned(),
                });
            }
        }
        out
    }

    pub fn list_topics(&self) -> Vec<TopicPermissionEntry> {
        let t = self.read();
        let mut out = Vec::new();
        for (user, by_vhost) in &t.topics {
            for (vhost, grants) in by_vhost {
                for (exchange, g) in grants.iter() {
                    out.push(TopicPermissionEntry {
                        user: user.clone(),
                        vhost: vhost.clone(),
                        exchange: exchange.clone(),
                        write: g.write_source.clone(),
                        read: g.read_source.clone(),
                    });
                }
            }
        }
        out
    }

    /// Forgets everything of a deleted user.
    pub fn forget_user(&self, user: &str) {
        let mut t = self.write();
        t.grants.remove(user);
        t.topics.remove(user);
        self.changed(&mut t);
    }

    /// Forgets everything in a deleted vhost.
    pub fn forget_vhost(&self, vhost: &str) {
        let mut t = self.write();
        for by_vhost in t.grants.values_mut() {
            by_vhost.remove(vhost);
        }
        t.grants.retain(|_, v| !v.is_empty());
        for by_vhost in t.topics.values_mut() {
            by_vhost.remove(vhost);
        }
        t.topics.retain(|_, v| !v.is_empty());
        self.changed(&mut t);
    }

    /// Loads the `permissions` and `topic_permissions` of a definitions file. An entry
    /// whose pattern does not compile is skipped with a warning (RabbitMQ would not have
    /// written it).
    pub(crate) fn restore(&self, defs: &Definitions) {
        for p in &defs.permissions {
            if let Err(e) = self.grant(&p.user, &p.vhost, &p.configure, &p.write, &p.read) {
                tracing::warn!(user = %p.user, vhost = %p.vhost, error = %e, "permissions not restored");
            }
        }
        for p in &defs.topic_permissions {
            if let Err(e) = self.grant_topic(&p.user, &p.vhost, &p.exchange, &p.write, &p.read) {
                tracing::warn!(user = %p.user, vhost = %p.vhost, exchange = %p.exchange, error = %e, "topic permissions not restored");
            }
        }
    }

    /// Writes the table into `defs` in RabbitMQ's export shape.
    pub(crate) fn export(&self, defs: &mut Definitions) {
        defs.permissions = self
            .list()
            .into_iter()
            .map(|e| PermissionDef {
                user: e.user,
                vhost: e.vhost,
                configure: e.configure,
                write: e.write,
                read: e.read,
                extra: Map::new(),
            })
            .collect();
        defs.topic_permissions = self
            .list_topics()
            .into_iter()
            .map(|e| TopicPermissionDef {
                user: e.user,
                vhost: e.vhost,
                exchange: e.exchange,
                write: e.write,
                read: e.read,
                extra: Map::new(),
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_revokes_and_lists() {
        let p = Permissions::default();
        let g0 = p.generation();
        p.grant("u", "/", ".*", "^w", "").unwrap();
        assert!(p.generation() > g0);
        assert!(p.may_enter("u", "/") && !p.may_enter("u", "v") && !p.may_enter("x", "/"));
        let g = p.grant_of("u", "/").unwrap();
        assert!(g.allows(Permission::Configure, "q"));
        assert!(g.allows(Permission::Write, "wq") && !g.allows(Permission::Write, "q"));
        assert!(!g.allows(Permission::Read, "q"));
        assert!(p.grant("u", "/", "(", ".*", ".*").is_err());
        assert_eq!(p.list()[0].write, "^w");
        p.revoke("u", "/");
        assert!(!p.may_enter("u", "/") && p.list().is_empty());
    }

    #[test]
    fn topic_grants_are_per_exchange_and_forgotten_with_user_or_vhost() {
        let p = Permissions::default();
        p.grant_topic("u", "v", "amq.topic", "^{username}-", "^{vhost}-")
            .unwrap();
        p.grant_topic("u", "v", "t2", "", "").unwrap();
        let t = p.topics_of("u", "v").unwrap();
        assert!(t["amq.topic"].allows(Permission::Write, "u-1"));
        assert!(!t["amq.topic"].allows(Permission::Write, "v-1"));
        assert!(t["amq.topic"].allows(Permission::Read, "v-1"));
        assert_eq!(p.list_topics().len(), 2);
        p.revoke_topic("u", "v", Some("t2"));
        assert_eq!(p.list_topics().len(), 1);
        assert_eq!(p.list_topics()[0].write, "^{username}-");
        p.grant("u", "v", ".*", ".*", ".*").unwrap();
        p.forget_vhost("v");
        assert!(p.list().is_empty() && p.list_topics().is_empty());
        p.grant("u", "v", ".*", ".*", ".*").unwrap();
        p.grant_topic("u", "v", "x", ".*", ".*").unwrap();
        p.forget_user("u");
        assert!(p.list().is_empty() && p.list_topics().is_empty());
    }
}
