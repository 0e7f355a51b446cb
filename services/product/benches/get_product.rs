//! GetProduct throughput and latency with the read cache on and off, on PostgreSQL + Redis.
//!
//! Starts a test mesh (auth and product, each on a fresh PostgreSQL database, the cache in the
//! machine's Redis), creates products, then runs the same load twice: `CALLERS` concurrent
//! callers reading random products for `MEASURE` after a `WARM_UP`, first with the cache on,
//! then with `product.cache_ttl = "0s"`. Prints requests/s, p50 and p99 of each run and the cache
//! on/off ratios.
//! Client and server share this process (and the machine's cores), so the figures compare the
//! two settings with each other, not with a production deployment.
//!
//! Run with `cargo bench -p agora-product --bench get_product`.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use agora_contracts::agora::{
    common::v1::Money,
    product::v1::{self as pb, product_service_client::ProductServiceClient},
};
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh, authed};
use serde_json::json;
use tonic::transport::Channel;

/// Concurrent callers, the same for both runs.
const CALLERS: usize = 32;
/// Products the callers read, spread evenly.
const PRODUCTS: usize = 200;
/// Load before measuring: connections open, caches and pools fill.
const WARM_UP: Duration = Duration::from_secs(1);
/// How long each run is measured.
const MEASURE: Duration = Duration::from_secs(5);

/// What one run measured.
struct Run {
    label: &'static str,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    /// Latencies of the successful calls, sorted.
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, percent: usize) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = (self.latencies.len() * percent / 100).min(self.latencies.len() - 1);
        self.latencies[index]
    }

    fn print(&self) {
        println!(
            "{:<10} {:>9.0} req/s   p50 {:>8.3} ms   p99 {:>8.3} ms   ({} calls, {} errors)",
            self.label,
            self.per_second(),
            self.percentile(50).as_secs_f64() * 1000.0,
            self.percentile(99).as_secs_f64() * 1000.0,
            self.requests,
            self.errors,
        );
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let Some(mut mesh) = TestMesh::start(TestBackend::Distributed).await else {
        eprintln!("skipped: PostgreSQL or Redis is unreachable (CI=true makes this a failure)");
        return;
    };
    println!(
        "GetProduct, {CALLERS} concurrent callers, {PRODUCTS} products, {MEASURE:?} per run \
         after {WARM_UP:?} of warm-up, PostgreSQL + Redis"
    );
    let mut runs = Vec::new();
    for (label, ttl) in [("cache on", "5m"), ("cache off", "0s")] {
        let tweak = [("product.cache_ttl", json!(ttl))];
        mesh.spawn_with(
            ServiceKind::Product,
            &tweak,
            |config, listener, shutdown| async move {
                agora_product::SERVICE
                    .serve(&config, listener, shutdown)
                    .await
            },
        )
        .await;
        let channel = mesh.channel(ServiceKind::Product);
        let ids = create_products(&channel, &mesh.admin_token().await).await;
        runs.push(measure(label, &channel, &ids).await);
    }
    let on = runs.iter().find(|r| r.label == "cache on");
    let off = runs.iter().find(|r| r.label == "cache off");
    if let (Some(on), Some(off)) = (on, off) {
        let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
        println!(
            "cache on / cache off = {:.2}x the throughput; p50 {:.2}x and p99 {:.2}x lower",
            ratio(on.per_second(), off.per_second()),
            ratio(
                off.percentile(50).as_secs_f64(),
                on.percentile(50).as_secs_f64()
            ),
            ratio(
                off.percentile(99).as_secs_f64(),
                on.percentile(99).as_secs_f64()
            ),
        );
    }
}

/// Warms up, then measures one run and prints it.
async fn measure(label: &'static str, channel: &Channel, ids: &[String]) -> Run {
    load(channel, ids, WARM_UP).await;
    let mut run = load(channel, ids, MEASURE).await;
    run.label = label;
    run.print();
    run
}

async fn create_products(channel: &Channel, admin: &str) -> Vec<String> {
    let mut client = ProductServiceClient::new(channel.clone());
    let mut ids = Vec::with_capacity(PRODUCTS);
    for i in 0..PRODUCTS {
        let product = pb::Product {
            sku: format!("BENCH-{i}"),
            name: format!("Bench product {i}"),
            description: "A product of the benchmark, with a description of a realistic length. "
                .repeat(4),
            category: "bench".into(),
            price: Some(Money {
                currency_code: "EUR".into(),
                amount_minor: 100 + i64::try_from(i).unwrap_or(0),
            }),
            image_url: format!("https://cdn.example.com/bench/{i}.png"),
            ..Default::default()
        };
        let created = client
            .create_product(authed(
                pb::CreateProductRequest {
                    product: Some(product),
                },
                admin,
            ))
            .await
            .expect("the admin creates bench products")
            .into_inner();
        ids.push(created.product.expect("a created product").id);
    }
    ids
}

/// `CALLERS` concurrent callers reading products for `duration`.
async fn load(channel: &Channel, ids: &[String], duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let mut client = ProductServiceClient::new(channel.clone());
            let ids = ids.to_vec();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                // Each caller walks the products from its own offset with a stride, so the
                // callers spread over every product.
                let mut next = caller * 7;
                while Instant::now() < deadline {
                    let product_id = ids[next % ids.len()].clone();
                    next += 13;
                    let call = Instant::now();
                    match client
                        .get_product(pb::GetProductRequest { product_id })
                        .await
                    {
                        Ok(_) => latencies.push(call.elapsed()),
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut run = Run {
        label: "",
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for caller in futures::future::join_all(callers).await {
        let (latencies, errors) = caller.expect("a caller finished");
        run.requests += latencies.len();
        run.errors += errors;
        run.latencies.extend(latencies);
    }
    run.elapsed = started.elapsed();
    run.latencies.sort_unstable();
    run
}
