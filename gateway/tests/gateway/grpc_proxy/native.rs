//! Generated tonic clients at the edge: calls reach the product service with their metadata and
//! come back with its statuses; unrouted services, unreachable and silent upstreams get gRPC
//! statuses of the edge's own.

use std::time::Instant;

use agora_contracts::agora::product::v1::product_service_client::ProductServiceClient;
use agora_testkit::{authed, on_both_backends};
use tonic::Code;
use tonic_types::StatusExt as _;
use tower::ServiceExt as _;

use super::*;

async fn a_grpc_client_at_the_edge_reaches_the_product_service_with_its_metadata(
    backend: TestBackend,
) {
    let Some((mesh, addr, _, admin)) = catalog(backend).await else {
        return;
    };
    let mut client = ProductServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("the edge speaks h2c");

    let created = client
        .create_product(authed(
            pb::CreateProductRequest {
                product: Some(product("EDGE-GRPC-1")),
            },
            &admin,
        ))
        .await
        .expect("the admin's authorization reaches the product service")
        .into_inner()
        .product
        .expect("a created product");

    let listing = pb::ListProductsRequest {
        page_size: 10,
        include_archived: true,
        ..Default::default()
    };
    let listed = client
        .list_products(with_request_id(
            authed(listing.clone(), &admin),
            "edge-grpc-list",
        ))
        .await
        .expect("the admin lists every product");
    assert_eq!(
        listed
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("edge-grpc-list"),
        "the product service saw the client's request id and sent it back"
    );
    assert!(
        listed.get_ref().products.iter().any(|p| p.id == created.id),
        "{:?}",
        listed.get_ref()
    );
    let anonymous = client
        .list_products(listing)
        .await
        .expect_err("archived products are for admins");
    assert_eq!(anonymous.code(), Code::PermissionDenied, "{anonymous:?}");

    let missing = uuid::Uuid::now_v7().to_string();
    let get = || {
        with_request_id(
            tonic::Request::new(pb::GetProductRequest {
                product_id: missing.clone(),
            }),
            "edge-grpc-missing",
        )
    };
    let through = client
        .get_product(get())
        .await
        .expect_err("no such product");
    let direct = ProductServiceClient::new(mesh.channel(ServiceKind::Product))
        .get_product(get())
        .await
        .expect_err("no such product");
    assert_eq!(through.code(), Code::NotFound, "{through:?}");
    assert_eq!(through.message(), direct.message());
    assert_eq!(
        through.details(),
        direct.details(),
        "details pass untouched"
    );
    let details = through.get_error_details();
    assert_eq!(
        details.resource_info().expect("ResourceInfo").resource_name,
        missing
    );
    assert_eq!(
        details.request_info().expect("RequestInfo").request_id,
        "edge-grpc-missing"
    );
}

on_both_backends!(a_grpc_client_at_the_edge_reaches_the_product_service_with_its_metadata);

#[tokio::test]
async fn a_service_no_upstream_serves_is_unimplemented() {
    use agora_contracts::agora::user::v1::{
        GetMyProfileRequest, user_service_client::UserServiceClient,
    };

    let (addr, app) = edge([(PRODUCT.to_owned(), upstream(&nowhere()))].into()).await;
    let status = UserServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("the edge speaks h2c")
        .get_my_profile(GetMyProfileRequest {})
        .await
        .expect_err("the user service is not routed");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    for (path, content_type) in [
        ("/agora.nothing.v1.NoService/Call", "application/grpc"),
        ("/not-a-grpc-path", "application/grpc"),
        (LIST_PRODUCTS, "application/grpc-web+json"),
    ] {
        let response = app
            .clone()
            .oneshot(
                http::Request::post(path)
                    .header("content-type", content_type)
                    .body(axum::body::Body::empty())
                    .expect("a request"),
            )
            .await
            .expect("answered");
        assert_eq!(response.status(), http::StatusCode::OK, "{path}");
        assert_eq!(
            response.headers()["grpc-status"],
            "12",
            "{path} {content_type}"
        );
    }
}

#[tokio::test]
async fn an_upstream_that_is_down_is_unavailable_at_once() {
    let (addr, app) = edge([(PRODUCT.to_owned(), upstream(&nowhere()))].into()).await;
    let mut client = ProductServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("the edge speaks h2c");
    let started = Instant::now();
    let status = client
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect_err("nothing listens behind the edge");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let web = app
        .oneshot(
            http::Request::post(LIST_PRODUCTS)
                .header("content-type", "application/grpc-web+proto")
                .body(axum::body::Body::from(frame(
                    &pb::ListProductsRequest::default(),
                )))
                .expect("a request"),
        )
        .await
        .expect("answered");
    assert_eq!(web.headers()["grpc-status"], "14");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_call_to_an_upstream_that_never_answers_ends_at_the_clients_deadline() {
    // Accepts connections (the kernel's backlog) but never speaks HTTP/2.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let url = format!("http://{}", silent.local_addr().expect("bound"));
    let (_, app) = edge([(PRODUCT.to_owned(), upstream(&url))].into()).await;
    // By hand rather than with a tonic client, which would give up by itself at the deadline.
    let started = Instant::now();
    let response = soon(
        "the edge's answer",
        app.oneshot(
            http::Request::post(LIST_PRODUCTS)
                .header("content-type", "application/grpc")
                .header("grpc-timeout", "300m")
                .body(axum::body::Body::from(frame(
                    &pb::ListProductsRequest::default(),
                )))
                .expect("a request"),
        ),
    )
    .await
    .expect("answered");
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    drop(silent);
}
