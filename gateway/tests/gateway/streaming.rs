//! Server-streaming answers end to end: `grpc.health.v1.Health/Watch` over a real channel,
//! written as NDJSON lines or Server-Sent Events frame by frame as the upstream sends them.

use std::time::Duration;

use agora_gateway::stream::{StreamFormat, stream_response, stream_response_with_keep_alive};
use agora_gateway::upstream::Upstream;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::FutureExt;
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as Wire;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_types::{ErrorDetails, StatusExt};

/// The watched service name.
const WIDGETS: &str = "agora.test.Widgets";

/// What a scripted watch sends: the test holds the sending side.
type Script = mpsc::Sender<Result<HealthCheckResponse, Status>>;

/// A health service whose every `Watch` hands its stream's sender to the test, so the test
/// decides what the upstream sends, when, and sees when the call is dropped.
struct Scripted {
    scripts: mpsc::UnboundedSender<Script>,
}

#[tonic::async_trait]
impl Health for Scripted {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, Status> {
        Err(Status::unimplemented("only Watch is served here"))
    }

    type WatchStream = ReceiverStream<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, Status> {
        let (script, stream) = mpsc::channel(4);
        self.scripts
            .send(script)
            .map_err(|_| Status::internal("the test stopped listening"))?;
        Ok(tonic::Response::new(ReceiverStream::new(stream)))
    }
}

/// Serves `health` on a free port; the upstream reaches it, dropping the sender stops it.
async fn serve<H: Health>(health: HealthServer<H>) -> (Upstream, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("a bound address");
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                stopped.map(|_| ()),
            ),
    );
    let upstream = Upstream::lazy(&format!("http://{addr}")).expect("a valid URL");
    (upstream, shutdown)
}

fn watch_method() -> MethodDescriptor {
    DescriptorPool::decode(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .expect("the health descriptors decode")
        .get_service_by_name("grpc.health.v1.Health")
        .expect("the health service")
        .methods()
        .find(|method| method.name() == "Watch")
        .expect("the Watch method")
}

/// Starts a watch of [`WIDGETS`] and answers it as `format`, rendering `response_body` only.
async fn watch(
    upstream: &Upstream,
    response_body: Option<&str>,
    format: StreamFormat,
    keep_alive: Option<Duration>,
) -> Response {
    let method = watch_method();
    let mut message = DynamicMessage::new(method.input());
    message.set_field_by_name("service", Value::String(WIDGETS.to_owned()));
    let stream = upstream
        .server_streaming(&method, Request::new(message))
        .await
        .expect("the watch starts")
        .into_inner();
    let response_body = response_body.map(str::to_owned);
    let id = "req-41".to_owned();
    match keep_alive {
        Some(every) => stream_response_with_keep_alive(stream, response_body, format, id, every),
        None => stream_response(stream, response_body, format, id),
    }
}

/// The next frame of the body, which must come within five seconds; `None` when the body ended.
async fn next_frame(body: &mut Body) -> Option<String> {
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("a frame within five seconds")?
        .expect("the body does not fail");
    let data: Bytes = frame.into_data().expect("a data frame");
    Some(String::from_utf8(data.to_vec()).expect("UTF-8"))
}

/// Asserts that no frame comes (nor does the body end) for a while: the stream stays open.
async fn assert_idle(body: &mut Body) {
    let waited = tokio::time::timeout(Duration::from_millis(300), body.frame()).await;
    assert!(waited.is_err(), "nothing is sent while nothing changes");
}

fn response(status: Wire) -> Result<HealthCheckResponse, Status> {
    Ok(HealthCheckResponse {
        status: status as i32,
    })
}

fn failure() -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        "the watch was refused",
        ErrorDetails::with_bad_request_violation("service", "is no longer watchable"),
    )
}

fn failure_json() -> serde_json::Value {
    json!({
        "code": 3,
        "message": "the watch was refused",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "service", "description": "is no longer watchable"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-41"},
        ],
    })
}

/// A scripted server and the script of the one watch the test starts on it.
async fn scripted(format: StreamFormat) -> (Script, Response, oneshot::Sender<()>) {
    let (scripts, mut started) = mpsc::unbounded_channel();
    let (upstream, shutdown) = serve(HealthServer::new(Scripted { scripts })).await;
    let answer = watch(&upstream, None, format, None).await;
    let script = started.recv().await.expect("the watch reached the server");
    (script, answer, shutdown)
}

/// Watches a real health service in `format`: the first frame arrives while the stream stays
/// open, nothing comes while the status holds, and its change is the next frame.
async fn frames_arrive_one_by_one(format: StreamFormat, content_type: &str, frames: [&str; 2]) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(WIDGETS, ServingStatus::Serving)
        .await;
    let (upstream, _shutdown) = serve(health).await;
    let answer = watch(&upstream, None, format, None).await;
    assert_eq!(answer.headers()["content-type"], content_type);
    assert_eq!(answer.headers()["x-request-id"], "req-41");
    if format == StreamFormat::Sse {
        assert_eq!(answer.headers()["cache-control"], "no-cache");
    }
    let mut body = answer.into_body();
    assert_eq!(next_frame(&mut body).await.as_deref(), Some(frames[0]));
    assert_idle(&mut body).await;
    reporter
        .set_service_status(WIDGETS, ServingStatus::NotServing)
        .await;
    assert_eq!(next_frame(&mut body).await.as_deref(), Some(frames[1]));
}

