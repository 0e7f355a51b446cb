//! One native gRPC call sent down an upstream's channel.
//!
//! The request keeps its method, path, headers (metadata, `grpc-timeout`, `authorization`,
//! `traceparent`, `x-request-id`) and streaming body; the channel puts its own scheme and
//! authority on the URI. Only what belongs to a single HTTP hop is dropped. The answer streams
//! back as it comes, trailers included.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agora_platform::client::Metered;
use agora_platform::context::{GRPC_TIMEOUT, parse_grpc_timeout};
use http::header::{CONNECTION, HOST, TE};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Uri, Version};
use http_body_util::BodyExt as _;
use tonic::Status;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt as _;

/// Headers that describe one HTTP connection rather than the call (RFC 9110 §7.6.1); the
/// upstream hop has its own.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Sends `request` to `channel` and returns the upstream's answer; an upstream that cannot be
/// reached, or whose connection is lost before it answers (the outcome unknown), is
/// UNAVAILABLE, and one that has not answered by the call's deadline is DEADLINE_EXCEEDED. A
/// request body that cannot be read (gRPC-Web text that is not base64, say) is the client's
/// fault: INVALID_ARGUMENT.
pub(super) async fn call(
    channel: Metered<Channel>,
    request: http::Request<Body>,
) -> http::Response<Body> {
    let version = request.version();
    let path = request.uri().path().to_owned();
    let deadline = deadline(request.headers());
    let started = Instant::now();
    // The first error of the client's body, if it fails: the call then fails for that reason,
    // whatever the channel reports.
    let unreadable = Arc::new(OnceLock::<String>::new());
    let seen = unreadable.clone();
    let request = request.map(|body| {
        Body::new(body.map_err(move |status| {
            let _ = seen.set(status.message().to_owned());
            status
        }))
    });
    let answer = channel.oneshot(upstream_request(request));
    let answer = match deadline {
        // The upstream enforces the deadline on its own answer; this bound covers an upstream
        // that never gets as far as answering (a connection that accepts but never speaks).
        Some(deadline) => match tokio::time::timeout(deadline, answer).await {
            Ok(answer) => answer,
            Err(_) => return too_late(&path, deadline),
        },
        None => answer.await,
    };
    // The channel enforces `grpc-timeout` as well, and reports it expired as a transport error.
    let expired = deadline.filter(|deadline| started.elapsed() >= *deadline);
    match (answer, expired) {
        (Ok(mut response), _) => {
            remove_hop_by_hop(response.headers_mut());
            // The client's hop decides the version the answer travels in, not the upstream's.
            *response.version_mut() = version;
            response
        }
        (Err(_), _) if unreadable.get().is_some() => {
            let reason = unreadable.get().map(String::as_str).unwrap_or_default();
            tracing::info!(%path, %reason, "a request body that could not be read");
            Status::invalid_argument(format!("the request body could not be read: {reason}"))
                .into_http()
        }
        (Err(_), Some(deadline)) => too_late(&path, deadline),
        (Err(error), None) => {
            // tonic tells a connection never made (UNAVAILABLE: the call was not sent) from
            // one lost after the call went out, whose outcome nobody here knows.
            let status = Status::from_error(Box::new(error));
            let sent = status.code() != tonic::Code::Unavailable;
            let error = anyhow::Error::new(status);
            tracing::warn!(%path, sent, error = format!("{error:#}"), "no answer from the upstream");
            let message = if sent {
                crate::upstream::OUTCOME_UNKNOWN
            } else {
                "the service is unavailable; retry shortly"
            };
            Status::unavailable(message).into_http()
        }
    }
}

/// The answer to a call whose deadline passed before the upstream answered.
fn too_late(path: &str, deadline: Duration) -> http::Response<Body> {
    tracing::info!(%path, ?deadline, "no answer from the upstream by the deadline");
    Status::deadline_exceeded("the service did not answer by the deadline").into_http()
}

/// The call's deadline, from the client's `grpc-timeout`.
fn deadline(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(GRPC_TIMEOUT)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_grpc_timeout)
}

/// The request as the upstream hop sends it: HTTP/2 with an origin-form URI (the channel adds
/// its own scheme and authority), this hop's headers dropped, `te: trailers` as gRPC requires,
/// and none of the edge's own request extensions.
fn upstream_request(request: http::Request<Body>) -> http::Request<Body> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    parts.uri = Uri::from(path);
    parts.version = Version::HTTP_2;
    parts.extensions = http::Extensions::new();
    remove_hop_by_hop(&mut parts.headers);
    // The authority of the upstream hop is the channel's, not the edge's.
    parts.headers.remove(HOST);
    parts
        .headers
        .insert(TE, HeaderValue::from_static("trailers"));
    http::Request::from_parts(parts, body)
}

/// Removes the hop-by-hop headers, those `Connection` names included.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    // Framing is the hop's business too; HTTP/2 has no transfer-encoding at all.
    headers.remove(http::header::TRANSFER_ENCODING);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&'static str, &'static str)]) -> http::Request<Body> {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(uri)
            .version(Version::HTTP_11);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .extension(7_u32)
            .body(Body::empty())
            .expect("a request")
    }

    #[test]
    fn the_call_goes_upstream_without_this_hops_headers() {
        let sent = upstream_request(request(
            "http://edge.example:8080/agora.product.v1.ProductService/GetProduct",
            &[
                ("host", "edge.example:8080"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("upgrade", "h2c"),
                ("transfer-encoding", "chunked"),
                ("te", "gzip"),
                ("content-type", "application/grpc"),
                ("authorization", "Bearer abc"),
                ("grpc-timeout", "5S"),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                ),
                ("x-request-id", "req-9"),
                ("x-custom-bin", "AAEC"),
            ],
        ));
        assert_eq!(
            sent.uri(),
            "/agora.product.v1.ProductService/GetProduct",
            "the channel puts its own origin"
        );
        assert_eq!(sent.version(), Version::HTTP_2);
        assert!(sent.extensions().get::<u32>().is_none());
        let headers = sent.headers();
        for dropped in [
            "host",
            "connection",
            "x-hop",
            "keep-alive",
            "upgrade",
            "transfer-encoding",
        ] {
            assert!(!headers.contains_key(dropped), "{dropped} is this hop's");
        }
        assert_eq!(headers["te"], "trailers");
        for (kept, value) in [
            ("content-type", "application/grpc"),
            ("authorization", "Bearer abc"),
            ("grpc-timeout", "5S"),
            ("x-request-id", "req-9"),
            ("x-custom-bin", "AAEC"),
        ] {
            assert_eq!(headers[kept], value, "{kept} is the call's");
        }
        assert!(headers.contains_key("traceparent"));
    }

    #[test]
    fn the_deadline_is_the_clients_grpc_timeout() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(GRPC_TIMEOUT, HeaderValue::from_static(value));
            deadline(&headers)
        };
        assert_eq!(with("250m"), Some(Duration::from_millis(250)));
        assert_eq!(with("2S"), Some(Duration::from_secs(2)));
        assert_eq!(with("soon"), None);
        assert_eq!(deadline(&HeaderMap::new()), None);
    }
}
