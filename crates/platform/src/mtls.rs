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
    DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject as _},
    server::{ParsedCertificate, WebPkiClientVerifier},
};
use tokio::{net::TcpStream, sync::watch};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tonic::transport::server::{TcpConnectInfo, TcpIncoming, TlsConnectInfo};

use crate::config::MtlsSettings;

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

/// What the certificate of a call's peer says it is, in the request's extensions when the call
/// came over mTLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The certificate's SPIFFE ID (its `spiffe://` URI name).
    pub spiffe_id: String,
    /// The service it names (`spiffe://<trust domain>/service/<name>` in this process's trust
    /// domain), if any.
    pub service: Option<String>,
}

impl PeerIdentity {
    /// The identity in a DER certificate, read against `trust_domain`; `None` when the
    /// certificate carries no SPIFFE ID (or does not parse).
    pub fn from_certificate(der: &[u8], trust_domain: &str) -> Option<Self> {
        let spiffe_id = spiffe_id(der)?;
        let service = spiffe_id
            .strip_prefix("spiffe://")
            .and_then(|rest| rest.strip_prefix(trust_domain))
            .and_then(|rest| rest.strip_prefix(SERVICE_PATH))
            .filter(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
            .map(str::to_owned);
        Some(Self { spiffe_id, service })
    }

    /// The identity of a connection's peer from tonic's connection info, when the connection
    /// is TLS and the peer sent a certificate with a SPIFFE ID.
    pub fn from_extensions(extensions: &http::Extensions, trust_domain: &str) -> Option<Self> {
        let certs = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()?
            .peer_certs()?;
        Self::from_certificate(certs.first()?, trust_domain)
    }

    /// The peer identity of a request, put there by the access layer.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&PeerIdentity> {
        request.extensions().get::<PeerIdentity>()
    }
}

/// The first `spiffe://` URI name of a DER certificate.
fn spiffe_id(der: &[u8]) -> Option<String> {
    use x509_cert::{
        der::{Decode as _, oid::AssociatedOid as _},
        ext::pkix::{SubjectAltName, name::GeneralName},
    };
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let extension = cert
        .tbs_certificate
        .extensions?
        .into_iter()
        .find(|e| e.extn_id == SubjectAltName::OID)?;
    let names = SubjectAltName::from_der(extension.extn_value.as_bytes()).ok()?;
    names.0.into_iter().find_map(|name| match name {
        GeneralName::UniformResourceIdentifier(uri) if uri.as_str().starts_with("spiffe://") => {
            Some(uri.as_str().to_owned())
        }
        _ => None,
    })
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

/// Accepts a server whose certificate chains to the current CA and names the expected service
/// (host names are not checked: see the module's documentation).
struct ServiceVerifier {
    files: TlsFiles,
    expected: Option<String>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for ServiceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceVerifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for ServiceVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let roots = Arc::clone(&self.files.current.borrow().roots);
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let identity = PeerIdentity::from_certificate(end_entity, self.files.trust_domain())
            .ok_or_else(|| refuse("the server's certificate has no SPIFFE ID"))?;
        match (&identity.service, &self.expected) {
            (None, _) => Err(refuse(&format!(
                "the server's certificate ({}) names no service",
                identity.spiffe_id
            ))),
            (Some(service), Some(expected)) if service != expected => Err(refuse(&format!(
                "expected service {expected}, the server's certificate names {service}"
            ))),
            (Some(_), _) => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn refuse(why: &str) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(io::Error::new(
            io::ErrorKind::PermissionDenied,
            why.to_owned(),
        )),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate with `uri` among its names.
    fn certificate(uri: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(rcgen::SanType::URI(uri.try_into().expect("an IA5 URI")));
        params.self_signed(&key).expect("signed").der().to_vec()
    }

    #[test]
    fn a_service_identity_is_read_from_the_spiffe_uri_of_the_trust_domain() {
        let identity =
            PeerIdentity::from_certificate(&certificate(&service_id("agora", "order")), "agora")
                .expect("a SPIFFE ID");
        assert_eq!(identity.spiffe_id, "spiffe://agora/service/order");
        assert_eq!(identity.service.as_deref(), Some("order"));
    }

    #[test]
    fn other_identities_name_no_service() {
        let read = |uri: &str| {
            PeerIdentity::from_certificate(&certificate(uri), "agora").and_then(|i| i.service)
        };
        assert_eq!(read("spiffe://agora/edge/gateway"), None);
        assert_eq!(read("spiffe://elsewhere/service/order"), None);
        assert_eq!(read("spiffe://agora.evil/service/order"), None);
        assert_eq!(read("spiffe://agora/service/order/extra"), None);
        assert!(
            PeerIdentity::from_certificate(&certificate("https://agora/service/order"), "agora")
                .is_none()
        );
    }

    #[test]
    fn service_access_other_than_token_needs_mtls() {
        let settings = MtlsSettings {
            service_access: crate::config::ServiceAccess::Certificate,
            ..MtlsSettings::default()
        };
        let error = settings.validate().expect_err("no mTLS, no certificates");
        assert!(error.to_string().contains("mtls.enabled"), "{error}");
        assert!(MtlsSettings::default().validate().is_ok());
    }
}
