//! The outbox's backlog and lag, the consumer groups' lag, and dead letters, on the real bus of
//! each backend (in memory, Redis Streams).

use std::time::Duration;

use crate::{common::Shop, reading::Scrape, reading::one_at_a_time};
use agora_contracts::agora::events::v1::EventEnvelope;
use agora_testkit::{TestBackend, eventually, on_both_backends};

/// Labels of the product stream as the inventory group consumes it.
const PRODUCT_TO_INVENTORY: [(&str, &str); 2] = [
    ("messaging_destination_name", "product"),
    ("messaging_consumer_group_name", "inventory"),
];

async fn a_drained_bus_reads_zero_backlog_and_lag_and_a_poison_event_one_dead_letter(
    backend: TestBackend,
) {
    let _one = one_at_a_time().await;
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    // Three products: three ProductCreated events through product's outbox to inventory.
    for name in ["Lamp", "Chair", "Desk"] {
        shop.product(name, 2000, 0).await;
    }
    let stream = [("messaging_destination_name", "product")];
    eventually(
        "the relay and the consumer catch up",
        Duration::from_secs(10),
        || async {
            let now = Scrape::now();
            let drained = now.has("agora_outbox_backlog", &stream)
                && now.value("agora_outbox_backlog", &stream) == 0.0
                && now.value("agora_outbox_lag_seconds", &stream) == 0.0
                && now.has("agora_consumer_lag", &PRODUCT_TO_INVENTORY)
                && now.value("agora_consumer_lag", &PRODUCT_TO_INVENTORY) == 0.0;
            drained.then_some(())
        },
    )
    .await;
    let before = Scrape::now();
    // An event without an id can never be applied: inventory sets it aside at once.
    let poison = EventEnvelope {
        producer: "product".into(),
        r#type: "agora.events.v1.ProductCreated".into(),
        ..EventEnvelope::default()
    };
    shop.mesh
        .bus()
        .await
        .publish(&poison)
        .await
        .expect("published");
    const DEAD: &str = "agora_events_dead_lettered_total";
    eventually(
        "the poison is dead-lettered",
        Duration::from_secs(10),
        || async {
            let now = Scrape::now();
            (now.added(&before, DEAD, &PRODUCT_TO_INVENTORY) >= 1.0).then_some(())
        },
    )
    .await;
    // Settled: exactly one, and the group owes nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = Scrape::now();
    assert_eq!(after.added(&before, DEAD, &PRODUCT_TO_INVENTORY), 1.0);
    assert_eq!(
        after.value("agora_consumer_lag", &PRODUCT_TO_INVENTORY),
        0.0
    );
    let dead = shop
        .mesh
        .bus()
        .await
        .dead_letters("product")
        .await
        .expect("read");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].group, "inventory");
}

on_both_backends!(a_drained_bus_reads_zero_backlog_and_lag_and_a_poison_event_one_dead_letter);
