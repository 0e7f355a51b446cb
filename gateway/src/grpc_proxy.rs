//! Native gRPC and gRPC-Web at the edge: one address serves browsers, REST clients and gRPC
//! clients. A call in `application/grpc*` is not transcoded but passed, bodies streaming both
//! ways, to the service that owns its path `/<package.Service>/<Method>`; a gRPC-Web call is
//! translated to native gRPC on the way in and back on the way out. Server reflection is
//! answered by the edge itself and lists every service it routes, so `grpcurl` and `buf curl`
//! work against the edge as against any one service.
//!
//! Access control and rate limits run as layers in front of [`GrpcProxy::handle`]; nothing here
//! repeats them.
//!
//! # Layout
//! - this file: [`GrpcProxy`]: picks the edge's reflection, an upstream or UNIMPLEMENTED by the
//!   path's service, and puts gRPC-Web calls through `tonic_web`.
//! - `forward`: one call sent down an upstream's channel (hop-by-hop headers dropped, the
//!   client's deadline kept) and UNAVAILABLE when the upstream cannot be reached.
//! - `reflection`: the edge's `grpc.reflection.v1` and `v1alpha` services.
//! - `web`: which gRPC-Web content types are served, and the encoding of the answer.

mod forward;
mod reflection;
mod web;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use agora_platform::client::Metered;
use axum::extract::Request;
use axum::response::Response;
use prost_reflect::DescriptorPool;
use tonic::Status;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::Channel;
use tower::{Layer as _, ServiceExt as _};

use crate::upstream::Upstream;

/// Answers the gRPC and gRPC-Web calls that reach the edge. Cheap to clone: the tables are
/// shared.
#[derive(Debug, Clone)]
pub struct GrpcProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The channel of each gRPC service by full name: the path of a call names its service.
    upstreams: HashMap<String, Metered<Channel>>,
    /// The edge's own reflection services, v1 and v1alpha, built once at start-up.
    reflection: Routes,
}

impl GrpcProxy {
    /// A proxy over `upstreams` (the channel per gRPC service full name) whose reflection
    /// describes every service of `pool` that has an upstream.
    ///
    /// # Errors
    /// Descriptors that the reflection service cannot index (a file or symbol without a name).
    pub fn new(
        upstreams: HashMap<String, Upstream>,
        pool: &DescriptorPool,
    ) -> anyhow::Result<Self> {
        let reflection = reflection::routes(pool, |service| upstreams.contains_key(service))?;
        let upstreams = upstreams
            .into_iter()
            .map(|(service, upstream)| (service, upstream.metered()))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                upstreams,
                reflection,
            }),
        })
    }

    /// Answers one gRPC or gRPC-Web request (the caller has checked the content-type). Errors
    /// are gRPC statuses (HTTP 200 with `grpc-status`), never a bare HTTP error.
    pub async fn handle(&self, mut request: Request) -> Response {
        crate::client_address::ensure_decided(&mut request);
        let proxy = self.clone();
        // The native call, whichever wire format the client used.
        let native = tower::service_fn(move |request: http::Request<Body>| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.dispatch(request).await) }
        });
        let answer = match web::kind(request.headers()) {
            web::Kind::Native => native.oneshot(request.map(Body::new)).await,
            web::Kind::Web => {
                let request = web::answer_in_the_callers_encoding(request);
                tonic_web::GrpcWebLayer::new()
                    .layer(native)
                    .oneshot(request)
                    .await
            }
            web::Kind::Unsupported(content_type) => {
                let status = Status::unimplemented(format!(
                    "gRPC-Web content type {content_type} is not served here; use \
                     application/grpc-web+proto or application/grpc-web-text"
                ));
                let mut response = status.into_http::<Body>();
                if let Some(value) = request.headers().get(http::header::CONTENT_TYPE) {
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, value.clone());
                }
                Ok(response)
            }
        };
        let Ok(response) = answer;
        response.map(axum::body::Body::new)
    }

    /// Sends a native gRPC call to whoever serves its path's service.
    async fn dispatch(&self, request: http::Request<Body>) -> http::Response<Body> {
        let Some(service) = service_of(request.uri().path()) else {
            return Status::unimplemented("a gRPC path is /<package.Service>/<Method>").into_http();
        };
        if reflection::SERVICES.contains(&service) {
            let Ok(response) = self.inner.reflection.clone().oneshot(request).await;
            return response;
        }
        match self.inner.upstreams.get(service) {
            Some(channel) => forward::call(channel.clone(), request).await,
            None => {
                Status::unimplemented(format!("service {service} is not served here")).into_http()
            }
        }
    }
}

/// The service of a gRPC path `/<package.Service>/<Method>`.
pub(crate) fn service_of(path: &str) -> Option<&str> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/')).then_some(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_the_first_segment_of_a_two_segment_path() {
        assert_eq!(
            service_of("/agora.product.v1.ProductService/GetProduct"),
            Some("agora.product.v1.ProductService")
        );
        assert_eq!(service_of("/agora.product.v1.ProductService/"), None);
        assert_eq!(service_of("//GetProduct"), None);
        assert_eq!(service_of("/only-one-segment"), None);
        assert_eq!(service_of("/a/b/c"), None);
        assert_eq!(service_of(""), None);
    }
}
