//! One client address on every path: a real edge (`serve::serve` on a TCP listener) believes
//! `X-Forwarded-For` and `Forwarded` only from `gateway.trusted_proxies`, so a client that spoofs
//! them reaches the upstream as the peer the edge saw, over REST, native gRPC and gRPC-Web alike,
//! and auth's per-address login throttle counts it as one client whatever it writes.
//!
//! Clients connect from 127.0.0.2 and 127.0.0.3 (the loopback network) so that they are not the
//! 127.0.0.1 that auth trusts as the edge.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use crate::whole_edge::{http1_from, serve_edge as edge};
use agora_contracts::agora::auth::v1 as auth_pb;
use agora_contracts::agora::auth::v1::auth_service_client::AuthServiceClient;
use agora_contracts::agora::product::v1 as pb;
use agora_contracts::agora::product::v1::product_service_client::ProductServiceClient;
use agora_platform::config::{Config, ServiceKind};
use agora_testkit::{TestBackend, TestMesh, email, on_both_backends};
use axum::Router;
use axum::extract::Request;

on_both_backends!(
    a_spoofed_forwarding_header_reaches_the_upstream_as_the_peer_on_every_protocol,
    login_attempts_with_a_new_spoofed_address_each_are_throttled_on_every_protocol,
);

const SPOOFED: &str = "203.0.113.9";

fn client_ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// An upstream that records the `x-forwarded-for` and `forwarded` of every call and answers
/// UNIMPLEMENTED (the edge's own health checks, which carry no client, are not recorded).
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

async fn recording_upstream() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = Router::new().fallback(move |request: Request| {
        let record = record.clone();
        async move {
            if request.uri().path().starts_with("/grpc.health.v1.Health/") {
                return tonic::Status::unimplemented("no health here")
                    .into_http::<axum::body::Body>();
            }
            let header = |name| {
                request
                    .headers()
                    .get(name)
                    .and_then(|v: &http::HeaderValue| v.to_str().ok())
                    .map(str::to_owned)
            };
            record
                .lock()
                .expect("not poisoned")
                .push((header("x-forwarded-for"), header("forwarded")));
            tonic::Status::unimplemented("recorded").into_http::<axum::body::Body>()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

/// An h2c connection to `edge` from `from`.
async fn h2c_from(edge: SocketAddr, from: IpAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{edge}"))
        .expect("a URL")
        .local_address(Some(from))
        .connect()
        .await
        .expect("the edge speaks h2c")
}

fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
    framed.extend_from_slice(&encoded);
    framed
}

fn edge_config(mesh: &TestMesh, product: &str, trusted: &[&str]) -> Config {
    mesh.service_config(ServiceKind::Auth)
        .clone()
        .with("services.product.url", product)
        .and_then(|c| c.with("gateway.cache_prefix", format!("{}gateway:", mesh.prefix())))
        .and_then(|c| c.with("gateway.trusted_proxies", trusted))
        // The edge's own sign-in budget would refuse first; this is about auth's throttle.
        .and_then(|c| c.with("gateway.rate_limit.enabled", false))
        .expect("valid settings")
}

async fn a_spoofed_forwarding_header_reaches_the_upstream_as_the_peer_on_every_protocol(
    backend: TestBackend,
) {
    let Some(mesh) = TestMesh::start(backend).await else {
        return;
    };
    let (product, seen) = recording_upstream().await;
    let (untrusting, _stop) = edge(edge_config(&mesh, &product, &[])).await;
    let from = client_ip(2);

    let mut call = tonic::Request::new(pb::ListProductsRequest::default());
    let metadata = call.metadata_mut();
    metadata.insert("x-forwarded-for", SPOOFED.parse().expect("ASCII"));
    metadata.insert("forwarded", "for=203.0.113.10".parse().expect("ASCII"));
    let answer = ProductServiceClient::new(h2c_from(untrusting, from).await)
        .list_products(call)
        .await
        .expect_err("the recorder answers UNIMPLEMENTED");
    assert_eq!(answer.message(), "recorded", "{answer:?}");

    let spoofing = format!("\r\nx-forwarded-for: {SPOOFED}\r\nforwarded: for=203.0.113.10");
    let web = format!(
        "POST /agora.product.v1.ProductService/ListProducts HTTP/1.1\r\n\
         content-type: application/grpc-web+proto{spoofing}"
    );
    let frame = grpc_frame(&pb::ListProductsRequest::default());
    assert_eq!(http1_from(untrusting, from, &web, &frame).await.status, 200);
    let rest = format!("GET /v1/products HTTP/1.1{spoofing}");
    assert_eq!(http1_from(untrusting, from, &rest, b"").await.status, 501);

    // Behind a trusted proxy (here the client's own address), the chain is believed.
    let (trusting, _stop) = edge(edge_config(&mesh, &product, &["127.0.0.2/32"])).await;
    let rest = format!("GET /v1/products HTTP/1.1\r\nx-forwarded-for: {SPOOFED}");
    assert_eq!(http1_from(trusting, from, &rest, b"").await.status, 501);

    let seen = seen.lock().expect("not poisoned").clone();
    let peer_only = (Some("127.0.0.2".to_owned()), None);
    assert_eq!(
        seen,
        [
            peer_only.clone(),
            peer_only.clone(),
            peer_only,
            (Some(format!("{SPOOFED}, 127.0.0.2")), None),
        ],
        "gRPC, gRPC-Web and REST from an untrusted peer, then REST behind a trusted proxy"
    );
}

async fn login_attempts_with_a_new_spoofed_address_each_are_throttled_on_every_protocol(
    backend: TestBackend,
) {
    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    // Auth again, with a small per-address budget (the first one stops).
    mesh.spawn_with(
        ServiceKind::Auth,
        &[("auth.max_failed_logins_per_address", 3.into())],
        |config, listener, shutdown| async move {
            agora_auth::SERVICE.serve(&config, listener, shutdown).await
        },
    )
    .await;
    let (product, _) = recording_upstream().await;
    let config = edge_config(&mesh, &product, &[]).with(
        "services.auth.url",
        format!("http://{}", mesh.addr(ServiceKind::Auth)),
    );
    let (edge, _stop) = edge(config.expect("a valid setting")).await;

    // gRPC passthrough from 127.0.0.2, a new spoofed address and account each time.
    let mut client = AuthServiceClient::new(h2c_from(edge, client_ip(2)).await);
    let mut codes = Vec::new();
    for attempt in 0..4 {
        let mut call = tonic::Request::new(auth_pb::LoginRequest {
            email: email(&format!("grpc-{attempt}")),
            password: "wrong password".into(),
        });
        let spoofed = format!("198.51.100.{attempt}");
        call.metadata_mut()
            .insert("x-forwarded-for", spoofed.parse().expect("ASCII"));
        let status = client.login(call).await.expect_err("a wrong password");
        codes.push(status.code());
    }
    use tonic::Code::{ResourceExhausted, Unauthenticated};
    assert_eq!(
        codes,
        [
            Unauthenticated,
            Unauthenticated,
            Unauthenticated,
            ResourceExhausted
        ]
    );

    // REST from 127.0.0.3, the same.
    let mut statuses = Vec::new();
    for attempt in 0..4 {
        let body = format!(
            r#"{{"email":"{}","password":"wrong password"}}"#,
            email(&format!("rest-{attempt}"))
        );
        let head = format!(
            "POST /v1/auth/login HTTP/1.1\r\ncontent-type: application/json\r\n\
             x-forwarded-for: 198.51.100.{attempt}"
        );
        statuses.push(
            http1_from(edge, client_ip(3), &head, body.as_bytes())
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
}
