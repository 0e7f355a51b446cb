//! Rich error details end to end: a real tonic server answers `with_error_details` statuses, the
//! edge calls it over a real channel, and `error_response` writes them as `google.rpc.Status`
//! JSON, each detail decoded with its `@type`, beside the edge's request id.

use std::collections::HashMap;
use std::time::Duration;

use agora_gateway::status::error_response;
use agora_gateway::upstream::Upstream;
use futures::FutureExt;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use serde_json::json;
use tokio::sync::oneshot;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// A health service whose `Check` fails with the rich status named by the requested service.
struct Failing;

#[tonic::async_trait]
impl Health for Failing {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Err(failure(&request.get_ref().service))
    }

    type WatchStream = futures::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("only Check is served here"))
    }
}

fn failure(service: &str) -> Status {
    match service {
        "bad-request" => Status::with_error_details(
            Code::InvalidArgument,
            "the listing request is invalid",
            ErrorDetails::with_bad_request(vec![
                FieldViolation::new("page_size", "must be between 1 and 100"),
                FieldViolation::new("page_token", "was not issued by this service"),
            ]),
        ),
        "conflict" => {
            let mut details = ErrorDetails::new();
            details
                .set_error_info(
                    "STOCK_RESERVED",
                    "inventory.agora.dev",
                    HashMap::from([("sku".to_owned(), "sku-42".to_owned())]),
                )
                .set_retry_info(Some(Duration::from_millis(1500)))
                .add_precondition_failure_violation("STOCK", "sku-42", "only 2 left, 5 requested")
                .set_resource_info(
                    "agora.inventory.v1.Stock",
                    "stock/sku-42",
                    "warehouse:lyon",
                    "the reservation would overdraw this stock",
                );
            Status::with_error_details(Code::FailedPrecondition, "not enough stock", details)
        }
        "with-request-info" => Status::with_error_details(
            Code::Unavailable,
            "the store is draining",
            ErrorDetails::with_request_info("", "pod=product-7"),
        ),
        other => Status::not_found(format!("no failure named {other}")),
    }
}

/// A running [`Failing`] server; dropping it shuts the server down.
struct Server {
    upstream: Upstream,
    _shutdown: oneshot::Sender<()>,
}

async fn start() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("a bound address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(Failing))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stopped.map(|_| ()),
            ),
    );
    Server {
        upstream: Upstream::lazy(&format!("http://{addr}")).expect("a valid URL"),
        _shutdown: shutdown,
    }
}

fn check_method() -> MethodDescriptor {
    DescriptorPool::decode(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .expect("the health descriptors decode")
        .get_service_by_name("grpc.health.v1.Health")
        .expect("the health service")
        .methods()
        .find(|method| method.name() == "Check")
        .expect("the Check method")
}

/// Calls `Check` for `service` and renders the failure as the edge would: HTTP status and body.
async fn rendered_failure(service: &str, request_id: &str) -> (u16, serde_json::Value) {
    let server = start().await;
    let method = check_method();
    let mut message = DynamicMessage::new(method.input());
    message.set_field_by_name("service", Value::String(service.to_owned()));
    let status = server
        .upstream
        .unary(&method, Request::new(message))
        .await
        .expect_err("every check fails");
    let response = error_response(&status, request_id);
    assert_eq!(response.headers()["x-request-id"], request_id);
    let code = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("a body");
    (code, serde_json::from_slice(&bytes).expect("a JSON body"))
}

#[tokio::test]
async fn a_bad_request_arrives_with_both_field_violations_and_the_request_id() {
    let (code, body) = rendered_failure("bad-request", "req-31").await;
    assert_eq!(code, 400);
    assert_eq!(
        body,
        json!({
            "code": 3,
            "message": "the listing request is invalid",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [
                        {"field": "page_size", "description": "must be between 1 and 100"},
                        {"field": "page_token", "description": "was not issued by this service"},
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-31"},
            ],
        })
    );
}

#[tokio::test]
async fn error_info_retry_info_precondition_failure_and_resource_info_arrive_decoded() {
    let (code, body) = rendered_failure("conflict", "req-32").await;
    assert_eq!(code, 400);
    assert_eq!(
        body,
        json!({
            "code": 9,
            "message": "not enough stock",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.500s"},
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "STOCK_RESERVED",
                    "domain": "inventory.agora.dev",
                    "metadata": {"sku": "sku-42"},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
                    "violations": [
                        {"type": "STOCK", "subject": "sku-42", "description": "only 2 left, 5 requested"},
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                    "resourceType": "agora.inventory.v1.Stock",
                    "resourceName": "stock/sku-42",
                    "owner": "warehouse:lyon",
                    "description": "the reservation would overdraw this stock",
                },
                {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-32"},
            ],
        })
    );
}

#[tokio::test]
async fn an_upstream_request_info_is_kept_once_and_carries_the_edge_request_id() {
    let (code, body) = rendered_failure("with-request-info", "req-33").await;
    assert_eq!(code, 503);
    assert_eq!(
        body,
        json!({
            "code": 14,
            "message": "the store is draining",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.RequestInfo",
                    "requestId": "req-33",
                    "servingData": "pod=product-7",
                },
            ],
        })
    );
}

#[tokio::test]
async fn a_status_without_details_still_carries_the_request_id() {
    let (code, body) = rendered_failure("plain", "req-34").await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({
            "code": 5,
            "message": "no failure named plain",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-34"},
            ],
        })
    );
}
