//! What a broker starts from: the data directory's definitions, a definitions file
//! imported at every start (`--definitions`, or the builder's JSON), or, on a first start
//! without one, RabbitMQ's default vhost and user (`--default-user`, `--default-pass`,
//! `--default-vhost`); then the users, vhosts and permissions an embedding application
//! named in the builder, which never stop the defaults from being created.
//!
//! Called once by `Broker::open`, before anything is restored: the result goes through
//! the usual restore paths. As RabbitMQ 3.10 (`maybe_insert_default_data`): the
//! defaults are seeded only when there are no users, permissions and vhosts yet and no
//! definitions file is configured; an imported file is merged into what the data
//! directory holds (see `store::import`). Reads the imported file; writes nothing.

use super::users::{self, ADMINISTRATOR};
use crate::config::Config;
use crate::store::definitions::{self, Definitions, PermissionDef, UserDef, VhostDef};
use crate::store::import;
use serde_json::{json, Map, Value};
use std::io;
use std::path::PathBuf;

/// How users and vhosts come to be at start; from the `Config`.
#[derive(Clone, Debug)]
pub struct Bootstrap {
    pub default_user: String,
    pub default_pass: String,
    pub default_vhost: String,
    /// A RabbitMQ definitions file imported at every start.
    pub definitions: Option<PathBuf>,
    /// Definitions JSON given in code (the builder), imported as the file is (after it).
    pub definitions_json: Option<Vec<u8>>,
    /// Users, vhosts and permissions given in code (the builder): merged last, over
    /// whatever else the broker starts from.
    pub extra: Option<Definitions>,
    /// RabbitMQ's `loopback_users`.
    pub loopback_users: Vec<String>,
    /// `--event-exchange`: `amq.rabbitmq.event` in the default vhost (see `events`).
    pub event_exchange: bool,
    /// The clock the broker reads for everything time-based (`--clock`).
    pub clock: crate::clock::Clock,
    /// On a cluster node: the Raft log its quorum queues go through (from the first
    /// queue restored on).
    pub replica: Option<std::sync::Arc<dyn crate::broker::replica::Replica>>,
}

impl Default for Bootstrap {
    /// RabbitMQ's defaults: guest/guest on "/", guest from loopback only.
    fn default() -> Self {
        Bootstrap {
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_vhost: "/".into(),
            definitions: None,
            definitions_json: None,
            extra: None,
            loopback_users: vec!["guest".into()],
            event_exchange: false,
            clock: crate::clock::Clock::real(),
            replica: None,
        }
    }
}

impl Bootstrap {
    pub fn from_config(config: &Config) -> Bootstrap {
        let d = Bootstrap::default();
        Bootstrap {
            default_user: config.default_user.clone().unwrap_or(d.default_user),
            default_pass: config.default_pass.clone().unwrap_or(d.default_pass),
            default_vhost: config.default_vhost.clone().unwrap_or(d.default_vhost),
            definitions: config.definitions.clone(),
            definitions_json: None,
            extra: None,
            loopback_users: crate::config::loopback_users(&config.loopback_users),
            event_exchange: config.event_exchange,
            clock: config.clock.clone(),
            replica: None,
        }
    }

