//! Races for an idempotency claim, each forced at an exact point: a retry, recovery (run as
//! another replica would) and a slow saga competing for one key never make a second order,
//! never return a placed order's units, and never leave stock reserved.
//!
//! A holder's lease running out is a moment in time; the tests make it happen by setting the
//! claim's `lease_until` to 0 in the database, then let the competitors go one step at a time
//! through the saga's [`Step`] pauses.

use crate::common::Shop;
use agora_contracts::agora::{inventory::v1 as inv, order::v1 as pb};
use agora_order::{Hooks, Step};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, on_both_backends};
use tonic::Code;

/// A shop whose recovery runs only when a test says so, with claim leases of `lease`.
async fn shop(backend: TestBackend, lease: &str) -> Option<Shop> {
    Shop::start_with(
        backend,
        &[
            ("order.claim_lease", lease.into()),
            ("order.recovery_interval", "1h".into()),
        ],
    )
    .await
}

/// The lease of the claim of `key` runs out now.
async fn lapse(shop: &Shop, key: &str) {
    let db = shop.mesh.database(ServiceKind::Order).await;
    let changed = sqlx::query("UPDATE idempotency_keys SET lease_until = 0 WHERE idem_key = $1")
        .bind(key)
        .execute(db.pool())
        .await
        .expect("the lease is set")
        .rows_affected();
    assert_eq!(changed, 1, "the key is claimed");
}

/// One recovery pass, as another replica of the order service runs it.
async fn recover(shop: &Shop, hooks: Hooks) -> usize {
    agora_order::recover_once(shop.mesh.service_config(ServiceKind::Order), hooks)
        .await
        .expect("a recovery pass")
}

/// A saga that dies after its reservation: the call fails and leaves its claim and stock.
async fn crash(shop: &Shop, token: &str, key: &str, item: &str) {
    shop.hooks
        .crash_after_reserve
        .store(true, std::sync::atomic::Ordering::SeqCst);
    shop.place(token, key, &[(item, 2)])
        .await
        .expect_err("the saga died");
    shop.assert_level_explained(item, (5, 3, 2)).await;
}

/// CreateOrder of 2 units of `item` under `key`, in the background (it may stop at a pause).
fn place_in_background(
    shop: &Shop,
    token: &str,
    key: &str,
    item: &str,
) -> tokio::task::JoinHandle<Result<tonic::Response<pb::CreateOrderResponse>, tonic::Status>> {
    let mut orders = shop.orders();
    let request = agora_testkit::authed(crate::common::create_request(key, &[(item, 2)]), token);
    tokio::spawn(async move { orders.create_order(request).await })
}

/// The order a background CreateOrder placed.
async fn placed(
    call: tokio::task::JoinHandle<Result<tonic::Response<pb::CreateOrderResponse>, tonic::Status>>,
) -> pb::Order {
    call.await
        .expect("joined")
        .expect("placed")
        .into_inner()
        .order
        .expect("an order")
}

/// After a race: one confirmed order, its 2 units sold once, nothing else reserved, and no
/// sold unit ever returned.
async fn assert_sold_once(shop: &Shop, item: &str, order: &pb::Order) {
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32, "{order:?}");
    assert_eq!(shop.order_rows().await, 1, "one order for the key");
    shop.assert_level_explained(item, (3, 3, 0)).await;
    let ledger = shop.movements(item).await;
    assert!(
        ledger
            .iter()
            .all(|m| m.kind != inv::MovementKind::Returned as i32),
        "no sold unit was returned: {ledger:?}"
    );
    let committed: Vec<&str> = ledger
        .iter()
        .filter(|m| m.kind == inv::MovementKind::Committed as i32)
        .map(|m| m.order_id.as_str())
        .collect();
    assert_eq!(
        committed,
        [order.id.as_str()],
        "only the order's units sold"
    );
}

async fn a_retry_takes_a_dead_sagas_claim_over_within_the_call(backend: TestBackend) {
    let Some(shop) = shop(backend, "200ms").await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    crash(&shop, &token, "k-1", &item).await;
    // No recovery runs: the retry itself waits out the dead saga's lease, gives its stock
    // back and places the order.
    let order = shop
        .place(&token, "k-1", &[(&item, 2)])
        .await
        .expect("placed by the retry");
    assert_sold_once(&shop, &item, &order).await;
    let again = shop
        .place(&token, "k-1", &[(&item, 2)])
        .await
        .expect("the same order");
    assert_eq!(again.id, order.id);
}

async fn a_retry_waits_for_recovery_holding_the_claim_then_places_anew(backend: TestBackend) {
    let Some(shop) = shop(backend, "10s").await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    crash(&shop, &token, "k-1", &item).await;
    lapse(&shop, "k-1").await;
    // Recovery takes the claim over and stops before releasing.
    let recovery_hooks = Hooks::default();
    let recovering = recovery_hooks.pause_at(Step::RecoveryBeforeRelease);
    let recovery = tokio::spawn({
        let hooks = recovery_hooks.clone();
        let config = shop.mesh.service_config(ServiceKind::Order).clone();
        async move { agora_order::recover_once(&config, hooks).await }
    });
    recovering.reached().await;
    // The retry finds recovery's live claim and waits.
    let waiting = shop.hooks.pause_at(Step::DuplicateWaiting);
    let retry = place_in_background(&shop, &token, "k-1", &item);
    waiting.reached().await;
    recovering.resume();
    assert_eq!(recovery.await.expect("joined").expect("a pass"), 1);
    shop.assert_level_explained(&item, (5, 5, 0)).await;
    waiting.resume();
    let order = placed(retry).await;
    assert_sold_once(&shop, &item, &order).await;
}

