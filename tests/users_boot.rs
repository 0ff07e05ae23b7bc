//! Users at start: the default user and vhost of a first start (flags, WARREN_* and
//! RABBITMQ_* variables), definitions files imported at start (a RabbitMQ 3.10.8 export
//! kept as a fixture, sha512 and md5 hashes), and users surviving a restart.

mod common;

use common::login::{login, login_as, refused};
use common::{within, TestBroker};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A definitions file exported by RabbitMQ 3.10.8: identity-u1/pw (tags management,
/// custom-tag, administrator; max-connections 5, max-channels 2), identity-nopw
/// (passwordless) and guest/guest.
fn reference_export() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rabbitmq-3.10.8-users.json")
}

/// `defs` written to a definitions file of its own (in a directory `remove_file_dir`
/// removes).
fn write_definitions(name: &str, defs: serde_json::Value) -> PathBuf {
    let dir = common::scratch_dir(&format!("users-{name}"));
    let file = dir.join("defs.json");
    std::fs::write(&file, defs.to_string()).expect("write");
    file
}

fn remove_file_dir(file: &Path) {
    if let Some(dir) = file.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The definitions file in a broker's data directory, once written.
async fn saved_definitions(broker: &TestBroker) -> serde_json::Value {
    let text = std::fs::read(broker.data_dir.join("definitions.json")).expect("definitions.json");
    serde_json::from_slice(&text).expect("JSON")
}

fn user_entry<'a>(defs: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    defs["users"].as_array()?.iter().find(|u| u["name"] == name)
}

// ---- hashes from definitions ----

#[tokio::test]
async fn users_exported_by_rabbitmq_log_in_with_their_passwords() {
    let file = reference_export();
    let broker = TestBroker::start_with(|c| warren::Config {
        definitions: Some(file),
        ..c
    })
    .await;
    let addr = broker.addr;
    assert!(login(addr, "identity-u1", "pw").await.is_ok());
    assert!(login(addr, "guest", "guest").await.is_ok());
    assert_eq!(
        login(addr, "identity-u1", "Pw").await.err(),
        Some(refused("PLAIN"))
    );
    assert_eq!(
        login(addr, "identity-nopw", "").await.err(),
        Some(refused("PLAIN"))
    );
    let u1 = broker
        .server
        .broker()
        .users()
        .get("identity-u1")
        .expect("imported");
    assert_eq!(u1.tags, ["management", "custom-tag", "administrator"]);
    assert_eq!(u1.limits, json!({"max-channels": 2, "max-connections": 5}));
    broker.stop().await;
}

