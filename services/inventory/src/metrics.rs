//! The inventory service's instruments: reservations the sweeper expired.

use std::sync::OnceLock;

use agora_platform::metrics::Metrics;
use opentelemetry::metrics::Counter;

/// The instruments, in the process's meter provider.
#[derive(Debug)]
pub struct InventoryMetrics {
    expired: Counter<u64>,
}

/// The inventory service's instruments (made on first use).
pub fn metrics() -> &'static InventoryMetrics {
    static METRICS: OnceLock<InventoryMetrics> = OnceLock::new();
    METRICS.get_or_init(|| InventoryMetrics {
        expired: Metrics::global()
            .meter()
            .u64_counter("agora.inventory.reservations.expired")
            .with_description("Reservations the sweeper expired, their units made available again")
            .build(),
    })
}

impl InventoryMetrics {
    /// The sweeper expired `count` reservations.
    pub fn expired(&self, count: u64) {
        if count > 0 {
            self.expired.add(count, &[]);
        }
    }
}
