//! The user store: every user with its password hash, tags and limits, as RabbitMQ's
//! internal user database holds them, and the in-process API that changes them (the
//! management HTTP API and a CLI call it; errors are rabbitmqctl's).
//!
//! Built by the broker at start from the definitions; read by the connection handshake
//! (`authenticate`, `admit`, `max_channels`) and by the definitions writer
//! (`definitions`); every change asks for a definitions write. The map sits behind one
//! std `RwLock`, held for memory work only: hashing a password happens before the lock
//! is taken, and closing a deleted user's connections after it is released.

use super::limits::{self, UserLimits};
use super::password::{self, Credential};
use super::permissions::Permissions;
use super::sessions::{Sessions, UserSlot};
use super::{LoginRefused, UserError};
use crate::broker::persist::Persistence;
use crate::broker::vhost::CloseSignal;
use crate::error::{Exception, ReplyCode};
use crate::store::definitions::{Definitions, UserDef};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// RabbitMQ's tag for the default user.
pub const ADMINISTRATOR: &str = "administrator";

#[derive(Debug)]
struct User {
    /// As the definitions file holds it (fields warren does not know included).
    def: UserDef,
    /// `def`'s hash, decoded.
    credential: Credential,
    /// `def`'s limits, as enforced.
    limits: UserLimits,
}

impl User {
    fn new(def: UserDef) -> User {
        let credential = Credential::decode(&def.password_hash, &def.hashing_algorithm);
        if credential == Credential::Unusable {
            tracing::warn!(
                user = def.name,
                algorithm = def.hashing_algorithm,
                "password hash cannot be checked (unknown algorithm or not base64); kept, but no password logs in"
            );
        }
        let limits = UserLimits::effective(&def.limits);
        User {
            def,
            credential,
            limits,
        }
    }

    /// Re-reads what `def` now says after a change to it.
    fn refresh(&mut self) {
        *self = User::new(std::mem::take(&mut self.def));
    }
}

/// A user as a new `UserDef`: RabbitMQ's default algorithm, no tags, no limits.
fn new_def(name: &str, password_hash: String, tags: Vec<String>) -> UserDef {
    UserDef {
        name: name.to_owned(),
        password_hash,
        hashing_algorithm: password::SHA256.to_owned(),
        tags,
        limits: Value::Object(Map::new()),
        extra: Map::new(),
    }
}

/// The stored hash for `password`: salted SHA-256, or empty for a passwordless user.
fn hash_of(password: Option<&str>) -> Result<String, UserError> {
    match password {
        None => Ok(String::new()),
        Some(p) => password::hash(p).ok_or(UserError::NoRandomness),
    }
}

/// Makes users read from a definitions file usable as RabbitMQ's import does: a
/// cleartext `password` (allowed in hand-written files) becomes a hash, and a missing
/// `hashing_algorithm` is MD5 for files from RabbitMQ before 3.6 and SHA-256 otherwise.
/// A cleartext password that a user in `existing` already has keeps that user's hash,
/// so importing the same file at every start does not rewrite it with a new salt.
pub fn normalize(defs: &mut Definitions, existing: &[UserDef]) -> Result<(), UserError> {
    let old = ["3.0.", "3.1.", "3.2.", "3.3.", "3.4.", "3.5."]
        .iter()
        .any(|v| defs.rabbit_version.starts_with(v));
    for user in &mut defs.users {
        if let Some(Value::String(cleartext)) = user.extra.remove("password") {
            let same = existing.iter().find(|e| {
                e.name == user.name
                    && Credential::decode(&e.password_hash, &e.hashing_algorithm)
                        .matches(&cleartext)
            });
            (user.password_hash, user.hashing_algorithm) = match same {
                Some(e) => (e.password_hash.clone(), e.hashing_algorithm.clone()),
                None => (hash_of(Some(&cleartext))?, password::SHA256.to_owned()),
            };
        }
        if user.hashing_algorithm.is_empty() {
            user.hashing_algorithm = if old { password::MD5 } else { password::SHA256 }.to_owned();
        }
    }
    Ok(())
}

#[derive(Debug)]
pub struct Users {
    users: RwLock<BTreeMap<String, User>>,
    /// RabbitMQ's `loopback_users`: these may log in from the local machine only.
    loopback: Vec<String>,
    sessions: Arc<Sessions>,
    /// Where changes are saved (none: in memory only).
    persist: Option<Arc<Persistence>>,
    /// A deleted user's permissions go with them.
    permissions: Arc<Permissions>,
}

