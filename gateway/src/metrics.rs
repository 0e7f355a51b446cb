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
            .chain(crate::console::PATHS)
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

#[cfg(test)]
mod tests {
    use agora_platform::metrics::{Metrics, exposition};
    use tower::{Layer as _, ServiceExt as _};

    use super::*;
    use crate::routes::Routes;

    const COUNT: &str = "http_server_request_duration_seconds_count";

    /// Every request the edge is asked, timed as the edge times it: the stand-in behind the
    /// layer binds REST routes as the edge does and answers 200 when one matched, else 404.
    async fn scrape(requests: Vec<Request>) -> Vec<exposition::Sample> {
        let pool = DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("decodes");
        let routes = Arc::new(Routes::build(&pool).expect("routes"));
        let metrics = Metrics::private();
        let edge = EdgeMetricsLayer::new(&metrics.meter(), &pool).layer(tower::service_fn(
            move |mut request: Request| {
                let routes = routes.clone();
                async move {
                    crate::app::bind(&routes, &mut request);
                    let found = request
                        .extensions()
                        .get::<crate::rules::Binding>()
                        .is_some();
                    let mut response = Response::new(Body::empty());
                    if !found {
                        *response.status_mut() = http::StatusCode::NOT_FOUND;
                    }
                    Ok::<_, Infallible>(response)
                }
            },
        ));
        for request in requests {
            let Ok(response) = edge.clone().oneshot(request).await;
            drop(response);
        }
        exposition::parse(&metrics.render().expect("rendered")).expect("parsed")
    }

    fn request(method: &str, path: &str, content_type: Option<&str>) -> Request {
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            builder = builder.header(http::header::CONTENT_TYPE, content_type);
        }
        builder.body(Body::empty()).expect("a request")
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template_method_status_and_protocol_never_by_raw_path() {
        let samples = scrape(vec![
            request("GET", "/v1/products/a", None),
            request("GET", "/v1/products/b", None),
            request("GET", "/v1/no/such/route", None),
            request("BREW", "/v1/products/c", None),
            request("GET", "/readyz", None),
            request(
                "POST",
                "/agora.product.v1.ProductService/GetProduct",
                Some("application/grpc"),
            ),
            request(
                "POST",
                "/agora.product.v1.ProductService/GetProduct",
                Some("application/grpc-web+proto"),
            ),
            request("POST", "/no.Such/Method", Some("application/grpc")),
        ])
        .await;
        let count = |labels: &[(&str, &str)]| {
            let found = exposition::matching(&samples, COUNT, labels);
            assert_eq!(found.len(), 1, "{labels:?}: {samples:?}");
            found[0].value
        };
        let rest = ("agora_edge_protocol", "rest");
        let get = ("http_request_method", "GET");
        assert_eq!(
            count(&[("http_route", "/v1/products/{product_id}"), get, rest]),
            2.0
        );
        assert_eq!(
            count(&[
                ("http_route", "_OTHER"),
                get,
                ("http_response_status_code", "404")
            ]),
            1.0
        );
        assert_eq!(
            count(&[("http_route", "_OTHER"), ("http_request_method", "_OTHER")]),
            1.0,
            "a made-up method is not a value of its own"
        );
        assert_eq!(count(&[("http_route", "/readyz"), rest]), 1.0);
        let get_product = ("http_route", "/agora.product.v1.ProductService/GetProduct");
        assert_eq!(count(&[get_product, ("agora_edge_protocol", "grpc")]), 1.0);
        assert_eq!(
            count(&[get_product, ("agora_edge_protocol", "grpc-web")]),
            1.0
        );
        assert_eq!(
            count(&[("http_route", "_OTHER"), ("agora_edge_protocol", "grpc")]),
            1.0
        );
        assert_eq!(exposition::matching(&samples, COUNT, &[]).len(), 7);
    }
}
