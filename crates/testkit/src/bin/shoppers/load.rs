//! `load`: bounded concurrent shoppers register and place orders (and cancel some) while the
//! faults hit, and what each was finally told.

use std::time::{Duration, Instant};

use agora_contracts::agora::{
    auth::v1::{self as auth_pb, auth_service_client::AuthServiceClient},
    order::v1 as order_pb,
    product::v1::product_service_client::ProductServiceClient,
};
use anyhow::Context as _;
use clap::Args;
use tonic::{Code, transport::Channel};

use crate::{
    CommonArgs, KeyRecord, ORDERS_PER_ACCOUNT, PASSWORD, access_token, channel, login,
    orders::{Via, cancel, create},
    retry::{noting_retries, retryable, timed, with_retries},
    setup::new_product,
};

// No doc comment: clap would take it as the subcommand's about, which the variant gives.
#[derive(Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The order service, called directly.
    #[arg(long)]
    order: String,
    /// The edge, whose gRPC passthrough reaches the order service too.
    #[arg(long)]
    gateway: String,
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
}

/// Runs the shoppers and prints one JSON line per idempotency key.
pub(crate) async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let LoadArgs {
        common,
        order,
        gateway,
        products,
        shoppers,
        seconds,
        cancel_every,
        attempts,
    } = args;
    anyhow::ensure!(!products.is_empty(), "no products to order");
    let product = channel(&common.product)?;
    let plan = Plan {
        auth: channel(&common.auth)?,
        order: channel(&order)?,
        gateway: channel(&gateway)?,
        rest: gateway.trim_end_matches('/').to_owned(),
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .build()
            .context("an HTTP client")?,
        run: common.run.clone(),
        products,
        until: Instant::now() + Duration::from_secs(seconds),
        cancel_every: cancel_every.max(1),
        attempts: attempts.max(1),
    };
    let plan = std::sync::Arc::new(plan);
    // The administrator adds products while the faults hit, so that product's events
    // flow to inventory then too.
    let admin = common.admin_token(&plan.auth).await?;
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

/// What every shopper shares.
pub(crate) struct Plan {
    pub(crate) auth: Channel,
    pub(crate) order: Channel,
    pub(crate) gateway: Channel,
    /// The edge's URL, for REST.
    pub(crate) rest: String,
    pub(crate) http: reqwest::Client,
    pub(crate) run: String,
    pub(crate) products: Vec<String>,
    pub(crate) until: Instant,
    pub(crate) cancel_every: usize,
    pub(crate) attempts: u32,
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
