//! Cache-aside for product reads: GetProduct and BatchGetProducts look here first, fill it from
//! the database on a miss, and every write deletes the product's entry after its commit.
//!
//! The cache is never the source of truth. Any cache failure is logged and treated as a miss, so
//! a Redis outage makes reads slower, never failing; after a failure, reads skip the cache for a
//! short [`BACKOFF`] so an outage does not add a timeout to every read. Invalidations are always
//! attempted, and repeated once shortly after the write, which closes the window in which a read
//! that loaded the old row before the commit stores it after the delete.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agora_contracts::agora::product::v1 as pb;
use agora_platform::cache::Cache;
use prost::Message as _;

/// How long reads bypass the cache after it failed.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// How long after a write its entry is deleted a second time.
const SECOND_INVALIDATION: Duration = Duration::from_millis(250);

/// The product cache: encoded `agora.product.v1.Product` messages under `product:v1:<id>`.
#[derive(Debug, Clone)]
pub struct ProductCache {
    cache: Cache,
    /// Zero disables caching altogether.
    ttl: Duration,
    /// Until when reads and fills skip the cache because it just failed.
    bypass_until: Arc<Mutex<Option<Instant>>>,
}

fn key(id: &str) -> String {
    format!("product:v1:{id}")
}

impl ProductCache {
    /// Caches products in `cache` for `ttl`; a zero `ttl` disables the cache.
    pub fn new(cache: Cache, ttl: Duration) -> Self {
        Self {
            cache,
            ttl,
            bypass_until: Arc::default(),
        }
    }

    fn enabled(&self) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let mut bypass = self
            .bypass_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *bypass {
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *bypass = None;
                true
            }
            None => true,
        }
    }

    fn failed(&self, what: &str, error: &anyhow::Error) {
        tracing::warn!(
            error = format!("{error:#}"),
            "product cache {what} failed; reading from the database for {BACKOFF:?}"
        );
        *self
            .bypass_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now() + BACKOFF);
    }

    /// The cached product, or `None` on a miss, a failure, or an entry that does not decode;
    /// counted as a hit or a miss unless caching is off (a zero TTL).
    pub async fn get(&self, id: &str) -> Option<pb::Product> {
        if self.ttl.is_zero() {
            return None;
        }
        let found = self.lookup(id).await;
        crate::metrics::metrics().cache(found.is_some());
        found
    }

    async fn lookup(&self, id: &str) -> Option<pb::Product> {
        if !self.enabled() {
            return None;
        }
        match self.cache.get(&key(id)).await {
            Ok(Some(bytes)) => match pb::Product::decode(bytes.as_slice()) {
                Ok(product) => Some(product),
                Err(error) => {
                    tracing::warn!(%error, id, "ignoring an undecodable product cache entry");
                    None
                }
            },
            Ok(None) => None,
            Err(error) => {
                self.failed("read", &error);
                None
            }
        }
    }

    /// The cached products among `ids` (looked up concurrently), by position; `None` for misses.
    pub async fn get_many(&self, ids: &[String]) -> Vec<Option<pb::Product>> {
        if self.ttl.is_zero() {
            return vec![None; ids.len()];
        }
        futures::future::join_all(ids.iter().map(|id| self.get(id))).await
    }

    /// Stores a product read from the database.
    pub async fn put(&self, product: &pb::Product) {
        if !self.enabled() {
            return;
        }
        if let Err(error) = self
            .cache
            .set(&key(&product.id), &product.encode_to_vec(), self.ttl)
            .await
        {
            self.failed("fill", &error);
        }
    }

    /// Deletes a product's entry after a committed write, and once more a moment later.
    pub async fn invalidate(&self, id: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let key = key(id);
        if let Err(error) = self.cache.delete(&key).await {
            self.failed("invalidation", &error);
        }
        let cache = self.cache.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SECOND_INVALIDATION).await;
            if let Err(error) = cache.delete(&key).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    key,
                    "second invalidation failed"
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(name: &str) -> pb::Product {
        pb::Product {
            id: "0190f3a0-0000-7000-8000-000000000001".into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_product_is_served_from_the_cache_until_invalidated() {
        let cache = ProductCache::new(Cache::memory("test:"), Duration::from_secs(60));
        let mug = product("Mug");
        assert_eq!(cache.get(&mug.id).await, None);
        cache.put(&mug).await;
        assert_eq!(cache.get(&mug.id).await, Some(mug.clone()));
        cache.invalidate(&mug.id).await;
        assert_eq!(cache.get(&mug.id).await, None);
    }

    #[tokio::test]
    async fn a_zero_ttl_disables_the_cache() {
        let cache = ProductCache::new(Cache::memory("test:"), Duration::ZERO);
        let mug = product("Mug");
        cache.put(&mug).await;
        assert_eq!(
            cache.get_many(std::slice::from_ref(&mug.id)).await,
            vec![None]
        );
    }
}
