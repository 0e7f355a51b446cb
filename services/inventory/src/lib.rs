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
//! - [`api`]: the gRPC handlers; each parses its request into domain types, calls the store and
//!   maps the result.
//! - [`domain`]: ids, lines, TTLs, reasons, movement kinds and their deltas (no I/O).
//! - [`store`]: the SQL of levels and the ledger, and the migrations; [`store::reservations`]:
//!   reserve, commit, release and expire.
//! - [`wire`]: store results as Protobuf messages, store failures as rich gRPC statuses.
//! - [`events`]: the product events consumed, and the event published.
//! - [`sweeper`]: the task that expires reservations.

use std::time::Duration;

use agora_contracts::agora::inventory::v1::inventory_service_server::InventoryServiceServer;
use agora_platform::{
    config::{Config, ServiceKind},
    events::Stream,
    service::{Service, Serving, Shutdown, Startup},
};
use serde::Deserialize;
use tokio::net::TcpListener;

pub mod api;
pub mod domain;
pub mod events;
pub mod store;
pub mod sweeper;
pub mod wire;

/// The `[inventory]` settings section (`AGORA_INVENTORY__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventorySettings {
    /// How long a reservation holds when the caller asks for no TTL.
    #[serde(with = "humantime_serde")]
    pub default_reservation_ttl: Duration,
    /// The longest TTL a caller may ask for; at most 1 hour, the contract's bound.
    #[serde(with = "humantime_serde")]
    pub max_reservation_ttl: Duration,
    /// How often the sweeper looks for expired reservations; an expired reservation gives its
    /// units back within about this long.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for InventorySettings {
    fn default() -> Self {
        Self {
            default_reservation_ttl: Duration::from_secs(15 * 60),
            max_reservation_ttl: domain::MAX_TTL,
            sweep_interval: Duration::from_secs(5),
        }
    }
}

impl InventorySettings {
    /// Checks the settings against each other and the contract.
    ///
    /// # Errors
    /// A setting out of range, named in the message.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (domain::MIN_TTL..=domain::MAX_TTL).contains(&self.max_reservation_ttl),
            "inventory.max_reservation_ttl must be between 1s and 1h (the contract's bounds)"
        );
        anyhow::ensure!(
            (domain::MIN_TTL..=self.max_reservation_ttl).contains(&self.default_reservation_ttl),
            "inventory.default_reservation_ttl must be between 1s and inventory.max_reservation_ttl"
        );
        anyhow::ensure!(
            self.sweep_interval >= Duration::from_millis(10),
            "inventory.sweep_interval must be at least 10ms"
        );
        Ok(())
    }
}

/// The inventory service, as the mesh runs it.
pub const SERVICE: Service = Service {
    kind: ServiceKind::Inventory,
    migrations: store::MIGRATIONS,
    serve: serve_owned,
};

/// Serves the inventory service on `listener` until `shutdown` resolves.
///
/// # Errors
/// Bad settings, an unreachable database or Redis, or a server failure.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let settings: InventorySettings = config.section("inventory")?;
    settings.validate()?;
    Startup::new(config, ServiceKind::Inventory, store::MIGRATIONS)
        .serve(listener, shutdown, |parts| async move {
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

/// [`serve`] with its arguments owned, for [`SERVICE`].
fn serve_owned(config: Config, listener: TcpListener, shutdown: Shutdown) -> Serving {
    Box::pin(async move { serve(&config, listener, shutdown).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<InventorySettings, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn the_default_settings_work_on_a_laptop() {
        let defaults = InventorySettings::default();
        assert!(defaults.validate().is_ok());
        assert_eq!(defaults.default_reservation_ttl, Duration::from_secs(900));
    }

    #[test]
    fn durations_are_read_in_human_form_and_unknown_keys_are_refused() {
        let read = settings(serde_json::json!({
            "sweep_interval": "250ms",
            "default_reservation_ttl": "2s",
            "max_reservation_ttl": "10m",
        }))
        .expect("valid settings");
        assert_eq!(read.sweep_interval, Duration::from_millis(250));
        assert_eq!(read.default_reservation_ttl, Duration::from_secs(2));
        assert!(read.validate().is_ok());
        assert!(settings(serde_json::json!({ "sweep": "1s" })).is_err());
    }

    #[test]
    fn settings_outside_the_contract_stop_start_up_with_their_name() {
        let error = |json| {
            settings(json)
                .expect("well-formed")
                .validate()
                .map_err(|e| e.to_string())
                .expect_err("out of range")
        };
        let too_long = error(serde_json::json!({ "max_reservation_ttl": "2h" }));
        assert!(
            too_long.contains("inventory.max_reservation_ttl"),
            "{too_long}"
        );
        let above_max = error(serde_json::json!({
            "default_reservation_ttl": "20m",
            "max_reservation_ttl": "10m",
        }));
        assert!(
            above_max.contains("inventory.default_reservation_ttl"),
            "{above_max}"
        );
        let no_pause = error(serde_json::json!({ "sweep_interval": "0s" }));
        assert!(no_pause.contains("inventory.sweep_interval"), "{no_pause}");
    }
}
