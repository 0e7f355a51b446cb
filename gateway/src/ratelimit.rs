//! Rate limits per client at the edge.
//!
//! Each client has a budget of requests per fixed window: a signed-in client is counted by its
//! user id (so a user behind a shared address is not punished for its neighbours), anyone else by
//! its address. Login and register get a much smaller budget of their own, because they are
//! where passwords are guessed and accounts are made; it is counted by the client's address
//! alone, whatever bearer token comes with the call. Counted by user, every account a client
//! registers would bring a fresh budget of sign-ins and registrations, so one address could
//! multiply its budget by making accounts. (Auth counts failed logins per account itself.)
//! Counters live in [`Cache`]: Redis when `REDIS_URL` is set, so every replica of the gateway
//! draws on the same budget, in memory otherwise.
//!
//! Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`;
//! a refused one is 429 RESOURCE_EXHAUSTED with `Retry-After`.
//!
//! A fixed window lets a client spend up to twice its budget across a window boundary; in
//! exchange counting is one atomic Redis round trip. A replica does not make that round trip per
//! request: it takes a *lease* of a few consecutive counts at once (a 32nd of the budget, at
//! most [`MAX_LEASE`]; one for budgets under 64, which stay exact) and spends it locally, so a
//! busy client costs one Redis call per lease. Leases never admit more than the budget: the
//! counts a replica leased and did not spend before the window ended are merely lost, so with `n`
//! replicas a client may be refused up to `(n - 1)` leases early. A refusal is remembered until
//! its window ends, so a client flooding past its budget costs no Redis call at all.
//!
//! If the counters cannot be reached the request is let through (and logged): an outage of the
//! cache must not take the API down with it.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use agora_platform::{access::Principal, cache::Cache};
use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::Response,
};
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::client_address::ClientAddress;
use crate::rules::Binding;

/// `[gateway.rate_limit]`: the budgets.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Whether requests are limited at all.
    pub enabled: bool,
    /// Requests one client may make per `window`.
    pub requests: u64,
    /// The length of a window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Calls of the `sign_in_methods` one client address may make per `sign_in_window`, signed
    /// in or not.
    pub sign_in_requests: u64,
    /// The window of the sign-in budget.
    #[serde(with = "humantime_serde")]
    pub sign_in_window: Duration,
    /// The methods under the sign-in budget, by full name (`package.Service.Method`).
    pub sign_in_methods: Vec<String>,
    /// Count anonymous clients by the first address of `X-Forwarded-For` instead of the peer
    /// address, where the edge has not decided the client itself (a router without the whole
    /// edge). The served edge decides by `gateway.trusted_proxies` and refuses to start with this
    /// set and no trusted proxy: a client could pick a new identity per request.
    pub trust_forwarded_for: bool,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            requests: 600,
            window: Duration::from_secs(60),
            sign_in_requests: 10,
            sign_in_window: Duration::from_secs(60),
            sign_in_methods: vec![
                "agora.auth.v1.AuthService.Login".into(),
                "agora.auth.v1.AuthService.Register".into(),
            ],
            trust_forwarded_for: false,
        }
    }
}

/// A budget: how many requests per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests allowed per window.
    pub limit: u64,
    /// The window.
    pub window: Duration,
}

/// What one request's hit on its counter means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The budget of the window.
    pub limit: u64,
    /// Requests left in the window after this one.
    pub remaining: u64,
    /// When the window ends.
    pub reset_after: Duration,
}

impl Verdict {
    /// The verdict for the `count`-th request of a window that ends in `reset_after`.
    pub fn new(quota: Quota, count: u64, reset_after: Duration) -> Self {
        Self {
            allowed: count <= quota.limit,
            limit: quota.limit,
            remaining: quota.limit.saturating_sub(count),
            // Redis may report a window that already ended (the key expired between INCR and
            // PTTL); a client told "0 seconds" would retry in a tight loop.
            reset_after: reset_after.min(quota.window),
        }
    }

