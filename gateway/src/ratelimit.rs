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
//! a refused one is 429 RESOURCE_EXHAUSTED with `Retry-After`, counted in
//! `agora.edge.rate_limited` by `agora.rate_limit.policy` (`general` or `sign_in`).
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
//!
//! # Layout
//! This file holds the limiter and its middleware; [`RateLimitSettings`] is in `settings`,
//! [`Quota`] and [`Verdict`] in `verdict`, and the leases of shared counts in `leases`.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use agora_platform::{access::Principal, cache::Cache, metrics::Metrics};
use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::Response,
};
use opentelemetry::{
    KeyValue,
    metrics::{Counter, Meter},
};

use crate::client_address::ClientAddress;
use crate::rules::Binding;

mod leases;
mod settings;
mod verdict;

pub use leases::MAX_LEASE;
use leases::{Lease, Leases, lease_size, lock};
pub use settings::RateLimitSettings;
pub use verdict::{Quota, Verdict};

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
    /// `agora.edge.rate_limited`: the requests refused, by the budget that refused them.
    refused: Counter<u64>,
    /// Counts taken from a shared cache and not spent yet, by counter key.
    leases: Mutex<Leases>,
}

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Every method but sign-in, per user when signed in, else per address.
    General,
    /// Login and register, per address whatever the token.
    SignIn,
}

impl Budget {
    /// Its name in `agora.rate_limit.policy`.
    pub const fn policy(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::SignIn => "sign_in",
        }
    }
}

impl RateLimiter {
    /// A limiter counting in `cache` (give it a key prefix of its own, e.g. `agora:gateway:`),
    /// its refusals recorded in the process's metrics.
    pub fn new(cache: Cache, settings: RateLimitSettings) -> Self {
        Self::with_meter(cache, settings, &Metrics::global().meter())
    }

    /// [`RateLimiter::new`], its refusals recorded on `meter`.
    pub fn with_meter(cache: Cache, settings: RateLimitSettings, meter: &Meter) -> Self {
        let refused = meter
            .u64_counter("agora.edge.rate_limited")
            .with_description("Requests the edge refused over a rate limit, by the limit")
            .build();
        Self {
            shared: Arc::new(Shared {
                cache,
                settings,
                refused,
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
            self.shared.refused.add(
                1,
                &[KeyValue::new("agora.rate_limit.policy", budget.policy())],
            );
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
mod tests;
