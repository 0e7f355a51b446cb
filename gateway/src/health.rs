//! The edge's probes, and what it knows of its upstreams.
//!
//! - `/healthz`: the process is alive and answering. Kubernetes restarts a pod whose liveness
//!   fails, so it never looks upstream: a restart cures no upstream.
//! - `/readyz`: the edge itself can take traffic: it is answering, its route table and its
//!   upstreams' descriptors are built (it does not serve before), and it is not draining. It
//!   does not look upstream either: one service down makes only its own routes fail, fast (see
//!   [`Health::refusal`]), while taking every gateway pod out of the load balancer for it would
//!   turn one outage into a total one. Redis is no reason (rate limits fail open), nor is auth
//!   (public routes need no token; signed-in ones fail as auth's routes do).
//! - `/readyz?verbose`: the same answer, with each upstream's state for people.
//! - `/readyz/upstreams`: the same report, 200 only when every upstream says SERVING: for
//!   scripts and tests that wait for a whole mesh.
//!
//! The probes answer from memory: each upstream is checked in the background (`watch`), so no
//! probe waits on an upstream, and a hung upstream cannot make one time out.
//!
//! # Layout
//! - this file: [`Health`], the probes, and the refusal of calls to an unreachable upstream.
//! - `watch`: each upstream checked in the background; the last answer and when it came.

mod watch;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use agora_platform::config::ServiceKind;
use axum::{
    Json, Router,
    extract::{Request, State},
    response::{IntoResponse, Response},
    routing::get,
};
use http::StatusCode;
use serde_json::json;
use tonic::transport::Channel;
use tonic_types::{ErrorDetails, StatusExt as _};

use watch::Watched;
pub use watch::{Observed, Seen, Timing};

/// The probes' paths: liveness, readiness, and the upstreams' report.
pub const PATHS: [&str; 3] = ["/healthz", "/readyz", "/readyz/upstreams"];

/// One service behind the edge.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// A short name for people, e.g. `product`.
    pub name: String,
    /// The gRPC service to ask about (`agora.product.v1.ProductService`); calls to this service
    /// are refused while the upstream is unreachable. Empty asks about the whole server.
    pub service: String,
    /// How to reach it: the channel its calls use, so the checks see what calls would.
    pub channel: Channel,
}

/// The probes' state: each upstream's last check, and whether this gateway is draining. Cheap
/// to clone.
///
/// Mount its router beside the API routes (outside auth and rate limits, so probes are never
/// refused), and ask [`Health::refusal`] before calling an upstream:
///
/// ```ignore
/// let health = Health::new(upstreams, Timing { interval: Duration::from_secs(1), timeout: Duration::from_secs(1) });
/// let app = api_routes.merge(health.router());
/// // On SIGTERM, before draining: tell the load balancer to stop sending traffic.
/// health.set_draining();
/// ```
#[derive(Debug, Clone)]
pub struct Health(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// Every upstream, in the order the report lists them; their check tasks hold weak
    /// references, so they stop when the last clone of [`Health`] goes.
    watched: Vec<Arc<Watched>>,
    /// The same, by gRPC service full name: what a call names.
    by_service: HashMap<String, Arc<Watched>>,
    timing: Timing,
    /// Set on shutdown, so `/readyz` fails while in-flight requests finish.
    draining: AtomicBool,
}

impl Health {
    /// Probes for `upstreams`, each checked in the background every `timing.interval` from now
    /// on.
    ///
    /// # Panics
    /// Outside a Tokio runtime (the checks are tasks).
    pub fn new(upstreams: Vec<Upstream>, timing: Timing) -> Self {
        let watched: Vec<Arc<Watched>> = upstreams
            .into_iter()
            .map(|upstream| Arc::new(Watched::new(upstream)))
            .collect();
        let by_service = watched
            .iter()
            .filter(|w| !w.upstream.service.is_empty())
            .map(|w| (w.upstream.service.clone(), w.clone()))
            .collect();
        for each in &watched {
            watch::spawn(Arc::downgrade(each), timing);
        }
        Self(Arc::new(Inner {
            watched,
            by_service,
            timing,
            draining: AtomicBool::new(false),
        }))
    }

    /// Makes `/readyz` fail from now on: the gateway is shutting down.
    pub fn set_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    fn draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    /// `GET /healthz`, `/readyz` and `/readyz/upstreams` ([`PATHS`]).
    pub fn router<S>(&self) -> Router<S> {
        Router::new()
            .route(PATHS[0], get(healthz))
            .route(PATHS[1], get(readyz))
            .route(PATHS[2], get(upstreams))
            .with_state(self.clone())
    }

