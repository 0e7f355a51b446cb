//! The load of `scripts/chaos.sh`: shoppers placing orders against a running distributed mesh
//! while faults hit it, and what each of them was told, for the script to check against the
//! databases once the mesh has settled.
//!
//! - `setup`: the administrator creates a handful of products with limited stock; prints one
//!   JSON line per product (`{"product_id", "on_hand"}`).
//! - `load`: bounded concurrent shoppers register, then place orders, each with its own
//!   idempotency key, over gRPC straight to the order service, over gRPC through the edge's
//!   passthrough, or as JSON through the edge (REST). Now and then a shopper sends an answered
//!   key again, as a client that lost the answer would. A failed CreateOrder is retried with the same key and request (bounded, with
//!   backoff) until it gets a definite answer; some confirmed orders are cancelled, retried the
//!   same way. One JSON line per key: what the client was finally told.
//! - `verify`: signs every shopper in again and reads each acknowledged order back through the
//!   API; one JSON line per order (`{"key", "order_id", "api_status"}`).

use std::time::{Duration, Instant};

use agora_contracts::agora::{
    auth::v1::{self as auth_pb, auth_service_client::AuthServiceClient},
    common::v1::Money,
    inventory::v1::{self as inv_pb, inventory_service_client::InventoryServiceClient},
    order::v1::{self as order_pb, order_service_client::OrderServiceClient},
    product::v1::{self as product_pb, product_service_client::ProductServiceClient},
};
use agora_testkit::authed;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use tonic::{Code, Status, transport::Channel};

/// The password of every shopper.
const PASSWORD: &str = "chaos shopper 7";
/// The longest one attempt of a call may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Orders a shopper places before it registers a new account.
const ORDERS_PER_ACCOUNT: usize = 8;
/// The longest a client keeps retrying one call: past it, the outcome is recorded as unknown.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(about = "The load generator of scripts/chaos.sh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the products and their stock as the administrator.
    Setup {
        #[arg(long)]
        auth: String,
        #[arg(long)]
        product: String,
        #[arg(long)]
        inventory: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: String,
        /// A tag that makes this run's SKUs unique.
        #[arg(long)]
        run: String,
        /// How many products.
        #[arg(long, default_value_t = 5)]
        products: usize,
        /// Units of each in stock at the start.
        #[arg(long, default_value_t = 60)]
        on_hand: i64,
    },
    /// Runs the shoppers and writes one JSON line per idempotency key to stdout.
    Load {
        #[arg(long)]
        auth: String,
        /// The order service, called directly.
        #[arg(long)]
        order: String,
        /// The edge, whose gRPC passthrough reaches the order service too.
        #[arg(long)]
        gateway: String,
        /// The product service, where the administrator adds products during the load.
        #[arg(long)]
        product: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_password: String,
        /// A tag that makes this run's accounts and keys unique.
        #[arg(long)]
        run: String,
        /// Comma-separated product ids to order from.
        #[arg(long, value_delimiter = ',')]
        products: Vec<String>,
        #[arg(long, default_value_t = 16)]
        shoppers: usize,
        /// How long shoppers start new orders, in seconds.
        #[arg(long, default_value_t = 25)]
        seconds: u64,
        /// Every n-th confirmed order of a shopper is cancelled.
        #[arg(long, default_value_t = 4)]
        cancel_every: usize,
        /// Attempts of one call before its outcome is recorded as unknown.
        #[arg(long, default_value_t = 30)]
        attempts: u32,
    },
    /// Reads every acknowledged order of a `load` output back through the API.
    Verify {
        #[arg(long)]
        auth: String,
        #[arg(long)]
        order: String,
        /// The `load` output.
        #[arg(long)]
        records: std::path::PathBuf,
    },
}

