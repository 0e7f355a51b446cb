use std::convert::Infallible;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body::Frame;
use http_body_util::{BodyExt as _, StreamBody};
use tonic::Status;
use tower::ServiceExt as _;

use super::*;
use crate::metrics::{Metrics, exposition};

const PRODUCT: &str = "agora.product.v1.ProductService";
const COUNT: &str = "rpc_server_call_duration_seconds_count";

/// A server that answers by path: `/Ok` methods with a message and OK trailers, `/NotFound`
/// ones trailers-only, `/Stream` ones with a message and no end.
fn server() -> impl Service<
    http::Request<()>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone {
    tower::service_fn(|request: http::Request<()>| async move {
        let path = request.uri().path().to_owned();
        if path.ends_with("GetProduct") {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let frames: Vec<Result<Frame<Bytes>, Status>> = vec![
                Ok(Frame::data(Bytes::from_static(b"message"))),
                Ok(Frame::trailers(trailers)),
            ];
            Ok(http::Response::new(Body::new(StreamBody::new(
                futures::stream::iter(frames),
            ))))
        } else if path.ends_with("ListProducts") {
            let frames =
                futures::stream::iter([Ok::<_, Status>(Frame::data(Bytes::from_static(b"first")))])
                    .chain(futures::stream::pending());
            Ok(http::Response::new(Body::new(StreamBody::new(frames))))
        } else {
            Ok(Status::not_found("no such thing").into_http())
        }
    })
}

async fn call(
    service: &mut impl Service<http::Request<()>, Response = http::Response<Body>, Error = Infallible>,
    path: &str,
) -> http::Response<Body> {
    let request = http::Request::builder()
        .uri(path)
        .body(())
        .expect("a request");
    service
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("answered")
}

#[tokio::test]
async fn each_call_is_counted_under_its_method_and_the_status_its_body_ended_with() {
    let metrics = Metrics::private();
    let mut service = RpcMetricsLayer::new(&metrics.meter(), &[PRODUCT]).layer(server());

    for _ in 0..3 {
        let response = call(&mut service, &format!("/{PRODUCT}/GetProduct")).await;
        response
            .into_body()
            .collect()
            .await
            .expect("the whole body");
    }
    for _ in 0..2 {
        let response = call(&mut service, &format!("/{PRODUCT}/UpdateProduct")).await;
        response
            .into_body()
            .collect()
            .await
            .expect("the whole body");
    }
    // A stream is recorded when it ends: here when the client drops it, as CANCELLED.
    let mut stream = call(&mut service, &format!("/{PRODUCT}/ListProducts"))
        .await
        .into_body();
    stream.frame().await.expect("a frame").expect("data");
    let before = exposition::parse(&metrics.render().expect("rendered")).expect("parsed");
    assert!(
        exposition::matching(&before, COUNT, &[("rpc_method", "ListProducts")]).is_empty(),
        "an open stream is not recorded yet"
    );
    drop(stream);
    // Neither a method of another service nor a made-up path names a series of its own.
    call(&mut service, "/agora.order.v1.OrderService/GetOrder").await;
    call(&mut service, "/scanner/../../etc/passwd").await;

    let samples = exposition::parse(&metrics.render().expect("rendered")).expect("parsed");
    let count = |service: &str, method: &str, code: &str| {
        let found = exposition::matching(
            &samples,
            COUNT,
            &[
                ("rpc_system", "grpc"),
                ("rpc_service", service),
                ("rpc_method", method),
                ("rpc_grpc_status_code", code),
            ],
        );
        assert!(found.len() <= 1, "{found:?}");
        found.first().map_or(0.0, |sample| sample.value)
    };
    assert_eq!(count(PRODUCT, "GetProduct", "0"), 3.0);
    assert_eq!(count(PRODUCT, "UpdateProduct", "5"), 2.0);
    assert_eq!(count(PRODUCT, "ListProducts", "1"), 1.0);
    assert_eq!(count(OTHER, OTHER, "5"), 2.0);
    assert_eq!(
        exposition::matching(&samples, COUNT, &[]).len(),
        4,
        "no other series: {samples:?}"
    );
}

#[test]
fn health_and_reflection_are_known_methods_of_every_server() {
    let metrics = Metrics::private();
    let layer = RpcMetricsLayer::new(
        &metrics.meter(),
        &[
            PRODUCT,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ],
    );
    for path in [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/agora.product.v1.ProductService/ListCategories",
    ] {
        let attributes = layer.attributes(path);
        assert_ne!(
            attributes[2].value.as_str(),
            OTHER,
            "{path} is a known method"
        );
    }
}
