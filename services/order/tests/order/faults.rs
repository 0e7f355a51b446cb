//! The saga when upstreams are down, when it fails half-way and when it dies half-way: nothing
//! is stored that should not be, and no stock stays reserved.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use crate::common::{Shop, create_request};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, authed, eventually, on_both_backends};
use tonic::Code;

/// CreateOrder with a 2 s deadline; returns the status and how long the call took.
async fn place_with_deadline(shop: &Shop, token: &str, item: &str) -> (tonic::Status, Duration) {
    let mut request = authed(create_request("k-down", &[(item, 1)]), token);
    request.set_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let status = shop
        .orders()
        .create_order(request)
        .await
        .expect_err("an upstream is down");
    (status, started.elapsed())
}

async fn with_inventory_down_create_order_is_unavailable_in_time_and_stores_nothing(
    backend: TestBackend,
) {
    let Some(mut shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    shop.mesh.stop(ServiceKind::Inventory).await;
    let (status, took) = place_with_deadline(&shop, &token, &item).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(shop.order_rows().await, 0);
    shop.mesh.restart(ServiceKind::Inventory).await;
    shop.assert_level_explained(&item, (5, 5, 0)).await;
    let reserved = shop
        .movements(&item)
        .await
        .into_iter()
        .filter(|m| !m.order_id.is_empty())
        .count();
    assert_eq!(reserved, 0, "no reservation was made");
    // Retrying with the same key once inventory is back places the order.
    let order = shop
        .place_retrying(&token, "k-down", &[(&item, 1)])
        .await
        .expect("placed");
    assert!(!order.id.is_empty());
    shop.assert_level_explained(&item, (4, 4, 0)).await;
}

async fn with_product_down_create_order_is_unavailable_in_time_and_stores_nothing(
    backend: TestBackend,
) {
    let Some(mut shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    shop.mesh.stop(ServiceKind::Product).await;
    let (status, took) = place_with_deadline(&shop, &token, &item).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(shop.order_rows().await, 0);
    shop.assert_level_explained(&item, (5, 5, 0)).await;
    assert_eq!(
        shop.movements(&item).await.len(),
        2,
        "opened and restocked only"
    );
}

async fn a_failure_after_the_reservation_releases_the_stock(backend: TestBackend) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    shop.hooks.fail_after_reserve.store(true, Ordering::SeqCst);
    let status = shop
        .place(&token, "k-1", &[(&item, 2)])
        .await
        .expect_err("the injected failure");
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(shop.order_rows().await, 0);
    shop.assert_level_explained(&item, (5, 5, 0)).await;
    let ledger = shop.movements(&item).await;
    assert_eq!(
        ledger.len(),
        4,
        "opened, restocked, reserved, released: {ledger:?}"
    );
    // The failed call stored nothing, so its key places the order on retry.
    shop.place(&token, "k-1", &[(&item, 2)])
        .await
        .expect("placed");
    shop.assert_level_explained(&item, (3, 3, 0)).await;
}

async fn a_crash_after_the_reservation_is_repaired_by_start_up_recovery(backend: TestBackend) {
    let Some(mut shop) = Shop::start_with(
        backend,
        &[
            ("order.claim_lease", "300ms".into()),
            ("order.recovery_interval", "1h".into()),
        ],
    )
    .await
    else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    shop.hooks.crash_after_reserve.store(true, Ordering::SeqCst);
    shop.place(&token, "k-1", &[(&item, 2)])
        .await
        .expect_err("the saga was abandoned");
    shop.assert_level_explained(&item, (5, 3, 2)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    shop.mesh.restart(ServiceKind::Order).await;
    eventually(
        "recovery releases the stock",
        Duration::from_secs(10),
        || async {
            let level = shop.stock(&item).await.ok()?;
            (level.reserved == 0).then_some(())
        },
    )
    .await;
    shop.assert_level_explained(&item, (5, 5, 0)).await;
    assert_eq!(shop.order_rows().await, 0);
    let order = shop
        .place(&token, "k-1", &[(&item, 2)])
        .await
        .expect("placed");
    assert_eq!(order.status, 2, "confirmed");
}

async fn a_crash_after_the_reservation_is_repaired_by_its_ttl(backend: TestBackend) {
    let Some(shop) = Shop::start_with(
        backend,
        &[
            ("order.reservation_ttl", "1s".into()),
            ("order.claim_lease", "10m".into()),
            ("order.recovery_after", "1h".into()),
        ],
    )
    .await
    else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    shop.hooks.crash_after_reserve.store(true, Ordering::SeqCst);
    shop.place(&token, "k-1", &[(&item, 2)])
        .await
        .expect_err("the saga was abandoned");
    shop.assert_level_explained(&item, (5, 3, 2)).await;
    // Inventory's sweeper runs every 5 s by default.
    eventually(
        "the reservation expires",
        Duration::from_secs(15),
        || async {
            let level = shop.stock(&item).await.ok()?;
            (level.reserved == 0).then_some(())
        },
    )
    .await;
    shop.assert_level_explained(&item, (5, 5, 0)).await;
}

on_both_backends!(
    with_inventory_down_create_order_is_unavailable_in_time_and_stores_nothing,
    with_product_down_create_order_is_unavailable_in_time_and_stores_nothing,
    a_failure_after_the_reservation_releases_the_stock,
    a_crash_after_the_reservation_is_repaired_by_start_up_recovery,
    a_crash_after_the_reservation_is_repaired_by_its_ttl,
);
