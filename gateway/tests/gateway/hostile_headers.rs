//! Oversized headers and URLs against a real edge (`serve::serve` on a TCP listener, HTTP/1.1 and
//! h2c) in front of the real auth and product services. A service closes its whole HTTP/2
//! connection (GOAWAY) on a header block over its limit, failing every call on it, so the edge
//! must refuse such requests itself: 431 or 414 with a `google.rpc.Status` body for REST,
//! INVALID_ARGUMENT for gRPC and gRPC-Web. While a flood of them runs, other callers' unary calls
//! and a call held open on the same upstream connection all succeed.

use std::net::SocketAddr;
use std::time::Duration;

use agora_contracts::agora::product::v1 as pb;
use agora_contracts::agora::product::v1::product_service_client::ProductServiceClient;
use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::ServiceExt as _;

use crate::whole_edge::{LIST_PRODUCTS, PATIENCE, empty_list_request, http1, setup};
use agora_testkit::{TestBackend, on_both_backends};

on_both_backends!(
    oversized_headers_are_refused_at_the_edge_and_no_other_call_on_the_upstream_fails
);

/// An h2c connection to the edge, as any gRPC client makes one.
async fn h2c(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect()
        .await
        .expect("the edge speaks h2c")
}

/// The oversized headers of the flood, each as `(name, value)` pairs.
fn oversized_headers() -> Vec<Vec<(String, String)>> {
    let big = |name: &str, kib: usize| vec![(name.to_owned(), "v".repeat(kib * 1024))];
    vec![
        big("grpc-metadata-tenant", 12),
        big("grpc-metadata-tenant", 64),
        big("x-anything", 64),
        // Each small, together too many bytes.
        (0..30)
            .map(|i| (format!("x-part-{i}"), "v".repeat(900)))
            .collect(),
        // Too many.
        (0..150)
            .map(|i| (format!("x-many-{i}"), "v".into()))
            .collect(),
    ]
}

fn head_lines(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(name, value)| format!("\r\n{name}: {value}"))
        .collect()
}

/// Every oversized variant over HTTP/1.1: REST, native gRPC and gRPC-Web (binary and text).
async fn flood_http1(edge: SocketAddr) {
    let grpc = empty_list_request();
    let text = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &grpc);
    for headers in oversized_headers() {
        let lines = head_lines(&headers);
        let rest = http1(edge, &format!("GET /v1/products HTTP/1.1{lines}"), b"").await;
        assert_eq!(rest.status, 431, "REST over HTTP/1.1: {rest:?}");
        let body: serde_json::Value = serde_json::from_slice(&rest.body).expect("a JSON status");
        assert_eq!(body["code"], 3, "INVALID_ARGUMENT: {body}");
        for (content_type, body) in [
            ("application/grpc", grpc.as_slice()),
            ("application/grpc-web+proto", grpc.as_slice()),
            ("application/grpc-web-text", text.as_bytes()),
        ] {
            let head = format!(
                "POST {LIST_PRODUCTS} HTTP/1.1\r\ncontent-type: {content_type}\r\nte: trailers{lines}"
            );
            let answer = http1(edge, &head, body).await;
            assert_eq!(answer.status, 200, "{content_type}: {answer:?}");
            assert_eq!(answer.header("grpc-status"), Some("3"), "{content_type}");
        }
    }
    let long = format!("/v1/products?pageToken={}", "x".repeat(9 * 1024));
    let url = http1(edge, &format!("GET {long} HTTP/1.1"), b"").await;
    assert_eq!(url.status, 414, "{url:?}");
}

/// Every oversized variant over h2c, each on its own connection: REST and native gRPC.
async fn flood_h2c(edge: SocketAddr) {
    for headers in oversized_headers() {
        for grpc in [false, true] {
            let channel = h2c(edge).await;
            let mut request = if grpc {
                http::Request::post(LIST_PRODUCTS)
                    .header("content-type", "application/grpc")
                    .header("te", "trailers")
                    .body(tonic::body::Body::new(http_body_util::Full::new(
                        Bytes::from(empty_list_request()),
                    )))
            } else {
                http::Request::get("/v1/products").body(tonic::body::Body::empty())
            }
            .expect("a request");
            for (name, value) in &headers {
                request.headers_mut().append(
                    http::HeaderName::from_bytes(name.as_bytes()).expect("a name"),
                    http::HeaderValue::from_str(value).expect("a value"),
                );
            }
            let answer = tokio::time::timeout(PATIENCE, channel.oneshot(request))
                .await
                .expect("answered in time")
                .expect("answered");
            if grpc {
                assert_eq!(answer.status(), 200);
                assert_eq!(answer.headers()["grpc-status"], "3", "gRPC over h2c");
            } else {
                assert_eq!(answer.status(), 431, "REST over h2c");
                let body = answer
                    .into_body()
                    .collect()
                    .await
                    .expect("a body")
                    .to_bytes();
                let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                assert_eq!(body["code"], 3, "{body}");
            }
        }
    }
}

/// Well-behaved calls while the flood runs: REST over HTTP/1.1 and gRPC over h2c, all answered.
async fn well_behaved(edge: SocketAddr, rounds: usize) {
    let mut client = ProductServiceClient::new(h2c(edge).await);
    for round in 0..rounds {
        let rest = http1(edge, "GET /v1/products?pageSize=5 HTTP/1.1", b"").await;
        assert_eq!(rest.status, 200, "REST call {round}: {rest:?}");
        client
            .list_products(pb::ListProductsRequest::default())
            .await
            .unwrap_or_else(|status| panic!("gRPC call {round}: {status:?}"));
    }
}

async fn oversized_headers_are_refused_at_the_edge_and_no_other_call_on_the_upstream_fails(
    backend: TestBackend,
) {
    let Some(setup) = setup(backend).await else {
        return;
    };
    let edge = setup.edge;
    // A call held open across the flood: its request stream stays open on the edge's connection
    // to product, so a GOAWAY on that connection would fail it.
    let (send, held_body) = mpsc::channel::<Result<Frame<Bytes>, tonic::Status>>(1);
    let held = http::Request::post(LIST_PRODUCTS)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(StreamBody::new(
            ReceiverStream::new(held_body),
        )))
        .expect("a request");
    let held = tokio::spawn(h2c(edge).await.oneshot(held));
    // The upstream connection is up and serving before the flood starts.
    well_behaved(edge, 1).await;

    tokio::time::timeout(
        Duration::from_secs(120),
        futures::future::join3(flood_http1(edge), flood_h2c(edge), well_behaved(edge, 20)),
    )
    .await
    .expect("the flood and the calls beside it finish");

    send.send(Ok(Frame::data(Bytes::from(empty_list_request()))))
        .await
        .expect("the held call is still open");
    drop(send);
    let answer = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("the held call ends")
        .expect("the task ran")
        .expect("the held call is answered");
    assert_eq!(answer.status(), 200);
    let (_, body) = answer.into_parts();
    let collected = body.collect().await.expect("the held call's body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert_eq!(
        trailers["grpc-status"], "0",
        "the held call succeeds: {trailers:?}"
    );
}
