//! A real mesh (auth, product, inventory, order) and what the order tests keep doing: stocking
//! products, placing orders, and reading stock back.

// The bench (`benches/create_order.rs`) includes this file too and uses only part of it.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use agora_contracts::agora::{
    common::v1::Money,
    inventory::v1::{self as inv, inventory_service_client::InventoryServiceClient},
    order::v1::{self as pb, order_service_client::OrderServiceClient},
    product::v1::{self as prod, product_service_client::ProductServiceClient},
};
use agora_order::Hooks;
use agora_platform::config::ServiceKind;
use agora_testkit::{TestBackend, TestMesh, authed, email, eventually};
use tonic::{Status, transport::Channel};

/// A test's mesh and its administrator's token.
pub struct Shop {
    pub mesh: TestMesh,
    pub admin: String,
    pub hooks: Hooks,
}

/// Settings as `(key, value)` pairs the shop can keep.
fn owned(tweak: &[(&str, serde_json::Value)]) -> Vec<(String, serde_json::Value)> {
    tweak
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

impl Shop {
    /// Starts the four services on `backend`; `None` when the backend is down outside CI.
    pub async fn start(backend: TestBackend) -> Option<Self> {
        Self::start_with(backend, &[]).await
    }

    /// Like [`Shop::start`], with order settings.
    pub async fn start_with(
        backend: TestBackend,
        tweak: &[(&str, serde_json::Value)],
    ) -> Option<Self> {
        let tweak = owned(tweak);
        let (shop, ()) = Self::start_around(backend, async |_| ((), tweak)).await?;
        Some(shop)
    }

    /// Like [`Shop::start_with`], with order's settings chosen by `around` once product and
    /// inventory run (e.g. a proxy put in front of one of them); what `around` keeps alive is
    /// handed back beside the shop.
    pub async fn start_around<T>(
        backend: TestBackend,
        around: impl AsyncFnOnce(&TestMesh) -> (T, Vec<(String, serde_json::Value)>),
    ) -> Option<(Self, T)> {
        let mesh = TestMesh::start(backend).await?;
        Some(Self::start_in(mesh, around).await)
    }

    /// Like [`Shop::start_with`], with every service on the Redis at `redis_url` (a
    /// `PrivateRedis` the test may stop).
    pub async fn start_on_redis(
        backend: TestBackend,
        redis_url: String,
        tweak: &[(&str, serde_json::Value)],
    ) -> Option<Self> {
        let tweak = owned(tweak);
        let mesh = TestMesh::start_on_redis(backend, redis_url).await?;
        let (shop, ()) = Self::start_in(mesh, async |_| ((), tweak)).await;
        Some(shop)
    }

    async fn start_in<T>(
        mut mesh: TestMesh,
        around: impl AsyncFnOnce(&TestMesh) -> (T, Vec<(String, serde_json::Value)>),
    ) -> (Self, T) {
        mesh.spawn_service(agora_product::SERVICE).await;
        mesh.spawn_service(agora_inventory::SERVICE).await;
        let (kept, tweak) = around(&mesh).await;
        let tweak: Vec<(&str, serde_json::Value)> =
            tweak.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let hooks = Hooks::default();
        let armed = hooks.clone();
        mesh.spawn_with(ServiceKind::Order, &tweak, move |config, listener, shutdown| {
            let hooks = armed.clone();
            async move { agora_order::serve_with_hooks(&config, listener, shutdown, hooks).await }
        })
        .await;
        let admin = mesh.admin_token().await;
        (Self { mesh, admin, hooks }, kept)
    }

    pub fn orders(&self) -> OrderServiceClient<Channel> {
        OrderServiceClient::new(self.mesh.channel(ServiceKind::Order))
    }

    pub fn inventory(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.mesh.channel(ServiceKind::Inventory))
    }

    /// A new shopper: (user id, token).
    pub async fn shopper(&self) -> (String, String) {
        self.mesh.register(&email("shopper")).await
    }

    /// Creates a product priced `price` EUR cents with `units` in stock; returns its id.
    pub async fn product(&self, name: &str, price: i64, units: i64) -> String {
        let mut products = ProductServiceClient::new(self.mesh.channel(ServiceKind::Product));
        let product = products
            .create_product(authed(
                prod::CreateProductRequest {
                    product: Some(prod::Product {
                        sku: format!("SKU-{}", uuid::Uuid::now_v7().simple()).to_uppercase(),
                        name: name.into(),
                        description: "for tests".into(),
                        category: "things".into(),
                        price: Some(Money {
                            currency_code: "EUR".into(),
                            amount_minor: price,
                        }),
                        ..Default::default()
                    }),
                },
                &self.admin,
            ))
            .await
            .expect("the product is created")
            .into_inner()
            .product
            .expect("a product");
        // The stock record opens from the ProductCreated event.
        let id = product.id.clone();
        eventually(
            "the stock record opens",
            Duration::from_secs(10),
            || async { self.stock(&id).await.ok() },
        )
        .await;
        if units > 0 {
            self.inventory()
                .adjust_stock(authed(
                    inv::AdjustStockRequest {
                        product_id: id.clone(),
                        delta: units,
                        reason: inv::AdjustmentReason::Restock as i32,
                        note: String::new(),
                    },
                    &self.admin,
                ))
                .await
                .expect("restocked");
        }
        id
    }

    /// A product's stock level.
    pub async fn stock(&self, product_id: &str) -> Result<inv::StockLevel, Status> {
        Ok(self
            .inventory()
            .get_stock(authed(
                inv::GetStockRequest {
                    product_id: product_id.into(),
                },
                &self.admin,
            ))
            .await?
            .into_inner()
            .stock_level
            .unwrap_or_default())
    }

    /// Places an order of `lines` as `token` under `key`.
    pub async fn place(
        &self,
        token: &str,
        key: &str,
        lines: &[(&str, i64)],
    ) -> Result<pb::Order, Status> {
        let request = create_request(key, lines);
        Ok(self
            .orders()
            .create_order(authed(request, token))
            .await?
            .into_inner()
            .order
            .unwrap_or_default())
    }

    /// Reads an order as `token`.
    pub async fn get(&self, token: &str, id: &str) -> Result<pb::Order, Status> {
        Ok(self
            .orders()
            .get_order(authed(
                pb::GetOrderRequest {
                    order_id: id.into(),
                },
                token,
            ))
            .await?
            .into_inner()
            .order
            .unwrap_or_default())
    }

    /// Cancels an order as `token`.
    pub async fn cancel(&self, token: &str, id: &str) -> Result<pb::Order, Status> {
        Ok(self
            .orders()
            .cancel_order(authed(
                pb::CancelOrderRequest {
                    order_id: id.into(),
                    reason: "changed my mind".into(),
                },
                token,
            ))
            .await?
            .into_inner()
            .order
            .unwrap_or_default())
    }

    /// How many order rows the order service stored.
    pub async fn order_rows(&self) -> i64 {
        use sqlx::Row;
        let db = self.mesh.database(ServiceKind::Order).await;
        sqlx::query("SELECT COUNT(*) AS n FROM orders")
            .fetch_one(db.pool())
            .await
            .expect("counted")
            .try_get("n")
            .expect("a count")
    }
}

