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
//! - [`api`]: the gRPC handlers: parse the request once, call the saga or the store, map the
//!   result.
//! - [`watch`]: WatchOrder by push: the hub that hands each committed change to the watches of
//!   the order, in this process and, through Redis pub/sub, in every replica; caps on watches.
//! - [`domain`]: the rules (no I/O): what a valid CreateOrder is (`PlaceOrder`, parsed from
//!   the request), statuses, ids, the request fingerprint, money.
//! - [`wire`]: proto <-> domain: orders and events as messages, statuses, tokens, the requests
//!   that are plumbing, and the one mapping of [`error::ServiceError`] to `tonic::Status`.
//! - [`error`]: [`error::ServiceError`], every way an order call fails.
//! - [`store`]: the SQL of orders with their outbox events; [`store::claims`]: idempotency claims.
//! - [`saga`]: the calls to product and inventory, compensation, cancellation.
//! - [`recovery`]: repairs sagas that did not finish.
//! - [`metrics`]: the service's instruments (orders by outcome, sagas, compensations,
//!   recoveries, open watches).
//! - [`settings`]: the `[order]` settings section and its checks.

use agora_contracts::agora::order::v1::order_service_server::OrderServiceServer;
use agora_platform::{
    client::{Propagate, ServiceCredentials, service_channel},
    config::{Config, ServiceKind},
    events::{Background, Stream},
    service::Startup,
    storage::Database,
};
use anyhow::Context as _;
use std::sync::Arc;
use tokio::net::TcpListener;

pub mod api;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod recovery;
pub mod saga;
pub mod settings;
pub mod store;
pub mod watch;
pub mod wire;

pub use settings::{OrderSettings, WatchSettings};

pub use saga::{Hooks, Pause, Step};

agora_platform::service!(ServiceKind::Order, store::MIGRATIONS, start);

/// Starts the order service with its failure points disarmed.
///
/// # Errors
/// As [`serve_with_hooks`].
async fn start(startup: Startup<'_>) -> anyhow::Result<()> {
    start_with_hooks(startup, Hooks::default()).await
}

/// Serves the order service as [`SERVICE`] does, with failure points that tests arm; production
/// code runs [`SERVICE`].
///
/// # Errors
/// Bad settings, no service secret, an unreachable database or Redis, or a server failure.
pub async fn serve_with_hooks(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    hooks: Hooks,
) -> anyhow::Result<()> {
    start_with_hooks(SERVICE.startup(config, listener, shutdown), hooks).await
}

/// Starts the order service: the saga behind its handlers, the relay of its outbox, the watch
/// hub and the periodic recovery of sagas that did not finish.
async fn start_with_hooks(startup: Startup<'_>, hooks: Hooks) -> anyhow::Result<()> {
    let config = startup.config();
    let settings: OrderSettings = config.section("order")?;
    settings.validate()?;
    if settings.ignored_watch_poll.is_some() {
        tracing::warn!("order.watch_poll is ignored: WatchOrder streams are pushed, not polled");
    }
    let sagas = SagaParts::new(config, &settings, hooks)?;
    startup
        .serve(|parts| async move {
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
