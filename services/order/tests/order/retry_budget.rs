//! The saga's retry budget through the real gRPC surface: with the product service failing half
//! the calls it is sent (a [`FlakyProxy`] between order and product), the order service retries
//! within its budget, the orders it cannot retry fail with UNAVAILABLE at once, and nothing is
//! left half-done.
//!
//! Product is the flaky one because pricing is the saga's first step: a call that fails there
//! has touched no stock, so every order ends CONFIRMED or not stored, and the stock says so.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use crate::common::{Shop, create_request};
use agora_contracts::agora::order::v1 as pb;
use agora_platform::{config::ServiceKind, context::REQUEST_ID};
use agora_testkit::{
    TestBackend, authed,
    flaky::{Attempts, FailRule, FlakyProxy},
    on_both_backends,
};
use futures::{StreamExt, stream};
use tonic::{Code, Status};

/// The only call the saga makes to product (marked idempotent: a read).
const BATCH_GET: &str = "/agora.product.v1.ProductService/BatchGetProducts";
/// Orders placed: more retries wanted than the budget has (100 + a fifth of the orders).
const ORDERS: u64 = 240;
/// One order is sent every `PACE`, as steady traffic arrives: the test spans about 8 s on
/// either backend, inside one budget window, however fast the backend answers.
const PACE: Duration = Duration::from_millis(33);
/// Orders in flight at most: a few callers spending one budget together.
const IN_FLIGHT: usize = 8;
/// Units in stock: enough for every order, so stock never refuses one.
const UNITS: i64 = 1_000;
/// The saga's `RetrySettings::default()`: attempts per call, and the budget (a fifth of the
/// calls, plus 10 retries a second counted over a 10 s window).
const MAX_ATTEMPTS: u64 = 3;
const RETRIES_PER_SECOND: u64 = 10;
const WINDOW_SECS: u64 = 10;
/// Longer than any order takes, however its retries went: reaching it means a hang.
const HANG: Duration = Duration::from_secs(10);
/// A failed order answers within this: at most three attempts, 75 ms of backoff between them.
const FAST: Duration = Duration::from_secs(2);

/// The Shop, with order's calls to product going through a proxy that fails every other one.
async fn shop_with_flaky_product(backend: TestBackend) -> Option<(Shop, FlakyProxy)> {
    Shop::start_around(backend, async |mesh| {
        let proxy = FlakyProxy::start(
            mesh.addr(ServiceKind::Product),
            FailRule::every_other("BatchGetProducts"),
        )
        .await
        .expect("the proxy starts");
        let product_url = serde_json::Value::from(proxy.url());
        (
            proxy,
            vec![("services.product.url".to_owned(), product_url)],
        )
    })
    .await
}

/// One CreateOrder: the request id it was sent with, what it answered and how long it took.
struct Placed {
    request_id: String,
    answer: Result<pb::Order, Status>,
    took: Duration,
}

/// Places order `n` for one unit of `item` at `start` + n × [`PACE`], under a request id of
/// its own so that the proxy's counts tell which attempts served it.
async fn place(shop: &Shop, token: &str, item: &str, start: Instant, n: u64) -> Placed {
    let due = start + PACE * u32::try_from(n).expect("a few hundred orders");
    tokio::time::sleep_until(due.into()).await;
    let request_id = format!("budget-{n}-{}", uuid::Uuid::now_v7().simple());
    let mut request = authed(create_request(&format!("order-{n}"), &[(item, 1)]), token);
    request
        .metadata_mut()
        .insert(REQUEST_ID, request_id.parse().expect("an ASCII request id"));
    let started = Instant::now();
    let answer = tokio::time::timeout(HANG, shop.orders().create_order(request))
        .await
        .unwrap_or_else(|_| panic!("order {n} hung for {HANG:?}"))
        .map(|response| response.into_inner().order.unwrap_or_default());
    Placed {
        request_id,
        answer,
        took: started.elapsed(),
    }
}

/// How the orders ended, checked one by one against the attempts the proxy saw for each.
#[derive(Debug, Default)]
struct Tally {
    confirmed: HashSet<String>,
    /// Orders that failed after attempts reached product (the last one failed, and the budget
    /// or the attempts ran out).
    not_retried: u64,
    /// Orders that failed without any attempt reaching product: refused before sending, as the
    /// breaker does while it is open.
    broken: u64,
    /// Attempts beyond the first of each call.
    retries: u64,
}

