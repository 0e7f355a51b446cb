//! CreateOrder throughput and saga latency on PostgreSQL + Redis.
//!
//! Starts a test mesh (auth, product, inventory and order, each on a fresh PostgreSQL database,
//! events on the machine's Redis), stocks `PRODUCTS` products, then `CALLERS` concurrent
//! shoppers place one-line orders (each with its own idempotency key) for `MEASURE` after a
//! `WARM_UP`. Every CreateOrder runs the whole saga (prices from product, reserve, store with
//! the outbox event, commit), so its latency is the saga's. Prints orders/s, p50 and p99.
//! Client and all four services share this process and the machine's cores.
//!
//! Run with `cargo bench -p agora-order --bench create_order`.

#![allow(missing_docs)]

#[path = "../tests/order/common.rs"]
mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use agora_testkit::TestBackend;
use common::Shop;

/// Concurrent shoppers.
const CALLERS: usize = 16;
/// Products ordered, spread evenly, so orders contend on rows as a shop's best sellers do.
const PRODUCTS: usize = 10;
/// Load before measuring: connections open, pools fill.
const WARM_UP: Duration = Duration::from_secs(1);
/// How long the run is measured.
const MEASURE: Duration = Duration::from_secs(10);

struct Outcome {
    placed: usize,
    errors: usize,
    latencies: Vec<Duration>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let Some(shop) = Shop::start(TestBackend::Distributed).await else {
        eprintln!("skipped: PostgreSQL or Redis is unreachable (CI=true makes this a failure)");
        return;
    };
    let mut products = Vec::with_capacity(PRODUCTS);
    for i in 0..PRODUCTS {
        products.push(
            shop.product(&format!("Bench product {i}"), 1000, 100_000)
                .await,
        );
    }
    let shop = Arc::new(shop);
    let products = Arc::new(products);
    println!(
        "CreateOrder, {CALLERS} concurrent shoppers, {PRODUCTS} products, {MEASURE:?} after \
         {WARM_UP:?} of warm-up, PostgreSQL + Redis"
    );
    run(&shop, &products, WARM_UP).await;
    let started = Instant::now();
    let outcome = run(&shop, &products, MEASURE).await;
    let elapsed = started.elapsed();
    let mut latencies = outcome.latencies;
    latencies.sort();
    let at = |percent: usize| {
        latencies
            .get((latencies.len() * percent / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{:.0} orders/s   saga p50 {:.1} ms   p99 {:.1} ms   ({} orders, {} errors)",
        outcome.placed as f64 / elapsed.as_secs_f64(),
        at(50).as_secs_f64() * 1000.0,
        at(99).as_secs_f64() * 1000.0,
        outcome.placed,
        outcome.errors,
    );
}

/// `CALLERS` shoppers placing orders for `period`.
async fn run(shop: &Arc<Shop>, products: &Arc<Vec<String>>, period: Duration) -> Outcome {
    let until = Instant::now() + period;
    let mut callers = Vec::with_capacity(CALLERS);
    for c in 0..CALLERS {
        let (shop, products) = (Arc::clone(shop), Arc::clone(products));
        callers.push(tokio::spawn(async move {
            let (_, token) = shop.shopper().await;
            let mut outcome = Outcome {
                placed: 0,
                errors: 0,
                latencies: Vec::new(),
            };
            let mut n = c;
            while Instant::now() < until {
                let product = &products[n % products.len()];
                let key = uuid::Uuid::now_v7().to_string();
                let started = Instant::now();
                match shop.place(&token, &key, &[(product, 1)]).await {
                    Ok(_) => {
                        outcome.latencies.push(started.elapsed());
                        outcome.placed += 1;
                    }
                    Err(_) => outcome.errors += 1,
                }
                n += CALLERS;
            }
            outcome
        }));
    }
    let mut total = Outcome {
        placed: 0,
        errors: 0,
        latencies: Vec::new(),
    };
    for caller in callers {
        if let Ok(outcome) = caller.await {
            total.placed += outcome.placed;
            total.errors += outcome.errors;
            total.latencies.extend(outcome.latencies);
        }
    }
    total
}
