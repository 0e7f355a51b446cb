//! Headers and metadata: what the edge sends upstream (credentials, `Grpc-Metadata-*`, the
//! deadline, the request id, the peer address) and what comes back. (`traceparent` is carried by
//! the edge's tracing span, which `serve` wraps around this router: `agora/tests/agora/trace.rs`
//! follows it across the mesh.)

use std::time::{Duration, Instant};

use axum::body::Body;
use http::StatusCode;

use super::edge::{Edge, request};

/// `GET /v1/items/i-1` with `headers`.
async fn get_with(edge: &Edge, headers: &[(&str, &str)]) -> super::edge::Answer {
    let mut builder = request("GET", "/v1/items/i-1");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    edge.send(builder.body(Body::empty()).expect("a request"))
        .await
}

/// A `grpc-timeout` value (`<digits><unit>`) as a duration.
fn grpc_timeout(text: &str) -> Duration {
    let (digits, unit) = text.split_at(text.len() - 1);
    let amount: u64 = digits.parse().expect("grpc-timeout digits");
    match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        other => panic!("grpc-timeout unit {other:?}"),
    }
}

#[tokio::test]
async fn authorization_goes_upstream_as_authorization_metadata() {
    let edge = Edge::start().await;
    get_with(&edge, &[("authorization", "Bearer t0ken")])
        .await
        .ok();
    assert_eq!(
        edge.echo.only_call().header("authorization").as_deref(),
        Some("Bearer t0ken")
    );
}

#[tokio::test]
async fn grpc_metadata_headers_go_upstream_without_their_prefix() {
    let edge = Edge::start().await;
    get_with(&edge, &[("Grpc-Metadata-Tenant", "acme")])
        .await
        .ok();
    let call = edge.echo.only_call();
    assert_eq!(call.header("tenant").as_deref(), Some("acme"));
    assert_eq!(call.header("grpc-metadata-tenant"), None);
}

#[tokio::test]
async fn response_metadata_comes_back_as_grpc_metadata_headers() {
    let edge = Edge::start().await;
    // The upstream answers each entry it received as `echo-<key>`.
    let answer = get_with(&edge, &[("Grpc-Metadata-Tenant", "acme")]).await;
    answer.ok();
    assert_eq!(answer.header("grpc-metadata-echo-tenant"), Some("acme"));
}

/// Sends a call that sleeps 5 s upstream, with `grpc_timeout` if given, to an edge whose route
/// timeout is `route_timeout`: it must be a 504 in well under 2 s, and the deadline sent upstream
/// must be no later than `expected`.
async fn assert_deadline(
    route_timeout: Duration,
    grpc_timeout_header: Option<&str>,
    expected: Duration,
) {
    let edge = Edge::with_timeout(route_timeout).await;
    let mut builder = request("GET", "/v1/naps?delay=5s");
    if let Some(value) = grpc_timeout_header {
        builder = builder.header("grpc-timeout", value);
    }
    let started = Instant::now();
    let answer = edge
        .send(builder.body(Body::empty()).expect("a request"))
        .await;
    let elapsed = started.elapsed();
    answer.assert_error(StatusCode::GATEWAY_TIMEOUT, tonic::Code::DeadlineExceeded);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let sent = edge.echo.only_call().header("grpc-timeout");
    let sent = grpc_timeout(sent.as_deref().expect("a deadline went upstream"));
    assert!(
        sent <= expected,
        "{sent:?} sent, at most {expected:?} expected"
    );
}

#[tokio::test]
async fn a_grpc_timeout_header_sets_the_upstream_deadline() {
    assert_deadline(
        Duration::from_secs(15),
        Some("200m"),
        Duration::from_millis(200),
    )
    .await;
}

#[tokio::test]
async fn the_routes_own_timeout_is_the_deadline_when_the_client_sends_none() {
    assert_deadline(Duration::from_millis(300), None, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_grpc_timeout_longer_than_the_routes_own_does_not_extend_it() {
    assert_deadline(
        Duration::from_millis(300),
        Some("10S"),
        Duration::from_millis(300),
    )
    .await;
}

#[tokio::test]
async fn a_request_id_is_generated_when_absent_and_goes_upstream_and_back() {
    let edge = Edge::start().await;
    let answer = get_with(&edge, &[]).await;
    answer.ok();
    let id = answer.header("x-request-id").expect("an id is generated");
    assert!(!id.is_empty());
    assert_eq!(
        edge.echo.only_call().header("x-request-id").as_deref(),
        Some(id)
    );
}

#[tokio::test]
async fn a_clients_request_id_goes_upstream_and_comes_back() {
    let edge = Edge::start().await;
    let answer = get_with(&edge, &[("x-request-id", "req-42")]).await;
    answer.ok();
    assert_eq!(answer.header("x-request-id"), Some("req-42"));
    assert_eq!(
        edge.echo.only_call().header("x-request-id").as_deref(),
        Some("req-42")
    );
}

#[tokio::test]
async fn x_forwarded_for_is_the_peer_address_and_an_untrusted_chain_is_dropped() {
    let edge = Edge::start().await;
    get_with(&edge, &[]).await.ok();
    get_with(&edge, &[("x-forwarded-for", "198.51.100.1")])
        .await
        .ok();
    let forwarded: Vec<Option<String>> = edge
        .echo
        .calls()
        .iter()
        .map(|c| c.header("x-forwarded-for"))
        .collect();
    assert_eq!(
        forwarded,
        [
            Some("203.0.113.7".to_owned()),
            Some("203.0.113.7".to_owned())
        ]
    );
}
