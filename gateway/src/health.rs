//! The edge's probes: `/healthz` says the process is alive and answering; `/readyz` says it can do
//! its job, which for a gateway means every upstream's `grpc.health.v1.Health` says SERVING.
//!
//! Kubernetes restarts a pod whose liveness fails, and stops sending traffic to one whose
//! readiness fails; a gateway whose upstream is down must not be restarted (that cures nothing),
//! so only `/readyz` looks upstream. The upstreams are asked at once, each with a short timeout,
//! so one hung service cannot make the probe itself time out.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use agora_platform::config::{ServiceKind, Settings};
use axum::{
    Json, Router,
    extract::{Request, State},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The probes' paths: liveness, then readiness.
pub const PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// One service behind the edge.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// A short name for people, e.g. `product`.
    pub name: String,
    /// The gRPC service to ask about (`agora.product.v1.ProductService`); empty asks about the
    /// whole server.
    pub service: String,
    /// How to reach it.
    pub channel: Channel,
}

/// The probes' state: the upstreams, and whether this gateway is draining.
///
/// Mount its router beside the API routes (outside auth and rate limits, so probes are never
/// refused):
///
/// ```ignore
/// let health = health::Health::new(health::agora_upstreams(&config.settings)?, Duration::from_secs(2));
/// let app = api_routes.merge(health.router());
/// // On SIGTERM, before draining: tell the load balancer to stop sending traffic.
/// health.set_draining();
/// ```
#[derive(Debug, Clone)]
pub struct Health {
    upstreams: Arc<Vec<Upstream>>,
    timeout: Duration,
    /// Set on shutdown, so `/readyz` fails while in-flight requests finish.
    draining: Arc<AtomicBool>,
}

/// What one upstream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The upstream's name.
    pub name: String,
    /// `SERVING`, `NOT_SERVING`, `SERVICE_UNKNOWN`, `UNKNOWN`, or `UNREACHABLE: <why>`.
    pub status: String,
}

impl Answer {
    /// Whether the upstream is ready.
    pub fn serving(&self) -> bool {
        self.status == "SERVING"
    }
}

impl Health {
    /// Probes for `upstreams`, each asked with `timeout`.
    pub fn new(upstreams: Vec<Upstream>, timeout: Duration) -> Self {
        Self {
            upstreams: Arc::new(upstreams),
            timeout,
            draining: Arc::default(),
        }
    }

    /// Makes `/readyz` fail from now on: the gateway is shutting down.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// `GET /healthz` and `GET /readyz` ([`PATHS`]).
    pub fn router<S>(&self) -> Router<S> {
        Router::new()
            .route(PATHS[0], get(healthz))
            .route(PATHS[1], get(readyz))
            .with_state(self.clone())
    }

    /// Asks every upstream at once.
    pub async fn check(&self) -> Vec<Answer> {
        futures::future::join_all(self.upstreams.iter().map(|upstream| async move {
            Answer {
                name: upstream.name.clone(),
                status: self.ask(upstream).await,
            }
        }))
        .await
    }

    async fn ask(&self, upstream: &Upstream) -> String {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: upstream.service.clone(),
        });
        request.set_timeout(self.timeout);
        let mut client = HealthClient::new(upstream.channel.clone());
        let call = client.check(request);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => match response.into_inner().status() {
                ServingStatus::Serving => "SERVING".into(),
                ServingStatus::NotServing => "NOT_SERVING".into(),
                ServingStatus::ServiceUnknown => "SERVICE_UNKNOWN".into(),
                ServingStatus::Unknown => "UNKNOWN".into(),
            },
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => "SERVICE_UNKNOWN".into(),
            Ok(Err(status)) => format!("UNREACHABLE: {}", status.message()),
            Err(_) => format!("UNREACHABLE: no answer within {:?}", self.timeout),
        }
    }
}

/// The five services of the mesh as upstreams, reached where `settings` says (channels connect
/// lazily, so the gateway starts before its upstreams and `/readyz` tells when they are up).
///
/// # Errors
/// A service URL in the settings is malformed.
pub fn agora_upstreams(settings: &Settings) -> anyhow::Result<Vec<Upstream>> {
    ServiceKind::ALL
        .into_iter()
        .map(|kind| {
            Ok(Upstream {
                name: kind.name().to_owned(),
                service: grpc_service(kind).to_owned(),
                channel: agora_platform::client::service_channel(settings, kind)?,
            })
        })
        .collect()
}

