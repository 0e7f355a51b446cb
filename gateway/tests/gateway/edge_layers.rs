//! The edge's layers stacked as a gateway mounts them (CORS outermost, then the body limit, auth
//! and the rate limiter), in front of routes that carry their method's `Binding`, with tokens from
//! a real auth service. Run on the embedded backend (memory counters) and on PostgreSQL + Redis
//! (Redis counters).

use std::sync::Arc;

use agora_gateway::{
    auth::{self, EdgeAuth},
    cors::{self, CorsSettings},
    limits::{self, LimitSettings},
    ratelimit::{self, RateLimitSettings, RateLimiter},
    rules::{self, Binding},
};
use agora_platform::{
    access::{GrpcKeySource, Verifier},
    cache::Cache,
    config::{ServiceKind, TokenSettings},
};
use agora_testkit::{TestBackend, TestMesh, email, on_both_backends};
use axum::{
    Router,
    body::Body,
    extract::Request,
    middleware::{self, Next},
    routing::any,
};
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use prost_reflect::DescriptorPool;
use tower::ServiceExt as _;

/// Stands in for the gateway's router: finds the binding of a path and attaches it.
async fn bind(
    bindings: Arc<Vec<Binding>>,
    mut request: Request,
    next: Next,
) -> axum::response::Response {
    let path = request.uri().path().to_owned();
    if let Some(binding) = bindings.iter().find(|b| b.template == path) {
        request.extensions_mut().insert(binding.clone());
    }
    next.run(request).await
}

async fn edge(mesh: &TestMesh) -> Router {
    let pool = DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("contracts");
    let bindings = Arc::new(rules::bindings(&pool).expect("rules"));
    let verifier = Verifier::new(
        Arc::new(GrpcKeySource::new(mesh.channel(ServiceKind::Auth))),
        &TokenSettings::default(),
    );
    let edge_auth = EdgeAuth::new(pool, Arc::new(verifier));
    let cache = Cache::connect(
        mesh.redis_url().as_deref(),
        format!("{}gateway:", mesh.prefix()),
    )
    .await
    .expect("counters");
    let limiter = RateLimiter::new(
        cache,
        RateLimitSettings {
            sign_in_requests: 3,
            ..RateLimitSettings::default()
        },
    );
    let cors = cors::layer(&CorsSettings {
        allowed_origins: vec!["http://shop.test".into()],
        ..CorsSettings::default()
    })
    .expect("valid");
    Router::new()
        .route("/{*path}", any(|| async { "{}" }))
        .layer(middleware::from_fn_with_state(limiter, ratelimit::enforce))
        .layer(middleware::from_fn_with_state(edge_auth, auth::enforce))
        .layer(middleware::from_fn_with_state(
            LimitSettings {
                max_body_bytes: 1024,
                ..LimitSettings::default()
            },
            limits::enforce,
        ))
        .layer(middleware::from_fn(move |r, n| {
            bind(bindings.clone(), r, n)
        }))
        .layer(cors)
}

async fn send(
    app: &Router,
    request: http::request::Builder,
    body: impl Into<Body>,
) -> (http::response::Parts, serde_json::Value) {
    let response = app
        .clone()
        .oneshot(request.body(body.into()).expect("a request"))
        .await
        .expect("answered");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a body").to_bytes();
    (
        parts,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

async fn signed_in_calls_pass_and_anonymous_ones_get_a_challenge(backend: TestBackend) {
    let Some(mesh) = TestMesh::start(backend).await else {
        return;
    };
    let app = edge(&mesh).await;
    let (parts, body) = send(
        &app,
        http::Request::get("/v1/users/me").header("x-request-id", "req-42"),
        Body::empty(),
    )
    .await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        parts.headers[http::header::WWW_AUTHENTICATE],
        "Bearer realm=\"agora\""
    );
    assert_eq!(body["code"], 16, "{body}");
    assert_eq!(body["details"][0]["requestId"], "req-42", "{body}");

    let (_, token) = mesh.register(&email("edge-layers")).await;
    let (parts, _) = send(
        &app,
        http::Request::get("/v1/users/me").header("authorization", format!("Bearer {token}")),
        Body::empty(),
    )
    .await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(
        parts.headers["ratelimit-limit"], "600",
        "counted against the general budget"
    );
}

async fn the_sign_in_budget_runs_out_with_429_and_retry_after(backend: TestBackend) {
    let Some(mesh) = TestMesh::start(backend).await else {
        return;
    };
    let app = edge(&mesh).await;
    let login = || http::Request::post("/v1/auth/login").header("content-type", "application/json");
    for remaining in ["2", "1", "0"] {
        let (parts, _) = send(&app, login(), "{}").await;
        assert_eq!(parts.status, StatusCode::OK);
        assert_eq!(parts.headers["ratelimit-remaining"], remaining);
    }
    let (parts, body) = send(&app, login(), "{}").await;
    assert_eq!(parts.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], 8, "RESOURCE_EXHAUSTED: {body}");
    assert_eq!(parts.headers["ratelimit-limit"], "3");
    assert_eq!(parts.headers["ratelimit-remaining"], "0");
    let retry: u64 = parts.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let (parts, _) = send(&app, http::Request::get("/v1/categories"), Body::empty()).await;
    assert_eq!(parts.status, StatusCode::OK, "browsing has its own budget");
}

async fn preflights_and_oversized_bodies_are_answered_before_auth(backend: TestBackend) {
    let Some(mesh) = TestMesh::start(backend).await else {
        return;
    };
    let app = edge(&mesh).await;
    let (parts, _) = send(
        &app,
        http::Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/users/me")
            .header("origin", "http://shop.test")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization"),
        Body::empty(),
    )
    .await;
    assert_eq!(
        parts.status,
        StatusCode::OK,
        "no token needed for a preflight"
    );
    assert_eq!(
        parts.headers["access-control-allow-origin"],
        "http://shop.test"
    );

    let (parts, body) = send(
        &app,
        http::Request::post("/v1/users/me").header("origin", "http://shop.test"),
        vec![b'x'; 2048],
    )
    .await;
    assert_eq!(parts.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], 8, "{body}");
    assert_eq!(
        parts.headers["access-control-allow-origin"], "http://shop.test",
        "refusals still carry CORS headers, so the page can read them"
    );
}

on_both_backends!(
    signed_in_calls_pass_and_anonymous_ones_get_a_challenge,
    the_sign_in_budget_runs_out_with_429_and_retry_after,
    preflights_and_oversized_bodies_are_answered_before_auth,
);
