//! The `[inventory]` settings section: what an operator may set for the inventory service, with defaults
//! that work on a laptop.

use std::time::Duration;

use serde::Deserialize;

use crate::domain;

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

#[cfg(test)]
mod tests;
