//! The load of `scripts/bench-watch.sh`: idle WatchOrder streams against a running mesh, and what
//! they cost the order process, read from its `/proc` entries.
//!
//! 1. Registers `--accounts` shoppers, each placing a few orders of the seeded catalog.
//! 2. Opens `--idle` streams spread over those orders and accounts (several HTTP/2 connections,
//!    as a server admits a bounded number of streams per connection), waits until each has its
//!    first message, and reports the order process's resident memory growth per stream and its
//!    CPU time over `--idle-seconds` while the streams stay idle.
//! 3. Closes them, opens `--fan-out` streams on one order, cancels it, and reports the time from
//!    just before the CancelOrder call to each watcher receiving CANCELLED: p50, p99, max.

use std::time::{Duration, Instant};

use agora_contracts::agora::{
    auth::v1::{self as auth_pb, auth_service_client::AuthServiceClient},
    order::v1::{self as pb, order_service_client::OrderServiceClient},
    product::v1::{self as product_pb, product_service_client::ProductServiceClient},
};
use agora_testkit::authed;
use anyhow::Context as _;
use clap::Parser;
use tonic::{Streaming, transport::Channel};

/// Streams per HTTP/2 connection: under the servers' default limit of concurrent streams.
const STREAMS_PER_CONNECTION: usize = 100;
/// Watches being opened at once: well under the server's limit of calls in flight, which
/// sheds the rest (an open stream no longer counts once its first message is out).
const OPENING_AT_ONCE: usize = 64;
/// Orders each account places, whose watches share the idle streams.
const ORDERS_PER_ACCOUNT: usize = 5;

#[derive(Parser)]
#[command(about = "Idle WatchOrder streams and their cost, for scripts/bench-watch.sh")]
struct Cli {
    /// The auth service, e.g. http://127.0.0.1:50051.
    #[arg(long)]
    auth: String,
    /// The product service.
    #[arg(long)]
    product: String,
    /// The order service.
    #[arg(long)]
    order: String,
    /// The order process, whose CPU time and memory are read from /proc.
    #[arg(long)]
    pid: u32,
    /// Clock ticks per second of /proc/<pid>/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    #[arg(long, default_value_t = 4)]
    accounts: usize,
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
    #[arg(long, default_value_t = 1000)]
    fan_out: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let products = products(&cli.product).await?;
    let mut shoppers = Vec::new();
    for n in 0..cli.accounts {
        let token = register(&cli.auth, n).await?;
        let mut orders = Vec::new();
        for k in 0..ORDERS_PER_ACCOUNT {
            orders.push(place(&cli.order, &token, &products, &format!("bench-{n}-{k}")).await?);
        }
        shoppers.push((token, orders));
    }

