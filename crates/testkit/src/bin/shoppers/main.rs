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
//!
//! # Layout
//! This file parses the command line and dispatches: `setup`, `load` and `verify` hold one
//! subcommand each; `orders` one attempt of each order call, `retry` the retrying around it.

use std::time::Duration;

use agora_contracts::agora::auth::v1::{self as auth_pb, auth_service_client::AuthServiceClient};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

mod load;
mod orders;
mod retry;
mod setup;
mod verify;

use retry::{timed, with_retries};

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
    Setup(setup::SetupArgs),
    /// Runs the shoppers and writes one JSON line per idempotency key to stdout.
    Load(load::LoadArgs),
    /// Reads every acknowledged order of a `load` output back through the API.
    Verify(verify::VerifyArgs),
}

// What `setup` and `load` share: both sign the administrator in and add products. No doc
// comment: clap would take it as the subcommand's about.
#[derive(Args)]
struct CommonArgs {
    #[arg(long)]
    auth: String,
    /// The product service, where the administrator adds products.
    #[arg(long)]
    product: String,
    #[arg(long)]
    admin_email: String,
    #[arg(long)]
    admin_password: String,
    /// A tag that makes this run's SKUs, accounts and keys unique.
    #[arg(long)]
    run: String,
}

impl CommonArgs {
    /// Signs the administrator in at `auth` (retried); returns its access token.
    async fn admin_token(&self, auth: &Channel) -> anyhow::Result<String> {
        let (_, token) = login(auth, &self.admin_email, &self.admin_password).await?;
        Ok(token)
    }
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
        Command::Setup(args) => setup::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Verify(args) => verify::run(args).await,
    }
}

/// A lazily connected channel: a restarted server is reached again by the next call.
fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(url.to_owned())
        .with_context(|| format!("the URL {url}"))?
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy())
}

/// Signs `email` in (retried); returns its user id and access token.
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

/// The access token of a sign-in's tokens.
fn access_token(tokens: Option<auth_pb::Tokens>) -> anyhow::Result<String> {
    Ok(tokens.context("tokens")?.access_token)
}
