//! The management and Prometheus listeners as `server::start` opens them: bind the
//! sockets `--bind` and the two ports ask for, describe every listener of the node for
//! the API (`/api/overview`'s `listeners`), and serve each socket until shutdown.
//!
//! Called once per broker start, after the AMQP listeners are bound (their rows come
//! first). The only way into src/http from the server, so a build without the
//! `management` feature drops this call and nothing else.

use super::{prometheus, router, serve, Api, Listener, Node};
use crate::broker::Broker;
use crate::config::{Config, ListenerPort};
use crate::listen;
use crate::server::Served;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Opens and serves the management and Prometheus listeners when `config` turns them on;
/// `amqp` lists the AMQP sockets already bound, with their protocol names ("amqp",
/// "amqp/ssl"), for the API's listener rows.
pub(crate) async fn start(
    config: &Config,
    broker: &Arc<Broker>,
    amqp: [(&[TcpListener], &'static str); 2],
    shutdown: &watch::Receiver<bool>,
) -> io::Result<(Option<Served>, Option<Served>)> {
    let management = bind_optional(&config.bind, config.management_port).await?;
    let prometheus = bind_optional(&config.bind, config.prometheus_port).await?;
    // One row per socket, as the management API lists listeners.
    let mut listeners = Vec::new();
    let http = [
        (management.as_slice(), "http"),
        (prometheus.as_slice(), "http/prometheus"),
    ];
    for (sockets, protocol) in amqp.into_iter().chain(http) {
        for socket in sockets {
            let local = socket.local_addr()?;
            listeners.push(Listener {
                protocol,
                ip: local.ip(),
                port: local.port(),
            });
        }
    }
    let api = Api {
        broker: broker.clone(),
        node: Arc::new(Node::new(config.clone(), listeners)),
    };
    let serve_all = |sockets: Vec<TcpListener>, router: fn(Api) -> axum::Router| {
        let Some(addr) = sockets.first().map(TcpListener::local_addr).transpose()? else {
            return Ok::<_, io::Error>(None);
        };
        let tasks = sockets
            .into_iter()
            .map(|socket| tokio::spawn(serve(socket, router(api.clone()), shutdown.clone())))
            .collect();
        Ok(Some((addr, tasks)))
    };
    Ok((
        serve_all(management, router)?,
        serve_all(prometheus, prometheus::router)?,
    ))
}

/// How a cluster node's log replays management writes on this node: the API's router,
/// ready before the log replays anything (the listeners open later).
#[cfg(feature = "cluster")]
pub(crate) fn replayer(
    config: &Config,
    broker: &Arc<Broker>,
) -> crate::broker::replica::HttpReplayer {
    let node = Arc::new(Node::new(config.clone(), Vec::new()));
    super::replicate::replayer(Arc::downgrade(broker), node)
}

/// The listeners on `port` of the `bind` addresses when it is on (none when off).
async fn bind_optional(bind: &[IpAddr], port: ListenerPort) -> io::Result<Vec<TcpListener>> {
    match port.port() {
        Some(port) => listen::bind_all(bind, port).await,
        None => Ok(Vec::new()),
    }
}
