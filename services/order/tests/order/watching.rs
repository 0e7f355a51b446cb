//! WatchOrder by push, through the real gRPC surface: changes reach watchers without polling, on
//! one replica and across replicas, resume tokens, the caps on open watches, and the catch-up
//! after the Redis subscription was lost.

use std::time::Duration;

use crate::common::Shop;
use agora_contracts::agora::order::v1::{self as pb, order_service_client::OrderServiceClient};
use agora_order::Step;
use agora_platform::config::ServiceKind;
use agora_testkit::{PrivateRedis, TestBackend, authed, eventually, on_both_backends};
use tokio::sync::oneshot;
use tonic::{Code, Status, Streaming, transport::Channel};
use tonic_types::StatusExt as _;

/// How long a watcher may wait for a message it is owed before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long a watcher listens to check that nothing comes: five periods of the old 200 ms poll.
const QUIET: Duration = Duration::from_secs(1);

fn request(order_id: &str, resume_token: &str) -> pb::WatchOrderRequest {
    pb::WatchOrderRequest {
        order_id: order_id.into(),
        resume_token: resume_token.into(),
    }
}

async fn watch_on(
    mut client: OrderServiceClient<Channel>,
    token: &str,
    order_id: &str,
    resume_token: &str,
) -> Result<Streaming<pb::WatchOrderResponse>, Status> {
    Ok(client
        .watch_order(authed(request(order_id, resume_token), token))
        .await?
        .into_inner())
}

async fn watch(
    shop: &Shop,
    token: &str,
    order_id: &str,
    resume_token: &str,
) -> Result<Streaming<pb::WatchOrderResponse>, Status> {
    watch_on(shop.orders(), token, order_id, resume_token).await
}

/// The next message of a watch (`None`: the stream ended), within [`PATIENCE`].
async fn next(stream: &mut Streaming<pb::WatchOrderResponse>) -> Option<pb::WatchOrderResponse> {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a message in time")
        .expect("no error")
}

/// The status of the order a message carries.
fn status(message: &pb::WatchOrderResponse) -> pb::OrderStatus {
    message
        .order
        .as_ref()
        .and_then(|o| pb::OrderStatus::try_from(o.status).ok())
        .expect("an order with a status")
}

/// Asserts the watch stays silent (and open) for [`QUIET`].
async fn assert_quiet(stream: &mut Streaming<pb::WatchOrderResponse>, why: &str) {
    if let Ok(message) = tokio::time::timeout(QUIET, stream.message()).await {
        panic!("{why}, but the watch got {message:?}");
    }
}

/// A shopper with a CONFIRMED order: (token, order).
async fn confirmed_order(shop: &Shop, item: &str, key: &str) -> (String, pb::Order) {
    let (_, token) = shop.shopper().await;
    let order = shop.place(&token, key, &[(item, 1)]).await.expect("placed");
    assert_eq!(order.status, pb::OrderStatus::Confirmed as i32);
    (token, order)
}

/// Changes an order's row directly in the database, as nothing in the service does: a notice
/// goes nowhere, so only a watch that reads the database by itself could see it.
async fn change_behind_the_services_back(shop: &Shop, order_id: &str, set: &str) {
    let db = shop.mesh.database(ServiceKind::Order).await;
    let changed = sqlx::query(&format!(
        "UPDATE orders SET {set}, version = version + 1 WHERE id = $1"
    ))
    .bind(order_id)
    .execute(db.pool())
    .await
    .expect("updated")
    .rows_affected();
    assert_eq!(changed, 1);
}

async fn a_cancel_reaches_the_watcher_by_push_and_nothing_polls_while_idle(backend: TestBackend) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 3000, 5).await;
    let (token, order) = confirmed_order(&shop, &item, "k-1").await;
    let mut stream = watch(&shop, &token, &order.id, "").await.expect("watching");
    let first = next(&mut stream).await.expect("the current state");
    assert_eq!(status(&first), pb::OrderStatus::Confirmed);
    assert!(!first.resume_token.is_empty(), "every message has a token");

    change_behind_the_services_back(&shop, &order.id, "cancel_reason = 'noted by hand'").await;
    assert_quiet(
        &mut stream,
        "a change nobody announced reaches only a watch that polls the database",
    )
    .await;

    shop.cancel(&token, &order.id).await.expect("cancelled");
    let cancelled = next(&mut stream).await.expect("the change, pushed");
    assert_eq!(status(&cancelled), pb::OrderStatus::Cancelled);
    assert_ne!(cancelled.resume_token, first.resume_token);
    assert!(next(&mut stream).await.is_none(), "a final state ends it");
}

