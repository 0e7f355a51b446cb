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
mod tests;
