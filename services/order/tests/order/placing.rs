//! CreateOrder and GetOrder through the real gRPC surface, on both backends.

use crate::common::Shop;
use agora_contracts::agora::order::v1 as pb;
use agora_testkit::{TestBackend, on_both_backends};
use tonic::Code;

async fn an_order_is_placed_at_the_product_services_prices_and_only_its_owner_reads_it(
    backend: TestBackend,
) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let mug = shop.product("Mug", 1250, 5).await;
    let pen = shop.product("Pen", 199, 10).await;
    let (user_id, token) = shop.shopper().await;
    let order = shop
        .place(&token, "key-1", &[(&mug, 2), (&pen, 3)])
        .await
        .expect("placed");
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    assert_eq!(order.user_id, user_id);
    assert_eq!(order.lines[0].product_name, "Mug");
    assert_eq!(
        order.lines[0].line_total.as_ref().map(|m| m.amount_minor),
        Some(2500)
    );
    assert_eq!(
        order.total.as_ref().map(|m| m.amount_minor),
        Some(2500 + 597)
    );
    let stock = shop.stock(&mug).await.expect("stock");
    assert_eq!((stock.on_hand, stock.available, stock.reserved), (3, 3, 0));

    assert_eq!(shop.get(&token, &order.id).await.expect("read"), order);
    let (_, stranger) = shop.shopper().await;
    let hidden = shop.get(&stranger, &order.id).await.expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    assert_eq!(
        shop.get(&shop.admin, &order.id).await.expect("admin reads"),
        order
    );
}

async fn an_order_beyond_the_stock_is_refused_and_stores_nothing(backend: TestBackend) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let mug = shop.product("Mug", 1250, 1).await;
    let (_, token) = shop.shopper().await;
    let refused = shop
        .place(&token, "k", &[(&mug, 2)])
        .await
        .expect_err("short");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(shop.order_rows().await, 0);
    let stock = shop.stock(&mug).await.expect("stock");
    assert_eq!((stock.available, stock.reserved), (1, 0));
    // The failed call stored nothing, so the same key can place a corrected order.
    shop.place(&token, "k", &[(&mug, 1)]).await.expect("placed");
}

on_both_backends!(
    an_order_is_placed_at_the_product_services_prices_and_only_its_owner_reads_it,
    an_order_beyond_the_stock_is_refused_and_stores_nothing,
);
