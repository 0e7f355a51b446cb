//! The services together, through their real gRPC surfaces and the real bus: what one service
//! publishes, another applies, and the caller's trace goes along.

use std::time::Duration;

use agora_contracts::agora::{
    common::v1::Money,
    inventory::v1::{GetStockRequest, inventory_service_client::InventoryServiceClient},
    product::v1::{CreateProductRequest, Product, product_service_client::ProductServiceClient},
    user::v1::{GetMyProfileRequest, user_service_client::UserServiceClient},
};
use agora_platform::config::{ServiceKind, Settings};
use agora_testkit::{TestBackend, TestMesh, authed, email, eventually, on_both_backends};

on_both_backends!(
    a_new_product_opens_its_stock_record_with_the_callers_trace_on_the_event,
    a_registration_creates_the_users_profile,
);

/// Installs the OpenTelemetry layer once for this test process, so spans carry trace contexts.
fn telemetry() {
    static TELEMETRY: std::sync::OnceLock<agora_platform::telemetry::Telemetry> =
        std::sync::OnceLock::new();
    TELEMETRY.get_or_init(|| {
        agora_platform::telemetry::init(&Settings::default(), "mesh-test").expect("telemetry")
    });
}

async fn a_new_product_opens_its_stock_record_with_the_callers_trace_on_the_event(
    backend: TestBackend,
) {
    telemetry();
    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    mesh.spawn(ServiceKind::Product, |c, l, s| async move {
        agora_product::SERVICE.serve(&c, l, s).await
    })
    .await;
    mesh.spawn(ServiceKind::Inventory, |c, l, s| async move {
        agora_inventory::SERVICE.serve(&c, l, s).await
    })
    .await;
    let admin = mesh.admin_token().await;

    let trace_id = "5b8aa5a2d2c872e8321cf37308d69df2";
    let mut request = authed(
        CreateProductRequest {
            product: Some(Product {
                sku: "MESH-1".into(),
                name: "Mesh mug".into(),
                category: "kitchen".into(),
                price: Some(Money {
                    currency_code: "EUR".into(),
                    amount_minor: 1200,
                }),
                ..Product::default()
            }),
        },
        &admin,
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-051581bf3cb55c13-01")
            .parse()
            .expect("header"),
    );
    let product = ProductServiceClient::new(mesh.channel(ServiceKind::Product))
        .create_product(request)
        .await
        .expect("the admin creates a product")
        .into_inner()
        .product
        .expect("product");

    let inventory = InventoryServiceClient::new(mesh.channel(ServiceKind::Inventory));
    let stock = eventually(
        "inventory opens the stock record",
        Duration::from_secs(15),
        || {
            let mut inventory = inventory.clone();
            let product_id = product.id.clone();
            async move {
                inventory
                    .get_stock(GetStockRequest { product_id })
                    .await
                    .ok()
                    .and_then(|r| r.into_inner().stock_level)
            }
        },
    )
    .await;
    assert_eq!(
        (stock.on_hand, stock.available, stock.reserved),
        (0, 0, 0),
        "a new record holds nothing"
    );

    let events = mesh.bus().await.events("product").await.expect("stream");
    let created = events
        .iter()
        .find(|e| e.aggregate_id == product.id)
        .expect("ProductCreated is on the product stream");
    assert_eq!(created.r#type, "agora.events.v1.ProductCreated");
    assert!(
        created.traceparent.contains(trace_id),
        "the event carries the caller's trace: {:?}",
        created.traceparent
    );
}

async fn a_registration_creates_the_users_profile(backend: TestBackend) {
    let Some(mut mesh) = TestMesh::start(backend).await else {
        return;
    };
    mesh.spawn(ServiceKind::User, |c, l, s| async move {
        agora_user::SERVICE.serve(&c, l, s).await
    })
    .await;
    let address = email("grace");
    let (user_id, token) = mesh.register(&address).await;
    let users = UserServiceClient::new(mesh.channel(ServiceKind::User));
    let profile = eventually("user creates the profile", Duration::from_secs(15), || {
        let mut users = users.clone();
        let token = token.clone();
        async move {
            users
                .get_my_profile(authed(GetMyProfileRequest {}, &token))
                .await
                .ok()
                .and_then(|r| r.into_inner().profile)
        }
    })
    .await;
    assert_eq!(profile.user_id, user_id);
    assert_eq!(profile.email, address);
}
