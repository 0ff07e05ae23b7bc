//! Users, as RabbitMQ 3.10 has them: logins against stored salted hashes (sha256,
//! sha512, md5), passwordless users, loopback_users, per-user max-connections and
//! max-channels, deleting a user with open connections, the default user and vhost of a
//! first start, definitions imported at start, and all of it surviving a restart.
//!
//! Expected codes and texts were taken from the reference RabbitMQ 3.10.8 with a raw
//! AMQP client (see the report of the `identity` branch).

mod common;

use amq_protocol::protocol::{connection, AMQPClass};
use common::raw::{plain, Raw};
use common::{non_loopback_ipv4, within, TestBroker};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warren::testing::UserError;

const REFUSED_PLAIN: &str = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.";

/// A definitions file exported by RabbitMQ 3.10.8: identity-u1/pw (tags management,
/// custom-tag, administrator; max-connections 5, max-channels 2), identity-nopw
/// (passwordless) and guest/guest.
fn reference_export() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rabbitmq-3.10.8-users.json")
}

/// The parts of a connection.close: code, text, class, method.
type Close = (u16, String, u16, u16);

fn parts(c: &connection::Close) -> Close {
    (
        c.reply_code,
        c.reply_text.as_str().to_owned(),
        c.class_id,
        c.method_id,
    )
}

/// Logs in over raw AMQP with `mechanism` (announcing authentication_failure_close) and
/// opens `vhost`: the open connection, or the connection.close the broker sent.
async fn login_as(
    addr: SocketAddr,
    mechanism: &str,
    user: &str,
    password: &str,
    vhost: &str,
) -> Result<Raw, Close> {
    let (mut raw, _) = Raw::start(addr).await;
    let response = match mechanism {
        "PLAIN" => plain(user, password),
        _ => amqplain(user, password),
    };
    raw.start_ok(mechanism, response, true).await;
    match raw.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Tune(_))) => {}
        (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => return Err(parts(&c)),
        other => panic!("expected tune or close, got {other:?}"),
    }
    raw.tune_ok(2047, 131_072, 0).await;
    raw.open_vhost(vhost).await;
    match raw.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::OpenOk(_))) => Ok(raw),
        (0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => Err(parts(&c)),
        other => panic!("expected open-ok or close, got {other:?}"),
    }
}

async fn login(addr: SocketAddr, user: &str, password: &str) -> Result<Raw, Close> {
    login_as(addr, "PLAIN", user, password, "/").await
}

fn amqplain(user: &str, password: &str) -> Vec<u8> {
    let mut t = Vec::new();
    for (key, value) in [("LOGIN", user), ("PASSWORD", password)] {
        t.push(key.len() as u8);
        t.extend_from_slice(key.as_bytes());
        t.push(b'S');
        t.extend_from_slice(&(value.len() as u32).to_be_bytes());
        t.extend_from_slice(value.as_bytes());
    }
    t
}

fn refused(mechanism: &str) -> Close {
    (
        403,
        format!("ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
        0,
        0,
    )
}

/// The definitions file in a broker's data directory, once written.
async fn saved_definitions(broker: &TestBroker) -> serde_json::Value {
    let text = std::fs::read(broker.data_dir.join("definitions.json")).expect("definitions.json");
    serde_json::from_slice(&text).expect("JSON")
}

fn user_entry<'a>(defs: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    defs["users"].as_array()?.iter().find(|u| u["name"] == name)
}

// ---- logins ----

#[tokio::test]
async fn users_log_in_with_their_password_only() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    users.add("u1", Some("pw1")).expect("add u1");
    users.add("nopw", None).expect("add passwordless");
    users
        .add("empty", Some(""))
        .expect("add with an empty password");
    let addr = broker.addr;
    assert!(login(addr, "u1", "pw1").await.is_ok());
    assert!(login_as(addr, "AMQPLAIN", "u1", "pw1", "/").await.is_ok());
    // Compared with RabbitMQ 3.10.8: each of these gets the same close, at once.
    for (user, password) in [
        ("u1", "wrong"),
        ("u1", ""),
        ("nobody", "pw1"),
        ("nopw", ""),
        ("nopw", "x"),
        ("empty", ""),
    ] {
        assert_eq!(
            login(addr, user, password).await.err(),
            Some(refused("PLAIN")),
            "{user}/{password}"
        );
    }
    assert_eq!(
        login_as(addr, "AMQPLAIN", "u1", "bad", "/").await.err(),
        Some(refused("AMQPLAIN"))
    );
    // Without authentication_failure_close: no close method, the socket is dropped.
    let (mut raw, _) = Raw::start(addr).await;
    raw.start_ok("PLAIN", plain("nobody", "x"), false).await;
    raw.expect_silent_close_within(Duration::from_secs(5)).await;
    // lapin announces the capability and reports the refusal.
    let url = format!("amqp://u1:wrong@{addr}/%2f");
    let err = within(lapin::Connection::connect(&url, Default::default()))
        .await
        .expect_err("wrong password");
    assert_eq!(common::amqp_error(&err), (403, REFUSED_PLAIN.to_owned()));
    let url = format!("amqp://u1:pw1@{addr}/%2f");
    let conn = within(lapin::Connection::connect(&url, Default::default()))
        .await
        .expect("u1 logs in");
    assert_eq!(conn.status().username(), "u1");
    broker.stop().await;
}

