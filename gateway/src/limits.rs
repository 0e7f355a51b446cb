//! The request body size limit: a JSON body larger than `max_body_bytes` is refused with 413 and
//! a `google.rpc.Status` body before anything is decoded or sent upstream.
//!
//! A declared `Content-Length` over the limit is refused without reading a byte; a chunked body
//! is read up to the limit and refused as soon as it passes it, so a client cannot make the edge
//! buffer more than the limit either way. gRPC and gRPC-Web calls pass through untouched: they
//! stream, and each service enforces its own message size limit.

use axum::{
    body::Body,
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use http::StatusCode;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Deserialize;

/// The default limit: far above any request of Agora's API, far below a memory problem.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// `[gateway.limits]`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// The middleware. Mount it inside CORS and rate limits, outside the transcoder:
///
/// ```ignore
/// // Refuse oversized bodies with 413 before they are buffered or decoded.
/// let app = routes.layer(axum::middleware::from_fn_with_state(settings.limits, limits::enforce));
/// ```
pub async fn enforce(
    State(settings): State<LimitSettings>,
    request: Request,
    next: Next,
) -> Response {
    if crate::auth::is_grpc(&request) {
        return next.run(request).await;
    }
    let max = settings.max_body_bytes;
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return too_large(&request, max);
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let request = Request::from_parts(parts, Body::empty());
            if error.downcast_ref::<LengthLimitError>().is_some() {
                return too_large(&request, max);
            }
            tracing::info!(%error, "could not read a request body");
            return crate::auth::refuse(
                &request,
                &tonic::Status::invalid_argument("the request body could not be read"),
            );
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(request: &Request, max: usize) -> Response {
    let status = tonic::Status::resource_exhausted(format!(
        "the request body is larger than the limit of {max} bytes"
    ));
    let mut response = crate::auth::refuse(request, &status);
    // The table maps RESOURCE_EXHAUSTED to 429, which would tell the client to retry the same
    // body later; 413 says the body itself is the problem.
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, routing::post};
    use tower::ServiceExt as _;

    fn app(max: usize) -> Router {
        Router::new()
            .route(
                "/v1/echo",
                post(|body: axum::body::Bytes| async move { body.len().to_string() }),
            )
            .layer(axum::middleware::from_fn_with_state(
                LimitSettings {
                    max_body_bytes: max,
                },
                enforce,
            ))
    }

    async fn json(response: Response) -> serde_json::Value {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn a_body_within_the_limit_reaches_the_route_whole() {
        let response = app(16)
            .oneshot(
                Request::post("/v1/echo")
                    .body(Body::from("0123456789abcdef"))
                    .expect("a request"),
            )
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&bytes[..], b"16");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_413_with_a_status_body() {
        let response = app(16)
            .oneshot(
                Request::post("/v1/echo")
                    .header("content-length", "17")
                    .body(Body::from("0123456789abcdefg"))
                    .expect("a request"),
            )
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let body = json(response).await;
        assert_eq!(body["code"], 8, "RESOURCE_EXHAUSTED: {body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("16 bytes")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_chunked_body_that_grows_past_the_limit_is_413() {
        let chunks = futures::stream::iter(
            (0..10).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"0123456789"))),
        );
        let response = app(64)
            .oneshot(
                Request::post("/v1/echo")
                    .body(Body::from_stream(chunks))
                    .expect("a request"),
            )
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json(response).await["code"], 8);
    }

    #[tokio::test]
    async fn grpc_calls_pass_through_unbuffered() {
        let response = app(4)
            .oneshot(
                Request::post("/v1/echo")
                    .header("content-type", "application/grpc")
                    .header("content-length", "10")
                    .body(Body::from("0123456789"))
                    .expect("a request"),
            )
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
    }
}
