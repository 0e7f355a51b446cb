//! With an OTLP endpoint configured, spans reach it, named after the service, and a span opened
//! under an incoming `traceparent` keeps the caller's trace id.
//!
//! A binary of its own, not a module of `tests/platform/`: `telemetry::init` installs the
//! process-wide tracing subscriber and OpenTelemetry provider, so in a shared process the spans of
//! the other tests would reach this receiver (and could crowd `checkout` out of the first export),
//! and dropping the guard would shut the provider down under them.

use std::time::Duration;

use agora_platform::{config::Settings, context::extract_trace_context, telemetry};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A minimal OTLP/gRPC trace receiver that hands over what it receives.
struct Receiver(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let _ = self.0.send(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_configured_otlp_endpoint_with_the_callers_trace_id() {
    let (sender, mut received) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(sender)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let settings = Settings {
        otlp_endpoint: Some(format!("http://{addr}")),
        ..Settings::default()
    };
    let guard = telemetry::init(&settings, "otlp-test-service").expect("telemetry");

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace_id}-b7ad6b7169203331-01")
            .parse()
            .expect("header"),
    );
    {
        let span = tracing::info_span!("checkout");
        span.set_parent(extract_trace_context(&headers))
            .expect("parented");
        let _entered = span.enter();
        tracing::info!("inside the span");
    }
    // Dropping the guard flushes the batch.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .expect("flushed");

    let export = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .expect("an export arrives")
        .expect("a request");
    let resource = export.resource_spans[0]
        .resource
        .as_ref()
        .expect("a resource");
    let service_name = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(|v| format!("{:?}", v.value));
    assert!(
        service_name
            .as_deref()
            .is_some_and(|v| v.contains("otlp-test-service")),
        "{service_name:?}"
    );
    let spans: Vec<_> = export
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    let checkout = spans
        .iter()
        .find(|s| s.name == "checkout")
        .expect("the span");
    let exported_trace: String = checkout
        .trace_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(exported_trace, trace_id);
}