#[tokio::test]
async fn a_changed_or_cleared_password_applies_to_the_next_login() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    users.add("u", Some("old")).expect("add");
    let open = login(broker.addr, "u", "old").await.expect("old password");
    users.change_password("u", "new").expect("change");
    assert_eq!(
        login(broker.addr, "u", "old").await.err(),
        Some(refused("PLAIN"))
    );
    let second = login(broker.addr, "u", "new").await.expect("new password");
    users.clear_password("u").expect("clear");
    assert_eq!(
        login(broker.addr, "u", "new").await.err(),
        Some(refused("PLAIN"))
    );
    assert_eq!(
        users.connection_count("u"),
        2,
        "open connections stay, as in RabbitMQ"
    );
    drop((open, second));
    broker.stop().await;
}

/// RabbitMQ's loopback_users, checked from this machine's non-loopback address.
#[tokio::test]
async fn loopback_users_are_refused_from_another_address() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("no non-loopback IPv4 address here: test skipped");
        return;
    };
    let on_all = |users: &'static str| {
        move |c: warren::Config| warren::Config {
            bind: "0.0.0.0".parse().unwrap(),
            loopback_users: users.into(),
            ..c
        }
    };
    // The default: guest from loopback only; other users from anywhere.
    let broker = TestBroker::start_with(on_all("guest")).await;
    broker
        .server
        .broker()
        .users()
        .add("u1", Some("pw"))
        .expect("add");
    let remote = SocketAddr::new(ip, broker.addr.port());
    assert_eq!(
        login(remote, "guest", "guest").await.err(),
        Some(refused("PLAIN"))
    );
    assert_eq!(
        login(remote, "guest", "wrong").await.err(),
        Some(refused("PLAIN"))
    );
    assert!(login(broker.addr, "guest", "guest").await.is_ok());
    assert!(login(remote, "u1", "pw").await.is_ok());
    broker.stop().await;
    // None: guest from anywhere.
    let broker = TestBroker::start_with(on_all("")).await;
    let remote = SocketAddr::new(ip, broker.addr.port());
    assert!(login(remote, "guest", "guest").await.is_ok());
    broker.stop().await;
    // A list: each named user is held to loopback.
    let broker = TestBroker::start_with(on_all("u1, guest")).await;
    broker
        .server
        .broker()
        .users()
        .add("u1", Some("pw"))
        .expect("add");
    let remote = SocketAddr::new(ip, broker.addr.port());
    assert_eq!(
        login(remote, "u1", "pw").await.err(),
        Some(refused("PLAIN"))
    );
    assert!(login(broker.addr, "u1", "pw").await.is_ok());
    broker.stop().await;
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
    let dir = std::env::temp_dir().join(format!("warren-users-hashes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("defs.json");
    let defs = json!({
        "rabbit_version": "3.10.8",
        "users": [
            {"name": "s512", "hashing_algorithm": "rabbit_password_hashing_sha512", "tags": [],
             "password_hash": "AQIDBPhTH2L5HGYB1LWOrn+YpvuQmVOXKGqgsuiJRIZTILRoEvblSJo/WAsym3IZTfuaIaK5KR2o5KwFfTv6KsxfMIE="},
            {"name": "md5", "hashing_algorithm": "rabbit_password_hashing_md5", "tags": [],
             "password_hash": "AQIDBDgk9ci8Lfh6CKE9Y0AUfmU=", "x-note": {"kept": true}},
            {"name": "clear", "password": "secret", "tags": ["management"]}
        ],
        "vhosts": [{"name": "/"}]
    });
    std::fs::write(&file, defs.to_string()).expect("write");
    let broker = TestBroker::start_with(|c| warren::Config {
        definitions: Some(file),
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
    broker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- limits ----

#[tokio::test]
async fn user_max_connections_refuses_with_530_at_connection_open() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    users.add("u", Some("pw")).expect("add");
    users
        .set_limits("u", &json!({"max-connections": 1}))
        .expect("limit");
    let first = login(broker.addr, "u", "pw").await.expect("first");
    let refusal = (
        530,
        "NOT_ALLOWED - connection refused for user 'u': user connection limit (1) is reached"
            .to_owned(),
        10,
        40,
    );
    assert_eq!(login(broker.addr, "u", "pw").await.err(), Some(refusal));
    // Other users are not counted.
    assert!(login(broker.addr, "guest", "guest").await.is_ok());
    // Once the first has gone, there is room again.
    let mut first = first;
    first.send(0, close()).await;
    first.method().await;
    common::wait_until("u's connection to go", || async {
        users.connection_count("u") == 0
    })
    .await;
    let _again = login(broker.addr, "u", "pw").await.expect("room again");
    // 0: no connection at all; negative: no limit (as RabbitMQ).
    users
        .set_limits("u", &json!({"max-connections": 0}))
        .expect("0");
    let zero = login(broker.addr, "u", "pw").await.err().map(|c| c.1);
    assert_eq!(
        zero.as_deref(),
        Some("NOT_ALLOWED - connection refused for user 'u': user connection limit (0) is reached")
    );
    users
        .set_limits("u", &json!({"max-connections": -1}))
        .expect("-1");
    let _more = login(broker.addr, "u", "pw").await.expect("no limit");
    broker.stop().await;
}

fn close() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

#[tokio::test]
async fn user_max_channels_counts_every_connection_of_the_user() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    users.add("u", Some("pw")).expect("add");
    users
        .set_limits("u", &json!({"max-channels": 2}))
        .expect("limit");
    let mut a = login(broker.addr, "u", "pw").await.expect("a");
    let mut b = login(broker.addr, "u", "pw").await.expect("b");
    a.open_channel(1).await;
    b.open_channel(1).await;
    // A closed channel makes room.
    b.send(1, channel_close()).await;
    b.method().await;
    b.open_channel(2).await;
    b.channel_open(3).await;
    // As RabbitMQ 3.10.8: the connection is closed, class and method 0.
    assert_eq!(
        parts(&b.expect_connection_close().await),
        (
            530,
            "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of (2)".to_owned(),
            0,
            0
        )
    );
    b.close_ok_then_closed().await;
    // b's channel went with it: a may open one more.
    common::wait_until("b's channel to go", || async {
        users.channel_count("u") == 1
    })
    .await;
    a.open_channel(2).await;
    users
        .set_limits("u", &json!({"max-channels": 0}))
        .expect("0");
    let mut c = login(broker.addr, "u", "pw").await.expect("c");
    c.channel_open(1).await;
    assert_eq!(c.expect_connection_close().await.reply_code, 530);
    broker.stop().await;
}

fn channel_close() -> AMQPClass {
    use amq_protocol::protocol::channel;
    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    }))
}

