//! The one error table of the edge: gRPC status -> HTTP status, with a `google.rpc.Status` JSON
//! body carrying the upstream's own error details and the request id.
//!
//! Details arrive in `grpc-status-details-bin` as an encoded `google.rpc.Status`; each `Any` in
//! it is rendered as proto3 JSON with its `@type`, by looking the type up in the `google.rpc`
//! descriptors compiled by `build.rs`. A type the edge does not know (or bytes that do not decode
//! as it) is passed on as `{"@type", "value": <base64>}`, so nothing the upstream said is lost.

use std::sync::LazyLock;

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use base64::Engine;
use http::{HeaderValue, StatusCode};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions, Value as ReflectValue};
use prost_types::Any;
use serde_json::{Value, json};
use tonic::Code;

/// The type URL prefix every detail the edge writes uses.
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";
/// The detail that carries the request id.
const REQUEST_INFO: &str = "google.rpc.RequestInfo";

/// The `google.rpc` error model (and the `google.protobuf` types it imports), decoded once.
/// `None` only if the build wrote a broken set; details then still pass on as base64.
static DETAILS_POOL: LazyLock<Option<DescriptorPool>> = LazyLock::new(|| {
    let bytes = include_bytes!(concat!(env!("OUT_DIR"), "/google_rpc_descriptor.bin"));
    DescriptorPool::decode(bytes.as_slice())
        .inspect_err(|e| tracing::error!(error = %e, "the google.rpc descriptors do not decode"))
        .ok()
});

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

/// The `google.rpc.Status` JSON of `status`: its code and message, every detail the upstream
/// sent (as proto3 JSON with its `@type`), and a `google.rpc.RequestInfo` with `request_id`.
/// An upstream's own RequestInfo is kept, with its `requestId` set to the edge's id (the one the
/// client sees in `x-request-id` and the upstream received); an empty `request_id` adds none.
pub fn status_json(status: &tonic::Status, request_id: &str) -> Value {
    let mut details = upstream_details(status.details());
    if !request_id.is_empty() {
        add_request_id(&mut details, request_id);
    }
    json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details.iter().map(detail_json).collect::<Vec<_>>(),
    })
}

