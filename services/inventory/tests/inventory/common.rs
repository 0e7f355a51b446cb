//! A real inventory service beside a real auth service, and what its tests keep doing: opening
//! stock records with real `ProductCreated` events, restocking, reserving, and checking the
//! invariants straight in the service's database.

// `pub` is for the test modules of this binary, the widest reach these helpers have.
#![allow(unreachable_pub)]

use std::time::Duration;

use agora_contracts::agora::{
    events::v1::{EventEnvelope, ProductCreated},
    inventory::v1::{self as pb, inventory_service_client::InventoryServiceClient},
};
use agora_platform::config::ServiceKind;
#[allow(unused_imports)] // Not every test binary that shares this module reads statuses.
pub use agora_testkit::assertions::{missing_resource, reason, violated_fields};
use agora_testkit::{TestBackend, TestMesh, authed, email, eventually};
use prost::{Message, Name};
use sqlx::Row;
use tonic::{Status, transport::Channel};

/// A test's mesh (auth + inventory) and the tokens its callers use.
pub struct Inventory {
    pub mesh: TestMesh,
    /// The administrator's access token.
    pub admin: String,
    /// A service token, as the order service gets it.
    pub order: String,
}

impl Inventory {
    /// Starts auth and inventory on `backend`; `None` when the backend is down outside CI.
    pub async fn start(backend: TestBackend) -> Option<Self> {
        Self::start_with(backend, &[]).await
    }

    /// Like [`Inventory::start`], with inventory settings (`("inventory.sweep_interval", ..)`).
    pub async fn start_with(
        backend: TestBackend,
        tweak: &[(&str, serde_json::Value)],
    ) -> Option<Self> {
        let mut mesh = TestMesh::start(backend).await?;
        mesh.spawn_with(
            ServiceKind::Inventory,
            tweak,
            |config, listener, shutdown| async move {
                agora_inventory::SERVICE
                    .serve(&config, listener, shutdown)
                    .await
            },
        )
        .await;
        let admin = mesh.admin_token().await;
        let order = mesh.service_token(ServiceKind::Order).await;
        Some(Self { mesh, admin, order })
    }