async fn a_change_committed_between_the_first_read_and_the_stream_is_not_lost(
    backend: TestBackend,
) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Rug", 8000, 5).await;
    let (token, order) = confirmed_order(&shop, &item, "k-1").await;
    let pause = shop.hooks.pause_at(Step::WatchAfterRead);
    let watching = {
        let (client, token, id) = (shop.orders(), token.clone(), order.id.clone());
        tokio::spawn(async move { watch_on(client, &token, &id, "").await })
    };
    pause.reached().await;
    // The watch read CONFIRMED and has not started streaming: the cancel commits now.
    shop.cancel(&token, &order.id).await.expect("cancelled");
    pause.resume();
    let mut stream = watching.await.expect("ran").expect("watching");
    let mut last = None;
    while let Some(message) = next(&mut stream).await {
        last = Some(status(&message));
    }
    assert_eq!(last, Some(pb::OrderStatus::Cancelled));
}

async fn a_watch_resumed_with_a_token_gets_only_what_changed_since(backend: TestBackend) {
    let Some(shop) = Shop::start(backend).await else {
        return;
    };
    let item = shop.product("Vase", 1500, 5).await;
    let (token, order) = confirmed_order(&shop, &item, "k-1").await;

    let malformed = watch(&shop, &token, &order.id, "not-a-token")
        .await
        .expect_err("refused");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    let violations = malformed
        .get_details_bad_request()
        .expect("field violations")
        .field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "resume_token");

    let mut stream = watch(&shop, &token, &order.id, "").await.expect("watching");
    let seen = next(&mut stream).await.expect("the current state");
    drop(stream);

    // Watching again from the current state: nothing until the next change.
    let mut resumed = watch(&shop, &token, &order.id, &seen.resume_token)
        .await
        .expect("resumed");
    assert_quiet(&mut resumed, "nothing changed since the token").await;
    shop.cancel(&token, &order.id).await.expect("cancelled");
    let cancelled = next(&mut resumed).await.expect("the change");
    assert_eq!(status(&cancelled), pb::OrderStatus::Cancelled);
    drop(resumed);

    // A watcher that was away when the order changed gets the new state at once.
    let mut late = watch(&shop, &token, &order.id, &seen.resume_token)
        .await
        .expect("resumed");
    let missed = next(&mut late).await.expect("the state it missed");
    assert_eq!(status(&missed), pb::OrderStatus::Cancelled);
    assert_eq!(missed.resume_token, cancelled.resume_token);
    assert!(next(&mut late).await.is_none());

    // A final state the watcher has already seen: the stream ends at once, empty.
    let mut done = watch(&shop, &token, &order.id, &cancelled.resume_token)
        .await
        .expect("resumed");
    assert!(next(&mut done).await.is_none());
}

/// Asserts a refusal past a cap: RESOURCE_EXHAUSTED saying when to retry.
fn assert_capped(refused: &Status) {
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let delay = refused
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("a RetryInfo with a delay");
    assert!(delay > Duration::ZERO);
}

