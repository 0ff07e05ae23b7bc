//! Settings and their defaults, from the command line or `WARREN_*` environment variables.
//!
//! Read once by `main`; the library takes a `Config` so tests can build one in code.

pub use crate::connection::Mechanism;
pub use crate::tls::Verify;
use std::net::IpAddr;
use std::path::PathBuf;

/// warren: an AMQP 0-9-1 message broker that speaks the protocol as RabbitMQ does.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "cli", derive(clap::Parser), command(name = "warren", version, about, long_about = None))]
pub struct Config {
    /// Address to listen on, for AMQP, amqps, management and Prometheus alike;
    /// repeatable (or comma-separated), e.g. `--bind 127.0.0.1 --bind ::1` for local
    /// clients over IPv4 and IPv6. Default, as RabbitMQ: every interface, IPv6 and
    /// IPv4 (`[::]`, and 0.0.0.0 where `[::]` takes no IPv4; IPv4 only without IPv6).
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_BIND", value_delimiter = ','))]
    pub bind: Vec<IpAddr>,

    /// AMQP port; 0 picks a free port (the ready line says which).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "WARREN_PORT", default_value_t = 5672)
    )]
    pub port: u16,

    /// Directory for durable state; created if missing. `none` keeps everything in
    /// memory, as --in-memory does (write `./none` for a directory of that name).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "WARREN_DATA_DIR", default_value = "warren-data")
    )]
    pub data_dir: PathBuf,

    /// Keep everything in memory and touch no file (for tests): durable exchanges,
    /// queues, users and persistent messages live until the process ends, confirms go
    /// out at once, streams keep their logs in memory. Queues cannot page: publishers
    /// are blocked past --queue-memory (or --memory-limit if lower) until consumers
    /// drain. The data directory is ignored (neither created nor read).
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_IN_MEMORY"))]
    pub in_memory: bool,

    /// The clock every time-based feature reads (message TTL, x-expires, delayed
    /// messages, heartbeats, the handshake timeout, statistics): real, or manual. FOR
    /// TESTS ONLY: a manual clock stands still until `warren ctl clock advance 90m` (or
    /// POST /api/warren/clock/advance) moves it. Refused with a data directory unless
    /// --in-memory or --allow-manual-clock-with-data is given.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_CLOCK", value_parser = parse_clock, default_value = "real"))]
    pub clock: crate::clock::Clock,

    /// Run --clock manual on a data directory anyway: persistent messages, delayed
    /// messages and stream entries are then stored with the manual clock's dates.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "WARREN_ALLOW_MANUAL_CLOCK_WITH_DATA")
    )]
    pub allow_manual_clock_with_data: bool,

    /// Memory high watermark: above it, publishers are blocked until consumers catch up
    /// (RabbitMQ's vm_memory_high_watermark). Bytes, or with a unit: 2GiB, 512MB.
    /// Default: 40% of the machine's memory.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_MEMORY_LIMIT", value_parser = parse_bytes))]
    pub memory_limit: Option<u64>,

    /// Memory budget for the backlog (queued messages, the message store's index,
    /// connection buffers and unacked tables, the process itself): beyond it, queues keep only a short head in memory and page the
    /// rest to `<data-dir>/pages`, read back in order (in memory, publishers are blocked
    /// there instead). Bytes, or with a unit.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_QUEUE_MEMORY", value_parser = parse_bytes,
          default_value_t = crate::broker::memory::DEFAULT_QUEUE_MEMORY))]
    pub queue_memory: u64,

    /// Free disk space limit for the data directory: below it, publishers are blocked
    /// (RabbitMQ's disk_free_limit). Bytes, or with a unit.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_DISK_FREE_LIMIT", value_parser = parse_bytes,
          default_value_t = crate::broker::disk::DEFAULT_FREE_LIMIT))]
    pub disk_free_limit: u64,

    /// Most client connections served at once (RabbitMQ's connection_max); further
    /// clients wait, unanswered, until one leaves. Default: no limit.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_MAX_CONNECTIONS"))]
    pub max_connections: Option<usize>,

    /// Largest message body accepted (RabbitMQ's max_message_size, at most 512 MiB):
    /// a larger one is read, dropped and refused with 406 PRECONDITION_FAILED.
    /// Bytes, or with a unit.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_MAX_MESSAGE_SIZE", value_parser = parse_message_size,
          default_value_t = crate::channel::MAX_MESSAGE_SIZE))]
    pub max_message_size: u64,

    /// amqps port (RabbitMQ's ssl listener). Default: 5671 when --tls-cert is given, no
    /// TLS listener otherwise; 0 picks a free port. The plain port stays open beside it.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_TLS_PORT"))]
    pub tls_port: Option<u16>,

    /// Server certificate chain, PEM (RabbitMQ's ssl_options.certfile).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "WARREN_TLS_CERT", requires = "tls_key")
    )]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key, PEM: PKCS#8, PKCS#1 or SEC1 (ssl_options.keyfile).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "WARREN_TLS_KEY", requires = "tls_cert")
    )]
    pub tls_key: Option<PathBuf>,

    /// CA certificates that client certificates must chain to, PEM
    /// (ssl_options.cacertfile); needed by --tls-verify peer.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_TLS_CA"))]
    pub tls_ca: Option<PathBuf>,

    /// Client certificates: none (not asked for) or peer (asked for and verified
    /// against --tls-ca); RabbitMQ's ssl_options.verify.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_TLS_VERIFY", value_enum, default_value_t = Verify::None))]
    pub tls_verify: Verify,

    /// With --tls-verify peer, refuse the TLS handshake of a client that sends no
    /// certificate (ssl_options.fail_if_no_peer_cert); without it such a client is let in.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_TLS_FAIL_IF_NO_PEER_CERT"))]
    pub tls_fail_if_no_peer_cert: bool,

    /// SASL mechanisms offered, in order (RabbitMQ's auth_mechanisms): PLAIN, AMQPLAIN,
    /// EXTERNAL. EXTERNAL (login as the client certificate's CN) is offered on TLS
    /// connections only.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "WARREN_AUTH_MECHANISMS",
            value_delimiter = ',',
            ignore_case = true,
            default_value = "PLAIN,AMQPLAIN"
        )
    )]
    pub auth_mechanisms: Vec<Mechanism>,
    /// User created on first start (empty data directory, no --definitions), with the
    /// administrator tag and full permissions on the default vhost. Also read from
    /// RABBITMQ_DEFAULT_USER (WARREN_DEFAULT_USER wins). Default: guest.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_DEFAULT_USER"))]
    pub default_user: Option<String>,

    /// Password of the default user. Also RABBITMQ_DEFAULT_PASS. Default: guest.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "WARREN_DEFAULT_PASS", hide_env_values = true)
    )]
    pub default_pass: Option<String>,

    /// Vhost created on first start. Also RABBITMQ_DEFAULT_VHOST. Default: /.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_DEFAULT_VHOST"))]
    pub default_vhost: Option<String>,

    /// A RabbitMQ definitions file (as rabbitmqctl export_definitions writes) imported
    /// at every start: its users, vhosts, permissions, queues, exchanges, bindings,
    /// policies and parameters are created or updated; what the data directory holds
    /// besides is kept. When set, no default user or vhost is created.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_DEFINITIONS"))]
    pub definitions: Option<PathBuf>,

    /// Users that may log in from the local machine only (RabbitMQ's loopback_users):
    /// a comma-separated list; "" or "none" for none.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "WARREN_LOOPBACK_USERS", default_value = "guest")
    )]
    pub loopback_users: String,

    /// Management HTTP API (RabbitMQ's rabbitmq_management listener); 0 turns it off.
    /// Listens on --bind, as AMQP does. Off, and refused when set, in a build without
    /// the `management` feature.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_MANAGEMENT_PORT", value_parser = parse_listener_port,
          default_value = http_default("15672")))]
    pub management_port: ListenerPort,

    /// Prometheus metrics at /metrics (RabbitMQ's rabbitmq_prometheus listener); 0 turns
    /// it off. Listens on --bind. Off, and refused when set, without `management`.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_PROMETHEUS_PORT", value_parser = parse_listener_port,
          default_value = http_default("15692")))]
    pub prometheus_port: ListenerPort,

    /// How often the management statistics are sampled for rates, in milliseconds
    /// (RabbitMQ's collect_statistics_interval).
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_STATS_INTERVAL", default_value_t = crate::stats::DEFAULT_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(10..)))]
    pub stats_interval: u64,

    /// The `product` connection.start advertises (RabbitMQ's server_properties); some
    /// client test suites want "RabbitMQ". Default: warren.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_SERVER_PRODUCT"))]
    pub server_product: Option<String>,

    /// The advertised `version`. Default: warren's version.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_SERVER_VERSION"))]
    pub server_version: Option<String>,

    /// The advertised `platform`. Default: Rust.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_SERVER_PLATFORM"))]
    pub server_platform: Option<String>,

    /// Another advertised server property, KEY=VALUE (repeatable; e.g. information,
    /// copyright, cluster_name); replaces a default of the same name.
    #[cfg_attr(
        feature = "cli",
        arg(long = "server-property", value_name = "KEY=VALUE")
    )]
    pub server_properties: Vec<String>,

    /// The event exchange (RabbitMQ's rabbitmq_event_exchange plugin): declares
    /// `amq.rabbitmq.event` in the default vhost and publishes broker events to it
    /// (queues, exchanges, bindings, connections, channels, consumers, users, vhosts,
    /// permissions, policies). Off by default: it costs on every event.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_EVENT_EXCHANGE"))]
    pub event_exchange: bool,

    /// Log level or filter (error, warn, info, debug, trace, or e.g. "warren=debug").
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_LOG", default_value = "info"))]
    pub log: String,

    /// Runtime worker threads of the `warren` binary (1-1024). Default: one per core.
    /// An embedded broker runs on its caller's runtime and ignores this.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=1024)))]
    pub workers: Option<u16>,

    /// Serve connections on N threads of their own, one single-threaded runtime each,
    /// given to connections in turn: a connection never moves between cores. 0 (the
    /// default): connections share the work-stealing runtime.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_CONNECTION_THREADS", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=1024)))]
    pub connection_threads: u16,

    /// This node's name in a cluster, as RabbitMQ names nodes (rabbit@host). Default:
    /// `rabbit@<short host name>`.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_NODE_NAME"))]
    pub node_name: Option<String>,

    /// Every member of a cluster, this node included: NAME=HOST:PORT,... (the node-to-node
    /// listener of each; this node binds its own entry's address). Without it the broker
    /// is a single node. Only the names must be the same on every node.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_PEERS"))]
    pub peers: Option<String>,

    /// The cluster's shared secret (1-255 bytes, readable by its owner only), the same
    /// file on every node. Default: $HOME/.warren.cookie.
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_CLUSTER_COOKIE_FILE"))]
    pub cluster_cookie_file: Option<PathBuf>,

    /// Raft heartbeat interval in milliseconds; elections start after 3 to 6 of them
    /// without a leader (RabbitMQ's Ra: about 1-2 s).
    #[cfg_attr(feature = "cli", arg(long, env = "WARREN_CLUSTER_HEARTBEAT_MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(10..=60000)))]
    pub cluster_heartbeat_ms: u64,
}

