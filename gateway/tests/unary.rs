//! Unary transcoding end to end: a REST request matched, transcoded, sent to the real product
//! service over a dynamic channel, and its answer written as JSON.

use std::time::{Duration, Instant};

use agora_gateway::routes::{Lookup, Routes};
use agora_gateway::transcode::{request::request_message, response::response_json};
use agora_gateway::upstream::Upstream;
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh, on_both_backends};
use prost_reflect::DescriptorPool;

fn routes() -> Routes {
    let pool =
        DescriptorPool::decode(agora_contracts::FILE_DESCRIPTOR_SET).expect("the contracts decode");
    Routes::build(&pool).expect("routes build")
}

async fn listing_products_goes_through_the_product_service_and_back_as_json(backend: TestBackend) {
    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    mesh.spawn(
        ServiceKind::Product,
        |config, listener, shutdown| async move {
            agora_product::serve(&config, listener, shutdown).await
        },
    )
    .await;
    let upstream = Upstream::lazy(
        &format!("http://{}", mesh.addr(ServiceKind::Product)),
        Duration::from_secs(1),
    )
    .expect("a valid URL");
    let routes = routes();
    let Lookup::Found(route, values) = routes.lookup(&http::Method::GET, "/v1/products") else {
        panic!("GET /v1/products has a route");
    };
    let request =
        request_message(&route.binding, &values, Some("page_size=2"), b"").expect("transcodes");
    let response = upstream
        .unary(&route.binding.method, tonic::Request::new(request))
        .await
        .expect("the product service answers");
    let body: serde_json::Value = serde_json::from_slice(
        &response_json(response.get_ref(), route.binding.response_body.as_deref())
            .expect("serializes"),
    )
    .expect("JSON");
    assert!(body["products"].is_array(), "{body}");
    assert!(
        body.get("nextPageToken").is_some(),
        "unpopulated fields are emitted: {body}"
    );
}

on_both_backends!(listing_products_goes_through_the_product_service_and_back_as_json);

#[tokio::test]
async fn an_upstream_that_is_down_fails_quickly_with_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("bound").port()
    };
    let upstream = Upstream::lazy(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1))
        .expect("a valid URL");
    let routes = routes();
    let Lookup::Found(route, values) = routes.lookup(&http::Method::GET, "/v1/products/p-1") else {
        panic!("GET /v1/products/{{id}} has a route");
    };
    let request = request_message(&route.binding, &values, None, b"").expect("transcodes");
    let started = Instant::now();
    let status = upstream
        .unary(&route.binding.method, tonic::Request::new(request))
        .await
        .expect_err("nothing listens");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
