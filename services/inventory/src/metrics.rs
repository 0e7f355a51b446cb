//! The inventory service's instruments: reservations the sweeper expired.

use agora_platform::metrics::{Instruments, counter};
use opentelemetry::metrics::Counter;

/// The instruments, in the process's meter provider.
#[derive(Debug)]
pub struct InventoryMetrics {
    expired: Counter<u64>,
}

static METRICS: Instruments<InventoryMetrics> = Instruments::new(|meter| InventoryMetrics {
    expired: counter(
        meter,
        "agora.inventory.reservations.expired",
        "Reservations the sweeper expired, their units made available again",
    ),
});

/// The inventory service's instruments (made on first use).
pub fn metrics() -> &'static InventoryMetrics {
    METRICS.get()
}

impl InventoryMetrics {
    /// The sweeper expired `count` reservations.
    pub fn expired(&self, count: u64) {
        if count > 0 {
            self.expired.add(count, &[]);
        }
    }
}