/// What a shopper was finally told about one idempotency key.
#[derive(Debug, Serialize, Deserialize)]
struct KeyRecord {
    key: String,
    user_id: String,
    email: String,
    /// "order" (gRPC straight to the order service), "edge-grpc" (the edge's gRPC passthrough)
    /// or "rest" (JSON through the edge).
    via: String,
    /// "ok" (an order came back), "refused" (a definite error) or "unknown" (no definite answer
    /// within the attempts).
    outcome: String,
    /// The order id acknowledged, when one was.
    order_id: Option<String>,
    /// Every distinct order id any attempt acknowledged: more than one breaks idempotency.
    order_ids: Vec<String>,
    /// The status the client was last told ("confirmed", "cancelled", ...).
    status: Option<String>,
    /// The final error code of a refused or unknown key.
    error: Option<String>,
    /// The codes of the failed attempts of CreateOrder, in order (the last one too when no
    /// attempt succeeded).
    retried_on: Vec<String>,
    /// "done", "refused" or "unknown" when a cancel was attempted.
    cancel: Option<String>,
    lines: Vec<(String, i64)>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup {
            auth,
            product,
            inventory,
            admin_email,
            admin_password,
            run,
            products,
            on_hand,
        } => {
            let (_, admin) = login(&channel(&auth)?, &admin_email, &admin_password).await?;
            let mut catalog = ProductServiceClient::new(channel(&product)?);
            let mut stock = InventoryServiceClient::new(channel(&inventory)?);
            for n in 0..products {
                let created = new_product(&mut catalog, &admin, &format!("{run}-{n}"))
                    .await
                    .map_err(|(status, _)| anyhow::anyhow!("creating a product: {status:?}"))?;
                // Inventory opens the stock record when it consumes ProductCreated: wait for it
                // (AdjustStock before then is refused).
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let read = stock
                        .get_stock(inv_pb::GetStockRequest {
                            product_id: created.id.clone(),
                        })
                        .await;
                    match read {
                        Ok(_) => break,
                        Err(status)
                            if status.code() == Code::NotFound && Instant::now() < deadline =>
                        {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => {
                            anyhow::bail!("no stock record for {}: {status:?}", created.id)
                        }
                    }
                }
                stock
                    .adjust_stock(authed(
                        inv_pb::AdjustStockRequest {
                            product_id: created.id.clone(),
                            delta: on_hand,
                            reason: inv_pb::AdjustmentReason::Restock as i32,
                            note: "chaos".into(),
                        },
                        &admin,
                    ))
                    .await
                    .with_context(|| format!("stocking {}", created.id))?;
                println!(
                    "{}",
                    serde_json::json!({"product_id": created.id, "on_hand": on_hand})
                );
            }
            Ok(())
        }
        Command::Load {
            auth,
            order,
            gateway,
            product,
            admin_email,
            admin_password,
            run,
            products,
            shoppers,
            seconds,
            cancel_every,
            attempts,
        } => {
            anyhow::ensure!(!products.is_empty(), "no products to order");
            let product = channel(&product)?;
            let plan = Plan {
                auth: channel(&auth)?,
                order: channel(&order)?,
                gateway: channel(&gateway)?,
                rest: gateway.trim_end_matches('/').to_owned(),
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .build()
                    .context("an HTTP client")?,
                run,
                products,
                until: Instant::now() + Duration::from_secs(seconds),
                cancel_every: cancel_every.max(1),
                attempts: attempts.max(1),
            };
            let plan = std::sync::Arc::new(plan);
            // The administrator adds products while the faults hit, so that product's events
            // flow to inventory then too.
            let (_, admin) = login(&plan.auth, &admin_email, &admin_password).await?;
            let catalog_plan = plan.clone();
            let catalog = tokio::spawn(async move {
                let mut client = ProductServiceClient::new(product);
                let mut n = 0;
                while Instant::now() < catalog_plan.until {
                    n += 1;
                    let tag = format!("{}-load-{n}", catalog_plan.run);
                    if let Err((status, _)) = new_product(&mut client, &admin, &tag).await {
                        eprintln!("creating product {tag}: {status:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
            let mut tasks = tokio::task::JoinSet::new();
            for n in 0..shoppers {
                let plan = plan.clone();
                tasks.spawn(async move { shop(&plan, n).await });
            }
            let mut failed = 0;
            while let Some(done) = tasks.join_next().await {
                match done {
                    Ok(Ok(records)) => {
                        for record in records {
                            println!("{}", serde_json::to_string(&record)?);
                        }
                    }
                    Ok(Err(error)) => {
                        eprintln!("a shopper stopped: {error:#}");
                        failed += 1;
                    }
                    Err(error) => {
                        eprintln!("a shopper panicked: {error}");
                        failed += 1;
                    }
                }
            }
            catalog.await.context("the catalog task")?;
            anyhow::ensure!(failed == 0, "{failed} shoppers stopped early");
            Ok(())
        }
        Command::Verify {
            auth,
            order,
            records,
        } => verify(&channel(&auth)?, &channel(&order)?, &records).await,
    }
}

/// Creates a product tagged `tag` as the administrator (retried like any call).
async fn new_product(
    client: &mut ProductServiceClient<Channel>,
    admin: &str,
    tag: &str,
) -> Result<product_pb::Product, (Status, Vec<String>)> {
    let product = product_pb::Product {
        sku: format!("CHAOS-{}", tag.to_uppercase()),
        name: format!("Chaos item {tag}"),
        category: "chaos".into(),
        price: Some(Money {
            currency_code: "EUR".into(),
            amount_minor: 250,
        }),
        ..Default::default()
    };
    let created = with_retries(30, || {
        let mut client = client.clone();
        let request = authed(
            product_pb::CreateProductRequest {
                product: Some(product.clone()),
            },
            admin,
        );
        async move { client.create_product(request).await }
    })
    .await?;
    created
        .into_inner()
        .product
        .ok_or_else(|| (Status::internal("no product in the answer"), Vec::new()))
}

/// A lazily connected channel: a restarted server is reached again by the next call.
fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(url.to_owned())
        .with_context(|| format!("the URL {url}"))?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy())
}

async fn login(auth: &Channel, email: &str, password: &str) -> anyhow::Result<(String, String)> {
    let reply = with_retries(30, || {
        let mut client = AuthServiceClient::new(auth.clone());
        async move {
            client
                .login(timed(auth_pb::LoginRequest {
                    email: email.into(),
                    password: password.into(),
                }))
                .await
        }
    })
    .await
    .map_err(|(status, _)| anyhow::anyhow!("login of {email}: {status:?}"))?
    .into_inner();
    Ok((reply.user_id, access_token(reply.tokens)?))
}

fn access_token(tokens: Option<auth_pb::Tokens>) -> anyhow::Result<String> {
    Ok(tokens.context("tokens")?.access_token)
}

/// What every shopper shares.
struct Plan {
    auth: Channel,
    order: Channel,
    gateway: Channel,
    /// The edge's URL, for REST.
    rest: String,
    http: reqwest::Client,
    run: String,
    products: Vec<String>,
    until: Instant,
    cancel_every: usize,
    attempts: u32,
}

/// A small deterministic generator (xorshift), so that runs differ only by their faults.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A new account: registered, or signed in when a Register whose answer was lost did land.
/// Returns its user id and access token.
async fn account(plan: &Plan, email: &str) -> anyhow::Result<(String, String)> {
    let registered = with_retries(plan.attempts, || {
        let mut client = AuthServiceClient::new(plan.auth.clone());
        let email = email.to_owned();
        async move {
            client
                .register(timed(auth_pb::RegisterRequest {
                    email,
                    password: PASSWORD.into(),
                }))
                .await
        }
    })
    .await;
    match registered {
        Ok(reply) => {
            let reply = reply.into_inner();
            Ok((reply.user_id, access_token(reply.tokens)?))
        }
        Err((status, _)) if status.code() == Code::AlreadyExists => {
            login(&plan.auth, email, PASSWORD).await
        }
        Err((status, _)) => anyhow::bail!("registering {email}: {status:?}"),
    }
}

/// One shopper: orders until the plan's time is up, as a new account every
/// [`ORDERS_PER_ACCOUNT`] orders (so that users register, and auth's events flow to the user
/// service, while the faults hit).
async fn shop(plan: &Plan, n: usize) -> anyhow::Result<Vec<KeyRecord>> {
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15 ^ (n as u64 + 1).wrapping_mul(0x2545_f491));
    let mut records = Vec::new();
    let mut confirmed = 0;
    let mut k = 0;
    let (mut email, mut user_id, mut token) = (String::new(), String::new(), String::new());
    while Instant::now() < plan.until {
        if k % ORDERS_PER_ACCOUNT == 0 {
            email = format!(
                "shopper-{}-{n}-{}@chaos.test",
                plan.run,
                k / ORDERS_PER_ACCOUNT
            );
            (user_id, token) = account(plan, &email).await?;
        }
        k += 1;
        let via = [Via::Order, Via::EdgeGrpc, Via::Rest][k % 3];
        let mut lines: Vec<(String, i64)> = Vec::new();
        for _ in 0..=dice.below(2) {
            let product = plan.products[dice.below(plan.products.len())].clone();
            if !lines.iter().any(|(p, _)| *p == product) {
                lines.push((product, dice.below(3) as i64 + 1));
            }
        }
        let request = order_pb::CreateOrderRequest {
            idempotency_key: format!("{}-{n}-{k}", plan.run),
            lines: lines
                .iter()
                .map(|(product_id, quantity)| order_pb::OrderLineInput {
                    product_id: product_id.clone(),
                    quantity: *quantity,
                })
                .collect(),
            shipping_address: None,
        };
        let mut record = KeyRecord {
            key: request.idempotency_key.clone(),
            user_id: user_id.clone(),
            email: email.clone(),
            via: via.name().into(),
            outcome: String::new(),
            order_id: None,
            order_ids: Vec::new(),
            status: None,
            error: None,
            retried_on: Vec::new(),
            cancel: None,
            lines,
        };
        let placed = noting_retries(plan.attempts, &mut record.retried_on, || {
            create(plan, via, &token, &request)
        })
        .await;
        match placed {
            Ok(order) => {
                record.order_ids.push(order.id.clone());
                // Now and then the client sends the same key again, as a client that lost the
                // answer would: the same order must come back, and no stock be taken again.
                if dice.below(3) == 0
                    && let Ok(again) =
                        with_retries(plan.attempts, || create(plan, via, &token, &request)).await
                    && !record.order_ids.contains(&again.id)
                {
                    record.order_ids.push(again.id);
                }
                record.outcome = "ok".into();
                record.user_id.clone_from(&order.user_id);
                record.status = Some(order.status.clone());
                record.order_id = Some(order.id.clone());
                if order.status == "confirmed" {
                    confirmed += 1;
                    if confirmed % plan.cancel_every == 0 {
                        cancel(plan, via, &token, &order.id, &mut record).await;
                    }
                }
            }
            Err(status) => {
                record.outcome = if retryable(status.code()) {
                    "unknown"
                } else {
                    "refused"
                }
                .into();
                record.error = Some(format!("{:?}: {}", status.code(), status.message()));
            }
        }
        records.push(record);
    }
    Ok(records)
}

/// How a shopper reaches the order service.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// gRPC, straight to the order service.
    Order,
    /// gRPC through the edge's passthrough.
    EdgeGrpc,
    /// JSON over HTTP through the edge.
    Rest,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Order => "order",
            Via::EdgeGrpc => "edge-grpc",
            Via::Rest => "rest",
        }
    }
}