/// Hashes made with Python's hashlib, salt 01 02 03 04, password "secret":
/// `base64.b64encode(salt + hashlib.sha512(salt + b"secret").digest())`, and md5.
#[tokio::test]
async fn sha512_and_md5_hashes_from_definitions_log_in() {
    let file = write_definitions(
        "hashes",
        json!({
            "rabbit_version": "3.10.8",
            "users": [
                {"name": "s512", "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": [],
                 "password_hash": "AQIDBPhTH2L5HGYB1LWOrn+YpvuQmVOXKGqgsuiJRIZTILRoEvblSJo/WAsym3IZTfuaIaK5KR2o5KwFfTv6KsxfMIE="},
                {"name": "md5", "hashing_algorithm": "rabbit_password_hashing_md5", "tags": [],
                 "password_hash": "AQIDBDgk9ci8Lfh6CKE9Y0AUfmU=", "x-note": {"kept": true}},
                {"name": "clear", "password": "secret", "tags": ["management"]}
            ],
            "vhosts": [{"name": "/"}],
            "permissions": [
                {"user": "s512", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
                {"user": "md5", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
                {"user": "clear", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
            ]
        }),
    );
    let broker = TestBroker::start_with(|c| warren::Config {
        definitions: Some(file.clone()),
        ..c
    })
    .await;
    for user in ["s512", "md5", "clear"] {
        assert!(login(broker.addr, user, "secret").await.is_ok(), "{user}");
        assert_eq!(
            login(broker.addr, user, "Secret").await.err(),
            Some(refused("PLAIN"))
        );
    }
    // The cleartext password was hashed on import; no cleartext is written back.
    broker.server.broker().flush().await;
    let saved = saved_definitions(&broker).await;
    let clear = user_entry(&saved, "clear").expect("saved");
    assert!(clear.get("password").is_none(), "{clear}");
    assert_eq!(clear["hashing_algorithm"], "rabbit_password_hashing_sha256");
    let md5 = user_entry(&saved, "md5").expect("saved");
    assert_eq!(
        md5["hashing_algorithm"], "rabbit_password_hashing_md5",
        "kept as read"
    );
    assert_eq!(
        md5["x-note"],
        json!({"kept": true}),
        "unknown fields are kept"
    );
    broker.stop().await;
    remove_file_dir(&file);
}

// ---- persistence, defaults, import ----

#[tokio::test]
async fn users_tags_and_limits_survive_a_restart() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    users.add("keep", Some("pw")).expect("add");
    broker
        .server
        .broker()
        .set_permissions("keep", "/", ".*", ".*", ".*")
        .expect("permissions");
    users
        .set_tags("keep", vec!["monitoring".into(), "my-tag".into()])
        .expect("tags");
    users
        .set_limits("keep", &json!({"max-connections": 3, "max-channels": -1}))
        .expect("limits");
    users.add("nopw", None).expect("passwordless");
    let before = users.get("keep").expect("keep");
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| c).await;
    let users = broker.server.broker().users();
    assert_eq!(users.get("keep"), Some(before));
    assert_eq!(
        users.get("nopw").map(|u| u.password_hash),
        Some(String::new())
    );
    assert!(login(broker.addr, "keep", "pw").await.is_ok());
    assert!(login(broker.addr, "guest", "guest").await.is_ok());
    let names: Vec<String> = users.list().into_iter().map(|u| u.name).collect();
    assert_eq!(names, ["guest", "keep", "nopw"]);
    broker.stop().await;
}

#[tokio::test]
async fn the_default_user_and_vhost_are_made_on_the_first_start_only() {
    let broker = TestBroker::start_with(|c| warren::Config {
        default_user: Some("admin".into()),
        default_pass: Some("s3cret".into()),
        default_vhost: Some("app".into()),
        ..c
    })
    .await;
    let addr = broker.addr;
    assert!(login_as(addr, "PLAIN", "admin", "s3cret", "app")
        .await
        .is_ok());
    assert_eq!(
        login(addr, "guest", "guest").await.err(),
        Some(refused("PLAIN"))
    );
    assert_eq!(
        login_as(addr, "PLAIN", "admin", "s3cret", "/").await.err(),
        Some((530, "NOT_ALLOWED - vhost / not found".to_owned(), 10, 40))
    );
    let admin = broker.server.broker().users().get("admin").expect("admin");
    assert_eq!(admin.tags, ["administrator"]);
    // Later starts keep what the data directory holds, whatever the flags say.
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| warren::Config {
        default_user: Some("other".into()),
        default_pass: Some("x".into()),
        ..c
    })
    .await;
    assert!(login_as(broker.addr, "PLAIN", "admin", "s3cret", "app")
        .await
        .is_ok());
    assert!(broker.server.broker().users().get("other").is_none());
    broker.stop().await;
}

/// The defaults are made when the data directory is new, not whenever they are missing:
/// a deleted "/" stays deleted (RabbitMQ seeds only an empty database).
#[tokio::test]
async fn a_deleted_default_vhost_is_not_made_again_at_the_next_start() {
    let broker = TestBroker::start().await;
    broker
        .server
        .broker()
        .delete_vhost("/")
        .await
        .expect("delete /");
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| c).await;
    assert!(broker.server.broker().vhost_info("/").is_none());
    assert_eq!(
        login(broker.addr, "guest", "guest").await.err(),
        Some((530, "NOT_ALLOWED - vhost / not found".to_owned(), 10, 40))
    );
    broker.stop().await;
}

