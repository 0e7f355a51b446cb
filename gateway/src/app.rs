//! The edge's axum app: every request is matched against the route table, transcoded, sent to
//! the method's upstream within a deadline with the caller's headers as gRPC metadata, and
//! answered as JSON (a stream as NDJSON or Server-Sent Events; errors by [`error_response`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_platform::context::{REQUEST_ID, inject_trace_context, parse_grpc_timeout};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use prost_reflect::DynamicMessage;
use tonic::metadata::MetadataMap;

use crate::device_cookie;
use crate::routes::{Lookup, Route, Routes};
use crate::rules::Binding;
use crate::status::error_response;
use crate::stream::{StreamFormat, stream_response};
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
    /// The longest a unary upstream call may take; a client's shorter `Grpc-Timeout` wins (streams
    /// have no deadline unless the client sets one: a watch may stay open as long as it likes).
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

/// A request's route and its path variables, found once by [`bind_route`] for the handler.
#[derive(Debug, Clone)]
struct Matched {
    route: Arc<Route>,
    values: Vec<(Vec<String>, String)>,
}

/// Puts the matched route's [`Binding`] in the request's extensions for the edge layers, and the
/// route with its path variables for the handler (unmatched requests pass through and are
/// answered 404/405 by the handler).
async fn bind_route(
    State(gateway): State<Arc<Gateway>>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    bind(&gateway.routes, &mut request);
    next.run(request).await
}

/// [`bind_route`]'s work: finds `request`'s route once, for the edge's checks and the handler.
pub(crate) fn bind(routes: &Routes, request: &mut Request) {
    if let Lookup::Found(route, values) = routes.lookup(request.method(), request.uri().path()) {
        crate::metrics::route_matched(request, route);
        let binding: Binding = route.binding.clone();
        let matched = Matched {
            route: route.clone(),
            values,
        };
        request.extensions_mut().insert(binding);
        request.extensions_mut().insert(matched);
    }
}

/// The edge's refusal to call a request's upstream, which it knows it cannot reach
/// ([`crate::health::Health::refusal`]): answered instead of the call, once the request message
/// is built, so bad input is still a 400.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamDown(pub(crate) tonic::Status);

/// The trace context of the edge's span for a request (`traceparent`, `tracestate`), worked out
/// once and sent both upstream and back to the client.
#[derive(Debug, Clone)]
pub(crate) struct EdgeTrace(pub(crate) HeaderMap);

// The client's `X-Request-Id` when it is a sane one, or a new one: the services' rule.
pub use agora_platform::context::request_id;

async fn transcode(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    transcode_request(&gateway, request).await
}

