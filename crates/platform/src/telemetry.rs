//! Logs, traces and the metrics provider.
//!
//! One `tracing` subscriber: human-readable or JSON lines, filtered by `RUST_LOG` (else the
//! configured filter), plus an OpenTelemetry layer so every span has a W3C trace context that
//! crosses hops ([`crate::context`]). Spans are exported over OTLP/gRPC only when an endpoint is
//! configured (`OTEL_EXPORTER_OTLP_ENDPOINT`); without one, trace ids still propagate. The
//! process's meter provider is installed here too ([`crate::metrics::install`]), with OTLP export
//! to the same endpoint.

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::{LogFormat, Settings};

/// Flushes pending spans when dropped; keep it alive for the life of the process.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// The process's metrics: flushed, not shut down, as other guards of the process (tests)
    /// share them.
    metrics: &'static crate::metrics::Metrics,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("flushing traces failed: {error}");
        }
        self.metrics.flush();
    }
}

/// Installs the global subscriber and propagator. A second call (tests) keeps the first
/// subscriber and returns a fresh guard.
///
/// # Errors
/// The OTLP exporter could not be built from its endpoint.
pub fn init(settings: &Settings, service_name: &str) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let metrics = crate::metrics::install(settings, service_name)?;

    let mut provider = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(service_name.to_owned())
            .build(),
    );
    if let Some(endpoint) = &settings.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("agora");

    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&settings.log.filter))
            .with_context(|| format!("invalid log filter {:?}", settings.log.filter))
    };
    // The log filter chooses what is printed, not what is traced: logs at `warn` must not
    // switch off the spans that carry trace context from hop to hop.
    // Spans carry what a trace viewer shows (names, fields, timing, status), not the busy and
    // idle time of every poll, the source location or the thread: those cost two clock reads
    // and map updates on every poll of every request's future.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let registry = tracing_subscriber::registry().with(otel);
    // Only the first call in a process installs a subscriber; later ones (tests) are no-ops.
    let _ = match settings.log.format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_filter(filter()?),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_filter(filter()?),
            )
            .try_init(),
    };
    Ok(Telemetry { provider, metrics })
}

/// Telemetry for this crate's unit tests: installed once and kept for the whole test process, so
/// no test's guard shuts the provider down under another test.
#[cfg(test)]
pub(crate) fn init_for_tests() {
    static TELEMETRY: std::sync::OnceLock<Telemetry> = std::sync::OnceLock::new();
    TELEMETRY.get_or_init(|| init(&Settings::default(), "test").expect("telemetry"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{extract_trace_context, inject_trace_context};
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    #[test]
    fn a_trace_that_comes_in_goes_out_with_the_same_trace_id() {
        init_for_tests();
        let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let incoming = crate::context::traceparent_headers(trace_id);
        let span = tracing::info_span!("served");
        span.set_parent(extract_trace_context(&incoming))
            .expect("a subscriber with the OpenTelemetry layer is installed");
        let mut outgoing = http::HeaderMap::new();
        span.in_scope(|| inject_trace_context(&mut outgoing));
        let traceparent = outgoing["traceparent"].to_str().expect("ascii");
        assert!(traceparent.contains(trace_id), "{traceparent}");
        assert!(
            !traceparent.contains("00f067aa0ba902b7"),
            "a new span id for the hop"
        );
        let context = extract_trace_context(&outgoing);
        assert_eq!(
            context.span().span_context().trace_id().to_string(),
            trace_id
        );
    }
}
