//! What inventory hears and says on the bus, on SQLite + memory and on PostgreSQL + Redis: stock
//! records opened once from `ProductCreated` however often it comes, archiving, poison events set
//! aside, and `StockDepleted` published through the outbox.

use std::time::Duration;

use crate::common::{Inventory, figures, new_id};
use agora_contracts::agora::{
    events::v1::{EventEnvelope, ProductArchived, ProductCreated, StockDepleted},
    inventory::v1::{AdjustmentReason, MovementKind},
};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, eventually, on_both_backends};
use prost::{Message, Name};
use sqlx::Row;

on_both_backends!(
    a_product_created_event_opens_one_record_however_often_it_is_delivered,
    stock_depleted_is_published_when_available_stock_reaches_zero,
);

async fn a_product_created_event_opens_one_record_however_often_it_is_delivered(
    backend: TestBackend,
) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = new_id();
    let event = new_id();
    inventory.announce_product(&event, &product).await;
    let level = inventory.wait_for_record(&product).await;
    assert_eq!(figures(&level), (0, 0, 0));
    inventory
        .adjust(&product, 4, AdjustmentReason::Restock, "")
        .await
        .expect("restocked");

    // The same event again (a redelivery), another event about the same product, the product's
    // archiving, and an event that cannot be decoded.
    inventory.announce_product(&event, &product).await;
    inventory.announce_product(&new_id(), &product).await;
    let archived = EventEnvelope {
        id: new_id(),
        r#type: ProductArchived::full_name(),
        producer: "product".into(),
        aggregate_id: product.clone(),
        payload: Some(prost_types::Any {
            type_url: ProductArchived::type_url(),
            value: ProductArchived {
                product_id: product.clone(),
                archive_time: Some(std::time::SystemTime::now().into()),
            }
            .encode_to_vec(),
        }),
        ..Default::default()
    };
    let poison = EventEnvelope {
        id: new_id(),
        r#type: ProductCreated::full_name(),
        producer: "product".into(),
        payload: Some(prost_types::Any {
            type_url: ProductCreated::type_url(),
            value: vec![0xff, 0xff, 0xff],
        }),
        ..Default::default()
    };
    let bus = inventory.mesh.bus().await;
    bus.publish(&archived).await.expect("published");
    bus.publish(&poison).await.expect("published");
    // Events are applied in order: once a later product's record is open, all were handled.
    let barrier = inventory.open_product().await;

    assert_eq!(
        figures(&inventory.level(&product).await),
        (4, 4, 0),
        "reopening would have reset the level"
    );
    let ledger = inventory.ledger(&product).await;
    let kinds: Vec<i32> = ledger.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [MovementKind::Adjusted as i32, MovementKind::Opened as i32]
    );
    let db = inventory.mesh.database(ServiceKind::Inventory).await;
    let records: i64 = sqlx::query("SELECT COUNT(*) AS n FROM stock")
        .fetch_one(db.pool())
        .await
        .expect("count")
        .try_get("n")
        .expect("a count");
    assert_eq!(records, 2, "one record for {product}, one for {barrier}");
    let remembered: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM processed_events WHERE consumer = 'inventory'")
            .fetch_one(db.pool())
            .await
            .expect("count")
            .try_get("n")
            .expect("a count");
    assert_eq!(
        remembered, 4,
        "four distinct, decodable event ids were applied"
    );
    // Archiving marks the record and leaves its stock usable.
    let archived_at: Option<i64> =
        sqlx::query("SELECT archived_at FROM stock WHERE product_id = $1")
            .bind(&product)
            .fetch_one(db.pool())
            .await
            .expect("the record")
            .try_get("archived_at")
            .expect("a column");
    assert!(archived_at.is_some());
    db.close().await;
    inventory
        .reserve(&new_id(), &[(&product, 1)], None)
        .await
        .expect("archiving is informational");
    // The undecodable event was set aside with its reason, not retried forever.
    let dead = bus.dead_letters("product").await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].event_id.as_str(), dead[0].group.as_str()),
        (poison.id.as_str(), "inventory")
    );
    assert!(
        dead[0].reason.contains("does not decode"),
        "{}",
        dead[0].reason
    );
    inventory.assert_invariants().await;
}

async fn stock_depleted_is_published_when_available_stock_reaches_zero(backend: TestBackend) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let reserved_out = inventory.stocked_product(2).await;
    let written_off = inventory.stocked_product(3).await;
    let untouched = inventory.stocked_product(3).await;
    inventory
        .reserve(&new_id(), &[(&reserved_out, 2), (&untouched, 1)], None)
        .await
        .expect("reserved");
    inventory
        .adjust(&written_off, -3, AdjustmentReason::Damage, "flood")
        .await
        .expect("written off");

    let bus = inventory.mesh.bus().await;
    let depleted = eventually("StockDepleted events", Duration::from_secs(15), || {
        let bus = bus.clone();
        async move {
            let events = bus.events("inventory").await.ok()?;
            let depleted: Vec<String> = events
                .iter()
                .filter(|e| e.r#type == StockDepleted::full_name())
                .map(|e| {
                    let payload = e.payload.as_ref().expect("a payload");
                    assert_eq!(payload.type_url, StockDepleted::type_url());
                    let event = StockDepleted::decode(payload.value.as_slice()).expect("decodes");
                    assert!(event.deplete_time.is_some());
                    assert_eq!(e.aggregate_id, event.product_id);
                    event.product_id
                })
                .collect();
            (depleted.len() >= 2).then_some(depleted)
        }
    })
    .await;
    assert_eq!(depleted, [reserved_out, written_off]);
    inventory.assert_invariants().await;
}