    /// The definitions to restore from, given those the data directory holds.
    pub fn prepare(&self, mut defs: Definitions) -> io::Result<Definitions> {
        let mut imported = false;
        if let Some(path) = &self.definitions {
            // Unlike the data directory's file, this one was asked for: a missing file
            // is an error, not an empty start.
            let text = std::fs::read(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("definitions file {}: {e}", path.display()),
                )
            })?;
            let what = format!("definitions file {}", path.display());
            import_text(&mut defs, &text, &what)?;
            imported = true;
        }
        if let Some(text) = &self.definitions_json {
            import_text(&mut defs, text, "definitions")?;
            imported = true;
        }
        if !imported && needs_default_data(&defs) {
            self.seed(&mut defs)?;
        }
        if let Some(extra) = &self.extra {
            let mut extra = extra.clone();
            users::normalize(&mut extra, &defs.users).map_err(io::Error::other)?;
            import::merge(&mut defs, extra);
        }
        Ok(defs)
    }

    /// RabbitMQ's default data: the default vhost, the default user (administrator)
    /// and that user's full permissions on that vhost.
    fn seed(&self, defs: &mut Definitions) -> io::Result<()> {
        let hash = super::password::hash(&self.default_pass)
            .ok_or_else(|| io::Error::other(super::UserError::NoRandomness))?;
        tracing::info!(
            user = self.default_user,
            vhost = self.default_vhost,
            "first start: creating the default vhost and user"
        );
        let mut vhost = Map::new();
        vhost.insert("limits".into(), json!([]));
        vhost.insert(
            "metadata".into(),
            json!({"description": "Default virtual host", "tags": []}),
        );
        defs.vhosts.push(VhostDef {
            name: self.default_vhost.clone(),
            extra: vhost,
        });
        defs.users.push(UserDef {
            name: self.default_user.clone(),
            password_hash: hash,
            hashing_algorithm: super::password::SHA256.into(),
            tags: vec![ADMINISTRATOR.into()],
            limits: Value::Object(Map::new()),
            extra: Map::new(),
        });
        // access: grant default user .* .* .* on the default vhost (here as data: the
        // permissions restore reads it from the definitions like any other).
        defs.permissions.push(PermissionDef {
            user: self.default_user.clone(),
            vhost: self.default_vhost.clone(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
            extra: Map::new(),
        });
        Ok(())
    }
}

/// Merges the definitions JSON `text` into `defs`, as RabbitMQ imports a file; `what`
/// names it in errors and in the log.
fn import_text(defs: &mut Definitions, text: &[u8], what: &str) -> io::Result<()> {
    let mut file = definitions::parse(text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")))?;
    users::normalize(&mut file, &defs.users).map_err(io::Error::other)?;
    tracing::info!(
        what,
        users = file.users.len(),
        vhosts = file.vhosts.len(),
        queues = file.queues.len(),
        "importing definitions"
    );
    import::merge(defs, file);
    Ok(())
}

/// RabbitMQ's `needs_default_data`: no users, permissions or vhosts at all (a new data
/// directory; an existing one always has its vhosts).
fn needs_default_data(defs: &Definitions) -> bool {
    defs.users.is_empty() && defs.permissions.is_empty() && defs.vhosts.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_seeded_on_an_empty_start_only() {
        let b = Bootstrap {
            default_user: "admin".into(),
            default_pass: "s3cret".into(),
            default_vhost: "app".into(),
            ..Bootstrap::default()
        };
        let defs = b.prepare(Definitions::default()).expect("prepare");
        assert_eq!(defs.vhosts[0].name, "app");
        assert_eq!(defs.users[0].name, "admin");
        assert_eq!(defs.users[0].tags, [ADMINISTRATOR]);
        assert!(super::super::password::Credential::decode(
            &defs.users[0].password_hash,
            &defs.users[0].hashing_algorithm
        )
        .matches("s3cret"));
        assert_eq!(
            (
                defs.permissions[0].user.as_str(),
                defs.permissions[0].vhost.as_str()
            ),
            ("admin", "app")
        );
        // A data directory with something in it is left as it is.
        let again = b.prepare(defs.clone()).expect("prepare");
        assert_eq!(again, defs);
    }

    #[test]
    fn a_configured_file_suppresses_the_defaults_and_must_exist() {
        let dir = std::env::temp_dir().join(format!("warren-bootstrap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("defs.json");
        std::fs::write(&path, br#"{"vhosts": [{"name": "v"}]}"#).expect("write");
        let b = Bootstrap {
            definitions: Some(path.clone()),
            ..Bootstrap::default()
        };
        let defs = b.prepare(Definitions::default()).expect("prepare");
        assert!(
            defs.users.is_empty(),
            "no default user when a file is imported"
        );
        assert_eq!(defs.vhosts.len(), 1);
        std::fs::remove_file(&path).expect("remove");
        let err = b.prepare(Definitions::default()).unwrap_err();
        assert!(err.to_string().contains("defs.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
