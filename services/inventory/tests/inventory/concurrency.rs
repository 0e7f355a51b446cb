//! The invariants under concurrency, on SQLite + memory and on PostgreSQL + Redis: available never
//! negative, `on_hand = available + reserved`, the ledger sums to the figures, and `reserved` is
//! what pending reservations hold, whatever runs at once.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use crate::common::{Inventory, figures, new_id, reason};
use agora_contracts::agora::inventory::v1::{self as pb, AdjustmentReason, MovementKind};
use agora_inventory::{store::Store, sweeper};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, authed, eventually, on_both_backends};
use sqlx::Row;
use tonic::Code;

on_both_backends!(
    a_hundred_concurrent_reservations_of_thirty_units_sell_exactly_thirty,
    mixed_concurrent_traffic_keeps_every_invariant,
    several_sweepers_at_once_expire_each_reservation_once,
);

async fn a_hundred_concurrent_reservations_of_thirty_units_sell_exactly_thirty(
    backend: TestBackend,
) {
    let Some(inventory) = Inventory::start(backend).await else {
        return;
    };
    let product = inventory.stocked_product(30).await;
    let calls = (0..100).map(|_| {
        let mut client = inventory.client();
        let request = authed(
            pb::ReserveRequest {
                order_id: new_id(),
                lines: vec![pb::ReservationLine {
                    product_id: product.clone(),
                    quantity: 1,
                }],
                ttl: None,
            },
            &inventory.order,
        );
        async move { client.reserve(request).await }
    });
    let results = futures::future::join_all(calls).await;

    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(succeeded, 30);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert_eq!(reason(refused), "INSUFFICIENT_STOCK");
    }
    assert_eq!(figures(&inventory.level(&product).await), (30, 0, 30));
    inventory.assert_invariants().await;
    let ledger = inventory.ledger(&product).await;
    let reserved = ledger
        .iter()
        .filter(|m| m.kind == MovementKind::Reserved as i32)
        .count();
    assert_eq!(reserved, 30, "one ledger line per successful reservation");
}

/// What one simulated order does after reserving.
#[derive(Debug, Clone, Copy)]
enum Then {
    Commit,
    Release,
    CommitThenCancel,
    /// Nothing: its short TTL runs out and the sweeper takes it back.
    Abandon,
}

async fn mixed_concurrent_traffic_keeps_every_invariant(backend: TestBackend) {
    let Some(inventory) = Inventory::start_with(
        backend,
        &[("inventory.sweep_interval", serde_json::json!("50ms"))],
    )
    .await
    else {
        return;
    };
    let products = [
        inventory.stocked_product(20).await,
        inventory.stocked_product(20).await,
        inventory.stocked_product(20).await,
    ];

    // Orders of two products each, named in both orders (the service must lock in one order
    // whatever the request says), each followed by a commit, a release, a cancellation or
    // nothing, while an admin adjusts the same products.
    let reserved = AtomicUsize::new(0);
    let orders = (0..60usize).map(|i| {
        let inventory = &inventory;
        let (first, second) = (&products[i % 3], &products[(i + 1) % 3]);
        let mut lines = [(first.clone(), 1 + (i % 2) as i64), (second.clone(), 1)];
        if i % 2 == 1 {
            lines.reverse();
        }
        let then = match i % 4 {
            0 => Then::Commit,
            1 => Then::Release,
            2 => Then::CommitThenCancel,
            _ => Then::Abandon,
        };
        let reserved = &reserved;
        async move {
            let order = new_id();
            let lines: Vec<(&str, i64)> = lines.iter().map(|(p, q)| (p.as_str(), *q)).collect();
            let ttl = matches!(then, Then::Abandon).then_some(Duration::from_secs(1));
            match inventory.reserve(&order, &lines, ttl).await {
                Ok(_) => {
                    reserved.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => {
                    assert_eq!(reason(&status), "INSUFFICIENT_STOCK", "{status:?}");
                    return;
                }
            }
            match then {
                Then::Commit => {
                    inventory.commit(&order).await.expect("commit");
                }
                Then::Release => {
                    inventory.release(&order, "failed").await.expect("release");
                }
                Then::CommitThenCancel => {
                    inventory.commit(&order).await.expect("commit");
                    inventory
                        .release(&order, "cancelled")
                        .await
                        .expect("cancel");
                }
                Then::Abandon => {}
            }
        }
    });
    let adjustments = (0..15usize).map(|i| {
        let inventory = &inventory;
        let product = products[i % 3].clone();
        async move {
            let (delta, why) = if i % 2 == 0 {
                (3, AdjustmentReason::Restock)
            } else {
                (-2, AdjustmentReason::Damage)
            };
            if let Err(status) = inventory.adjust(&product, delta, why, "").await {
                // Only a write-off larger than what is available may be refused.
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert!(delta < 0);
            }
        }
    });
    tokio::join!(
        futures::future::join_all(orders),
        futures::future::join_all(adjustments)
    );
    // Enough orders got through for the race to mean something.
    assert!(
        reserved.load(Ordering::Relaxed) >= 15,
        "{reserved:?} reservations"
    );
    inventory.assert_invariants().await;

    // Once the abandoned reservations have expired, nothing is reserved any more.
    let db = inventory.mesh.database(ServiceKind::Inventory).await;
    eventually(
        "abandoned reservations expire",
        Duration::from_secs(15),
        || {
            let db = db.clone();
            async move {
                let pending: i64 =
                    sqlx::query("SELECT COUNT(*) AS n FROM reservations WHERE state = 'pending'")
                        .fetch_one(db.pool())
                        .await
                        .ok()?
                        .try_get("n")
                        .ok()?;
                (pending == 0).then_some(())
            }
        },
    )
    .await;
    db.close().await;
    for product in &products {
        assert_eq!(inventory.level(product).await.reserved, 0);
    }
    inventory.assert_invariants().await;
}

async fn several_sweepers_at_once_expire_each_reservation_once(backend: TestBackend) {
    // The service's own sweeper runs once at start, then not again during the test: the
    // sweepers below play the replicas.
    let Some(inventory) = Inventory::start_with(
        backend,
        &[("inventory.sweep_interval", serde_json::json!("1h"))],
    )
    .await
    else {
        return;
    };
    let product = inventory.stocked_product(40).await;
    for _ in 0..20 {
        inventory
            .reserve(&new_id(), &[(&product, 2)], Some(Duration::from_secs(1)))
            .await
            .expect("reserved");
    }
    assert_eq!(figures(&inventory.level(&product).await), (40, 0, 40));
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Four replicas' sweepers, each with its own pool on the same database, at the same time.
    let mut replicas = Vec::new();
    for _ in 0..4 {
        replicas.push(Store::new(
            inventory.mesh.database(ServiceKind::Inventory).await,
        ));
    }
    let sweeps = futures::future::join_all(replicas.iter().map(sweeper::sweep_once)).await;
    let expired: i64 = sweeps
        .into_iter()
        .map(|sweep| sweep.expect("a sweep").expired)
        .sum();
    assert_eq!(
        expired, 20,
        "each reservation expired by exactly one sweeper"
    );

    assert_eq!(figures(&inventory.level(&product).await), (40, 40, 0));
    let ledger = inventory.ledger(&product).await;
    let expiries = ledger
        .iter()
        .filter(|m| m.kind == MovementKind::Expired as i32)
        .count();
    assert_eq!(expiries, 20);
    inventory.assert_invariants().await;
}
