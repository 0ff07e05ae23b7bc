//! The manual clock from outside and at the connection: heartbeats and the handshake
//! timeout follow it; `/api/warren/clock` and `warren ctl clock` read and move it, with
//! their refusals; the binary refuses `--clock manual` on a data directory. No test
//! sleeps: each waits on an event (a frame, a closed socket, an answer) that the move
//! causes.
mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{channel, AMQPClass};
use common::http::Http;
use common::raw::{encode, Next, Raw};
use common::TestBroker;
use hyper::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};
use warren::Clock;

/// 2030-01-01T00:00:00Z in Unix ms.
const START_MS: i64 = 1_893_456_000_000;
/// How long a test waits for what a move caused (real time, an upper bound only).
const BOUND: Duration = Duration::from_secs(10);

fn manual_clock() -> Clock {
    Clock::manual_at(UNIX_EPOCH + Duration::from_millis(START_MS as u64))
}

async fn broker_on(clock: &Clock, management: bool) -> TestBroker {
    let port = if management {
        warren::ListenerPort::On(0)
    } else {
        warren::ListenerPort::Off
    };
    TestBroker::start_with(|c| warren::Config {
        clock: clock.clone(),
        management_port: port,
        ..c
    })
    .await
}

async fn advance(clock: &Clock, by: Duration) {
    common::within(clock.advance(by)).await.expect("manual");
}

// ---- connections ----

#[tokio::test]
async fn a_manual_clock_proposes_no_heartbeats() {
    let clock = manual_clock();
    let broker = broker_on(&clock, false).await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", common::raw::plain("guest", "guest"), true)
        .await;
    assert_eq!(raw.expect_tune().await.heartbeat, 0);
}

#[tokio::test]
async fn a_client_silent_for_three_heartbeat_intervals_of_clock_time_is_dropped() {
    let clock = manual_clock();
    let broker = broker_on(&clock, false).await;
    let mut raw = Raw::open_tuned(broker.addr, 2047, 131_072, 10).await;
    advance(&clock, Duration::from_secs(30)).await;
    raw.expect_closed_within(BOUND).await;
    // Two seconds: half of it is the connection's one-second tick before heartbeats,
    // and the monitor must start all the same.
    let mut raw = Raw::open_tuned(broker.addr, 2047, 131_072, 2).await;
    advance(&clock, Duration::from_secs(6)).await;
    raw.expect_closed_within(BOUND).await;
}

#[tokio::test]
async fn heartbeats_are_sent_on_the_clock_and_a_talking_client_stays() {
    let clock = manual_clock();
    let broker = broker_on(&clock, false).await;
    let mut raw = Raw::open_tuned(broker.addr, 2047, 131_072, 10).await;
    let heartbeat = encode(&AMQPFrame::Heartbeat);
    for _ in 0..6 {
        raw.bytes(&heartbeat).await;
        advance(&clock, Duration::from_secs(10)).await;
        // Nothing went out for half an interval of clock time: the broker's heartbeat.
        match common::within(raw.next()).await {
            Next::Frame(AMQPFrame::Heartbeat) => {}
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
    // Six intervals on, the connection still serves.
    raw.send(
        1,
        AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
    )
    .await;
    match raw.method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))) => {}
        other => panic!("expected channel.open-ok, got {other:?}"),
    }
}

#[tokio::test]
async fn the_handshake_timeout_follows_the_clock() {
    let clock = manual_clock();
    let broker = broker_on(&clock, false).await;
    let mut idle = Raw::connect(broker.addr).await;
    let mut late = Raw::connect(broker.addr).await;
    advance(&clock, Duration::from_secs(9)).await;
    // Nine seconds in, a client may still begin.
    late.bytes(b"AMQP\x00\x00\x09\x01").await;
    match late.method().await {
        (0, AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::Start(_))) => {}
        other => panic!("expected connection.start, got {other:?}"),
    }
    advance(&clock, Duration::from_secs(1)).await;
    idle.expect_silent_close_within(BOUND).await;
    late.expect_closed_within(BOUND).await;
}

// ---- HTTP ----

fn api(broker: &TestBroker) -> Http {
    broker.http()
}

