//! A budget and what one request's count against it means: allowed or not, and the
//! `RateLimit-*` headers that tell the client.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

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
