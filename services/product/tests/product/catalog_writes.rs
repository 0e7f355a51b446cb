//! Creating, changing and archiving products through the real gRPC surface, with the events
//! each change publishes, on SQLite + memory and on PostgreSQL + Redis.

use std::time::Duration;

use crate::common::{Catalog, draft, micros, reason, violated_fields};
use agora_contracts::agora::{
    common::v1::Money,
    events::v1 as ev,
    product::v1::{self as pb, product_service_client::ProductServiceClient},
};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, authed, email, eventually, on_both_backends};
use prost::{Message as _, Name as _};
use tonic::{Code, Request, transport::Channel};

on_both_backends!(
    creating_a_product_returns_it_active_with_an_id_and_times,
    a_create_lists_every_invalid_field_at_once,
    a_duplicate_sku_is_already_exists_even_when_the_other_product_is_archived,
    only_admins_may_create_update_or_archive,
    an_update_changes_only_the_fields_its_mask_names,
    an_update_with_an_empty_mask_changes_the_fields_that_are_set,
    an_update_lists_bad_mask_paths_and_bad_values_at_once,
    an_update_answers_not_found_failed_precondition_and_already_exists,
    archiving_is_idempotent_and_keeps_the_product_readable,
    every_change_publishes_one_event_with_the_state_after_it,
);

async fn creating_a_product_returns_it_active_with_an_id_and_times(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mut sent = draft("MUG-BLUE-350", "  Blue mug  ", "kitchen", 1999, "EUR");
    // Read-only fields are ignored on create.
    sent.id = "chosen-by-the-client".into();
    sent.status = pb::ProductStatus::Archived as i32;
    let created = catalog.create(sent).await;

    let id = uuid::Uuid::parse_str(&created.id).expect("a UUID id");
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(created.name, "Blue mug", "names are trimmed");
    assert_eq!(created.sku, "MUG-BLUE-350");
    assert_eq!(created.status, pb::ProductStatus::Active as i32);
    assert_eq!(
        created.price,
        Some(Money {
            currency_code: "EUR".into(),
            amount_minor: 1999
        })
    );
    let (create_time, update_time) = (
        created.create_time.expect("set"),
        created.update_time.expect("set"),
    );
    assert_eq!(create_time, update_time);
    assert!(create_time.seconds > 1_700_000_000);

    assert_eq!(catalog.get(&created.id).await.expect("readable"), created);
}

async fn a_create_lists_every_invalid_field_at_once(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mut client = catalog.client();
    let bad = pb::Product {
        sku: "mug blue".into(),
        name: "   ".into(),
        description: "x".repeat(5001),
        category: "Kitchen Stuff".into(),
        price: Some(Money {
            currency_code: "ABC".into(),
            amount_minor: -1,
        }),
        image_url: "http://cdn.example.com/mug.png".into(),
        ..Default::default()
    };
    let status = client
        .create_product(authed(
            pb::CreateProductRequest { product: Some(bad) },
            &catalog.admin,
        ))
        .await
        .expect_err("invalid");
    assert_eq!(
        violated_fields(&status),
        [
            "product.category",
            "product.description",
            "product.image_url",
            "product.name",
            "product.price.amount_minor",
            "product.price.currency_code",
            "product.sku",
        ]
    );

    let long_name = pb::Product {
        name: "n".repeat(201),
        price: None,
        ..draft("MUG", "Mug", "kitchen", 1, "EUR")
    };
    let status = client
        .create_product(authed(
            pb::CreateProductRequest {
                product: Some(long_name),
            },
            &catalog.admin,
        ))
        .await
        .expect_err("invalid");
    assert_eq!(violated_fields(&status), ["product.name", "product.price"]);

    let status = client
        .create_product(authed(
            pb::CreateProductRequest { product: None },
            &catalog.admin,
        ))
        .await
        .expect_err("invalid");
    assert_eq!(violated_fields(&status), ["product"]);

    // Nothing was stored by the refused calls.
    let listed = client
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("listing works")
        .into_inner();
    assert!(listed.products.is_empty());
}

async fn a_duplicate_sku_is_already_exists_even_when_the_other_product_is_archived(
    backend: TestBackend,
) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let first = catalog
        .create(draft("MUG-1", "Mug", "kitchen", 900, "EUR"))
        .await;
    catalog.archive(&first.id).await.expect("archived");
    let status = catalog
        .client()
        .create_product(authed(
            pb::CreateProductRequest {
                product: Some(draft("MUG-1", "Another mug", "kitchen", 1000, "USD")),
            },
            &catalog.admin,
        ))
        .await
        .expect_err("the SKU is taken");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "SKU_TAKEN");
}

