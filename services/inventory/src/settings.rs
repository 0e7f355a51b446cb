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
