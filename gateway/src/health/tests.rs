use super::*;
use agora_testkit::eventually;
use http_body_util::BodyExt as _;
use std::time::Duration;
use tower::ServiceExt as _;

/// Checks fast enough for tests.
const QUICK: Timing = Timing {
    interval: Duration::from_millis(50),
    timeout: Duration::from_millis(500),
};
const PATIENCE: Duration = Duration::from_secs(10);

/// A real gRPC server with the standard health service, reporting `serving` for `service`.
async fn health_server(service: &str, serving: bool) -> (Channel, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    health_server_on(listener, service, serving).await
}

async fn health_server_on(
    listener: tokio::net::TcpListener,
    service: &str,
    serving: bool,
) -> (Channel, tokio::task::JoinHandle<()>) {
    let (reporter, server) = tonic_health::server::health_reporter();
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    reporter.set_service_status(service, status).await;
    let addr = listener.local_addr().expect("bound");
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    (channel_to(addr), task)
}

fn channel_to(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a URL")
        .connect_lazy()
}

/// An address nobody listens on: a port bound, then let go.
async fn closed_port() -> std::net::SocketAddr {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    closed.local_addr().expect("bound")
}

fn upstream(name: &str, service: &str, channel: Channel) -> Upstream {
    Upstream {
        name: name.into(),
        service: service.into(),
        channel,
    }
}

async fn get(health: &Health, path: &str) -> (StatusCode, serde_json::Value) {
    let response = health
        .router::<()>()
        .oneshot(
            Request::get(path)
                .body(axum::body::Body::empty())
                .expect("a request"),
        )
        .await
        .expect("answered");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON"))
}

/// Waits until every upstream has been checked once.
/// Upstreams `a` (SERVING), `b` (NOT_SERVING) and `c` (nothing listens), each checked once,
/// and the tasks of `a`'s and `b`'s servers.
async fn serving_not_serving_and_unreachable() -> (Health, [tokio::task::JoinHandle<()>; 2]) {
    let (a, a_server) = health_server("x.v1.A", true).await;
    let (b, b_server) = health_server("x.v1.B", false).await;
    let c = channel_to(closed_port().await);
    let health = Health::new(
        vec![
            upstream("a", "x.v1.A", a),
            upstream("b", "x.v1.B", b),
            upstream("c", "x.v1.C", c),
        ],
        QUICK,
    );
    checked(&health).await;
    (health, [a_server, b_server])
}

async fn checked(health: &Health) {
    eventually("every upstream checked", PATIENCE, || async {
        health
            .states()
            .iter()
            .all(|(_, seen)| seen.checked.is_some())
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_upstream_serving_is_reported_with_the_time_of_its_last_check() {
    let (a, _a) = health_server("x.v1.A", true).await;
    let (b, _b) = health_server("x.v1.B", true).await;
    let health = Health::new(
        vec![upstream("a", "x.v1.A", a), upstream("b", "x.v1.B", b)],
        QUICK,
    );
    checked(&health).await;
    let (status, body) = get(&health, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "status": "SERVING" }), "the short answer");
    let (status, body) = get(&health, "/readyz/upstreams").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "SERVING");
    assert_eq!(body["upstreams"]["a"]["status"], "SERVING");
    assert_eq!(body["upstreams"]["a"]["service"], "x.v1.A");
    assert_eq!(body["upstreams"]["b"]["status"], "SERVING");
    let last = body["upstreams"]["b"]["lastCheck"]
        .as_str()
        .expect("a time");
    assert!(
        last.ends_with('Z') && last.contains('T'),
        "RFC 3339: {last}"
    );
    assert!(body["upstreams"]["b"].get("error").is_none(), "{body}");
}

#[tokio::test]
async fn upstreams_down_leave_the_edge_ready_and_the_report_names_each_of_them() {
    let (health, _servers) = serving_not_serving_and_unreachable().await;

    let (status, body) = get(&health, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "the edge itself is ready: {body}");
    let (status, body) = get(&health, "/readyz?verbose").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "SERVING", "the edge's own verdict: {body}");
    assert_eq!(body["upstreams"]["a"]["status"], "SERVING");
    assert_eq!(body["upstreams"]["b"]["status"], "NOT_SERVING");
    assert_eq!(body["upstreams"]["c"]["status"], "UNREACHABLE");
    assert!(body["upstreams"]["c"]["error"].is_string(), "{body}");
    assert!(body["upstreams"]["c"]["lastCheck"].is_string(), "{body}");

    let (status, body) = get(&health, "/readyz/upstreams").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "NOT_SERVING");
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains("b (NOT_SERVING)"), "{message}");
    assert!(message.contains("c (UNREACHABLE)"), "{message}");
    assert!(!message.contains("a ("), "a is fine: {message}");
}

#[tokio::test]
async fn only_calls_to_an_unreachable_upstream_are_refused_with_a_time_to_retry() {
    let (health, _servers) = serving_not_serving_and_unreachable().await;

    let refused = health.refusal("x.v1.C").expect("c cannot be reached");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains("the c service"), "{refused:?}");
    let retry = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    assert_eq!(retry, Some(QUICK.interval), "one check interval");
    assert!(health.refusal("x.v1.A").is_none(), "serving");
    assert!(
        health.refusal("x.v1.B").is_none(),
        "reachable, it answers its own calls"
    );
    assert!(health.refusal("x.v1.Unchecked").is_none());
}

#[tokio::test]
async fn an_upstream_that_comes_back_is_called_again_after_its_next_check() {
    let addr = closed_port().await;
    let health = Health::new(vec![upstream("a", "x.v1.A", channel_to(addr))], QUICK);
    eventually("a is refused", PATIENCE, || async {
        health.refusal("x.v1.A").map(|_| ())
    })
    .await;

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("the port is free again");
    let (_channel, _server) = health_server_on(listener, "x.v1.A", true).await;
    eventually("a is called again", PATIENCE, || async {
        health.refusal("x.v1.A").is_none().then_some(())
    })
    .await;
    assert!(health.states()[0].1.observed.serving());
}

#[tokio::test]
async fn a_service_the_upstream_does_not_know_is_reported_as_such() {
    let (a, _a) = health_server("x.v1.A", true).await;
    let health = Health::new(vec![upstream("a", "x.v1.Other", a)], QUICK);
    checked(&health).await;
    let (status, body) = get(&health, "/readyz/upstreams").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body["upstreams"]["a"]["status"], "SERVICE_UNKNOWN",
        "{body}"
    );
    assert!(health.refusal("x.v1.Other").is_none(), "it is reachable");
}

#[tokio::test]
async fn alive_even_when_upstreams_are_down_and_not_ready_while_draining() {
    let closed = Channel::from_static("http://127.0.0.1:1").connect_lazy();
    let health = Health::new(vec![upstream("a", "", closed)], QUICK);
    let (status, body) = get(&health, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "SERVING");

    let (a, _a) = health_server("x.v1.A", true).await;
    let health = Health::new(vec![upstream("a", "x.v1.A", a)], QUICK);
    assert_eq!(get(&health, "/readyz").await.0, StatusCode::OK);
    health.set_draining();
    let (status, body) = get(&health, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body["code"], 14,
        "UNAVAILABLE as a google.rpc.Status: {body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("shutting down")),
        "{body}"
    );
    for path in ["/readyz?verbose", "/readyz/upstreams"] {
        let (status, body) = get(&health, path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(body["status"], "NOT_SERVING", "{path}: {body}");
    }
}
