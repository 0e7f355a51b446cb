//! The shape's shedding, through a real server on a port of its own.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use agora_contracts::agora::product::v1::product_service_server::SERVICE_NAME as PRODUCT;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc};
use tonic::{Status, body::Body, server::NamedService};
use tower::{Service, ServiceExt as _};

use crate::{
    access::{AccessLayer, AccessPolicy, GrpcKeySource, Verifier},
    config::{Settings, TokenSettings},
    metrics::{Metrics, exposition},
};

/// A product server whose calls each wait for a permit of `gate`, saying on `entered` that they
/// arrived.
#[derive(Clone)]
struct Held {
    gate: Arc<Semaphore>,
    entered: mpsc::UnboundedSender<()>,
}

impl NamedService for Held {
    const NAME: &'static str = PRODUCT;
}

impl Service<http::Request<Body>> for Held {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<Body>) -> Self::Future {
        let gate = Arc::clone(&self.gate);
        let _ = self.entered.send(());
        Box::pin(async move {
            let _permit = gate.acquire().await;
            Ok(Status::not_found("no such product").into_http())
        })
    }
}

/// GetProduct of an empty message, as raw gRPC over `channel`; its `grpc-status`.
async fn get_product(channel: tonic::transport::Channel) -> Option<String> {
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("/{PRODUCT}/GetProduct"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::new(http_body_util::Full::new(
            bytes::Bytes::from_static(&[0, 0, 0, 0, 0]),
        )))
        .expect("a request");
    let response = channel.oneshot(request).await.expect("answered");
    let status = response.headers().get("grpc-status")?;
    Some(status.to_str().ok()?.to_owned())
}

/// Waits until the server's health says the product service is SERVING (its start-up done).
async fn serving(channel: tonic::transport::Channel) {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut health = HealthClient::new(channel);
    for _ in 0..100 {
        let request = HealthCheckRequest {
            service: PRODUCT.into(),
        };
        if health
            .check(request)
            .await
            .is_ok_and(|answer| answer.get_ref().status == 1)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never said SERVING");
}

fn shed_so_far() -> f64 {
    let text = Metrics::global().render().expect("rendered");
    let samples = exposition::parse(&text).expect("the text format");
    exposition::matching(
        &samples,
        "agora_server_shed_total",
        &[("rpc_service", PRODUCT)],
    )
    .first()
    .map_or(0.0, |sample| sample.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_concurrency_limit_is_shed_with_unavailable_and_counted_once() {
    let before = shed_so_far();
    let mut settings = Settings::default();
    settings.server.concurrency_limit = 1;
    let policy = AccessPolicy::from_descriptors(agora_contracts::FILE_DESCRIPTOR_SET)
        .expect("the contracts decode");
    // GetProduct is public: no token is asked for, so no key is ever fetched.
    let nowhere = crate::client::lazy_channel("http://127.0.0.1:1").expect("a valid URL");
    let verifier = Verifier::new(
        Arc::new(GrpcKeySource::new(nowhere)),
        &TokenSettings::default(),
    );
    let access = AccessLayer::new(Arc::new(policy), Arc::new(verifier));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let gate = Arc::new(Semaphore::new(0));
    let (entered, mut arrivals) = mpsc::unbounded_channel();
    let held = Held {
        gate: Arc::clone(&gate),
        entered,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        super::run(listener, &settings, access, async { Ok(held) }, async {
            let _ = stopped.await;
        })
        .await
    });

    let channel = crate::client::lazy_channel(&format!("http://{addr}")).expect("a valid URL");
    serving(channel.clone()).await;
    let first = tokio::spawn(get_product(channel.clone()));
    tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
        .await
        .expect("the first call reaches the handler");
    // The one slot is taken: the next call is refused at once.
    let shed = get_product(channel.clone()).await;
    assert_eq!(shed.as_deref(), Some("14"));
    gate.add_permits(1);
    assert_eq!(first.await.expect("joined").as_deref(), Some("5"));
    assert_eq!(shed_so_far() - before, 1.0);

    let _ = stop.send(());
    server.await.expect("joined").expect("served");
}
