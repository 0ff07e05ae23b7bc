//! Connections, channels and consumers in the management API: shapes as RabbitMQ 3.10.8
//! writes them (compared side by side with the reference), who sees what per tag, and
//! DELETE closing a connection with 320 CONNECTION_FORCED and the X-Reason text.

mod common;
mod tls_support;

use common::login::{login, parts};
use common::{amqp_error, next_error, wait_until, within, TestBroker};
use hyper::{Method, StatusCode};
use lapin::options::{BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Value};

/// A broker with the API on, a user `mgmt` (management tag) and `mon` (monitoring),
/// both with permissions on "/".
async fn broker() -> TestBroker {
    let broker = TestBroker::start_with_management().await;
    let b = broker.server.broker();
    for (user, tag) in [("mgmt", "management"), ("mon", "monitoring"), ("plain", "")] {
        b.users().add(user, Some("pw")).expect("add user");
        if !tag.is_empty() {
            b.users().set_tags(user, vec![tag.into()]).expect("tags");
        }
        b.set_permissions(user, "/", ".*", ".*", ".*")
            .expect("permissions");
    }
    broker
}

async fn connect_as(broker: &TestBroker, user: &str, password: &str) -> Connection {
    let url = format!("amqp://{user}:{password}@{}/%2f", broker.addr);
    within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("connect")
}

/// The one connection of `user` the API lists, once it is registered.
async fn connection_of(broker: &TestBroker, user: &str) -> Value {
    let http = broker.http();
    common::eventually(&format!("a connection of {user}"), || async {
        let list = http.get("/api/connections").await.json();
        list.as_array()
            .and_then(|l| l.iter().find(|c| c["user"] == user))
            .cloned()
    })
    .await
}