    pub fn client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.mesh.channel(ServiceKind::Inventory))
    }

    /// A signed-in user without roles.
    pub async fn user_token(&self) -> String {
        self.mesh.register(&email("shopper")).await.1
    }

    /// Publishes a `ProductCreated` event, as the product service would.
    pub async fn announce_product(&self, event_id: &str, product_id: &str) {
        let created = ProductCreated {
            product_id: product_id.into(),
            sku: format!("SKU-{product_id}"),
            name: "A product".into(),
            category: "things".into(),
            price: None,
        };
        let envelope = EventEnvelope {
            id: event_id.into(),
            r#type: ProductCreated::full_name(),
            occur_time: Some(std::time::SystemTime::now().into()),
            producer: "product".into(),
            aggregate_id: product_id.into(),
            traceparent: String::new(),
            payload: Some(prost_types::Any {
                type_url: ProductCreated::type_url(),
                value: created.encode_to_vec(),
            }),
        };
        self.mesh
            .bus()
            .await
            .publish(&envelope)
            .await
            .expect("the test bus takes the event");
    }

    /// Waits until a product's stock record is open.
    pub async fn wait_for_record(&self, product_id: &str) -> pb::StockLevel {
        let client = self.client();
        eventually("the stock record opens", Duration::from_secs(15), || {
            let mut client = client.clone();
            let product_id = product_id.to_owned();
            async move {
                client
                    .get_stock(pb::GetStockRequest { product_id })
                    .await
                    .ok()
                    .and_then(|response| response.into_inner().stock_level)
            }
        })
        .await
    }

    /// Announces a new product and waits for its (empty) stock record.
    pub async fn open_product(&self) -> String {
        let product_id = uuid::Uuid::now_v7().to_string();
        self.announce_product(&uuid::Uuid::now_v7().to_string(), &product_id)
            .await;
        self.wait_for_record(&product_id).await;
        product_id
    }

    /// Opens a product with `units` available.
    pub async fn stocked_product(&self, units: i64) -> String {
        let product_id = self.open_product().await;
        self.adjust(
            &product_id,
            units,
            pb::AdjustmentReason::Restock,
            "delivery",
        )
        .await
        .expect("the admin restocks");
        product_id
    }

    pub async fn adjust(
        &self,
        product_id: &str,
        delta: i64,
        reason: pb::AdjustmentReason,
        note: &str,
    ) -> Result<pb::StockLevel, Status> {
        let request = pb::AdjustStockRequest {
            product_id: product_id.into(),
            delta,
            reason: reason as i32,
            note: note.into(),
        };
        Ok(self
            .client()
            .adjust_stock(authed(request, &self.admin))
            .await?
            .into_inner()
            .stock_level
            .unwrap_or_default())
    }

    pub async fn level(&self, product_id: &str) -> pb::StockLevel {
        self.client()
            .get_stock(pb::GetStockRequest {
                product_id: product_id.into(),
            })
            .await
            .expect("the product has a stock record")
            .into_inner()
            .stock_level
            .unwrap_or_default()
    }

    /// Reserves as the order service, with an optional TTL.
    pub async fn reserve(
        &self,
        order_id: &str,
        lines: &[(&str, i64)],
        ttl: Option<Duration>,
    ) -> Result<pb::Reservation, Status> {
        let request = pb::ReserveRequest {
            order_id: order_id.into(),
            lines: lines
                .iter()
                .map(|(product_id, quantity)| pb::ReservationLine {
                    product_id: (*product_id).into(),
                    quantity: *quantity,
                })
                .collect(),
            ttl: ttl.map(|ttl| prost_types::Duration::try_from(ttl).expect("a small TTL")),
        };
        Ok(self
            .client()
            .reserve(authed(request, &self.order))
            .await?
            .into_inner()
            .reservation
            .unwrap_or_default())
    }

    pub async fn commit(&self, order_id: &str) -> Result<pb::Reservation, Status> {
        let request = pb::CommitReservationRequest {
            order_id: order_id.into(),
        };
        Ok(self
            .client()
            .commit_reservation(authed(request, &self.order))
            .await?
            .into_inner()
            .reservation
            .unwrap_or_default())
    }

    /// Releases as a compensation: a committed reservation is left as it is.
    pub async fn release(&self, order_id: &str, reason: &str) -> Result<pb::Reservation, Status> {
        self.release_with(order_id, reason, false).await
    }

    /// Releases as the cancellation of a placed order: a committed reservation's units return.
    pub async fn cancel(&self, order_id: &str, reason: &str) -> Result<pb::Reservation, Status> {
        self.release_with(order_id, reason, true).await
    }

    async fn release_with(
        &self,
        order_id: &str,
        reason: &str,
        return_committed: bool,
    ) -> Result<pb::Reservation, Status> {
        let request = pb::ReleaseReservationRequest {
            order_id: order_id.into(),
            reason: reason.into(),
            return_committed,
        };
        Ok(self
            .client()
            .release_reservation(authed(request, &self.order))
            .await?
            .into_inner()
            .reservation
            .unwrap_or_default())
    }

    /// Every movement of a product, newest first, read page by page.
    pub async fn ledger(&self, product_id: &str) -> Vec<pb::Movement> {
        let mut movements = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListMovementsRequest {
                product_id: product_id.into(),
                page_size: 3,
                page_token,
            };
            let page = self
                .client()
                .list_movements(authed(request, &self.admin))
                .await
                .expect("the admin reads the ledger")
                .into_inner();
            movements.extend(page.movements);
            if page.next_page_token.is_empty() {
                return movements;
            }
            page_token = page.next_page_token;
        }
    }

    /// Checks, in the service's own database, that for every product: no figure is negative,
    /// `on_hand = available + reserved`, the ledger sums to the figures, and `reserved` is what
    /// the pending reservations hold.
    pub async fn assert_invariants(&self) {
        let db = self.mesh.database(ServiceKind::Inventory).await;
        let rows = sqlx::query(
            "SELECT s.product_id, s.on_hand, s.available, s.reserved,
                    CAST(COALESCE((SELECT SUM(m.on_hand_delta) FROM movements m
                                   WHERE m.product_id = s.product_id), 0) AS BIGINT) AS ledger_on_hand,
                    CAST(COALESCE((SELECT SUM(m.available_delta) FROM movements m
                                   WHERE m.product_id = s.product_id), 0) AS BIGINT) AS ledger_available,
                    CAST(COALESCE((SELECT SUM(m.reserved_delta) FROM movements m
                                   WHERE m.product_id = s.product_id), 0) AS BIGINT) AS ledger_reserved,
                    CAST(COALESCE((SELECT SUM(l.quantity) FROM reservation_lines l
                                   JOIN reservations r ON r.order_id = l.order_id
                                   WHERE l.product_id = s.product_id AND r.state = 'pending'), 0)
                         AS BIGINT) AS held
             FROM stock s",
        )
        .fetch_all(db.pool())
        .await
        .expect("the invariant query runs");
        for row in rows {
            let get = |column: &str| row.try_get::<i64, _>(column).expect("a number");
            let product: String = row.try_get("product_id").expect("an id");
            let (on_hand, available, reserved) =
                (get("on_hand"), get("available"), get("reserved"));
            assert!(available >= 0, "{product}: available {available}");
            assert!(reserved >= 0, "{product}: reserved {reserved}");
            assert_eq!(on_hand, available + reserved, "{product}: on hand");
            assert_eq!(get("ledger_on_hand"), on_hand, "{product}: ledger on hand");
            assert_eq!(
                get("ledger_available"),
                available,
                "{product}: ledger available"
            );
            assert_eq!(
                get("ledger_reserved"),
                reserved,
                "{product}: ledger reserved"
            );
            assert_eq!(
                get("held"),
                reserved,
                "{product}: units held by pending reservations"
            );
        }
        db.close().await;
    }
}

/// Figures of a level, for compact assertions.
pub fn figures(level: &pb::StockLevel) -> (i64, i64, i64) {
    (level.on_hand, level.available, level.reserved)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