    /// Each upstream's name and state, in order.
    pub fn states(&self) -> Vec<(String, Seen)> {
        watch::states(&self.0.watched)
            .into_iter()
            .map(|(upstream, seen)| (upstream.name.clone(), seen))
            .collect()
    }

    /// UNAVAILABLE with a `RetryInfo` of one check interval when a call to the gRPC `service`
    /// should not be sent: its upstream did not answer its last check, twice in a row, and that
    /// check is recent. A call is never refused on a stale mark (the checks themselves stuck),
    /// nor for an upstream that answers NOT_SERVING (it is reachable and answers its calls
    /// itself), nor for a service the edge does not check.
    pub fn refusal(&self, service: &str) -> Option<tonic::Status> {
        let watched = self.0.by_service.get(service)?;
        let at = watched.unreachable_at()?;
        if at.elapsed() > self.0.timing.stale_after() {
            return None;
        }
        Some(tonic::Status::with_error_details(
            tonic::Code::Unavailable,
            format!(
                "the {} service cannot be reached; retry shortly",
                watched.upstream.name
            ),
            ErrorDetails::with_retry_info(Some(self.0.timing.interval)),
        ))
    }

    /// How long a client should wait before calling an unavailable upstream again: one check
    /// interval, after which the edge knows whether it is back.
    pub fn retry_after(&self) -> std::time::Duration {
        self.0.timing.interval
    }

    /// The report of `/readyz?verbose` and `/readyz/upstreams`: `status`, then each upstream
    /// by name with its gRPC service, its status, since when, and when it was last checked.
    fn report(&self, status: &str, message: Option<&str>) -> serde_json::Value {
        let upstreams: serde_json::Map<String, serde_json::Value> = self
            .states()
            .into_iter()
            .zip(&self.0.watched)
            .map(|((name, seen), watched)| {
                let mut entry = json!({
                    "service": watched.upstream.service,
                    "status": seen.observed.name(),
                    "since": rfc3339(seen.since),
                    "lastCheck": seen.checked.map(|(at, _)| rfc3339(at)),
                });
                if let Observed::Unreachable(why) = &seen.observed {
                    entry["error"] = why.as_str().into();
                }
                (name, entry)
            })
            .collect();
        let mut report = json!({ "status": status, "upstreams": upstreams });
        if let Some(message) = message {
            report["message"] = message.into();
        }
        report
    }
}

/// The gRPC service each Agora service reports its health under.
pub fn grpc_service(kind: ServiceKind) -> &'static str {
    kind.grpc_name()
}

/// A time as RFC 3339 in UTC, as proto3 JSON writes a `Timestamp`.
fn rfc3339(at: SystemTime) -> String {
    prost_types::Timestamp::from(at).to_string()
}

const SHUTTING_DOWN: &str = "not ready: the gateway is shutting down";

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "SERVING" }))
}

/// Whether the query asks for the long answer (`?verbose`, `?verbose=1`, ...).
fn verbose(request: &Request) -> bool {
    request.uri().query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("verbose"))
    })
}

async fn readyz(State(health): State<Health>, request: Request) -> Response {
    match (health.draining(), verbose(&request)) {
        (true, false) => crate::auth::refuse(&request, &tonic::Status::unavailable(SHUTTING_DOWN)),
        (true, true) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(health.report("NOT_SERVING", Some(SHUTTING_DOWN))),
        )
            .into_response(),
        (false, false) => Json(json!({ "status": "SERVING" })).into_response(),
        (false, true) => Json(health.report("SERVING", None)).into_response(),
    }
}

async fn upstreams(State(health): State<Health>) -> Response {
    if health.draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(health.report("NOT_SERVING", Some(SHUTTING_DOWN))),
        )
            .into_response();
    }
    let waiting: Vec<String> = health
        .states()
        .into_iter()
        .filter(|(_, seen)| !seen.observed.serving())
        .map(|(name, seen)| format!("{name} ({})", seen.observed.name()))
        .collect();
    if waiting.is_empty() {
        return Json(health.report("SERVING", None)).into_response();
    }
    let message = format!("not serving: {}", waiting.join(", "));
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(health.report("NOT_SERVING", Some(&message))),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
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
}
