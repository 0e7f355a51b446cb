//! The product service's instruments: reads of the product cache, by hit or miss.

use agora_platform::metrics::{Instruments, counter};
use opentelemetry::{KeyValue, metrics::Counter};

/// The instruments, in the process's meter provider.
#[derive(Debug)]
pub struct ProductMetrics {
    cache: Counter<u64>,
}

static METRICS: Instruments<ProductMetrics> = Instruments::new(|meter| ProductMetrics {
    cache: counter(
        meter,
        "agora.product.cache.requests",
        "Product reads looked up in the cache: hits, and misses (absent, failed or skipped \
         after a failure)",
    ),
});

/// The product service's instruments (made on first use).
pub fn metrics() -> &'static ProductMetrics {
    METRICS.get()
}

impl ProductMetrics {
    /// One product was looked up in the cache and `hit` or missed.
    pub fn cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .add(1, &[KeyValue::new("agora.cache.result", result)]);
    }
}