// ---- deletion ----

#[tokio::test]
async fn deleting_a_user_closes_their_connections_with_320() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    users.add("doomed", Some("pw")).expect("add");
    let mut one = login(broker.addr, "doomed", "pw").await.expect("one");
    one.open_channel(1).await;
    let mut two = login(broker.addr, "doomed", "pw").await.expect("two");
    let mut other = login(broker.addr, "guest", "guest").await.expect("guest");
    users.delete("doomed").expect("delete");
    // As RabbitMQ 3.10.8 (rabbitmqctl delete_user with a connection open).
    let expected = (
        320,
        "CONNECTION_FORCED - user 'doomed' is deleted".to_owned(),
        0,
        0,
    );
    for raw in [&mut one, &mut two] {
        assert_eq!(parts(&raw.expect_connection_close().await), expected);
        raw.close_ok_then_closed().await;
    }
    common::wait_until("the deleted user's connections to go", || async {
        users.connection_count("doomed") == 0
    })
    .await;
    assert_eq!(
        login(broker.addr, "doomed", "pw").await.err(),
        Some(refused("PLAIN"))
    );
    other.open_channel(1).await;
    assert_eq!(
        users.delete("doomed"),
        Err(UserError::NoSuchUser("doomed".into()))
    );
    broker.stop().await;
}

// ---- persistence, defaults, import ----

#[tokio::test]
async fn users_tags_and_limits_survive_a_restart() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    users.add("keep", Some("pw")).expect("add");
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

#[tokio::test]
async fn an_imported_definitions_file_is_merged_at_every_start() {
    let dir = std::env::temp_dir().join(format!("warren-users-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("defs.json");
    let defs = json!({
        "rabbit_version": "3.10.8",
        "users": [{"name": "svc", "tags": ["management"], "limits": {"max-connections": 2},
                   "hashing_algorithm": "rabbit_password_hashing_sha256",
                   "password_hash": "8i3vTR9eVfB2bb5LpI0PswTahgStSCv8qo+bVRHBeqoRpsG7"},
                  {"name": "hand-written", "password": "clear", "tags": []}],
        "vhosts": [{"name": "/"}, {"name": "svc-vhost"}],
        "permissions": [{"user": "svc", "vhost": "svc-vhost", "configure": ".*", "write": ".*", "read": ".*"}],
        "queues": [{"name": "svc.q", "vhost": "svc-vhost", "durable": true, "auto_delete": false, "arguments": {}}]
    });
    std::fs::write(&file, defs.to_string()).expect("write");
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
    let _ = std::fs::remove_dir_all(&dir);
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
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--log",
            "warn",
            "--data-dir",
        ])
        .arg(&dir)
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
