//! The `[product]` settings section: what an operator may set for the product service, with defaults
//! that work on a laptop.

use std::time::Duration;

use serde::Deserialize;

/// The `[product]` settings section (`AGORA_PRODUCT__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProductSettings {
    /// Prefix of the product service's cache keys, so deployments (and tests) sharing a Redis
    /// stay apart.
    pub cache_prefix: String,
    /// How long a product read stays cached; `0s` disables the cache. Writes invalidate at once,
    /// so this only bounds how long an entry missed by an invalidation (a Redis outage) lives.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
}

impl Default for ProductSettings {
    fn default() -> Self {
        Self {
            cache_prefix: "agora:product:".into(),
            cache_ttl: Duration::from_secs(5 * 60),
        }
    }
}