impl Config {
    /// Listen on 127.0.0.1 on a free port, with a data directory of the caller's choice:
    /// what tests and embedders usually want.
    pub fn local(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            bind: vec![IpAddr::from([127, 0, 0, 1])],
            port: 0,
            data_dir: data_dir.into(),
            in_memory: false,
            clock: crate::clock::Clock::real(),
            allow_manual_clock_with_data: false,
            memory_limit: None,
            queue_memory: crate::broker::memory::DEFAULT_QUEUE_MEMORY,
            disk_free_limit: crate::broker::disk::DEFAULT_FREE_LIMIT,
            max_connections: None,
            max_message_size: crate::channel::MAX_MESSAGE_SIZE,
            tls_port: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_verify: Verify::None,
            tls_fail_if_no_peer_cert: false,
            auth_mechanisms: vec![Mechanism::Plain, Mechanism::Amqplain],
            default_user: None,
            default_pass: None,
            default_vhost: None,
            definitions: None,
            loopback_users: "guest".into(),
            management_port: ListenerPort::Off,
            prometheus_port: ListenerPort::Off,
            stats_interval: crate::stats::DEFAULT_INTERVAL_MS,
            server_product: None,
            server_version: None,
            server_platform: None,
            server_properties: Vec::new(),
            event_exchange: false,
            log: "warn".into(),
            workers: None,
            connection_threads: 0,
            node_name: None,
            peers: None,
            cluster_cookie_file: None,
            cluster_heartbeat_ms: 500,
        }
    }

    /// Why the binary refuses to start with these settings' clock, if it does: a manual
    /// clock is for tests, and a data directory would keep what it dated (delayed
    /// messages' due times, stream timestamps) into runs on the real clock. The library
    /// does not ask: a test that passes a manual clock chose it.
    pub fn manual_clock_refusal(&self) -> Option<String> {
        let dir = self.disk_data_dir()?;
        (self.clock.is_manual() && !self.allow_manual_clock_with_data).then(|| {
            format!(
                "--clock manual is for tests: it is refused with a data directory ({}), whose \
                 delayed messages and stream entries would keep the manual clock's dates. Add \
                 --in-memory (or --data-dir none), or --allow-manual-clock-with-data to use the \
                 directory anyway",
                dir.display()
            )
        })
    }

    /// Fills the default user, password and vhost not given by flag or `WARREN_*`
    /// variable from RabbitMQ's `RABBITMQ_DEFAULT_*` variables (as `lookup` finds
    /// them), so an environment written for the rabbitmq image works unchanged.
    pub fn with_rabbitmq_env(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        for (field, var) in [
            (&mut self.default_user, "RABBITMQ_DEFAULT_USER"),
            (&mut self.default_pass, "RABBITMQ_DEFAULT_PASS"),
            (&mut self.default_vhost, "RABBITMQ_DEFAULT_VHOST"),
        ] {
            if field.is_none() {
                *field = lookup(var);
            }
        }
        self
    }
}