impl Users {
    /// The store holding `users` (as read from definitions).
    pub fn new(
        users: &[UserDef],
        loopback: Vec<String>,
        persist: Option<Arc<Persistence>>,
        permissions: Arc<Permissions>,
    ) -> Users {
        let map = users
            .iter()
            .map(|d| (d.name.clone(), User::new(d.clone())))
            .collect();
        Users {
            users: RwLock::new(map),
            loopback,
            sessions: Arc::default(),
            persist,
            permissions,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, User>> {
        // Each change replaces whole entries: consistent even if a holder panicked.
        self.users.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, User>> {
        self.users.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A change was made: the definitions writer saves it soon.
    fn changed(&self) {
        if let Some(p) = &self.persist {
            p.definitions_changed();
        }
    }

    /// Changes user `name` with `f`, then saves; `NoSuchUser` if there is none.
    fn update(
        &self,
        name: &str,
        f: impl FnOnce(&mut UserDef) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        {
            let mut users = self.write();
            let user = users
                .get_mut(name)
                .ok_or_else(|| UserError::NoSuchUser(name.to_owned()))?;
            f(&mut user.def)?;
            user.refresh();
        }
        self.changed();
        Ok(())
    }

    // ---- the API (rabbitmqctl's user commands) ----

    /// `add_user`: a new user with `password`, or passwordless with `None` (it cannot
    /// log in with PLAIN or AMQPLAIN). No tags, no limits.
    pub fn add(&self, name: &str, password: Option<&str>) -> Result<(), UserError> {
        self.add_with_tags(name, password, Vec::new())
    }

    /// `add_user` and `set_user_tags` in one step (the default user is made so).
    pub fn add_with_tags(
        &self,
        name: &str,
        password: Option<&str>,
        tags: Vec<String>,
    ) -> Result<(), UserError> {
        if name.is_empty() {
            return Err(UserError::EmptyName);
        }
        let hash = hash_of(password)?;
        {
            let mut users = self.write();
            if users.contains_key(name) {
                return Err(UserError::AlreadyExists(name.to_owned()));
            }
            users.insert(name.to_owned(), User::new(new_def(name, hash, tags)));
        }
        self.changed();
        Ok(())
    }

    /// `delete_user`: the user goes, and their open connections are closed with
    /// 320 CONNECTION_FORCED, as RabbitMQ closes them.
    pub fn delete(&self, name: &str) -> Result<(), UserError> {
        if self.write().remove(name).is_none() {
            return Err(UserError::NoSuchUser(name.to_owned()));
        }
        // Their permissions and topic permissions on every vhost go too, as RabbitMQ's
        // delete_user does.
        self.permissions.forget_user(name);
        self.changed();
        let reason = Exception::new(
            ReplyCode::ConnectionForced,
            format!("user '{name}' is deleted"),
        );
        let closed = self.sessions.close_all(name, &reason);
        tracing::info!(user = name, closed, "user deleted");
        Ok(())
    }

    /// `change_password`: a new salted hash with RabbitMQ's default algorithm. Open
    /// connections stay, as in RabbitMQ.
    pub fn change_password(&self, name: &str, password: &str) -> Result<(), UserError> {
        let hash = hash_of(Some(password))?;
        self.update(name, |def| {
            def.password_hash = hash;
            def.hashing_algorithm = password::SHA256.to_owned();
            Ok(())
        })
    }

    /// `clear_password`: the user can no longer log in with a password.
    pub fn clear_password(&self, name: &str) -> Result<(), UserError> {
        self.update(name, |def| {
            def.password_hash.clear();
            Ok(())
        })
    }

    /// `set_user_tags`: replaces the tags, in the order given.
    pub fn set_tags(&self, name: &str, tags: Vec<String>) -> Result<(), UserError> {
        self.update(name, |def| {
            def.tags = tags;
            Ok(())
        })
    }

    /// The management API's `PUT /api/users/NAME`: creates the user, or replaces an
    /// existing user's stored hash, algorithm and tags (limits stay). The hash is made
    /// by the caller (before any lock). Returns whether the user is new.
    pub fn put(
        &self,
        name: &str,
        password_hash: String,
        hashing_algorithm: String,
        tags: Vec<String>,
    ) -> Result<bool, UserError> {
        if name.is_empty() {
            return Err(UserError::EmptyName);
        }
        let created = {
            let mut users = self.write();
            let mut def = match users.get(name) {
                Some(u) => u.def.clone(),
                None => new_def(name, String::new(), Vec::new()),
            };
            def.password_hash = password_hash;
            def.hashing_algorithm = hashing_algorithm;
            def.tags = tags;
            users.insert(name.to_owned(), User::new(def)).is_none()
        };
        self.changed();
        Ok(created)
    }

    /// A definitions import: each user is created or replaced whole (hash, tags and
    /// limits), as RabbitMQ's import does; the users' passwords are already hashed
    /// (`normalize`).
    pub fn import(&self, defs: &[UserDef]) {
        if defs.is_empty() {
            return;
        }
        {
            let mut users = self.write();
            for def in defs {
                users.insert(def.name.clone(), User::new(def.clone()));
            }
        }
        self.changed();
    }

    /// `list_users`, with everything the definitions file holds for each.
    pub fn list(&self) -> Vec<UserDef> {
        self.read().values().map(|u| u.def.clone()).collect()
    }

    /// One user, as `list` shows them.
    pub fn get(&self, name: &str) -> Option<UserDef> {
        self.read().get(name).map(|u| u.def.clone())
    }

    /// `set_user_limits`: merges `limits` (e.g. `{"max-connections": 1}`) into the
    /// user's. Connections already open stay, as in RabbitMQ.
    pub fn set_limits(&self, name: &str, update: &Value) -> Result<(), UserError> {
        self.update(name, |def| {
            let mut stored = limits::stored(&def.limits);
            limits::set(&mut stored, update)?;
            def.limits = Value::Object(stored);
            Ok(())
        })
    }

    /// `clear_user_limits`: one limit by name, or "all".
    pub fn clear_limits(&self, name: &str, limit: &str) -> Result<(), UserError> {
        self.update(name, |def| {
            let mut stored = limits::stored(&def.limits);
            limits::clear(&mut stored, limit);
            def.limits = Value::Object(stored);
            Ok(())
        })
    }

    /// `list_user_limits --user NAME`: the limits as stored.
    pub fn limits(&self, name: &str) -> Result<Map<String, Value>, UserError> {
        self.read()
            .get(name)
            .map(|u| limits::stored(&u.def.limits))
            .ok_or_else(|| UserError::NoSuchUser(name.to_owned()))
    }

    /// `list_user_limits`: every user that has limits, with them.
    pub fn all_limits(&self) -> Vec<(String, Map<String, Value>)> {
        self.read()
            .values()
            .map(|u| (u.def.name.clone(), limits::stored(&u.def.limits)))
            .filter(|(_, l)| !l.is_empty())
            .collect()
    }

    /// Connections `name` has open now.
    pub fn connection_count(&self, name: &str) -> usize {
        self.sessions.connections(name)
    }

    /// Channels `name` has open now, on all their connections.
    pub fn channel_count(&self, name: &str) -> u64 {
        self.sessions.channels(name)
    }

    // ---- login and enforcement ----

    /// PLAIN or AMQPLAIN credentials from `peer`: the password, then RabbitMQ's
    /// `loopback_users` rule (checked after the password, as RabbitMQ does).
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(), LoginRefused> {
        // The digest is computed after the lock is released.
        let credential = self.read().get(name).map(|u| u.credential.clone());
        if !credential.is_some_and(|c| c.matches(password)) {
            return Err(LoginRefused::BadCredentials);
        }
        if self.loopback.iter().any(|u| u == name) && !is_loopback(peer) {
            return Err(LoginRefused::LoopbackOnly);
        }
        Ok(())
    }

    /// SASL EXTERNAL: the TLS client certificate vouches for `name`, so no password;
    /// the user must exist (with or without a password, as RabbitMQ's internal
    /// backend), then the `loopback_users` rule.
    pub fn authenticate_external(&self, name: &str, peer: IpAddr) -> Result<(), LoginRefused> {
        if self.read().get(name).is_none() {
            return Err(LoginRefused::BadCredentials);
        }
        if self.loopback.iter().any(|u| u == name) && !is_loopback(peer) {
            return Err(LoginRefused::LoopbackOnly);
        }
        Ok(())
    }

    /// connection.open by `name` (after the vhost's own limit, as RabbitMQ orders
    /// them): a slot held until the connection ends, or 530 NOT_ALLOWED at the
    /// user's max-connections.
    pub fn admit(
        &self,
        name: &str,
        connection: u64,
        signal: &Arc<CloseSignal>,
    ) -> Result<UserSlot, Exception> {
        let max = self.read().get(name).and_then(|u| u.limits.max_connections);
        self.sessions.admit(name, connection, signal, max)
    }

    /// The user's max-channels, checked at every channel.open.
    pub fn max_channels(&self, name: &str) -> Option<u64> {
        self.read().get(name).and_then(|u| u.limits.max_channels)
    }

    /// Every user, for the definitions file.
    pub fn definitions(&self) -> Vec<UserDef> {
        self.list()
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> Users {
        Users::new(&[], vec!["guest".into()], None, Arc::default())
    }

    #[test]
    fn api_errors_are_rabbitmqctls() {
        let users = store();
        users.add("u", Some("pw")).expect("add");
        let err = |r: Result<(), UserError>| r.unwrap_err().to_string();
        assert_eq!(err(users.add("u", Some("x"))), r#"User "u" already exists"#);
        assert_eq!(
            err(users.add("", Some("x"))),
            "user cannot be an empty string"
        );
        assert_eq!(err(users.delete("nope")), r#"User "nope" does not exist"#);
        assert_eq!(
            err(users.change_password("nope", "x")),
            r#"User "nope" does not exist"#
        );
        assert_eq!(
            err(users.clear_password("nope")),
            r#"User "nope" does not exist"#
        );
        assert_eq!(
            err(users.set_tags("nope", vec![])),
            r#"User "nope" does not exist"#
        );
        assert_eq!(
            err(users.set_limits("nope", &json!({"max-connections": 1}))),
            r#"User "nope" does not exist"#
        );
        assert!(users.limits("nope").is_err());
    }

    #[test]
    fn passwords_change_and_clear() {
        let users = store();
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        users.add("u", Some("one")).expect("add");
        assert_eq!(users.authenticate("u", "one", here), Ok(()));
        users.change_password("u", "two").expect("change");
        assert_eq!(
            users.authenticate("u", "one", here),
            Err(LoginRefused::BadCredentials)
        );
        assert_eq!(users.authenticate("u", "two", here), Ok(()));
        users.clear_password("u").expect("clear");
        assert_eq!(users.get("u").map(|d| d.password_hash), Some(String::new()));
        assert_eq!(
            users.authenticate("u", "two", here),
            Err(LoginRefused::BadCredentials)
        );
        assert_eq!(
            users.authenticate("u", "", here),
            Err(LoginRefused::BadCredentials)
        );
        users.add("nopw", None).expect("passwordless");
        assert_eq!(
            users.authenticate("nopw", "", here),
            Err(LoginRefused::BadCredentials)
        );
        assert_eq!(
            users.authenticate("ghost", "x", here),
            Err(LoginRefused::BadCredentials)
        );
    }

    #[test]
    fn loopback_users_log_in_from_this_machine_only() {
        let users = store();
        users.add("guest", Some("guest")).expect("add");
        users.add("other", Some("pw")).expect("add");
        let remote: IpAddr = "192.0.2.7".parse().unwrap();
        for local in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(
                users.authenticate("guest", "guest", local.parse().unwrap()),
                Ok(())
            );
        }
        assert_eq!(
            users.authenticate("guest", "guest", remote),
            Err(LoginRefused::LoopbackOnly)
        );
        // A wrong password says so first.
        assert_eq!(
            users.authenticate("guest", "x", remote),
            Err(LoginRefused::BadCredentials)
        );
        assert_eq!(users.authenticate("other", "pw", remote), Ok(()));
    }

    #[test]
    fn tags_keep_their_order_and_limits_merge() {
        let users = store();
        users.add("u", Some("pw")).expect("add");
        let tags: Vec<String> = ["monitoring", "custom", "administrator"]
            .map(String::from)
            .into();
        users.set_tags("u", tags.clone()).expect("tags");
        users
            .set_limits("u", &json!({"max-channels": 0}))
            .expect("limit");
        users
            .set_limits("u", &json!({"max-connections": -1}))
            .expect("limit");
        let def = users.get("u").expect("user");
        assert_eq!(def.tags, tags);
        assert_eq!(
            def.limits,
            json!({"max-channels": 0, "max-connections": -1})
        );
        assert_eq!(users.max_channels("u"), Some(0));
        assert_eq!(users.all_limits().len(), 1);
        users.clear_limits("u", "all").expect("clear");
        assert_eq!(users.max_channels("u"), None);
        assert!(users.all_limits().is_empty());
    }

    #[test]
    fn imported_users_get_their_algorithm_and_cleartext_passwords_are_hashed() {
        let mut defs: Definitions = serde_json::from_value(json!({
            "rabbit_version": "3.5.7",
            "users": [
                {"name": "old", "password_hash": "AQIDBDgk9ci8Lfh6CKE9Y0AUfmU=", "tags": ""},
                {"name": "plain", "password": "secret", "tags": "management"}
            ]
        }))
        .expect("definitions");
        let imported = defs.clone();
        normalize(&mut defs, &[]).expect("normalize");
        assert_eq!(defs.users[0].hashing_algorithm, password::MD5);
        assert_eq!(defs.users[1].hashing_algorithm, password::SHA256);
        assert!(
            !defs.users[1].extra.contains_key("password"),
            "no cleartext kept"
        );
        let users = Users::new(&defs.users, vec![], None, Arc::default());
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(users.authenticate("old", "secret", here), Ok(()));
        assert_eq!(users.authenticate("plain", "secret", here), Ok(()));
        // Imported again: the cleartext password keeps the hash it got the first time.
        let mut again = imported;
        normalize(&mut again, &defs.users).expect("normalize");
        assert_eq!(again.users[1].password_hash, defs.users[1].password_hash);
        defs.rabbit_version = "3.10.8".into();
        defs.users[0].hashing_algorithm.clear();
        normalize(&mut defs, &[]).expect("normalize");
        assert_eq!(defs.users[0].hashing_algorithm, password::SHA256);
    }
}
