//! Orders by outcome, sagas, compensations, recoveries, expired reservations and open watches.

use std::{sync::atomic::Ordering, time::Duration};

use crate::{common::Shop, reading::Scrape, reading::one_at_a_time};
use agora_contracts::agora::order::v1 as pb;
use agora_order::Hooks;
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, authed, eventually, on_both_backends};
use tonic::Code;

const ORDERS: &str = "agora_orders_total";
const SAGAS: &str = "agora_order_saga_duration_seconds_count";
const COMPENSATIONS: &str = "agora_order_compensations_total";

fn outcome(value: &str) -> [(&'static str, &str); 1] {
    [("agora_order_outcome", value)]
}

async fn two_placed_one_out_of_stock_and_one_cancelled_are_counted_exactly(backend: TestBackend) {
    let _one = one_at_a_time().await;
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 2).await;
    let (_, token) = shop.shopper().await;
    let before = Scrape::now();
    let first = shop
        .place(&token, "k-1", &[(&item, 1)])
        .await
        .expect("placed");
    shop.place(&token, "k-2", &[(&item, 1)])
        .await
        .expect("placed");
    let refused = shop
        .place(&token, "k-3", &[(&item, 1)])
        .await
        .expect_err("out of stock");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // A retry of a placed order answers the same order: no second count.
    shop.place(&token, "k-1", &[(&item, 1)])
        .await
        .expect("replayed");
    shop.cancel(&token, &first.id).await.expect("cancelled");
    // Cancelling again changes nothing and counts nothing.
    shop.cancel(&token, &first.id)
        .await
        .expect("still cancelled");
    let after = Scrape::now();
    assert_eq!(after.added(&before, ORDERS, &outcome("placed")), 2.0);
    assert_eq!(after.added(&before, ORDERS, &outcome("failed")), 1.0);
    assert_eq!(after.added(&before, ORDERS, &outcome("cancelled")), 1.0);
    assert_eq!(after.added(&before, SAGAS, &outcome("placed")), 2.0);
    assert_eq!(after.added(&before, SAGAS, &outcome("failed")), 1.0);
    assert_eq!(after.added(&before, SAGAS, &outcome("compensated")), 0.0);
    assert_eq!(after.added(&before, COMPENSATIONS, &[]), 0.0);
    assert!(after.has(
        "agora_order_saga_duration_seconds_bucket",
        &[("agora_order_outcome", "placed"), ("le", "+Inf")]
    ));
}

async fn a_saga_forced_to_compensate_counts_one_compensation(backend: TestBackend) {
    let _one = one_at_a_time().await;
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    let before = Scrape::now();
    shop.hooks.fail_after_reserve.store(true, Ordering::SeqCst);
    shop.place(&token, "k-1", &[(&item, 2)])
        .await
        .expect_err("the injected failure");
    shop.assert_level_explained(&item, (5, 5, 0)).await;
    let after = Scrape::now();
    assert_eq!(after.added(&before, COMPENSATIONS, &[]), 1.0);
    assert_eq!(after.added(&before, SAGAS, &outcome("compensated")), 1.0);
    assert_eq!(after.added(&before, SAGAS, &outcome("failed")), 0.0);
    assert_eq!(after.added(&before, ORDERS, &outcome("failed")), 1.0);
    assert_eq!(after.added(&before, ORDERS, &outcome("placed")), 0.0);
}

async fn an_abandoned_saga_counts_one_recovery_and_its_reservation_one_expiry(
    backend: TestBackend,
) {
    let _one = one_at_a_time().await;
    let Some(shop) = Shop::start_with(
        backend,
        &[
            ("order.reservation_ttl", "1s".into()),
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
    let before = Scrape::now();
    // An abandoned saga: its reservation is expired by inventory's sweeper (every 5 s by
    // default), then its lapsed claim is repaired by a recovery pass.
    shop.hooks.crash_after_reserve.store(true, Ordering::SeqCst);
    shop.place(&token, "k-1", &[(&item, 2)])
        .await
        .expect_err("the saga was abandoned");
    eventually(
        "the sweeper expires the reservation",
        Duration::from_secs(15),
        || async {
            let level = shop.stock(&item).await.ok()?;
            (level.reserved == 0).then_some(())
        },
    )
    .await;
    let swept = Scrape::now();
    assert_eq!(
        swept.added(&before, "agora_inventory_reservations_expired_total", &[]),
        1.0
    );
    let recovered = agora_order::recover_once(
        shop.mesh.service_config(ServiceKind::Order),
        Hooks::default(),
    )
    .await
    .expect("a recovery pass");
    assert_eq!(recovered, 1, "the lapsed claim");
    let after = Scrape::now();
    assert_eq!(
        after.added(&before, "agora_order_recoveries_total", &[]),
        1.0
    );
    assert_eq!(
        after.added(&before, "agora_inventory_reservations_expired_total", &[]),
        1.0
    );
    assert_eq!(after.added(&before, COMPENSATIONS, &[]), 0.0);
}

async fn an_open_watch_counts_one_stream_until_it_ends(backend: TestBackend) {
    let _one = one_at_a_time().await;
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 2000, 5).await;
    let (_, token) = shop.shopper().await;
    let order = shop
        .place(&token, "k-1", &[(&item, 1)])
        .await
        .expect("placed");
    const STREAMS: &str = "agora_order_watch_streams";
    assert_eq!(Scrape::now().value(STREAMS, &[]), 0.0);
    let mut stream = shop
        .orders()
        .watch_order(authed(
            pb::WatchOrderRequest {
                order_id: order.id.clone(),
                resume_token: String::new(),
            },
            &token,
        ))
        .await
        .expect("watching")
        .into_inner();
    stream
        .message()
        .await
        .expect("no error")
        .expect("the order's state");
    assert_eq!(Scrape::now().value(STREAMS, &[]), 1.0);
    drop(stream);
    eventually("the stream ends", Duration::from_secs(10), || async {
        (Scrape::now().value(STREAMS, &[]) == 0.0).then_some(())
    })
    .await;
    // A watch of an order that is not there never counts as open for good.
    let missing = shop
        .orders()
        .watch_order(authed(
            pb::WatchOrderRequest {
                order_id: uuid::Uuid::now_v7().to_string(),
                resume_token: String::new(),
            },
            &token,
        ))
        .await
        .expect_err("no such order");
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(Scrape::now().value(STREAMS, &[]), 0.0);
}

on_both_backends!(
    two_placed_one_out_of_stock_and_one_cancelled_are_counted_exactly,
    a_saga_forced_to_compensate_counts_one_compensation,
    an_abandoned_saga_counts_one_recovery_and_its_reservation_one_expiry,
    an_open_watch_counts_one_stream_until_it_ends,
);
