//! A vhost created through the API gives its creator full permissions in it, as RabbitMQ
//! 3.10's management plugin does (checked against the reference), so the UI's next step
//! (a policy, a queue in it) is allowed; an update grants nothing.

mod common;

use common::TestBroker;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_creator_of_a_vhost_may_use_it() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    assert_eq!(
        http.put("/api/vhosts/made", &json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        http.get("/api/vhosts/made/permissions").await.json(),
        json!([{"user": "guest", "vhost": "made", "configure": ".*", "write": ".*", "read": ".*"}])
    );
    let policy = json!({"pattern": "^q", "definition": {"max-length": 1}});
    assert_eq!(
        http.put("/api/policies/made/p", &policy).await.status,
        StatusCode::CREATED
    );
    // An update leaves permissions as they are (cleared here: still cleared after).
    assert_eq!(
        http.delete("/api/permissions/made/guest").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.put("/api/vhosts/made", &json!({"description": "d"}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get("/api/vhosts/made/permissions").await.json(),
        json!([])
    );
}
