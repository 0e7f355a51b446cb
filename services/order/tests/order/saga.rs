//! The saga under concurrency, and idempotency keys, through the real gRPC surface on both
//! backends.

use std::{collections::HashSet, sync::Arc, time::Duration};

use crate::common::Shop;
use agora_contracts::agora::order::v1 as pb;
use agora_testkit::{TestBackend, authed, on_both_backends};
use futures::future::join_all;
use tonic::Code;
use tonic_types::StatusExt;

async fn two_hundred_concurrent_orders_against_fifty_units_confirm_exactly_fifty(
    backend: TestBackend,
) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let shop = Arc::new(shop);
    let item = shop.product("Limited print", 4000, 50).await;
    let (_, token) = shop.shopper().await;
    let calls = (0..200).map(|i| {
        let (shop, item, token) = (Arc::clone(&shop), item.clone(), token.clone());
        tokio::spawn(async move {
            shop.place_retrying(&token, &format!("order-{i}"), &[(&item, 1)])
                .await
        })
    });
    let mut confirmed = HashSet::new();
    let mut out_of_stock = 0;
    for outcome in join_all(calls).await {
        match outcome.expect("the call task ran") {
            Ok(order) => {
                assert_eq!(order.status, pb::OrderStatus::Confirmed as i32, "{order:?}");
                confirmed.insert(order.id);
            }
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(
                    status.get_details_error_info().map(|i| i.reason),
                    Some("OUT_OF_STOCK".to_owned())
                );
                let short = status
                    .get_details_precondition_failure()
                    .map(|f| f.violations)
                    .unwrap_or_default();
                assert_eq!(short.len(), 1, "the short product is named");
                assert_eq!(short[0].subject, item);
                out_of_stock += 1;
            }
        }
    }
    assert_eq!(confirmed.len(), 50);
    assert_eq!(out_of_stock, 150);
    assert_eq!(shop.order_rows().await, 50);
    shop.assert_level_explained(&item, (0, 0, 0)).await;
    // Every sold unit is one order's reservation and commit.
    let ledger = shop.movements(&item).await;
    let ordered: HashSet<String> = ledger
        .iter()
        .filter(|m| !m.order_id.is_empty())
        .map(|m| m.order_id.clone())
        .collect();
    assert_eq!(ordered, confirmed);
}

async fn twenty_concurrent_retries_with_one_key_place_one_order_and_take_stock_once(
    backend: TestBackend,
) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let shop = Arc::new(shop);
    let item = shop.product("Kettle", 3500, 10).await;
    let (_, token) = shop.shopper().await;
    let calls = (0..20).map(|_| {
        let (shop, item, token) = (Arc::clone(&shop), item.clone(), token.clone());
        tokio::spawn(async move { shop.place_retrying(&token, "same-key", &[(&item, 3)]).await })
    });
    let ids: HashSet<String> = join_all(calls)
        .await
        .into_iter()
        .map(|outcome| outcome.expect("ran").expect("every retry succeeds").id)
        .collect();
    assert_eq!(ids.len(), 1, "every reply names the same order: {ids:?}");
    assert_eq!(shop.order_rows().await, 1);
    shop.assert_level_explained(&item, (7, 7, 0)).await;
}

async fn the_same_key_with_a_different_request_is_refused_with_its_reason(backend: TestBackend) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Kettle", 3500, 10).await;
    let (_, token) = shop.shopper().await;
    let first = shop
        .place(&token, "k-1", &[(&item, 1)])
        .await
        .expect("placed");
    let again = shop
        .place(&token, "k-1", &[(&item, 1)])
        .await
        .expect("replayed");
    assert_eq!(again.id, first.id);
    let reused = shop
        .place(&token, "k-1", &[(&item, 2)])
        .await
        .expect_err("a different request");
    assert_eq!(reused.code(), Code::FailedPrecondition);
    assert_eq!(
        reused.get_details_error_info().map(|i| i.reason),
        Some("IDEMPOTENCY_KEY_REUSED".to_owned())
    );
    // Keys are per user: another user's identical key places their own order.
    let (_, other) = shop.shopper().await;
    let theirs = shop
        .place(&other, "k-1", &[(&item, 1)])
        .await
        .expect("placed");
    assert_ne!(theirs.id, first.id);
    shop.assert_level_explained(&item, (8, 8, 0)).await;
}

async fn keys_are_forgotten_after_the_retention_period(backend: TestBackend) {
    let Some(shop) =
        Shop::start_with(backend, &[("order.idempotency_retention", "1s".into())]).await
    else {
        return;
    };
    let item = shop.product("Kettle", 3500, 10).await;
    let (_, token) = shop.shopper().await;
    let first = shop
        .place(&token, "k-1", &[(&item, 1)])
        .await
        .expect("placed");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = shop
        .place(&token, "k-1", &[(&item, 1)])
        .await
        .expect("placed");
    assert_ne!(later.id, first.id, "an expired key places a new order");
    assert_eq!(shop.order_rows().await, 2);
}

async fn invalid_requests_get_field_violations_and_store_nothing(backend: TestBackend) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let (_, token) = shop.shopper().await;
    let status = shop
        .orders()
        .create_order(authed(
            pb::CreateOrderRequest {
                idempotency_key: String::new(),
                lines: vec![],
                shipping_address: None,
            },
            &token,
        ))
        .await
        .expect_err("invalid");
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields: Vec<String> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["idempotency_key", "lines"]);
    let unknown = uuid::Uuid::now_v7().to_string();
    let refused = shop
        .place(&token, "k", &[(&unknown, 1)])
        .await
        .expect_err("unknown product");
    assert_eq!(
        refused.get_details_error_info().map(|i| i.reason),
        Some("PRODUCT_UNAVAILABLE".to_owned())
    );
    let named = refused
        .get_details_precondition_failure()
        .map(|f| f.violations)
        .unwrap_or_default();
    assert_eq!(
        named.first().map(|v| v.subject.clone()),
        Some(unknown.clone())
    );
    assert_eq!(shop.order_rows().await, 0);
}

on_both_backends!(
    two_hundred_concurrent_orders_against_fifty_units_confirm_exactly_fifty,
    twenty_concurrent_retries_with_one_key_place_one_order_and_take_stock_once,
    the_same_key_with_a_different_request_is_refused_with_its_reason,
    keys_are_forgotten_after_the_retention_period,
    invalid_requests_get_field_violations_and_store_nothing,
);
