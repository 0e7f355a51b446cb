//! Demo data: a small catalog with stock, loaded through the services' own gRPC APIs as the
//! administrator (so every rule, event and ledger line applies, exactly as for real data).

use std::time::Duration;

use agora_contracts::agora::{
    auth::v1::{LoginRequest, auth_service_client::AuthServiceClient},
    common::v1::Money,
    inventory::v1::{
        AdjustStockRequest, AdjustmentReason, GetStockRequest,
        inventory_service_client::InventoryServiceClient,
    },
    product::v1::{
        CreateProductRequest, ListProductsRequest, Product,
        product_service_client::ProductServiceClient,
    },
};
use agora_platform::{client::service_channel, config::ServiceKind};
use anyhow::Context as _;
use tonic::{Code, Request, transport::Channel};

mod catalog;

use catalog::CATALOG;

/// Where the seeder finds the services and the administrator.
pub(crate) struct Seeder {
    auth: AuthServiceClient<Channel>,
    product: ProductServiceClient<Channel>,
    inventory: InventoryServiceClient<Channel>,
}

/// What seeding did.
pub(crate) enum Outcome {
    /// The catalog already had products: nothing was changed.
    AlreadySeeded,
    /// Products created and the units put in stock.
    Seeded { products: usize, units: i64 },
}

impl Seeder {
    /// A seeder for the services at the configured URLs.
    pub(crate) fn new(settings: &agora_platform::config::Settings) -> anyhow::Result<Self> {
        Ok(Self {
            auth: AuthServiceClient::new(service_channel(settings, ServiceKind::Auth)?),
            product: ProductServiceClient::new(service_channel(settings, ServiceKind::Product)?),
            inventory: InventoryServiceClient::new(service_channel(
                settings,
                ServiceKind::Inventory,
            )?),
        })
    }

    /// Loads the demo catalog unless the catalog has products already (so it is safe to run
    /// again), signing in as the administrator.
    pub(crate) async fn seed(
        &mut self,
        admin_email: &str,
        admin_password: &str,
    ) -> anyhow::Result<Outcome> {
        let existing = self
            .product
            .list_products(ListProductsRequest {
                page_size: 1,
                include_archived: false,
                ..ListProductsRequest::default()
            })
            .await
            .context("listing the catalog")?
            .into_inner();
        if !existing.products.is_empty() {
            return Ok(Outcome::AlreadySeeded);
        }
        let token = self
            .auth
            .login(LoginRequest {
                email: admin_email.into(),
                password: admin_password.into(),
            })
            .await
            .context("signing in as the administrator")?
            .into_inner()
            .tokens
            .context("no tokens in the login answer")?
            .access_token;

        let mut units = 0;
        for &(category, sku, name, description, cents, stock) in CATALOG {
            let product = Product {
                sku: sku.into(),
                name: name.into(),
                description: description.into(),
                category: category.into(),
                price: Some(Money {
                    currency_code: "USD".into(),
                    amount_minor: cents,
                }),
                ..Product::default()
            };
            let created = self
                .product
                .create_product(authed(
                    CreateProductRequest {
                        product: Some(product),
                    },
                    &token,
                )?)
                .await
                .with_context(|| format!("creating {sku}"))?
                .into_inner()
                .product
                .context("no product in the answer")?;
            if stock > 0 {
                self.restock(&created.id, stock, &token)
                    .await
                    .with_context(|| format!("stocking {sku}"))?;
                units += stock;
            }
        }
        Ok(Outcome::Seeded {
            products: CATALOG.len(),
            units,
        })
    }

    /// Puts units in stock once the inventory has opened the product's record (it does so when
    /// it consumes the ProductCreated event, a moment after the product exists).
    async fn restock(&mut self, product_id: &str, units: i64, token: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let opened = self
                .inventory
                .get_stock(GetStockRequest {
                    product_id: product_id.into(),
                })
                .await;
            match opened {
                Ok(_) => break,
                Err(status) if status.code() == Code::NotFound => {}
                Err(status) => return Err(status).context("reading stock"),
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the inventory did not open a stock record within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.inventory
            .adjust_stock(authed(
                AdjustStockRequest {
                    product_id: product_id.into(),
                    delta: units,
                    reason: AdjustmentReason::Restock.into(),
                    note: "demo data".into(),
                },
                token,
            )?)
            .await?;
        Ok(())
    }
}

fn authed<T>(message: T, token: &str) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}
