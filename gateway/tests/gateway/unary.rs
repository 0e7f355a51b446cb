//! Unary transcoding end to end: a REST request matched, transcoded, sent to the real product
//! service over a dynamic channel, and its answer written as JSON.

use std::time::{Duration, Instant};

use agora_gateway::routes::{Lookup, Routes};
use agora_gateway::transcode::{request::request_message, response::response_json};
use agora_gateway::upstream::Upstream;
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh, on_both_backends};
use prost_reflect::DescriptorPool;

fn routes() -> Routes {
    let pool =
        DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("the contracts decode");
    Routes::build(&pool).expect("routes build")
}

async fn listing_products_goes_through_the_product_service_and_back_as_json(backend: TestBackend) {
    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    mesh.spawn_service(agora_product::SERVICE).await;
    let upstream = Upstream::lazy(&format!("http://{}", mesh.addr(ServiceKind::Product)))
        .expect("a valid URL");
    let routes = routes();
    let Lookup::Found(route, values) = routes.lookup(&http::Method::GET, "/v1/products") else {
        panic!("GET /v1/products has a route");
    };
    let request =
        request_message(&route.binding, &values, Some("page_size=2"), b"").expect("transcodes");
    let response = upstream
        .unary(&route.binding.method, tonic::Request::new(request))
        .await
        .expect("the product service answers");
    let body: serde_json::Value = serde_json::from_slice(
        &response_json(response.get_ref(), route.binding.response_body.as_deref())
            .expect("serializes"),
    )
    .expect("JSON");
    assert!(body["products"].is_array(), "{body}");
    assert!(
        body.get("nextPageToken").is_some(),
        "unpopulated fields are emitted: {body}"
    );
}

#[tokio::test]
async fn an_upstream_that_is_down_fails_quickly_with_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("bound").port()
    };
    let upstream = Upstream::lazy(&format!("http://127.0.0.1:{port}")).expect("a valid URL");
    let routes = routes();
    let Lookup::Found(route, values) = routes.lookup(&http::Method::GET, "/v1/products/p-1") else {
        panic!("GET /v1/products/{{id}} has a route");
    };
    let request = request_message(&route.binding, &values, None, b"").expect("transcodes");
    let started = Instant::now();
    let status = upstream
        .unary(&route.binding.method, tonic::Request::new(request))
        .await
        .expect_err("nothing listens");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

async fn the_app_answers_json_404_and_405_with_allow(backend: TestBackend) {
    use tower::ServiceExt;

    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    mesh.spawn_service(agora_product::SERVICE).await;
    let upstream = Upstream::lazy(&format!("http://{}", mesh.addr(ServiceKind::Product)))
        .expect("a valid URL");
    let gateway = agora_gateway::app::Gateway {
        routes: routes(),
        upstreams: [("agora.product.v1.ProductService".to_owned(), upstream)].into(),
        timeout: Duration::from_secs(5),
        body_limit: 1 << 20,
    };
    let app = agora_gateway::app::router(std::sync::Arc::new(gateway));
    let call = |method: &str, uri: &str| {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-request-id", "req-1")
            .body(axum::body::Body::empty())
            .expect("a request")
    };
    let read = |response: axum::response::Response| async move {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("a body");
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        (parts, json)
    };

    let (parts, body) = read(
        app.clone()
            .oneshot(call("GET", "/v1/products?page_size=1"))
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(parts.status, http::StatusCode::OK, "{body}");
    assert_eq!(parts.headers["x-request-id"], "req-1");
    assert!(body["products"].is_array(), "{body}");

    let (parts, body) = read(
        app.clone()
            .oneshot(call("GET", "/v1/nothing"))
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(parts.status, http::StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 5, "{body}");

    let (parts, body) = read(
        app.clone()
            .oneshot(call("PUT", "/v1/products/p-1"))
            .await
            .expect("answered"),
    )
    .await;
    assert_eq!(parts.status, http::StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let allow = parts.headers["allow"].to_str().expect("ASCII");
    assert!(allow.contains("GET") && allow.contains("PATCH"), "{allow}");

    let (parts, body) = read(
        app.oneshot(call("GET", "/v1/products/no-such-product"))
            .await
            .expect("answered"),
    )
    .await;
    assert!(parts.status.is_client_error(), "{} {body}", parts.status);
    assert_eq!(parts.headers["x-request-id"], "req-1");
}

on_both_backends!(
    listing_products_goes_through_the_product_service_and_back_as_json,
    the_app_answers_json_404_and_405_with_allow,
);

#[tokio::test]
async fn an_upstream_that_hangs_is_a_504_within_the_deadline() {
    use tower::ServiceExt;

    // Accepts connections (the kernel's backlog) but never speaks HTTP/2.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let upstream = Upstream::lazy(&format!("http://{}", silent.local_addr().expect("bound")))
        .expect("a valid URL");
    let gateway = agora_gateway::app::Gateway {
        routes: routes(),
        upstreams: [("agora.product.v1.ProductService".to_owned(), upstream)].into(),
        timeout: Duration::from_millis(300),
        body_limit: 1 << 20,
    };
    let app = agora_gateway::app::router(std::sync::Arc::new(gateway));
    let started = Instant::now();
    let response = app
        .oneshot(
            http::Request::builder()
                .uri("/v1/products/p-1")
                .body(axum::body::Body::empty())
                .expect("a request"),
        )
        .await
        .expect("answered");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), http::StatusCode::GATEWAY_TIMEOUT);
    assert!(
        response.headers().contains_key("x-request-id"),
        "one is generated"
    );
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    drop(silent);
}

#[tokio::test]
async fn edge_layers_see_the_matched_routes_binding() {
    use tower::ServiceExt;

    let upstream = Upstream::lazy("http://127.0.0.1:9").expect("URL");
    let gateway = agora_gateway::app::Gateway {
        routes: routes(),
        upstreams: [("agora.product.v1.ProductService".to_owned(), upstream)].into(),
        timeout: Duration::from_secs(1),
        body_limit: 1 << 20,
    };
    async fn seen(
        request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        let method = request
            .extensions()
            .get::<agora_gateway::rules::Binding>()
            .map(|b| b.method.name().to_owned())
            .unwrap_or_default();
        let mut response = next.run(request).await;
        response.headers_mut().insert(
            "x-seen-method",
            http::HeaderValue::from_str(&method).expect("ASCII"),
        );
        response
    }
    let app = agora_gateway::app::router_with(std::sync::Arc::new(gateway), |router| {
        router.layer(axum::middleware::from_fn(seen))
    });
    let response = app
        .oneshot(
            http::Request::builder()
                .uri("/v1/products/p-1")
                .body(axum::body::Body::empty())
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(response.headers()["x-seen-method"], "GetProduct");
}