#[tokio::test]
async fn ndjson_lines_arrive_one_by_one_as_the_watched_status_changes() {
    frames_arrive_one_by_one(
        StreamFormat::NdJson,
        "application/x-ndjson",
        [
            "{\"result\":{\"status\":\"SERVING\"}}\n",
            "{\"result\":{\"status\":\"NOT_SERVING\"}}\n",
        ],
    )
    .await;
}

#[tokio::test]
async fn sse_events_arrive_one_by_one_as_the_watched_status_changes() {
    frames_arrive_one_by_one(
        StreamFormat::Sse,
        "text/event-stream",
        [
            "id: 1\ndata: {\"result\":{\"status\":\"SERVING\"}}\n\n",
            "id: 2\ndata: {\"result\":{\"status\":\"NOT_SERVING\"}}\n\n",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_response_body_rule_streams_only_that_field_of_each_message() {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(WIDGETS, ServingStatus::Serving)
        .await;
    let (upstream, _shutdown) = serve(health).await;
    let answer = watch(&upstream, Some("status"), StreamFormat::NdJson, None).await;
    let mut body = answer.into_body();
    assert_eq!(
        next_frame(&mut body).await.as_deref(),
        Some("{\"result\":\"SERVING\"}\n")
    );
}

#[tokio::test]
async fn an_idle_sse_stream_sends_comment_keep_alives() {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(WIDGETS, ServingStatus::Serving)
        .await;
    let (upstream, _shutdown) = serve(health).await;
    let every = Some(Duration::from_millis(100));
    let mut body = watch(&upstream, None, StreamFormat::Sse, every)
        .await
        .into_body();
    assert!(
        next_frame(&mut body)
            .await
            .is_some_and(|frame| frame.starts_with("id: 1\ndata: "))
    );
    assert_eq!(next_frame(&mut body).await.as_deref(), Some(":\n\n"));
    assert_eq!(next_frame(&mut body).await.as_deref(), Some(":\n\n"));
}

#[tokio::test]
async fn an_upstream_error_mid_stream_ends_ndjson_with_an_error_line() {
    let (script, answer, _shutdown) = scripted(StreamFormat::NdJson).await;
    for status in [Wire::Serving, Wire::NotServing] {
        script
            .send(response(status))
            .await
            .expect("the call is open");
    }
    script.send(Err(failure())).await.expect("the call is open");
    let mut body = answer.into_body();
    assert_eq!(
        next_frame(&mut body).await.as_deref(),
        Some("{\"result\":{\"status\":\"SERVING\"}}\n")
    );
    assert_eq!(
        next_frame(&mut body).await.as_deref(),
        Some("{\"result\":{\"status\":\"NOT_SERVING\"}}\n")
    );
    let last = next_frame(&mut body).await.expect("an error line");
    assert!(last.ends_with('\n'), "{last:?}");
    let last: serde_json::Value = serde_json::from_str(&last).expect("a JSON line");
    assert_eq!(last, json!({ "error": failure_json() }));
    assert_eq!(
        next_frame(&mut body).await,
        None,
        "the error line is the last"
    );
}

#[tokio::test]
async fn an_upstream_error_mid_stream_ends_sse_with_an_error_event() {
    let (script, answer, _shutdown) = scripted(StreamFormat::Sse).await;
    for status in [Wire::Serving, Wire::NotServing] {
        script
            .send(response(status))
            .await
            .expect("the call is open");
    }
    script.send(Err(failure())).await.expect("the call is open");
    let mut body = answer.into_body();
    assert!(
        next_frame(&mut body)
            .await
            .is_some_and(|f| f.starts_with("id: 1\n"))
    );
    assert!(
        next_frame(&mut body)
            .await
            .is_some_and(|f| f.starts_with("id: 2\n"))
    );
    let last = next_frame(&mut body).await.expect("an error event");
    let data = last
        .strip_prefix("id: 3\nevent: error\ndata: ")
        .and_then(|rest| rest.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("an error event: {last:?}"));
    let data: serde_json::Value = serde_json::from_str(data).expect("JSON data");
    assert_eq!(data, failure_json());
    assert_eq!(
        next_frame(&mut body).await,
        None,
        "the error event is the last"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_stream() {
    let (script, answer, _shutdown) = scripted(StreamFormat::NdJson).await;
    script
        .send(response(Wire::Serving))
        .await
        .expect("the call is open");
    let mut body = answer.into_body();
    assert!(next_frame(&mut body).await.is_some());
    assert!(!script.is_closed(), "the upstream call is open while read");
    drop(body);
    tokio::time::timeout(Duration::from_secs(5), script.closed())
        .await
        .expect("the upstream sees the call dropped");
}

#[test]
fn only_an_accept_header_listing_event_streams_selects_sse() {
    let format = |accept: Option<&str>| {
        let mut headers = http::HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(
                http::header::ACCEPT,
                accept.parse().expect("a header value"),
            );
        }
        StreamFormat::from_headers(&headers)
    };
    assert_eq!(format(None), StreamFormat::NdJson);
    assert_eq!(format(Some("application/json")), StreamFormat::NdJson);
    assert_eq!(format(Some("text/event-stream")), StreamFormat::Sse);
    assert_eq!(format(Some("TEXT/Event-Stream")), StreamFormat::Sse);
    assert_eq!(
        format(Some("application/json;q=0.5, text/event-stream; q=0.9")),
        StreamFormat::Sse
    );
    assert_eq!(format(Some("text/event-stream;q=0")), StreamFormat::NdJson);
    assert_eq!(format(Some("text/event-streams")), StreamFormat::NdJson);
}
