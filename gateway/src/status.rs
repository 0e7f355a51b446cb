//! The one error table of the edge: gRPC status -> HTTP status, with a `google.rpc.Status` JSON
//! body carrying the request id.

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use http::{HeaderValue, StatusCode};
use serde_json::json;
use tonic::Code;

/// The HTTP status of a gRPC code, by the canonical table.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The response for an error: the mapped HTTP status, `google.rpc.Status` JSON whose details
/// include a `google.rpc.RequestInfo` with the request id, and `WWW-Authenticate` on 401.
pub fn error_response(status: &tonic::Status, request_id: &str) -> Response {
    let mut details = Vec::new();
    if !request_id.is_empty() {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.RequestInfo",
            "requestId": request_id,
        }));
    }
    let body = json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details,
    });
    let mut response = (http_status(status.code()), Json(body)).into_response();
    if status.code() == Code::Unauthenticated {
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"agora\""),
        );
    }
    if let Ok(value) = HeaderValue::from_str(request_id)
        && !request_id.is_empty()
    {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
