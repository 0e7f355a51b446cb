use std::time::Instant;

use super::*;
use tower::{Service, ServiceExt};

type Seen = Arc<std::sync::Mutex<Option<http::HeaderMap>>>;

/// An upstream that records the headers of the request it receives and answers an empty OK.
#[derive(Clone, Default)]
struct Recorder(Seen);

impl tower::Service<http::Request<Body>> for Recorder {
    type Response = http::Response<Body>;
    type Error = Status;
    type Future = std::future::Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        *self.0.lock().expect("not poisoned") = Some(request.headers().clone());
        std::future::ready(Ok(http::Response::new(Body::empty())))
    }
}

/// Sends one empty request through `client`.
async fn send(client: &mut Propagate<Recorder>) -> Result<http::Response<Body>, tower::BoxError> {
    client
        .ready()
        .await?
        .call(http::Request::new(Body::empty()))
        .await
}

fn recorder() -> (Recorder, Seen) {
    let recorder = Recorder::default();
    let seen = Arc::clone(&recorder.0);
    (recorder, seen)
}

#[tokio::test]
async fn calls_carry_the_request_id_and_a_deadline_no_later_than_the_callers() {
    let (inner, seen) = recorder();
    let mut client = Propagate::new(inner, None, Duration::from_secs(30));
    let call = CallContext {
        request_id: "req-7".into(),
        deadline: Some(Instant::now() + Duration::from_millis(800)),
    };
    call.scope(async {
        send(&mut client).await.expect("answered");
    })
    .await;
    let headers = seen.lock().expect("not poisoned").clone().expect("called");
    assert_eq!(headers[REQUEST_ID], "req-7");
    let timeout = parse_grpc_timeout(headers[GRPC_TIMEOUT].to_str().expect("ascii"))
        .expect("a valid grpc-timeout");
    assert!(timeout <= Duration::from_millis(800), "{timeout:?}");
    assert!(timeout > Duration::from_millis(500), "{timeout:?}");
}

#[tokio::test]
async fn calls_continue_the_trace_of_the_call_being_served() {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    crate::telemetry::init_for_tests();
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4736";
    let incoming = crate::context::traceparent_headers(trace_id);
    let span = tracing::info_span!("served");
    span.set_parent(crate::context::extract_trace_context(&incoming))
        .expect("parented");
    let (inner, seen) = recorder();
    let mut client = Propagate::new(inner, None, Duration::from_secs(3));
    send(&mut client).instrument(span).await.expect("answered");
    let headers = seen.lock().expect("not poisoned").clone().expect("called");
    let traceparent = headers["traceparent"].to_str().expect("ascii");
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "{traceparent}"
    );
}

#[tokio::test]
async fn calls_outside_a_served_call_get_a_new_id_and_the_default_deadline() {
    let (inner, seen) = recorder();
    let mut client = Propagate::new(inner, None, Duration::from_secs(3));
    send(&mut client).await.expect("answered");
    let headers = seen.lock().expect("not poisoned").clone().expect("called");
    assert!(uuid::Uuid::parse_str(headers[REQUEST_ID].to_str().expect("ascii")).is_ok());
    let timeout = parse_grpc_timeout(headers[GRPC_TIMEOUT].to_str().expect("ascii"));
    assert_eq!(timeout, Some(Duration::from_secs(3)));
}

#[tokio::test]
async fn a_passed_deadline_fails_fast_without_calling_upstream() {
    let (inner, seen) = recorder();
    let mut client = Propagate::new(inner, None, Duration::from_secs(3));
    let call = CallContext {
        request_id: "late".into(),
        deadline: Some(Instant::now()),
    };
    let error = call
        .scope(async { send(&mut client).await.expect_err("deadline passed") })
        .await;
    let status = Status::from_error(error);
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    assert!(seen.lock().expect("not poisoned").is_none());
}