/// The gRPC service each Agora service reports its health under.
pub fn grpc_service(kind: ServiceKind) -> &'static str {
    match kind {
        ServiceKind::Auth => "agora.auth.v1.AuthService",
        ServiceKind::User => "agora.user.v1.UserService",
        ServiceKind::Product => "agora.product.v1.ProductService",
        ServiceKind::Inventory => "agora.inventory.v1.InventoryService",
        ServiceKind::Order => "agora.order.v1.OrderService",
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "SERVING" }))
}

async fn readyz(State(health): State<Health>, request: Request) -> Response {
    if health.draining.load(Ordering::SeqCst) {
        return crate::auth::refuse(
            &request,
            &tonic::Status::unavailable("not ready: the gateway is shutting down"),
        );
    }
    let answers = health.check().await;
    let waiting: Vec<String> = answers
        .iter()
        .filter(|a| !a.serving())
        .map(|a| format!("{} ({})", a.name, a.status))
        .collect();
    if !waiting.is_empty() {
        return crate::auth::refuse(
            &request,
            &tonic::Status::unavailable(format!("not ready: {}", waiting.join(", "))),
        );
    }
    let upstreams: serde_json::Map<String, serde_json::Value> = answers
        .into_iter()
        .map(|a| (a.name, a.status.into()))
        .collect();
    Json(json!({ "status": "SERVING", "upstreams": upstreams })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    /// A real gRPC server with the standard health service, reporting `serving` for `service`.
    async fn health_server(service: &str, serving: bool) -> (Channel, tokio::task::JoinHandle<()>) {
        let (reporter, server) = tonic_health::server::health_reporter();
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        reporter.set_service_status(service, status).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("bound");
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a URL")
            .connect_lazy();
        (channel, task)
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

    #[tokio::test]
    async fn the_mesh_upstreams_are_the_five_services_by_their_grpc_names() {
        let upstreams = agora_upstreams(&Settings::default()).expect("default URLs are valid");
        let names: Vec<_> = upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["auth", "user", "product", "inventory", "order"]);
        assert_eq!(upstreams[2].service, "agora.product.v1.ProductService");
    }

    #[tokio::test]
    async fn ready_when_every_upstream_is_serving() {
        let (a, _a) = health_server("x.v1.A", true).await;
        let (b, _b) = health_server("x.v1.B", true).await;
        let health = Health::new(
            vec![upstream("a", "x.v1.A", a), upstream("b", "x.v1.B", b)],
            Duration::from_secs(2),
        );
        let (status, body) = get(&health, "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["upstreams"]["a"], "SERVING");
        assert_eq!(body["upstreams"]["b"], "SERVING");
    }

    #[tokio::test]
    async fn not_ready_names_each_upstream_that_is_not_serving_or_unreachable() {
        let (a, _a) = health_server("x.v1.A", true).await;
        let (b, _b) = health_server("x.v1.B", false).await;
        // A port nobody listens on: bind one, then let it go.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let closed_addr = closed.local_addr().expect("bound");
        drop(closed);
        let c = Channel::from_shared(format!("http://{closed_addr}"))
            .expect("a URL")
            .connect_lazy();
        let health = Health::new(
            vec![
                upstream("a", "x.v1.A", a),
                upstream("b", "x.v1.B", b),
                upstream("c", "x.v1.C", c),
            ],
            Duration::from_secs(2),
        );
        let (status, body) = get(&health, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(
            body["code"], 14,
            "UNAVAILABLE as a google.rpc.Status: {body}"
        );
        let message = body["message"].as_str().expect("a message");
        assert!(message.contains("b (NOT_SERVING)"), "{message}");
        assert!(message.contains("c (UNREACHABLE"), "{message}");
        assert!(!message.contains("a ("), "a is fine: {message}");
    }

    #[tokio::test]
    async fn a_service_the_upstream_does_not_know_is_not_ready() {
        let (a, _a) = health_server("x.v1.A", true).await;
        let health = Health::new(vec![upstream("a", "x.v1.Other", a)], Duration::from_secs(2));
        let (status, body) = get(&health, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("SERVICE_UNKNOWN")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn alive_even_when_upstreams_are_down_and_not_ready_while_draining() {
        let closed = Channel::from_static("http://127.0.0.1:1").connect_lazy();
        let health = Health::new(vec![upstream("a", "", closed)], Duration::from_millis(500));
        let (status, body) = get(&health, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "SERVING");

        let (a, _a) = health_server("x.v1.A", true).await;
        let health = Health::new(vec![upstream("a", "x.v1.A", a)], Duration::from_secs(2));
        assert_eq!(get(&health, "/readyz").await.0, StatusCode::OK);
        health.set_draining();
        let (status, body) = get(&health, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("shutting down")),
            "{body}"
        );
    }
}