async fn watches_past_a_cap_are_refused_until_streams_end(backend: TestBackend) {
    let Some(shop) = Shop::start_with(
        backend,
        &[
            ("order.watch.max_per_user", 2.into()),
            ("order.watch.max_total", 3.into()),
        ],
    )
    .await
    else {
        return;
    };
    let item = shop.product("Clock", 2000, 10).await;
    let (ada, ada_order) = confirmed_order(&shop, &item, "k-ada").await;
    let (bob, bob_order) = confirmed_order(&shop, &item, "k-bob").await;

    let ada_first = watch(&shop, &ada, &ada_order.id, "").await.expect("1 of 2");
    let mut ada_second = watch(&shop, &ada, &ada_order.id, "").await.expect("2 of 2");
    assert_capped(
        &watch(&shop, &ada, &ada_order.id, "")
            .await
            .expect_err("past ada's cap"),
    );
    let _bob_first = watch(&shop, &bob, &bob_order.id, "")
        .await
        .expect("another user is still served");
    assert_capped(
        &watch(&shop, &bob, &bob_order.id, "")
            .await
            .expect_err("past the process's cap"),
    );

    // A client that goes away gives its slot back.
    drop(ada_first);
    let _bob_second = eventually("the slot of a dropped stream is free", PATIENCE, || async {
        watch(&shop, &bob, &bob_order.id, "").await.ok()
    })
    .await;

    // A stream that ends at a final state gives its slot back.
    let (carl, carl_order) = confirmed_order(&shop, &item, "k-carl").await;
    assert_capped(
        &watch(&shop, &carl, &carl_order.id, "")
            .await
            .expect_err("the process is still at its cap"),
    );
    shop.cancel(&ada, &ada_order.id).await.expect("cancelled");
    while next(&mut ada_second).await.is_some() {}
    let _carl = eventually("the slot of an ended stream is free", PATIENCE, || async {
        watch(&shop, &carl, &carl_order.id, "").await.ok()
    })
    .await;
}

on_both_backends!(
    a_cancel_reaches_the_watcher_by_push_and_nothing_polls_while_idle,
    a_change_committed_between_the_first_read_and_the_stream_is_not_lost,
    a_watch_resumed_with_a_token_gets_only_what_changed_since,
    watches_past_a_cap_are_refused_until_streams_end,
);

/// Another replica of the order service on the same database and Redis as the shop's.
async fn second_replica(
    shop: &Shop,
    token: &str,
    order_id: &str,
) -> (OrderServiceClient<Channel>, oneshot::Sender<()>) {
    let config = shop.mesh.service_config(ServiceKind::Order).clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        agora_order::SERVICE
            .serve(&config, listener, shutdown)
            .await
            .expect("the second replica serves");
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid URL")
        .connect_lazy();
    let client = OrderServiceClient::new(channel);
    eventually("the second replica serves", PATIENCE, || {
        let mut client = client.clone();
        async move {
            client
                .get_order(authed(
                    pb::GetOrderRequest {
                        order_id: order_id.into(),
                    },
                    token,
                ))
                .await
                .ok()
        }
    })
    .await;
    (client, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_replica_reaches_a_watcher_on_another() {
    let Some(shop) = Shop::start(TestBackend::Distributed).await else {
        return;
    };
    let item = shop.product("Shelf", 4000, 5).await;
    let (token, order) = confirmed_order(&shop, &item, "k-1").await;
    let (mut replica_b, _stop) = second_replica(&shop, &token, &order.id).await;

    let mut on_a = watch(&shop, &token, &order.id, "")
        .await
        .expect("watching on A");
    assert_eq!(
        status(&next(&mut on_a).await.expect("the current state")),
        pb::OrderStatus::Confirmed
    );
    replica_b
        .cancel_order(authed(
            pb::CancelOrderRequest {
                order_id: order.id.clone(),
                reason: "changed my mind".into(),
            },
            &token,
        ))
        .await
        .expect("cancelled on B");
    let cancelled = next(&mut on_a).await.expect("B's change, on A");
    assert_eq!(status(&cancelled), pb::OrderStatus::Cancelled);
    assert!(next(&mut on_a).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_the_subscription_was_down_arrives_once_it_is_back() {
    let mut redis = PrivateRedis::start().await;
    let Some(shop) = Shop::start_on_redis(TestBackend::Embedded, redis.url(), &[]).await else {
        return;
    };
    let item = shop.product("Stool", 2500, 5).await;
    let (token, order) = confirmed_order(&shop, &item, "k-1").await;
    let mut stream = watch(&shop, &token, &order.id, "").await.expect("watching");
    assert_eq!(
        status(&next(&mut stream).await.expect("the current state")),
        pb::OrderStatus::Confirmed
    );

    redis.stop();
    // Nobody announces this change: while Redis is down, only the catch-up after the
    // subscriber is back can bring it.
    change_behind_the_services_back(
        &shop,
        &order.id,
        "status = 'cancelled', cancel_reason = 'by the back office'",
    )
    .await;
    redis.restart_empty().await;

    let caught_up = next(&mut stream)
        .await
        .expect("the state read after reconnecting");
    assert_eq!(status(&caught_up), pb::OrderStatus::Cancelled);
    assert!(next(&mut stream).await.is_none());
}
