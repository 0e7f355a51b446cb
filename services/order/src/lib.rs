//! Agora's order service: places orders through a reservation saga it orchestrates, idempotently
//! by a client key, and cancels them; publishes `OrderPlaced` and `OrderCancelled`.
//!
//! Never oversell: stock is taken only by inventory's all-or-nothing reservation. Never
//! double-charge a retry: a key is claimed (unique per user) before any stock is touched, and a
//! duplicate waits for the first call's order. Never strand stock: every failure after the
//! reservation releases it; a saga that dies half-way is repaired by recovery at start-up and
//! periodically, and by the reservation's own TTL.
//!
//! # Layout
//! - [`api`]: the gRPC handlers.
//! - [`watch`]: WatchOrder by push: the hub that hands each committed change to the watches of
//!   the order, in this process and, through Redis pub/sub, in every replica; caps on watches.
//! - [`domain`]: request validation, statuses, the request fingerprint (no I/O).
//! - [`store`]: the SQL of orders with their outbox events; [`store::claims`]: idempotency claims.
//! - [`saga`]: the calls to product and inventory, compensation, cancellation.
//! - [`recovery`]: repairs sagas that did not finish.

use std::time::Duration;

use agora_contracts::agora::order::v1::order_service_server::OrderServiceServer;
use agora_platform::{
    client::{Propagate, ServiceCredentials, service_channel},
    config::{Config, ServiceKind},
    events::{Background, Stream},
    service::{Service, Serving, Shutdown, Startup},
    storage::Database,
};
use anyhow::Context as _;
use serde::Deserialize;
use std::sync::Arc;
use tokio::net::TcpListener;

pub mod api;
pub mod domain;
pub mod recovery;
pub mod saga;
pub mod store;
pub mod watch;

pub use saga::{Hooks, Pause, Step};

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
    ignored_watch_poll: Option<serde::de::IgnoredAny>,
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

/// The order service, as the mesh runs it.
pub const SERVICE: Service = Service {
    kind: ServiceKind::Order,
    migrations: store::MIGRATIONS,
    serve: serve_owned,
};

/// Serves the order service on `listener` until `shutdown` resolves.
///
/// # Errors
/// Bad settings, no service secret, an unreachable database or Redis, or a server failure.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with_hooks(config, listener, shutdown, Hooks::default()).await
}

/// [`serve`] with its arguments owned, for [`SERVICE`].
fn serve_owned(config: Config, listener: TcpListener, shutdown: Shutdown) -> Serving {
    Box::pin(async move { serve(&config, listener, shutdown).await })
}

/// [`serve`] with failure points that tests arm; production code calls [`serve`].
///
/// # Errors
/// As [`serve`].
pub async fn serve_with_hooks(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    hooks: Hooks,
) -> anyhow::Result<()> {
    let settings: OrderSettings = config.section("order")?;
    settings.validate()?;
    if settings.ignored_watch_poll.is_some() {
        tracing::warn!("order.watch_poll is ignored: WatchOrder streams are pushed, not polled");
    }
    let sagas = SagaParts::new(config, &settings, hooks)?;
    Startup::new(config, ServiceKind::Order, store::MIGRATIONS)
        .serve(listener, shutdown, |parts| async move {
            let (hub, notices) = connect_hub(config, parts.db().clone()).await?;
            parts.keep(notices);
            let saga = sagas.saga(store::Store::new(parts.db().clone(), hub));
            parts.publish(Stream::Order);
            let (recovering, stuck_after) = (saga.clone(), settings.recovery_after);
            parts.every(
                settings.recovery_interval,
                "order recovery pass",
                move || {
                    let saga = recovering.clone();
                    async move { recovery::run_once(&saga, stuck_after).await.map(drop) }
                },
            );
            let slots = watch::Slots::new(settings.watch.max_per_user, settings.watch.max_total);
            Ok(OrderServiceServer::new(api::OrderApi::new(saga, slots)))
        })
        .await
}