/// An order as the client was told about it.
struct Placed {
    id: String,
    user_id: String,
    status: String,
}

impl From<order_pb::Order> for Placed {
    fn from(order: order_pb::Order) -> Self {
        Self {
            status: status_name(order.status),
            id: order.id,
            user_id: order.user_id,
        }
    }
}

/// One attempt of CreateOrder.
async fn create(
    plan: &Plan,
    via: Via,
    token: &str,
    request: &order_pb::CreateOrderRequest,
) -> Result<Placed, Status> {
    let channel = match via {
        Via::Order => &plan.order,
        Via::EdgeGrpc => &plan.gateway,
        Via::Rest => {
            let lines: Vec<_> = request
                .lines
                .iter()
                .map(|l| serde_json::json!({"productId": l.product_id, "quantity": l.quantity.to_string()}))
                .collect();
            let body =
                serde_json::json!({"idempotencyKey": request.idempotency_key, "lines": lines});
            return rest(plan, token, "/v1/orders".into(), body).await;
        }
    };
    let mut call = authed(request.clone(), token);
    call.set_timeout(ATTEMPT_TIMEOUT);
    let order = OrderServiceClient::new(channel.clone())
        .create_order(call)
        .await?
        .into_inner()
        .order
        .ok_or_else(|| Status::internal("an answer without its order"))?;
    Ok(order.into())
}

