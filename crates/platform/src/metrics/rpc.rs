//! [`RpcMetricsLayer`]: `rpc.server.call.duration` for every call a gRPC server answers.
//!
//! Each call is recorded once, when its response body ends: a unary call after its message
//! and trailers, a server stream when its last message and status have gone (so a watch that
//! stays open for an hour is one sample of an hour), a stream the client drops as CANCELLED.
//! Its attributes are `rpc.system` = `grpc`, `rpc.service`, `rpc.method` and
//! `rpc.grpc.status_code` (the numeric status). Service and method come from the server's own
//! method table, never from the request: a path that is not a method of this server is
//! recorded as `_OTHER` for both, so a scanner cannot grow the series.

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use opentelemetry::{
    KeyValue,
    metrics::{Histogram, Meter},
};
use prost_reflect::DescriptorPool;
use tonic::body::Body;
use tower::{Layer, Service};

use super::{DURATION_BUCKETS, Recorder, Timed};

/// The value of `rpc.service` and `rpc.method` for a path that is no method of the server.
pub const OTHER: &str = "_OTHER";

/// Records `rpc.server.call.duration` for the services of one server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    duration: Histogram<f64>,
    /// The attributes of each known method, by its path (`/agora.product.v1.ProductService/GetProduct`).
    methods: Arc<HashMap<String, Vec<KeyValue>>>,
    /// The attributes of any other path.
    other: Arc<Vec<KeyValue>>,
}

impl RpcMetricsLayer {
    /// Records into `meter` the calls of a server serving `services` (full names, such as
    /// `grpc.health.v1.Health`); their methods are read from the contracts and from the health
    /// and reflection descriptors.
    pub fn new(meter: &Meter, services: &[&str]) -> Self {
        let duration = meter
            .f64_histogram("rpc.server.call.duration")
            .with_unit("s")
            .with_description("How long the server took to answer each gRPC call")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let methods = method_table(|name| services.contains(&name));
        Self {
            duration,
            methods: Arc::new(methods),
            other: Arc::new(attributes(OTHER, OTHER)),
        }
    }

    fn attributes(&self, path: &str) -> Vec<KeyValue> {
        self.methods.get(path).unwrap_or(&self.other).clone()
    }
}

/// The attributes (`rpc.system`, `rpc.service`, `rpc.method`) of every method of the services
/// `wanted` picks among the contracts, health and reflection v1 and v1alpha, by its path
/// (`/agora.product.v1.ProductService/GetProduct`).
pub(super) fn method_table(wanted: impl Fn(&str) -> bool) -> HashMap<String, Vec<KeyValue>> {
    let sets = [
        agora_contracts::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = HashMap::new();
    for set in sets {
        let Ok(pool) = DescriptorPool::decode(set) else {
            tracing::warn!("a built-in descriptor set does not decode");
            continue;
        };
        for service in pool.services().filter(|s| wanted(s.full_name())) {
            for method in service.methods() {
                methods.insert(
                    format!("/{}/{}", service.full_name(), method.name()),
                    attributes(service.full_name(), method.name()),
                );
            }
        }
    }
    methods
}

pub(super) fn attributes(service: &str, method: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("rpc.system", "grpc"),
        KeyValue::new("rpc.service", Arc::<str>::from(service)),
        KeyValue::new("rpc.method", Arc::<str>::from(method)),
    ]
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// A server's service with every call timed ([`RpcMetricsLayer`]).
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    layer: RpcMetricsLayer,
}

impl<S, B> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let start = Instant::now();
        let attributes = self.layer.attributes(request.uri().path());
        let histogram = self.layer.duration.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            let recorder = Recorder::grpc(histogram, attributes, start, response.headers());
            Ok(response.map(|body| Body::new(Timed::new(body, recorder))))
        })
    }
}

#[cfg(test)]
mod tests;