    /// Whole seconds until the window ends, rounded up and at least one, so a client that waits
    /// that long is sure to find a fresh window.
    pub fn reset_secs(&self) -> u64 {
        let millis = u64::try_from(self.reset_after.as_millis()).unwrap_or(u64::MAX);
        millis.div_ceil(1000).max(1)
    }

    /// Writes `RateLimit-*` (and, when refused, `Retry-After`) headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let number = |n: u64| HeaderValue::from(n);
        headers.insert("ratelimit-limit", number(self.limit));
        headers.insert("ratelimit-remaining", number(self.remaining));
        headers.insert("ratelimit-reset", number(self.reset_secs()));
        if !self.allowed {
            headers.insert(http::header::RETRY_AFTER, number(self.reset_secs()));
        }
    }
}

/// Counts requests per client and decides whether each may go on.
///
/// Mount it inside the auth middleware (so a signed-in caller's [`Principal`] is known) and
/// outside the transcoder; the app must be served with connect info so anonymous clients can be
/// told apart by address:
///
/// ```ignore
/// let limiter = ratelimit::RateLimiter::new(cache, settings.rate_limit.clone());
/// let app = routes
///     .layer(axum::middleware::from_fn_with_state(limiter, ratelimit::enforce))
///     .layer(axum::middleware::from_fn_with_state(edge_auth, auth::enforce));
/// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>());
/// ```
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Shared by every clone: the middleware's state is cloned per request.
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    cache: Cache,
    settings: RateLimitSettings,
    /// Counts taken from a shared cache and not spent yet, by counter key.
    leases: Mutex<Leases>,
}

/// The most counts one lease takes from a shared counter.
pub const MAX_LEASE: u64 = 100;

/// How many counts a replica takes at once from a shared counter of budget `limit`.
fn lease_size(limit: u64) -> u64 {
    (limit / 32).clamp(1, MAX_LEASE)
}

/// Counts leased from shared counters, by key.
#[derive(Debug, Default)]
struct Leases {
    by_key: HashMap<String, Lease>,
    /// Leases taken since the last sweep of ended windows, so memory stays bounded by the
    /// clients of the current windows.
    taken: usize,
}

/// Consecutive counts `next..end` of one counter's window, which ends at `ends`. A refusal is a
/// lease whose `next` is past the budget.
#[derive(Debug, Clone, Copy)]
struct Lease {
    next: u64,
    end: u64,
    ends: Instant,
}

impl Leases {
    /// The next count of `key` when a lease of it is still open (or refused) in this window.
    fn spend(&mut self, key: &str, limit: u64, now: Instant) -> Option<(u64, Duration)> {
        let lease = self.by_key.get_mut(key)?;
        if lease.ends <= now {
            return None;
        }
        if lease.next > limit {
            return Some((lease.next, lease.ends - now));
        }
        if lease.next >= lease.end {
            return None;
        }
        let count = lease.next;
        lease.next += 1;
        Some((count, lease.ends - now))
    }

    fn keep(&mut self, key: String, lease: Lease, now: Instant) {
        self.taken += 1;
        if self.taken >= 1024 {
            self.taken = 0;
            self.by_key.retain(|_, lease| lease.ends > now);
        }
        self.by_key.insert(key, lease);
    }
}

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Every method but sign-in, per user when signed in, else per address.
    General,
    /// Login and register, per address whatever the token.
    SignIn,
}

impl RateLimiter {
    /// A limiter counting in `cache` (give it a key prefix of its own, e.g. `agora:gateway:`).
    pub fn new(cache: Cache, settings: RateLimitSettings) -> Self {
        Self {
            shared: Arc::new(Shared {
                cache,
                settings,
                leases: Mutex::default(),
            }),
        }
    }

    /// The settings this limiter enforces.
    pub fn settings(&self) -> &RateLimitSettings {
        &self.shared.settings
    }