pub fn create_request(key: &str, lines: &[(&str, i64)]) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        idempotency_key: key.into(),
        lines: lines
            .iter()
            .map(|(id, quantity)| pb::OrderLineInput {
                product_id: (*id).into(),
                quantity: *quantity,
            })
            .collect(),
        shipping_address: None,
    }
}

/// Whether a failure is one a client retries with the same key.
pub fn is_retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Aborted | tonic::Code::ResourceExhausted
    )
}

impl Shop {
    /// Places an order as a well-behaved client does: it retries what the contract says to
    /// retry, with the same key.
    pub async fn place_retrying(
        &self,
        token: &str,
        key: &str,
        lines: &[(&str, i64)],
    ) -> Result<pb::Order, Status> {
        let mut tries = 0;
        loop {
            match self.place(token, key, lines).await {
                // Long enough for an upstream's circuit breaker to let a probe through.
                Err(status) if is_retryable(&status) && tries < 200 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Every ledger line of a product.
    pub async fn movements(&self, product_id: &str) -> Vec<inv::Movement> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .inventory()
                .list_movements(authed(
                    inv::ListMovementsRequest {
                        product_id: product_id.into(),
                        page_size: 100,
                        page_token: token.clone(),
                    },
                    &self.admin,
                ))
                .await
                .expect("the ledger is readable")
                .into_inner();
            all.extend(page.movements);
            if page.next_page_token.is_empty() {
                return all;
            }
            token = page.next_page_token;
        }
    }

    /// Asserts the product's level is (on hand, available, reserved) and that its ledger adds
    /// up to exactly that level.
    pub async fn assert_level_explained(&self, product_id: &str, expected: (i64, i64, i64)) {
        let level = self.stock(product_id).await.expect("stock");
        assert_eq!(
            (level.on_hand, level.available, level.reserved),
            expected,
            "the level"
        );
        let ledger = self.movements(product_id).await;
        let sum = ledger.iter().fold((0, 0, 0), |(h, a, r), m| {
            (
                h + m.on_hand_delta,
                a + m.available_delta,
                r + m.reserved_delta,
            )
        });
        assert_eq!(sum, expected, "the ledger explains the level");
    }

    /// The number of reservations inventory holds for `order_id` (0 or 1), by its ledger.
    pub async fn ledger_lines_of(&self, product_id: &str, order_id: &str) -> usize {
        self.movements(product_id)
            .await
            .iter()
            .filter(|m| m.order_id == order_id)
            .count()
    }
}
