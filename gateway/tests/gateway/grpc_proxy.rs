//! Native gRPC and gRPC-Web through the edge, end to end: a real edge on a TCP listener (HTTP/1.1
//! and h2c), the real product service behind it on both backends, generated tonic clients and
//! hand-framed gRPC-Web requests in front, and the edge's own reflection.
//!
//! # Layout
//! - this file: the edge under test and what every scenario shares.
//! - `native`: generated clients through the edge; metadata, errors, UNIMPLEMENTED,
//!   UNAVAILABLE, deadlines.
//! - `web`: gRPC-Web, binary and base64, over a hand-written HTTP/1.1 connection.
//! - `reflection`: the edge's own reflection, v1 and v1alpha.
//! - `streaming`: server-streaming and bidi calls forwarded as they happen.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use agora_contracts::agora::product::v1 as pb;
use agora_gateway::grpc_proxy::GrpcProxy;
use agora_gateway::upstream::Upstream;
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh};
use axum::Router;
use axum::extract::Request;

mod native;
mod reflection;
mod streaming;
mod web;

const PRODUCT: &str = "agora.product.v1.ProductService";
const LIST_PRODUCTS: &str = "/agora.product.v1.ProductService/ListProducts";
/// How long any one answer may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

/// Every contract, as the edge routes them.
fn pool() -> prost_reflect::DescriptorPool {
    prost_reflect::DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
        .expect("the contracts decode")
}

/// A URL where nothing listens.
fn nowhere() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    format!("http://{}", listener.local_addr().expect("bound"))
}

/// A connection to the edge, as any gRPC client makes one.
async fn connect(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect()
        .await
        .expect("the edge speaks h2c")
}

/// `future`'s output, or a failure naming `what` once [`PATIENCE`] runs out.
async fn soon<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}

/// A lazily connected upstream at `url`.
fn upstream(url: &str) -> Upstream {
    Upstream::lazy(url).expect("a valid URL")
}

/// The edge's gRPC face: a router whose fallback is the proxy, served on a free port. Returns
/// the address and the router itself, for in-process calls.
async fn edge(upstreams: HashMap<String, Upstream>) -> (SocketAddr, Router) {
    let proxy = GrpcProxy::new(upstreams, &pool()).expect("the proxy builds");
    let app = Router::new().fallback(move |request: Request| {
        let proxy = proxy.clone();
        async move { proxy.handle(request).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let served = app.clone();
    tokio::spawn(async move { axum::serve(listener, served).await });
    (addr, app)
}

/// Auth and product on `backend`, an edge routing both, and the admin's token.
async fn catalog(backend: TestBackend) -> Option<(TestMesh, SocketAddr, Router, String)> {
    let mut mesh = TestMesh::start(backend).await?;
    mesh.spawn_service(agora_product::SERVICE).await;
    let upstreams = [
        (
            PRODUCT,
            upstream(&format!("http://{}", mesh.addr(ServiceKind::Product))),
        ),
        (
            "agora.auth.v1.AuthService",
            Upstream::from_channel(mesh.channel(ServiceKind::Auth)),
        ),
    ]
    .into_iter()
    .map(|(name, upstream)| (name.to_owned(), upstream))
    .collect();
    let (addr, app) = edge(upstreams).await;
    let admin = mesh.admin_token().await;
    Some((mesh, addr, app, admin))
}

/// A valid new product with its own `sku`.
fn product(sku: &str) -> pb::Product {
    pb::Product {
        sku: sku.into(),
        name: format!("Mug {sku}"),
        category: "kitchen".into(),
        price: Some(agora_contracts::agora::common::v1::Money {
            currency_code: "EUR".into(),
            amount_minor: 1250,
        }),
        ..Default::default()
    }
}

/// `request` carrying the request id `id`.
fn with_request_id<T>(mut request: tonic::Request<T>, id: &'static str) -> tonic::Request<T> {
    request.metadata_mut().insert(
        "x-request-id",
        tonic::metadata::MetadataValue::from_static(id),
    );
    request
}

/// One gRPC message frame: flag byte, big-endian length, the encoded message.
fn frame(message: &impl prost::Message) -> Vec<u8> {
    let encoded = message.encode_to_vec();
    let length = u32::try_from(encoded.len()).expect("a small message");
    let mut framed = vec![0];
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(&encoded);
    framed
}