/// Answers a REST request (its route bound by [`bind`] or looked up here) by a call to its
/// method's upstream.
pub(crate) async fn transcode_request(gateway: &Gateway, request: Request) -> Response {
    let id = request_id(request.headers());
    let mut response = if crate::auth::is_grpc(&request) {
        // gRPC reaches this handler only when no passthrough is mounted in front of it.
        let status = tonic::Status::unimplemented("this edge does not pass gRPC calls through");
        crate::auth::refuse(&request, &status)
    } else {
        answer(gateway, request, &id).await
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

async fn answer(gateway: &Gateway, mut request: Request, id: &str) -> Response {
    crate::client_address::ensure_decided(&mut request);
    let (route, values) = match request.extensions_mut().remove::<Matched>() {
        Some(Matched { route, values }) => (route, values),
        None => {
            let method = request.method();
            let path = request.uri().path();
            match gateway.routes.lookup(method, path) {
                Lookup::Found(route, values) => (route.clone(), values),
                Lookup::NotFound => {
                    let status = tonic::Status::not_found(format!("no route for {method} {path}"));
                    return error_response(&status, id);
                }
                Lookup::MethodNotAllowed(allow) => {
                    return method_not_allowed(method, path, &allow, id);
                }
            }
        }
    };
    let binding = &route.binding;
    if binding.method.is_client_streaming() {
        let status = tonic::Status::unimplemented(format!(
            "{} streams its requests; call it over gRPC",
            binding.method.full_name()
        ));
        return error_response(&status, id);
    }
    let service = binding.method.parent_service().full_name().to_owned();
    let Some(upstream) = gateway.upstreams.get(&service) else {
        let status = tonic::Status::unavailable(format!("no upstream for {service}"));
        return error_response(&status, id);
    };
    let trace = request.extensions_mut().remove::<EdgeTrace>();
    let mut metadata = match upstream_metadata(request.headers(), id, trace.as_ref()) {
        Ok(metadata) => metadata,
        Err(status) => return error_response(&status, id),
    };
    // A browser keeps auth's device token in a cookie; Login reads it from metadata.
    if binding.method.full_name() == device_cookie::LOGIN {
        device_cookie::forward(request.headers(), &mut metadata);
    }
    let query = request.uri().query().map(str::to_owned);
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, gateway.body_limit).await {
        Ok(body) => body,
        Err(e) => {
            let status = tonic::Status::invalid_argument(format!("reading the body: {e}"));
            return error_response(&status, id);
        }
    };
    let message = match request_message(binding, &values, query.as_deref(), &body) {
        Ok(message) => message,
        Err(status) => return error_response(&status, id),
    };
    if let Some(UpstreamDown(status)) = parts.extensions.get() {
        return error_response(status, id);
    }
    let client_timeout = parts
        .headers
        .get(agora_platform::context::GRPC_TIMEOUT)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    let mut call = tonic::Request::from_parts(metadata, tonic::Extensions::default(), message);
    if binding.method.is_server_streaming() {
        crate::stream::resume_from_last_event_id(&parts.headers, call.get_mut());
        if let Some(timeout) = client_timeout {
            call.set_timeout(timeout);
        }
        return match upstream.server_streaming(&binding.method, call).await {
            Ok(reply) => {
                let (metadata, stream, _) = reply.into_parts();
                let format = StreamFormat::from_headers(&parts.headers);
                let mut response =
                    stream_response(stream, binding.response_body.clone(), format, id.to_owned());
                copy_response_metadata(&metadata, response.headers_mut());
                response
            }
            Err(status) => upstream_error(&status, id),
        };
    }
    // The route's timeout is the longest a unary call may take; a client may ask for less.
    let timeout = client_timeout.map_or(gateway.timeout, |t| t.min(gateway.timeout));
    call.set_timeout(timeout);
    match unary(upstream, binding, call, timeout).await {
        Ok(reply) => {
            let (metadata, message, _) = reply.into_parts();
            match response_json(&message, binding.response_body.as_deref()) {
                Ok(json) => {
                    let mut response = (
                        [(header::CONTENT_TYPE, "application/json")],
                        Body::from(json),
                    )
                        .into_response();
                    copy_response_metadata(&metadata, response.headers_mut());
                    response
                }
                Err(status) => error_response(&status, id),
            }
        }
        Err(status) => upstream_error(&status, id),
    }
}

/// The answer to an upstream's failed call. An upstream that ended its answer without a gRPC
/// status broke the protocol: that is a bad gateway (502), not an error of the method (500).
fn upstream_error(status: &tonic::Status, id: &str) -> Response {
    // tonic reports a missing status only by these messages, with code UNKNOWN.
    let missing = status.code() == tonic::Code::Unknown
        && (status
            .message()
            .starts_with("protocol error: missing grpc-status")
            || status.message().starts_with("grpc-status header missing"));
    if !missing {
        return error_response(status, id);
    }
    let mut response = error_response(
        &tonic::Status::unknown("the upstream answered without a gRPC status"),
        id,
    );
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// A unary call that answers within `timeout`, whatever the upstream does.
async fn unary(
    upstream: &Upstream,
    binding: &Binding,
    call: tonic::Request<DynamicMessage>,
    timeout: Duration,
) -> Result<tonic::Response<DynamicMessage>, tonic::Status> {
    let started = Instant::now();
    let late = || tonic::Status::deadline_exceeded("the upstream did not answer in time");
    match tokio::time::timeout(timeout, upstream.unary(&binding.method, call)).await {
        Ok(Ok(reply)) => Ok(reply),
        // tonic reports its own expired deadline as CANCELLED; to the client it is a timeout.
        Ok(Err(status))
            if status.code() == tonic::Code::Cancelled && started.elapsed() >= timeout =>
        {
            Err(late())
        }
        Ok(Err(status)) => Err(status),
        Err(_) => Err(late()),
    }
}

fn method_not_allowed(
    method: &http::Method,
    path: &str,
    allow: &[http::Method],
    id: &str,
) -> Response {
    let status = tonic::Status::unimplemented(format!("{method} is not allowed on {path}"));
    let mut response = error_response(&status, id);
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let allow: Vec<&str> = allow.iter().map(http::Method::as_str).collect();
    if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The prefix that carries gRPC metadata in HTTP headers, both ways.
const METADATA_PREFIX: &str = "grpc-metadata-";

/// The gRPC metadata of an upstream call: `authorization`, every `Grpc-Metadata-<K>` as `<k>`,
/// the request id, the trace context of the edge's span, and `x-forwarded-for` as
/// [`crate::client_address`] decided it. Nothing else of the HTTP request crosses (cookies,
/// hop-by-hop headers).
///
/// # Errors
/// INVALID_ARGUMENT for a `Grpc-Metadata-<K>` whose key is a header of the HTTP/2 transport
/// (`content-length`, `te`, ...): sent upstream it would break the call's framing.
fn upstream_metadata(
    headers: &HeaderMap,
    id: &str,
    trace: Option<&EdgeTrace>,
) -> Result<MetadataMap, tonic::Status> {
    let mut out = HeaderMap::new();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        out.insert(header::AUTHORIZATION, value.clone());
    }
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix(METADATA_PREFIX) else {
            continue;
        };
        // Reserved gRPC keys stay the edge's own (the deadline has its own header).
        if key.is_empty() || key.starts_with("grpc-") {
            continue;
        }
        if is_framing_header(key) {
            return Err(tonic::Status::invalid_argument(format!(
                "{name} names a transport header, which cannot be sent as metadata"
            )));
        }
        if let Ok(key) = HeaderName::from_bytes(key.as_bytes()) {
            out.append(key, value.clone());
        }
    }
    if let Ok(value) = HeaderValue::from_str(id) {
        out.insert(REQUEST_ID, value);
    }
    match trace {
        Some(EdgeTrace(trace)) => {
            for (name, value) in trace {
                out.insert(name, value.clone());
            }
        }
        None => inject_trace_context(&mut out),
    }
    if let Some(value) = headers.get("x-forwarded-for") {
        out.insert("x-forwarded-for", value.clone());
    }
    Ok(MetadataMap::from_headers(out))
}

/// Headers that frame the call or belong to one HTTP connection (RFC 9110 §7.6.1, RFC 9113
/// §8.2.2): never gRPC metadata.
fn is_framing_header(name: &str) -> bool {
    matches!(
        name,
        "content-type"
            | "content-length"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "connection"
            | "host"
            | "keep-alive"
            | "proxy-connection"
            | "upgrade"
            | "expect"
    )
}

/// Copies an upstream's response metadata onto the HTTP response as `Grpc-Metadata-<K>` headers,
/// leaving out what belongs to the HTTP/2 transport or gRPC itself; auth's device token becomes
/// a cookie instead (see [`device_cookie`]).
fn copy_response_metadata(metadata: &MetadataMap, headers: &mut HeaderMap) {
    if let Some(cookie) = device_cookie::set_cookie(metadata) {
        headers.append(header::SET_COOKIE, cookie);
    }
    for entry in metadata.iter() {
        let (name, value) = match entry {
            tonic::metadata::KeyAndValueRef::Ascii(key, value) => (key.as_str(), value.as_bytes()),
            tonic::metadata::KeyAndValueRef::Binary(key, value) => {
                (key.as_str(), value.as_encoded_bytes())
            }
        };
        if is_transport_header(name) || device_cookie::is_device_metadata(name) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(format!("{METADATA_PREFIX}{name}").as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
}

/// Headers of a gRPC response that are not application metadata.
fn is_transport_header(name: &str) -> bool {
    name.starts_with("grpc-")
        || matches!(
            name,
            "content-type"
                | "content-length"
                | "date"
                | "server"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "connection"
                | "x-request-id"
        )
}

#[cfg(test)]
mod tests;
