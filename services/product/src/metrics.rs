//! The product service's instruments: reads of the product cache, by hit or miss.

use std::sync::OnceLock;

use agora_platform::metrics::Metrics;
use opentelemetry::{KeyValue, metrics::Counter};

/// The instruments, in the process's meter provider.
#[derive(Debug)]
pub struct ProductMetrics {
    cache: Counter<u64>,
}

/// The product service's instruments (made on first use).
pub fn metrics() -> &'static ProductMetrics {
    static METRICS: OnceLock<ProductMetrics> = OnceLock::new();
    METRICS.get_or_init(|| ProductMetrics {
        cache: Metrics::global()
            .meter()
            .u64_counter("agora.product.cache.requests")
            .with_description(
                "Product reads looked up in the cache: hits, and misses (absent, failed or \
                 skipped after a failure)",
            )
            .build(),
    })
}

impl ProductMetrics {
    /// One product was looked up in the cache and `hit` or missed.
    pub fn cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .add(1, &[KeyValue::new("agora.cache.result", result)]);
    }
}