/// The response for an error: the mapped HTTP status, the [`status_json`] body, the request id
/// in `x-request-id`, and `WWW-Authenticate` on 401.
pub fn error_response(status: &tonic::Status, request_id: &str) -> Response {
    let body = status_json(status, request_id);
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
    if let Some(seconds) = retry_after_secs(status) {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// An upstream's `RetryInfo` as whole seconds for `Retry-After` (rounded up and at least one:
/// "retry in 0 s" would invite a tight loop), so HTTP clients learn when to come back too.
fn retry_after_secs(status: &tonic::Status) -> Option<u64> {
    use tonic_types::StatusExt as _;
    Some(retry_after_seconds(
        status.get_details_retry_info()?.retry_delay?,
    ))
}

/// A delay as `Retry-After` seconds: rounded up, and at least one.
pub(crate) fn retry_after_seconds(delay: std::time::Duration) -> u64 {
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    millis.div_ceil(1000).max(1)
}

/// The details of an encoded `google.rpc.Status`; none when there are no bytes or they do not
/// decode (the code and message still reach the client).
fn upstream_details(bytes: &[u8]) -> Vec<Any> {
    if bytes.is_empty() {
        return Vec::new();
    }
    match tonic_types::pb::Status::decode(bytes) {
        Ok(decoded) => decoded.details,
        Err(e) => {
            tracing::warn!(error = %e, "an upstream's grpc-status-details-bin does not decode");
            Vec::new()
        }
    }
}

/// The message name of a type URL (what follows its last `/`).
fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

/// Puts `request_id` in the upstream's RequestInfo, or appends one when it sent none that decodes.
fn add_request_id(details: &mut Vec<Any>, request_id: &str) {
    for any in details.iter_mut() {
        if type_name(&any.type_url) != REQUEST_INFO {
            continue;
        }
        if let Ok(mut info) = tonic_types::pb::RequestInfo::decode(any.value.as_slice()) {
            info.request_id = request_id.to_owned();
            any.value = info.encode_to_vec();
            return;
        }
    }
    let info = tonic_types::pb::RequestInfo {
        request_id: request_id.to_owned(),
        serving_data: String::new(),
    };
    details.push(Any {
        type_url: format!("{TYPE_URL_PREFIX}{REQUEST_INFO}"),
        value: info.encode_to_vec(),
    });
}

/// One detail as proto3 JSON with its `@type` (default fields left out, as the upstream set
/// them), or `{"@type", "value": <base64>}` when its type is unknown or its bytes do not decode.
fn detail_json(any: &Any) -> Value {
    known_detail_json(any).unwrap_or_else(|| {
        json!({
            "@type": any.type_url,
            "value": base64::engine::general_purpose::STANDARD.encode(&any.value),
        })
    })
}

fn known_detail_json(any: &Any) -> Option<Value> {
    let pool = DETAILS_POOL.as_ref()?;
    // Rendering a google.protobuf.Any lets prost-reflect resolve the type URL in the pool and
    // write `@type` first, with well-known payloads in their `{"@type", "value"}` form.
    let mut message = DynamicMessage::new(pool.get_message_by_name("google.protobuf.Any")?);
    message.set_field_by_name("type_url", ReflectValue::String(any.type_url.clone()));
    message.set_field_by_name(
        "value",
        ReflectValue::Bytes(bytes::Bytes::copy_from_slice(&any.value)),
    );
    message
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .ok()
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt as _};

    #[test]
    fn an_upstreams_retry_info_becomes_retry_after_in_whole_seconds_rounded_up() {
        let status = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "too many failed logins",
            ErrorDetails::with_retry_info(Some(std::time::Duration::from_millis(1500))),
        );
        let response = error_response(&status, "r-1");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "2");
        let plain = error_response(&tonic::Status::resource_exhausted("busy"), "r-2");
        assert!(plain.headers().get(http::header::RETRY_AFTER).is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with_details(details: Vec<Any>) -> tonic::Status {
        let encoded = tonic_types::pb::Status {
            code: Code::InvalidArgument as i32,
            message: "bad".to_owned(),
            details,
        }
        .encode_to_vec();
        tonic::Status::with_details(Code::InvalidArgument, "bad", encoded.into())
    }

    #[test]
    fn the_details_pool_knows_every_google_rpc_detail_type() {
        let pool = DETAILS_POOL.as_ref().expect("the build writes a valid set");
        for name in [
            "google.rpc.Status",
            "google.rpc.ErrorInfo",
            "google.rpc.RetryInfo",
            "google.rpc.DebugInfo",
            "google.rpc.QuotaFailure",
            "google.rpc.PreconditionFailure",
            "google.rpc.BadRequest",
            "google.rpc.RequestInfo",
            "google.rpc.ResourceInfo",
            "google.rpc.Help",
            "google.rpc.LocalizedMessage",
        ] {
            assert!(pool.get_message_by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn an_unknown_detail_type_passes_on_as_base64_beside_the_request_info() {
        let status = status_with_details(vec![Any {
            type_url: "type.googleapis.com/acme.v1.Mystery".to_owned(),
            value: vec![1, 2, 3],
        }]);
        assert_eq!(
            status_json(&status, "req-1"),
            json!({
                "code": 3,
                "message": "bad",
                "details": [
                    {"@type": "type.googleapis.com/acme.v1.Mystery", "value": "AQID"},
                    {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-1"},
                ],
            })
        );
    }

    #[test]
    fn a_known_detail_type_whose_bytes_do_not_decode_passes_on_as_base64() {
        let status = status_with_details(vec![Any {
            type_url: "type.googleapis.com/google.rpc.BadRequest".to_owned(),
            // A field 1 (length-delimited) claiming more bytes than there are.
            value: vec![0x0a, 0x7f, 0x01],
        }]);
        let body = status_json(&status, "");
        assert_eq!(
            body["details"],
            json!([{"@type": "type.googleapis.com/google.rpc.BadRequest", "value": "Cn8B"}])
        );
    }

    #[test]
    fn garbage_status_details_keep_the_code_and_message_and_add_the_request_id() {
        let status = tonic::Status::with_details(
            Code::NotFound,
            "no such product",
            bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0x07]),
        );
        assert_eq!(
            status_json(&status, "req-2"),
            json!({
                "code": 5,
                "message": "no such product",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-2"},
                ],
            })
        );
    }

    #[test]
    fn an_upstream_request_info_keeps_its_serving_data_and_gets_the_request_id() {
        let info = tonic_types::pb::RequestInfo {
            request_id: String::new(),
            serving_data: "shard-4".to_owned(),
        };
        let status = status_with_details(vec![Any {
            type_url: "type.googleapis.com/google.rpc.RequestInfo".to_owned(),
            value: info.encode_to_vec(),
        }]);
        assert_eq!(
            status_json(&status, "req-3")["details"],
            json!([{
                "@type": "type.googleapis.com/google.rpc.RequestInfo",
                "requestId": "req-3",
                "servingData": "shard-4",
            }])
        );
    }

    #[test]
    fn a_status_without_details_or_request_id_has_an_empty_details_list() {
        let body = status_json(&tonic::Status::internal("boom"), "");
        assert_eq!(body, json!({"code": 13, "message": "boom", "details": []}));
    }
}