async fn only_admins_may_create_update_or_archive(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let existing = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    let (_, user) = catalog.mesh.register(&email("ada")).await;
    let service = catalog.mesh.service_token(ServiceKind::Order).await;
    let mut client = catalog.client();

    for (who, token, expected) in [
        ("anonymous", None, Code::Unauthenticated),
        ("a user", Some(user.as_str()), Code::PermissionDenied),
        ("a service", Some(service.as_str()), Code::PermissionDenied),
    ] {
        let request = |message| with_token(message, token);
        let create = client
            .create_product(request(pb::CreateProductRequest {
                product: Some(draft("NEW", "New", "kitchen", 1, "EUR")),
            }))
            .await
            .expect_err("refused");
        assert_eq!(create.code(), expected, "create by {who}");
        let update = client
            .update_product(with_token(
                pb::UpdateProductRequest {
                    product: Some(pb::Product {
                        id: existing.id.clone(),
                        name: "Hijacked".into(),
                        ..Default::default()
                    }),
                    update_mask: None,
                },
                token,
            ))
            .await
            .expect_err("refused");
        assert_eq!(update.code(), expected, "update by {who}");
        let archive = client
            .archive_product(with_token(
                pb::ArchiveProductRequest {
                    product_id: existing.id.clone(),
                },
                token,
            ))
            .await
            .expect_err("refused");
        assert_eq!(archive.code(), expected, "archive by {who}");
    }
    assert_eq!(catalog.get(&existing.id).await.expect("readable"), existing);
    assert_eq!(listed_count(&mut client).await, 1, "nothing was created");
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(token) => authed(message, token),
        None => Request::new(message),
    }
}

async fn listed_count(client: &mut ProductServiceClient<Channel>) -> usize {
    client
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("listing works")
        .into_inner()
        .products
        .len()
}

async fn an_update_changes_only_the_fields_its_mask_names(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let before = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let change = pb::Product {
        id: before.id.clone(),
        name: "Big mug".into(),
        price: Some(Money {
            currency_code: "USD".into(),
            amount_minor: 1200,
        }),
        // Not in the mask: ignored, although set.
        sku: "OTHER".into(),
        category: "garden".into(),
        ..Default::default()
    };
    let after = catalog
        .update(change, &["name", "price", "image_url"])
        .await
        .expect("updated");
    assert_eq!(after.name, "Big mug");
    assert_eq!(after.price.as_ref().map(|p| p.amount_minor), Some(1200));
    assert_eq!(
        after.price.as_ref().map(|p| p.currency_code.as_str()),
        Some("USD")
    );
    assert_eq!(after.image_url, "", "a masked empty field is cleared");
    assert_eq!(after.sku, before.sku);
    assert_eq!(after.category, before.category);
    assert_eq!(after.description, before.description);
    assert_eq!(after.create_time, before.create_time);
    assert!(micros(after.update_time.as_ref()) > micros(before.update_time.as_ref()));
    assert_eq!(catalog.get(&before.id).await.expect("readable"), after);
}

async fn an_update_with_an_empty_mask_changes_the_fields_that_are_set(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let before = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    let change = pb::Product {
        id: before.id.clone(),
        description: "Now dishwasher safe".into(),
        category: "dining".into(),
        ..Default::default()
    };
    let after = catalog.update(change, &[]).await.expect("updated");
    assert_eq!(after.description, "Now dishwasher safe");
    assert_eq!(after.category, "dining");
    assert_eq!(after.image_url, before.image_url, "unset fields stay");
    assert_eq!(after.name, before.name);
    assert_eq!(after.price, before.price);

    let nothing = pb::Product {
        id: before.id.clone(),
        ..Default::default()
    };
    let status = catalog
        .update(nothing, &[])
        .await
        .expect_err("nothing to do");
    assert_eq!(violated_fields(&status), ["update_mask"]);
}

async fn an_update_lists_bad_mask_paths_and_bad_values_at_once(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let before = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    let change = pb::Product {
        id: before.id.clone(),
        name: String::new(),
        price: Some(Money {
            currency_code: "eur".into(),
            amount_minor: -5,
        }),
        ..Default::default()
    };
    let status = catalog
        .update(
            change,
            &["name", "price", "status", "colour", "create_time"],
        )
        .await
        .expect_err("invalid");
    assert_eq!(
        violated_fields(&status),
        [
            "product.name",
            "product.price.amount_minor",
            "product.price.currency_code",
            "update_mask.paths[2]",
            "update_mask.paths[3]",
            "update_mask.paths[4]",
        ]
    );
    let malformed = pb::Product {
        id: "not-a-uuid".into(),
        name: "Mug".into(),
        ..Default::default()
    };
    let status = catalog
        .update(malformed, &["name"])
        .await
        .expect_err("invalid");
    assert_eq!(violated_fields(&status), ["product.id"]);
    assert_eq!(catalog.get(&before.id).await.expect("readable"), before);
}

