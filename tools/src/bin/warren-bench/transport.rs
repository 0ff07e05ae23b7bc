//! How the generator reaches a broker: plain TCP for amqp:// URLs, TLS over TCP (rustls,
//! ring, the CA given by --tls-ca) for amqps:// ones. Both end as boxed read and write
//! halves, so the rest of the client does not care which; one virtual call per read or
//! write syscall (each moves up to a 512 KiB batch) is all the plain path pays.

use std::path::Path;
use std::sync::Arc;

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::amqp::{err, Res, Target};

pub type ReadSide = Box<dyn AsyncRead + Send + Unpin>;
pub type WriteSide = Box<dyn AsyncWrite + Send + Unpin>;

/// A client configuration trusting the CA certificates in `ca` (PEM).
pub fn client_config(ca: &Path) -> Res<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .map_err(|e| err(format!("--tls-ca {}: {e}", ca.display())))?
    {
        let cert = cert.map_err(|e| err(format!("--tls-ca {}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| err(format!("--tls-ca {}: {e}", ca.display())))?;
    }
    // ring, as warren: rustls deprecated it only for lacking post-quantum groups.
    #[allow(deprecated)]
    let provider = Arc::new(ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connected socket to the target, TLS when it says so, with Nagle off.
pub async fn connect(t: &Target) -> Res<(ReadSide, WriteSide)> {
    let tcp = TcpStream::connect(t.addr())
        .await
        .map_err(|e| err(format!("connect {}: {e}", t.addr())))?;
    tcp.set_nodelay(true)?;
    match &t.tls {
        None => {
            let (rd, wr) = tcp.into_split();
            Ok((Box::new(rd), Box::new(wr)))
        }
        Some(config) => {
            let name = ServerName::try_from(t.host.clone())
                .map_err(|e| err(format!("server name {}: {e}", t.host)))?;
            let tls = TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| err(format!("TLS handshake with {}: {e}", t.addr())))?;
            let (rd, wr) = tokio::io::split(tls);
            Ok((
                Box::new(rd),
                Box::new(Flushed {
                    inner: wr,
                    written: None,
                }),
            ))
        }
    }
}

/// A TLS write half whose writes complete only once rustls has sent them: when the socket
/// is full rustls keeps bytes it took, and the client (write, then wait for the reply)
/// would otherwise wait forever for a reply to bytes never sent.
struct Flushed<W> {
    inner: W,
    /// Accepted by the last poll_write, not yet flushed (the caller polls again with the
    /// same bytes after Pending, as write_all does).
    written: Option<usize>,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Flushed<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = match self.written {
            Some(n) => n,
            None => {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
                self.written = Some(n);
                n
            }
        };
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.written = None;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