    /// The budget of a method, by its full name.
    pub fn budget_of(&self, method: &str) -> Budget {
        if self
            .shared
            .settings
            .sign_in_methods
            .iter()
            .any(|m| m == method)
        {
            Budget::SignIn
        } else {
            Budget::General
        }
    }

    fn quota(&self, budget: Budget) -> Quota {
        match budget {
            Budget::General => Quota {
                limit: self.shared.settings.requests,
                window: self.shared.settings.window,
            },
            Budget::SignIn => Quota {
                limit: self.shared.settings.sign_in_requests,
                window: self.shared.settings.sign_in_window,
            },
        }
    }

    /// Counts one request of `client` against `budget`.
    ///
    /// # Errors
    /// The counters could not be reached.
    pub async fn check(&self, client: &str, budget: Budget) -> anyhow::Result<Verdict> {
        let quota = self.quota(budget);
        let name = match budget {
            Budget::General => "general",
            Budget::SignIn => "sign-in",
        };
        let key = format!("ratelimit:{name}:{client}");
        if !self.shared.cache.is_shared() {
            // A counter in this process's memory costs no more than a lease would.
            let hit = self.shared.cache.hit(&key, quota.window).await?;
            return Ok(Verdict::new(quota, hit.count, hit.reset_after));
        }
        if let Some((count, reset_after)) =
            lock(&self.shared.leases).spend(&key, quota.limit, Instant::now())
        {
            return Ok(Verdict::new(quota, count, reset_after));
        }
        let size = lease_size(quota.limit);
        let hit = self.shared.cache.hits(&key, size, quota.window).await?;
        // This request spends the first count of the lease; the replica keeps the rest, up to
        // the budget, or remembers the refusal.
        let first = hit.count.saturating_sub(size) + 1;
        let now = Instant::now();
        let lease = Lease {
            next: first + 1,
            end: hit.count.min(quota.limit) + 1,
            ends: now + hit.reset_after.min(quota.window),
        };
        if lease.next < lease.end || first > quota.limit {
            lock(&self.shared.leases).keep(key, lease, now);
        }
        Ok(Verdict::new(quota, first, hit.reset_after))
    }

    /// Who the client of a request is under `budget`: for the general budget its user id when
    /// signed in, else (and always for the sign-in budget) its address. A token costs nothing to
    /// get (register, and one comes back), so it must not open a sign-in budget of its own.
    pub fn client_of<B>(&self, request: &http::Request<B>, budget: Budget) -> String {
        if budget == Budget::General
            && let Some(principal) = request.extensions().get::<Principal>()
        {
            return format!("user:{}", principal.subject);
        }
        // The whole edge decides the client once, for every protocol.
        if let Some(ClientAddress(ip)) = request.extensions().get::<ClientAddress>() {
            return format!("addr:{ip}");
        }
        if self.shared.settings.trust_forwarded_for
            && let Some(first) = request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        {
            return format!("addr:{first}");
        }
        match request.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => format!("addr:{}", addr.ip()),
            // Served without connect info (in-process tests): every caller is one client.
            None => "addr:unknown".into(),
        }
    }
}

/// The lock is held for a map lookup only, never across an await; a poisoned map is still
/// consistent.
fn lock(leases: &Mutex<Leases>) -> std::sync::MutexGuard<'_, Leases> {
    leases
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The method a request calls: its route's binding, or the path of a gRPC call.
fn method_of<B>(request: &http::Request<B>) -> Option<String> {
    if let Some(binding) = request.extensions().get::<Binding>() {
        return Some(binding.method.full_name().to_owned());
    }
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    grpc.then(|| {
        request
            .uri()
            .path()
            .trim_start_matches('/')
            .replace('/', ".")
    })
}