async fn clock_json(http: &Http) -> Value {
    let reply = http.get("/api/warren/clock").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn the_clock_endpoint_shows_and_moves_a_manual_clock() {
    let clock = manual_clock();
    let broker = broker_on(&clock, true).await;
    let http = api(&broker);
    assert_eq!(
        clock_json(&http).await,
        json!({"mode": "manual", "now": "2030-01-01T00:00:00.000Z", "now_ms": START_MS})
    );
    let moved = http
        .post("/api/warren/clock/advance", &json!({"by": "1h30m"}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(moved.json()["now"], "2030-01-01T01:30:00.000Z");
    let moved = http
        .post("/api/warren/clock/advance", &json!({"ms": 250}))
        .await;
    assert_eq!(moved.json()["now_ms"], START_MS + 5_400_250);
    let set = http
        .put("/api/warren/clock", &json!({"now": "2030-01-02T00:00:00Z"}))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(set.json()["now"], "2030-01-02T00:00:00.000Z");
    let set = http
        .put(
            "/api/warren/clock",
            &json!({"now": START_MS + 2 * 86_400_000}),
        )
        .await;
    assert_eq!(set.json()["now"], "2030-01-03T00:00:00.000Z");
    assert_eq!(clock.unix_ms(), START_MS + 2 * 86_400_000);
}

#[tokio::test]
async fn the_clock_endpoint_refuses_what_it_cannot_do() {
    let clock = manual_clock();
    let broker = broker_on(&clock, true).await;
    let http = api(&broker);
    let refused = |status: StatusCode, reason: &str| {
        let error = if status == StatusCode::CONFLICT {
            "conflict"
        } else {
            "bad_request"
        };
        json!({"error": error, "reason": reason})
    };
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        ("advance", json!({"by": "90"}), StatusCode::BAD_REQUEST,
         "'90' is not a duration: write a number and a unit (ms, s, m, h, d), e.g. 250ms, 10s, 90m, 1h30m, 2d"),
        ("advance", json!({"by": 90}), StatusCode::BAD_REQUEST,
         "'by' must be a string such as \"90m\", not 90"),
        ("advance", json!({"ms": -5}), StatusCode::BAD_REQUEST,
         "'ms' must be a whole number of milliseconds, not -5"),
        ("advance", json!({"ms": 1.5}), StatusCode::BAD_REQUEST,
         "'ms' must be a whole number of milliseconds, not 1.5"),
        ("advance", json!({"by": "1s", "ms": 1}), StatusCode::BAD_REQUEST,
         "give 'by' or 'ms', not both"),
        ("advance", json!({}), StatusCode::BAD_REQUEST,
         "say how far to move the clock: {\"by\": \"90m\"} or {\"ms\": 5400000}"),
        ("advance", json!({"by": "36700d"}), StatusCode::BAD_REQUEST,
         "'36700d' is too long a move: at most 100 years at once"),
        ("advance", json!({"ms": u64::MAX}), StatusCode::BAD_REQUEST,
         "18446744073709551615 ms is too long a move: at most 100 years at once"),
        ("set", json!({"now": "yesterday"}), StatusCode::BAD_REQUEST,
         "'yesterday' is not a date: write it as RFC 3339 (2027-01-01T00:00:00Z) or as Unix milliseconds"),
        ("set", json!({"now": true}), StatusCode::BAD_REQUEST,
         "'now' must be a string or a number, not true"),
        ("set", json!({"now": "2029-12-31T23:59:59Z"}), StatusCode::CONFLICT,
         "the clock only moves forward: it is at 2030-01-01T00:00:00.000Z and 2029-12-31T23:59:59.000Z is before that"),
    ];
    for (what, body, status, reason) in cases {
        let reply = match what {
            "advance" => http.post("/api/warren/clock/advance", &body).await,
            _ => http.put("/api/warren/clock", &body).await,
        };
        assert_eq!(
            (reply.status, reply.json()),
            (status, refused(status, reason)),
            "{body}"
        );
    }
    let not_json = http
        .request(
            hyper::Method::POST,
            "/api/warren/clock/advance",
            &[],
            Some(b"{".to_vec()),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(clock.unix_ms(), START_MS, "no refused move moved it");

    // Administrators only (401, as RabbitMQ answers a user without the tag).
    let b = broker.server.broker();
    b.users()
        .add_with_tags("watcher", Some("pw"), vec!["monitoring".to_owned()])
        .expect("add user");
    let watcher = http.as_user(Some(("watcher", "pw")));
    for reply in [
        watcher.get("/api/warren/clock").await,
        watcher
            .post("/api/warren/clock/advance", &json!({"by": "1s"}))
            .await,
    ] {
        assert_eq!(
            (reply.status, reply.json()),
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "not_authorised", "reason": "Not administrator user"})
            )
        );
    }
}

#[tokio::test]
async fn the_real_clock_is_shown_and_never_moved() {
    let broker = TestBroker::start_with_management().await;
    let http = api(&broker);
    let shown = clock_json(&http).await;
    assert_eq!(shown["mode"], "real");
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let at = shown["now_ms"].as_i64().expect("now_ms");
    assert!((now - 60_000..=now + 60_000).contains(&at), "{shown}");
    let reply = http
        .post("/api/warren/clock/advance", &json!({"by": "1h"}))
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::CONFLICT,
            json!({"error": "conflict", "reason": "the broker runs on the real clock; only a manual clock (--clock manual) can be moved"})
        )
    );
}

