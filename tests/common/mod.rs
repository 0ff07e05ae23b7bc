//! Shared test support: a broker started in-process on 127.0.0.1:0, and lapin helpers.
#![allow(dead_code)]

use lapin::{Channel, Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A broker running in this test process; shut down (or dropped with the runtime) at the end.
pub struct TestBroker {
    pub server: warren::Server,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl TestBroker {
    pub async fn start() -> TestBroker {
        let data_dir = std::env::temp_dir().join(format!(
            "warren-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let server = warren::start(warren::Config::local(&data_dir))
            .await
            .expect("start broker");
        let addr = server.local_addr();
        TestBroker {
            server,
            addr,
            data_dir,
        }
    }

    /// amqp://guest:guest@127.0.0.1:PORT/%2f
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.url(), ConnectionProperties::default())
            .await
            .expect("connect")
    }

    pub async fn channel(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        (conn, ch)
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Fails the test instead of hanging when `fut` takes longer than 10 s.
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out")
}

/// Runs `action`, which should make the server close `ch` asynchronously (a bad publish),
/// and returns the error the channel was closed with. A consumer on a private queue
/// receives that error whenever the close arrives, before or after the next request.
pub async fn channel_close_error<Fut>(ch: &Channel, action: Fut) -> lapin::Error
where
    Fut: std::future::Future<Output = lapin::Result<()>>,
{
    use futures::StreamExt;
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    let watch = within(ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("private queue");
    let mut watcher = within(ch.basic_consume(
        watch.name().clone(),
        "close-watch".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("watch consumer");
    if let Err(e) = within(action).await {
        return e;
    }
    match within(watcher.next()).await {
        Some(Err(e)) => e,
        other => panic!("the channel was not closed with an error: {other:?}"),
    }
}