/// One attempt of CancelOrder.
async fn cancel_once(plan: &Plan, via: Via, token: &str, order_id: &str) -> Result<Placed, Status> {
    let reason = "changed my mind";
    let channel = match via {
        Via::Order => &plan.order,
        Via::EdgeGrpc => &plan.gateway,
        Via::Rest => {
            let path = format!("/v1/orders/{order_id}:cancel");
            return rest(plan, token, path, serde_json::json!({"reason": reason})).await;
        }
    };
    let mut call = authed(
        order_pb::CancelOrderRequest {
            order_id: order_id.into(),
            reason: reason.into(),
        },
        token,
    );
    call.set_timeout(ATTEMPT_TIMEOUT);
    let order = OrderServiceClient::new(channel.clone())
        .cancel_order(call)
        .await?
        .into_inner()
        .order
        .ok_or_else(|| Status::internal("an answer without its order"))?;
    Ok(order.into())
}

/// One POST through the edge, its answer read as an order, its error as a gRPC status (from
/// the `google.rpc.Status` body; a lost connection is UNKNOWN, a refused one UNAVAILABLE).
async fn rest(
    plan: &Plan,
    token: &str,
    path: String,
    body: serde_json::Value,
) -> Result<Placed, Status> {
    let lost = |e: reqwest::Error| {
        if e.is_connect() {
            Status::unavailable(format!("REST: {e}"))
        } else if e.is_timeout() {
            Status::deadline_exceeded(format!("REST: {e}"))
        } else {
            Status::unknown(format!("REST: {e}"))
        }
    };
    let response = plan
        .http
        .post(format!("{}{path}", plan.rest))
        .bearer_auth(token)
        .timeout(ATTEMPT_TIMEOUT)
        .json(&body)
        .send()
        .await
        .map_err(lost)?;
    let ok = response.status().is_success();
    let json: serde_json::Value = response.json().await.map_err(lost)?;
    if !ok {
        let code = json["code"]
            .as_i64()
            .and_then(|c| i32::try_from(c).ok())
            .map_or(Code::Unknown, Code::from_i32);
        return Err(Status::new(
            code,
            json["message"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let order = &json["order"];
    let text = |field: &str| order[field].as_str().unwrap_or_default().to_owned();
    Ok(Placed {
        id: text("id"),
        user_id: text("userId"),
        status: text("status")
            .trim_start_matches("ORDER_STATUS_")
            .to_lowercase(),
    })
}

async fn cancel(plan: &Plan, via: Via, token: &str, order_id: &str, record: &mut KeyRecord) {
    match with_retries(plan.attempts, || cancel_once(plan, via, token, order_id)).await {
        Ok(order) => {
            record.cancel = Some("done".into());
            record.status = Some(order.status);
        }
        Err((status, _)) if retryable(status.code()) => record.cancel = Some("unknown".into()),
        Err(_) => record.cancel = Some("refused".into()),
    }
}

/// The codes after which the outcome of a call is not known, or it may succeed if sent again.
fn retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Internal
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Unauthenticated
    )
}

/// Calls `attempt` until it succeeds, fails for good, or `attempts` or [`GIVE_UP_AFTER`] run
/// out (backoff 50 ms doubling to 1 s). The error comes with the codes of every failed attempt.
async fn with_retries<T, F, Fut>(attempts: u32, attempt: F) -> Result<T, (Status, Vec<String>)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut codes = Vec::new();
    noting_retries(attempts, &mut codes, attempt)
        .await
        .map_err(|status| (status, codes))
}

/// [`with_retries`], noting the code of every failed attempt in `codes`, success or not.
async fn noting_retries<T, F, Fut>(
    attempts: u32,
    codes: &mut Vec<String>,
    mut attempt: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut backoff = Duration::from_millis(50);
    let give_up = Instant::now() + GIVE_UP_AFTER;
    for n in 1..=attempts {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(status) => {
                codes.push(format!("{:?}", status.code()));
                if !retryable(status.code()) || n == attempts || Instant::now() >= give_up {
                    return Err(status);
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    Err(Status::unknown("no attempt was made"))
}

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(ATTEMPT_TIMEOUT);
    request
}

fn status_name(status: i32) -> String {
    order_pb::OrderStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("ORDER_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("unknown-{status}"))
}

/// Reads every acknowledged order back as its shopper.
async fn verify(auth: &Channel, order: &Channel, records: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(records)
        .with_context(|| format!("reading {}", records.display()))?;
    let mut by_email: std::collections::BTreeMap<String, Vec<KeyRecord>> = Default::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let record: KeyRecord = serde_json::from_str(line).context("a load record")?;
        by_email
            .entry(record.email.clone())
            .or_default()
            .push(record);
    }
    for (email, records) in by_email {
        let (_, token) = login(auth, &email, PASSWORD).await?;
        for record in records {
            let Some(order_id) = record.order_id else {
                continue;
            };
            let read = with_retries(10, || {
                let mut client = OrderServiceClient::new(order.clone());
                let call = authed(
                    order_pb::GetOrderRequest {
                        order_id: order_id.clone(),
                    },
                    &token,
                );
                async move { client.get_order(call).await }
            })
            .await;
            let api_status = match read {
                Ok(reply) => reply
                    .into_inner()
                    .order
                    .filter(|o| o.id == order_id)
                    .map_or_else(|| "wrong-order".into(), |o| status_name(o.status)),
                Err((status, _)) => format!("error:{:?}", status.code()),
            };
            println!(
                "{}",
                serde_json::json!({"key": record.key, "order_id": order_id, "api_status": api_status})
            );
        }
    }
    Ok(())
}