// ---- warren ctl clock and the binary ----

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn warren(args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"));
    command.args(args);
    let output = common::within(command.output()).await.expect("run warren");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn warren_ctl_clock_shows_advances_and_sets() {
    let clock = manual_clock();
    let broker = broker_on(&clock, true).await;
    let url = format!("http://{}", broker.server.management_addr().expect("on"));
    let ctl = |args: &'static [&'static str]| {
        let url = url.clone();
        async move {
            let mut all = vec!["ctl", "--url", url.as_str()];
            all.extend_from_slice(args);
            warren(&all).await
        }
    };
    let shown = ctl(&["clock", "show"]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(
        shown.stdout,
        format!("mode\tnow\tnow_ms\nmanual\t2030-01-01T00:00:00.000Z\t{START_MS}\n")
    );
    let moved = ctl(&["clock", "advance", "90m"]).await;
    assert_eq!(moved.code, 0, "{}", moved.stderr);
    assert_eq!(
        moved.stdout,
        format!(
            "Advancing the clock by 90m ...\nmode\tnow\tnow_ms\nmanual\t2030-01-01T01:30:00.000Z\t{}\n",
            START_MS + 5_400_000
        )
    );
    let set = ctl(&[
        "-q",
        "--formatter",
        "json",
        "clock",
        "set",
        "2030-01-02T00:00:00Z",
    ])
    .await;
    assert_eq!(set.code, 0, "{}", set.stderr);
    assert_eq!(
        set.stdout,
        format!(
            "[\n{{\"mode\":\"manual\",\"now\":\"2030-01-02T00:00:00.000Z\",\"now_ms\":{}}}\n]\n",
            START_MS + 86_400_000
        )
    );
    let backwards = ctl(&["clock", "set", "2030-01-01T00:00:00Z"]).await;
    assert_eq!(backwards.code, 65, "{}", backwards.stdout);
    assert_eq!(
        backwards.stderr,
        "Error:\nthe clock only moves forward: it is at 2030-01-02T00:00:00.000Z and \
         2030-01-01T00:00:00.000Z is before that\n"
    );
    let typo = ctl(&["clock", "advance", "90"]).await;
    assert_eq!(typo.code, 64);
    assert!(
        typo.stderr.contains("'90' is not a duration"),
        "{}",
        typo.stderr
    );
    let unknown = ctl(&["clock", "rewind", "1h"]).await;
    assert_eq!(unknown.code, 64);
    assert!(
        unknown.stderr.contains("clock takes show, advance"),
        "{}",
        unknown.stderr
    );
    assert_eq!(clock.unix_ms(), START_MS + 86_400_000);
}

#[tokio::test]
async fn the_binary_refuses_a_manual_clock_on_a_data_directory() {
    let scratch = common::scratch_dir("clock-refusal");
    let dir = scratch.join("data");
    let dir_text = dir.to_string_lossy().into_owned();
    let run = warren(&["--clock", "manual", "--port", "0", "--data-dir", &dir_text]).await;
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert_eq!(
        run.stderr,
        format!(
            "warren: cannot start: --clock manual is for tests: it is refused with a data \
             directory ({dir_text}), whose delayed messages and stream entries would keep the \
             manual clock's dates. Add --in-memory (or --data-dir none), or \
             --allow-manual-clock-with-data to use the directory anyway\n"
        )
    );
    assert!(!dir.exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(scratch);
}

// ---- statistics ----

#[tokio::test]
async fn statistics_sample_once_per_move_with_rates_over_clock_time() {
    let clock = manual_clock();
    let broker = broker_on(&clock, true).await;
    let stats = broker.server.broker().stats.clone();
    common::wait_until("the first sample", || {
        let n = stats.samples();
        async move { n >= 1 }
    })
    .await;
    let (_c, ch) = broker.channel().await;
    common::declare_queue(&ch, "q").await;
    for _ in 0..100 {
        common::publish(&ch, "", "q", b"m").await;
    }
    // Answered after the publishes: they are counted.
    assert_eq!(common::ready(&ch, "q").await, 100);
    let before = stats.samples();
    advance(&clock, Duration::from_secs(10)).await;
    common::wait_until("a sample after the move", || {
        let n = stats.samples();
        async move { n > before }
    })
    .await;
    let overview = broker.http().get("/api/overview").await.json();
    // 100 publishes over 10 s of clock time, however little real time went by.
    assert_eq!(overview["message_stats"]["publish_details"]["rate"], 10.0);
    assert_eq!(stats.samples(), before + 1, "one sample for one move");
}