impl Tally {
    fn add(&mut self, placed: &Placed, seen: Attempts) {
        let id = &placed.request_id;
        assert!(seen.total() <= MAX_ATTEMPTS, "{id}: {seen:?}");
        self.retries += seen.total().saturating_sub(1);
        match &placed.answer {
            Ok(order) => {
                assert_eq!(order.status, pb::OrderStatus::Confirmed as i32, "{order:?}");
                // Priced by exactly one attempt that got through, after the failed ones.
                assert_eq!(seen.forwarded, 1, "{id}: {seen:?}");
                assert!(
                    self.confirmed.insert(order.id.clone()),
                    "one order per call"
                );
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{id}: {status:?}");
                assert!(status.message().contains("product"), "{status:?}");
                assert_eq!(seen.forwarded, 0, "{id}: failed although priced: {seen:?}");
                // A refusal comes at once: the budget or the breaker says no without waiting.
                assert!(placed.took < FAST, "{id} took {:?}", placed.took);
                if seen.total() == 0 {
                    self.broken += 1;
                } else {
                    self.not_retried += 1;
                }
            }
        }
    }
}

async fn with_one_upstream_failing_half_its_calls_upstream_attempts_stay_within_the_retry_budget(
    backend: TestBackend,
) {
    let Some((shop, proxy)) = shop_with_flaky_product(backend).await else {
        return;
    };
    let item = shop.product("Lamp", 1500, UNITS).await;
    let (_, token) = shop.shopper().await;
    assert_eq!(
        proxy.attempts(BATCH_GET),
        Attempts::default(),
        "a clean start"
    );

    let started = Instant::now();
    let placed: Vec<Placed> = stream::iter(0..ORDERS)
        .map(|n| place(&shop, &token, &item, started, n))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let by_request = proxy.attempts_by_request(BATCH_GET);
    let mut tally = Tally::default();
    for order in &placed {
        let seen = by_request
            .get(&order.request_id)
            .copied()
            .unwrap_or_default();
        tally.add(order, seen);
    }
    // Every attempt the proxy saw served one of these orders.
    let ours: HashSet<&String> = placed.iter().map(|p| &p.request_id).collect();
    assert!(
        by_request.keys().all(|id| ours.contains(id)),
        "{by_request:?}"
    );
    let all = proxy.attempts(BATCH_GET);
    let calls = ORDERS - tally.broken;
    assert_eq!(all.total(), calls + tally.retries, "{all:?} {tally:?}");
    assert_eq!(all.forwarded, tally.confirmed.len() as u64, "{all:?}");

    // The budget: a fifth of the calls, plus 10/s over each 10 s window the test spanned.
    // Every call deposits, the ones the breaker refused included.
    let windows = elapsed.as_secs() / WINDOW_SECS + 1;
    let allowed = ORDERS / 5 + RETRIES_PER_SECOND * WINDOW_SECS * windows;
    let summary = format!(
        "{ORDERS} orders in {elapsed:?}: {} confirmed, {} not retried, {} refused by the breaker; \
         {} attempts ({} retries, {allowed} allowed)",
        tally.confirmed.len(),
        tally.not_retried,
        tally.broken,
        all.total(),
        tally.retries,
    );
    println!("{summary}");
    assert!(tally.retries <= allowed, "over budget: {summary}");
    // Without a budget nearly every call would have retried (its first attempt failing); the
    // budget spent what it had, and the calls it could not cover failed instead of piling on.
    assert!(tally.retries >= ORDERS / 5, "the budget is used: {summary}");
    assert!(
        tally.not_retried > 0,
        "some calls could not be retried: {summary}"
    );

    // Nothing half-done: the orders stored are the confirmed ones, and the stock explains them.
    assert_eq!(shop.order_rows().await, tally.confirmed.len() as i64);
    assert_eq!(
        confirmed_rows(&shop).await,
        tally.confirmed.len() as i64,
        "every stored order is confirmed"
    );
    let sold = i64::try_from(tally.confirmed.len()).expect("a few hundred");
    shop.assert_level_explained(&item, (UNITS - sold, UNITS - sold, 0))
        .await;
}

/// How many of order's rows are confirmed, read from its own database.
async fn confirmed_rows(shop: &Shop) -> i64 {
    use sqlx::Row;
    let db = shop.mesh.database(ServiceKind::Order).await;
    sqlx::query("SELECT COUNT(*) AS n FROM orders WHERE status = 'confirmed'")
        .fetch_one(db.pool())
        .await
        .expect("counted")
        .try_get("n")
        .expect("a count")
}

on_both_backends!(
    with_one_upstream_failing_half_its_calls_upstream_attempts_stay_within_the_retry_budget,
);
