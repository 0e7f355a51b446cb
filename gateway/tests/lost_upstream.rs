//! An upstream that dies mid-call: it has received the call, and its connection to the edge goes
//! away before any answer. The client cannot know whether the call took effect, and only a
//! retry (with the same idempotency key) can tell it: the edge says UNAVAILABLE (HTTP 503 on
//! REST) with a message saying the outcome is unknown, on REST and on gRPC passthrough alike.
//!
//! The upstream is a real HTTP/2 server that holds every call it receives; between it and the
//! edge is a TCP relay the test cuts once the upstream has the call, so the edge's connection
//! closes while the call is in flight, exactly when the test says.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_contracts::agora::product::v1 as pb;
use agora_contracts::agora::product::v1::product_service_client::ProductServiceClient;
use agora_gateway::grpc_proxy::GrpcProxy;
use agora_gateway::routes::Routes;
use agora_gateway::upstream::Upstream;
use axum::Router;
use axum::extract::Request;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

const PRODUCT: &str = "agora.product.v1.ProductService";
/// How long any one step may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

/// An upstream that takes every call and never answers, and reports each call's path as it
/// arrives.
async fn holding_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (arrived, calls) = mpsc::unbounded_channel();
    let app = Router::new().fallback(move |request: Request| {
        let arrived = arrived.clone();
        async move {
            let _ = arrived.send(request.uri().path().to_owned());
            std::future::pending::<()>().await;
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, calls)
}

/// A TCP relay to `upstream` whose connections [`Relay::cut`] drops, both sides at once.
struct Relay {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tracked = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let relayed = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tracked.lock().expect("not poisoned").push(relayed);
            }
        });
        Self { addr, connections }
    }

    /// Drops every relayed connection: the edge sees its upstream connection closed.
    fn cut(&self) {
        for connection in self.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }
}

/// The upstream holds the call (its path arrives on `calls`), then the relay is cut.
async fn cut_once_the_call_arrives(calls: &mut mpsc::UnboundedReceiver<String>, relay: &Relay) {
    let path = tokio::time::timeout(PATIENCE, calls.recv())
        .await
        .expect("the call reaches the upstream")
        .expect("the upstream is running");
    assert_eq!(path, "/agora.product.v1.ProductService/GetProduct");
    relay.cut();
}

fn pool() -> prost_reflect::DescriptorPool {
    prost_reflect::DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET)
        .expect("the contracts decode")
}

fn upstreams(relay: &Relay) -> HashMap<String, Upstream> {
    let upstream = Upstream::lazy(&format!("http://{}", relay.addr)).expect("a valid URL");
    [(PRODUCT.to_owned(), upstream)].into()
}

#[tokio::test]
async fn a_rest_call_whose_upstream_dies_mid_call_is_503_unavailable_with_the_outcome_unknown() {
    let (upstream, mut calls) = holding_upstream().await;
    let relay = Relay::start(upstream).await;
    let gateway = agora_gateway::app::Gateway {
        routes: Routes::build(&pool()).expect("routes build"),
        upstreams: upstreams(&relay),
        timeout: Duration::from_secs(30),
        body_limit: 1 << 20,
    };
    let app = agora_gateway::app::router(Arc::new(gateway));
    let request = http::Request::get("/v1/products/p-1")
        .header("x-request-id", "lost-1")
        .body(axum::body::Body::empty())
        .expect("a request");
    let call = tokio::spawn(app.oneshot(request));

    cut_once_the_call_arrives(&mut calls, &relay).await;
    let response = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the edge answers once the connection is gone")
        .expect("the call task completes")
        .expect("the router is infallible");

    assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("a body");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("google.rpc.Status JSON");
    assert_eq!(body["code"], tonic::Code::Unavailable as i32, "{body}");
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains("outcome is unknown"), "{body}");
    assert_eq!(
        body["details"][0]["requestId"], "lost-1",
        "the request id still comes back: {body}"
    );
}

#[tokio::test]
async fn a_grpc_call_passed_through_whose_upstream_dies_mid_call_is_unavailable_with_the_outcome_unknown()
 {
    let (upstream, mut calls) = holding_upstream().await;
    let relay = Relay::start(upstream).await;
    let proxy = GrpcProxy::new(upstreams(&relay), &pool()).expect("the proxy builds");
    let app = Router::new().fallback(move |request: Request| {
        let proxy = proxy.clone();
        async move { proxy.handle(request).await }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let edge = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut client = ProductServiceClient::connect(format!("http://{edge}"))
        .await
        .expect("the edge speaks h2c");
    let call = tokio::spawn(async move {
        client
            .get_product(pb::GetProductRequest {
                product_id: "p-1".into(),
            })
            .await
    });

    cut_once_the_call_arrives(&mut calls, &relay).await;
    let status = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the edge answers once the connection is gone")
        .expect("the call task completes")
        .expect_err("nobody answered the call");

    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("outcome is unknown"),
        "{status:?}"
    );
}
