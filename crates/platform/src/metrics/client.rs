//! [`ClientMetrics`]: what the clients of the mesh record about their upstreams.
//!
//! - `rpc.client.call.duration` (histogram, s): every call a service or the edge sends
//!   upstream, from the moment it is sent to the end of its answer's body (a stream to its
//!   status), by `rpc.system`, `rpc.service`, `rpc.method` (bounded by the contracts' method
//!   table, `_OTHER` otherwise) and `rpc.grpc.status_code`. A call that got no answer is
//!   recorded with the status in its error, else UNAVAILABLE (14); one its caller stopped
//!   waiting for (a deadline of its own) as CANCELLED (1).
//! - `agora.client.retries` (counter): retries taken, and retries the budget refused, by
//!   `rpc.service` and `agora.retry.outcome`.
//! - `agora.client.breaker.state` (gauge: 0 closed, 1 half-open, 2 open) and
//!   `agora.client.breaker.transitions` (counter, by the state entered), by `rpc.service`.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge, Histogram, Meter},
};
use tonic::body::Body;
use tower::{Layer, Service};

use super::{DURATION_BUCKETS, Metrics, OTHER, Recorder, Timed, rpc};
use crate::config::ServiceKind;

/// The gRPC status recorded for a call that got no answer and no status.
const UNAVAILABLE: i64 = 14;

/// Whether a retry was sent, or refused by the retry budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The call was sent again.
    Taken,
    /// The budget said no: the call failed with its last status instead.
    Refused,
}

/// The state of a circuit breaker, as `agora.client.breaker.state` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through (0).
    Closed,
    /// One probe is out (1).
    HalfOpen,
    /// Calls fail fast (2).
    Open,
}