#[tokio::test]
async fn an_imported_definitions_file_is_merged_at_every_start() {
    let file = write_definitions(
        "import",
        json!({
            "rabbit_version": "3.10.8",
            "users": [{"name": "svc", "tags": ["management"], "limits": {"max-connections": 2},
                       "hashing_algorithm": "rabbit_password_hashing_sha256",
                       "password_hash": "8i3vTR9eVfB2bb5LpI0PswTahgStSCv8qo+bVRHBeqoRpsG7"},
                      {"name": "hand-written", "password": "clear", "tags": []}],
            "vhosts": [{"name": "/"}, {"name": "svc-vhost"}],
            "permissions": [{"user": "svc", "vhost": "svc-vhost", "configure": ".*", "write": ".*", "read": ".*"},
                            {"user": "hand-written", "vhost": "/", "configure": "", "write": "", "read": ""}],
            "queues": [{"name": "svc.q", "vhost": "svc-vhost", "durable": true, "auto_delete": false, "arguments": {}}]
        }),
    );
    let with_file = |c: warren::Config| warren::Config {
        definitions: Some(file.clone()),
        ..c
    };
    let broker = TestBroker::start_with(with_file).await;
    // As RabbitMQ: a configured file means no default user.
    assert!(broker.server.broker().users().get("guest").is_none());
    let mut raw = login_as(broker.addr, "PLAIN", "svc", "pw", "svc-vhost")
        .await
        .expect("svc logs in to its vhost");
    raw.open_channel(1).await;
    raw.queue_declare(1, "svc.q", true).await;
    raw.method().await;
    // Something made at runtime, not in the file: kept across an import.
    broker
        .server
        .broker()
        .users()
        .add("later", Some("pw"))
        .expect("add");
    broker.server.broker().flush().await;
    let once = saved_definitions(&broker).await;
    let data = broker.restart_later().await;
    let broker = TestBroker::start_on(data, with_file).await;
    broker.server.broker().flush().await;
    let twice = saved_definitions(&broker).await;
    for key in ["users", "vhosts", "queues", "exchanges", "bindings"] {
        assert_eq!(
            once[key], twice[key],
            "{key}: the second import changed nothing"
        );
    }
    assert!(user_entry(&twice, "later").is_some());
    assert!(login(broker.addr, "hand-written", "clear").await.is_ok());
    assert!(login_as(broker.addr, "PLAIN", "svc", "pw", "svc-vhost")
        .await
        .is_ok());
    broker.stop().await;
    remove_file_dir(&file);
}

#[tokio::test]
async fn a_missing_definitions_file_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("warren-users-missing-{}", std::process::id()));
    let config = warren::Config {
        definitions: Some(dir.join("no-such-file.json")),
        ..warren::Config::local(&dir)
    };
    let err = warren::start(config).await.err().expect("refused");
    assert!(err.to_string().contains("no-such-file.json"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary reads RABBITMQ_DEFAULT_USER/PASS/VHOST, as the rabbitmq image does, and a
/// WARREN_DEFAULT_* variable wins over its RABBITMQ_DEFAULT_* twin.
#[tokio::test]
async fn the_binary_takes_the_default_user_from_rabbitmq_variables() {
    use tokio::io::AsyncBufReadExt;
    let dir = std::env::temp_dir().join(format!("warren-users-env-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Everything from the environment, as a compose file would give it.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .env("WARREN_PORT", "0")
        .env("WARREN_BIND", "127.0.0.1")
        .env("WARREN_LOG", "warn")
        .env("WARREN_MANAGEMENT_PORT", "0")
        .env("WARREN_PROMETHEUS_PORT", "0")
        .env("WARREN_DATA_DIR", &dir)
        .env("RABBITMQ_DEFAULT_USER", "from-rabbitmq")
        .env("WARREN_DEFAULT_USER", "from-warren")
        .env("RABBITMQ_DEFAULT_PASS", "compose-pass")
        .env("RABBITMQ_DEFAULT_VHOST", "compose-vhost")
        .env_remove("WARREN_DEFAULT_PASS")
        .env_remove("WARREN_DEFAULT_VHOST")
        .env_remove("WARREN_DEFINITIONS")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn warren");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    within(tokio::io::BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("ready line");
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(login_as(
        addr,
        "PLAIN",
        "from-warren",
        "compose-pass",
        "compose-vhost"
    )
    .await
    .is_ok());
    for user in ["from-rabbitmq", "guest"] {
        assert_eq!(
            login_as(addr, "PLAIN", user, "compose-pass", "compose-vhost")
                .await
                .err(),
            Some(refused("PLAIN")),
            "{user}"
        );
    }
    child.kill().await.expect("kill");
    let _ = std::fs::remove_dir_all(&dir);
}
