//! Reading products by id through the real gRPC surface: GetProduct, BatchGetProducts, the
//! read cache and its invalidation, and reads during a Redis outage, on both backends.

use std::time::Duration;

use crate::common::{Catalog, draft, violated_fields};
use agora_contracts::agora::product::v1 as pb;
use agora_platform::config::ServiceKind;
use agora_testkit::{PrivateRedis, TestBackend, authed, email, on_both_backends};
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt as _;

on_both_backends!(
    anyone_reads_a_product_by_id_archived_ones_included,
    get_product_refuses_malformed_ids_and_unknown_ones,
    batch_get_answers_in_request_order_and_lists_missing_ids,
    batch_get_refuses_empty_oversized_and_malformed_requests,
    an_update_is_visible_to_the_next_read_through_the_cache,
    reads_keep_working_from_the_database_when_redis_stops,
    a_zero_cache_ttl_reads_every_product_from_the_database,
);

/// Renames a product in the database itself, behind the service's (and its cache's) back, so a
/// test can tell a cached answer from a fresh one.
async fn rename_behind_the_cache(catalog: &Catalog, product_id: &str, name: &str) {
    let db = catalog.mesh.database(ServiceKind::Product).await;
    let changed = sqlx::query("UPDATE products SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(product_id)
        .execute(db.pool())
        .await
        .expect("the test changes the row");
    assert_eq!(changed.rows_affected(), 1);
}

async fn anyone_reads_a_product_by_id_archived_ones_included(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mug = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    assert_eq!(catalog.get(&mug.id).await.expect("anonymous read"), mug);

    let (_, user) = catalog.mesh.register(&email("ada")).await;
    let mut client = catalog.client();
    let read = client
        .get_product(authed(
            pb::GetProductRequest {
                product_id: mug.id.clone(),
            },
            &user,
        ))
        .await
        .expect("a user reads")
        .into_inner();
    assert_eq!(read.product.as_ref(), Some(&mug));
    let forged = client
        .get_product(authed(
            pb::GetProductRequest {
                product_id: mug.id.clone(),
            },
            "not.a.jwt",
        ))
        .await
        .expect_err("a token, when sent, must be valid");
    assert_eq!(forged.code(), Code::Unauthenticated);

    let archived = catalog.archive(&mug.id).await.expect("archived");
    let read = catalog.get(&mug.id).await.expect("still readable");
    assert_eq!(read.status, pb::ProductStatus::Archived as i32);
    assert_eq!(read, archived);
}

async fn get_product_refuses_malformed_ids_and_unknown_ones(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    for malformed in ["", "42", "not-a-uuid"] {
        let status = catalog.get(malformed).await.expect_err("malformed");
        assert_eq!(violated_fields(&status), ["product_id"], "{malformed:?}");
    }
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = catalog.get(&unknown).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    let details = status.get_error_details();
    let resource = details.resource_info().expect("ResourceInfo");
    assert_eq!(resource.resource_type, "product");
    assert_eq!(resource.resource_name, unknown);
}

async fn batch_get_answers_in_request_order_and_lists_missing_ids(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mug = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    let cup = catalog
        .create(draft("CUP", "Cup", "kitchen", 700, "EUR"))
        .await;
    let old = catalog
        .create(draft("OLD", "Old", "kitchen", 100, "EUR"))
        .await;
    let old = catalog.archive(&old.id).await.expect("archived");
    let ghost = uuid::Uuid::now_v7().to_string();
    // The same id in another spelling is the same product.
    let mug_upper = uuid::Uuid::parse_str(&mug.id)
        .expect("a UUID")
        .simple()
        .to_string()
        .to_uppercase();
    let ids = vec![
        cup.id.clone(),
        ghost.clone(),
        mug_upper,
        cup.id.clone(),
        ghost.clone(),
        old.id.clone(),
        mug.id.clone(),
    ];
    let mut client = catalog.client();
    // Twice: the first answer fills the cache, the second comes from it; both must agree.
    for round in ["cold", "warm"] {
        let response = client
            .batch_get_products(pb::BatchGetProductsRequest {
                product_ids: ids.clone(),
            })
            .await
            .expect("batch read")
            .into_inner();
        assert_eq!(
            response.products,
            [cup.clone(), mug.clone(), old.clone()],
            "{round}: found products in request order, each once"
        );
        assert_eq!(
            response.missing_product_ids,
            std::slice::from_ref(&ghost),
            "{round}"
        );
    }
}

async fn batch_get_refuses_empty_oversized_and_malformed_requests(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mut client = catalog.client();
    let batch = |product_ids: Vec<String>| {
        let mut client = client.clone();
        async move {
            client
                .batch_get_products(pb::BatchGetProductsRequest { product_ids })
                .await
                .expect_err("refused")
        }
    };
    assert_eq!(violated_fields(&batch(vec![]).await), ["product_ids"]);
    let too_many = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    assert_eq!(violated_fields(&batch(too_many).await), ["product_ids"]);
    let malformed = vec!["x".into(), uuid::Uuid::now_v7().to_string(), "y".into()];
    assert_eq!(
        violated_fields(&batch(malformed).await),
        ["product_ids[0]", "product_ids[2]"]
    );
    // Exactly 100 unknown ids is allowed.
    let hundred: Vec<String> = (0..100).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let response = client
        .batch_get_products(pb::BatchGetProductsRequest {
            product_ids: hundred.clone(),
        })
        .await
        .expect("100 ids are allowed")
        .into_inner();
    assert_eq!(response.missing_product_ids, hundred);
}

async fn an_update_is_visible_to_the_next_read_through_the_cache(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mug = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    assert_eq!(catalog.get(&mug.id).await.expect("read"), mug);

    // The row changes behind the service's back: reads keep answering from the cache.
    rename_behind_the_cache(&catalog, &mug.id, "Renamed in the database").await;
    assert_eq!(catalog.get(&mug.id).await.expect("cached read").name, "Mug");
    let batch = catalog
        .client()
        .batch_get_products(pb::BatchGetProductsRequest {
            product_ids: vec![mug.id.clone()],
        })
        .await
        .expect("batch read")
        .into_inner();
    assert_eq!(batch.products[0].name, "Mug", "batch reads share the cache");

    // An update through the API invalidates the entry: the next read is the new product.
    let change = pb::Product {
        id: mug.id.clone(),
        price: Some(agora_contracts::agora::common::v1::Money {
            currency_code: "EUR".into(),
            amount_minor: 1500,
        }),
        ..Default::default()
    };
    let updated = catalog.update(change, &["price"]).await.expect("updated");
    let read = catalog.get(&mug.id).await.expect("read after the update");
    assert_eq!(read, updated);
    assert_eq!(read.price.map(|p| p.amount_minor), Some(1500));
    assert_eq!(
        read.name, "Renamed in the database",
        "read from the database again"
    );

    // Archiving invalidates too.
    let archived = catalog.archive(&mug.id).await.expect("archived");
    assert_eq!(catalog.get(&mug.id).await.expect("read"), archived);
}

async fn reads_keep_working_from_the_database_when_redis_stops(backend: TestBackend) {
    // A Redis of this test's own: the shared one is never stopped.
    let mut redis = PrivateRedis::start().await;
    let Some(catalog) = Catalog::start_with(backend, &[("redis_url", json!(redis.url()))]).await
    else {
        return;
    };
    let mug = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    assert_eq!(catalog.get(&mug.id).await.expect("read"), mug);
    rename_behind_the_cache(&catalog, &mug.id, "Fresh from the database").await;
    assert_eq!(
        catalog.get(&mug.id).await.expect("read").name,
        "Mug",
        "served from Redis while it runs"
    );

    redis.stop();

    let read = tokio::time::timeout(Duration::from_secs(3), catalog.get(&mug.id))
        .await
        .expect("an outage degrades reads, it does not stall them")
        .expect("reads keep working");
    assert_eq!(
        read.name, "Fresh from the database",
        "the second read came from the database"
    );
    let batch = catalog
        .client()
        .batch_get_products(pb::BatchGetProductsRequest {
            product_ids: vec![mug.id.clone(), uuid::Uuid::now_v7().to_string()],
        })
        .await
        .expect("batch reads keep working")
        .into_inner();
    assert_eq!(batch.products, std::slice::from_ref(&read));
    assert_eq!(batch.missing_product_ids.len(), 1);

    // Writes do not depend on the cache either, and the next read sees them.
    let change = pb::Product {
        id: mug.id.clone(),
        name: "Written during the outage".into(),
        ..Default::default()
    };
    let updated = catalog
        .update(change, &["name"])
        .await
        .expect("writes keep working");
    assert_eq!(catalog.get(&mug.id).await.expect("read"), updated);
}

async fn a_zero_cache_ttl_reads_every_product_from_the_database(backend: TestBackend) {
    let Some(catalog) = Catalog::start_with(backend, &[("product.cache_ttl", json!("0s"))]).await
    else {
        return;
    };
    let mug = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    assert_eq!(catalog.get(&mug.id).await.expect("read"), mug);
    rename_behind_the_cache(&catalog, &mug.id, "No cache in the way").await;
    assert_eq!(
        catalog.get(&mug.id).await.expect("read").name,
        "No cache in the way"
    );
}
