//! The management listener itself: who may log in, RabbitMQ's error bodies, and that
//! the listener lives and ends with the broker.

mod common;

use common::TestBroker;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn whoami_answers_the_caller_with_their_tags() {
    let broker = TestBroker::start_with_management().await;
    let reply = broker.http().get("/api/whoami").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"name": "guest", "tags": ["administrator"]})
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_login_is_401_with_a_basic_challenge() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    for caller in [
        http.as_user(None),
        http.as_user(Some(("guest", "wrong"))),
        http.as_user(Some(("nobody", "guest"))),
    ] {
        let reply = caller.get("/api/whoami").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"RabbitMQ Management\"")
        );
        assert_eq!(
            reply.json(),
            json!({"error": "not_authorized", "reason": "Login failed"})
        );
    }
    // A malformed Authorization header is a failed login too, never a panic.
    for value in ["Basic", "Basic !!!", "Bearer x", "Basic Z3Vlc3Q=", ""] {
        let reply = http
            .as_user(None)
            .request(
                hyper::Method::GET,
                "/api/whoami",
                &[("authorization", value)],
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{value:?}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_user_without_a_management_tag_is_refused() {
    let broker = TestBroker::start_with_management().await;
    let users = broker.server.broker().users();
    users.add("plain", Some("pw")).expect("add user");
    let reply = broker
        .http()
        .as_user(Some(("plain", "pw")))
        .get("/api/whoami")
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.json(),
        json!({"error": "not_authorised", "reason": "Not management user"})
    );
    users
        .set_tags("plain", vec!["monitoring".into()])
        .expect("tags");
    let reply = broker
        .http()
        .as_user(Some(("plain", "pw")))
        .get("/api/whoami")
        .await;
    assert_eq!(
        reply.json(),
        json!({"name": "plain", "tags": ["monitoring"]})
    );
    broker.stop().await;
}

#[tokio::test]
async fn an_unknown_path_is_rabbitmqs_404() {
    let broker = TestBroker::start_with_management().await;
    let reply = broker.http().get("/api/no-such-thing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json(),
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_listener_is_off_unless_asked_for_and_closes_with_the_broker() {
    let off = TestBroker::start().await;
    assert!(off.server.management_addr().is_none());
    off.stop().await;
    let broker = TestBroker::start_with_management().await;
    let addr = broker.server.management_addr().expect("on");
    broker.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