async fn an_update_answers_not_found_failed_precondition_and_already_exists(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mug = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    let cup = catalog
        .create(draft("CUP", "Cup", "kitchen", 700, "EUR"))
        .await;

    let unknown = pb::Product {
        id: uuid::Uuid::now_v7().to_string(),
        name: "Ghost".into(),
        ..Default::default()
    };
    let status = catalog
        .update(unknown, &["name"])
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);

    let steal_sku = pb::Product {
        id: cup.id.clone(),
        sku: "MUG".into(),
        ..Default::default()
    };
    let status = catalog
        .update(steal_sku, &["sku"])
        .await
        .expect_err("taken");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "SKU_TAKEN");
    assert_eq!(catalog.get(&cup.id).await.expect("readable").sku, "CUP");

    catalog.archive(&mug.id).await.expect("archived");
    let late = pb::Product {
        id: mug.id.clone(),
        name: "Too late".into(),
        ..Default::default()
    };
    let status = catalog.update(late, &["name"]).await.expect_err("archived");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(reason(&status), "PRODUCT_ARCHIVED");
}

async fn archiving_is_idempotent_and_keeps_the_product_readable(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mug = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    let archived = catalog.archive(&mug.id).await.expect("archived");
    assert_eq!(archived.status, pb::ProductStatus::Archived as i32);
    assert!(micros(archived.update_time.as_ref()) >= micros(mug.update_time.as_ref()));
    let again = catalog
        .archive(&mug.id)
        .await
        .expect("archiving twice succeeds");
    assert_eq!(again, archived, "and changes nothing");
    assert_eq!(
        catalog.get(&mug.id).await.expect("still readable"),
        archived
    );
    assert_eq!(
        listed_count(&mut catalog.client()).await,
        0,
        "hidden from listings"
    );

    let status = catalog
        .archive(&uuid::Uuid::now_v7().to_string())
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    let status = catalog.archive("42").await.expect_err("malformed");
    assert_eq!(violated_fields(&status), ["product_id"]);
}

async fn every_change_publishes_one_event_with_the_state_after_it(backend: TestBackend) {
    let Some(catalog) = Catalog::start(backend).await else {
        return;
    };
    let mug = catalog
        .create(draft("MUG", "Mug", "kitchen", 900, "EUR"))
        .await;
    let change = pb::Product {
        id: mug.id.clone(),
        name: "Big mug".into(),
        ..Default::default()
    };
    let updated = catalog
        .update(change.clone(), &["name"])
        .await
        .expect("updated");
    // The same values again change nothing, so they publish nothing.
    catalog
        .update(change, &["name"])
        .await
        .expect("no-op update");
    let archived = catalog.archive(&mug.id).await.expect("archived");
    catalog.archive(&mug.id).await.expect("no-op archive");
    // A refused change publishes nothing either.
    let refused = catalog
        .client()
        .create_product(authed(
            pb::CreateProductRequest {
                product: Some(draft("MUG", "Duplicate", "kitchen", 1, "EUR")),
            },
            &catalog.admin,
        ))
        .await
        .expect_err("the SKU is taken");
    assert_eq!(refused.code(), Code::AlreadyExists);
    let cup = catalog
        .create(draft("CUP", "Cup", "kitchen", 500, "EUR"))
        .await;

    let bus = catalog.mesh.bus().await;
    eventually("four product events", Duration::from_secs(10), || {
        let bus = bus.clone();
        async move { (bus.events("product").await.ok()?.len() >= 4).then_some(()) }
    })
    .await;
    // Give a stray extra event the time of many relay rounds to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = bus.events("product").await.expect("the bus answers");
    let types: Vec<String> = events.iter().map(|e| e.r#type.clone()).collect();
    assert_eq!(
        types,
        [
            ev::ProductCreated::full_name(),
            ev::ProductUpdated::full_name(),
            ev::ProductArchived::full_name(),
            ev::ProductCreated::full_name(),
        ]
    );
    assert_eq!(events[3].aggregate_id, cup.id);
    assert!(events.iter().all(|e| e.producer == "product"));
    let mug_events: Vec<_> = events.iter().filter(|e| e.aggregate_id == mug.id).collect();
    assert_eq!(mug_events.len(), 3, "one event per change of the mug");
    let payload = |index: usize| {
        mug_events[index]
            .payload
            .as_ref()
            .map(|any| any.value.clone())
            .expect("a payload")
    };
    let created = ev::ProductCreated::decode(payload(0).as_slice()).expect("ProductCreated");
    assert_eq!(
        created,
        ev::ProductCreated {
            product_id: mug.id.clone(),
            sku: "MUG".into(),
            name: "Mug".into(),
            category: "kitchen".into(),
            price: mug.price.clone(),
        }
    );
    let changed = ev::ProductUpdated::decode(payload(1).as_slice()).expect("ProductUpdated");
    assert_eq!(
        changed,
        ev::ProductUpdated {
            product_id: mug.id.clone(),
            sku: "MUG".into(),
            name: "Big mug".into(),
            category: "kitchen".into(),
            price: mug.price.clone(),
            update_time: updated.update_time,
        }
    );
    let gone = ev::ProductArchived::decode(payload(2).as_slice()).expect("ProductArchived");
    assert_eq!(
        gone,
        ev::ProductArchived {
            product_id: mug.id.clone(),
            archive_time: archived.update_time,
        }
    );
}
