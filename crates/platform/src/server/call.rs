//! What wraps every call: the request id, deadline and trace span of [`CallService`], the
//! UNAVAILABLE answer while the service starts ([`Starting`]), and the layers' errors as statuses.

use std::{
    convert::Infallible,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::HeaderValue;
use opentelemetry::{KeyValue, metrics::Counter};
use tonic::{Status, body::Body, server::NamedService};
use tower::{Service, ServiceExt};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::context::{CallContext, REQUEST_ID, extract_trace_context};

/// Aborts a task when dropped: the health port's server goes with the function that started it.
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The service's slot while its store opens: UNAVAILABLE until filled.
#[derive(Clone)]
pub(super) struct Starting<S> {
    pub(super) slot: Arc<OnceLock<S>>,
}

impl<S: NamedService> NamedService for Starting<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Starting<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match self.slot.get() {
            Some(service) => Box::pin(service.clone().oneshot(request)),
            None => Box::pin(async {
                Ok(Status::unavailable("the service is starting; retry shortly").into_http())
            }),
        }
    }
}

/// Per-call context, span and error mapping (the outermost layer).
pub(super) struct CallService<S> {
    pub(super) inner: S,
    /// A readiness error of the layers below, answered as a status by the next call (this
    /// layer itself is always ready, so that every failure reaches the client as gRPC).
    pub(super) not_ready: Option<Status>,
    /// Counts the calls shed over the concurrency limit.
    pub(super) shed: Shed,
}

impl<S: Clone> Clone for CallService<S> {
    fn clone(&self) -> Self {
        // A readiness error belongs to the instance that was polled, not to its clones.
        Self {
            inner: self.inner.clone(),
            not_ready: None,
            shed: self.shed.clone(),
        }
    }
}

/// `agora.server.shed` of one server: the calls refused over its concurrency limit.
#[derive(Clone)]
pub(super) struct Shed {
    counter: Counter<u64>,
    /// `rpc.service`: the service the server serves.
    attributes: Arc<[KeyValue; 1]>,
}

impl Shed {
    /// The counter of the server of `service` on `meter`.
    pub(super) fn new(meter: &opentelemetry::metrics::Meter, service: &'static str) -> Self {
        Self {
            counter: meter
                .u64_counter("agora.server.shed")
                .with_description("Calls refused at once because the server was at its limit")
                .build(),
            attributes: Arc::new([KeyValue::new("rpc.service", service)]),
        }
    }

    /// Counts `error` if it is a call shed by the load-shed layer.
    fn count(&self, error: &tower::BoxError) {
        if error.is::<tower::load_shed::error::Overloaded>() {
            self.counter.add(1, self.attributes.as_slice());
        }
    }
}

impl<S> Service<http::Request<Body>> for CallService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                self.not_ready = Some(status_of(error.into()));
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Some(status) = self.not_ready.take() {
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let call = CallContext::from_headers(request.headers());
        let span = tracing::info_span!(
            "grpc",
            otel.name = request.uri().path(),
            otel.kind = "server",
            rpc.system = "grpc",
            request_id = %call.request_id,
        );
        if let Err(error) = span.set_parent(extract_trace_context(request.headers())) {
            tracing::debug!(?error, "no trace context attached");
        }
        let request_id = HeaderValue::from_str(&call.request_id).ok();
        let shed = self.shed.clone();
        let future = call.clone().scope(async move {
            let response = match inner.call(request).await {
                Ok(response) => response,
                Err(error) => {
                    let error = error.into();
                    shed.count(&error);
                    status_of(error).into_http()
                }
            };
            Ok::<_, Infallible>(response)
        });
        Box::pin(
            async move {
                let mut response: http::Response<Body> = future.await?;
                if let Some(id) = request_id {
                    response.headers_mut().insert(REQUEST_ID, id);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The status for an error a layer raised.
fn status_of(error: tower::BoxError) -> Status {
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Status::unavailable("the server is overloaded; retry with backoff");
    }
    match Status::try_from_error(error) {
        Ok(status) => status,
        Err(error) => {
            tracing::error!(%error, "layer error");
            Status::internal("internal error")
        }
    }
}
