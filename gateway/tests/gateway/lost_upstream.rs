//! An upstream that dies mid-call: it has received the call, and its connection to the edge goes
//! away before any answer. The client cannot know whether the call took effect, and only a
//! retry (with the same idempotency key) can tell it: the edge says UNAVAILABLE (HTTP 503 on
//! REST) with a message saying the outcome is unknown, on REST and on gRPC passthrough alike.
//!
//! The upstream is a real HTTP/2 server that holds every call it receives; between it and the
//! edge is a TCP relay the test cuts once the upstream has the call, so the edge's connection
//! closes while the call is in flight, exactly when the test says.
//!
//! The edge keeps a pool of connections to each upstream: a connection that goes away fails the
//! calls in flight on it and no others, and is replaced for the calls that follow.

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

/// One relayed connection: the address it calls the upstream from, and its task.
type Relayed = (SocketAddr, JoinHandle<()>);

/// A TCP relay to `upstream` whose connections [`Relay::cut`] drops, both sides at once.
struct Relay {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Relayed>>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let connections = Arc::new(Mutex::new(Vec::new()));
        let tracked = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let from = server.local_addr().expect("connected");
                let relayed = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                tracked.lock().expect("not poisoned").push((from, relayed));
            }
        });
        Self { addr, connections }
    }

    /// Drops every relayed connection: the edge sees its upstream connection closed.
    fn cut(&self) {
        for (_, connection) in self.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }

    /// Drops the one relayed connection that reaches the upstream from `from`.
    fn cut_one(&self, from: SocketAddr) {
        let connections = self.connections.lock().expect("not poisoned");
        let (_, connection) = connections
            .iter()
            .find(|(addr, _)| *addr == from)
            .expect("a relayed connection from that address");
        connection.abort();
    }

    /// How many connections the edge has opened through the relay.
    fn opened(&self) -> usize {
        self.connections.lock().expect("not poisoned").len()
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

/// An upstream that holds every call until `open` is set, then answers it with an empty
/// GetProductResponse; each call reports the address it arrived from (its connection).
async fn gated_upstream(
    open: tokio::sync::watch::Receiver<bool>,
) -> (SocketAddr, mpsc::UnboundedReceiver<SocketAddr>) {
    let (arrived, calls) = mpsc::unbounded_channel();
    let app = Router::new().fallback(
        move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| {
            let arrived = arrived.clone();
            let mut open = open.clone();
            async move {
                let _ = arrived.send(peer);
                let _ = open.wait_for(|open| *open).await;
                let frames = [
                    Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(
                        bytes::Bytes::from_static(&[0, 0, 0, 0, 0]),
                    )),
                    Ok(hyper::body::Frame::trailers(
                        [(
                            http::HeaderName::from_static("grpc-status"),
                            http::HeaderValue::from_static("0"),
                        )]
                        .into_iter()
                        .collect(),
                    )),
                ];
                http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(axum::body::Body::new(http_body_util::StreamBody::new(
                        futures::stream::iter(frames),
                    )))
                    .expect("a response")
            }
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    (addr, calls)
}

#[tokio::test]
async fn a_lost_upstream_connection_fails_only_its_own_calls_and_is_replaced() {
    const CALLS: usize = 12;
    let (gate, open) = tokio::sync::watch::channel(false);
    let (upstream, mut calls) = gated_upstream(open).await;
    let relay = Relay::start(upstream).await;
    let channel = agora_platform::client::pooled_channel(&format!("http://{}", relay.addr), 4)
        .expect("a valid URL");
    let gateway = agora_gateway::app::Gateway {
        routes: Routes::build(&pool()).expect("routes build"),
        upstreams: [(PRODUCT.to_owned(), Upstream::from_channel(channel))].into(),
        timeout: Duration::from_secs(30),
        body_limit: 1 << 20,
    };
    let app = agora_gateway::app::router(Arc::new(gateway));
    let get = || {
        let request = http::Request::get("/v1/products/p-1")
            .body(axum::body::Body::empty())
            .expect("a request");
        tokio::spawn(app.clone().oneshot(request))
    };

    // Every call is in flight, spread over the pool's connections.
    let in_flight: Vec<_> = (0..CALLS).map(|_| get()).collect();
    let mut carriers = Vec::new();
    for _ in 0..CALLS {
        let from = tokio::time::timeout(PATIENCE, calls.recv())
            .await
            .expect("every call reaches the upstream")
            .expect("the upstream is running");
        carriers.push(from);
    }
    let mut used = carriers.clone();
    used.sort();
    used.dedup();
    assert!(used.len() >= 2, "12 calls in flight share one connection");

    // One connection goes away: its calls fail as the outcome-unknown 503, the others are answered.
    // (The relay's task is aborted before it runs again: nothing more crosses that connection,
    // so the upstream's answers on it never arrive.)
    let lost = carriers[0];
    relay.cut_one(lost);
    gate.send_replace(true);
    let mut failed = 0;
    let mut answered = 0;
    for call in in_flight {
        let response = tokio::time::timeout(PATIENCE, call)
            .await
            .expect("the edge answers")
            .expect("the call task completes")
            .expect("the router is infallible");
        match response.status() {
            http::StatusCode::OK => answered += 1,
            http::StatusCode::SERVICE_UNAVAILABLE => failed += 1,
            other => panic!("a call answered {other}"),
        }
    }
    let on_lost = carriers.iter().filter(|from| **from == lost).count();
    assert_eq!(failed, on_lost, "only the lost connection's calls fail");
    assert_eq!(answered, CALLS - on_lost, "every other call is answered");

    // The calls that follow all succeed, and the lost connection is opened again.
    let opened = relay.opened();
    for attempt in 0..200 {
        let response = tokio::time::timeout(PATIENCE, get())
            .await
            .expect("the edge answers")
            .expect("the call task completes")
            .expect("the router is infallible");
        assert_eq!(
            response.status(),
            http::StatusCode::OK,
            "call {attempt} after the loss"
        );
        if relay.opened() > opened {
            return;
        }
    }
    panic!("the lost connection was never replaced in 200 calls");
}
