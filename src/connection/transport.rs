//! The socket under a connection: plain TCP, or TLS over TCP once the TLS handshake has
//! succeeded, and what the handshake told about the client (its certificate).
//!
//! `serve` calls `tls_handshake` before any AMQP byte; the connection loop then runs on
//! either kind of stream (`Connection::run` picks the halves). A handshake that fails,
//! stalls or meets plain AMQP ends here, logged, without touching the broker.

use std::io;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// RabbitMQ's `ssl_handshake_timeout` default: a client has this long to finish the TLS
/// handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// An accepted socket, with the TLS configuration of the listener it came from.
pub enum Accepted {
    Plain(TcpStream),
    Tls(TcpStream, TlsAcceptor),
}

/// The stream the connection loop serves.
pub(super) enum Stream {
    Plain(TcpStream),
    // Boxed: the TLS state is large and the plain variant should not pay for it.
    Tls(Box<TlsStream<TcpStream>>),
}

/// What TLS told about the client, for SASL EXTERNAL.
#[derive(Debug)]
pub(super) struct TlsPeer {
    /// The client's leaf certificate, verified against the CA; None when the client
    /// sent none (or none was asked for).
    pub certificate: Option<CertificateDer<'static>>,
    /// What was negotiated, as the management API shows it.
    pub session: crate::stats::TlsSession,
}

/// Why a TLS connection ended before AMQP.
#[derive(Debug)]
pub(super) enum HandshakeFailed {
    Tls(io::Error),
    Timeout,
    Shutdown,
}

impl std::fmt::Display for HandshakeFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeFailed::Tls(e) => write!(f, "{e}"),
            HandshakeFailed::Timeout => write!(
                f,
                "no TLS handshake within {} s",
                TLS_HANDSHAKE_TIMEOUT.as_secs()
            ),
            HandshakeFailed::Shutdown => f.write_str("broker shutting down"),
        }
    }
}

/// Runs the server side of the TLS handshake, bounded in time and by shutdown. Dropping
/// the half-done handshake on failure closes the socket.
pub(super) async fn tls_handshake(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(Stream, TlsPeer), HandshakeFailed> {
    let _ = tcp.set_nodelay(true);
    // As RabbitMQ: a handshake that fails or times out ends with a reset (after any
    // alert rustls wrote); an orderly close once TLS is up.
    let _ = tcp.set_zero_linger();
    let accept = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let tls = tokio::select! {
        done = accept => match done {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(HandshakeFailed::Tls(e)),
            Err(_) => return Err(HandshakeFailed::Timeout),
        },
        _ = shutdown.changed() => return Err(HandshakeFailed::Shutdown),
    };
    // Deprecated because a non-zero linger blocks on drop; None turns SO_LINGER off,
    // which cannot.
    #[allow(deprecated)]
    let _ = tls.get_ref().0.set_linger(None);
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.clone().into_owned());
    let conn = tls.get_ref().1;
    let session = session_of(
        conn.protocol_version().and_then(|v| v.as_str()),
        conn.negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str()),
    );
    Ok((
        Stream::Tls(Box::new(tls)),
        TlsPeer {
            certificate,
            session,
        },
    ))
}

/// rustls' names ("TLSv1_3", "TLS13_AES_256_GCM_SHA384",
/// "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") in RabbitMQ's words: "tlsv1.3", key
/// exchange "any" (TLS 1.3) or "ecdhe_rsa", cipher "aes_256_gcm", hash "sha384".
fn session_of(version: Option<&str>, suite: Option<&str>) -> crate::stats::TlsSession {
    let protocol = version.map(|v| v.to_ascii_lowercase().replace('_', "."));
    let (key_exchange, rest) = match suite {
        Some(s) if s.starts_with("TLS13_") => (Some("any".to_owned()), Some(&s[6..])),
        Some(s) => match s.trim_start_matches("TLS_").split_once("_WITH_") {
            Some((kx, rest)) => (Some(kx.to_ascii_lowercase()), Some(rest)),
            None => (None, Some(s)),
        },
        None => (None, None),
    };
    let (cipher, hash) = match rest.and_then(|r| r.rsplit_once('_')) {
        Some((cipher, hash)) => (
            Some(cipher.to_ascii_lowercase()),
            Some(hash.to_ascii_lowercase()),
        ),
        None => (None, None),
    };
    crate::stats::TlsSession {
        protocol,
        key_exchange,
        cipher,
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::session_of;

    #[test]
    fn rustls_names_read_as_rabbitmq_writes_them() {
        let s = session_of(Some("TLSv1_3"), Some("TLS13_AES_256_GCM_SHA384"));
        assert_eq!(s.protocol.as_deref(), Some("tlsv1.3"));
        assert_eq!(s.key_exchange.as_deref(), Some("any"));
        assert_eq!(s.cipher.as_deref(), Some("aes_256_gcm"));
        assert_eq!(s.hash.as_deref(), Some("sha384"));
        let s = session_of(
            Some("TLSv1_2"),
            Some("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        );
        assert_eq!(s.protocol.as_deref(), Some("tlsv1.2"));
        assert_eq!(s.key_exchange.as_deref(), Some("ecdhe_rsa"));
        assert_eq!(s.cipher.as_deref(), Some("chacha20_poly1305"));
        assert_eq!(s.hash.as_deref(), Some("sha256"));
        assert_eq!(session_of(None, None).cipher, None);
    }
}
