//! warren's additions to the management API for finding things: browsing a queue's
//! ready messages without taking them (`GET /api/queues/{vhost}/{name}/browse`, with
//! paging by position and a search of payloads and headers), and the search by name
//! across vhosts (`GET /api/search`). Covered: a browse changes nothing (the same
//! answer twice, then a consumer gets every message unredelivered in the original
//! order), paged-out and lazy queues read back without being loaded, priority order,
//! quorum-typed queues, a queue consumed while it is browsed, every bound and refusal
//! with its status and text, and what each kind of user finds.
mod common;

use common::http::Http;
use common::{table, within, TestBroker};
use futures::StreamExt;
use hyper::StatusCode;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use serde_json::{json, Value};

/// A 1 KiB body that says which message it is (in text, so a search can find it).
fn body(n: u32) -> Vec<u8> {
    let mut b = format!("message-{n:06};").into_bytes();
    b.resize(1024, b'.');
    b
}

fn number_of(payload: &str) -> u32 {
    payload["message-".len()..][..6]
        .parse()
        .expect("a numbered payload")
}

async fn declare(ch: &Channel, queue: &str, args: FieldTable) {
    let options = QueueDeclareOptions {
        durable: args.inner().contains_key("x-queue-type"),
        ..Default::default()
    };
    within(ch.queue_declare(queue.into(), options, args))
        .await
        .unwrap();
}

/// Publishes numbered messages (with `props(n)`) and waits for their confirms.
async fn publish(
    ch: &Channel,
    queue: &str,
    range: std::ops::Range<u32>,
    props: impl Fn(u32) -> BasicProperties,
) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ok();
    for n in range {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &body(n),
            props(n),
        )
        .await
        .unwrap();
    }
    within(ch.wait_for_confirms()).await.unwrap();
}

fn plain(_: u32) -> BasicProperties {
    BasicProperties::default()
}

