//! The `WWW-Authenticate` challenge on the management API's 401s: sent for a failed
//! login (RabbitMQ's header, so curl and browsers ask for credentials), left out for a
//! logged-in user refused by tag (as RabbitMQ 3.10.8 answers) and for the web UI's own
//! calls (`X-Requested-With: XMLHttpRequest`), whose wrong password must show the UI's
//! "Login failed" rather than the browser's native dialog.

mod common;

use common::TestBroker;
use hyper::{Method, StatusCode};
use serde_json::json;

const CHALLENGE: &str = "Basic realm=\"RabbitMQ Management\"";

#[tokio::test]
async fn a_failed_login_from_the_web_ui_has_no_challenge() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    for caller in [
        http.as_user(None),
        http.as_user(Some(("guest", "wrong"))),
        http.as_user(Some(("nobody", "guest"))),
    ] {
        for value in ["XMLHttpRequest", "xmlhttprequest"] {
            let reply = caller
                .request(
                    Method::GET,
                    "/api/whoami",
                    &[("x-requested-with", value)],
                    None,
                )
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            assert_eq!(reply.header("www-authenticate"), None);
            assert_eq!(
                reply.json(),
                json!({"error": "not_authorized", "reason": "Login failed"})
            );
        }
        // Any other value, or none, is a client that wants RabbitMQ's challenge.
        for headers in [&[("x-requested-with", "fetch")][..], &[]] {
            let reply = caller
                .request(Method::GET, "/api/whoami", headers, None)
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            assert_eq!(reply.header("www-authenticate"), Some(CHALLENGE));
        }
    }
    // The right password from the UI works as from anywhere.
    let reply = http
        .request(
            Method::GET,
            "/api/whoami",
            &[("x-requested-with", "XMLHttpRequest")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    broker.stop().await;
}

#[tokio::test]
async fn a_refusal_by_tag_has_no_challenge() {
    let broker = TestBroker::start_with_management().await;
    let users = broker.server.broker().users();
    users.add("plain", Some("pw")).expect("add user");
    users.add("watcher", Some("pw")).expect("add user");
    users
        .set_tags("watcher", vec!["management".into()])
        .expect("tags");
    let plain = broker.http().as_user(Some(("plain", "pw")));
    let reply = plain.get("/api/whoami").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), None);
    assert_eq!(
        reply.json(),
        json!({"error": "not_authorised", "reason": "Not management user"})
    );
    let reply = broker
        .http()
        .as_user(Some(("watcher", "pw")))
        .get("/api/users")
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), None);
    assert_eq!(
        reply.json(),
        json!({"error": "not_authorised", "reason": "Not administrator user"})
    );
    broker.stop().await;
}
