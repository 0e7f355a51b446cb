//! What inventory hears and says on the event bus.
//!
//! - Consumes the `product` stream as the group [`GROUP`]: `ProductCreated` opens the product's
//!   stock record with zero units (and its first ledger line); `ProductArchived` marks the record
//!   archived. Archiving is informational only: levels stay readable, pending reservations can
//!   still be committed or released and admins can still adjust leftover goods, because whether
//!   a product may be ordered is the product service's call (the order saga reads it first).
//!   Both are applied once per event id ([`events::remember`] in the same transaction).
//! - Publishes `StockDepleted` (producer [`PRODUCER`](crate::store::PRODUCER)) through its outbox
//!   when a product's available stock reaches zero; see `store::apply_movement`.

use agora_contracts::agora::events::v1::{EventEnvelope, ProductArchived, ProductCreated};
use agora_platform::{
    events::{self, HandlerError},
    time::{now_micros, timestamp_micros},
};
use prost::Name;

use crate::{
    domain::ProductId,
    store::{Store, StoreError},
};

/// The consumer group (and `processed_events` consumer name) of inventory.
pub const GROUP: &str = agora_platform::config::ServiceKind::Inventory.name();
/// The producer whose stream inventory consumes.
pub const PRODUCT_STREAM: &str = events::Stream::Product.name();

/// Applies product events to the stock records.
#[derive(Debug, Clone)]
pub struct ProductEvents {
    store: Store,
}

impl ProductEvents {
    /// A handler writing to `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// A store failure may pass (a database hiccup): the event is delivered again.
impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        HandlerError::Retry(error.into())
    }
}

fn product_id(event: &EventEnvelope, raw: &str) -> Result<ProductId, HandlerError> {
    ProductId::parse(raw).map_err(|error| {
        HandlerError::Reject(format!(
            "event {} names product {raw:?}, which {error}",
            event.id
        ))
    })
}

impl events::Handler for ProductEvents {
    async fn handle(&self, event: &EventEnvelope) -> Result<(), HandlerError> {
        if event.id.is_empty() {
            return Err(HandlerError::Reject("event without an id".into()));
        }
        if event.r#type == ProductCreated::full_name() {
            let created: ProductCreated = events::decode(event)?;
            let product_id = product_id(event, &created.product_id)?;
            let opened = self.store.open(GROUP, &event.id, &product_id).await?;
            if opened {
                tracing::info!(%product_id, "stock record opened");
            }
        } else if event.r#type == ProductArchived::full_name() {
            let archived: ProductArchived = events::decode(event)?;
            let product_id = product_id(event, &archived.product_id)?;
            let archived_at = archived
                .archive_time
                .map_or_else(now_micros, |t| timestamp_micros(&t));
            let known = self
                .store
                .archive(GROUP, &event.id, &product_id, archived_at)
                .await?;
            if !known {
                tracing::warn!(%product_id, "archived product has no stock record");
            }
        }
        // Other product events (ProductUpdated, ...) do not concern stock.
        Ok(())
    }
}
