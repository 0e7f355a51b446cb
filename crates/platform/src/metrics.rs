//! Metrics: one OpenTelemetry meter provider per process, read by Prometheus and OTLP.
//!
//! [`install`] builds the process's [`SdkMeterProvider`] once; every later call, and
//! [`Metrics::global`], hands back the same one, so the five services and the edge of
//! `agora up` record into one provider and one `/metrics` shows them all. Two readers collect
//! it: a Prometheus text-format reader, served by [`MetricsEndpoint`] on `telemetry.metrics_addr`,
//! and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, an OTLP/gRPC exporter beside the traces.
//!
//! Names and attributes follow the OpenTelemetry semantic conventions, with bounded values
//! only (no ids, no raw paths): `rpc.server.call.duration` for every gRPC server
//! ([`RpcMetricsLayer`]) and `http.server.request.duration` at the edge. Durations are seconds,
//! in [`DURATION_BUCKETS`].
//!
//! With `telemetry.metrics = false` the process has no provider at all: [`Metrics::meter`]
//! hands out no-op instruments, so recording costs a call that does nothing.
//!
//! # Layout
//! - `rpc`: the server layer timing every call by service, method and status.
//! - `client`: the clients' instruments: every upstream call timed, retries, breakers, shed
//!   calls.
//! - `process`: CPU, memory and file descriptors of the process, and its Tokio runtime.
//! - `body`: a response body that records its call when it ends (streams included).
//! - `endpoint`: the admin HTTP port serving `GET /metrics`.
//! - `exposition`: a reader of the Prometheus text format, for tests and tools.

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use opentelemetry::metrics::{
    Counter, Gauge, Histogram, InstrumentProvider, Meter, MeterProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_prometheus_text_exporter::PrometheusExporter;
use opentelemetry_sdk::{Resource, metrics::SdkMeterProvider};

use crate::config::Settings;

mod body;
pub mod bus;
mod client;
mod endpoint;
pub mod exposition;
mod process;
mod rpc;

pub use body::{Recorder, Timed};
pub use client::{BreakerState, CallError, ClientMetrics, Metered, RetryOutcome};
pub use endpoint::{CONTENT_TYPE, MetricsEndpoint};
pub use rpc::{OTHER, RpcMetrics, RpcMetricsLayer};

/// Histogram bucket bounds, in seconds, for call durations: from half a millisecond (a cached
/// read on loopback) to ten seconds (past every default deadline but the server's own 30 s).
pub const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The name of the instrumentation scope of Agora's own instruments.
const SCOPE: &str = "agora";

/// The process's metrics: the meter provider and its Prometheus reader, or none when metrics
/// are off.
#[derive(Debug, Clone)]
pub struct Metrics {
    on: Option<On>,
}

/// A provider that measures.
#[derive(Debug, Clone)]
struct On {
    provider: SdkMeterProvider,
    prometheus: PrometheusExporter,
}

/// Hands out the API's no-op instruments: what a process with metrics off records into.
struct Off;

impl InstrumentProvider for Off {}

/// What `/metrics` says when metrics are off (a comment: valid, empty exposition text).
const OFF_TEXT: &str = "# metrics are off (telemetry.metrics = false)\n";

/// The one provider of the process, set by the first [`install`] or [`Metrics::global`].
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Installs the process's meter provider (also as OpenTelemetry's global one) and returns it;
/// a provider installed before, or made by [`Metrics::global`], is returned as it is, so this
/// comes first in a process (`telemetry::init` calls it). `service_name` names the process in
/// `target_info` and on OTLP.
///
/// # Errors
/// The OTLP exporter could not be built from its endpoint.
pub fn install(settings: &Settings, service_name: &str) -> anyhow::Result<&'static Metrics> {
    if let Some(metrics) = METRICS.get() {
        return Ok(metrics);
    }
    let metrics = if settings.telemetry.metrics {
        Metrics::build(settings.otlp_endpoint.as_deref(), service_name)?
    } else {
        Metrics::off()
    };
    Ok(METRICS.get_or_init(|| metrics.made_global()))
}