async fn recovery_leaves_a_claim_a_retry_took_over_alone(backend: TestBackend) {
    let Some(shop) = shop(backend, "10s").await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    crash(&shop, &token, "k-1", &item).await;
    lapse(&shop, "k-1").await;
    // The retry takes the claim over and stops before releasing the dead saga's stock.
    let taking = shop.hooks.pause_at(Step::TakeOverBeforeRelease);
    let retry = place_in_background(&shop, &token, "k-1", &item);
    taking.reached().await;
    // Recovery runs now, and between every later step of the retry: the claim is not its own.
    assert_eq!(recover(&shop, Hooks::default()).await, 0);
    let reserving = shop.hooks.pause_at(Step::BeforeReserve);
    taking.resume();
    reserving.reached().await;
    assert_eq!(recover(&shop, Hooks::default()).await, 0);
    let storing = shop.hooks.pause_at(Step::BeforeInsert);
    reserving.resume();
    storing.reached().await;
    assert_eq!(recover(&shop, Hooks::default()).await, 0);
    storing.resume();
    let order = placed(retry).await;
    assert_sold_once(&shop, &item, &order).await;
    assert_eq!(recover(&shop, Hooks::default()).await, 0);
    assert_sold_once(&shop, &item, &order).await;
}

async fn a_slow_saga_whose_claim_recovery_took_never_stores_its_order(backend: TestBackend) {
    let Some(shop) = shop(backend, "10s").await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    // The saga reserves, then stalls past its lease (a paused process, a long GC, a slow disk).
    let storing = shop.hooks.pause_at(Step::BeforeInsert);
    let slow = place_in_background(&shop, &token, "k-1", &item);
    storing.reached().await;
    shop.assert_level_explained(&item, (5, 3, 2)).await;
    lapse(&shop, "k-1").await;
    assert_eq!(recover(&shop, Hooks::default()).await, 1);
    shop.assert_level_explained(&item, (5, 5, 0)).await;
    // The saga wakes up: its claim is gone, so it stores nothing under its order id, and the
    // call goes on to place the order under a claim of its own.
    storing.resume();
    let order = placed(slow).await;
    assert_sold_once(&shop, &item, &order).await;
}

async fn two_retries_of_a_dead_saga_make_one_order(backend: TestBackend) {
    let Some(shop) = shop(backend, "10s").await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    crash(&shop, &token, "k-1", &item).await;
    lapse(&shop, "k-1").await;
    let taking = shop.hooks.pause_at(Step::TakeOverBeforeRelease);
    let first = place_in_background(&shop, &token, "k-1", &item);
    taking.reached().await;
    let waiting = shop.hooks.pause_at(Step::DuplicateWaiting);
    let second = place_in_background(&shop, &token, "k-1", &item);
    waiting.reached().await;
    taking.resume();
    let first = placed(first).await;
    waiting.resume();
    let second = placed(second).await;
    assert_eq!(first.id, second.id);
    assert_sold_once(&shop, &item, &first).await;
}

async fn an_order_whose_total_overflows_reserves_nothing_and_frees_its_key(backend: TestBackend) {
    let Some(shop) = shop(backend, "10s").await else {
        return;
    };
    let item = shop.product("Gold bar", 2000, 5).await;
    // A price stored before prices had an upper bound.
    let db = shop.mesh.database(ServiceKind::Product).await;
    sqlx::query("UPDATE products SET price_minor = $1 WHERE id = $2")
        .bind(i64::MAX / 2)
        .bind(&item)
        .execute(db.pool())
        .await
        .expect("priced");
    let (_, token) = shop.shopper().await;
    for _ in 0..2 {
        let status = shop
            .place(&token, "k-1", &[(&item, 3)])
            .await
            .expect_err("too large");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with("invalid lines:"), "{status:?}");
    }
    assert_eq!(shop.order_rows().await, 0);
    shop.assert_level_explained(&item, (5, 5, 0)).await;
    assert_eq!(
        shop.movements(&item).await.len(),
        2,
        "opened and restocked only: nothing was reserved"
    );
}

on_both_backends!(
    a_retry_takes_a_dead_sagas_claim_over_within_the_call,
    a_retry_waits_for_recovery_holding_the_claim_then_places_anew,
    recovery_leaves_a_claim_a_retry_took_over_alone,
    a_slow_saga_whose_claim_recovery_took_never_stores_its_order,
    two_retries_of_a_dead_saga_make_one_order,
    an_order_whose_total_overflows_reserves_nothing_and_frees_its_key,
);
