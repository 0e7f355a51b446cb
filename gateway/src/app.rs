//! The edge's axum app: every request is matched against the route table, transcoded, sent to
//! the method's upstream within a deadline, and answered as JSON (errors by [`error_response`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::routes::{Lookup, Routes};
use crate::rules::Binding;
use crate::status::error_response;
use crate::transcode::{request::request_message, response::response_json};
use crate::upstream::Upstream;

/// What the transcoding handler needs: the routes, an upstream per gRPC service (by full name),
/// the deadline of a call and the largest body read.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The route table.
    pub routes: Routes,
    /// Upstream channels keyed by the gRPC service's full name.
    pub upstreams: HashMap<String, Upstream>,
    /// The deadline of an upstream call when the client sends none.
    pub timeout: Duration,
    /// The largest request body read, in bytes.
    pub body_limit: usize,
}

/// The router serving every REST route of `gateway`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    router_with(gateway, |router| router)
}

/// The router with the edge's layers (auth, rate limits, ...) added by `edge`: they run after the
/// route is matched, so each request carries its [`Binding`] as an extension, and before the
/// transcoding handler.
pub fn router_with(gateway: Arc<Gateway>, edge: impl FnOnce(Router) -> Router) -> Router {
    let inner = edge(
        Router::new()
            .fallback(transcode)
            .with_state(gateway.clone()),
    );
    inner.layer(axum::middleware::from_fn_with_state(gateway, bind_route))
}

/// Puts the matched route's [`Binding`] in the request's extensions (unmatched requests pass
/// through and are answered 404/405 by the handler).
async fn bind_route(
    State(gateway): State<Arc<Gateway>>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Lookup::Found(route, _) = gateway
        .routes
        .lookup(request.method(), request.uri().path())
    {
        let binding: Binding = route.binding.clone();
        request.extensions_mut().insert(binding);
    }
    next.run(request).await
}

/// The client's `X-Request-Id`, or a new one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

async fn transcode(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let id = request_id(&request);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let (route, values) = match gateway.routes.lookup(&method, &path) {
        Lookup::Found(route, values) => (route.clone(), values),
        Lookup::NotFound => {
            let status = tonic::Status::not_found(format!("no route for {method} {path}"));
            return error_response(&status, &id);
        }
        Lookup::MethodNotAllowed(allow) => {
            let status = tonic::Status::unimplemented(format!("{method} is not allowed on {path}"));
            let mut response = error_response(&status, &id);
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            let allow: Vec<&str> = allow.iter().map(http::Method::as_str).collect();
            if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return response;
        }
    };
    let body = match axum::body::to_bytes(request.into_body(), gateway.body_limit).await {
        Ok(body) => body,
        Err(e) => {
            let status = tonic::Status::invalid_argument(format!("reading the body: {e}"));
            return error_response(&status, &id);
        }
    };
    let binding = &route.binding;
    let message = match request_message(binding, &values, query.as_deref(), &body) {
        Ok(message) => message,
        Err(status) => return error_response(&status, &id),
    };
    let service = binding.method.parent_service().full_name().to_owned();
    let Some(upstream) = gateway.upstreams.get(&service) else {
        let status = tonic::Status::unavailable(format!("no upstream for {service}"));
        return error_response(&status, &id);
    };
    let mut call = tonic::Request::new(message);
    call.set_timeout(gateway.timeout);
    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(gateway.timeout, upstream.unary(&binding.method, call)).await;
    let reply = match answer {
        Ok(Ok(reply)) => reply,
        // tonic reports its own expired deadline as CANCELLED; to the client it is a timeout.
        Ok(Err(status))
            if status.code() == tonic::Code::Cancelled && started.elapsed() >= gateway.timeout =>
        {
            let status = tonic::Status::deadline_exceeded("the upstream did not answer in time");
            return error_response(&status, &id);
        }
        Ok(Err(status)) => return error_response(&status, &id),
        Err(_) => {
            let status = tonic::Status::deadline_exceeded("the upstream did not answer in time");
            return error_response(&status, &id);
        }
    };
    match response_json(reply.get_ref(), binding.response_body.as_deref()) {
        Ok(json) => {
            let mut response = (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from(json),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert("x-request-id", value);
            }
            response
        }
        Err(status) => error_response(&status, &id),
    }
}