impl Metrics {
    /// The process's metrics: those [`install`]ed, or, in a process that installed none (a test),
    /// a provider with the Prometheus reader alone.
    pub fn global() -> &'static Metrics {
        METRICS.get_or_init(|| {
            Self::with_prometheus(Self::resource("agora"))
                .build()
                .made_global()
        })
    }

    /// Metrics that measure nothing: every instrument is a no-op, and [`Metrics::render`]
    /// says metrics are off.
    pub fn off() -> Self {
        Self { on: None }
    }

    /// Whether this provider measures (metrics are not off).
    pub fn is_on(&self) -> bool {
        self.on.is_some()
    }

    /// `self`, set as OpenTelemetry's global provider when it measures.
    fn made_global(self) -> Self {
        if let Some(on) = &self.on {
            opentelemetry::global::set_meter_provider(on.provider.clone());
        }
        self
    }

    /// A provider of its own, not the process's: for tests that count exactly what one server
    /// recorded.
    pub fn private() -> Self {
        Self::with_prometheus(Self::resource("agora")).build()
    }

    fn build(otlp_endpoint: Option<&str>, service_name: &str) -> anyhow::Result<Self> {
        let mut builder = Self::with_prometheus(Self::resource(service_name));
        if let Some(endpoint) = otlp_endpoint {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .with_context(|| format!("building the OTLP metric exporter for {endpoint}"))?;
            builder.provider = builder.provider.with_periodic_exporter(exporter);
        }
        Ok(builder.build())
    }

    fn resource(service_name: &str) -> Resource {
        Resource::builder()
            .with_service_name(service_name.to_owned())
            .build()
    }

    fn with_prometheus(resource: Resource) -> Builder {
        let prometheus = PrometheusExporter::builder().build();
        Builder {
            provider: SdkMeterProvider::builder()
                .with_resource(resource)
                .with_reader(prometheus.clone()),
            prometheus,
        }
    }

    /// Agora's meter, for its instruments (no-op ones when metrics are off).
    pub fn meter(&self) -> Meter {
        match &self.on {
            Some(on) => on.provider.meter(SCOPE),
            None => Meter::new(Arc::new(Off)),
        }
    }

    /// Everything recorded so far, in the Prometheus text format (version 0.0.4).
    ///
    /// # Errors
    /// The provider could not be read (it was shut down).
    pub fn render(&self) -> std::io::Result<String> {
        let Some(on) = &self.on else {
            return Ok(OFF_TEXT.to_owned());
        };
        let mut text = Vec::new();
        on.prometheus.export(&mut text)?;
        String::from_utf8(text).map_err(std::io::Error::other)
    }

    /// Sends what OTLP has not sent yet (at exit; a no-op without OTLP).
    pub fn flush(&self) {
        if let Some(on) = &self.on
            && let Err(error) = on.provider.force_flush()
        {
            tracing::warn!(%error, "flushing metrics failed");
        }
    }
}

/// A set of instruments made once per process, on first use, from the process's meter: each
/// service keeps its own in a `static`.
///
/// ```
/// use agora_platform::metrics::{Instruments, counter};
/// use opentelemetry::metrics::Counter;
///
/// struct Sweeps {
///     done: Counter<u64>,
/// }
///
/// static SWEEPS: Instruments<Sweeps> = Instruments::new(|meter| Sweeps {
///     done: counter(meter, "agora.example.sweeps", "Sweeps done"),
/// });
///
/// SWEEPS.get().done.add(1, &[]);
/// ```
#[derive(Debug)]
pub struct Instruments<T> {
    made: OnceLock<T>,
    make: fn(&Meter) -> T,
}

impl<T> Instruments<T> {
    /// Instruments that `make` builds on first use.
    pub const fn new(make: fn(&Meter) -> T) -> Self {
        Self {
            made: OnceLock::new(),
            make,
        }
    }

    /// The instruments, made now if this is their first use.
    pub fn get(&self) -> &T {
        self.made
            .get_or_init(|| (self.make)(&Metrics::global().meter()))
    }
}

/// A counter named `name` (an OpenTelemetry name: `agora.orders`), described.
pub fn counter(meter: &Meter, name: &'static str, description: &'static str) -> Counter<u64> {
    meter
        .u64_counter(name)
        .with_description(description)
        .build()
}

/// A histogram of seconds named `name`, in the [`DURATION_BUCKETS`], described.
pub fn seconds(meter: &Meter, name: &'static str, description: &'static str) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build()
}

/// A gauge of whole numbers named `name`, described.
pub fn gauge(meter: &Meter, name: &'static str, description: &'static str) -> Gauge<u64> {
    meter.u64_gauge(name).with_description(description).build()
}

/// A provider being built, with its Prometheus reader.
struct Builder {
    provider: opentelemetry_sdk::metrics::MeterProviderBuilder,
    prometheus: PrometheusExporter,
}

impl Builder {
    /// The provider, measuring the process (CPU, memory, descriptors, runtime) from the start.
    fn build(self) -> Metrics {
        let provider = self.provider.build();
        process::observe(&provider.meter(SCOPE));
        Metrics {
            on: Some(On {
                provider,
                prometheus: self.prometheus,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_is_installed_once_and_shared_by_every_later_caller() {
        let first = install(&Settings::default(), "first").expect("installed");
        let second = install(&Settings::default(), "second").expect("installed");
        assert!(std::ptr::eq(first, second));
        assert!(std::ptr::eq(first, Metrics::global()));
    }
}
