//! `verify`: every acknowledged order of a `load` output, read back through the API.

use agora_contracts::agora::order::v1::{
    self as order_pb, order_service_client::OrderServiceClient,
};
use agora_testkit::authed;
use anyhow::Context as _;
use clap::Args;
use tonic::transport::Channel;

use crate::{KeyRecord, PASSWORD, channel, login, orders::status_name, retry::with_retries};

// No doc comment: clap would take it as the subcommand's about, which the variant gives.
#[derive(Args)]
pub(crate) struct VerifyArgs {
    #[arg(long)]
    auth: String,
    #[arg(long)]
    order: String,
    /// The `load` output.
    #[arg(long)]
    records: std::path::PathBuf,
}

/// Reads every acknowledged order of `args.records` back as its shopper.
pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    verify(&channel(&args.auth)?, &channel(&args.order)?, &args.records).await
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
