//! Mutual TLS between services and the edge.
//!
//! With `mtls.enabled`, each process reads its certificate chain, private key and a CA bundle
//! from files ([`TlsFiles`]), and reads them again every `mtls.reload_interval`: cert-manager
//! rotates certificates by rewriting the mounted Secret, and the next connection uses the new
//! ones without a restart. Servers refuse a connection whose client certificate does not chain
//! to the CA (or has expired); channels present the process's certificate and accept a server
//! only when its certificate chains to the CA and names a service of the trust domain.
//!
//! Identities are SPIFFE IDs in the certificates' URI names: a service's is
//! `spiffe://<trust_domain>/service/<name>` ([`service_id`]); the edge's is any other ID of the
//! trust domain (the Kubernetes component uses `spiffe://agora/edge/gateway`). Host names are
//! not checked: callers reach pods by address (see [`crate::discovery`]), and the SPIFFE ID says
//! which service answered. The identity of a call's peer is in its extensions as a
//! [`PeerIdentity`], which the access layer can require for SERVICE-only methods
//! (`mtls.service_access`).
use std::{fmt, io, sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::{Stream, StreamExt as _};
use rustls::{
    RootCertStore, ServerConfig,
    client::danger::ServerCertVerifier,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::WebPkiClientVerifier,
};
use tokio::{net::TcpStream, sync::watch};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tonic::transport::server::TcpIncoming;

use crate::config::MtlsSettings;

mod identity;
mod verifier;

pub use identity::PeerIdentity;
use verifier::ServiceVerifier;

/// The ALPN protocol of gRPC.
const ALPN_H2: &[u8] = b"h2";

/// How long a client may take over its TLS handshake before its connection is closed, so a
/// peer that connects and says nothing holds no resources.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The path segment of service identities: `spiffe://<trust domain>/service/<name>`.
const SERVICE_PATH: &str = "/service/";

/// The SPIFFE ID of service `name` in `trust_domain`.
pub fn service_id(trust_domain: &str, name: &str) -> String {
    format!("spiffe://{trust_domain}{SERVICE_PATH}{name}")
}

/// The crypto provider of every TLS connection: ring, the one tonic's `tls-ring` builds in.
/// rustls now steers toward aws-lc-rs for post-quantum key exchange; ring stays until the
/// workspace moves as a whole (its C build is far lighter, and every provider must match).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The files' contents, compared at each poll to see whether they changed.
#[derive(PartialEq, Eq)]
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
}

impl Pem {
    fn read(settings: &MtlsSettings) -> anyhow::Result<Self> {
        let read = |path: &std::path::Path, setting: &str| {
            std::fs::read(path).with_context(|| format!("reading {setting} {}", path.display()))
        };
        Ok(Self {
            cert: read(&settings.cert_file, "mtls.cert_file")?,
            key: read(&settings.key_file, "mtls.key_file")?,
            ca: read(&settings.ca_file, "mtls.ca_file")?,
        })
    }
}

/// One loaded generation of the files, ready for servers and channels.
struct Loaded {
    pem: Pem,
    /// What new server connections are accepted with.
    server: Arc<ServerConfig>,
    /// The CA, for checking servers' certificates.
    roots: Arc<RootCertStore>,
    /// The certificate and key channels present (tonic parses them again per endpoint).
    identity: tonic::transport::Identity,
}

impl Loaded {
    fn new(pem: Pem) -> anyhow::Result<Self> {
        let provider = provider();
        let certs = CertificateDer::pem_slice_iter(&pem.cert)
            .collect::<Result<Vec<_>, _>>()
            .context("mtls.cert_file is not a PEM certificate chain")?;
        anyhow::ensure!(!certs.is_empty(), "mtls.cert_file holds no certificate");
        let key = PrivateKeyDer::from_pem_slice(&pem.key)
            .context("mtls.key_file is not a PEM private key")?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&pem.ca) {
            roots
                .add(ca.context("mtls.ca_file is not a PEM bundle")?)
                .context("mtls.ca_file holds a certificate that is not a valid CA")?;
        }
        anyhow::ensure!(!roots.is_empty(), "mtls.ca_file holds no certificate");
        let roots = Arc::new(roots);
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .context("building the client certificate verifier from mtls.ca_file")?;
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_client_cert_verifier(verifier)
            // Refuses a key that does not belong to the certificate (a half-written rotation).
            .with_single_cert(certs, key)
            .context("mtls.key_file does not match mtls.cert_file")?;
        server.alpn_protocols = vec![ALPN_H2.to_vec()];
        let identity = tonic::transport::Identity::from_pem(&pem.cert, &pem.key);
        Ok(Self {
            pem,
            server: Arc::new(server),
            roots,
            identity,
        })
    }
}

