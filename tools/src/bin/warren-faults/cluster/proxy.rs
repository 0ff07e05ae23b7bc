//! Partitions without root: a TCP proxy on every directed pair of nodes. Node i's
//! `--peers` entry for node j names the proxy (i -> j), which forwards to j's real cluster
//! listener. Cutting a proxy drops every connection it carries and, until it is healed,
//! closes each new one as soon as it is accepted, so both nodes see the link fail while
//! their AMQP and HTTP listeners stay reachable. Both directions of a pair are separate
//! proxies: cutting node k off cuts every proxy whose pair involves k.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One directed pair's proxy, running on the runtime until dropped.
pub struct Proxy {
    pub from: usize,
    pub to: usize,
    pub listen: SocketAddr,
    cut: watch::Sender<bool>,
    /// Connections accepted while healed, and those closed at once while cut.
    pub accepted: Arc<AtomicU64>,
    pub refused: Arc<AtomicU64>,
    /// Connections being forwarded now.
    active: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Bind `listen` and forward every accepted connection to `target`.
    pub async fn start(
        from: usize,
        to: usize,
        listen: SocketAddr,
        target: SocketAddr,
    ) -> std::io::Result<Proxy> {
        let l = TcpListener::bind(listen).await?;
        let listen = l.local_addr()?;
        let (tx, rx) = watch::channel(false);
        let accepted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let active = Arc::new(AtomicU64::new(0));
        let (a, r, act) = (accepted.clone(), refused.clone(), active.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    continue;
                };
                if *rx.borrow() {
                    r.fetch_add(1, Relaxed);
                    drop(sock);
                    continue;
                }
                a.fetch_add(1, Relaxed);
                act.fetch_add(1, Relaxed);
                let act = act.clone();
                let rx = rx.clone();
                tokio::spawn(async move {
                    forward(sock, target, rx).await;
                    act.fetch_sub(1, Relaxed);
                });
            }
        });
        Ok(Proxy {
            from,
            to,
            listen,
            cut: tx,
            accepted,
            refused,
            active,
            task,
        })
    }

    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }

    #[cfg(test)]
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Dropping the sender also ends every forwarding task (changed() fails).
        self.task.abort();
    }
}

/// Copy both ways until either side closes or the proxy is cut (or dropped).
async fn forward(mut a: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let _ = a.set_nodelay(true);
    let connect = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        TcpStream::connect(target),
    );
    let mut b = match connect.await {
        Ok(Ok(b)) => b,
        _ => return,
    };
    let _ = b.set_nodelay(true);
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    let cut_now = async {
        loop {
            if *cut.borrow_and_update() {
                return;
            }
            if cut.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = copy => {}
        _ = cut_now => {}
    }
    // Dropped without a flush: whatever was in flight is gone, as on a cut cable.
    let _ = a.shutdown().await;
    let _ = b.shutdown().await;
}

/// Every directed pair's proxy of an n-node cluster.
pub struct Proxies {
    pub all: Vec<Proxy>,
}

impl Proxies {
    /// Cut off (`true`) or heal every pair involving `node`.
    pub fn isolate(&self, node: usize, cut: bool) {
        for p in &self.all {
            if p.from == node || p.to == node {
                p.set_cut(cut);
            }
        }
    }

    /// Whether every proxy of a pair involving `node` has dropped all its connections
    /// (a cut takes effect when the forwarding tasks next run).
    pub fn idle(&self, node: usize) -> bool {
        self.all
            .iter()
            .filter(|p| p.from == node || p.to == node)
            .all(|p| p.active.load(Relaxed) == 0)
    }

    pub fn heal_all(&self) {
        for p in &self.all {
            p.set_cut(false);
        }
    }

    /// The proxy node `from` dials to reach node `to`.
    pub fn addr(&self, from: usize, to: usize) -> Option<SocketAddr> {
        self.all
            .iter()
            .find(|p| p.from == from && p.to == to)
            .map(|p| p.listen)
    }

    pub fn accepted(&self) -> u64 {
        self.all.iter().map(|p| p.accepted.load(Relaxed)).sum()
    }

    pub fn refused(&self) -> u64 {
        self.all.iter().map(|p| p.refused.load(Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// An echo server on a free port of 127.0.0.1.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        Ok(buf.to_vec())
    }

    /// Reads until EOF or error; true when the connection ended within 2 s.
    async fn ends(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn cut_drops_and_refuses_heal_restores() {
        let target = echo().await;
        let p = Proxy::start(0, 1, "127.0.0.1:0".parse().unwrap(), target)
            .await
            .unwrap();
        let mut c = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(round_trip(&mut c).await.unwrap(), b"ping");

        p.set_cut(true);
        assert!(
            ends(&mut c).await,
            "an open connection is dropped by the cut"
        );
        let mut d = TcpStream::connect(p.listen).await.unwrap();
        assert!(ends(&mut d).await, "a new connection is closed at once");
        assert!(round_trip(&mut d).await.is_err());
        assert!(p.refused.load(Relaxed) >= 1);

        p.set_cut(false);
        let mut e = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(round_trip(&mut e).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn isolate_cuts_only_pairs_of_the_node() {
        let target = echo().await;
        let mut all = Vec::new();
        for from in 0..3 {
            for to in 0..3 {
                if from != to {
                    all.push(
                        Proxy::start(from, to, "127.0.0.1:0".parse().unwrap(), target)
                            .await
                            .unwrap(),
                    );
                }
            }
        }
        let ps = Proxies { all };
        ps.isolate(2, true);
        for p in &ps.all {
            assert_eq!(p.is_cut(), p.from == 2 || p.to == 2);
        }
        let mut ok = TcpStream::connect(ps.addr(0, 1).unwrap()).await.unwrap();
        assert_eq!(round_trip(&mut ok).await.unwrap(), b"ping");
        let mut cut = TcpStream::connect(ps.addr(1, 2).unwrap()).await.unwrap();
        assert!(ends(&mut cut).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(ps.idle(2));
        assert!(!ps.idle(0), "the 0 -> 1 connection is still open");
        ps.heal_all();
        let mut back = TcpStream::connect(ps.addr(2, 0).unwrap()).await.unwrap();
        assert_eq!(round_trip(&mut back).await.unwrap(), b"ping");
    }
}