/// The middleware: counts API calls (REST routes and passed-through gRPC calls; probes, the
/// OpenAPI document and unrouted paths are not counted) and refuses those over budget with 429.
pub async fn enforce(State(limiter): State<RateLimiter>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let head = Request::from_parts(parts, ());
    let checked = limiter.check_request(&head).await;
    let request = Request::from_parts(head.into_parts().0, body);
    match checked {
        Ok(verdict) => {
            let mut response = next.run(request).await;
            if let Some(verdict) = verdict {
                verdict.write_headers(response.headers_mut());
            }
            response
        }
        Err(refusal) => refusal,
    }
}

impl RateLimiter {
    /// [`enforce`]'s check: the verdict on `request` whose `RateLimit-*` headers go on its
    /// answer (none when limits are off, the request names no method, or the counters cannot
    /// be reached, which lets it through).
    ///
    /// # Errors
    /// The refusal of a client over its budget: 429 with `Retry-After`, or RESOURCE_EXHAUSTED.
    /// `request` is the head alone: a body need not be shareable between threads.
    pub async fn check_request(
        &self,
        request: &http::Request<()>,
    ) -> Result<Option<Verdict>, Response> {
        if !self.shared.settings.enabled {
            return Ok(None);
        }
        let Some(method) = method_of(request) else {
            return Ok(None);
        };
        let budget = self.budget_of(&method);
        let client = self.client_of(request, budget);
        let verdict = match self.check(&client, budget).await {
            Ok(verdict) => verdict,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "rate limit counters unavailable; letting the request through"
                );
                return Ok(None);
            }
        };
        if !verdict.allowed {
            tracing::info!(client, method, "rate limited");
            let status = tonic::Status::resource_exhausted(format!(
                "too many requests: {} per {}s; retry in {}s",
                verdict.limit,
                self.quota(budget).window.as_secs(),
                verdict.reset_secs()
            ));
            let mut response = crate::auth::refuse(request, &status);
            verdict.write_headers(response.headers_mut());
            return Err(response);
        }
        Ok(Some(verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: Quota = Quota {
        limit: 3,
        window: Duration::from_secs(60),
    };

    #[test]
    fn the_last_request_of_the_budget_passes_and_the_next_is_refused() {
        let last = Verdict::new(QUOTA, 3, Duration::from_secs(10));
        assert!(last.allowed);
        assert_eq!(last.remaining, 0);
        let over = Verdict::new(QUOTA, 4, Duration::from_secs(10));
        assert!(!over.allowed);
        assert_eq!(over.remaining, 0);
    }

    #[test]
    fn the_reset_rounds_up_to_whole_seconds_and_is_never_zero() {
        let v = |millis| Verdict::new(QUOTA, 1, Duration::from_millis(millis)).reset_secs();
        assert_eq!(v(1), 1);
        assert_eq!(v(0), 1);
        assert_eq!(v(1000), 1);
        assert_eq!(v(1001), 2);
        assert_eq!(v(59_999), 60);
        assert_eq!(v(3_600_000), 60, "never past the window");
    }

    #[test]
    fn refused_requests_say_when_to_retry_and_allowed_ones_do_not() {
        let mut headers = HeaderMap::new();
        Verdict::new(QUOTA, 2, Duration::from_millis(4500)).write_headers(&mut headers);
        assert_eq!(headers["ratelimit-limit"], "3");
        assert_eq!(headers["ratelimit-remaining"], "1");
        assert_eq!(headers["ratelimit-reset"], "5");
        assert!(!headers.contains_key("retry-after"));
        Verdict::new(QUOTA, 9, Duration::from_millis(4500)).write_headers(&mut headers);
        assert_eq!(headers["retry-after"], "5");
        assert_eq!(headers["ratelimit-remaining"], "0");
    }

    #[test]
    fn login_and_register_draw_on_the_sign_in_budget() {
        let limiter = RateLimiter::new(Cache::memory("t:"), RateLimitSettings::default());
        assert_eq!(
            limiter.budget_of("agora.auth.v1.AuthService.Login"),
            Budget::SignIn
        );
        assert_eq!(
            limiter.budget_of("agora.auth.v1.AuthService.Register"),
            Budget::SignIn
        );
        assert_eq!(
            limiter.budget_of("agora.product.v1.ProductService.GetProduct"),
            Budget::General
        );
    }

    #[test]
    fn signed_in_clients_are_counted_by_user_except_for_sign_in_which_counts_by_address() {
        let limiter = RateLimiter::new(Cache::memory("t:"), RateLimitSettings::default());
        let mut request = Request::new(axum::body::Body::empty());
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 1, 2, 3], 4567))));
        request
            .headers_mut()
            .insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert_eq!(
            limiter.client_of(&request, Budget::General),
            "addr:10.1.2.3",
            "the header is not trusted by default"
        );
        request.extensions_mut().insert(Principal {
            subject: "u-1".into(),
            roles: vec![],
        });
        assert_eq!(limiter.client_of(&request, Budget::General), "user:u-1");
        assert_eq!(
            limiter.client_of(&request, Budget::SignIn),
            "addr:10.1.2.3",
            "a token opens no sign-in budget of its own"
        );
        request
            .extensions_mut()
            .insert(ClientAddress([198, 51, 100, 7].into()));
        assert_eq!(
            limiter.client_of(&request, Budget::SignIn),
            "addr:198.51.100.7",
            "the address the edge decided"
        );
        request.extensions_mut().remove::<ClientAddress>();

        let trusting = RateLimiter::new(
            Cache::memory("t:"),
            RateLimitSettings {
                trust_forwarded_for: true,
                ..RateLimitSettings::default()
            },
        );
        assert_eq!(
            trusting.client_of(&request, Budget::SignIn),
            "addr:203.0.113.9"
        );
        request.extensions_mut().remove::<Principal>();
        assert_eq!(
            trusting.client_of(&request, Budget::General),
            "addr:203.0.113.9"
        );
    }

    /// Spends a budget of three, checks the count and the refusal, then checks that the window
    /// starts again once it has passed.
    async fn a_budget_is_spent_refused_and_renewed(cache: Cache) {
        let settings = RateLimitSettings {
            sign_in_requests: 3,
            sign_in_window: Duration::from_millis(400),
            ..RateLimitSettings::default()
        };
        let limiter = RateLimiter::new(cache, settings);
        for remaining in [2, 1, 0] {
            let verdict = limiter
                .check("addr:a", Budget::SignIn)
                .await
                .expect("counted");
            assert!(verdict.allowed);
            assert_eq!(verdict.remaining, remaining);
            assert!(verdict.reset_after <= Duration::from_millis(400));
        }
        let refused = limiter
            .check("addr:a", Budget::SignIn)
            .await
            .expect("counted");
        assert!(!refused.allowed);
        let other = limiter
            .check("addr:b", Budget::SignIn)
            .await
            .expect("counted");
        assert!(other.allowed, "another client has its own budget");
        let general = limiter
            .check("addr:a", Budget::General)
            .await
            .expect("counted");
        assert!(general.allowed, "the general budget is separate");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let renewed = limiter
            .check("addr:a", Budget::SignIn)
            .await
            .expect("counted");
        assert!(renewed.allowed, "a new window");
        assert_eq!(renewed.remaining, 2);
    }

    #[tokio::test]
    async fn in_memory_a_budget_is_spent_refused_and_renewed() {
        a_budget_is_spent_refused_and_renewed(Cache::memory("t:")).await;
    }

    /// A connection to the test Redis under `prefix`; `None` (skipped, loudly) when it is down,
    /// except under `CI=true`, where that fails the test.
    async fn redis(prefix: &str) -> Option<Cache> {
        let url = agora_platform::testing::redis_url();
        match Cache::redis(&url, prefix).await {
            Ok(cache) => Some(cache),
            Err(error) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                assert!(!ci, "CI=true and Redis is unreachable: {error:#}");
                eprintln!("SKIPPED: Redis is unreachable ({error:#})");
                None
            }
        }
    }

    fn unique_prefix() -> String {
        format!("test:gateway:{}:", uuid::Uuid::now_v7().simple())
    }

    #[tokio::test]
    async fn on_redis_a_budget_is_spent_refused_and_renewed() {
        let Some(cache) = redis(&unique_prefix()).await else {
            return;
        };
        a_budget_is_spent_refused_and_renewed(cache).await;
    }

    #[tokio::test]
    async fn on_redis_replicas_share_one_budget() {
        let prefix = unique_prefix();
        // Two gateways: two connections to one Redis, with the deployment's one prefix.
        let (Some(one), Some(two)) = (redis(&prefix).await, redis(&prefix).await) else {
            return;
        };
        let settings = RateLimitSettings {
            requests: 2,
            ..RateLimitSettings::default()
        };
        let first = RateLimiter::new(one, settings.clone());
        let second = RateLimiter::new(two, settings);
        assert!(
            first
                .check("user:u", Budget::General)
                .await
                .expect("counted")
                .allowed
        );
        assert!(
            second
                .check("user:u", Budget::General)
                .await
                .expect("counted")
                .allowed
        );
        assert!(
            !first
                .check("user:u", Budget::General)
                .await
                .expect("counted")
                .allowed
        );
        assert!(
            !second
                .check("user:u", Budget::General)
                .await
                .expect("counted")
                .allowed
        );
    }

    /// A large budget is counted in Redis a lease at a time, yet each verdict counts exactly.
    #[tokio::test]
    async fn on_redis_a_replica_leases_counts_and_spends_them_locally() {
        let prefix = unique_prefix();
        let Some(cache) = redis(&prefix).await else {
            return;
        };
        let settings = RateLimitSettings {
            requests: 640,
            ..RateLimitSettings::default()
        };
        let size = lease_size(640);
        assert_eq!(size, 20);
        let limiter = RateLimiter::new(cache.clone(), settings);
        for n in 1..=101u64 {
            let verdict = limiter
                .check("user:u", Budget::General)
                .await
                .expect("counted");
            assert!(verdict.allowed);
            assert_eq!(
                verdict.remaining,
                640 - n,
                "request {n} counts exactly once"
            );
        }
        let counted = cache.count("ratelimit:general:user:u").await.expect("read");
        assert_eq!(
            counted.count,
            6 * size,
            "101 requests took six leases of {size}"
        );
    }

    /// Two replicas drawing on one budget in leases admit at most the budget, lose at most one
    /// lease to the other, and a remembered refusal costs no Redis call.
    #[tokio::test]
    async fn on_redis_leases_never_admit_more_than_the_budget() {
        let prefix = unique_prefix();
        let (Some(one), Some(two)) = (redis(&prefix).await, redis(&prefix).await) else {
            return;
        };
        let settings = RateLimitSettings {
            requests: 96,
            ..RateLimitSettings::default()
        };
        let size = lease_size(96);
        assert_eq!(size, 3);
        let replicas = [
            RateLimiter::new(one.clone(), settings.clone()),
            RateLimiter::new(two, settings),
        ];
        let mut admitted = 0;
        // An uneven interleaving: the first replica serves two requests for each of the second.
        for n in 0..300 {
            let verdict = replicas[usize::from(n % 3 == 2)]
                .check("addr:x", Budget::General)
                .await
                .expect("counted");
            admitted += u64::from(verdict.allowed);
        }
        assert!(admitted <= 96, "{admitted} admitted past a budget of 96");
        assert!(admitted > 96 - size, "{admitted}: more than one lease lost");
        let key = "ratelimit:general:addr:x";
        let before = one.count(key).await.expect("read").count;
        for replica in &replicas {
            let verdict = replica
                .check("addr:x", Budget::General)
                .await
                .expect("counted");
            assert!(!verdict.allowed);
        }
        assert_eq!(
            one.count(key).await.expect("read").count,
            before,
            "a refusal remembered until the window ends asks Redis nothing"
        );
    }
}
