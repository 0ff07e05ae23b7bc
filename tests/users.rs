//! Users at run time, as RabbitMQ 3.10 has them: logins against stored salted hashes,
//! passwordless users, loopback_users, per-user max-connections and max-channels, and
//! deleting a user with open connections. Start-up (default user, imported definitions,
//! restarts) is in `users_boot.rs`.
//!
//! Expected codes and texts were taken from the reference RabbitMQ 3.10.8 with a raw
//! AMQP client (see the report of the `identity` branch).

mod common;

use common::login::{channel_close, connection_close, login, login_as, parts, refused};
use common::raw::{plain, Raw};
use common::{non_loopback_ipv4, within, TestBroker};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use warren::testing::UserError;

/// `rabbitmqctl add_user` then `set_permissions -p / NAME ".*" ".*" ".*"`: a user that
/// can open a connection on `/` (`None`: passwordless).
fn add_user(broker: &TestBroker, name: &str, password: Option<&str>) {
    let b = broker.server.broker();
    b.users().add(name, password).expect("add user");
    b.set_permissions(name, "/", ".*", ".*", ".*")
        .expect("set permissions");
}

const REFUSED_PLAIN: &str = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.";

// ---- logins ----

#[tokio::test]
async fn users_log_in_with_their_password_only() {
    let broker = TestBroker::start().await;
    add_user(&broker, "u1", Some("pw1"));
    add_user(&broker, "nopw", None);
    add_user(&broker, "empty", Some(""));
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
    add_user(&broker, "u", Some("old"));
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
            bind: vec!["0.0.0.0".parse().unwrap()],
            loopback_users: users.into(),
            ..c
        }
    };
    // The default: guest from loopback only; other users from anywhere.
    let broker = TestBroker::start_with(on_all("guest")).await;
    add_user(&broker, "u1", Some("pw"));
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
    add_user(&broker, "u1", Some("pw"));
    let remote = SocketAddr::new(ip, broker.addr.port());
    assert_eq!(
        login(remote, "u1", "pw").await.err(),
        Some(refused("PLAIN"))
    );
    assert!(login(broker.addr, "u1", "pw").await.is_ok());
    broker.stop().await;
}

// ---- limits ----

#[tokio::test]
async fn user_max_connections_refuses_with_530_at_connection_open() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    add_user(&broker, "u", Some("pw"));
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
    first.send(0, connection_close()).await;
    first.method().await;
    common::wait_until("u's connection to go", || async {
        users.connection_count("u") == 0
    })
    .await;
    let again = login(broker.addr, "u", "pw").await.expect("room again");
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
    let more = login(broker.addr, "u", "pw").await.expect("no limit");
    // Gone before the stop: the shutdown would wait for their close-ok (3 s).
    drop((first, again, more));
    broker.stop().await;
}

#[tokio::test]
async fn user_max_channels_counts_every_connection_of_the_user() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    add_user(&broker, "u", Some("pw"));
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
    // Gone before the stop: the shutdown would wait for their close-ok (3 s).
    drop((a, b, c));
    broker.stop().await;
}

// ---- deletion ----

#[tokio::test]
async fn deleting_a_user_closes_their_connections_with_320() {
    let broker = TestBroker::start().await;
    let users = broker.server.broker().users();
    add_user(&broker, "doomed", Some("pw"));
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
    // Gone before the stop: the shutdown would wait for their close-ok (3 s).
    drop((one, two, other));
    broker.stop().await;
}
