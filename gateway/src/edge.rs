//! One request's way through the edge, every step in order in one place:
//!
//! 1. its request id (the client's, or a new one) and a trace span parented by the caller's
//!    `traceparent`, both returned on the answer (probes get no span: Kubernetes polls them
//!    every few seconds and they would drown real traces);
//! 2. URL and header limits (414, 431) before anything reads or forwards the request;
//! 3. the client's address, decided the same way for every protocol before anyone counts it;
//! 4. probes, documents and the console ([`crate::health::PATHS`], [`crate::openapi::PATHS`],
//!    [`crate::console::PATHS`]), outside the API's auth and rate limits (the console admits
//!    administrators itself);
//! 5. for REST, its route found once, and its body read within the limit (413);
//! 6. the method's access rule, then the client's rate limit;
//! 7. the upstream's health: a call to an upstream that did not answer its last check is
//!    refused at once (UNAVAILABLE, 503 with `Retry-After` on REST, once the request message
//!    is built so bad input is still a 400) instead of waiting on a connection that will fail
//!    ([`crate::health::Health::refusal`]);
//! 8. the call: gRPC and gRPC-Web passed through, REST transcoded.
//!
//! CORS wraps all of it (a tower layer), so refusals are labelled for browsers too.
//!
//! The steps are plain calls rather than a stack of middleware: each layer of a router clones
//! a boxed service and boxes a future per request, and the edge is on every request's path.
//! The same checks stay available as middleware ([`crate::auth::enforce`], ...) for routers
//! built by hand.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use agora_platform::context::{REQUEST_ID, extract_trace_context, inject_trace_context};
use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue};
use tower::ServiceExt as _;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::app::{self, EdgeTrace, Gateway};
use crate::auth::{self, EdgeAuth};
use crate::client_address::{self, TrustedProxies};
use crate::grpc_proxy::{self, GrpcProxy};
use crate::health::Health;
use crate::limits::{self, LimitSettings};
use crate::ratelimit::RateLimiter;

/// What every step needs.
pub(crate) struct Steps {
    pub(crate) limits: LimitSettings,
    pub(crate) trusted: TrustedProxies,
    /// The probes and the OpenAPI document.
    pub(crate) beside: Router,
    pub(crate) auth: EdgeAuth,
    pub(crate) limiter: RateLimiter,
    pub(crate) proxy: GrpcProxy,
    pub(crate) gateway: Arc<Gateway>,
    /// Each upstream's last health check, to refuse calls to one that cannot be reached.
    pub(crate) health: Health,
}

/// The edge as one service (CORS goes around it). Cheap to clone.
#[derive(Clone)]
pub struct EdgeService(Arc<Steps>);

impl std::fmt::Debug for EdgeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The steps are routing tables, limiters and clients: too large to print usefully.
        f.debug_struct("EdgeService").finish_non_exhaustive()
    }
}

impl EdgeService {
    pub(crate) fn new(steps: Steps) -> Self {
        Self(Arc::new(steps))
    }
}

impl tower::Service<Request> for EdgeService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let steps = self.0.clone();
        Box::pin(async move { Ok(steps.handle(request).await) })
    }
}

impl Steps {
    /// Step 1: the request id and the span around the rest.
    async fn handle(&self, mut request: Request) -> Response {
        let id = app::request_id(request.headers());
        if let Ok(value) = HeaderValue::from_str(&id) {
            request.headers_mut().insert(REQUEST_ID, value);
        }
        let path = request.uri().path();
        if crate::health::PATHS.contains(&path) {
            let mut response = self.checked(request).await;
            set_header(&mut response, REQUEST_ID, &id);
            return response;
        }
        let span = tracing::info_span!(
            "edge",
            otel.name = format!("{} {}", request.method(), path),
            otel.kind = "server",
            http.request.method = %request.method(),
            url.path = %path,
            request_id = %id,
            http.response.status_code = tracing::field::Empty,
        );
        let _ = span.set_parent(extract_trace_context(request.headers()));
        // The span's context, worked out once: the upstream call carries it and the client
        // gets its `traceparent` back.
        let mut trace = HeaderMap::new();
        span.in_scope(|| inject_trace_context(&mut trace));
        let traceparent = trace.get("traceparent").cloned();
        request.extensions_mut().insert(EdgeTrace(trace));
        let mut response = self.checked(request).instrument(span.clone()).await;
        span.record("http.response.status_code", response.status().as_u16());
        set_header(&mut response, REQUEST_ID, &id);
        if let Some(traceparent) = traceparent {
            response.headers_mut().insert("traceparent", traceparent);
        }
        response
    }

