//! `Builder`: a broker's settings with a test's defaults (127.0.0.1, a free port, in
//! memory, management off, the real clock, no logging), the users, vhosts, permissions
//! and definitions it starts with, and `start`.
//!
//! Called by applications; it fills a `Config` and an `access::Bootstrap` and hands them
//! to `server::start_with`, so a built broker is the same broker the binary runs. It
//! checks what the caller gave before anything is opened; it never touches a global
//! except the tracing subscriber, and that only when asked for a log level and none is set.

use crate::access::pattern::Pattern;
use crate::access::Bootstrap;
use crate::clock::Clock;
use crate::config::{Config, ListenerPort, IN_MEMORY_DATA_DIR};
use crate::server::Server;
use crate::store::definitions::{Definitions, PermissionDef, UserDef, VhostDef};
use serde_json::{Map, Value};
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Starts a broker in this process, on the caller's tokio runtime.
///
/// The defaults are what a test wants: listen on 127.0.0.1 on a free port, keep
/// everything in memory, no management listener, the real clock, no log output, and
/// RabbitMQ's first-start defaults (user `guest`/`guest`, administrator, full
/// permissions on vhost `/`). Each setting has a method; [`Builder::config`] reaches
/// every other [`Config`] field.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let broker = warren::Server::builder()
///     .user("app", "secret", &["management"])
///     .permissions("app", "/", ".*", ".*", ".*")
///     .clock(warren::Clock::manual())
///     .start()
///     .await?;
/// assert!(broker.amqp_url().starts_with("amqp://app:secret@127.0.0.1:"));
/// broker.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct Builder {
    config: Config,
    /// Definitions JSON given in code, imported at start as a definitions file is.
    definitions: Option<Vec<u8>>,
    /// Users, vhosts and permissions named here, merged over everything else.
    extra: Definitions,
    /// The first user named here and its password, for the AMQP URL.
    first_user: Option<(String, String)>,
    /// A log filter to install, when no subscriber is set.
    log: Option<String>,
    /// `bind` was called: its addresses replace the default.
    bound: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Server {
    /// A [`Builder`] with a test's defaults; `.start().await` starts the broker.
    pub fn builder() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// A builder with a test's defaults (see [`Builder`]).
    pub fn new() -> Builder {
        let mut config = Config::local(IN_MEMORY_DATA_DIR);
        config.in_memory = true;
        Builder {
            config,
            definitions: None,
            extra: Definitions::default(),
            first_user: None,
            log: None,
            bound: false,
        }
    }

    /// The AMQP port; 0 (the default) picks a free one ([`Server::local_addr`] says which).
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// The address every listener binds (default 127.0.0.1); call again to add another.
    /// The first call replaces the default.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        if !self.bound {
            self.config.bind.clear();
            self.bound = true;
        }
        self.config.bind.push(ip);
        self
    }

    /// Keep durable state in `dir` (created if missing) instead of in memory: durable
    /// queues and persistent messages survive a restart on the same directory.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = dir.into();
        self.config.in_memory = false;
        self
    }

    /// Keep everything in memory and touch no file (the default): durable things live
    /// until the broker stops.
    pub fn in_memory(mut self) -> Self {
        self.config.in_memory = true;
        self.config.data_dir = IN_MEMORY_DATA_DIR.into();
        self
    }

    /// The memory budget for queued messages (`--queue-memory`): past it, queues page
    /// their tails to the data directory; in memory, publishers are blocked there
    /// instead (connection.blocked) until consumers catch up.
    pub fn queue_memory(mut self, bytes: u64) -> Self {
        self.config.queue_memory = bytes;
        self
    }

    /// The memory high watermark (`--memory-limit`): above it, publishers are blocked.
    /// Default: 40% of the machine's memory, for each broker.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.config.memory_limit = Some(bytes);
        self
    }

    /// Creates a user with this password and these tags (e.g. `administrator`,
    /// `management`), or sets them if it exists. It gets no permissions by itself: see
    /// [`Builder::permissions`]. The first user named here is the one
    /// [`Server::amqp_url`] logs in as. The default `guest` is created as well, unless
    /// definitions are loaded (RabbitMQ creates no default user then).
    pub fn user(mut self, name: &str, password: &str, tags: &[&str]) -> Self {
        let mut extra = Map::new();
        extra.insert("password".into(), Value::String(password.to_owned()));
        self.extra.users.push(UserDef {
            name: name.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            limits: Value::Object(Map::new()),
            extra,
            ..UserDef::default()
        });
        if self.first_user.is_none() {
            self.first_user = Some((name.to_owned(), password.to_owned()));
        }
        self
    }

    /// Creates a vhost (nothing happens if it exists).
    pub fn vhost(mut self, name: &str) -> Self {
        self.extra.vhosts.push(VhostDef {
            name: name.to_owned(),
            extra: Map::new(),
        });
        self
    }

    /// Grants `user` these configure, write and read patterns (RabbitMQ's regular
    /// expressions; `.*` is everything) in `vhost`. Both must exist at start: made here,
    /// by the defaults, or by loaded definitions.
    pub fn permissions(
        mut self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Self {
        self.extra.permissions.push(PermissionDef {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            configure: configure.to_owned(),
            write: write.to_owned(),
            read: read.to_owned(),
            extra: Map::new(),
        });
        self
    }

    /// Imports a RabbitMQ definitions file at start (as `--definitions`: users, vhosts,
    /// permissions, queues, exchanges, bindings, policies, parameters). No default user
    /// or vhost is created then.
    pub fn definitions_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.definitions = Some(path.into());
        self
    }

    /// Imports definitions given as JSON text, as [`Builder::definitions_file`] does
    /// (after that file, when both are given). Malformed JSON fails `start`.
    pub fn definitions_json(mut self, json: impl Into<String>) -> Self {
        self.definitions = Some(json.into().into_bytes());
        self
    }

    /// Imports definitions given as a JSON value, as [`Builder::definitions_json`] does.
    pub fn definitions(self, definitions: &Value) -> Self {
        self.definitions_json(definitions.to_string())
    }

    /// The clock the broker reads for everything time-based: [`Clock::manual`] for a
    /// test that moves time itself ([`Server::clock`] hands it back). Default: real.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.config.clock = clock;
        self
    }

    /// Logs at this level or filter (`warn`, `info`, `debug`, or e.g. `warren=debug`)
    /// through a subscriber that writes where `cargo test` captures output, installed
    /// only if the process has no tracing subscriber yet: an application's own
    /// subscriber always wins, and the first broker to install one sets the level for
    /// the whole process. Default: none installed, so nothing is printed. An invalid
    /// filter fails `start`.
    pub fn log(mut self, filter: &str) -> Self {
        self.log = Some(filter.to_owned());
        self
    }

    /// Turns the management HTTP API on, on a free port (`true`), or off (`false`, the
    /// default). [`Server::management_url`] gives its URL.
    pub fn management(mut self, on: bool) -> Self {
        self.config.management_port = if on {
            ListenerPort::On(0)
        } else {
            ListenerPort::Off
        };
        self
    }

    /// Turns the management HTTP API on, on this port (0: a free one).
    pub fn management_port(mut self, port: u16) -> Self {
        self.config.management_port = ListenerPort::On(port);
        self
    }

    /// Turns the event exchange (`amq.rabbitmq.event`) on or off (default off).
    pub fn event_exchange(mut self, on: bool) -> Self {
        self.config.event_exchange = on;
        self
    }

    /// A server property connection.start advertises (e.g. `product`, `cluster_name`),
    /// replacing a default of the same name.
    pub fn server_property(mut self, key: &str, value: &str) -> Self {
        let entry = format!("{key}={value}");
        self.config.server_properties.push(entry);
        self
    }

    /// How often the management statistics are sampled for rates (default 5 s, at
    /// least 10 ms). Counters ([`Server::counters`]) do not wait for it.
    pub fn stats_interval(mut self, every: Duration) -> Self {
        self.config.stats_interval = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Any other setting: `adjust` receives the configuration built so far and returns
    /// the one to start with (TLS, limits, authentication mechanisms...).
    ///
    /// ```
    /// let builder = warren::Server::builder().config(|c| warren::Config {
    ///     max_connections: Some(10),
    ///     ..c
    /// });
    /// ```
    pub fn config(mut self, adjust: impl FnOnce(Config) -> Config) -> Self {
        self.config = adjust(self.config);
        self
    }

    /// Starts the broker on the current tokio runtime; returns once it accepts
    /// connections. Fails, before anything is opened, on an invalid setting (a
    /// permission pattern that does not compile, malformed definitions, an unknown log
    /// filter), and on a port in use or a data directory that cannot be opened.
    pub async fn start(self) -> io::Result<Server> {
        self.check()?;
        if let Some(filter) = &self.log {
            install_log(filter)?;
        }
        let mut boot = Bootstrap::from_config(&self.config);
        boot.definitions_json = self.definitions;
        boot.extra = Some(self.extra);
        let mut server = crate::server::start_with(self.config, boot).await?;
        if let Some((user, password)) = self.first_user {
            server.login.user = user;
            server.login.password = password;
        }
        Ok(server)
    }

    /// Refuses what would only fail later, or quietly: empty names, patterns that do
    /// not compile, a statistics interval under 10 ms.
    fn check(&self) -> io::Result<()> {
        let invalid = |text: String| Err(io::Error::new(io::ErrorKind::InvalidInput, text));
        if let Some(empty) = self.extra.users.iter().find(|u| u.name.is_empty()) {
            return invalid(format!("a user needs a name (tags {:?})", empty.tags));
        }
        if self.extra.vhosts.iter().any(|v| v.name.is_empty()) {
            return invalid("a vhost needs a name".into());
        }
        for p in &self.extra.permissions {
            for pattern in [&p.configure, &p.write, &p.read] {
                if let Err(e) = Pattern::compile(pattern) {
                    return invalid(format!(
                        "permissions of user '{}' in vhost '{}': {e}",
                        p.user, p.vhost
                    ));
                }
            }
        }
        if self.config.stats_interval < 10 {
            return invalid("the statistics interval is at least 10 ms".into());
        }
        Ok(())
    }
}

/// Installs a subscriber logging at `filter` where the test harness captures output,
/// unless the process has one already.
fn install_log(filter: &str) -> io::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("log filter '{filter}': {e}"),
        )
    })?;
    // An error means a subscriber is set already: the application's, which wins.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    Ok(())
}
