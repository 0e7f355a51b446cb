//! The rate-limit settings: the general budget, the sign-in budget and who counts as a client.

use std::time::Duration;

use serde::Deserialize;

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
