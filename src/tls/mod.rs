//! The amqps listener's TLS settings: certificate, key, CA and peer verification, made
//! into a rustls server configuration (ring provider, TLS 1.2 and 1.3) that the accept
//! loop hands to each new TLS connection, and that SIGHUP can reload.
//!
//! Built by `server::start` from the `--tls-*` flags (RabbitMQ's `ssl_options`); the
//! connection task runs the handshake with the acceptor it was given. Files are read
//! only at start and on reload, never per connection; a reload that fails keeps the
//! configuration that works. Never holds its lock across an `.await` or file I/O.

mod subject;
pub mod validity;

pub use subject::common_name;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{version, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// RabbitMQ's `ssl_options.verify`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Verify {
    /// Ask no client certificate (verify_none, RabbitMQ's default).
    #[default]
    None,
    /// Ask for a client certificate and check it against the CA (verify_peer).
    Peer,
}

/// What the TLS listener is configured from.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub verify: Verify,
    pub fail_if_no_peer_cert: bool,
}

/// The TLS listener's current configuration; replaced whole by `reload`.
pub struct Tls {
    files: TlsFiles,
    acceptor: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads the files and builds the configuration; an error names the file at fault.
    pub fn load(files: TlsFiles) -> io::Result<Tls> {
        let config = server_config(&files)?;
        Ok(Tls {
            files,
            acceptor: RwLock::new(TlsAcceptor::from(Arc::new(config))),
        })
    }

    /// The acceptor for a connection accepted now (an `Arc` clone).
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again, off the runtime's workers: connections accepted after it
    /// use the new certificate, open ones keep theirs. On error nothing changes.
    pub async fn reload(self: &Arc<Self>) -> io::Result<()> {
        let tls = self.clone();
        let config = tokio::task::spawn_blocking(move || server_config(&tls.files))
            .await
            .map_err(io::Error::other)??;
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) =
            TlsAcceptor::from(Arc::new(config));
        Ok(())
    }
}

/// ring: it builds in a fraction of aws-lc-rs's time (no cmake, no C++ on two cores).
/// rustls deprecated it for lacking post-quantum key exchange; the classical groups
/// (X25519, P-256, P-384) are what RabbitMQ 3.10 offers too.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn server_config(files: &TlsFiles) -> io::Result<ServerConfig> {
    let chain = certificates(&files.cert)?;
    if chain.is_empty() {
        return Err(bad_file(&files.cert, "holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| bad_file(&files.key, &format!("holds no usable private key ({e})")))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])
        .map_err(io::Error::other)?;
    let builder = match files.verify {
        Verify::None => builder.with_no_client_auth(),
        Verify::Peer => {
            let Some(ca) = &files.ca else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "--tls-verify peer needs --tls-ca (the CA that signs client certificates)",
                ));
            };
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|e| {
                    bad_file(ca, &format!("holds an unusable CA certificate ({e})"))
                })?;
            }
            if roots.is_empty() {
                return Err(bad_file(ca, "holds no PEM certificate"));
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            if !files.fail_if_no_peer_cert {
                // RabbitMQ's fail_if_no_peer_cert = false: a client without a
                // certificate is let in; one with a bad certificate is not.
                verifier = verifier.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(verifier.build().map_err(io::Error::other)?)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| bad_file(&files.key, &format!("does not match the certificate ({e})")))?;
    // AMQP has no ALPN id; clients that send one are still served.
    config.alpn_protocols.clear();
    Ok(config)
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(path, &format!("is not PEM ({e})")))
}

fn bad_file(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} {what}", path.display()),
    )
}
