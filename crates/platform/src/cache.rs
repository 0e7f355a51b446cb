//! Cache and counters: Redis when `REDIS_URL` is set (so replicas share them), in memory
//! otherwise. One small type, so callers never branch on the backend.
//!
//! The cache is never a source of truth: callers treat an error as a miss where they can.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use redis::{AsyncCommands, aio::ConnectionManager};

/// Keys, values and fixed-window counters with expiry.
#[derive(Clone)]
pub struct Cache {
    backend: Backend,
    /// Prepended to every key, so services (and tests) sharing one Redis never collide.
    prefix: String,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<Mutex<MemoryStore>>),
    Redis(ConnectionManager),
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("Cache")
            .field("backend", &kind)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The state of a counter after one more hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// When the window ends and the count starts again.
    pub reset_after: Duration,
}

/// Adds `ARGV[2]` hits to a counter and starts its window on the first, atomically. Hashed once
/// per process: scripts are sent by their SHA-1 (EVALSHA), and loaded again if Redis lost them.
static HIT_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
",
    )
});

/// Takes one hit back from a live counter, atomically; an absent (expired) one stays absent.
static UNHIT_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then return redis.call('DECR', KEYS[1]) end
return 0
",
    )
});

impl Cache {
    /// An in-memory cache, private to this process.
    pub fn memory(prefix: impl Into<String>) -> Self {
        Self {
            backend: Backend::Memory(Arc::default()),
            prefix: prefix.into(),
        }
    }

    /// The cache the settings describe: Redis when `redis_url` is set (over TLS for
    /// `rediss://`, verified with `datastore_tls.ca_file` when set), memory otherwise. The way
    /// services open their cache.
    ///
    /// # Errors
    /// See [`Cache::with_redis`]; also a CA bundle that cannot be read.
    pub async fn from_settings(
        settings: &crate::config::Settings,
        prefix: impl Into<String>,
    ) -> anyhow::Result<Self> {
        match settings.redis_client()? {
            Some(client) => Self::with_redis(&client, prefix).await,
            None => Ok(Self::memory(prefix)),
        }
    }

    /// A Redis-backed cache at `url`; a `rediss://` URL trusts the bundled Mozilla roots (use
    /// [`Cache::from_settings`] or [`Cache::with_redis`] for a CA of one's own).
    ///
    /// # Errors
    /// See [`Cache::with_redis`].
    pub async fn redis(url: &str, prefix: impl Into<String>) -> anyhow::Result<Self> {
        let client = crate::datastore_tls::DatastoreTls::default().redis_client(url)?;
        Self::with_redis(&client, prefix).await
    }

    /// A cache on the Redis `client` reaches. Commands time out quickly, so an outage degrades
    /// callers instead of stalling them; the connection comes back by itself.
    ///
    /// # Errors
    /// A server that cannot be reached at start-up.
    pub async fn with_redis(
        client: &redis::Client,
        prefix: impl Into<String>,
    ) -> anyhow::Result<Self> {
        let manager = redis_connection(client, Duration::from_millis(500))
            .await
            .context("connecting to Redis")?;
        Ok(Self {
            backend: Backend::Redis(manager),
            prefix: prefix.into(),
        })
    }

    /// Redis at `url` when one is given (see [`Cache::redis`]), memory otherwise.
    ///
    /// # Errors
    /// See [`Cache::redis`].
    pub async fn connect(url: Option<&str>, prefix: impl Into<String>) -> anyhow::Result<Self> {
        match url {
            Some(url) => Self::redis(url, prefix).await,
            None => Ok(Self::memory(prefix)),
        }
    }