async fn browse(http: &Http, queue: &str, query: &str) -> Value {
    let r = http
        .get(&format!("/api/queues/%2F/{queue}/browse?{query}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// (position, number, redelivered) of each message of a browse answer.
fn seen(answer: &Value) -> Vec<(u64, u32, bool)> {
    answer["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["position"].as_u64().unwrap(),
                number_of(m["payload"].as_str().unwrap()),
                m["redelivered"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Consumes `count` messages (acking them): their numbers and redelivered flags.
async fn consume(ch: &Channel, queue: &str, count: usize) -> Vec<(u32, bool)> {
    ch.basic_qos(500, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let d = within(consumer.next()).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&d.data).into_owned();
        got.push((number_of(&text), d.redelivered));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    got
}

#[tokio::test]
async fn a_browse_changes_nothing_and_pages_by_position() {
    let b = TestBroker::start_with_management().await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    declare(&ch, "look", FieldTable::default()).await;
    publish(&ch, "look", 0..30, |n| {
        BasicProperties::default()
            .with_message_id(format!("id-{n}").into())
            .with_headers(table(&[("n", AMQPValue::LongInt(n as i32))]))
    })
    .await;

    let first = browse(&http, "look", "").await;
    assert_eq!(first["vhost"], "/");
    assert_eq!(first["queue"], "look");
    assert_eq!(first["messages_ready"], 30);
    assert_eq!(first["from"], 0);
    let want: Vec<(u64, u32, bool)> = (0..20).map(|n| (n as u64, n, false)).collect();
    assert_eq!(seen(&first), want, "20 from the head by default");
    let m = &first["messages"][3];
    assert_eq!(m["payload_bytes"], 1024);
    assert_eq!(m["payload_encoding"], "string");
    assert_eq!(m["exchange"], "");
    assert_eq!(m["routing_key"], "look");
    assert_eq!(m["properties"]["message_id"], "id-3");
    assert_eq!(m["properties"]["headers"]["n"], 3);
    assert!(m.get("message_count").is_none());
    assert_eq!(browse(&http, "look", "").await, first, "the same again");

    let page = browse(&http, "look", "from=25&count=10").await;
    let want: Vec<(u64, u32, bool)> = (25..30).map(|n| (n as u64, n, false)).collect();
    assert_eq!(seen(&page), want, "what is left from position 25");
    let past = browse(&http, "look", "from=30").await;
    assert_eq!(past["messages"], json!([]));
    assert_eq!(past["messages_ready"], 30);
    let none = browse(&http, "look", "count=0").await;
    assert_eq!(none["messages"], json!([]));

    let short = browse(&http, "look", "count=1&truncate=10").await;
    assert_eq!(short["messages"][0]["payload"], "message-00");
    assert_eq!(short["messages"][0]["payload_bytes"], 1024);
    let b64 = browse(&http, "look", "count=1&encoding=base64&truncate=3").await;
    assert_eq!(b64["messages"][0]["payload"], "bWVz");
    assert_eq!(b64["messages"][0]["payload_encoding"], "base64");

    // The queue's statistics saw no get, delivery or redelivery.
    let q = http.get("/api/queues/%2F/look").await.json();
    assert_eq!(q["messages_ready"], 30);
    let stats = &q["message_stats"];
    for key in ["get", "get_no_ack", "deliver", "deliver_get", "redeliver"] {
        assert!(stats.get(key).is_none_or(|v| v == 0), "{key}: {stats}");
    }

    let got = consume(&ch, "look", 30).await;
    assert_eq!(got, (0..30).map(|n| (n, false)).collect::<Vec<_>>());
    b.stop().await;
}

/// Page files on disk once the page I/O thread has caught up.
async fn page_files(b: &TestBroker) -> usize {
    b.server.broker().page_io_done().await;
    std::fs::read_dir(b.data_dir.join("pages"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn paged_out_messages_are_read_back_for_the_view_and_stay_paged() {
    let b = TestBroker::start_paging(256 * 1024).await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    declare(&ch, "deep", FieldTable::default()).await;
    let n = 6000u32; // about 6 MiB, far past the budget
    publish(&ch, "deep", 0..n, plain).await;
    let files = page_files(&b).await;
    assert!(files > 0, "the backlog is on disk");
    let used = b.server.broker().memory.used();

    for from in [0u32, 63, 64, 3001, 5990] {
        let answer = browse(&http, "deep", &format!("from={from}&count=20")).await;
        let upto = (from + 20).min(n);
        let want: Vec<(u64, u32, bool)> = (from..upto).map(|i| (i as u64, i, false)).collect();
        assert_eq!(seen(&answer), want, "from {from}");
    }
    // A search scans paged messages too.
    let found = browse(&http, "deep", "search=MESSAGE-005999&search_limit=6000").await;
    assert_eq!(seen(&found), vec![(5999, 5999, false)]);
    assert_eq!(found["scanned"], 6000);

    assert_eq!(
        page_files(&b).await,
        files,
        "still paged, in the same files"
    );
    let after = b.server.broker().memory.used();
    assert!(
        after <= used + 512 * 1024,
        "nothing was loaded into the queue: {used} -> {after} bytes"
    );
    let got = consume(&ch, "deep", n as usize).await;
    assert_eq!(got, (0..n).map(|i| (i, false)).collect::<Vec<_>>());
    b.stop().await;
}

#[tokio::test]
async fn paged_priority_levels_and_requeued_messages_show_as_consumers_get_them() {
    let b = TestBroker::start_paging(256 * 1024).await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    declare(
        &ch,
        "levels",
        table(&[("x-max-priority", AMQPValue::ShortShortUInt(2))]),
    )
    .await;
    let n = 3000u32;
    publish(&ch, "levels", 0..n, |i| {
        BasicProperties::default().with_priority((i % 3) as u8)
    })
    .await;
    assert!(page_files(&b).await > 0, "the levels page");
    // Two taken, then given back: they are redelivered now, back at their places.
    let mut taken = Vec::new();
    for _ in 0..2 {
        let m = ch
            .basic_get("levels".into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        taken.push(m);
    }
    for m in taken {
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let mut shown = Vec::new();
    for from in (0..n).step_by(500) {
        let answer = browse(&http, "levels", &format!("from={from}&count=500")).await;
        shown.extend(seen(&answer));
    }
    let positions: Vec<u64> = shown.iter().map(|s| s.0).collect();
    assert_eq!(positions, (0..n as u64).collect::<Vec<_>>());
    let shown: Vec<(u32, bool)> = shown.into_iter().map(|s| (s.1, s.2)).collect();
    let got = consume(&ch, "levels", n as usize).await;
    assert_eq!(shown, got, "the order and flags consumers get");
    assert_eq!(got.iter().filter(|g| g.1).count(), 2);
    b.stop().await;
}

#[tokio::test]
async fn lazy_quorum_typed_and_priority_queues_show_delivery_order() {
    let b = TestBroker::start_with_management().await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    let s = |v: &str| AMQPValue::LongString(v.into());

    declare(&ch, "lazy", table(&[("x-queue-mode", s("lazy"))])).await;
    publish(&ch, "lazy", 0..500, plain).await;
    let answer = browse(&http, "lazy", "from=400&count=5").await;
    let want: Vec<(u64, u32, bool)> = (400..405).map(|i| (i as u64, i, false)).collect();
    assert_eq!(seen(&answer), want);

    declare(&ch, "quorum", table(&[("x-queue-type", s("quorum"))])).await;
    publish(&ch, "quorum", 0..5, plain).await;
    let answer = browse(&http, "quorum", "").await;
    assert_eq!(seen(&answer).len(), 5);
    let got = consume(&ch, "quorum", 5).await;
    assert_eq!(got, (0..5).map(|i| (i, false)).collect::<Vec<_>>());

    declare(
        &ch,
        "prio",
        table(&[("x-max-priority", AMQPValue::ShortShortUInt(3))]),
    )
    .await;
    publish(&ch, "prio", 0..40, |i| {
        BasicProperties::default().with_priority((i % 5) as u8)
    })
    .await;
    let answer = browse(&http, "prio", "count=40").await;
    let shown: Vec<u32> = seen(&answer).into_iter().map(|s| s.1).collect();
    let got: Vec<u32> = consume(&ch, "prio", 40)
        .await
        .into_iter()
        .map(|g| g.0)
        .collect();
    assert_eq!(shown, got, "the order consumers get them in");
    assert_ne!(shown, (0..40).collect::<Vec<_>>());
    b.stop().await;
}

#[tokio::test]
async fn search_finds_payloads_headers_and_ids_within_the_limit() {
    let b = TestBroker::start_with_management().await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    declare(&ch, "find", FieldTable::default()).await;
    publish(&ch, "find", 0..100, |n| {
        let colour = if n % 10 == 7 { "Crimson" } else { "grey" };
        BasicProperties::default()
            .with_correlation_id(format!("corr-{n}").into())
            .with_headers(table(&[(
                "meta",
                AMQPValue::FieldTable(table(&[("colour", AMQPValue::LongString(colour.into()))])),
            )]))
    })
    .await;

    let red = browse(&http, "find", "search=crimson").await;
    assert_eq!(red["search"], "crimson");
    assert_eq!(red["scanned"], 100);
    let numbers: Vec<u32> = seen(&red).into_iter().map(|s| s.1).collect();
    assert_eq!(
        numbers,
        (0..100).filter(|n| n % 10 == 7).collect::<Vec<_>>()
    );

    let payload = browse(&http, "find", "search=Message-000042").await;
    assert_eq!(seen(&payload), vec![(42, 42, false)]);
    let corr = browse(&http, "find", "search=CORR-55").await;
    assert_eq!(seen(&corr), vec![(55, 55, false)]);

    // Up to `count` hits; the scan stops there.
    let two = browse(&http, "find", "search=crimson&count=2").await;
    assert_eq!(seen(&two).iter().map(|s| s.1).collect::<Vec<_>>(), [7, 17]);
    assert_eq!(two["scanned"], 18);
    // Only the first `search_limit` messages from `from` are scanned.
    let limited = browse(&http, "find", "search=crimson&search_limit=30").await;
    assert_eq!(limited["scanned"], 30);
    assert_eq!(seen(&limited).len(), 3);
    let later = browse(&http, "find", "search=crimson&from=50&search_limit=20").await;
    assert_eq!(
        seen(&later).iter().map(|s| s.1).collect::<Vec<_>>(),
        [57, 67]
    );
    let nothing = browse(&http, "find", "search=purple").await;
    assert_eq!(nothing["messages"], json!([]));
    assert_eq!(nothing["scanned"], 100);
    assert_eq!(consume(&ch, "find", 100).await.len(), 100);
    b.stop().await;
}

#[tokio::test]
async fn a_queue_consumed_while_it_is_browsed_loses_nothing() {
    let b = TestBroker::start_with_management().await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    declare(&ch, "busy", FieldTable::default()).await;
    let n = 3000u32;
    publish(&ch, "busy", 0..n, plain).await;
    let looking = tokio::spawn(async move {
        for round in 0..30u32 {
            let answer = browse(&http, "busy", &format!("from={}&count=50", round * 7)).await;
            for (pos, _, redelivered) in seen(&answer) {
                assert!(!redelivered, "at {pos}");
            }
            let ready = answer["messages_ready"].as_u64().unwrap();
            if ready == 0 {
                break;
            }
        }
    });
    let got = consume(&ch, "busy", n as usize).await;
    looking.await.unwrap();
    assert_eq!(got, (0..n).map(|i| (i, false)).collect::<Vec<_>>());
    b.stop().await;
}

#[tokio::test]
async fn an_answer_shows_at_most_64_mib_of_payload() {
    let b = TestBroker::start_with_management().await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    declare(&ch, "large", FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    const MIB: usize = 1024 * 1024;
    for n in 0..5u8 {
        let body = vec![b'a' + n; 17 * MIB];
        ch.basic_publish(
            "".into(),
            "large".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    within(ch.wait_for_confirms()).await.unwrap();
    let answer = browse(&http, "large", "truncate=1000000000").await;
    let shown: Vec<(u64, usize)> = answer["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let payload = m["payload"].as_str().unwrap().len();
            (m["payload_bytes"].as_u64().unwrap(), payload)
        })
        .collect();
    let full = (17 * MIB) as u64;
    assert_eq!(
        shown,
        [
            (full, 17 * MIB),
            (full, 17 * MIB),
            (full, 17 * MIB),
            (full, 13 * MIB)
        ],
        "three whole, the fourth cut at 64 MiB in all, the fifth left out"
    );
    b.stop().await;
}

/// (status, error, reason) of a refused call.
async fn refusal(http: &Http, path: &str) -> (StatusCode, String, String) {
    let r = http.get(path).await;
    let j = r.json();
    (
        r.status,
        j["error"].as_str().unwrap_or_default().to_owned(),
        j["reason"].as_str().unwrap_or_default().to_owned(),
    )
}

fn bad(reason: &str) -> (StatusCode, String, String) {
    (StatusCode::BAD_REQUEST, "bad_request".into(), reason.into())
}

#[tokio::test]
async fn browse_bounds_and_refusals() {
    let b = TestBroker::start_with_management().await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    declare(&ch, "q", FieldTable::default()).await;
    publish(&ch, "q", 0..3, plain).await;
    let path = |query: &str| format!("/api/queues/%2F/q/browse?{query}");

    assert_eq!(seen(&browse(&http, "q", "count=500").await).len(), 3);
    for (query, reason) in [
        (
            "count=501",
            "count must be a whole number from 0 to 500, not '501'",
        ),
        (
            "count=-1",
            "count must be a whole number from 0 to 500, not '-1'",
        ),
        (
            "count=many",
            "count must be a whole number from 0 to 500, not 'many'",
        ),
        (
            "from=-5",
            "from must be a whole number from 0 to 18446744073709551615, not '-5'",
        ),
        (
            "truncate=x",
            "truncate must be a whole number from 0 to 18446744073709551615, not 'x'",
        ),
        (
            "search=a&search_limit=100001",
            "search_limit must be a whole number from 1 to 100000, not '100001'",
        ),
        (
            "search=a&search_limit=0",
            "search_limit must be a whole number from 1 to 100000, not '0'",
        ),
        (
            "encoding=hex",
            "Unsupported encoding. Please use auto or base64.",
        ),
    ] {
        assert_eq!(refusal(&http, &path(query)).await, bad(reason), "{query}");
    }
    let long = "x".repeat(257);
    assert_eq!(
        refusal(&http, &path(&format!("search={long}"))).await,
        bad("search must be at most 256 bytes")
    );
    let most = browse(&http, "q", "search=message&search_limit=100000").await;
    assert_eq!(most["scanned"], 3);

    let not_found = (
        StatusCode::NOT_FOUND,
        "Object Not Found".into(),
        "Not Found".into(),
    );
    assert_eq!(
        refusal(&http, "/api/queues/%2F/nosuch/browse").await,
        not_found
    );
    assert_eq!(
        refusal(&http, "/api/queues/nosuch/q/browse").await,
        (
            StatusCode::NOT_FOUND,
            "not_found".into(),
            "vhost_not_found".into()
        )
    );
    let unauthorised = (
        StatusCode::UNAUTHORIZED,
        "not_authorized".into(),
        "Login failed".into(),
    );
    assert_eq!(refusal(&http.as_user(None), &path("")).await, unauthorised);

    // A user without permissions in the vhost, then one who may not read the queue.
    let admin = json!({"password": "pw", "tags": "management"});
    assert_eq!(
        http.put("/api/users/ann", &admin).await.status,
        StatusCode::CREATED
    );
    let ann = http.as_user(Some(("ann", "pw")));
    assert_eq!(
        refusal(&ann, &path("")).await,
        (
            StatusCode::UNAUTHORIZED,
            "not_authorised".into(),
            "User not authorised to access virtual host".into()
        )
    );
    let perms = json!({"configure": ".*", "write": ".*", "read": "^other$"});
    assert!(http
        .put("/api/permissions/%2F/ann", &perms)
        .await
        .status
        .is_success());
    assert_eq!(
        refusal(&ann, &path("")).await,
        (
            StatusCode::UNAUTHORIZED,
            "not_authorised".into(),
            "ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'ann'".into()
        )
    );

    // Another connection's exclusive queue is locked, as for a get.
    let options = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    within(ch.queue_declare("mine".into(), options, FieldTable::default()))
        .await
        .unwrap();
    let (status, _, reason) = refusal(&http, "/api/queues/%2F/mine/browse").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.starts_with("405 RESOURCE_LOCKED"), "{reason}");
    b.stop().await;
}

#[tokio::test]
async fn search_finds_names_across_vhosts_as_the_caller_may_see_them() {
    let b = TestBroker::start_with_management().await;
    let http = b.http();
    assert!(http
        .put("/api/vhosts/other", &json!({}))
        .await
        .status
        .is_success());
    let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
    assert!(http
        .put("/api/permissions/other/guest", &all)
        .await
        .status
        .is_success());
    for (vhost, queue) in [
        ("%2F", "orders.new"),
        ("other", "Orders.old"),
        ("other", "misc"),
    ] {
        let r = http
            .put(&format!("/api/queues/{vhost}/{queue}"), &json!({}))
            .await;
        assert!(r.status.is_success(), "{}", r.text());
    }
    let r = http
        .put("/api/exchanges/other/orders.x", &json!({"type": "topic"}))
        .await;
    assert!(r.status.is_success());
    let (_c, ch) = b.channel().await;
    publish(&ch, "orders.new", 0..2, plain).await;

    let found = http.get("/api/search?q=ORDERS").await;
    assert_eq!(found.status, StatusCode::OK);
    let found = found.json();
    assert_eq!(
        found["queues"],
        json!([
            {"vhost": "/", "name": "orders.new", "messages": 2, "consumers": 0},
            {"vhost": "other", "name": "Orders.old", "messages": 0, "consumers": 0},
        ])
    );
    assert_eq!(
        found["exchanges"],
        json!([{"vhost": "other", "name": "orders.x", "type": "topic"}])
    );
    assert_eq!(found["connections"], json!([]));
    assert_eq!(found["users"], json!([]));

    let one = http.get("/api/search?q=orders&limit=1").await.json();
    assert_eq!(one["queues"].as_array().unwrap().len(), 1);
    let conns = http.get("/api/search?q=127.0.0.1&limit=100").await.json();
    let conn = &conns["connections"][0];
    assert_eq!(conn["user"], "guest");
    assert_eq!(conn["vhost"], "/");
    assert!(conn["client"].as_str().unwrap().contains("lapin"), "{conn}");
    let users = http.get("/api/search?q=GUE").await.json();
    assert_eq!(
        users["users"],
        json!([{"name": "guest", "tags": ["administrator"]}])
    );

    for (query, reason) in [
        (
            "q=a&limit=0",
            "limit must be a whole number from 1 to 100, not '0'",
        ),
        (
            "q=a&limit=101",
            "limit must be a whole number from 1 to 100, not '101'",
        ),
        (
            "q=a&limit=ten",
            "limit must be a whole number from 1 to 100, not 'ten'",
        ),
    ] {
        assert_eq!(
            refusal(&http, &format!("/api/search?{query}")).await,
            bad(reason)
        );
    }
    let long = "y".repeat(257);
    assert_eq!(
        refusal(&http, &format!("/api/search?q={long}")).await,
        bad("q must be at most 256 bytes")
    );
    assert_eq!(
        refusal(&http.as_user(None), "/api/search?q=a").await,
        (
            StatusCode::UNAUTHORIZED,
            "not_authorized".into(),
            "Login failed".into()
        )
    );

    // A management user with access to `other` only: its queues, no users, and only
    // its own connections.
    let user = json!({"password": "pw", "tags": "management"});
    assert_eq!(
        http.put("/api/users/bob", &user).await.status,
        StatusCode::CREATED
    );
    assert!(http
        .put("/api/permissions/other/bob", &all)
        .await
        .status
        .is_success());
    let bob = http.as_user(Some(("bob", "pw")));
    let seen_by_bob = bob.get("/api/search?q=o").await.json();
    let names: Vec<&str> = seen_by_bob["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Orders.old"]);
    assert_eq!(seen_by_bob["users"], json!([]));
    assert_eq!(seen_by_bob["connections"], json!([]));
    b.stop().await;
}
