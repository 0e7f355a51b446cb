//! The check a channel makes of a server's certificate: it chains to the current CA and names a
//! service of the trust domain (the expected one, when there is one).

use std::{fmt, io, sync::Arc};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime},
    server::ParsedCertificate,
};

use super::{PeerIdentity, TlsFiles};

/// Accepts a server whose certificate chains to the current CA and names the expected service
/// (host names are not checked: see the module's documentation).
pub(super) struct ServiceVerifier {
    /// The files whose current CA the chain must reach.
    pub(super) files: TlsFiles,
    /// The service the certificate must name; any service when `None`.
    pub(super) expected: Option<String>,
    /// The signature algorithms to check with.
    pub(super) provider: Arc<CryptoProvider>,
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

/// A refusal of a certificate, saying why.
fn refuse(why: &str) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(io::Error::new(
            io::ErrorKind::PermissionDenied,
            why.to_owned(),
        )),
    )))
}
