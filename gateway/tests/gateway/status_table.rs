//! The one gRPC -> HTTP status table, every code, and the `google.rpc.Status` body it writes.

use agora_gateway::status::{error_response, http_status};
use tonic::Code;

#[test]
fn every_grpc_code_maps_to_its_http_status() {
    let table = [
        (Code::Ok, 200),
        (Code::Cancelled, 499),
        (Code::Unknown, 500),
        (Code::InvalidArgument, 400),
        (Code::DeadlineExceeded, 504),
        (Code::NotFound, 404),
        (Code::AlreadyExists, 409),
        (Code::PermissionDenied, 403),
        (Code::ResourceExhausted, 429),
        (Code::FailedPrecondition, 400),
        (Code::Aborted, 409),
        (Code::OutOfRange, 400),
        (Code::Unimplemented, 501),
        (Code::Internal, 500),
        (Code::Unavailable, 503),
        (Code::DataLoss, 500),
        (Code::Unauthenticated, 401),
    ];
    for (code, http) in table {
        assert_eq!(http_status(code).as_u16(), http, "{code:?}");
    }
}

#[tokio::test]
async fn an_error_body_carries_code_message_and_the_request_id() {
    let response = error_response(&tonic::Status::unauthenticated("sign in"), "req-9");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(response.headers()["x-request-id"], "req-9");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("a body");
    let body: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(body["code"], 16);
    assert_eq!(body["message"], "sign in");
    let details = body["details"].as_array().expect("details");
    assert!(details.iter().any(|d| d["requestId"] == "req-9"), "{body}");
}
