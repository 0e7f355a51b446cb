//! `setup`: the administrator creates the products the load orders from, with their stock.

use std::time::{Duration, Instant};

use agora_contracts::agora::{
    common::v1::Money,
    inventory::v1::{self as inv_pb, inventory_service_client::InventoryServiceClient},
    product::v1::{self as product_pb, product_service_client::ProductServiceClient},
};
use agora_testkit::authed;
use anyhow::Context as _;
use clap::Args;
use tonic::{Code, Status, transport::Channel};

use crate::{CommonArgs, channel, retry::with_retries};

// No doc comment: clap would take it as the subcommand's about, which the variant gives.
#[derive(Args)]
pub(crate) struct SetupArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long)]
    inventory: String,
    /// How many products.
    #[arg(long, default_value_t = 5)]
    products: usize,
    /// Units of each in stock at the start.
    #[arg(long, default_value_t = 60)]
    on_hand: i64,
}

/// Creates the products and their stock, printing one JSON line per product.
pub(crate) async fn run(args: SetupArgs) -> anyhow::Result<()> {
    let SetupArgs {
        common,
        inventory,
        products,
        on_hand,
    } = args;
    let admin = common.admin_token(&channel(&common.auth)?).await?;
    let mut catalog = ProductServiceClient::new(channel(&common.product)?);
    let mut stock = InventoryServiceClient::new(channel(&inventory)?);
    for n in 0..products {
        let created = new_product(&mut catalog, &admin, &format!("{}-{n}", common.run))
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
                Err(status) if status.code() == Code::NotFound && Instant::now() < deadline => {
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

/// Creates a product tagged `tag` as the administrator (retried like any call).
pub(crate) async fn new_product(
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
