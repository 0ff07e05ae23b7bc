//! The operational commands: purge_queue, delete_queue, close_connection,
//! export_definitions, import_definitions, status, cluster_status and await_startup, with
//! rabbitmqctl's lines and exit codes.
//!
//! Called by `ctl::run`. Files are read and written here with std::fs: this is the
//! CLI's own single-threaded runtime, not the broker's, so a short blocking write holds
//! up nothing else.

use super::args::Args;
use super::client::{seg, Client};
use super::output::Out;
use super::{CtlError, EX_DATAERR, EX_IOERR, EX_NOINPUT, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE};
use hyper::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Runs the command if it is one of these; false otherwise.
pub(crate) async fn run(args: &Args, client: &Client) -> Result<bool, CtlError> {
    let out = Out::new(args);
    match args.command.as_str() {
        "purge_queue" => purge_queue(args, client, &out).await?,
        "delete_queue" => delete_queue(args, client, &out).await?,
        "close_connection" => close_connection(args, client, &out).await?,
        "export_definitions" => export_definitions(args, client, &out).await?,
        "import_definitions" => import_definitions(args, client, &out).await?,
        "status" => status(args, client, &out).await?,
        "cluster_status" => cluster_status(args, client, &out).await?,
        "await_startup" => await_startup(args, client).await?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn queue_path(vhost: &str, queue: &str) -> String {
    format!("/api/queues/{}/{}", seg(vhost), seg(queue))
}

async fn purge_queue(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [queue] = args.exactly::<1>("a queue name")?;
    let vhost = &args.vhost;
    out.info(&format!("Purging queue '{queue}' in vhost '{vhost}' ..."));
    let response = client
        .delete(&format!("{}/contents", queue_path(vhost, queue)))
        .await?;
    match response.status {
        404 => Err(CtlError::new(
            EX_UNAVAILABLE,
            format!("not_found: no queue '{queue}' in vhost '{vhost}'"),
        )),
        _ if response.ok() => Ok(()),
        _ => Err(client.unexpected(&response)),
    }
}

async fn delete_queue(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [queue] = args.exactly::<1>("a queue name")?;
    let vhost = &args.vhost;
    let condition = match (args.if_empty, args.if_unused) {
        (true, true) => " if queue is empty and unused",
        (true, false) => " if queue is empty",
        (false, true) => " if queue is unused",
        (false, false) => "",
    };
    out.info(&format!(
        "Deleting queue '{queue}' on vhost '{vhost}'{condition} ..."
    ));
    let path = queue_path(vhost, queue);
    let not_found = || CtlError::new(EX_USAGE, "Queue not found".to_owned());
    // The count rabbitmqctl reports is the queue's just before it goes.
    let before = client.get(&path).await?;
    match before.status {
        200 => {}
        404 => return Err(not_found()),
        _ => return Err(client.unexpected(&before)),
    }
    let ready = before
        .json()
        .get("messages_ready")
        .cloned()
        .unwrap_or(json!(0));
    let mut query = Vec::new();
    if args.if_empty {
        query.push("if-empty=true");
    }
    if args.if_unused {
        query.push("if-unused=true");
    }
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let response = client.delete(&target).await?;
    match response.status {
        404 => Err(not_found()),
        400 => {
            let in_use = args.if_unused && !(args.if_empty && ready != json!(0));
            let text = if in_use {
                "Queue is in use"
            } else {
                "Queue is not empty"
            };
            Err(CtlError::new(EX_USAGE, text.to_owned()))
        }
        _ if response.ok() => {
            out.result(&format!(
                "Queue was successfully deleted with {ready} ready messages"
            ));
            Ok(())
        }
        _ => Err(client.unexpected(&response)),
    }
}

async fn close_connection(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [name, reason] = args.exactly::<2>("a connection name and a reason")?;
    out.info(&format!("Closing connection {name}, reason: {reason}..."));
    let response = client
        .request(
            Method::DELETE,
            &format!("/api/connections/{}", seg(name)),
            &[("x-reason", reason)],
            None,
        )
        .await?;
    match response.status {
        404 => Err(CtlError::new(
            EX_UNAVAILABLE,
            format!("no connection named '{name}'"),
        )),
        _ if response.ok() => Ok(()),
        _ => Err(client.unexpected(&response)),
    }
}

async fn export_definitions(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [file] = args.exactly::<1>("a file path (- for stdout)")?;
    let to_stdout = file == "-";
    if !to_stdout {
        out.info(&format!(
            "Exporting definitions in JSON to a file at \"{file}\" ..."
        ));
    }
    let response = client.get("/api/definitions").await?;
    if !response.ok() {
        return Err(client.unexpected(&response));
    }
    let mut text = response.body.to_vec();
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    let written = if to_stdout {
        use std::io::Write;
        std::io::stdout().lock().write_all(&text)
    } else {
        std::fs::write(file, &text)
    };
    written.map_err(|e| CtlError::new(EX_IOERR, format!("cannot write {file}: {e}")))
}

async fn import_definitions(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let [file] = args.exactly::<1>("a file path (- for stdin)")?;
    out.info(&format!(
        "Importing definitions in JSON from a file at \"{file}\" ..."
    ));
    let text = if file == "-" {
        use std::io::Read;
        let mut text = Vec::new();
        std::io::stdin().lock().read_to_end(&mut text).map(|_| text)
    } else {
        std::fs::read(file)
    }
    .map_err(|e| CtlError::new(EX_NOINPUT, format!("cannot read {file}: {e}")))?;
    // A file that is not JSON is the file's fault (65), not the broker's.
    if let Err(e) = serde_json::from_slice::<Value>(&text) {
        return Err(CtlError::new(
            EX_DATAERR,
            format!("{file} is not JSON: {e}"),
        ));
    }
    let response = client.post_raw("/api/definitions", text).await?;
    if !response.ok() {
        return Err(client.unexpected(&response));
    }
    out.info("Successfully imported definitions.");
    Ok(())
}

async fn status(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let overview = client.get_json("/api/overview").await?;
    let node = overview
        .get("node")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    // Uptime and memory are the node's; older or partial APIs may not serve them.
    let details = match client.get(&format!("/api/nodes/{}", seg(&node))).await? {
        r if r.ok() => r.json(),
        _ => Value::Null,
    };
    if args.format == super::args::Format::Json {
        let summary = json!({
            "node_name": node,
            "product_name": overview.get("product_name"),
            "product_version": overview.get("product_version"),
            "rabbitmq_version": overview.get("rabbitmq_version"),
            "erlang_version": overview.get("erlang_version"),
            "uptime": details.get("uptime").and_then(Value::as_u64).map(|ms| ms / 1000),
            "mem_used": details.get("mem_used"),
            "disk_free": details.get("disk_free"),
            "listeners": overview.get("listeners"),
        });
        println!("{summary}");
        return Ok(());
    }
    out.info(&format!("Status of node {node} ..."));
    let field = |v: &Value, key: &str| match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "unknown".to_owned(),
        Some(other) => other.to_string(),
    };
    let mut lines = vec![
        "Runtime".to_owned(),
        String::new(),
        format!("Node name: {node}"),
        format!("Product name: {}", field(&overview, "product_name")),
        format!("Product version: {}", field(&overview, "product_version")),
        format!("RabbitMQ version: {}", field(&overview, "rabbitmq_version")),
    ];
    if let Some(ms) = details.get("uptime").and_then(Value::as_u64) {
        lines.push(format!("Uptime (seconds): {}", ms / 1000));
    }
    if let Some(used) = details.get("mem_used").and_then(Value::as_u64) {
        lines.push(String::new());
        lines.push("Memory".to_owned());
        lines.push(String::new());
        lines.push(format!("Total memory used: {:.4} gb", used as f64 / 1e9));
    }
    if let Some(free) = details.get("disk_free").and_then(Value::as_u64) {
        lines.push(String::new());
        lines.push("Free Disk Space".to_owned());
        lines.push(String::new());
        lines.push(format!("Free disk space: {:.4} gb", free as f64 / 1e9));
    }
    lines.push(String::new());
    lines.push("Listeners".to_owned());
    lines.push(String::new());
    if let Some(Value::Array(listeners)) = overview.get("listeners") {
        for l in listeners {
            lines.push(format!(
                "Interface: {}, port: {}, protocol: {}",
                field(l, "ip_address"),
                field(l, "port"),
                field(l, "protocol")
            ));
        }
    }
    println!("{}", lines.join("\n"));
    Ok(())
}

/// Polls the API until it answers 200 on /api/whoami (the cheapest authenticated
/// endpoint, served as soon as the listener is), or the timeout (rabbitmqctl's
/// default, 300 s) passes: 75. A refused login (77) ends it at once: waiting will not
/// fix the credentials.
async fn await_startup(args: &Args, client: &Client) -> Result<(), CtlError> {
    let limit = args.timeout.unwrap_or(Duration::from_secs(300));
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CtlError::new(
                EX_TEMPFAIL,
                format!(
                    "the management API did not answer within {} seconds",
                    limit.as_secs_f64()
                ),
            ));
        }
        let mut attempt = client.clone();
        attempt.timeout = left.min(Duration::from_secs(10));
        match attempt.get("/api/whoami").await {
            Ok(response) if response.ok() => return Ok(()),
            Err(e) if e.code == super::EX_NOPERM => return Err(e),
            _ => {}
        }
        let pause =
            Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
    }
}

