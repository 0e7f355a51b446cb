//! Agora's inventory service: stock, its ledger, and reservations for orders.
//!
//! One stock record per product (`on_hand = available + reserved`, none negative), opened with
//! zero units when the product service announces a product (`ProductCreated` on the `product`
//! stream). Every change of a level writes a line of an append-only ledger in the same
//! transaction, so the ledger explains each level line by line. The order service reserves all
//! lines of an order at once (or none), then commits or releases the reservation; a sweeper gives
//! back the units of reservations that expire. `StockDepleted` is published through the outbox
//! when a product's available stock reaches zero.
//!
//! Correctness under concurrency rests on the database alone: conditional updates that refuse to
//! take a figure below zero, row locks taken in one order (reservation, then stock sorted by
//! product id), one write transaction per change, and CHECK constraints as the last line of
//! defence. Nothing is cached in Redis: stock figures change with every reservation and the
//! database is their only truth, so a cached level would only ever be a wrong one.
//!
//! # Layout
//! - [`api`]: the gRPC handlers; each parses its request into a domain value, calls the store and
//!   maps the result.
//! - [`domain`]: ids, lines, TTLs, reasons, movement kinds and their deltas (no I/O).
//! - [`error`]: [`error::ServiceError`], every failure a caller can see.
//! - [`store`]: the SQL of levels and the ledger, and the migrations; [`store::reservations`]:
//!   reserve, commit, release and expire.
//! - [`wire`]: every Protobuf <-> domain mapping, and the one mapping of
//!   [`error::ServiceError`] to rich gRPC statuses; [`wire::requests`]: each request parsed into
//!   its domain value, every violation at once.
//! - [`events`]: the product events consumed, and the event published.
//! - [`sweeper`]: the task that expires reservations.
//! - [`metrics`]: the service's instruments (reservations expired).
//! - [`settings`]: the `[inventory]` settings section and its checks.

use agora_contracts::agora::inventory::v1::inventory_service_server::InventoryServiceServer;
use agora_platform::{config::ServiceKind, events::Stream, service::Startup};

pub mod api;
pub mod domain;
pub mod error;
pub mod events;
pub mod metrics;
pub mod settings;
pub mod store;
pub mod sweeper;
pub mod wire;

pub use settings::InventorySettings;

agora_platform::service!(ServiceKind::Inventory, store::MIGRATIONS, start);

/// Starts the inventory service: stock and reservations, the consumer of product's events, the
/// relay of its outbox and the sweeper of expired reservations.
///
/// # Errors
/// Bad settings, an unreachable database or Redis, or a server failure.
async fn start(startup: Startup<'_>) -> anyhow::Result<()> {
    let settings: InventorySettings = startup.config().section("inventory")?;
    settings.validate()?;
    startup
        .serve(|parts| async move {
            let store = store::Store::new(parts.db().clone());
            parts.publish(Stream::Inventory);
            parts.consume(Stream::Product, events::ProductEvents::new(store.clone()));
            let sweeping = store.clone();
            parts.every(
                settings.sweep_interval,
                "sweeping reservations",
                move || {
                    let store = sweeping.clone();
                    async move { sweeper::sweep(&store).await }
                },
            );
            let api = api::InventoryApi::new(
                store,
                settings.default_reservation_ttl,
                settings.max_reservation_ttl,
            );
            Ok(InventoryServiceServer::new(api))
        })
        .await
}
