//! A TCP proxy for one connection, so a test can drop it without any AMQP close.

use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy for one connection; `cut` drops both sockets without any AMQP close.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: std::net::SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        Proxy { addr, task }
    }

    pub fn cut(self) {
        self.task.abort();
    }
}

/// A connection to `broker` through a proxy the test can cut, and a channel on it.
pub async fn droppable(broker: &super::TestBroker) -> (Proxy, lapin::Connection, lapin::Channel) {
    let proxy = Proxy::start(broker.addr).await;
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr);
    let conn = super::within(lapin::Connection::connect(
        &url,
        lapin::ConnectionProperties::default(),
    ))
    .await
    .expect("connect through the proxy");
    let ch = super::within(conn.create_channel()).await.unwrap();
    (proxy, conn, ch)
}