/// Runs one recovery pass over the order database of `config`, as another replica of the order
/// service would, with test `hooks`; returns how many claims and orders it repaired. Unlike a
/// serving replica's recovery, it does not announce its changes to watchers.
///
/// # Errors
/// Bad settings, an unreachable database, or a failed pass.
pub async fn recover_once(config: &Config, hooks: Hooks) -> anyhow::Result<usize> {
    let settings: OrderSettings = config.section("order")?;
    settings.validate()?;
    let sagas = SagaParts::new(config, &settings, hooks)?;
    let db = Database::connect(&config.settings.database_url(ServiceKind::Order)).await?;
    // A one-off pass has no watchers of its own and does not announce what it changes; the
    // recovery of a serving replica does.
    let saga = sagas.saga(store::Store::new(db.clone(), watch::Hub::local(db)));
    recovery::run_once(&saga, settings.recovery_after).await
}

/// The watch hub: shared through Redis when the platform has it (its pub/sub channel is named
/// under the deployment's key prefix, `events.prefix`), in this process only otherwise.
async fn connect_hub(config: &Config, db: Database) -> anyhow::Result<(watch::Hub, Background)> {
    let platform = &config.settings;
    let channel = format!("{}order:watch", platform.events.prefix);
    watch::Hub::connect(db, platform.redis_client()?, channel).await
}

/// What a saga is built from, besides its store.
struct SagaParts {
    product: saga::Upstream,
    inventory: saga::Upstream,
    timing: saga::Timing,
    hooks: Hooks,
}

impl SagaParts {
    /// Channels to product and inventory carrying this service's token, and the timing.
    fn new(config: &Config, settings: &OrderSettings, hooks: Hooks) -> anyhow::Result<Self> {
        let platform = &config.settings;
        let secret = platform.service_secret.clone().context(
            "service_secret must be set: the order service calls inventory as a service",
        )?;
        let credentials = Arc::new(ServiceCredentials::new(
            service_channel(platform, ServiceKind::Auth)?,
            ServiceKind::Order.name(),
            secret,
        ));
        let upstream = |kind| -> anyhow::Result<saga::Upstream> {
            Ok(Propagate::new(
                service_channel(platform, kind)?,
                Some(Arc::clone(&credentials)),
                settings.upstream_timeout,
            ))
        };
        Ok(Self {
            product: upstream(ServiceKind::Product)?,
            inventory: upstream(ServiceKind::Inventory)?,
            timing: saga::Timing {
                reservation_ttl: settings.reservation_ttl,
                key_retention: settings.idempotency_retention,
                claim_lease: settings.claim_lease,
            },
            hooks,
        })
    }

    fn saga(self, store: store::Store) -> saga::Saga {
        saga::Saga::new(store, self.product, self.inventory, self.timing, self.hooks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<OrderSettings, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn the_default_settings_work_on_a_laptop() {
        assert!(OrderSettings::default().validate().is_ok());
    }

    #[test]
    fn durations_are_read_in_human_form_and_unknown_keys_are_refused() {
        let read = settings(serde_json::json!({
            "reservation_ttl": "30s",
            "idempotency_retention": "2h",
            "watch": { "max_per_user": 4 },
        }))
        .expect("valid settings");
        assert_eq!(read.reservation_ttl, Duration::from_secs(30));
        assert_eq!(read.idempotency_retention, Duration::from_secs(7200));
        assert_eq!(read.watch.max_per_user, 4);
        assert_eq!(read.watch.max_total, 10_000);
        assert!(read.validate().is_ok());
        assert!(settings(serde_json::json!({ "ttl": "1s" })).is_err());
    }

    #[test]
    fn settings_out_of_range_stop_start_up_with_their_name() {
        let error = |json| {
            settings(json)
                .expect("well-formed")
                .validate()
                .map_err(|e| e.to_string())
                .expect_err("out of range")
        };
        assert!(
            error(serde_json::json!({ "reservation_ttl": "2h" })).contains("order.reservation_ttl")
        );
        assert!(
            error(serde_json::json!({ "watch": { "max_total": 0 } }))
                .contains("order.watch.max_total")
        );
    }

    #[test]
    fn the_old_watch_poll_setting_is_still_accepted_and_ignored() {
        let read = settings(serde_json::json!({ "watch_poll": "200ms" })).expect("accepted");
        assert!(read.validate().is_ok());
        assert!(settings(serde_json::json!({ "watch": { "poll": "1s" } })).is_err());
    }
}
