//! Upstream errors as the client sees them: each gRPC code through the one status table (the
//! table itself is proven in `status_table.rs`), the upstream's own `google.rpc` details decoded
//! into the JSON `details`, and an answer without any status.

use std::time::{Duration, Instant};

use agora_gateway::status::http_status;
use http::StatusCode;
use serde_json::json;
use tonic::Code;

use super::edge::{Answer, Edge};

/// `Fail` with `code`, `message` and one field violation.
async fn fail(edge: &Edge, code: Code, message: &str) -> Answer {
    let body = json!({
        "code": code as i32,
        "message": message,
        "field": "title",
        "description": "must not be empty",
    });
    edge.call("POST", "/v1/failures", &body.to_string()).await
}

#[tokio::test]
async fn every_status_the_upstream_answers_reaches_the_client_through_the_status_table() {
    let edge = Edge::start().await;
    for number in 1..=16 {
        let code = Code::from_i32(number);
        let answer = fail(&edge, code, &format!("failed with {number}")).await;
        answer.assert_error(http_status(code), code);
        assert_eq!(answer.json["message"], format!("failed with {number}"));
    }
    assert_eq!(edge.upstream_calls(), 16);
}

#[tokio::test]
async fn an_upstream_unauthenticated_answer_asks_for_credentials() {
    let edge = Edge::start().await;
    let answer = fail(&edge, Code::Unauthenticated, "sign in").await;
    answer.assert_error(StatusCode::UNAUTHORIZED, Code::Unauthenticated);
    assert!(answer.header("www-authenticate").is_some());
}

#[tokio::test]
async fn the_upstreams_error_details_are_decoded_into_the_json_details() {
    let edge = Edge::start().await;
    let answer = fail(&edge, Code::InvalidArgument, "the book is invalid").await;
    answer.assert_error(StatusCode::BAD_REQUEST, Code::InvalidArgument);
    let details = answer.json["details"].as_array().expect("details");
    let bad_request = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap_or_else(|| panic!("a BadRequest detail: {}", answer.text));
    assert_eq!(
        bad_request["fieldViolations"],
        json!([{"field": "title", "description": "must not be empty"}])
    );
    // The edge's own detail is still there.
    assert!(
        details
            .iter()
            .any(|d| d["@type"] == "type.googleapis.com/google.rpc.RequestInfo"),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn an_upstream_answer_without_a_grpc_status_is_502_or_503_and_never_hangs() {
    let edge = Edge::start().await;
    let started = Instant::now();
    let answer = edge.call("POST", "/v1/failures:vanish", "{}").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(edge.echo.only_call().method, "Vanish");
    assert!(
        matches!(
            answer.status,
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
        ),
        "{} {}",
        answer.status,
        answer.text
    );
    assert!(answer.json["code"].is_number(), "{}", answer.text);
}
