//! `http.server.request.duration` at the edge: every request timed to the end of its answer
//! (a REST stream to its last line), by route, method, status and protocol.
//!
//! Every attribute is bounded. `http.route` is the route's template from its `google.api.http`
//! rule (`/v1/products/{product_id}`), never the path asked for; for gRPC and gRPC-Web it is
//! the method's path (`/agora.product.v1.ProductService/GetProduct`); for the probes and
//! documents it is their fixed path; anything else, a path no route matches included, is
//! `_OTHER`. `http.request.method` is one of the standard methods or `_OTHER`.
//! `agora.edge.protocol` says what came in: `rest`, `grpc` or `grpc-web` (no semantic convention
//! names it).

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use agora_platform::metrics::{DURATION_BUCKETS, OTHER, Recorder, Timed};
use axum::{body::Body, extract::Request, response::Response};
use futures::future::BoxFuture;
use opentelemetry::{
    KeyValue,
    metrics::{Histogram, Meter},
};
use prost_reflect::DescriptorPool;

use crate::routes::Route;

/// The methods that are their own value of `http.request.method`.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

/// The edge's own gRPC methods, besides those of the services it routes.
const OWN_GRPC_METHODS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Times every request of the edge. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EdgeMetricsLayer {
    duration: Histogram<f64>,
    /// Every gRPC method the edge routes, by path.
    grpc: Arc<HashMap<String, Arc<str>>>,
}

impl EdgeMetricsLayer {
    /// Records into `meter` the requests of an edge routing the services of `pool`.
    pub fn new(meter: &Meter, pool: &DescriptorPool) -> Self {
        let duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("How long the edge took to answer each HTTP request")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let mut grpc = HashMap::new();
        for service in pool.services() {
            for method in service.methods() {
                let path = format!("/{}/{}", service.full_name(), method.name());
                grpc.insert(path.clone(), Arc::from(path));
            }
        }
        for path in OWN_GRPC_METHODS {
            grpc.insert(path.to_owned(), Arc::from(path));
        }
        Self {
            duration,
            grpc: Arc::new(grpc),
        }
    }
}

impl<S> tower::Layer<S> for EdgeMetricsLayer {
    type Service = EdgeMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

/// The edge with every request timed ([`EdgeMetricsLayer`]).
#[derive(Debug, Clone)]
pub struct EdgeMetrics<S> {
    inner: S,
    layer: EdgeMetricsLayer,
}

/// Where the edge notes the route a REST request matched, for its metrics.
#[derive(Debug, Clone, Default)]
struct MatchedRoute(Arc<OnceLock<Arc<Route>>>);

/// Notes `route` as the one `request` matched (when the request is being timed).
pub(crate) fn route_matched(request: &Request, route: &Arc<Route>) {
    if let Some(slot) = request.extensions().get::<MatchedRoute>() {
        let _ = slot.0.set(route.clone());
    }
}

/// What came in: a value of `agora.edge.protocol`.
fn protocol(request: &Request) -> &'static str {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(http::HeaderValue::as_bytes)
        .unwrap_or_default();
    if content_type.starts_with(b"application/grpc-web") {
        "grpc-web"
    } else if content_type.starts_with(b"application/grpc") {
        "grpc"
    } else {
        "rest"
    }
}

impl<S> tower::Service<Request> for EdgeMetrics<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let start = Instant::now();
        let protocol = protocol(&request);
        let method = METHODS
            .into_iter()
            .find(|known| request.method().as_str() == *known)
            .unwrap_or(OTHER);
        let path = request.uri().path();
        let fixed = crate::health::PATHS
            .into_iter()
            .chain(crate::openapi::PATHS)
            .find(|fixed| *fixed == path);
        let mut route: Option<KeyValue> = match (protocol, fixed) {
            ("rest", Some(fixed)) => Some(KeyValue::new("http.route", fixed)),
            ("rest", None) => None,
            _ => Some(KeyValue::new(
                "http.route",
                self.layer
                    .grpc
                    .get(path)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(OTHER)),
            )),
        };
        let slot = MatchedRoute::default();
        if route.is_none() {
            request.extensions_mut().insert(slot.clone());
        }
        let histogram = self.layer.duration.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            let route = route.take().unwrap_or_else(|| {
                let template = slot.0.get().map_or(OTHER, |r| r.binding.template.as_str());
                KeyValue::new("http.route", Arc::<str>::from(template))
            });
            let attributes = vec![
                route,
                KeyValue::new("http.request.method", method),
                KeyValue::new(
                    "http.response.status_code",
                    i64::from(response.status().as_u16()),
                ),
                KeyValue::new("agora.edge.protocol", protocol),
            ];
            let recorder = Recorder::new(histogram, attributes, start);
            Ok(response.map(|body| Body::new(Timed::new(body, recorder))))
        })
    }
}
