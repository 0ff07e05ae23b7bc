//! The aliveness test and the health checks: RabbitMQ 3.10.8's bodies for success (200)
//! and failure (503), compared with the reference broker's.

mod common;
mod tls_support;

use common::TestBroker;
use hyper::StatusCode;
use serde_json::json;
use tls_support::{Ca, ServerFiles};

#[tokio::test]
async fn the_aliveness_test_declares_publishes_and_gets() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let reply = http.get("/api/aliveness-test/%2f").await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    // Again: the queue exists now and is empty after each test.
    assert_eq!(
        http.get("/api/aliveness-test/%2f").await.json(),
        json!({"status": "ok"})
    );
    let (_conn, ch) = broker.channel().await;
    assert_eq!(common::ready(&ch, "aliveness-test").await, 0);
    let reply = http.get("/api/aliveness-test/nosuch").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // A user without permissions in the vhost may not run it there.
    let b = broker.server.broker();
    b.users()
        .add_with_tags("m", Some("pw"), vec!["management".into()])
        .expect("user");
    let reply = http
        .as_user(Some(("m", "pw")))
        .get("/api/aliveness-test/%2f")
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "User not authorised to access virtual host"})
        )
    );
    // A vhost whose queue limit is reached fails the test with a 503.
    http.put("/api/vhosts/full", &json!({})).await;
    http.put(
        "/api/permissions/full/guest",
        &json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .await;
    http.put("/api/vhost-limits/full/max-queues", &json!({"value": 0}))
        .await;
    let reply = http.get("/api/aliveness-test/full").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["status"], "failed");
    broker.stop().await;
}

#[tokio::test]
async fn checks_answer_ok_as_the_reference_does() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let ok = json!({"status": "ok"});
    for path in ["alarms", "local-alarms", "virtual-hosts"] {
        let reply = http.get(&format!("/api/health/checks/{path}")).await;
        assert_eq!(
            (reply.status, reply.json()),
            (StatusCode::OK, ok.clone()),
            "{path}"
        );
    }
    for path in ["node-is-quorum-critical", "node-is-mirror-sync-critical"] {
        let reply = http.get(&format!("/api/health/checks/{path}")).await;
        assert_eq!(
            reply.json(),
            json!({"status": "ok", "reason": "single node cluster"})
        );
    }
    // 3.10.8 has no is-in-service check.
    assert_eq!(
        http.get("/api/health/checks/is-in-service").await.status,
        StatusCode::NOT_FOUND
    );
    // Without TLS no certificate expires.
    assert_eq!(
        http.get("/api/health/checks/certificate-expiration/1/weeks")
            .await
            .json(),
        ok
    );
    let reply = http
        .get("/api/health/checks/certificate-expiration/1/fortnights")
        .await;
    assert_eq!(
        (reply.status, reply.json()["reason"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("Time unit not recognised. Supported units: days, weeks, months, years.")
        )
    );
    let reply = http
        .get("/api/health/checks/certificate-expiration/x/days")
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "Invalid expiration value."})
    );
    // Any management user may ask; no login, no answer.
    assert_eq!(
        http.as_user(None)
            .get("/api/health/checks/alarms")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    broker.stop().await;
}

#[tokio::test]
async fn listener_checks_name_what_is_missing() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let amqp = broker.addr.port();
    let mgmt = broker.server.management_addr().expect("management").port();
    let reply = http
        .get(&format!("/api/health/checks/port-listener/{amqp}"))
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::OK, json!({"status": "ok", "port": amqp}))
    );
    let reply = http.get("/api/health/checks/port-listener/1").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let mut ports = vec![amqp, mgmt];
    ports.sort_unstable();
    assert_eq!(
        reply.json(),
        json!({"status": "failed", "reason": "No active listener", "missing": 1, "ports": ports})
    );
    let reply = http.get("/api/health/checks/port-listener/abc").await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "Invalid port"})
    );
    for name in ["amqp", "AMQP091", "amqp0-9-1"] {
        let reply = http
            .get(&format!("/api/health/checks/protocol-listener/{name}"))
            .await;
        assert_eq!(
            reply.json(),
            json!({"status": "ok", "protocol": "amqp"}),
            "{name}"
        );
    }
    assert_eq!(
        http.get("/api/health/checks/protocol-listener/management")
            .await
            .json(),
        json!({"status": "ok", "protocol": "http"})
    );
    let reply = http.get("/api/health/checks/protocol-listener/amqps").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.json(),
        json!({"status": "failed", "reason": "No active listener", "missing": "amqp/ssl", "protocols": ["amqp", "http"]})
    );
    broker.stop().await;
}

#[tokio::test]
async fn certificate_expiration_reads_the_listeners_certificates() {
    let ca = Ca::new("warren health CA");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2090, 3, 4);
    let server = ca.sign(params);
    let files = ServerFiles::write(&ca, &server);
    let broker = TestBroker::start_with(|c| {
        files.configure(warren::Config {
            management_port: warren::ListenerPort::On(0),
            ..c
        })
    })
    .await;
    let http = broker.http();
    let reply = http
        .get("/api/health/checks/certificate-expiration/1/days")
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        http.get("/api/health/checks/protocol-listener/amqps")
            .await
            .json(),
        json!({"status": "ok", "protocol": "amqp/ssl"})
    );
    // Within 100 years the server certificate (2090) expires; the CA (4096) does not.
    let reply = http
        .get("/api/health/checks/certificate-expiration/100/years")
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = reply.json();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["reason"], "Certificates expiring");
    let expired = &body["expired"][0];
    assert_eq!(expired["protocol"], "amqp/ssl");
    assert_eq!(expired["certfile"], files.cert.display().to_string());
    assert_eq!(
        expired["certfile_expires_on"],
        json!(["2090-03-04 0:00:00"])
    );
    assert_eq!(expired["cacertfile_expires_on"], json!([]));
    broker.stop().await;
    let _ = std::fs::remove_dir_all(&files.dir);
}

#[tokio::test]
async fn an_alarm_fails_the_alarm_checks_with_rabbitmqs_body() {
    // No disk has this much free space: the disk alarm is on from the start.
    let broker = TestBroker::start_with(|c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        disk_free_limit: u64::MAX / 2,
        ..c
    })
    .await;
    let http = broker.http();
    common::wait_until("the disk alarm", || async {
        broker.server.broker().memory.alarmed()
    })
    .await;
    for (path, reason) in [
        ("alarms", "There are alarms in effect in the cluster"),
        ("local-alarms", "There are alarms in effect on the node"),
    ] {
        let reply = http.get(&format!("/api/health/checks/{path}")).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        let body = reply.json();
        assert_eq!(
            (body["status"].clone(), body["reason"].clone()),
            (json!("failed"), json!(reason))
        );
        assert_eq!(body["alarms"][0]["resource"], "disk");
        assert!(body["alarms"][0]["node"]
            .as_str()
            .expect("node")
            .starts_with("rabbit@"));
    }
    broker.stop().await;
}
