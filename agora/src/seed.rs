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

/// One demo product: category, SKU, name, description, price in cents, units in stock.
type Item = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i64,
    i64,
);

/// The demo catalog: five categories, thirty products, prices in USD cents.
const CATALOG: &[Item] = &[
    (
        "coffee",
        "COF-ETH-250",
        "Ethiopia Yirgacheffe, 250 g",
        "Washed heirloom beans with notes of jasmine and lemon.",
        1450,
        40,
    ),
    (
        "coffee",
        "COF-COL-250",
        "Colombia Huila, 250 g",
        "Balanced and sweet: caramel, red apple, cocoa.",
        1290,
        55,
    ),
    (
        "coffee",
        "COF-KEN-250",
        "Kenya Nyeri AA, 250 g",
        "Bright blackcurrant acidity and a syrupy body.",
        1690,
        25,
    ),
    (
        "coffee",
        "COF-BRA-1KG",
        "Brazil Cerrado, 1 kg",
        "Nutty everyday espresso beans.",
        3200,
        18,
    ),
    (
        "coffee",
        "COF-DEC-250",
        "Swiss Water decaf, 250 g",
        "All of the chocolate, none of the caffeine.",
        1390,
        30,
    ),
    (
        "coffee",
        "COF-SAMPLER",
        "Single-origin sampler",
        "Four 100 g bags from four continents.",
        2490,
        12,
    ),
    (
        "kitchen",
        "KIT-V60-02",
        "Pour-over dripper, size 02",
        "Ceramic cone dripper for one to four cups.",
        2800,
        20,
    ),
    (
        "kitchen",
        "KIT-FLT-100",
        "Paper filters, 100 pack",
        "Oxygen-bleached filters for size 02 drippers.",
        650,
        120,
    ),
    (
        "kitchen",
        "KIT-KTL-GOO",
        "Gooseneck kettle, 1 l",
        "Stovetop kettle with a precise spout.",
        5400,
        9,
    ),
    (
        "kitchen",
        "KIT-GRN-HND",
        "Hand grinder",
        "Steel conical burrs, 38 click settings.",
        8900,
        7,
    ),
    (
        "kitchen",
        "KIT-SCL-01",
        "Brew scale with timer",
        "0.1 g resolution, auto-start timer.",
        3900,
        15,
    ),
    (
        "kitchen",
        "KIT-MUG-CER",
        "Stoneware mug, 350 ml",
        "Hand-glazed; each one a little different.",
        2200,
        48,
    ),
    (
        "books",
        "BK-DDIA",
        "Designing Data-Intensive Applications",
        "Reliable, scalable and maintainable systems.",
        4599,
        14,
    ),
    (
        "books",
        "BK-SRE",
        "Site Reliability Engineering",
        "How Google runs production systems.",
        3999,
        10,
    ),
    (
        "books",
        "BK-RUST",
        "The Rust Programming Language",
        "The book, in print, second edition.",
        3995,
        22,
    ),
    (
        "books",
        "BK-ZERO2PROD",
        "Zero To Production In Rust",
        "Backend development, test first.",
        4200,
        16,
    ),
    (
        "books",
        "BK-TAOCP1",
        "The Art of Computer Programming, Vol. 1",
        "Fundamental algorithms.",
        7999,
        3,
    ),
    (
        "books",
        "BK-COFFEE-ATLAS",
        "The World Atlas of Coffee",
        "From beans to brewing, country by country.",
        3500,
        11,
    ),
    (
        "outdoor",
        "OUT-BTL-750",
        "Insulated bottle, 750 ml",
        "Keeps coffee hot for twelve hours.",
        3200,
        35,
    ),
    (
        "outdoor",
        "OUT-PRS-TRV",
        "Travel press",
        "Brew and drink from one unbreakable cup.",
        2900,
        19,
    ),
    (
        "outdoor",
        "OUT-STV-MINI",
        "Pocket stove",
        "Folds to the size of a deck of cards.",
        4500,
        8,
    ),
    (
        "outdoor",
        "OUT-LMP-HD",
        "Head lamp, 400 lm",
        "USB-C rechargeable, red-light mode.",
        3800,
        26,
    ),
    (
        "outdoor",
        "OUT-TRP-2P",
        "Ultralight tarp, two people",
        "Silnylon, 540 g with guylines.",
        12900,
        5,
    ),
    (
        "outdoor",
        "OUT-MUG-TI",
        "Titanium mug, 450 ml",
        "Doubles as a pot on the pocket stove.",
        2700,
        0,
    ),
    (
        "audio",
        "AUD-HP-OPEN",
        "Open-back headphones",
        "Wide stage for long listening sessions.",
        14900,
        6,
    ),
    (
        "audio",
        "AUD-DAC-USB",
        "USB DAC and headphone amplifier",
        "Drives nearly anything, fits a pocket.",
        9900,
        9,
    ),
    (
        "audio",
        "AUD-SPK-BT",
        "Bluetooth speaker",
        "Splash-proof, twenty hours of play.",
        7900,
        21,
    ),
    (
        "audio",
        "AUD-CBL-USBC",
        "USB-C audio cable, 1 m",
        "Braided, with a lifetime warranty.",
        1500,
        60,
    ),
    (
        "audio",
        "AUD-REC-TAPE",
        "Cassette recorder",
        "For the nostalgic; batteries included.",
        5900,
        4,
    ),
    (
        "audio",
        "AUD-VNL-CLN",
        "Record cleaning kit",
        "Brush, fluid and a microfiber cloth.",
        1900,
        33,
    ),
];

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