    /// Steps 2 to 4: limits on the head, the client's address, and what is served beside the
    /// API.
    async fn checked(&self, mut request: Request) -> Response {
        if let Some(refusal) = limits::head_refusal(&self.limits, &request) {
            return refusal;
        }
        client_address::decide(&mut request, &self.trusted);
        let path = request.uri().path();
        if crate::health::PATHS.contains(&path)
            || crate::openapi::PATHS.contains(&path)
            || crate::console::PATHS.contains(&path)
        {
            let Ok(response) = self.beside.clone().oneshot(request).await;
            return response;
        }
        if auth::is_grpc(&request) {
            self.call(request).await
        } else {
            app::bind(&self.gateway.routes, &mut request);
            match limits::read_body(&self.limits, request).await {
                Ok(request) => self.call(request).await,
                Err(refusal) => refusal,
            }
        }
    }

    /// Steps 6 to 8: access, rate limit, the upstream's health, and the call itself.
    async fn call(&self, mut request: Request) -> Response {
        if let Err(refusal) = self.auth.check(&mut request).await {
            return refusal;
        }
        let (parts, body) = request.into_parts();
        let head = Request::from_parts(parts, ());
        let verdict = match self.limiter.check_request(&head).await {
            Ok(verdict) => verdict,
            Err(refusal) => return refusal,
        };
        let mut request = Request::from_parts(head.into_parts().0, body);
        let grpc = auth::is_grpc(&request);
        let refusal = self.upstream_refusal(&request);
        let mut response = match refusal {
            Some(refusal) if grpc => auth::refuse(&request, &refusal),
            None if grpc => self.proxy.handle(request).await,
            _ => {
                // Bad input is a 400 whatever the upstream's state: the refusal waits until the
                // request message is built.
                if let Some(refusal) = refusal {
                    request.extensions_mut().insert(app::UpstreamDown(refusal));
                }
                app::transcode_request(&self.gateway, request).await
            }
        };
        // Every REST 503 says when to come back, not only the edge's own refusals: an upstream
        // that has just gone away fails calls (fast, connection refused) until its next check.
        if !grpc
            && response.status() == http::StatusCode::SERVICE_UNAVAILABLE
            && !response.headers().contains_key(http::header::RETRY_AFTER)
        {
            let seconds = crate::status::retry_after_seconds(self.health.retry_after());
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(verdict) = verdict {
            verdict.write_headers(response.headers_mut());
        }
        response
    }

    /// Step 7: why `request` is not sent upstream, when its upstream is known to be unreachable.
    /// A REST request names its service by its route (none: it is answered 404 or 405 later), a
    /// gRPC call by its path.
    fn upstream_refusal(&self, request: &Request) -> Option<tonic::Status> {
        if auth::is_grpc(request) {
            grpc_proxy::service_of(request.uri().path())
                .and_then(|service| self.health.refusal(service))
        } else {
            let binding = request.extensions().get::<crate::rules::Binding>()?;
            self.health
                .refusal(binding.method.parent_service().full_name())
        }
    }
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if !response.headers().contains_key(name)
        && let Ok(value) = HeaderValue::from_str(value)
    {
        response.headers_mut().insert(name, value);
    }
}