#[tokio::test]
async fn connections_channels_and_consumers_have_rabbitmqs_shapes() {
    let broker = broker().await;
    let conn = broker.connect().await;
    let ch = within(conn.create_channel()).await.expect("channel");
    within(ch.basic_qos(10, BasicQosOptions::default()))
        .await
        .expect("qos");
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm");
    common::declare_queue(&ch, "conn-shape").await;
    let _consumer = within(ch.basic_consume(
        "conn-shape".into(),
        "tag-1".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("consume");
    let c = connection_of(&broker, "guest").await;
    let name = c["name"].as_str().expect("name").to_owned();
    let expected_name = format!(
        "{} -> {}",
        c["peer_host"].as_str().unwrap().to_owned() + ":" + &c["peer_port"].to_string(),
        broker.addr
    );
    assert_eq!(name, expected_name);
    for (k, v) in [
        ("user", json!("guest")),
        ("vhost", json!("/")),
        ("protocol", json!("AMQP 0-9-1")),
        ("auth_mechanism", json!("PLAIN")),
        ("ssl", json!(false)),
        ("state", json!("running")),
        ("type", json!("network")),
        ("host", json!("127.0.0.1")),
        ("port", json!(broker.addr.port())),
        ("channels", json!(1)),
        ("frame_max", json!(131072)),
    ] {
        assert_eq!(c[k], v, "{k}");
    }
    assert_eq!(
        c["client_properties"]["capabilities"]["publisher_confirms"],
        true
    );
    assert!(c["client_properties"]["product"].is_string());
    for k in [
        "recv_oct",
        "recv_cnt",
        "send_oct",
        "send_cnt",
        "connected_at",
        "timeout",
        "channel_max",
    ] {
        assert!(c[k].is_u64(), "{k}: {}", c[k]);
    }
    assert!(c["recv_oct"].as_u64().unwrap() > 0);
    assert!(c["recv_oct_details"]["rate"].is_f64());
    assert!(
        c.get("recv_cnt_details").is_none(),
        "as the reference: no rate for counts"
    );
    let http = broker.http();
    let one = http
        .get(&format!(
            "/api/connections/{}",
            common::http::segment(&name)
        ))
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["name"], json!(name));
    let channels = http
        .get(&format!(
            "/api/connections/{}/channels",
            common::http::segment(&name)
        ))
        .await
        .json();
    let chan = &channels[0];
    let chan_name = format!("{name} (1)");
    for (k, v) in [
        ("name", json!(chan_name)),
        ("number", json!(1)),
        ("prefetch_count", json!(10)),
        ("global_prefetch_count", json!(0)),
        ("confirm", json!(true)),
        ("transactional", json!(false)),
        ("consumer_count", json!(1)),
        ("messages_unacknowledged", json!(0)),
        ("user", json!("guest")),
        ("vhost", json!("/")),
        ("state", json!("running")),
    ] {
        assert_eq!(chan[k], v, "{k}");
    }
    assert_eq!(chan["connection_details"]["name"], json!(name));
    assert!(chan["idle_since"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(chan["message_stats"]["publish"], 0);
    assert!(chan["message_stats"]["deliver_get_details"]["rate"].is_f64());
    let single = http
        .get(&format!(
            "/api/channels/{}",
            common::http::segment(&chan_name)
        ))
        .await;
    assert_eq!(single.status, StatusCode::OK);
    let single = single.json();
    assert_eq!(single["name"], json!(chan_name));
    // As RabbitMQ's: the one channel lists its consumers, as /api/consumers shows them.
    assert_eq!(
        single["consumer_details"],
        http.get("/api/consumers").await.json()
    );
    assert_eq!(single["deliveries"], json!([]));
    assert_eq!(single["publishes"], json!([]));
    for path in ["/api/channels", "/api/vhosts/%2F/channels"] {
        assert_eq!(
            http.get(path).await.json().as_array().map(Vec::len),
            Some(1),
            "{path}"
        );
    }
    assert_eq!(
        http.get("/api/vhosts/%2F/connections").await.json()[0]["name"],
        json!(name)
    );
    let consumers = http.get("/api/consumers").await.json();
    assert_eq!(consumers, http.get("/api/consumers/%2F").await.json());
    let consumer = &consumers[0];
    assert_eq!(consumer["consumer_tag"], "tag-1");
    assert_eq!(
        consumer["queue"],
        json!({"name": "conn-shape", "vhost": "/"})
    );
    assert_eq!(consumer["ack_required"], true);
    assert_eq!(consumer["prefetch_count"], 10);
    assert_eq!(consumer["channel_details"]["name"], json!(chan_name));
    assert_eq!(consumer["arguments"], json!({}));
    // Lists go through the shared paging and columns.
    let paged = http
        .get("/api/connections?page=1&page_size=10&columns=name,user")
        .await
        .json();
    assert_eq!(paged["items"], json!([{"name": name, "user": "guest"}]));
    // Closing the channel takes it out of the lists.
    within(ch.close(200, "bye".into())).await.expect("close");
    wait_until("the channel to go", || async {
        http.get("/api/channels").await.json() == json!([])
    })
    .await;
    assert_eq!(http.get("/api/consumers").await.json(), json!([]));
    broker.stop().await;
}

#[tokio::test]
async fn unknown_names_and_vhosts_are_404() {
    let broker = broker().await;
    let http = broker.http();
    for path in [
        "/api/connections/nope",
        "/api/connections/nope/channels",
        "/api/channels/nope",
        "/api/channels/127.0.0.1%3A1%20-%3E%20127.0.0.1%3A2%20(1)",
        "/api/vhosts/nope/connections",
        "/api/vhosts/nope/channels",
        "/api/consumers/nope",
    ] {
        let reply = http.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            reply.json(),
            json!({"error": "Object Not Found", "reason": "Not Found"})
        );
    }
    let reply = http.delete("/api/connections/nope").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // As the reference: a user with no connection has an empty list, and deleting
    // them all is done.
    assert_eq!(
        http.get("/api/connections/username/nobody").await.json(),
        json!([])
    );
    assert_eq!(
        http.delete("/api/connections/username/nobody").await.status,
        StatusCode::NO_CONTENT
    );
    broker.stop().await;
}

#[tokio::test]
async fn management_users_see_only_their_own_connections() {
    let broker = broker().await;
    let _guest = broker.connect().await;
    let mine = connect_as(&broker, "mgmt", "pw").await;
    let _ch = within(mine.create_channel()).await.expect("channel");
    let guest_name = connection_of(&broker, "guest").await["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let own_name = connection_of(&broker, "mgmt").await["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = broker.http();
    let mgmt = http.as_user(Some(("mgmt", "pw")));
    let mon = http.as_user(Some(("mon", "pw")));
    let users = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["user"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(users(mgmt.get("/api/connections").await.json()), ["mgmt"]);
    assert_eq!(users(mgmt.get("/api/channels").await.json()), ["mgmt"]);
    assert_eq!(
        users(mgmt.get("/api/vhosts/%2F/connections").await.json()),
        ["mgmt"]
    );
    assert_eq!(
        mon.get("/api/connections")
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let refused =
        json!({"error": "not_authorised", "reason": "User not authorised to access object"});
    let guest_path = format!("/api/connections/{}", common::http::segment(&guest_name));
    for reply in [
        mgmt.get(&guest_path).await,
        mgmt.get(&format!("{guest_path}/channels")).await,
        mgmt.delete(&guest_path).await,
        mon.delete(&guest_path).await,
        mgmt.get("/api/connections/username/guest").await,
        mgmt.delete("/api/connections/username/guest").await,
        mon.delete("/api/connections/username/guest").await,
    ] {
        assert_eq!(
            (reply.status, reply.json()),
            (StatusCode::UNAUTHORIZED, refused.clone())
        );
    }
    assert_eq!(
        mgmt.get(&format!(
            "/api/connections/{}",
            common::http::segment(&own_name)
        ))
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(mon.get(&guest_path).await.status, StatusCode::OK);
    assert_eq!(
        users(mon.get("/api/connections/username/guest").await.json()),
        ["guest"]
    );
    assert_eq!(
        users(mgmt.get("/api/connections/username/mgmt").await.json()),
        ["mgmt"]
    );
    let no_tag = http
        .as_user(Some(("plain", "pw")))
        .get("/api/connections")
        .await;
    assert_eq!(
        (no_tag.status, no_tag.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "Not management user"})
        )
    );
    // A management user may close their own connection.
    assert_eq!(
        mgmt.delete(&format!(
            "/api/connections/{}",
            common::http::segment(&own_name)
        ))
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    broker.stop().await;
}

#[tokio::test]
async fn delete_closes_a_lapin_connection_with_320_and_the_reason() {
    let broker = broker().await;
    let conn = broker.connect().await;
    let mut events = Box::pin(conn.events_listener());
    let name = connection_of(&broker, "guest").await["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = broker
        .http()
        .request(
            Method::DELETE,
            &format!("/api/connections/{}", common::http::segment(&name)),
            &[("x-reason", "bye now")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    // As the reference told pika: (320) 'CONNECTION_FORCED - bye now'.
    let err = next_error(&mut events).await;
    assert_eq!(
        amqp_error(&err),
        (320, "CONNECTION_FORCED - bye now".to_owned())
    );
    wait_until("the closed connection to leave the list", || async {
        broker.http().get("/api/connections").await.json() == json!([])
    })
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn delete_without_a_reason_and_with_odd_reasons() {
    let broker = broker().await;
    let http = broker.http();
    let long = "x".repeat(10_000);
    let cases: [(Option<Vec<u8>>, String); 3] = [
        // The reference's default text (pika saw it after a DELETE without X-Reason).
        (
            None,
            "CONNECTION_FORCED - Closed via management plugin".to_owned(),
        ),
        // Longer than a reply text may be: cut to 255 bytes.
        (
            Some(long.clone().into_bytes()),
            format!("CONNECTION_FORCED - {}", &long[..255 - 20]),
        ),
        // Not UTF-8: replaced, never a panic.
        (
            Some(b"caf\xe9".to_vec()),
            "CONNECTION_FORCED - caf\u{fffd}".to_owned(),
        ),
    ];
    for (reason, expected) in cases {
        let mut raw = login(broker.addr, "guest", "guest").await.expect("login");
        let name = connection_of(&broker, "guest").await["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/api/connections/{}", common::http::segment(&name));
        let reply = match &reason {
            None => http.delete(&path).await.status,
            Some(bytes) => raw_delete(&broker, &path, bytes).await,
        };
        assert_eq!(reply, StatusCode::NO_CONTENT);
        let close = raw.expect_connection_close().await;
        assert_eq!(parts(&close), (320, expected, 0, 0));
        raw.close_ok_then_closed().await;
        wait_until("the connection to leave the list", || async {
            http.get("/api/connections").await.json() == json!([])
        })
        .await;
    }
    broker.stop().await;
}

/// DELETE `path` as guest with an X-Reason of any bytes (the test client only sends
/// text headers), over a plain socket; the status it answers.
async fn raw_delete(broker: &TestBroker, path: &str, reason: &[u8]) -> StatusCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = broker.server.management_addr().expect("API on");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "DELETE {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: {}\r\nconnection: close\r\nx-reason: ",
        common::http::basic("guest", "guest")
    )
    .into_bytes();
    req.extend_from_slice(reason);
    req.extend_from_slice(b"\r\n\r\n");
    s.write_all(&req).await.expect("write");
    let mut reply = Vec::new();
    within(s.read_to_end(&mut reply)).await.expect("read");
    let code = String::from_utf8_lossy(&reply[9..12])
        .parse::<u16>()
        .expect("status");
    StatusCode::from_u16(code).expect("status")
}

#[tokio::test]
async fn delete_by_username_closes_every_connection_of_the_user() {
    let broker = broker().await;
    let mut one = login(broker.addr, "mgmt", "pw").await.expect("one");
    let mut two = login(broker.addr, "mgmt", "pw").await.expect("two");
    let _guest = broker.connect().await;
    wait_until("three connections", || async {
        broker
            .http()
            .get("/api/connections")
            .await
            .json()
            .as_array()
            .map(Vec::len)
            == Some(3)
    })
    .await;
    let reply = broker.http().delete("/api/connections/username/mgmt").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    for raw in [&mut one, &mut two] {
        let close = raw.expect_connection_close().await;
        assert_eq!(
            parts(&close),
            (
                320,
                "CONNECTION_FORCED - Closed via management plugin".into(),
                0,
                0
            )
        );
        raw.close_ok_then_closed().await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_panicking_connection_leaves_no_entry() {
    let broker = broker().await;
    let conn = broker.connect().await;
    let _ch = within(conn.create_channel()).await.expect("channel");
    connection_of(&broker, "guest").await;
    let ch = within(conn.create_channel()).await.expect("channel");
    let declared = within(ch.queue_declare(
        warren::testing::PANIC_QUEUE.into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await;
    assert!(declared.is_err());
    let http = broker.http();
    wait_until("the panicked connection to leave the registry", || async {
        http.get("/api/connections").await.json() == json!([])
            && http.get("/api/channels").await.json() == json!([])
    })
    .await;
    let overview = http.get("/api/overview").await.json();
    assert_eq!(overview["object_totals"]["connections"], 0);
    assert_eq!(overview["churn_rates"]["connection_closed"], 1);
    broker.stop().await;
}

#[tokio::test]
async fn a_tls_connection_shows_its_session() {
    use tls_support::{client_config, Ca, ServerFiles, TlsProxy};
    let ca = Ca::new("warren stats CA");
    let files = ServerFiles::write(&ca, &ca.server());
    let broker = TestBroker::start_with(|c| {
        files.configure(warren::Config {
            management_port: warren::ListenerPort::On(0),
            ..c
        })
    })
    .await;
    let tls_addr = broker.server.tls_addr().expect("TLS listener");
    let proxy = TlsProxy::start(tls_addr, client_config(&ca, None, &[])).await;
    let _conn = within(Connection::connect(
        &proxy.url(),
        ConnectionProperties::default(),
    ))
    .await
    .expect("connect over TLS");
    let c = connection_of(&broker, "guest").await;
    assert_eq!(c["ssl"], true);
    assert_eq!(c["port"], tls_addr.port());
    assert_eq!(c["ssl_protocol"], "tlsv1.3");
    assert_eq!(c["ssl_key_exchange"], "any");
    assert!(c["ssl_cipher"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(c["ssl_hash"].as_str().is_some_and(|s| s.starts_with("sha")));
    broker.stop().await;
    let _ = std::fs::remove_dir_all(&files.dir);
}