/// `--clock`: real or manual.
#[cfg(feature = "cli")]
fn parse_clock(text: &str) -> Result<crate::clock::Clock, String> {
    match text {
        "real" => Ok(crate::clock::Clock::real()),
        "manual" => Ok(crate::clock::Clock::manual()),
        _ => Err(format!("'{text}' is not a clock: real or manual")),
    }
}

/// `--loopback-users` as a list: comma-separated names; "" or "none" is none.
pub fn loopback_users(text: &str) -> Vec<String> {
    if text.trim() == "none" {
        return Vec::new();
    }
    text.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    /// The data directory, or `None` when the broker keeps everything in memory
    /// (`in_memory`, or a data directory of `none`).
    pub fn disk_data_dir(&self) -> Option<&std::path::Path> {
        let none = self.data_dir.as_os_str() == IN_MEMORY_DATA_DIR;
        (!self.in_memory && !none).then_some(self.data_dir.as_path())
    }

    /// The free disk space under which publishers are blocked: `disk_free_limit`, or 0
    /// in memory, where no disk is used (so no tool reads free space under a limit).
    pub fn disk_free_limit_in_use(&self) -> u64 {
        self.disk_data_dir().map_or(0, |_| self.disk_free_limit)
    }

    /// The amqps port, when a TLS listener is configured (RabbitMQ's 5671 unless set).
    pub fn tls_listener_port(&self) -> Option<u16> {
        self.tls_cert
            .as_ref()
            .map(|_| self.tls_port.unwrap_or(DEFAULT_TLS_PORT))
    }

    /// What connection.start advertises, or why the flags are refused.
    pub fn server_properties(
        &self,
    ) -> Result<crate::connection::server_properties::ServerProperties, String> {
        crate::connection::server_properties::ServerProperties::configured(
            self.server_product.as_deref(),
            self.server_version.as_deref(),
            self.server_platform.as_deref(),
            &self.server_properties,
        )
    }

    /// Refuses what this build cannot serve: an HTTP listener (management, Prometheus)
    /// in a warren built without the `management` feature.
    pub(crate) fn check_build(&self) -> Result<(), String> {
        // The command line checks it as it parses; a Config built in code (the
        // library's builder, `config(|c| ..)`) is checked here.
        check_message_size(self.max_message_size)?;
        self.check_listeners(cfg!(feature = "management"))
    }

    /// `check_build` for a build with or without the HTTP listeners.
    fn check_listeners(&self, management: bool) -> Result<(), String> {
        if management {
            return Ok(());
        }
        for (port, name, flag) in [
            (self.management_port, "management", "--management-port"),
            (self.prometheus_port, "Prometheus", "--prometheus-port"),
        ] {
            let asked = match port.port() {
                None => continue,
                Some(0) => "a free port".to_owned(),
                Some(port) => format!("port {port}"),
            };
            return Err(format!(
                "the {name} listener is asked for ({asked}), but this warren was built \
                 without the `management` feature: turn it off ({flag} 0)"
            ));
        }
        Ok(())
    }

    /// The TLS files, when a certificate is configured.
    pub fn tls_files(&self) -> Option<crate::tls::TlsFiles> {
        Some(crate::tls::TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            ca: self.tls_ca.clone(),
            verify: self.tls_verify,
            fail_if_no_peer_cert: self.tls_fail_if_no_peer_cert,
        })
    }
}