/// This process's certificate, key and CA bundle, loaded from the `mtls` files and reloaded
/// when they change. Clones share one reloading task, which ends with the last clone.
#[derive(Clone)]
pub struct TlsFiles {
    current: watch::Receiver<Arc<Loaded>>,
    trust_domain: Arc<str>,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl TlsFiles {
    /// Loads the files now and reads them again every `reload_interval`. Call it within a Tokio
    /// runtime.
    ///
    /// # Errors
    /// A file is missing or unreadable, is not PEM, or the key does not match the certificate.
    pub fn load(settings: &MtlsSettings) -> anyhow::Result<Self> {
        settings.validate()?;
        let loaded = Loaded::new(Pem::read(settings)?)?;
        let (sender, current) = watch::channel(Arc::new(loaded));
        tokio::spawn(reload(settings.clone(), sender));
        Ok(Self {
            current,
            trust_domain: settings.trust_domain.as_str().into(),
        })
    }

    /// The SPIFFE trust domain of identities.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// What a new server connection is accepted with now.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.borrow().server)
    }

    /// The certificate and key a new channel presents now.
    pub(crate) fn identity(&self) -> tonic::transport::Identity {
        self.current.borrow().identity.clone()
    }

    /// Resolves each time the files are loaded again; `false` once they never will be.
    pub(crate) async fn renewed(&mut self) -> bool {
        self.current.changed().await.is_ok()
    }

    /// A verifier of servers' certificates against the current CA, requiring the SPIFFE ID of
    /// service `expected` (of any service when `None`).
    pub(crate) fn server_verifier(&self, expected: Option<&str>) -> Arc<dyn ServerCertVerifier> {
        Arc::new(ServiceVerifier {
            files: self.clone(),
            expected: expected.map(str::to_owned),
            provider: provider(),
        })
    }

    /// TLS connections accepted on `listener` with the current server configuration, the
    /// failed handshakes dropped (and logged). Accepting stops when the stream is dropped.
    pub fn incoming(
        &self,
        listener: tokio::net::TcpListener,
    ) -> impl Stream<Item = Result<TlsStream<TcpStream>, io::Error>> + Send + 'static {
        let (accepted, stream) = tokio::sync::mpsc::channel(64);
        let files = self.clone();
        tokio::spawn(async move {
            // Small replies go out at once: with Nagle's algorithm on, a reply can wait ~40 ms
            // for the client's delayed ACK.
            let mut incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            loop {
                let tcp = tokio::select! {
                    next = incoming.next() => next,
                    () = accepted.closed() => return,
                };
                match tcp {
                    None => return,
                    Some(Err(error)) => {
                        tracing::warn!(%error, "accepting a connection");
                        // Out of descriptors, say: wait rather than spin.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Some(Ok(tcp)) => {
                        let acceptor = TlsAcceptor::from(files.server_config());
                        let accepted = accepted.clone();
                        tokio::spawn(async move {
                            let peer = tcp.peer_addr().ok();
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(tls)) => {
                                    let _ = accepted.send(Ok(tls)).await;
                                }
                                Ok(Err(error)) => {
                                    tracing::info!(?peer, %error, "refused a TLS connection");
                                }
                                Err(_) => tracing::info!(?peer, "TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(stream)
    }
}

/// Reads the files every `reload_interval` and publishes a new generation when they changed,
/// until every [`TlsFiles`] is dropped. A generation that does not load (a rotation caught
/// half-written, a bad file) is logged and the previous one kept.
async fn reload(settings: MtlsSettings, sender: watch::Sender<Arc<Loaded>>) {
    let mut interval = tokio::time::interval(settings.reload_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = sender.closed() => return,
        }
        let pem = match Pem::read(&settings) {
            Ok(pem) => pem,
            Err(error) => {
                tracing::warn!("keeping the current certificate: {error:#}");
                continue;
            }
        };
        if sender.borrow().pem == pem {
            continue;
        }
        match Loaded::new(pem) {
            Ok(loaded) => {
                sender.send_replace(Arc::new(loaded));
                tracing::info!(cert_file = %settings.cert_file.display(), "reloaded the certificate");
            }
            Err(error) => tracing::warn!("keeping the current certificate: {error:#}"),
        }
    }
}

#[cfg(test)]
mod tests;
