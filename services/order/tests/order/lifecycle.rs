//! Cancel, List and Watch through the real gRPC surface, on both backends.

use std::{sync::atomic::Ordering, time::Duration};

use crate::common::Shop;
use agora_contracts::agora::order::v1 as pb;
use agora_testkit::{TestBackend, authed, eventually, on_both_backends};
use tonic::Code;

async fn cancel_returns_the_stock_twice_is_harmless_and_strangers_get_not_found(
    backend: TestBackend,
) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Chair", 9900, 4).await;
    let (_, token) = shop.shopper().await;
    let order = shop
        .place(&token, "k-1", &[(&item, 3)])
        .await
        .expect("placed");
    shop.assert_level_explained(&item, (1, 1, 0)).await;

    let (_, stranger) = shop.shopper().await;
    let hidden = shop
        .cancel(&stranger, &order.id)
        .await
        .expect_err("not theirs");
    assert_eq!(hidden.code(), Code::NotFound);
    shop.assert_level_explained(&item, (1, 1, 0)).await;

    let cancelled = shop.cancel(&token, &order.id).await.expect("cancelled");
    assert_eq!(cancelled.status, pb::OrderStatus::Cancelled as i32);
    assert_eq!(cancelled.cancel_reason, "changed my mind");
    shop.assert_level_explained(&item, (4, 4, 0)).await;
    let again = shop.cancel(&token, &order.id).await.expect("harmless");
    assert_eq!(again, cancelled, "a second cancel changes nothing");
    shop.assert_level_explained(&item, (4, 4, 0)).await;

    let events = shop.mesh.bus().await;
    eventually(
        "both events are published",
        Duration::from_secs(10),
        || async {
            let published = events.events("order").await.ok()?;
            let types: Vec<String> = published.into_iter().map(|e| e.r#type).collect();
            (types
                == [
                    "agora.events.v1.OrderPlaced",
                    "agora.events.v1.OrderCancelled",
                ])
            .then_some(())
        },
    )
    .await;
}

async fn orders_are_listed_newest_first_page_by_page_and_admins_filter_everyones(
    backend: TestBackend,
) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Cup", 500, 20).await;
    let (ada_id, ada) = shop.shopper().await;
    let (_, bob) = shop.shopper().await;
    let mut placed = Vec::new();
    for i in 0..5 {
        placed.push(
            shop.place(&ada, &format!("a-{i}"), &[(&item, 1)])
                .await
                .expect("placed")
                .id,
        );
    }
    let bobs = shop
        .place(&bob, "b-0", &[(&item, 1)])
        .await
        .expect("placed");
    shop.cancel(&ada, &placed[1]).await.expect("cancelled");

    let list = |token: String, request: pb::ListOrdersRequest| {
        let mut client = shop.orders();
        async move {
            client
                .list_orders(authed(request, &token))
                .await
                .map(|r| r.into_inner())
        }
    };
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list(
            ada.clone(),
            pb::ListOrdersRequest {
                page_size: 2,
                page_token: page_token.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("a page");
        assert!(page.orders.len() <= 2);
        seen.extend(page.orders.into_iter().map(|o| o.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let newest_first: Vec<String> = placed.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "own orders only, newest first");

    let denied = list(
        ada.clone(),
        pb::ListOrdersRequest {
            user_id: "-".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("not an admin");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let everyone = list(
        shop.admin.clone(),
        pb::ListOrdersRequest {
            user_id: "-".into(),
            ..Default::default()
        },
    )
    .await
    .expect("admin lists all");
    assert_eq!(everyone.orders.len(), 6);
    assert_eq!(everyone.orders[0].id, bobs.id);
    let cancelled = list(
        shop.admin.clone(),
        pb::ListOrdersRequest {
            user_id: ada_id,
            status: pb::OrderStatus::Cancelled as i32,
            ..Default::default()
        },
    )
    .await
    .expect("filtered");
    let ids: Vec<String> = cancelled.orders.into_iter().map(|o| o.id).collect();
    assert_eq!(ids, [placed[1].clone()]);
    let foreign = list(
        ada.clone(),
        pb::ListOrdersRequest {
            page_token: "123.nope.abc".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("a bad token");
    assert_eq!(foreign.code(), Code::InvalidArgument);
}

async fn watch_streams_pending_confirmed_cancelled_to_the_owner_only(backend: TestBackend) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Desk", 25000, 2).await;
    let (_, token) = shop.shopper().await;
    shop.hooks.hold_before_commit.store(true, Ordering::SeqCst);
    let placing = {
        let mut client = shop.orders();
        let request = authed(crate::common::create_request("k-1", &[(&item, 1)]), &token);
        tokio::spawn(async move { client.create_order(request).await })
    };
    let pending = eventually("the order is stored", Duration::from_secs(10), || async {
        let page = shop
            .orders()
            .list_orders(authed(pb::ListOrdersRequest::default(), &token))
            .await
            .ok()?
            .into_inner();
        page.orders.into_iter().next()
    })
    .await;
    assert_eq!(pending.status, pb::OrderStatus::Pending as i32);

    let (_, stranger) = shop.shopper().await;
    let refused = shop
        .orders()
        .watch_order(authed(
            pb::WatchOrderRequest {
                order_id: pending.id.clone(),
                ..Default::default()
            },
            &stranger,
        ))
        .await
        .expect_err("not theirs");
    assert_eq!(refused.code(), Code::NotFound);

    let mut stream = shop
        .orders()
        .watch_order(authed(
            pb::WatchOrderRequest {
                order_id: pending.id.clone(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("watching")
        .into_inner();
    let status = |m: Option<pb::WatchOrderResponse>| m.and_then(|m| m.order).map(|o| o.status);
    assert_eq!(
        status(next(&mut stream).await),
        Some(pb::OrderStatus::Pending as i32)
    );
    shop.hooks.resume.notify_one();
    assert_eq!(
        status(next(&mut stream).await),
        Some(pb::OrderStatus::Confirmed as i32)
    );
    let placed = placing
        .await
        .expect("ran")
        .expect("placed")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(placed.status, pb::OrderStatus::Confirmed as i32);
    shop.cancel(&token, &pending.id).await.expect("cancelled");
    assert_eq!(
        status(next(&mut stream).await),
        Some(pb::OrderStatus::Cancelled as i32)
    );
    assert_eq!(
        next(&mut stream).await,
        None,
        "the stream ends at a final state"
    );
}

/// The next message of a watch, within 10 s.
async fn next(
    stream: &mut tonic::Streaming<pb::WatchOrderResponse>,
) -> Option<pb::WatchOrderResponse> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message in time")
        .expect("no error")
}

on_both_backends!(
    cancel_returns_the_stock_twice_is_harmless_and_strangers_get_not_found,
    orders_are_listed_newest_first_page_by_page_and_admins_filter_everyones,
    watch_streams_pending_confirmed_cancelled_to_the_owner_only,
);