/// Where an optional HTTP listener listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerPort {
    /// No listener (0 on the command line).
    Off,
    /// This port; `On(0)`, which only code can ask for, picks a free one (tests).
    On(u16),
}

impl ListenerPort {
    /// The port to bind, when the listener is on.
    pub fn port(self) -> Option<u16> {
        match self {
            ListenerPort::Off => None,
            ListenerPort::On(port) => Some(port),
        }
    }
}

/// An HTTP listener's default port on the command line: RabbitMQ's, or 0 (none) in a
/// build without the listeners.
#[cfg(feature = "cli")]
const fn http_default(port: &'static str) -> &'static str {
    if cfg!(feature = "management") {
        port
    } else {
        "0"
    }
}

/// A listener's port on the command line: a number, 0 for no listener.
#[cfg(feature = "cli")]
fn parse_listener_port(text: &str) -> Result<ListenerPort, String> {
    match text.trim().parse::<u16>() {
        Ok(0) => Ok(ListenerPort::Off),
        Ok(port) => Ok(ListenerPort::On(port)),
        Err(_) => Err(format!("'{text}' is not a port (1-65535, or 0 for none)")),
    }
}

/// `--data-dir none`: no data directory, everything in memory.
pub const IN_MEMORY_DATA_DIR: &str = "none";

/// RabbitMQ's amqps port.
pub const DEFAULT_TLS_PORT: u16 = 5671;

/// A size in bytes: a plain number, or one with a unit (k, M, G, T; KB/MB/GB/TB are
/// powers of 1000, KiB/MiB/GiB/TiB and the single letters powers of 1024).
#[cfg(feature = "cli")]
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 134217728, 128MiB, 2GB)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("unknown size unit '{other}' in '{text}'")),
    };
    Ok((number * scale as f64) as u64)
}

