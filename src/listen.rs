//! Which sockets a listener (AMQP, amqps, management, Prometheus) opens for `--bind`.
//!
//! Called by `server::start` before anything is served. With no `--bind`, as RabbitMQ:
//! every interface, IPv6 and IPv4, so a client that resolves `localhost` to `::1` gets
//! in too. That is `[::]` (dual-stack where the system allows), plus `0.0.0.0` on the
//! same port where `[::]` does not take IPv4 (v6-only systems); on a machine without
//! IPv6 only `0.0.0.0`, with a log line. Given addresses (repeatable, e.g.
//! `--bind 127.0.0.1 --bind ::1`) are each bound on the same port: the first one
//! decides it when the port is 0. Never retries or waits: a port in use is an error.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Listeners on `port` of each address of `binds` (the default when empty), at least
/// one; with port 0 they share the port the first one got.
pub async fn bind_all(binds: &[IpAddr], port: u16) -> io::Result<Vec<TcpListener>> {
    if binds.is_empty() {
        return bind_default(port).await;
    }
    let mut listeners: Vec<TcpListener> = Vec::with_capacity(binds.len());
    for ip in binds {
        let port = match listeners.first() {
            Some(first) => first.local_addr()?.port(),
            None => port,
        };
        let listener = TcpListener::bind((*ip, port)).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {}: {e}", SocketAddr::new(*ip, port)),
            )
        })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

async fn bind_default(port: u16) -> io::Result<Vec<TcpListener>> {
    let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    let v6 = match TcpListener::bind((any6, port)).await {
        Ok(listener) => listener,
        // A port in use or not ours to take fails the same way over IPv4.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Err(e)
        }
        Err(e) => {
            info!(error = %e, port, "no IPv6 here: listening on IPv4 (0.0.0.0) only");
            return Ok(vec![TcpListener::bind((any4, port)).await?]);
        }
    };
    let port = v6.local_addr()?.port();
    match TcpListener::bind((any4, port)).await {
        // A v6-only [::]: IPv4 needs its own socket.
        Ok(v4) => Ok(vec![v6, v4]),
        // The usual case: [::] is dual-stack and already takes IPv4 on this port.
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(vec![v6]),
        Err(e) => {
            warn!(error = %e, port, "listening on IPv6 only: 0.0.0.0 could not be bound");
            Ok(vec![v6])
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address (a client of IPv4 on a dual-stack socket)
/// written as IPv4, as RabbitMQ shows peers: `127.0.0.1`, not `::ffff:127.0.0.1`
/// (the loopback user check, the management API and the logs all see this form).
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// How a URL names `ip`: IPv6 in brackets, `localhost` for an unspecified address.
pub fn url_host(ip: IpAddr) -> String {
    match ip {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_peers_read_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.1:5".parse().unwrap());
        let v6: SocketAddr = "[::1]:5".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn url_hosts_bracket_ipv6() {
        assert_eq!(url_host("::1".parse().unwrap()), "[::1]");
        assert_eq!(url_host("127.0.0.1".parse().unwrap()), "127.0.0.1");
        assert_eq!(url_host("::".parse().unwrap()), "localhost");
        assert_eq!(url_host("0.0.0.0".parse().unwrap()), "localhost");
    }

    #[tokio::test]
    async fn given_addresses_share_the_first_ones_port() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        // A machine without IPv6 cannot run the two-address half of this test.
        let Ok(listeners) = bind_all(&[v4, v6], 0).await else {
            return;
        };
        let a = listeners[0].local_addr().unwrap();
        let b = listeners[1].local_addr().unwrap();
        assert_ne!(a.port(), 0);
        assert_eq!(a.port(), b.port());
        assert_eq!((a.ip(), b.ip()), (v4, v6));
    }

    #[tokio::test]
    async fn the_default_takes_ipv4_and_ipv6_clients() {
        let listeners = bind_all(&[], 0).await.expect("bound");
        let port = listeners[0].local_addr().unwrap().port();
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok());
        if listeners[0].local_addr().unwrap().is_ipv6() {
            assert!(tokio::net::TcpStream::connect(("::1", port)).await.is_ok());
        }
    }
}
