//! Who the peer of a connection is: the SPIFFE ID in its certificate, and the service it names.

use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::SERVICE_PATH;

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