/// `cluster_status`: rabbitmqctl's sections (basics, disk and running nodes, versions,
/// maintenance, alarms, partitions, listeners), from `/api/overview` and `/api/nodes`.
async fn cluster_status(args: &Args, client: &Client, out: &Out<'_>) -> Result<(), CtlError> {
    let overview = client.get_json("/api/overview").await?;
    let nodes = client.get_json("/api/nodes").await?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let node = text(&overview, "node");
    let cluster_name = text(&overview, "cluster_name");
    let version = text(&overview, "rabbitmq_version");
    let nodes = nodes.as_array().cloned().unwrap_or_default();
    let names: Vec<String> = nodes.iter().map(|n| text(n, "name")).collect();
    let running: Vec<String> = nodes
        .iter()
        .filter(|n| n.get("running").and_then(Value::as_bool) == Some(true))
        .map(|n| text(n, "name"))
        .collect();
    // Alarms as rabbitmqctl names them: resource, node.
    let mut alarms = Vec::new();
    for n in &nodes {
        let name = text(n, "name");
        if n.get("mem_alarm").and_then(Value::as_bool) == Some(true) {
            alarms.push(("memory", name.clone()));
        }
        if n.get("disk_free_alarm").and_then(Value::as_bool) == Some(true) {
            alarms.push(("disk", name));
        }
    }
    let listeners: Vec<Value> = overview
        .get("listeners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if args.format == super::args::Format::Json {
        let versions: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| {
                let v = json!({"rabbitmq_name": "RabbitMQ", "rabbitmq_version": version});
                (n.clone(), v)
            })
            .collect();
        let maintenance: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| (n.clone(), json!("not under maintenance")))
            .collect();
        let by_node: Vec<Value> = listeners
            .iter()
            .map(|l| {
                json!({
                    "interface": l.get("ip_address"),
                    "node": node,
                    "port": l.get("port"),
                    "protocol": l.get("protocol"),
                })
            })
            .collect();
        let summary = json!({
            "alarms": alarms.iter().map(|(r, n)| json!({"node": n, "resource": r})).collect::<Vec<_>>(),
            "cluster_name": cluster_name,
            "disk_nodes": names,
            "ram_nodes": [],
            "running_nodes": running,
            "versions": versions,
            "maintenance_status": maintenance,
            "partitions": {},
            "listeners": { node.clone(): by_node },
        });
        println!("{summary}");
        return Ok(());
    }
    out.info(&format!("Cluster status of node {node} ..."));
    let mut lines = vec![
        "Basics".to_owned(),
        String::new(),
        format!("Cluster name: {cluster_name}"),
        String::new(),
        "Disk Nodes".to_owned(),
        String::new(),
    ];
    lines.extend(names.iter().cloned());
    lines.extend([String::new(), "Running Nodes".to_owned(), String::new()]);
    lines.extend(running.iter().cloned());
    lines.extend([String::new(), "Versions".to_owned(), String::new()]);
    lines.extend(
        names
            .iter()
            .map(|n| format!("{n}: RabbitMQ {version} on warren")),
    );
    lines.extend([
        String::new(),
        "Maintenance status".to_owned(),
        String::new(),
    ]);
    lines.extend(
        names
            .iter()
            .map(|n| format!("Node: {n}, status: not under maintenance")),
    );
    lines.extend([String::new(), "Alarms".to_owned(), String::new()]);
    if alarms.is_empty() {
        lines.push("(none)".to_owned());
    }
    for (resource, n) in &alarms {
        lines.push(format!("Node {n} reported an alarm: {resource}"));
    }
    lines.extend([
        String::new(),
        "Network Partitions".to_owned(),
        String::new(),
        "(none)".to_owned(),
        String::new(),
        "Listeners".to_owned(),
        String::new(),
    ]);
    for l in &listeners {
        let field = |k: &str| match l.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        lines.push(format!(
            "Node: {node}, interface: {}, port: {}, protocol: {}",
            field("ip_address"),
            field("port"),
            field("protocol")
        ));
    }
    println!("{}", lines.join("\n"));
    Ok(())
}
