//! Agora's product service: the catalog, cached for reads, publishing its changes.
//!
//! Anyone may browse the catalog; administrators create, change and archive products. Reads of
//! single products go through a cache (Redis when configured, memory otherwise) that every write
//! invalidates; listings page by keyset, so paging stays stable while the catalog grows. Every
//! change is published (`ProductCreated`, `ProductUpdated`, `ProductArchived`) through the
//! transactional outbox.
//!
//! # Layout
//! - [`api`]: the gRPC handlers; each parses its request into a domain value, calls the store
//!   or the cache and maps the result.
//! - [`domain`]: SKUs, names, categories, prices, image URLs, ids and batches of them (no I/O).
//! - [`currency`]: the ISO 4217 codes a price may use.
//! - [`update`]: what an UpdateProduct changes, parsed from its product and field mask.
//! - [`listing`]: ListProducts' filters, orders, page tokens and who may list what.
//! - [`wire`]: products as Protobuf messages, the contract's sub-messages as domain values, and
//!   the one table of failures as gRPC statuses.
//! - [`error`]: [`error::ServiceError`], every way a call fails.
//! - [`cache`]: cache-aside for product reads.
//! - [`metrics`]: the service's instruments (product cache hits and misses).
//! - [`store`]: the SQL, and the migrations for PostgreSQL and SQLite.
//! - [`events`]: the events the service publishes.
//! - [`settings`]: the `[product]` settings section and its checks.

use agora_contracts::agora::product::v1::product_service_server::ProductServiceServer;
use agora_platform::{cache::Cache, config::ServiceKind, events::Stream, service::Startup};

pub mod api;
pub mod cache;
pub mod currency;
pub mod domain;
pub mod error;
pub mod events;
pub mod listing;
pub mod metrics;
pub mod settings;
pub mod store;
pub mod update;
pub mod wire;

pub use settings::ProductSettings;

agora_platform::service!(ServiceKind::Product, store::MIGRATIONS, start);

/// Starts the product service: the catalog behind its cache, and the relay of its outbox.
///
/// # Errors
/// Bad settings, an unreachable database or Redis, or a server failure.
async fn start(startup: Startup<'_>) -> anyhow::Result<()> {
    let settings: ProductSettings = startup.config().section("product")?;
    startup
        .serve(|parts| async move {
            let cache = Cache::from_settings(parts.settings(), settings.cache_prefix).await?;
            parts.publish(Stream::Product);
            let api = api::ProductApi::new(
                store::Store::new(parts.db().clone()),
                cache::ProductCache::new(cache, settings.cache_ttl),
            );
            Ok(ProductServiceServer::new(api))
        })
        .await
}