impl BreakerState {
    /// The gauge's value.
    pub const fn value(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    /// The value of `agora.breaker.state` for a transition into this state.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// The clients' instruments. Cheap to clone; a [`tower::Layer`] that times every call of the
/// service it wraps ([`Metered`]).
#[derive(Debug, Clone)]
pub struct ClientMetrics {
    duration: Histogram<f64>,
    retries: Counter<u64>,
    breaker_state: Gauge<i64>,
    breaker_transitions: Counter<u64>,
    /// The attributes of each method of the contracts, health and reflection, by its path.
    methods: Arc<HashMap<String, Vec<KeyValue>>>,
    /// The attributes of any other path.
    other: Arc<Vec<KeyValue>>,
    /// False when metrics are off: calls then pass untimed.
    on: bool,
}

/// The instruments of the process's provider, made once.
static GLOBAL: OnceLock<ClientMetrics> = OnceLock::new();

impl ClientMetrics {
    /// The instruments of `meter`.
    pub fn new(meter: &Meter) -> Self {
        Self {
            duration: meter
                .f64_histogram("rpc.client.call.duration")
                .with_unit("s")
                .with_description("How long each gRPC call sent upstream took to be answered")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            retries: meter
                .u64_counter("agora.client.retries")
                .with_description(
                    "Retries of calls to an upstream: taken, or refused by the budget",
                )
                .build(),
            breaker_state: meter
                .i64_gauge("agora.client.breaker.state")
                .with_description("The upstream's circuit breaker: 0 closed, 1 half-open, 2 open")
                .build(),
            breaker_transitions: meter
                .u64_counter("agora.client.breaker.transitions")
                .with_description("Changes of an upstream's circuit breaker, by the state entered")
                .build(),
            methods: Arc::new(rpc::method_table(|_| true)),
            other: Arc::new(rpc::attributes(OTHER, OTHER)),
            on: true,
        }
    }

    /// The instruments of the process's provider ([`Metrics::global`]).
    pub fn global() -> &'static Self {
        GLOBAL.get_or_init(|| {
            let metrics = Metrics::global();
            Self {
                on: metrics.is_on(),
                ..Self::new(&metrics.meter())
            }
        })
    }

    /// Counts a retry of a call to `upstream` (a service's name, `inventory`, or a gRPC
    /// service's full name).
    pub fn retry(&self, upstream: &str, outcome: RetryOutcome) {
        let outcome = match outcome {
            RetryOutcome::Taken => "taken",
            RetryOutcome::Refused => "refused",
        };
        self.retries.add(
            1,
            &[
                KeyValue::new("rpc.service", rpc_service(upstream)),
                KeyValue::new("agora.retry.outcome", outcome),
            ],
        );
    }

    /// Sets the state of `upstream`'s breaker; `entered` counts a transition into it.
    pub fn breaker(&self, upstream: &str, state: BreakerState, entered: bool) {
        let service = KeyValue::new("rpc.service", rpc_service(upstream));
        self.breaker_state
            .record(state.value(), std::slice::from_ref(&service));
        if entered {
            self.breaker_transitions.add(
                1,
                &[service, KeyValue::new("agora.breaker.state", state.name())],
            );
        }
    }

    /// Times `call`, a call sent to `path` (`/agora.product.v1.ProductService/GetProduct`), to
    /// the end of its answer's body.
    pub fn time<F, E>(
        &self,
        path: &str,
        call: F,
    ) -> impl Future<Output = Result<http::Response<Body>, E>> + use<F, E>
    where
        F: Future<Output = Result<http::Response<Body>, E>>,
        E: CallError,
    {
        finish(self.start(path), call)
    }

    /// The recorder of a call to `path` sent now (none when metrics are off).
    fn start(&self, path: &str) -> Option<Recorder> {
        self.on.then(|| {
            let attributes = self.methods.get(path).unwrap_or(&self.other).clone();
            Recorder::grpc_pending(self.duration.clone(), attributes, Instant::now())
        })
    }
}

/// `call`, recorded by `recorder` when its answer's body ends or it fails.
async fn finish<F, E>(recorder: Option<Recorder>, call: F) -> Result<http::Response<Body>, E>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
    E: CallError,
{
    let Some(mut recorder) = recorder else {
        return call.await;
    };
    match call.await {
        Ok(response) => {
            recorder.answered(response.headers());
            Ok(response.map(|body| Body::new(Timed::new(body, recorder))))
        }
        Err(error) => {
            recorder.failed(error.grpc_code());
            Err(error)
        }
    }
}

/// The gRPC service's full name of `upstream`: a service of the mesh by its short name
/// (`inventory`), or the name as given.
fn rpc_service(upstream: &str) -> String {
    ServiceKind::ALL
        .iter()
        .find(|kind| kind.name() == upstream)
        .map_or(upstream, |kind| kind.grpc_name())
        .to_owned()
}

/// An error of a call that got no answer, and the gRPC status it is recorded with.
pub trait CallError {
    /// The status code in the error's chain, else UNAVAILABLE (14).
    fn grpc_code(&self) -> i64;
}

fn code_in(error: &(dyn std::error::Error + 'static)) -> i64 {
    std::iter::successors(Some(error), |error| error.source())
        .find_map(|error| error.downcast_ref::<tonic::Status>())
        .map_or(UNAVAILABLE, |status| i64::from(i32::from(status.code())))
}

impl CallError for tower::BoxError {
    fn grpc_code(&self) -> i64 {
        code_in(self.as_ref())
    }
}

impl CallError for tonic::transport::Error {
    fn grpc_code(&self) -> i64 {
        code_in(self)
    }
}

impl CallError for tonic::Status {
    fn grpc_code(&self) -> i64 {
        i64::from(i32::from(self.code()))
    }
}

impl<S> Layer<S> for ClientMetrics {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            metrics: self.clone(),
        }
    }
}

/// A client (a channel) whose every call is timed in `rpc.client.call.duration`.
#[derive(Debug, Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: ClientMetrics,
}

impl<S> Metered<S> {
    /// `inner` timed by the process's instruments ([`ClientMetrics::global`]).
    pub fn new(inner: S) -> Self {
        ClientMetrics::global().layer(inner)
    }
}

impl<S, B> Service<http::Request<B>> for Metered<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: CallError + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let recorder = self.metrics.start(request.uri().path());
        Box::pin(finish(recorder, self.inner.call(request)))
    }
}

#[cfg(test)]
mod tests;
