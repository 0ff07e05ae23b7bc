//! `warren ctl`: the built binary run against a broker with its management listener on,
//! checked for rabbitmqctl's output (header lines, tab-separated columns, `-q`/`-s`,
//! `--formatter json`) and exit codes (64 usage, 65 missing vhost, 67 missing user, 69
//! unavailable, 70 user exists, 75 timed out, 77 login refused), each as the reference
//! RabbitMQ 3.10.8's rabbitmqctl answered the same command.

mod common;

use common::login::login;
use common::{within, TestBroker};
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::Value;
use std::net::SocketAddr;

/// What a `warren ctl` run printed and returned.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Lines of stdout.
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Runs `warren ctl --url <api> ARGS` (guest/guest unless ARGS say otherwise).
async fn ctl_at(api: String, args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"));
    command.arg("ctl").arg("--url").arg(api).args(args);
    let output = within(command.output()).await.expect("run warren ctl");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn ctl(broker: &TestBroker, args: &[&str]) -> Run {
    ctl_at(api_url(broker), args).await
}

fn api_url(broker: &TestBroker) -> String {
    let addr = broker.server.management_addr().expect("management on");
    format!("http://{addr}")
}

/// Runs and expects exit 0.
async fn ok(broker: &TestBroker, args: &[&str]) -> Run {
    let run = ctl(broker, args).await;
    assert_eq!(run.code, 0, "{args:?}: {run:?}");
    run
}

/// Runs and expects `code` with `message` on stderr.
async fn fails(broker: &TestBroker, args: &[&str], code: i32, message: &str) {
    let run = ctl(broker, args).await;
    assert_eq!(run.code, code, "{args:?}: {run:?}");
    assert!(run.stderr.contains(message), "{args:?}: {run:?}");
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

#[tokio::test]
async fn usage_errors_are_64_before_any_request() {
    let api = format!("http://{}", closed_port());
    for (args, text) in [
        (
            &["no_such_command"][..],
            "command 'no_such_command' not found",
        ),
        (&["--bogus", "list_users"], "unknown option --bogus"),
        (&["list_queues", "-p"], "option -p needs a value"),
        (
            &["add_user", "only-a-name"],
            "add_user takes a user name and a password",
        ),
        (
            &["list_queues", "name", "nosuchcol"],
            "Error (argument validation): Info key(s) nosuchcol are not supported",
        ),
    ] {
        let run = ctl_at(api.clone(), args).await;
        assert_eq!(run.code, 64, "{args:?}: {run:?}");
        assert!(run.stderr.contains(text), "{args:?}: {run:?}");
    }
    let help = ctl_at(api, &["help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("list_queues"));
}

#[tokio::test]
async fn an_unreachable_api_is_69_and_await_startup_gives_up_with_75() {
    let api = format!("http://{}", closed_port());
    let run = ctl_at(api.clone(), &["list_users"]).await;
    assert_eq!(run.code, 69, "{run:?}");
    assert!(
        run.stderr.contains("unable to reach the management API"),
        "{run:?}"
    );
    let run = ctl_at(api, &["await_startup", "--timeout", "0.5"]).await;
    assert_eq!(run.code, 75, "{run:?}");
    assert!(
        run.stderr.contains("did not answer within 0.5 seconds"),
        "{run:?}"
    );
}

#[tokio::test]
async fn await_startup_returns_once_the_api_answers_and_a_refused_login_is_77() {
    let broker = TestBroker::start_with_management().await;
    let run = ok(&broker, &["await_startup", "--timeout", "10"]).await;
    assert_eq!(run.stdout, "");
    // A wrong password is not waited out.
    fails(
        &broker,
        &["--password", "wrong", "await_startup"],
        77,
        "Login failed",
    )
    .await;
    fails(
        &broker,
        &["--user", "nobody", "list_queues"],
        77,
        "Login failed",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn list_queues_prints_the_chosen_columns_under_rabbitmqctls_header() {
    let broker = TestBroker::start_with_management().await;
    let (_conn, ch) = broker.channel().await;
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(5));
    ch.queue_declare(
        "ctl-q1".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("declare");
    for body in [&b"a"[..], b"b"] {
        common::publish(&ch, "", "ctl-q1", body).await;
    }
    // Both publishes have landed once a passive declare on the same channel counts them.
    assert_eq!(common::ready(&ch, "ctl-q1").await, 2);
    let run = ok(&broker, &["list_queues"]).await;
    assert_eq!(
        run.lines(),
        [
            "Timeout: 60.0 seconds ...",
            "Listing queues for vhost / ...",
            "name\tmessages",
            "ctl-q1\t2"
        ]
    );
    let run = ok(
        &broker,
        &["list_queues", "name", "durable", "arguments", "-p", "/"],
    )
    .await;
    assert_eq!(
        &run.lines()[2..],
        [
            "name\tdurable\targuments",
            "ctl-q1\ttrue\t[{\"x-max-length\",5}]"
        ]
    );
    // -q drops the info lines, -s the header too.
    let run = ok(&broker, &["-q", "list_queues", "name"]).await;
    assert_eq!(run.lines(), ["name", "ctl-q1"]);
    let run = ok(&broker, &["-s", "list_queues", "name"]).await;
    assert_eq!(run.lines(), ["ctl-q1"]);
    let run = ok(
        &broker,
        &["list_queues", "name", "arguments", "--formatter", "json"],
    )
    .await;
    let rows: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(
        rows,
        serde_json::json!([{"name": "ctl-q1", "arguments": [["x-max-length", "long", 5]]}])
    );
    // A vhost that does not exist lists nothing, as rabbitmqctl.
    let run = ok(&broker, &["-q", "list_queues", "-p", "ctl-none"]).await;
    assert_eq!(run.stdout, "");
    broker.stop().await;
}

#[tokio::test]
async fn exchanges_bindings_consumers_channels_and_connections_list() {
    let broker = TestBroker::start_with_management().await;
    let (_conn, ch) = broker.channel().await;
    common::declare_queue(&ch, "ctl-q2").await;
    let _consumer = ch
        .basic_consume(
            "ctl-q2".into(),
            "ctl-tag".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let run = ok(&broker, &["-q", "list_exchanges"]).await;
    assert_eq!(run.lines()[0], "name\ttype");
    assert!(run.lines().contains(&"amq.topic\ttopic"), "{run:?}");
    assert!(run.lines().contains(&"\tdirect"), "{run:?}");

    let run = ok(&broker, &["list_bindings"]).await;
    assert_eq!(run.lines()[0], "Listing bindings for vhost /...");
    assert_eq!(
        run.lines()[1],
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments"
    );
    assert!(
        run.lines()
            .contains(&"\texchange\tctl-q2\tqueue\tctl-q2\t[]"),
        "{run:?}"
    );

    let run = ok(
        &broker,
        &[
            "-q",
            "list_consumers",
            "queue_name",
            "consumer_tag",
            "ack_required",
        ],
    )
    .await;
    assert_eq!(
        run.lines(),
        [
            "queue_name\tconsumer_tag\tack_required",
            "ctl-q2\tctl-tag\ttrue"
        ]
    );

    let run = ok(
        &broker,
        &["list_channels", "user", "number", "consumer_count"],
    )
    .await;
    assert_eq!(
        run.lines(),
        [
            "Listing channels ...",
            "user\tnumber\tconsumer_count",
            "guest\t1\t1"
        ]
    );

    let run = ok(&broker, &["list_connections"]).await;
    assert_eq!(run.lines()[0], "Listing connections ...");
    assert_eq!(run.lines()[1], "user\tpeer_host\tpeer_port\tstate");
    assert!(run.lines()[2].starts_with("guest\t127.0.0.1\t"), "{run:?}");
    assert!(run.lines()[2].ends_with("\trunning"), "{run:?}");
    broker.stop().await;
}

#[tokio::test]
async fn users_tags_passwords_and_permissions() {
    let broker = TestBroker::start_with_management().await;
    let run = ok(&broker, &["add_user", "ctl-u1", "pw1"]).await;
    assert_eq!(run.lines()[0], "Adding user \"ctl-u1\" ...");
    fails(
        &broker,
        &["add_user", "ctl-u1", "pw1"],
        70,
        "User \"ctl-u1\" already exists",
    )
    .await;
    let run = ok(
        &broker,
        &["set_user_tags", "ctl-u1", "monitoring", "management"],
    )
    .await;
    assert_eq!(
        run.lines(),
        ["Setting tags for user \"ctl-u1\" to [monitoring, management] ..."]
    );
    let run = ok(&broker, &["-q", "list_users"]).await;
    assert!(
        run.lines().contains(&"ctl-u1\t[monitoring, management]"),
        "{run:?}"
    );
    assert!(run.lines().contains(&"guest\t[administrator]"), "{run:?}");
    // Setting tags kept the password; changing the password kept the tags.
    let as_u1 = |pw: &'static str| broker.http().as_user(Some(("ctl-u1", pw)));
    assert_eq!(as_u1("pw1").get("/api/whoami").await.status, 200);
    ok(&broker, &["change_password", "ctl-u1", "pw2"]).await;
    assert_eq!(as_u1("pw1").get("/api/whoami").await.status, 401);
    let me = as_u1("pw2").get("/api/whoami").await.json();
    assert_eq!(me["tags"], serde_json::json!(["monitoring", "management"]));

    ok(&broker, &["set_permissions", "ctl-u1", ".*", "", "^r"]).await;
    let run = ok(&broker, &["list_permissions"]).await;
    assert_eq!(run.lines()[0], "Listing permissions for vhost \"/\" ...");
    assert_eq!(run.lines()[1], "user\tconfigure\twrite\tread");
    assert!(run.lines().contains(&"ctl-u1\t.*\t\t^r"), "{run:?}");
    let run = ok(&broker, &["clear_permissions", "ctl-u1"]).await;
    assert_eq!(
        run.lines(),
        ["Clearing permissions for user \"ctl-u1\" in vhost \"/\" ..."]
    );
    let run = ok(&broker, &["-q", "list_permissions"]).await;
    assert!(!run.stdout.contains("ctl-u1"), "{run:?}");

    for (args, code, text) in [
        (
            &["delete_user", "ctl-none"][..],
            67,
            "User \"ctl-none\" does not exist",
        ),
        (
            &["change_password", "ctl-none", "x"],
            67,
            "User \"ctl-none\" does not exist",
        ),
        (
            &["set_user_tags", "ctl-none", "x"],
            67,
            "User \"ctl-none\" does not exist",
        ),
        (
            &["set_permissions", "ctl-none", "a", "b", "c"],
            67,
            "User ctl-none does not exist",
        ),
        (
            &["clear_permissions", "ctl-none"],
            67,
            "User ctl-none does not exist",
        ),
        (
            &["set_permissions", "-p", "ctl-nov", "ctl-u1", "a", "b", "c"],
            69,
            "Virtual host ctl-nov does not exist",
        ),
    ] {
        fails(&broker, args, code, text).await;
    }
    ok(&broker, &["delete_user", "ctl-u1"]).await;
    fails(&broker, &["delete_user", "ctl-u1"], 67, "does not exist").await;
    broker.stop().await;
}

#[tokio::test]
async fn vhosts_are_added_listed_and_deleted() {
    let broker = TestBroker::start_with_management().await;
    let run = ok(&broker, &["add_vhost", "ctl-v1"]).await;
    assert_eq!(run.lines(), ["Adding vhost \"ctl-v1\" ..."]);
    // Adding it again is not an error, as rabbitmqctl.
    ok(&broker, &["add_vhost", "ctl-v1"]).await;
    let run = ok(&broker, &["-q", "list_vhosts", "name", "tracing"]).await;
    assert_eq!(run.lines()[0], "name\ttracing");
    assert!(run.lines().contains(&"ctl-v1\tfalse"), "{run:?}");
    assert!(run.lines().contains(&"/\tfalse"), "{run:?}");
    ok(&broker, &["delete_vhost", "ctl-v1"]).await;
    fails(
        &broker,
        &["delete_vhost", "ctl-v1"],
        65,
        "Virtual host 'ctl-v1' does not exist",
    )
    .await;
    fails(
        &broker,
        &["list_permissions", "-p", "ctl-v1"],
        65,
        "Virtual host 'ctl-v1' does not exist",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn policies_are_set_listed_and_cleared() {
    let broker = TestBroker::start_with_management().await;
    let run = ok(
        &broker,
        &[
            "set_policy",
            "--priority",
            "3",
            "--apply-to",
            "queues",
            "ctl-p1",
            "^ctl",
            r#"{"max-length":5}"#,
        ],
    )
    .await;
    assert_eq!(
        run.lines(),
        [
            r#"Setting policy "ctl-p1" for pattern "^ctl" to "{"max-length":5}" with priority "3" for vhost "/" ..."#
        ]
    );
    let run = ok(&broker, &["list_policies"]).await;
    assert_eq!(
        run.lines(),
        [
            "Listing policies for vhost \"/\" ...",
            "vhost\tname\tpattern\tapply-to\tdefinition\tpriority",
            "/\tctl-p1\t^ctl\tqueues\t{\"max-length\":5}\t3"
        ]
    );
    fails(
        &broker,
        &["set_policy", "ctl-p2", "^x", "notjson"],
        69,
        "JSON decoding error",
    )
    .await;
    ok(&broker, &["clear_policy", "ctl-p1"]).await;
    fails(
        &broker,
        &["clear_policy", "ctl-p1"],
        69,
        "Parameter does not exist",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn queues_are_purged_and_deleted_with_their_conditions() {
    let broker = TestBroker::start_with_management().await;
    let (_conn, ch) = broker.channel().await;
    common::declare_queue(&ch, "ctl-q3").await;
    common::publish(&ch, "", "ctl-q3", b"x").await;
    // The publish has landed once a passive declare (same channel, later) counts it.
    assert_eq!(common::ready(&ch, "ctl-q3").await, 1);
    fails(
        &broker,
        &["delete_queue", "ctl-q3", "--if-empty"],
        64,
        "Queue is not empty",
    )
    .await;
    let run = ok(&broker, &["purge_queue", "ctl-q3"]).await;
    assert_eq!(run.lines(), ["Purging queue 'ctl-q3' in vhost '/' ..."]);
    let run = ok(&broker, &["delete_queue", "ctl-q3", "--if-empty"]).await;
    assert_eq!(
        run.lines(),
        [
            "Deleting queue 'ctl-q3' on vhost '/' if queue is empty ...",
            "Queue was successfully deleted with 0 ready messages"
        ]
    );
    fails(&broker, &["delete_queue", "ctl-q3"], 64, "Queue not found").await;
    fails(&broker, &["purge_queue", "ctl-q3"], 69, "not_found").await;
    broker.stop().await;
}

#[tokio::test]
async fn close_connection_closes_it_with_320_and_the_reason() {
    let broker = TestBroker::start_with_management().await;
    let mut raw = login(broker.addr, "guest", "guest").await.expect("login");
    let run = ok(&broker, &["-s", "list_connections", "name"]).await;
    let name = run.lines()[0].to_owned();
    assert!(name.contains(" -> "), "{run:?}");
    let run = ok(&broker, &["close_connection", &name, "ctl says bye"]).await;
    assert_eq!(
        run.lines(),
        [format!(
            "Closing connection {name}, reason: ctl says bye..."
        )]
    );
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 320);
    assert_eq!(
        close.reply_text.as_str(),
        "CONNECTION_FORCED - ctl says bye"
    );
    fails(
        &broker,
        &["close_connection", "no such", "x"],
        69,
        "no connection named 'no such'",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn definitions_export_to_a_file_and_import_back() {
    let broker = TestBroker::start_with_management().await;
    let (_conn, ch) = broker.channel().await;
    common::declare(&ch, "ctl-q4", common::durable()).await;
    let file = broker.data_dir.join("ctl-export.json");
    let path = file.to_str().expect("utf-8 path");
    let run = ok(&broker, &["export_definitions", path]).await;
    assert_eq!(
        run.lines(),
        [format!(
            "Exporting definitions in JSON to a file at \"{path}\" ..."
        )]
    );
    let exported: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("file")).expect("JSON");
    let queues = exported["queues"].as_array().expect("queues");
    assert!(queues.iter().any(|q| q["name"] == "ctl-q4"), "{exported}");
    // To stdout with "-": only the JSON.
    let run = ok(&broker, &["export_definitions", "-"]).await;
    let _: Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");

    ch.queue_delete("ctl-q4".into(), Default::default())
        .await
        .expect("delete");
    ok(&broker, &["import_definitions", path]).await;
    let run = ok(&broker, &["-s", "list_queues", "name", "durable"]).await;
    assert_eq!(run.lines(), ["ctl-q4\ttrue"]);

    std::fs::write(&file, "not json").expect("write");
    fails(&broker, &["import_definitions", path], 65, "is not JSON").await;
    fails(
        &broker,
        &["import_definitions", "/nonexistent/ctl.json"],
        66,
        "cannot read /nonexistent/ctl.json",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn status_names_the_node_and_its_listeners() {
    let broker = TestBroker::start_with_management().await;
    let run = ok(&broker, &["status"]).await;
    assert!(
        run.lines()[0].starts_with("Status of node rabbit@"),
        "{run:?}"
    );
    let amqp = format!("port: {}, protocol: amqp", broker.addr.port());
    assert!(run.stdout.contains(&amqp), "{run:?}");
    let run = ok(&broker, &["status", "--formatter", "json"]).await;
    let status: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert!(status["node_name"]
        .as_str()
        .is_some_and(|n| n.starts_with("rabbit@")));
    broker.stop().await;
}

#[tokio::test]
async fn a_user_without_the_administrator_tag_is_refused_with_77() {
    let broker = TestBroker::start_with_management().await;
    ok(&broker, &["add_user", "ctl-mon", "pw"]).await;
    ok(&broker, &["set_user_tags", "ctl-mon", "monitoring"]).await;
    fails(
        &broker,
        &[
            "--user",
            "ctl-mon",
            "--password",
            "pw",
            "add_user",
            "x",
            "y",
        ],
        77,
        "Not administrator user",
    )
    .await;
    broker.stop().await;
}
