use super::*;

/// A self-signed certificate with `uri` among its names.
fn certificate(uri: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("a key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
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