    // Idle streams: memory per stream, CPU while idle.
    let rss_before = rss_kb(cli.pid)?;
    let channels = channels(&cli.order, cli.idle).await?;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..cli.idle {
        let (token, orders) = &shoppers[i % shoppers.len()];
        let order_id = orders[(i / shoppers.len()) % orders.len()].clone();
        let (channel, token) = (channels[i % channels.len()].clone(), token.clone());
        let gate = std::sync::Arc::clone(&gate);
        opening.spawn(async move {
            let _turn = gate.acquire_owned().await?;
            watch(channel, &token, &order_id).await
        });
    }
    let mut idle = Vec::with_capacity(cli.idle);
    while let Some(stream) = opening.join_next().await {
        idle.push(stream??);
    }
    // Let the allocator and the connections settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = rss_kb(cli.pid)?;
    let ticks_before = cpu_ticks(cli.pid)?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(cli.idle_seconds)).await;
    let ticks = cpu_ticks(cli.pid)? - ticks_before;
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // Tick counts and memory sizes are far below 2^52.
    let (cpu, per_stream) = (
        ticks as f64 / cli.clk_tck as f64 / seconds * 100.0,
        (rss_after as f64 - rss_before as f64) / cli.idle as f64,
    );
    println!(
        "idle: {} streams from {} accounts; order process RSS {rss_before} kB -> {rss_after} kB: \
         {per_stream:.1} kB per stream (aim < 20 kB)",
        cli.idle, cli.accounts
    );
    println!("idle: order process CPU over {seconds:.0} s: {cpu:.2}% of one core (aim < 2%)");
    drop(idle);

    // Fan-out: one change, many watchers of one order.
    let (token, _) = &shoppers[0];
    let order_id = place(&cli.order, token, &products, "bench-fan-out").await?;
    let channels = self::channels(&cli.order, cli.fan_out).await?;
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..cli.fan_out {
        let (channel, token, order_id) = (
            channels[i % channels.len()].clone(),
            token.clone(),
            order_id.clone(),
        );
        let gate = std::sync::Arc::clone(&gate);
        opening.spawn(async move {
            let _turn = gate.acquire_owned().await?;
            watch(channel, &token, &order_id).await
        });
    }
    let mut waiting = tokio::task::JoinSet::new();
    while let Some(stream) = opening.join_next().await {
        let mut stream = stream??;
        waiting.spawn(async move {
            loop {
                match stream.message().await {
                    Ok(Some(message)) => {
                        let cancelled = message
                            .order
                            .is_some_and(|o| o.status == pb::OrderStatus::Cancelled as i32);
                        if cancelled {
                            return Some(Instant::now());
                        }
                    }
                    _ => return None,
                }
            }
        });
    }
    let before_call = Instant::now();
    OrderServiceClient::new(connect(&cli.order).await?)
        .cancel_order(authed(
            pb::CancelOrderRequest {
                order_id,
                reason: "bench".into(),
            },
            token,
        ))
        .await
        .context("cancelling the watched order")?;
    let mut latencies = Vec::with_capacity(cli.fan_out);
    while let Some(received) = waiting.join_next().await {
        let received = received?.context("a watcher never received CANCELLED")?;
        latencies.push(received.saturating_duration_since(before_call));
    }
    latencies.sort();
    let pick = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((latencies.len() as f64 * q) as usize).min(latencies.len() - 1);
        latencies[index].as_secs_f64() * 1000.0
    };
    println!(
        "fan-out: {} watchers of one order, from just before CancelOrder to each CANCELLED: \
         p50 {:.1} ms, p99 {:.1} ms (aim < 50 ms), max {:.1} ms",
        latencies.len(),
        pick(0.50),
        pick(0.99),
        pick(1.0)
    );
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<Channel> {
    tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Enough connections to `url` for `streams` streams.
async fn channels(url: &str, streams: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for _ in 0..streams.div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(connect(url).await?);
    }
    Ok(channels)
}

/// The active products of the seeded catalog.
async fn products(url: &str) -> anyhow::Result<Vec<String>> {
    let page = ProductServiceClient::new(connect(url).await?)
        .list_products(product_pb::ListProductsRequest {
            page_size: 50,
            ..Default::default()
        })
        .await
        .context("listing the catalog")?
        .into_inner();
    let ids: Vec<String> = page.products.into_iter().map(|p| p.id).collect();
    anyhow::ensure!(!ids.is_empty(), "the catalog is empty: seed it first");
    Ok(ids)
}

async fn register(url: &str, n: usize) -> anyhow::Result<String> {
    let response = AuthServiceClient::new(connect(url).await?)
        .register(auth_pb::RegisterRequest {
            email: format!("watcher{n}.{}@bench.test", uuid::Uuid::now_v7().simple()),
            password: "bench watcher 7".into(),
        })
        .await
        .context("registering a watcher")?
        .into_inner();
    Ok(response.tokens.map(|t| t.access_token).unwrap_or_default())
}

/// Places one unit of the first product that has stock; returns the order id.
async fn place(url: &str, token: &str, products: &[String], key: &str) -> anyhow::Result<String> {
    let mut orders = OrderServiceClient::new(connect(url).await?);
    for product_id in products {
        let placed = orders
            .create_order(authed(
                pb::CreateOrderRequest {
                    idempotency_key: format!("{key}-{product_id}"),
                    lines: vec![pb::OrderLineInput {
                        product_id: product_id.clone(),
                        quantity: 1,
                    }],
                    shipping_address: None,
                },
                token,
            ))
            .await;
        if let Ok(placed) = placed {
            return Ok(placed.into_inner().order.unwrap_or_default().id);
        }
    }
    anyhow::bail!("no product of the catalog could be ordered")
}

/// A watch of `order_id` that has received its first message.
async fn watch(
    channel: Channel,
    token: &str,
    order_id: &str,
) -> anyhow::Result<Streaming<pb::WatchOrderResponse>> {
    let mut stream = OrderServiceClient::new(channel)
        .watch_order(authed(
            pb::WatchOrderRequest {
                order_id: order_id.to_owned(),
                resume_token: String::new(),
            },
            token,
        ))
        .await
        .context("opening a watch")?
        .into_inner();
    stream
        .message()
        .await
        .context("the first message")?
        .context("a first message")?;
    Ok(stream)
}

/// The resident memory of `pid`, in kB.
fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

/// The user and system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces), which ends at the last ')'.
    let after = stat.rsplit_once(')').context("a stat line")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}
