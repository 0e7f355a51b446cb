//! One request's way through the edge, every step in order in one place:
//!
//! 1. its request id (the client's, or a new one) and a trace span parented by the caller's
//!    `traceparent`, both returned on the answer (probes get no span: Kubernetes polls them
//!    every few seconds and they would drown real traces);
//! 2. URL and header limits (414, 431) before anything reads or forwards the request;
//! 3. the client's address, decided the same way for every protocol before anyone counts it;
//! 4. probes and documents ([`crate::health::PATHS`], [`crate::openapi::PATHS`]), outside auth
//!    and rate limits;
//! 5. for REST, its route found once, and its body read within the limit (413);
//! 6. the method's access rule, then the client's rate limit;
//! 7. the call: gRPC and gRPC-Web passed through, REST transcoded.
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
use crate::grpc_proxy::GrpcProxy;
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
}

/// The edge as one service (CORS goes around it). Cheap to clone.
#[derive(Clone)]
pub struct EdgeService(Arc<Steps>);

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
        if crate::health::PATHS.contains(&path) || crate::openapi::PATHS.contains(&path) {
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

    /// Steps 6 and 7: access, rate limit, and the call itself.
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
        let request = Request::from_parts(head.into_parts().0, body);
        let mut response = if auth::is_grpc(&request) {
            self.proxy.handle(request).await
        } else {
            app::transcode_request(&self.gateway, request).await
        };
        if let Some(verdict) = verdict {
            verdict.write_headers(response.headers_mut());
        }
        response
    }
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if !response.headers().contains_key(name)
        && let Ok(value) = HeaderValue::from_str(value)
    {
        response.headers_mut().insert(name, value);
    }
}
