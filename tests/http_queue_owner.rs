//! A queue's exclusive owner in `GET /api/queues/{vhost}/{name}`: RabbitMQ's
//! `owner_pid_details` (the owning connection's name, peer host and port), which the web
//! UI's queue page links to; absent for a queue no connection owns, as in RabbitMQ.

mod common;

use common::{declare, exclusive, wait_until, TestBroker};
use lapin::options::QueueDeclareOptions;

#[tokio::test]
async fn exclusive_queue_names_its_owner_connection() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "owned", exclusive()).await;
    declare(&ch, "shared", QueueDeclareOptions::default()).await;

    wait_until("the connection is listed", || async {
        http.get("/api/connections")
            .await
            .json()
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    let conn = http.get("/api/connections").await.json()[0].clone();

    let owned = http.get("/api/queues/%2f/owned").await.json();
    assert_eq!(owned["exclusive"], true);
    let owner = &owned["owner_pid_details"];
    assert_eq!(owner["name"], conn["name"]);
    assert_eq!(owner["peer_host"], conn["peer_host"]);
    assert_eq!(owner["peer_port"], conn["peer_port"]);

    let shared = http.get("/api/queues/%2f/shared").await.json();
    assert_eq!(shared["exclusive"], false);
    assert!(shared.get("owner_pid_details").is_none(), "{shared}");
}