/// RabbitMQ refuses a max_message_size above 512 MiB.
pub const MAX_MESSAGE_SIZE_CAP: u64 = 512 << 20;

#[cfg(feature = "cli")]
fn parse_message_size(text: &str) -> Result<u64, String> {
    check_message_size(parse_bytes(text)?)
}

/// `size` as a largest message size, or why it is refused (above RabbitMQ's 512 MiB cap).
fn check_message_size(size: u64) -> Result<u64, String> {
    if size > MAX_MESSAGE_SIZE_CAP {
        return Err(format!(
            "{size} is above the largest message size allowed ({MAX_MESSAGE_SIZE_CAP})"
        ));
    }
    Ok(size)
}

// Each test reads the command line (or its value parsers).
#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::{loopback_users, parse_bytes, parse_message_size, Config};
    use clap::Parser;

    #[test]
    fn default_user_flags_then_warren_env_then_rabbitmq_env() {
        let rabbit = |var: &str| Some(format!("rabbit-{var}"));
        let c = Config::try_parse_from(["warren", "--default-user", "flag"])
            .expect("parse")
            .with_rabbitmq_env(rabbit);
        assert_eq!(c.default_user.as_deref(), Some("flag"));
        assert_eq!(
            c.default_pass.as_deref(),
            Some("rabbit-RABBITMQ_DEFAULT_PASS")
        );
        assert_eq!(
            c.default_vhost.as_deref(),
            Some("rabbit-RABBITMQ_DEFAULT_VHOST")
        );
        let none = Config::local("d").with_rabbitmq_env(|_| None);
        assert_eq!(none.default_user, None);
    }

    #[test]
    fn http_listeners_are_refused_in_a_build_without_them() {
        use super::ListenerPort;
        let mut config = Config::local("d");
        assert_eq!(config.check_listeners(false), Ok(()));
        config.prometheus_port = ListenerPort::On(0);
        assert_eq!(
            config.check_listeners(false),
            Err(
                "the Prometheus listener is asked for (a free port), but this warren was \
                 built without the `management` feature: turn it off (--prometheus-port 0)"
                    .into()
            )
        );
        config.management_port = ListenerPort::On(15672);
        let refused = config.check_listeners(false).expect_err("refused");
        assert!(
            refused.starts_with("the management listener is asked for (port 15672), "),
            "{refused}"
        );
        assert_eq!(config.check_listeners(true), Ok(()));
        // The command line's defaults follow the build: on with the listeners.
        let parsed = Config::try_parse_from(["warren"]).expect("parsed");
        assert_eq!(parsed.check_build(), Ok(()));
    }

    #[test]
    fn data_dir_none_and_in_memory_mean_no_data_directory() {
        let parse = |args: &[&str]| {
            Config::try_parse_from(std::iter::once("warren").chain(args.iter().copied()))
                .expect("parse")
        };
        assert_eq!(
            parse(&[]).disk_data_dir(),
            Some(std::path::Path::new("warren-data"))
        );
        assert_eq!(parse(&["--data-dir", "none"]).disk_data_dir(), None);
        assert_eq!(
            parse(&["--data-dir", "./none"]).disk_data_dir(),
            Some(std::path::Path::new("./none"))
        );
        assert_eq!(
            parse(&["--in-memory", "--data-dir", "d"]).disk_data_dir(),
            None
        );
        let mut local = Config::local("d");
        local.in_memory = true;
        assert_eq!(local.disk_data_dir(), None);
    }

    #[test]
    fn loopback_users_list() {
        assert_eq!(loopback_users("guest"), ["guest"]);
        assert_eq!(loopback_users(" a, b ,"), ["a", "b"]);
        assert!(loopback_users("").is_empty());
        assert!(loopback_users("none").is_empty());
    }

    #[test]
    fn auth_mechanisms_are_rabbitmqs_names_in_any_case() {
        use super::{Config, Mechanism};
        use clap::Parser;
        let config = Config::try_parse_from(["warren", "--auth-mechanisms", "plain,EXTERNAL"])
            .expect("parsed");
        assert_eq!(
            config.auth_mechanisms,
            [Mechanism::Plain, Mechanism::External]
        );
        assert!(Config::try_parse_from(["warren", "--auth-mechanisms", "CRAM-MD5"]).is_err());
    }

    #[test]
    fn message_sizes_stop_at_512_mib() {
        assert_eq!(parse_message_size("512MiB"), Ok(512 << 20));
        assert!(parse_message_size("513MiB").is_err());
    }

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_bytes("1234"), Ok(1234));
        assert_eq!(parse_bytes("128MiB"), Ok(128 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert_eq!(parse_bytes(" 64 M "), Ok(64 << 20));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3 parsecs").is_err());
    }
}
