//! The `tls` row of the Rust (lapin) column: amqps with the server's certificate
//! verified against the CA, PLAIN without a client certificate, then EXTERNAL with one
//! (CN=guest). lapin is built without its TLS features, so it speaks through the tests'
//! TLS-terminating proxy (tokio-rustls, the same handshake a TLS-enabled lapin makes).
//! Needs the WARREN_INTEROP_TLS_* variables interop/run.sh sets; n/a without them.

use super::tls_support::{client_config_from_pem, TlsProxy};
use super::{close, connect, delete_queue, get, name, publish, same, step, text, Context};
use super::{Outcome, R};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

struct TlsEnv {
    addr: SocketAddr,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn tls_env() -> Option<TlsEnv> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let url = var("WARREN_INTEROP_TLS_URL")?;
    let uri: lapin::uri::AMQPUri = url.parse().ok()?;
    let addr = (uri.authority.host.as_str(), uri.authority.port)
        .to_socket_addrs()
        .ok()?
        .next()?;
    Some(TlsEnv {
        addr,
        ca: var("WARREN_INTEROP_TLS_CA")?.into(),
        cert: var("WARREN_INTEROP_TLS_CERT")?.into(),
        key: var("WARREN_INTEROP_TLS_KEY")?.into(),
    })
}

pub async fn stls(_url: String) -> R<Outcome> {
    let Some(env) = tls_env() else {
        return Ok(Outcome::NotApplicable(
            "no amqps URL (WARREN_INTEROP_TLS_URL)".into(),
        ));
    };
    let q = name("tls");
    let plain = TlsProxy::start(env.addr, client_config_from_pem(&env.ca, None)).await;
    let conn = connect(&plain.url()).await?;
    let ch = step("channel.open", conn.create_channel())
        .await?
        .ctx("channel.open")?;
    step(
        "queue.declare",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await?
    .ctx("queue.declare")?;
    publish(&ch, "", &q, b"over TLS").await?;
    close(conn).await?;

    let identity = Some((env.cert.as_path(), env.key.as_path()));
    let external = TlsProxy::start(env.addr, client_config_from_pem(&env.ca, identity)).await;
    let url = format!("amqp://{}/%2f?auth_mechanism=external", external.addr);
    let conn = connect(&url).await?;
    let ch = step("channel.open", conn.create_channel())
        .await?
        .ctx("channel.open")?;
    let got = get(&ch, &q).await?.ctx("basic.get over EXTERNAL")?;
    same("body", text(&got.delivery).as_str(), "over TLS")?;
    delete_queue(&ch, &q).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}