    /// Whether this cache is shared through Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value under `key`, if present and not expired.
    ///
    /// # Errors
    /// Redis failed or timed out.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(store) => Ok(lock(store).get(&key)),
            Backend::Redis(conn) => Ok(conn.clone().get(key).await?),
        }
    }

    /// Stores `value` under `key` for `ttl`.
    ///
    /// # Errors
    /// Redis failed or timed out.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(store) => lock(store).set(key, value.to_vec(), ttl),
            Backend::Redis(conn) => {
                let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                conn.clone().pset_ex::<_, _, ()>(key, value, millis).await?;
            }
        }
        Ok(())
    }

    /// Removes `key`.
    ///
    /// # Errors
    /// Redis failed or timed out.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(store) => lock(store).delete(&key),
            Backend::Redis(conn) => conn.clone().del::<_, ()>(key).await?,
        }
        Ok(())
    }

    /// Counts one hit on `key` in a fixed window of `window` that starts at the first hit.
    ///
    /// # Errors
    /// Redis failed or timed out.
    pub async fn hit(&self, key: &str, window: Duration) -> anyhow::Result<Hit> {
        self.hits(key, 1, window).await
    }

    /// Counts `hits` hits on `key` at once (at least one), in a fixed window of `window` that
    /// starts at the first; the count returned includes them all.
    ///
    /// # Errors
    /// Redis failed or timed out.
    pub async fn hits(&self, key: &str, hits: u64, window: Duration) -> anyhow::Result<Hit> {
        let key = self.key(key);
        let hits = hits.max(1);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        match &self.backend {
            Backend::Memory(store) => Ok(lock(store).hit(key, hits, window)),
            Backend::Redis(conn) => {
                let (count, ttl_ms): (u64, i64) = HIT_SCRIPT
                    .key(key)
                    .arg(window_ms)
                    .arg(hits)
                    .invoke_async(&mut conn.clone())
                    .await?;
                Ok(Hit {
                    count,
                    reset_after: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
                })
            }
        }
    }

    /// Takes one hit back from `key`'s current window (never below zero; nothing when the window
    /// has ended): for callers that count an attempt before they know whether it should count.
    ///
    /// # Errors
    /// Redis failed or timed out.
    pub async fn unhit(&self, key: &str) -> anyhow::Result<()> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(store) => lock(store).unhit(&key),
            Backend::Redis(conn) => {
                // The count left is of no use to the caller.
                let _: i64 = UNHIT_SCRIPT
                    .key(key)
                    .invoke_async(&mut conn.clone())
                    .await?;
            }
        }
        Ok(())
    }

    /// The current count of `key` without adding a hit (0 when absent).
    ///
    /// # Errors
    /// Redis failed or timed out.
    pub async fn count(&self, key: &str) -> anyhow::Result<Hit> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(store) => Ok(lock(store).count(&key)),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let (count, ttl_ms): (Option<u64>, i64) = redis::pipe()
                    .get(&key)
                    .pttl(&key)
                    .query_async(&mut conn)
                    .await?;
                Ok(Hit {
                    count: count.unwrap_or(0),
                    reset_after: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
                })
            }
        }
    }
}

/// A Redis connection as every part of the platform keeps one: it connects within 2 s, a reply
/// may take `response_timeout`, a failed command is retried once, and a lost connection comes
/// back by itself. TLS is the client's: `rediss://` and its CA.
///
/// # Errors
/// Redis cannot be reached; the error says what a failure about TLS most likely means.
pub async fn redis_connection(
    client: &redis::Client,
    response_timeout: Duration,
) -> anyhow::Result<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(response_timeout)
        .set_number_of_retries(1);
    client
        .get_connection_manager_with_config(config)
        .await
        .map_err(|error| {
            let hint = crate::datastore_tls::redis_hint(client, &error);
            anyhow::Error::new(error).context(hint)
        })
}

/// The lock is never held across an await or a panic-prone call, so poisoning cannot happen; the
/// inner value is still consistent if it somehow did.
fn lock(store: &Mutex<MemoryStore>) -> std::sync::MutexGuard<'_, MemoryStore> {
    store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct MemoryStore {
    values: HashMap<String, (Vec<u8>, Instant)>,
    counters: HashMap<String, (u64, Instant)>,
    /// Writes since the last sweep of expired entries, so memory stays bounded by live keys.
    writes: usize,
}

impl MemoryStore {
    fn sweep_now_and_then(&mut self) {
        self.writes += 1;
        if self.writes >= 1024 {
            self.writes = 0;
            let now = Instant::now();
            self.values.retain(|_, (_, expires)| *expires > now);
            self.counters.retain(|_, (_, expires)| *expires > now);
        }
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.values
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(value, _)| value.clone())
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl: Duration) {
        self.sweep_now_and_then();
        self.values.insert(key, (value, Instant::now() + ttl));
    }

    fn delete(&mut self, key: &str) {
        self.values.remove(key);
        self.counters.remove(key);
    }

    fn hit(&mut self, key: String, hits: u64, window: Duration) -> Hit {
        self.sweep_now_and_then();
        let now = Instant::now();
        let entry = self.counters.entry(key).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += hits;
        Hit {
            count: entry.0,
            reset_after: entry.1 - now,
        }
    }

    fn unhit(&mut self, key: &str) {
        if let Some((count, expires)) = self.counters.get_mut(key)
            && *expires > Instant::now()
        {
            *count = count.saturating_sub(1);
        }
    }

    fn count(&self, key: &str) -> Hit {
        let now = Instant::now();
        match self.counters.get(key) {
            Some((count, expires)) if *expires > now => Hit {
                count: *count,
                reset_after: *expires - now,
            },
            _ => Hit {
                count: 0,
                reset_after: Duration::ZERO,
            },
        }
    }
}
