//! The `[order]` settings section: what an operator may set for the order service, with defaults
//! that work on a laptop.

use std::time::Duration;

use serde::Deserialize;

/// The `[order]` settings section (`AGORA_ORDER__...`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderSettings {
    /// The TTL of each order's stock reservation: the longest a crashed saga can hold stock.
    #[serde(with = "humantime_serde")]
    pub reservation_ttl: Duration,
    /// How long an idempotency key is remembered.
    #[serde(with = "humantime_serde")]
    pub idempotency_retention: Duration,
    /// The deadline of a call to product or inventory when the caller set none.
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// How often recovery looks for unfinished sagas.
    #[serde(with = "humantime_serde")]
    pub recovery_interval: Duration,
    /// How long an order may stay PENDING (stored, not yet committed) before recovery finishes
    /// it (longer than any saga).
    #[serde(with = "humantime_serde")]
    pub recovery_after: Duration,
    /// The longest a CreateOrder call may hold its idempotency key before a retry with the key
    /// (or recovery) may take it over, when the call has no shorter deadline: how long a retry
    /// waits for a saga that died.
    #[serde(with = "humantime_serde")]
    pub claim_lease: Duration,
    /// WatchOrder streams.
    pub watch: WatchSettings,
    /// The old poll period of WatchOrder streams, which are now pushed: read so that settings
    /// files and environments that still set it keep starting (unknown keys are refused), and
    /// otherwise ignored.
    #[serde(rename = "watch_poll")]
    pub(crate) ignored_watch_poll: Option<serde::de::IgnoredAny>,
}

/// The `[order.watch]` settings (`AGORA_ORDER__WATCH__...`): caps on open WatchOrder streams.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchSettings {
    /// The most streams one user may have open at once on one process.
    pub max_per_user: usize,
    /// The most streams one process serves at once.
    pub max_total: usize,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            max_per_user: 16,
            max_total: 10_000,
        }
    }
}

impl Default for OrderSettings {
    fn default() -> Self {
        Self {
            reservation_ttl: Duration::from_secs(10 * 60),
            idempotency_retention: Duration::from_secs(24 * 3600),
            upstream_timeout: Duration::from_secs(5),
            recovery_interval: Duration::from_secs(10),
            recovery_after: Duration::from_secs(60),
            claim_lease: Duration::from_secs(10),
            watch: WatchSettings::default(),
            ignored_watch_poll: None,
        }
    }
}

impl OrderSettings {
    /// Checks the settings.
    ///
    /// # Errors
    /// A setting out of range, named in the message.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.reservation_ttl),
            "order.reservation_ttl must be between 1s and 1h (inventory's bounds)"
        );
        anyhow::ensure!(
            self.idempotency_retention >= Duration::from_secs(1),
            "order.idempotency_retention must be at least 1s"
        );
        anyhow::ensure!(
            self.upstream_timeout >= Duration::from_millis(10),
            "order.upstream_timeout must be at least 10ms"
        );
        anyhow::ensure!(
            self.recovery_interval >= Duration::from_millis(10),
            "order.recovery_interval must be at least 10ms"
        );
        anyhow::ensure!(
            (Duration::from_millis(100)..=Duration::from_secs(600)).contains(&self.claim_lease),
            "order.claim_lease must be between 100ms and 10m"
        );
        anyhow::ensure!(
            self.watch.max_per_user >= 1,
            "order.watch.max_per_user must be at least 1"
        );
        anyhow::ensure!(
            self.watch.max_total >= 1,
            "order.watch.max_total must be at least 1"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
