use super::*;
use tonic::metadata::{MetadataKey, MetadataValue};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).expect("a header name"),
                HeaderValue::from_str(v).expect("a header value"),
            )
        })
        .collect()
}

#[test]
fn only_authorization_prefixed_metadata_the_id_and_the_forwarded_chain_go_upstream() {
    let incoming = headers(&[
        ("authorization", "Bearer t"),
        ("grpc-metadata-tenant", "acme"),
        ("grpc-metadata-grpc-timeout", "1S"),
        ("cookie", "session=1"),
        ("x-forwarded-for", "203.0.113.7"),
    ]);
    let metadata = upstream_metadata(&incoming, "req-1", None)
        .expect("valid metadata")
        .into_headers();
    assert_eq!(metadata["authorization"], "Bearer t");
    assert_eq!(metadata["tenant"], "acme");
    assert_eq!(metadata[REQUEST_ID], "req-1");
    assert_eq!(
        metadata["x-forwarded-for"], "203.0.113.7",
        "as decided before"
    );
    assert!(metadata.get("cookie").is_none());
    assert!(metadata.get("grpc-timeout").is_none());
}

#[test]
fn a_transport_header_sent_as_metadata_is_invalid_argument() {
    for key in [
        "content-length",
        "te",
        "transfer-encoding",
        "connection",
        "host",
    ] {
        let name = format!("grpc-metadata-{key}");
        let status = upstream_metadata(&headers(&[(name.as_str(), "0")]), "req-1", None)
            .expect_err("a transport header");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{key}");
        assert!(status.message().contains(&name), "{status:?}");
    }
}

#[test]
fn response_metadata_comes_back_prefixed_without_transport_headers() {
    let mut metadata = MetadataMap::new();
    metadata.insert("x-cache", MetadataValue::from_static("hit"));
    metadata.insert(
        "content-type",
        MetadataValue::from_static("application/grpc"),
    );
    metadata.insert("grpc-accept-encoding", MetadataValue::from_static("gzip"));
    metadata.insert_bin(
        MetadataKey::from_static("trace-bin"),
        tonic::metadata::MetadataValue::from_bytes(b"\x01\x02"),
    );
    let mut out = HeaderMap::new();
    copy_response_metadata(&metadata, &mut out);
    assert_eq!(out["grpc-metadata-x-cache"], "hit");
    assert_eq!(out["grpc-metadata-trace-bin"], "AQI");
    assert_eq!(out.len(), 2, "{out:?}");
}

#[test]
fn a_device_token_comes_back_as_a_cookie_only() {
    let mut metadata = MetadataMap::new();
    metadata.insert("agora-device", MetadataValue::from_static("u.n.1.m"));
    metadata.insert("agora-device-max-age", MetadataValue::from_static("60"));
    let mut out = HeaderMap::new();
    copy_response_metadata(&metadata, &mut out);
    assert_eq!(
        out[header::SET_COOKIE],
        "agora_device=u.n.1.m; Path=/v1/auth; Max-Age=60; HttpOnly; Secure; SameSite=Strict"
    );
    assert_eq!(out.len(), 1, "not readable by page script: {out:?}");
}

#[test]
fn a_request_id_with_spaces_or_too_long_is_replaced() {
    assert_eq!(request_id(&headers(&[(REQUEST_ID, "abc-1")])), "abc-1");
    assert_ne!(request_id(&headers(&[(REQUEST_ID, "a b")])), "a b");
    let long = "x".repeat(129);
    assert_ne!(request_id(&headers(&[(REQUEST_ID, &long)])), long);
}
